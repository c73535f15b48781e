//! One PLC task's state and its poll cycle: requests run one at a time on the connection (with the optional
//! pause), healthy units first; each unit costs at most one timeout per cycle and is skipped for `unit_backoff`
//! after `unit_failure_threshold` failed cycles while other units on the connection still deliver. Exceptions
//! are classified (a merged read refused with 01/02/03 is split into single reads; a single read refused so
//! disables its tag, which is then probed with one single read per retry (`disabled`) until it answers). The
//! connection is dropped only when the byte stream is in doubt or the device as a whole is silent. What the
//! outcome means for health is decided in `outcome`.

use std::collections::{BTreeMap, VecDeque};

use tokio::time::Instant;
use tracing::warn;

use super::connection::{Connection, ReadError};
use super::disabled::disabled_error;
use super::frame::{classify, exception_name, ExceptionClass, ResponseError};
use super::health::{DisabledTag, PollEvent, RttRing, UpDown};
use super::plan::{ReadPlan, ReadRequest};
use super::retry::RetrySchedule;
use super::TagError;
use crate::config::PlcConfig;
use crate::logic::Millis;
use crate::metrics::{PlcSeries, SharedMetrics};
use crate::outage::OutageLog;

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
    /// The unit's current outage, summarised in the log every ten minutes.
    pub(super) outage: OutageLog,
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
    /// Per tag of the plan: its state while it is disabled after a configuration exception.
    pub(super) disabled: Vec<Option<DisabledTag>>,
    /// When disabled tags are probed again.
    pub(super) retry: RetrySchedule,
    /// Boxed: a B-tree node has room for eleven values, and a unit's state (its round-trip ring) is about
    /// 1 KiB, so an unboxed map of one unit took 12.6 KiB per PLC.
    pub(super) units: BTreeMap<u8, Box<UnitState>>,
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
    pub(super) events: Vec<PollEvent>,
    /// The PLC's current outage, summarised in the log every ten minutes.
    pub(super) outage: OutageLog,
    /// The process's metrics (polls, request errors by kind, round trips).
    pub(super) metrics: SharedMetrics,
    /// This PLC's per-poll series, looked up once.
    pub(super) series: PlcSeries,
    /// The up/down state last written to the metrics, so the gauge is set only when it changes.
    pub(super) published_up: Option<bool>,
}

