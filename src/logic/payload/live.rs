//! The retained live payload of one machine: its state and open windows (schemas/live.schema.json).
//! Pure: no I/O, no clock reads.

use jiff::tz::TimeZone;
use serde::Serialize;

use super::rollup::WindowFields;
use super::{rfc3339, ContentId, Identity, LIVE_SCHEMA};
use crate::logic::kpi::Kpis;
use crate::logic::rollup::{MachineState, WindowRecord};
use crate::logic::Millis;

/// The retained live message of one machine, serialised straight to bytes (keys in sorted order, as a
/// `serde_json::Value` would write them).
#[derive(Serialize)]
pub struct LivePayload<'a> {
    agent_version: &'a str,
    at: String,
    config_hash: &'a str,
    gateway: &'a str,
    line: &'a str,
    machine: &'a str,
    msg_id: String,
    schema: &'static str,
    site: &'a str,
    state: Option<&'static str>,
    windows: Vec<WindowFields<'a>>,
}

/// The retained live message of one machine: its current state and every open window.
pub fn live_payload<'a>(
    id: &'a Identity,
    line: &'a str,
    machine: &'a str,
    state: Option<MachineState>,
    windows: &[(&'a WindowRecord, &'a Kpis)],
    at: Millis,
    tz: &'a TimeZone,
) -> LivePayload<'a> {
    let mut content = ContentId::new(LIVE_SCHEMA);
    content.field(id.site.as_bytes());
    content.field(id.gateway.as_bytes());
    content.field(machine.as_bytes());
    content.field(&at.to_be_bytes());
    LivePayload {
        agent_version: &id.agent_version,
        at: rfc3339(at, tz),
        config_hash: &id.config_hash,
        gateway: &id.gateway,
        line,
        machine,
        msg_id: content.finish(),
        schema: LIVE_SCHEMA,
        site: &id.site,
        state: state.map(MachineState::name),
        windows: windows
            .iter()
            .map(|&(record, kpis)| WindowFields { record, kpis, tz })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

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
        let (id, tz) = (identity(), seoul());
        let live = live_payload(
            &id,
            "line-a",
            "press-3",
            Some(MachineState::UnplannedStop),
            &[(&quarter, &quarter_kpis), (&hour, &hour_kpis)],
            NINE_AM_SEOUL + 14 * MINUTE + 1_250,
            &tz,
        );

        // Then its bytes are those of the same payload as a JSON value (keys sorted at every level)...
        let bytes = serde_json::to_vec(&live).unwrap();
        let body = serde_json::to_value(&live).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&body).unwrap());
        // ...and it has the contract's fields.
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
