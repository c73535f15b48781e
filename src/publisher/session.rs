//! One MQTT connection of the publisher, from CONNECT to its end: submission with a bounded number in
//! flight, PUBACK correlation, row retirement, and the clean goodbye on shutdown.
//!
//! A session never survives its connection: on any error it returns and [`super::run`] builds a new one.

use std::collections::VecDeque;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, LastWill, MqttOptions,
    NetworkOptions, Outgoing, QoS,
};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::inflight::{Inflight, Submitted};
use super::pace::DrainRate;
use super::{LiveMessage, PublishError, PublisherConfig, PublisherStats};
use crate::store::{OutboxRow, StoreHandle};
use std::sync::atomic::Ordering;

/// Events buffered between the event-loop task and the session (bounded: the task waits when full).
const EVENT_QUEUE: usize = 256;
/// Events handled before pending PUBACKs are retired in one store transaction.
const EVENT_BATCH: usize = 256;
/// Largest MQTT packet we send or accept; larger rows are reported and left in the outbox.
const MAX_PACKET_BYTES: usize = 1024 * 1024;
/// Fixed header, topic length and packet id of a PUBLISH, rounded up.
const PUBLISH_OVERHEAD: usize = 16;
/// Request-channel slots beyond `max_inflight`: the offline status and DISCONNECT at shutdown.
const REQUEST_HEADROOM: usize = 4;
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

/// What [`run_once`] tells its caller besides the result.
#[derive(Debug, Default)]
pub(super) struct SessionReport {
    /// When the CONNACK arrived; `None` if the connection never got that far.
    pub(super) connected_at: Option<Instant>,
}

/// Connects once and serves the connection until shutdown (`Ok`) or a fault (`Err`).
pub(super) async fn run_once(
    shared: &Shared<'_>,
    live_rx: &mut watch::Receiver<Vec<LiveMessage>>,
    live_open: &mut bool,
    report: &mut SessionReport,
) -> Result<(), PublishError> {
    let Some(mut session) = Session::connect(shared).await? else {
        return Ok(());
    };
    report.connected_at = Some(Instant::now());
    shared.stats.connected.store(true, Ordering::Relaxed);
    tracing::info!(address = %shared.cfg.address(), "Connected to broker.");
    session.serve(live_rx, live_open).await
}

/// Drives rumqttc's event loop in its own task so our `select!` never cancels `poll()` mid-write, and
/// forwards every event; ends after the first error (we never let rumqttc reconnect by itself).
async fn drive(mut event_loop: EventLoop, events_tx: mpsc::Sender<Result<Event, ConnectionError>>) {
    loop {
        let event = event_loop.poll().await;
        let failed = event.is_err();
        if events_tx.send(event).await.is_err() || failed {
            return;
        }
    }
}

struct Session<'a> {
    shared: &'a Shared<'a>,
    client: AsyncClient,
    events_rx: mpsc::Receiver<Result<Event, ConnectionError>>,
    /// Aborting it drops the event loop and with it the TCP connection.
    _event_loop: AbortOnDropHandle<()>,
    max_inflight: usize,
    page_size: usize,
    inflight: Inflight,
    /// Highest seq fetched from the store during this session.
    cursor: i64,
    /// Fetched rows not yet submitted, in seq order (at most one page).
    rows: VecDeque<OutboxRow>,
    /// False once a page came back short; set again by `outbox_notify`.
    store_has_more: bool,
    /// Latest live messages not yet submitted; they go before rows.
    live: VecDeque<LiveMessage>,
    drain_rate: Option<DrainRate>,
    /// Seqs whose PUBACK arrived, retired in one store call per batch of events.
    acked_rows: Vec<i64>,
    status_acked: bool,
    disconnect_sent: bool,
}

impl<'a> Session<'a> {
    /// Builds a fresh client and event loop and waits for the CONNACK; `None` if shutdown came first.
    async fn connect(shared: &'a Shared<'a>) -> Result<Option<Session<'a>>, PublishError> {
        let cfg = shared.cfg;
        let address = cfg.address();
        let max_inflight = cfg.max_inflight.max(1);
        let mut options = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
        options
            .set_clean_session(true)
            .set_keep_alive(effective_keep_alive(cfg.keep_alive))
            .set_inflight(max_inflight)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
            .set_last_will(LastWill::new(
                &cfg.status_topic,
                cfg.offline_payload.clone(),
                QoS::AtLeastOnce,
                true,
            ));
        let (client, mut event_loop) =
            AsyncClient::new(options, usize::from(max_inflight) + REQUEST_HEADROOM);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        network.set_connection_timeout(cfg.connect_timeout.as_secs_f64().ceil().max(1.0) as u64);
        event_loop.set_network_options(network);

