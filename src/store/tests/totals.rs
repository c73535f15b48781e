//! The backlog figure is kept, not scanned: after enqueues, retirements (claimed or not), overflow drops,
//! refusals, clean and crash reopens, a damaged meta value and a file from the schema before the totals were
//! kept, [`Store::backlog`] equals a fresh count of the outbox; and reading it costs the same with 20 rows as
//! with 2,000 (SQLite's own count of virtual-machine steps, not a clock).

use rusqlite::StatementStatus;
use serde_json::json;

use super::*;

/// The outbox counted from scratch, the way the figure was computed before it was kept.
fn fresh_backlog(store: &Store) -> Backlog {
    let (rows, bytes, oldest_enqueued_at): (i64, i64, Option<Millis>) = store
        .conn
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), \
             (SELECT enqueued_at FROM outbox ORDER BY seq LIMIT 1) FROM outbox",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    Backlog {
        rows: u64::try_from(rows).unwrap(),
        bytes: u64::try_from(bytes).unwrap(),
        oldest_enqueued_at,
    }
}

fn assert_kept(store: &Store) {
    assert_eq!(store.backlog().unwrap(), fresh_backlog(store));
}

/// One cycle of `rows` drafts of about `filler` bytes each, rollups of 1 minute.
fn cycle(now: Millis, rows: usize, filler: usize) -> CycleWrite {
    cycle_with_outbox(
        now,
        (0..rows)
            .map(|index| {
                draft(
                    "p/s/l/m1/rollup/1m",
                    json!({"i": index, "f": "x".repeat(filler)}),
                )
            })
            .collect(),
    )
}

/// Virtual-machine steps of every statement the store has prepared, summed.
fn vm_steps(store: &Store) -> i64 {
    schema::ALL_STATEMENTS
        .iter()
        .map(|sql| {
            i64::from(
                store
                    .conn
                    .prepare_cached(sql)
                    .unwrap()
                    .get_status(StatementStatus::VmStep),
            )
        })
        .sum()
}

#[test]
fn given_enqueues_retirements_and_reopens_when_the_backlog_is_read_then_it_equals_a_fresh_count() {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    assert_kept(&store);
    assert_eq!(store.backlog().unwrap(), Backlog::default());
    let seqs = store.commit_cycle(&cycle(10, 6, 300)).unwrap().seqs;
    assert_eq!(store.backlog().unwrap().rows, 6);
    assert_kept(&store);

    // Retired after a claim (the publisher's path), duplicated, and without a claim.
    let claimed = store.claim(0, 2).unwrap();
    let claimed_seqs: Vec<i64> = claimed.iter().map(|row| row.seq).collect();
    assert_eq!(store.retire(&claimed_seqs).unwrap(), 2);
    assert_kept(&store);
    assert_eq!(store.retire(&claimed_seqs).unwrap(), 0);
    assert_eq!(store.retire(&[seqs[3], 9_999]).unwrap(), 1);
    assert_kept(&store);
    assert_eq!(store.backlog().unwrap().rows, 3);
    assert_eq!(store.backlog().unwrap().oldest_enqueued_at, Some(10));

    store.commit_cycle(&cycle(20, 2, 50)).unwrap();
    drop(store);
    let mut store = open(&path);
    assert_kept(&store);
    assert_eq!(store.backlog().unwrap().rows, 5);

    let rest: Vec<i64> = all_unacked(&store).iter().map(|row| row.seq).collect();
    assert_eq!(store.retire(&rest).unwrap(), 5);
    assert_eq!(store.backlog().unwrap(), Backlog::default());
    assert_kept(&store);
}

#[test]
fn given_a_full_quota_and_an_oversized_draft_when_committed_then_drops_and_refusals_keep_the_figure_exact(
) {
    let (_dir, path) = temp_db();
    let mut store = Store::open(
        &path,
        &StoreOptions {
            max_bytes: 128 * 1024,
            max_payload_bytes: 4 * 1024,
        },
    )
    .unwrap();
    let mut dropped = 0;
    for now in 0..60 {
        let mut write = cycle(now, 4, 1_500);
        // Every tenth cycle carries a draft over the payload limit, which is refused and never stored.
        if now % 10 == 0 {
            write
                .outbox
                .push(draft("p/s/l/m1/event", json!({"f": "y".repeat(5_000)})));
        }
        let outcome = store.commit_cycle(&write).unwrap();
        assert_eq!(outcome.refused.len(), usize::from(now % 10 == 0));
        dropped += outcome.dropped.iter().map(|range| range.rows).sum::<u64>();
        // The publisher holds some rows while the quota drops others around them.
        if now % 7 == 0 {
            let rows = store.claim(0, 3).unwrap();
            if now % 14 == 0 {
                let seqs: Vec<i64> = rows.iter().map(|row| row.seq).collect();
                store.retire(&seqs).unwrap();
            }
        }
        assert_kept(&store);
    }
    assert!(dropped > 0, "the quota dropped rows");
    assert_eq!(store.drops().refused, 6);
    drop(store);
    assert_kept(&open_with_quota(&path, 128 * 1024));
}

