//! One PLC task's state and its poll cycle: requests run one at a time on the connection (with the optional
//! pause), healthy units first; each unit costs at most one timeout per cycle and is skipped for `unit_backoff`
//! after `unit_failure_threshold` failed cycles while other units on the connection still deliver. Exceptions
//! are classified (a merged read refused with 01/02/03 is split into single reads; a single read refused so
//! disables its tag until restart). The connection is dropped only when the byte stream is in doubt or the
//! device as a whole is silent. What the outcome means for health is decided in `outcome`.

use std::collections::{BTreeMap, VecDeque};

use tokio::time::Instant;
use tracing::warn;

use super::connection::{Connection, ReadError};
use super::frame::{classify, exception_name, ExceptionClass, ResponseError};
use super::health::{DisabledTag, PollEvent, RttRing, UpDown};
use super::plan::ReadPlan;
use super::TagError;
use crate::config::PlcConfig;
use crate::logic::Millis;

/// Timeouts in a row, with nothing answered yet in the cycle, after which the device counts as silent.
const SILENT_AFTER_TIMEOUTS: u32 = 2;

/// Per-unit state kept across cycles.
#[derive(Debug, Default)]
pub(super) struct UnitState {
    pub(super) up_down: UpDown,
    pub(super) skipped_until: Option<Instant>,
    pub(super) rtt: RttRing,
    pub(super) requests_per_poll: u32,
    pub(super) last_error: Option<String>,
}

/// What happened to one unit within one cycle.
#[derive(Debug, Default)]
pub(super) struct UnitCycle {
    pub(super) requests: u32,
    pub(super) read: bool,
    pub(super) failed: bool,
    pub(super) timed_out: bool,
    pub(super) error: Option<String>,
}

/// The result of one cycle.
#[derive(Debug)]
pub(crate) struct CycleReport {
    /// One entry per tag of the plan.
    pub(crate) readings: Vec<Result<Vec<u16>, TagError>>,
    /// At least one request returned data.
    pub(crate) read_any: bool,
    /// Why the connection was dropped during the cycle, if it was.
    pub(crate) lost: Option<String>,
}

/// One PLC task: its plan (requests may be split at run time), its connection and its health.
#[derive(Debug)]
pub(crate) struct Poller {
    pub(super) plc: usize,
    pub(super) config: PlcConfig,
    pub(crate) plan: ReadPlan,
    pub(crate) connection: Option<Connection>,
    /// Per tag: the exception code that disabled it.
    pub(super) disabled: Vec<Option<u8>>,
    pub(super) units: BTreeMap<u8, UnitState>,
    pub(super) plc_state: UpDown,
    pub(super) plc_rtt: RttRing,
    pub(super) last_error: Option<String>,
    pub(super) last_cycle_ms: Option<f64>,
    pub(super) requests_per_poll: u32,
    pub(super) polls: u64,
    pub(super) failures: u64,
    pub(super) connects: u64,
    pub(super) late_answers_closed: u64,
    /// When the last request on the connection ended (answer, error or timeout).
    pub(super) last_exchange: Option<Instant>,
    pub(super) disabled_tags: Vec<DisabledTag>,
    pub(super) events: Vec<PollEvent>,
}

impl Poller {
    pub(crate) fn new(plc: usize, config: PlcConfig, plan: ReadPlan) -> Self {
        let units = plan
            .units()
            .into_iter()
            .map(|unit_id| (unit_id, UnitState::default()))
            .collect();
        Self {
            plc,
            disabled: vec![None; plan.tags.len()],
            config,
            plan,
            connection: None,
            units,
            plc_state: UpDown::default(),
            plc_rtt: RttRing::default(),
            last_error: None,
            last_cycle_ms: None,
            requests_per_poll: 0,
            polls: 0,
            failures: 0,
            connects: 0,
            late_answers_closed: 0,
            last_exchange: None,
            disabled_tags: Vec::new(),
            events: Vec::new(),
        }
    }

    pub(crate) fn config(&self) -> &PlcConfig {
        &self.config
    }

