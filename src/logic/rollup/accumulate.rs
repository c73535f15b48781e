//! Facts into windows: each counted delta and state interval is split over the calendar's plan
//! first (in plan / out of plan, and at shift boundaries), then over the windows of every period;
//! counts in proportion to time, state time exactly. Also flags, and the late-fact rule at the
//! restatement horizon. A `shift` period has no window between shifts: time and units there reach
//! only the other periods (and a late part whose oldest kept time lies between shifts is left out
//! of the `shift` period).

use std::collections::{BTreeMap, BTreeSet};

use super::change::{Change, Plan};
use super::{
    Channel, Flag, LateTally, MachineState, MachineWindows, WindowRecord, WindowStatus, WindowSums,
};
use crate::logic::calendar::Calendar;
use crate::logic::window::{
    largest_remainder, overlap_ms, split_proportional, window_at, window_labels,
    windows_overlapping, Period,
};
use crate::logic::Millis;

/// A stretch `[from, to)` wholly in or out of plan and inside at most one shift occurrence; for an
/// instant fact, `from == to`.
type Piece = (Millis, Millis, Plan);

/// Where one part of a count goes in one period, and what it carries.
struct CountPart<'a> {
    channel: &'a Channel,
    amount: u64,
    from: Millis,
    to: Millis,
    plan: Plan,
    flag: Option<Flag>,
    /// The fact was apportioned over more than one piece of the plan.
    across_plan: bool,
}

impl MachineWindows {
    /// An empty accumulator; `grace_ms` applies to every period. The calendar holds the time zone
    /// windows align to and which time is in plan.
    pub fn new(
        machine: String,
        periods: Vec<Period>,
        grace_ms: i64,
        horizon_ms: i64,
        calendar: Calendar,
    ) -> Self {
        let windows = periods.iter().map(|_| BTreeMap::new()).collect();
        let resident_from = vec![Millis::MIN; periods.len()];
        let last_window = vec![None; periods.len()];
        MachineWindows {
            machine,
            periods,
            grace_ms,
            horizon_ms,
            calendar,
            windows,
            touched: BTreeSet::new(),
            due: BTreeSet::new(),
            watermark: None,
            late: LateTally::default(),
            resident_from,
            deferred: Vec::new(),
            last_window,
            #[cfg(test)]
            no_fast_paths: false,
        }
    }

