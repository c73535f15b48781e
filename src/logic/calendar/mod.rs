//! The shift calendar: which instants are planned production time (inside a worked shift, outside
//! its breaks) and which shift occurrence an instant belongs to. Shifts repeat daily at a civil
//! start time in the agent's time zone; a day off removes the shifts whose production date it is.
//! Pure: time is an argument, the zone rules come from jiff. Validation of the nominal shape lives
//! in `rules`, the expansion into dated occurrences in `occurrences`; windows and KPIs are not here.

mod occurrences;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::Millis;
use occurrences::{local_date, Worked};

/// How time in an unknown machine state counts in planned busy time (see README.md, "KPIs").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownTime {
    /// Unknown time is planned busy time lost to an unexplained stop (the conservative default).
    #[default]
    Loss,
    /// Unknown time is left out of planned busy time altogether.
    Exclude,
}

/// One shift as configured: it starts every day at the civil time `start` and lasts `duration_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShiftSpec {
    /// The shift's name, unique within the calendar; carried on shift windows.
    pub name: String,
    /// Civil start time, read in the calendar's time zone.
    pub start: Time,
    /// Nominal length in ms (over a DST change the true length differs by the offset change).
    pub duration_ms: i64,
    /// Unplanned-for pauses inside the shift; out of plan.
    pub breaks: Vec<BreakSpec>,
}

/// A break inside a shift: it starts at the first occurrence of `start` at or after the shift start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakSpec {
    /// Civil start time, read in the calendar's time zone.
    pub start: Time,
    /// Nominal length in ms.
    pub duration_ms: i64,
}

/// One dated, worked occurrence of a shift: `[start, end)` in UTC ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShiftOccurrence {
    /// The shift's name.
    pub name: String,
    /// First instant of the occurrence.
    pub start: Millis,
    /// First instant after the occurrence.
    pub end: Millis,
    /// The local date the occurrence starts on (a night shift keeps its start date after midnight).
    pub production_date: Date,
}

/// A maximal stretch of time that is wholly in plan or wholly out of plan: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanSegment {
    /// First instant of the segment.
    pub start: Millis,
    /// First instant after the segment.
    pub end: Millis,
    /// Whether the segment is planned production time.
    pub in_plan: bool,
}

/// One problem with a calendar's shape; `path` is relative to the `[calendar]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarError {
    /// Where the problem is, e.g. `shifts[1].breaks[0]`.
    pub path: String,
    /// What is wrong, as a sentence fragment.
    pub message: String,
}

/// The shift calendar in one time zone; without shifts configured, all time is in plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    tz: TimeZone,
    shifts: Vec<ShiftSpec>,
    days_off: BTreeSet<Date>,
    configured: bool,
}

impl Calendar {
    /// The calendar used when none is configured: every instant is in plan, there are no shifts.
    pub fn all_planned(tz: TimeZone) -> Calendar {
        Calendar {
            tz,
            shifts: Vec::new(),
            days_off: BTreeSet::new(),
            configured: false,
        }
    }

    /// A configured calendar, after checking its shape; every problem found is returned.
    pub fn new(
        tz: TimeZone,
        shifts: Vec<ShiftSpec>,
        days_off: Vec<Date>,
    ) -> Result<Calendar, Vec<CalendarError>> {
        let errors = rules::check(&shifts, &days_off);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Calendar {
            tz,
            shifts,
            days_off: days_off.into_iter().collect(),
            configured: true,
        })
    }

    /// Whether a `[calendar]` was configured (false for [`Calendar::all_planned`]).
    pub fn is_configured(&self) -> bool {
        self.configured
    }

    /// The time zone shift times are read in.
    pub fn timezone(&self) -> &TimeZone {
        &self.tz
    }

    /// Splits `[from, to)` into maximal, ordered in-plan and out-of-plan segments that cover it
    /// exactly; empty when `from >= to`.
    pub fn plan_segments(&self, from: Millis, to: Millis) -> Vec<PlanSegment> {
        if from >= to {
            return Vec::new();
        }
        if !self.configured {
            return vec![PlanSegment {
                start: from,
                end: to,
                in_plan: true,
            }];
        }
        let mut segments = Segments::new(from);
        for worked in self.worked_meeting(from, to) {
            for (start, end) in worked.in_plan_intervals() {
                segments.push_in_plan(start.max(from), end.min(to));
            }
        }
        segments.finish(to)
    }

    /// The worked shift occurrence containing `at` (breaks included); `None` between shifts, on a
    /// day off, or without a calendar.
    pub fn shift_at(&self, at: Millis) -> Option<ShiftOccurrence> {
        self.worked_meeting(at, at.saturating_add(1))
            .into_iter()
            .find(|worked| worked.occurrence.start <= at && at < worked.occurrence.end)
            .map(|worked| worked.occurrence)
    }

    /// The worked shift occurrences that meet `[from, to)`, in time order; empty if `from >= to`.
    pub fn shifts_overlapping(&self, from: Millis, to: Millis) -> Vec<ShiftOccurrence> {
        if from >= to {
            return Vec::new();
        }
        self.worked_meeting(from, to)
            .into_iter()
            .map(|worked| worked.occurrence)
            .collect()
    }

    /// The next instant strictly after `at` where a worked shift or one of its breaks starts or
    /// ends; `None` without a calendar or when no shift is ever worked again.
    pub fn next_boundary_after(&self, at: Millis) -> Option<Millis> {
        if !self.configured || self.shifts.is_empty() {
            return None;
        }
        occurrences::next_boundary_after(self, at)
    }

    /// The production date of the shift containing `at`, else the local date of `at`.
    pub fn production_date(&self, at: Millis) -> Date {
        match self.shift_at(at) {
            Some(occurrence) => occurrence.production_date,
            None => local_date(&self.tz, at),
        }
    }

    /// Worked occurrences that meet `[from, to)`, in time order, with their breaks resolved.
    fn worked_meeting(&self, from: Millis, to: Millis) -> Vec<Worked> {
        if !self.configured || self.shifts.is_empty() || from >= to {
            return Vec::new();
        }
        occurrences::worked_meeting(self, from, to)
    }
}

/// Builds maximal plan segments from ordered, disjoint in-plan intervals.
struct Segments {
    cursor: Millis,
    segments: Vec<PlanSegment>,
}

impl Segments {
    fn new(from: Millis) -> Segments {
        Segments {
            cursor: from,
            segments: Vec::new(),
        }
    }

    /// Adds the in-plan interval `[start, end)`, with out-of-plan time before it since the cursor.
    fn push_in_plan(&mut self, start: Millis, end: Millis) {
        let start = start.max(self.cursor);
        if start >= end {
            return;
        }
        self.push(self.cursor, start, false);
        self.push(start, end, true);
        self.cursor = end;
    }

    /// Closes the cover with out-of-plan time up to `to`.
    fn finish(mut self, to: Millis) -> Vec<PlanSegment> {
        self.push(self.cursor, to, false);
        self.segments
    }

    /// Appends `[start, end)`, merging it into the last segment when that one continues it.
    fn push(&mut self, start: Millis, end: Millis, in_plan: bool) {
        if start >= end {
            return;
        }
        match self.segments.last_mut() {
            Some(last) if last.in_plan == in_plan && last.end == start => last.end = end,
            _ => self.segments.push(PlanSegment {
                start,
                end,
                in_plan,
            }),
        }
    }
}
