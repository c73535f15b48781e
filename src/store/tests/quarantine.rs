//! Quarantine release requests on a real database file: recorded on a second connection while the store has
//! the file open, read back as pending, marked released by the cycle that applies them, and refused twice.

use super::*;

fn delta(key: &str, kind: StepKind, amount: u64, t_to: Millis) -> DeltaRow {
    DeltaRow {
        key: key.to_owned(),
        kind,
        delta: amount,
        raw: 1_000 + amount,
        t_from: t_to - 10_000,
        t_to,
    }
}

/// A store holding one counted and one quarantined delta; returns it with their ids (counted, quarantined).
fn seeded(path: &Path) -> (Store, i64, i64) {
    let mut store = open(path);
    store
        .commit_cycle(&CycleWrite {
            deltas: vec![
                delta("press-01/produced", StepKind::Normal, 10, 20_000),
                delta("press-01/produced", StepKind::Rejected, 500, 30_000),
            ],
            now: 30_000,
            ..CycleWrite::default()
        })
        .expect("commit");
    let ids: Vec<i64> = store
        .deltas_after(0, 10)
        .expect("deltas")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    (store, ids[0], ids[1])
}

#[test]
fn given_a_quarantined_delta_when_released_beside_the_open_store_then_pending_until_a_cycle_marks_it(
) {
    let (_dir, path) = temp_db();
    let (mut store, counted, quarantined) = seeded(&path);

    // The review side lists only the quarantined delta.
    let listed = QuarantineDb::open(&path, false).unwrap().list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].id,
            listed[0].amount,
            listed[0].t_from,
            listed[0].t_to
        ),
        (quarantined, 500, 20_000, 30_000)
    );
    assert_eq!(listed[0].release, ReleaseStatus::Quarantined);

    // A release is recorded while the store has the file open.
    let mut review = QuarantineDb::open(&path, true).unwrap();
    let requested = review.request_release(quarantined, 40_000).unwrap();
    assert_eq!(
        requested.release,
        ReleaseStatus::Requested {
            requested_at: 40_000
        }
    );
    let pending = store.pending_releases().unwrap();
    assert_eq!(
        pending,
        vec![ReleaseRequest {
            delta_id: quarantined,
            key: "press-01/produced".into(),
            amount: 500,
            t_from: 20_000,
            t_to: 30_000,
            requested_at: 40_000,
        }]
    );

    // Twice is an error, and so are an unknown id and a counted step.
    assert!(matches!(
        review.request_release(quarantined, 41_000),
        Err(QuarantineError::AlreadyReleased { id, status: ReleaseStatus::Requested { .. } }) if id == quarantined
    ));
    assert!(matches!(
        review.request_release(9_999, 41_000),
        Err(QuarantineError::UnknownId { id: 9_999 })
    ));
    assert!(matches!(
        review.request_release(counted, 41_000),
        Err(QuarantineError::NotQuarantined { kind, .. }) if kind == StepKind::Normal
    ));

    // The cycle that applies it marks it released; it is no longer pending, and still cannot be released again.
    store
        .commit_cycle_releasing(
            &CycleWrite {
                now: 42_000,
                ..CycleWrite::default()
            },
            &[quarantined],
        )
        .unwrap();
    assert!(store.pending_releases().unwrap().is_empty());
    let listed = QuarantineDb::open(&path, false).unwrap().list().unwrap();
    assert_eq!(
        listed[0].release,
        ReleaseStatus::Released {
            requested_at: 40_000,
            released_at: 42_000
        }
    );
    let error = review.request_release(quarantined, 43_000).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("delta {quarantined} was already released: it cannot be released twice")
    );
}

#[test]
fn given_no_database_or_an_unmigrated_one_when_reviewed_then_a_clear_error() {
    let (dir, path) = temp_db();
    assert!(matches!(
        QuarantineDb::open(&path, false),
        Err(QuarantineError::NoDatabase { .. })
    ));
    let old = dir.path().join("old.db");
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.pragma_update(None, "user_version", 3).unwrap();
    drop(conn);
    assert!(matches!(
        QuarantineDb::open(&old, false),
        Err(QuarantineError::SchemaTooOld {
            found: 3,
            needed: 4,
            ..
        })
    ));
}

#[test]
fn given_the_agent_stopped_when_the_quarantine_is_listed_read_only_then_it_reads_the_closed_file() {
    let (_dir, path) = temp_db();
    let (store, _, quarantined) = seeded(&path);
    drop(store);
    let listed = QuarantineDb::open(&path, false).unwrap().list().unwrap();
    assert_eq!(
        listed.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![quarantined]
    );
    // A release recorded while the agent is stopped is pending at its next open.
    QuarantineDb::open(&path, true)
        .unwrap()
        .request_release(quarantined, 50_000)
        .unwrap();
    let store = open(&path);
    assert_eq!(store.pending_releases().unwrap().len(), 1);
}

#[test]
fn given_applied_and_pending_releases_when_the_audit_log_is_pruned_by_age_then_only_pending_ones_stay(
) {
    let (_dir, path) = temp_db();
    let (mut store, _, quarantined) = seeded(&path);
    store
        .commit_cycle(&CycleWrite {
            deltas: vec![delta("press-01/produced", StepKind::Rejected, 700, 35_000)],
            now: 35_000,
            ..CycleWrite::default()
        })
        .unwrap();
    let mut review = QuarantineDb::open(&path, true).unwrap();
    review.request_release(quarantined, 40_000).unwrap();
    let later = store.deltas_after(quarantined, 1).unwrap()[0].0;
    review.request_release(later, 40_000).unwrap();
    store
        .commit_cycle_releasing(
            &CycleWrite {
                now: 41_000,
                ..CycleWrite::default()
            },
            &[quarantined],
        )
        .unwrap();

    // Every delta is past the retention: the applied release goes, the pending one stays to be applied.
    store.prune_audit(1_000_000, u64::MAX, 100).unwrap();

    let pending = store.pending_releases().unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|r| (r.delta_id, r.amount))
            .collect::<Vec<_>>(),
        vec![(later, 700)]
    );
    assert!(review.list().unwrap().is_empty());
}
