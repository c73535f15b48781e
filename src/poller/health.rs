//! Device health, per PLC connection and per unit behind it: up/down, consecutive failed cycles, last error,
//! request round-trip times (p50/p99 over a small fixed ring), requests per poll, disabled tags and their next
//! probe. The poller writes it to the shared [`HealthBoard`] in place after each cycle (figures that change
//! every poll are plain copies; strings and lists are written only when they change; the round-trip
//! percentiles are computed when a reader asks); up/down transitions and disabled/enabled tags travel as
//! [`PollEvent`]s on the `Sample`.
//! Pure bookkeeping: no I/O, time comes in as arguments.

use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::logic::decode::Table;
use crate::logic::Millis;

use super::plan::ReadPlan;

/// Round trips remembered per PLC and per unit for the percentiles.
pub const RTT_RING_LEN: usize = 128;

/// A fixed ring of the most recent round-trip times, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RttRing {
    samples: [f64; RTT_RING_LEN],
    len: usize,
    next: usize,
}

impl Default for RttRing {
    fn default() -> Self {
        Self {
            samples: [0.0; RTT_RING_LEN],
            len: 0,
            next: 0,
        }
    }
}

impl RttRing {
    /// Remembers one round trip, forgetting the oldest when full.
    pub fn push(&mut self, rtt_ms: f64) {
        self.samples[self.next] = rtt_ms;
        self.next = (self.next + 1) % RTT_RING_LEN;
        self.len = (self.len + 1).min(RTT_RING_LEN);
    }

    /// The nearest-rank percentile `p` (0–100) of the remembered round trips; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        // A selection on a stack copy: no sort, no allocation.
        let mut copy = self.samples;
        let rank = ((p / 100.0) * self.len as f64).ceil() as usize;
        let (_, nth, _) =
            copy[..self.len].select_nth_unstable_by(rank.clamp(1, self.len) - 1, f64::total_cmp);
        Some(*nth)
    }
}

/// A tag the poller stopped reading after a configuration exception (01/02/03); it is probed again on the
/// PLC's retry schedule and enabled again by the first good answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledTag {
    /// Index of the tag in the PLC's `ReadPlan::tags`.
    pub tag: usize,
    /// Unit id.
    pub unit_id: u8,
    /// Table.
    pub table: Table,
    /// First address of the tag.
    pub address: u16,
    /// The exception code of the latest refusal.
    pub code: u8,
    /// When it was disabled (start of the cycle whose read was refused).
    pub at: Millis,
    /// Probes refused since it was disabled.
    pub failed_probes: u32,
    /// When it is probed next (UTC milliseconds).
    pub next_retry_at: Millis,
}

/// A disabled tag answered a probe with data and is read every cycle again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnabledTag {
    /// The tag as it was while disabled.
    pub disabled: DisabledTag,
    /// Start of the cycle whose probe succeeded.
    pub at: Millis,
}

/// A PLC connection (`unit_id: None`) or one unit behind it changed between up and down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Index of the PLC in `Config::plcs`.
    pub plc: usize,
    /// PLC id.
    pub plc_id: String,
    /// The unit, or `None` for the PLC connection as a whole.
    pub unit_id: Option<u8>,
    /// The new state.
    pub up: bool,
    /// The state before; `None` for the first observation after start.
    pub previous: Option<bool>,
    /// Start of the cycle that decided it.
    pub at: Millis,
    /// The error that took it down (for `up == false`).
    pub error: Option<String>,
}

/// Something the processor should record once, carried on the sample of the cycle it happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollEvent {
    /// Up/down transition of a PLC connection or of a unit.
    Transition(Transition),
    /// A tag was disabled after a configuration exception.
    TagDisabled(DisabledTag),
    /// A disabled tag answered its probe and is enabled again.
    TagEnabled(EnabledTag),
}

/// Live health of one unit behind a PLC connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitHealth {
    /// Unit id.
    pub unit_id: u8,
    /// Up: the last cycle that tried it got an answer with data. Down after `unit_failure_threshold` failed
    /// cycles in a row (it is then skipped for `unit_backoff`).
    pub up: bool,
    /// Cycles in a row in which every request to this unit failed.
    pub consecutive_failures: u64,
    /// Last error, if any.
    pub last_error: Option<String>,
    /// Round trips (ms) of the last [`RTT_RING_LEN`] requests to this unit ([`UnitHealth::rtt_p50_ms`]).
    pub rtt: RttRing,
    /// Requests sent to this unit in the last cycle.
    pub requests_per_poll: u32,
    /// Whether the unit is being skipped (failure backoff) right now.
    pub backed_off: bool,
}

