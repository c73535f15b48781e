//! rumqttc adapter: moves outbox rows from the store to the broker and retires a row ONLY once the broker is
//! known to have it (see ARCHITECTURE.md, "Delivery semantics"). It never blocks the collecting half; every
//! queue it owns is bounded.
//! It builds no topics or payloads itself (`logic::payload` does), and its only store write is the
//! `publish_failure` alarm row.
//!
//! Delivery guarantees this module upholds:
//! - **At least once.** A row leaves the outbox only when the PUBACK for the packet id that carried it arrives
//!   with a success code (MQTT 5: 0x00 or 0x10). A lost connection, a crash, a refused PUBACK or a shutdown
//!   before the PUBACK leaves the row in the outbox; it is sent again. Duplicates are possible (a PUBACK lost
//!   on the wire, a crash between PUBACK and the retire commit); every payload carries `msg_id`, `seq` and
//!   `db_epoch` so consumers de-duplicate and detect gaps.
//! - **Refusals are not deliveries.** An MQTT 5 PUBACK with a failure reason keeps the row; it is retried with
//!   capped, jittered backoff (never in a tight loop) and raises a `publish_failure` event on the gateway event
//!   topic (at most one per 10 s, summarising the refusals; a refused alarm raises no further alarm).
//! - **MQTT 5 first.** `protocol = "v5"` (the default) falls back to MQTT 3.1.1 (for an hour at a time) only
//!   when the broker refuses MQTT 5 at CONNECT (CONNACK 0x84, or the connection closed before any CONNACK) AND
//!   an immediate 3.1.1 attempt is accepted; said once in the log and in the stats (`protocol`, `fallback`).
//!   `protocol = "v4"` is 3.1.1 only.
//! - **3.1.1 rows retire only when read back** (`readback`). A 3.1.1 broker acknowledges a publish its ACL
//!   denies and drops it, so a PUBACK proves nothing. The publisher subscribes to exactly each topic it sends
//!   rows to (before the first row on it; the broker handles one client's packets in order) and retires a row
//!   when its PUBACK AND the same bytes delivered back on that subscription have arrived. A row acknowledged
//!   but not read back within max(connect timeout, 5 s) is treated like an MQTT 5 refusal (kept, retried with
//!   backoff, `publish_failure` with `reason: "not_read_back"`). This proves, per row, that the broker routed
//!   it on its own topic at that moment; it cannot tell "write denied" from "read denied" (an account that may
//!   write but not read its topics keeps every row and alarms: grant read, or use MQTT 5), and it doubles the
//!   traffic from the broker to the agent.
//! - **No reconnect loops from payloads.** A row whose PUBLISH would exceed the broker's maximum packet size
//!   (`max_packet_size`, or the smaller limit an MQTT 5 broker announces in its CONNACK) or whose topic is
//!   invalid is never sent: it is counted once in `unsendable` and left for the store's refusal policy. A
//!   limit the broker enforces silently (MQTT 3.1.1 cannot announce one) shows as the broker closing the
//!   connection: the log names the largest unacknowledged row (bytes, topic), and when the same row is the
//!   suspect of two closes in a row, that row is not sent again in this run (`oversize`; only that row, since
//!   some brokers also disconnect on an ACL denial). Lines about unsendable rows are summarised, at most one
//!   a minute.
//! - **Live first, then a paced backlog.** After each CONNACK: "online" status, the latest live messages, rows
//!   enqueued after the CONNACK, all at once; rows enqueued before it and not yet acknowledged (the backlog)
//!   drain oldest first at no more than `drain_rate` per second, carry `"replayed": true`, and leave a sixteenth of
//!   the in-flight window (at least one slot) to fresh rows, which take every slot that frees before backlog
//!   rows do. Order is by seq within each lane, not
//!   across lanes.
//! - **Dead links are detected.** Besides MQTT keep-alive, a watchdog rebuilds the connection when no packet
//!   moved, or publishes waited without any PUBACK, for longer than 2 × keep-alive + connect timeout (a
//!   half-open connection or a flush stuck on a full send buffer).
//! - **A failing store ends nothing.** When a store call fails (a full disk or quota, a busy or failing
//!   database), the rows stay in the outbox: acknowledged rows whose retirement failed are retired later, or
//!   sent again after a reconnect; no new row is read or sent until the store answers, live data keeps
//!   flowing, and the call is retried with capped, jittered backoff (`store_fault`). The first failure and the
//!   recovery are logged once each. Only a store thread that has stopped ends the publisher.
//! - **Bounded memory.** At most `max_inflight` publishes outstanding, one page of rows buffered per lane (two
//!   for the backlog, read ahead), and bounded retry/unsendable memory; a long outage grows the outbox on disk,
//!   not this task.
//!
//! How it works:
//! - One `session` per connection over a FRESH client and event loop (`link`: MQTT 3.1.1 or 5, chosen by
//!   `protocol`) with a clean
//!   session and "offline" as retained last will. rumqttc drops unacked publishes on reconnect, so the outbox
//!   is the only source of truth. Any connection error ends the session; [`run`] waits a jittered delay whose
//!   ceiling grows with how long the broker has been gone (a fortieth of it, from `backoff_initial` up to
//!   `reconnect_max`, reset after a connection that lasted; [`Backoff::with_outage`]) and starts a new one, so
//!   after an outage of a minute the link is back within 1.5 s of the broker's return.
//! - Acknowledged rows are retired by group commit (`retire`): one transaction deletes the rows acked since the
//!   previous one, started when 1024 are waiting, the oldest has waited 100 ms, or no publish awaits a PUBACK;
//!   it runs on the store thread while the session keeps publishing, at most one at a time. A crash in between
//!   republishes at most those rows.
//! - Shutdown: stop submitting, await outstanding PUBACKs up to `shutdown_grace`, publish "offline" retained
//!   (a clean DISCONNECT suppresses the will), send DISCONNECT, retire what was acknowledged, return `Ok`.
//!
//! Packet-id correlation (read from rumqttc 0.25.1 `eventloop.rs` / `state.rs`, same in `v5/`): `publish` does
//! not return the pkid, so `inflight` keeps a FIFO of submitted publishes and pops it on each
//! `Outgoing::Publish(pkid)` event. That is sound because those events come out in request order:
//! (1) requests travel one flume channel (FIFO) to the event loop; our session is its only sender and the
//! `pending` queue of a fresh event loop is empty (and a clean-session CONNACK clears it); (2) `select()`
//! takes ONE request per iteration and `MqttState::outgoing_publish` pushes `Outgoing::Publish(pkid)` onto the
//! `events` VecDeque at once, which `poll` drains front to back; (3) the only other producer of that event is
//! pkid-collision recovery in `handle_incoming_puback`: a collided publish yields `Outgoing::AwaitAck`
//! instead, the event loop stops reading requests while `collision` is set, and the held publish is emitted
//! (after the `Incoming::PubAck` that freed its pkid) before any later request; so order still holds and the
//! freed pkid is removed from our map before it is reused. (An MQTT 5 failure PUBACK frees the pkid without
//! releasing a collided publish; rumqttc then ends the connection with `CollisionTimeout` and the rows are
//! re-sent.) The event loop runs in its own task feeding a bounded channel, so `poll()` is never cancelled
//! mid-write by our `select!`.

