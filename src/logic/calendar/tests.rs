//! Unit tests and properties of the shift calendar, with real zone rules (jiff's bundled tzdb).

use jiff::civil::{date, time, Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use proptest::prelude::*;

use super::*;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn ms(text: &str) -> Millis {
    text.parse::<Timestamp>().unwrap().as_millisecond()
}

fn shift(name: &str, start: Time, duration_ms: i64, breaks: Vec<BreakSpec>) -> ShiftSpec {
    ShiftSpec {
        name: name.to_string(),
        start,
        duration_ms,
        breaks,
    }
}

fn brk(start: Time, duration_ms: i64) -> BreakSpec {
    BreakSpec { start, duration_ms }
}

fn calendar(zone: &str, shifts: Vec<ShiftSpec>, days_off: Vec<Date>) -> Calendar {
    Calendar::new(tz(zone), shifts, days_off).unwrap()
}

fn night(zone: &str) -> Calendar {
    calendar(
        zone,
        vec![shift("night", time(19, 0, 0, 0), 12 * HOUR_MS, vec![])],
        vec![],
    )
}

fn in_plan_ms(segments: &[PlanSegment]) -> i64 {
    segments
        .iter()
        .filter(|segment| segment.in_plan)
        .map(|segment| segment.end - segment.start)
        .sum()
}

fn paths(result: Result<Calendar, Vec<CalendarError>>) -> Vec<String> {
    result
        .unwrap_err()
        .into_iter()
        .map(|error| error.path)
        .collect()
}

#[test]
fn seoul_night_shift_runs_from_10z_to_22z_of_its_start_date() {
    let calendar = night("Asia/Seoul");
    let occurrence = calendar.shift_at(ms("2026-06-10T12:00:00Z")).unwrap();
    assert_eq!(occurrence.start, ms("2026-06-10T10:00:00Z"));
    assert_eq!(occurrence.end, ms("2026-06-10T22:00:00Z"));
    assert_eq!(occurrence.production_date, date(2026, 6, 10));
    assert!(calendar.shift_at(ms("2026-06-10T22:00:00Z")).is_none());
}

#[test]
fn berlin_shift_from_midnight_for_24h_is_the_local_day_of_23h_in_spring_and_25h_in_autumn() {
    let calendar = calendar(
        "Europe/Berlin",
        vec![shift("day", time(0, 0, 0, 0), 24 * HOUR_MS, vec![])],
        vec![],
    );
    let spring = calendar.shift_at(ms("2026-03-29T12:00:00Z")).unwrap();
    assert_eq!(spring.start, ms("2026-03-28T23:00:00Z"));
    assert_eq!(spring.end - spring.start, 23 * HOUR_MS);
    let autumn = calendar.shift_at(ms("2026-10-25T12:00:00Z")).unwrap();
    assert_eq!(autumn.start, ms("2026-10-24T22:00:00Z"));
    assert_eq!(autumn.end - autumn.start, 25 * HOUR_MS);
    assert_eq!(calendar.next_boundary_after(autumn.start), Some(autumn.end));
}

#[test]
fn berlin_night_shift_across_the_change_lasts_11h_in_spring_and_13h_in_autumn() {
    let calendar = night("Europe/Berlin");
    let spring = calendar.shift_at(ms("2026-03-28T20:00:00Z")).unwrap();
    assert_eq!(
        (spring.start, spring.end),
        (ms("2026-03-28T18:00:00Z"), ms("2026-03-29T05:00:00Z"))
    );
    assert_eq!(spring.end - spring.start, 11 * HOUR_MS);
    let autumn = calendar.shift_at(ms("2026-10-24T20:00:00Z")).unwrap();
    assert_eq!(
        (autumn.start, autumn.end),
        (ms("2026-10-24T17:00:00Z"), ms("2026-10-25T06:00:00Z"))
    );
    assert_eq!(autumn.end - autumn.start, 13 * HOUR_MS);
    let segments = calendar.plan_segments(autumn.start, autumn.end);
    assert_eq!(in_plan_ms(&segments), 13 * HOUR_MS);
}

#[test]
fn night_shift_after_midnight_keeps_its_start_date_as_production_date() {
    let calendar = night("Europe/Berlin");
    // 03:00 local on 11 June belongs to the shift that started at 19:00 on 10 June.
    let after_midnight = ms("2026-06-11T01:00:00Z");
    assert_eq!(calendar.production_date(after_midnight), date(2026, 6, 10));
    let occurrence = calendar.shift_at(after_midnight).unwrap();
    assert_eq!(occurrence.production_date, date(2026, 6, 10));
    // Between shifts the production date is the local date.
    assert_eq!(
        calendar.production_date(ms("2026-06-11T10:00:00Z")),
        date(2026, 6, 11)
    );
}

#[test]
fn break_at_midnight_in_a_night_shift_lies_on_the_next_day() {
    let calendar = calendar(
        "UTC",
        vec![shift(
            "night",
            time(20, 0, 0, 0),
            12 * HOUR_MS,
            vec![brk(time(0, 0, 0, 0), 30 * MINUTE_MS)],
        )],
        vec![],
    );
    let from = ms("2026-06-10T20:00:00Z");
    let to = ms("2026-06-11T08:00:00Z");
    let segments = calendar.plan_segments(from, to);
    let midnight = ms("2026-06-11T00:00:00Z");
    assert_eq!(
        segments,
        vec![
            PlanSegment {
                start: from,
                end: midnight,
                in_plan: true
            },
            PlanSegment {
                start: midnight,
                end: midnight + 30 * MINUTE_MS,
                in_plan: false
            },
            PlanSegment {
                start: midnight + 30 * MINUTE_MS,
                end: to,
                in_plan: true
            },
        ]
    );
    // The break belongs to the shift.
    assert_eq!(calendar.shift_at(midnight).unwrap().start, from);
    assert_eq!(calendar.next_boundary_after(from), Some(midnight));
    assert_eq!(
        calendar.next_boundary_after(midnight),
        Some(midnight + 30 * MINUTE_MS)
    );
}

#[test]
fn a_day_off_removes_the_shifts_that_start_on_it() {
    let calendar = calendar(
        "UTC",
        vec![shift("night", time(19, 0, 0, 0), 12 * HOUR_MS, vec![])],
        vec![date(2026, 6, 11)],
    );
    // The shift of 10 June runs into the day off and is worked; the one of 11 June is not.
    assert!(calendar.shift_at(ms("2026-06-11T05:00:00Z")).is_some());
    assert!(calendar.shift_at(ms("2026-06-11T20:00:00Z")).is_none());
    let from = ms("2026-06-11T00:00:00Z");
    let to = ms("2026-06-13T12:00:00Z");
    let shifts = calendar.shifts_overlapping(from, to);
    let dates: Vec<Date> = shifts.iter().map(|s| s.production_date).collect();
    assert_eq!(dates, vec![date(2026, 6, 10), date(2026, 6, 12)]);
    assert_eq!(in_plan_ms(&calendar.plan_segments(from, to)), 19 * HOUR_MS);
    // The next boundary after the morning of the day off is the start of 12 June's shift.
    assert_eq!(
        calendar.next_boundary_after(ms("2026-06-11T07:00:00Z")),
        Some(ms("2026-06-12T19:00:00Z"))
    );
}

#[test]
fn next_boundary_after_skips_a_long_run_of_days_off() {
    let days_off: Vec<Date> = (0..40)
        .map(|day| {
            date(2026, 7, 1)
                .checked_add(jiff::ToSpan::days(day))
                .unwrap()
        })
        .collect();
    let calendar = calendar(
        "Europe/Berlin",
        vec![shift("early", time(6, 0, 0, 0), 8 * HOUR_MS, vec![])],
        days_off,
    );
    assert_eq!(
        calendar.next_boundary_after(ms("2026-06-30T12:00:00Z")),
        Some(ms("2026-08-10T04:00:00Z"))
    );
}

#[test]
fn back_to_back_shifts_make_one_in_plan_segment_but_a_boundary_at_the_handover() {
    let calendar = calendar(
        "UTC",
        vec![
            shift("early", time(6, 0, 0, 0), 8 * HOUR_MS, vec![]),
            shift("late", time(14, 0, 0, 0), 8 * HOUR_MS, vec![]),
        ],
        vec![],
    );
    let from = ms("2026-06-10T05:00:00Z");
    let to = ms("2026-06-10T23:00:00Z");
    let segments = calendar.plan_segments(from, to);
    assert_eq!(segments.len(), 3);
    assert_eq!(segments[1].start, ms("2026-06-10T06:00:00Z"));
    assert_eq!(segments[1].end, ms("2026-06-10T22:00:00Z"));
    assert_eq!(
        calendar.next_boundary_after(ms("2026-06-10T06:00:00Z")),
        Some(ms("2026-06-10T14:00:00Z"))
    );
    let names: Vec<String> = calendar
        .shifts_overlapping(from, to)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["early", "late"]);
}