        let (events_tx, mut events_rx) = mpsc::channel(EVENT_QUEUE);
        let event_loop = AbortOnDropHandle::new(tokio::spawn(drive(event_loop, events_tx)));
        let first = tokio::select! {
            () = shared.shutdown.cancelled() => return Ok(None),
            first = tokio::time::timeout(cfg.connect_timeout, events_rx.recv()) => first,
        };
        match first {
            Err(_elapsed) => Err(PublishError::ConnectTimeout {
                address,
                timeout: cfg.connect_timeout,
            }),
            Ok(None) => Err(PublishError::EventLoopGone),
            Ok(Some(Err(source))) => Err(PublishError::Connection {
                address,
                source: Box::new(source),
            }),
            Ok(Some(Ok(Event::Incoming(Incoming::ConnAck(_))))) => Ok(Some(Session {
                shared,
                client,
                events_rx,
                _event_loop: event_loop,
                max_inflight: usize::from(max_inflight),
                page_size: usize::from(max_inflight).clamp(16, 512),
                inflight: Inflight::default(),
                cursor: 0,
                rows: VecDeque::new(),
                store_has_more: true,
                live: VecDeque::new(),
                drain_rate: cfg
                    .drain_rate
                    .map(|per_second| DrainRate::new(per_second, std::time::Instant::now())),
                acked_rows: Vec::new(),
                status_acked: false,
                disconnect_sent: false,
            })),
            Ok(Some(Ok(event))) => Err(PublishError::NoConnAck {
                address,
                event: format!("{event:?}"),
            }),
        }
    }

    /// Publishes "online", the latest live messages and the whole outbox, then follows new rows and live
    /// updates until shutdown or a fault.
    async fn serve(
        &mut self,
        live_rx: &mut watch::Receiver<Vec<LiveMessage>>,
        live_open: &mut bool,
    ) -> Result<(), PublishError> {
        let cfg = self.shared.cfg;
        self.submit(
            &cfg.status_topic,
            cfg.online_payload.clone(),
            Submitted::Status,
        )?;
        self.live = live_rx.borrow_and_update().iter().cloned().collect();
        loop {
            let rate_limited_until = self.pump().await?;
            tokio::select! {
                () = self.shared.shutdown.cancelled() => return self.close().await,
                event = self.events_rx.recv() => self.on_events(event).await?,
                () = self.shared.outbox_notify.notified() => self.store_has_more = true,
                changed = live_rx.changed(), if *live_open => match changed {
                    Ok(()) => self.live = live_rx.borrow_and_update().iter().cloned().collect(),
                    // The producer is gone (shutting down); keep delivering rows.
                    Err(_) => *live_open = false,
                },
                () = sleep_until_or_forever(rate_limited_until) => {}
            }
        }
    }

    /// Submits live messages, then rows, while fewer than `max_inflight` are outstanding, fetching pages from
    /// the store as needed. Returns when the drain rate allows the next row, if that is what stops it.
    async fn pump(&mut self) -> Result<Option<Instant>, PublishError> {
        loop {
            while self.inflight.outstanding() < self.max_inflight {
                if let Some(message) = self.live.pop_front() {
                    self.submit(&message.topic, message.payload, Submitted::Live)?;
                    continue;
                }
                if self.rows.is_empty() {
                    break;
                }
                if let Some(rate) = &mut self.drain_rate {
                    let now = std::time::Instant::now();
                    if !rate.try_take(now) {
                        return Ok(Some(Instant::from_std(rate.ready_at(now))));
                    }
                }
                if let Some(row) = self.rows.pop_front() {
                    self.submit(&row.topic, row.payload, Submitted::Row(row.seq))?;
                }
            }
            let room = self.inflight.outstanding() < self.max_inflight;
            if !room || !self.rows.is_empty() || !self.store_has_more {
                return Ok(None);
            }
            self.fetch_page().await?;
        }
    }

    async fn fetch_page(&mut self) -> Result<(), PublishError> {
        let (after_seq, limit) = (self.cursor, self.page_size);
        let rows = self
            .shared
            .store
            .call(move |store| store.unacked(after_seq, limit))
            .await
            .map_err(PublishError::Store)?
            .map_err(|error| PublishError::Store(error.into()))?;
        self.store_has_more = rows.len() >= limit;
        if let Some(last) = rows.last() {
            self.cursor = last.seq;
        }
        self.rows.extend(rows);
        Ok(())
    }

    /// Hands one QoS 1 publish to rumqttc (rows not retained; live and status retained). A message that can
    /// never be sent is logged and skipped; a row stays in the outbox.
    fn submit(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        what: Submitted,
    ) -> Result<(), PublishError> {
        let size = topic.len() + payload.len() + PUBLISH_OVERHEAD;
        if topic.is_empty() || !rumqttc::valid_topic(topic) || size > MAX_PACKET_BYTES {
            self.shared.stats.unsendable.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%topic, size, ?what, "Message can never be published (invalid topic or too large); skipped.");
            return Ok(());
        }
        let retain = !matches!(what, Submitted::Row(_));
        self.client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .map_err(|_| PublishError::EventLoopGone)?;
        self.inflight.submitted(what);
        Ok(())
    }

    /// Handles `first` and whatever else is already queued (up to a batch), then retires the acked rows in
    /// one store call, even when an event ended the connection.
    async fn on_events(
        &mut self,
        first: Option<Result<Event, ConnectionError>>,
    ) -> Result<(), PublishError> {
        let mut next = first;
        let mut handled = 0;
        let result = loop {
            let event = match next {
                None => break Err(PublishError::EventLoopGone),
                Some(Err(source)) => {
                    break Err(PublishError::Connection {
                        address: self.shared.cfg.address(),
                        source: Box::new(source),
                    })
                }
                Some(Ok(event)) => event,
            };
            if let Err(error) = self.on_event(event) {
                break Err(error);
            }
            handled += 1;
            if handled >= EVENT_BATCH {
                break Ok(());
            }
            next = match self.events_rx.try_recv() {
                Ok(event) => Some(event),
                Err(mpsc::error::TryRecvError::Empty) => break Ok(()),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
        };
        self.retire_acked().await?;
        result
    }

    fn on_event(&mut self, event: Event) -> Result<(), PublishError> {
        let stats = self.shared.stats;
        match event {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                match self
                    .inflight
                    .on_outgoing_publish(pkid)
                    .map_err(PublishError::Desync)?
                {
                    Submitted::Row(_) => stats.published.fetch_add(1, Ordering::Relaxed),
                    Submitted::Live => stats.live_published.fetch_add(1, Ordering::Relaxed),
                    Submitted::Status => 0,
                };
            }
            Event::Incoming(Incoming::PubAck(ack)) => match self.inflight.on_puback(ack.pkid) {
                Some(Submitted::Row(seq)) => self.acked_rows.push(seq),
                Some(Submitted::Status) => self.status_acked = true,
                Some(Submitted::Live) | None => {}
            },
            Event::Outgoing(Outgoing::Disconnect) => self.disconnect_sent = true,
            _ => {}
        }
        Ok(())
    }

    async fn retire_acked(&mut self) -> Result<(), PublishError> {
        if self.acked_rows.is_empty() {
            return Ok(());
        }
        let seqs = std::mem::take(&mut self.acked_rows);
        let count = seqs.len() as u64;
        self.shared
            .store
            .call(move |store| store.retire(&seqs))
            .await
            .map_err(PublishError::Store)?
            .map_err(|error| PublishError::Store(error.into()))?;
        self.shared.stats.acked.fetch_add(count, Ordering::Relaxed);
        Ok(())
    }

    /// Shutdown: submit nothing new, await outstanding PUBACKs up to the grace period, publish "offline"
    /// retained, DISCONNECT. If the connection fails meanwhile the broker publishes the will instead; rows
    /// still unacknowledged stay in the outbox for the next start.
    async fn close(&mut self) -> Result<(), PublishError> {
        self.rows.clear();
        self.live.clear();
        let deadline = Instant::now() + self.shared.cfg.shutdown_grace;
        let result = self.goodbye(deadline).await;
        let unacked = self.inflight.outstanding_rows();
        if unacked > 0 {
            tracing::info!(
                unacked,
                "Rows still awaiting PUBACK at shutdown stay in the outbox."
            );
        }
        match result {
            Err(PublishError::Store(error)) => Err(PublishError::Store(error)),
            Err(error) => {
                tracing::debug!(%error, "Connection ended during shutdown.");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    async fn goodbye(&mut self, deadline: Instant) -> Result<(), PublishError> {
        self.wait_until(deadline, |session| session.inflight.outstanding() == 0)
            .await?;
        if self.inflight.outstanding() < self.max_inflight {
            let cfg = self.shared.cfg;
            self.status_acked = false;
            self.submit(
                &cfg.status_topic,
                cfg.offline_payload.clone(),
                Submitted::Status,
            )?;
            self.wait_until(Instant::now() + GOODBYE_WAIT, |session| {
                session.status_acked
            })
            .await?;
        }
        self.client
            .try_disconnect()
            .map_err(|_| PublishError::EventLoopGone)?;
        self.wait_until(Instant::now() + GOODBYE_WAIT, |session| {
            session.disconnect_sent
        })
        .await?;
        Ok(())
    }

    /// Handles events until `done` holds or `deadline` passes.
    async fn wait_until(
        &mut self,
        deadline: Instant,
        done: impl Fn(&Self) -> bool,
    ) -> Result<(), PublishError> {
        while !done(self) {
            let event = tokio::select! {
                () = tokio::time::sleep_until(deadline) => return Ok(()),
                event = self.events_rx.recv() => event,
            };
            self.on_events(event).await?;
        }
        Ok(())
    }
}

/// rumqttc panics on a keep-alive between 0 and 1 s; zero disables it, anything shorter means 1 s.
fn effective_keep_alive(keep_alive: Duration) -> Duration {
    if keep_alive.is_zero() {
        Duration::ZERO
    } else {
        keep_alive.max(Duration::from_secs(1))
    }
}

async fn sleep_until_or_forever(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
