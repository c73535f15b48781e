//! Publisher against a real broker and a real SQLite file: outbox rows reach a subscriber and leave the
//! outbox only after their PUBACK; outages, lost acknowledgements, cut and half-open connections lose nothing;
//! status and live messages are retained; MQTT 5 refusals and oversized rows never cost a row or a reconnect
//! loop; after an outage live data goes first and the backlog drains paced and marked `replayed`.
//!
//! - `delivery`: the happy path, outages, lost PUBACKs, status and live retention.
//! - `faults`: the watchdog on a stalled link, oversized rows, live-first with a paced backlog.
//! - `v5`: MQTT 5 delivery and PUBACK failure reason codes (Mosquitto ACL).
//! - `acl`: a broker ACL that denies the agent's topics keeps every row with MQTT 3.1.1 and MQTT 5; the
//!   fallback to MQTT 3.1.1 when a broker refuses MQTT 5 at CONNECT.
//! - `limits`: packet limits below the rows: a short log, no reconnect loop with MQTT 3.1.1.
//! - `store_full`: the store's filesystem fills up while rows are delivered: the publisher keeps running and
//!   every row arrives once space is freed.

pub(crate) mod acl;
mod delivery;
mod faults;
mod limits;
mod store_full;
mod v5;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use shopfloor_agent::logic::payload::Identity;
use shopfloor_agent::publisher::{self, LiveMessage, PublisherConfig, PublisherStats};
use shopfloor_agent::store::{
    CycleWrite, OutboxDraft, Store, StoreError, StoreHandle, StoreOptions,
};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::{self, Recorder};

/// Overall safety net for every wait; generous because CI machines are slow, never a speed expectation.
const PATIENCE: Duration = Duration::from_secs(30);

/// One publisher task over its own store file, with the handles a supervisor would hold.
struct Harness {
    _dir: Option<tempfile::TempDir>,
    store: StoreHandle,
    db_epoch: String,
    notify: Arc<Notify>,
    live_tx: watch::Sender<Vec<LiveMessage>>,
    stats: Arc<PublisherStats>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    prefix: String,
}