#[test]
fn a_shift_ending_in_the_spring_gap_is_trimmed_to_the_next_shift_start() {
    // 00:00 + 2h30 ends at 02:30, which does not exist on 29 March; read with the offset before
    // the gap it is 03:30 CEST, after the 03:00 start of the next shift.
    let calendar = calendar(
        "Europe/Berlin",
        vec![
            shift("a", time(0, 0, 0, 0), 150 * MINUTE_MS, vec![]),
            shift("b", time(3, 0, 0, 0), 4 * HOUR_MS, vec![]),
        ],
        vec![],
    );
    let shifts =
        calendar.shifts_overlapping(ms("2026-03-28T22:00:00Z"), ms("2026-03-29T06:00:00Z"));
    assert_eq!(shifts.len(), 2);
    assert_eq!(shifts[0].end, ms("2026-03-29T01:00:00Z"));
    assert_eq!(shifts[1].start, ms("2026-03-29T01:00:00Z"));
}

#[test]
fn without_a_calendar_all_time_is_in_plan_and_there_are_no_shifts() {
    let calendar = Calendar::all_planned(tz("Europe/Berlin"));
    assert!(!calendar.is_configured());
    let (from, to) = (ms("2026-06-10T00:00:00Z"), ms("2026-06-12T00:00:00Z"));
    assert_eq!(
        calendar.plan_segments(from, to),
        vec![PlanSegment {
            start: from,
            end: to,
            in_plan: true
        }]
    );
    assert!(calendar.plan_segments(to, from).is_empty());
    assert!(calendar.shift_at(from).is_none());
    assert!(calendar.shifts_overlapping(from, to).is_empty());
    assert_eq!(calendar.next_boundary_after(from), None);
    assert_eq!(
        calendar.production_date(ms("2026-06-10T23:30:00Z")),
        date(2026, 6, 11)
    );
}

