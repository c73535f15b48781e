//! Durable events the processor enqueues: device up/down, disabled and enabled tags, quota drops, a
//! recovered store, and counter anomalies. Nothing is lost silently (ARCHITECTURE.md, invariant 5).

use super::*;
use crate::poller::DisabledTag;

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
            for machine in self
                .machines
                .iter()
                .filter(|m| m.config.plc == sample.plc)
                .filter(|m| audience.includes(m))
            {
                let body = payload::event_payload(
                    &self.identity,
                    &machine.config.line,
                    &machine.config.id,
                    kind,
                    at,
                    detail.clone(),
                );
                self.pending.outbox.push(OutboxDraft {
                    topic: payload::event_topic(
                        &self.identity,
                        &machine.config.line,
                        &machine.config.id,
                    ),
                    body,
                });
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

    /// An event about the messages of `topic`: on its machine's event topic when it is a machine's,
    /// else on the gateway's event topic.
    pub(super) fn event_for_topic(
        &self,
        topic: &str,
        kind: EventKind,
        at: Millis,
        detail: serde_json::Value,
    ) -> OutboxDraft {
        let owner = self.machines.iter().find(|m| {
            let base = payload::event_topic(&self.identity, &m.config.line, &m.config.id);
            let base = base.trim_end_matches("/event");
            topic.starts_with(&format!("{base}/"))
        });
        let (line, machine, topic) = match owner {
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
            topic,
            body: payload::event_payload(&self.identity, &line, &machine, kind, at, detail),
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
        self.pending.outbox.push(draft);
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
    let kind = step.kind.as_str();
    if step.kind != StepKind::Baseline || pending.deltas.len() < MAX_PENDING_DELTAS {
        pending.deltas.push(DeltaRow {
            key: channel.key.clone(),
            kind: kind.to_string(),
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
    if matches!(step.kind, StepKind::Reset | StepKind::Rejected) {
        let body = payload::event_payload(
            identity,
            &machine.line,
            &machine.id,
            EventKind::CounterAnomaly,
            step.t_to,
            serde_json::json!({
                "counter": channel.key,
                "kind": kind,
                "delta": step.delta,
                "raw": step.raw,
                "counted": amount,
            }),
        );
        pending.outbox.push(OutboxDraft {
            topic: payload::event_topic(identity, &machine.line, &machine.id),
            body,
        });
    }
}
