//! MQTT topic names and JSON payloads (README.md, "MQTT topics"; schemas/); every topic string of the crate is built here.
//! Payloads match the JSON Schemas in `schemas/`. Durable payloads (rollup, event) are built without
//! `seq` and `db_epoch`: the store adds those when it enqueues the row. Pure: no I/O, no clock reads.

use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::clock::ClockStep;
use super::kpi::Kpis;
use super::rollup::{MachineState, WindowRecord};
use super::Millis;

/// Schema tag of a closed window (final or restated).
pub const ROLLUP_SCHEMA: &str = "shopfloor.rollup/1";
/// Schema tag of the retained live message of one machine.
pub const LIVE_SCHEMA: &str = "shopfloor.live/1";
/// Schema tag of the gateway's online/offline status.
pub const STATUS_SCHEMA: &str = "shopfloor.status/1";
/// Schema tag of the gateway's periodic health report.
pub const HEALTH_SCHEMA: &str = "shopfloor.health/1";
/// Schema tag of a machine event.
pub const EVENT_SCHEMA: &str = "shopfloor.event/1";

/// The kind of a machine or gateway event (`kind` in the event payload). The serialized form is
/// the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Time or counts were lost (failed polls, overflow drops).
    Gap,
    /// A counter wrapped, reset, glitched or was quarantined.
    CounterAnomaly,
    /// A PLC connection (or one unit behind it) came up.
    DeviceUp,
    /// A PLC connection (or one unit behind it) went down.
    DeviceDown,
    /// Defect-reason deltas.
    Defects,
    /// The machine changed state (stop, restart).
    State,
    /// A tag was refused with a configuration exception (01/02/03) and is disabled; it is probed
    /// again with a growing delay.
    TagDisabled,
    /// A disabled tag answered its probe and is read every cycle again.
    TagEnabled,
    /// The store refused a payload at enqueue because it is larger than the broker accepts.
    PayloadRefused,
    /// The database was found corrupt or vanished, and a fresh one was started.
    StoreRecovered,
    /// (Gateway event topic) the broker refused publishes with an MQTT 5 failure reason code, or
    /// never delivered MQTT 3.1.1 rows back.
    PublishFailure,
    /// A quarantined counter delta was released by an operator and counted in the windows of its
    /// interval, which are restated.
    QuarantineReleased,
    /// (Gateway event topic) a certificate of the uplink (client certificate or CA) expires within 14 days.
    CertExpiring,
}

impl EventKind {
    /// Every event kind, in declaration order.
    pub const ALL: [EventKind; 13] = [
        EventKind::Gap,
        EventKind::CounterAnomaly,
        EventKind::DeviceUp,
        EventKind::DeviceDown,
        EventKind::Defects,
        EventKind::State,
        EventKind::TagDisabled,
        EventKind::TagEnabled,
        EventKind::PayloadRefused,
        EventKind::StoreRecovered,
        EventKind::PublishFailure,
        EventKind::QuarantineReleased,
        EventKind::CertExpiring,
    ];

    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Gap => "gap",
            EventKind::CounterAnomaly => "counter_anomaly",
            EventKind::DeviceUp => "device_up",
            EventKind::DeviceDown => "device_down",
            EventKind::Defects => "defects",
            EventKind::State => "state",
            EventKind::TagDisabled => "tag_disabled",
            EventKind::TagEnabled => "tag_enabled",
            EventKind::PayloadRefused => "payload_refused",
            EventKind::StoreRecovered => "store_recovered",
            EventKind::PublishFailure => "publish_failure",
            EventKind::QuarantineReleased => "quarantine_released",
            EventKind::CertExpiring => "cert_expiring",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `line` of events about the gateway itself (their `machine` is the gateway id).
pub const GATEWAY_LINE: &str = "_gateway";

/// Number of hex characters of a `msg_id` (the first 128 bits of a SHA-256).
pub const MSG_ID_HEX_LEN: usize = 32;

/// Who publishes: the topic prefix, site and gateway, plus the versions every payload carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// First topic level, e.g. "shopfloor".
    pub prefix: String,
    /// Site id (second topic level).
    pub site: String,
    /// Gateway id.
    pub gateway: String,
    /// The agent's version (Cargo package version).
    pub agent_version: String,
    /// Hash of the effective configuration.
    pub config_hash: String,
}

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

