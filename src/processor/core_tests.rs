//! The processor without a store (the harness is `test_core`), queueing the rollups and events `run`
//! would commit. Pins the gap path, the inferred state of a machine without a state register, counter
//! anomalies (a reset, a quarantined delta), and the calendar (a break and the time after a shift are
//! out of plan).

use super::test_core::*;
use super::*;
use serde_json::Value as Json;

/// Late enough that every window of the first minute is past its grace.
const CLOSE_AT: Millis = T0 + 10 * MINUTE;

fn with_state() -> String {
    one_machine(
        r#""1m""#,
        "",
        "10s",
        &format!(
            "counters.produced = {{ table = \"holding\", address = 0, type = \"u16\", design_rate = 1.0 }}\n{STATE_LINE}"
        ),
    )
}

fn without_state() -> String {
    one_machine(
        r#""1m""#,
        "",
        "1s",
        "ideal_cycle_time = \"5s\"\ncounters.produced = { table = \"holding\", address = 0, type = \"u16\" }",
    )
}

#[test]
fn given_two_failed_polls_when_the_window_closes_then_their_time_is_unknown_flagged_gap_and_announced(
) {
    // Given: good polls every 10 s, except the two at 20 s and 30 s, which lose the connection.
    let mut core = Core::new(&with_state());
    core.poll(T0, values(0, Some(RUNNING)));
    core.poll(T0 + 10 * SECOND, values(10, Some(RUNNING)));
    core.poll(T0 + 20 * SECOND, Read::Lost);
    core.poll(T0 + 30 * SECOND, Read::Lost);
    core.poll(T0 + 40 * SECOND, values(50, Some(RUNNING)));
    core.poll(T0 + 50 * SECOND, values(60, Some(RUNNING)));
    core.poll(T0 + MINUTE, values(60, Some(RUNNING)));

    // When
    let (rollups, events) = core.close(CLOSE_AT);

    // Then: [20 s, 40 s) is unknown, the counts of the gap came with the next good poll, and one
    // gap event spans the failed polls.
    assert_eq!(rollups.len(), 1);
    let window = &rollups[0];
    assert_eq!(window["times_ms"]["running"], 40_000);
    assert_eq!(window["times_ms"]["unknown"], 20_000);
    assert_eq!(window["counts"]["produced"], 60);
    assert_eq!(flags(window), vec!["gap", "no_calendar"]);
    let gaps: Vec<&Json> = events.iter().filter(|e| e["kind"] == "gap").collect();
    assert_eq!(gaps.len(), 1, "{events:#?}");
    assert_eq!(gaps[0]["detail"]["duration_ms"], 20_000);
    assert_eq!(gaps[0]["detail"]["from"], "2026-11-28T00:00:20+00:00");
    assert_eq!(gaps[0]["detail"]["to"], "2026-11-28T00:00:40+00:00");
}

#[test]
fn given_no_state_register_when_the_counter_stops_moving_then_running_ends_after_the_inferred_window(
) {
    // Given: the counter moves every 5 s until 20 s, then stands. Without a state register the
    // machine runs while the counter moved within max(3 x 5 s cycle, 2 x 1 s poll) = 15 s.
    let mut core = Core::new(&without_state());
    let produced = [0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4];
    for (i, value) in produced.into_iter().enumerate() {
        core.poll(T0 + 5 * SECOND * i as Millis, values(value, None));
    }

    // When
    let (rollups, events) = core.close(CLOSE_AT);

    // Then: the first poll is a baseline (no movement yet): stopped [0, 5 s); running from the first
    // movement at 5 s while 35 s - 20 s <= 15 s, i.e. [5 s, 40 s); stopped [40 s, 60 s). The poll at
    // 60 s opens (and flags) the next window.
    assert_eq!(rollups.len(), 2);
    assert_eq!(rollups[0]["window"]["start"], "2026-11-28T00:00:00+00:00");
    let window = &rollups[0];
    assert_eq!(window["times_ms"]["running"], 35_000);
    assert_eq!(window["times_ms"]["unplanned_stop"], 25_000);
    assert_eq!(window["times_ms"]["unknown"], 0);
    assert_eq!(window["counts"]["produced"], 4);
    assert_eq!(flags(window), vec!["no_calendar", "state_inferred"]);
    assert!(events.is_empty(), "{events:#?}");
}

