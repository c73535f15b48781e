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

pub mod connection;
mod cycle;
mod disabled;
pub mod frame;
pub mod health;
mod outcome;
pub mod plan;
pub mod retry;

use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::PlcConfig;
use crate::logic::Millis;

pub use connection::{ConnectError, Connection, ReadError};
pub use frame::{classify, ExceptionClass};
pub use health::{
    health_board, DisabledTag, EnabledTag, HealthBoard, PlcHealth, PollEvent, RttRing, Transition,
    UnitHealth,
};
pub use plan::{machine_tags, plan, plan_requests, PlanLimits, ReadPlan, ReadRequest};
pub use retry::RetrySchedule;

use cycle::Poller;

/// A cycle that starts this close to its scheduled instant is stamped with that instant.
const TICK_SNAP_MS: i64 = 50;
/// First reconnect delay; doubles up to the PLC's `backoff_max`.
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
    /// The connection failed; the tag was not read in this cycle.
    #[error("{0}")]
    Transport(String),
}

/// One poll cycle of one PLC: a reading (or an error) for every tag of the PLC's plan.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Index of the PLC in [`crate::config::Config::plcs`].
    pub plc: usize,
    /// Poll sequence number of this PLC, from 1; failed cycles count too.
    pub seq: u64,
    /// Monotonic instant the cycle started.
    pub mono: Instant,
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

/// Polls one PLC until `shutdown`; sends one [`Sample`] per cycle (or failed connect) to `sample_tx`.
pub async fn run(
    plc: usize,
    plc_config: PlcConfig,
    plan: ReadPlan,
    sample_tx: mpsc::Sender<Sample>,
    health: HealthBoard,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut poller = Poller::new(plc, plc_config, plan);
    {
        let mut board = health.lock().expect("health board lock is never poisoned");
        if let Some(entry) = board.get_mut(plc) {
            *entry = poller.initial_health();
        }
    }
    let mut seq: u64 = 0;
    let backoff_start = BACKOFF_START.min(poller.config().backoff_max);
    let mut backoff = backoff_start;

    while !shutdown.is_cancelled() {
        if poller.connection.is_none() {
            let at = now_millis();
            let connected = tokio::select! {
                _ = shutdown.cancelled() => break,
                connected = poller.connect(at) => connected,
            };
            if let Err(error) = connected {
                seq += 1;
                let sample = Sample {
                    plc,
                    seq,
                    mono: Instant::now(),
                    utc: at,
                    readings: vec![Err(TagError::Transport(error)); poller.plan.tags.len()],
                    events: poller.take_events(),
                };
                poller.publish(&health);
                if sample_tx.send(sample).await.is_err() {
                    break;
                }
                sleep_or_cancel(jitter(backoff), &shutdown).await;
                backoff = backoff.saturating_mul(2).min(poller.config().backoff_max);
                continue;
            }
        }
        // Cycles are aligned to the clock, so that with a 1 s poll every window boundary gets a poll.
        let (wait, tick_at) = next_tick(poller.config().poll_interval);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        seq += 1;
        let mono = Instant::now();
        // Stamp the cycle with its scheduled instant when the timer fired on time, so a poll
        // scheduled on a window boundary does not straddle it by a few milliseconds of timer lag.
        let now = now_millis();
        let utc = if (now - tick_at).abs() <= TICK_SNAP_MS {
            tick_at
        } else {
            now
        };
        let report = tokio::select! {
            _ = shutdown.cancelled() => break,
            report = poller.cycle(utc) => report,
        };
        poller.publish(&health);
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
            backoff = backoff_start;
        }
        if report.lost.is_some() {
            sleep_or_cancel(jitter(backoff), &shutdown).await;
            if !report.read_any {
                backoff = backoff.saturating_mul(2).min(poller.config().backoff_max);
            }
        }
    }
    poller.disconnect().await;
    Ok(())
}

fn jitter(base: Duration) -> Duration {
    let factor = rand::rng().random_range(0.8..1.2);
    base.mul_f64(factor)
}

async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(duration) => {}
    }
}

/// Time to sleep until the next multiple of `interval` on the wall clock, and that instant.
fn next_tick(interval: Duration) -> (Duration, Millis) {
    let interval_ms = crate::config::clock::millis(interval).max(1);
    let now = now_millis();
    let next = (now / interval_ms + 1) * interval_ms;
    (Duration::from_millis((next - now) as u64), next)
}

/// The wall clock in UTC milliseconds; only adapters read it, never `logic`.
pub fn now_millis() -> Millis {
    jiff::Timestamp::now().as_millisecond()
}