/// True when `segment` can be used as one MQTT topic level (non-empty, no `/`, `+`, `#`, NUL, no leading `$`).
pub fn valid_topic_segment(segment: &str) -> bool {
    !segment.is_empty() && !segment.starts_with('$') && !segment.contains(['/', '+', '#', '\0'])
}

/// `{prefix}/{site}/{line}/{machine}/rollup/{period}`: closed windows, QoS 1, durable.
pub fn rollup_topic(id: &Identity, line: &str, machine: &str, period: &str) -> String {
    format!("{}/rollup/{period}", machine_base(id, line, machine))
}

/// `{prefix}/{site}/{line}/{machine}/live`: open windows, QoS 1, retained.
pub fn live_topic(id: &Identity, line: &str, machine: &str) -> String {
    format!("{}/live", machine_base(id, line, machine))
}

/// `{prefix}/{site}/{line}/{machine}/event`: gaps, anomalies, defects, QoS 1, durable.
pub fn event_topic(id: &Identity, line: &str, machine: &str) -> String {
    format!("{}/event", machine_base(id, line, machine))
}

/// `{prefix}/{site}/_gateway/{gateway}/status`: online/offline (the last will), retained.
pub fn status_topic(id: &Identity) -> String {
    format!("{}/status", gateway_base(id))
}

/// `{prefix}/{site}/_gateway/{gateway}/health`: periodic health, retained.
pub fn health_topic(id: &Identity) -> String {
    format!("{}/health", gateway_base(id))
}

/// `{prefix}/{site}/_gateway/{gateway}/event`: events about the gateway itself (e.g. `publish_failure`),
/// QoS 1, durable; payloads are `event_payload` with line [`GATEWAY_LINE`] and the gateway as machine.
pub fn gateway_event_topic(id: &Identity) -> String {
    format!("{}/event", gateway_base(id))
}

fn machine_base(id: &Identity, line: &str, machine: &str) -> String {
    format!("{}/{}/{line}/{machine}", id.prefix, id.site)
}

fn gateway_base(id: &Identity) -> String {
    format!("{}/{}/_gateway/{}", id.prefix, id.site, id.gateway)
}

/// Idempotency key of a rollup: the same window and revision always give the same id.
pub fn msg_id(
    site: &str,
    gateway: Option<&str>,
    machine: &str,
    period: &str,
    start: Millis,
    revision: u32,
) -> String {
    let mut id = ContentId::new(ROLLUP_SCHEMA);
    id.field(site.as_bytes());
    match gateway {
        Some(gateway) => {
            id.field(b"gateway");
            id.field(gateway.as_bytes());
        }
        None => id.field(b"no_gateway"),
    }
    id.field(machine.as_bytes());
    id.field(period.as_bytes());
    id.field(&start.to_be_bytes());
    id.field(&revision.to_be_bytes());
    id.finish()
}

/// Length-prefixed SHA-256 over the fields, so no two field lists share an encoding.
struct ContentId(Sha256);

impl ContentId {
    fn new(schema: &str) -> ContentId {
        let mut id = ContentId(Sha256::new());
        id.field(schema.as_bytes());
        id
    }

    fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn finish(self) -> String {
        let mut hex = hex::encode(self.0.finalize());
        hex.truncate(MSG_ID_HEX_LEN);
        hex
    }
}

