//! The state tracker and the re-basing of windows after a wall-clock step.

use super::*;
use crate::logic::clock::{ClockReading, StepDetector};
use crate::logic::counter::{CounterConfig, CounterState, OnDecrease};

#[test]
fn given_samples_and_failed_polls_when_tracking_state_then_sample_and_hold_with_unknown_gaps() {
    let mut tracker = StateTracker::new();
    assert_eq!(tracker.observe(Some(MachineState::Running), 0), None);
    assert_eq!(
        tracker.observe(Some(MachineState::Running), 1_000),
        Some((MachineState::Running, 0, 1_000))
    );
    assert_eq!(
        tracker.observe(None, 2_000),
        Some((MachineState::Running, 1_000, 2_000))
    );
    assert_eq!(
        tracker.observe(None, 3_000),
        Some((MachineState::Unknown, 2_000, 3_000))
    );
    assert_eq!(
        tracker.observe(Some(MachineState::UnplannedStop), 4_000),
        Some((MachineState::Unknown, 3_000, 4_000))
    );
    assert_eq!(
        tracker.observe(Some(MachineState::PlannedStop), 4_000),
        None
    );
    assert_eq!(
        tracker.flush(4_500),
        Some((MachineState::PlannedStop, 4_000, 4_500))
    );
    assert_eq!(tracker.current(), Some((MachineState::PlannedStop, 4_500)));
}

/// One machine fed like the processor feeds it: 1 s polls of a running machine making 5 units
/// each, the wall clock stepped by `step_ms` after `before_s` polls, then `after_s` more polls.
/// Returns every record emitted by closing, by (period, start), and the units made.
fn run_through_step(
    windows: &mut MachineWindows,
    step_ms: i64,
    before_s: i64,
    after_s: i64,
) -> (BTreeMap<(String, Millis), WindowRecord>, u64) {
    let cfg = CounterConfig {
        modulus: 1 << 32,
        wrap: true,
        on_decrease: OnDecrease::Reset,
        design_rate: None,
    };
    let (mut counter, mut tracker) = (CounterState::default(), StateTracker::new());
    let mut detector = StepDetector::new();
    let mut latest = BTreeMap::new();
    let mut raw = 1_000;
    for poll in 0..=before_s + after_s {
        let offset = if poll > before_s { step_ms } else { 0 };
        let at = T0 + poll * 1_000 + offset;
        if let Some(step) = detector.observe(ClockReading {
            mono_ms: poll * 1_000,
            utc: at,
        }) {
            rebase_after_step(
                &step,
                [&mut counter],
                &mut tracker,
                std::slice::from_mut(windows),
            );
        }
        let step = counter.step(&cfg, raw, at);
        windows.add_count(&Channel::Produced, step.delta, step.t_from, step.t_to, None);
        if let Some((state, from, to)) = tracker.observe(Some(MachineState::Running), at) {
            windows.add_state(state, from, to);
        }
        absorb(&mut latest, windows.close_due(at));
        raw += 5;
    }
    let made = 5 * (before_s + after_s) as u64;
    absorb(
        &mut latest,
        windows.close_due(T0 + step_ms.max(0) + 2 * HOUR),
    );
    (latest, made)
}

#[test]
fn given_wall_clock_stepped_an_hour_forward_when_fed_then_no_phantom_time_and_edges_flagged() {
    let mut windows = machine(&["1m", "1h"]);
    let (latest, made) = run_through_step(&mut windows, HOUR, 30, 30);
    let minutes: Vec<&WindowRecord> = latest.values().filter(|r| r.period == "1m").collect();
    // Two minutes hold the time (the one before the step and the one after), not sixty-one.
    assert_eq!(
        minutes.iter().map(|r| r.start).collect::<Vec<_>>(),
        vec![T0, T0 + HOUR]
    );
    for period in ["1m", "1h"] {
        let records = latest.values().filter(|r| r.period == period);
        let (running, unknown, produced) = records.fold((0, 0, 0), |acc, r| {
            (
                acc.0 + r.sums.running_ms,
                acc.1 + r.sums.unknown_ms,
                acc.2 + r.sums.produced,
            )
        });
        // 60 polls 1 s apart: 59 s running, the second across the step unknown, all units counted.
        assert_eq!(
            (running, unknown, produced),
            (59_000, 1_000, made),
            "{period}"
        );
    }
    assert!(minutes
        .iter()
        .all(|r| r.sums.flags.contains(&Flag::ClockStep)));
    assert!(minutes
        .iter()
        .all(|r| r.sums.observed_ms() <= r.end - r.start));
}