mod alarm;
mod expiry;
mod inflight;
mod lanes;
mod link;
mod oversize;
mod pace;
mod protocol;
mod readback;
mod refusal;
mod retire;
mod session;
mod stats;
mod store_fault;
mod watchdog;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::clock::{SharedClock, SystemClock};
use crate::config::MqttProtocol;
use crate::logic::payload::Identity;
use crate::store::StoreHandle;

pub use inflight::{Desync, Inflight, Settled, Submitted};
pub use link::{
    classify_v5_puback, publish_packet_size, AckOutcome, LinkError, Refusal, NOT_READ_BACK,
};
use oversize::{OversizeSuspects, Verdict};
use protocol::{ProtocolChoice, ProtocolStep};
use refusal::{Refusals, Unsendable};
use session::{RunState, SessionReport, Shared};
pub use stats::{PublisherSnapshot, PublisherStats};
use store_fault::StoreFault;

/// A connection that stayed up this long resets the reconnect backoff to its initial delay.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);
/// At most one `publish_failure` alarm per this interval; refusals in between are summarised in the next one.
const ALARM_INTERVAL: Duration = Duration::from_secs(10);

/// Connection and delivery settings of the publisher.
#[derive(Debug, Clone)]
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
    /// Most backlog rows (enqueued before the current CONNACK) published per second (`[mqtt] drain_rate`);
    /// `None` means unlimited. Live data and rows enqueued since the CONNACK are not limited.
    pub drain_rate: Option<u32>,
    /// On shutdown, how long to wait for outstanding PUBACKs (and the offline status) before disconnecting.
    pub shutdown_grace: Duration,
    /// Ceiling of the first reconnect delay and of the first retry of a refused row.
    pub backoff_initial: Duration,
    /// Cap of the retry delay of refused rows (it doubles per refusal).
    pub backoff_max: Duration,
    /// Cap of the reconnect delay (`[mqtt] reconnect_max`); below it the ceiling is a fortieth of the outage.
    pub reconnect_max: Duration,
    /// MQTT protocol version (`[mqtt] protocol`). `V5`: PUBACK reason codes are honoured, and a broker that
    /// refuses MQTT 5 at CONNECT gets MQTT 3.1.1 instead. `V4`: 3.1.1 only; rows retire only once read back.
    pub protocol: MqttProtocol,
    /// Largest PUBLISH packet the broker accepts, in bytes (`[mqtt] max_packet_size`); larger rows are never
    /// sent. An MQTT 5 broker's smaller CONNACK limit wins.
    pub max_packet_size: u64,
    /// Identity for `publish_failure` events on the gateway event topic; `None` disables the events (refusals
    /// are still counted and logged).
    pub event_identity: Option<Identity>,
    /// The wall clock that stamps `publish_failure` events (the one the pollers use; injectable in tests).
    pub clock: SharedClock,
    /// TLS settings; `None` for plain TCP. The files are read again at every connection attempt.
    pub tls: Option<crate::tls::TlsSettings>,
    /// Username and password file; `None` for no login. The password is read again at every attempt.
    pub credentials: Option<crate::tls::Credentials>,
    /// The process's metrics (publishes, PUBACK latency, reconnects); a registry of its own by default.
    pub metrics: crate::metrics::SharedMetrics,
}