impl Harness {
    async fn start(port: u16, prefix: &str, tune: impl FnOnce(&mut PublisherConfig)) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("agent.db"), &StoreOptions::default())
            .expect("store opens");
        let mut harness = Harness::start_on(store, port, prefix, tune);
        harness._dir = Some(dir);
        harness
    }

    /// Like [`Harness::start`], over a store the test opened where it chose.
    fn start_on(
        store: Store,
        port: u16,
        prefix: &str,
        tune: impl FnOnce(&mut PublisherConfig),
    ) -> Harness {
        let db_epoch = store.db_epoch().to_string();
        let store = StoreHandle::spawn(store);
        let mut cfg = PublisherConfig {
            keep_alive: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(500),
            event_identity: Some(identity(prefix)),
            ..PublisherConfig::new(
                "127.0.0.1",
                port,
                format!("publisher-{}", prefix.replace('/', "-")),
                status_topic(prefix),
                json!({"state": "online"}).to_string().into_bytes(),
                json!({"state": "offline"}).to_string().into_bytes(),
            )
        };
        tune(&mut cfg);
        let notify = Arc::new(Notify::new());
        let (live_tx, live_rx) = watch::channel(Vec::new());
        let stats = Arc::new(PublisherStats::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(publisher::run(
            cfg,
            store.clone(),
            notify.clone(),
            live_rx,
            stats.clone(),
            shutdown.clone(),
        ));
        Harness {
            _dir: None,
            store,
            db_epoch,
            notify,
            live_tx,
            stats,
            shutdown,
            task,
            prefix: prefix.to_string(),
        }
    }

    /// Commits `count` small rollup rows in one cycle, as the processor does, and wakes the publisher.
    async fn enqueue(&self, count: usize) -> Vec<i64> {
        let topic = format!("{}/line-a/m1/rollup/1m", self.prefix);
        let bodies = (0..count)
            .map(|n| json!({"schema": "test.rollup/1", "n": n}))
            .collect();
        self.enqueue_bodies(&topic, bodies).await
    }

    /// Commits one row per body on `topic` in one cycle and wakes the publisher; returns their seqs.
    async fn enqueue_bodies(&self, topic: &str, bodies: Vec<Value>) -> Vec<i64> {
        let count = bodies.len();
        let seqs = self
            .try_enqueue_bodies(topic, bodies)
            .await
            .expect("cycle commits");
        assert_eq!(seqs.len(), count, "every draft enqueued: {seqs:?}");
        seqs
    }

    /// Like [`Harness::enqueue_bodies`], returning the store's error when the cycle cannot commit.
    async fn try_enqueue_bodies(
        &self,
        topic: &str,
        bodies: Vec<Value>,
    ) -> Result<Vec<i64>, StoreError> {
        let outbox = bodies
            .into_iter()
            .map(|body| OutboxDraft::durable(topic.to_string(), body))
            .collect();
        let cycle = CycleWrite {
            outbox,
            now: 1_700_000_000_000,
            ..CycleWrite::default()
        };
        let outcome = self
            .store
            .call(move |store| store.commit_cycle(&cycle))
            .await
            .expect("store thread alive")?;
        self.notify.notify_one();
        Ok(outcome.seqs)
    }

    async fn backlog_rows(&self) -> u64 {
        self.store
            .call(|store| store.backlog())
            .await
            .expect("store thread alive")
            .expect("backlog query")
            .rows
    }

    async fn wait_for_empty_outbox(&self) {
        support::wait_until_async(PATIENCE, "the outbox to drain", || async {
            self.backlog_rows().await == 0
        })
        .await;
    }

    /// Waits for the outbox to drain, then checks that exactly `rows` retirements were counted. The counter
    /// is bumped after the store call returns, so it may trail the empty outbox by a moment.
    async fn wait_for_retired(&self, rows: u64) {
        self.wait_for_empty_outbox().await;
        support::wait_until(PATIENCE, "the acked counter to catch up", || {
            self.stats.acked.load(Ordering::Relaxed) >= rows
        })
        .await;
        assert_eq!(self.stats.acked.load(Ordering::Relaxed), rows);
    }

    fn connected(&self) -> bool {
        self.stats.connected.load(Ordering::Relaxed)
    }

    /// Cancels the publisher and waits for it to return `Ok`.
    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("publisher stops after cancellation")
            .expect("publisher task did not panic");
        result.expect("publisher returns Ok on shutdown");
    }
}

fn status_topic(prefix: &str) -> String {
    format!("{prefix}/_gateway/gw-test/status")
}

/// The identity alarms are built with: their topic is `{prefix}/s/_gateway/gw-test/event`.
fn identity(prefix: &str) -> Identity {
    Identity {
        prefix: prefix.to_string(),
        site: "s".into(),
        gateway: "gw-test".into(),
        agent_version: "0.0.0-test".into(),
        config_hash: "test".into(),
    }
}

/// seq -> how many times the subscriber received it, for rows of this test's store.
fn seqs_received(recorder: &Recorder, db_epoch: &str) -> BTreeMap<i64, usize> {
    let mut counts = BTreeMap::new();
    for (_, body) in recorder.messages_matching("/rollup/") {
        assert_eq!(
            body["db_epoch"], db_epoch,
            "every row carries its db_epoch: {body}"
        );
        let seq = body["seq"].as_i64().expect("every row carries its seq");
        *counts.entry(seq).or_insert(0) += 1;
    }
    counts
}

fn has_all(recorder: &Recorder, db_epoch: &str, seqs: &[i64]) -> bool {
    let received = seqs_received(recorder, db_epoch);
    seqs.iter().all(|seq| received.contains_key(seq))
}

/// Every log line (WARN and above) written while it is installed on this thread.
#[derive(Clone, Default)]
pub(super) struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub(super) fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub(super) fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("log buffer").clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }
}