    /// Adds `amount` of `channel`, produced over `[t_from, t_to)`, to the windows of every period.
    ///
    /// The amount is first apportioned over the pieces of the plan the interval crosses (largest
    /// remainder in proportion to time): in-plan parts add to the counts, out-of-plan parts to the
    /// out-of-plan counts. Each part is then split over windows by [`split_proportional`]. Every
    /// window that receives part of a fact split across a plan or window boundary is flagged
    /// [`Flag::Estimated`]. `flag` goes on every window that receives a part; with `amount == 0` it
    /// goes on the window containing `t_to`. A reversed interval is read as the instant `t_to`.
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
        let pieces = self.plan_pieces(t_from, t_to);
        let parts = if pieces.len() == 1 {
            vec![amount]
        } else {
            let weights: Vec<u64> = pieces
                .iter()
                .map(|(from, to, _)| to.saturating_sub(*from).unsigned_abs())
                .collect();
            largest_remainder(amount, &weights)
        };
        let across_plan = pieces.len() > 1;
        let mut most_late = None;
        for index in 0..self.periods.len() {
            let mut late_in_period: Option<u64> = None;
            for (&(from, to, plan), &part) in pieces.iter().zip(&parts) {
                let count = CountPart {
                    channel,
                    amount: part,
                    from,
                    to,
                    plan,
                    flag,
                    across_plan,
                };
                if let Some(late) = self.count_into(index, count) {
                    late_in_period = Some(late_in_period.unwrap_or(0) + late);
                }
            }
            most_late = most_late.max(late_in_period);
        }
        if let Some(units) = most_late {
            self.late.facts += 1;
            self.late.units += units;
        }
    }

    /// Adds one part of a count to the windows of period `index`. Returns the units re-homed to
    /// the oldest kept window when the part reaches past the restatement horizon.
    fn count_into(&mut self, index: usize, count: CountPart<'_>) -> Option<u64> {
        let (from, to) = (count.from, count.to);
        let kept = self.oldest_kept_start(index);
        let change = |amount| Change::Count(count.channel, amount, count.plan);
        if kept.is_none_or(|kept| kept <= from) {
            if let Some(start) = self.window_holding(index, from, to) {
                // The common case: the part lies in one window, so it all goes there (a part of
                // nothing reaches no window, as in `split_proportional`).
                if count.amount == 0 {
                    return None;
                }
                self.apply(index, start, change(count.amount));
                if let Some(flag) = count.across_plan.then_some(Flag::Estimated) {
                    self.apply(index, start, Change::Flag(flag));
                }
                if let Some(flag) = count.flag {
                    self.apply(index, start, Change::Flag(flag));
                }
                return None;
            }
        }
        let period = self.periods[index].clone();
        let straddles = from < to && self.window_of(index, from) != self.window_of(index, to - 1);
        let (kept_from, late_amount, kept_amount) = match kept {
            Some(kept) if from < kept => {
                if to <= kept {
                    (kept, count.amount, 0)
                } else {
                    let weights = [
                        kept.saturating_sub(from).unsigned_abs(),
                        to.saturating_sub(kept).unsigned_abs(),
                    ];
                    let parts = largest_remainder(count.amount, &weights);
                    (kept, parts[0], parts[1])
                }
            }
            _ => (from, 0, count.amount),
        };
        let estimated = count.across_plan || straddles;
        let flags = [estimated.then_some(Flag::Estimated), count.flag];
        if late_amount > 0 {
            if let Some((target, _)) = self.window_of(index, kept_from) {
                self.apply(index, target, change(late_amount));
                self.apply(index, target, Change::Flag(Flag::Late));
                for flag in flags.into_iter().flatten() {
                    self.apply(index, target, Change::Flag(flag));
                }
            }
        }
        for (start, part) in split_proportional(kept_amount, kept_from, to, &period, &self.calendar)
        {
            self.apply(index, start, change(part));
            for flag in flags.into_iter().flatten() {
                self.apply(index, start, Change::Flag(flag));
            }
        }
        (kept_from > from).then_some(late_amount)
    }

    /// The pieces of `[t_from, t_to)`: the calendar's plan segments, cut again where a shift starts
    /// or ends, so that every piece lies in at most one shift window and a shift window's counts
    /// equal the sum of the finer windows inside it. An instant is one piece with its plan.
    fn plan_pieces(&self, t_from: Millis, t_to: Millis) -> Vec<Piece> {
        if t_from >= t_to {
            let in_plan = self
                .calendar
                .plan_segments(t_to, t_to.saturating_add(1))
                .first()
                .is_none_or(|segment| segment.in_plan);
            return vec![(t_to, t_to, Plan::of(in_plan))];
        }
        let cuts: BTreeSet<Millis> = self
            .calendar
            .shifts_overlapping(t_from, t_to)
            .iter()
            .flat_map(|occurrence| [occurrence.start, occurrence.end])
            .filter(|&at| t_from < at && at < t_to)
            .collect();
        let mut pieces = Vec::new();
        for segment in self.calendar.plan_segments(t_from, t_to) {
            let plan = Plan::of(segment.in_plan);
            let mut from = segment.start;
            for &cut in cuts.range(segment.start + 1..segment.end) {
                pieces.push((from, cut, plan));
                from = cut;
            }
            pieces.push((from, segment.end, plan));
        }
        pieces
    }

    /// Adds the time `[t_from, t_to)` spent in `state`, split exactly (ms) over the plan and then
    /// across windows: in-plan time by state, out-of-plan time as one total.
    pub fn add_state(&mut self, state: MachineState, t_from: Millis, t_to: Millis) {
        if t_from >= t_to {
            return;
        }
        self.advance(t_to);
        let segments = self.calendar.plan_segments(t_from, t_to);
        let mut most_late = None;
        for index in 0..self.periods.len() {
            let mut from = t_from;
            if let Some(kept) = self.oldest_kept_start(index) {
                if t_from < kept {
                    if let Some((target, _)) = self.window_of(index, kept) {
                        self.apply(index, target, Change::Flag(Flag::Late));
                    }
                    from = kept.min(t_to);
                    most_late = most_late.max(Some(from.saturating_sub(t_from)));
                }
            }
            for segment in &segments {
                let (seg_from, seg_to) = (segment.start.max(from), segment.end);
                if seg_from >= seg_to {
                    continue;
                }
                let plan = Plan::of(segment.in_plan);
                if let Some(start) = self.window_holding(index, seg_from, seg_to) {
                    self.apply(index, start, Change::State(state, seg_to - seg_from, plan));
                    continue;
                }
                let period = &self.periods[index];
                for (start, end) in windows_overlapping(period, seg_from, seg_to, &self.calendar) {
                    let ms = overlap_ms(start, end, seg_from, seg_to);
                    if ms > 0 {
                        self.apply(index, start, Change::State(state, ms, plan));
                    }
                }
            }
        }
        if let Some(discarded) = most_late {
            self.late.facts += 1;
            self.late.state_ms += discarded;
        }
    }

    /// Puts `flag` on the window containing `at` in every period that has one (the oldest kept
    /// one, also flagged [`Flag::Late`], when `at` is past the horizon).
    pub fn flag(&mut self, at: Millis, flag: Flag) {
        self.advance(at);
        for index in 0..self.periods.len() {
            let Some((start, _)) = self.window_of(index, at) else {
                continue;
            };
            match self.oldest_kept_start(index) {
                Some(kept) if start < kept => {
                    if let Some((target, _)) = self.window_of(index, kept) {
                        self.apply(index, target, Change::Flag(Flag::Late));
                        self.apply(index, target, Change::Flag(flag));
                    }
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

    /// Start of the oldest window of period `index` still kept (the one containing the floor); the
    /// floor itself when it lies in no window (between shifts).
    pub(super) fn oldest_kept_start(&mut self, index: usize) -> Option<Millis> {
        self.floor().map(|floor| {
            self.window_of(index, floor)
                .map_or(floor, |(start, _)| start)
        })
    }

    /// `window_at` for period `index`, remembering the last window found: `window_at` gives the same
    /// window for every instant inside it, so an instant in the remembered one needs no time-zone
    /// arithmetic (almost every fact lands in the window of the fact before it).
    pub(super) fn window_of(&mut self, index: usize, at: Millis) -> Option<(Millis, Millis)> {
        #[cfg(test)]
        if self.no_fast_paths {
            return window_at(&self.periods[index], at, &self.calendar);
        }
        let last = &mut self.last_window[index];
        if let Some(window) = last.filter(|&(start, end)| start <= at && at < end) {
            return Some(window);
        }
        let found = window_at(&self.periods[index], at, &self.calendar);
        if let Some(window) = found.filter(|&(start, end)| start < end) {
            *last = Some(window);
        }
        found
    }

    /// The start of the window of period `index` that holds all of `[from, to)` (`from < to`), when one
    /// does: then a fact over that stretch goes to that window alone, as `split_proportional` and
    /// `windows_overlapping` would put it.
    fn window_holding(&mut self, index: usize, from: Millis, to: Millis) -> Option<Millis> {
        #[cfg(test)]
        if self.no_fast_paths {
            return None;
        }
        if from >= to {
            return None;
        }
        let (start, end) = self.window_of(index, from)?;
        (to <= end).then_some(start)
    }

    /// Applies `change` to the sums of a window (created if needed). A changed closed window
    /// becomes dirty and is due for restatement. A window that is not in memory but may be in the
    /// store is not created: the change waits in `deferred` until the window is loaded.
    pub(super) fn apply(&mut self, index: usize, start: Millis, change: Change<'_>) {
        let key = (index, start);
        if start < self.resident_from[index] && !self.windows[index].contains_key(&start) {
            self.deferred.push((index, start, change.defer()));
            return;
        }
        if !self.windows[index].contains_key(&start) {
            let record = self.new_record(index, start);
            self.windows[index].insert(start, Box::new(record));
            self.due.insert(key);
            self.touched.insert(key);
        }
        let record = self.windows[index]
            .get_mut(&start)
            .expect("the window was just found or created");
        if change.apply_to(&mut record.sums) {
            if record.status != WindowStatus::Open {
                record.dirty = true;
                self.due.insert(key);
            }
            self.touched.insert(key);
        }
    }

    /// A fresh open record for the window of period `index` starting at `start`, with its labels;
    /// flagged [`Flag::NoCalendar`] when no calendar is configured.
    fn new_record(&self, index: usize, start: Millis) -> WindowRecord {
        let period = &self.periods[index];
        let end = window_at(period, start, &self.calendar)
            .filter(|(window_start, _)| *window_start == start)
            .map_or(start, |(_, end)| end);
        let labels = window_labels(period, start, end, &self.calendar);
        let mut sums = WindowSums::default();
        if !self.calendar.is_configured() {
            sums.flags.insert(Flag::NoCalendar);
        }
        WindowRecord {
            machine: self.machine.clone(),
            period: period.name.clone(),
            start,
            end,
            shift: labels.shift,
            production_date: labels.production_date,
            sums,
            status: WindowStatus::Open,
            revision: 0,
            dirty: false,
        }
    }
}
