//! Windows on the shift calendar: in-plan and out-of-plan sums, shift and day windows, their
//! labels, PBT, and conservation of every unit and millisecond over any calendar.

use jiff::civil::{date, time, Date, Time};

use super::*;
use crate::logic::calendar::{BreakSpec, ShiftSpec, UnknownTime};
use crate::logic::kpi::{compute, KpiBasis};
use crate::logic::targets::Targets;

fn ms(text: &str) -> Millis {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn spec(name: &str, start: Time, duration_ms: i64, breaks: Vec<(Time, i64)>) -> ShiftSpec {
    ShiftSpec {
        name: name.into(),
        start,
        duration_ms,
        breaks: breaks
            .into_iter()
            .map(|(start, duration_ms)| BreakSpec { start, duration_ms })
            .collect(),
    }
}

fn on_calendar(names: &[&str], calendar: Calendar) -> MachineWindows {
    MachineWindows::new(
        "press-01".into(),
        periods(names),
        10_000,
        72 * HOUR,
        calendar,
    )
}

/// Every record the accumulator holds, by (period, start).
fn records(windows: &mut MachineWindows) -> BTreeMap<(String, Millis), WindowRecord> {
    let mut latest = BTreeMap::new();
    absorb(&mut latest, windows.touched());
    latest
}

fn of_period<'a>(
    latest: &'a BTreeMap<(String, Millis), WindowRecord>,
    period: &str,
) -> Vec<&'a WindowRecord> {
    latest
        .iter()
        .filter(|((p, _), _)| p == period)
        .map(|(_, record)| record)
        .collect()
}

/// A running machine making one unit per minute over `[from, to)`, fed minute by minute.
fn run_one_per_minute(windows: &mut MachineWindows, from: Millis, to: Millis) {
    for at in (from..to).step_by(MINUTE as usize) {
        windows.add_count(&Channel::Produced, 1, at, at + MINUTE, None);
        windows.add_state(MachineState::Running, at, at + MINUTE);
    }
}

/// Seoul night shift 19:00 + 12 h with a break at 00:00 for 30 min (the break is on the next day).
fn seoul_night() -> Calendar {
    let night = spec(
        "night",
        time(19, 0, 0, 0),
        12 * HOUR,
        vec![(time(0, 0, 0, 0), 30 * MINUTE)],
    );
    Calendar::new(
        TimeZone::get("Asia/Seoul").unwrap(),
        vec![night],
        Vec::new(),
    )
    .unwrap()
}

#[test]
fn given_seoul_night_shift_when_running_through_it_then_one_shift_window_with_its_start_date() {
    // Given a machine running from 18:00 KST on the 27th to 10:00 KST on the 28th.
    let mut windows = on_calendar(&["shift", "day", "1h"], seoul_night());
    run_one_per_minute(
        &mut windows,
        ms("2026-11-27T09:00:00Z"),
        ms("2026-11-28T01:00:00Z"),
    );
    let latest = records(&mut windows);

    // Then one shift window, 19:00-07:00 KST, dated the 27th, with its break out of plan.
    let shifts = of_period(&latest, "shift");
    assert_eq!(shifts.len(), 1);
    let night = shifts[0];
    assert_eq!(
        (night.start, night.end),
        (ms("2026-11-27T10:00:00Z"), ms("2026-11-27T22:00:00Z"))
    );
    assert_eq!(night.shift.as_deref(), Some("night"));
    assert_eq!(night.production_date, Some(date(2026, 11, 27)));
    assert_eq!(
        (night.sums.running_ms, night.sums.out_of_plan_ms),
        (11 * HOUR + 30 * MINUTE, 30 * MINUTE)
    );
    assert_eq!(
        (night.sums.produced, night.sums.out_of_plan_produced),
        (690, 30)
    );
    assert!(!night.sums.flags.contains(&Flag::NoCalendar));

    // And the local days split the night at midnight: its hours after midnight are in the 28th.
    let days = of_period(&latest, "day");
    let summary: Vec<(Option<Date>, i64, i64)> = days
        .iter()
        .map(|r| (r.production_date, r.sums.running_ms, r.sums.out_of_plan_ms))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some(date(2026, 11, 27)), 5 * HOUR, HOUR),
            (
                Some(date(2026, 11, 28)),
                6 * HOUR + 30 * MINUTE,
                3 * HOUR + 30 * MINUTE
            ),
        ]
    );
    assert!(days.iter().all(|r| r.shift.is_none()));

    // And an hour inside the night after midnight carries the night's name and start date; an
    // hour outside every shift carries neither.
    let hours = of_period(&latest, "1h");
    let after_midnight = hours
        .iter()
        .find(|r| r.start == ms("2026-11-27T16:00:00Z"))
        .unwrap();
    assert_eq!(after_midnight.shift.as_deref(), Some("night"));
    assert_eq!(after_midnight.production_date, Some(date(2026, 11, 27)));
    let morning = hours
        .iter()
        .find(|r| r.start == ms("2026-11-28T00:00:00Z"))
        .unwrap();
    assert_eq!(
        (morning.shift.as_deref(), morning.production_date),
        (None, None)
    );
    assert_eq!(morning.sums.out_of_plan_ms, HOUR);
}

