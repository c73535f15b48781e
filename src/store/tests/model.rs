//! Model test of the outbox: random commits (rows of every drop class, under a small quota so the overflow policy
//! runs), retires, clean reopens and crash reopens against a `VecDeque` of the rows that must be present.
//! Checked after every step: seq strictly increasing and never reused, retired rows never come back, unretired
//! rows come back in order, every drop is reported and counted exactly, cheaper classes go first, and the kept
//! backlog figure equals a fresh count of the outbox.

use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;
use serde_json::json;

use super::*;

const QUOTA: u64 = 96 * 1024;
const TOPICS: [&str; 7] = [
    "p/s/l/m1/rollup/1m",
    "p/s/l/m2/rollup/5m",
    "p/s/l/m1/rollup/15m",
    "p/s/l/m1/rollup/custom",
    "p/s/l/m1/rollup/1h",
    "p/s/l/m1/rollup/shift",
    "p/s/l/m1/event",
];

#[derive(Debug, Clone)]
enum Op {
    /// Enqueue one draft per (topic index, filler length).
    Commit(Vec<(usize, usize)>),
    /// Retire the rows at these positions (modulo the queue length), plus one unknown seq.
    Retire(Vec<usize>),
    /// Drop the store and open the file again.
    Reopen,
    /// Copy the files while the store is open (a power cut) and continue on the copy.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec((0..TOPICS.len(), 100_usize..2500), 1..6).prop_map(Op::Commit),
        // A row of many pages: it may only fit by dropping durable rows, or not at all (Full).
        1 => (0..TOPICS.len(), 20_000_usize..70_000).prop_map(|big| Op::Commit(vec![big])),
        2 => prop::collection::vec(any::<usize>(), 0..8).prop_map(Op::Retire),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

/// A row the model expects in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelRow {
    seq: i64,
    topic: String,
    class: DropClass,
}

struct Harness {
    dir: tempfile::TempDir,
    path: PathBuf,
    store: Option<Store>,
    crashes: usize,
}

impl Harness {
    fn store(&mut self) -> &mut Store {
        self.store.as_mut().expect("store is open")
    }

    fn reopen(&mut self) {
        drop(self.store.take());
        self.store = Some(open_with_quota(&self.path, QUOTA));
    }

    fn crash(&mut self) {
        self.crashes += 1;
        let image = self
            .dir
            .path()
            .join(format!("crash-{}", self.crashes))
            .join("agent.db");
        std::fs::create_dir_all(image.parent().unwrap()).unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let from = with_suffix(&self.path, suffix);
            if from.exists() {
                std::fs::copy(&from, with_suffix(&image, suffix)).unwrap();
            }
        }
        drop(self.store.take());
        self.path = image;
        self.store = Some(open_with_quota(&self.path, QUOTA));
    }
}

/// What the store must hold: the unacked rows in seq order, the last seq, the retired seqs and the drops.
#[derive(Default)]
struct Model {
    rows: VecDeque<ModelRow>,
    last_seq: i64,
    retired: BTreeSet<i64>,
    dropped: DropCounters,
}

