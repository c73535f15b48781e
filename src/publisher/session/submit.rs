//! Submission for one session: what goes out next (live, fresh rows, a due alarm, then due retries and the
//! paced backlog within its window), the unsendable check, and the store reads that feed the lanes.

use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};

use tokio::time::Instant;

use super::Session;
use crate::publisher::inflight::Submitted;
use crate::publisher::lanes::mark_replayed;
use crate::publisher::link;
use crate::publisher::oversize::SentRow;
use crate::publisher::store_fault::StoreCall;
use crate::publisher::{LiveMessage, PublishError};
use crate::store::OutboxRow;

impl Session<'_, '_> {
    /// Submits while the window has room: live messages, fresh rows, a due alarm, then (within the backlog
    /// window and the drain rate) due retries and backlog rows, reading pages from the store as needed.
    /// Returns when something paced becomes due, if that is what stops it.
    pub(super) async fn pump(&mut self) -> Result<Option<Instant>, PublishError> {
        self.settle_overdue_read_backs(std::time::Instant::now());
        // Acked rows left over from a failed retirement are retried once the store's retry is due.
        self.retire_if_due();
        loop {
            while self.window_used() < self.max_inflight {
                let Some(message) = self.live.pop_front() else {
                    break;
                };
                self.submit_live(message)?;
            }
            if self.window_used() >= self.max_inflight
                || self.state.store.holding(std::time::Instant::now())
            {
                return Ok(self.next_timer(None));
            }
            if let Some(row) = self.lanes.pop_fresh() {
                self.submit_row(row)?;
                continue;
            }
            if let Some((after_seq, limit)) = self.lanes.fresh_query() {
                let Some(rows) = self.fetch(after_seq, limit).await? else {
                    return Ok(self.next_timer(None));
                };
                self.lanes.accept_fresh(rows);
                continue;
            }
            let now = std::time::Instant::now();
            if self.state.refusals.alarm_due(now) {
                self.raise_alarm(now).await?;
                continue;
            }
            if self.window_used() >= self.backlog_window {
                return Ok(self.next_timer(None));
            }
            self.read_backlog_ahead();
            if !self.lanes.has_paced() {
                let due = self.state.refusals.take_due(now, self.page_size);
                if !due.is_empty() {
                    let Some(rows) = self.fetch_exact(due.clone()).await? else {
                        self.state.refusals.requeue(due, now);
                        return Ok(self.next_timer(None));
                    };
                    self.lanes.push_retries(rows);
                    continue;
                }
                // The backlog page being read wakes the session when it arrives.
                return Ok(self.next_timer(None));
            }
            if let Some(rate) = &mut self.drain_rate {
                if !rate.try_take(now) {
                    let ready = rate.ready_at(now);
                    return Ok(self.next_timer(Some(ready)));
                }
            }
            if let Some(row) = self.lanes.pop_paced() {
                self.submit_row(row)?;
            }
        }
    }

    /// The earliest of `paced`, the refusal timers and the store's retry still ahead (one already due but
    /// blocked by a full window is retried when an acknowledgement frees room, not by spinning).
    pub(super) fn next_timer(&self, paced: Option<std::time::Instant>) -> Option<Instant> {
        let now = std::time::Instant::now();
        let refusals = self.state.refusals.next_wake().filter(|at| *at > now);
        let read_back = self.read_back.as_ref().and_then(|rb| rb.next_deadline());
        let store = self.state.store.wake_at(now);
        let retire = self.retire_deadline();
        [paced, refusals, read_back, store, retire]
            .into_iter()
            .flatten()
            .min()
            .map(Instant::from_std)
    }

    /// MQTT 3.1.1: rows acknowledged but not read back within the wait are refused (kept, retried with
    /// backoff, summarised in a `publish_failure` alarm), exactly like an MQTT 5 PUBACK failure.
    pub(super) fn settle_overdue_read_backs(&mut self, now: std::time::Instant) {
        let Some(read_back) = &mut self.read_back else {
            return;
        };
        for seq in read_back.overdue(now) {
            self.shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            self.retire.released(seq, now);
            tracing::debug!(seq, "Row acknowledged but not read back; kept.");
            self.state
                .refusals
                .record(seq, link::NOT_READ_BACK, now, rand::random::<f64>());
        }
    }

