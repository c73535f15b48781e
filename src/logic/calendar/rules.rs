//! The shape checks of a calendar, on the nominal civil clock: shift and break lengths, shifts
//! overlapping on the repeating 24 h timeline, breaks inside their shift and apart from each other,
//! unique shift names and days off. Syntax (times, dates, durations) is the config layer's.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, Time};

use super::{BreakSpec, CalendarError, ShiftSpec};

/// Milliseconds in a nominal civil day.
const DAY_MS: i64 = 86_400_000;

/// Every problem with the calendar's shape; empty when it is sound.
pub(super) fn check(shifts: &[ShiftSpec], days_off: &[Date]) -> Vec<CalendarError> {
    let mut errors = Vec::new();
    check_names(shifts, &mut errors);
    for (index, shift) in shifts.iter().enumerate() {
        let path = format!("shifts[{index}]");
        check_length(&format!("{path}.duration"), shift.duration_ms, &mut errors);
        check_breaks(&path, shift, &mut errors);
    }
    check_overlaps(shifts, &mut errors);
    check_days_off(days_off, &mut errors);
    errors
}

/// Milliseconds since midnight of a civil time.
pub(super) fn time_of_day_ms(time: Time) -> i64 {
    i64::from(time.hour()) * 3_600_000
        + i64::from(time.minute()) * 60_000
        + i64::from(time.second()) * 1_000
        + i64::from(time.subsec_nanosecond()) / 1_000_000
}

/// Whether a length is usable: positive and at most a day.
fn is_valid_length(duration_ms: i64) -> bool {
    duration_ms > 0 && duration_ms <= DAY_MS
}

fn check_length(path: &str, duration_ms: i64, errors: &mut Vec<CalendarError>) {
    if !is_valid_length(duration_ms) {
        errors.push(error(
            path,
            format!("must be longer than 0 and at most 24h, got {duration_ms} ms"),
        ));
    }
}

fn check_names(shifts: &[ShiftSpec], errors: &mut Vec<CalendarError>) {
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, shift) in shifts.iter().enumerate() {
        let path = format!("shifts[{index}].name");
        if shift.name.trim().is_empty() {
            errors.push(error(&path, "must not be empty".to_string()));
        } else if let Some(first) = first_index.get(shift.name.as_str()) {
            errors.push(error(
                &path,
                format!(
                    "duplicate shift name {:?} (also shifts[{first}])",
                    shift.name
                ),
            ));
        } else {
            first_index.insert(&shift.name, index);
        }
    }
}

/// A break's nominal place in its shift: `[offset, offset + duration)` from the shift start.
pub(super) fn break_offset(shift: &ShiftSpec, shift_break: &BreakSpec) -> (i64, i64) {
    let offset =
        (time_of_day_ms(shift_break.start) - time_of_day_ms(shift.start)).rem_euclid(DAY_MS);
    (offset, offset + shift_break.duration_ms)
}

fn check_breaks(shift_path: &str, shift: &ShiftSpec, errors: &mut Vec<CalendarError>) {
    let mut placed: Vec<(usize, (i64, i64))> = Vec::new();
    for (index, shift_break) in shift.breaks.iter().enumerate() {
        let path = format!("{shift_path}.breaks[{index}]");
        if !is_valid_length(shift_break.duration_ms) {
            check_length(&format!("{path}.duration"), shift_break.duration_ms, errors);
            continue;
        }
        if is_valid_length(shift.duration_ms) && shift_break.duration_ms > shift.duration_ms {
            errors.push(error(
                &format!("{path}.duration"),
                format!("break is longer than its shift {:?}", shift.name),
            ));
            continue;
        }
        let (offset, end) = break_offset(shift, shift_break);
        if end > shift.duration_ms {
            errors.push(error(
                &path,
                format!("break is not wholly inside its shift {:?}", shift.name),
            ));
            continue;
        }
        if let Some((other, _)) = placed
            .iter()
            .find(|(_, (other_offset, other_end))| offset < *other_end && *other_offset < end)
        {
            errors.push(error(
                &path,
                format!("break overlaps breaks[{other}] of the same shift"),
            ));
            continue;
        }
        placed.push((index, (offset, end)));
    }
}

/// Whether two daily-repeating civil intervals meet: one starts inside the other.
fn repeating_overlap(a: &ShiftSpec, b: &ShiftSpec) -> bool {
    let (a_start, b_start) = (time_of_day_ms(a.start), time_of_day_ms(b.start));
    (b_start - a_start).rem_euclid(DAY_MS) < a.duration_ms
        || (a_start - b_start).rem_euclid(DAY_MS) < b.duration_ms
}

fn check_overlaps(shifts: &[ShiftSpec], errors: &mut Vec<CalendarError>) {
    for (index, shift) in shifts.iter().enumerate() {
        if !is_valid_length(shift.duration_ms) {
            continue;
        }
        let earlier = shifts[..index].iter().enumerate().find(|(_, other)| {
            is_valid_length(other.duration_ms) && repeating_overlap(shift, other)
        });
        if let Some((other, other_shift)) = earlier {
            errors.push(error(
                &format!("shifts[{index}]"),
                format!(
                    "shift {:?} overlaps shift {:?} (shift {other}) on the daily timeline",
                    shift.name, other_shift.name
                ),
            ));
        }
    }
}

fn check_days_off(days_off: &[Date], errors: &mut Vec<CalendarError>) {
    let mut seen = BTreeSet::new();
    for (index, day) in days_off.iter().enumerate() {
        if !seen.insert(*day) {
            errors.push(error(
                &format!("days_off[{index}]"),
                format!("duplicate day off {day}"),
            ));
        }
    }
}

fn error(path: &str, message: String) -> CalendarError {
    CalendarError {
        path: path.to_string(),
        message,
    }
}
