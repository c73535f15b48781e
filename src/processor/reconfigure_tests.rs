//! A new configuration taken between two cycles (the harness is `test_core`): counts stay exact across it,
//! the held machine state is not turned into unknown time, new targets and the new hash show in the next
//! rollup, and only a counter whose register changed starts a new baseline.

use super::test_core::*;
use super::*;

const CLOSE_AT: Millis = T0 + 10 * MINUTE;

/// The configuration before each reload: one machine with a state register and a productivity target.
fn before() -> String {
    one_machine(
        r#""1m""#,
        "",
        "10s",
        &format!(
            "counters.produced = {{ table = \"holding\", address = 0, type = \"u16\" }}\n{STATE_LINE}\n\
             targets.productivity = {{ baseline = 100.0, target = 120.0 }}\ntargets.min_units = 1"
        ),
    )
}

#[test]
fn given_a_new_target_when_reloaded_mid_window_then_counts_and_running_time_are_exact_and_the_rollup_carries_it(
) {
    // Given: the machine runs and produces 10 units before the reload.
    let mut core = Core::new(&before());
    let old_hash = core.processor.config.config_hash.clone();
    core.poll_running(T0, 0);
    core.poll_running(T0 + 10 * SECOND, 10);

    // When: a new productivity target is taken, and the machine goes on producing.
    core.reconfigure(&before().replace("target = 120.0", "target = 150.0"));
    for (step, produced) in [(2, 20), (3, 30), (4, 40), (5, 50), (6, 60)] {
        core.poll_running(T0 + step * 10 * SECOND, produced);
    }
    let (rollups, _) = core.close(CLOSE_AT);

    // Then: the window holds every unit and all its time as running (the held state carried over, no
    // unknown interval at the reload), and carries the new target and the new configuration hash.
    let window = &rollups[0];
    assert_eq!(window["counts"]["produced"], 60);
    assert_eq!(window["times_ms"]["running"], 60_000);
    assert_eq!(window["times_ms"]["unknown"], 0);
    assert_eq!(window["targets"]["productivity"]["target"], 150.0);
    assert_ne!(window["config_hash"], old_hash.as_str());
    assert_eq!(
        window["config_hash"],
        core.processor.config.config_hash.as_str()
    );
}

#[test]
fn given_a_counter_moved_to_another_register_when_reloaded_then_only_its_next_reading_is_a_new_baseline(
) {
    // Given: 10 units counted in register 0.
    let mut core = Core::new(&before());
    core.poll_running(T0, 0);
    core.poll_running(T0 + 10 * SECOND, 10);

    // When: the counter now lives in register 4, which reads 500 and then 505.
    core.reconfigure(&before().replace(
        "counters.produced = { table = \"holding\", address = 0",
        "counters.produced = { table = \"holding\", address = 4",
    ));
    core.poll_running(T0 + 20 * SECOND, 500);
    core.poll_running(T0 + 30 * SECOND, 505);
    let (rollups, events) = core.close(CLOSE_AT);

    // Then: 500 is a new baseline, not a jump or a reset of the old register: 10 + 5 units, no anomaly.
    let window = &rollups[0];
    assert_eq!(window["counts"]["produced"], 15);
    assert_eq!(flags(window), vec!["no_calendar"]);
    assert!(
        events.iter().all(|e| e["kind"] != "counter_anomaly"),
        "{events:#?}"
    );
}

#[test]
fn given_an_unchanged_counter_when_reloaded_then_its_baseline_is_kept() {
    // Given: 10 units counted.
    let mut core = Core::new(&before());
    core.poll_running(T0, 0);
    core.poll_running(T0 + 10 * SECOND, 10);

    // When: a configuration that changes only a comment is taken.
    core.reconfigure(&format!("{}\n# reloaded\n", before()));
    core.poll_running(T0 + 20 * SECOND, 25);
    let (rollups, _) = core.close(CLOSE_AT);

    // Then: the 15 units since the last poll are counted, not taken as a baseline.
    assert_eq!(rollups[0]["counts"]["produced"], 25);
}
