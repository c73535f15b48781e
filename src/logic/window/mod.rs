//! Window arithmetic: periods, local-clock alignment, shift and day windows, proportional
//! splitting, RFC 3339 labels. Windows are half-open `[start, end)`. A fixed-period boundary is an
//! instant whose local wall-clock time (with the offset in force at that instant) is a whole multiple
//! of the period since local midnight, so windows follow the local clock across offset changes: at a
//! DST change a 1h window may last 2h or vanish. A `day` window is local midnight to midnight (23h or
//! 25h on DST days); a `shift` window is one worked shift occurrence of the calendar, and time outside
//! worked shifts belongs to no shift window.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::calendar::Calendar;
use super::Millis;

/// Milliseconds in a day; a fixed period length must divide it.
pub const DAY_MS: i64 = 86_400_000;

/// Transitions looked at before giving up on finding a boundary (never reached with real zones).
const MAX_TRANSITION_STEPS: usize = 16;

/// Name of the period whose windows are the worked shift occurrences.
pub const SHIFT_PERIOD: &str = "shift";
/// Name of the period whose windows are local days.
pub const DAY_PERIOD: &str = "day";

/// How a period's windows are laid out in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeriodKind {
    /// Fixed length aligned to the local clock; the length divides a day.
    Fixed {
        /// Length in ms.
        length_ms: i64,
    },
    /// One window per worked shift occurrence of the calendar.
    Shift,
    /// One window per local day, midnight to midnight.
    Day,
}

/// A window period: fixed ("1m", "15m", "1h", "30s", ...), `shift` or `day`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Period {
    /// The name used in topics and payloads.
    pub name: String,
    /// How its windows are laid out.
    pub kind: PeriodKind,
}

impl Period {
    /// Parses `"shift"`, `"day"`, or `"Ns"`, `"Nm"`, `"Nh"` (N a positive integer, the length
    /// dividing 24h evenly).
    pub fn parse(name: &str) -> Result<Period, String> {
        let trimmed = name.trim();
        let kind = match trimmed {
            SHIFT_PERIOD => PeriodKind::Shift,
            DAY_PERIOD => PeriodKind::Day,
            _ => PeriodKind::Fixed {
                length_ms: parse_fixed_length(name, trimmed)?,
            },
        };
        Ok(Period {
            name: trimmed.to_string(),
            kind,
        })
    }

    /// The longest a window of this period lasts on a day without an offset change: the fixed
    /// length, or a day for `shift` and `day` (a shift lasts at most 24h). Used for graces and
    /// how long a closed window stays in memory.
    pub fn nominal_ms(&self) -> i64 {
        match self.kind {
            PeriodKind::Fixed { length_ms } => length_ms,
            PeriodKind::Shift | PeriodKind::Day => DAY_MS,
        }
    }
}

/// The length of a fixed period named like `"15m"`, or why it is not one.
fn parse_fixed_length(name: &str, trimmed: &str) -> Result<i64, String> {
    let (number, unit_ms) = match trimmed.char_indices().last() {
        Some((index, 's')) => (&trimmed[..index], 1_000),
        Some((index, 'm')) => (&trimmed[..index], 60_000),
        Some((index, 'h')) => (&trimmed[..index], 3_600_000),
        _ => {
            return Err(format!(
                "period {name:?} must look like \"30s\", \"15m\", \"1h\", \"shift\" or \"day\""
            ))
        }
    };
    let count: i64 = number
        .parse()
        .ok()
        .filter(|count| *count > 0 && number.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("period {name:?} must start with a positive whole number"))?;
    count
        .checked_mul(unit_ms)
        .filter(|length| *length <= DAY_MS && DAY_MS % length == 0)
        .ok_or_else(|| format!("period {name:?} must divide a day evenly (e.g. 1m, 15m, 1h)"))
}

impl TryFrom<String> for Period {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Period::parse(&name)
    }
}

