//! `[machine] targets`: each KPI's target as one table or a list valid from local dates on, checked for
//! direction (productivity rises, defect rate falls) and date order; `min_units` inherits `agent.targets`.
//! The formulas the targets feed are in docs/kpi.md#goal-attainment.

use jiff::civil::Date;

use super::*;
use crate::logic::targets::{
    DatedTarget, Direction, ScheduleError, Target, TargetSchedule, Targets,
};

impl Validator<'_> {
    /// Typed targets of one machine; `default_min_units` is `agent.targets.min_units` (or its default).
    pub(super) fn targets(
        &mut self,
        path: &str,
        raw: &RawTargets,
        default_min_units: u64,
    ) -> Targets {
        let productivity = raw.productivity.as_ref().and_then(|spec| {
            let path = format!("{path}.productivity");
            self.schedule(&path, spec, Direction::HigherIsBetter)
        });
        let defect_rate = raw.defect_rate.as_ref().and_then(|spec| {
            let path = format!("{path}.defect_rate");
            self.schedule(&path, spec, Direction::LowerIsBetter)
        });
        Targets {
            productivity,
            defect_rate,
            min_units: raw.min_units.unwrap_or(default_min_units),
        }
    }

    fn schedule(
        &mut self,
        path: &str,
        spec: &RawTargetSpec,
        direction: Direction,
    ) -> Option<TargetSchedule> {
        let entries: Vec<(String, &RawTarget)> = match spec {
            RawTargetSpec::Single(single) => vec![(path.to_string(), single)],
            RawTargetSpec::Dated(list) => list
                .iter()
                .enumerate()
                .map(|(index, raw)| (format!("{path}[{index}]"), raw))
                .collect(),
        };
        let checked: Vec<Option<DatedTarget>> = entries
            .iter()
            .map(|(entry_path, raw)| self.dated_target(entry_path, raw, direction))
            .collect();
        // Every entry is checked (each problem reported) before one failure drops the schedule.
        let dated: Vec<DatedTarget> = checked.into_iter().collect::<Option<_>>()?;
        match TargetSchedule::new(dated) {
            Ok(schedule) => Some(schedule),
            Err(ScheduleError::Empty) => {
                self.problem(path, "needs at least one { baseline, target } entry");
                None
            }
            Err(ScheduleError::MissingValidFrom { index }) => {
                self.problem(
                    format!("{}.valid_from", entries[index].0),
                    "only the first entry may omit valid_from (\"YYYY-MM-DD\")",
                );
                None
            }
            Err(ScheduleError::NotAscending { index }) => {
                self.problem(
                    format!("{}.valid_from", entries[index].0),
                    "valid_from must be later than the previous entry's (sorted, each date once)",
                );
                None
            }
        }
    }

    fn dated_target(
        &mut self,
        path: &str,
        raw: &RawTarget,
        direction: Direction,
    ) -> Option<DatedTarget> {
        let valid_from = match raw.valid_from.as_deref().map(str::parse::<Date>) {
            None => None,
            Some(Ok(date)) => Some(date),
            Some(Err(_)) => {
                self.problem(
                    format!("{path}.valid_from"),
                    format!(
                        "{:?} is not a date like \"2026-03-01\"",
                        raw.valid_from.as_deref().unwrap_or_default()
                    ),
                );
                return None;
            }
        };
        let target = Target {
            baseline: raw.baseline,
            target: raw.target,
        };
        if !target.baseline.is_finite() || !target.target.is_finite() || target.baseline < 0.0 {
            self.problem(path, "baseline and target must be finite and not negative");
            return None;
        }
        let wrong_way = match direction {
            Direction::HigherIsBetter if target.target <= target.baseline => {
                Some("target must be above baseline (more good units per planned hour is better)")
            }
            Direction::LowerIsBetter if target.target >= target.baseline => {
                Some("target must be below baseline (a lower defect rate is better)")
            }
            _ => None,
        };
        if let Some(message) = wrong_way {
            self.problem(path, message);
            return None;
        }
        if direction == Direction::LowerIsBetter && target.baseline > 1.0 {
            self.problem(
                path,
                "a defect rate is a fraction between 0 and 1 (5 % is 0.05)",
            );
            return None;
        }
        Some(DatedTarget { valid_from, target })
    }
}
