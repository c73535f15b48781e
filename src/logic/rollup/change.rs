//! One change to a window's sums, applied at once or deferred until the window is loaded.

use super::{Channel, Flag, MachineState, WindowSums};

/// One change to a window's sums. Changes commute (sums add, flags unite), so applying a deferred
/// change after its window was loaded gives the same record as applying it at once.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change<'a> {
    Count(&'a Channel, u64),
    State(MachineState, i64),
    Flag(Flag),
}

/// A [`Change`] waiting for its window to be loaded from the store.
#[derive(Debug, Clone)]
pub(super) enum Deferred {
    Count(Channel, u64),
    State(MachineState, i64),
    Flag(Flag),
}

impl Change<'_> {
    /// Applies the change; returns whether the sums changed.
    pub(super) fn apply_to(self, sums: &mut WindowSums) -> bool {
        match self {
            Change::Count(channel, amount) => {
                sums.add_count(channel, amount);
                true
            }
            Change::State(state, ms) => {
                sums.add_state(state, ms);
                true
            }
            Change::Flag(flag) => sums.flags.insert(flag),
        }
    }

    pub(super) fn defer(self) -> Deferred {
        match self {
            Change::Count(channel, amount) => Deferred::Count(channel.clone(), amount),
            Change::State(state, ms) => Deferred::State(state, ms),
            Change::Flag(flag) => Deferred::Flag(flag),
        }
    }
}

impl Deferred {
    pub(super) fn as_change(&self) -> Change<'_> {
        match self {
            Deferred::Count(channel, amount) => Change::Count(channel, *amount),
            Deferred::State(state, ms) => Change::State(*state, *ms),
            Deferred::Flag(flag) => Change::Flag(*flag),
        }
    }
}
