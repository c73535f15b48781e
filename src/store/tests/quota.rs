//! The quota's overflow policy (ARCHITECTURE.md, invariant 7) on real files: commits keep succeeding, the least valuable unsent rows
//! go first, every drop is counted and reported exactly; oversized payloads are refused; old files get classes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::*;

const MACHINES: [&str; 2] = ["press-01", "press-02"];

fn topic(machine: &str, suffix: &str) -> String {
    format!("shopfloor/acme/line-a/{machine}/{suffix}")
}

/// The drafts of cycle `index`: per machine a 1m rollup every cycle, 15m every 3rd, 1h every 9th, an event every
/// 15th and a shift rollup every 30th, each with a few hundred bytes of body.
fn production_drafts(index: i64) -> Vec<OutboxDraft> {
    let mut drafts = Vec::new();
    for machine in MACHINES {
        let mut add = |suffix: &str, filler: usize| {
            drafts.push(draft(
                &topic(machine, suffix),
                json!({"cycle": index, "filler": "r".repeat(filler)}),
            ));
        };
        add("rollup/1m", 560);
        if index % 3 == 0 {
            add("rollup/15m", 560);
        }
        if index % 9 == 0 {
            add("rollup/1h", 560);
        }
        if index % 15 == 0 {
            add("event", 200);
        }
        if index % 30 == 0 {
            add("rollup/shift", 560);
        }
    }
    drafts
}

fn production_cycle(index: i64) -> CycleWrite {
    CycleWrite {
        counters: MACHINES
            .iter()
            .map(|machine| {
                (
                    format!("{machine}/produced"),
                    format!("{{\"last\":{index}}}"),
                )
            })
            .collect(),
        windows: vec![("w".to_owned(), "{}".to_owned())],
        outbox: production_drafts(index),
        now: 1_000 * index,
        ..CycleWrite::default()
    }
}

#[test]
fn given_stored_topics_when_classified_then_short_rollups_go_first_and_events_last() {
    let cases = [
        ("rollup/1m", DropClass::Rollup1m),
        ("rollup/30s", DropClass::Rollup1m),
        ("rollup/5m", DropClass::Rollup1m),
        ("rollup/15m", DropClass::Rollup15m),
        ("rollup/30m", DropClass::Rollup15m),
        ("rollup/fortnight", DropClass::RollupUnknown),
        ("rollup/1h", DropClass::Rollup1h),
        ("rollup/8h", DropClass::Rollup1h),
        ("rollup/shift", DropClass::Durable),
        ("rollup/day", DropClass::Durable),
        ("event", DropClass::Durable),
        ("live", DropClass::Durable),
    ];
    for (suffix, expected) in cases {
        assert_eq!(
            DropClass::of_stored_topic(&topic("m", suffix)),
            expected,
            "{suffix}"
        );
    }
    // A machine named "rollup" keeps its events durable.
    assert_eq!(
        DropClass::of_stored_topic("p/s/line/rollup/event"),
        DropClass::Durable
    );
    let ranks: Vec<i64> = DropClass::ALL.iter().map(|class| class.rank()).collect();
    assert_eq!(ranks, vec![0, 1, 2, 3, 4]);
}

#[test]
fn given_periods_when_classified_then_they_agree_with_the_classes_of_their_stored_topics() {
    for name in ["1m", "30s", "5m", "15m", "30m", "1h", "8h", "shift", "day"] {
        let period = crate::logic::window::Period::parse(name).unwrap();
        assert_eq!(
            DropClass::of_period(&period),
            DropClass::of_stored_topic(&topic("m", &format!("rollup/{name}"))),
            "{name}"
        );
    }
}