#[test]
fn a_calendar_without_shifts_is_all_out_of_plan() {
    let calendar = calendar("UTC", vec![], vec![]);
    assert!(calendar.is_configured());
    let (from, to) = (ms("2026-06-10T00:00:00Z"), ms("2026-06-11T00:00:00Z"));
    assert_eq!(
        calendar.plan_segments(from, to),
        vec![PlanSegment {
            start: from,
            end: to,
            in_plan: false
        }]
    );
    assert_eq!(calendar.next_boundary_after(from), None);
}

#[test]
fn extreme_instants_are_covered_without_panicking() {
    let calendar = night("Europe/Berlin");
    for (from, to) in [(i64::MIN, i64::MIN + 10), (i64::MAX - 10, i64::MAX)] {
        let segments = calendar.plan_segments(from, to);
        assert_eq!(segments.first().unwrap().start, from);
        assert_eq!(segments.last().unwrap().end, to);
    }
    let _ = calendar.next_boundary_after(i64::MAX - 1);
    let _ = calendar.production_date(i64::MIN);
}

#[test]
fn validation_names_the_path_of_every_problem() {
    let result = Calendar::new(
        tz("UTC"),
        vec![
            shift(
                "day",
                time(6, 0, 0, 0),
                12 * HOUR_MS,
                vec![
                    brk(time(5, 0, 0, 0), 30 * MINUTE_MS),
                    brk(time(10, 0, 0, 0), 13 * HOUR_MS),
                    brk(time(9, 0, 0, 0), HOUR_MS),
                    brk(time(9, 30, 0, 0), HOUR_MS),
                    brk(time(12, 0, 0, 0), 0),
                ],
            ),
            shift("late", time(17, 0, 0, 0), 8 * HOUR_MS, vec![]),
            shift("day", time(2, 0, 0, 0), 25 * HOUR_MS, vec![]),
            shift(" ", time(1, 0, 0, 0), 0, vec![]),
        ],
        vec![date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 24)],
    );
    assert_eq!(
        paths(result),
        vec![
            "shifts[2].name",
            "shifts[3].name",
            "shifts[0].breaks[0]",
            "shifts[0].breaks[1].duration",
            "shifts[0].breaks[3]",
            "shifts[0].breaks[4].duration",
            "shifts[2].duration",
            "shifts[3].duration",
            "shifts[1]",
            "days_off[2]",
        ]
    );
}

