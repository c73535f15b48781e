//! Properties over random facts: counts and state time are conserved over every period, and an
//! evicting accumulator equals one that never evicts.

use super::*;
use crate::logic::counter::{CounterConfig, CounterState, OnDecrease};
use proptest::prelude::*;

/// Four shifts of 5 h 50 min a day with 10 min between them and breaks inside, so that facts of a
/// few hours cross shift, break and gap boundaries.
fn four_shifts(tz: TimeZone) -> Calendar {
    use crate::logic::calendar::{BreakSpec, ShiftSpec};
    let shift = |name: &str, hour: i8, breaks: Vec<(i8, i8, i64)>| ShiftSpec {
        name: name.into(),
        start: jiff::civil::time(hour, 0, 0, 0),
        duration_ms: 350 * MINUTE,
        breaks: breaks
            .into_iter()
            .map(|(hour, minute, minutes)| BreakSpec {
                start: jiff::civil::time(hour, minute, 0, 0),
                duration_ms: minutes * MINUTE,
            })
            .collect(),
    };
    let shifts = vec![
        shift("a", 0, vec![(1, 0, 20), (3, 30, 15)]),
        shift("b", 6, vec![(9, 0, 20)]),
        shift("c", 12, Vec::new()),
        shift("d", 18, vec![(21, 0, 30)]),
    ];
    Calendar::new(tz, shifts, Vec::new()).unwrap()
}

proptest! {
    // Each case spreads up to 200 deltas over thousands of 5 s windows; 64 cases keep the
    // debug-build run to a couple of seconds.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn counted_deltas_over_every_period_sum_to_the_true_increments(
        modulus in prop::sample::select(vec![1u64 << 16, 10_000, 1 << 32]),
        start_fraction in 0.0f64..1.0,
        increments in prop::collection::vec(0u64..120, 1..200),
        gaps in prop::collection::vec(200i64..400_000, 200),
        close_every in 1usize..20,
        start in 1_700_000_000_000i64..1_800_000_000_000,
        tz in zone(),
        horizon in prop::sample::select(vec![72 * HOUR, 20 * MINUTE, 2 * MINUTE]),
    ) {
        // Short horizons push old parts of long deltas into the oldest kept window ("late"),
        // which must keep the totals whole.
        let cfg = CounterConfig { modulus, wrap: true, on_decrease: OnDecrease::Reset, design_rate: None };
        let names = ["5s", "1m", "15m", "1h"];
        let mut windows = MachineWindows::new("m".into(), periods(&names), 10_000, horizon, Calendar::all_planned(tz));
        let mut counter = CounterState::default();
        let mut raw = (start_fraction * modulus as f64) as u64 % modulus;
        let mut at = start;
        counter.step(&cfg, raw, at);
        let mut latest = BTreeMap::new();
        for (i, (increment, gap)) in increments.iter().zip(&gaps).enumerate() {
            raw = (raw + increment) % modulus;
            at += gap;
            let step = counter.step(&cfg, raw, at);
            windows.add_count(&Channel::Produced, step.delta, step.t_from, step.t_to, step.kind.flag());
            if i % close_every == 0 {
                absorb(&mut latest, windows.close_due(at));
            }
            absorb(&mut latest, windows.touched());
        }
        absorb(&mut latest, windows.close_due(at + 2 * HOUR));
        let truth: u64 = increments.iter().sum();
        for name in names {
            let total: u64 = latest.iter().filter(|((p, _), _)| p == name).map(|(_, r)| r.sums.produced).sum();
            prop_assert_eq!(total, truth, "period {}", name);
        }
        prop_assert!(latest.values().all(|r| r.status != WindowStatus::Open && !r.dirty));
    }
}

