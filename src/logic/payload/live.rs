//! The retained live payload of one machine: its state and open windows (schemas/live.schema.json).
//! Pure: no I/O, no clock reads.

use jiff::tz::TimeZone;
use serde_json::{json, Map, Value};

use super::rollup::window_fields;
use super::{insert_versions, rfc3339, ContentId, Identity, LIVE_SCHEMA};
use crate::logic::kpi::Kpis;
use crate::logic::rollup::{MachineState, WindowRecord};
use crate::logic::Millis;

/// The retained live message of one machine: its current state and every open window.
pub fn live_payload(
    id: &Identity,
    line: &str,
    machine: &str,
    state: Option<MachineState>,
    windows: &[(&WindowRecord, &Kpis)],
    at: Millis,
    tz: &TimeZone,
) -> Value {
    let mut content = ContentId::new(LIVE_SCHEMA);
    content.field(id.site.as_bytes());
    content.field(id.gateway.as_bytes());
    content.field(machine.as_bytes());
    content.field(&at.to_be_bytes());
    let windows: Vec<Value> = windows
        .iter()
        .map(|(record, kpis)| Value::Object(window_fields(record, kpis, tz)))
        .collect();
    let mut body = Map::new();
    body.insert("schema".into(), json!(LIVE_SCHEMA));
    body.insert("msg_id".into(), json!(content.finish()));
    body.insert("site".into(), json!(id.site));
    body.insert("line".into(), json!(line));
    body.insert("machine".into(), json!(machine));
    body.insert("gateway".into(), json!(id.gateway));
    body.insert("at".into(), json!(rfc3339(at, tz)));
    body.insert("state".into(), json!(state.map(MachineState::name)));
    body.insert("windows".into(), Value::Array(windows));
    insert_versions(&mut body, id);
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::payload::test_support::*;

    #[test]
    fn given_open_windows_when_live_built_then_it_validates_against_live_schema() {
        // Given an open 15m and 1h window.
        let quarter = record(WindowStatus::Open, 0);
        let mut hour = record(WindowStatus::Open, 0);
        hour.period = "1h".into();
        hour.end = NINE_AM_SEOUL + 60 * MINUTE;
        let quarter_kpis = kpis_for(&quarter, Some(3_000), &targets());
        let hour_kpis = kpis_for(&hour, Some(3_000), &Targets::default());

        // When
        let body = live_payload(
            &identity(),
            "line-a",
            "press-3",
            Some(MachineState::UnplannedStop),
            &[(&quarter, &quarter_kpis), (&hour, &hour_kpis)],
            NINE_AM_SEOUL + 14 * MINUTE + 1_250,
            &seoul(),
        );

        // Then
        assert_eq!(validate(LIVE, &body), Vec::<String>::new());
        assert_eq!(body["state"], "unplanned_stop");
        assert_eq!(body["at"], "2026-11-28T09:14:01.25+09:00");
        assert_eq!(body["windows"][1]["window"]["period"], "1h");
        assert_eq!(body["windows"][0]["status"], "open");

        let mut no_state = body;
        no_state["state"] = Value::Null;
        assert_eq!(validate(LIVE, &no_state), Vec::<String>::new());
        no_state["windows"][0]["status"] = json!("final");
        assert!(!validate(LIVE, &no_state).is_empty());
    }
}
