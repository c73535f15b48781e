//! `[machine] targets`: each KPI's target as one table or a list valid from local dates on, checked for
//! direction (productivity rises, defect rate falls) and date order; `min_units` inherits `agent.targets`.
//! The formulas the targets feed are in docs/kpi.md#goal-attainment.

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::*;
use crate::logic::targets::{
    DatedTarget, Direction, ScheduleError, Target, TargetSchedule, Targets,
};

/// What every machine's targets take from `[agent]`.
pub(super) struct TargetDefaults {
    /// `agent.targets.min_units`, or its default.
    pub(super) min_units: u64,
    /// `agent.timezone`: a `valid_from` date holds from the start of that day there.
    pub(super) timezone: TimeZone,
}

impl Validator<'_> {
    /// Typed targets of one machine.
    pub(super) fn targets(
        &mut self,
        path: &str,
        raw: &RawTargets,
        defaults: &TargetDefaults,
    ) -> Targets {
        let productivity = raw.productivity.as_ref().and_then(|spec| {
            let path = format!("{path}.productivity");
            self.schedule(&path, spec, Direction::HigherIsBetter, &defaults.timezone)
        });
        let defect_rate = raw.defect_rate.as_ref().and_then(|spec| {
            let path = format!("{path}.defect_rate");
            self.schedule(&path, spec, Direction::LowerIsBetter, &defaults.timezone)
        });
        Targets {
            productivity,
            defect_rate,
            min_units: raw.min_units.unwrap_or(defaults.min_units),
        }
    }

    fn schedule(
        &mut self,
        path: &str,
        spec: &RawTargetSpec,
        direction: Direction,
        timezone: &TimeZone,
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
        match TargetSchedule::new(dated, timezone) {
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

#[cfg(test)]
mod tests {
    use jiff::civil::date;
    use jiff::tz::TimeZone;

    use super::super::super::*;

    /// A valid file with `agent` lines in `[agent]` and `targets` lines in the machine.
    fn config_with(agent: &str, targets: &str) -> String {
        format!(
            r#"
[agent]
site = "acme"
gateway = "gw-01"
data_dir = "/tmp/x"
{agent}

[[plc]]
id = "plc-a"
address = "127.0.0.1:502"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
counters.produced = {{ address = 100, type = "u32" }}
{targets}
"#
        )
    }

    fn problems(text: &str) -> Vec<Problem> {
        match Config::from_toml(text, "test.toml", false) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(other) => panic!("expected validation problems, got {other}"),
            Ok(_) => panic!("expected validation problems, got a valid config:\n{text}"),
        }
    }

    fn has_problem(found: &[Problem], path: &str, needle: &str) -> bool {
        found
            .iter()
            .any(|p| p.path == path && p.message.contains(needle))
    }

    fn targets_of(text: &str) -> Targets {
        let config = Config::from_toml(text, "test.toml", false).expect("a valid config");
        config.machines[0].targets.clone()
    }

    #[test]
    fn given_targets_against_their_direction_when_validated_then_each_is_a_problem_with_its_path() {
        // Productivity must rise, the defect rate must fall, and equal is no goal at all.
        let cases = [
            (
                "targets.productivity = { baseline = 3000.0, target = 2400.0 }",
                "machine[0].targets.productivity",
                "above baseline",
            ),
            (
                "targets.productivity = { baseline = 3000.0, target = 3000.0 }",
                "machine[0].targets.productivity",
                "above baseline",
            ),
            (
                "targets.defect_rate = { baseline = 0.03, target = 0.05 }",
                "machine[0].targets.defect_rate",
                "below baseline",
            ),
            (
                "targets.defect_rate = { baseline = 0.05, target = 0.05 }",
                "machine[0].targets.defect_rate",
                "below baseline",
            ),
            (
                "targets.defect_rate = { baseline = 5.0, target = 3.0 }",
                "machine[0].targets.defect_rate",
                "fraction",
            ),
        ];
        for (line, path, needle) in cases {
            let found = problems(&config_with("", line));
            assert!(has_problem(&found, path, needle), "{line}: {found:?}");
        }
    }

    #[test]
    fn given_the_single_table_form_when_validated_then_the_target_always_holds() {
        let targets = targets_of(&config_with(
            "",
            "targets.productivity = { baseline = 2400.0, target = 3000.0 }",
        ));

        let schedule = targets.productivity.expect("a productivity target");
        assert_eq!(schedule.entries().count(), 1);
        let target = schedule.at(i64::MIN).expect("valid since always");
        assert_eq!((target.baseline, target.target), (2400.0, 3000.0));
        assert_eq!(targets.defect_rate, None);
    }

    #[test]
    fn given_dated_targets_when_validated_then_each_date_gets_its_entry() {
        // Given a plant in Seoul (UTC+9) whose defect-rate targets change on 1 March and 1 September.
        let targets = targets_of(&config_with(
            r#"timezone = "Asia/Seoul""#,
            r#"targets.defect_rate = [
  { baseline = 0.05, target = 0.03 },
  { baseline = 0.04, target = 0.02, valid_from = "2026-03-01" },
  { baseline = 0.03, target = 0.01, valid_from = "2026-09-01" },
]"#,
        ));

        // Then a window gets the entry of the Seoul date it starts on.
        let schedule = targets.defect_rate.expect("a defect-rate target");
        let seoul = TimeZone::get("Asia/Seoul").unwrap();
        let baseline_at = |day: jiff::civil::Date, hour: i8| {
            let at = day.at(hour, 0, 0, 0).to_zoned(seoul.clone()).unwrap();
            schedule
                .at(at.timestamp().as_millisecond())
                .map(|t| t.baseline)
        };
        assert_eq!(baseline_at(date(2026, 2, 28), 23), Some(0.05));
        assert_eq!(baseline_at(date(2026, 3, 1), 0), Some(0.04));
        assert_eq!(baseline_at(date(2026, 8, 31), 23), Some(0.04));
        assert_eq!(baseline_at(date(2026, 9, 1), 0), Some(0.03));
    }

    #[test]
    fn given_bad_dated_lists_when_validated_then_the_entry_path_is_named() {
        let cases = [
            (
                r#"targets.defect_rate = [
  { baseline = 0.05, target = 0.03, valid_from = "2026-09-01" },
  { baseline = 0.04, target = 0.02, valid_from = "2026-03-01" },
]"#,
                "machine[0].targets.defect_rate[1].valid_from",
                "later than the previous",
            ),
            (
                r#"targets.defect_rate = [
  { baseline = 0.05, target = 0.03, valid_from = "2026-03-01" },
  { baseline = 0.04, target = 0.02, valid_from = "2026-03-01" },
]"#,
                "machine[0].targets.defect_rate[1].valid_from",
                "later than the previous",
            ),
            (
                r#"targets.productivity = [
  { baseline = 10.0, target = 20.0 },
  { baseline = 20.0, target = 30.0 },
]"#,
                "machine[0].targets.productivity[1].valid_from",
                "only the first entry",
            ),
            (
                r#"targets.productivity = [
  { baseline = 10.0, target = 20.0, valid_from = "2026-02-30" },
]"#,
                "machine[0].targets.productivity[0].valid_from",
                "not a date",
            ),
            (
                r#"targets.productivity = [
  { baseline = 10.0, target = 20.0 },
  { baseline = 30.0, target = 20.0, valid_from = "2026-03-01" },
]"#,
                "machine[0].targets.productivity[1]",
                "above baseline",
            ),
            (
                "targets.productivity = []",
                "machine[0].targets.productivity",
                "at least one",
            ),
        ];
        for (lines, path, needle) in cases {
            let found = problems(&config_with("", lines));
            assert!(has_problem(&found, path, needle), "{lines}: {found:?}");
        }
    }

    #[test]
    fn given_a_typo_inside_a_target_table_when_loaded_then_the_unknown_field_is_named() {
        let found = problems(&config_with(
            "",
            r#"targets.defect_rate = { baseline = 0.05, target = 0.03, valdi_from = "2026-01-01" }"#,
        ));

        assert!(
            found
                .iter()
                .any(|p| p.path.starts_with("machine[0].targets.defect_rate")
                    && p.message.contains("unknown field `valdi_from`")),
            "{found:?}"
        );
    }

    #[test]
    fn given_min_units_when_validated_then_machine_overrides_agent_overrides_default() {
        let default = targets_of(&config_with("", ""));
        let from_agent = targets_of(&config_with("targets.min_units = 30", ""));
        let from_machine = targets_of(&config_with(
            "targets.min_units = 30",
            "targets.min_units = 500",
        ));

        assert_eq!(default.min_units, DEFAULT_MIN_UNITS);
        assert_eq!(from_agent.min_units, 30);
        assert_eq!(from_machine.min_units, 500);
    }
}
