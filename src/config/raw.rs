//! The loose, serde-facing shape of the configuration file: strings where validation wants to
//! report a problem with its path instead of failing at the first one. Defaults live here.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(super) struct RawConfig {
    pub(super) agent: RawAgent,
    #[serde(default)]
    pub(super) mqtt: RawMqtt,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default)]
    pub(super) plc: Vec<RawPlc>,
    #[serde(default)]
    pub(super) machine: Vec<RawMachine>,
    #[serde(default)]
    pub(super) calendar: Option<RawCalendar>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawAgent {
    pub(super) site: String,
    pub(super) gateway: String,
    #[serde(default = "default_timezone")]
    pub(super) timezone: String,
    #[serde(default = "default_data_dir")]
    pub(super) data_dir: String,
    #[serde(default = "default_periods")]
    pub(super) periods: Vec<String>,
    #[serde(default)]
    pub(super) grace: BTreeMap<String, String>,
    #[serde(default = "default_live_interval")]
    pub(super) live_interval: String,
    #[serde(default = "default_health_interval")]
    pub(super) health_interval: String,
    #[serde(default = "default_horizon")]
    pub(super) restatement_horizon: String,
    #[serde(default = "default_unknown_time")]
    pub(super) unknown_time: String,
    #[serde(default = "default_log_format")]
    pub(super) log_format: String,
    #[serde(default = "default_poll_schedule")]
    pub(super) poll_schedule: String,
    #[serde(default)]
    pub(super) targets: RawAgentTargets,
}

/// `[agent] targets`: defaults every machine's `targets` inherits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgentTargets {
    pub(super) min_units: Option<u64>,
}

pub(super) fn default_timezone() -> String {
    "UTC".into()
}
pub(super) fn default_data_dir() -> String {
    "/var/lib/shopfloor-agent".into()
}
pub(super) fn default_periods() -> Vec<String> {
    vec!["1m".into(), "15m".into(), "1h".into()]
}
pub(super) fn default_live_interval() -> String {
    "5s".into()
}
pub(super) fn default_health_interval() -> String {
    "30s".into()
}
pub(super) fn default_horizon() -> String {
    "72h".into()
}
pub(super) fn default_unknown_time() -> String {
    "loss".into()
}
pub(super) fn default_log_format() -> String {
    "text".into()
}
pub(super) fn default_poll_schedule() -> String {
    "aligned".into()
}

