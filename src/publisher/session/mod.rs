//! One MQTT connection of the publisher, from CONNECT to its end: submission with a bounded number in flight
//! (live first, then fresh rows, then the paced backlog and due retries), PUBACK settlement, row retirement,
//! the watchdog, and the clean goodbye on shutdown.
//!
//! A session never survives its connection: on any error it returns and [`super::run`] builds a new one.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::inflight::{Inflight, Submitted};
use super::lanes::Lanes;
use super::link::{self, Link, LinkClient, LinkError, LinkEvent};
use super::oversize::{OversizeSuspects, SentRow};
use super::pace::DrainRate;
use super::protocol::ProtocolChoice;
use super::readback::ReadBack;
use super::refusal::{Refusals, Unsendable};
use super::retire::RetireQueue;
use super::store_fault::{Change, StoreCall, StoreFault};
use super::watchdog::Watchdog;
use super::{LiveMessage, PublishError, PublisherConfig, PublisherStats};
use crate::config::MqttProtocol;
use crate::store::{Store, StoreError, StoreHandle};

mod acks;
mod backlog;
mod retiring;
mod submit;

/// Events handled before pending PUBACKs are retired in one store transaction.
const EVENT_BATCH: usize = 256;
/// On shutdown, how long the offline status and then the DISCONNECT each get after the grace period.
const GOODBYE_WAIT: Duration = Duration::from_millis(500);

/// What every session of one publisher run shares.
pub(super) struct Shared<'a> {
    pub(super) cfg: &'a PublisherConfig,
    pub(super) store: &'a StoreHandle,
    pub(super) stats: &'a PublisherStats,
    pub(super) outbox_notify: &'a Notify,
    pub(super) shutdown: &'a CancellationToken,
}

/// Memory of one publisher run that outlives its connections (bounded; see `refusal`, `oversize` and
/// `store_fault`).
pub(super) struct RunState {
    pub(super) refusals: Refusals,
    pub(super) unsendable: Unsendable,
    pub(super) oversize: OversizeSuspects,
    pub(super) store: StoreFault,
}

/// What [`run_once`] tells its caller besides the result.
#[derive(Debug, Default)]
pub(super) struct SessionReport {
    /// When the CONNACK arrived; `None` if the connection never got that far.
    pub(super) connected_at: Option<Instant>,
    /// The largest row written to the network and not acknowledged when the connection ended.
    pub(super) largest_unacked: Option<SentRow>,
}

/// Connects once and serves the connection until shutdown (`Ok`) or a fault (`Err`).
pub(super) async fn run_once(
    shared: &Shared<'_>,
    state: &mut RunState,
    live_rx: &mut watch::Receiver<Vec<LiveMessage>>,
    live_open: &mut bool,
    choice: &mut ProtocolChoice,
    report: &mut SessionReport,
) -> Result<(), PublishError> {
    let protocol = choice.next();
    let Some(mut session) = Session::connect(shared, state, protocol).await? else {
        return Ok(());
    };
    report.connected_at = Some(Instant::now());
    shared.stats.connected.store(true, Ordering::Relaxed);
    super::on_protocol_accepted(choice, shared.stats, &shared.cfg.address());
    tracing::info!(
        address = %shared.cfg.address(),
        ?protocol,
        backlog_up_to_seq = session.boundary,
        max_packet_size = session.max_packet_size,
        "Connected to broker."
    );
    let mut result = session.serve(live_rx, live_open).await;
    if matches!(result, Err(PublishError::EventLoopGone)) {
        // The event loop ended before we read its error (a request found the channel closed first).
        // Events before the error still count (a PUBACK that arrived in time is no longer a suspect); the
        // rows they settle are retired on the next connection's PUBACK instead.
        while let Ok(event) = session.events_rx.try_recv() {
            match event {
                Ok(event) => {
                    let _ = session.on_event(event);
                }
                Err(source) => {
                    result = Err(PublishError::Connection {
                        address: shared.cfg.address(),
                        source: Box::new(source),
                    });
                    break;
                }
            }
        }
    }
    report.largest_unacked = session.largest_unacked();
    // Delivered rows are retired even when the connection ended; only a stopped store thread outranks the
    // session's own result.
    match session.finish_retiring().await {
        Err(PublishError::StoreGone(error)) => Err(PublishError::StoreGone(error)),
        _ => result,
    }
}