#[test]
fn given_wall_clock_stepped_an_hour_back_when_fed_then_windows_keep_closing_in_the_new_time() {
    let mut windows = machine(&["1m"]);
    // 30 s before the step at T0 + 30 s, then 150 polls in the new time (an hour earlier).
    let (latest, made) = run_through_step(&mut windows, -HOUR, 30, 150);
    let produced: u64 = latest.values().map(|r| r.sums.produced).sum();
    assert_eq!(produced, made);
    // The production after the step lands in the minutes of the new time, one minute each, and
    // those minutes closed while the clock was still behind the old time.
    let new_time: Vec<(Millis, u64)> = latest
        .values()
        .filter(|r| r.start < T0)
        .map(|r| (r.start, r.sums.produced))
        .collect();
    assert_eq!(
        new_time,
        vec![
            (T0 - HOUR, 150),
            (T0 - HOUR + MINUTE, 300),
            (T0 - HOUR + 2 * MINUTE, 300)
        ]
    );
    assert!(latest
        .values()
        .filter(|r| r.start < T0 - HOUR + 2 * MINUTE)
        .all(|r| r.status == WindowStatus::Final));
    // The minute the step interrupted lies in the future of the new clock: closed at once, flagged.
    let old = &latest[&("1m".to_string(), T0)];
    assert_eq!((old.status, old.sums.produced), (WindowStatus::Final, 150));
    assert!(old.sums.flags.contains(&Flag::ClockStep));
    assert!(latest[&("1m".to_string(), T0 - HOUR)]
        .sums
        .flags
        .contains(&Flag::ClockStep));
    assert_eq!(windows.late(), &LateTally::default());
}

#[test]
fn given_open_window_ahead_of_the_clock_when_closing_then_closed_at_once_and_restated_later() {
    let mut windows = machine(&["1m"]);
    windows.add_count(&Channel::Produced, 3, T0, T0 + 1_000, None);
    // Within a grace period ahead it waits (a poll stamped a little ahead of the closing clock).
    assert!(windows.close_due(T0 - 10_000).is_empty());
    let closed = windows.close_due(T0 - HOUR);
    assert_eq!(
        closed
            .iter()
            .map(|r| (r.start, r.status))
            .collect::<Vec<_>>(),
        vec![(T0, WindowStatus::Final)]
    );
    windows.add_count(&Channel::Produced, 2, T0 + 2_000, T0 + 3_000, None);
    let again = windows.close_due(T0 + MINUTE + 10_000);
    assert_eq!(
        again
            .iter()
            .map(|r| (r.status, r.revision, r.sums.produced))
            .collect::<Vec<_>>(),
        vec![(WindowStatus::Restated, 1, 5)]
    );
}

#[test]
fn given_every_state_and_status_when_named_then_the_name_is_the_serialized_form() {
    for state in [
        MachineState::Running,
        MachineState::PlannedStop,
        MachineState::UnplannedStop,
        MachineState::Unknown,
    ] {
        assert_eq!(serde_json::to_value(state).unwrap(), state.name());
    }
    for status in [
        WindowStatus::Open,
        WindowStatus::Final,
        WindowStatus::Restated,
    ] {
        assert_eq!(serde_json::to_value(status).unwrap(), status.name());
    }
}
