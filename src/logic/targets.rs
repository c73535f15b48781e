//! Programme targets (baseline → target) of a machine, valid from a local date on, and the goal figures
//! computed against them: attainment, attainment ratio and improvement (docs/kpi.md#goal-attainment).
//! Pure: a window picks its entry by the local date of its start, which the caller passes in.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::kpi::NullReason;
use super::Millis;

/// Default of `targets.min_units`: with at least 100 units in plan one unit more or less moves the defect
/// rate by at most one percentage point and productivity by at most 1 % (docs/kpi.md#too-few-units).
pub const DEFAULT_MIN_UNITS: u64 = 100;

/// Baseline and target of one KPI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// The pre-programme value.
    pub baseline: f64,
    /// The goal.
    pub target: f64,
}

/// One entry of a target schedule: a target that holds from `valid_from` (a local date) on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatedTarget {
    /// First local date the entry holds; `None` (only the first entry) means "since always".
    pub valid_from: Option<Date>,
    /// Baseline and target.
    pub target: Target,
}

/// The targets of one KPI over time, ordered by `valid_from`; each window uses the entry valid at its start.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSchedule {
    entries: Vec<DatedTarget>,
}

/// Why a list of dated targets is not a schedule; `index` is the offending entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleError {
    /// The list is empty.
    Empty,
    /// An entry other than the first has no `valid_from`.
    MissingValidFrom {
        /// Position in the list.
        index: usize,
    },
    /// `valid_from` is not after the previous entry's.
    NotAscending {
        /// Position in the list.
        index: usize,
    },
}

impl TargetSchedule {
    /// A schedule of one target that always holds (the single-table form of the configuration).
    pub fn single(target: Target) -> TargetSchedule {
        TargetSchedule {
            entries: vec![DatedTarget {
                valid_from: None,
                target,
            }],
        }
    }

    /// A schedule from entries in configuration order: non-empty, only the first may omit `valid_from`,
    /// and the dates strictly ascend.
    pub fn new(entries: Vec<DatedTarget>) -> Result<TargetSchedule, ScheduleError> {
        if entries.is_empty() {
            return Err(ScheduleError::Empty);
        }
        for (index, pair) in entries.windows(2).enumerate() {
            let index = index + 1;
            match (pair[0].valid_from, pair[1].valid_from) {
                (_, None) => return Err(ScheduleError::MissingValidFrom { index }),
                (Some(previous), Some(next)) if next <= previous => {
                    return Err(ScheduleError::NotAscending { index })
                }
                _ => {}
            }
        }
        Ok(TargetSchedule { entries })
    }

    /// The entries, ordered by `valid_from`.
    pub fn entries(&self) -> &[DatedTarget] {
        &self.entries
    }

    /// The target valid on `date`: the last entry whose `valid_from` is on or before it; `None` before the
    /// first entry's date.
    pub fn at(&self, date: Date) -> Option<Target> {
        self.entries
            .iter()
            .rev()
            .find(|entry| entry.valid_from.is_none_or(|from| from <= date))
            .map(|entry| entry.target)
    }
}

/// Configured targets of one machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// Good units per planned hour.
    pub productivity: Option<TargetSchedule>,
    /// Defective / produced.
    pub defect_rate: Option<TargetSchedule>,
    /// Goal figures are null (`too_few_units`) while a window holds fewer units produced in plan.
    pub min_units: u64,
}

impl Default for Targets {
    fn default() -> Targets {
        Targets {
            productivity: None,
            defect_rate: None,
            min_units: DEFAULT_MIN_UNITS,
        }
    }
}

/// Whether a larger value of a KPI is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Larger is better (productivity).
    HigherIsBetter,
    /// Smaller is better (defect rate).
    LowerIsBetter,
}

