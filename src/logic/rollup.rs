//! Deltas and state intervals → per-window sums, and the window lifecycle (open → final → restated).
//! Pure: the driver passes time in and asks `next_deadline()` when to wake.
//! Late facts: a fact for a window already past the restatement horizon (end + horizon <= the
//! latest time seen) is never dropped silently. Its counts go to the oldest window still kept,
//! which is flagged [`Flag::Late`]; its state time cannot be re-homed (it would exceed the window), so it
//! is discarded, that window is flagged late, and both are tallied in [`LateTally`].
//! Memory: closed windows that were emitted are evicted after a short tail ([`MachineWindows::evict`]);
//! the store keeps them for the horizon. A change to a window that is not in memory is deferred until
//! the driver loads the window ([`MachineWindows::load_requests`], [`MachineWindows::restore_range`]).

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::clock::{ClockStep, StepDirection};
use super::counter::CounterState;
use super::window::{
    largest_remainder, overlap_ms, split_proportional, window_end, window_start,
    windows_overlapping, Period,
};
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

    fn add_count(&mut self, channel: &Channel, amount: u64) {
        match channel {
            Channel::Produced => self.produced += amount,
            Channel::Defective => self.defective += amount,
            Channel::Reason(reason) => *self.by_reason.entry(reason.clone()).or_default() += amount,
        }
    }

    fn add_state(&mut self, state: MachineState, ms: i64) {
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

/// A provenance flag of a window: why its figures are not a plain measurement. The serialized form
/// (snake_case) is what window records persist and rollup and live payloads carry; sets of flags
/// order by that name, so a persisted or published flag list keeps its alphabetical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// The window received part of a delta split across a window boundary.
    Estimated,
    /// Time or counts of the window were not read (failed polls, a counter that read as an error);
    /// the counts are carried to a later window by the cumulative counter.
    Gap,
    /// A counter wrapped around its width.
    Wrap,
    /// A counter went down (reset, or a decrease with `on_decrease = ignore`).
    Reset,
    /// A counter read zero for one poll and came back: the zero was a glitch.
    GlitchZero,
    /// A counter delta above the plausibility window was quarantined, not counted.
    Rejected,
    /// No state register: the machine state was inferred from counter movement.
    StateInferred,
    /// The oldest kept window, which took a fact older than the restatement horizon.
    Late,
    /// The window is around a step of the wall clock (the last one before it, the first one after
    /// it) or received facts measured across it.
    ClockStep,
}

impl Flag {
    /// Every flag, in declaration order.
    pub const ALL: [Flag; 9] = [
        Flag::Estimated,
        Flag::Gap,
        Flag::Wrap,
        Flag::Reset,
        Flag::GlitchZero,
        Flag::Rejected,
        Flag::StateInferred,
        Flag::Late,
        Flag::ClockStep,
    ];

    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Estimated => "estimated",
            Flag::Gap => "gap",
            Flag::Wrap => "wrap",
            Flag::Reset => "reset",
            Flag::GlitchZero => "glitch_zero",
            Flag::Rejected => "rejected",
            Flag::StateInferred => "state_inferred",
            Flag::Late => "late",
            Flag::ClockStep => "clock_step",
        }
    }
}

impl Ord for Flag {
    /// By name, so that a `BTreeSet<Flag>` serializes in the alphabetical order persisted records
    /// and published payloads have always had.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Flag {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Windows of one period a deferred change needs from the store: every persisted record of
/// `period` whose start lies in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRequest {
    /// Period name.
    pub period: String,
    /// Inclusive lower bound of the window starts.
    pub from: Millis,
    /// Exclusive upper bound of the window starts (`Millis::MAX`: no bound).
    pub to: Millis,
}

/// One change to a window's sums. Changes commute (sums add, flags unite), so applying a deferred
/// change after its window was loaded gives the same record as applying it at once.
#[derive(Debug, Clone, Copy)]
enum Change<'a> {
    Count(&'a Channel, u64),
    State(MachineState, i64),
    Flag(Flag),
}

/// A [`Change`] waiting for its window to be loaded from the store.
#[derive(Debug, Clone)]
enum Deferred {
    Count(Channel, u64),
    State(MachineState, i64),
    Flag(Flag),
}

impl Change<'_> {
    /// Applies the change; returns whether the sums changed.
    fn apply_to(self, sums: &mut WindowSums) -> bool {
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

    fn defer(self) -> Deferred {
        match self {
            Change::Count(channel, amount) => Deferred::Count(channel.clone(), amount),
            Change::State(state, ms) => Deferred::State(state, ms),
            Change::Flag(flag) => Deferred::Flag(flag),
        }
    }
}

