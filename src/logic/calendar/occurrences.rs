//! Expansion of the nominal shifts into dated, worked occurrences: a shift's end is its civil start
//! plus its duration read through the zone (jiff's "compatible" disambiguation), a break starts at
//! the first occurrence of its civil time at or after the shift start, and days off are skipped.
//! Validation keeps occurrences disjoint on the civil clock; a DST gap can still push one end past
//! the next start by the gap's length, so such an end is trimmed to the next start.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

use super::{Calendar, Millis, ShiftOccurrence, ShiftSpec};

/// Days generated before the first local date asked about: a shift lasts at most a day, and a
/// second day covers any offset change.
const DAYS_BEFORE: i64 = 2;
/// Days generated after the last local date asked about, so the occurrences that matter have their
/// successor at hand for trimming.
const DAYS_AFTER: i64 = 2;
/// Local days searched first for the next boundary; doubled until past the run of days off.
const FIRST_SEARCH_DAYS: i64 = 4;

/// A worked occurrence and its breaks, clipped into it, ordered and merged: `[start, end)` pairs.
#[derive(Debug, Clone)]
pub(super) struct Worked {
    /// The occurrence itself.
    pub occurrence: ShiftOccurrence,
    /// Its breaks in UTC ms, disjoint, ordered, inside the occurrence.
    pub breaks: Vec<(Millis, Millis)>,
}

impl Worked {
    /// The occurrence minus its breaks, in order.
    pub(super) fn in_plan_intervals(&self) -> Vec<(Millis, Millis)> {
        let mut intervals = Vec::with_capacity(self.breaks.len() + 1);
        let mut cursor = self.occurrence.start;
        for &(break_start, break_end) in &self.breaks {
            if break_start > cursor {
                intervals.push((cursor, break_start));
            }
            cursor = cursor.max(break_end);
        }
        if cursor < self.occurrence.end {
            intervals.push((cursor, self.occurrence.end));
        }
        intervals
    }

    /// Every instant where the occurrence or one of its breaks starts or ends.
    pub(super) fn boundaries(&self) -> impl Iterator<Item = Millis> + '_ {
        [self.occurrence.start, self.occurrence.end]
            .into_iter()
            .chain(self.breaks.iter().flat_map(|&(start, end)| [start, end]))
    }

    /// Shortens the occurrence to end no later than `limit`, dropping or clipping breaks past it.
    fn trim_end(&mut self, limit: Millis) {
        self.occurrence.end = self.occurrence.end.min(limit).max(self.occurrence.start);
        self.normalize_breaks();
    }

    /// Clips breaks into the occurrence, drops empty ones, orders and merges the rest.
    fn normalize_breaks(&mut self) {
        let (start, end) = (self.occurrence.start, self.occurrence.end);
        let mut clipped: Vec<(Millis, Millis)> = self
            .breaks
            .iter()
            .map(|&(break_start, break_end)| (break_start.max(start), break_end.min(end)))
            .filter(|(break_start, break_end)| break_start < break_end)
            .collect();
        clipped.sort_unstable();
        let mut merged: Vec<(Millis, Millis)> = Vec::with_capacity(clipped.len());
        for (break_start, break_end) in clipped {
            match merged.last_mut() {
                Some(last) if break_start <= last.1 => last.1 = last.1.max(break_end),
                _ => merged.push((break_start, break_end)),
            }
        }
        self.breaks = merged;
    }
}

/// The local date of `at` in `tz`.
pub(super) fn local_date(tz: &TimeZone, at: Millis) -> Date {
    tz.to_datetime(timestamp(at)).date()
}

/// Worked occurrences meeting `[from, to)`, in time order.
pub(super) fn worked_meeting(calendar: &Calendar, from: Millis, to: Millis) -> Vec<Worked> {
    let first = add_days(local_date(&calendar.tz, from), -DAYS_BEFORE);
    let last = add_days(local_date(&calendar.tz, to), DAYS_AFTER);
    generate(calendar, first, last)
        .into_iter()
        .filter(|worked| worked.occurrence.end > from && worked.occurrence.start < to)
        .collect()
}

