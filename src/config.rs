//! Configuration: one TOML file plus `SHOPFLOOR__` environment overrides → a validated [`Config`].
//! Parsing keeps values loose (strings) so that validation can report *every* problem with its TOML
//! path at once; nothing outside this module sees a raw value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::logic::counter::{CounterConfig, OnDecrease};
use crate::logic::decode::{decode, DataType, DecodeError, Encoding, Table, Value, WordOrder};
use crate::logic::kpi::Targets;
use crate::logic::rollup::MachineState;
use crate::logic::window::Period;

/// Prefix of environment overrides, e.g. `SHOPFLOOR__MQTT__HOST`.
pub const ENV_PREFIX: &str = "SHOPFLOOR";

/// One configuration problem, located by its TOML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// TOML path such as `machine[0].counters.produced.type`.
    pub path: String,
    /// What is wrong, as a sentence fragment.
    pub message: String,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or an override could not be applied.
    #[error("cannot parse config file {file}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// The file parsed but has problems; all of them are listed.
    #[error("{}", render_problems(file, problems))]
    Invalid {
        /// The file.
        file: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn render_problems(file: &str, problems: &[Problem]) -> String {
    let mut out = format!("{} problem(s) in config file {file}:", problems.len());
    for problem in problems {
        out.push_str(&format!("\n  - {}: {}", problem.path, problem.message));
    }
    out
}

/// The validated configuration the agent runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (file path or a label such as "embedded demo config").
    pub source: String,
    /// Short hash of the file text and the overrides; published in every rollup.
    pub config_hash: String,
    /// `[agent]`.
    pub agent: AgentConfig,
    /// `[mqtt]`.
    pub mqtt: MqttConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[[plc]]`, in file order.
    pub plcs: Vec<PlcConfig>,
    /// `[[machine]]`, in file order.
    pub machines: Vec<MachineConfig>,
}

/// `[agent]`: identity, time zone, windows.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Company/plant id; in every topic.
    pub site: String,
    /// Gateway id.
    pub gateway: String,
    /// IANA time zone name.
    pub timezone_name: String,
    /// The time zone windows are aligned to.
    pub timezone: jiff::tz::TimeZone,
    /// Directory for the database and the lock file.
    pub data_dir: PathBuf,
    /// Rollup periods with their grace before closing.
    pub periods: Vec<PeriodConfig>,
    /// How often open windows are published on the live topic.
    pub live_interval: Duration,
    /// How often the health topic is published.
    pub health_interval: Duration,
    /// How long closed windows can still be restated by late facts.
    pub restatement_horizon: Duration,
}

/// A rollup period and how long to wait for late facts before closing a window of it.
#[derive(Debug, Clone)]
pub struct PeriodConfig {
    /// Name and length.
    pub period: Period,
    /// Grace after the window end.
    pub grace: Duration,
}

/// `[mqtt]`.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client id.
    pub client_id: String,
    /// Topic prefix, e.g. `shopfloor/v1`.
    pub topic_prefix: String,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Max QoS 1 publishes awaiting PUBACK.
    pub max_inflight: u16,
    /// Timeout for TCP connect + CONNACK.
    pub connect_timeout: Duration,
    /// MQTT protocol version.
    pub protocol: MqttProtocol,
    /// Most backlog rows published per second after an outage; live data is not limited.
    pub drain_rate: Option<u32>,
    /// Largest payload the broker accepts; larger messages are refused at enqueue and recorded.
    pub max_packet_size: u64,
}

/// MQTT protocol version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttProtocol {
    /// MQTT 3.1.1.
    V4,
    /// MQTT 5: PUBACK reason codes are checked.
    V5,
}

/// `[store]`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Byte quota of the database.
    pub max_bytes: u64,
}

/// `[[plc]]`: one Modbus/TCP connection.
#[derive(Debug, Clone)]
pub struct PlcConfig {
    /// PLC id.
    pub id: String,
    /// `host:port`.
    pub address: String,
    /// Default unit id for machines on this PLC.
    pub unit_id: u8,
    /// Poll period.
    pub poll_interval: Duration,
    /// Timeout of every connect and every request.
    pub timeout: Duration,
    /// Cap of the reconnect backoff.
    pub backoff_max: Duration,
    /// Largest run of unused registers bridged when merging reads.
    pub max_gap: u16,
    /// Largest number of registers in one request.
    pub max_registers_per_request: u16,
    /// Read every tag with its own request (for devices that reject merged reads).
    pub one_request_per_tag: bool,
    /// Pause between two requests on this connection (slow TCP→RTU gateways).
    pub pause_between_requests: Duration,
    /// Consecutive failed cycles after which one unit is skipped for `unit_backoff`.
    pub unit_failure_threshold: u32,
    /// How long a failing unit is skipped before it is retried.
    pub unit_backoff: Duration,
}

/// Where a value lives and how it is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TagAddress {
    /// Unit id (slave id) on the PLC connection.
    pub unit_id: u8,
    /// Modbus table.
    pub table: Table,
    /// 0-based protocol address.
    pub address: u16,
    /// Data type and byte/word order.
    pub encoding: Encoding,
    /// For `bool` in a register: the bit (0 = least significant) that holds the value.
    pub bit: Option<u8>,
}

impl TagAddress {
    /// Number of registers (or bits) the value occupies.
    pub fn count(&self) -> u16 {
        self.encoding.data_type.register_count()
    }

    /// Decodes this tag's words, applying `bit` for a bool taken from a register.
    pub fn decode(&self, words: &[u16]) -> Result<Value, DecodeError> {
        match (self.bit, words) {
            (Some(bit), [word]) => Ok(Value::Bool((word >> bit) & 1 == 1)),
            _ => decode(words, &self.encoding),
        }
    }
}

/// A cumulative counter register and its wrap/reset behaviour.
#[derive(Debug, Clone)]
pub struct CounterTag {
    /// Where it lives.
    pub tag: TagAddress,
    /// How raw values become deltas.
    pub counter: CounterConfig,
}

/// The machine-state register and how its values map onto states.
#[derive(Debug, Clone)]
pub struct StateTag {
    /// Where it lives.
    pub tag: TagAddress,
    /// Raw value → state; unmapped values count as unknown.
    pub mapping: BTreeMap<i64, MachineState>,
}

impl StateTag {
    /// Maps a raw register value to a machine state.
    pub fn state_of(&self, raw: i64) -> MachineState {
        self.mapping
            .get(&raw)
            .copied()
            .unwrap_or(MachineState::Unknown)
    }
}

/// `[[machine]]`.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// Machine id; in topics.
    pub id: String,
    /// Line id; in topics.
    pub line: String,
    /// Index into [`Config::plcs`].
    pub plc: usize,
    /// Ideal cycle time (PRU).
    pub ideal_cycle_time: Option<Duration>,
    /// Produced counter.
    pub produced: CounterTag,
    /// Defective counter.
    pub defective: Option<CounterTag>,
    /// Per-reason defect counters, by reason name.
    pub defect_reasons: Vec<(String, CounterTag)>,
    /// State register.
    pub state: Option<StateTag>,
    /// Productivity and defect-rate targets.
    pub targets: Targets,
}

impl Config {
    /// Loads a TOML file, applies `SHOPFLOOR__` environment overrides and validates the result.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::from_toml(&text, &file, true)
    }

    /// Parses and validates TOML text; `file` names it in errors. Environment overrides apply when `with_env`.
    pub fn from_toml(text: &str, file: &str, with_env: bool) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml));
        let mut overrides: Vec<(String, String)> = Vec::new();
        if with_env {
            builder = builder.add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            );
            let prefix = format!("{ENV_PREFIX}__");
            overrides = std::env::vars()
                .filter(|(k, _)| k.starts_with(&prefix))
                .collect();
            overrides.sort();
        }
        let merged = builder.build().map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;

        let mut unknown: Vec<String> = Vec::new();
        let mut on_unknown = |path: serde_ignored::Path| unknown.push(toml_path(&path.to_string()));
        let deserializer = serde_ignored::Deserializer::new(merged, &mut on_unknown);
        let raw: Result<RawConfig, _> = serde_path_to_error::deserialize(deserializer);
        let mut problems: Vec<Problem> = unknown
            .iter()
            .map(|path| Problem {
                path: path.clone(),
                message: "unknown key".into(),
            })
            .collect();
        let raw = match raw {
            Ok(raw) => raw,
            Err(error) => {
                let path = error.path().to_string();
                problems.push(Problem {
                    path: if path == "." {
                        "(top level)".into()
                    } else {
                        path
                    },
                    message: error.into_inner().to_string(),
                });
                return Err(ConfigError::Invalid {
                    file: file.to_string(),
                    problems,
                });
            }
        };

        let mut hasher = Sha256::new();
        hasher.update(text.as_bytes());
        for (key, value) in &overrides {
            hasher.update(format!("\n{key}={value}").as_bytes());
        }
        let config_hash = hex::encode(&hasher.finalize()[..6]);

        let mut v = Validator {
            problems: &mut problems,
        };
        let config = v.config(raw, file, config_hash);
        if problems.is_empty() {
            Ok(config.expect("validation produced a config when it found no problems"))
        } else {
            Err(ConfigError::Invalid {
                file: file.to_string(),
                problems,
            })
        }
    }

    /// The machines polled over the PLC with index `plc`.
    pub fn machines_of(&self, plc: usize) -> impl Iterator<Item = (usize, &MachineConfig)> {
        self.machines
            .iter()
            .enumerate()
            .filter(move |(_, m)| m.plc == plc)
    }
}

// ---------------------------------------------------------------------------------------------
// Raw, loosely typed shape of the file.

#[derive(Debug, Deserialize)]
struct RawConfig {
    agent: RawAgent,
    #[serde(default)]
    mqtt: RawMqtt,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    plc: Vec<RawPlc>,
    #[serde(default)]
    machine: Vec<RawMachine>,
}

#[derive(Debug, Deserialize)]
struct RawAgent {
    site: String,
    gateway: String,
    #[serde(default = "default_timezone")]
    timezone: String,
    #[serde(default = "default_data_dir")]
    data_dir: String,
    #[serde(default = "default_periods")]
    periods: Vec<String>,
    #[serde(default)]
    grace: BTreeMap<String, String>,
    #[serde(default = "default_live_interval")]
    live_interval: String,
    #[serde(default = "default_health_interval")]
    health_interval: String,
    #[serde(default = "default_horizon")]
    restatement_horizon: String,
}

fn default_timezone() -> String {
    "UTC".into()
}
fn default_data_dir() -> String {
    "/var/lib/shopfloor-agent".into()
}
fn default_periods() -> Vec<String> {
    vec!["1m".into(), "15m".into(), "1h".into()]
}
fn default_live_interval() -> String {
    "5s".into()
}
fn default_health_interval() -> String {
    "30s".into()
}
fn default_horizon() -> String {
    "72h".into()
}

#[derive(Debug, Deserialize)]
struct RawMqtt {
    #[serde(default = "default_host")]
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    client_id: Option<String>,
    #[serde(default = "default_prefix")]
    topic_prefix: String,
    #[serde(default)]
    tls: bool,
    #[serde(default = "default_keep_alive")]
    keep_alive: String,
    #[serde(default = "default_inflight")]
    max_inflight: u32,
    #[serde(default = "default_connect_timeout")]
    connect_timeout: String,
    #[serde(default = "default_protocol")]
    protocol: String,
    #[serde(default = "default_drain_rate")]
    drain_rate: u32,
    #[serde(default = "default_max_packet_size")]
    max_packet_size: String,
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
            protocol: default_protocol(),
            drain_rate: default_drain_rate(),
            max_packet_size: default_max_packet_size(),
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    1883
}
fn default_prefix() -> String {
    "shopfloor/v1".into()
}
fn default_keep_alive() -> String {
    "30s".into()
}
fn default_inflight() -> u32 {
    256
}
fn default_connect_timeout() -> String {
    "10s".into()
}
fn default_protocol() -> String {
    "v4".into()
}
fn default_drain_rate() -> u32 {
    500
}
fn default_max_packet_size() -> String {
    "256KiB".into()
}

#[derive(Debug, Deserialize)]
struct RawStore {
    #[serde(default = "default_max_bytes")]
    max_bytes: String,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            max_bytes: default_max_bytes(),
        }
    }
}

fn default_max_bytes() -> String {
    "1GiB".into()
}

#[derive(Debug, Deserialize)]
struct RawPlc {
    id: String,
    address: String,
    #[serde(default = "default_unit")]
    unit_id: u8,
    #[serde(default = "default_poll")]
    poll_interval: String,
    #[serde(default = "default_timeout")]
    timeout: String,
    #[serde(default = "default_backoff_max")]
    backoff_max: String,
    #[serde(default = "default_max_gap")]
    max_gap: u16,
    #[serde(default = "default_max_regs")]
    max_registers_per_request: u16,
    #[serde(default)]
    one_request_per_tag: bool,
    #[serde(default = "default_pause")]
    pause_between_requests: String,
    #[serde(default = "default_unit_failures")]
    unit_failure_threshold: u32,
    #[serde(default = "default_unit_backoff")]
    unit_backoff: String,
}

fn default_unit() -> u8 {
    1
}
fn default_poll() -> String {
    "1s".into()
}
fn default_timeout() -> String {
    "500ms".into()
}
fn default_backoff_max() -> String {
    "30s".into()
}
fn default_max_gap() -> u16 {
    16
}
fn default_max_regs() -> u16 {
    125
}
fn default_pause() -> String {
    "0ms".into()
}
fn default_unit_failures() -> u32 {
    3
}
fn default_unit_backoff() -> String {
    "30s".into()
}

#[derive(Debug, Deserialize)]
struct RawMachine {
    id: String,
    line: String,
    plc: String,
    unit_id: Option<u8>,
    ideal_cycle_time: Option<String>,
    counters: RawCounters,
    #[serde(default)]
    defect_reasons: BTreeMap<String, RawTag>,
    state: Option<RawState>,
    #[serde(default)]
    targets: Targets,
}

#[derive(Debug, Deserialize)]
struct RawCounters {
    produced: RawTag,
    defective: Option<RawTag>,
}

#[derive(Debug, Deserialize)]
struct RawTag {
    #[serde(default = "default_table")]
    table: String,
    address: u32,
    #[serde(rename = "type", default = "default_counter_type")]
    data_type: String,
    #[serde(default)]
    word_order: Option<String>,
    #[serde(default)]
    byte_swap: bool,
    modulus: Option<String>,
    #[serde(default = "default_true")]
    wrap: bool,
    on_decrease: Option<String>,
    design_rate: Option<f64>,
}

fn default_table() -> String {
    "holding".into()
}
fn default_counter_type() -> String {
    "u16".into()
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct RawState {
    #[serde(default = "default_table")]
    table: String,
    address: u32,
    #[serde(rename = "type", default = "default_counter_type")]
    data_type: String,
    #[serde(default)]
    word_order: Option<String>,
    #[serde(default)]
    byte_swap: bool,
    bit: Option<u8>,
    #[serde(default)]
    running: Vec<i64>,
    #[serde(default)]
    planned_stop: Vec<i64>,
    #[serde(default)]
    unplanned_stop: Vec<i64>,
}

// ---------------------------------------------------------------------------------------------
// Validation: raw → typed, collecting every problem.

/// The register fields shared by counters and the state register.
struct TagFields<'a> {
    table: &'a str,
    address: u32,
    data_type: &'a str,
    word_order: Option<&'a str>,
    byte_swap: bool,
    bit: Option<u8>,
}

struct Validator<'a> {
    problems: &'a mut Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, path: &str, text: &str) -> Duration {
        match parse_duration(text) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.problem(path, "must be longer than zero");
                Duration::from_secs(1)
            }
            Err(message) => {
                self.problem(path, message);
                Duration::from_secs(1)
            }
        }
    }

    fn id(&mut self, path: &str, value: &str) {
        if value.is_empty() {
            self.problem(path, "must not be empty");
        } else if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            self.problem(
                path,
                format!("{value:?} may only contain letters, digits, '-', '_' and '.' (it becomes an MQTT topic level)"),
            );
        }
    }

    fn config(&mut self, raw: RawConfig, file: &str, config_hash: String) -> Option<Config> {
        let agent = self.agent(raw.agent);
        let mqtt = self.mqtt(raw.mqtt, &agent);
        let max_bytes = match parse_bytes(&raw.store.max_bytes) {
            Ok(bytes) if bytes >= 1 << 20 => bytes,
            Ok(_) => {
                self.problem("store.max_bytes", "must be at least 1MiB");
                1 << 20
            }
            Err(message) => {
                self.problem("store.max_bytes", message);
                1 << 20
            }
        };

        if raw.plc.is_empty() {
            self.problem("plc", "at least one [[plc]] is required");
        }
        let mut plc_ids = BTreeSet::new();
        let plcs: Vec<PlcConfig> = raw
            .plc
            .into_iter()
            .enumerate()
            .map(|(i, plc)| {
                let path = format!("plc[{i}]");
                if !plc_ids.insert(plc.id.clone()) {
                    self.problem(
                        format!("{path}.id"),
                        format!("duplicate PLC id {:?}", plc.id),
                    );
                }
                self.plc(&path, plc)
            })
            .collect();

        if raw.machine.is_empty() {
            self.problem("machine", "at least one [[machine]] is required");
        }
        let mut machine_ids = BTreeSet::new();
        let mut machines = Vec::new();
        for (i, machine) in raw.machine.into_iter().enumerate() {
            let path = format!("machine[{i}]");
            if !machine_ids.insert(machine.id.clone()) {
                self.problem(
                    format!("{path}.id"),
                    format!("duplicate machine id {:?}", machine.id),
                );
            }
            if let Some(m) = self.machine(&path, machine, &plcs) {
                machines.push(m);
            }
        }
        self.overlaps(&machines, &plcs);

        Some(Config {
            source: file.to_string(),
            config_hash,
            agent: agent?,
            mqtt,
            store: StoreConfig { max_bytes },
            plcs,
            machines,
        })
    }

    fn agent(&mut self, raw: RawAgent) -> Option<AgentConfig> {
        self.id("agent.site", &raw.site);
        self.id("agent.gateway", &raw.gateway);
        let timezone = match jiff::tz::TimeZone::get(&raw.timezone) {
            Ok(tz) => Some(tz),
            Err(e) => {
                self.problem(
                    "agent.timezone",
                    format!("{:?} is not a known IANA time zone ({e})", raw.timezone),
                );
                None
            }
        };
        if raw.data_dir.is_empty() {
            self.problem("agent.data_dir", "must not be empty");
        }
        let mut periods = Vec::new();
        if raw.periods.is_empty() {
            self.problem("agent.periods", "at least one period is required");
        }
        let mut seen = BTreeSet::new();
        for (i, name) in raw.periods.iter().enumerate() {
            let path = format!("agent.periods[{i}]");
            match Period::parse(name) {
                Ok(period) => {
                    if !seen.insert(period.length_ms) {
                        self.problem(&path, format!("period {name:?} is listed twice"));
                    }
                    let grace = match raw.grace.get(name) {
                        Some(text) => self.duration(&format!("agent.grace.{name}"), text),
                        None => default_grace(period.length_ms),
                    };
                    periods.push(PeriodConfig { period, grace });
                }
                Err(message) => self.problem(&path, message),
            }
        }
        for name in raw.grace.keys() {
            if !raw.periods.contains(name) {
                self.problem(
                    format!("agent.grace.{name}"),
                    "names a period that is not in agent.periods",
                );
            }
        }
        let live_interval = self.duration("agent.live_interval", &raw.live_interval);
        let health_interval = self.duration("agent.health_interval", &raw.health_interval);
        let restatement_horizon =
            self.duration("agent.restatement_horizon", &raw.restatement_horizon);
        Some(AgentConfig {
            site: raw.site,
            gateway: raw.gateway,
            timezone_name: raw.timezone,
            timezone: timezone?,
            data_dir: PathBuf::from(raw.data_dir),
            periods,
            live_interval,
            health_interval,
            restatement_horizon,
        })
    }

    fn mqtt(&mut self, raw: RawMqtt, agent: &Option<AgentConfig>) -> MqttConfig {
        if raw.host.is_empty() {
            self.problem("mqtt.host", "must not be empty");
        }
        if raw.port == 0 {
            self.problem("mqtt.port", "must be between 1 and 65535");
        }
        if raw.tls {
            self.problem(
                "mqtt.tls",
                "TLS is not supported by this build yet; set tls = false on a trusted network",
            );
        }
        if raw.topic_prefix.is_empty()
            || raw.topic_prefix.contains(['+', '#'])
            || raw.topic_prefix.starts_with('/')
            || raw.topic_prefix.ends_with('/')
        {
            self.problem(
                "mqtt.topic_prefix",
                "must be non-empty, without '+', '#' or a leading/trailing '/'",
            );
        }
        let max_inflight = match u16::try_from(raw.max_inflight) {
            Ok(n) if n > 0 => n,
            _ => {
                self.problem("mqtt.max_inflight", "must be between 1 and 65535");
                1
            }
        };
        let keep_alive = self.duration("mqtt.keep_alive", &raw.keep_alive);
        if parse_duration(&raw.keep_alive).is_ok() && keep_alive < Duration::from_secs(5) {
            self.problem("mqtt.keep_alive", "must be at least 5s");
        }
        let protocol = match raw.protocol.as_str() {
            "v4" | "3.1.1" => MqttProtocol::V4,
            "v5" | "5" => MqttProtocol::V5,
            other => {
                self.problem("mqtt.protocol", format!("{other:?} is not one of v4, v5"));
                MqttProtocol::V4
            }
        };
        let max_packet_size = match parse_bytes(&raw.max_packet_size) {
            Ok(bytes) if (1024..=268_435_455).contains(&bytes) => bytes,
            Ok(_) => {
                self.problem("mqtt.max_packet_size", "must be between 1KiB and 256MiB");
                256 * 1024
            }
            Err(message) => {
                self.problem("mqtt.max_packet_size", message);
                256 * 1024
            }
        };
        let client_id = raw.client_id.unwrap_or_else(|| match agent {
            Some(agent) => format!("{}-{}", agent.site, agent.gateway),
            None => "shopfloor-agent".into(),
        });
        if client_id.is_empty() || client_id.len() > 64 {
            self.problem("mqtt.client_id", "must be 1 to 64 characters");
        }
        MqttConfig {
            host: raw.host,
            port: raw.port,
            client_id,
            topic_prefix: raw.topic_prefix,
            keep_alive,
            max_inflight,
            connect_timeout: self.duration("mqtt.connect_timeout", &raw.connect_timeout),
            protocol,
            drain_rate: (raw.drain_rate > 0).then_some(raw.drain_rate),
            max_packet_size,
        }
    }

    fn plc(&mut self, path: &str, raw: RawPlc) -> PlcConfig {
        self.id(&format!("{path}.id"), &raw.id);
        match raw.address.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => self.problem(
                format!("{path}.address"),
                format!(
                    "{:?} must be host:port, e.g. \"192.168.10.11:502\"",
                    raw.address
                ),
            ),
        }
        let poll_interval = self.duration(&format!("{path}.poll_interval"), &raw.poll_interval);
        let timeout = self.duration(&format!("{path}.timeout"), &raw.timeout);
        if timeout > poll_interval * 10 {
            self.problem(
                format!("{path}.timeout"),
                "must not exceed ten poll intervals",
            );
        }
        if raw.max_registers_per_request == 0 || raw.max_registers_per_request > 125 {
            self.problem(
                format!("{path}.max_registers_per_request"),
                "must be between 1 and 125",
            );
        }
        PlcConfig {
            id: raw.id,
            address: raw.address,
            unit_id: raw.unit_id,
            poll_interval,
            timeout,
            backoff_max: self.duration(&format!("{path}.backoff_max"), &raw.backoff_max),
            max_gap: raw.max_gap,
            max_registers_per_request: raw.max_registers_per_request.clamp(1, 125),
            one_request_per_tag: raw.one_request_per_tag,
            pause_between_requests: parse_duration(&raw.pause_between_requests).unwrap_or_else(
                |message| {
                    self.problem(format!("{path}.pause_between_requests"), message);
                    Duration::ZERO
                },
            ),
            unit_failure_threshold: raw.unit_failure_threshold.max(1),
            unit_backoff: self.duration(&format!("{path}.unit_backoff"), &raw.unit_backoff),
        }
    }

    fn machine(
        &mut self,
        path: &str,
        raw: RawMachine,
        plcs: &[PlcConfig],
    ) -> Option<MachineConfig> {
        self.id(&format!("{path}.id"), &raw.id);
        self.id(&format!("{path}.line"), &raw.line);
        let plc = plcs.iter().position(|p| p.id == raw.plc);
        if plc.is_none() {
            self.problem(
                format!("{path}.plc"),
                format!("{:?} does not name a [[plc]] id", raw.plc),
            );
        }
        let unit_id = raw
            .unit_id
            .or_else(|| plc.map(|i| plcs[i].unit_id))
            .unwrap_or(1);
        let ideal_cycle_time = raw
            .ideal_cycle_time
            .as_deref()
            .map(|t| self.duration(&format!("{path}.ideal_cycle_time"), t));
        let produced = self.counter(
            &format!("{path}.counters.produced"),
            &raw.counters.produced,
            unit_id,
        );
        let defective = raw
            .counters
            .defective
            .as_ref()
            .and_then(|t| self.counter(&format!("{path}.counters.defective"), t, unit_id));
        let mut defect_reasons = Vec::new();
        for (name, tag) in &raw.defect_reasons {
            self.id(&format!("{path}.defect_reasons.{name}"), name);
            if let Some(counter) =
                self.counter(&format!("{path}.defect_reasons.{name}"), tag, unit_id)
            {
                defect_reasons.push((name.clone(), counter));
            }
        }
        let state = raw
            .state
            .as_ref()
            .and_then(|s| self.state(&format!("{path}.state"), s, unit_id));
        for (name, target) in [
            ("productivity", raw.targets.productivity),
            ("defect_rate", raw.targets.defect_rate),
        ] {
            if let Some(t) = target {
                if !t.baseline.is_finite() || !t.target.is_finite() || t.baseline < 0.0 {
                    self.problem(
                        format!("{path}.targets.{name}"),
                        "baseline and target must be finite and not negative",
                    );
                } else if t.baseline == t.target {
                    self.problem(
                        format!("{path}.targets.{name}"),
                        "target must differ from baseline",
                    );
                }
            }
        }
        Some(MachineConfig {
            id: raw.id,
            line: raw.line,
            plc: plc?,
            ideal_cycle_time,
            produced: produced?,
            defective,
            defect_reasons,
            state,
            targets: raw.targets,
        })
    }

    fn tag(&mut self, path: &str, fields: TagFields<'_>, unit_id: u8) -> Option<TagAddress> {
        let TagFields {
            table,
            address,
            data_type,
            word_order,
            byte_swap,
            bit,
        } = fields;
        let table = match table {
            "coil" => Some(Table::Coil),
            "discrete" => Some(Table::Discrete),
            "input" => Some(Table::Input),
            "holding" => Some(Table::Holding),
            other => {
                self.problem(
                    format!("{path}.table"),
                    format!("{other:?} is not one of coil, discrete, input, holding"),
                );
                None
            }
        };
        let data_type = match parse_data_type(data_type) {
            Some(t) => Some(t),
            None => {
                self.problem(
                    format!("{path}.type"),
                    format!(
                        "{data_type:?} is not one of bool, u16, i16, u32, i32, u64, i64, f32, f64"
                    ),
                );
                None
            }
        };
        let word_order = match word_order {
            None | Some("big") => WordOrder::Big,
            Some("little") => WordOrder::Little,
            Some(other) => {
                self.problem(
                    format!("{path}.word_order"),
                    format!("{other:?} is not one of big, little"),
                );
                WordOrder::Big
            }
        };
        let (table, data_type) = (table?, data_type?);
        if matches!(table, Table::Coil | Table::Discrete) && data_type != DataType::Bool {
            self.problem(
                format!("{path}.type"),
                "coils and discrete inputs hold single bits: the type must be bool",
            );
        }
        let count = u32::from(data_type.register_count());
        if address + count > 65536 {
            self.problem(
                format!("{path}.address"),
                format!("{address} plus {count} register(s) runs past 65535 (addresses are 0-based: holding register 40001 is address 0)"),
            );
            return None;
        }
        if let Some(bit) = bit {
            if data_type != DataType::Bool || !matches!(table, Table::Input | Table::Holding) {
                self.problem(
                    format!("{path}.bit"),
                    "bit selects one bit of an input or holding register: use it with type = \"bool\"",
                );
            } else if bit > 15 {
                self.problem(format!("{path}.bit"), "must be between 0 and 15");
            }
        }
        Some(TagAddress {
            unit_id,
            table,
            address: address as u16,
            encoding: Encoding {
                data_type,
                word_order,
                byte_swap,
            },
            bit,
        })
    }

    fn counter(&mut self, path: &str, raw: &RawTag, unit_id: u8) -> Option<CounterTag> {
        let tag = self.tag(
            path,
            TagFields {
                table: &raw.table,
                address: raw.address,
                data_type: &raw.data_type,
                word_order: raw.word_order.as_deref(),
                byte_swap: raw.byte_swap,
                bit: None,
            },
            unit_id,
        )?;
        let type_modulus: u128 = match tag.encoding.data_type {
            DataType::U16 => 1 << 16,
            DataType::U32 => 1 << 32,
            DataType::U64 => 1 << 64,
            _ => {
                self.problem(
                    format!("{path}.type"),
                    "a counter must be an unsigned integer type (u16, u32 or u64)",
                );
                return None;
            }
        };
        let modulus = match raw.modulus.as_deref() {
            None => type_modulus,
            Some(text) => match parse_modulus(text) {
                Some(m) if m >= 2 && m <= type_modulus => m,
                _ => {
                    self.problem(
                        format!("{path}.modulus"),
                        format!(
                            "{text:?} must be an integer or 2^N between 2 and the type's range"
                        ),
                    );
                    return None;
                }
            },
        };
        let on_decrease = match raw.on_decrease.as_deref() {
            None | Some("reset") => OnDecrease::Reset,
            Some("ignore") => OnDecrease::Ignore,
            Some(other) => {
                self.problem(
                    format!("{path}.on_decrease"),
                    format!("{other:?} is not one of reset, ignore"),
                );
                OnDecrease::Reset
            }
        };
        if let Some(rate) = raw.design_rate {
            if !(rate.is_finite() && rate > 0.0) {
                self.problem(
                    format!("{path}.design_rate"),
                    "must be a positive number of units per second",
                );
            }
        }
        Some(CounterTag {
            tag,
            counter: CounterConfig {
                // A u64 counter's modulus 2^64 does not fit in u64; such counters never wrap in practice.
                modulus: u64::try_from(modulus).unwrap_or(u64::MAX),
                wrap: raw.wrap,
                on_decrease,
                design_rate: raw.design_rate,
            },
        })
    }

    fn state(&mut self, path: &str, raw: &RawState, unit_id: u8) -> Option<StateTag> {
        let tag = self.tag(
            path,
            TagFields {
                table: &raw.table,
                address: raw.address,
                data_type: &raw.data_type,
                word_order: raw.word_order.as_deref(),
                byte_swap: raw.byte_swap,
                bit: raw.bit,
            },
            unit_id,
        )?;
        if matches!(tag.encoding.data_type, DataType::F32 | DataType::F64) {
            self.problem(
                format!("{path}.type"),
                "a state register must be an integer or bool",
            );
        }
        let mut mapping = BTreeMap::new();
        for (list, state) in [
            (&raw.running, MachineState::Running),
            (&raw.planned_stop, MachineState::PlannedStop),
            (&raw.unplanned_stop, MachineState::UnplannedStop),
        ] {
            for value in list {
                if mapping.insert(*value, state).is_some() {
                    self.problem(
                        path,
                        format!("value {value} is mapped to more than one state"),
                    );
                }
            }
        }
        if raw.running.is_empty() {
            self.problem(format!("{path}.running"), "list at least one running value");
        }
        Some(StateTag { tag, mapping })
    }

    fn overlaps(&mut self, machines: &[MachineConfig], plcs: &[PlcConfig]) {
        // Two tags that share a register on the same PLC and unit are almost always a typo.
        let mut seen: BTreeMap<(usize, u8, Table, u16), String> = BTreeMap::new();
        for (mi, machine) in machines.iter().enumerate() {
            let mut tags: Vec<(String, TagAddress)> =
                vec![("counters.produced".into(), machine.produced.tag)];
            if let Some(d) = &machine.defective {
                tags.push(("counters.defective".into(), d.tag));
            }
            for (name, c) in &machine.defect_reasons {
                tags.push((format!("defect_reasons.{name}"), c.tag));
            }
            if let Some(s) = &machine.state {
                tags.push(("state".into(), s.tag));
            }
            for (name, tag) in tags {
                let path = format!("machine[{mi}].{name}");
                for offset in 0..tag.count() {
                    let key = (machine.plc, tag.unit_id, tag.table, tag.address + offset);
                    if let Some(other) = seen.get(&key) {
                        self.problem(
                            &path,
                            format!(
                                "overlaps {other} (PLC {:?}, unit {}, {:?} address {})",
                                plcs[machine.plc].id,
                                tag.unit_id,
                                tag.table,
                                tag.address + offset
                            ),
                        );
                        break;
                    }
                    seen.insert(key, path.clone());
                }
            }
        }
    }
}

fn parse_data_type(text: &str) -> Option<DataType> {
    Some(match text {
        "bool" => DataType::Bool,
        "u16" => DataType::U16,
        "i16" => DataType::I16,
        "u32" => DataType::U32,
        "i32" => DataType::I32,
        "u64" => DataType::U64,
        "i64" => DataType::I64,
        "f32" => DataType::F32,
        "f64" => DataType::F64,
        _ => return None,
    })
}

/// Parses `"500ms"`, `"1s"`, `"15m"`, `"9h"`, `"1h 30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"500ms\", \"1s\" or \"15m\" ({e})"))
}

