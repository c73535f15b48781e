//! Window sums → KPIs (ISO 22400-2 names, PQCD practice), with nulls that carry reasons.
//! Every KPI is a ratio of additive sums, so a longer period is computed from merged sums, never
//! from a mean of ratios. Undefined figures are `None` plus a reason, never 0. Pure: no I/O, no clock.
//! Until the shift calendar exists all observed time is planned busy time and out-of-plan totals are 0.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::calendar::UnknownTime;
use super::rollup::WindowSums;

/// Baseline and target of one KPI.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The pre-programme value.
    pub baseline: f64,
    /// The goal.
    pub target: f64,
}

/// Configured targets of one machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Good units per planned hour.
    pub productivity: Option<Target>,
    /// Defective / produced.
    pub defect_rate: Option<Target>,
}

/// Null reason: the window holds no planned busy time (PBT = 0).
pub const NO_PLANNED_TIME: &str = "no_planned_time";
/// Null reason: the machine never ran inside planned time (APT = 0).
pub const NO_RUN_TIME: &str = "no_run_time";
/// Null reason: the machine has no (positive) ideal cycle time configured.
pub const NO_IDEAL_CYCLE_TIME: &str = "no_ideal_cycle_time";
/// Null reason: nothing was produced (PQ = 0).
pub const NO_PRODUCTION: &str = "no_production";
/// Null reason: goal attainment is undefined because target and baseline are equal.
pub const TARGET_EQUALS_BASELINE: &str = "target_equals_baseline";
/// Null reason: a lower-is-better attainment ratio is undefined because the actual value is 0.
pub const ZERO_ACTUAL: &str = "zero_actual";
/// Null reason: a higher-is-better attainment ratio is undefined because the target is 0.
pub const ZERO_TARGET: &str = "zero_target";
/// Null reason: improvement is undefined because the baseline is 0.
pub const ZERO_BASELINE: &str = "zero_baseline";
/// Null reason: the arithmetic produced NaN or infinity (only possible with non-finite targets).
pub const NOT_FINITE: &str = "not_finite";

/// Flag: performance exceeded 1 (ideal cycle time set too slow, or a counting problem); the value is kept.
pub const FLAG_PERFORMANCE_ABOVE_1: &str = "performance_above_1";
/// Flag: more defective than produced units were counted; good was clamped at 0.
pub const FLAG_DEFECTIVE_ABOVE_PRODUCED: &str = "defective_above_produced";

/// Every KPI name in `Kpis::values`, in a fixed order.
pub const KPI_NAMES: [&str; 8] = [
    "availability",
    "performance",
    "quality",
    "oee",
    "defect_rate",
    "defect_ppm",
    "productivity",
    "productivity_per_run_hour",
];

const MS_PER_HOUR: f64 = 3_600_000.0;

/// Whether a larger value of a KPI is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Larger is better (productivity).
    HigherIsBetter,
    /// Smaller is better (defect rate).
    LowerIsBetter,
}

/// The ISO 22400 quantities a window's KPIs were computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KpiBasis {
    /// PBT: planned busy time in ms, in plan: running + unplanned stop + unknown (unknown left out
    /// with `agent.unknown_time = "exclude"`); planned stops are planned downtime (docs/kpi.md).
    pub planned_ms: i64,
    /// APT: running time in plan, in ms.
    pub running_ms: i64,
    /// PQ: units produced in plan.
    pub produced: u64,
    /// GQ: good units in plan (PQ − defective, clamped at 0).
    pub good: u64,
    /// Units produced out of plan (counted in defect rate, excluded from OEE).
    pub out_of_plan_produced: u64,
    /// Good units produced out of plan (out-of-plan produced − defective, clamped at 0).
    pub out_of_plan_good: u64,
}

impl KpiBasis {
    /// Derives PBT, APT, PQ and GQ from a window's sums: in-plan time and counts only; the
    /// out-of-plan counts come from the window's out-of-plan sums.
    pub fn from_sums(sums: &WindowSums, unknown_time: UnknownTime) -> KpiBasis {
        KpiBasis {
            planned_ms: sums.planned_ms(unknown_time),
            running_ms: sums.running_ms.max(0),
            produced: sums.produced,
            good: sums.produced.saturating_sub(sums.defective),
            out_of_plan_produced: sums.out_of_plan_produced,
            out_of_plan_good: sums
                .out_of_plan_produced
                .saturating_sub(sums.out_of_plan_defective),
        }
    }

