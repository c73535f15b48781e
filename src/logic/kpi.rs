//! Window sums → KPIs (ISO 22400-2 names, PQCD practice), with nulls that carry reasons; docs/kpi.md is
//! the reference for every formula, null reason and flag. Every KPI is a ratio of additive sums, so a longer
//! period is computed from merged sums, never from a mean of ratios. Undefined figures are `None` plus a
//! reason, never 0. Pure: no I/O, no clock; the window start that picks its targets is an argument.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::calendar::UnknownTime;
use super::rollup::{WindowRecord, WindowSums};
use super::targets::{self, finite, Direction, Target, Targets};
use super::Millis;

/// Why a KPI or goal figure is undefined (`nulls` in payloads; docs/kpi.md#null-reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NullReason {
    /// The window holds no planned busy time (PBT = 0).
    NoPlannedTime,
    /// The machine never ran inside planned time (APT = 0).
    NoRunTime,
    /// The machine has no (positive) ideal cycle time configured.
    NoIdealCycleTime,
    /// Nothing was produced (PQ = 0).
    NoProduction,
    /// More defective than produced units were counted in plan, so good units are unknown.
    InconsistentCounts,
    /// The KPI has no target configured (or none valid on the window's date).
    NoTarget,
    /// The window holds fewer units produced in plan than `targets.min_units`.
    TooFewUnits,
    /// Goal attainment is undefined because target and baseline are equal.
    TargetEqualsBaseline,
    /// A lower-is-better attainment ratio is undefined because the actual value is 0.
    ZeroActual,
    /// A higher-is-better attainment ratio is undefined because the target is 0.
    ZeroTarget,
    /// Improvement is undefined because the baseline is 0.
    ZeroBaseline,
    /// The arithmetic produced NaN or infinity (only possible with non-finite inputs).
    NotFinite,
}

impl NullReason {
    /// Every null reason, in declaration order.
    pub const ALL: [NullReason; 12] = [
        NullReason::NoPlannedTime,
        NullReason::NoRunTime,
        NullReason::NoIdealCycleTime,
        NullReason::NoProduction,
        NullReason::InconsistentCounts,
        NullReason::NoTarget,
        NullReason::TooFewUnits,
        NullReason::TargetEqualsBaseline,
        NullReason::ZeroActual,
        NullReason::ZeroTarget,
        NullReason::ZeroBaseline,
        NullReason::NotFinite,
    ];

    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            NullReason::NoPlannedTime => "no_planned_time",
            NullReason::NoRunTime => "no_run_time",
            NullReason::NoIdealCycleTime => "no_ideal_cycle_time",
            NullReason::NoProduction => "no_production",
            NullReason::InconsistentCounts => "inconsistent_counts",
            NullReason::NoTarget => "no_target",
            NullReason::TooFewUnits => "too_few_units",
            NullReason::TargetEqualsBaseline => "target_equals_baseline",
            NullReason::ZeroActual => "zero_actual",
            NullReason::ZeroTarget => "zero_target",
            NullReason::ZeroBaseline => "zero_baseline",
            NullReason::NotFinite => "not_finite",
        }
    }
}

/// A flag derived from a window's KPIs; payloads merge these with the window flags, sorted by name
/// (docs/kpi.md#flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KpiFlag {
    /// Performance exceeded 1, or units were counted with no running time (ideal cycle time set too slow,
    /// or a counting or state problem); the value is kept.
    #[serde(rename = "performance_above_1")]
    PerformanceAbove1,
    /// More defective than produced units were counted in plan; quality, OEE and defect rate are null.
    InconsistentCounts,
}

impl KpiFlag {
    /// Every KPI flag, in declaration order.
    pub const ALL: [KpiFlag; 2] = [KpiFlag::PerformanceAbove1, KpiFlag::InconsistentCounts];

    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            KpiFlag::PerformanceAbove1 => "performance_above_1",
            KpiFlag::InconsistentCounts => "inconsistent_counts",
        }
    }
}

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
const NANOS_PER_MS: f64 = 1_000_000.0;

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
    /// The pre-programme value valid on the window's date.
    pub baseline: f64,
    /// The goal valid on the window's date.
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
    pub nulls: BTreeMap<&'static str, NullReason>,
    /// Goal figures of the KPIs that have a target valid at the window's start.
    pub targets: BTreeMap<&'static str, TargetFigures>,
    /// KPI-derived flags, sorted and unique.
    pub flags: Vec<KpiFlag>,
    /// The quantities the values were computed from (payloads publish them).
    pub basis: KpiBasis,
}