/// `[calendar]`: shifts repeating daily in `agent.timezone`, and the days not worked.
#[derive(Debug, Deserialize)]
pub(super) struct RawCalendar {
    #[serde(default)]
    pub(super) shifts: Vec<RawShift>,
    #[serde(default)]
    pub(super) days_off: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawShift {
    pub(super) name: String,
    pub(super) start: String,
    pub(super) duration: String,
    #[serde(default)]
    pub(super) breaks: Vec<RawBreak>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawBreak {
    pub(super) start: String,
    pub(super) duration: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawMqtt {
    #[serde(default = "default_host")]
    pub(super) host: String,
    #[serde(default = "default_port")]
    pub(super) port: u16,
    pub(super) client_id: Option<String>,
    #[serde(default = "default_prefix")]
    pub(super) topic_prefix: String,
    #[serde(default)]
    pub(super) tls: bool,
    #[serde(default = "default_keep_alive")]
    pub(super) keep_alive: String,
    #[serde(default = "default_inflight")]
    pub(super) max_inflight: u32,
    #[serde(default = "default_connect_timeout")]
    pub(super) connect_timeout: String,
    /// Absent: `DEFAULT_RECONNECT_MAX`.
    pub(super) reconnect_max: Option<String>,
    #[serde(default = "default_protocol")]
    pub(super) protocol: String,
    #[serde(default = "default_drain_rate")]
    pub(super) drain_rate: u32,
    #[serde(default = "default_max_packet_size")]
    pub(super) max_packet_size: String,
    pub(super) ca_file: Option<String>,
    pub(super) ca: Option<String>,
    pub(super) server_name: Option<String>,
    pub(super) cert_file: Option<String>,
    pub(super) key_file: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password_file: Option<String>,
    /// Refused when present; its value is never kept, so it cannot reach a message.
    pub(super) password: Option<Discarded>,
}

impl Default for RawMqtt {
    fn default() -> Self {
        RawMqtt {
            host: default_host(),
            port: default_port(),
            client_id: None,
            topic_prefix: default_prefix(),
            tls: false,
            keep_alive: default_keep_alive(),
            max_inflight: default_inflight(),
            connect_timeout: default_connect_timeout(),
            reconnect_max: None,
            protocol: default_protocol(),
            drain_rate: default_drain_rate(),
            max_packet_size: default_max_packet_size(),
            ca_file: None,
            ca: None,
            server_name: None,
            cert_file: None,
            key_file: None,
            username: None,
            password_file: None,
            password: None,
        }
    }
}

pub(super) fn default_host() -> String {
    "127.0.0.1".into()
}
pub(super) fn default_port() -> u16 {
    1883
}
pub(super) fn default_prefix() -> String {
    "shopfloor/v1".into()
}
pub(super) fn default_keep_alive() -> String {
    "30s".into()
}
pub(super) fn default_inflight() -> u32 {
    256
}
pub(super) fn default_connect_timeout() -> String {
    "10s".into()
}
pub(super) fn default_protocol() -> String {
    "v5".into()
}
pub(super) fn default_drain_rate() -> u32 {
    500
}
pub(super) fn default_max_packet_size() -> String {
    "256KiB".into()
}

/// `[http]`: the optional metrics and health endpoint; absent `listen` means no listening socket.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawHttp {
    #[serde(default)]
    pub(super) listen: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawStore {
    #[serde(default = "default_max_bytes")]
    pub(super) max_bytes: String,
    #[serde(default)]
    pub(super) audit_retention: Option<String>,
    #[serde(default = "default_commit_interval")]
    pub(super) commit_interval: String,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            max_bytes: default_max_bytes(),
            audit_retention: None,
            commit_interval: default_commit_interval(),
        }
    }
}

pub(super) fn default_commit_interval() -> String {
    // Chosen from the fleet benchmark (README, "Performance"): 200 machines at 1 s wrote 1.3 GB/hour with 1s
    // and 54 MB/hour with 60s, which a gateway's eMMC can bear for years.
    "60s".into()
}

pub(super) fn default_max_bytes() -> String {
    "1GiB".into()
}

#[derive(Debug, Deserialize)]
pub(super) struct RawPlc {
    pub(super) id: String,
    pub(super) address: String,
    #[serde(default = "default_unit")]
    pub(super) unit_id: u8,
    #[serde(default = "default_poll")]
    pub(super) poll_interval: String,
    #[serde(default = "default_timeout")]
    pub(super) timeout: String,
    #[serde(default = "default_backoff_max")]
    pub(super) backoff_max: String,
    #[serde(default = "default_max_gap")]
    pub(super) max_gap: u16,
    #[serde(default = "default_max_regs")]
    pub(super) max_registers_per_request: u16,
    #[serde(default)]
    pub(super) one_request_per_tag: bool,
    #[serde(default = "default_pause")]
    pub(super) pause_between_requests: String,
    #[serde(default = "default_unit_failures")]
    pub(super) unit_failure_threshold: u32,
    #[serde(default = "default_unit_backoff")]
    pub(super) unit_backoff: String,
    #[serde(default = "default_disabled_retry")]
    pub(super) disabled_retry: String,
    #[serde(default = "default_disabled_retry_max")]
    pub(super) disabled_retry_max: String,
}

pub(super) fn default_unit() -> u8 {
    1
}
pub(super) fn default_poll() -> String {
    "1s".into()
}
pub(super) fn default_timeout() -> String {
    "500ms".into()
}
pub(super) fn default_backoff_max() -> String {
    "30s".into()
}
pub(super) fn default_max_gap() -> u16 {
    16
}
pub(super) fn default_max_regs() -> u16 {
    125
}
pub(super) fn default_pause() -> String {
    "0ms".into()
}
pub(super) fn default_unit_failures() -> u32 {
    3
}
pub(super) fn default_unit_backoff() -> String {
    "30s".into()
}
pub(super) fn default_disabled_retry() -> String {
    "1m".into()
}
pub(super) fn default_disabled_retry_max() -> String {
    "15m".into()
}

#[derive(Debug, Deserialize)]
pub(super) struct RawMachine {
    pub(super) id: String,
    pub(super) line: String,
    pub(super) plc: String,
    pub(super) unit_id: Option<u8>,
    pub(super) ideal_cycle_time: Option<String>,
    pub(super) counters: RawCounters,
    #[serde(default)]
    pub(super) defect_reasons: BTreeMap<String, RawTag>,
    pub(super) state: Option<RawState>,
    #[serde(default)]
    pub(super) targets: RawTargets,
}

/// `[machine] targets`: a KPI's target is one table or a list of tables valid from a date on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTargets {
    pub(super) productivity: Option<RawTargetSpec>,
    pub(super) defect_rate: Option<RawTargetSpec>,
    pub(super) min_units: Option<u64>,
}