#[test]
fn shifts_overlap_on_the_repeating_day_but_may_touch() {
    let touching = Calendar::new(
        tz("UTC"),
        vec![
            shift("night", time(22, 0, 0, 0), 8 * HOUR_MS, vec![]),
            shift("early", time(6, 0, 0, 0), 8 * HOUR_MS, vec![]),
            shift("late", time(14, 0, 0, 0), 8 * HOUR_MS, vec![]),
        ],
        vec![],
    );
    assert!(touching.is_ok());
    let wrapping = Calendar::new(
        tz("UTC"),
        vec![
            shift("night", time(22, 0, 0, 0), 9 * HOUR_MS, vec![]),
            shift("early", time(6, 0, 0, 0), 8 * HOUR_MS, vec![]),
        ],
        vec![],
    );
    assert_eq!(paths(wrapping), vec!["shifts[1]"]);
    let whole_day = Calendar::new(
        tz("UTC"),
        vec![
            shift("all", time(6, 0, 0, 0), 24 * HOUR_MS, vec![]),
            shift("other", time(12, 0, 0, 0), HOUR_MS, vec![]),
        ],
        vec![],
    );
    assert_eq!(paths(whole_day), vec!["shifts[1]"]);
}

#[test]
fn a_break_may_fill_its_shift_and_breaks_may_touch() {
    let result = Calendar::new(
        tz("UTC"),
        vec![
            shift(
                "a",
                time(6, 0, 0, 0),
                2 * HOUR_MS,
                vec![brk(time(6, 0, 0, 0), 2 * HOUR_MS)],
            ),
            shift(
                "b",
                time(22, 0, 0, 0),
                4 * HOUR_MS,
                vec![
                    brk(time(23, 0, 0, 0), HOUR_MS),
                    brk(time(0, 0, 0, 0), 2 * HOUR_MS),
                ],
            ),
        ],
        vec![],
    );
    assert!(result.is_ok());
}

#[test]
fn unknown_time_reads_snake_case_and_defaults_to_loss() {
    assert_eq!(UnknownTime::default(), UnknownTime::Loss);
    let exclude: UnknownTime = serde_json::from_str("\"exclude\"").unwrap();
    assert_eq!(exclude, UnknownTime::Exclude);
    assert!(serde_json::from_str::<UnknownTime>("\"Exclude\"").is_err());
}

// ---- properties -------------------------------------------------------------------------------

/// A random valid calendar on the minute grid: 1..=3 shifts that never overlap on the repeating
/// day, each with up to two disjoint breaks, and days off among the ten days from `first_day`.
fn calendar_parts(first_day: Date) -> impl Strategy<Value = (Vec<ShiftSpec>, Vec<Date>)> {
    (
        proptest::collection::vec(0u32..1440, 1..=3),
        proptest::collection::vec(any::<u32>(), 15),
        proptest::collection::vec(any::<bool>(), 10),
    )
        .prop_map(move |(mut starts, draws, off_mask)| {
            starts.sort_unstable();
            starts.dedup();
            let shifts = build_shifts(&starts, &draws);
            let days_off = off_mask
                .iter()
                .enumerate()
                .filter(|(_, off)| **off)
                .map(|(day, _)| {
                    first_day
                        .checked_add(jiff::ToSpan::days(day as i64))
                        .unwrap()
                })
                .collect();
            (shifts, days_off)
        })
}

fn minute_time(minute_of_day: i64) -> Time {
    let minute = minute_of_day.rem_euclid(1440);
    time((minute / 60) as i8, (minute % 60) as i8, 0, 0)
}

