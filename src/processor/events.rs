//! Durable events the processor enqueues: device up/down, disabled and enabled tags, quota drops,
//! refused payloads, a recovered store, and counter anomalies. Nothing is lost silently
//! (ARCHITECTURE.md, invariant 5). An announcement of a refused payload that is itself refused is
//! counted and logged, never announced again: refusals never cascade.

use super::*;
use crate::poller::DisabledTag;
use crate::store::{DraftOwner, DroppedRange, RefusedDraft};

/// Least time between two log lines about refused payloads; the refusals between them are summed.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Drafts the store refused because they are larger than `max_payload_bytes`, since start.
#[derive(Debug, Default)]
pub(super) struct RefusalTally {
    /// Every refused draft.
    pub(super) drafts: u64,
    /// `payload_refused` events queued (one per refused rollup or event).
    pub(super) events: u64,
    /// Refused `payload_refused` events: counted here, not announced again.
    pub(super) alarms: u64,
    /// Refused drafts not yet in a log line.
    unlogged: u64,
    /// Refused announcements not yet in a log line.
    unlogged_alarms: u64,
    /// When the last log line was written (monotonic, so a step of the wall clock changes nothing).
    logged_at: Option<Instant>,
}

impl RefusalTally {
    /// Counts one refused draft (`alarm`: an announcement of a refusal) and logs it when no line was
    /// written in the last [`REFUSAL_LOG_INTERVAL`] (the first one at once, then a summary).
    fn record(&mut self, draft: &RefusedDraft, alarm: bool, now: Instant) {
        self.drafts += 1;
        self.unlogged += 1;
        if alarm {
            self.alarms += 1;
            self.unlogged_alarms += 1;
        }
        let due = self
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= REFUSAL_LOG_INTERVAL);
        if !due {
            return;
        }
        warn!(
            topic = %draft.topic,
            bytes = draft.bytes,
            refused = self.unlogged,
            refused_announcements = self.unlogged_alarms,
            total_refused = self.drafts,
            "Payloads larger than the broker accepts were not enqueued; each is announced once by a \
             payload_refused event, an announcement that is itself too large only counted."
        );
        self.unlogged = 0;
        self.unlogged_alarms = 0;
        self.logged_at = Some(now);
    }
}

/// Which machines of a PLC an event from its poller concerns.
enum Audience {
    /// Every machine on the unit, or on the whole connection for `None`.
    Unit(Option<u8>),
    /// The machines that read this tag (an index into the PLC's read plan).
    Tag(usize),
}

impl Audience {
    fn includes(&self, machine: &MachineRuntime) -> bool {
        match *self {
            Audience::Unit(unit) => unit.is_none_or(|u| machine.config.produced.tag.unit_id == u),
            Audience::Tag(tag) => {
                machine.state_tag_index == Some(tag)
                    || machine.counters.iter().any(|c| c.tag_index == tag)
            }
        }
    }
}

impl Processor {
    /// Device up/down transitions become one durable event per machine on the PLC (or the unit); disabled and
    /// enabled tags one per machine that reads the tag.
    pub(super) fn record_poll_events(&mut self, sample: &Sample) {
        for event in &sample.events {
            let (kind, audience, at, detail) = match event {
                PollEvent::Transition(t) => {
                    if t.up && t.previous.is_none() {
                        continue; // the first good poll after start is not news
                    }
                    let kind = if t.up {
                        EventKind::DeviceUp
                    } else {
                        EventKind::DeviceDown
                    };
                    let detail = serde_json::json!({
                        "plc": t.plc_id,
                        "unit_id": t.unit_id,
                        "scope": if t.unit_id.is_some() { "unit" } else { "connection" },
                        "error": t.error,
                    });
                    (kind, Audience::Unit(t.unit_id), t.at, detail)
                }
                PollEvent::TagDisabled(tag) => {
                    let mut detail = self.tag_detail(sample.plc, tag);
                    detail["retry_at"] = payload_time(tag.next_retry_at, &self.config).into();
                    detail["note"] = "configuration error: the tag is probed again with a growing delay; \
                                      its counts are carried by the cumulative counter to the first good read"
                        .into();
                    let kind = EventKind::TagDisabled;
                    (kind, Audience::Tag(tag.tag), tag.at, detail)
                }
                PollEvent::TagEnabled(enabled) => {
                    let tag = &enabled.disabled;
                    let mut detail = self.tag_detail(sample.plc, tag);
                    detail["disabled_at"] = payload_time(tag.at, &self.config).into();
                    detail["disabled_ms"] = (enabled.at - tag.at).into();
                    detail["failed_probes"] = tag.failed_probes.into();
                    let kind = EventKind::TagEnabled;
                    (kind, Audience::Tag(tag.tag), enabled.at, detail)
                }
            };
            for machine in self.by_plc[sample.plc]
                .iter()
                .map(|&index| &self.machines[index])
                .filter(|m| audience.includes(m))
            {
                self.pending.push(machine_event(
                    &self.identity,
                    &machine.config,
                    kind,
                    at,
                    detail.clone(),
                ));
            }
        }
    }

    /// What every tag event says about the tag: where it is and the exception that refused it.
    fn tag_detail(&self, plc: usize, tag: &DisabledTag) -> serde_json::Value {
        serde_json::json!({
            "plc": self.config.plcs[plc].id,
            "unit_id": tag.unit_id,
            "table": tag.table.name(),
            "address": tag.address,
            "exception_code": tag.code,
        })
    }