struct Session<'a, 'b> {
    shared: &'a Shared<'a>,
    state: &'b mut RunState,
    protocol: MqttProtocol,
    client: LinkClient,
    events_rx: mpsc::Receiver<Result<LinkEvent, LinkError>>,
    /// Aborting it drops the event loop and with it the TCP connection.
    _event_loop: AbortOnDropHandle<()>,
    max_inflight: usize,
    /// Outstanding publishes above which no backlog row is submitted (room is kept for fresh rows).
    backlog_window: usize,
    /// Largest PUBLISH we send: the configured limit or the broker's smaller one.
    max_packet_size: u64,
    boundary: i64,
    page_size: usize,
    inflight: Inflight,
    lanes: Lanes,
    /// Latest live messages not yet submitted; they go before rows.
    live: VecDeque<LiveMessage>,
    /// SHA-256 of the payload last submitted per live topic on this connection: an unchanged snapshot
    /// (e.g. the health message between two health ticks) is not sent again. A digest, not the payload:
    /// with hundreds of machines the copies would be one more set of every live message in memory.
    live_sent: std::collections::HashMap<String, [u8; 32]>,
    drain_rate: Option<DrainRate>,
    watchdog: Watchdog,
    /// Rows acknowledged (to delete) or known not to be on the broker (claims to release), waiting for the
    /// next retiring transaction.
    retire: RetireQueue,
    /// The retiring transaction running on the store thread, if any.
    retiring: Option<retiring::Retiring>,
    /// The backlog page being read ahead on the store thread, if any.
    backlog_read: Option<tokio::task::JoinHandle<backlog::ReadResult>>,
    status_acked: bool,
    disconnect_sent: bool,
    /// MQTT 3.1.1 only: rows wait for their read-back before they retire.
    read_back: Option<ReadBack>,
    /// SUBSCRIBEs (3.1.1 read-back) queued and not yet answered; they share the in-flight window.
    subscribes_pending: usize,
    /// Size and topic of each row handed to rumqttc and not yet acknowledged (at most `max_inflight`).
    sent_rows: std::collections::HashMap<i64, SentRow>,
}

/// Outstanding publishes above which no backlog row is submitted: the in-flight window less a sixteenth (at
/// least one) kept for fresh rows. Fresh rows go before backlog rows whenever a slot frees, so the reserve only
/// has to cover the rows of one burst until the next acknowledgements; a larger one caps the drain (the
/// backlog's throughput is its window over the round trip to the PUBACK).
fn backlog_window(max_inflight: usize) -> usize {
    (max_inflight - (max_inflight / 16).max(1)).max(1)
}

impl<'a, 'b> Session<'a, 'b> {
    /// Builds a fresh client and event loop, waits for the CONNACK and reads the backlog boundary; `None` if
    /// shutdown came first.
    async fn connect(
        shared: &'a Shared<'a>,
        state: &'b mut RunState,
        protocol: MqttProtocol,
    ) -> Result<Option<Session<'a, 'b>>, PublishError> {
        let cfg = shared.cfg;
        let address = cfg.address();
        let Link {
            client,
            mut events_rx,
            task,
        } = link::open(cfg, protocol, shared.stats).map_err(|source| {
            PublishError::CredentialFiles {
                address: address.clone(),
                source,
            }
        })?;
        let first = tokio::select! {
            () = shared.shutdown.cancelled() => return Ok(None),
            first = tokio::time::timeout(cfg.connect_timeout, events_rx.recv()) => first,
        };
        let broker_max = match first {
            Err(_elapsed) => {
                return Err(PublishError::ConnectTimeout {
                    address,
                    timeout: cfg.connect_timeout,
                })
            }
            Ok(None) => return Err(PublishError::EventLoopGone),
            Ok(Some(Err(source))) => {
                return Err(PublishError::Connection {
                    address,
                    source: Box::new(source),
                })
            }
            Ok(Some(Ok(LinkEvent::ConnAck { max_packet_size }))) => max_packet_size,
            Ok(Some(Ok(event))) => {
                return Err(PublishError::NoConnAck {
                    address,
                    event: format!("{event:?}"),
                })
            }
        };
        // Everything committed up to now is backlog for this connection; later commits are fresh.
        let boundary = shared
            .store
            .call(|store| store.last_seq())
            .await
            .map_err(PublishError::StoreGone)?;
        let Some(boundary) = note_store_result(
            &mut state.store,
            shared.stats,
            StoreCall::Boundary,
            boundary,
        ) else {
            return Err(PublishError::StoreUnavailable);
        };
        state.refusals.forget_pending();
        let max_inflight = usize::from(cfg.max_inflight.max(1));
        let page_size = max_inflight.clamp(16, 512);
        let now = std::time::Instant::now();
        Ok(Some(Session {
            shared,
            state,
            protocol,
            client,
            events_rx,
            _event_loop: task,
            max_inflight,
            backlog_window: backlog_window(max_inflight),
            max_packet_size: broker_max.map_or(cfg.max_packet_size, |broker| {
                cfg.max_packet_size.min(u64::from(broker))
            }),
            boundary,
            page_size,
            inflight: Inflight::default(),
            lanes: Lanes::new(boundary, page_size),
            live: VecDeque::new(),
            live_sent: std::collections::HashMap::new(),
            drain_rate: cfg
                .drain_rate
                .map(|per_second| DrainRate::new(per_second, now)),
            watchdog: Watchdog::new(
                link::effective_keep_alive(protocol, cfg.keep_alive),
                cfg.connect_timeout,
                now,
            ),
            retire: RetireQueue::default(),
            retiring: None,
            backlog_read: None,
            status_acked: false,
            disconnect_sent: false,
            read_back: (protocol == MqttProtocol::V4)
                .then(|| ReadBack::new(cfg.connect_timeout.max(link::MIN_ECHO_WAIT))),
            subscribes_pending: 0,
            sent_rows: std::collections::HashMap::new(),
        }))
    }