impl PublisherConfig {
    /// Settings with the given identity and the documented defaults: keep-alive 30 s, 256 in flight,
    /// connect timeout 10 s, no drain limit, 2 s shutdown grace, reconnect delays from 200 ms growing with the
    /// outage up to 10 s, refused rows retried from 200 ms doubling to 30 s, MQTT 5,
    /// 256 KiB maximum packet, no alarm events, the system clock.
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
            reconnect_max: crate::config::DEFAULT_RECONNECT_MAX,
            protocol: MqttProtocol::V5,
            max_packet_size: 256 * 1024,
            event_identity: None,
            clock: Arc::new(SystemClock),
            tls: None,
            credentials: None,
            metrics: crate::metrics::SharedMetrics::default(),
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
    /// Serialized JSON payload; shared, because the latest set of live messages is handed from the processor
    /// to the publisher whole at every live tick.
    pub payload: std::sync::Arc<[u8]>,
}

/// Errors at the MQTT boundary. All but [`PublishError::StoreGone`] end one connection and lead to a reconnect.
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
        source: Box<LinkError>,
    },
    /// The application watchdog saw no progress for longer than 2 × keep-alive + connect timeout.
    #[error("connection to {address} stalled: {stall}")]
    Stalled {
        /// Broker address.
        address: String,
        /// What did not progress, and for how long.
        stall: String,
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
    /// The store refused the read of the backlog boundary after CONNACK (already logged, once per episode);
    /// the connection is given up and made again once the store's retry is due.
    #[error("the outbox store is failing")]
    StoreUnavailable,
    /// A TLS or login file could not be read or used for this attempt (it is read again at the next one).
    #[error("cannot prepare the secure connection to {address}")]
    CredentialFiles {
        /// Broker address.
        address: String,
        /// Which file, and why (never its contents).
        #[source]
        source: crate::tls::TlsError,
    },
    /// The store thread has stopped; this ends the publisher, since no row can be read or retired any more.
    #[error("the outbox store thread has stopped")]
    StoreGone(#[source] anyhow::Error),
}

/// What the publisher has said about the broker link in the current outage, so it is said once.
#[derive(Default)]
struct LinkLog {
    /// True once the outage was logged at warning level.
    outage_logged: bool,
    /// The cause of the latest failed secure attempt: a new cause is a mode change and logged once.
    last_uplink_failure: Option<crate::tls::UplinkFailure>,
    /// The broker's current outage: a summary every ten minutes while it stays unreachable.
    outage: crate::outage::OutageLog,
}

impl LinkLog {
    /// An established connection was lost (logged by the caller with its cause).
    fn connection_lost(&mut self) {
        self.outage_logged = true;
        self.last_uplink_failure = None;
    }

    /// A connection attempt failed: a warning for the first one of an outage and for each new TLS cause,
    /// debug for the retries.
    fn attempt_failed(
        &mut self,
        address: &str,
        chain: &str,
        uplink_failure: Option<crate::tls::UplinkFailure>,
    ) {
        if let Some(cause) = uplink_failure {
            if self.last_uplink_failure != Some(cause) {
                tracing::warn!(
                    %address,
                    cause = cause.as_str(),
                    error = %chain,
                    "Secure connection to the broker refused; retrying with backoff."
                );
                self.last_uplink_failure = Some(cause);
                self.outage_logged = true;
            } else {
                tracing::debug!(%address, cause = cause.as_str(), "Secure connection still refused.");
            }
        } else if !self.outage_logged {
            tracing::warn!(%address, error = %chain, "Cannot reach broker; retrying with backoff.");
            self.outage_logged = true;
        } else {
            tracing::debug!(%address, error = %chain, "Broker still unreachable.");
        }
    }
}

/// Runs the publisher until `shutdown` is cancelled: connects, re-publishes the outbox, forwards new rows
/// (woken by `outbox_notify`; producers should call `notify_one` after each commit) and live messages, and
/// reconnects with backoff on any network fault. A failing store call (full disk, busy, I/O) never ends it: the
/// rows stay in the outbox and the call is retried with backoff (see `store_fault`). Returns `Err` only when the
/// store thread has stopped.
pub async fn run(
    cfg: PublisherConfig,
    store: StoreHandle,
    outbox_notify: Arc<Notify>,
    mut live_rx: watch::Receiver<Vec<LiveMessage>>,
    stats: Arc<PublisherStats>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let address = cfg.address();
    let _expiry_task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(expiry::run(
        cfg.clone(),
        store.clone(),
        stats.clone(),
        outbox_notify.clone(),
        shutdown.clone(),
    )));
    let shared = Shared {
        cfg: &cfg,
        store: &store,
        stats: &stats,
        outbox_notify: &outbox_notify,
        shutdown: &shutdown,
    };
    let mut backoff = Backoff::with_outage(cfg.backoff_initial, cfg.reconnect_max);
    let mut state = RunState {
        refusals: Refusals::new(cfg.backoff_initial, cfg.backoff_max, ALARM_INTERVAL),
        unsendable: Unsendable::default(),
        oversize: OversizeSuspects::default(),
        store: StoreFault::default(),
    };
    let mut protocol = ProtocolChoice::new(cfg.protocol);
    let mut live_open = true;
    let mut link_log = LinkLog::default();
    let has_client_cert = cfg.tls.as_ref().is_some_and(|tls| tls.client.is_some());
    while !shutdown.is_cancelled() {
        protocol.before_attempt(std::time::Instant::now());
        let mut report = SessionReport::default();
        let result = session::run_once(
            &shared,
            &mut state,
            &mut live_rx,
            &mut live_open,
            &mut protocol,
            &mut report,
        )
        .await;
        stats.connected.store(false, Ordering::Relaxed);
        stats.in_flight.store(0, Ordering::Relaxed);
        let error = match result {
            Ok(()) => break,
            Err(PublishError::StoreGone(error)) => {
                return Err(error.context("publisher stopped: the outbox store thread has stopped"));
            }
            Err(PublishError::StoreUnavailable) => {
                // Logged once per episode where the call failed; the connection waits for the store's retry.
                let now = std::time::Instant::now();
                let delay = state
                    .store
                    .wake_at(now)
                    .map_or(Duration::ZERO, |at| at - now);
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
            Err(error) => error,
        };
        let chain = error_chain(&error);
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        cfg.metrics.mqtt_reconnect();
        stats.set_last_error(chain.clone());
        let uplink_failure = error.uplink_failure(has_client_cert);
        if let Some(cause) = uplink_failure {
            stats.count_uplink_failure(cause);
        }
        if report.connected_at.is_none() && uplink_failure.is_none() {
            let v5_refused =
                matches!(&error, PublishError::Connection { source, .. } if source.is_v5_refusal());
            if protocol.on_connect_failed(v5_refused) == ProtocolStep::ProbeV4 {
                tracing::debug!(%address, error = %chain, "MQTT 5 CONNECT refused; trying MQTT 3.1.1.");
                continue;
            }
        }
        note_broker_outage(
            &mut link_log.outage,
            report.connected_at.is_some(),
            &address,
            &chain,
        );
        // One warning per outage: the loss of a connection, or the first failed attempt; retries are debug.
        if let Some(connected_at) = report.connected_at {
            let cause = oversize_cause(&mut state.oversize, &error, report.largest_unacked);
            tracing::warn!(%address, error = %chain, cause, "Broker connection lost; reconnecting.");
            if connected_at.elapsed() >= STABLE_CONNECTION {
                backoff.reset();
            }
            link_log.connection_lost();
        } else {
            link_log.attempt_failed(&address, &chain, uplink_failure);
        }
        let delay = backoff.next_delay(std::time::Instant::now(), rand::random::<f64>());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => break,
        }
    }
    tracing::info!(%address, "Publisher stopped.");
    Ok(())
}

