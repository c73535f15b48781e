//! The schedule with time as an argument: phases, regular ticks, skipped ticks and boundary cycles.

use std::time::Duration;

use jiff::civil::time;
use jiff::tz::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::logic::calendar::ShiftSpec;

const SECOND: Millis = 1_000;
const SIX: Millis = 6 * 3_600 * SECOND;

/// A UTC calendar with one shift 06:00 for 8 hours.
fn early_shift() -> Calendar {
    let shift = ShiftSpec {
        name: "early".into(),
        start: time(6, 0, 0, 0),
        duration_ms: 8 * 3_600 * SECOND,
        breaks: vec![],
    };
    Calendar::new(TimeZone::UTC, vec![shift], vec![]).unwrap()
}

fn no_calendar() -> Calendar {
    Calendar::all_planned(TimeZone::UTC)
}

fn periods(names: &[&str]) -> Vec<Period> {
    names
        .iter()
        .map(|name| Period::parse(name).unwrap())
        .collect()
}

/// The schedule of `interval` at `phase` with `boundaries`.
fn schedule(interval_ms: u64, phase_ms: u64, boundaries: Boundaries) -> Schedule {
    let grid = Grid::new(
        Duration::from_millis(interval_ms),
        Duration::from_millis(phase_ms),
    );
    Schedule::new(grid, boundaries)
}

/// Every instant `schedule` polls from `from` to `to` when each cycle starts exactly when scheduled, with the
/// ticks `start` reported skipped in total.
fn run(schedule: &mut Schedule, from: Millis, to: Millis) -> (Vec<Millis>, u64) {
    let (mut now, mut polled, mut skipped) = (from, Vec::new(), 0);
    loop {
        let (wait, at) = schedule.next(now);
        assert_eq!(at - now, i64::try_from(wait.as_millis()).unwrap());
        if at > to {
            return (polled, skipped);
        }
        skipped += schedule.start(at);
        polled.push(at);
        now = at;
    }
}

#[test]
fn the_first_plc_keeps_the_multiples_of_its_interval() {
    assert_eq!(phase(0, Duration::from_secs(1)), Duration::ZERO);
    let mut first = schedule(200, 0, Boundaries::new(no_calendar(), vec![]));
    let (polled, _) = run(&mut first, 1_050, 1_700);
    assert_eq!(polled, vec![1_200, 1_400, 1_600]);
}

#[test]
fn a_plc_polls_on_its_phase_within_the_interval() {
    // Given PLC 3 polled every 1 s (phase 854 ms: the fraction of 3/φ),
    let interval = Duration::from_secs(1);
    assert_eq!(phase(3, interval), Duration::from_millis(854));
    let mut plc = schedule(1_000, 854, Boundaries::new(no_calendar(), vec![]));
    // when its schedule runs, then it polls at 854 ms past every second.
    let (polled, skipped) = run(&mut plc, 10_000, 13_000);
    assert_eq!(polled, vec![10_854, 11_854, 12_854]);
    assert_eq!(skipped, 0);
}

#[test]
fn a_boundary_before_the_next_tick_gets_its_own_poll() {
    let mut plc = schedule(3_500, 0, Boundaries::new(early_shift(), vec![]));
    assert_eq!(plc.next(SIX - 300), (Duration::from_millis(300), SIX));
    // Once polled, the same boundary is not polled again even if the clock reads a hair early.
    let regular = Grid::new(Duration::from_millis(3_500), Duration::ZERO).next_after(SIX - 1);
    assert_eq!(plc.next(SIX - 1).1, regular);
    // And right after it the next poll is the regular tick.
    assert_eq!(plc.next(SIX + 1).1, (SIX / 3_500 + 1) * 3_500);
}

#[test]
fn a_window_boundary_between_two_ticks_gets_its_own_poll() {
    // Given a PLC every 1 s at phase 854 ms and one-minute windows,
    let mut plc = schedule(1_000, 854, Boundaries::new(no_calendar(), periods(&["1m"])));
    // when its schedule passes a whole minute, then the minute is polled between the regular ticks.
    let minute = 60 * 60 * SECOND;
    let (polled, skipped) = run(&mut plc, minute - 2_000, minute + 1_000);
    assert_eq!(
        polled,
        vec![minute - 1_146, minute - 146, minute, minute + 854]
    );
    assert_eq!(skipped, 0);
}

#[test]
fn windows_of_a_time_zone_with_a_half_hour_offset_are_polled_on_their_local_boundary() {
    // Given hourly windows in Asia/Kolkata (+05:30), whose hours begin at half past the UTC hour,
    let kolkata = Calendar::all_planned(TimeZone::get("Asia/Kolkata").unwrap());
    let mut boundaries = Boundaries::new(kolkata, periods(&["1h"]));
    // then the next boundary after 10:00 UTC is 10:30 UTC.
    let ten = 10 * 3_600 * SECOND;
    assert_eq!(boundaries.next_after(ten), Some(ten + 1_800 * SECOND));
}

#[test]
fn a_wall_clock_stepped_back_asks_for_the_boundary_again() {
    let mut boundaries = Boundaries::new(no_calendar(), periods(&["1m"]));
    assert_eq!(boundaries.next_after(10 * 60_000 + 5), Some(11 * 60_000));
    // The cached answer is not used for an earlier instant.
    assert_eq!(boundaries.next_after(3 * 60_000 + 5), Some(4 * 60_000));
    assert_eq!(boundaries.next_after(3 * 60_000 + 6), Some(4 * 60_000));
}