/// A figure or the reason it is undefined.
type Figure = Result<f64, NullReason>;

/// A KPI that can carry a programme target.
#[derive(Debug, Clone, Copy)]
enum Goal {
    Productivity,
    DefectRate,
}

impl Goal {
    fn name(self) -> &'static str {
        match self {
            Goal::Productivity => "productivity",
            Goal::DefectRate => "defect_rate",
        }
    }

    fn direction(self) -> Direction {
        match self {
            Goal::Productivity => Direction::HigherIsBetter,
            Goal::DefectRate => Direction::LowerIsBetter,
        }
    }

    /// Null keys of the goal figures: attainment, attainment ratio, improvement.
    fn keys(self) -> [&'static str; 3] {
        match self {
            Goal::Productivity => [
                "productivity.attainment",
                "productivity.attainment_ratio",
                "productivity.improvement",
            ],
            Goal::DefectRate => [
                "defect_rate.attainment",
                "defect_rate.attainment_ratio",
                "defect_rate.improvement",
            ],
        }
    }

    fn schedule(self, targets: &Targets) -> Option<&targets::TargetSchedule> {
        match self {
            Goal::Productivity => targets.productivity.as_ref(),
            Goal::DefectRate => targets.defect_rate.as_ref(),
        }
    }
}

/// Computes a window's KPIs (docs/kpi.md): availability = APT/PBT, performance = PRU·PQ/APT, quality =
/// GQ/PQ, oee = PRU·GQ/PBT, defect_rate = (PQ−GQ)/PQ over all counts, productivity = GQ per planned hour;
/// goal figures against the targets valid at `window_start`; `unknown_time` says whether unknown time
/// is in PBT.
pub fn compute(
    sums: &WindowSums,
    ideal_cycle_time: Option<Duration>,
    targets: &Targets,
    window_start: Millis,
    unknown_time: UnknownTime,
) -> Kpis {
    let basis = KpiBasis::from_sums(sums, unknown_time);
    let consistent = sums.defective <= sums.produced;
    let figures = figures(&basis, ideal_cycle_time, consistent);
    let mut kpis = Kpis {
        values: BTreeMap::new(),
        nulls: BTreeMap::new(),
        targets: BTreeMap::new(),
        flags: Vec::new(),
        basis,
    };
    for (name, figure) in KPI_NAMES.into_iter().zip(figures) {
        kpis.record(name, figure);
    }
    let [_, performance, _, _, defect_rate, _, productivity, _] = figures;
    // Units counted with no running time at all are more than the run time allows, as is performance > 1.
    let units_without_run = ideal_cycle_time.is_some_and(|cycle| !cycle.is_zero())
        && basis.running_ms <= 0
        && basis.produced > 0;
    if matches!(performance, Ok(value) if value > 1.0) || units_without_run {
        kpis.flags.push(KpiFlag::PerformanceAbove1);
    }
    if !consistent {
        kpis.flags.push(KpiFlag::InconsistentCounts);
    }
    kpis.flags.sort_unstable_by_key(|flag| flag.as_str());
    kpis.flags.dedup();

    let enough_units = basis.produced >= targets.min_units;
    for (goal, actual) in [
        (Goal::Productivity, productivity),
        (Goal::DefectRate, defect_rate),
    ] {
        // The actual's own reason comes first: a window with nothing produced says so.
        let actual = actual.and_then(|value| {
            if enough_units {
                Ok(value)
            } else {
                Err(NullReason::TooFewUnits)
            }
        });
        match goal
            .schedule(targets)
            .and_then(|schedule| schedule.at(window_start))
        {
            Some(target) => kpis.record_goal(goal, actual, &target),
            None => {
                for key in goal.keys() {
                    kpis.nulls.insert(key, NullReason::NoTarget);
                }
            }
        }
    }
    kpis
}