proptest! {
    // Each case replays its steps twice (an evicting store and a never-evicting twin) and compares every
    // record: about 1 s per case in a debug build, the costliest property of the crate. 32 cases keep
    // the property with half the cost.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn evicting_windows_keeps_memory_bounded_and_every_record_equal_to_a_never_evicting_twin(
        steps in prop::collection::vec(
            (0u64..50, prop::option::of(0u8..3), prop::bool::weighted(0.05), 200i64..20_000),
            1..150,
        ),
        downtime in 60_000i64..3 * HOUR,
        start in 1_700_000_000_000i64..1_800_000_000_000,
        tz in zone(),
        horizon in prop::sample::select(vec![72 * HOUR, 20 * MINUTE, 2 * MINUTE]),
        with_calendar in any::<bool>(),
    ) {
        // The twin never evicts (today's memory use); the evicting side is a restarted accumulator whose
        // windows live in `disk` and come back through load requests. Both see the same facts.
        let names = ["5s", "1m", "15m", "shift", "day"];
        let grace = 10_000;
        let calendar = if with_calendar { four_shifts(tz) } else { Calendar::all_planned(tz) };
        let mut twin = MachineWindows::new("m".into(), periods(&names), grace, horizon, calendar.clone());
        let mut evicting = MachineWindows::new("m".into(), periods(&names), grace, horizon, calendar);
        evicting.restore(Vec::new());
        let mut disk = BTreeMap::new();
        let bound: usize = periods(&names)
            .iter()
            .map(|p| usize::try_from((grace + 2 * p.nominal_ms()) / p.nominal_ms() + 2).unwrap())
            .sum();
        let mut tracker = StateTracker::new();
        let mut at = start;
        let states = [MachineState::Running, MachineState::PlannedStop, MachineState::UnplannedStop];
        for (increment, state, down, gap) in &steps {
            let from = at;
            at += if *down { downtime } else { *gap };
            if *down {
                // The PLC is unreachable: time goes on, windows close and leave memory; the next
                // good poll's delta then reaches back into windows that are only on disk.
                for tick in (from + 30_000..at).step_by(30_000) {
                    prop_assert_eq!(evicting.close_due(tick), twin.close_due(tick));
                    twin.touched();
                    absorb(&mut disk, evicting.touched());
                    evicting.evict(tick);
                }
            }
            let observed = state.map(|s| states[usize::from(s)]);
            let interval = tracker.observe(observed, at);
            for side in [&mut twin, &mut evicting] {
                side.add_count(&Channel::Produced, *increment, from, at, down.then_some(Flag::Gap));
                if let Some((state, t_from, t_to)) = interval {
                    side.add_state(state, t_from, t_to);
                }
                if observed.is_none() {
                    side.flag(at, Flag::Gap);
                }
            }
            serve_loads(&mut evicting, &disk);
            prop_assert!(!evicting.has_deferred());
            prop_assert_eq!(evicting.close_due(at), twin.close_due(at));
            let mut expected = twin.touched();
            let mut actual = evicting.touched();
            expected.sort_by_key(|r| (r.period.clone(), r.start));
            actual.sort_by_key(|r| (r.period.clone(), r.start));
            prop_assert_eq!(&actual, &expected);
            absorb(&mut disk, actual);
            evicting.evict(at);
            prop_assert!(evicting.kept() <= bound, "kept {} > bound {}", evicting.kept(), bound);
        }
        prop_assert_eq!(evicting.late(), twin.late());
        // Records past the horizon may leave the disk: nothing ends before prune_before is touched again.
        if let Some(before) = evicting.prune_before() {
            prop_assert!(before <= at - horizon);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn state_time_over_windows_sums_to_the_observed_interval(
        samples in prop::collection::vec((prop::option::of(0u8..3), 1i64..200_000), 2..150),
        start in 1_700_000_000_000i64..1_800_000_000_000,
        tz in zone(),
    ) {
        let names = ["30s", "1m", "15m", "1h"];
        let mut windows = MachineWindows::new("m".into(), periods(&names), 10_000, 72 * HOUR, Calendar::all_planned(tz));
        let mut tracker = StateTracker::new();
        let mut at = start;
        let states = [MachineState::Running, MachineState::PlannedStop, MachineState::UnplannedStop];
        for (state, gap) in &samples {
            at += gap;
            if let Some((state, from, to)) = tracker.observe(state.map(|s| states[usize::from(s)]), at) {
                windows.add_state(state, from, to);
            }
        }
        let observed = at - (start + samples[0].1);
        let mut latest = BTreeMap::new();
        absorb(&mut latest, windows.touched());
        for name in names {
            let records: Vec<&WindowRecord> = latest.iter().filter(|((p, _), _)| p == name).map(|(_, r)| r).collect();
            let total: i64 = records.iter().map(|r| r.sums.observed_ms()).sum();
            prop_assert_eq!(total, observed, "period {}", name);
            for record in records {
                prop_assert!(record.sums.observed_ms() <= record.end - record.start);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A driver asks `due_bounds` instead of calling `close_due` on every machine at every pass: the bounds
    /// must say exactly when a call would close something, also when facts arrive late and the clock steps
    /// back (windows in the future of the clock are closed at once).
    #[test]
    fn due_bounds_say_exactly_when_close_due_has_work(
        steps in prop::collection::vec((-3 * HOUR..90 * SECOND, 0u64..50, any::<bool>()), 1..120),
        start in 1_700_000_000_000i64..1_800_000_000_000,
        grace in prop::sample::select(vec![0i64, 2 * SECOND, 30 * SECOND]),
    ) {
        let names = ["10s", "1m", "15m"];
        let mut windows = MachineWindows::new("m".into(), periods(&names), grace, 72 * HOUR, Calendar::all_planned(TimeZone::UTC));
        let mut at = start;
        for (advance, units, late) in steps {
            // Mostly forward, sometimes a step back of up to 3 h; a late fact reaches a minute back.
            at += advance;
            let from = if late { at - MINUTE } else { at - SECOND };
            windows.add_count(&Channel::Produced, units, from, at, None);
            let bounds = windows.due_bounds();
            let now = at + advance.rem_euclid(40 * SECOND);
            let predicted = bounds.is_some_and(|b| b.due_at(now));
            let closed = windows.close_due(now);
            prop_assert_eq!(predicted, !closed.is_empty(), "bounds {:?} at {}", bounds, now);
            windows.touched();
        }
    }
}