/// RFC 3339 with the zone's offset at that instant, e.g. `2026-11-28T09:00:00+09:00`.
/// Instants outside jiff's range (±9999 years) saturate at its limits.
fn rfc3339(at: Millis, tz: &TimeZone) -> String {
    let timestamp = Timestamp::from_millisecond(at).unwrap_or(if at < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    timestamp
        .display_with_offset(tz.to_offset(timestamp))
        .to_string()
}

fn rfc3339_utc(at: Millis) -> String {
    rfc3339(at, &TimeZone::fixed(Offset::UTC))
}

/// `{period, start, end}`, plus `shift` and `production_date` when the window has them.
fn window_object(record: &WindowRecord, tz: &TimeZone) -> Value {
    let mut window = Map::new();
    window.insert("period".into(), json!(record.period));
    window.insert("start".into(), json!(rfc3339(record.start, tz)));
    window.insert("end".into(), json!(rfc3339(record.end, tz)));
    if let Some(shift) = &record.shift {
        window.insert("shift".into(), json!(shift));
    }
    if let Some(date) = record.production_date {
        window.insert("production_date".into(), json!(date.to_string()));
    }
    Value::Object(window)
}

/// `{period, start, end}` plus the window's times, counts, KPIs, targets, nulls and flags.
fn window_fields(record: &WindowRecord, kpis: &Kpis, tz: &TimeZone) -> Map<String, Value> {
    let sums = &record.sums;
    let basis = &kpis.basis;
    let kpi: Map<String, Value> = kpis
        .values
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value)))
        .collect();
    let targets: Map<String, Value> = kpis
        .targets
        .iter()
        .map(|(name, figures)| {
            let figures = json!({
                "baseline": figures.baseline,
                "target": figures.target,
                "attainment": figures.attainment,
                "attainment_ratio": figures.attainment_ratio,
                "improvement": figures.improvement,
            });
            (name.to_string(), figures)
        })
        .collect();
    let nulls: Map<String, Value> = kpis
        .nulls
        .iter()
        .map(|(key, reason)| (key.to_string(), json!(reason.as_str())))
        .collect();
    // Window flags and KPI flags share one list, sorted by name (docs/kpi.md#flags).
    let mut flags: Vec<&str> = sums.flags.iter().map(|flag| flag.as_str()).collect();
    flags.extend(kpis.flags.iter().map(|flag| flag.as_str()));
    flags.sort_unstable();
    flags.dedup();

    let mut fields = Map::new();
    fields.insert("window".into(), window_object(record, tz));
    fields.insert("status".into(), json!(record.status.name()));
    fields.insert("revision".into(), json!(record.revision));
    fields.insert(
        "times_ms".into(),
        json!({
            "planned": basis.planned_ms,
            "running": sums.running_ms,
            "planned_stop": sums.planned_stop_ms,
            "unplanned_stop": sums.unplanned_stop_ms,
            "unknown": sums.unknown_ms,
            "out_of_plan": sums.out_of_plan_ms,
        }),
    );
    fields.insert(
        "counts".into(),
        json!({
            "produced": sums.produced,
            "good": basis.good,
            "defective": sums.defective,
            "by_reason": sums.by_reason,
        }),
    );
    fields.insert(
        "out_of_plan".into(),
        json!({
            "produced": basis.out_of_plan_produced,
            "good": basis.out_of_plan_good,
        }),
    );
    fields.insert("kpi".into(), Value::Object(kpi));
    fields.insert("targets".into(), Value::Object(targets));
    fields.insert("nulls".into(), Value::Object(nulls));
    fields.insert("flags".into(), json!(flags));
    fields
}

/// The rollup of a closed window (status "final" or "restated"), without `seq` and `db_epoch`.
pub fn rollup_payload(
    id: &Identity,
    line: &str,
    record: &WindowRecord,
    kpis: &Kpis,
    tz: &TimeZone,
) -> Value {
    let mut body = Map::new();
    body.insert("schema".into(), json!(ROLLUP_SCHEMA));
    body.insert(
        "msg_id".into(),
        json!(msg_id(
            &id.site,
            Some(&id.gateway),
            &record.machine,
            &record.period,
            record.start,
            record.revision,
        )),
    );
    body.insert("site".into(), json!(id.site));
    body.insert("line".into(), json!(line));
    body.insert("machine".into(), json!(record.machine));
    body.insert("gateway".into(), json!(id.gateway));
    body.extend(window_fields(record, kpis, tz));
    insert_versions(&mut body, id);
    Value::Object(body)
}

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