    /// Opens the connection; on failure records a failed cycle and returns the error text.
    pub(crate) async fn connect(&mut self, at: Millis) -> Result<(), String> {
        match Connection::connect(&self.config.address, self.config.timeout).await {
            Ok(connection) => {
                self.connection = Some(connection);
                self.connects += 1;
                Ok(())
            }
            Err(error) => {
                let error = error.to_string();
                self.failures += 1;
                self.last_error = Some(error.clone());
                let change = self
                    .plc_state
                    .record(false, self.config.unit_failure_threshold);
                self.plc_transition(change, at, Some(&error));
                Err(error)
            }
        }
    }

    /// Drops the connection (closing it politely when it is still usable).
    pub(crate) async fn disconnect(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.late_answers_closed += connection.late_answers();
            connection.close(self.config.timeout).await;
        }
    }

    /// Events since the last call, for the sample of this cycle.
    pub(crate) fn take_events(&mut self) -> Vec<PollEvent> {
        std::mem::take(&mut self.events)
    }

    /// Runs every request of the plan once; `at` stamps events.
    pub(crate) async fn cycle(&mut self, at: Millis) -> CycleReport {
        let started = Instant::now();
        let timeout = self.config.timeout;
        let mut readings: Vec<Result<Vec<u16>, TagError>> =
            vec![Err(TagError::Transport("not read".into())); self.plan.tags.len()];
        let mut queue: VecDeque<usize> = self.request_order(started);
        let mut cycle_units: BTreeMap<u8, UnitCycle> = BTreeMap::new();
        let (mut sent, mut read_any, mut answered_any) = (0u32, false, false);
        let mut timeouts_in_a_row = 0u32;
        let mut lost: Option<String> = None;

        while let Some(index) = queue.pop_front() {
            let request = self.plan.requests[index].clone();
            let mut live: Vec<usize> = Vec::with_capacity(request.tags.len());
            for &tag in &request.tags {
                match self.disabled[tag] {
                    Some(code) => readings[tag] = Err(disabled_error(code)),
                    None => live.push(tag),
                }
            }
            if live.is_empty() {
                continue;
            }
            let unit_id = request.unit_id;
            let fill = |readings: &mut Vec<Result<Vec<u16>, TagError>>, error: TagError| {
                for &tag in &live {
                    readings[tag] = Err(error.clone());
                }
            };
            if let Some(reason) = &lost {
                fill(&mut readings, TagError::Transport(reason.clone()));
                continue;
            }
            if self
                .units
                .get(&unit_id)
                .expect("every unit of the plan has a state")
                .skipped_until
                .is_some_and(|until| started < until)
            {
                fill(&mut readings, TagError::UnitSkipped { unit_id });
                continue;
            }
            let unit_cycle = cycle_units.entry(unit_id).or_default();
            if unit_cycle.timed_out {
                fill(
                    &mut readings,
                    TagError::Timeout("not asked: the unit timed out earlier in this cycle".into()),
                );
                continue;
            }
            let Some(connection) = self.connection.as_mut() else {
                fill(&mut readings, TagError::Transport("not connected".into()));
                continue;
            };
            // The pause holds between any two requests on the connection, across cycles too.
            if let Some(last) = self.last_exchange {
                tokio::time::sleep(
                    self.config
                        .pause_between_requests
                        .saturating_sub(last.elapsed()),
                )
                .await;
            }
            sent += 1;
            unit_cycle.requests += 1;
            let sent_at = Instant::now();
            let result = connection
                .read(
                    unit_id,
                    request.table,
                    request.start,
                    request.count,
                    timeout,
                )
                .await;
            self.last_exchange = Some(Instant::now());
            let rtt_ms = sent_at.elapsed().as_secs_f64() * 1000.0;
            if !matches!(result, Err(ReadError::Timeout(_) | ReadError::Broken(_))) {
                answered_any = true;
                timeouts_in_a_row = 0;
                self.plc_rtt.push(rtt_ms);
                if let Some(unit) = self.units.get_mut(&unit_id) {
                    unit.rtt.push(rtt_ms);
                }
            }
            match result {
                Ok(words) => {
                    read_any = true;
                    unit_cycle.read = true;
                    for &tag in &live {
                        readings[tag] = request
                            .words_of(&self.plan.tags[tag], &words)
                            .map(<[u16]>::to_vec)
                            .ok_or(TagError::WrongLength {
                                expected: usize::from(request.count),
                                got: words.len(),
                            });
                    }
                }
                Err(ReadError::Response(ResponseError::Exception { code }))
                    if classify(code) == ExceptionClass::Configuration =>
                {
                    if request.tags.len() > 1 {
                        warn!(
                            device = %self.config.id, unit = unit_id, table = ?request.table,
                            start = request.start, count = request.count, code,
                            "Merged read refused ({}); reading its tags one by one from now on.",
                            exception_name(code)
                        );
                        for split in self.plan.split(index).into_iter().rev() {
                            queue.push_front(split);
                        }
                    } else {
                        for &tag in &live {
                            self.disable(tag, code, at);
                            readings[tag] = Err(disabled_error(code));
                        }
                    }
                }
                Err(error) => {
                    let tag_error = match &error {
                        ReadError::Response(ResponseError::Exception { code }) => {
                            TagError::Exception {
                                code: *code,
                                name: exception_name(*code).into(),
                            }
                        }
                        ReadError::Response(ResponseError::WrongLength { expected, got }) => {
                            TagError::WrongLength {
                                expected: *expected,
                                got: *got,
                            }
                        }
                        ReadError::Response(ResponseError::Malformed(text)) => {
                            TagError::Protocol(text.clone())
                        }
                        ReadError::Timeout(_) => TagError::Timeout(error.to_string()),
                        ReadError::Broken(reason) => TagError::Transport(reason.clone()),
                    };
                    fill(&mut readings, tag_error);
                    unit_cycle.failed = true;
                    unit_cycle.error = Some(format!("unit {unit_id}: {error}"));
                    match error {
                        ReadError::Timeout(_) => {
                            unit_cycle.timed_out = true;
                            timeouts_in_a_row += 1;
                            if !answered_any && timeouts_in_a_row >= SILENT_AFTER_TIMEOUTS {
                                lost = Some(format!(
                                    "no answer to {timeouts_in_a_row} requests in a row: the device is silent"
                                ));
                            }
                        }
                        ReadError::Broken(reason) => lost = Some(reason),
                        ReadError::Response(_) => {}
                    }
                }
            }
        }
        if lost.is_none() && sent > 0 && !answered_any {
            lost = Some(format!(
                "no answer within {timeout:?}: the device is silent"
            ));
        }
        if lost.is_some() {
            self.disconnect().await;
        }
        self.after_cycle(cycle_units, sent, read_any, lost.as_deref(), started, at);
        CycleReport {
            readings,
            read_any,
            lost,
        }
    }

    /// Units whose last cycle went well first, so a failing unit's timeout delays nobody's reading.
    fn request_order(&self, now: Instant) -> VecDeque<usize> {
        let mut order: Vec<usize> = (0..self.plan.requests.len()).collect();
        order.sort_by_key(|&index| {
            let unit = self
                .units
                .get(&self.plan.requests[index].unit_id)
                .expect("every unit of the plan has a state");
            let suspect = unit.up_down.consecutive_failures > 0
                || unit.skipped_until.is_some_and(|until| now >= until);
            (suspect, index)
        });
        order.into()
    }

    fn disable(&mut self, tag: usize, code: u8, at: Millis) {
        let address = &self.plan.tags[tag];
        warn!(
            device = %self.config.id, unit = address.unit_id, table = ?address.table,
            address = address.address, code,
            "Tag refused with {} (a configuration error); it is disabled until the agent restarts.",
            exception_name(code)
        );
        self.disabled[tag] = Some(code);
        let disabled = DisabledTag {
            tag,
            unit_id: address.unit_id,
            table: address.table,
            address: address.address,
            code,
            at,
        };
        self.last_error = Some(format!(
            "unit {} {:?} address {}: {} (tag disabled)",
            address.unit_id,
            address.table,
            address.address,
            exception_name(code)
        ));
        self.disabled_tags.push(disabled.clone());
        self.events.push(PollEvent::TagDisabled(disabled));
    }
}

fn disabled_error(code: u8) -> TagError {
    TagError::Disabled {
        code,
        name: exception_name(code).into(),
    }
}
