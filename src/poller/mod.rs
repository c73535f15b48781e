//! Modbus/TCP acquisition: one task per PLC connection, reads only (function codes 1–4; `frame` cannot encode
//! anything else). Every connect and request runs under the PLC's timeout. Late answers are matched by
//! transaction id and dropped; a connection whose byte stream is in doubt is rebuilt with capped exponential
//! backoff plus jitter. Units behind one gateway fail and back off one by one (`cycle`). Decoding is not done
//! here (`logic::decode`).
//!
//! Layout: `plan` (pure request planning), `frame` (pure Modbus/TCP framing), `connection` (the socket),
//! `cycle` (one PLC's poll cycle and its state), `outcome` (what a cycle means for health: unit backoff,
//! up/down transitions), `health` (the health board and its types), `disabled` (disabling, probing and
//! enabling tags refused with 01/02/03), `retry` (pure schedule of those probes).
//!
//! A tag refused with a configuration exception (01/02/03, e.g. while a PLC program is downloaded) is
//! disabled, reported once, and probed with one single read per retry: after `disabled_retry`, then doubling
//! up to `disabled_retry_max`, with jitter. The first probe that reads a value enables it again (reported
//! once). While disabled its readings are errors, never zeros; the cumulative counter carries its counts to
//! the first good read.
//!
//! Trade-off, timeouts behind a gateway: a unit that does not answer (absent behind a TCP→RTU gateway that
//! stays silent instead of sending 0x0B) costs one `timeout` per cycle — its other requests in that cycle are
//! skipped — until `unit_failure_threshold` failed cycles put it in `unit_backoff`, after which it costs nothing
//! until its retry. The connection is kept, because the answer, if it ever comes, carries the abandoned
//! transaction id and is dropped. We pay with trust in the device's transaction ids and the gateway's own
//! serial timeout: a gateway still waiting on the dead unit when our next request arrives answers late, so the
//! next unit may time out too; set `timeout` above the gateway's serial timeout. The connection is dropped only
//! when the stream is in doubt (half a frame at the deadline, an unknown transaction id, a broken header, EOF)
//! or when nothing on it answers (two timeouts in a row before any answer, or a whole cycle without one).
//! Healthy units are polled first in every cycle, so a failing unit's timeout never delays their readings.
//!
//! Schedule (`schedule`): with `agent.poll_schedule = "aligned"` (the default) cycles run on the multiples of
//! `poll_interval` of the wall clock; with `"spread"` each PLC polls at its own phase within the interval
//! (derived from its index in the configuration), on the ticks `phase + k·poll_interval`, so a fleet's reads
//! spread evenly over the interval instead of all waking on one tick. One extra cycle runs at every window boundary
//! of `agent.periods` and every shift and break start or end of the calendar, so counts and machine-state time
//! split exactly where windows and planned time begin or end; the extra cycles leave the regular ones where
//! they are.

pub mod connection;
mod cycle;
mod disabled;
pub mod frame;
pub mod health;
mod outcome;
pub mod plan;
pub mod retry;
mod schedule;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::clock::{self, Clock as _, SharedClock};
use crate::config::{PlcConfig, PollSchedule};
use crate::liveness::{poll_pass_budget, Heartbeat};
use crate::logic::calendar::Calendar;
use crate::logic::window::Period;
use crate::logic::Millis;
use crate::metrics::SharedMetrics;

pub use connection::{ConnectError, Connection, ReadError};
pub use frame::{classify, ExceptionClass};
pub use health::{
    health_board, DisabledTag, EnabledTag, HealthBoard, PlcHealth, PollEvent, RttRing, Transition,
    UnitHealth,
};
pub use plan::{machine_tags, plan, plan_requests, PlanLimits, ReadPlan, ReadRequest};
pub use retry::RetrySchedule;
pub use schedule::phase;

use cycle::Poller;
use schedule::{Boundaries, Grid, Schedule};

/// A cycle that starts this close to its scheduled instant is stamped with that instant.
const TICK_SNAP_MS: i64 = 50;
/// Ceiling of the first reconnect delay; it doubles per failed attempt up to the PLC's `backoff_max`
/// ([`Backoff::doubling`]).
const BACKOFF_START: Duration = Duration::from_millis(250);