    /// Publishes "online", the latest live messages and the outbox lanes, then follows new rows and live
    /// updates until shutdown or a fault.
    async fn serve(
        &mut self,
        live_rx: &mut watch::Receiver<Vec<LiveMessage>>,
        live_open: &mut bool,
    ) -> Result<(), PublishError> {
        let cfg = self.shared.cfg;
        let online = cfg.online_payload.clone();
        self.submit(&cfg.status_topic, online, Submitted::Status)?;
        self.live = live_rx.borrow_and_update().iter().cloned().collect();
        loop {
            let wake_at = self.pump().await?;
            let watchdog_at = self.watchdog.deadline().map(Instant::from_std);
            tokio::select! {
                () = self.shared.shutdown.cancelled() => return self.close().await,
                event = self.events_rx.recv() => self.on_events(event).await?,
                () = self.shared.outbox_notify.notified() => self.lanes.notify_fresh(),
                changed = live_rx.changed(), if *live_open => match changed {
                    Ok(()) => self.live = live_rx.borrow_and_update().iter().cloned().collect(),
                    // The producer is gone (shutting down); keep delivering rows.
                    Err(_) => *live_open = false,
                },
                result = backlog::backlog_read(&mut self.backlog_read) => self.on_backlog_read(result)?,
                (acked, result) = retiring::retired(&mut self.retiring) => {
                    self.on_retired(acked, result)?;
                    self.retire_if_due();
                }
                () = sleep_until_or_forever(wake_at) => {}
                () = sleep_until_or_forever(watchdog_at) => self.check_watchdog()?,
            }
        }
    }

    /// The largest row written to the network whose PUBACK has not arrived.
    fn largest_unacked(&self) -> Option<SentRow> {
        self.inflight
            .rows_on_the_wire()
            .filter_map(|seq| self.sent_rows.get(&seq))
            .max_by_key(|row| (row.size, row.seq))
            .cloned()
    }

    /// Runs `call` on the store thread: `Some(value)` when it succeeded, `None` when the store refused it (noted
    /// in the run's [`StoreFault`], logged once per episode; the caller leaves its rows in the outbox). Only a
    /// store thread that has stopped is an error.
    pub(super) async fn store_call<R: Send + 'static>(
        &mut self,
        what: StoreCall,
        call: impl FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<Option<R>, PublishError> {
        let result = self
            .shared
            .store
            .call(call)
            .await
            .map_err(PublishError::StoreGone)?;
        Ok(note_store_result(
            &mut self.state.store,
            self.shared.stats,
            what,
            result,
        ))
    }

    /// Publishes and SUBSCRIBEs awaiting an answer: together they fill the in-flight window.
    pub(super) fn window_used(&self) -> usize {
        self.inflight.outstanding() + self.subscribes_pending
    }

    fn check_watchdog(&self) -> Result<(), PublishError> {
        match self.watchdog.check(std::time::Instant::now()) {
            None => Ok(()),
            Some(stall) => {
                self.shared
                    .stats
                    .watchdog_trips
                    .fetch_add(1, Ordering::Relaxed);
                Err(PublishError::Stalled {
                    address: self.shared.cfg.address(),
                    stall: stall.describe(),
                })
            }
        }
    }
}

/// Notes the outcome of a store call in `fault` and returns its value on success. The first failure of an
/// episode is a warning and the first success after it an info line; failures in between are debug only.
fn note_store_result<R>(
    fault: &mut StoreFault,
    stats: &PublisherStats,
    what: StoreCall,
    result: Result<R, StoreError>,
) -> Option<R> {
    let now = std::time::Instant::now();
    match result {
        Ok(value) => {
            if let Change::Ended { failures, lasted } = fault.succeeded(now) {
                tracing::info!(
                    failures,
                    lasted = ?lasted,
                    "The store answers the publisher again; delivery resumes."
                );
            }
            Some(value)
        }
        Err(error) => {
            stats.store_failures.fetch_add(1, Ordering::Relaxed);
            let chain = super::error_chain(&error);
            if fault.failed(now, rand::random::<f64>()) == Change::Started {
                tracing::warn!(
                    call = ?what,
                    error = %chain,
                    "The store refused a publisher call; rows stay in the outbox (delivered ones are sent again \
                     later) and no new row is sent until it answers; retrying with backoff."
                );
            } else {
                tracing::debug!(call = ?what, error = %chain, "The store still refuses the publisher.");
            }
            None
        }
    }
}

async fn sleep_until_or_forever(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