fn build_shifts(starts: &[u32], draws: &[u32]) -> Vec<ShiftSpec> {
    let mut draw = draws.iter().map(|value| i64::from(*value));
    let mut next = move || draw.next().unwrap_or(0);
    let count = starts.len();
    (0..count)
        .map(|index| {
            let start = i64::from(starts[index]);
            let gap = if count == 1 {
                1440
            } else {
                (i64::from(starts[(index + 1) % count]) - start).rem_euclid(1440)
            };
            let duration = 1 + next() % gap;
            let mut breaks = Vec::new();
            let mut free_from = 0;
            for _ in 0..2 {
                if free_from >= duration || next() % 3 == 0 {
                    break;
                }
                let offset = free_from + next() % (duration - free_from);
                let length = 1 + next() % (duration - offset);
                breaks.push(brk(minute_time(start + offset), length * MINUTE_MS));
                free_from = offset + length;
            }
            shift(
                &format!("s{index}"),
                minute_time(start),
                duration * MINUTE_MS,
                breaks,
            )
        })
        .collect()
}

/// Whether `at` is in plan, straight from the nominal specs; valid only in UTC, where the civil
/// clock is the instant.
fn utc_oracle(shifts: &[ShiftSpec], days_off: &[Date], at: Millis) -> bool {
    let day_start = at.div_euclid(86_400_000) * 86_400_000;
    shifts.iter().any(|spec| {
        [day_start, day_start - 86_400_000]
            .into_iter()
            .any(|midnight| {
                let day = Timestamp::from_millisecond(midnight)
                    .unwrap()
                    .to_zoned(TimeZone::UTC)
                    .date();
                let shift_start = midnight + rules::time_of_day_ms(spec.start);
                let offset = at - shift_start;
                !days_off.contains(&day)
                    && (0..spec.duration_ms).contains(&offset)
                    && !spec.breaks.iter().any(|b| {
                        let (b_start, b_end) = rules::break_offset(spec, b);
                        (b_start..b_end).contains(&offset)
                    })
            })
    })
}

fn assert_cover(segments: &[PlanSegment], from: Millis, to: Millis) -> Result<(), TestCaseError> {
    prop_assert_eq!(segments.first().map(|s| s.start), Some(from));
    prop_assert_eq!(segments.last().map(|s| s.end), Some(to));
    prop_assert_eq!(
        segments.iter().map(|s| s.end - s.start).sum::<i64>(),
        to - from
    );
    for segment in segments {
        prop_assert!(segment.start < segment.end);
    }
    for pair in segments.windows(2) {
        prop_assert_eq!(pair[0].end, pair[1].start);
        prop_assert_ne!(pair[0].in_plan, pair[1].in_plan, "segments are not maximal");
    }
    Ok(())
}

/// In-plan time from the occurrences and their breaks re-derived from the specs, clipped.
fn in_plan_from_occurrences(
    calendar: &Calendar,
    shifts: &[ShiftSpec],
    from: Millis,
    to: Millis,
) -> i64 {
    let zone = calendar.timezone();
    calendar
        .shifts_overlapping(from, to)
        .iter()
        .map(|occurrence| {
            let spec = shifts.iter().find(|s| s.name == occurrence.name).unwrap();
            let (start, end) = (occurrence.start.max(from), occurrence.end.min(to));
            let mut breaks: Vec<(Millis, Millis)> = spec
                .breaks
                .iter()
                .map(|b| {
                    let day = if b.start >= spec.start {
                        occurrence.production_date
                    } else {
                        occurrence.production_date.tomorrow().unwrap()
                    };
                    let civil = day.to_datetime(b.start);
                    let b_start = zone.to_timestamp(civil).unwrap().as_millisecond();
                    let b_end = zone
                        .to_timestamp(civil + jiff::SignedDuration::from_millis(b.duration_ms))
                        .unwrap()
                        .as_millisecond();
                    (b_start.max(start), b_end.min(end))
                })
                .filter(|(s, e)| s < e)
                .collect();
            breaks.sort_unstable();
            let mut covered = 0;
            let mut cursor = start;
            for (b_start, b_end) in breaks {
                let b_start = b_start.max(cursor);
                if b_end > b_start {
                    covered += b_end - b_start;
                    cursor = b_end;
                }
            }
            (end - start).max(0) - covered
        })
        .sum()
}

