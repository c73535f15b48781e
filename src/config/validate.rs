//! Validation: raw configuration → typed [`Config`], collecting every problem with its TOML path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use super::raw::*;
use super::*;

/// The register fields shared by counters and the state register.
struct TagFields<'a> {
    table: &'a str,
    address: u32,
    data_type: &'a str,
    word_order: Option<&'a str>,
    byte_swap: bool,
    bit: Option<u8>,
}

pub(super) struct Validator<'a> {
    pub(super) problems: &'a mut Vec<Problem>,
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

    pub(super) fn config(
        &mut self,
        raw: RawConfig,
        file: &str,
        config_hash: String,
    ) -> Option<Config> {
        let agent = self.agent(raw.agent);
        let mqtt = self.mqtt(raw.mqtt, &agent);
        let max_bytes = match parse_bytes(&raw.store.max_bytes) {
            Ok(bytes) if bytes >= 128 << 10 => bytes,
            Ok(_) => {
                self.problem("store.max_bytes", "must be at least 128KiB");
                128 << 10
            }
            Err(message) => {
                self.problem("store.max_bytes", message);
                128 << 10
            }
        };

        let audit_retention = raw
            .store
            .audit_retention
            .map(|text| self.duration("store.audit_retention", &text));

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
            store: StoreConfig {
                max_bytes,
                audit_retention,
            },
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
                let limit = plcs[machine.plc].max_registers_per_request;
                if matches!(tag.table, Table::Input | Table::Holding) && tag.count() > limit {
                    self.problem(
                        &path,
                        format!(
                            "needs {} registers in one request but plc {:?} allows {limit} (max_registers_per_request)",
                            tag.count(),
                            plcs[machine.plc].id
                        ),
                    );
                }
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
