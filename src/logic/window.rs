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
fn day_bounds(at: Millis, tz: &TimeZone) -> (Millis, Millis) {
    let at = clamp(at);
    let date = local_date(at, tz);
    let start_of = |date: Date| {
        date.to_zoned(tz.clone())
            .and_then(|zoned| zoned.start_of_day())
            .map(|zoned| zoned.timestamp().as_millisecond())
    };
    match (start_of(date), date.tomorrow().and_then(start_of)) {
        (Ok(start), Ok(end)) if start <= at && at < end => (start, end),
        _ => (fixed_start(DAY_MS, at, tz), fixed_end(DAY_MS, at, tz)),
    }
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn ms(text: &str) -> Millis {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn calendar(tz: &TimeZone) -> Calendar {
        Calendar::all_planned(tz.clone())
    }

    /// Start of the window containing `at` (every instant is in a fixed or day window).
    fn window_start(period: &Period, at: Millis, tz: &TimeZone) -> Millis {
        window_at(period, at, &calendar(tz)).unwrap().0
    }

    /// End of the window containing `at`.
    fn window_end(period: &Period, at: Millis, tz: &TimeZone) -> Millis {
        window_at(period, at, &calendar(tz)).unwrap().1
    }

    fn windows_overlapping(
        period: &Period,
        t_from: Millis,
        t_to: Millis,
        tz: &TimeZone,
    ) -> Vec<(Millis, Millis)> {
        super::windows_overlapping(period, t_from, t_to, &calendar(tz))
    }

    fn split_proportional(
        amount: u64,
        t_from: Millis,
        t_to: Millis,
        period: &Period,
        tz: &TimeZone,
    ) -> Vec<(Millis, u64)> {
        super::split_proportional(amount, t_from, t_to, period, &calendar(tz))
    }

    fn is_boundary(period: &Period, at: Millis, tz: &TimeZone) -> bool {
        super::is_boundary(period.nominal_ms(), at, tz)
    }

    fn period(name: &str) -> Period {
        Period::parse(name).unwrap()
    }

    #[test]
    fn given_period_names_when_parsed_then_lengths_or_errors() {
        assert_eq!(period("1m").nominal_ms(), 60_000);
        assert_eq!(period("15m").nominal_ms(), 900_000);
        assert_eq!(period("1h").nominal_ms(), 3_600_000);
        assert_eq!(period("5s").nominal_ms(), 5_000);
        assert_eq!(period("30s").nominal_ms(), 30_000);
        assert_eq!(period("2m").nominal_ms(), 120_000);
        assert_eq!(period("24h").nominal_ms(), DAY_MS);
        assert_eq!(period("1h").name, "1h");
        for bad in [
            "", "m", "0m", "7m", "7s", "-1m", "+1m", "1d", "25h", "1.5h", "1 m", "48h",
        ] {
            assert!(Period::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn given_utc_when_aligning_then_windows_are_whole_multiples() {
        let utc = TimeZone::UTC;
        let at = ms("2026-11-28T09:17:42.500Z");
        assert_eq!(
            window_start(&period("1m"), at, &utc),
            ms("2026-11-28T09:17:00Z")
        );
        assert_eq!(
            window_start(&period("15m"), at, &utc),
            ms("2026-11-28T09:15:00Z")
        );
        assert_eq!(
            window_end(&period("15m"), at, &utc),
            ms("2026-11-28T09:30:00Z")
        );
        assert_eq!(
            window_start(&period("1h"), at, &utc),
            ms("2026-11-28T09:00:00Z")
        );
        let boundary = ms("2026-11-28T10:00:00Z");
        assert_eq!(window_start(&period("1h"), boundary, &utc), boundary);
        assert_eq!(
            window_end(&period("1h"), boundary, &utc),
            ms("2026-11-28T11:00:00Z")
        );
    }

    #[test]
    fn given_half_hour_offset_zone_when_aligning_hours_then_windows_start_at_half_past_utc() {
        let kolkata = tz("Asia/Kolkata");
        let at = ms("2026-11-28T09:10:00Z"); // 14:40 local
        assert_eq!(
            window_start(&period("1h"), at, &kolkata),
            ms("2026-11-28T08:30:00Z")
        );
        assert_eq!(
            window_end(&period("1h"), at, &kolkata),
            ms("2026-11-28T09:30:00Z")
        );
        assert_eq!(
            window_start(&period("24h"), at, &kolkata),
            ms("2026-11-27T18:30:00Z")
        );
        let kathmandu = tz("Asia/Kathmandu"); // +05:45
        assert_eq!(
            window_start(&period("1h"), at, &kathmandu),
            ms("2026-11-28T09:00:00Z") + 15 * 60_000 - 3_600_000
        );
    }

    #[test]
    fn given_dst_changes_when_aligning_then_windows_follow_the_local_clock() {
        let berlin = tz("Europe/Berlin");
        let hour = period("1h");
        // Spring forward 2026-03-29: 02:00 CET → 03:00 CEST at 01:00Z; local 01:00 window is 1h.
        assert_eq!(
            window_start(&hour, ms("2026-03-29T00:30:00Z"), &berlin),
            ms("2026-03-29T00:00:00Z")
        );
        assert_eq!(
            window_end(&hour, ms("2026-03-29T00:30:00Z"), &berlin),
            ms("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            window_start(&hour, ms("2026-03-29T01:00:00Z"), &berlin),
            ms("2026-03-29T01:00:00Z")
        );
        // Fall back 2026-10-25: local 02:00 happens twice, each is its own 1h window.
        assert_eq!(
            window_start(&hour, ms("2026-10-25T00:30:00Z"), &berlin),
            ms("2026-10-25T00:00:00Z")
        );
        assert_eq!(
            window_start(&hour, ms("2026-10-25T01:30:00Z"), &berlin),
            ms("2026-10-25T01:00:00Z")
        );
        // The local day is 23h in spring and 25h in autumn.
        let day = period("24h");
        let spring = ms("2026-03-29T12:00:00Z");
        assert_eq!(
            window_start(&day, spring, &berlin),
            ms("2026-03-28T23:00:00Z")
        );
        assert_eq!(
            window_end(&day, spring, &berlin),
            ms("2026-03-29T22:00:00Z")
        );
        let autumn = ms("2026-10-25T12:00:00Z");
        assert_eq!(
            window_start(&day, autumn, &berlin),
            ms("2026-10-24T22:00:00Z")
        );
        assert_eq!(
            window_end(&day, autumn, &berlin),
            ms("2026-10-25T23:00:00Z")
        );
    }

    #[test]
    fn given_instants_when_formatted_then_rfc3339_with_local_offset() {
        let seoul = tz("Asia/Seoul");
        assert_eq!(
            rfc3339(ms("2026-11-28T00:00:00Z"), &seoul),
            "2026-11-28T09:00:00+09:00"
        );
        assert_eq!(
            rfc3339(ms("2026-11-28T00:00:00.250Z"), &TimeZone::UTC),
            "2026-11-28T00:00:00.25+00:00"
        );
        assert_eq!(
            rfc3339(ms("2026-11-28T09:10:00Z"), &tz("Asia/Kolkata")),
            "2026-11-28T14:40:00+05:30"
        );
    }

    #[test]
    fn given_delta_straddling_a_boundary_when_split_then_largest_remainder_with_ties_to_earlier() {
        let minute = period("1m");
        let utc = TimeZone::UTC;
        let t0 = ms("2026-11-28T09:00:59Z");
        // 1 s before and 1 s after the boundary: 3 units → 1.5 / 1.5, tie → earlier gets 2.
        let parts = split_proportional(3, t0, t0 + 2_000, &minute, &utc);
        assert_eq!(parts, vec![(t0 - 59_000, 2), (t0 + 1_000, 1)]);
        // 1 unit over an exact 50/50 split goes to the earlier window only.
        assert_eq!(
            split_proportional(1, t0, t0 + 2_000, &minute, &utc),
            vec![(t0 - 59_000, 1)]
        );
        // 10 units, 1 s before and 3 s after: 2.5 / 7.5 → tie on .5 → 3 / 7.
        assert_eq!(
            split_proportional(10, t0, t0 + 4_000, &minute, &utc),
            vec![(t0 - 59_000, 3), (t0 + 1_000, 7)]
        );
        // An instant puts all in its own window; an end on a boundary stays in the earlier window.
        assert_eq!(
            split_proportional(5, t0 + 1_000, t0 + 1_000, &minute, &utc),
            vec![(t0 + 1_000, 5)]
        );
        assert_eq!(
            split_proportional(5, t0 - 1_000, t0 + 1_000, &minute, &utc),
            vec![(t0 - 59_000, 5)]
        );
        assert!(split_proportional(0, t0, t0 + 2_000, &minute, &utc).is_empty());
    }

    #[test]
    fn given_instants_at_the_ends_of_i64_when_aligning_then_no_overflow_and_split_still_conserves()
    {
        let hour = period("1h");
        for at in [i64::MIN, i64::MIN + 1, -1, i64::MAX - 1, i64::MAX] {
            let start = window_start(&hour, at, &TimeZone::UTC);
            assert!(start <= window_end(&hour, at, &TimeZone::UTC));
            let _ = rfc3339(at, &TimeZone::get("Asia/Seoul").unwrap());
        }
        let far = Timestamp::MAX.as_millisecond();
        let parts = split_proportional(
            7,
            far - 3 * DAY_MS,
            i64::MAX,
            &period("24h"),
            &TimeZone::UTC,
        );
        assert_eq!(parts.iter().map(|(_, part)| part).sum::<u64>(), 7);
    }

    fn zone_strategy() -> impl Strategy<Value = TimeZone> {
        prop::sample::select(vec![
            "UTC",
            "Asia/Seoul",
            "Asia/Kolkata",
            "Asia/Kathmandu",
            "Europe/Berlin",
            "America/St_Johns",
            "Australia/Lord_Howe",
            "Pacific/Apia",
        ])
        .prop_map(tz)
    }

    fn period_strategy() -> impl Strategy<Value = Period> {
        prop::sample::select(vec!["1s", "5s", "30s", "1m", "15m", "1h", "2h", "24h"])
            .prop_map(period)
    }

    /// 2000-01-01 .. 2040-01-01 in ms.
    fn instant() -> impl Strategy<Value = Millis> {
        946_684_800_000i64..2_208_988_800_000i64
    }

    proptest! {
        #[test]
        fn windows_tile_time_without_gaps_or_overlaps(at in instant(), zone in zone_strategy(), p in period_strategy()) {
            let start = window_start(&p, at, &zone);
            let end = window_end(&p, at, &zone);
            prop_assert!(start <= at && at < end);
            prop_assert_eq!(window_end(&p, start, &zone), end);
            prop_assert_eq!(window_start(&p, end - 1, &zone), start);
            prop_assert_eq!(window_start(&p, end, &zone), end);
            prop_assert!(is_boundary(&p, start, &zone));
        }

        #[test]
        fn windows_tile_time_around_offset_transitions(
            nth in 0usize..60,
            shift in -3 * 3_600_000i64..3 * 3_600_000,
            zone in zone_strategy(),
            p in period_strategy(),
        ) {
            let base = Timestamp::from_second(946_684_800).unwrap();
            let at = zone.following(base).nth(nth).map_or(base.as_millisecond(), |t| t.timestamp().as_millisecond()) + shift;
            let start = window_start(&p, at, &zone);
            let end = window_end(&p, at, &zone);
            prop_assert!(start <= at && at < end);
            prop_assert!(is_boundary(&p, start, &zone) && is_boundary(&p, end, &zone));
            prop_assert_eq!(window_end(&p, start, &zone), end);
            prop_assert_eq!(window_start(&p, end - 1, &zone), start);
            prop_assert_eq!(window_start(&p, end, &zone), end);
        }

        #[test]
        fn split_conserves_the_amount_inside_the_interval(
            amount in 0u64..1_000_000,
            from in instant(),
            span in 0i64..8 * 3_600_000,
            zone in zone_strategy(),
            p in period_strategy(),
        ) {
            let to = from + span;
            let parts = split_proportional(amount, from, to, &p, &zone);
            prop_assert_eq!(parts.iter().map(|(_, part)| part).sum::<u64>(), amount);
            for (start, part) in &parts {
                prop_assert!(*part > 0);
                let end = window_end(&p, *start, &zone);
                if from < to {
                    prop_assert!(overlap_ms(*start, end, from, to) > 0);
                } else {
                    prop_assert!(*start <= to && to < end);
                }
            }
            prop_assert!(parts.windows(2).all(|pair| pair[0].0 < pair[1].0));
        }

        #[test]
        fn overlaps_of_an_interval_sum_to_its_length(from in instant(), span in 1i64..48 * 3_600_000, zone in zone_strategy(), p in period_strategy()) {
            let windows = windows_overlapping(&p, from, from + span, &zone);
            let covered: i64 = windows.iter().map(|&(s, e)| overlap_ms(s, e, from, from + span)).sum();
            prop_assert_eq!(covered, span);
        }

        #[test]
        fn largest_remainder_is_exact_and_close(amount in 0u64..u64::MAX, weights in prop::collection::vec(0u64..1_000_000, 1..20)) {
            let parts = largest_remainder(amount, &weights);
            prop_assert_eq!(parts.iter().map(|&p| u128::from(p)).sum::<u128>(), u128::from(amount));
            let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
            for (part, weight) in parts.iter().zip(&weights) {
                let exact = u128::from(amount) * u128::from(*weight);
                if let Some(floor) = exact.checked_div(total) {
                    prop_assert!(u128::from(*part) == floor || u128::from(*part) == floor + 1);
                }
            }
        }
    }
}
