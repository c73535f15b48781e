//! The largest MQTT message a configuration can make the agent publish, so that `validate` can refuse
//! an `mqtt.max_packet_size` that would have the broker refuse rollups at runtime.
//!
//! Every payload is built with the real builders of `logic::payload` from worst-case inputs: the
//! configured ids, periods, defect reasons, targets and PLC tags; every KPI and goal figure present
//! *and* null with the longest reason (a real payload has one or the other); every count at
//! `u64::MAX`, every time at `i64::MAX`, every float at the widest JSON form; the widest `seq`,
//! `db_epoch` and the `replayed` mark. Two inputs are free text and get an allowance instead:
//! event details and PLC error texts (see [`EVENT_DETAIL_ALLOWANCE`] and [`ERROR_TEXT_ALLOWANCE`]).
//! The result is an upper bound, to which [`margin`] adds a safety margin.

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use serde_json::{json, Value};

use super::{Config, MachineConfig};
use crate::logic::calendar::UnknownTime;
use crate::logic::clock::{ClockStep, StepDirection};
use crate::logic::decode::Table;
use crate::logic::kpi::{self, KpiFlag, Kpis, NullReason};
use crate::logic::payload::{
    self, DeviceHealth, DisabledTagReport, EventKind, Identity, UnitHealthReport,
};
use crate::logic::rollup::{Flag, MachineState, WindowRecord, WindowStatus, WindowSums};
use crate::logic::targets::{Target, TargetSchedule, Targets};
use crate::logic::Millis;
use crate::poller::ReadPlan;
use crate::publisher::publish_packet_size;

/// Bytes of a packet kept free for the topic and the MQTT header when the store screens a durable
/// payload: the store refuses a payload larger than `max_packet_size` minus this.
pub const PACKET_HEADROOM: u64 = 1024;

/// JSON float with the most characters serde_json can print (24).
const WIDEST_FLOAT: f64 = -2.225_073_858_507_201_4e-308;
/// The longest RFC 3339 time the payloads write (milliseconds and an offset).
const WIDEST_TIME: &str = "-009999-12-31T23:59:59.999+14:00";
/// 2026-11-28T09:00:00.123 UTC: a millisecond fraction makes RFC 3339 times their widest.
const SOME_INSTANT: Millis = 1_795_856_400_123;
/// Length of a `db_epoch` (16 hex digits), added by the store.
const DB_EPOCH_LEN: usize = 16;
/// Length of `config_hash` (12 hex digits).
const CONFIG_HASH_LEN: usize = 12;
/// Room for the detail object of an event, beyond the longest configured text it can quote. The largest
/// details today are `tag_disabled` (about 250 bytes with its note), `store_recovered` (the moved-aside
/// path, an error text and a 100-byte note) and `device_down` (an OS error text naming the address).
pub const EVENT_DETAIL_ALLOWANCE: usize = 1024;
/// Room for one PLC error text in the health message beyond the address it names.
pub const ERROR_TEXT_ALLOWANCE: usize = 256;
/// Open windows per period in a live message: the current one and the previous one during its grace
/// (a grace is at most its period), plus one for a window opened ahead of a late close.
const OPEN_WINDOWS_PER_PERIOD: usize = 3;

/// Which message of the topic tree a bound is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A closed window on a rollup topic (durable).
    Rollup,
    /// A machine or gateway event (durable).
    Event,
    /// A machine's retained live message.
    Live,
    /// The gateway's retained health message.
    Health,
}

/// The largest message of one kind and the packet limit it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBound {
    /// Which message.
    pub kind: MessageKind,
    /// Its topic.
    pub topic: String,
    /// Smallest `mqtt.max_packet_size` that lets it through: the PUBLISH packet size, and for durable
    /// messages also the payload plus [`PACKET_HEADROOM`] (the store's screen).
    pub needs: u64,
}