/// KPIs of one window record: [`compute`] with the targets valid at its start; `unknown_time` says
/// whether unknown time is in PBT.
pub fn of_window(
    record: &WindowRecord,
    ideal_cycle_time: Option<Duration>,
    targets: &Targets,
    unknown_time: UnknownTime,
) -> Kpis {
    compute(
        &record.sums,
        ideal_cycle_time,
        targets,
        record.start,
        unknown_time,
    )
}

/// The eight KPI figures in [`KPI_NAMES`] order. `consistent` is false when more defective than produced
/// units were counted in plan: good units are then unknown, so every figure built on them is null.
fn figures(basis: &KpiBasis, ideal_cycle_time: Option<Duration>, consistent: bool) -> [Figure; 8] {
    let planned = basis.planned_ms as f64;
    let running = basis.running_ms as f64;
    let produced = basis.produced as f64;
    let good = basis.good as f64;
    // Nanoseconds keep a sub-millisecond ideal cycle time exact; zero is as good as none (every figure 0).
    let ideal_ns = ideal_cycle_time
        .filter(|cycle| !cycle.is_zero())
        .map(|cycle| cycle.as_nanos() as f64);
    let per_planned = |value: f64| {
        if basis.planned_ms > 0 {
            Ok(value / planned)
        } else {
            Err(NullReason::NoPlannedTime)
        }
    };

    let availability = per_planned(running);
    let performance = match ideal_ns {
        None => Err(NullReason::NoIdealCycleTime),
        Some(_) if basis.running_ms <= 0 => Err(NullReason::NoRunTime),
        Some(ideal_ns) => Ok(ideal_ns * produced / (running * NANOS_PER_MS)),
    };
    let quality = match basis.produced {
        0 => Err(NullReason::NoProduction),
        _ if !consistent => Err(NullReason::InconsistentCounts),
        _ => Ok(good / produced),
    };
    // OEE = PRU × GQ / PBT: 0 (not null) when planned time passed and nothing ran.
    let oee = match ideal_ns {
        _ if basis.planned_ms <= 0 => Err(NullReason::NoPlannedTime),
        None => Err(NullReason::NoIdealCycleTime),
        _ if !consistent => Err(NullReason::InconsistentCounts),
        Some(ideal_ns) => Ok(ideal_ns * good / (planned * NANOS_PER_MS)),
    };
    let defect_rate = defect_rate(basis, consistent);
    let defect_ppm = defect_rate.map(|rate| rate * 1_000_000.0);
    let productivity = per_planned(good * MS_PER_HOUR);
    let productivity_per_run_hour = if basis.running_ms > 0 {
        Ok(good * MS_PER_HOUR / running)
    } else {
        Err(NullReason::NoRunTime)
    };
    [
        availability,
        performance,
        quality,
        oee,
        defect_rate,
        defect_ppm,
        productivity,
        productivity_per_run_hour,
    ]
}

/// (PQ_all − GQ_all) / PQ_all over in-plan and out-of-plan counts.
fn defect_rate(basis: &KpiBasis, consistent: bool) -> Figure {
    let produced_all = basis.produced_all();
    if produced_all == 0 {
        return Err(NullReason::NoProduction);
    }
    if !consistent {
        return Err(NullReason::InconsistentCounts);
    }
    let defective_all = produced_all - basis.good_all().min(produced_all);
    Ok(defective_all as f64 / produced_all as f64)
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
    fn record_goal(&mut self, goal: Goal, actual: Figure, target: &Target) {
        let direction = goal.direction();
        let attainment = actual.and_then(|value| targets::goal_attainment(value, target));
        let attainment_ratio =
            actual.and_then(|value| targets::goal_attainment_ratio(value, target, direction));
        let relative_change =
            actual.and_then(|value| targets::improvement(value, target, direction));
        for (key, figure) in
            goal.keys()
                .into_iter()
                .zip([attainment, attainment_ratio, relative_change])
        {
            if let Err(reason) = figure {
                self.nulls.insert(key, reason);
            }
        }
        self.targets.insert(
            goal.name(),
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
    pub fn null_reason(&self, key: &str) -> Option<NullReason> {
        self.nulls.get(key).copied()
    }
}

#[cfg(test)]
mod tests;
