//! The gateway's status and health payloads (schemas/status.schema.json, schemas/health.schema.json) and the
//! reports they carry. Pure: no I/O, no clock reads.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{insert_versions, rfc3339_utc, ContentId, Identity, HEALTH_SCHEMA, STATUS_SCHEMA};
use crate::logic::clock::ClockStep;
use crate::logic::Millis;

/// One PLC connection's health as reported on the health topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceHealth {
    /// PLC id from the configuration.
    pub plc: String,
    /// Up: the last poll read something (down after `unit_failure_threshold` polls in a row read nothing).
    pub up: bool,
    /// Failed polls since the last success.
    pub consecutive_failures: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Duration of the last successful poll cycle (all its requests).
    pub rtt_ms: Option<f64>,
    /// Median request round-trip time over the recent requests.
    pub rtt_p50_ms: Option<f64>,
    /// 99th percentile request round-trip time over the recent requests.
    pub rtt_p99_ms: Option<f64>,
    /// Requests sent in the last poll cycle.
    pub requests_per_poll: u32,
    /// Poll cycles that read something.
    pub polls: u64,
    /// Poll cycles and connect attempts that read nothing.
    pub failures: u64,
    /// Late answers recognised by transaction id and dropped.
    pub late_answers: u64,
    /// The units (slave ids) behind this connection.
    pub units: Vec<UnitHealthReport>,
    /// Tags refused with a configuration exception, each with its next probe.
    pub disabled_tags: Vec<DisabledTagReport>,
}

/// One unit (slave id) behind a PLC connection, as reported on the health topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitHealthReport {
    /// Unit id.
    pub unit_id: u8,
    /// Up: the last poll of this unit read something (down after `unit_failure_threshold` failed polls).
    pub up: bool,
    /// Failed polls of this unit since its last success.
    pub consecutive_failures: u64,
    /// The last error of this unit, if any.
    pub last_error: Option<String>,
    /// Median request round-trip time.
    pub rtt_p50_ms: Option<f64>,
    /// 99th percentile request round-trip time.
    pub rtt_p99_ms: Option<f64>,
    /// Requests sent to this unit in the last poll cycle.
    pub requests_per_poll: u32,
    /// Whether the unit is skipped right now after repeated failures.
    pub backed_off: bool,
}

/// A tag refused with a configuration exception (01 illegal function, 02 illegal address, 03 illegal value),
/// with its next probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisabledTagReport {
    /// Unit id.
    pub unit_id: u8,
    /// Table: coil, discrete, input or holding.
    pub table: String,
    /// First 0-based address of the tag.
    pub address: u16,
    /// The exception code of the latest refusal.
    pub exception: u8,
    /// RFC 3339 time the tag was disabled.
    pub disabled_at: String,
    /// Probes refused since it was disabled.
    pub failed_probes: u32,
    /// RFC 3339 time of its next probe.
    pub next_retry_at: String,
}

/// The gateway status ("online" or "offline"); `at` is `None` for the last will, set at connect time.
pub fn status_payload(id: &Identity, state: &str, at: Option<Millis>) -> Value {
    let mut content = ContentId::new(STATUS_SCHEMA);
    content.field(id.site.as_bytes());
    content.field(id.gateway.as_bytes());
    content.field(state.as_bytes());
    match at {
        Some(at) => content.field(&at.to_be_bytes()),
        None => content.field(b""),
    }
    let mut body = Map::new();
    body.insert("schema".into(), json!(STATUS_SCHEMA));
    body.insert("msg_id".into(), json!(content.finish()));
    body.insert("site".into(), json!(id.site));
    body.insert("gateway".into(), json!(id.gateway));
    body.insert("state".into(), json!(state));
    body.insert("at".into(), json!(at.map(rfc3339_utc)));
    insert_versions(&mut body, id);
    Value::Object(body)
}

/// The outbox backlog as the health topic reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BacklogReport {
    /// Rows waiting in the outbox.
    pub rows: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Age of the oldest unsent row, if any.
    pub oldest_unsent_age_ms: Option<i64>,
}