    /// PQ_all: produced units in and out of plan.
    pub fn produced_all(&self) -> u64 {
        self.produced.saturating_add(self.out_of_plan_produced)
    }

    /// GQ_all: good units in and out of plan.
    pub fn good_all(&self) -> u64 {
        self.good.saturating_add(self.out_of_plan_good)
    }
}

/// Baseline, target and goal figures of one KPI; `None` figures have a reason in `Kpis::nulls`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TargetFigures {
    /// The configured pre-programme value.
    pub baseline: f64,
    /// The configured goal.
    pub target: f64,
    /// (actual − baseline) / (target − baseline): 0 at baseline, 1 at target.
    pub attainment: Option<f64>,
    /// Labelled alternative: actual / target (higher-better) or target / actual (lower-better).
    pub attainment_ratio: Option<f64>,
    /// Relative change against the baseline, positive when better.
    pub improvement: Option<f64>,
}

/// KPIs of one window: values, null reasons, goal figures and flags.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpis {
    /// Every name in [`KPI_NAMES`]; `None` when undefined.
    pub values: BTreeMap<&'static str, Option<f64>>,
    /// Why a value is `None`: KPI name → reason; goal figures use keys like `"defect_rate.attainment"`.
    pub nulls: BTreeMap<&'static str, &'static str>,
    /// Goal figures of the KPIs that have a configured target ("productivity", "defect_rate").
    pub targets: BTreeMap<&'static str, TargetFigures>,
    /// KPI-level flags such as [`FLAG_PERFORMANCE_ABOVE_1`], sorted and unique.
    pub flags: Vec<&'static str>,
    /// The quantities the values were computed from (payloads publish them).
    pub basis: KpiBasis,
}

/// A figure or the reason it is undefined.
type Figure = Result<f64, &'static str>;

/// Null keys of the goal figures of one KPI (static so they fit `Kpis::nulls`).
struct TargetKeys {
    attainment: &'static str,
    attainment_ratio: &'static str,
    improvement: &'static str,
}

const PRODUCTIVITY_KEYS: TargetKeys = TargetKeys {
    attainment: "productivity.attainment",
    attainment_ratio: "productivity.attainment_ratio",
    improvement: "productivity.improvement",
};

const DEFECT_RATE_KEYS: TargetKeys = TargetKeys {
    attainment: "defect_rate.attainment",
    attainment_ratio: "defect_rate.attainment_ratio",
    improvement: "defect_rate.improvement",
};

