//! The window lifecycle of [`MachineWindows`]: closing, restating, touched records, eviction from
//! memory and loading windows back from the store for deferred changes.

use std::collections::BTreeMap;

use super::{LateTally, MachineWindows, WindowRecord, WindowStatus};
use crate::logic::window::Period;
use crate::logic::Millis;

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

impl MachineWindows {
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
            let tail = self
                .grace_ms
                .saturating_add(self.periods[index].nominal_ms());
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
    pub(super) fn insert_loaded(&mut self, records: Vec<WindowRecord>) {
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
            self.windows[index].insert(record.start, Box::new(record));
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
            emitted.push((record.end, key.0, WindowRecord::clone(record)));
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
            .filter_map(|(index, start)| {
                self.windows[index]
                    .get(&start)
                    .map(|r| WindowRecord::clone(r))
            })
            .collect()
    }

    /// The windows still open, by period then start.
    pub fn open_windows(&self) -> Vec<&WindowRecord> {
        self.windows
            .iter()
            .flat_map(|windows| windows.values().map(|record| &**record))
            .filter(|record| record.status == WindowStatus::Open)
            .collect()
    }

    /// When `close_due` next has work: the earliest `end + grace` among open windows and closed
    /// windows awaiting restatement (the latter are already due).
    pub fn next_deadline(&self) -> Option<Millis> {
        self.due_bounds().map(|bounds| bounds.deadline)
    }

    /// When `close_due` next has work, as two bounds: see [`DueBounds`]. `None`: no window is due at
    /// any time (nothing open, nothing awaiting restatement).
    pub fn due_bounds(&self) -> Option<DueBounds> {
        self.due
            .iter()
            .filter_map(|(index, start)| self.windows[*index].get(start))
            .map(|record| DueBounds {
                deadline: record.end.saturating_add(self.grace_ms),
                future: record.start.saturating_sub(self.grace_ms),
            })
            .reduce(DueBounds::merge)
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
}

/// When [`MachineWindows::close_due`] has work: at `now >= deadline` (the earliest `end + grace` of the
/// windows it looks at), or at `now < future` (the latest `start - grace`: a window starting more than a
/// grace after now lies in the future of a clock that stepped back, and is closed at once). Bounds of
/// several accumulators merge into bounds of them all, so a driver may keep one value for many machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueBounds {
    /// The earliest `end + grace`.
    pub deadline: Millis,
    /// The latest `start - grace`.
    pub future: Millis,
}

impl DueBounds {
    /// Whether `close_due(now)` closes something.
    pub fn due_at(&self, now: Millis) -> bool {
        now >= self.deadline || now < self.future
    }

    /// Bounds covering both: the earlier deadline, the later future mark.
    pub fn merge(self, other: DueBounds) -> DueBounds {
        DueBounds {
            deadline: self.deadline.min(other.deadline),
            future: self.future.max(other.future),
        }
    }
}
