//! rumqttc adapter: moves outbox rows from the store to the broker and retires a row ONLY after its PUBACK
//! (DESIGN §2 invariant 4, §8–9). It only reads the store and never blocks the collecting half (invariant 6);
//! every queue it owns is bounded (invariant 7). It does not build topics or payloads (`logic::payload` does).
//!
//! How it works:
//! - One `session` per connection: a FRESH `AsyncClient` + `EventLoop` with a clean session and the
//!   "offline" status as retained last will. rumqttc drops unacked publishes on reconnect, so the outbox is
//!   the only source of truth: after every CONNACK the session publishes "online" (retained), the latest live
//!   messages, then every unacked row in seq order, keeping at most `max_inflight` publishes outstanding.
//!   Rows sent but not acknowledged when a connection dies are simply sent again (at-least-once; every payload
//!   carries `msg_id`, `seq` and `db_epoch` so consumers de-duplicate).
//! - Any connection error drops client and event loop; [`run`] waits a capped, jittered exponential backoff
//!   (reset after a connection that lasted) and starts a new session.
//! - Shutdown: stop submitting, await outstanding PUBACKs up to `shutdown_grace`, publish "offline" retained
//!   (a clean DISCONNECT suppresses the will), send DISCONNECT, return `Ok`.
//!
//! Packet-id correlation (read from rumqttc 0.25.1 `eventloop.rs` / `state.rs`): `publish` does not return
//! the pkid, so `inflight` keeps a FIFO of submitted publishes and pops it on each
//! `Event::Outgoing(Outgoing::Publish(pkid))`. That is sound because those events come out in request order:
//! (1) requests travel one flume channel (FIFO) to the event loop; our session is its only sender and the
//! `pending` queue of a fresh event loop is empty (and a clean-session CONNACK clears it); (2) `select()`
//! takes ONE request per iteration and `MqttState::outgoing_publish` pushes `Outgoing::Publish(pkid)` onto the
//! `events` VecDeque at once, which `poll` drains front to back; (3) the only other producer of that event is
//! pkid-collision recovery in `handle_incoming_puback`: a collided publish yields `Outgoing::AwaitAck`
//! instead, the event loop stops reading requests while `collision` is set, and the held publish is emitted
//! (after the `Incoming::PubAck` that freed its pkid) before any later request; so order still holds and the
//! freed pkid is removed from our map before it is reused. The event loop runs in its own task feeding a
//! bounded channel, so `poll()` is never cancelled mid-write by our `select!`.

mod inflight;
mod pace;
mod session;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::store::StoreHandle;

pub use inflight::Desync;
use pace::Backoff;
use session::{SessionReport, Shared};

/// A connection that stayed up this long resets the reconnect backoff to its initial delay.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// Connection and delivery settings of the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    /// Broker host name or IP address.
    pub host: String,
    /// Broker TCP port.
    pub port: u16,
    /// MQTT client identifier; must be unique per gateway at the broker.
    pub client_id: String,
    /// MQTT keep-alive; zero disables it, otherwise at least one second (shorter values are raised to 1 s).
    pub keep_alive: Duration,
    /// Most publishes (rows, live and status) awaiting their PUBACK at once; at least 1.
    pub max_inflight: u16,
    /// Longest wait for TCP connect plus CONNACK.
    pub connect_timeout: Duration,
    /// Retained status topic; "offline" is also registered as the last will.
    pub status_topic: String,
    /// Payload published retained on `status_topic` after each CONNACK.
    pub online_payload: Vec<u8>,
    /// Payload of the last will and of the explicit status before a clean disconnect.
    pub offline_payload: Vec<u8>,
    /// Most outbox rows published per second (`[mqtt] drain_rate`); `None` means unlimited. Live data is
    /// not limited and always goes first.
    pub drain_rate: Option<u32>,
    /// On shutdown, how long to wait for outstanding PUBACKs (and the offline status) before disconnecting.
    pub shutdown_grace: Duration,
    /// First reconnect delay; it doubles per failed attempt.
    pub backoff_initial: Duration,
    /// Cap of the reconnect delay.
    pub backoff_max: Duration,
}

impl PublisherConfig {
    /// Settings with the given identity and the documented defaults: keep-alive 30 s, 256 in flight,
    /// connect timeout 10 s, no drain limit, 2 s shutdown grace, backoff 200 ms doubling to 30 s.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        client_id: impl Into<String>,
        status_topic: impl Into<String>,
        online_payload: Vec<u8>,
        offline_payload: Vec<u8>,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            client_id: client_id.into(),
            keep_alive: Duration::from_secs(30),
            max_inflight: 256,
            connect_timeout: Duration::from_secs(10),
            status_topic: status_topic.into(),
            online_payload,
            offline_payload,
            drain_rate: None,
            shutdown_grace: Duration::from_secs(2),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
        }
    }

    /// `host:port`, for logs and errors.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A live message: published QoS 1 and retained, latest value only, never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMessage {
    /// MQTT topic.
    pub topic: String,
    /// Serialized JSON payload.
    pub payload: Vec<u8>,
}