impl From<Period> for String {
    fn from(period: Period) -> String {
        period.name
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Clamps to jiff's supported range (years −9999..=9999), far from `i64` overflow; window
/// arithmetic on instants outside it is meaningless anyway.
fn clamp(at: Millis) -> Millis {
    // One day of margin keeps `at ± offset ± length` inside the range as well.
    at.clamp(
        Timestamp::MIN.as_millisecond() + DAY_MS,
        Timestamp::MAX.as_millisecond() - 2 * DAY_MS,
    )
}

/// Converts to a jiff timestamp, clamping to jiff's supported range.
fn timestamp(at: Millis) -> Timestamp {
    let clamped = at.clamp(
        Timestamp::MIN.as_millisecond(),
        Timestamp::MAX.as_millisecond(),
    );
    Timestamp::from_millisecond(clamped).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The UTC offset in force at `at`, in ms.
fn offset_ms(at: Millis, tz: &TimeZone) -> i64 {
    i64::from(tz.to_offset(timestamp(at)).seconds()) * 1000
}

/// The latest offset transition at or before `at`, if any.
fn transition_at_or_before(at: Millis, tz: &TimeZone) -> Option<Millis> {
    // `preceding` is strict; transitions fall on whole seconds, so `at + 1` ms makes it inclusive.
    tz.preceding(timestamp(at.saturating_add(1)))
        .next()
        .map(|transition| transition.timestamp().as_millisecond())
}

/// The earliest offset transition strictly after `at`, if any.
fn transition_after(at: Millis, tz: &TimeZone) -> Option<Millis> {
    tz.following(timestamp(at))
        .next()
        .map(|transition| transition.timestamp().as_millisecond())
}

/// Whether the local wall-clock time at `at` is a whole multiple of `length_ms`.
fn is_boundary(length_ms: i64, at: Millis, tz: &TimeZone) -> bool {
    (at + offset_ms(at, tz)).rem_euclid(length_ms.clamp(1, DAY_MS)) == 0
}

/// Start of the fixed window of `length_ms` containing `at`: the latest boundary `<= at`.
fn fixed_start(length_ms: i64, at: Millis, tz: &TimeZone) -> Millis {
    let length = length_ms.clamp(1, DAY_MS);
    let at = clamp(at);
    let mut probe = at;
    let mut candidate = at;
    for _ in 0..MAX_TRANSITION_STEPS {
        let offset = offset_ms(probe, tz);
        candidate = (probe + offset).div_euclid(length) * length - offset;
        match transition_at_or_before(probe, tz) {
            // The candidate lies in the same constant-offset segment as `probe`: a true boundary.
            None => return candidate,
            Some(segment_start) if candidate >= segment_start => return candidate,
            // No boundary since the last transition: keep looking in the previous segment.
            Some(segment_start) => probe = segment_start - 1,
        }
    }
    candidate
}

/// End of the fixed window of `length_ms` containing `at`: the earliest boundary `> at`.
fn fixed_end(length_ms: i64, at: Millis, tz: &TimeZone) -> Millis {
    let length = length_ms.clamp(1, DAY_MS);
    let at = clamp(at);
    let mut probe = at;
    let mut candidate = at + length;
    for _ in 0..MAX_TRANSITION_STEPS {
        let offset = offset_ms(probe, tz);
        candidate = (probe + offset).div_euclid(length) * length + length - offset;
        match transition_after(probe, tz) {
            None => return candidate,
            Some(segment_end) if candidate < segment_end => return candidate,
            Some(segment_end) if is_boundary(length, segment_end, tz) => return segment_end,
            Some(segment_end) => probe = segment_end,
        }
    }
    candidate
}

/// The local day containing `at`: `[midnight, next midnight)` (the first instant of each date
/// when midnight itself does not exist). Falls back to fixed 24h alignment at the ends of jiff's range.
///
/// The day is the latest date whose first instant is at or before `at`, so days tile time even where
/// the clock goes back across midnight (America/St_Johns in 2005 went back at 00:01 to 23:01): the
/// instants that read the previous date again belong to the day that has already begun.
fn day_bounds(at: Millis, tz: &TimeZone) -> (Millis, Millis) {
    let at = clamp(at);
    let date = local_date(at, tz);
    let start_of = |date: Date| {
        date.to_zoned(tz.clone())
            .and_then(|zoned| zoned.start_of_day())
            .map(|zoned| zoned.timestamp().as_millisecond())
    };
    let bounds = |date: Date| match (start_of(date), date.tomorrow().and_then(start_of)) {
        (Ok(start), Ok(end)) if start <= at && at < end => Some((start, end)),
        _ => None,
    };
    [date.tomorrow(), Ok(date), date.yesterday()]
        .into_iter()
        .flatten()
        .find_map(bounds)
        .unwrap_or_else(|| (fixed_start(DAY_MS, at, tz), fixed_end(DAY_MS, at, tz)))
}

/// The local date of `at` in `tz`.
pub fn local_date(at: Millis, tz: &TimeZone) -> Date {
    tz.to_datetime(timestamp(at)).date()
}

/// The window of `period` containing `at`, `(start, end)`; `None` for a `shift` period when `at`
/// lies in no worked shift.
pub fn window_at(period: &Period, at: Millis, calendar: &Calendar) -> Option<(Millis, Millis)> {
    let tz = calendar.timezone();
    match period.kind {
        PeriodKind::Fixed { length_ms } => {
            Some((fixed_start(length_ms, at, tz), fixed_end(length_ms, at, tz)))
        }
        PeriodKind::Day => Some(day_bounds(at, tz)),
        PeriodKind::Shift => calendar
            .shift_at(at)
            .map(|occurrence| (occurrence.start, occurrence.end)),
    }
}

/// The windows `[start, end)` that overlap the half-open interval `[t_from, t_to)`, in order. A
/// `shift` period's windows may leave parts of the interval uncovered (time between shifts).
///
/// An empty or reversed interval (`t_from >= t_to`) yields the window containing `t_to`, if any.
pub fn windows_overlapping(
    period: &Period,
    t_from: Millis,
    t_to: Millis,
    calendar: &Calendar,
) -> Vec<(Millis, Millis)> {
    if t_from >= t_to {
        return window_at(period, t_to, calendar).into_iter().collect();
    }
    if period.kind == PeriodKind::Shift {
        return calendar
            .shifts_overlapping(t_from, t_to)
            .into_iter()
            .map(|occurrence| (occurrence.start, occurrence.end))
            .collect();
    }
    let mut windows = Vec::new();
    let mut at = t_from;
    while at < t_to {
        let Some((start, end)) = window_at(period, at, calendar) else {
            break;
        };
        if end <= at {
            // Only at the clamped edge of the supported range.
            windows.push((start, t_to));
            break;
        }
        windows.push((start, end));
        at = end;
    }
    windows
}

/// What a window carries besides its bounds (README.md, "MQTT topics"): the shift it is or lies
/// inside, and its production date.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowLabels {
    /// Name of the worked shift that is the window or wholly contains it.
    pub shift: Option<String>,
    /// Production date: of the shift for a shift window or a window inside a shift; the local date
    /// for a day window (a night shift's hours after midnight count in the next day).
    pub production_date: Option<Date>,
}

/// The labels of the window `[start, end)` of `period`.
pub fn window_labels(
    period: &Period,
    start: Millis,
    end: Millis,
    calendar: &Calendar,
) -> WindowLabels {
    let inside = calendar
        .shift_at(start)
        .filter(|occurrence| end <= occurrence.end);
    match period.kind {
        PeriodKind::Fixed { .. } | PeriodKind::Shift => WindowLabels {
            production_date: inside.as_ref().map(|occurrence| occurrence.production_date),
            shift: inside.map(|occurrence| occurrence.name),
        },
        PeriodKind::Day => WindowLabels {
            shift: inside.map(|occurrence| occurrence.name),
            production_date: Some(local_date(start, calendar.timezone())),
        },
    }
}

/// Splits `amount` over the windows `[t_from, t_to)` overlaps, in proportion to the overlap time.
/// Cost is linear in the number of windows the interval spans.
///
/// Largest remainder method: every window gets the floor of its exact share, and the units left
/// over go to the largest fractional remainders, ties to the earlier window. Time the period's
/// windows do not cover (between shifts) takes its share too, and that share is left out: the
/// parts sum to `amount` exactly when the windows cover the interval. Windows whose part is 0 are
/// left out. When `t_from >= t_to`, everything goes to the window containing `t_to`. Returns
/// `(window start, part)` in time order.
pub fn split_proportional(
    amount: u64,
    t_from: Millis,
    t_to: Millis,
    period: &Period,
    calendar: &Calendar,
) -> Vec<(Millis, u64)> {
    if amount == 0 {
        return Vec::new();
    }
    let windows = windows_overlapping(period, t_from, t_to, calendar);
    if t_from >= t_to {
        return windows
            .into_iter()
            .map(|(start, _)| (start, amount))
            .collect();
    }
    let mut weights: Vec<u64> = windows
        .iter()
        .map(|&(start, end)| overlap_ms(start, end, t_from, t_to).unsigned_abs())
        .collect();
    let covered: u64 = weights.iter().sum();
    // The uncovered time, as a last bucket whose part belongs to no window.
    weights.push((t_to - t_from).unsigned_abs().saturating_sub(covered));
    let parts = largest_remainder(amount, &weights);
    windows
        .iter()
        .zip(parts)
        .filter(|(_, part)| *part > 0)
        .map(|(&(start, _), part)| (start, part))
        .collect()
}

/// Length of the intersection of `[start, end)` and `[t_from, t_to)`, 0 when they do not meet.
pub fn overlap_ms(start: Millis, end: Millis, t_from: Millis, t_to: Millis) -> i64 {
    end.min(t_to).saturating_sub(start.max(t_from)).max(0)
}

/// Apportions `amount` to `weights` by largest remainder (ties to the lower index); sums exactly.
///
/// With all weights zero the whole amount goes to the first bucket.
pub fn largest_remainder(amount: u64, weights: &[u64]) -> Vec<u64> {
    let total: u128 = weights.iter().map(|&weight| u128::from(weight)).sum();
    if weights.is_empty() {
        return Vec::new();
    }
    if total == 0 {
        let mut parts = vec![0; weights.len()];
        parts[0] = amount;
        return parts;
    }
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut assigned: u128 = 0;
    for (index, &weight) in weights.iter().enumerate() {
        let exact = u128::from(amount) * u128::from(weight);
        let part = exact / total;
        assigned += part;
        // part <= amount because weight <= total.
        parts.push(u64::try_from(part).expect("a share never exceeds the amount"));
        remainders.push((exact % total, index));
    }
    // Largest remainder first; equal remainders keep time order (earlier window first).
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let left_over = u128::from(amount) - assigned;
    for &(_, index) in remainders.iter().take(left_over as usize) {
        parts[index] += 1;
    }
    parts
}

/// Formats `at` as RFC 3339 with the local offset of `tz`, e.g. `2026-11-28T09:00:00+09:00`.
///
/// Fractional seconds appear only when not zero.
pub fn rfc3339(at: Millis, tz: &TimeZone) -> String {
    let instant = timestamp(at);
    instant
        .display_with_offset(tz.to_offset(instant))
        .to_string()
}

#[cfg(test)]
mod tests;