/// The earliest shift or break start or end strictly after `at`, searching past runs of days off.
pub(super) fn next_boundary_after(calendar: &Calendar, at: Millis) -> Option<Millis> {
    let today = local_date(&calendar.tz, at);
    let first = add_days(today, -DAYS_BEFORE);
    // A run of days off is at most as long as the list; past it a shift is worked again.
    let search_limit = i64::try_from(calendar.days_off.len())
        .unwrap_or(i64::MAX)
        .saturating_add(FIRST_SEARCH_DAYS + DAYS_AFTER);
    let mut span = FIRST_SEARCH_DAYS;
    loop {
        let last = add_days(today, span);
        // Occurrences of the last generated date may lack their successor, so are not final yet.
        let found = generate(calendar, first, last)
            .iter()
            .filter(|worked| worked.occurrence.production_date < last)
            .flat_map(Worked::boundaries)
            .filter(|boundary| *boundary > at)
            .min();
        if found.is_some() || span > search_limit || last == Date::MAX {
            return found;
        }
        span = span.saturating_mul(2);
    }
}

/// Worked occurrences of the local dates `first..=last`, ordered, disjoint, with breaks resolved.
fn generate(calendar: &Calendar, first: Date, last: Date) -> Vec<Worked> {
    let mut worked: Vec<Worked> = Vec::new();
    let mut date = first;
    while date <= last {
        if !calendar.days_off.contains(&date) {
            worked.extend(
                calendar
                    .shifts
                    .iter()
                    .filter_map(|shift| occurrence(&calendar.tz, shift, date)),
            );
        }
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    worked.sort_by(|a, b| {
        (a.occurrence.start, &a.occurrence.name).cmp(&(b.occurrence.start, &b.occurrence.name))
    });
    for index in 1..worked.len() {
        let next_start = worked[index].occurrence.start;
        worked[index - 1].trim_end(next_start);
    }
    worked.retain(|worked| worked.occurrence.start < worked.occurrence.end);
    worked
}

/// The occurrence of `shift` starting on the local date `date`; `None` only outside jiff's range.
fn occurrence(tz: &TimeZone, shift: &ShiftSpec, date: Date) -> Option<Worked> {
    let civil_start = date.to_datetime(shift.start);
    let start = to_millis(tz, civil_start)?;
    let end = to_millis(tz, add_ms(civil_start, shift.duration_ms)?)?;
    let mut breaks = Vec::with_capacity(shift.breaks.len());
    for shift_break in &shift.breaks {
        let break_date = if shift_break.start >= shift.start {
            date
        } else {
            date.tomorrow().ok()?
        };
        let civil_break_start = break_date.to_datetime(shift_break.start);
        let break_start = to_millis(tz, civil_break_start)?;
        let break_end = to_millis(tz, add_ms(civil_break_start, shift_break.duration_ms)?)?;
        breaks.push((break_start, break_end));
    }
    let mut worked = Worked {
        occurrence: ShiftOccurrence {
            name: shift.name.clone(),
            start,
            end: end.max(start),
            production_date: date,
        },
        breaks,
    };
    worked.normalize_breaks();
    Some(worked)
}

/// `date` moved by `days` local days, saturating at jiff's range.
fn add_days(date: Date, days: i64) -> Date {
    date.checked_add(days.days())
        .unwrap_or(if days < 0 { Date::MIN } else { Date::MAX })
}

/// A civil datetime plus a nominal duration (days count as 24 h on the civil clock).
fn add_ms(civil: DateTime, ms: i64) -> Option<DateTime> {
    civil.checked_add(SignedDuration::from_millis(ms)).ok()
}

/// The instant of a civil datetime in `tz`, with "compatible" disambiguation: a time in a gap
/// is read with the offset before the gap, a time in a fold as its first occurrence.
fn to_millis(tz: &TimeZone, civil: DateTime) -> Option<Millis> {
    tz.to_timestamp(civil)
        .ok()
        .map(|instant| instant.as_millisecond())
}

/// Converts to a jiff timestamp, clamping to jiff's supported range.
fn timestamp(at: Millis) -> Timestamp {
    let clamped = at.clamp(
        Timestamp::MIN.as_millisecond(),
        Timestamp::MAX.as_millisecond(),
    );
    Timestamp::from_millisecond(clamped).unwrap_or(Timestamp::UNIX_EPOCH)
}