/// Rewrites `machine.0.counters` (serde_ignored's form) as `machine[0].counters`.
fn toml_path(dotted: &str) -> String {
    let mut out = String::new();
    for segment in dotted.split('.') {
        if !out.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// Grace before a window of this length is closed (DESIGN §6 defaults).
fn default_grace(length_ms: i64) -> Duration {
    match length_ms {
        ms if ms <= 60_000 => Duration::from_secs(10).min(Duration::from_millis(ms as u64 / 2)),
        ms if ms <= 900_000 => Duration::from_secs(30),
        ms if ms <= 3_600_000 => Duration::from_secs(60),
        _ => Duration::from_secs(300),
    }
}

/// Parses `"1GiB"`, `"512MiB"`, `"100MB"` or a plain number of bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like \"1GiB\" or \"500MB\""))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_modulus(text: &str) -> Option<u128> {
    let text = text.trim();
    if let Some(exp) = text.strip_prefix("2^") {
        let exp: u32 = exp.parse().ok()?;
        return (exp <= 64).then(|| 1u128 << exp);
    }
    text.parse().ok()
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [agent]
        site = "acme"
        gateway = "gw-01"
        timezone = "Asia/Seoul"
        data_dir = "/tmp/x"

        [[plc]]
        id = "plc-a"
        address = "127.0.0.1:502"

        [[machine]]
        id = "press-01"
        line = "line-a"
        plc = "plc-a"
        counters.produced = { table = "holding", address = 100, type = "u32" }
    "#;

    fn problems(text: &str) -> Vec<Problem> {
        match Config::from_toml(text, "test.toml", false) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(other) => panic!("expected validation problems, got {other}"),
            Ok(_) => panic!("expected validation problems, got a valid config"),
        }
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let config = Config::from_toml(MINIMAL, "test.toml", false).unwrap();
        assert_eq!(config.mqtt.client_id, "acme-gw-01");
        assert_eq!(config.mqtt.port, 1883);
        assert_eq!(config.agent.periods.len(), 3);
        assert_eq!(config.agent.periods[0].grace, Duration::from_secs(10));
        assert_eq!(config.machines[0].produced.counter.modulus, 1 << 32);
        assert_eq!(config.store.max_bytes, 1 << 30);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = MINIMAL
            .replace("Asia/Seoul", "Mars/Olympus")
            .replace("type = \"u32\"", "type = \"f32\", bogus = 1")
            .replace("plc = \"plc-a\"", "plc = \"plc-b\"")
            + "\n[mqtt]\nkeep_alive = \"soon\"\n";
        let found = problems(&text);
        let paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"agent.timezone"), "{found:?}");
        assert!(paths.contains(&"machine[0].plc"), "{found:?}");
        assert!(
            paths.contains(&"machine[0].counters.produced.type"),
            "{found:?}"
        );
        assert!(
            paths.contains(&"machine[0].counters.produced.bogus"),
            "{found:?}"
        );
        assert!(paths.contains(&"mqtt.keep_alive"), "{found:?}");
    }

    #[test]
    fn overlapping_tags_are_rejected() {
        let text = MINIMAL.replace(
            "counters.produced = { table = \"holding\", address = 100, type = \"u32\" }",
            "counters.produced = { address = 100, type = \"u32\" }\ncounters.defective = { address = 101, type = \"u32\" }",
        );
        let found = problems(&text);
        assert!(
            found.iter().any(
                |p| p.path == "machine[0].counters.defective" && p.message.contains("overlaps")
            ),
            "{found:?}"
        );
    }

    #[test]
    fn modulus_accepts_powers_and_plain_numbers() {
        let text = MINIMAL.replace("type = \"u32\"", "type = \"u16\", modulus = \"10000\"");
        let config = Config::from_toml(&text, "t", false).unwrap();
        assert_eq!(config.machines[0].produced.counter.modulus, 10000);
        let text = MINIMAL.replace("type = \"u32\"", "type = \"u16\", modulus = \"2^32\"");
        assert_eq!(
            problems(&text)[0].path,
            "machine[0].counters.produced.modulus"
        );
    }

    #[test]
    fn sizes_and_periods_parse() {
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert!(parse_bytes("12 parsecs").is_err());
        assert_eq!(Period::parse("15m").unwrap().length_ms, 900_000);
        assert!(Period::parse("7m").is_err());
    }

    #[test]
    fn every_file_in_the_config_folder_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                if let Err(error) = Config::from_toml(&text, &path.display().to_string(), false) {
                    panic!("{error}");
                }
                checked += 1;
            }
        }
        assert!(
            checked >= 2,
            "expected example.toml and demo.toml in {}",
            dir.display()
        );
    }

    #[test]
    fn environment_overrides_apply_with_the_shopfloor_prefix() {
        // The variable name is unique to this test, so parallel tests are not affected.
        std::env::set_var("SHOPFLOOR__MQTT__CLIENT_ID", "from-env");
        let config = Config::from_toml(MINIMAL, "test.toml", true);
        std::env::remove_var("SHOPFLOOR__MQTT__CLIENT_ID");
        assert_eq!(config.unwrap().mqtt.client_id, "from-env");
    }
}
