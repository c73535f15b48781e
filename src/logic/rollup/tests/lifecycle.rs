//! Closing, restating, the horizon, restoring, eviction and loading windows back.

use super::*;

#[test]
fn given_windows_when_grace_passes_then_final_once_and_late_fact_restates_with_next_revision() {
    let mut windows = machine(&["1m"]);
    windows.add_count(&Channel::Produced, 3, T0, T0 + 1_000, None);
    assert_eq!(windows.next_deadline(), Some(T0 + MINUTE + 10_000));
    assert!(windows.close_due(T0 + MINUTE + 9_999).is_empty());
    let closed = windows.close_due(T0 + MINUTE + 10_000);
    assert_eq!(closed.len(), 1);
    assert_eq!(
        (closed[0].status, closed[0].revision, closed[0].dirty),
        (WindowStatus::Final, 0, false)
    );
    assert_eq!(windows.touched()[0].status, WindowStatus::Final);
    assert!(windows.close_due(T0 + 2 * MINUTE + 10_000).is_empty());
    assert_eq!(windows.next_deadline(), None);

    // Backfill for the closed minute: persisted as dirty at once, restated at the next close.
    windows.add_count(
        &Channel::Produced,
        2,
        T0 + 5_000,
        T0 + 6_000,
        Some(Flag::Gap),
    );
    let touched = windows.touched();
    assert_eq!(
        (
            touched[0].status,
            touched[0].dirty,
            touched[0].sums.produced
        ),
        (WindowStatus::Final, true, 5)
    );
    assert!(windows.next_deadline().unwrap() <= T0 + 3 * MINUTE);
    let restated = windows.close_due(T0 + 3 * MINUTE);
    assert_eq!(restated.len(), 1);
    assert_eq!(
        (
            restated[0].status,
            restated[0].revision,
            restated[0].sums.produced
        ),
        (WindowStatus::Restated, 1, 5)
    );
    assert!(restated[0].sums.flags.contains(&Flag::Gap));
    windows.add_count(&Channel::Produced, 1, T0 + 7_000, T0 + 8_000, None);
    assert_eq!(windows.close_due(T0 + 3 * MINUTE)[0].revision, 2);
    // Re-adding a flag that is already there changes nothing and restates nothing.
    windows.flag(T0 + 5_000, Flag::Gap);
    assert!(windows.close_due(T0 + 3 * MINUTE).is_empty());
}

#[test]
fn given_window_without_any_fact_when_closing_then_nothing_is_emitted_for_it() {
    let mut windows = machine(&["1m"]);
    windows.add_count(&Channel::Produced, 1, T0, T0 + 1_000, None);
    windows.add_count(
        &Channel::Produced,
        1,
        T0 + 3 * MINUTE,
        T0 + 3 * MINUTE + 1_000,
        None,
    );
    let closed = windows.close_due(T0 + 10 * MINUTE);
    assert_eq!(
        produced_by_window(&closed),
        vec![(T0, 1), (T0 + 3 * MINUTE, 1)]
    );
}

#[test]
fn given_closed_windows_when_horizon_passes_then_forgotten_and_older_facts_go_late_to_the_oldest_kept(
) {
    let mut windows = MachineWindows::new(
        "m".into(),
        periods(&["1m"]),
        10_000,
        10 * MINUTE,
        Calendar::all_planned(TimeZone::UTC),
    );
    windows.add_count(&Channel::Produced, 1, T0, T0 + 1_000, None);
    windows.close_due(T0 + 2 * MINUTE);
    windows.close_due(T0 + 11 * MINUTE);
    windows.touched();
    // T0's window ended at T0 + 1m; at T0 + 11m it is past the 10 min horizon and forgotten.
    assert_eq!(windows.evict(T0 + 11 * MINUTE), 1);
    assert_eq!(windows.kept(), 0);
    assert!(windows.open_windows().is_empty());
    windows.add_count(&Channel::Produced, 6, T0 + 30_000, T0 + 31_000, None);
    let touched = windows.touched();
    assert_eq!(touched.len(), 1);
    assert_eq!(
        (touched[0].start, touched[0].sums.produced),
        (T0 + MINUTE, 6)
    );
    assert!(touched[0].sums.flags.contains(&Flag::Late));
    windows.add_state(MachineState::Running, T0, T0 + 90_000);
    let touched = windows.touched();
    assert_eq!(
        (touched[0].start, touched[0].sums.running_ms),
        (T0 + MINUTE, 30_000)
    );
    assert_eq!(
        windows.late(),
        &LateTally {
            facts: 2,
            units: 6,
            state_ms: 60_000
        }
    );
}

