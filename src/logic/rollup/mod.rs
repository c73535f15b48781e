//! Deltas and state intervals → per-window sums, and the window lifecycle (open → final → restated).
//! Pure: the driver passes time in and asks `next_deadline()` when to wake.
//! Plan: every fact is split over the shift calendar first; in-plan time is kept by state and in-plan
//! units by channel, out-of-plan time and units as totals (docs/kpi.md, "Time model"). Without a
//! calendar all time is in plan and every window is flagged [`Flag::NoCalendar`].
//! Late facts: a fact for a window already past the restatement horizon (end + horizon <= the
//! latest time seen) is never dropped silently. Its counts go to the oldest window still kept,
//! which is flagged [`Flag::Late`]; its state time cannot be re-homed (it would exceed the window), so it
//! is discarded, that window is flagged late, and both are tallied in [`LateTally`].
//! Memory: closed windows that were emitted are evicted after a short tail ([`MachineWindows::evict`]);
//! the store keeps them for the horizon. A change to a window that is not in memory is deferred until
//! the driver loads the window ([`MachineWindows::load_requests`], [`MachineWindows::restore_range`]).

mod accumulate;
mod change;
mod flag;
mod lifecycle;
mod state;
mod sums;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use super::calendar::Calendar;
use super::window::Period;
use super::Millis;
use change::Deferred;

pub use flag::Flag;
pub use lifecycle::{DueBounds, LoadRequest};
pub use state::{rebase_after_step, MachineState, StateTracker};
pub use sums::{Channel, LateTally, WindowRecord, WindowStatus, WindowSums};

/// One machine's windows for every configured period: open ones, closed ones awaiting
/// restatement, and a short tail of recently closed ones.
///
/// Windows are created lazily when a fact touches them. A closed, emitted window leaves memory
/// once `end + grace + period <= now` ([`MachineWindows::evict`], called after its record was
/// persisted); late facts within the horizon still restate it after the driver loads it back.
#[derive(Debug, Clone)]
pub struct MachineWindows {
    machine: String,
    periods: Vec<Period>,
    grace_ms: i64,
    horizon_ms: i64,
    /// The shift calendar: which time is in plan, the shift windows, and the time zone.
    calendar: Calendar,
    /// Per period (same index as `periods`): records by window start. Boxed: a map node has room for
    /// eleven values, so unboxed records (about 250 bytes each) would cost ~2.7 KiB per period and machine
    /// even for the one to three windows a period usually holds.
    windows: Vec<BTreeMap<Millis, Box<WindowRecord>>>,
    /// Records changed since the last `touched()`.
    touched: BTreeSet<(usize, Millis)>,
    /// Records that `close_due` must look at: open ones and dirty closed ones.
    due: BTreeSet<(usize, Millis)>,
    /// Latest time seen (a fact's end or `close_due`'s now); the horizon is measured from it.
    watermark: Option<Millis>,
    late: LateTally,
    /// Per period: every window starting at or after this is in memory or exists nowhere; an
    /// older window that is not in memory may be in the store. `Millis::MIN` until `restore`.
    resident_from: Vec<Millis>,
    /// Changes to windows that may be in the store only, in arrival order.
    deferred: Vec<(usize, Millis, Deferred)>,
    /// Per period: the window last looked up (see [`MachineWindows::window_of`]).
    last_window: Vec<Option<(Millis, Millis)>>,
    /// Tests only: look every window up and split every fact, as before the fast paths, to check that
    /// the fast paths change nothing.
    #[cfg(test)]
    pub(super) no_fast_paths: bool,
}