#[test]
fn given_a_small_quota_and_no_retiring_when_cycles_keep_coming_then_commits_succeed_and_cheap_rows_go_first(
) {
    let (_dir, path) = temp_db();
    let mut store = open_with_quota(&path, 256 * 1024);
    let mut enqueued: BTreeMap<i64, (String, DropClass)> = BTreeMap::new();
    let mut ranges: Vec<DroppedRange> = Vec::new();
    let mut first_drop_at: BTreeMap<DropClass, i64> = BTreeMap::new();

    for index in 0..700 {
        let before: BTreeSet<i64> = all_unacked(&store).iter().map(|row| row.seq).collect();
        let cycle = production_cycle(index);
        let outcome = store
            .commit_cycle(&cycle)
            .unwrap_or_else(|error| panic!("cycle {index} must commit: {error:?}"));
        assert_eq!(outcome.seqs.len(), cycle.outbox.len());
        assert!(outcome.refused.is_empty());
        for (seq, draft) in outcome.seqs.iter().zip(&cycle.outbox) {
            let class = draft.class;
            assert!(enqueued
                .insert(*seq, (draft.topic.clone(), class))
                .is_none());
        }
        // The cycle's counters and windows are committed even when rows had to be dropped (invariant 3).
        assert!(store.load_counters().unwrap().contains(&(
            "press-01/produced".to_owned(),
            format!("{{\"last\":{index}}}")
        )));

        let after: BTreeSet<i64> = all_unacked(&store).iter().map(|row| row.seq).collect();
        let dropped_now: BTreeSet<i64> = before.difference(&after).copied().collect();
        let reported: u64 = outcome.dropped.iter().map(|range| range.rows).sum();
        assert_eq!(u64::try_from(dropped_now.len()).unwrap(), reported);
        for class in outcome.dropped.iter().map(|range| range.class) {
            first_drop_at.entry(class).or_insert(index);
        }
        assert_cheapest_oldest_went_first(index, &outcome.dropped, &before, &after, &enqueued);
        ranges.extend(outcome.dropped);
    }

    assert!(
        first_drop_at[&DropClass::Rollup1m] <= first_drop_at[&DropClass::Rollup15m]
            && first_drop_at[&DropClass::Rollup15m] <= first_drop_at[&DropClass::Rollup1h],
        "{first_drop_at:?}"
    );
    assert!(
        !first_drop_at.contains_key(&DropClass::Durable),
        "events and shift rollups survive: {first_drop_at:?}"
    );

    let present = assert_exact_accounting(&store, &enqueued, &ranges);

    // Once everything is retired, the freed pages are reused: no further drops.
    let counters = store.drops();
    let seqs: Vec<i64> = present.iter().copied().collect();
    store.retire(&seqs).unwrap();
    for index in 700..750 {
        let outcome = store.commit_cycle(&production_cycle(index)).unwrap();
        assert!(outcome.dropped.is_empty(), "cycle {index} dropped rows");
    }
    drop(store);
    let store = open_with_quota(&path, 256 * 1024);
    assert_eq!(store.drops(), counters, "the drop counters are persisted");
    assert!(store.integrity_check().unwrap().is_empty());
}

#[test]
fn given_rows_claimed_by_the_publisher_when_the_quota_overflows_then_they_are_never_dropped_and_ranges_split_at_them(
) {
    let (_dir, path) = temp_db();
    let mut store = open_with_quota(&path, 192 * 1024);
    let mut claimed: BTreeSet<i64> = BTreeSet::new();
    let mut topics: BTreeMap<i64, String> = BTreeMap::new();
    let mut drops = 0;
    for index in 0..400 {
        let cycle = production_cycle(index);
        let outcome = store.commit_cycle(&cycle).unwrap();
        for (seq, draft) in outcome.seqs.iter().zip(&cycle.outbox) {
            topics.insert(*seq, draft.topic.clone());
        }
        let present: BTreeSet<i64> = all_unacked(&store).iter().map(|row| row.seq).collect();
        assert!(
            claimed.is_subset(&present),
            "cycle {index}: a claimed row was dropped"
        );
        for range in &outcome.dropped {
            assert!(!present
                .range(range.first_seq..=range.last_seq)
                .any(|seq| topics[seq] == range.topic));
        }
        drops += outcome.dropped.len();
        // The publisher reads a page now and then; it retires the oldest claimed row as if acked.
        if index % 25 == 0 {
            let after = claimed.last().copied().unwrap_or(0);
            claimed.extend(store.claim(after, 6).unwrap().iter().map(|row| row.seq));
            let oldest = claimed.pop_first().unwrap();
            assert_eq!(store.retire(&[oldest]).unwrap(), 1);
        }
        assert_eq!(store.claimed(), claimed.len());
    }
    assert!(drops > 0, "the scenario must overflow");
    assert!(store.integrity_check().unwrap().is_empty());
}

