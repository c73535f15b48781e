//! Unit tests and properties of the KPI formulas (docs/kpi.md): the worked example, nulls, flags,
//! goal figures, targets over time, and ratio-of-sums, A×P×Q and natural-range properties.

use super::*;
use crate::logic::targets::{DatedTarget, TargetSchedule, DEFAULT_MIN_UNITS};
use jiff::civil::date;
use proptest::prelude::*;

const MINUTE: i64 = 60_000;

fn minutes(count: u64) -> Option<Duration> {
    Some(Duration::from_secs(60 * count))
}

/// 2026-11-28T00:00:00Z.
const SOME_DAY: Millis = 1_795_824_000_000;

/// The first instant of a date in UTC.
fn midnight_utc(day: jiff::civil::Date) -> Millis {
    day.to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_millisecond()
}

fn close(actual: Option<f64>, expected: f64) -> bool {
    match actual {
        Some(actual) => (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        None => false,
    }
}

fn sums(produced: u64, defective: u64, running_ms: i64, stop_ms: i64) -> WindowSums {
    WindowSums {
        produced,
        defective,
        running_ms,
        unplanned_stop_ms: stop_ms,
        ..WindowSums::default()
    }
}

fn merge(a: &WindowSums, b: &WindowSums) -> WindowSums {
    let mut merged = a.clone();
    merged.produced += b.produced;
    merged.defective += b.defective;
    merged.running_ms += b.running_ms;
    merged.planned_stop_ms += b.planned_stop_ms;
    merged.unplanned_stop_ms += b.unplanned_stop_ms;
    merged.unknown_ms += b.unknown_ms;
    for (reason, count) in &b.by_reason {
        *merged.by_reason.entry(reason.clone()).or_default() += count;
    }
    merged.flags.extend(b.flags.iter().cloned());
    merged
}

fn target(baseline: f64, goal: f64) -> Target {
    Target {
        baseline,
        target: goal,
    }
}

/// Targets with no unit minimum, so the goal formulas can be checked on small windows.
fn goals(productivity: Option<Target>, defect_rate: Option<Target>) -> Targets {
    Targets {
        productivity: productivity.map(TargetSchedule::single),
        defect_rate: defect_rate.map(TargetSchedule::single),
        min_units: 0,
    }
}

fn kpis_of(window: &WindowSums, ideal: Option<Duration>, targets: &Targets) -> Kpis {
    compute(window, ideal, targets, SOME_DAY, UnknownTime::Loss)
}

#[test]
fn given_design_worked_example_when_computed_then_oee_factors_match() {
    // Given planned 480 min, run 420 min, ideal cycle 1 min, 400 produced, 380 good.
    let window = sums(400, 20, 420 * MINUTE, 60 * MINUTE);

    // When
    let kpis = kpis_of(&window, minutes(1), &goals(None, None));

    // Then
    assert!(close(kpis.value("availability"), 0.875));
    assert!(close(kpis.value("performance"), 400.0 / 420.0));
    assert!(close(kpis.value("quality"), 0.95));
    assert!(close(kpis.value("oee"), 19.0 / 24.0));
    let a_p_q = 0.875 * (400.0 / 420.0) * 0.95;
    assert!(close(kpis.value("oee"), a_p_q));
    assert!(close(kpis.value("defect_rate"), 0.05));
    assert!(close(kpis.value("defect_ppm"), 50_000.0));
    assert!(close(kpis.value("productivity"), 380.0 / 8.0));
    assert!(close(kpis.value("productivity_per_run_hour"), 380.0 / 7.0));
    assert!(kpis.flags.is_empty());
    assert_eq!(kpis.basis.planned_ms, 480 * MINUTE);
    assert_eq!(kpis.basis.good, 380);
    assert_eq!(kpis.values.len(), KPI_NAMES.len());
    // Only the goal figures are null, because no target is configured.
    assert!(kpis
        .nulls
        .values()
        .all(|reason| *reason == NullReason::NoTarget));
    assert_eq!(kpis.nulls.len(), 6);
}

#[test]
fn given_defect_rate_baseline_5_target_0_actual_2_percent_when_computed_then_attainment_is_0_6() {
    // Given 1000 produced, 20 defective (2 %), baseline 5 %, target 0 %.
    let targets = goals(None, Some(target(0.05, 0.0)));

    // When
    let kpis = kpis_of(&sums(1000, 20, 10 * MINUTE, 0), None, &targets);

    // Then attainment is 0.6, the ratio target/actual is 0 and improvement is 60 %.
    let figures = kpis.targets["defect_rate"];
    assert!(close(figures.attainment, 0.6));
    assert!(close(figures.attainment_ratio, 0.0));
    assert!(close(figures.improvement, 0.6));
    assert_eq!(figures.baseline, 0.05);
    assert_eq!(figures.target, 0.0);
    assert!(!kpis.targets.contains_key("productivity"));
}

#[test]
fn given_productivity_target_when_computed_then_higher_is_better_figures() {
    // Given 60 good per planned hour, baseline 40, target 50.
    let targets = goals(Some(target(40.0, 50.0)), None);

    // When
    let kpis = kpis_of(&sums(60, 0, 60 * MINUTE, 0), None, &targets);

    // Then
    let figures = kpis.targets["productivity"];
    assert!(close(figures.attainment, 2.0));
    assert!(close(figures.attainment_ratio, 1.2));
    assert!(close(figures.improvement, 0.5));
}

#[test]
fn given_a_kpi_without_target_when_computed_then_its_goal_figures_are_null_no_target() {
    // Given a productivity target only.
    let targets = goals(Some(target(40.0, 50.0)), None);

    // When
    let kpis = kpis_of(&sums(60, 0, 60 * MINUTE, 0), None, &targets);

    // Then every defect-rate goal figure says why it is missing; productivity has figures.
    for key in [
        "defect_rate.attainment",
        "defect_rate.attainment_ratio",
        "defect_rate.improvement",
    ] {
        assert_eq!(kpis.null_reason(key), Some(NullReason::NoTarget), "{key}");
    }
    assert!(!kpis.targets.contains_key("defect_rate"));
    assert_eq!(kpis.null_reason("productivity.attainment"), None);
}

#[test]
fn given_no_observed_time_when_computed_then_time_based_kpis_are_null_no_planned_time() {
    let kpis = kpis_of(&WindowSums::default(), minutes(1), &goals(None, None));

    assert_eq!(
        kpis.null_reason("availability"),
        Some(NullReason::NoPlannedTime)
    );
    assert_eq!(kpis.null_reason("oee"), Some(NullReason::NoPlannedTime));
    assert_eq!(
        kpis.null_reason("productivity"),
        Some(NullReason::NoPlannedTime)
    );
    assert_eq!(kpis.null_reason("performance"), Some(NullReason::NoRunTime));
    assert_eq!(
        kpis.null_reason("productivity_per_run_hour"),
        Some(NullReason::NoRunTime)
    );
    assert_eq!(kpis.null_reason("quality"), Some(NullReason::NoProduction));
    assert_eq!(
        kpis.null_reason("defect_rate"),
        Some(NullReason::NoProduction)
    );
    assert_eq!(
        kpis.null_reason("defect_ppm"),
        Some(NullReason::NoProduction)
    );
    assert!(kpis.values.values().all(Option::is_none));
}

#[test]
fn given_planned_time_but_nothing_ran_when_computed_then_oee_is_zero_not_null() {
    // Given a whole window in an unplanned stop.
    let kpis = kpis_of(&sums(0, 0, 0, 15 * MINUTE), minutes(1), &goals(None, None));

    // Then
    assert_eq!(kpis.value("oee"), Some(0.0));
    assert_eq!(kpis.value("availability"), Some(0.0));
    assert_eq!(kpis.value("productivity"), Some(0.0));
    assert_eq!(kpis.null_reason("performance"), Some(NullReason::NoRunTime));
    assert_eq!(kpis.null_reason("quality"), Some(NullReason::NoProduction));
    assert_eq!(kpis.null_reason("oee"), None);
}

#[test]
fn given_no_ideal_cycle_time_when_computed_then_performance_and_oee_null_with_reason() {
    for ideal in [None, Some(Duration::ZERO)] {
        let kpis = kpis_of(&sums(10, 1, MINUTE, 0), ideal, &goals(None, None));

        assert_eq!(
            kpis.null_reason("performance"),
            Some(NullReason::NoIdealCycleTime)
        );
        assert_eq!(kpis.null_reason("oee"), Some(NullReason::NoIdealCycleTime));
        assert_eq!(kpis.value("performance"), None);
        assert!(close(kpis.value("availability"), 1.0));
        assert!(close(kpis.value("quality"), 0.9));
    }
}

#[test]
fn given_a_sub_millisecond_ideal_cycle_time_when_computed_then_performance_is_exact() {
    // Given a 3.6 ms ideal cycle and 1000 units in 3.6 s of running time. Truncating the cycle to whole
    // milliseconds (3 ms) gave 0.8333.
    let ideal = Some(Duration::from_micros(3_600));

    // When
    let kpis = kpis_of(&sums(1000, 0, 3_600, 0), ideal, &goals(None, None));

    // Then
    assert_eq!(kpis.value("performance"), Some(1.0));
    assert_eq!(kpis.value("oee"), Some(1.0));
    assert!(kpis.flags.is_empty());
}

#[test]
fn given_performance_above_one_when_computed_then_value_is_kept_and_flagged() {
    // Given 2 units in one running minute with an ideal cycle of 1 minute.
    let kpis = kpis_of(&sums(2, 0, MINUTE, 0), minutes(1), &goals(None, None));

    assert!(close(kpis.value("performance"), 2.0));
    assert_eq!(kpis.flags, vec![KpiFlag::PerformanceAbove1]);
}

#[test]
fn given_more_defective_than_produced_when_computed_then_good_based_figures_are_null_and_flagged() {
    // Given 5 produced and 8 defective in plan (a defect counter ahead of the produced counter). A clamped
    // good count gave quality 0, oee 0 and defect rate 100 %.
    let targets = goals(None, Some(target(0.05, 0.01)));

    // When
    let kpis = kpis_of(&sums(5, 8, MINUTE, 0), minutes(1), &targets);

    // Then
    for name in ["quality", "oee", "defect_rate", "defect_ppm"] {
        assert_eq!(kpis.value(name), None, "{name}");
        assert_eq!(
            kpis.null_reason(name),
            Some(NullReason::InconsistentCounts),
            "{name}"
        );
    }
    assert_eq!(
        kpis.null_reason("defect_rate.attainment"),
        Some(NullReason::InconsistentCounts)
    );
    assert!(close(kpis.value("performance"), 5.0));
    assert_eq!(
        kpis.flags,
        vec![KpiFlag::InconsistentCounts, KpiFlag::PerformanceAbove1]
    );
}

#[test]
fn given_equal_defective_and_produced_when_computed_then_figures_are_defined() {
    let kpis = kpis_of(&sums(5, 5, MINUTE, 0), minutes(1), &goals(None, None));

    assert_eq!(kpis.value("quality"), Some(0.0));
    assert_eq!(kpis.value("defect_rate"), Some(1.0));
    assert!(!kpis.flags.contains(&KpiFlag::InconsistentCounts));
}

#[test]
fn given_too_few_units_when_computed_then_goal_figures_are_null_but_kpis_stay() {
    // Given one defective unit in the first second of a window, with the default minimum of units. Without
    // the minimum the defect-rate attainment was (1 − 0.06) / (0.02 − 0.06) = −23.5 (−2350 %).
    let targets = Targets {
        min_units: DEFAULT_MIN_UNITS,
        ..goals(Some(target(3000.0, 3600.0)), Some(target(0.06, 0.02)))
    };

    // When
    let kpis = kpis_of(&sums(1, 1, 1_000, 0), None, &targets);

    // Then the KPIs are published, their goal figures are not.
    assert_eq!(kpis.value("defect_rate"), Some(1.0));
    for key in Goal::Productivity
        .keys()
        .into_iter()
        .chain(Goal::DefectRate.keys())
    {
        assert_eq!(
            kpis.null_reason(key),
            Some(NullReason::TooFewUnits),
            "{key}"
        );
    }
    let figures = kpis.targets["defect_rate"];
    assert_eq!(figures.attainment, None);
    assert_eq!((figures.baseline, figures.target), (0.06, 0.02));
}

#[test]
fn given_exactly_min_units_when_computed_then_goal_figures_appear() {
    let targets = Targets {
        min_units: 100,
        ..goals(None, Some(target(0.06, 0.02)))
    };

    let below = kpis_of(&sums(99, 2, MINUTE, 0), None, &targets);
    let at = kpis_of(&sums(100, 2, MINUTE, 0), None, &targets);

    assert_eq!(below.targets["defect_rate"].attainment, None);
    assert!(close(at.targets["defect_rate"].attainment, 1.0));
}

#[test]
fn given_nothing_produced_when_targets_apply_then_the_actuals_reason_comes_first() {
    let targets = Targets {
        min_units: 100,
        ..goals(None, Some(target(0.06, 0.02)))
    };

    let kpis = kpis_of(&sums(0, 0, MINUTE, 0), None, &targets);

    assert_eq!(
        kpis.null_reason("defect_rate.attainment"),
        Some(NullReason::NoProduction)
    );
}

#[test]
fn given_targets_over_time_when_windows_on_different_dates_computed_then_each_uses_its_entry() {
    // Given a defect-rate baseline of 5 % until March, and 4 % → 1 % from 2026-03-01 on.
    let schedule = TargetSchedule::new(
        vec![
            DatedTarget {
                valid_from: None,
                target: target(0.05, 0.03),
            },
            DatedTarget {
                valid_from: Some(date(2026, 3, 1)),
                target: target(0.04, 0.01),
            },
        ],
        &jiff::tz::TimeZone::UTC,
    )
    .unwrap();
    let targets = Targets {
        productivity: None,
        defect_rate: Some(schedule),
        min_units: 0,
    };
    let window = sums(1000, 20, 10 * MINUTE, 0);

    // When
    let march_first = midnight_utc(date(2026, 3, 1));
    let february = compute(
        &window,
        None,
        &targets,
        march_first - MINUTE,
        UnknownTime::Loss,
    );
    let march = compute(&window, None, &targets, march_first, UnknownTime::Loss);

    // Then 2 % is (2 − 5) / (3 − 5) = 1.5 of the old goal and (2 − 4) / (1 − 4) = 2/3 of the new one.
    assert!(close(february.targets["defect_rate"].attainment, 1.5));
    assert!(close(march.targets["defect_rate"].attainment, 2.0 / 3.0));
    assert_eq!(march.targets["defect_rate"].baseline, 0.04);
}

#[test]
fn given_a_schedule_starting_later_when_an_earlier_window_computed_then_no_target() {
    let schedule = TargetSchedule::new(
        vec![DatedTarget {
            valid_from: Some(date(2026, 3, 1)),
            target: target(40.0, 50.0),
        }],
        &jiff::tz::TimeZone::UTC,
    )
    .unwrap();
    let targets = Targets {
        productivity: Some(schedule),
        ..goals(None, None)
    };

    let kpis = compute(
        &sums(60, 0, 60 * MINUTE, 0),
        None,
        &targets,
        midnight_utc(date(2026, 2, 1)),
        UnknownTime::Loss,
    );

    assert_eq!(
        kpis.null_reason("productivity.attainment"),
        Some(NullReason::NoTarget)
    );
    assert!(!kpis.targets.contains_key("productivity"));
}

#[test]
fn given_target_equal_to_baseline_when_computed_then_attainment_null_with_reason() {
    let targets = goals(Some(target(50.0, 50.0)), None);

    let kpis = kpis_of(&sums(60, 0, 60 * MINUTE, 0), None, &targets);

    assert_eq!(kpis.targets["productivity"].attainment, None);
    assert_eq!(
        kpis.null_reason("productivity.attainment"),
        Some(NullReason::TargetEqualsBaseline)
    );
    assert!(close(kpis.targets["productivity"].attainment_ratio, 1.2));
}

#[test]
fn given_zero_defects_against_lower_better_target_when_computed_then_ratio_null_zero_actual() {
    let targets = goals(None, Some(target(0.05, 0.01)));

    let kpis = kpis_of(&sums(100, 0, MINUTE, 0), None, &targets);

    let figures = kpis.targets["defect_rate"];
    assert_eq!(figures.attainment_ratio, None);
    assert_eq!(
        kpis.null_reason("defect_rate.attainment_ratio"),
        Some(NullReason::ZeroActual)
    );
    assert!(close(figures.attainment, 1.25));
    assert!(close(figures.improvement, 1.0));
}

#[test]
fn given_zero_baseline_and_zero_target_when_computed_then_improvement_and_ratio_null() {
    let targets = goals(Some(target(0.0, 0.0)), None);

    let kpis = kpis_of(&sums(60, 0, 60 * MINUTE, 0), None, &targets);

    assert_eq!(
        kpis.null_reason("productivity.improvement"),
        Some(NullReason::ZeroBaseline)
    );
    assert_eq!(
        kpis.null_reason("productivity.attainment_ratio"),
        Some(NullReason::ZeroTarget)
    );
    assert_eq!(
        kpis.null_reason("productivity.attainment"),
        Some(NullReason::TargetEqualsBaseline)
    );
}

#[test]
fn given_null_actual_when_targets_configured_then_goal_figures_carry_the_actual_reason() {
    let targets = goals(Some(target(40.0, 50.0)), Some(target(0.05, 0.0)));

    let kpis = kpis_of(&WindowSums::default(), None, &targets);

    for key in Goal::Productivity.keys() {
        assert_eq!(
            kpis.null_reason(key),
            Some(NullReason::NoPlannedTime),
            "{key}"
        );
    }
    for key in Goal::DefectRate.keys() {
        assert_eq!(
            kpis.null_reason(key),
            Some(NullReason::NoProduction),
            "{key}"
        );
    }
    assert_eq!(kpis.targets["defect_rate"].attainment, None);
    assert_eq!(kpis.targets["defect_rate"].baseline, 0.05);
}

#[test]
fn given_non_finite_target_when_computed_then_figure_is_null_not_finite() {
    let targets = goals(Some(target(f64::INFINITY, 50.0)), None);

    let kpis = kpis_of(&sums(60, 0, 60 * MINUTE, 0), None, &targets);

    assert_eq!(
        kpis.null_reason("productivity.improvement"),
        Some(NullReason::NotFinite)
    );
}

#[test]
fn given_two_unequal_windows_when_merged_then_kpi_is_ratio_of_sums_not_mean_of_ratios() {
    // Given a short perfect window and a long poor one.
    let short = sums(10, 0, MINUTE, 0);
    let long = sums(10, 5, MINUTE, 9 * MINUTE);

    // When
    let ideal = Some(Duration::from_secs(6));
    let merged = kpis_of(&merge(&short, &long), ideal, &goals(None, None));

    // Then availability is 2/11, not (1 + 0.1) / 2; quality is 15/20, not (1 + 0.5) / 2.
    assert!(close(merged.value("availability"), 2.0 / 11.0));
    assert!(close(merged.value("quality"), 0.75));
    assert!(!close(merged.value("availability"), 0.55));
}

#[test]
fn every_null_reason_and_kpi_flag_serializes_as_its_name() {
    for reason in NullReason::ALL {
        assert_eq!(
            serde_json::to_value(reason).unwrap(),
            serde_json::json!(reason.as_str())
        );
    }
    for flag in KpiFlag::ALL {
        assert_eq!(
            serde_json::to_value(flag).unwrap(),
            serde_json::json!(flag.as_str())
        );
    }
}

/// Window sums with consistent counts (defective ≤ produced).
fn arb_sums() -> impl Strategy<Value = WindowSums> {
    arb_any_sums().prop_map(|mut sums| {
        sums.defective = sums.defective.min(sums.produced);
        sums
    })
}

/// Window sums with any counts, including more defective than produced.
fn arb_any_sums() -> impl Strategy<Value = WindowSums> {
    (
        0u64..100_000,
        0u64..100_000,
        0i64..10_000_000,
        0i64..10_000_000,
        0i64..10_000_000,
        0i64..10_000_000,
    )
        .prop_map(
            |(produced, defective, running, planned_stop, unplanned_stop, unknown)| WindowSums {
                produced,
                defective,
                running_ms: running,
                planned_stop_ms: planned_stop,
                unplanned_stop_ms: unplanned_stop,
                unknown_ms: unknown,
                ..WindowSums::default()
            },
        )
}

/// An ideal cycle time from 1 µs to 2 min, with sub-millisecond parts.
fn arb_ideal() -> impl Strategy<Value = Duration> {
    (1u64..120_000_000).prop_map(Duration::from_micros)
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}

fn in_unit_range(value: Option<f64>) -> bool {
    value.is_none_or(|v| (0.0..=1.0).contains(&v))
}

proptest! {
    #[test]
    fn given_any_two_windows_when_merged_then_each_kpi_is_the_ratio_of_summed_parts(
        a in arb_sums(),
        b in arb_sums(),
        ideal in arb_ideal(),
    ) {
        let merged = kpis_of(&merge(&a, &b), Some(ideal), &goals(None, None));

        // PBT leaves planned stops out (planned downtime).
        let planned = |s: &WindowSums| (s.running_ms + s.unplanned_stop_ms + s.unknown_ms) as f64;
        let pbt = planned(&a) + planned(&b);
        let apt = (a.running_ms + b.running_ms) as f64;
        let pq = (a.produced + b.produced) as f64;
        let gq = ((a.produced - a.defective) + (b.produced - b.defective)) as f64;
        let ideal_ms = ideal.as_secs_f64() * 1000.0;
        let expected = [
            ("availability", ratio(apt, pbt)),
            ("performance", ratio(ideal_ms * pq, apt)),
            ("quality", ratio(gq, pq)),
            ("oee", ratio(ideal_ms * gq, pbt)),
            ("defect_rate", ratio(pq - gq, pq)),
            ("productivity", ratio(gq * MS_PER_HOUR, pbt)),
            ("productivity_per_run_hour", ratio(gq * MS_PER_HOUR, apt)),
        ];
        for (name, expected) in expected {
            match expected {
                Some(value) => prop_assert!(
                    close(merged.value(name), value),
                    "{name}: {:?} != {value}", merged.value(name)
                ),
                None => {
                    prop_assert_eq!(merged.value(name), None);
                    prop_assert!(merged.null_reason(name).is_some());
                }
            }
        }
    }

    #[test]
    fn given_one_product_when_computed_then_oee_equals_availability_times_performance_times_quality(
        window in arb_sums().prop_filter("ran and produced", |s| s.running_ms > 0 && s.produced > 0),
        ideal in arb_ideal(),
    ) {
        let kpis = kpis_of(&window, Some(ideal), &goals(None, None));

        let (a, p, q) = (
            kpis.value("availability").unwrap(),
            kpis.value("performance").unwrap(),
            kpis.value("quality").unwrap(),
        );
        prop_assert!(close(kpis.value("oee"), a * p * q), "{:?} != {}", kpis.value("oee"), a * p * q);
    }

    #[test]
    fn given_any_window_when_computed_then_no_kpi_leaves_its_range_except_flagged_performance(
        window in arb_any_sums(),
        ideal in proptest::option::of(arb_ideal()),
    ) {
        let kpis = kpis_of(&window, ideal, &goals(None, None));

        let performance_flagged = kpis.flags.contains(&KpiFlag::PerformanceAbove1);
        prop_assert!(in_unit_range(kpis.value("availability")));
        prop_assert!(in_unit_range(kpis.value("quality")));
        prop_assert!(in_unit_range(kpis.value("defect_rate")));
        prop_assert!(kpis.value("defect_ppm").is_none_or(|v| (0.0..=1e6).contains(&v)));
        prop_assert!(kpis.value("productivity").is_none_or(|v| v >= 0.0));
        prop_assert!(kpis.value("productivity_per_run_hour").is_none_or(|v| v >= 0.0));
        // Units counted with no running time at all are more than the run time allows, too.
        let units_without_run = ideal.is_some() && window.running_ms == 0 && window.produced > 0;
        prop_assert_eq!(
            performance_flagged,
            kpis.value("performance").is_some_and(|v| v > 1.0) || units_without_run
        );
        // OEE = A × P × Q, so it can pass 1 only with a flagged performance.
        prop_assert!(performance_flagged || in_unit_range(kpis.value("oee")));
        prop_assert!(kpis.value("oee").is_none_or(|v| v >= 0.0));
        let inconsistent = window.defective > window.produced;
        prop_assert_eq!(kpis.flags.contains(&KpiFlag::InconsistentCounts), inconsistent);
        for (name, value) in &kpis.values {
            prop_assert_eq!(value.is_none(), kpis.nulls.contains_key(name), "{}", name);
        }
    }
}