fn zone_strategy() -> impl Strategy<Value = TimeZone> {
    prop_oneof![
        Just(tz("Europe/Berlin")),
        Just(tz("America/New_York")),
        Just(tz("Asia/Seoul")),
        Just(tz("Australia/Lord_Howe")),
        Just(tz("UTC")),
    ]
}

const FIRST_DAYS: [Date; 4] = [
    date(2026, 3, 27),
    date(2026, 10, 23),
    date(2026, 4, 4),
    date(2026, 6, 9),
];

/// One of `FIRST_DAYS` and a random calendar whose days off lie from the day before it on.
fn day_and_calendar() -> impl Strategy<Value = (Date, (Vec<ShiftSpec>, Vec<Date>))> {
    proptest::sample::select(FIRST_DAYS.to_vec()).prop_flat_map(|first_day| {
        (
            Just(first_day),
            calendar_parts(first_day.yesterday().unwrap()),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn plan_segments_match_the_nominal_shifts_in_utc(
        (first_day, (shifts, days_off)) in day_and_calendar(),
        offset in 0i64..2 * 86_400_000,
        length in 1i64..3 * 86_400_000,
    ) {
        let calendar = Calendar::new(TimeZone::UTC, shifts.clone(), days_off.clone()).unwrap();
        let from = first_day.to_zoned(TimeZone::UTC).unwrap().timestamp().as_millisecond() + offset;
        let to = from + length;
        let segments = calendar.plan_segments(from, to);
        assert_cover(&segments, from, to)?;
        for segment in &segments {
            let mut probe = segment.start;
            while probe < segment.end {
                prop_assert_eq!(utc_oracle(&shifts, &days_off, probe), segment.in_plan, "at {}", probe);
                probe = (probe.div_euclid(MINUTE_MS) + 1) * MINUTE_MS;
            }
        }
    }

    #[test]
    fn plan_segments_cover_and_agree_with_the_shifts_in_any_zone(
        zone in zone_strategy(),
        (first_day, (shifts, days_off)) in day_and_calendar(),
        (from_offset, length) in (0i64..2 * 86_400_000, 0i64..3 * 86_400_000),
    ) {
        let calendar = Calendar::new(zone, shifts.clone(), days_off).unwrap();
        let from = first_day.to_zoned(TimeZone::UTC).unwrap().timestamp().as_millisecond() + from_offset;
        let to = from + length;
        let segments = calendar.plan_segments(from, to);
        if length == 0 {
            prop_assert!(segments.is_empty());
            return Ok(());
        }
        assert_cover(&segments, from, to)?;
        prop_assert_eq!(in_plan_ms(&segments), in_plan_from_occurrences(&calendar, &shifts, from, to));
        let occurrences = calendar.shifts_overlapping(from, to);
        for pair in occurrences.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start, "occurrences overlap");
        }
        for segment in segments.iter().filter(|s| s.in_plan) {
            let shift = calendar.shift_at(segment.start);
            prop_assert!(shift.is_some(), "in-plan time outside a shift");
        }
    }

    #[test]
    fn next_boundary_after_steps_through_every_shift_and_break_edge(
        zone in zone_strategy(),
        (first_day, (shifts, days_off)) in day_and_calendar(),
        (from_offset, length) in (0i64..2 * 86_400_000, 1i64..2 * 86_400_000),
    ) {
        let calendar = Calendar::new(zone, shifts, days_off).unwrap();
        let from = first_day.to_zoned(TimeZone::UTC).unwrap().timestamp().as_millisecond() + from_offset;
        let to = from + length;
        let mut expected = std::collections::BTreeSet::new();
        for pair in calendar.plan_segments(from, to).windows(2) {
            expected.insert(pair[0].end);
        }
        for occurrence in calendar.shifts_overlapping(from, to) {
            expected.extend([occurrence.start, occurrence.end].into_iter().filter(|b| *b > from && *b < to));
        }
        let mut hit = std::collections::BTreeSet::new();
        let mut cursor = from;
        while let Some(boundary) = calendar.next_boundary_after(cursor) {
            prop_assert!(boundary > cursor);
            if boundary >= to {
                break;
            }
            hit.insert(boundary);
            cursor = boundary;
        }
        prop_assert_eq!(hit, expected);
    }
}
