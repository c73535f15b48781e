//! Facts into windows: counted deltas split in proportion to time, state time split exactly, flags,
//! and the late-fact rule at the restatement horizon.

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;

use super::change::Change;
use super::{
    Channel, Flag, LateTally, MachineState, MachineWindows, WindowRecord, WindowStatus, WindowSums,
};
use crate::logic::window::{
    largest_remainder, overlap_ms, split_proportional, window_end, window_start,
    windows_overlapping, Period,
};
use crate::logic::Millis;

impl MachineWindows {
    /// An empty accumulator; `grace_ms` applies to every period.
    pub fn new(
        machine: String,
        periods: Vec<Period>,
        grace_ms: i64,
        horizon_ms: i64,
        tz: TimeZone,
    ) -> Self {
        let windows = periods.iter().map(|_| BTreeMap::new()).collect();
        let resident_from = vec![Millis::MIN; periods.len()];
        MachineWindows {
            machine,
            periods,
            grace_ms,
            horizon_ms,
            tz,
            windows,
            touched: BTreeSet::new(),
            due: BTreeSet::new(),
            watermark: None,
            late: LateTally::default(),
            resident_from,
            deferred: Vec::new(),
        }
    }

    /// Adds `amount` of `channel`, produced over `[t_from, t_to)`, to the windows of every period.
    ///
    /// An interval straddling a boundary is split by [`split_proportional`] and every window that
    /// receives a part is flagged [`Flag::Estimated`]. `flag` goes on every window that receives a part;
    /// with `amount == 0` it goes on the window containing `t_to`. A reversed interval is read as
    /// the instant `t_to`.
    pub fn add_count(
        &mut self,
        channel: &Channel,
        amount: u64,
        t_from: Millis,
        t_to: Millis,
        flag: Option<Flag>,
    ) {
        let t_from = t_from.min(t_to);
        self.advance(t_to);
        if amount == 0 {
            if let Some(flag) = flag {
                self.flag(t_to, flag);
            }
            return;
        }
        let mut most_late = None;
        for index in 0..self.periods.len() {
            let period = self.periods[index].clone();
            let straddles = t_from < t_to
                && window_start(&period, t_from, &self.tz)
                    != window_start(&period, t_to - 1, &self.tz);
            let (kept_from, late_amount, kept_amount) = match self.oldest_kept_start(index) {
                Some(kept) if t_from < kept => {
                    if t_to <= kept {
                        (kept, amount, 0)
                    } else {
                        let weights = [
                            kept.saturating_sub(t_from).unsigned_abs(),
                            t_to.saturating_sub(kept).unsigned_abs(),
                        ];
                        let parts = largest_remainder(amount, &weights);
                        (kept, parts[0], parts[1])
                    }
                }
                _ => (t_from, 0, amount),
            };
            if kept_from > t_from {
                most_late = most_late.max(Some(late_amount));
            }
            let flags = [straddles.then_some(Flag::Estimated), flag];
            if late_amount > 0 {
                self.apply(index, kept_from, Change::Count(channel, late_amount));
                self.apply(index, kept_from, Change::Flag(Flag::Late));
                for flag in flags.into_iter().flatten() {
                    self.apply(index, kept_from, Change::Flag(flag));
                }
            }
            for (start, part) in split_proportional(kept_amount, kept_from, t_to, &period, &self.tz)
            {
                self.apply(index, start, Change::Count(channel, part));
                for flag in flags.into_iter().flatten() {
                    self.apply(index, start, Change::Flag(flag));
                }
            }
        }
        if let Some(units) = most_late {
            self.late.facts += 1;
            self.late.units += units;
        }
    }

    /// Adds the time `[t_from, t_to)` spent in `state`, split exactly (ms) across windows.
    pub fn add_state(&mut self, state: MachineState, t_from: Millis, t_to: Millis) {
        if t_from >= t_to {
            return;
        }
        self.advance(t_to);
        let mut most_late = None;
        for index in 0..self.periods.len() {
            let period = self.periods[index].clone();
            let mut from = t_from;
            if let Some(kept) = self.oldest_kept_start(index) {
                if t_from < kept {
                    self.apply(index, kept, Change::Flag(Flag::Late));
                    from = kept.min(t_to);
                    most_late = most_late.max(Some(from.saturating_sub(t_from)));
                }
            }
            if from >= t_to {
                continue;
            }
            for (start, end) in windows_overlapping(&period, from, t_to, &self.tz) {
                let ms = overlap_ms(start, end, from, t_to);
                if ms > 0 {
                    self.apply(index, start, Change::State(state, ms));
                }
            }
        }
        if let Some(discarded) = most_late {
            self.late.facts += 1;
            self.late.state_ms += discarded;
        }
    }

    /// Puts `flag` on the window containing `at` in every period (the oldest kept one, also
    /// flagged [`Flag::Late`], when `at` is past the horizon).
    pub fn flag(&mut self, at: Millis, flag: Flag) {
        self.advance(at);
        for index in 0..self.periods.len() {
            let start = window_start(&self.periods[index], at, &self.tz);
            match self.oldest_kept_start(index) {
                Some(kept) if start < kept => {
                    self.apply(index, kept, Change::Flag(Flag::Late));
                    self.apply(index, kept, Change::Flag(flag));
                }
                _ => self.apply(index, start, Change::Flag(flag)),
            }
        }
    }

    pub(super) fn advance(&mut self, at: Millis) {
        self.watermark = Some(self.watermark.map_or(at, |seen| seen.max(at)));
    }

    /// Instants before this are past the restatement horizon.
    pub(super) fn floor(&self) -> Option<Millis> {
        self.watermark
            .map(|seen| seen.saturating_sub(self.horizon_ms))
    }

    /// Start of the oldest window of period `index` still kept (the one containing the floor).
    pub(super) fn oldest_kept_start(&self, index: usize) -> Option<Millis> {
        self.floor()
            .map(|floor| window_start(&self.periods[index], floor, &self.tz))
    }

    /// Applies `change` to the sums of a window (created if needed). A changed closed window
    /// becomes dirty and is due for restatement. A window that is not in memory but may be in the
    /// store is not created: the change waits in `deferred` until the window is loaded.
    pub(super) fn apply(&mut self, index: usize, start: Millis, change: Change<'_>) {
        let key = (index, start);
        let windows = &mut self.windows[index];
        if start < self.resident_from[index] && !windows.contains_key(&start) {
            self.deferred.push((index, start, change.defer()));
            return;
        }
        let record = windows.entry(start).or_insert_with(|| {
            self.due.insert(key);
            self.touched.insert(key);
            WindowRecord {
                machine: self.machine.clone(),
                period: self.periods[index].name.clone(),
                start,
                end: window_end(&self.periods[index], start, &self.tz),
                sums: WindowSums::default(),
                status: WindowStatus::Open,
                revision: 0,
                dirty: false,
            }
        });
        if change.apply_to(&mut record.sums) {
            if record.status != WindowStatus::Open {
                record.dirty = true;
                self.due.insert(key);
            }
            self.touched.insert(key);
        }
    }
}