/// Why one tag has no value in a sample. A failed read is never a zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// The PLC answered with a transient Modbus exception (04, 05, 06, 0A, 0B …); the tag is read again next cycle.
    #[error("exception {code:#04x} ({name})")]
    Exception {
        /// Exception code.
        code: u8,
        /// Its name.
        name: String,
    },
    /// The PLC refused the tag with a configuration exception (01, 02, 03); it is not read every cycle but
    /// probed again with a growing delay (`disabled_retry` up to `disabled_retry_max`) until it answers.
    #[error("disabled after exception {code:#04x} ({name}); probed again with a growing delay")]
    Disabled {
        /// Exception code.
        code: u8,
        /// Its name.
        name: String,
    },
    /// The answer had the wrong number of registers (or bits).
    #[error("wrong response length: expected {expected}, got {got}")]
    WrongLength {
        /// Registers asked for.
        expected: usize,
        /// Registers received.
        got: usize,
    },
    /// The answer was not a well-formed response to the request.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The unit did not answer in time (the connection itself was kept).
    #[error("{0}")]
    Timeout(String),
    /// The unit failed too often and is skipped for a while (`unit_backoff`).
    #[error("unit {unit_id} is backed off after repeated failures")]
    UnitSkipped {
        /// The unit.
        unit_id: u8,
    },
    /// The connection failed; the tag was not read in this cycle. (A `Cow`: the fixed reasons, such as a
    /// cycle's "not read" for every tag, cost no allocation.)
    #[error("{0}")]
    Transport(std::borrow::Cow<'static, str>),
}

/// One poll cycle of one PLC: a reading (or an error) for every tag of the PLC's plan.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Index of the PLC in [`crate::config::Config::plcs`].
    pub plc: usize,
    /// Poll sequence number of this PLC, from 1; failed cycles count too.
    pub seq: u64,
    /// Monotonic instant the cycle started, read together with `utc` (steps of the wall clock are
    /// found by comparing the two).
    pub mono: std::time::Instant,
    /// UTC time the cycle started.
    pub utc: Millis,
    /// Per tag of [`ReadPlan::tags`], in the same order.
    pub readings: Vec<Result<Vec<u16>, TagError>>,
    /// Up/down transitions and disabled tags decided in this cycle, each reported exactly once.
    pub events: Vec<PollEvent>,
}

impl Sample {
    /// True when the connection failed and no tag was read.
    pub fn is_gap(&self) -> bool {
        self.readings
            .iter()
            .all(|r| matches!(r, Err(TagError::Transport(_))))
    }
}

/// When a poller task polls: the clock it reads and stamps samples with, and the calendar and periods whose
/// shift, break and window boundaries get an extra cycle each.
#[derive(Debug, Clone)]
pub struct PollTiming {
    /// The clock the task reads (tests inject a steppable one).
    pub clock: SharedClock,
    /// The shift calendar; without one there are no extra cycles.
    pub calendar: Calendar,
    /// The window periods (`agent.periods`); each window boundary gets a cycle of its own.
    pub periods: Vec<Period>,
    /// Aligned to the multiples of the interval, or spread at the PLC's phase ([`phase`]).
    pub schedule: PollSchedule,
    /// The process's metrics; the supervisor passes its one registry so the series outlive the task.
    pub metrics: SharedMetrics,
    /// Where the loop reports progress for the watchdog; `None` when nobody watches.
    pub heartbeat: Option<Heartbeat>,
}

impl PollTiming {
    /// The machine's clock, no calendar and no periods: regular cycles only.
    pub fn system() -> PollTiming {
        PollTiming {
            clock: clock::system(),
            calendar: Calendar::all_planned(jiff::tz::TimeZone::UTC),
            periods: Vec::new(),
            schedule: PollSchedule::Aligned,
            metrics: SharedMetrics::default(),
            heartbeat: None,
        }
    }
}

/// Polls one PLC until `shutdown` with the machine's clock and no calendar; see [`run_with_clock`].
pub async fn run(
    plc: usize,
    plc_config: PlcConfig,
    plan: ReadPlan,
    sample_tx: mpsc::Sender<Sample>,
    health: HealthBoard,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let timing = PollTiming::system();
    run_with_clock(plc, plc_config, plan, sample_tx, health, timing, shutdown).await
}

/// The instants a cycle scheduled for `tick_at` is stamped with: the scheduled instant when the timer fired on
/// time, so a poll scheduled on a window boundary does not straddle it by a few milliseconds of timer lag. The
/// third value is how late the cycle starts ([`poll_lag`]).
fn cycle_stamp(clock: &SharedClock, tick_at: Millis) -> (std::time::Instant, Millis, Duration) {
    let clock::Now { mono, utc: now } = clock.now();
    let utc = if (now - tick_at).abs() <= TICK_SNAP_MS {
        tick_at
    } else {
        now
    };
    (mono, utc, poll_lag(tick_at, now))
}

/// How late a cycle scheduled for `tick_at` starts when the wall clock reads `now`; never negative (a timer
/// that fires a hair early is on time).
fn poll_lag(tick_at: Millis, now: Millis) -> Duration {
    Duration::from_millis(u64::try_from(now - tick_at).unwrap_or(0))
}