impl Model {
    /// Commits one cycle of `drafts` and checks the outcome, including what the quota dropped.
    fn commit(
        &mut self,
        store: &mut Store,
        step: usize,
        drafts: &[(usize, usize)],
    ) -> Result<(), TestCaseError> {
        let cycle = CycleWrite {
            counters: vec![("c".into(), step.to_string())],
            outbox: drafts
                .iter()
                .map(|(topic, filler)| {
                    draft(
                        TOPICS[*topic],
                        json!({"step": step, "f": "z".repeat(*filler)}),
                    )
                })
                .collect(),
            now: i64::try_from(step).unwrap(),
            ..CycleWrite::default()
        };
        let outcome = match store.commit_cycle(&cycle) {
            Ok(outcome) => outcome,
            Err(StoreError::Full(_)) => return Ok(()),
            Err(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        prop_assert_eq!(outcome.seqs.len(), drafts.len());
        self.drop_ranges(&outcome.dropped)?;
        for (seq, (topic, _)) in outcome.seqs.iter().zip(drafts) {
            prop_assert!(*seq > self.last_seq, "seq {} after {}", seq, self.last_seq);
            self.last_seq = *seq;
            self.rows.push_back(ModelRow {
                seq: *seq,
                topic: TOPICS[*topic].to_owned(),
                class: DropClass::of_stored_topic(TOPICS[*topic]),
            });
        }
        prop_assert_eq!(
            store.load_counters().unwrap(),
            vec![("c".to_owned(), step.to_string())]
        );
        Ok(())
    }

    /// Removes the rows the quota dropped; cheaper classes go entirely, the dropped class its oldest rows.
    fn drop_ranges(&mut self, dropped: &[DroppedRange]) -> Result<(), TestCaseError> {
        for range in dropped {
            let before = self.rows.len();
            self.rows.retain(|row| {
                !(row.topic == range.topic && (range.first_seq..=range.last_seq).contains(&row.seq))
            });
            let removed = u64::try_from(before - self.rows.len()).unwrap();
            prop_assert_eq!(removed, range.rows, "range {:?} matches the model", range);
            prop_assert_eq!(range.class, DropClass::of_stored_topic(&range.topic));
            match range.class {
                DropClass::Rollup1m => self.dropped.rollup_1m += removed,
                DropClass::Rollup15m => self.dropped.rollup_15m += removed,
                DropClass::RollupUnknown => self.dropped.rollup_unknown += removed,
                DropClass::Rollup1h => self.dropped.rollup_1h += removed,
                DropClass::Durable => self.dropped.durable += removed,
            }
        }
        let Some(highest) = dropped.iter().map(|range| range.class).max() else {
            return Ok(());
        };
        let newest_dropped = dropped
            .iter()
            .filter(|range| range.class == highest)
            .map(|range| range.last_seq)
            .max()
            .unwrap();
        for row in &self.rows {
            prop_assert!(row.class >= highest, "{:?} survived {:?}", row, highest);
            prop_assert!(row.class != highest || row.seq > newest_dropped);
        }
        Ok(())
    }

    /// Retires the rows at `positions` (modulo the queue) plus one seq that does not exist; an odd number of
    /// positions claims the rows first (the publisher's path), an even number retires them unclaimed.
    fn retire(&mut self, store: &mut Store, positions: &[usize]) -> Result<(), TestCaseError> {
        let mut seqs: Vec<i64> = positions
            .iter()
            .filter(|_| !self.rows.is_empty())
            .map(|position| self.rows[position % self.rows.len()].seq)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let expected = seqs.len();
        if positions.len() % 2 == 1 {
            prop_assert_eq!(store.claim_exact(&seqs).unwrap().len(), expected);
        }
        seqs.push(self.last_seq + 1_000);
        prop_assert_eq!(store.retire(&seqs).unwrap(), expected);
        self.rows.retain(|row| !seqs.contains(&row.seq));
        self.retired.extend(seqs);
        Ok(())
    }

    /// The store holds exactly the model's rows and drop counts, under the same epoch.
    fn check(&self, store: &Store, epoch: &str) -> Result<(), TestCaseError> {
        prop_assert!(store.recovery().is_none());
        prop_assert_eq!(store.db_epoch(), epoch);
        prop_assert_eq!(store.last_seq().unwrap(), self.last_seq);
        let present: Vec<i64> = all_unacked(store).iter().map(|row| row.seq).collect();
        let expected: Vec<i64> = self.rows.iter().map(|row| row.seq).collect();
        prop_assert_eq!(&present, &expected);
        prop_assert!(present.iter().all(|seq| !self.retired.contains(seq)));
        let backlog = store.backlog().unwrap();
        let (rows, bytes): (i64, i64) = store
            .conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        prop_assert_eq!(backlog.rows, u64::try_from(rows).unwrap());
        prop_assert_eq!(backlog.bytes, u64::try_from(bytes).unwrap());
        prop_assert_eq!(backlog.rows, u64::try_from(self.rows.len()).unwrap());
        let counters = store.drops();
        for class in DropClass::ALL {
            prop_assert_eq!(
                counters.rows(class),
                self.dropped.rows(class),
                "{:?}",
                class
            );
        }
        Ok(())
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.db");
    let mut harness = Harness {
        store: Some(open_with_quota(&path, QUOTA)),
        dir,
        path,
        crashes: 0,
    };
    let epoch = harness.store().db_epoch().to_owned();
    let mut model = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Commit(drafts) => model.commit(harness.store(), step, &drafts)?,
            Op::Retire(positions) => model.retire(harness.store(), &positions)?,
            Op::Reopen => harness.reopen(),
            Op::Crash => harness.crash(),
        }
        model.check(harness.store(), &epoch)?;
    }
    prop_assert!(harness.store().integrity_check().unwrap().is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5709_e0b0),
        ..ProptestConfig::default()
    })]

    #[test]
    fn given_random_commits_retires_and_reopens_when_replayed_then_the_outbox_matches_the_model(
        ops in prop::collection::vec(op(), 20..70)
    ) {
        run(ops)?;
    }
}
