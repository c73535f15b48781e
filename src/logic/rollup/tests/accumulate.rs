//! Counted deltas and state time into windows: splitting, channels, flags, time zones.

use super::*;

#[test]
fn given_delta_inside_one_window_when_added_then_one_open_record_flagged_only_no_calendar() {
    let mut windows = machine(&["1m", "1h"]);
    windows.add_count(&Channel::Produced, 5, T0 + 1_000, T0 + 2_000, None);
    let open = windows.open_windows();
    assert_eq!(open.len(), 2);
    assert!(open
        .iter()
        .all(|r| r.sums.produced == 5 && r.sums.flags == no_calendar()));
    assert_eq!(
        (open[0].period.as_str(), open[0].start, open[0].end),
        ("1m", T0, T0 + MINUTE)
    );
    assert_eq!(windows.touched().len(), 2);
    assert!(windows.touched().is_empty());
}

#[test]
fn given_delta_straddling_a_minute_when_added_then_split_and_flagged_estimated_only_where_split() {
    let mut windows = machine(&["1m", "1h"]);
    windows.add_count(
        &Channel::Produced,
        4,
        T0 + 59_000,
        T0 + 61_000,
        Some(Flag::Wrap),
    );
    let touched = windows.touched();
    let minutes: Vec<&WindowRecord> = touched.iter().filter(|r| r.period == "1m").collect();
    assert_eq!(minutes.len(), 2);
    assert_eq!((minutes[0].sums.produced, minutes[1].sums.produced), (2, 2));
    for record in &minutes {
        assert!(
            record.sums.flags.contains(&Flag::Estimated) && record.sums.flags.contains(&Flag::Wrap)
        );
    }
    let hour = touched.iter().find(|r| r.period == "1h").unwrap();
    assert_eq!(hour.sums.produced, 4);
    assert!(!hour.sums.flags.contains(&Flag::Estimated));
}

#[test]
fn given_channels_when_counted_then_each_sum_is_separate() {
    let mut windows = machine(&["1m"]);
    windows.add_count(&Channel::Produced, 10, T0, T0 + 1_000, None);
    windows.add_count(&Channel::Defective, 2, T0, T0 + 1_000, None);
    windows.add_count(&Channel::Reason("scratch".into()), 1, T0, T0 + 1_000, None);
    windows.add_count(&Channel::Reason("scratch".into()), 1, T0, T0 + 1_000, None);
    let sums = &windows.open_windows()[0].sums;
    assert_eq!((sums.produced, sums.defective), (10, 2));
    assert_eq!(sums.by_reason.get("scratch"), Some(&2));
}

#[test]
fn given_state_interval_over_boundaries_when_added_then_split_exactly_in_ms() {
    let mut windows = machine(&["1m"]);
    windows.add_state(MachineState::Running, T0 + 30_000, T0 + 150_500);
    windows.add_state(MachineState::Unknown, T0 + 150_500, T0 + 180_000);
    let open = windows.open_windows();
    let running: Vec<i64> = open.iter().map(|r| r.sums.running_ms).collect();
    assert_eq!(running, vec![30_000, 60_000, 30_500]);
    assert_eq!(open[2].sums.unknown_ms, 29_500);
    assert_eq!(open[2].sums.in_plan_ms(), 60_000);
    assert!(open.iter().all(|r| r.sums.flags == no_calendar()));
}

#[test]
fn given_zero_amount_with_flag_when_added_then_window_containing_t_to_is_flagged() {
    let mut windows = machine(&["1m"]);
    windows.add_count(
        &Channel::Produced,
        0,
        T0,
        T0 + MINUTE + 1,
        Some(Flag::Reset),
    );
    let open = windows.open_windows();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].start, T0 + MINUTE);
    assert!(open[0].sums.flags.contains(&Flag::Reset));
    windows.add_count(&Channel::Produced, 0, T0, T0 + 1, None);
    assert_eq!(windows.open_windows().len(), 1);
}

#[test]
fn given_kolkata_clock_when_counting_hours_then_windows_start_at_half_past_utc() {
    let tz = TimeZone::get("Asia/Kolkata").unwrap();
    let mut windows = MachineWindows::new(
        "m".into(),
        periods(&["1h"]),
        60_000,
        72 * HOUR,
        Calendar::all_planned(tz),
    );
    windows.add_count(
        &Channel::Produced,
        1,
        T0 + 10 * MINUTE,
        T0 + 11 * MINUTE,
        None,
    );
    let open = windows.open_windows();
    assert_eq!(
        (open[0].start, open[0].end),
        (T0 - 30 * MINUTE, T0 + 30 * MINUTE)
    );
}