#[test]
fn given_delta_reaching_back_past_the_horizon_when_added_then_the_late_part_is_rehomed_and_sum_kept(
) {
    let mut windows = MachineWindows::new(
        "m".into(),
        periods(&["1m", "15m"]),
        10_000,
        10 * MINUTE,
        Calendar::all_planned(TimeZone::UTC),
    );
    // One delta covering 30 minutes after an outage; only the last 10 minutes are kept.
    windows.add_count(&Channel::Produced, 300, T0, T0 + 30 * MINUTE, None);
    let touched = windows.touched();
    for period in ["1m", "15m"] {
        let records: Vec<&WindowRecord> = touched.iter().filter(|r| r.period == period).collect();
        assert_eq!(
            records.iter().map(|r| r.sums.produced).sum::<u64>(),
            300,
            "{period}"
        );
        assert!(records[0].sums.flags.contains(&Flag::Late));
        assert!(records
            .iter()
            .all(|r| r.sums.flags.contains(&Flag::Estimated)));
    }
    let minutes: Vec<u64> = touched
        .iter()
        .filter(|r| r.period == "1m")
        .map(|r| r.sums.produced)
        .collect();
    assert_eq!(minutes, vec![210, 10, 10, 10, 10, 10, 10, 10, 10, 10]);
    assert_eq!(windows.late().units, 200);
}

#[test]
fn given_persisted_records_when_restored_then_lifecycle_continues_where_it_stopped() {
    let mut before = machine(&["1m"]);
    before.add_count(&Channel::Produced, 4, T0, T0 + 1_000, None);
    before.add_count(
        &Channel::Produced,
        4,
        T0 + MINUTE,
        T0 + MINUTE + 1_000,
        None,
    );
    before.close_due(T0 + MINUTE + 10_000);
    let persisted: Vec<String> = before
        .touched()
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();

    let mut after = machine(&["1m"]);
    let records: Vec<WindowRecord> = persisted
        .iter()
        .map(|json| serde_json::from_str(json).unwrap())
        .collect();
    after.restore(records);
    assert!(after.touched().is_empty());
    assert_eq!(after.open_windows().len(), 1);
    assert_eq!(after.next_deadline(), Some(T0 + 2 * MINUTE + 10_000));
    after.add_count(&Channel::Produced, 1, T0 + 2_000, T0 + 3_000, None);
    let emitted = after.close_due(T0 + 2 * MINUTE + 10_000);
    assert_eq!(
        emitted
            .iter()
            .map(|r| (r.start, r.status, r.revision, r.sums.produced))
            .collect::<Vec<_>>(),
        vec![
            (T0, WindowStatus::Restated, 1, 5),
            (T0 + MINUTE, WindowStatus::Final, 0, 4)
        ]
    );
}

