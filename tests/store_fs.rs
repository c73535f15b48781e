//! The store against its filesystem: a 2 MiB tmpfs that fills up (a full disk told apart from a full quota,
//! and commits resuming without losing counts once there is room again).

use std::path::PathBuf;

use serde_json::json;
use shopfloor_agent::store::{CycleWrite, OutboxDraft, Store, StoreError, StoreOptions};

use crate::support::tmpfs::{fill, Tmpfs};

/// Units every simulated cycle produces.
const UNITS_PER_CYCLE: u64 = 7;
/// Padding of each rollup row, so the WAL outgrows the filesystem within a few hundred cycles.
const ROW_PADDING: usize = 1500;

/// Production seen by the simulated processor, what it committed and what the simulated publisher retired.
#[derive(Default)]
struct Ledger {
    cycle: u64,
    produced: u64,
    /// Produced but not yet committed (a failed commit keeps its work pending, as the processor does).
    pending: u64,
    committed: u64,
    retired: u64,
}

impl Ledger {
    /// One poll cycle: production, then a commit of everything pending.
    fn cycle(&mut self, store: &mut Store) -> Result<(), StoreError> {
        self.cycle += 1;
        self.produced += UNITS_PER_CYCLE;
        self.pending += UNITS_PER_CYCLE;
        let write = CycleWrite {
            counters: vec![(
                "m1/produced".into(),
                json!({ "total": self.produced }).to_string(),
            )],
            windows: vec![(
                format!("m1/1m/{}", self.cycle % 30),
                json!({ "cycle": self.cycle }).to_string(),
            )],
            outbox: vec![OutboxDraft::rollup(
                "p/s/line/m1/rollup/1m".into(),
                json!({ "counts": { "produced": self.pending }, "pad": "x".repeat(ROW_PADDING) }),
                &shopfloor_agent::logic::window::Period::parse("1m").unwrap(),
            )],
            now: i64::try_from(self.cycle).unwrap(),
            ..CycleWrite::default()
        };
        store.commit_cycle(&write)?;
        self.committed += self.pending;
        self.pending = 0;
        Ok(())
    }

    /// The publisher's part: every unsent row is acknowledged and retired (kept when the retire fails).
    fn retire_all(&mut self, store: &mut Store) {
        let rows = store.unacked(0, 1000).expect("read the outbox");
        let seqs: Vec<i64> = rows.iter().map(|row| row.seq).collect();
        if store.retire(&seqs).is_ok() {
            self.retired += rows.iter().map(produced_of).sum::<u64>();
        }
    }
}

fn produced_of(row: &shopfloor_agent::store::OutboxRow) -> u64 {
    let body: serde_json::Value = serde_json::from_slice(&row.payload).expect("JSON payload");
    body["counts"]["produced"].as_u64().expect("produced count")
}

/// Runs `cycles` cycles of commit + retire; returns the failures as (cycle, error).
fn churn(ledger: &mut Ledger, store: &mut Store, cycles: usize) -> Vec<(u64, String)> {
    let mut failures = Vec::new();
    for _ in 0..cycles {
        if let Err(error) = ledger.cycle(store) {
            failures.push((ledger.cycle, format!("{error}")));
        }
        ledger.retire_all(store);
    }
    failures
}

#[test]
fn a_full_disk_is_told_from_the_quota_and_commits_resume_without_losing_counts() {
    let Some(tmpfs) = Tmpfs::mount("2m") else {
        return;
    };
    let db: PathBuf = tmpfs.path().join("data").join("shopfloor-agent.db");
    let filler = tmpfs.path().join("filler");
    let mut store = Store::open(&db, &StoreOptions::default()).expect("store opens");
    let mut ledger = Ledger::default();

    // Given a store with a 1 GiB quota on a 2 MiB filesystem, written and drained for a while: several times
    // more WAL traffic than the filesystem holds, and never enough for SQLite's automatic checkpoint.
    let failures = churn(&mut ledger, &mut store, 400);
    crate::support::report(&format!(
        "disk full: {} of 400 commits failed on a 2 MiB filesystem before any filler (first: {:?})",
        failures.len(),
        failures.first()
    ));
    assert!(failures.is_empty(), "commits failed: {failures:?}");

    // When a filler file takes every free byte (topped up whenever a commit found room).
    fill(&filler);
    let (mut disk_full, mut quota_full, mut in_a_row) = (0, 0, 0);
    while in_a_row < 3 && ledger.cycle < 460 {
        match ledger.cycle(&mut store) {
            Err(StoreError::DiskFull { .. }) => {
                disk_full += 1;
                in_a_row += 1;
            }
            Err(StoreError::Full(_)) => {
                quota_full += 1;
                in_a_row = 0;
            }
            Err(other) => panic!("unexpected store error: {other:#}"),
            Ok(()) => {
                in_a_row = 0;
                fill(&filler);
            }
        }
    }
    crate::support::report(&format!(
        "disk full: with the filler, {disk_full} commits failed as disk full, {quota_full} as quota full; \
         {} units pending",
        ledger.pending
    ));

    // Then the failures say the disk is full, not the quota.
    assert_eq!(quota_full, 0, "a full disk was reported as a full quota");
    assert!(in_a_row >= 3, "commits kept succeeding on a full disk");
    assert!(ledger.pending > 0);

    // When the filler is deleted, commits resume (the pending work merged into the next one) and carry on.
    std::fs::remove_file(&filler).expect("filler removed");
    let failures = churn(&mut ledger, &mut store, 200);
    crate::support::report(&format!(
        "disk full: after the filler was deleted, {} of 200 commits failed",
        failures.len()
    ));
    assert!(
        failures.is_empty(),
        "commits failed after the disk was freed: {failures:?}"
    );

    // Then nothing was lost: what was committed is what was produced, every committed unit was retired or is
    // still in the outbox, and the persisted baseline is the last total.
    assert_eq!(ledger.pending, 0);
    assert_eq!(ledger.committed, ledger.produced);
    let unsent: u64 = store
        .unacked(0, 1000)
        .expect("outbox")
        .iter()
        .map(produced_of)
        .sum();
    assert_eq!(ledger.retired + unsent, ledger.committed);
    let counters = store.load_counters().expect("counters");
    assert_eq!(
        counters,
        vec![(
            "m1/produced".to_owned(),
            json!({ "total": ledger.produced }).to_string()
        )]
    );
    drop(store);
    let store = Store::open(&db, &StoreOptions::default()).expect("store reopens");
    assert!(store.integrity_check().expect("integrity_check").is_empty());
    crate::support::report(&format!(
        "disk full: produced {} = committed {} = retired {} + unsent {unsent}",
        ledger.produced, ledger.committed, ledger.retired
    ));
}
