//! MQTT topic names and JSON payloads (README.md, "MQTT topics"; schemas/); every topic string of the crate is built here.
//! Payloads match the JSON Schemas in `schemas/`. Durable payloads (rollup, event) are built without
//! `seq` and `db_epoch`: the store adds those when it enqueues the row. Pure: no I/O, no clock reads.
//! This module holds the identity, the topic tree, the schema names and `msg_id`; each payload family has its
//! own submodule, re-exported here so callers use `logic::payload::...`.

use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::Millis;

mod event;
mod health;
mod live;
mod rollup;
#[cfg(test)]
mod test_support;

pub use event::event_payload;
pub use health::{
    health_payload, insert_mqtt_health, insert_tls_health, status_payload, BacklogReport,
    DeviceHealth, DisabledTagReport, MqttHealth, TlsHealth, UnitHealthReport,
};
pub use live::live_payload;
pub use rollup::rollup_payload;

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

/// Adds `agent_version` and `config_hash`, which every payload carries.
fn insert_versions(body: &mut Map<String, Value>, id: &Identity) {
    body.insert("agent_version".into(), json!(id.agent_version));
    body.insert("config_hash".into(), json!(id.config_hash));
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::*;

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
        const KPI_DOC: &str = include_str!("../../../docs/kpi.md");
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
