//! Live snapshots (retained, latest only), the health message and the terminal view's figures.

use super::*;
use crate::logic::kpi::NullReason;

/// A machine's current figures, for the demo's terminal view.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineView {
    /// Machine id.
    pub machine: String,
    /// Line id.
    pub line: String,
    /// Current state, if known.
    pub state: Option<MachineState>,
    /// Period of the window the figures come from (the longest configured period).
    pub period: String,
    /// Produced in that window.
    pub produced: u64,
    /// Defective in that window.
    pub defective: u64,
    /// Defect rate in that window.
    pub defect_rate: Option<f64>,
    /// Good units per planned hour in that window.
    pub productivity: Option<f64>,
    /// Availability in that window.
    pub availability: Option<f64>,
    /// Goal attainment of productivity, or why it is not shown (e.g. too few units yet).
    pub productivity_attainment: Result<f64, NullReason>,
    /// Goal attainment of defect rate, or why it is not shown (e.g. too few units yet).
    pub defect_rate_attainment: Result<f64, NullReason>,
}

/// A goal's attainment in `kpis`, or the reason it is null (docs/kpi.md#goal-attainment).
fn attainment(kpis: &Kpis, goal: &str, key: &str) -> Result<f64, NullReason> {
    match kpis
        .targets
        .get(goal)
        .and_then(|figures| figures.attainment)
    {
        Some(value) => Ok(value),
        None => Err(kpis.null_reason(key).unwrap_or(NullReason::NoTarget)),
    }
}

impl Processor {
    /// Live messages (retained) with every open window and its KPIs, plus the terminal view.
    pub fn live(&self, now: Millis) -> (Vec<LiveMessage>, Vec<MachineView>) {
        let tz = &self.config.agent.timezone;
        let mut messages = Vec::new();
        let mut views = Vec::new();
        for machine in &self.machines {
            let open: Vec<(&WindowRecord, Kpis)> = machine
                .windows
                .iter()
                .flat_map(|acc| acc.open_windows())
                .map(|record| {
                    let kpis = kpis_of(&machine.config, record, self.config.agent.unknown_time);
                    (record, kpis)
                })
                .collect();
            let pairs: Vec<(&WindowRecord, &Kpis)> = open.iter().map(|(r, k)| (*r, k)).collect();
            let body = payload::live_payload(
                &self.identity,
                &machine.config.line,
                &machine.config.id,
                machine.current_state,
                &pairs,
                now,
                tz,
            );
            messages.push(LiveMessage {
                topic: payload::live_topic(
                    &self.identity,
                    &machine.config.line,
                    &machine.config.id,
                ),
                payload: serde_json::to_vec(&body)
                    .expect("a live payload always serialises")
                    .into(),
            });
            let longest = open
                .iter()
                .filter(|(r, _)| r.start <= now)
                .max_by_key(|(r, _)| r.end - r.start);
            let figure = |kpis: &Kpis, name: &str| kpis.values.get(name).copied().flatten();
            views.push(match longest {
                Some((record, kpis)) => MachineView {
                    machine: machine.config.id.clone(),
                    line: machine.config.line.clone(),
                    state: machine.current_state,
                    period: record.period.clone(),
                    produced: record.sums.produced,
                    defective: record.sums.defective,
                    defect_rate: figure(kpis, "defect_rate"),
                    productivity: figure(kpis, "productivity"),
                    availability: figure(kpis, "availability"),
                    productivity_attainment: attainment(
                        kpis,
                        "productivity",
                        "productivity.attainment",
                    ),
                    defect_rate_attainment: attainment(
                        kpis,
                        "defect_rate",
                        "defect_rate.attainment",
                    ),
                },
                None => MachineView {
                    machine: machine.config.id.clone(),
                    line: machine.config.line.clone(),
                    state: machine.current_state,
                    period: String::new(),
                    produced: 0,
                    defective: 0,
                    defect_rate: None,
                    productivity: None,
                    availability: None,
                    productivity_attainment: Err(NullReason::NoProduction),
                    defect_rate_attainment: Err(NullReason::NoProduction),
                },
            });
        }
        (messages, views)
    }
}

/// The health message: backlog, rows dropped (the store's persisted counters plus audit rows shed
/// in memory), PLC health. `None` when the store cannot be read right now.
pub(super) async fn health_message(
    processor: &Processor,
    store: &StoreHandle,
    outputs: &Outputs,
) -> Option<LiveMessage> {
    let now = processor.clock.utc();
    let (backlog, stored_drops) = match store
        .call(|s| s.backlog().map(|b| (b, s.drops().rows_dropped())))
        .await
    {
        Ok(Ok(figures)) => figures,
        _ => return None,
    };
    let devices: Vec<DeviceHealth> = outputs
        .plc_health
        .lock()
        .expect("health board lock is never poisoned")
        .iter()
        .map(|h| DeviceHealth {
            plc: h.id.clone(),
            up: h.up,
            consecutive_failures: h.consecutive_failures,
            last_error: h.last_error.clone(),
            rtt_ms: h.rtt_ms,
            rtt_p50_ms: h.rtt_p50_ms(),
            rtt_p99_ms: h.rtt_p99_ms(),
            requests_per_poll: h.requests_per_poll,
            polls: h.polls,
            failures: h.failures,
            late_answers: h.late_answers,
            units: h
                .units
                .iter()
                .map(|u| payload::UnitHealthReport {
                    unit_id: u.unit_id,
                    up: u.up,
                    consecutive_failures: u.consecutive_failures,
                    last_error: u.last_error.clone(),
                    rtt_p50_ms: u.rtt_p50_ms(),
                    rtt_p99_ms: u.rtt_p99_ms(),
                    requests_per_poll: u.requests_per_poll,
                    backed_off: u.backed_off,
                })
                .collect(),
            disabled_tags: h
                .disabled_tags
                .iter()
                .map(|t| payload::DisabledTagReport {
                    unit_id: t.unit_id,
                    table: t.table.name().to_string(),
                    address: t.address,
                    exception: t.code,
                    disabled_at: super::payload_time(t.at, &processor.config),
                    failed_probes: t.failed_probes,
                    next_retry_at: super::payload_time(t.next_retry_at, &processor.config),
                })
                .collect(),
        })
        .collect();
    let backlog = payload::BacklogReport {
        rows: backlog.rows,
        bytes: backlog.bytes,
        oldest_unsent_age_ms: backlog.oldest_enqueued_at.map(|t| now - t),
    };
    let mut body = payload::health_payload(
        &processor.identity,
        now,
        backlog,
        stored_drops + processor.pending.dropped_deltas,
        devices,
        processor.last_clock_step(),
    );
    let link = &outputs.publisher_stats;
    let mqtt = payload::MqttHealth {
        protocol: link.protocol(),
        fallback: link.fallback.load(std::sync::atomic::Ordering::Relaxed),
    };
    payload::insert_mqtt_health(&mut body, mqtt);
    if processor.config.mqtt.tls.is_some() {
        let tls = payload::TlsHealth {
            client_cert_not_after: link.client_cert_not_after(),
            ca_not_after: link.ca_not_after(),
            failures: link.tls_failures(),
        };
        payload::insert_tls_health(&mut body, &tls);
    }
    Some(LiveMessage {
        topic: payload::health_topic(&processor.identity),
        payload: serde_json::to_vec(&body)
            .expect("JSON values always serialise")
            .into(),
    })
}
