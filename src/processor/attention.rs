//! Which machines the task loop's per-pass work must look at. A pass (after a sample, or a timer) asks when
//! the next window closes, whether late facts wait for a load, and whether routine work waits for a commit.
//! Visiting every machine for that made each pass cost O(machines): cheap when a tick polls the whole fleet
//! at once (one pass per burst), but one pass per sample when each PLC polls at its own phase
//! (`agent.poll_schedule = "spread"`). Those facts change only for the machines a sample, a release or a
//! load touched, so the processor notes those and keeps one merged value for the rest
//! (ARCHITECTURE.md, "Processor").
//!
//! Invariant: for every machine not noted since the last [`Attention::refresh`], `bounds` covers its
//! [`DueBounds`] (a deadline no later, a future mark no earlier) and `deferred` is true if it has deferred
//! changes. Whatever may move a machine's bounds the other way (a close, a load) notes every machine, and
//! the next refresh recomputes the value from all of them.

use crate::logic::rollup::DueBounds;
use crate::logic::Millis;

use super::MachineRuntime;

/// The merged per-pass facts of the machines not noted since the last refresh, and the noted machines.
#[derive(Debug)]
pub(super) struct Attention {
    /// Machines touched since the last refresh (indexes into the processor's machines; may repeat).
    noted: Vec<usize>,
    /// Every machine must be looked at (after a construction, a close or a load).
    all: bool,
    /// Bounds covering every machine's windows; `None`: no window is due at any time.
    bounds: Option<DueBounds>,
    /// Some machine may have changes waiting for windows to be loaded.
    deferred: bool,
    /// A machine was touched since the last commit collected the changes (routine work may wait).
    changed: bool,
}

impl Default for Attention {
    /// A new processor's: every machine is looked at, and its restored state may be routine work.
    fn default() -> Attention {
        Attention {
            noted: Vec::new(),
            all: true,
            bounds: None,
            deferred: false,
            changed: true,
        }
    }
}

impl Attention {
    /// Machine `index` was touched (a sample, a release): its windows and baselines may have changed.
    pub(super) fn note(&mut self, index: usize) {
        self.noted.push(index);
        self.changed = true;
    }

    /// Every machine may have changed in a way that moves its bounds either way (windows closed or loaded).
    pub(super) fn note_all(&mut self) {
        self.all = true;
        self.noted.clear();
        self.changed = true;
    }

    /// Folds the noted machines into the merged value: all of them after [`Attention::note_all`], else only
    /// those noted. Returns how many machines it looked at.
    pub(super) fn refresh(&mut self, machines: &[MachineRuntime]) -> usize {
        if self.all {
            self.all = false;
            self.noted.clear();
            self.bounds = None;
            self.deferred = false;
            machines.iter().for_each(|machine| self.fold(machine));
            return machines.len();
        }
        let noted = std::mem::take(&mut self.noted);
        for &index in &noted {
            self.fold(&machines[index]);
        }
        let looked = noted.len();
        // The vector keeps its capacity for the next passes.
        self.noted = noted;
        self.noted.clear();
        looked
    }

    fn fold(&mut self, machine: &MachineRuntime) {
        for acc in &machine.windows {
            if let Some(bounds) = acc.due_bounds() {
                self.bounds = Some(self.bounds.map_or(bounds, |b| b.merge(bounds)));
            }
            self.deferred |= acc.has_deferred();
        }
    }

    /// Whether closing windows at `now` may close something (exact for an up-to-date value).
    pub(super) fn close_due_at(&self, now: Millis) -> bool {
        self.bounds.is_some_and(|bounds| bounds.due_at(now))
    }

    /// The earliest window deadline, for the loop's timer.
    pub(super) fn deadline(&self) -> Option<Millis> {
        self.bounds.map(|bounds| bounds.deadline)
    }

    /// Whether late facts may wait for window records to be loaded.
    pub(super) fn deferred(&self) -> bool {
        self.deferred
    }

    /// Whether a machine was touched since the last [`Attention::collected`].
    pub(super) fn changed(&self) -> bool {
        self.changed
    }

    /// The changes of every machine were moved into the pending work.
    pub(super) fn collected(&mut self) {
        self.changed = false;
    }
}

/// Whether an accumulator's bounds are covered by merged ones (for the invariant's tests).
#[cfg(test)]
pub(super) fn covers(
    merged: Option<DueBounds>,
    acc: &crate::logic::rollup::MachineWindows,
) -> bool {
    match (merged, acc.due_bounds()) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(m), Some(a)) => m.deadline <= a.deadline && m.future >= a.future,
    }
}

#[cfg(test)]
impl Attention {
    /// The merged bounds, for tests.
    pub(super) fn bounds(&self) -> Option<DueBounds> {
        self.bounds
    }
}
