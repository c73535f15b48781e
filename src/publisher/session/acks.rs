//! Acknowledgements and the end of one session: events from the link (PUBLISH sent, PUBACK accepted or
//! refused), accepted rows queued for their retirement (`retiring`), and the clean goodbye on shutdown.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Session, EVENT_BATCH, GOODBYE_WAIT};
use crate::publisher::inflight::{Settled, Submitted};
use crate::publisher::link::{AckOutcome, LinkError, LinkEvent};
use crate::publisher::PublishError;

impl Session<'_, '_> {
    /// Handles `first` and whatever else is already queued (up to a batch), then starts a retirement of the
    /// acked rows if one is due (see `retiring`).
    pub(super) async fn on_events(
        &mut self,
        first: Option<Result<LinkEvent, LinkError>>,
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
        self.update_in_flight();
        self.retire_if_due();
        result
    }

    pub(super) fn on_event(&mut self, event: LinkEvent) -> Result<(), PublishError> {
        let stats = self.shared.stats;
        let now = std::time::Instant::now();
        self.watchdog.on_activity(now);
        match event {
            LinkEvent::PublishSent(pkid) => {
                match self
                    .inflight
                    .on_outgoing_publish(pkid)
                    .map_err(PublishError::Desync)?
                {
                    Submitted::Row(_) => {
                        self.shared.cfg.metrics.published();
                        stats.published.fetch_add(1, Ordering::Relaxed)
                    }
                    Submitted::Live => stats.live_published.fetch_add(1, Ordering::Relaxed),
                    Submitted::Status => 0,
                };
            }
            LinkEvent::PubAck { pkid, outcome } => {
                match self.inflight.on_puback(pkid, outcome) {
                    Settled::Retire(seq) => {
                        if let Some(row) = self.sent_rows.remove(&seq) {
                            self.shared.cfg.metrics.puback(row.handed_over.elapsed());
                        }
                        let read_back = self.read_back.as_mut().is_none_or(|rb| rb.acked(seq, now));
                        if read_back {
                            self.retire.acked(seq, now);
                        }
                    }
                    Settled::Refused(seq, refusal) => {
                        self.sent_rows.remove(&seq);
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        self.retire.released(seq, now);
                        tracing::debug!(
                            seq,
                            code = ?refusal.code,
                            reason = refusal.reason,
                            "Row refused."
                        );
                        self.state
                            .refusals
                            .record(seq, refusal, now, rand::random::<f64>());
                    }
                    Settled::Transient(Submitted::Status, outcome) => {
                        if let AckOutcome::Refused(refusal) = outcome {
                            tracing::warn!(
                                code = ?refusal.code,
                                reason = refusal.reason,
                                "Status refused."
                            );
                        }
                        self.status_acked = true;
                    }
                    Settled::Transient(_, _) | Settled::Unknown => {}
                }
                self.watchdog.on_ack(now, self.inflight.outstanding() > 0);
            }
            LinkEvent::Echo { topic, digest } => {
                if let Some(seq) = self
                    .read_back
                    .as_mut()
                    .and_then(|rb| rb.read_back(topic, digest))
                {
                    self.retire.acked(seq, now);
                }
            }
            LinkEvent::SubAck { granted } => {
                self.subscribes_pending = self.subscribes_pending.saturating_sub(1);
                if !granted {
                    tracing::debug!("The broker refused a read-back subscription.");
                }
            }
            LinkEvent::DisconnectSent => self.disconnect_sent = true,
            LinkEvent::ConnAck { .. } | LinkEvent::Other => {}
        }
        Ok(())
    }

    /// Shutdown: submit nothing new, await outstanding PUBACKs up to the grace period, publish "offline"
    /// retained, DISCONNECT. If the connection fails meanwhile the broker publishes the will instead; rows
    /// still unacknowledged stay in the outbox for the next start.
    pub(super) async fn close(&mut self) -> Result<(), PublishError> {
        self.lanes.clear();
        self.live.clear();
        let deadline = Instant::now() + self.shared.cfg.shutdown_grace;
        let result = self.goodbye(deadline).await;
        let unacked = self.inflight.outstanding_rows();
        if unacked > 0 || self.lanes.backlog_pending() {
            tracing::info!(
                unacked,
                "Rows not yet acknowledged at shutdown stay in the outbox."
            );
        }
        match result {
            Err(PublishError::StoreGone(error)) => Err(PublishError::StoreGone(error)),
            Err(error) => {
                tracing::debug!(%error, "Connection ended during shutdown.");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    pub(super) async fn goodbye(&mut self, deadline: Instant) -> Result<(), PublishError> {
        self.wait_until(deadline, |session| {
            session.inflight.outstanding() == 0
                && session
                    .read_back
                    .as_ref()
                    .is_none_or(|rb| rb.waiting() == 0)
        })
        .await?;
        if self.inflight.outstanding() < self.max_inflight {
            let cfg = self.shared.cfg;
            self.status_acked = false;
            let offline = cfg.offline_payload.clone();
            self.submit(&cfg.status_topic, offline, Submitted::Status)?;
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
    pub(super) async fn wait_until(
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