/// The largest message of each kind this configuration can publish, largest first.
pub fn largest_messages(config: &Config) -> Vec<MessageBound> {
    let identity = identity(config);
    let mut bounds: Vec<MessageBound> = Vec::new();
    for machine in &config.machines {
        let topic = payload::event_topic(&identity, &machine.line, &machine.id);
        bounds.push(largest_event(
            config,
            &identity,
            &machine.line,
            &machine.id,
            topic,
        ));
        bounds.push(largest_live(config, &identity, machine));
        bounds.extend(largest_rollup(config, &identity, machine));
    }
    let topic = payload::gateway_event_topic(&identity);
    bounds.push(largest_event(
        config,
        &identity,
        payload::GATEWAY_LINE,
        &config.agent.gateway,
        topic,
    ));
    bounds.push(largest_health(config, &identity));
    // Largest first, then one per kind.
    bounds.sort_by_key(|b| std::cmp::Reverse(b.needs));
    let mut seen = Vec::new();
    bounds.retain(|b| {
        let first = !seen.contains(&b.kind);
        seen.push(b.kind);
        first
    });
    bounds
}

/// The `mqtt.max_packet_size` this configuration needs: its largest message plus a safety margin.
pub fn required_packet_size(config: &Config) -> u64 {
    let largest = largest_messages(config)
        .first()
        .map_or(0, |bound| bound.needs);
    largest.saturating_add(margin(largest))
}

/// Safety margin on top of a computed bound: an eighth of it plus 256 bytes, for what the bound
/// approximates (time zone offsets with seconds).
pub fn margin(bound: u64) -> u64 {
    bound / 8 + 256
}

fn identity(config: &Config) -> Identity {
    Identity {
        prefix: config.mqtt.topic_prefix.clone(),
        site: config.agent.site.clone(),
        gateway: config.agent.gateway.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        config_hash: "f".repeat(CONFIG_HASH_LEN.max(config.config_hash.len())),
    }
}

/// A durable payload as the publisher sends it: the store's `seq` and `db_epoch`, and `replayed`.
fn as_sent(mut body: Value) -> Value {
    body["seq"] = json!(i64::MAX);
    body["db_epoch"] = json!("f".repeat(DB_EPOCH_LEN));
    body["replayed"] = json!(true);
    body
}

fn bound(
    config: &Config,
    kind: MessageKind,
    topic: String,
    body: &impl serde::Serialize,
) -> MessageBound {
    let payload = serde_json::to_vec(body).map_or(usize::MAX, |bytes| bytes.len());
    let packet = publish_packet_size(config.mqtt.protocol, topic.len(), payload);
    let durable = matches!(kind, MessageKind::Rollup | MessageKind::Event);
    let screened = u64::try_from(payload)
        .unwrap_or(u64::MAX)
        .saturating_add(PACKET_HEADROOM);
    MessageBound {
        kind,
        topic,
        needs: if durable {
            packet.max(screened)
        } else {
            packet
        },
    }
}

/// Every flag a window can carry, all at once.
fn every_flag() -> BTreeSet<Flag> {
    Flag::ALL.into_iter().collect()
}

/// The event kind with the longest name.
fn longest_event_kind() -> EventKind {
    EventKind::ALL
        .into_iter()
        .max_by_key(|kind| kind.as_str().len())
        .unwrap_or(EventKind::CounterAnomaly)
}

/// KPIs with every value, goal figure and null reason present at its widest.
fn widest_kpis(targets: &Targets) -> Kpis {
    // An empty window with baseline = target makes the real code name every null key it can produce.
    let flat = |schedule: &Option<TargetSchedule>| {
        schedule.as_ref().map(|_| {
            TargetSchedule::single(Target {
                baseline: 1.0,
                target: 1.0,
            })
        })
    };
    let flat_targets = Targets {
        productivity: flat(&targets.productivity),
        defect_rate: flat(&targets.defect_rate),
        min_units: 0,
    };
    let mut kpis = kpi::compute(
        &WindowSums::default(),
        None,
        &flat_targets,
        SOME_INSTANT,
        UnknownTime::Loss,
    );
    let longest_reason = NullReason::ALL
        .into_iter()
        .max_by_key(|reason| reason.as_str().len())
        .unwrap_or(NullReason::NotFinite);
    kpis.nulls
        .values_mut()
        .for_each(|reason| *reason = longest_reason);
    kpis.values
        .values_mut()
        .for_each(|value| *value = Some(WIDEST_FLOAT));
    for figures in kpis.targets.values_mut() {
        figures.baseline = WIDEST_FLOAT;
        figures.target = WIDEST_FLOAT;
        figures.attainment = Some(WIDEST_FLOAT);
        figures.attainment_ratio = Some(WIDEST_FLOAT);
        figures.improvement = Some(WIDEST_FLOAT);
    }
    kpis.flags = KpiFlag::ALL.to_vec();
    kpis.basis = kpi::KpiBasis {
        planned_ms: i64::MAX,
        running_ms: i64::MAX,
        produced: u64::MAX,
        good: u64::MAX,
        out_of_plan_produced: u64::MAX,
        out_of_plan_good: u64::MAX,
    };
    kpis
}

