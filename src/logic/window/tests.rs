//! Period parsing, alignment across offset changes, day and shift windows, and splitting.

use super::*;
use crate::logic::calendar::ShiftSpec;
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

/// Whether `at` is a window boundary of `period`: a multiple of the length on the local clock, or for a day
/// the first instant of its local date (local midnight, or the end of a gap that swallowed midnight).
fn is_boundary(period: &Period, at: Millis, tz: &TimeZone) -> bool {
    match period.kind {
        PeriodKind::Day => first_instant_of_its_date(at, tz) == at,
        _ => super::is_boundary(period.nominal_ms(), at, tz),
    }
}

/// The first instant of the local date `at` reads, computed with jiff's own start-of-day rule.
fn first_instant_of_its_date(at: Millis, tz: &TimeZone) -> Millis {
    let date = jiff::Timestamp::from_millisecond(at)
        .unwrap()
        .to_zoned(tz.clone())
        .date();
    date.to_zoned(tz.clone())
        .unwrap()
        .start_of_day()
        .unwrap()
        .timestamp()
        .as_millisecond()
}

#[test]
fn given_a_gap_that_swallows_midnight_when_windowed_by_day_then_the_day_begins_when_the_gap_ends() {
    // Pacific/Apia, 2010-09-26: daylight time began at midnight (UTC-11 → UTC-10), so the clock went from
    // 23:59:59 on the 25th to 01:00 on the 26th at 11:00Z. The 26th begins there and lasts 23 h.
    let zone = TimeZone::get("Pacific/Apia").unwrap();
    let day = period("day");
    let began = 1_285_498_800_000; // 2010-09-26T11:00:00Z, 01:00 local
    let ends = 1_285_581_600_000; // 2010-09-27T10:00:00Z, midnight UTC-10
    for at in [began, began + 1, ends - 1] {
        assert_eq!(window_start(&day, at, &zone), began, "at {at}");
        assert_eq!(window_end(&day, at, &zone), ends, "at {at}");
    }
    assert_eq!(window_end(&day, began - 1, &zone), began);
    assert!(is_boundary(&day, began, &zone));
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
fn given_instants_at_the_ends_of_i64_when_aligning_then_no_overflow_and_split_still_conserves() {
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
    prop::sample::select(vec![
        "1s", "5s", "30s", "1m", "15m", "1h", "2h", "24h", "day",
    ])
    .prop_map(period)
}

/// 2000-01-01 .. 2040-01-01 in ms.
fn instant() -> impl Strategy<Value = Millis> {
    946_684_800_000i64..2_208_988_800_000i64
}

#[test]
fn given_a_clock_that_goes_back_across_midnight_when_windowed_by_day_then_days_still_tile_time() {
    // America/St_Johns, 2005-10-30: at 00:01 NDT (02:31Z) the clock went back to 23:01 NST of the 29th,
    // so the hour after 02:31Z reads 29 October again. It belongs to the day of the 30th, which began at
    // 02:30Z and lasts until midnight NST of the 31st (03:30Z): 25 h.
    let zone = TimeZone::get("America/St_Johns").unwrap();
    let day = period("day");
    let began = 1_130_639_400_000; // 2005-10-30T02:30:00Z
    let ends = 1_130_729_400_000; // 2005-10-31T03:30:00Z
    for at in [
        began,
        began + 60_000,
        1_130_643_000_000 - 1,
        1_130_643_000_000,
        ends - 1,
    ] {
        assert_eq!(window_start(&day, at, &zone), began, "at {at}");
        assert_eq!(window_end(&day, at, &zone), ends, "at {at}");
    }
    assert_eq!(window_start(&day, ends, &zone), ends);
    assert_eq!(window_end(&day, began - 1, &zone), began);
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

fn seoul_night() -> Calendar {
    let night = ShiftSpec {
        name: "night".into(),
        start: jiff::civil::time(19, 0, 0, 0),
        duration_ms: 12 * 3_600_000,
        breaks: Vec::new(),
    };
    Calendar::new(tz("Asia/Seoul"), vec![night], Vec::new()).unwrap()
}

#[test]
fn given_shift_and_day_names_when_parsed_then_their_kinds() {
    assert_eq!(period("shift").kind, PeriodKind::Shift);
    assert_eq!(period("day").kind, PeriodKind::Day);
    assert_eq!(period(" day ").name, "day");
    assert_eq!(period("15m").kind, PeriodKind::Fixed { length_ms: 900_000 });
    assert_eq!(period("day").nominal_ms(), DAY_MS);
    assert!(Period::parse("shifts").is_err() && Period::parse("Day").is_err());
}

#[test]
fn given_berlin_dst_days_when_windowed_by_day_then_23h_and_25h_from_local_midnight() {
    let berlin = tz("Europe/Berlin");
    let day = period("day");
    let spring = window_at(&day, ms("2026-03-29T12:00:00Z"), &calendar(&berlin)).unwrap();
    assert_eq!(
        spring,
        (ms("2026-03-28T23:00:00Z"), ms("2026-03-29T22:00:00Z"))
    );
    assert_eq!(spring.1 - spring.0, 23 * 3_600_000);
    let autumn = window_at(&day, ms("2026-10-25T12:00:00Z"), &calendar(&berlin)).unwrap();
    assert_eq!(autumn.1 - autumn.0, 25 * 3_600_000);
    let labels = window_labels(&day, autumn.0, autumn.1, &calendar(&berlin));
    assert_eq!(
        labels.production_date,
        Some(jiff::civil::date(2026, 10, 25))
    );
    assert_eq!(labels.shift, None);
}

#[test]
fn given_seoul_night_shift_when_windowed_by_shift_then_one_window_per_worked_night() {
    let calendar = seoul_night();
    let shift = period("shift");
    // 19:00 KST on the 27th = 10:00Z; 12 h later = 22:00Z.
    let night = (ms("2026-11-27T10:00:00Z"), ms("2026-11-27T22:00:00Z"));
    assert_eq!(
        window_at(&shift, ms("2026-11-27T16:00:00Z"), &calendar),
        Some(night)
    );
    assert_eq!(
        window_at(&shift, ms("2026-11-27T23:00:00Z"), &calendar),
        None
    );
    let labels = window_labels(&shift, night.0, night.1, &calendar);
    assert_eq!(labels.shift.as_deref(), Some("night"));
    assert_eq!(
        labels.production_date,
        Some(jiff::civil::date(2026, 11, 27))
    );
    // A 15m window after midnight inside the night keeps the night's production date.
    let quarter = window_at(&period("15m"), ms("2026-11-27T16:05:00Z"), &calendar).unwrap();
    let inside = window_labels(&period("15m"), quarter.0, quarter.1, &calendar);
    assert_eq!(
        inside.production_date,
        Some(jiff::civil::date(2026, 11, 27))
    );
    // Between nights there is no shift window: the uncovered time keeps its share out of them.
    let from = ms("2026-11-27T20:00:00Z");
    let to = ms("2026-11-28T00:00:00Z");
    assert_eq!(
        super::windows_overlapping(&shift, from, to, &calendar),
        vec![night]
    );
    assert_eq!(
        super::split_proportional(4, from, to, &shift, &calendar),
        vec![(night.0, 2)]
    );
}