/// Counts a failed connection attempt into the broker's outage (a connection that reached CONNACK ended the
/// previous one first), and logs the summary when one is due.
fn note_broker_outage(
    outage: &mut crate::outage::OutageLog,
    had_connected: bool,
    address: &str,
    error: &str,
) {
    let now = std::time::Instant::now();
    if had_connected {
        outage.recovered(now);
    }
    if let Some(summary) = outage.failed(now, error) {
        tracing::warn!(
            %address,
            down_for = %crate::outage::Clock(summary.down_for),
            attempts = summary.attempts,
            last_error = %summary.last_error,
            "Broker still unreachable."
        );
    }
}

impl PublishError {
    /// The named cause when this attempt failed in TLS, at the login, or on a TLS or password file.
    fn uplink_failure(&self, has_client_cert: bool) -> Option<crate::tls::UplinkFailure> {
        match self {
            PublishError::CredentialFiles { .. } => {
                Some(crate::tls::UplinkFailure::CredentialFiles)
            }
            PublishError::Connection { source, .. } => source.uplink_failure(has_client_cert),
            _ => None,
        }
    }
}

/// Logs, once at start, the certificates the uplink will present and trust (subject, expiry), and warns about
/// each secrets file (client key, password) that its group or others can read.
pub fn announce_uplink(mqtt: &crate::config::MqttConfig) {
    if let Some(settings) = &mqtt.tls {
        match crate::tls::certificate_report(settings) {
            Ok(lines) => {
                for line in lines {
                    tracing::info!(
                        role = line.role,
                        file = %line.file.display(),
                        subject = %line.facts.subject,
                        serial = %line.facts.serial,
                        not_after = %line.facts.not_after,
                        "TLS certificate."
                    );
                }
            }
            Err(error) => {
                tracing::warn!(%error, "Cannot read the TLS certificates; retried at each connection.")
            }
        }
    }
    for file in mqtt.secret_files() {
        if crate::tls::readable_by_others(file) == Some(true) {
            tracing::warn!(
                file = %file.display(),
                "A secrets file is readable by group or others; chmod 600 it (or use LoadCredential=)."
            );
        }
    }
}