#[test]
fn given_evicted_window_when_a_late_fact_restates_it_then_it_is_loaded_and_equals_the_kept_twin() {
    let mut kept = machine(&["1m"]);
    let mut evicting = machine(&["1m"]);
    // The evicting side came from a restart: only what the store hands back is in memory.
    evicting.restore(Vec::new());
    let mut disk: BTreeMap<Millis, WindowRecord> = BTreeMap::new();
    let persist = |disk: &mut BTreeMap<Millis, WindowRecord>, records: Vec<WindowRecord>| {
        for record in records {
            disk.insert(record.start, record);
        }
    };
    for side in [&mut kept, &mut evicting] {
        side.add_count(&Channel::Produced, 4, T0 + 1_000, T0 + 2_000, None);
    }
    // The first fact needs the (empty) store before it lands in the evicting side.
    assert_eq!(
        evicting.load_requests(),
        vec![LoadRequest {
            period: "1m".into(),
            from: T0,
            to: Millis::MAX
        }]
    );
    evicting.restore_range("1m", T0, Vec::new());
    for side in [&mut kept, &mut evicting] {
        side.close_due(T0 + 5 * MINUTE);
    }
    kept.touched();
    persist(&mut disk, evicting.touched());
    assert_eq!(evicting.evict(T0 + 5 * MINUTE), 1);
    assert_eq!((kept.kept(), evicting.kept()), (1, 0));

    // Backfill after a downtime: 60 units over [T0 + 30 s, T0 + 4 min) restate the evicted minute.
    for side in [&mut kept, &mut evicting] {
        side.add_count(
            &Channel::Produced,
            60,
            T0 + 30_000,
            T0 + 4 * MINUTE,
            Some(Flag::Gap),
        );
    }
    assert!(
        evicting.has_deferred(),
        "the evicted minute waits for its record"
    );
    assert_eq!(evicting.prune_before(), None);
    let requests = evicting.load_requests();
    assert_eq!(
        requests,
        vec![LoadRequest {
            period: "1m".into(),
            from: T0,
            to: T0 + MINUTE
        }]
    );
    let loaded: Vec<WindowRecord> = disk
        .range(requests[0].from..requests[0].to)
        .map(|(_, r)| r.clone())
        .collect();
    evicting.restore_range("1m", requests[0].from, loaded);
    assert!(!evicting.has_deferred());
    let mut expected = kept.touched();
    let mut actual = evicting.touched();
    expected.sort_by_key(|r| r.start);
    actual.sort_by_key(|r| r.start);
    assert_eq!(actual, expected);
    assert_eq!(
        actual[0].sums.produced,
        4 + 9,
        "30 s of 210 s, largest remainder"
    );
    let emitted_kept = kept.close_due(T0 + 5 * MINUTE);
    let emitted = evicting.close_due(T0 + 5 * MINUTE);
    assert_eq!(emitted, emitted_kept);
    assert_eq!(
        (emitted[0].status, emitted[0].revision),
        (WindowStatus::Restated, 1)
    );
}

#[test]
fn given_six_hours_of_one_second_polls_when_evicting_after_each_commit_then_a_dozen_records_stay_in_memory(
) {
    // Given the default periods and graces with a 72 h horizon, one accumulator per period as the
    // processor has, and a twin of each that never evicts (the memory use before eviction existed).
    let config = [("1m", 10_000), ("15m", 30_000), ("1h", 60_000)];
    let new = |name: &str, grace: i64| {
        MachineWindows::new(
            "m".into(),
            periods(&[name]),
            grace,
            72 * HOUR,
            Calendar::all_planned(TimeZone::UTC),
        )
    };
    let mut evicting: Vec<MachineWindows> = config.iter().map(|(n, g)| new(n, *g)).collect();
    let mut twins: Vec<MachineWindows> = config.iter().map(|(n, g)| new(n, *g)).collect();
    // When a machine is polled every second for six hours and every cycle is committed.
    let mut most_kept = 0;
    for second in 1..=6 * 3_600 {
        let at = T0 + second * 1_000;
        for side in evicting.iter_mut().chain(twins.iter_mut()) {
            side.add_count(&Channel::Produced, 1, at - 1_000, at, None);
            side.add_state(MachineState::Running, at - 1_000, at);
            side.close_due(at);
            side.touched();
        }
        for side in &mut evicting {
            side.evict(at);
        }
        most_kept = most_kept.max(evicting.iter().map(MachineWindows::kept).sum::<usize>());
    }
    // Then memory holds at most a few windows per period, where the twin holds the whole run.
    let twin_kept: usize = twins.iter().map(MachineWindows::kept).sum();
    println!("window records in memory after 6 h: {most_kept} at most with eviction, {twin_kept} without");
    assert!(most_kept <= 12, "{most_kept}");
    assert_eq!(twin_kept, 360 + 24 + 6);
}