/// One target table (today's form) or a list of them, each with `valid_from`.
#[derive(Debug)]
pub(super) enum RawTargetSpec {
    Single(RawTarget),
    Dated(Vec<RawTarget>),
}

// By hand rather than `untagged`, so a typo inside a table reports the unknown field, not
// "did not match any variant".
impl<'de> Deserialize<'de> for RawTargetSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> serde::de::Visitor<'de> for SpecVisitor {
            type Value = RawTargetSpec;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a { baseline, target } table or a list of { baseline, target, valid_from }",
                )
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawTargetSpec, A::Error> {
                let deserializer = serde::de::value::MapAccessDeserializer::new(map);
                RawTarget::deserialize(deserializer).map(RawTargetSpec::Single)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<RawTargetSpec, A::Error> {
                let deserializer = serde::de::value::SeqAccessDeserializer::new(seq);
                Vec::<RawTarget>::deserialize(deserializer).map(RawTargetSpec::Dated)
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub(super) baseline: f64,
    pub(super) target: f64,
    pub(super) valid_from: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawCounters {
    pub(super) produced: RawTag,
    pub(super) defective: Option<RawTag>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawTag {
    #[serde(default = "default_table")]
    pub(super) table: String,
    pub(super) address: u32,
    #[serde(rename = "type", default = "default_counter_type")]
    pub(super) data_type: String,
    #[serde(default)]
    pub(super) word_order: Option<String>,
    #[serde(default)]
    pub(super) byte_swap: bool,
    pub(super) modulus: Option<String>,
    #[serde(default = "default_true")]
    pub(super) wrap: bool,
    pub(super) on_decrease: Option<String>,
    pub(super) design_rate: Option<f64>,
    pub(super) t_max: Option<String>,
}

pub(super) fn default_table() -> String {
    "holding".into()
}
pub(super) fn default_counter_type() -> String {
    "u16".into()
}
pub(super) fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub(super) struct RawState {
    #[serde(default = "default_table")]
    pub(super) table: String,
    pub(super) address: u32,
    #[serde(rename = "type", default = "default_counter_type")]
    pub(super) data_type: String,
    #[serde(default)]
    pub(super) word_order: Option<String>,
    #[serde(default)]
    pub(super) byte_swap: bool,
    pub(super) bit: Option<u8>,
    #[serde(default)]
    pub(super) running: Vec<i64>,
    #[serde(default)]
    pub(super) planned_stop: Vec<i64>,
    #[serde(default)]
    pub(super) unplanned_stop: Vec<i64>,
}

/// A value that is read and thrown away (an inline `[mqtt] password`): validation only needs to know it was
/// there, and nothing can print what was never kept. Read as a value (not `IgnoredAny`) so that it is not
/// reported as an unknown key as well.
#[derive(Debug, Clone, Copy)]
pub(super) struct Discarded;

impl<'de> Deserialize<'de> for Discarded {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(|_| Discarded)
    }
}