impl Deferred {
    fn as_change(&self) -> Change<'_> {
        match self {
            Deferred::Count(channel, amount) => Change::Count(channel, *amount),
            Deferred::State(state, ms) => Change::State(*state, *ms),
            Deferred::Flag(flag) => Change::Flag(*flag),
        }
    }
}

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
    tz: TimeZone,
    /// Per period (same index as `periods`): records by window start.
    windows: Vec<BTreeMap<Millis, WindowRecord>>,
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
}

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

    /// Reloads persisted records after a restart: the open and dirty ones at least; records of other
    /// machines or periods are ignored, and a record already in memory is kept (it is newer).
    ///
    /// Any other window may be in the store: a change to one is deferred until
    /// [`MachineWindows::restore_range`] loads it. Restored records are not reported by `touched()`.
    pub fn restore(&mut self, records: Vec<WindowRecord>) {
        self.insert_loaded(records);
        self.resident_from.fill(Millis::MAX);
    }

    /// Which persisted windows the deferred changes need, one request per period; empty when none
    /// is waiting.
    pub fn load_requests(&self) -> Vec<LoadRequest> {
        let mut from: BTreeMap<usize, Millis> = BTreeMap::new();
        for (index, start, _) in &self.deferred {
            let entry = from.entry(*index).or_insert(*start);
            *entry = (*entry).min(*start);
        }
        from.into_iter()
            .map(|(index, from)| LoadRequest {
                period: self.periods[index].name.clone(),
                from,
                to: self.resident_from[index],
            })
            .collect()
    }

    /// Takes the answer to a [`LoadRequest`]: every persisted record of `period` with a start in
    /// `[from, request.to)`. Inserts those not in memory, then applies the deferred changes of that
    /// period, exactly as they would have been applied had the windows never left memory.
    pub fn restore_range(&mut self, period: &str, from: Millis, records: Vec<WindowRecord>) {
        let Some(index) = self.periods.iter().position(|p| p.name == period) else {
            return;
        };
        self.insert_loaded(records);
        self.resident_from[index] = self.resident_from[index].min(from);
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|(i, _, _)| *i == index);
        self.deferred = waiting;
        for (index, start, change) in ready {
            self.apply(index, start, change.as_change());
        }
    }

    /// Whether changes wait for windows to be loaded; until they are applied nothing may be
    /// persisted that depends on them.
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Forgets closed windows that were emitted and persisted and whose tail has passed:
    /// `end + grace + period length <= now`. Open, dirty and unreported (`touched`) windows stay.
    /// Call it only once everything `touched()` returned is in the store. Returns how many left.
    pub fn evict(&mut self, now: Millis) -> usize {
        let mut evicted = 0;
        for index in 0..self.periods.len() {
            let tail = self.grace_ms.saturating_add(self.periods[index].length_ms);
            let settled: Vec<Millis> = self.windows[index]
                .values()
                .take_while(|record| record.end.saturating_add(tail) <= now)
                .filter(|record| {
                    let key = (index, record.start);
                    record.status != WindowStatus::Open
                        && !record.dirty
                        && !self.due.contains(&key)
                        && !self.touched.contains(&key)
                })
                .map(|record| record.start)
                .collect();
            for start in settled {
                if let Some(record) = self.windows[index].remove(&start) {
                    self.resident_from[index] = self.resident_from[index].max(record.end);
                    evicted += 1;
                }
            }
        }
        evicted
    }

    /// Records ending before this time will never be touched or emitted again (they lie past the
    /// restatement horizon and none is still open or dirty), so the store may delete them. `None`
    /// while nothing was seen or changes wait for a load.
    pub fn prune_before(&self) -> Option<Millis> {
        if self.has_deferred() {
            return None;
        }
        let floor = self.floor()?;
        let due_end = self
            .due
            .iter()
            .filter_map(|(index, start)| self.windows[*index].get(start))
            .map(|record| record.end)
            .min();
        Some(due_end.map_or(floor, |end| end.min(floor)))
    }

    /// Number of window records held in memory.
    pub fn kept(&self) -> usize {
        self.windows.iter().map(BTreeMap::len).sum()
    }

    /// Inserts persisted records that are not in memory; open and dirty ones become due.
    fn insert_loaded(&mut self, records: Vec<WindowRecord>) {
        for record in records {
            if record.machine != self.machine {
                continue;
            }
            let Some(index) = self.periods.iter().position(|p| p.name == record.period) else {
                continue;
            };
            if self.windows[index].contains_key(&record.start) {
                continue;
            }
            if record.status == WindowStatus::Open || record.dirty {
                self.due.insert((index, record.start));
            }
            self.windows[index].insert(record.start, record);
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

    /// Closes windows whose `end + grace <= now` (status Final, revision 0) and restates closed
    /// windows changed since they were emitted (status Restated, revision + 1). Returns the
    /// emitted records in order of end, then period. Memory is freed by [`MachineWindows::evict`].
    ///
    /// A window that starts more than a grace period after `now` is in the future: it can only hold
    /// facts from before a step back of the wall clock (or from a run whose clock was ahead). It is
    /// closed at once instead of waiting for the clock to catch up, so that it neither holds back its
    /// facts for the length of the step nor looks open; facts that reach it later restate it.
    pub fn close_due(&mut self, now: Millis) -> Vec<WindowRecord> {
        self.advance(now);
        let mut emitted = Vec::new();
        let due: Vec<(usize, Millis)> = self.due.iter().copied().collect();
        for key in due {
            let Some(record) = self.windows[key.0].get_mut(&key.1) else {
                self.due.remove(&key);
                continue;
            };
            let ended = record.end.saturating_add(self.grace_ms) <= now;
            let in_future = record.start > now.saturating_add(self.grace_ms);
            if !ended && !in_future {
                continue;
            }
            match record.status {
                WindowStatus::Open => {
                    record.status = WindowStatus::Final;
                    record.revision = 0;
                }
                WindowStatus::Final | WindowStatus::Restated => {
                    record.status = WindowStatus::Restated;
                    record.revision += 1;
                }
            }
            record.dirty = false;
            emitted.push((record.end, key.0, record.clone()));
            self.due.remove(&key);
            self.touched.insert(key);
        }
        emitted.sort_by_key(|(end, index, _)| (*end, *index));
        emitted.into_iter().map(|(_, _, record)| record).collect()
    }

    /// Every record changed since the last call (open ones included), for the same transaction.
    pub fn touched(&mut self) -> Vec<WindowRecord> {
        let keys = std::mem::take(&mut self.touched);
        keys.into_iter()
            .filter_map(|(index, start)| self.windows[index].get(&start).cloned())
            .collect()
    }

    /// The windows still open, by period then start.
    pub fn open_windows(&self) -> Vec<&WindowRecord> {
        self.windows
            .iter()
            .flat_map(|windows| windows.values())
            .filter(|record| record.status == WindowStatus::Open)
            .collect()
    }

    /// When `close_due` next has work: the earliest `end + grace` among open windows and closed
    /// windows awaiting restatement (the latter are already due).
    pub fn next_deadline(&self) -> Option<Millis> {
        self.due
            .iter()
            .filter_map(|(index, start)| self.windows[*index].get(start))
            .map(|record| record.end.saturating_add(self.grace_ms))
            .min()
    }

    /// Facts that arrived for time past the restatement horizon, since this value was created.
    pub fn late(&self) -> &LateTally {
        &self.late
    }

    /// The periods, in configuration order.
    pub fn periods(&self) -> &[Period] {
        &self.periods
    }

    /// The wall clock stepped back to `at`: the restatement horizon is measured from the new time
    /// from now on (the latest time seen so far lies in the future of the new clock).
    pub fn rewind(&mut self, at: Millis) {
        if self.watermark.is_some_and(|seen| seen > at) {
            self.watermark = Some(at);
        }
    }

    fn advance(&mut self, at: Millis) {
        self.watermark = Some(self.watermark.map_or(at, |seen| seen.max(at)));
    }

    /// Instants before this are past the restatement horizon.
    fn floor(&self) -> Option<Millis> {
        self.watermark
            .map(|seen| seen.saturating_sub(self.horizon_ms))
    }

    /// Start of the oldest window of period `index` still kept (the one containing the floor).
    fn oldest_kept_start(&self, index: usize) -> Option<Millis> {
        self.floor()
            .map(|floor| window_start(&self.periods[index], floor, &self.tz))
    }

    /// Applies `change` to the sums of a window (created if needed). A changed closed window
    /// becomes dirty and is due for restatement. A window that is not in memory but may be in the
    /// store is not created: the change waits in `deferred` until the window is loaded.
    fn apply(&mut self, index: usize, start: Millis, change: Change<'_>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::clock::{ClockReading, StepDetector};
    use crate::logic::counter::{CounterConfig, OnDecrease};
    use proptest::prelude::*;

    const MINUTE: Millis = 60_000;
    const HOUR: Millis = 3_600_000;
    /// 2026-11-28T00:00:00Z.
    const T0: Millis = 1_795_824_000_000;

    fn periods(names: &[&str]) -> Vec<Period> {
        names
            .iter()
            .map(|name| Period::parse(name).unwrap())
            .collect()
    }

    fn machine(names: &[&str]) -> MachineWindows {
        MachineWindows::new(
            "press-01".into(),
            periods(names),
            10_000,
            72 * HOUR,
            TimeZone::UTC,
        )
    }

    fn produced_by_window(records: &[WindowRecord]) -> Vec<(Millis, u64)> {
        records.iter().map(|r| (r.start, r.sums.produced)).collect()
    }

    #[test]
    fn every_flag_serializes_as_its_name_and_back() {
        for flag in Flag::ALL {
            let json = serde_json::to_value(flag).unwrap();
            assert_eq!(json, serde_json::Value::from(flag.as_str()));
            assert_eq!(serde_json::from_value::<Flag>(json).unwrap(), flag);
        }
    }

    #[test]
    fn given_a_record_persisted_with_string_flags_when_loaded_then_its_flags_are_typed() {
        // A window record as earlier versions wrote it to the `windows` table: flags as a sorted
        // array of strings, every flag any version could raise.
        let old = r#"{"machine":"press-01","period":"1m","start":1795824000000,"end":1795824060000,
            "sums":{"produced":7,"defective":1,"by_reason":{"burr":1},"running_ms":50000,
            "planned_stop_ms":0,"unplanned_stop_ms":0,"unknown_ms":10000,
            "flags":["clock_step","estimated","gap","glitch_zero","late","rejected","reset",
                     "state_inferred","wrap"]},
            "status":"final","revision":0,"dirty":false}"#;
        let record: WindowRecord = serde_json::from_str(old).unwrap();
        assert_eq!(record.sums.flags, Flag::ALL.into_iter().collect());
        // Written back, the flags are the same strings in the same order.
        let again = serde_json::to_value(&record).unwrap();
        let before: serde_json::Value = serde_json::from_str(old).unwrap();
        assert_eq!(again["sums"]["flags"], before["sums"]["flags"]);
    }

    #[test]
    fn given_flags_in_a_set_when_serialized_then_they_are_in_alphabetical_order() {
        let set: BTreeSet<Flag> = [Flag::Wrap, Flag::ClockStep, Flag::Gap, Flag::Estimated]
            .into_iter()
            .collect();
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["clock_step","estimated","gap","wrap"]"#);
    }

    #[test]
    fn given_delta_inside_one_window_when_added_then_one_open_record_without_flags() {
        let mut windows = machine(&["1m", "1h"]);
        windows.add_count(&Channel::Produced, 5, T0 + 1_000, T0 + 2_000, None);
        let open = windows.open_windows();
        assert_eq!(open.len(), 2);
        assert!(open
            .iter()
            .all(|r| r.sums.produced == 5 && r.sums.flags.is_empty()));
        assert_eq!(
            (open[0].period.as_str(), open[0].start, open[0].end),
            ("1m", T0, T0 + MINUTE)
        );
        assert_eq!(windows.touched().len(), 2);
        assert!(windows.touched().is_empty());
    }

    #[test]
    fn given_delta_straddling_a_minute_when_added_then_split_and_flagged_estimated_only_where_split(
    ) {
        let mut windows = machine(&["1m", "1h"]);
        windows.add_count(
            &Channel::Produced,
            4,
            T0 + 59_000,
            T0 + 61_000,
            Some(Flag::Wrap),
        );
        let touched = windows.touched();
        let minutes: Vec<&WindowRecord> = touched.iter().filter(|r| r.period == "1m").collect();
        assert_eq!(minutes.len(), 2);
        assert_eq!((minutes[0].sums.produced, minutes[1].sums.produced), (2, 2));
        for record in &minutes {
            assert!(
                record.sums.flags.contains(&Flag::Estimated)
                    && record.sums.flags.contains(&Flag::Wrap)
            );
        }
        let hour = touched.iter().find(|r| r.period == "1h").unwrap();
        assert_eq!(hour.sums.produced, 4);
        assert!(!hour.sums.flags.contains(&Flag::Estimated));
    }

    #[test]
    fn given_channels_when_counted_then_each_sum_is_separate() {
        let mut windows = machine(&["1m"]);
        windows.add_count(&Channel::Produced, 10, T0, T0 + 1_000, None);
        windows.add_count(&Channel::Defective, 2, T0, T0 + 1_000, None);
        windows.add_count(&Channel::Reason("scratch".into()), 1, T0, T0 + 1_000, None);
        windows.add_count(&Channel::Reason("scratch".into()), 1, T0, T0 + 1_000, None);
        let sums = &windows.open_windows()[0].sums;
        assert_eq!((sums.produced, sums.defective), (10, 2));
        assert_eq!(sums.by_reason.get("scratch"), Some(&2));
    }

    #[test]
    fn given_state_interval_over_boundaries_when_added_then_split_exactly_in_ms() {
        let mut windows = machine(&["1m"]);
        windows.add_state(MachineState::Running, T0 + 30_000, T0 + 150_500);
        windows.add_state(MachineState::Unknown, T0 + 150_500, T0 + 180_000);
        let open = windows.open_windows();
        let running: Vec<i64> = open.iter().map(|r| r.sums.running_ms).collect();
        assert_eq!(running, vec![30_000, 60_000, 30_500]);
        assert_eq!(open[2].sums.unknown_ms, 29_500);
        assert_eq!(open[2].sums.planned_ms(), 60_000);
        assert!(open.iter().all(|r| r.sums.flags.is_empty()));
    }

    #[test]
    fn given_windows_when_grace_passes_then_final_once_and_late_fact_restates_with_next_revision() {
        let mut windows = machine(&["1m"]);
        windows.add_count(&Channel::Produced, 3, T0, T0 + 1_000, None);
        assert_eq!(windows.next_deadline(), Some(T0 + MINUTE + 10_000));
        assert!(windows.close_due(T0 + MINUTE + 9_999).is_empty());
        let closed = windows.close_due(T0 + MINUTE + 10_000);
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].status, closed[0].revision, closed[0].dirty),
            (WindowStatus::Final, 0, false)
        );
        assert_eq!(windows.touched()[0].status, WindowStatus::Final);
        assert!(windows.close_due(T0 + 2 * MINUTE + 10_000).is_empty());
        assert_eq!(windows.next_deadline(), None);

        // Backfill for the closed minute: persisted as dirty at once, restated at the next close.
        windows.add_count(
            &Channel::Produced,
            2,
            T0 + 5_000,
            T0 + 6_000,
            Some(Flag::Gap),
        );
        let touched = windows.touched();
        assert_eq!(
            (
                touched[0].status,
                touched[0].dirty,
                touched[0].sums.produced
            ),
            (WindowStatus::Final, true, 5)
        );
        assert!(windows.next_deadline().unwrap() <= T0 + 3 * MINUTE);
        let restated = windows.close_due(T0 + 3 * MINUTE);
        assert_eq!(restated.len(), 1);
        assert_eq!(
            (
                restated[0].status,
                restated[0].revision,
                restated[0].sums.produced
            ),
            (WindowStatus::Restated, 1, 5)
        );
        assert!(restated[0].sums.flags.contains(&Flag::Gap));
        windows.add_count(&Channel::Produced, 1, T0 + 7_000, T0 + 8_000, None);
        assert_eq!(windows.close_due(T0 + 3 * MINUTE)[0].revision, 2);
        // Re-adding a flag that is already there changes nothing and restates nothing.
        windows.flag(T0 + 5_000, Flag::Gap);
        assert!(windows.close_due(T0 + 3 * MINUTE).is_empty());
    }

    #[test]
    fn given_window_without_any_fact_when_closing_then_nothing_is_emitted_for_it() {
        let mut windows = machine(&["1m"]);
        windows.add_count(&Channel::Produced, 1, T0, T0 + 1_000, None);
        windows.add_count(
            &Channel::Produced,
            1,
            T0 + 3 * MINUTE,
            T0 + 3 * MINUTE + 1_000,
            None,
        );
        let closed = windows.close_due(T0 + 10 * MINUTE);
        assert_eq!(
            produced_by_window(&closed),
            vec![(T0, 1), (T0 + 3 * MINUTE, 1)]
        );
    }

    #[test]
    fn given_closed_windows_when_horizon_passes_then_forgotten_and_older_facts_go_late_to_the_oldest_kept(
    ) {
        let mut windows = MachineWindows::new(
            "m".into(),
            periods(&["1m"]),
            10_000,
            10 * MINUTE,
            TimeZone::UTC,
        );
        windows.add_count(&Channel::Produced, 1, T0, T0 + 1_000, None);
        windows.close_due(T0 + 2 * MINUTE);
        windows.close_due(T0 + 11 * MINUTE);
        windows.touched();
        // T0's window ended at T0 + 1m; at T0 + 11m it is past the 10 min horizon and forgotten.
        assert_eq!(windows.evict(T0 + 11 * MINUTE), 1);
        assert_eq!(windows.kept(), 0);
        assert!(windows.open_windows().is_empty());
        windows.add_count(&Channel::Produced, 6, T0 + 30_000, T0 + 31_000, None);
        let touched = windows.touched();
        assert_eq!(touched.len(), 1);
        assert_eq!(
            (touched[0].start, touched[0].sums.produced),
            (T0 + MINUTE, 6)
        );
        assert!(touched[0].sums.flags.contains(&Flag::Late));
        windows.add_state(MachineState::Running, T0, T0 + 90_000);
        let touched = windows.touched();
        assert_eq!(
            (touched[0].start, touched[0].sums.running_ms),
            (T0 + MINUTE, 30_000)
        );
        assert_eq!(
            windows.late(),
            &LateTally {
                facts: 2,
                units: 6,
                state_ms: 60_000
            }
        );
    }

    #[test]
    fn given_delta_reaching_back_past_the_horizon_when_added_then_the_late_part_is_rehomed_and_sum_kept(
    ) {
        let mut windows = MachineWindows::new(
            "m".into(),
            periods(&["1m", "15m"]),
            10_000,
            10 * MINUTE,
            TimeZone::UTC,
        );
        // One delta covering 30 minutes after an outage; only the last 10 minutes are kept.
        windows.add_count(&Channel::Produced, 300, T0, T0 + 30 * MINUTE, None);
        let touched = windows.touched();
        for period in ["1m", "15m"] {
            let records: Vec<&WindowRecord> =
                touched.iter().filter(|r| r.period == period).collect();
            assert_eq!(
                records.iter().map(|r| r.sums.produced).sum::<u64>(),
                300,
                "{period}"
            );
            assert!(records[0].sums.flags.contains(&Flag::Late));
            assert!(records
                .iter()
                .all(|r| r.sums.flags.contains(&Flag::Estimated)));
        }
        let minutes: Vec<u64> = touched
            .iter()
            .filter(|r| r.period == "1m")
            .map(|r| r.sums.produced)
            .collect();
        assert_eq!(minutes, vec![210, 10, 10, 10, 10, 10, 10, 10, 10, 10]);
        assert_eq!(windows.late().units, 200);
    }

    #[test]
    fn given_zero_amount_with_flag_when_added_then_window_containing_t_to_is_flagged() {
        let mut windows = machine(&["1m"]);
        windows.add_count(
            &Channel::Produced,
            0,
            T0,
            T0 + MINUTE + 1,
            Some(Flag::Reset),
        );
        let open = windows.open_windows();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].start, T0 + MINUTE);
        assert!(open[0].sums.flags.contains(&Flag::Reset));
        windows.add_count(&Channel::Produced, 0, T0, T0 + 1, None);
        assert_eq!(windows.open_windows().len(), 1);
    }

    #[test]
    fn given_persisted_records_when_restored_then_lifecycle_continues_where_it_stopped() {
        let mut before = machine(&["1m"]);
        before.add_count(&Channel::Produced, 4, T0, T0 + 1_000, None);
        before.add_count(
            &Channel::Produced,
            4,
            T0 + MINUTE,
            T0 + MINUTE + 1_000,
            None,
        );
        before.close_due(T0 + MINUTE + 10_000);
        let persisted: Vec<String> = before
            .touched()
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();

        let mut after = machine(&["1m"]);
        let records: Vec<WindowRecord> = persisted
            .iter()
            .map(|json| serde_json::from_str(json).unwrap())
            .collect();
        after.restore(records);
        assert!(after.touched().is_empty());
        assert_eq!(after.open_windows().len(), 1);
        assert_eq!(after.next_deadline(), Some(T0 + 2 * MINUTE + 10_000));
        after.add_count(&Channel::Produced, 1, T0 + 2_000, T0 + 3_000, None);
        let emitted = after.close_due(T0 + 2 * MINUTE + 10_000);
        assert_eq!(
            emitted
                .iter()
                .map(|r| (r.start, r.status, r.revision, r.sums.produced))
                .collect::<Vec<_>>(),
            vec![
                (T0, WindowStatus::Restated, 1, 5),
                (T0 + MINUTE, WindowStatus::Final, 0, 4)
            ]
        );
    }

    #[test]
    fn given_evicted_window_when_a_late_fact_restates_it_then_it_is_loaded_and_equals_the_kept_twin(
    ) {
        let mut kept = machine(&["1m"]);
        let mut evicting = machine(&["1m"]);
        // The evicting side came from a restart: only what the store hands back is in memory.
        evicting.restore(Vec::new());
        let mut disk: BTreeMap<Millis, WindowRecord> = BTreeMap::new();
        let persist = |disk: &mut BTreeMap<Millis, WindowRecord>, records: Vec<WindowRecord>| {
            for record in records {
                disk.insert(record.start, record);
            }
        };
        for side in [&mut kept, &mut evicting] {
            side.add_count(&Channel::Produced, 4, T0 + 1_000, T0 + 2_000, None);
        }
        // The first fact needs the (empty) store before it lands in the evicting side.
        assert_eq!(
            evicting.load_requests(),
            vec![LoadRequest {
                period: "1m".into(),
                from: T0,
                to: Millis::MAX
            }]
        );
        evicting.restore_range("1m", T0, Vec::new());
        for side in [&mut kept, &mut evicting] {
            side.close_due(T0 + 5 * MINUTE);
        }
        kept.touched();
        persist(&mut disk, evicting.touched());
        assert_eq!(evicting.evict(T0 + 5 * MINUTE), 1);
        assert_eq!((kept.kept(), evicting.kept()), (1, 0));

        // Backfill after a downtime: 60 units over [T0 + 30 s, T0 + 4 min) restate the evicted minute.
        for side in [&mut kept, &mut evicting] {
            side.add_count(
                &Channel::Produced,
                60,
                T0 + 30_000,
                T0 + 4 * MINUTE,
                Some(Flag::Gap),
            );
        }
        assert!(
            evicting.has_deferred(),
            "the evicted minute waits for its record"
        );
        assert_eq!(evicting.prune_before(), None);
        let requests = evicting.load_requests();
        assert_eq!(
            requests,
            vec![LoadRequest {
                period: "1m".into(),
                from: T0,
                to: T0 + MINUTE
            }]
        );
        let loaded: Vec<WindowRecord> = disk
            .range(requests[0].from..requests[0].to)
            .map(|(_, r)| r.clone())
            .collect();
        evicting.restore_range("1m", requests[0].from, loaded);
        assert!(!evicting.has_deferred());
        let mut expected = kept.touched();
        let mut actual = evicting.touched();
        expected.sort_by_key(|r| r.start);
        actual.sort_by_key(|r| r.start);
        assert_eq!(actual, expected);
        assert_eq!(
            actual[0].sums.produced,
            4 + 9,
            "30 s of 210 s, largest remainder"
        );
        let emitted_kept = kept.close_due(T0 + 5 * MINUTE);
        let emitted = evicting.close_due(T0 + 5 * MINUTE);
        assert_eq!(emitted, emitted_kept);
        assert_eq!(
            (emitted[0].status, emitted[0].revision),
            (WindowStatus::Restated, 1)
        );
    }

    /// Serves every load request of `windows` from `disk`, as the processor does from the store.
    fn serve_loads(windows: &mut MachineWindows, disk: &BTreeMap<(String, Millis), WindowRecord>) {
        for request in windows.load_requests() {
            let records = disk
                .range((request.period.clone(), request.from)..(request.period.clone(), request.to))
                .map(|(_, record)| record.clone())
                .collect();
            windows.restore_range(&request.period, request.from, records);
        }
    }

    #[test]
    fn given_six_hours_of_one_second_polls_when_evicting_after_each_commit_then_a_dozen_records_stay_in_memory(
    ) {
        // Given the default periods and graces with a 72 h horizon, one accumulator per period as the
        // processor has, and a twin of each that never evicts (the memory use before eviction existed).
        let config = [("1m", 10_000), ("15m", 30_000), ("1h", 60_000)];
        let new = |name: &str, grace: i64| {
            MachineWindows::new(
                "m".into(),
                periods(&[name]),
                grace,
                72 * HOUR,
                TimeZone::UTC,
            )
        };
        let mut evicting: Vec<MachineWindows> = config.iter().map(|(n, g)| new(n, *g)).collect();
        let mut twins: Vec<MachineWindows> = config.iter().map(|(n, g)| new(n, *g)).collect();
        // When a machine is polled every second for six hours and every cycle is committed.
        let mut most_kept = 0;
        for second in 1..=6 * 3_600 {
            let at = T0 + second * 1_000;
            for side in evicting.iter_mut().chain(twins.iter_mut()) {
                side.add_count(&Channel::Produced, 1, at - 1_000, at, None);
                side.add_state(MachineState::Running, at - 1_000, at);
                side.close_due(at);
                side.touched();
            }
            for side in &mut evicting {
                side.evict(at);
            }
            most_kept = most_kept.max(evicting.iter().map(MachineWindows::kept).sum::<usize>());
        }
        // Then memory holds at most a few windows per period, where the twin holds the whole run.
        let twin_kept: usize = twins.iter().map(MachineWindows::kept).sum();
        println!("window records in memory after 6 h: {most_kept} at most with eviction, {twin_kept} without");
        assert!(most_kept <= 12, "{most_kept}");
        assert_eq!(twin_kept, 360 + 24 + 6);
    }

    #[test]
    fn given_kolkata_clock_when_counting_hours_then_windows_start_at_half_past_utc() {
        let tz = TimeZone::get("Asia/Kolkata").unwrap();
        let mut windows = MachineWindows::new("m".into(), periods(&["1h"]), 60_000, 72 * HOUR, tz);
        windows.add_count(
            &Channel::Produced,
            1,
            T0 + 10 * MINUTE,
            T0 + 11 * MINUTE,
            None,
        );
        let open = windows.open_windows();
        assert_eq!(
            (open[0].start, open[0].end),
            (T0 - 30 * MINUTE, T0 + 30 * MINUTE)
        );
    }

    #[test]
    fn given_samples_and_failed_polls_when_tracking_state_then_sample_and_hold_with_unknown_gaps() {
        let mut tracker = StateTracker::new();
        assert_eq!(tracker.observe(Some(MachineState::Running), 0), None);
        assert_eq!(
            tracker.observe(Some(MachineState::Running), 1_000),
            Some((MachineState::Running, 0, 1_000))
        );
        assert_eq!(
            tracker.observe(None, 2_000),
            Some((MachineState::Running, 1_000, 2_000))
        );
        assert_eq!(
            tracker.observe(None, 3_000),
            Some((MachineState::Unknown, 2_000, 3_000))
        );
        assert_eq!(
            tracker.observe(Some(MachineState::UnplannedStop), 4_000),
            Some((MachineState::Unknown, 3_000, 4_000))
        );
        assert_eq!(
            tracker.observe(Some(MachineState::PlannedStop), 4_000),
            None
        );
        assert_eq!(
            tracker.flush(4_500),
            Some((MachineState::PlannedStop, 4_000, 4_500))
        );
        assert_eq!(tracker.current(), Some((MachineState::PlannedStop, 4_500)));
    }

    /// One machine fed like the processor feeds it: 1 s polls of a running machine making 5 units
    /// each, the wall clock stepped by `step_ms` after `before_s` polls, then `after_s` more polls.
    /// Returns every record emitted by closing, by (period, start), and the units made.
    fn run_through_step(
        windows: &mut MachineWindows,
        step_ms: i64,
        before_s: i64,
        after_s: i64,
    ) -> (BTreeMap<(String, Millis), WindowRecord>, u64) {
        let cfg = CounterConfig {
            modulus: 1 << 32,
            wrap: true,
            on_decrease: OnDecrease::Reset,
            design_rate: None,
        };
        let (mut counter, mut tracker) = (CounterState::default(), StateTracker::new());
        let mut detector = StepDetector::new();
        let mut latest = BTreeMap::new();
        let mut raw = 1_000;
        for poll in 0..=before_s + after_s {
            let offset = if poll > before_s { step_ms } else { 0 };
            let at = T0 + poll * 1_000 + offset;
            if let Some(step) = detector.observe(ClockReading {
                mono_ms: poll * 1_000,
                utc: at,
            }) {
                rebase_after_step(
                    &step,
                    [&mut counter],
                    &mut tracker,
                    std::slice::from_mut(windows),
                );
            }
            let step = counter.step(&cfg, raw, at);
            windows.add_count(&Channel::Produced, step.delta, step.t_from, step.t_to, None);
            if let Some((state, from, to)) = tracker.observe(Some(MachineState::Running), at) {
                windows.add_state(state, from, to);
            }
            absorb(&mut latest, windows.close_due(at));
            raw += 5;
        }
        let made = 5 * (before_s + after_s) as u64;
        absorb(
            &mut latest,
            windows.close_due(T0 + step_ms.max(0) + 2 * HOUR),
        );
        (latest, made)
    }

    #[test]
    fn given_wall_clock_stepped_an_hour_forward_when_fed_then_no_phantom_time_and_edges_flagged() {
        let mut windows = machine(&["1m", "1h"]);
        let (latest, made) = run_through_step(&mut windows, HOUR, 30, 30);
        let minutes: Vec<&WindowRecord> = latest.values().filter(|r| r.period == "1m").collect();
        // Two minutes hold the time (the one before the step and the one after), not sixty-one.
        assert_eq!(
            minutes.iter().map(|r| r.start).collect::<Vec<_>>(),
            vec![T0, T0 + HOUR]
        );
        for period in ["1m", "1h"] {
            let records = latest.values().filter(|r| r.period == period);
            let (running, unknown, produced) = records.fold((0, 0, 0), |acc, r| {
                (
                    acc.0 + r.sums.running_ms,
                    acc.1 + r.sums.unknown_ms,
                    acc.2 + r.sums.produced,
                )
            });
            // 60 polls 1 s apart: 59 s running, the second across the step unknown, all units counted.
            assert_eq!(
                (running, unknown, produced),
                (59_000, 1_000, made),
                "{period}"
            );
        }
        assert!(minutes
            .iter()
            .all(|r| r.sums.flags.contains(&Flag::ClockStep)));
        assert!(minutes
            .iter()
            .all(|r| r.sums.planned_ms() <= r.end - r.start));
    }

    #[test]
    fn given_wall_clock_stepped_an_hour_back_when_fed_then_windows_keep_closing_in_the_new_time() {
        let mut windows = machine(&["1m"]);
        // 30 s before the step at T0 + 30 s, then 150 polls in the new time (an hour earlier).
        let (latest, made) = run_through_step(&mut windows, -HOUR, 30, 150);
        let produced: u64 = latest.values().map(|r| r.sums.produced).sum();
        assert_eq!(produced, made);
        // The production after the step lands in the minutes of the new time, one minute each, and
        // those minutes closed while the clock was still behind the old time.
        let new_time: Vec<(Millis, u64)> = latest
            .values()
            .filter(|r| r.start < T0)
            .map(|r| (r.start, r.sums.produced))
            .collect();
        assert_eq!(
            new_time,
            vec![
                (T0 - HOUR, 150),
                (T0 - HOUR + MINUTE, 300),
                (T0 - HOUR + 2 * MINUTE, 300)
            ]
        );
        assert!(latest
            .values()
            .filter(|r| r.start < T0 - HOUR + 2 * MINUTE)
            .all(|r| r.status == WindowStatus::Final));
        // The minute the step interrupted lies in the future of the new clock: closed at once, flagged.
        let old = &latest[&("1m".to_string(), T0)];
        assert_eq!((old.status, old.sums.produced), (WindowStatus::Final, 150));
        assert!(old.sums.flags.contains(&Flag::ClockStep));
        assert!(latest[&("1m".to_string(), T0 - HOUR)]
            .sums
            .flags
            .contains(&Flag::ClockStep));
        assert_eq!(windows.late(), &LateTally::default());
    }

    #[test]
    fn given_open_window_ahead_of_the_clock_when_closing_then_closed_at_once_and_restated_later() {
        let mut windows = machine(&["1m"]);
        windows.add_count(&Channel::Produced, 3, T0, T0 + 1_000, None);
        // Within a grace period ahead it waits (a poll stamped a little ahead of the closing clock).
        assert!(windows.close_due(T0 - 10_000).is_empty());
        let closed = windows.close_due(T0 - HOUR);
        assert_eq!(
            closed
                .iter()
                .map(|r| (r.start, r.status))
                .collect::<Vec<_>>(),
            vec![(T0, WindowStatus::Final)]
        );
        windows.add_count(&Channel::Produced, 2, T0 + 2_000, T0 + 3_000, None);
        let again = windows.close_due(T0 + MINUTE + 10_000);
        assert_eq!(
            again
                .iter()
                .map(|r| (r.status, r.revision, r.sums.produced))
                .collect::<Vec<_>>(),
            vec![(WindowStatus::Restated, 1, 5)]
        );
    }

    fn zone() -> impl Strategy<Value = TimeZone> {
        prop::sample::select(vec![
            "UTC",
            "Asia/Kolkata",
            "Europe/Berlin",
            "Australia/Lord_Howe",
        ])
        .prop_map(|name| TimeZone::get(name).unwrap())
    }

    /// Latest record per window, from everything `touched()` and `close_due()` reported.
    fn absorb(latest: &mut BTreeMap<(String, Millis), WindowRecord>, records: Vec<WindowRecord>) {
        for record in records {
            latest.insert((record.period.clone(), record.start), record);
        }
    }

    proptest! {
        // Each case spreads up to 200 deltas over thousands of 5 s windows; 64 cases keep the
        // debug-build run to a couple of seconds.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn counted_deltas_over_every_period_sum_to_the_true_increments(
            modulus in prop::sample::select(vec![1u64 << 16, 10_000, 1 << 32]),
            start_fraction in 0.0f64..1.0,
            increments in prop::collection::vec(0u64..120, 1..200),
            gaps in prop::collection::vec(200i64..400_000, 200),
            close_every in 1usize..20,
            start in 1_700_000_000_000i64..1_800_000_000_000,
            tz in zone(),
            horizon in prop::sample::select(vec![72 * HOUR, 20 * MINUTE, 2 * MINUTE]),
        ) {
            // Short horizons push old parts of long deltas into the oldest kept window ("late"),
            // which must keep the totals whole.
            let cfg = CounterConfig { modulus, wrap: true, on_decrease: OnDecrease::Reset, design_rate: None };
            let names = ["5s", "1m", "15m", "1h"];
            let mut windows = MachineWindows::new("m".into(), periods(&names), 10_000, horizon, tz);
            let mut counter = CounterState::default();
            let mut raw = (start_fraction * modulus as f64) as u64 % modulus;
            let mut at = start;
            counter.step(&cfg, raw, at);
            let mut latest = BTreeMap::new();
            for (i, (increment, gap)) in increments.iter().zip(&gaps).enumerate() {
                raw = (raw + increment) % modulus;
                at += gap;
                let step = counter.step(&cfg, raw, at);
                windows.add_count(&Channel::Produced, step.delta, step.t_from, step.t_to, step.kind.flag());
                if i % close_every == 0 {
                    absorb(&mut latest, windows.close_due(at));
                }
                absorb(&mut latest, windows.touched());
            }
            absorb(&mut latest, windows.close_due(at + 2 * HOUR));
            let truth: u64 = increments.iter().sum();
            for name in names {
                let total: u64 = latest.iter().filter(|((p, _), _)| p == name).map(|(_, r)| r.sums.produced).sum();
                prop_assert_eq!(total, truth, "period {}", name);
            }
            prop_assert!(latest.values().all(|r| r.status != WindowStatus::Open && !r.dirty));
        }

        #[test]
        fn evicting_windows_keeps_memory_bounded_and_every_record_equal_to_a_never_evicting_twin(
            steps in prop::collection::vec(
                (0u64..50, prop::option::of(0u8..3), prop::bool::weighted(0.05), 200i64..20_000),
                1..150,
            ),
            downtime in 60_000i64..3 * HOUR,
            start in 1_700_000_000_000i64..1_800_000_000_000,
            tz in zone(),
            horizon in prop::sample::select(vec![72 * HOUR, 20 * MINUTE, 2 * MINUTE]),
        ) {
            // The twin never evicts (today's memory use); the evicting side is a restarted accumulator whose
            // windows live in `disk` and come back through load requests. Both see the same facts.
            let names = ["5s", "1m", "15m"];
            let grace = 10_000;
            let mut twin = MachineWindows::new("m".into(), periods(&names), grace, horizon, tz.clone());
            let mut evicting = MachineWindows::new("m".into(), periods(&names), grace, horizon, tz);
            evicting.restore(Vec::new());
            let mut disk = BTreeMap::new();
            let bound: usize = periods(&names)
                .iter()
                .map(|p| usize::try_from((grace + 2 * p.length_ms) / p.length_ms + 2).unwrap())
                .sum();
            let mut tracker = StateTracker::new();
            let mut at = start;
            let states = [MachineState::Running, MachineState::PlannedStop, MachineState::UnplannedStop];
            for (increment, state, down, gap) in &steps {
                let from = at;
                at += if *down { downtime } else { *gap };
                if *down {
                    // The PLC is unreachable: time goes on, windows close and leave memory; the next
                    // good poll's delta then reaches back into windows that are only on disk.
                    for tick in (from + 30_000..at).step_by(30_000) {
                        prop_assert_eq!(evicting.close_due(tick), twin.close_due(tick));
                        twin.touched();
                        absorb(&mut disk, evicting.touched());
                        evicting.evict(tick);
                    }
                }
                let observed = state.map(|s| states[usize::from(s)]);
                let interval = tracker.observe(observed, at);
                for side in [&mut twin, &mut evicting] {
                    side.add_count(&Channel::Produced, *increment, from, at, down.then_some(Flag::Gap));
                    if let Some((state, t_from, t_to)) = interval {
                        side.add_state(state, t_from, t_to);
                    }
                    if observed.is_none() {
                        side.flag(at, Flag::Gap);
                    }
                }
                serve_loads(&mut evicting, &disk);
                prop_assert!(!evicting.has_deferred());
                prop_assert_eq!(evicting.close_due(at), twin.close_due(at));
                let mut expected = twin.touched();
                let mut actual = evicting.touched();
                expected.sort_by_key(|r| (r.period.clone(), r.start));
                actual.sort_by_key(|r| (r.period.clone(), r.start));
                prop_assert_eq!(&actual, &expected);
                absorb(&mut disk, actual);
                evicting.evict(at);
                prop_assert!(evicting.kept() <= bound, "kept {} > bound {}", evicting.kept(), bound);
            }
            prop_assert_eq!(evicting.late(), twin.late());
            // Records past the horizon may leave the disk: nothing ends before prune_before is touched again.
            if let Some(before) = evicting.prune_before() {
                prop_assert!(before <= at - horizon);
            }
        }

        #[test]
        fn state_time_over_windows_sums_to_the_observed_interval(
            samples in prop::collection::vec((prop::option::of(0u8..3), 1i64..200_000), 2..150),
            start in 1_700_000_000_000i64..1_800_000_000_000,
            tz in zone(),
        ) {
            let names = ["30s", "1m", "15m", "1h"];
            let mut windows = MachineWindows::new("m".into(), periods(&names), 10_000, 72 * HOUR, tz);
            let mut tracker = StateTracker::new();
            let mut at = start;
            let states = [MachineState::Running, MachineState::PlannedStop, MachineState::UnplannedStop];
            for (state, gap) in &samples {
                at += gap;
                if let Some((state, from, to)) = tracker.observe(state.map(|s| states[usize::from(s)]), at) {
                    windows.add_state(state, from, to);
                }
            }
            let observed = at - (start + samples[0].1);
            let mut latest = BTreeMap::new();
            absorb(&mut latest, windows.touched());
            for name in names {
                let records: Vec<&WindowRecord> = latest.iter().filter(|((p, _), _)| p == name).map(|(_, r)| r).collect();
                let total: i64 = records.iter().map(|r| r.sums.planned_ms()).sum();
                prop_assert_eq!(total, observed, "period {}", name);
                for record in records {
                    prop_assert!(record.sums.planned_ms() <= record.end - record.start);
                }
            }
        }
    }
}