/// Live health of one PLC connection, shared with the health publisher and the demo.
#[derive(Debug, Clone, Default)]
pub struct PlcHealth {
    /// PLC id.
    pub id: String,
    /// Up: the last cycle read at least one value. Down after `unit_failure_threshold` cycles in a row that
    /// read nothing (connection refused, silent device, every unit failing).
    pub up: bool,
    /// Cycles (or connect attempts) in a row that read nothing.
    pub consecutive_failures: u64,
    /// Last error, if any.
    pub last_error: Option<String>,
    /// Duration of the last cycle that read something (all its requests, pauses included).
    pub rtt_ms: Option<f64>,
    /// Round trips (ms) of the last [`RTT_RING_LEN`] requests on this connection ([`PlcHealth::rtt_p50_ms`]).
    pub rtt: RttRing,
    /// Requests sent in the last cycle.
    pub requests_per_poll: u32,
    /// Cycles that read something.
    pub polls: u64,
    /// Cycles and connect attempts that read nothing.
    pub failures: u64,
    /// Late answers recognised by transaction id and dropped.
    pub late_answers: u64,
    /// Connections established.
    pub connects: u64,
    /// Units behind this connection, ascending by unit id.
    pub units: Vec<UnitHealth>,
    /// Tags disabled after a configuration exception, with their next probe.
    pub disabled_tags: Vec<DisabledTag>,
}

impl UnitHealth {
    /// Median request round trip (ms) over the last [`RTT_RING_LEN`] requests; `None` before the first.
    pub fn rtt_p50_ms(&self) -> Option<f64> {
        self.rtt.percentile(50.0)
    }

    /// 99th percentile request round trip (ms) over the last [`RTT_RING_LEN`] requests.
    pub fn rtt_p99_ms(&self) -> Option<f64> {
        self.rtt.percentile(99.0)
    }
}

impl PlcHealth {
    /// Median request round trip (ms) over the last [`RTT_RING_LEN`] requests; `None` before the first.
    pub fn rtt_p50_ms(&self) -> Option<f64> {
        self.rtt.percentile(50.0)
    }

    /// 99th percentile request round trip (ms) over the last [`RTT_RING_LEN`] requests.
    pub fn rtt_p99_ms(&self) -> Option<f64> {
        self.rtt.percentile(99.0)
    }
}

/// Health of every PLC, indexed like [`Config::plcs`].
pub type HealthBoard = Arc<Mutex<Vec<PlcHealth>>>;

/// Creates a health board for the configured PLCs, with one entry per unit of each PLC's plan.
pub fn health_board(config: &Config) -> HealthBoard {
    Arc::new(Mutex::new(
        config
            .plcs
            .iter()
            .enumerate()
            .map(|(index, plc)| PlcHealth {
                id: plc.id.clone(),
                units: unit_entries(&ReadPlan::for_plc(config, index)),
                ..PlcHealth::default()
            })
            .collect(),
    ))
}

/// One default entry per unit of `plan`.
pub(crate) fn unit_entries(plan: &ReadPlan) -> Vec<UnitHealth> {
    plan.units()
        .into_iter()
        .map(|unit_id| UnitHealth {
            unit_id,
            ..UnitHealth::default()
        })
        .collect()
}

/// Up/down with hysteresis: down after `threshold` failed cycles in a row, up at the first good one.
#[derive(Debug, Clone, Default)]
pub(crate) struct UpDown {
    state: Option<bool>,
    /// Failed cycles in a row.
    pub(crate) consecutive_failures: u64,
}

impl UpDown {
    /// Records one cycle; returns `(new, previous)` when the state changed.
    pub(crate) fn record(&mut self, ok: bool, threshold: u32) -> Option<(bool, Option<bool>)> {
        let previous = self.state;
        if ok {
            self.consecutive_failures = 0;
            self.state = Some(true);
        } else {
            self.consecutive_failures += 1;
            if self.consecutive_failures >= u64::from(threshold.max(1)) {
                self.state = Some(false);
            }
        }
        (self.state != previous)
            .then_some(self.state.map(|up| (up, previous)))
            .flatten()
    }

    /// Whether the last decided state is up.
    pub(crate) fn is_up(&self) -> bool {
        self.state == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_round_trips_when_asking_percentiles_then_nearest_rank_over_the_last_ring_only() {
        let mut ring = RttRing::default();
        assert_eq!(ring.percentile(50.0), None);
        for ms in 1..=100 {
            ring.push(f64::from(ms));
        }
        assert_eq!(ring.percentile(50.0), Some(50.0));
        assert_eq!(ring.percentile(99.0), Some(99.0));
        assert_eq!(ring.percentile(100.0), Some(100.0));
        // 128 more slow samples push every fast one out of the ring.
        for _ in 0..RTT_RING_LEN {
            ring.push(1000.0);
        }
        assert_eq!(ring.percentile(50.0), Some(1000.0));
    }

    #[test]
    fn given_failures_when_recorded_then_down_only_at_the_threshold_and_up_at_once() {
        let mut state = UpDown::default();
        assert_eq!(state.record(true, 3), Some((true, None)));
        assert_eq!(state.record(false, 3), None);
        assert_eq!(state.record(false, 3), None);
        assert_eq!(state.record(false, 3), Some((false, Some(true))));
        assert_eq!(state.record(false, 3), None);
        assert_eq!(state.consecutive_failures, 4);
        assert_eq!(state.record(true, 3), Some((true, Some(false))));
        assert!(state.is_up());

        let mut from_start = UpDown::default();
        assert_eq!(from_start.record(false, 1), Some((false, None)));
    }
}