    /// Up to `limit` outbox rows after `after_seq`, claimed; `None` when the store refused the read.
    pub(super) async fn fetch(
        &mut self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Option<Vec<OutboxRow>>, PublishError> {
        self.store_call(StoreCall::Claim, move |store| store.claim(after_seq, limit))
            .await
    }

    /// The rows with exactly these seqs that are still in the outbox, in one store call; `None` when the store
    /// refused the read.
    pub(super) async fn fetch_exact(
        &mut self,
        seqs: Vec<i64>,
    ) -> Result<Option<Vec<OutboxRow>>, PublishError> {
        self.store_call(StoreCall::Claim, move |store| store.claim_exact(&seqs))
            .await
    }

    /// Submits an outbox row (not retained), marked replayed when it is backlog. A row that can never be sent
    /// is counted once and skipped: it stays in the outbox and never costs a reconnect.
    pub(super) fn submit_row(&mut self, row: OutboxRow) -> Result<(), PublishError> {
        let replayed = self.lanes.is_backlog(row.seq);
        let payload = if replayed {
            mark_replayed(&row.payload).unwrap_or(row.payload)
        } else {
            row.payload
        };
        let size = link::publish_packet_size(self.protocol, row.topic.len(), payload.len());
        let given_up = self.state.oversize.is_given_up(row.seq);
        if given_up || !sendable_topic(&row.topic) || size > self.max_packet_size {
            self.note_unsendable(row.seq, &row.topic, size);
            self.retire.released(row.seq, std::time::Instant::now());
            return Ok(());
        }
        if replayed {
            self.shared.stats.replayed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(read_back) = &mut self.read_back {
            if read_back.needs_subscription(&row.topic) {
                self.client
                    .try_subscribe(&row.topic)
                    .map_err(|_| PublishError::EventLoopGone)?;
                self.subscribes_pending += 1;
            }
            read_back.sent(row.seq, &row.topic, link::payload_digest(&payload));
        }
        self.sent_rows.insert(
            row.seq,
            SentRow {
                seq: row.seq,
                size,
                topic: row.topic.clone(),
                handed_over: std::time::Instant::now(),
            },
        );
        self.submit(&row.topic, payload, Submitted::Row(row.seq))
    }

    /// Counts an unsendable row once; log lines about them are summarised (at most one per interval), so a
    /// packet limit below every payload cannot flood the log.
    fn note_unsendable(&mut self, seq: i64, topic: &str, size: u64) {
        if !self.state.unsendable.first_time(seq) {
            return;
        }
        self.shared.stats.unsendable.fetch_add(1, Ordering::Relaxed);
        if let Some(unlogged) = self.state.unsendable.line_due(std::time::Instant::now()) {
            tracing::error!(
                seq, topic, size, max = self.max_packet_size,
                unlogged_before = unlogged,
                "Outbox row can never be published (invalid topic, larger than the broker accepts, or the broker \
                 closed the connection twice after it); released to the store's refusal policy. Further such \
                 rows are summarised at most once a minute."
            );
        }
    }

    pub(super) fn submit_live(&mut self, message: LiveMessage) -> Result<(), PublishError> {
        let size =
            link::publish_packet_size(self.protocol, message.topic.len(), message.payload.len());
        if !sendable_topic(&message.topic) || size > self.max_packet_size {
            tracing::debug!(topic = %message.topic, size, "Live message too large or invalid; skipped.");
            return Ok(());
        }
        let digest: [u8; 32] = Sha256::digest(&message.payload).into();
        if self.live_sent.get(&message.topic) == Some(&digest) {
            return Ok(());
        }
        self.live_sent.insert(message.topic.clone(), digest);
        self.submit(&message.topic, message.payload.to_vec(), Submitted::Live)
    }

    /// Hands one QoS 1 publish to rumqttc (rows not retained; live and status retained).
    pub(super) fn submit(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        what: Submitted,
    ) -> Result<(), PublishError> {
        let retain = !matches!(what, Submitted::Row(_));
        self.client
            .try_publish(topic, retain, payload)
            .map_err(|_| PublishError::EventLoopGone)?;
        self.inflight.submitted(what);
        self.watchdog.on_submit(std::time::Instant::now());
        self.update_in_flight();
        Ok(())
    }

    pub(super) fn update_in_flight(&self) {
        let outstanding = self.inflight.outstanding() as u64;
        self.shared
            .stats
            .in_flight
            .store(outstanding, Ordering::Relaxed);
    }

    /// Enqueues the waiting `publish_failure` alarm as a durable row on the gateway event topic.
    pub(super) async fn raise_alarm(
        &mut self,
        now: std::time::Instant,
    ) -> Result<(), PublishError> {
        let Some(summary) = self.state.refusals.take_alarm(now) else {
            return Ok(());
        };
        if summary.last.code.is_some() {
            tracing::warn!(
                refused = summary.refused,
                reason_code = ?summary.last.code,
                reason = summary.last.reason,
                first_seq = summary.first_seq,
                last_seq = summary.last_seq,
                "Broker refused publishes; the rows stay in the outbox and are retried with backoff."
            );
        } else {
            tracing::warn!(
                refused = summary.refused,
                reason = summary.last.reason,
                first_seq = summary.first_seq,
                last_seq = summary.last_seq,
                "Broker acknowledged rows but never delivered them back to the agent's own subscription on \
                 their topic (MQTT 3.1.1 cannot report a refusal; the broker's ACL likely denies writing or \
                 reading them); the rows stay in the outbox and are retried with backoff."
            );
        }
        let Some(identity) = self.shared.cfg.event_identity.clone() else {
            return Ok(());
        };
        let at = self.shared.cfg.clock.utc();
        let cycle = crate::publisher::alarm::publish_failure_cycle(&identity, &summary, at);
        let stored = self
            .shared
            .store
            .call(move |store| store.commit_cycle(&cycle))
            .await
            .map_err(PublishError::StoreGone)?;
        match stored {
            Ok(outcome) => {
                if !outcome.dropped.is_empty() {
                    tracing::warn!(
                        ranges = outcome.dropped.len(),
                        "The store dropped unsent rows to make room for the alarm (counted in its drop counters)."
                    );
                }
                for seq in outcome.seqs {
                    self.state.refusals.note_alarm_row(seq);
                    self.shared.stats.alarms.fetch_add(1, Ordering::Relaxed);
                }
                self.lanes.notify_fresh();
            }
            Err(error) => {
                tracing::warn!(%error, "Could not enqueue the publish_failure alarm; it is logged only.")
            }
        }
        Ok(())
    }
}

/// A topic rumqttc will accept for PUBLISH: non-empty, no wildcards.
fn sendable_topic(topic: &str) -> bool {
    !topic.is_empty() && rumqttc::valid_topic(topic)
}
