//! What a window holds: its additive sums, its lifecycle status and the persisted record, plus
//! the count channels and the tally of facts older than the restatement horizon.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Flag, MachineState};
use crate::logic::Millis;

/// Additive sums of one window: times in ms and counts as integers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowSums {
    /// Units produced (good + defective).
    pub produced: u64,
    /// Defective units.
    pub defective: u64,
    /// Defective units by reason.
    pub by_reason: BTreeMap<String, u64>,
    /// Time in the running state.
    pub running_ms: i64,
    /// Time in a planned stop.
    pub planned_stop_ms: i64,
    /// Time in an unplanned stop.
    pub unplanned_stop_ms: i64,
    /// Time not covered by a good sample.
    pub unknown_ms: i64,
    /// Provenance flags.
    pub flags: BTreeSet<Flag>,
}

/// Where a window is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowStatus {
    /// Still accumulating; published on the live topic.
    Open,
    /// Closed once after its grace period; revision 0.
    Final,
    /// Republished after late facts arrived; revision ≥ 1.
    Restated,
}

/// One machine's window, as persisted and as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    /// Machine id.
    pub machine: String,
    /// Period name ("1m", "15m", "1h", ...).
    pub period: String,
    /// Inclusive start.
    pub start: Millis,
    /// Exclusive end.
    pub end: Millis,
    /// The sums.
    pub sums: WindowSums,
    /// Lifecycle status.
    pub status: WindowStatus,
    /// 0 for the first final publication, +1 per restatement.
    pub revision: u32,
    /// Changed since it was last emitted as final/restated.
    pub dirty: bool,
}

impl WindowSums {
    /// Planned time: every observed state (no shift calendar yet, so all observed time is planned).
    pub fn planned_ms(&self) -> i64 {
        self.running_ms + self.planned_stop_ms + self.unplanned_stop_ms + self.unknown_ms
    }

    pub(super) fn add_count(&mut self, channel: &Channel, amount: u64) {
        match channel {
            Channel::Produced => self.produced += amount,
            Channel::Defective => self.defective += amount,
            Channel::Reason(reason) => *self.by_reason.entry(reason.clone()).or_default() += amount,
        }
    }

    pub(super) fn add_state(&mut self, state: MachineState, ms: i64) {
        match state {
            MachineState::Running => self.running_ms += ms,
            MachineState::PlannedStop => self.planned_stop_ms += ms,
            MachineState::UnplannedStop => self.unplanned_stop_ms += ms,
            MachineState::Unknown => self.unknown_ms += ms,
        }
    }
}

impl WindowRecord {
    /// A stable key for persistence: `machine/period/start`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.machine, self.period, self.start)
    }
}

/// Which count a delta adds to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Units produced (good + defective).
    Produced,
    /// Defective units.
    Defective,
    /// Defective units of one named reason.
    Reason(String),
}

/// Facts (or parts of facts) that arrived for time older than the restatement horizon. Amounts
/// differ per period (a shorter period keeps its oldest window closer to the horizon); each fact
/// adds the largest amount over the periods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateTally {
    /// Facts that were partly or wholly late.
    pub facts: u64,
    /// Units (all channels) attributed to time before the horizon; re-homed, not lost.
    pub units: u64,
    /// State time before the horizon; discarded.
    pub state_ms: i64,
}