/// Computes a window's KPIs from its sums, the machine's ideal cycle time and targets: availability =
/// APT/PBT, performance = PRU·PQ/APT, quality = GQ/PQ, oee = PRU·GQ/PBT, defect_rate = (PQ−GQ)/PQ,
/// productivity = GQ per planned hour. `unknown_time` says whether unknown time is in PBT.
pub fn compute(
    sums: &WindowSums,
    ideal_cycle_time_ms: Option<i64>,
    targets: &Targets,
    unknown_time: UnknownTime,
) -> Kpis {
    let basis = KpiBasis::from_sums(sums, unknown_time);
    let planned = basis.planned_ms as f64;
    let running = basis.running_ms as f64;
    let produced = basis.produced as f64;
    let good = basis.good as f64;
    let produced_all = basis.produced_all();
    // A zero or negative ideal cycle time is as good as none: it would make every figure 0.
    let ideal = ideal_cycle_time_ms.filter(|ms| *ms > 0).map(|ms| ms as f64);

    let availability: Figure = if basis.planned_ms > 0 {
        Ok(running / planned)
    } else {
        Err(NO_PLANNED_TIME)
    };
    let performance: Figure = match ideal {
        None => Err(NO_IDEAL_CYCLE_TIME),
        Some(_) if basis.running_ms <= 0 => Err(NO_RUN_TIME),
        Some(ideal) => Ok(ideal * produced / running),
    };
    let quality: Figure = if basis.produced > 0 {
        Ok(good / produced)
    } else {
        Err(NO_PRODUCTION)
    };
    // OEE = PRU × GQ / PBT: 0 (not null) when planned time passed and nothing ran.
    let oee: Figure = match ideal {
        _ if basis.planned_ms <= 0 => Err(NO_PLANNED_TIME),
        None => Err(NO_IDEAL_CYCLE_TIME),
        Some(ideal) => Ok(ideal * good / planned),
    };
    let defect_rate: Figure = if produced_all > 0 {
        let defective_all = produced_all - basis.good_all().min(produced_all);
        Ok(defective_all as f64 / produced_all as f64)
    } else {
        Err(NO_PRODUCTION)
    };
    let defect_ppm: Figure = defect_rate.map(|rate| rate * 1_000_000.0);
    let productivity: Figure = if basis.planned_ms > 0 {
        Ok(good / (planned / MS_PER_HOUR))
    } else {
        Err(NO_PLANNED_TIME)
    };
    let productivity_per_run_hour: Figure = if basis.running_ms > 0 {
        Ok(good / (running / MS_PER_HOUR))
    } else {
        Err(NO_RUN_TIME)
    };

    let mut kpis = Kpis {
        values: BTreeMap::new(),
        nulls: BTreeMap::new(),
        targets: BTreeMap::new(),
        flags: Vec::new(),
        basis,
    };
    let figures = [
        availability,
        performance,
        quality,
        oee,
        defect_rate,
        defect_ppm,
        productivity,
        productivity_per_run_hour,
    ];
    for (name, figure) in KPI_NAMES.into_iter().zip(figures) {
        kpis.record(name, figure);
    }

    if matches!(performance, Ok(value) if value > 1.0) {
        kpis.flags.push(FLAG_PERFORMANCE_ABOVE_1);
    }
    if sums.defective > sums.produced {
        kpis.flags.push(FLAG_DEFECTIVE_ABOVE_PRODUCED);
    }
    kpis.flags.sort_unstable();
    kpis.flags.dedup();

    if let Some(target) = &targets.productivity {
        kpis.record_target(
            "productivity",
            &PRODUCTIVITY_KEYS,
            productivity,
            target,
            Direction::HigherIsBetter,
        );
    }
    if let Some(target) = &targets.defect_rate {
        kpis.record_target(
            "defect_rate",
            &DEFECT_RATE_KEYS,
            defect_rate,
            target,
            Direction::LowerIsBetter,
        );
    }
    kpis
}

/// Goal attainment: (actual − baseline) / (target − baseline), the same formula for both directions.
pub fn goal_attainment(actual: f64, target: &Target) -> Result<f64, &'static str> {
    let span = target.target - target.baseline;
    if span == 0.0 {
        return Err(TARGET_EQUALS_BASELINE);
    }
    finite((actual - target.baseline) / span)
}

/// Labelled alternative attainment: actual / target (higher-better) or target / actual (lower-better).
pub fn goal_attainment_ratio(
    actual: f64,
    target: &Target,
    direction: Direction,
) -> Result<f64, &'static str> {
    match direction {
        Direction::HigherIsBetter if target.target == 0.0 => Err(ZERO_TARGET),
        Direction::HigherIsBetter => finite(actual / target.target),
        Direction::LowerIsBetter if actual == 0.0 => Err(ZERO_ACTUAL),
        Direction::LowerIsBetter => finite(target.target / actual),
    }
}

/// Improvement against the baseline: (a − b) / b (higher-better) or (b − a) / b (lower-better).
pub fn improvement(
    actual: f64,
    target: &Target,
    direction: Direction,
) -> Result<f64, &'static str> {
    let baseline = target.baseline;
    if baseline == 0.0 {
        return Err(ZERO_BASELINE);
    }
    match direction {
        Direction::HigherIsBetter => finite((actual - baseline) / baseline),
        Direction::LowerIsBetter => finite((baseline - actual) / baseline),
    }
}

fn finite(value: f64) -> Figure {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(NOT_FINITE)
    }
}

impl Kpis {
    /// Stores one figure as a value, or as `None` plus its reason.
    fn record(&mut self, name: &'static str, figure: Figure) {
        match figure.and_then(finite) {
            Ok(value) => {
                self.values.insert(name, Some(value));
            }
            Err(reason) => {
                self.values.insert(name, None);
                self.nulls.insert(name, reason);
            }
        }
    }