/// Counters the publisher updates as it works; read by health reporting and the demo view.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// True between a CONNACK and the end of that connection.
    pub connected: AtomicBool,
    /// Outbox-row publishes written to the network (re-sends after a reconnect count again).
    pub published: AtomicU64,
    /// Outbox rows retired after their PUBACK.
    pub acked: AtomicU64,
    /// Live messages written to the network.
    pub live_published: AtomicU64,
    /// Connections lost or connection attempts failed.
    pub reconnects: AtomicU64,
    /// Rows that can never be published (invalid topic or oversized); they stay in the outbox.
    pub unsendable: AtomicU64,
    /// The most recent connection error, with its cause chain.
    pub last_error: Mutex<Option<String>>,
}

/// A point-in-time copy of [`PublisherStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PublisherSnapshot {
    /// See [`PublisherStats::connected`].
    pub connected: bool,
    /// See [`PublisherStats::published`].
    pub published: u64,
    /// See [`PublisherStats::acked`].
    pub acked: u64,
    /// See [`PublisherStats::live_published`].
    pub live_published: u64,
    /// See [`PublisherStats::reconnects`].
    pub reconnects: u64,
    /// See [`PublisherStats::unsendable`].
    pub unsendable: u64,
    /// See [`PublisherStats::last_error`].
    pub last_error: Option<String>,
}

impl PublisherStats {
    /// Copies every counter (each read individually; they are independent figures).
    pub fn snapshot(&self) -> PublisherSnapshot {
        PublisherSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            live_published: self.live_published.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            unsendable: self.unsendable.load(Ordering::Relaxed),
            last_error: self.last_error(),
        }
    }

    /// The most recent connection error, if any.
    pub fn last_error(&self) -> Option<String> {
        match self.last_error.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_last_error(&self, error: String) {
        match self.last_error.lock() {
            Ok(mut guard) => *guard = Some(error),
            Err(poisoned) => *poisoned.into_inner() = Some(error),
        }
    }
}

/// Errors at the MQTT boundary. All but [`PublishError::Store`] end one connection and lead to a reconnect.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// TCP connect plus CONNACK took longer than `connect_timeout`.
    #[error("connecting to {address} timed out after {timeout:?}")]
    ConnectTimeout {
        /// Broker address.
        address: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// rumqttc reported a connection or protocol error.
    #[error("MQTT connection to {address} failed")]
    Connection {
        /// Broker address.
        address: String,
        /// rumqttc's error (boxed: it can hold a whole packet).
        #[source]
        source: Box<rumqttc::ConnectionError>,
    },
    /// The broker's first answer was not a CONNACK.
    #[error("expected CONNACK from {address}, got {event}")]
    NoConnAck {
        /// Broker address.
        address: String,
        /// What arrived instead.
        event: String,
    },
    /// Our packet-id bookkeeping disagrees with rumqttc; rebuilding the connection is the safe answer.
    #[error("publish bookkeeping out of step with rumqttc")]
    Desync(#[source] Desync),
    /// The event-loop task ended or stopped taking requests.
    #[error("the MQTT event loop stopped")]
    EventLoopGone,
    /// The outbox store failed; this ends the publisher (a broken store is not a network fault).
    #[error("outbox store failed")]
    Store(#[source] anyhow::Error),
}

/// Runs the publisher until `shutdown` is cancelled: connects, re-publishes the outbox, forwards new rows
/// (woken by `outbox_notify`; producers should call `notify_one` after each commit) and live messages, and
/// reconnects with backoff on any network fault. Returns `Err` only when the store fails.
pub async fn run(
    cfg: PublisherConfig,
    store: StoreHandle,
    outbox_notify: Arc<Notify>,
    mut live_rx: watch::Receiver<Vec<LiveMessage>>,
    stats: Arc<PublisherStats>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let address = cfg.address();
    let shared = Shared {
        cfg: &cfg,
        store: &store,
        stats: &stats,
        outbox_notify: &outbox_notify,
        shutdown: &shutdown,
    };
    let mut backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max);
    let mut live_open = true;
    let mut outage_logged = false;
    while !shutdown.is_cancelled() {
        let mut report = SessionReport::default();
        let result = session::run_once(&shared, &mut live_rx, &mut live_open, &mut report).await;
        stats.connected.store(false, Ordering::Relaxed);
        let error = match result {
            Ok(()) => break,
            Err(PublishError::Store(error)) => {
                return Err(error.context("publisher stopped: the outbox store failed"));
            }
            Err(error) => error,
        };
        let chain = error_chain(&error);
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        stats.set_last_error(chain.clone());
        // One warning per outage: the loss of a connection, or the first failed attempt; retries are debug.
        if let Some(connected_at) = report.connected_at {
            tracing::warn!(%address, error = %chain, "Broker connection lost; reconnecting.");
            if connected_at.elapsed() >= STABLE_CONNECTION {
                backoff.reset();
            }
            outage_logged = true;
        } else if !outage_logged {
            tracing::warn!(%address, error = %chain, "Cannot reach broker; retrying with backoff.");
            outage_logged = true;
        } else {
            tracing::debug!(%address, error = %chain, "Broker still unreachable.");
        }
        let delay = backoff.next_delay(rand::random::<f64>());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => break,
        }
    }
    tracing::info!(%address, "Publisher stopped.");
    Ok(())
}

/// `error: cause: cause` on one line, for logs and [`PublisherStats::last_error`].
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