    /// An event about a row whose payload names `owner`: on that machine's event topic when it is one of
    /// ours, else on the gateway's event topic.
    pub(super) fn event_for_owner(
        &self,
        owner: Option<&DraftOwner>,
        kind: EventKind,
        at: Millis,
        detail: serde_json::Value,
    ) -> OutboxDraft {
        let machine = owner.and_then(|owner| {
            self.machines
                .iter()
                .find(|m| m.config.line == owner.line && m.config.id == owner.machine)
        });
        let (line, machine, topic) = match machine {
            Some(m) => (
                m.config.line.clone(),
                m.config.id.clone(),
                payload::event_topic(&self.identity, &m.config.line, &m.config.id),
            ),
            None => (
                payload::GATEWAY_LINE.to_string(),
                self.identity.gateway.clone(),
                payload::gateway_event_topic(&self.identity),
            ),
        };
        OutboxDraft {
            class: crate::store::DropClass::Durable,
            topic,
            body: payload::event_payload(&self.identity, &line, &machine, kind, at, detail),
        }
    }

    /// Queues one `gap` event per range of unsent rows the store dropped to stay within its quota.
    pub(super) fn announce_drops(&mut self, dropped: &[DroppedRange], now: Millis) {
        for range in dropped {
            warn!(topic = %range.topic, rows = range.rows, class = range.class.name(), "Store quota reached; dropped unsent rows.");
            let detail = serde_json::json!({
                "reason": "store_quota",
                "class": range.class.name(),
                "topic": range.topic,
                "first_seq": range.first_seq,
                "last_seq": range.last_seq,
                "rows": range.rows,
                "produced": range.produced,
                "defective": range.defective,
                "from": payload_time(range.first_enqueued_at, &self.config),
                "to": payload_time(range.last_enqueued_at, &self.config),
            });
            let draft = self.event_for_owner(range.owner.as_ref(), EventKind::Gap, now, detail);
            self.pending.push(draft);
        }
    }

    /// Queues one `payload_refused` event per refused rollup or event; `roles` are the roles of the
    /// committed drafts, by index. A refused `payload_refused` event is only counted and logged.
    pub(super) fn announce_refusals(
        &mut self,
        refused: &[RefusedDraft],
        roles: &[DraftRole],
        now: Millis,
    ) {
        let mono = self.clock.now().mono;
        for draft in refused {
            let role = roles.get(draft.index).copied().unwrap_or(DraftRole::Event);
            let alarm = role == DraftRole::RefusalAlarm;
            self.refusals.record(draft, alarm, mono);
            if alarm {
                continue;
            }
            let detail = serde_json::json!({
                "topic": draft.topic,
                "bytes": draft.bytes,
            });
            let event =
                self.event_for_owner(draft.owner.as_ref(), EventKind::PayloadRefused, now, detail);
            self.pending.outbox.push(QueuedDraft {
                draft: event,
                role: DraftRole::RefusalAlarm,
            });
            self.refusals.events += 1;
        }
    }

    /// Queues the alarm for a database that was found corrupt at start and moved aside (`moved_to`), or that
    /// vanished while the previous run had it open (`moved_to` is `None`).
    pub fn alarm_store_recovered(&mut self, moved_to: Option<&str>, reason: &str, at: Millis) {
        let detail = serde_json::json!({
            "moved_to": moved_to,
            "reason": reason,
            "note": "a fresh database with a new db_epoch was started; unsent rows of the old one were not published",
        });
        let draft = OutboxDraft {
            class: crate::store::DropClass::Durable,
            topic: payload::gateway_event_topic(&self.identity),
            body: payload::event_payload(
                &self.identity,
                payload::GATEWAY_LINE,
                &self.identity.gateway,
                EventKind::StoreRecovered,
                at,
                detail,
            ),
        };
        self.pending.push(draft);
    }
}

pub(super) fn apply_step(
    identity: &Identity,
    pending: &mut Pending,
    windows: &mut [MachineWindows],
    machine: &MachineConfig,
    channel: &CounterChannel,
    step: &CounterStep,
) {
    if step.kind != StepKind::Baseline || pending.deltas.len() < MAX_PENDING_DELTAS {
        pending.deltas.push(DeltaRow {
            key: channel.key.clone(),
            kind: step.kind,
            delta: step.delta,
            raw: step.raw,
            t_from: step.t_from,
            t_to: step.t_to,
        });
    }
    let flag = step.kind.flag();
    let amount = counted(step);
    if amount > 0 || flag.is_some() {
        for acc in windows.iter_mut() {
            if step.kind == StepKind::Rejected {
                acc.flag(step.t_to, Flag::Rejected);
            } else {
                acc.add_count(&channel.channel, amount, step.t_from, step.t_to, flag);
            }
        }
    }
    // An episode of invalid values is announced at its first one, not at every poll.
    let announce = match step.kind {
        StepKind::Invalid => channel.invalid_since.is_none(),
        kind => kind.is_anomaly(),
    };
    if announce {
        let draft = machine_event(
            identity,
            machine,
            EventKind::CounterAnomaly,
            step.t_to,
            serde_json::json!({
                "counter": channel.key,
                "kind": step.kind.as_str(),
                "delta": step.delta,
                "raw": step.raw,
                "counted": amount,
                "modulus": channel.tag.counter.modulus,
            }),
        );
        pending.push(draft);
    }
}

/// An event about `machine`, on its event topic.
pub(super) fn machine_event(
    identity: &Identity,
    machine: &MachineConfig,
    kind: EventKind,
    at: Millis,
    detail: serde_json::Value,
) -> OutboxDraft {
    OutboxDraft {
        class: crate::store::DropClass::Durable,
        topic: payload::event_topic(identity, &machine.line, &machine.id),
        body: payload::event_payload(identity, &machine.line, &machine.id, kind, at, detail),
    }
}