#[test]
fn given_a_counter_reset_and_an_implausible_jump_when_the_window_closes_then_both_are_anomalies() {
    // Given: 100 → 110, a reset to 5, then 8, then a jump of 992 in 10 s against a design rate of
    // 1 unit/s (quarantined above 2 x 1 x 10 s = 20).
    let mut core = Core::new(&with_state());
    core.poll(T0, values(100, Some(RUNNING)));
    core.poll(T0 + 10 * SECOND, values(110, Some(RUNNING)));
    core.poll(T0 + 20 * SECOND, values(5, Some(RUNNING)));
    core.poll(T0 + 30 * SECOND, values(8, Some(RUNNING)));
    core.poll(T0 + 40 * SECOND, values(1000, Some(RUNNING)));
    core.poll(T0 + MINUTE, values(1000, Some(RUNNING)));

    // When
    let (rollups, events) = core.close(CLOSE_AT);

    // Then: 10 + 5 (the reset's value counts) + 3 are counted, the jump is not; each anomaly is
    // one counter_anomaly event and a flag on the window.
    assert_eq!(rollups.len(), 1);
    let window = &rollups[0];
    assert_eq!(window["counts"]["produced"], 18);
    assert_eq!(flags(window), vec!["no_calendar", "rejected", "reset"]);
    let anomalies: Vec<&Json> = events
        .iter()
        .filter(|e| e["kind"] == "counter_anomaly")
        .collect();
    assert_eq!(anomalies.len(), 2, "{events:#?}");
    assert_eq!(anomalies[0]["detail"]["kind"], "reset");
    assert_eq!(anomalies[0]["detail"]["counted"], 5);
    assert_eq!(anomalies[1]["detail"]["kind"], "rejected");
    assert_eq!(anomalies[1]["detail"]["delta"], 992);
    assert_eq!(anomalies[1]["detail"]["counted"], 0);
}

fn with_calendar() -> String {
    one_machine(
        r#""1m", "shift""#,
        "\n[calendar]\nshifts = [{ name = \"early\", start = \"00:00\", duration = \"10m\", breaks = [{ start = \"00:04\", duration = \"2m\" }] }]\n",
        "30s",
        &format!(
            "ideal_cycle_time = \"1s\"\ncounters.produced = {{ table = \"holding\", address = 0, type = \"u16\" }}\n{STATE_LINE}"
        ),
    )
}

#[test]
fn given_a_calendar_when_a_machine_runs_through_a_break_and_past_its_shift_then_that_time_and_those_units_are_out_of_plan(
) {
    // Given a 10-minute shift from 00:00 with a break 00:04-00:06, and a machine running at 1 unit/s
    // from 00:00 to 00:12, polled every 30 s (the break and shift boundaries fall on polls).
    let mut core = Core::new(&with_calendar());
    for step in 0..=24 {
        core.poll(
            T0 + step * 30 * SECOND,
            values((step * 30) as u16, Some(RUNNING)),
        );
    }

    // When every window up to 00:12 has closed,
    let (rollups, _) = core.close(T0 + 30 * MINUTE);

    // Then the shift window holds 8 min in plan (480 units) and the break's 2 min (120 units) out of plan,
    let shift: Vec<&Json> = rollups
        .iter()
        .filter(|r| r["window"]["period"] == "shift")
        .collect();
    assert_eq!(shift.len(), 1, "{rollups:#?}");
    let shift = shift[0];
    assert_eq!(shift["window"]["shift"], "early");
    assert_eq!(shift["window"]["production_date"], "2026-11-28");
    assert_eq!(shift["times_ms"]["planned"], 8 * MINUTE);
    assert_eq!(shift["times_ms"]["running"], 8 * MINUTE);
    assert_eq!(shift["times_ms"]["out_of_plan"], 2 * MINUTE);
    assert_eq!(shift["counts"]["produced"], 480);
    assert_eq!(shift["out_of_plan"]["produced"], 120);
    assert_eq!(shift["kpi"]["availability"], 1.0);
    assert_eq!(shift["kpi"]["performance"], 1.0);
    assert!(flags(shift).is_empty(), "{shift:#?}");
    // and a minute inside the break, or after the shift, has no planned time: its units are out of plan.
    let minute = |start: Millis| {
        rollups
            .iter()
            .find(|r| {
                r["window"]["period"] == "1m"
                    && r["window"]["start"]
                        == crate::logic::window::rfc3339(start, &jiff::tz::TimeZone::UTC)
            })
            .unwrap_or_else(|| panic!("no 1m window at {start}: {rollups:#?}"))
    };
    for start in [
        T0 + 4 * MINUTE,
        T0 + 5 * MINUTE,
        T0 + 10 * MINUTE,
        T0 + 11 * MINUTE,
    ] {
        let window = minute(start);
        assert_eq!(window["times_ms"]["planned"], 0, "{window:#?}");
        assert_eq!(window["times_ms"]["out_of_plan"], MINUTE);
        assert_eq!(window["counts"]["produced"], 0);
        assert_eq!(window["out_of_plan"]["produced"], 60);
        assert_eq!(window["nulls"]["availability"], "no_planned_time");
    }
    let in_plan = minute(T0 + 3 * MINUTE);
    assert_eq!(in_plan["times_ms"]["planned"], MINUTE);
    assert_eq!(in_plan["counts"]["produced"], 60);
    assert_eq!(in_plan["window"]["shift"], "early");
}
