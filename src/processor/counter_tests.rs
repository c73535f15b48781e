//! The processor without a store, on counter readings: a raw value at or above the modulus is a gap for
//! that counter with one `counter_anomaly` event per episode, and a released quarantine restates the windows
//! of the delta's interval with the released units.

use super::test_core::*;
use super::*;
use crate::store::ReleaseRequest;
use serde_json::Value as Json;

/// A 10000-modulus counter on a PLC polled every 10 s, guarded at 1 unit/s (W = 20 per 10 s poll).
fn config() -> String {
    one_machine(
        r#""1m""#,
        "",
        "10s",
        &format!(
            "counters.produced = {{ table = \"holding\", address = 0, type = \"u16\", modulus = \"10000\", design_rate = 1.0 }}\n{STATE_LINE}"
        ),
    )
}

fn anomalies(events: &[Json]) -> Vec<&Json> {
    events
        .iter()
        .filter(|e| e["kind"] == "counter_anomaly")
        .collect()
}

#[test]
fn given_values_at_or_above_the_modulus_when_the_window_closes_then_a_gap_one_event_and_no_count() {
    // Given: 9990, then two polls at or above the modulus 10000, then 9999, a wrap to 3, and 8.
    let mut core = Core::new(&config());
    core.poll_running(T0, 9_990);
    core.poll_running(T0 + 10 * SECOND, 10_005);
    core.poll_running(T0 + 20 * SECOND, 12_345);
    core.poll_running(T0 + 30 * SECOND, 9_999);
    core.poll_running(T0 + 40 * SECOND, 3);
    core.poll_running(T0 + 50 * SECOND, 8);
    core.poll_running(T0 + MINUTE, 8);

    // When
    let (rollups, events) = core.close(T0 + 10 * MINUTE);

    // Then: before the fix the invalid values moved the baseline: +15 counted, 2340 and a "reset" of 9999
    // quarantined, then +4 and +5: 24 units, flagged rejected and wrap, two anomaly events of kind rejected.
    // Now the baseline stays at 9990: +9, the wrap +4 and +5 are 18 units, the window is flagged gap (the
    // counter was unread twice) and the episode of invalid values is one counter_anomaly event.
    assert_eq!(rollups.len(), 1);
    assert_eq!(rollups[0]["counts"]["produced"], 18);
    assert_eq!(flags(&rollups[0]), vec!["gap", "no_calendar", "wrap"]);
    let anomalies = anomalies(&events);
    assert_eq!(anomalies.len(), 1, "{events:#?}");
    assert_eq!(anomalies[0]["detail"]["kind"], "invalid");
    assert_eq!(anomalies[0]["detail"]["raw"], 10_005);
    assert_eq!(anomalies[0]["detail"]["modulus"], 10_000);
    assert_eq!(anomalies[0]["detail"]["counted"], 0);
    // The audit log keeps every invalid reading, with nothing counted.
    let invalid: Vec<&DeltaRow> = core
        .processor
        .pending
        .deltas
        .rows()
        .iter()
        .filter(|d| d.kind == StepKind::Invalid)
        .collect();
    assert_eq!(invalid.len(), 2);
    assert!(invalid.iter().all(|d| d.delta == 0));
}

#[test]
fn given_a_released_quarantine_when_applied_then_its_window_is_restated_with_the_units() {
    // Given: a jump of 500 in 10 s against W = 20 is quarantined, and the window is published.
    let mut core = Core::new(&config());
    core.poll_running(T0, 100);
    core.poll_running(T0 + 10 * SECOND, 110);
    core.poll_running(T0 + 20 * SECOND, 610);
    core.poll_running(T0 + MINUTE, 615);
    let (first, _) = core.close(T0 + 2 * MINUTE);
    assert_eq!(first.len(), 1);
    assert_eq!(
        (&first[0]["counts"]["produced"], &first[0]["status"]),
        (&Json::from(15), &Json::from("final"))
    );
    let rejected = core
        .processor
        .pending
        .deltas
        .rows()
        .iter()
        .find(|d| d.kind == StepKind::Rejected)
        .cloned()
        .unwrap();
    assert_eq!(rejected.delta, 500);
    let request = ReleaseRequest {
        delta_id: 7,
        key: rejected.key.clone(),
        amount: rejected.delta,
        t_from: rejected.t_from,
        t_to: rejected.t_to,
        requested_at: T0 + 3 * MINUTE,
    };

    // When: the release is applied, and applied again before its commit.
    let applied = core
        .processor
        .apply_releases(std::slice::from_ref(&request), T0 + 3 * MINUTE);
    let again = core
        .processor
        .apply_releases(std::slice::from_ref(&request), T0 + 3 * MINUTE);
    let (restated, events) = core.close(T0 + 4 * MINUTE);

    // Then: counted once, the window restated with revision 1, one event, and the id waits for the commit.
    assert_eq!((applied, again), (1, 0));
    assert_eq!(restated.len(), 1, "{restated:#?}");
    assert_eq!(restated[0]["counts"]["produced"], 515);
    assert_eq!(restated[0]["status"], "restated");
    assert_eq!(restated[0]["revision"], 1);
    let released: Vec<&Json> = events
        .iter()
        .filter(|e| e["kind"] == "quarantine_released")
        .collect();
    assert_eq!(released.len(), 1, "{events:#?}");
    assert_eq!(released[0]["detail"]["amount"], 500);
    assert_eq!(released[0]["detail"]["delta_id"], 7);
    assert_eq!(
        core.processor.pending.releases.iter().collect::<Vec<_>>(),
        vec![&7]
    );

    // A release of a counter the configuration does not have is left pending.
    let stranger = ReleaseRequest {
        delta_id: 8,
        key: "press-99/produced".into(),
        ..request
    };
    assert_eq!(core.processor.apply_releases(&[stranger], T0), 0);
    assert!(!core.processor.pending.releases.contains(&8));
}