/// The gateway's health: outbox backlog, drops, one entry per PLC connection, and the last step of
/// the wall clock (`clock.last_step`, null when none was seen since start).
pub fn health_payload(
    id: &Identity,
    at: Millis,
    backlog: BacklogReport,
    drops: u64,
    devices: Vec<DeviceHealth>,
    last_clock_step: Option<&ClockStep>,
) -> Value {
    let mut content = ContentId::new(HEALTH_SCHEMA);
    content.field(id.site.as_bytes());
    content.field(id.gateway.as_bytes());
    content.field(&at.to_be_bytes());
    let devices: Vec<Value> = devices
        .into_iter()
        .map(|device| {
            json!({
                "plc": device.plc,
                "up": device.up,
                "consecutive_failures": device.consecutive_failures,
                "last_error": device.last_error,
                "rtt_ms": device.rtt_ms,
                "rtt_p50_ms": device.rtt_p50_ms,
                "rtt_p99_ms": device.rtt_p99_ms,
                "requests_per_poll": device.requests_per_poll,
                "polls": device.polls,
                "failures": device.failures,
                "late_answers": device.late_answers,
                "units": device.units,
                "disabled_tags": device.disabled_tags,
            })
        })
        .collect();
    let mut body = Map::new();
    body.insert("schema".into(), json!(HEALTH_SCHEMA));
    body.insert("msg_id".into(), json!(content.finish()));
    body.insert("site".into(), json!(id.site));
    body.insert("gateway".into(), json!(id.gateway));
    body.insert("at".into(), json!(rfc3339_utc(at)));
    body.insert(
        "backlog".into(),
        json!({
            "rows": backlog.rows,
            "bytes": backlog.bytes,
            // A stepped-back wall clock can make the age negative; report it as 0.
            "oldest_unsent_age_ms": backlog.oldest_unsent_age_ms.map(|age| age.max(0)),
        }),
    );
    body.insert("drops".into(), json!(drops));
    body.insert("devices".into(), Value::Array(devices));
    let last_step = last_clock_step.map(|step| {
        json!({
            "at": rfc3339_utc(step.at),
            "size_ms": step.size_ms,
            "direction": step.direction.as_str(),
        })
    });
    body.insert("clock".into(), json!({ "last_step": last_step }));
    insert_versions(&mut body, id);
    Value::Object(body)
}

/// The MQTT link as reported on the health topic (`mqtt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqttHealth {
    /// Protocol of the latest accepted connection; `None` before the first one.
    pub protocol: Option<crate::config::MqttProtocol>,
    /// True when the broker refused MQTT 5 at CONNECT and the agent speaks MQTT 3.1.1 instead.
    pub fallback: bool,
}

/// Adds `mqtt: {protocol, fallback}` to a body built by [`health_payload`] (not part of its `msg_id`).
pub fn insert_mqtt_health(body: &mut Value, mqtt: MqttHealth) {
    use crate::config::MqttProtocol;
    let protocol = mqtt.protocol.map(|protocol| match protocol {
        MqttProtocol::V4 => "v4",
        MqttProtocol::V5 => "v5",
    });
    if let Some(body) = body.as_object_mut() {
        body.insert(
            "mqtt".into(),
            json!({"protocol": protocol, "fallback": mqtt.fallback}),
        );
    }
}

/// The secure uplink as reported on the health topic (`tls`), when `[mqtt] tls = true`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsHealth {
    /// Expiry of the client certificate read at the latest connection attempt; `None` without mTLS.
    pub client_cert_not_after: Option<Millis>,
    /// Expiry of the CA from `ca_file` that expires first; `None` with the platform's roots.
    pub ca_not_after: Option<Millis>,
    /// Failed secure connection attempts by cause name (the publisher's closed set of causes).
    pub failures: std::collections::BTreeMap<&'static str, u64>,
}