impl Poller {
    pub(crate) fn new(
        plc: usize,
        config: PlcConfig,
        plan: ReadPlan,
        metrics: SharedMetrics,
    ) -> Self {
        let units = plan
            .units()
            .into_iter()
            .map(|unit_id| (unit_id, Box::<UnitState>::default()))
            .collect();
        let series = metrics.plc_series(&config.id);
        Self {
            plc,
            disabled: vec![None; plan.tags.len()],
            retry: RetrySchedule::of(&config),
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
            events: Vec::new(),
            outage: OutageLog::default(),
            series,
            metrics,
            published_up: None,
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
                self.metrics.connected(&self.config.id, self.connects);
                Ok(())
            }
            Err(error) => {
                let error = error.to_string();
                self.metrics.connect_failed(&self.config.id);
                self.failures += 1;
                self.last_error = Some(error.clone());
                let change = self
                    .plc_state
                    .record(false, self.config.unit_failure_threshold);
                self.plc_transition(change, at, Some(&error));
                self.note_plc_outage(false);
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

    /// Runs every request of the plan once; `at` stamps events and decides which disabled tags are probed.
    pub(crate) async fn cycle(&mut self, at: Millis) -> CycleReport {
        let started = Instant::now();
        let mut run = CycleRun::new(self.plan.tags.len(), self.request_order(started));
        while let Some(index) = run.queue.pop_front() {
            self.run_request(index, started, at, &mut run).await;
        }
        run.judge_silence(self.config.timeout);
        if run.lost.is_some() {
            self.disconnect().await;
        }
        self.after_cycle(&run, started, at);
        run.into_report()
    }

    /// Runs request `index` of the plan within the cycle `run` started at `started`: its live tags (disabled
    /// ones only when their probe is due) are read, or get the reason they were not asked.
    async fn run_request(
        &mut self,
        index: usize,
        started: Instant,
        at: Millis,
        run: &mut CycleRun,
    ) {
        let request = self.plan.requests[index].clone();
        let (live, probes) = self.live_tags(&request, at, &mut run.readings);
        if live.is_empty() {
            return;
        }
        if let Some(error) = self.not_asked(&request, started, run) {
            for &tag in &live {
                run.readings[tag] = Err(error.clone());
            }
            return;
        }
        let result = self.send(&request, run).await;
        let split = self.apply(index, &request, &live, result, at, run);
        if !split {
            self.settle_probes(&probes, at, &run.readings);
        }
    }

    /// Why `request` is not sent in this cycle, if it is not: the connection was lost, its unit is backed off
    /// or already timed out in this cycle, or there is no connection.
    fn not_asked(
        &self,
        request: &ReadRequest,
        started: Instant,
        run: &CycleRun,
    ) -> Option<TagError> {
        let unit_id = request.unit_id;
        if let Some(reason) = &run.lost {
            return Some(TagError::Transport(reason.clone().into()));
        }
        let unit = self
            .units
            .get(&unit_id)
            .expect("every unit of the plan has a state");
        if unit.skipped_until.is_some_and(|until| started < until) {
            return Some(TagError::UnitSkipped { unit_id });
        }
        if run.units.get(&unit_id).is_some_and(|u| u.timed_out) {
            return Some(TagError::Timeout(
                "not asked: the unit timed out earlier in this cycle".into(),
            ));
        }
        if self.connection.is_none() {
            return Some(TagError::Transport("not connected".into()));
        }
        None
    }

    /// Sends `request` (after the pause between requests) and records its round trip.
    async fn send(
        &mut self,
        request: &ReadRequest,
        run: &mut CycleRun,
    ) -> Result<Vec<u16>, ReadError> {
        let connection = self
            .connection
            .as_mut()
            .expect("`not_asked` keeps requests back while there is no connection");
        // The pause holds between any two requests on the connection, across cycles too.
        if let Some(last) = self.last_exchange {
            tokio::time::sleep(
                self.config
                    .pause_between_requests
                    .saturating_sub(last.elapsed()),
            )
            .await;
        }
        run.sent += 1;
        run.units.entry(request.unit_id).or_default().requests += 1;
        let sent_at = Instant::now();
        let result = connection
            .read(
                request.unit_id,
                request.table,
                request.start,
                request.count,
                self.config.timeout,
            )
            .await;
        self.last_exchange = Some(Instant::now());
        let rtt_ms = sent_at.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(_) => self.series.answered(sent_at.elapsed()),
            Err(_) => self
                .metrics
                .request(&self.config.id, sent_at.elapsed(), &result),
        }
        if !matches!(result, Err(ReadError::Timeout(_) | ReadError::Broken(_))) {
            run.answered_any = true;
            run.timeouts_in_a_row = 0;
            self.plc_rtt.push(rtt_ms);
            if let Some(unit) = self.units.get_mut(&request.unit_id) {
                unit.rtt.push(rtt_ms);
            }
        }
        result
    }

    /// Turns the answer to request `index` into readings of its `live` tags. Returns true when a merged read
    /// was refused and split into single reads queued in this cycle.
    fn apply(
        &mut self,
        index: usize,
        request: &ReadRequest,
        live: &[usize],
        result: Result<Vec<u16>, ReadError>,
        at: Millis,
        run: &mut CycleRun,
    ) -> bool {
        let unit_id = request.unit_id;
        match result {
            Ok(words) => {
                run.read_any = true;
                run.units.entry(unit_id).or_default().read = true;
                for &tag in live {
                    run.readings[tag] = request
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
                run.refused += 1;
                if request.tags.len() > 1 {
                    warn!(
                        device = %self.config.id, unit = unit_id, table = ?request.table,
                        start = request.start, count = request.count, code,
                        "Merged read refused ({}); reading its tags one by one from now on.",
                        exception_name(code)
                    );
                    for split in self.plan.split(index).into_iter().rev() {
                        run.queue.push_front(split);
                    }
                    return true;
                }
                for &tag in live {
                    self.refuse(tag, code, at);
                    run.readings[tag] = Err(disabled_error(code));
                }
            }
            Err(error) => {
                for &tag in live {
                    run.readings[tag] = Err(tag_error(&error));
                }
                run.failed(unit_id, error);
            }
        }
        false
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
}

/// The tag error of a failed read that is not a configuration refusal.
fn tag_error(error: &ReadError) -> TagError {
    match error {
        ReadError::Response(ResponseError::Exception { code }) => TagError::Exception {
            code: *code,
            name: exception_name(*code).into(),
        },
        ReadError::Response(ResponseError::WrongLength { expected, got }) => {
            TagError::WrongLength {
                expected: *expected,
                got: *got,
            }
        }
        ReadError::Response(ResponseError::Malformed(text)) => TagError::Protocol(text.clone()),
        ReadError::Timeout(_) => TagError::Timeout(error.to_string()),
        ReadError::Broken(reason) => TagError::Transport(reason.clone().into()),
    }
}

/// The tally of one cycle (what it read, whether it lost the connection and why, what each unit did, how many
/// requests were sent and refused) and its queue of requests still to run. Filled by the named steps of
/// `Poller::cycle` (`not_asked`, `send`, `apply`, `failed`, `judge_silence`) and read
/// by `outcome`.
#[derive(Debug)]
pub(super) struct CycleRun {
    /// One entry per tag of the plan.
    pub(super) readings: Vec<Result<Vec<u16>, TagError>>,
    /// Requests still to run, as indices into the plan (splits are queued in front).
    pub(super) queue: VecDeque<usize>,
    /// What happened to each unit that was asked.
    pub(super) units: BTreeMap<u8, UnitCycle>,
    /// Requests sent.
    pub(super) sent: u32,
    /// Requests refused with a configuration exception: answered, but saying nothing about the device's data.
    pub(super) refused: u32,
    /// At least one request returned data.
    pub(super) read_any: bool,
    /// At least one request got an answer (data or exception).
    pub(super) answered_any: bool,
    /// Timeouts in a row with nothing answered in between.
    pub(super) timeouts_in_a_row: u32,
    /// Why the connection was given up, if it was.
    pub(super) lost: Option<String>,
}

impl CycleRun {
    fn new(tags: usize, queue: VecDeque<usize>) -> Self {
        Self {
            readings: vec![Err(TagError::Transport("not read".into())); tags],
            queue,
            units: BTreeMap::new(),
            sent: 0,
            refused: 0,
            read_any: false,
            answered_any: false,
            timeouts_in_a_row: 0,
            lost: None,
        }
    }

    /// At the end of the cycle: requests were sent and none was answered, so the device as a whole is silent
    /// and the connection is given up (unless it already was).
    fn judge_silence(&mut self, timeout: std::time::Duration) {
        if self.lost.is_none() && self.sent > 0 && !self.answered_any {
            self.lost = Some(format!(
                "no answer within {timeout:?}: the device is silent"
            ));
        }
    }

    /// What the cycle hands to the task loop.
    fn into_report(self) -> CycleReport {
        CycleReport {
            readings: self.readings,
            read_any: self.read_any,
            lost: self.lost,
        }
    }

    /// Records a failed read of `unit_id`; a timeout may reveal a silent device, a broken stream loses the
    /// connection.
    fn failed(&mut self, unit_id: u8, error: ReadError) {
        let unit_cycle = self.units.entry(unit_id).or_default();
        unit_cycle.failed = true;
        unit_cycle.error = Some(format!("unit {unit_id}: {error}"));
        match error {
            ReadError::Timeout(_) => {
                unit_cycle.timed_out = true;
                self.timeouts_in_a_row += 1;
                if !self.answered_any && self.timeouts_in_a_row >= SILENT_AFTER_TIMEOUTS {
                    self.lost = Some(format!(
                        "no answer to {} requests in a row: the device is silent",
                        self.timeouts_in_a_row
                    ));
                }
            }
            ReadError::Broken(reason) => self.lost = Some(reason),
            ReadError::Response(_) => {}
        }
    }
}
