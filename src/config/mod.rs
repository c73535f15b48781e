//! Configuration: one TOML file plus `SHOPFLOOR__` environment overrides → a validated [`Config`].
//! Parsing keeps values loose (strings) so that validation can report *every* problem with its TOML
//! path at once; nothing outside this module sees a raw value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::logic::calendar::{Calendar, UnknownTime};
use crate::logic::counter::{CounterConfig, OnDecrease};
use crate::logic::decode::{decode, DataType, DecodeError, Encoding, Table, Value, WordOrder};
use crate::logic::rollup::MachineState;
use crate::logic::targets::{Targets, DEFAULT_MIN_UNITS};
use crate::logic::window::Period;

/// Prefix of environment overrides, e.g. `SHOPFLOOR__MQTT__HOST`.
pub const ENV_PREFIX: &str = "SHOPFLOOR";
/// `[mqtt] reconnect_max` when absent: the longest wait for a returned broker after a long outage.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(10);

/// One configuration problem, located by its TOML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// TOML path such as `machine[0].counters.produced.type`.
    pub path: String,
    /// What is wrong, as a sentence fragment.
    pub message: String,
    /// The environment variable that set the value, when an override did (e.g. `SHOPFLOOR__MQTT__PORT`).
    pub from_env: Option<String>,
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
        out.push_str(&format!("\n  - {problem}"));
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
    /// `[http]`.
    pub http: HttpConfig,
    /// `[[plc]]`, in file order.
    pub plcs: Vec<PlcConfig>,
    /// `[[machine]]`, in file order.
    pub machines: Vec<MachineConfig>,
    /// The shift calendar; [`Calendar::all_planned`] when the file has no `[calendar]`.
    pub calendar: Calendar,
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
    /// How time in an unknown machine state counts in planned busy time.
    pub unknown_time: UnknownTime,
    /// How log lines are written to stderr.
    pub log_format: LogFormat,
    /// Where each PLC's regular polls fall within its interval.
    pub poll_schedule: PollSchedule,
}

/// `agent.poll_schedule`: where each PLC's regular polls fall within its `poll_interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PollSchedule {
    /// Every PLC on the multiples of its interval of the wall clock (the default): the fleet's samples reach
    /// the processor in one burst per tick, which does its per-pass work once for all of them.
    #[default]
    Aligned,
    /// Each PLC at its own fixed phase within the interval (`poller::phase`), so the fleet's reads spread
    /// evenly over it: the highest sustained poll rate, for large fleets at short intervals.
    Spread,
}

impl PollSchedule {
    /// Every accepted value of `agent.poll_schedule`, by its name in the file.
    pub const ALL: [(&'static str, PollSchedule); 2] = [
        ("aligned", PollSchedule::Aligned),
        ("spread", PollSchedule::Spread),
    ];
}

/// `agent.log_format`: how log lines are written to stderr (journald keeps them either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// Every accepted value of `agent.log_format`, by its name in the file.
    pub const ALL: [(&'static str, LogFormat); 2] =
        [("text", LogFormat::Text), ("json", LogFormat::Json)];
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
#[derive(Debug, Clone, PartialEq)]
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
    /// Cap of the broker reconnect delay; below it the delay grows with how long the broker has been gone.
    pub reconnect_max: Duration,
    /// MQTT protocol version.
    pub protocol: MqttProtocol,
    /// Most backlog rows published per second after an outage; live data is not limited.
    pub drain_rate: Option<u32>,
    /// Largest payload the broker accepts; larger messages are refused at enqueue and recorded.
    pub max_packet_size: u64,
    /// TLS settings (`tls = true`), with file paths resolved; `None` for plain TCP.
    pub tls: Option<crate::tls::TlsSettings>,
    /// Username and password file, when the broker wants a login.
    pub credentials: Option<crate::tls::Credentials>,
}

impl MqttConfig {
    /// The configured files that hold secrets (client key, password), which no one else should read.
    pub fn secret_files(&self) -> Vec<&Path> {
        let key = self
            .tls
            .as_ref()
            .and_then(|tls| tls.client.as_ref())
            .map(|client| client.key_file.as_path());
        let password = self
            .credentials
            .as_ref()
            .map(|credentials| credentials.password_file.as_path());
        key.into_iter().chain(password).collect()
    }
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
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Byte quota of the database.
    pub max_bytes: u64,
    /// How long delta audit rows are kept; `None`: as long as the restatement horizon.
    pub audit_retention: Option<Duration>,
    /// Longest time counter baselines, delta audit rows and window sums wait for their transaction; zero:
    /// one transaction per poll cycle. Rollups, events and releases are committed at once regardless.
    pub commit_interval: Duration,
}

/// `[http]`: the metrics and health endpoint.
#[derive(Debug, Clone, Default)]
pub struct HttpConfig {
    /// Address `/metrics` and `/healthz` are served on; `None`: no listening socket at all.
    pub listen: Option<std::net::SocketAddr>,
}

/// `[[plc]]`: one Modbus/TCP connection.
#[derive(Debug, Clone, PartialEq)]
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
    /// First delay before a tag disabled by a configuration exception (01/02/03) is probed again.
    pub disabled_retry: Duration,
    /// Cap of that delay, which doubles after every refused probe.
    pub disabled_retry_max: Duration,
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
#[derive(Debug, Clone, PartialEq)]
pub struct CounterTag {
    /// Where it lives.
    pub tag: TagAddress,
    /// How raw values become deltas.
    pub counter: CounterConfig,
}

/// The machine-state register and how its values map onto states.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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

impl MachineConfig {
    /// The machine's counters by name: `produced`, `defective` (when configured), then each defect reason.
    pub fn counters(&self) -> Vec<(&str, &CounterTag)> {
        let mut counters = vec![("produced", &self.produced)];
        if let Some(defective) = &self.defective {
            counters.push(("defective", defective));
        }
        for (name, tag) in &self.defect_reasons {
            counters.push((name.as_str(), tag));
        }
        counters
    }

    /// The store key of one of the machine's counters (`machine/counter`): its baseline and its audit rows.
    pub fn counter_key(&self, counter: &str) -> String {
        format!("{}/{}", self.id, counter)
    }
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
                from_env: None,
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
                    from_env: None,
                });
                blame_overrides(&mut problems, &overrides);
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
        blame_overrides(&mut problems, &overrides);
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

pub mod arith;
pub mod largest;
mod overrides;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

use overrides::blame_overrides;
use raw::RawConfig;
use validate::Validator;

/// Parses `"500ms"`, `"1s"`, `"15m"`, `"9h"`, `"1h 30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"500ms\", \"1s\" or \"15m\" ({e})"))
}

/// Rewrites `machine.0.counters` (serde_ignored's form) as `machine[0].counters`; the `?` that
/// serde_ignored puts inside an optional table is not part of the TOML path.
fn toml_path(dotted: &str) -> String {
    let mut out = String::new();
    for segment in dotted.split('.').filter(|segment| *segment != "?") {
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

/// Grace before a window of this length is closed (the defaults documented in config/example.toml).
fn default_grace(length_ms: i64) -> Duration {
    match length_ms {
        ms if ms <= 60_000 => Duration::from_secs(10).min(Duration::from_millis(ms as u64 / 2)),
        ms if ms <= 900_000 => Duration::from_secs(30),
        ms if ms <= 3_600_000 => Duration::from_secs(60),
        _ => Duration::from_secs(300),
    }
}

/// Parses `"1GiB"`, `"512MiB"`, `"100MB"`, `"2TiB"` or a plain number of bytes.
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
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
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
        match &self.from_env {
            Some(var) => write!(f, "{} (from {var}): {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}