/// Adds `tls: {client_cert_not_after, ca_not_after, failures}` to a body built by [`health_payload`] (not part
/// of its `msg_id`).
pub fn insert_tls_health(body: &mut Value, tls: &TlsHealth) {
    if let Some(body) = body.as_object_mut() {
        body.insert(
            "tls".into(),
            json!({
                "client_cert_not_after": tls.client_cert_not_after.map(rfc3339_utc),
                "ca_not_after": tls.ca_not_after.map(rfc3339_utc),
                "failures": tls.failures,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::payload::test_support::*;

    #[test]
    fn given_online_and_last_will_when_status_built_then_both_validate() {
        let online = status_payload(&identity(), "online", Some(NINE_AM_SEOUL));
        let offline = status_payload(&identity(), "offline", None);

        assert_eq!(validate(STATUS, &online), Vec::<String>::new());
        assert_eq!(validate(STATUS, &offline), Vec::<String>::new());
        assert_eq!(online["at"], "2026-11-28T00:00:00+00:00");
        assert_eq!(offline["at"], Value::Null);
        assert_ne!(online["msg_id"], offline["msg_id"]);
        assert!(!validate(STATUS, &status_payload(&identity(), "sleeping", None)).is_empty());
    }

    /// Two PLCs: one up with a unit down and a disabled tag, one down.
    fn two_devices() -> Vec<DeviceHealth> {
        vec![
            DeviceHealth {
                plc: "plc-1".into(),
                up: true,
                consecutive_failures: 0,
                last_error: None,
                rtt_ms: Some(3.4),
                rtt_p50_ms: Some(1.2),
                rtt_p99_ms: Some(2.9),
                requests_per_poll: 3,
                polls: 120,
                failures: 1,
                late_answers: 2,
                units: vec![
                    UnitHealthReport {
                        unit_id: 1,
                        up: true,
                        consecutive_failures: 0,
                        last_error: None,
                        rtt_p50_ms: Some(1.1),
                        rtt_p99_ms: Some(2.0),
                        requests_per_poll: 2,
                        backed_off: false,
                    },
                    UnitHealthReport {
                        unit_id: 7,
                        up: false,
                        consecutive_failures: 4,
                        last_error: Some("unit 7: no answer within 500ms".into()),
                        rtt_p50_ms: None,
                        rtt_p99_ms: None,
                        requests_per_poll: 0,
                        backed_off: true,
                    },
                ],
                disabled_tags: vec![DisabledTagReport {
                    unit_id: 1,
                    table: "holding".into(),
                    address: 120,
                    exception: 2,
                    disabled_at: "2026-11-28T08:58:00+09:00".into(),
                    failed_probes: 1,
                    next_retry_at: "2026-11-28T09:01:00+09:00".into(),
                }],
            },
            DeviceHealth {
                plc: "plc-2".into(),
                up: false,
                consecutive_failures: 17,
                last_error: Some("connect timed out after 1s".into()),
                rtt_ms: None,
                rtt_p50_ms: None,
                rtt_p99_ms: None,
                requests_per_poll: 0,
                polls: 0,
                failures: 17,
                late_answers: 0,
                units: Vec::new(),
                disabled_tags: Vec::new(),
            },
        ]
    }

    #[test]
    fn given_backlog_and_devices_when_health_built_then_it_validates() {
        let devices = two_devices();
        let backlog = BacklogReport {
            rows: 1_204,
            bytes: 3_100_000,
            oldest_unsent_age_ms: Some(95_000),
        };
        let step = ClockStep {
            at: NINE_AM_SEOUL,
            before: NINE_AM_SEOUL + 3_600_000,
            elapsed_ms: 1_000,
            size_ms: 3_599_000,
            direction: StepDirection::Back,
        };
        let body = health_payload(&identity(), NINE_AM_SEOUL, backlog, 3, devices, Some(&step));

        assert_eq!(validate(HEALTH, &body), Vec::<String>::new());
        assert_eq!(body["backlog"]["rows"], 1_204);
        assert_eq!(
            body["devices"][1]["last_error"],
            "connect timed out after 1s"
        );
        assert_eq!(body["devices"][0]["units"][1]["backed_off"], true);
        assert_eq!(body["devices"][0]["disabled_tags"][0]["exception"], 2);
        assert_eq!(
            body["devices"][0]["disabled_tags"][0]["next_retry_at"],
            "2026-11-28T09:01:00+09:00"
        );
        let mut no_retry = body.clone();
        no_retry["devices"][0]["disabled_tags"][0]
            .as_object_mut()
            .unwrap()
            .remove("next_retry_at");
        assert!(!validate(HEALTH, &no_retry).is_empty());
        assert_eq!(body["devices"][0]["rtt_p99_ms"], 2.9);
        assert_eq!(
            body["clock"]["last_step"],
            json!({"at": "2026-11-28T00:00:00+00:00", "size_ms": 3_599_000, "direction": "back"})
        );
        let mut bad_unit = body.clone();
        bad_unit["devices"][0]["units"][0]["unit_id"] = json!(256);
        assert!(!validate(HEALTH, &bad_unit).is_empty());
    }

    #[test]
    fn given_no_devices_when_health_built_then_it_validates_with_the_mqtt_part_and_not_without_drops(
    ) {
        let empty = health_payload(
            &identity(),
            NINE_AM_SEOUL,
            BacklogReport::default(),
            0,
            Vec::new(),
            None,
        );
        assert_eq!(validate(HEALTH, &empty), Vec::<String>::new());
        assert_eq!(empty["clock"], json!({"last_step": null}));
        let mut fell_back = empty.clone();
        insert_mqtt_health(
            &mut fell_back,
            MqttHealth {
                protocol: Some(crate::config::MqttProtocol::V4),
                fallback: true,
            },
        );
        assert_eq!(validate(HEALTH, &fell_back), Vec::<String>::new());
        assert_eq!(
            fell_back["mqtt"],
            json!({"protocol": "v4", "fallback": true})
        );
        let mut missing = empty;
        missing.as_object_mut().unwrap().remove("drops");
        assert!(!validate(HEALTH, &missing).is_empty());
    }

    #[test]
    fn given_tls_health_when_inserted_then_it_validates_and_unknown_causes_do_not() {
        let mut body = health_payload(
            &identity(),
            NINE_AM_SEOUL,
            BacklogReport::default(),
            0,
            Vec::new(),
            None,
        );
        let id_before = body["msg_id"].clone();
        let tls = TlsHealth {
            client_cert_not_after: Some(NINE_AM_SEOUL),
            ca_not_after: None,
            failures: [("unknown_ca", 3), ("bad_credentials", 1)]
                .into_iter()
                .collect(),
        };
        insert_tls_health(&mut body, &tls);
        assert_eq!(validate(HEALTH, &body), Vec::<String>::new());
        assert_eq!(
            body["tls"],
            json!({"client_cert_not_after": "2026-11-28T00:00:00+00:00", "ca_not_after": null,
                   "failures": {"bad_credentials": 1, "unknown_ca": 3}})
        );
        assert_eq!(body["msg_id"], id_before);
        let mut unknown = body.clone();
        unknown["tls"]["failures"]["made_up"] = json!(1);
        assert!(!validate(HEALTH, &unknown).is_empty());
    }
}