#[test]
fn given_berlin_without_calendar_when_running_through_dst_days_then_the_day_holds_23h_and_25h() {
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    for (from, to, hours) in [
        ("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", 23),
        ("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", 25),
    ] {
        let mut windows = on_calendar(&["day"], Calendar::all_planned(berlin.clone()));
        // One state interval per hour, from two hours before local midnight to two after.
        let (from, to) = (ms(from), ms(to));
        for at in (from - 2 * HOUR..to + 2 * HOUR).step_by(HOUR as usize) {
            windows.add_state(MachineState::Running, at, at + HOUR);
        }
        let latest = records(&mut windows);
        let day = &latest[&("day".to_string(), from)];
        assert_eq!(day.end, to);
        assert_eq!(day.sums.running_ms, hours * HOUR, "{hours} h day");
        assert_eq!(day.sums.in_plan_ms(), day.end - day.start);
    }
}

#[test]
fn given_a_state_change_exactly_at_a_break_start_when_added_then_split_exactly_at_the_break() {
    // Given an 06:00 + 8 h shift with a 10:00 break of 30 min (UTC).
    let calendar = Calendar::new(
        TimeZone::UTC,
        vec![spec(
            "early",
            time(6, 0, 0, 0),
            8 * HOUR,
            vec![(time(10, 0, 0, 0), 30 * MINUTE)],
        )],
        Vec::new(),
    )
    .unwrap();
    let mut windows = on_calendar(&["15m", "shift"], calendar);
    // When the machine runs 09:00-10:00 and stops (unplanned) from 10:00 to 11:00.
    windows.add_state(MachineState::Running, T0 + 9 * HOUR, T0 + 10 * HOUR);
    windows.add_state(MachineState::UnplannedStop, T0 + 10 * HOUR, T0 + 11 * HOUR);
    let latest = records(&mut windows);
    // Then the quarter before the break is all running, the break's quarters are out of plan only,
    // and the stop counts from the break's end.
    let quarter = |start: Millis| &latest[&("15m".to_string(), start)].sums;
    let before = quarter(T0 + 9 * HOUR + 45 * MINUTE);
    assert_eq!((before.running_ms, before.out_of_plan_ms), (15 * MINUTE, 0));
    for start in [T0 + 10 * HOUR, T0 + 10 * HOUR + 15 * MINUTE] {
        let in_break = quarter(start);
        assert_eq!(
            (in_break.in_plan_ms(), in_break.out_of_plan_ms),
            (0, 15 * MINUTE)
        );
    }
    let after = quarter(T0 + 10 * HOUR + 30 * MINUTE);
    assert_eq!(
        (after.unplanned_stop_ms, after.out_of_plan_ms),
        (15 * MINUTE, 0)
    );
    let shift = &latest[&("shift".to_string(), T0 + 6 * HOUR)].sums;
    assert_eq!(
        (
            shift.running_ms,
            shift.unplanned_stop_ms,
            shift.out_of_plan_ms
        ),
        (HOUR, 30 * MINUTE, 30 * MINUTE)
    );
    assert_eq!(shift.planned_ms(UnknownTime::Loss), 90 * MINUTE);
}