/// Polls one PLC until `shutdown`; sends one [`Sample`] per cycle (or failed connect) to `sample_tx`,
/// stamped by `timing.clock`, on `timing.schedule` (at its phase within the interval when spread), with an extra cycle at each
/// boundary of `timing.calendar` and of the windows of `timing.periods`.
pub async fn run_with_clock(
    plc: usize,
    plc_config: PlcConfig,
    plan: ReadPlan,
    sample_tx: mpsc::Sender<Sample>,
    health: HealthBoard,
    timing: PollTiming,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let PollTiming {
        clock,
        calendar,
        periods,
        schedule: poll_schedule,
        metrics,
        heartbeat,
    } = timing;
    let mut poller = Poller::new(plc, plc_config, plan, metrics);
    // Each pass promises its next beat after its sleep plus what one pass may take.
    let budget = poll_pass_budget(
        poller.config(),
        poller.plan.requests.len(),
        poller.plan.tags.len(),
    );
    let beat = |sleep: Duration| {
        if let Some(heartbeat) = &heartbeat {
            heartbeat.beat(clock.now().mono, sleep.saturating_add(budget));
        }
    };
    poller.publish_initial(&health);
    let mut seq: u64 = 0;
    let mut backoff = Backoff::doubling(BACKOFF_START, poller.config().backoff_max);
    let interval = poller.config().poll_interval;
    let offset = match poll_schedule {
        PollSchedule::Aligned => Duration::ZERO,
        PollSchedule::Spread => phase(plc, interval),
    };
    let grid = Grid::new(interval, offset);
    let mut schedule = Schedule::new(grid, Boundaries::new(calendar, periods));

    while !shutdown.is_cancelled() {
        if poller.connection.is_none() {
            let started = clock.now();
            let at = started.utc;
            let connected = tokio::select! {
                _ = shutdown.cancelled() => break,
                connected = poller.connect(at) => connected,
            };
            if let Err(error) = connected {
                seq += 1;
                let sample = poller.connect_failed_sample(seq, started, error);
                poller.publish(&health);
                if sample_tx.send(sample).await.is_err() {
                    break;
                }
                let pause = backoff.next_delay(started.mono, rand::random::<f64>());
                beat(pause);
                sleep_or_cancel(pause, &shutdown).await;
                continue;
            }
        }
        // Regular cycles at this PLC's phase; window, shift and break boundaries get one of their own.
        let (wait, tick_at) = schedule.next(clock.utc());
        beat(wait);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        seq += 1;
        let (mono, utc, lag) = cycle_stamp(&clock, tick_at);
        poller.series.poll_started(lag, schedule.start(tick_at));
        let report = tokio::select! {
            _ = shutdown.cancelled() => break,
            report = poller.cycle(utc) => report,
        };
        poller.publish(&health);
        poller.series.poll();
        let sample = Sample {
            plc,
            seq,
            mono,
            utc,
            readings: report.readings,
            events: poller.take_events(),
        };
        if sample_tx.send(sample).await.is_err() {
            break;
        }
        if report.read_any {
            backoff.reset();
        }
        if report.lost.is_some() {
            schedule.interrupted();
            let pause = backoff.next_delay(mono, rand::random::<f64>());
            if report.read_any {
                // A connection that read something starts the next episode at the first delay again.
                backoff.reset();
            }
            beat(pause);
            sleep_or_cancel(pause, &shutdown).await;
        }
    }
    poller.disconnect().await;
    Ok(())
}

impl Poller {
    /// The sample of a failed connection attempt started at `started`: no tag read.
    fn connect_failed_sample(&mut self, seq: u64, started: clock::Now, error: String) -> Sample {
        Sample {
            plc: self.plc,
            seq,
            mono: started.mono,
            utc: started.utc,
            readings: vec![Err(TagError::Transport(error.into())); self.plan.tags.len()],
            events: self.take_events(),
        }
    }
}

async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(duration) => {}
    }
}

/// The machine's wall clock in UTC milliseconds; only adapters read it, never `logic`. Tasks wired by
/// the supervisor read their injected [`crate::clock::Clock`] instead.
pub fn now_millis() -> Millis {
    clock::SystemClock.utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_that_starts_late_has_that_lag_and_an_early_one_none() {
        assert_eq!(poll_lag(10_000, 10_250), Duration::from_millis(250));
        assert_eq!(poll_lag(10_000, 10_000), Duration::ZERO);
        assert_eq!(poll_lag(10_000, 9_997), Duration::ZERO);
    }
}