/// A window of `period` with every count and time at its widest, labelled with the longest shift
/// name of the calendar (if any) and a production date.
fn widest_window(
    config: &Config,
    machine: &MachineConfig,
    period: &str,
    status: WindowStatus,
) -> WindowRecord {
    let longest_shift = config
        .calendar
        .shifts()
        .iter()
        .map(|shift| shift.name.clone())
        .max_by_key(String::len);
    WindowRecord {
        machine: machine.id.clone(),
        period: period.to_string(),
        start: SOME_INSTANT,
        end: SOME_INSTANT + 1,
        shift: longest_shift,
        production_date: Some(jiff::civil::date(2026, 11, 28)),
        sums: WindowSums {
            produced: u64::MAX,
            defective: u64::MAX,
            by_reason: machine
                .defect_reasons
                .iter()
                .map(|(name, _)| (name.clone(), u64::MAX))
                .collect::<BTreeMap<_, _>>(),
            running_ms: i64::MAX,
            planned_stop_ms: i64::MAX,
            unplanned_stop_ms: i64::MAX,
            unknown_ms: i64::MAX,
            out_of_plan_ms: i64::MAX,
            out_of_plan_produced: u64::MAX,
            out_of_plan_defective: u64::MAX,
            flags: every_flag(),
        },
        status,
        revision: if status == WindowStatus::Final {
            0
        } else {
            u32::MAX
        },
        dirty: false,
    }
}

fn largest_rollup(
    config: &Config,
    identity: &Identity,
    machine: &MachineConfig,
) -> Option<MessageBound> {
    let kpis = widest_kpis(&machine.targets);
    let tz: &TimeZone = &config.agent.timezone;
    config
        .agent
        .periods
        .iter()
        .map(|p| {
            let record = widest_window(config, machine, &p.period.name, WindowStatus::Restated);
            let body = payload::rollup_payload(identity, &machine.line, &record, &kpis, tz);
            let topic = payload::rollup_topic(identity, &machine.line, &machine.id, &record.period);
            bound(config, MessageKind::Rollup, topic, &as_sent(body))
        })
        .max_by_key(|b| b.needs)
}

fn largest_live(config: &Config, identity: &Identity, machine: &MachineConfig) -> MessageBound {
    let kpis = widest_kpis(&machine.targets);
    let records: Vec<WindowRecord> = config
        .agent
        .periods
        .iter()
        .flat_map(|p| {
            std::iter::repeat_n(&p.period.name, OPEN_WINDOWS_PER_PERIOD)
                .map(|name| widest_window(config, machine, name, WindowStatus::Open))
        })
        .collect();
    let windows: Vec<(&WindowRecord, &Kpis)> = records.iter().map(|r| (r, &kpis)).collect();
    let body = payload::live_payload(
        identity,
        &machine.line,
        &machine.id,
        Some(MachineState::UnplannedStop),
        &windows,
        SOME_INSTANT,
        &config.agent.timezone,
    );
    let topic = payload::live_topic(identity, &machine.line, &machine.id);
    bound(config, MessageKind::Live, topic, &body)
}