#[test]
fn given_planned_stop_and_unknown_time_when_pbt_is_taken_then_planned_stop_is_out_and_unknown_follows_the_setting(
) {
    // Given a window with 420 min running, 60 min planned stop, 30 min unplanned, 30 min unknown,
    // and 45 min out of plan.
    let mut windows = on_calendar(&["1h"], Calendar::all_planned(TimeZone::UTC));
    let mut at = T0;
    for (state, minutes) in [
        (MachineState::Running, 420),
        (MachineState::PlannedStop, 60),
        (MachineState::UnplannedStop, 30),
        (MachineState::Unknown, 30),
    ] {
        windows.add_state(state, at, at + minutes * MINUTE);
        at += minutes * MINUTE;
    }
    let latest = records(&mut windows);
    let mut sums = WindowSums::default();
    for record in latest.values() {
        sums.running_ms += record.sums.running_ms;
        sums.planned_stop_ms += record.sums.planned_stop_ms;
        sums.unplanned_stop_ms += record.sums.unplanned_stop_ms;
        sums.unknown_ms += record.sums.unknown_ms;
    }
    sums.out_of_plan_ms = 45 * MINUTE;
    // Then PBT is 480 min with unknown as a loss, 450 min with unknown excluded.
    assert_eq!(sums.planned_ms(UnknownTime::Loss), 480 * MINUTE);
    assert_eq!(sums.planned_ms(UnknownTime::Exclude), 450 * MINUTE);
    let loss = KpiBasis::from_sums(&sums, UnknownTime::Loss);
    let exclude = KpiBasis::from_sums(&sums, UnknownTime::Exclude);
    assert_eq!(
        (loss.planned_ms, loss.running_ms),
        (480 * MINUTE, 420 * MINUTE)
    );
    assert_eq!(exclude.planned_ms, 450 * MINUTE);
    let availability = |unknown_time| {
        compute(&sums, None, &Targets::default(), T0, unknown_time).values["availability"]
    };
    assert_eq!(availability(UnknownTime::Loss), Some(420.0 / 480.0));
    assert_eq!(availability(UnknownTime::Exclude), Some(420.0 / 450.0));
}

#[test]
fn given_out_of_plan_counts_when_the_basis_is_taken_then_kpis_use_in_plan_counts_and_out_of_plan_good_saturates(
) {
    let sums = WindowSums {
        produced: 100,
        defective: 5,
        running_ms: HOUR,
        out_of_plan_produced: 7,
        out_of_plan_defective: 9,
        ..WindowSums::default()
    };
    let basis = KpiBasis::from_sums(&sums, UnknownTime::Loss);
    assert_eq!((basis.produced, basis.good), (100, 95));
    assert_eq!((basis.out_of_plan_produced, basis.out_of_plan_good), (7, 0));
}

#[test]
fn given_no_calendar_when_facts_arrive_then_every_window_is_flagged_and_every_second_is_in_plan() {
    let mut windows = on_calendar(&["1m", "15m", "day"], Calendar::all_planned(TimeZone::UTC));
    windows.add_state(MachineState::Running, T0 + 10_000, T0 + 2 * HOUR);
    windows.add_count(&Channel::Produced, 77, T0 + 10_000, T0 + 2 * HOUR, None);
    windows.add_count(&Channel::Defective, 3, T0 + 2 * HOUR, T0 + 2 * HOUR, None);
    let latest = records(&mut windows);
    assert!(latest
        .values()
        .all(|r| r.sums.flags.contains(&Flag::NoCalendar)));
    assert!(latest.values().all(|r| r.sums.out_of_plan_ms == 0
        && r.sums.out_of_plan_produced == 0
        && r.sums.out_of_plan_defective == 0));
    for period in ["1m", "15m", "day"] {
        let records = of_period(&latest, period);
        let in_plan: i64 = records.iter().map(|r| r.sums.in_plan_ms()).sum();
        let produced: u64 = records.iter().map(|r| r.sums.produced).sum();
        assert_eq!((in_plan, produced), (2 * HOUR - 10_000, 77), "{period}");
    }
    // No shift window exists without a calendar.
    let mut with_shift = on_calendar(&["shift"], Calendar::all_planned(TimeZone::UTC));
    with_shift.add_state(MachineState::Running, T0, T0 + HOUR);
    assert!(with_shift.touched().is_empty());
}