/// A connection got its CONNACK: when that was the MQTT 3.1.1 attempt after MQTT 5 was refused, the run stays
/// on 3.1.1; said once in the log and kept in the stats for the health topic.
pub(in crate::publisher) fn on_protocol_accepted(
    protocol: &mut ProtocolChoice,
    stats: &PublisherStats,
    address: &str,
) {
    stats.set_protocol(protocol.next());
    let step = protocol.on_connected(std::time::Instant::now());
    stats
        .fallback
        .store(protocol.fell_back(), Ordering::Relaxed);
    match step {
        ProtocolStep::FellBack => tracing::warn!(
            %address,
            "The broker refused MQTT 5 at CONNECT; speaking MQTT 3.1.1 (MQTT 5 is tried again after an hour). \
             MQTT 3.1.1 cannot report a refused publish: rows are retired only once the broker delivers them \
             back to the agent's own subscription on their topic."
        ),
        ProtocolStep::BackToV5 => {
            tracing::info!(%address, "The broker accepts MQTT 5 again; the fallback to MQTT 3.1.1 is over.");
        }
        ProtocolStep::Same | ProtocolStep::ProbeV4 => {}
    }
}

/// What a lost connection says about the rows in flight (see `oversize`): `None` when nothing, else the cause
/// as words for the log. A row suspected twice in a row becomes unsendable for the rest of the run.
fn oversize_cause(
    suspects: &mut OversizeSuspects,
    error: &PublishError,
    largest_unacked: Option<oversize::SentRow>,
) -> Option<String> {
    let closed =
        matches!(error, PublishError::Connection { source, .. } if source.is_closed_by_broker());
    if !closed {
        suspects.on_other_end();
        return None;
    }
    match suspects.on_closed_by_broker(largest_unacked) {
        Verdict::NoSuspect => None,
        Verdict::Suspected(row) => Some(format!(
            "the broker closed the connection after a publish of {} bytes on topic {} (seq {}); if it \
             happens again with the same row, that row is no longer sent in this run",
            row.size, row.topic, row.seq
        )),
        Verdict::GivenUp(row) => Some(format!(
            "the broker closed the connection twice after a publish of {} bytes on topic {} (seq {}), likely \
             over its packet limit (or an ACL that disconnects); that row is no longer sent in this run and \
             stays in the outbox for the store's refusal policy",
            row.size, row.topic, row.seq
        )),
    }
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