#[test]
fn given_claims_released_after_a_refusal_when_the_quota_overflows_then_those_rows_can_be_dropped_again(
) {
    let (_dir, path) = temp_db();
    let mut store = open_with_quota(&path, 192 * 1024);
    store.commit_cycle(&production_cycle(0)).unwrap();
    let claimed: Vec<i64> = store
        .claim(0, 2)
        .unwrap()
        .iter()
        .map(|row| row.seq)
        .collect();
    store.release(&claimed[1..]);
    assert_eq!(store.claimed(), 1);
    let mut index = 1;
    while all_unacked(&store).iter().any(|row| row.seq == claimed[1]) {
        store.commit_cycle(&production_cycle(index)).unwrap();
        index += 1;
        assert!(index < 1_000, "the released row was never dropped");
    }
    assert!(all_unacked(&store).iter().any(|row| row.seq == claimed[0]));
}

#[test]
fn given_delta_audit_rows_when_the_quota_fills_then_they_are_pruned_oldest_first_before_any_outbox_row(
) {
    let (_dir, path) = temp_db();
    let mut store = open_with_quota(&path, 192 * 1024);
    let delta = |n: i64| DeltaRow {
        key: format!("press-01/produced/{n:06}"),
        kind: StepKind::Normal,
        delta: 1,
        raw: u64::try_from(n).unwrap(),
        t_from: n,
        t_to: n + 1,
    };
    // Fill about half the quota with audit rows.
    for batch in 0..20 {
        let cycle = CycleWrite {
            deltas: (batch * 100..(batch + 1) * 100).map(delta).collect(),
            now: batch,
            ..CycleWrite::default()
        };
        assert!(store.commit_cycle(&cycle).unwrap().deltas_pruned == 0);
    }
    let mut index = 0;
    let first_prune = loop {
        let outcome = store
            .commit_cycle(&cycle_with_outbox(
                index,
                vec![draft(
                    &topic("press-01", "rollup/1m"),
                    json!({"filler": "x".repeat(900)}),
                )],
            ))
            .unwrap();
        if outcome.deltas_pruned > 0 {
            break outcome;
        }
        index += 1;
        assert!(index < 500, "the quota must fill up");
    };
    assert!(
        first_prune.dropped.is_empty(),
        "deltas go before outbox rows"
    );
    assert_eq!(store.drops().deltas_pruned, first_prune.deltas_pruned);
    assert_eq!(store.drops().rows_dropped(), 0);
    let left = store.deltas_after(0, usize::MAX).unwrap();
    let pruned = usize::try_from(first_prune.deltas_pruned).unwrap();
    assert_eq!(left.len(), 2_000 - pruned);
    assert_eq!(
        left[0].1,
        delta(i64::try_from(pruned).unwrap()),
        "oldest first"
    );
}

#[test]
fn given_a_cycle_bigger_than_everything_droppable_when_committed_then_full_is_returned_and_nothing_changes(
) {
    let (_dir, path) = temp_db();
    let mut store = open_with_quota(&path, 128 * 1024);
    for index in 0..10 {
        store
            .commit_cycle(&cycle_with_outbox(
                index,
                vec![draft(&topic("press-01", "rollup/1m"), json!({"n": index}))],
            ))
            .unwrap();
    }
    let rows_before = all_unacked(&store);
    let huge = CycleWrite {
        counters: vec![("press-01/produced".into(), "9".repeat(200 * 1024))],
        outbox: vec![draft(&topic("press-01", "event"), json!({}))],
        now: 99,
        ..CycleWrite::default()
    };
    assert!(matches!(
        store.commit_cycle(&huge),
        Err(StoreError::Full(_))
    ));
    assert_eq!(
        all_unacked(&store),
        rows_before,
        "the drops were rolled back"
    );
    assert_eq!(store.drops(), DropCounters::default());
    assert_eq!(store.last_seq().unwrap(), 10);
    assert!(store.load_counters().unwrap().is_empty());
    // The processor keeps the work pending; a cycle that fits still commits.
    let outcome = store
        .commit_cycle(&cycle_with_outbox(100, vec![draft("t/event", json!({}))]))
        .unwrap();
    assert_eq!(outcome.seqs, vec![11]);
    assert!(store.integrity_check().unwrap().is_empty());
}

