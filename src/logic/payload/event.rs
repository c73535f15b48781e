//! The event payload of a machine or the gateway (schemas/event.schema.json). Pure: no I/O, no clock reads.

use serde_json::{json, Map, Value};

use super::{insert_versions, rfc3339_utc, ContentId, EventKind, Identity, EVENT_SCHEMA};
use crate::logic::Millis;

/// A machine or gateway event of `kind`, without `seq` and `db_epoch`.
/// Its `msg_id` derives from site, gateway, machine, kind, time and detail, so a re-derived event keeps its id.
pub fn event_payload(
    id: &Identity,
    line: &str,
    machine: &str,
    kind: EventKind,
    at: Millis,
    detail: Value,
) -> Value {
    let mut content = ContentId::new(EVENT_SCHEMA);
    content.field(id.site.as_bytes());
    content.field(id.gateway.as_bytes());
    content.field(machine.as_bytes());
    content.field(kind.as_str().as_bytes());
    content.field(&at.to_be_bytes());
    content.field(detail.to_string().as_bytes());
    let mut body = Map::new();
    body.insert("schema".into(), json!(EVENT_SCHEMA));
    body.insert("msg_id".into(), json!(content.finish()));
    body.insert("site".into(), json!(id.site));
    body.insert("line".into(), json!(line));
    body.insert("machine".into(), json!(machine));
    body.insert("gateway".into(), json!(id.gateway));
    body.insert("kind".into(), json!(kind.as_str()));
    body.insert("at".into(), json!(rfc3339_utc(at)));
    body.insert("detail".into(), detail);
    insert_versions(&mut body, id);
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::payload::test_support::*;

    #[test]
    fn given_gap_event_when_built_and_stored_then_it_validates_and_id_is_stable() {
        let detail = json!({"from": "2026-11-28T08:59:00+09:00", "to": "2026-11-28T09:00:30+09:00",
                            "cause": "poll_failed"});
        let build = || {
            event_payload(
                &identity(),
                "line-a",
                "press-3",
                EventKind::Gap,
                NINE_AM_SEOUL,
                detail.clone(),
            )
        };

        let body = build();

        assert_eq!(body["msg_id"], build()["msg_id"]);
        assert!(
            !validate(EVENT, &body).is_empty(),
            "seq/db_epoch are required"
        );
        let stored = as_stored(body, 9);
        assert_eq!(validate(EVENT, &stored), Vec::<String>::new());
        assert_eq!(stored["kind"], "gap");
        assert_eq!(stored["detail"]["cause"], "poll_failed");
    }

    #[test]
    fn given_tag_events_when_stored_then_the_schema_requires_their_retry_and_carry_fields() {
        let tag = json!({"plc": "plc-a", "unit_id": 1, "table": "holding", "address": 0, "exception_code": 2});
        let mut disabled = tag.clone();
        disabled["retry_at"] = json!("2026-11-28T09:01:00+09:00");
        let mut enabled = tag.clone();
        enabled["disabled_at"] = json!("2026-11-28T08:58:00+09:00");
        enabled["disabled_ms"] = json!(120_000);
        enabled["failed_probes"] = json!(1);
        let event = |kind: EventKind, detail: &Value| {
            let body = event_payload(
                &identity(),
                "line-a",
                "press-3",
                kind,
                NINE_AM_SEOUL,
                detail.clone(),
            );
            as_stored(body, 3)
        };

        assert_eq!(
            validate(EVENT, &event(EventKind::TagDisabled, &disabled)),
            Vec::<String>::new()
        );
        assert_eq!(
            validate(EVENT, &event(EventKind::TagEnabled, &enabled)),
            Vec::<String>::new()
        );
        assert!(
            !validate(EVENT, &event(EventKind::TagDisabled, &tag)).is_empty(),
            "retry_at is required"
        );
        assert!(
            !validate(EVENT, &event(EventKind::TagEnabled, &disabled)).is_empty(),
            "carry fields are required"
        );
        assert_eq!(
            validate(EVENT, &event(EventKind::Gap, &tag)),
            Vec::<String>::new(),
            "other kinds unaffected"
        );
    }
}