    /// Stores the goal figures of one KPI; an undefined actual makes every figure null with its reason.
    fn record_target(
        &mut self,
        name: &'static str,
        keys: &TargetKeys,
        actual: Figure,
        target: &Target,
        direction: Direction,
    ) {
        let attainment = actual.and_then(|value| goal_attainment(value, target));
        let attainment_ratio =
            actual.and_then(|value| goal_attainment_ratio(value, target, direction));
        let relative_change = actual.and_then(|value| improvement(value, target, direction));
        for (key, figure) in [
            (keys.attainment, attainment),
            (keys.attainment_ratio, attainment_ratio),
            (keys.improvement, relative_change),
        ] {
            if let Err(reason) = figure {
                self.nulls.insert(key, reason);
            }
        }
        self.targets.insert(
            name,
            TargetFigures {
                baseline: target.baseline,
                target: target.target,
                attainment: attainment.ok(),
                attainment_ratio: attainment_ratio.ok(),
                improvement: relative_change.ok(),
            },
        );
    }

    /// The value of one KPI, `None` when undefined or unknown.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied().flatten()
    }

    /// The null reason of one KPI or goal figure key, if it is null.
    pub fn null_reason(&self, key: &str) -> Option<&'static str> {
        self.nulls.get(key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINUTE: i64 = 60_000;

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

    #[test]
    fn given_design_worked_example_when_computed_then_oee_factors_match() {
        // Given planned 480 min, run 420 min, ideal cycle 1 min, 400 produced, 380 good.
        let window = sums(400, 20, 420 * MINUTE, 60 * MINUTE);

        // When
        let kpis = compute(
            &window,
            Some(MINUTE),
            &Targets::default(),
            UnknownTime::Loss,
        );

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
        assert!(kpis.nulls.is_empty());
        assert!(kpis.flags.is_empty());
        assert_eq!(kpis.basis.planned_ms, 480 * MINUTE);
        assert_eq!(kpis.basis.good, 380);
        assert_eq!(kpis.values.len(), KPI_NAMES.len());
    }

    #[test]
    fn given_defect_rate_baseline_5_target_0_actual_2_percent_when_computed_then_attainment_is_0_6()
    {
        // Given 1000 produced, 20 defective (2 %), baseline 5 %, target 0 %.
        let targets = Targets {
            productivity: None,
            defect_rate: Some(Target {
                baseline: 0.05,
                target: 0.0,
            }),
        };

        // When
        let kpis = compute(
            &sums(1000, 20, 10 * MINUTE, 0),
            None,
            &targets,
            UnknownTime::Loss,
        );

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
        let targets = Targets {
            productivity: Some(Target {
                baseline: 40.0,
                target: 50.0,
            }),
            defect_rate: None,
        };

        // When
        let kpis = compute(
            &sums(60, 0, 60 * MINUTE, 0),
            None,
            &targets,
            UnknownTime::Loss,
        );

        // Then
        let figures = kpis.targets["productivity"];
        assert!(close(figures.attainment, 2.0));
        assert!(close(figures.attainment_ratio, 1.2));
        assert!(close(figures.improvement, 0.5));
    }

    #[test]
    fn given_no_observed_time_when_computed_then_time_based_kpis_are_null_no_planned_time() {
        let kpis = compute(
            &WindowSums::default(),
            Some(MINUTE),
            &Targets::default(),
            UnknownTime::Loss,
        );

        assert_eq!(kpis.null_reason("availability"), Some(NO_PLANNED_TIME));
        assert_eq!(kpis.null_reason("oee"), Some(NO_PLANNED_TIME));
        assert_eq!(kpis.null_reason("productivity"), Some(NO_PLANNED_TIME));
        assert_eq!(kpis.null_reason("performance"), Some(NO_RUN_TIME));
        assert_eq!(
            kpis.null_reason("productivity_per_run_hour"),
            Some(NO_RUN_TIME)
        );
        assert_eq!(kpis.null_reason("quality"), Some(NO_PRODUCTION));
        assert_eq!(kpis.null_reason("defect_rate"), Some(NO_PRODUCTION));
        assert_eq!(kpis.null_reason("defect_ppm"), Some(NO_PRODUCTION));
        assert!(kpis.values.values().all(Option::is_none));
        assert_eq!(kpis.nulls.len(), KPI_NAMES.len());
    }

    #[test]
    fn given_planned_time_but_nothing_ran_when_computed_then_oee_is_zero_not_null() {
        // Given a whole window in an unplanned stop.
        let kpis = compute(
            &sums(0, 0, 0, 15 * MINUTE),
            Some(MINUTE),
            &Targets::default(),
            UnknownTime::Loss,
        );

        // Then
        assert_eq!(kpis.value("oee"), Some(0.0));
        assert_eq!(kpis.value("availability"), Some(0.0));
        assert_eq!(kpis.value("productivity"), Some(0.0));
        assert_eq!(kpis.null_reason("performance"), Some(NO_RUN_TIME));
        assert_eq!(kpis.null_reason("quality"), Some(NO_PRODUCTION));
        assert_eq!(kpis.null_reason("oee"), None);
    }

    #[test]
    fn given_no_ideal_cycle_time_when_computed_then_performance_and_oee_null_with_reason() {
        for ideal in [None, Some(0), Some(-5)] {
            let kpis = compute(
                &sums(10, 1, MINUTE, 0),
                ideal,
                &Targets::default(),
                UnknownTime::Loss,
            );

            assert_eq!(kpis.null_reason("performance"), Some(NO_IDEAL_CYCLE_TIME));
            assert_eq!(kpis.null_reason("oee"), Some(NO_IDEAL_CYCLE_TIME));
            assert_eq!(kpis.value("performance"), None);
            assert!(close(kpis.value("availability"), 1.0));
            assert!(close(kpis.value("quality"), 0.9));
        }
    }

    #[test]
    fn given_performance_above_one_when_computed_then_value_is_kept_and_flagged() {
        // Given 2 units in one running minute with an ideal cycle of 1 minute.
        let kpis = compute(
            &sums(2, 0, MINUTE, 0),
            Some(MINUTE),
            &Targets::default(),
            UnknownTime::Loss,
        );

        assert!(close(kpis.value("performance"), 2.0));
        assert_eq!(kpis.flags, vec![FLAG_PERFORMANCE_ABOVE_1]);
    }

    #[test]
    fn given_more_defective_than_produced_when_computed_then_good_clamps_and_is_flagged() {
        let kpis = compute(
            &sums(5, 8, MINUTE, 0),
            None,
            &Targets::default(),
            UnknownTime::Loss,
        );

        assert_eq!(kpis.basis.good, 0);
        assert!(close(kpis.value("quality"), 0.0));
        assert!(close(kpis.value("defect_rate"), 1.0));
        assert_eq!(kpis.flags, vec![FLAG_DEFECTIVE_ABOVE_PRODUCED]);
    }

    #[test]
    fn given_target_equal_to_baseline_when_computed_then_attainment_null_with_reason() {
        let targets = Targets {
            productivity: Some(Target {
                baseline: 50.0,
                target: 50.0,
            }),
            defect_rate: None,
        };

        let kpis = compute(
            &sums(60, 0, 60 * MINUTE, 0),
            None,
            &targets,
            UnknownTime::Loss,
        );

        assert_eq!(kpis.targets["productivity"].attainment, None);
        assert_eq!(
            kpis.null_reason("productivity.attainment"),
            Some(TARGET_EQUALS_BASELINE)
        );
        assert!(close(kpis.targets["productivity"].attainment_ratio, 1.2));
    }

    #[test]
    fn given_zero_defects_against_lower_better_target_when_computed_then_ratio_null_zero_actual() {
        let targets = Targets {
            productivity: None,
            defect_rate: Some(Target {
                baseline: 0.05,
                target: 0.01,
            }),
        };

        let kpis = compute(&sums(100, 0, MINUTE, 0), None, &targets, UnknownTime::Loss);

        let figures = kpis.targets["defect_rate"];
        assert_eq!(figures.attainment_ratio, None);
        assert_eq!(
            kpis.null_reason("defect_rate.attainment_ratio"),
            Some(ZERO_ACTUAL)
        );
        assert!(close(figures.attainment, 1.25));
        assert!(close(figures.improvement, 1.0));
    }

    #[test]
    fn given_zero_baseline_and_zero_target_when_computed_then_improvement_and_ratio_null() {
        let targets = Targets {
            productivity: Some(Target {
                baseline: 0.0,
                target: 0.0,
            }),
            defect_rate: None,
        };

        let kpis = compute(
            &sums(60, 0, 60 * MINUTE, 0),
            None,
            &targets,
            UnknownTime::Loss,
        );

        assert_eq!(
            kpis.null_reason("productivity.improvement"),
            Some(ZERO_BASELINE)
        );
        assert_eq!(
            kpis.null_reason("productivity.attainment_ratio"),
            Some(ZERO_TARGET)
        );
        assert_eq!(
            kpis.null_reason("productivity.attainment"),
            Some(TARGET_EQUALS_BASELINE)
        );
    }

    #[test]
    fn given_null_actual_when_targets_configured_then_goal_figures_carry_the_actual_reason() {
        let targets = Targets {
            productivity: Some(Target {
                baseline: 40.0,
                target: 50.0,
            }),
            defect_rate: Some(Target {
                baseline: 0.05,
                target: 0.0,
            }),
        };

        let kpis = compute(&WindowSums::default(), None, &targets, UnknownTime::Loss);

        for key in [
            "productivity.attainment",
            "productivity.attainment_ratio",
            "productivity.improvement",
        ] {
            assert_eq!(kpis.null_reason(key), Some(NO_PLANNED_TIME), "{key}");
        }
        for key in [
            "defect_rate.attainment",
            "defect_rate.attainment_ratio",
            "defect_rate.improvement",
        ] {
            assert_eq!(kpis.null_reason(key), Some(NO_PRODUCTION), "{key}");
        }
        assert_eq!(kpis.targets["defect_rate"].attainment, None);
        assert_eq!(kpis.targets["defect_rate"].baseline, 0.05);
    }

    #[test]
    fn given_non_finite_target_when_computed_then_figure_is_null_not_finite() {
        let targets = Targets {
            productivity: Some(Target {
                baseline: f64::INFINITY,
                target: 50.0,
            }),
            defect_rate: None,
        };

        let kpis = compute(
            &sums(60, 0, 60 * MINUTE, 0),
            None,
            &targets,
            UnknownTime::Loss,
        );

        assert_eq!(
            kpis.null_reason("productivity.improvement"),
            Some(NOT_FINITE)
        );
    }

    #[test]
    fn given_two_unequal_windows_when_merged_then_kpi_is_ratio_of_sums_not_mean_of_ratios() {
        // Given a short perfect window and a long poor one.
        let short = sums(10, 0, MINUTE, 0);
        let long = sums(10, 5, MINUTE, 9 * MINUTE);

        // When
        let merged = compute(
            &merge(&short, &long),
            Some(6_000),
            &Targets::default(),
            UnknownTime::Loss,
        );

        // Then availability is 2/11, not (1 + 0.1) / 2; quality is 15/20, not (1 + 0.5) / 2.
        assert!(close(merged.value("availability"), 2.0 / 11.0));
        assert!(close(merged.value("quality"), 0.75));
        assert!(!close(merged.value("availability"), 0.55));
    }

    fn arb_sums() -> impl Strategy<Value = WindowSums> {
        (
            0u64..100_000,
            0u64..100_000,
            0i64..10_000_000,
            0i64..10_000_000,
            0i64..10_000_000,
            0i64..10_000_000,
        )
            .prop_map(
                |(produced, defective_raw, running, planned_stop, unplanned_stop, unknown)| {
                    WindowSums {
                        produced,
                        defective: defective_raw.min(produced),
                        running_ms: running,
                        planned_stop_ms: planned_stop,
                        unplanned_stop_ms: unplanned_stop,
                        unknown_ms: unknown,
                        ..WindowSums::default()
                    }
                },
            )
    }

    fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
        (denominator > 0.0).then(|| numerator / denominator)
    }

    proptest! {
        #[test]
        fn given_any_two_windows_when_merged_then_each_kpi_is_the_ratio_of_summed_parts(
            a in arb_sums(),
            b in arb_sums(),
            ideal in 1i64..120_000,
        ) {
            let merged = compute(&merge(&a, &b), Some(ideal), &Targets::default(), UnknownTime::Loss);

            // PBT leaves planned stops out (planned downtime).
            let planned = |s: &WindowSums| {
                (s.running_ms + s.unplanned_stop_ms + s.unknown_ms) as f64
            };
            let pbt = planned(&a) + planned(&b);
            let apt = (a.running_ms + b.running_ms) as f64;
            let pq = (a.produced + b.produced) as f64;
            let gq = ((a.produced - a.defective) + (b.produced - b.defective)) as f64;
            let ideal = ideal as f64;
            let expected = [
                ("availability", ratio(apt, pbt)),
                ("performance", ratio(ideal * pq, apt)),
                ("quality", ratio(gq, pq)),
                ("oee", ratio(ideal * gq, pbt)),
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
    }
}
