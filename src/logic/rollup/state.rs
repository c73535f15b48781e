//! Machine states, the sample-and-hold state tracker and the re-basing after a wall-clock step.

use serde::{Deserialize, Serialize};

use super::{Flag, MachineWindows};
use crate::logic::clock::{ClockStep, StepDirection};
use crate::logic::counter::CounterState;
use crate::logic::Millis;

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

impl MachineState {
    /// The snake_case name, as serialized and published.
    pub fn name(self) -> &'static str {
        match self {
            MachineState::Running => "running",
            MachineState::PlannedStop => "planned_stop",
            MachineState::UnplannedStop => "unplanned_stop",
            MachineState::Unknown => "unknown",
        }
    }
}

/// Sample-and-hold machine state: a state lasts from its sample until the next sample; after a
/// failed poll the time is `Unknown` until the next good sample.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateTracker {
    current: Option<(MachineState, Millis)>,
}

impl StateTracker {
    /// A tracker that has seen no sample.
    pub fn new() -> Self {
        StateTracker::default()
    }

    /// Records a sample at `at` (`None` = failed poll) and returns the interval the previous
    /// sample's state covered, `(state, from, to)`; `None` for the first sample or when no time
    /// passed. A sample stamped before the previous one replaces its state without emitting.
    pub fn observe(
        &mut self,
        state: Option<MachineState>,
        at: Millis,
    ) -> Option<(MachineState, Millis, Millis)> {
        let state = state.unwrap_or(MachineState::Unknown);
        match self.current {
            Some((previous, since)) if at > since => {
                self.current = Some((state, at));
                Some((previous, since, at))
            }
            Some((_, since)) => {
                self.current = Some((state, since));
                None
            }
            None => {
                self.current = Some((state, at));
                None
            }
        }
    }

    /// The wall clock stepped: the held state no longer lasts from its sample's time (old time) and
    /// the interval across the step is not observed state time, so `Unknown` is held from `at` (new
    /// time) until the next sample.
    pub fn clock_stepped(&mut self, at: Millis) {
        if self.current.is_some() {
            self.current = Some((MachineState::Unknown, at));
        }
    }

    /// Closes the current state's interval at `at` without a new sample (e.g. at shutdown); the
    /// state goes on from `at`.
    pub fn flush(&mut self, at: Millis) -> Option<(MachineState, Millis, Millis)> {
        match self.current {
            Some((state, since)) if at > since => {
                self.current = Some((state, at));
                Some((state, since, at))
            }
            _ => None,
        }
    }

    /// The held state and since when, if any sample was seen.
    pub fn current(&self) -> Option<(MachineState, Millis)> {
        self.current
    }
}

/// Re-bases one machine after a step of the wall clock, so that nothing is counted across the jump.
///
/// The post-step sample covers `[step.rebased_from(), step.at)` in the new time (the time that
/// really elapsed, placed just before it): counter baselines move there, so the next delta lands in
/// the windows of the new time (never split across a phantom hour, never lumped at the old time),
/// and the held state becomes `Unknown` from there (the interval across a step is not running or
/// stopped time). After a step back the restatement horizon is measured from the new time. The last
/// window before the step and the windows of the re-based interval are flagged `clock_step`.
pub fn rebase_after_step<'a>(
    step: &ClockStep,
    counters: impl IntoIterator<Item = &'a mut CounterState>,
    tracker: &mut StateTracker,
    windows: &mut [MachineWindows],
) {
    let from = step.rebased_from();
    for counter in counters {
        counter.rebase(from);
    }
    tracker.clock_stepped(from);
    for acc in windows {
        acc.flag(step.before.saturating_sub(1), Flag::ClockStep);
        if step.direction == StepDirection::Back {
            acc.rewind(from);
        }
        acc.flag(from, Flag::ClockStep);
        acc.flag(step.at, Flag::ClockStep);
    }
}
