//! The publisher over a store whose filesystem fills up (a 2 MiB tmpfs): the rows it delivers cannot be
//! retired, yet it keeps running (a failing store call must not end it, which would end the whole agent), keeps
//! the rows in the outbox, retries with backoff instead of spinning, and once space is freed every row arrives
//! and leaves the outbox. It runs on a current-thread runtime so that a thread-local tracing subscriber sees
//! every line the publisher logs.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use shopfloor_agent::store::{Store, StoreError, StoreOptions};

use super::{seqs_received, Captured, Harness, PATIENCE};
use crate::support::tmpfs::{fill, Tmpfs};
use crate::support::{self, FaultProxy, Mode, Recorder};

/// Padding of each row, so a few commits need more room than a full filesystem has.
const ROW_PADDING: usize = 600;

/// Commits `count` padded rows in one cycle; the store's error when it cannot.
async fn try_enqueue(harness: &Harness, count: usize) -> Result<Vec<i64>, StoreError> {
    let bodies = (0..count)
        .map(|n| json!({"n": n, "pad": "p".repeat(ROW_PADDING)}))
        .collect();
    harness
        .try_enqueue_bodies("pd/line-a/m1/rollup/1m", bodies)
        .await
}

#[tokio::test(flavor = "current_thread")]
async fn given_a_full_disk_when_delivered_rows_cannot_be_retired_then_the_publisher_keeps_running_and_every_row_arrives_once_space_is_freed(
) {
    let Some(tmpfs) = Tmpfs::mount("2m") else {
        return;
    };
    let log = Captured::default();
    let _guard = log.install();
    // Given a publisher (through a fault proxy) over a store on a 2 MiB filesystem, delivering rows.
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "pd/#").await;
    let proxy = FaultProxy::start(0, broker.port).await;
    let db = tmpfs.path().join("data").join("agent.db");
    let store = Store::open(&db, &StoreOptions::default()).expect("store opens");
    let harness = Harness::start_on(store, proxy.port, "pd", |_| {});
    support::wait_until(PATIENCE, "the publisher to connect", || harness.connected()).await;
    let mut committed: BTreeSet<i64> = BTreeSet::new();
    committed.extend(try_enqueue(&harness, 20).await.expect("commits"));
    harness.wait_for_empty_outbox().await;

    // When the broker is out of reach while rows pile up in the outbox and the filesystem fills up (a filler
    // file takes every free byte, topped up after each commit, until three commits in a row find no room),
    proxy.set_mode(Mode::Refuse);
    support::wait_until(PATIENCE, "the connection to drop", || !harness.connected()).await;
    committed.extend(try_enqueue(&harness, 10).await.expect("commits"));
    let filler = tmpfs.path().join("filler");
    let (mut commits, mut disk_full_in_a_row) = (0, 0);
    while disk_full_in_a_row < 3 {
        fill(&filler);
        commits += 1;
        assert!(commits < 1000, "the filesystem never filled up");
        match try_enqueue(&harness, 10).await {
            Ok(seqs) => {
                committed.extend(seqs);
                disk_full_in_a_row = 0;
            }
            Err(StoreError::DiskFull { .. }) => disk_full_in_a_row += 1,
            Err(other) => panic!("unexpected store error: {other:#}"),
        }
    }
    fill(&filler);
    let backlog = harness.backlog_rows().await;
    assert!(backlog > 0, "the outbox holds the rows of the outage");
    // and the broker is reachable again, so the backlog is delivered but cannot be retired,
    proxy.set_mode(Mode::Pass);
    support::wait_until(
        PATIENCE,
        "a failed retirement, or the publisher's end",
        || harness.stats.store_failures.load(Ordering::Relaxed) >= 1 || harness.task.is_finished(),
    )
    .await;

    // Then the publisher keeps running, the delivered rows stay in the outbox,
    assert!(
        !harness.task.is_finished(),
        "the publisher ended on a full disk: {:?}",
        harness.stats.snapshot()
    );
    let all: Vec<i64> = committed.iter().copied().collect();
    support::wait_until(PATIENCE, "every committed row at the subscriber", || {
        super::has_all(&recorder, &harness.db_epoch, &all)
    })
    .await;
    assert!(
        harness.backlog_rows().await > 0,
        "rows retired on a full disk"
    );
    // and it retries with backoff instead of spinning (a bound far above what backoff allows in 3 s).
    let failures_before = harness.stats.store_failures.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failures_while_full = harness.stats.store_failures.load(Ordering::Relaxed);
    assert!(
        failures_while_full - failures_before <= 30,
        "{} failed store calls in 3 s",
        failures_while_full - failures_before
    );
    assert!(!harness.task.is_finished());

    // When space is freed and more rows are committed,
    std::fs::remove_file(&filler).expect("filler removed");
    committed.extend(
        try_enqueue(&harness, 10)
            .await
            .expect("commits after the disk was freed"),
    );

    // Then every row arrives and leaves the outbox.
    let all: Vec<i64> = committed.iter().copied().collect();
    support::wait_until(PATIENCE, "every committed row at the subscriber", || {
        super::has_all(&recorder, &harness.db_epoch, &all)
    })
    .await;
    harness.wait_for_empty_outbox().await;
    let received = seqs_received(&recorder, &harness.db_epoch);
    let missing = all.iter().filter(|seq| !received.contains_key(seq)).count();
    let duplicates: usize = received.values().map(|count| count - 1).sum();
    let stats = harness.stats.snapshot();
    support::report(&format!(
        "full disk under the publisher: {} rows committed ({backlog} in the outbox when the disk was full), \
         {} received, {duplicates} duplicates, {missing} missing; {} failed store calls ({} during 3 s while \
         full); publisher still running; {stats:?}",
        all.len(),
        received.len(),
        failures_while_full,
        failures_while_full - failures_before,
    ));
    assert_eq!(missing, 0);
    // The failing store was announced once, not per retry.
    let lines = log.lines();
    let announced = lines
        .iter()
        .filter(|line| line.contains("The store refused a publisher call"))
        .count();
    assert_eq!(announced, 1, "{lines:#?}");
    harness.stop().await;
}