/// The local date of an instant in `tz`: the date a window starting then picks its targets by.
/// Instants outside jiff's range saturate at its limits.
pub fn local_date(at: Millis, tz: &TimeZone) -> Date {
    let timestamp = Timestamp::from_millisecond(at).unwrap_or(if at < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    timestamp.to_zoned(tz.clone()).date()
}

/// Goal attainment: (actual − baseline) / (target − baseline), the same formula for both directions.
pub fn goal_attainment(actual: f64, target: &Target) -> Result<f64, NullReason> {
    let span = target.target - target.baseline;
    if span == 0.0 {
        return Err(NullReason::TargetEqualsBaseline);
    }
    finite((actual - target.baseline) / span)
}

/// Labelled alternative attainment: actual / target (higher-better) or target / actual (lower-better).
pub fn goal_attainment_ratio(
    actual: f64,
    target: &Target,
    direction: Direction,
) -> Result<f64, NullReason> {
    match direction {
        Direction::HigherIsBetter if target.target == 0.0 => Err(NullReason::ZeroTarget),
        Direction::HigherIsBetter => finite(actual / target.target),
        Direction::LowerIsBetter if actual == 0.0 => Err(NullReason::ZeroActual),
        Direction::LowerIsBetter => finite(target.target / actual),
    }
}

/// Improvement against the baseline: (a − b) / b (higher-better) or (b − a) / b (lower-better).
pub fn improvement(actual: f64, target: &Target, direction: Direction) -> Result<f64, NullReason> {
    let baseline = target.baseline;
    if baseline == 0.0 {
        return Err(NullReason::ZeroBaseline);
    }
    match direction {
        Direction::HigherIsBetter => finite((actual - baseline) / baseline),
        Direction::LowerIsBetter => finite((baseline - actual) / baseline),
    }
}

/// A value, or `not_finite` when the arithmetic produced NaN or infinity.
pub(super) fn finite(value: f64) -> Result<f64, NullReason> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(NullReason::NotFinite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn target(baseline: f64, goal: f64) -> Target {
        Target {
            baseline,
            target: goal,
        }
    }

    fn dated(valid_from: Option<Date>, baseline: f64) -> DatedTarget {
        DatedTarget {
            valid_from,
            target: target(baseline, baseline + 10.0),
        }
    }

    #[test]
    fn given_a_schedule_when_asked_for_a_date_then_the_entry_valid_on_it_answers() {
        // Given an open first entry, then new targets from March and from July.
        let schedule = TargetSchedule::new(vec![
            dated(None, 100.0),
            dated(Some(date(2026, 3, 1)), 200.0),
            dated(Some(date(2026, 7, 1)), 300.0),
        ])
        .unwrap();

        // Then each date gets the last entry that started on or before it.
        let baseline_on = |d: Date| schedule.at(d).map(|t| t.baseline);
        assert_eq!(baseline_on(date(2025, 12, 31)), Some(100.0));
        assert_eq!(baseline_on(date(2026, 2, 28)), Some(100.0));
        assert_eq!(baseline_on(date(2026, 3, 1)), Some(200.0));
        assert_eq!(baseline_on(date(2026, 6, 30)), Some(200.0));
        assert_eq!(baseline_on(date(2026, 7, 1)), Some(300.0));
        assert_eq!(baseline_on(date(2030, 1, 1)), Some(300.0));
    }

    #[test]
    fn given_a_schedule_starting_on_a_date_when_asked_before_it_then_there_is_no_target() {
        let schedule = TargetSchedule::new(vec![dated(Some(date(2026, 3, 1)), 200.0)]).unwrap();

        assert_eq!(schedule.at(date(2026, 2, 28)), None);
        assert_eq!(
            schedule.at(date(2026, 3, 1)).map(|t| t.baseline),
            Some(200.0)
        );
    }

    #[test]
    fn given_bad_entry_lists_when_scheduled_then_the_offending_entry_is_named() {
        let march = Some(date(2026, 3, 1));
        let july = Some(date(2026, 7, 1));
        assert_eq!(TargetSchedule::new(vec![]), Err(ScheduleError::Empty));
        assert_eq!(
            TargetSchedule::new(vec![dated(march, 1.0), dated(None, 2.0)]),
            Err(ScheduleError::MissingValidFrom { index: 1 })
        );
        assert_eq!(
            TargetSchedule::new(vec![dated(july, 1.0), dated(march, 2.0)]),
            Err(ScheduleError::NotAscending { index: 1 })
        );
        assert_eq!(
            TargetSchedule::new(vec![dated(None, 0.0), dated(march, 1.0), dated(march, 2.0)]),
            Err(ScheduleError::NotAscending { index: 2 })
        );
    }

    #[test]
    fn given_an_instant_near_local_midnight_when_dated_then_the_zone_decides_the_date() {
        // 2026-02-28T15:30Z is 2026-03-01 00:30 in Seoul (UTC+9).
        let at = jiff::Timestamp::from_second(1_772_292_600)
            .unwrap()
            .as_millisecond();
        let seoul = TimeZone::get("Asia/Seoul").unwrap();

        assert_eq!(local_date(at, &seoul), date(2026, 3, 1));
        assert_eq!(local_date(at, &TimeZone::UTC), date(2026, 2, 28));
    }
}
