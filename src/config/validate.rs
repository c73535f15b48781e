//! Validation: raw configuration → typed [`Config`], collecting every problem with its TOML path.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::*;
use super::*;

mod calendar;
mod cross;
mod network;
mod ranges;
mod tags;
mod targets;
#[cfg(test)]
mod tests;
mod tls;

use ranges::*;

pub(super) struct Validator<'a> {
    pub(super) problems: &'a mut Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
            from_env: None,
        });
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
        let period_names = raw.agent.periods.clone();
        let default_min_units = raw.agent.targets.min_units.unwrap_or(DEFAULT_MIN_UNITS);
        let agent = self.agent(raw.agent);
        let target_defaults = targets::TargetDefaults {
            min_units: default_min_units,
            timezone: agent
                .as_ref()
                .map_or(jiff::tz::TimeZone::UTC, |a| a.timezone.clone()),
        };
        let mqtt = self.mqtt(raw.mqtt, &agent, &tls::FileRoots::for_config_file(file));
        let max_bytes = self
            .size_in("store.max_bytes", &raw.store.max_bytes, STORE_MAX_BYTES)
            .unwrap_or(STORE_MAX_BYTES.min);

        let audit_retention = raw
            .store
            .audit_retention
            .and_then(|text| self.duration_in("store.audit_retention", &text, RESTATEMENT_HORIZON));
        let commit_interval = self
            .duration_in(
                "store.commit_interval",
                &raw.store.commit_interval,
                COMMIT_INTERVAL,
            )
            .unwrap_or(COMMIT_INTERVAL.min);

        let http = self.http(raw.http);

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
            if let Some(m) = self.machine(&path, machine, &plcs, &target_defaults) {
                machines.push(m);
            }
        }
        self.overlaps(&machines, &plcs);
        let calendar = self.calendar(raw.calendar, agent.as_ref().map(|agent| &agent.timezone));

        let config = Config {
            source: file.to_string(),
            config_hash,
            agent: agent?,
            mqtt,
            store: StoreConfig {
                max_bytes,
                audit_retention,
                commit_interval,
            },
            http,
            plcs,
            machines,
            calendar: calendar?,
        };
        self.periods_cover_polls(&config, &period_names);
        self.shift_period_has_calendar(&config, &period_names);
        self.packet_limit(&config);
        Some(config)
    }

    /// `[http] listen`: an IP address and port (a host name is not accepted: what is exposed must be plain).
    fn http(&mut self, raw: RawHttp) -> HttpConfig {
        let listen = raw.listen.and_then(|text| match text.parse::<std::net::SocketAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                self.problem(
                    "http.listen",
                    format!("{text:?} is not an IP address and port, e.g. \"127.0.0.1:9464\" or \"[::1]:9464\""),
                );
                None
            }
        });
        HttpConfig { listen }
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
                    if !seen.insert(period.kind) {
                        self.problem(&path, format!("period {name:?} is listed twice"));
                    }
                    let grace = match raw.grace.get(name) {
                        Some(text) => self.grace(name, text, &period),
                        None => default_grace(period.nominal_ms()),
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
        let live_interval = self
            .duration_in("agent.live_interval", &raw.live_interval, PUBLISH_INTERVAL)
            .unwrap_or(PUBLISH_INTERVAL.max);
        let health_interval = self
            .duration_in(
                "agent.health_interval",
                &raw.health_interval,
                PUBLISH_INTERVAL,
            )
            .unwrap_or(PUBLISH_INTERVAL.max);
        let restatement_horizon = self
            .duration_in(
                "agent.restatement_horizon",
                &raw.restatement_horizon,
                RESTATEMENT_HORIZON,
            )
            .unwrap_or(RESTATEMENT_HORIZON.min);
        let unknown_time = self.unknown_time(&raw.unknown_time);
        let log_format = self.log_format(&raw.log_format);
        let poll_schedule = self.poll_schedule(&raw.poll_schedule);
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
            unknown_time,
            log_format,
            poll_schedule,
        })
    }

    /// `agent.log_format`: `"text"` (the default) or `"json"`.
    fn log_format(&mut self, text: &str) -> LogFormat {
        if let Some((_, format)) = LogFormat::ALL.iter().find(|(name, _)| *name == text) {
            return *format;
        }
        let names: Vec<&str> = LogFormat::ALL.iter().map(|(name, _)| *name).collect();
        self.problem(
            "agent.log_format",
            format!("{text:?} is not one of {}", names.join(", ")),
        );
        LogFormat::Text
    }

    /// `agent.poll_schedule`: `"aligned"` (the default) or `"spread"`.
    fn poll_schedule(&mut self, text: &str) -> PollSchedule {
        if let Some((_, schedule)) = PollSchedule::ALL.iter().find(|(name, _)| *name == text) {
            return *schedule;
        }
        let names: Vec<&str> = PollSchedule::ALL.iter().map(|(name, _)| *name).collect();
        self.problem(
            "agent.poll_schedule",
            format!("{text:?} is not one of {}", names.join(", ")),
        );
        PollSchedule::Aligned
    }

    fn mqtt(
        &mut self,
        raw: RawMqtt,
        agent: &Option<AgentConfig>,
        roots: &tls::FileRoots,
    ) -> MqttConfig {
        self.broker_host("mqtt.host", &raw.host);
        if raw.port == 0 {
            self.problem("mqtt.port", "must be between 1 and 65535");
        }
        let tls = self.mqtt_tls(&raw, roots);
        let credentials = self.mqtt_login(&raw, roots);
        if let Some(message) = network::topic_prefix_problem(&raw.topic_prefix) {
            self.problem("mqtt.topic_prefix", message);
        }
        let max_inflight = match u16::try_from(raw.max_inflight) {
            Ok(n) if n > 0 => n,
            _ => {
                self.problem("mqtt.max_inflight", "must be between 1 and 65535");
                1
            }
        };
        let keep_alive = self
            .duration_in("mqtt.keep_alive", &raw.keep_alive, KEEP_ALIVE)
            .unwrap_or(KEEP_ALIVE.min);
        let connect_timeout = self
            .duration_in(
                "mqtt.connect_timeout",
                &raw.connect_timeout,
                CONNECT_TIMEOUT,
            )
            .unwrap_or(CONNECT_TIMEOUT.min);
        let reconnect_max = raw
            .reconnect_max
            .as_deref()
            .map_or(DEFAULT_RECONNECT_MAX, |text| {
                self.duration_in("mqtt.reconnect_max", text, RECONNECT_MAX)
                    .unwrap_or(DEFAULT_RECONNECT_MAX)
            });
        let protocol = match raw.protocol.as_str() {
            "v4" | "3.1.1" => MqttProtocol::V4,
            "v5" | "5" => MqttProtocol::V5,
            other => {
                self.problem("mqtt.protocol", format!("{other:?} is not one of v4, v5"));
                MqttProtocol::V4
            }
        };
        // Without a valid limit the largest-message check has nothing to compare; 0 skips it.
        let max_packet_size = self
            .size_in(
                "mqtt.max_packet_size",
                &raw.max_packet_size,
                MAX_PACKET_SIZE,
            )
            .unwrap_or(0);
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
            connect_timeout,
            reconnect_max,
            protocol,
            drain_rate: (raw.drain_rate > 0).then_some(raw.drain_rate),
            max_packet_size,
            tls,
            credentials,
        }
    }

    fn plc(&mut self, path: &str, raw: RawPlc) -> PlcConfig {
        self.id(&format!("{path}.id"), &raw.id);
        self.plc_address(&format!("{path}.address"), &raw.address);
        let timing = self.plc_timing(path, &raw);
        if raw.max_registers_per_request == 0 || raw.max_registers_per_request > 125 {
            self.problem(
                format!("{path}.max_registers_per_request"),
                "must be between 1 and 125",
            );
        }
        let disabled_retry = self.duration_in(
            &format!("{path}.disabled_retry"),
            &raw.disabled_retry,
            ranges::DISABLED_RETRY,
        );
        let disabled_retry_max = self.duration_in(
            &format!("{path}.disabled_retry_max"),
            &raw.disabled_retry_max,
            ranges::DISABLED_RETRY,
        );
        if let (Some(first), Some(max)) = (disabled_retry, disabled_retry_max) {
            if max < first {
                self.problem(
                    format!("{path}.disabled_retry_max"),
                    "must not be shorter than disabled_retry",
                );
            }
        }
        let disabled_retry = disabled_retry.unwrap_or(Duration::from_secs(60));
        let disabled_retry_max = disabled_retry_max.unwrap_or(Duration::from_secs(900));
        PlcConfig {
            id: raw.id,
            address: raw.address,
            unit_id: raw.unit_id,
            poll_interval: timing.poll_interval,
            timeout: timing.timeout,
            backoff_max: timing.backoff_max,
            max_gap: raw.max_gap,
            max_registers_per_request: raw.max_registers_per_request.clamp(1, 125),
            one_request_per_tag: raw.one_request_per_tag,
            pause_between_requests: timing.pause_between_requests,
            unit_failure_threshold: raw.unit_failure_threshold.max(1),
            unit_backoff: timing.unit_backoff,
            disabled_retry,
            disabled_retry_max,
        }
    }

    fn machine(
        &mut self,
        path: &str,
        raw: RawMachine,
        plcs: &[PlcConfig],
        target_defaults: &targets::TargetDefaults,
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
        let ideal_cycle_time = raw.ideal_cycle_time.as_deref().map(|t| {
            self.duration_in(&format!("{path}.ideal_cycle_time"), t, IDEAL_CYCLE_TIME)
                .unwrap_or(IDEAL_CYCLE_TIME.min)
        });
        // Without a valid PLC the configuration is refused anyway; no default t_max is needed then.
        let poll_interval = plc.map_or(Duration::ZERO, |i| plcs[i].poll_interval);
        let produced = self.counter(
            &format!("{path}.counters.produced"),
            &raw.counters.produced,
            unit_id,
            poll_interval,
        );
        let defective = raw.counters.defective.as_ref().and_then(|t| {
            self.counter(
                &format!("{path}.counters.defective"),
                t,
                unit_id,
                poll_interval,
            )
        });
        let mut defect_reasons = Vec::new();
        for (name, tag) in &raw.defect_reasons {
            self.id(&format!("{path}.defect_reasons.{name}"), name);
            if let Some(counter) = self.counter(
                &format!("{path}.defect_reasons.{name}"),
                tag,
                unit_id,
                poll_interval,
            ) {
                defect_reasons.push((name.clone(), counter));
            }
        }
        let state = raw
            .state
            .as_ref()
            .and_then(|s| self.state(&format!("{path}.state"), s, unit_id));
        let targets = self.targets(&format!("{path}.targets"), &raw.targets, target_defaults);
        Some(MachineConfig {
            id: raw.id,
            line: raw.line,
            plc: plc?,
            ideal_cycle_time,
            produced: produced?,
            defective,
            defect_reasons,
            state,
            targets,
        })
    }
}
