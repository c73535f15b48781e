//! `[calendar]` and `agent.unknown_time`: the syntax of shift times, durations and days off is
//! checked here; the shape (lengths, overlaps, breaks inside their shift, duplicates) is checked by
//! `logic::calendar` once the syntax is sound, and its problems come back with their TOML path.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use super::*;
use crate::logic::calendar::{BreakSpec, Calendar, ShiftSpec, UnknownTime};

impl Validator<'_> {
    /// `agent.unknown_time`: `"loss"` (the default) or `"exclude"`.
    pub(super) fn unknown_time(&mut self, text: &str) -> UnknownTime {
        match text {
            "loss" => UnknownTime::Loss,
            "exclude" => UnknownTime::Exclude,
            other => {
                self.problem(
                    "agent.unknown_time",
                    format!("{other:?} is not one of loss, exclude"),
                );
                UnknownTime::Loss
            }
        }
    }

    /// The typed calendar in `tz`; all time is planned when the file has no `[calendar]`. Without a
    /// usable time zone (a problem of its own) the calendar is still checked, but not returned.
    pub(super) fn calendar(
        &mut self,
        raw: Option<RawCalendar>,
        tz: Option<&TimeZone>,
    ) -> Option<Calendar> {
        let Some(raw) = raw else {
            return tz.map(|tz| Calendar::all_planned(tz.clone()));
        };
        let shifts: Vec<Option<ShiftSpec>> = raw
            .shifts
            .iter()
            .enumerate()
            .map(|(index, shift)| self.shift(&format!("calendar.shifts[{index}]"), shift))
            .collect();
        let days_off: Vec<Option<Date>> = raw
            .days_off
            .iter()
            .enumerate()
            .map(|(index, text)| self.day_off(&format!("calendar.days_off[{index}]"), text))
            .collect();
        // The shape checks index shifts and days off as listed, so they run only on a whole list.
        let shifts: Vec<ShiftSpec> = shifts.into_iter().collect::<Option<_>>()?;
        let days_off: Vec<Date> = days_off.into_iter().collect::<Option<_>>()?;
        // The shape checks do not depend on the zone, so they run even when it is unusable.
        match Calendar::new(tz.cloned().unwrap_or(TimeZone::UTC), shifts, days_off) {
            Ok(calendar) => tz.map(|_| calendar),
            Err(errors) => {
                for error in errors {
                    self.problem(format!("calendar.{}", error.path), error.message);
                }
                None
            }
        }
    }

    fn shift(&mut self, path: &str, raw: &RawShift) -> Option<ShiftSpec> {
        let start = self.civil_time(&format!("{path}.start"), &raw.start);
        let duration_ms = self.calendar_duration(&format!("{path}.duration"), &raw.duration);
        let breaks: Vec<Option<BreakSpec>> = raw
            .breaks
            .iter()
            .enumerate()
            .map(|(index, raw_break)| {
                let break_path = format!("{path}.breaks[{index}]");
                let start = self.civil_time(&format!("{break_path}.start"), &raw_break.start);
                let duration_ms =
                    self.calendar_duration(&format!("{break_path}.duration"), &raw_break.duration);
                Some(BreakSpec {
                    start: start?,
                    duration_ms: duration_ms?,
                })
            })
            .collect();
        Some(ShiftSpec {
            name: raw.name.clone(),
            start: start?,
            duration_ms: duration_ms?,
            breaks: breaks.into_iter().collect::<Option<_>>()?,
        })
    }

    /// A 24-hour civil time written `HH:MM`.
    fn civil_time(&mut self, path: &str, text: &str) -> Option<Time> {
        let parsed = parse_hh_mm(text);
        if parsed.is_none() {
            self.problem(
                path,
                format!(
                    "{text:?} is not a time of day like \"06:00\" or \"22:30\" (HH:MM, 24-hour)"
                ),
            );
        }
        parsed
    }

    /// A shift or break length in ms; its range is a shape check of the calendar.
    fn calendar_duration(&mut self, path: &str, text: &str) -> Option<i64> {
        match parse_duration(text) {
            Ok(duration) => Some(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)),
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }

    fn day_off(&mut self, path: &str, text: &str) -> Option<Date> {
        let parsed = parse_date(text);
        if parsed.is_none() {
            self.problem(
                path,
                format!("{text:?} is not a calendar date like \"2026-12-24\" (YYYY-MM-DD)"),
            );
        }
        parsed
    }
}

/// Parses `HH:MM` with two-digit fields, hour 00..=23 and minute 00..=59.
fn parse_hh_mm(text: &str) -> Option<Time> {
    let (hour, minute) = text.split_once(':')?;
    let two_digits = |field: &str| {
        (field.len() == 2 && field.bytes().all(|b| b.is_ascii_digit()))
            .then(|| field.parse::<i8>().ok())
            .flatten()
    };
    Time::new(two_digits(hour)?, two_digits(minute)?, 0, 0).ok()
}

/// Parses `YYYY-MM-DD` (an existing date).
fn parse_date(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            4 | 7 => *byte == b'-',
            _ => byte.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    text.parse::<Date>().ok()
}

#[cfg(test)]
mod tests;
