//! One change to a window's sums, applied at once or deferred until the window is loaded.

use super::{Channel, Flag, MachineState, WindowSums};

/// Whether a change's time or units lie in planned production time (docs/kpi.md, "Time model").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// Inside a worked shift, outside its breaks.
    In,
    /// Between shifts, in a break, or on a day off.
    Out,
}

impl Plan {
    /// `In` for in-plan time.
    pub(super) fn of(in_plan: bool) -> Plan {
        if in_plan {
            Plan::In
        } else {
            Plan::Out
        }
    }
}

/// One change to a window's sums. Changes commute (sums add, flags unite), so applying a deferred
/// change after its window was loaded gives the same record as applying it at once.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change<'a> {
    Count(&'a Channel, u64, Plan),
    State(MachineState, i64, Plan),
    Flag(Flag),
}

/// A [`Change`] waiting for its window to be loaded from the store.
#[derive(Debug, Clone)]
pub(super) enum Deferred {
    Count(Channel, u64, Plan),
    State(MachineState, i64, Plan),
    Flag(Flag),
}

impl Change<'_> {
    /// Applies the change; returns whether the sums changed.
    pub(super) fn apply_to(self, sums: &mut WindowSums) -> bool {
        match self {
            Change::Count(channel, amount, Plan::In) => {
                sums.add_count(channel, amount);
                true
            }
            Change::Count(channel, amount, Plan::Out) => {
                sums.add_out_of_plan_count(channel, amount)
            }
            Change::State(state, ms, Plan::In) => {
                sums.add_state(state, ms);
                true
            }
            Change::State(_, ms, Plan::Out) => {
                sums.out_of_plan_ms += ms;
                true
            }
            Change::Flag(flag) => sums.flags.insert(flag),
        }
    }

    pub(super) fn defer(self) -> Deferred {
        match self {
            Change::Count(channel, amount, plan) => Deferred::Count(channel.clone(), amount, plan),
            Change::State(state, ms, plan) => Deferred::State(state, ms, plan),
            Change::Flag(flag) => Deferred::Flag(flag),
        }
    }
}

impl Deferred {
    pub(super) fn as_change(&self) -> Change<'_> {
        match self {
            Deferred::Count(channel, amount, plan) => Change::Count(channel, *amount, *plan),
            Deferred::State(state, ms, plan) => Change::State(*state, *ms, *plan),
            Deferred::Flag(flag) => Change::Flag(*flag),
        }
    }
}
