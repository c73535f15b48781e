//! Deltas and state intervals → per-window sums, and the window lifecycle (open → final → restated).
//! Pure: the driver passes time in and asks `next_deadline()` when to wake.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Millis;

/// A machine's state as mapped from its state register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// Producing.
    Running,
    /// Stopped on purpose (changeover, planned maintenance).
    PlannedStop,
    /// Stopped by a fault or other unplanned cause.
    UnplannedStop,
    /// Not known: no good sample covers this time.
    Unknown,
}

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
    /// Provenance flags: "estimated", "gap", "wrap", "reset", "glitch_zero", "rejected", "state_inferred".
    pub flags: BTreeSet<String>,
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