#[test]
fn given_a_delta_across_a_shift_end_when_added_then_the_out_of_plan_part_is_counted_apart_and_estimated(
) {
    let calendar = Calendar::new(
        TimeZone::UTC,
        vec![spec("early", time(6, 0, 0, 0), 8 * HOUR, Vec::new())],
        Vec::new(),
    )
    .unwrap();
    let mut windows = on_calendar(&["1h", "shift"], calendar);
    // 10 units over 13:30-14:30: half in plan, half after the shift.
    windows.add_count(
        &Channel::Produced,
        10,
        T0 + 13 * HOUR + 30 * MINUTE,
        T0 + 14 * HOUR + 30 * MINUTE,
        None,
    );
    windows.add_count(
        &Channel::Reason("burr".into()),
        2,
        T0 + 13 * HOUR + 30 * MINUTE,
        T0 + 14 * HOUR + 30 * MINUTE,
        None,
    );
    let latest = records(&mut windows);
    let hour = |start: Millis| &latest[&("1h".to_string(), start)].sums;
    assert_eq!(
        (
            hour(T0 + 13 * HOUR).produced,
            hour(T0 + 13 * HOUR).out_of_plan_produced
        ),
        (5, 0)
    );
    assert_eq!(
        (
            hour(T0 + 14 * HOUR).produced,
            hour(T0 + 14 * HOUR).out_of_plan_produced
        ),
        (0, 5)
    );
    // Out-of-plan reasons are not kept per reason.
    assert_eq!(hour(T0 + 13 * HOUR).by_reason.get("burr"), Some(&1));
    assert!(hour(T0 + 14 * HOUR).by_reason.is_empty());
    assert!(hour(T0 + 14 * HOUR).flags.contains(&Flag::Estimated));
    let shift = &latest[&("shift".to_string(), T0 + 6 * HOUR)].sums;
    assert_eq!((shift.produced, shift.out_of_plan_produced), (5, 0));
    assert!(shift.flags.contains(&Flag::Estimated));
}

/// A random valid calendar: 1..=3 shifts starting on a `grid`-minute grid that never overlap on
/// the repeating day, lasting whole grid steps, each with at most one break (minute grid), and days
/// off among the six days from 2026-03-27 (which include Berlin's spring change).
fn calendar_strategy(grid: i64) -> impl Strategy<Value = (Vec<ShiftSpec>, Vec<Date>)> {
    let slots = 1440 / grid;
    (
        prop::collection::btree_set(0..slots, 1..=3),
        prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>()), 3),
        prop::collection::vec(prop::bool::weighted(0.2), 6),
    )
        .prop_map(move |(starts, draws, off)| {
            let starts: Vec<i64> = starts.into_iter().map(|slot| slot * grid).collect();
            let shifts = starts
                .iter()
                .enumerate()
                .map(|(index, &start)| {
                    let next = starts[(index + 1) % starts.len()];
                    let gap = if starts.len() == 1 {
                        1440
                    } else {
                        (next - start).rem_euclid(1440)
                    };
                    let (a, b, c) = draws[index];
                    let duration = grid * (1 + i64::from(a) % (gap / grid));
                    let breaks = if c % 2 == 0 {
                        let offset = i64::from(b) % duration;
                        let length = 1 + i64::from(c) % (duration - offset);
                        vec![(minute_time(start + offset), length * MINUTE)]
                    } else {
                        Vec::new()
                    };
                    spec(
                        &format!("s{index}"),
                        minute_time(start),
                        duration * MINUTE,
                        breaks,
                    )
                })
                .collect();
            let days_off = off
                .iter()
                .enumerate()
                .filter(|(_, off)| **off)
                .map(|(day, _)| {
                    date(2026, 3, 27)
                        .checked_add(jiff::ToSpan::days(day as i64))
                        .unwrap()
                })
                .collect();
            (shifts, days_off)
        })
}

/// The calendar of `shifts` and `days_off` in `tz`, or (not `configured`) none: all time planned.
fn calendar_or_none(
    configured: bool,
    tz: &TimeZone,
    shifts: Vec<ShiftSpec>,
    days_off: Vec<Date>,
) -> Calendar {
    if configured {
        Calendar::new(tz.clone(), shifts, days_off).unwrap()
    } else {
        Calendar::all_planned(tz.clone())
    }
}