fn insert_versions(body: &mut Map<String, Value>, id: &Identity) {
    body.insert("agent_version".into(), json!(id.agent_version));
    body.insert("config_hash".into(), json!(id.config_hash));
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::logic::calendar::UnknownTime;
    use crate::logic::clock::StepDirection;
    use crate::logic::kpi::{compute, KpiFlag, Kpis, NullReason};
    use crate::logic::rollup::WindowStatus;
    use crate::logic::rollup::{Flag, WindowSums};
    use crate::logic::targets::{Target, TargetSchedule, Targets};

    const ROLLUP: &str = include_str!("../../schemas/rollup.schema.json");
    const LIVE: &str = include_str!("../../schemas/live.schema.json");
    const STATUS: &str = include_str!("../../schemas/status.schema.json");
    const HEALTH: &str = include_str!("../../schemas/health.schema.json");
    const EVENT: &str = include_str!("../../schemas/event.schema.json");

    /// 2026-11-28T09:00:00+09:00.
    const NINE_AM_SEOUL: Millis = 1_795_824_000_000;
    const MINUTE: Millis = 60_000;

    fn identity() -> Identity {
        Identity {
            prefix: "shopfloor".into(),
            site: "changwon-1".into(),
            gateway: "gw-01".into(),
            agent_version: "0.1.0".into(),
            config_hash: "5f2c0d9a".into(),
        }
    }

    fn seoul() -> TimeZone {
        TimeZone::get("Asia/Seoul").unwrap()
    }

    fn targets() -> Targets {
        Targets {
            productivity: Some(TargetSchedule::single(Target {
                baseline: 40.0,
                target: 50.0,
            })),
            defect_rate: Some(TargetSchedule::single(Target {
                baseline: 0.05,
                target: 0.0,
            })),
            ..Targets::default()
        }
    }

    /// KPIs of a window, with the targets valid at its start.
    fn kpis_for(window: &WindowRecord, ideal_ms: Option<u64>, targets: &Targets) -> Kpis {
        let ideal = ideal_ms.map(std::time::Duration::from_millis);
        compute(
            &window.sums,
            ideal,
            targets,
            window.start,
            UnknownTime::Loss,
        )
    }

    fn record(status: WindowStatus, revision: u32) -> WindowRecord {
        WindowRecord {
            machine: "press-3".into(),
            period: "15m".into(),
            start: NINE_AM_SEOUL,
            end: NINE_AM_SEOUL + 15 * MINUTE,
            shift: Some("early".into()),
            production_date: Some(jiff::civil::date(2026, 11, 28)),
            sums: WindowSums {
                produced: 212,
                defective: 4,
                by_reason: BTreeMap::from([("burr".into(), 3), ("crack".into(), 1)]),
                running_ms: 12 * MINUTE,
                planned_stop_ms: MINUTE,
                unplanned_stop_ms: 90_000,
                unknown_ms: 30_000,
                out_of_plan_ms: 0,
                out_of_plan_produced: 0,
                out_of_plan_defective: 0,
                flags: BTreeSet::from([Flag::Estimated, Flag::Gap]),
            },
            status,
            revision,
            dirty: false,
        }
    }

    fn validate(schema_text: &str, instance: &Value) -> Vec<String> {
        let schema: Value = serde_json::from_str(schema_text).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        validator
            .iter_errors(instance)
            .map(|error| format!("{} at {}", error, error.instance_path))
            .collect()
    }

    fn as_stored(mut body: Value, seq: i64) -> Value {
        body["seq"] = json!(seq);
        body["db_epoch"] = json!("3b1f9c7e2a6d4e10");
        body
    }

    #[test]
    fn every_event_kind_serializes_as_its_name_and_back() {
        for kind in EventKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, Value::from(kind.as_str()));
            assert_eq!(serde_json::from_value::<EventKind>(json).unwrap(), kind);
        }
    }

    #[test]
    fn the_schemas_list_exactly_the_event_kinds_flags_and_null_reasons_of_the_code() {
        let names = |schema: &str, pointer: &str| -> BTreeSet<String> {
            let schema: Value = serde_json::from_str(schema).unwrap();
            let list = schema.pointer(pointer).unwrap().as_array().unwrap();
            list.iter()
                .map(|name| name.as_str().unwrap().to_string())
                .collect()
        };
        let kinds: BTreeSet<String> = EventKind::ALL
            .iter()
            .map(|kind| kind.as_str().to_string())
            .collect();
        assert_eq!(names(EVENT, "/properties/kind/enum"), kinds);
        let flags: BTreeSet<String> = Flag::ALL
            .iter()
            .map(|flag| flag.as_str())
            .chain(KpiFlag::ALL.iter().map(|flag| flag.as_str()))
            .map(str::to_string)
            .collect();
        assert_eq!(names(ROLLUP, "/$defs/flags/items/enum"), flags);
        assert_eq!(names(LIVE, "/$defs/flags/items/enum"), flags);
        let reasons: BTreeSet<String> = NullReason::ALL
            .iter()
            .map(|reason| reason.as_str().to_string())
            .collect();
        assert_eq!(
            names(ROLLUP, "/$defs/nulls/additionalProperties/enum"),
            reasons
        );
        assert_eq!(
            names(LIVE, "/$defs/nulls/additionalProperties/enum"),
            reasons
        );
    }

    #[test]
    fn the_kpi_reference_has_every_anchor_the_schemas_cite_and_names_every_reason_and_flag() {
        const KPI_DOC: &str = include_str!("../../docs/kpi.md");
        // GitHub's anchors: the heading in lower case, spaces as '-', other punctuation dropped.
        let anchors: BTreeSet<String> = KPI_DOC
            .lines()
            .filter_map(|line| line.strip_prefix('#'))
            .map(|heading| {
                heading
                    .trim_start_matches('#')
                    .trim()
                    .to_lowercase()
                    .chars()
                    .filter_map(|c| match c {
                        ' ' => Some('-'),
                        c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        for schema in [ROLLUP, LIVE] {
            for cited in schema.split("docs/kpi.md#").skip(1) {
                let anchor: String = cited
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '-')
                    .collect();
                assert!(anchors.contains(&anchor), "docs/kpi.md has no #{anchor}");
            }
        }
        let names = NullReason::ALL
            .iter()
            .map(|reason| reason.as_str())
            .chain(Flag::ALL.iter().map(|flag| flag.as_str()))
            .chain(KpiFlag::ALL.iter().map(|flag| flag.as_str()));
        for name in names {
            assert!(
                KPI_DOC.contains(&format!("| `{name}` |")),
                "docs/kpi.md does not list {name}"
            );
        }
    }

    #[test]
    fn given_identity_when_topics_built_then_they_follow_the_design_tree() {
        let id = identity();

        assert_eq!(
            rollup_topic(&id, "line-a", "press-3", "15m"),
            "shopfloor/changwon-1/line-a/press-3/rollup/15m"
        );
        assert_eq!(
            live_topic(&id, "line-a", "press-3"),
            "shopfloor/changwon-1/line-a/press-3/live"
        );
        assert_eq!(
            event_topic(&id, "line-a", "press-3"),
            "shopfloor/changwon-1/line-a/press-3/event"
        );
        assert_eq!(
            status_topic(&id),
            "shopfloor/changwon-1/_gateway/gw-01/status"
        );
        assert_eq!(
            health_topic(&id),
            "shopfloor/changwon-1/_gateway/gw-01/health"
        );
    }

    #[test]
    fn given_segments_when_checked_then_wildcards_separators_and_dollar_are_rejected() {
        assert!(valid_topic_segment("press-3"));
        for bad in ["", "a/b", "a+", "#", "$SYS", "nul\0"] {
            assert!(!valid_topic_segment(bad), "{bad:?}");
        }
    }

    #[test]
    fn given_same_window_and_revision_when_msg_id_derived_twice_then_ids_are_equal() {
        let first = msg_id("s", Some("gw"), "m", "1m", NINE_AM_SEOUL, 0);
        let second = msg_id("s", Some("gw"), "m", "1m", NINE_AM_SEOUL, 0);

        assert_eq!(first, second);
        assert_eq!(first.len(), MSG_ID_HEX_LEN);
        assert!(first
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn given_any_identity_field_changed_when_msg_id_derived_then_id_changes() {
        let base = msg_id("s", Some("gw"), "m", "1m", NINE_AM_SEOUL, 0);
        let variants = [
            msg_id("s2", Some("gw"), "m", "1m", NINE_AM_SEOUL, 0),
            msg_id("s", Some("gw2"), "m", "1m", NINE_AM_SEOUL, 0),
            msg_id("s", None, "m", "1m", NINE_AM_SEOUL, 0),
            msg_id("s", Some("gw"), "m2", "1m", NINE_AM_SEOUL, 0),
            msg_id("s", Some("gw"), "m", "15m", NINE_AM_SEOUL, 0),
            msg_id("s", Some("gw"), "m", "1m", NINE_AM_SEOUL + MINUTE, 0),
            msg_id("s", Some("gw"), "m", "1m", NINE_AM_SEOUL, 1),
            // Shifting bytes between fields must not collide.
            msg_id("s", Some("g"), "wm", "1m", NINE_AM_SEOUL, 0),
        ];
        let distinct: BTreeSet<&String> = variants.iter().chain([&base]).collect();
        assert_eq!(distinct.len(), variants.len() + 1);
    }

    #[test]
    fn given_final_window_when_rollup_built_then_fields_match_design_and_schema() {
        // Given a final 15m window in Seoul.
        let window = record(WindowStatus::Final, 0);
        let kpis = kpis_for(&window, Some(3_000), &targets());

        // When
        let body = rollup_payload(&identity(), "line-a", &window, &kpis, &seoul());

        // Then the builder leaves seq/db_epoch to the store...
        assert!(body.get("seq").is_none() && body.get("db_epoch").is_none());
        // ...and with them added the payload satisfies the schema.
        let stored = as_stored(body, 42);
        assert_eq!(validate(ROLLUP, &stored), Vec::<String>::new());
        assert_eq!(stored["schema"], "shopfloor.rollup/1");
        assert_eq!(
            stored["msg_id"],
            msg_id(
                "changwon-1",
                Some("gw-01"),
                "press-3",
                "15m",
                NINE_AM_SEOUL,
                0
            )
        );
        assert_eq!(stored["window"]["start"], "2026-11-28T09:00:00+09:00");
        assert_eq!(stored["window"]["end"], "2026-11-28T09:15:00+09:00");
        assert_eq!(stored["window"]["shift"], "early");
        assert_eq!(stored["window"]["production_date"], "2026-11-28");
        assert_eq!(stored["status"], "final");
        // PBT = running 12 min + unplanned stop 1.5 min + unknown 0.5 min; the planned stop is not in it.
        assert_eq!(stored["times_ms"]["planned"], 14 * MINUTE);
        assert_eq!(stored["times_ms"]["out_of_plan"], 0);
        assert_eq!(stored["counts"]["good"], 208);
        assert_eq!(stored["counts"]["by_reason"]["burr"], 3);
        assert_eq!(stored["out_of_plan"]["produced"], 0);
        assert_eq!(stored["kpi"]["availability"], 12.0 / 14.0);
        assert_eq!(stored["targets"]["defect_rate"]["baseline"], 0.05);
        assert_eq!(stored["nulls"], json!({}));
        assert_eq!(stored["flags"], json!(["estimated", "gap"]));
        assert_eq!(stored["agent_version"], "0.1.0");
    }

    #[test]
    fn given_empty_restated_window_when_rollup_built_then_null_kpis_and_reasons_validate() {
        // Given a restated window with no time and no counts, replayed by the publisher.
        let mut window = record(WindowStatus::Restated, 2);
        window.sums = WindowSums::default();
        let kpis = kpis_for(&window, None, &targets());

        // When
        let mut stored = as_stored(
            rollup_payload(&identity(), "line-a", &window, &kpis, &seoul()),
            7,
        );
        stored["replayed"] = json!(true);

        // Then
        assert_eq!(validate(ROLLUP, &stored), Vec::<String>::new());
        assert_eq!(stored["status"], "restated");
        assert_eq!(stored["revision"], 2);
        assert_eq!(stored["kpi"]["oee"], Value::Null);
        assert_eq!(stored["nulls"]["oee"], "no_planned_time");
        assert_eq!(stored["nulls"]["defect_rate.attainment"], "no_production");
        assert_eq!(stored["targets"]["productivity"]["attainment"], Value::Null);
    }

    #[test]
    fn given_more_defective_than_produced_when_rollup_built_then_nulls_and_merged_flags_validate() {
        // Given a window whose defect counter ran ahead of its produced counter.
        let mut window = record(WindowStatus::Final, 0);
        window.sums.produced = 3;
        window.sums.defective = 5;
        window.sums.by_reason = BTreeMap::new();
        let kpis = kpis_for(&window, Some(3_000), &targets());

        // When
        let stored = as_stored(
            rollup_payload(&identity(), "line-a", &window, &kpis, &seoul()),
            9,
        );

        // Then quality and the defect figures are null with their reason, and the KPI flag sits among the
        // window flags in name order.
        assert_eq!(validate(ROLLUP, &stored), Vec::<String>::new());
        for name in ["quality", "oee", "defect_rate", "defect_ppm"] {
            assert_eq!(stored["kpi"][name], Value::Null, "{name}");
            assert_eq!(stored["nulls"][name], "inconsistent_counts", "{name}");
        }
        assert_eq!(
            stored["flags"],
            json!(["estimated", "gap", "inconsistent_counts"])
        );
    }

    #[test]
    fn given_a_machine_without_targets_when_rollup_built_then_goal_figures_are_null_no_target() {
        let window = record(WindowStatus::Final, 0);
        let kpis = kpis_for(&window, Some(3_000), &Targets::default());

        let stored = as_stored(
            rollup_payload(&identity(), "line-a", &window, &kpis, &seoul()),
            3,
        );

        assert_eq!(validate(ROLLUP, &stored), Vec::<String>::new());
        assert_eq!(stored["targets"], json!({}));
        assert_eq!(stored["nulls"]["productivity.attainment"], "no_target");
        assert_eq!(stored["nulls"]["defect_rate.improvement"], "no_target");
    }

    #[test]
    fn given_rollup_missing_a_required_field_when_validated_then_schema_rejects_it() {
        let window = record(WindowStatus::Final, 0);
        let kpis = kpis_for(&window, Some(3_000), &targets());
        let body = rollup_payload(&identity(), "line-a", &window, &kpis, &seoul());

        // Without the store's seq/db_epoch the payload is not publishable.
        assert!(!validate(ROLLUP, &body).is_empty());

        let mut stored = as_stored(body, 1);
        stored["kpi"].as_object_mut().unwrap().remove("oee");
        assert!(!validate(ROLLUP, &stored).is_empty());
    }

    #[test]
    fn given_rollup_with_wrong_status_or_extra_field_when_validated_then_schema_rejects_it() {
        let window = record(WindowStatus::Final, 0);
        let kpis = kpis_for(&window, Some(3_000), &targets());
        let stored = as_stored(
            rollup_payload(&identity(), "line-a", &window, &kpis, &seoul()),
            1,
        );

        let mut open = stored.clone();
        open["status"] = json!("open");
        let mut final_revised = stored.clone();
        final_revised["revision"] = json!(1);
        let mut extra = stored.clone();
        extra["surprise"] = json!(1);
        let mut unknown_reason = stored;
        unknown_reason["nulls"]["oee"] = json!("because");

        for bad in [open, final_revised, extra, unknown_reason] {
            assert!(!validate(ROLLUP, &bad).is_empty(), "{bad}");
        }
    }

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

    #[test]
    fn given_backlog_and_devices_when_health_built_then_it_validates() {
        let devices = vec![
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
        ];

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

    #[test]
    fn given_every_schema_file_when_checked_then_it_is_a_valid_draft_2020_12_schema() {
        for text in [ROLLUP, LIVE, STATUS, HEALTH, EVENT] {
            let schema: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                schema["$schema"],
                "https://json-schema.org/draft/2020-12/schema"
            );
            assert!(jsonschema::meta::is_valid(&schema));
        }
    }
}