#[test]
fn given_a_crash_image_when_reopened_then_the_kept_figure_matches_the_rows_it_holds() {
    let (dir, path) = temp_db();
    let mut store = open(&path);
    store.commit_cycle(&cycle(1, 5, 200)).unwrap();
    let rows = store.claim(0, 2).unwrap();
    store
        .retire(&rows.iter().map(|row| row.seq).collect::<Vec<_>>())
        .unwrap();
    // Files copied while the store is open are what a power cut leaves behind.
    let image = dir.path().join("image").join("agent.db");
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        std::fs::copy(with_suffix(&path, suffix), with_suffix(&image, suffix)).unwrap();
    }
    drop(store);
    let crashed = open(&image);
    assert!(crashed.recovery().is_none());
    assert_eq!(crashed.backlog().unwrap().rows, 3);
    assert_kept(&crashed);
}

#[test]
fn given_a_file_of_the_schema_before_the_totals_when_opened_then_they_are_counted_once_and_kept() {
    let (_dir, path) = temp_db();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let _: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .unwrap();
        let tx = conn.transaction().unwrap();
        for migration in &schema::MIGRATIONS[..4] {
            tx.execute_batch(migration.sql).unwrap();
        }
        for (index, payload) in ["{\"a\":1}", "{\"bb\":22}", "{\"ccc\":333}"]
            .iter()
            .enumerate()
        {
            tx.execute(
                "INSERT INTO outbox (topic, payload, enqueued_at, drop_class) VALUES ('t/event', ?1, ?2, 4)",
                (payload.as_bytes(), 100 + i64::try_from(index).unwrap()),
            )
            .unwrap();
        }
        tx.pragma_update(None, "user_version", 4).unwrap();
        tx.commit().unwrap();
    }
    let mut store = open(&path);
    assert!(store.recovery().is_none());
    let version: i64 = store
        .conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, i64::try_from(schema::MIGRATIONS.len()).unwrap());
    assert_eq!(
        store.backlog().unwrap(),
        Backlog {
            rows: 3,
            bytes: 7 + 9 + 11,
            oldest_enqueued_at: Some(100),
        }
    );
    assert_eq!(store.retire(&[2]).unwrap(), 1);
    store.commit_cycle(&cycle(200, 1, 10)).unwrap();
    assert_kept(&store);
    drop(store);
    assert_kept(&open(&path));
}

#[test]
fn given_a_damaged_total_in_the_meta_table_when_opened_then_it_is_counted_again() {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    store.commit_cycle(&cycle(1, 4, 100)).unwrap();
    let expected = store.backlog().unwrap();
    drop(store);
    for (key, value) in [
        (
            "outbox.rows",
            rusqlite::types::Value::Blob(vec![0xde, 0xad]),
        ),
        ("outbox.bytes", rusqlite::types::Value::Text("-5".into())),
    ] {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute("UPDATE meta SET value = ?2 WHERE key = ?1", (key, value))
            .unwrap();
        drop(raw);
        let store = open(&path);
        assert!(
            store.recovery().is_none(),
            "a damaged value is no damaged file"
        );
        assert_eq!(store.backlog().unwrap(), expected);
        drop(store);
    }
}

#[test]
fn given_a_clock_stepped_back_when_the_backlog_is_read_then_the_oldest_is_the_first_row_in_queue_order(
) {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    store.commit_cycle(&cycle(5_000, 1, 10)).unwrap();
    store.commit_cycle(&cycle(4_000, 1, 10)).unwrap();
    assert_eq!(store.backlog().unwrap().oldest_enqueued_at, Some(5_000));
    let first = store.claim(0, 1).unwrap();
    store.retire(&[first[0].seq]).unwrap();
    assert_eq!(store.backlog().unwrap().oldest_enqueued_at, Some(4_000));
}

#[test]
fn given_100_times_more_rows_when_the_backlog_is_read_then_it_costs_the_same_sqlite_steps() {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    let cost_at = |store: &mut Store, rows: usize| {
        while fresh_backlog(store).rows < u64::try_from(rows).unwrap() {
            store.commit_cycle(&cycle(1, 100.min(rows), 20)).unwrap();
        }
        let before = vm_steps(store);
        let backlog = store.backlog().unwrap();
        assert_eq!(backlog, fresh_backlog(store));
        vm_steps(store) - before
    };
    let small = cost_at(&mut store, 20);
    let large = cost_at(&mut store, 2_000);
    assert_eq!(
        small, large,
        "reading the figure does not grow with the outbox"
    );
    assert!(small < 100, "{small} steps");
}

#[test]
fn given_a_read_only_status_connection_when_read_then_it_reports_the_kept_figure() {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    store.commit_cycle(&cycle(7, 3, 40)).unwrap();
    let expected = store.backlog().unwrap();
    let status = StatusDb::open(&path).unwrap().read().unwrap();
    assert_eq!(status.backlog, expected);
}