fn minute_time(minute_of_day: i64) -> Time {
    let minute = minute_of_day.rem_euclid(1440);
    time((minute / 60) as i8, (minute % 60) as i8, 0, 0)
}

fn whole_hour_zone() -> impl Strategy<Value = TimeZone> {
    prop::sample::select(vec!["UTC", "Asia/Seoul", "Europe/Berlin"])
        .prop_map(|name| TimeZone::get(name).unwrap())
}

/// Feeds a machine: per step, a counted delta of produced and defective units and a state over
/// `[at, at + gap)`; every seventh step also an instant fact. Returns the totals fed and the end.
fn feed(
    windows: &mut MachineWindows,
    start: Millis,
    steps: &[(i64, u64, u8)],
) -> (u64, u64, Millis) {
    let states = [
        MachineState::Running,
        MachineState::PlannedStop,
        MachineState::UnplannedStop,
        MachineState::Unknown,
    ];
    let (mut produced, mut defective, mut at) = (0, 0, start);
    for (index, &(gap, delta, state)) in steps.iter().enumerate() {
        let from = at;
        at += gap;
        windows.add_count(&Channel::Produced, delta, from, at, None);
        windows.add_count(&Channel::Defective, delta / 7, from, at, None);
        windows.add_state(states[usize::from(state)], from, at);
        produced += delta;
        defective += delta / 7;
        if index % 7 == 0 {
            windows.add_count(&Channel::Produced, 3, at, at, None);
            produced += 3;
        }
    }
    (produced, defective, at)
}

/// Field-by-field sum of the additive figures of `records` (flags left out).
fn summed(records: &[&WindowRecord]) -> WindowSums {
    let mut total = WindowSums::default();
    for sums in records.iter().map(|r| &r.sums) {
        total.produced += sums.produced;
        total.defective += sums.defective;
        total.running_ms += sums.running_ms;
        total.planned_stop_ms += sums.planned_stop_ms;
        total.unplanned_stop_ms += sums.unplanned_stop_ms;
        total.unknown_ms += sums.unknown_ms;
        total.out_of_plan_ms += sums.out_of_plan_ms;
        total.out_of_plan_produced += sums.out_of_plan_produced;
        total.out_of_plan_defective += sums.out_of_plan_defective;
    }
    total
}