/// The longest configured text an event detail or an error text can quote.
fn longest_quoted_text(config: &Config) -> usize {
    let addresses = config.plcs.iter().map(|p| p.address.len() + p.id.len());
    let counters = config.machines.iter().map(|m| {
        let reason = m.defect_reasons.iter().map(|(name, _)| name.len()).max();
        m.id.len() + reason.unwrap_or(0) + "defective".len()
    });
    let data_dir = config.agent.data_dir.as_os_str().len();
    addresses
        .chain(counters)
        .chain([data_dir])
        .max()
        .unwrap_or(0)
}

fn largest_event(
    config: &Config,
    identity: &Identity,
    line: &str,
    machine: &str,
    topic: String,
) -> MessageBound {
    let room = EVENT_DETAIL_ALLOWANCE + 2 * longest_quoted_text(config);
    let detail = json!({ "text": "x".repeat(room) });
    let kind = longest_event_kind();
    let body = payload::event_payload(identity, line, machine, kind, SOME_INSTANT, detail);
    bound(config, MessageKind::Event, topic, &as_sent(body))
}

fn largest_health(config: &Config, identity: &Identity) -> MessageBound {
    let error = || Some("e".repeat(ERROR_TEXT_ALLOWANCE + longest_quoted_text(config)));
    let devices: Vec<DeviceHealth> = config
        .plcs
        .iter()
        .enumerate()
        .map(|(index, plc)| {
            let plan = ReadPlan::for_plc(config, index);
            DeviceHealth {
                plc: plc.id.clone(),
                up: false,
                consecutive_failures: u64::MAX,
                last_error: error(),
                rtt_ms: Some(WIDEST_FLOAT),
                rtt_p50_ms: Some(WIDEST_FLOAT),
                rtt_p99_ms: Some(WIDEST_FLOAT),
                requests_per_poll: u32::MAX,
                polls: u64::MAX,
                failures: u64::MAX,
                late_answers: u64::MAX,
                units: plan
                    .units()
                    .into_iter()
                    .map(|_| UnitHealthReport {
                        unit_id: u8::MAX,
                        up: false,
                        consecutive_failures: u64::MAX,
                        last_error: error(),
                        rtt_p50_ms: Some(WIDEST_FLOAT),
                        rtt_p99_ms: Some(WIDEST_FLOAT),
                        requests_per_poll: u32::MAX,
                        backed_off: false,
                    })
                    .collect(),
                disabled_tags: plan
                    .tags
                    .iter()
                    .map(|_| DisabledTagReport {
                        unit_id: u8::MAX,
                        table: Table::Discrete.name().into(),
                        address: u16::MAX,
                        exception: u8::MAX,
                        disabled_at: WIDEST_TIME.into(),
                        failed_probes: u32::MAX,
                        next_retry_at: WIDEST_TIME.into(),
                    })
                    .collect(),
            }
        })
        .collect();
    let mut body = payload::health_payload(
        identity,
        SOME_INSTANT,
        payload::BacklogReport {
            rows: u64::MAX,
            bytes: u64::MAX,
            oldest_unsent_age_ms: Some(i64::MAX),
        },
        u64::MAX,
        devices,
        Some(&ClockStep {
            at: SOME_INSTANT,
            before: SOME_INSTANT,
            elapsed_ms: i64::MAX,
            size_ms: i64::MAX,
            direction: StepDirection::Forward,
        }),
    );
    payload::insert_mqtt_health(
        &mut body,
        payload::MqttHealth {
            protocol: Some(super::MqttProtocol::V4),
            fallback: true,
        },
    );
    if config.mqtt.tls.is_some() {
        let failures = crate::tls::UplinkFailure::ALL
            .iter()
            .map(|cause| (cause.as_str(), u64::MAX))
            .collect();
        let tls = payload::TlsHealth {
            client_cert_not_after: Some(SOME_INSTANT),
            ca_not_after: Some(SOME_INSTANT),
            failures,
        };
        payload::insert_tls_health(&mut body, &tls);
    }
    let topic = payload::health_topic(identity);
    bound(config, MessageKind::Health, topic, &body)
}

#[cfg(test)]
mod tests;