#[test]
fn given_an_oversized_draft_when_committed_then_it_is_refused_counted_and_the_rest_of_the_cycle_is_stored(
) {
    let (_dir, path) = temp_db();
    let options = StoreOptions {
        max_payload_bytes: 1024,
        ..StoreOptions::default()
    };
    let mut store = Store::open(&path, &options).unwrap();
    // Find the filler length whose stored payload is exactly at the limit (seq counted at its widest).
    let widest = |filler: usize| {
        let mut body = serde_json::Map::new();
        body.insert("filler".into(), "x".repeat(filler).into());
        body.insert("seq".into(), i64::MAX.into());
        body.insert("db_epoch".into(), store.db_epoch().into());
        serde_json::to_vec(&body).unwrap().len()
    };
    let at_limit = (0..2048).find(|filler| widest(*filler) == 1024).unwrap();
    let cycle = CycleWrite {
        counters: vec![("c".into(), "1".into())],
        outbox: vec![
            draft("t/rollup/1m", json!({"filler": "x".repeat(at_limit)})),
            draft("t/rollup/1m", json!({"filler": "x".repeat(at_limit + 1)})),
            draft("t/event", json!({"n": 3})),
        ],
        now: 7,
        ..CycleWrite::default()
    };
    let outcome = store.commit_cycle(&cycle).unwrap();
    assert_eq!(outcome.seqs, vec![1, 2]);
    assert_eq!(
        outcome.refused,
        vec![RefusedDraft {
            index: 1,
            topic: "t/rollup/1m".into(),
            bytes: 1025,
            owner: None,
        }]
    );
    let rows = all_unacked(&store);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|row| row.payload.len() <= 1024));
    assert_eq!(payload_json(&rows[1])["n"], json!(3));
    assert_eq!(
        store.load_counters().unwrap(),
        vec![("c".into(), "1".into())]
    );
    drop(store);
    let store = Store::open(&path, &options).unwrap();
    assert_eq!(store.drops().refused, 1);
    assert_eq!(store.drops().refused_bytes, 1025);
}

#[test]
fn given_a_version_1_file_with_queued_rows_when_opened_then_rows_get_their_drop_class() {
    let (_dir, path) = temp_db();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let _: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .unwrap();
        conn.execute_batch(schema::MIGRATIONS[0].sql).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        for suffix in ["rollup/1m", "rollup/15m", "rollup/1h", "event", "rollup/x"] {
            conn.execute(
                "INSERT INTO outbox (topic, payload, enqueued_at) VALUES (?1, x'7b7d', 1)",
                [topic("press-01", suffix)],
            )
            .unwrap();
        }
    }
    let store = open(&path);
    let classes: Vec<i64> = store
        .conn
        .prepare("SELECT drop_class FROM outbox ORDER BY seq")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(classes, vec![0, 1, 3, 4, 2]);
    assert!(store.recovery().is_none());
    assert_eq!(all_unacked(&store).len(), 5);
}