proptest! {
    // Each case feeds up to 40 facts over up to five days into four periods.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_unit_and_millisecond_lands_in_or_out_of_plan_over_every_period(
        (shifts, days_off) in calendar_strategy(1),
        configured in prop::bool::weighted(0.8),
        tz in whole_hour_zone(),
        start in ms("2026-03-27T00:00:00Z")..ms("2026-03-28T00:00:00Z"),
        steps in prop::collection::vec((1_000i64..3 * HOUR, 0u64..500, 0u8..4), 1..40),
    ) {
        let calendar = calendar_or_none(configured, &tz, shifts, days_off);
        let in_plan_truth: i64 = calendar
            .plan_segments(start, start + steps.iter().map(|s| s.0).sum::<i64>())
            .iter()
            .filter(|segment| segment.in_plan)
            .map(|segment| segment.end - segment.start)
            .sum();
        let mut windows = on_calendar(&["15m", "1h", "day", "shift"], calendar);
        let (produced, defective, end) = feed(&mut windows, start, &steps);
        let latest = records(&mut windows);
        let quarter = summed(&of_period(&latest, "15m"));
        for period in ["15m", "1h", "day", "shift"] {
            if period == "shift" && !configured {
                // Without a calendar there are no shifts, so no shift windows.
                prop_assert!(of_period(&latest, period).is_empty());
                continue;
            }
            let total = summed(&of_period(&latest, period));
            // In plan, every period holds the same units and time, and the plan's in-plan time.
            prop_assert_eq!(total.in_plan_ms(), in_plan_truth, "{}", period);
            prop_assert_eq!((total.produced, total.defective), (quarter.produced, quarter.defective), "{}", period);
            if period != "shift" {
                // Out of plan too: nothing is lost or counted twice.
                prop_assert_eq!(total.observed_ms(), end - start, "{}", period);
                prop_assert_eq!(total.produced + total.out_of_plan_produced, produced, "{}", period);
                prop_assert_eq!(total.defective + total.out_of_plan_defective, defective, "{}", period);
            }
        }
        for record in latest.values() {
            prop_assert!(record.sums.observed_ms() <= record.end - record.start);
            prop_assert_eq!(record.sums.flags.contains(&Flag::NoCalendar), !configured);
        }
    }

    #[test]
    fn a_shift_window_holds_the_sum_of_the_quarter_hours_inside_it_and_so_the_same_kpis(
        (shifts, days_off) in calendar_strategy(15),
        tz in whole_hour_zone(),
        start in ms("2026-03-27T00:00:00Z")..ms("2026-03-28T00:00:00Z"),
        steps in prop::collection::vec((1_000i64..3 * HOUR, 0u64..500, 0u8..4), 1..40),
    ) {
        let calendar = Calendar::new(tz, shifts, days_off).unwrap();
        let mut windows = on_calendar(&["15m", "shift"], calendar);
        feed(&mut windows, start, &steps);
        let latest = records(&mut windows);
        let quarters = of_period(&latest, "15m");
        for shift in of_period(&latest, "shift") {
            let inside: Vec<&WindowRecord> = quarters
                .iter()
                .copied()
                .filter(|q| shift.start <= q.start && q.end <= shift.end)
                .collect();
            let total = summed(&inside);
            let mut own = shift.sums.clone();
            own.flags.clear();
            prop_assert_eq!(&own, &total);
            let kpis = |sums: &WindowSums| compute(sums, Some(std::time::Duration::from_secs(2)), &Targets::default(), T0, UnknownTime::Loss);
            prop_assert_eq!(kpis(&own), kpis(&total));
            prop_assert!(inside.iter().all(|q| q.shift == shift.shift && q.production_date == shift.production_date));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The accumulator's fast paths (the remembered window, a fact inside one window going there whole)
    /// leave every record, flag and late tally exactly as looking up and splitting every fact does: facts
    /// of 0.2 s to 20 min, many ending at a window's end or a millisecond either side, some instant, some
    /// of 0 units, some late (past a 30-minute horizon), on any calendar.
    #[test]
    fn the_fast_paths_change_no_record_flag_or_late_tally(
        (shifts, days_off) in calendar_strategy(1),
        configured in prop::bool::weighted(0.7),
        tz in whole_hour_zone(),
        start in ms("2026-03-27T00:00:00Z")..ms("2026-03-28T00:00:00Z"),
        steps in prop::collection::vec((-2 * HOUR..20 * MINUTE, 0u64..5, 0u8..4, -1i64..=2), 1..80),
    ) {
        let calendar = calendar_or_none(configured, &tz, shifts, days_off);
        let names = ["1m", "15m", "shift"];
        let new = || MachineWindows::new("press-01".into(), periods(&names), 10_000, 30 * MINUTE, calendar.clone());
        let (mut fast, mut slow) = (new(), new());
        slow.no_fast_paths = true;
        let states = [MachineState::Running, MachineState::PlannedStop, MachineState::UnplannedStop, MachineState::Unknown];
        let mut at = start;
        for (index, &(step, delta, state, snap)) in steps.iter().enumerate() {
            // A negative step is a late fact of one second that far back; the clock stays. Most facts
            // end on a minute boundary or a millisecond either side of one (every zone here has whole-hour
            // offsets), where a window ends.
            let (from, mut to) = if step < 0 { (at + step, at + step + 1_000) } else { (at, at + step.max(200)) };
            if snap < 2 {
                to = (to.div_euclid(MINUTE) * MINUTE + snap).max(from + 1);
            }
            let flag = (index % 5 == 0).then_some(Flag::Gap);
            for windows in [&mut fast, &mut slow] {
                windows.add_count(&Channel::Produced, delta, from, to, flag);
                windows.add_count(&Channel::Produced, delta % 2, to, to, None);
                windows.add_state(states[usize::from(state)], from, to);
            }
            at = at.max(to);
        }
        prop_assert_eq!(records(&mut fast), records(&mut slow));
        prop_assert_eq!(fast.late(), slow.late());
    }
}
