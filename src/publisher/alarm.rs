//! The `publish_failure` alarm: turns a summary of broker refusals (MQTT 5 reason codes, or MQTT 3.1.1 rows
//! never read back, `reason_code` null) into a durable event row on the gateway event topic (ARCHITECTURE.md,
//! invariant 5: nothing lost silently). Topic and payload come from `logic::payload`. Also holds the builder of
//! any one-row gateway event cycle, which the `cert_expiring` event shares.

use serde_json::{json, Value};

use super::refusal::AlarmSummary;
use crate::logic::payload::{self, Identity};
use crate::logic::Millis;
use crate::store::{CycleWrite, OutboxDraft};

/// One store cycle holding the alarm event for `summary`, stamped `at` (UTC ms).
pub(super) fn publish_failure_cycle(
    identity: &Identity,
    summary: &AlarmSummary,
    at: Millis,
) -> CycleWrite {
    let detail = json!({
        "refused": summary.refused,
        "reason_code": summary.last.code,
        "reason": summary.last.reason,
        "first_seq": summary.first_seq,
        "last_seq": summary.last_seq,
        "retried": true,
    });
    gateway_event_cycle(identity, payload::EventKind::PublishFailure, detail, at)
}

/// One store cycle holding a single event of `kind` about the gateway itself (line [`payload::GATEWAY_LINE`],
/// the gateway as machine) on the gateway event topic, stamped `at` (UTC ms).
pub(super) fn gateway_event_cycle(
    identity: &Identity,
    kind: payload::EventKind,
    detail: Value,
    at: Millis,
) -> CycleWrite {
    let body = payload::event_payload(
        identity,
        payload::GATEWAY_LINE,
        &identity.gateway,
        kind,
        at,
        detail,
    );
    CycleWrite {
        outbox: vec![OutboxDraft {
            class: crate::store::DropClass::Durable,
            topic: payload::gateway_event_topic(identity),
            body,
        }],
        now: at,
        ..CycleWrite::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::Refusal;

    #[test]
    fn given_a_refusal_summary_when_turned_into_a_cycle_then_it_is_one_gateway_event_row() {
        let identity = Identity {
            prefix: "shopfloor/v1".into(),
            site: "s1".into(),
            gateway: "gw-9".into(),
            agent_version: "0.1.0".into(),
            config_hash: "abc".into(),
        };
        let summary = AlarmSummary {
            refused: 3,
            first_seq: 10,
            last_seq: 14,
            last: Refusal {
                code: Some(0x87),
                reason: "not_authorized",
            },
        };
        let cycle = publish_failure_cycle(&identity, &summary, 1_790_000_000_000);
        assert_eq!(cycle.outbox.len(), 1);
        assert_eq!(cycle.now, 1_790_000_000_000);
        let draft = &cycle.outbox[0];
        assert_eq!(draft.topic, "shopfloor/v1/s1/_gateway/gw-9/event");
        assert_eq!(
            draft.body["kind"],
            payload::EventKind::PublishFailure.as_str()
        );
        assert_eq!(draft.body["machine"], "gw-9");
        assert_eq!(draft.body["detail"]["reason_code"], 0x87);
        assert_eq!(draft.body["detail"]["refused"], 3);
        assert!(cycle.counters.is_empty() && cycle.windows.is_empty());
    }
}