#[test]
fn given_rows_whose_payloads_name_a_machine_when_dropped_or_refused_then_the_store_reports_that_machine(
) {
    let (_dir, path) = temp_db();
    let mut store = open_with_quota(&path, 192 * 1024);
    let owner = DraftOwner {
        line: "line-a".into(),
        machine: "press-01".into(),
    };
    let mut ranges = Vec::new();
    for index in 0..400 {
        let cycle = CycleWrite {
            outbox: vec![
                // The topic names no machine: the owner can only come from the payload's fields.
                draft(
                    "t/rollup/1m",
                    json!({"line": "line-a", "machine": "press-01", "filler": "r".repeat(560)}),
                ),
                draft(
                    "u/rollup/1m",
                    json!({"machine": 7, "filler": "r".repeat(560)}),
                ),
            ],
            now: 1_000 * index,
            ..CycleWrite::default()
        };
        ranges.extend(store.commit_cycle(&cycle).unwrap().dropped);
    }
    assert!(ranges.iter().any(|range| range.topic == "t/rollup/1m"));
    assert!(ranges.iter().any(|range| range.topic == "u/rollup/1m"));
    for range in &ranges {
        let expected = (range.topic == "t/rollup/1m").then(|| owner.clone());
        assert_eq!(range.owner, expected, "{range:?}");
    }

    let options = StoreOptions {
        max_payload_bytes: 64,
        ..StoreOptions::default()
    };
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path, &options).unwrap();
    let cycle = CycleWrite {
        outbox: vec![
            draft(
                "t/rollup/1m",
                json!({"line": "line-a", "machine": "press-01", "filler": "r".repeat(64)}),
            ),
            draft(
                "t/event",
                json!({"line": "line-a", "filler": "r".repeat(64)}),
            ),
        ],
        now: 7,
        ..CycleWrite::default()
    };
    let refused = store.commit_cycle(&cycle).unwrap().refused;
    let owners: Vec<_> = refused.into_iter().map(|draft| draft.owner).collect();
    assert_eq!(owners, vec![Some(owner), None]);
}

/// Every surviving row of a cheaper class than the dearest dropped one is gone, and within that class the
/// oldest rows went first.
fn assert_cheapest_oldest_went_first(
    index: i64,
    dropped: &[DroppedRange],
    before: &BTreeSet<i64>,
    after: &BTreeSet<i64>,
    enqueued: &BTreeMap<i64, (String, DropClass)>,
) {
    let Some(highest) = dropped.iter().map(|range| range.class).max() else {
        return;
    };
    let dropped_now: BTreeSet<i64> = before.difference(after).copied().collect();
    for seq in before.intersection(after) {
        let (_, class) = &enqueued[seq];
        assert!(
            *class >= highest,
            "cycle {index}: {class:?} survived a drop of {highest:?}"
        );
        if *class == highest {
            let newest_dropped = dropped_now
                .iter()
                .filter(|seq| enqueued[seq].1 == highest)
                .max()
                .unwrap();
            assert!(seq > newest_dropped, "oldest first within a class");
        }
    }
}

/// Exact accounting: rows enqueued = rows present + rows dropped, per class, in the ranges and the counters.
/// Returns the seqs still present.
fn assert_exact_accounting(
    store: &Store,
    enqueued: &BTreeMap<i64, (String, DropClass)>,
    ranges: &[DroppedRange],
) -> BTreeSet<i64> {
    let present: BTreeSet<i64> = all_unacked(store).iter().map(|row| row.seq).collect();
    let dropped: BTreeSet<i64> = enqueued
        .keys()
        .filter(|seq| !present.contains(seq))
        .copied()
        .collect();
    for range in ranges {
        let in_range = dropped
            .range(range.first_seq..=range.last_seq)
            .filter(|seq| enqueued[seq].0 == range.topic)
            .count();
        assert_eq!(u64::try_from(in_range).unwrap(), range.rows, "{range:?}");
        assert!(!present
            .range(range.first_seq..=range.last_seq)
            .any(|seq| enqueued[seq].0 == range.topic));
    }
    let counters = store.drops();
    for class in DropClass::ALL {
        let enqueued_rows = enqueued.values().filter(|(_, c)| *c == class).count();
        let present_rows = present
            .iter()
            .filter(|seq| enqueued[seq].1 == class)
            .count();
        let ranged: u64 = ranges
            .iter()
            .filter(|range| range.class == class)
            .map(|range| range.rows)
            .sum();
        assert_eq!(
            u64::try_from(enqueued_rows - present_rows).unwrap(),
            ranged,
            "{class:?}"
        );
        assert_eq!(counters.rows(class), ranged, "{class:?}");
    }
    assert_eq!(
        counters.rows_dropped(),
        u64::try_from(dropped.len()).unwrap()
    );
    assert!(store.integrity_check().unwrap().is_empty());

    present
}