#[test]
fn ticks_between_two_scheduled_cycles_are_the_skipped_ones() {
    let grid = Grid::new(Duration::from_millis(200), Duration::from_millis(30));
    // On schedule: the next tick follows the previous one.
    assert_eq!(grid.ticks_between(1_030, 1_230), 0);
    // The previous cycle ran past 1 230 and 1 430.
    assert_eq!(grid.ticks_between(1_030, 1_630), 2);
    // A boundary between two ticks skips nothing, before or after it.
    assert_eq!(grid.ticks_between(1_030, 1_150), 0);
    assert_eq!(grid.ticks_between(1_150, 1_230), 0);
    // A boundary cycle that overran a tick.
    assert_eq!(grid.ticks_between(1_150, 1_430), 1);
    // The same instant again, or a wall clock stepped back: nothing skipped.
    assert_eq!(grid.ticks_between(1_230, 1_230), 0);
    assert_eq!(grid.ticks_between(5_030, 1_230), 0);
}

proptest! {
    #[test]
    fn a_phase_lies_within_the_interval_and_stays_put(plc in 0usize..100_000, interval_ms in 1u64..3_600_000) {
        let interval = Duration::from_millis(interval_ms);
        let first = phase(plc, interval);
        prop_assert!(first < interval);
        prop_assert_eq!(first, phase(plc, interval));
    }

    #[test]
    fn the_phases_of_any_fleet_spread_evenly_over_the_interval(plcs in 1usize..1_500, interval_ms in 10u64..60_000) {
        // Given the first `plcs` PLCs, then no gap between neighbouring phases (around the interval) is
        // longer than three times the even share, plus the millisecond lost to rounding.
        let interval = Duration::from_millis(interval_ms);
        let mut phases: Vec<u64> = (0..plcs)
            .map(|plc| u64::try_from(phase(plc, interval).as_millis()).unwrap())
            .collect();
        phases.sort_unstable();
        let wrap = phases[0] + interval_ms - phases[plcs - 1];
        let widest = phases.windows(2).map(|pair| pair[1] - pair[0]).chain([wrap]).max().unwrap();
        prop_assert!(widest * plcs as u64 <= 3 * interval_ms + plcs as u64, "gap {} ms", widest);
    }

    #[test]
    fn every_tick_on_the_phase_grid_is_polled_and_none_skipped(
        interval_ms in 10u64..5_000,
        phase_ms in 0u64..5_000,
        from in 0i64..10_000_000,
    ) {
        // Given cycles that each start when scheduled, then they poll exactly the grid's ticks and skip none.
        let phase_ms = phase_ms % interval_ms;
        let mut plc = schedule(interval_ms, phase_ms, Boundaries::new(no_calendar(), vec![]));
        let to = from + 20 * interval_ms as i64;
        let (polled, skipped) = run(&mut plc, from, to);
        let grid: Vec<Millis> = (from + 1..=to)
            .filter(|t| (t - phase_ms as i64).rem_euclid(interval_ms as i64) == 0)
            .collect();
        prop_assert_eq!(polled, grid);
        prop_assert_eq!(skipped, 0);
    }

    #[test]
    fn every_window_and_shift_boundary_is_polled_and_the_regular_ticks_too(
        interval_ms in 100u64..20_000,
        plc in 0usize..1_000,
        from in (SIX - 2 * 3_600 * SECOND)..(SIX + 3_600 * SECOND),
    ) {
        // Given a PLC at its phase, one-minute windows and a shift starting at 06:00,
        let interval = Duration::from_millis(interval_ms);
        let phase_ms = u64::try_from(phase(plc, interval).as_millis()).unwrap();
        let mut schedule = schedule(interval_ms, phase_ms, Boundaries::new(early_shift(), periods(&["1m", "15m"])));
        // when it runs for three minutes,
        let to = from + 3 * 60 * SECOND;
        let (polled, skipped) = run(&mut schedule, from, to);
        // then every whole minute is polled, every regular tick is too, nothing else is, and nothing is
        // skipped.
        let expected: Vec<Millis> = (from + 1..=to)
            .filter(|t| t % 60_000 == 0 || (t - phase_ms as i64).rem_euclid(interval_ms as i64) == 0)
            .collect();
        prop_assert_eq!(polled, expected);
        prop_assert_eq!(skipped, 0);
    }

    #[test]
    fn the_skipped_ticks_are_the_regular_ticks_the_schedule_jumped_over(
        interval_ms in 1u64..5_000,
        phase_ms in 0u64..5_000,
        previous in 0i64..10_000_000,
        overrun in 0i64..100_000,
    ) {
        // Given a regular cycle at `previous` that ended `overrun` later, when the next one is scheduled,
        // then the ticks skipped are those of the grid strictly between the two.
        let grid = Grid::new(Duration::from_millis(interval_ms), Duration::from_millis(phase_ms));
        let previous = grid.next_after(previous);
        let tick_at = grid.next_after(previous + overrun);
        let on_grid = (previous + 1..tick_at).filter(|&t| grid.next_after(t - 1) == t).count();
        prop_assert_eq!(grid.ticks_between(previous, tick_at), on_grid as u64);
    }
}
