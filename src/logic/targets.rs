//! Programme targets (baseline → target) of a machine, valid from a local date on, and the goal figures
//! computed against them: attainment, attainment ratio and improvement (docs/kpi.md#goal-attainment).
//! Pure: each entry's local date becomes the instant its day starts in the configured time zone once, at
//! construction, so a window picks its entry by comparing its start instant.

use jiff::civil::Date;
use jiff::tz::TimeZone;

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
    entries: Vec<ScheduledTarget>,
}

/// An entry with the instant its `valid_from` day starts (`Millis::MIN` for "since always").
#[derive(Debug, Clone, Copy, PartialEq)]
struct ScheduledTarget {
    entry: DatedTarget,
    from: Millis,
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
        let entry = DatedTarget {
            valid_from: None,
            target,
        };
        TargetSchedule {
            entries: vec![ScheduledTarget {
                entry,
                from: Millis::MIN,
            }],
        }
    }

    /// A schedule from entries in configuration order: non-empty, only the first may omit `valid_from`,
    /// and the dates strictly ascend. A date holds from the first instant of that day in `tz`.
    pub fn new(entries: Vec<DatedTarget>, tz: &TimeZone) -> Result<TargetSchedule, ScheduleError> {
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
        let entries = entries
            .into_iter()
            .map(|entry| ScheduledTarget {
                entry,
                from: entry
                    .valid_from
                    .map_or(Millis::MIN, |date| start_of_day(date, tz)),
            })
            .collect();
        Ok(TargetSchedule { entries })
    }

    /// The entries, ordered by `valid_from`.
    pub fn entries(&self) -> impl Iterator<Item = DatedTarget> + '_ {
        self.entries.iter().map(|scheduled| scheduled.entry)
    }

    /// The target valid at instant `at`: the last entry whose day began at or before it; `None` before the
    /// first entry's date.
    pub fn at(&self, at: Millis) -> Option<Target> {
        self.entries
            .iter()
            .rev()
            .find(|scheduled| scheduled.from <= at)
            .map(|scheduled| scheduled.entry.target)
    }
}

/// The first instant of local `date` in `tz` (midnight, or the end of a gap that swallows it); dates
/// past jiff's range saturate.
fn start_of_day(date: Date, tz: &TimeZone) -> Millis {
    date.to_zoned(tz.clone())
        .map_or(Millis::MAX, |zoned| zoned.timestamp().as_millisecond())
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

    fn seoul() -> TimeZone {
        TimeZone::get("Asia/Seoul").unwrap()
    }

    /// The instant of a local civil time in `tz`.
    fn local(tz: &TimeZone, y: i16, m: i8, d: i8, hour: i8, minute: i8) -> Millis {
        date(y, m, d)
            .at(hour, minute, 0, 0)
            .to_zoned(tz.clone())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    #[test]
    fn given_a_schedule_when_asked_for_an_instant_then_the_entry_valid_on_its_local_date_answers() {
        // Given an open first entry, then new targets from March and from July, in Seoul.
        let tz = seoul();
        let schedule = TargetSchedule::new(
            vec![
                dated(None, 100.0),
                dated(Some(date(2026, 3, 1)), 200.0),
                dated(Some(date(2026, 7, 1)), 300.0),
            ],
            &tz,
        )
        .unwrap();

        // Then each instant gets the last entry that started on or before its local date.
        let baseline_at = |at: Millis| schedule.at(at).map(|t| t.baseline);
        assert_eq!(baseline_at(local(&tz, 2025, 12, 31, 12, 0)), Some(100.0));
        assert_eq!(baseline_at(local(&tz, 2026, 2, 28, 23, 59)), Some(100.0));
        assert_eq!(baseline_at(local(&tz, 2026, 3, 1, 0, 0)), Some(200.0));
        assert_eq!(baseline_at(local(&tz, 2026, 6, 30, 23, 59)), Some(200.0));
        assert_eq!(baseline_at(local(&tz, 2026, 7, 1, 0, 0)), Some(300.0));
        assert_eq!(baseline_at(Millis::MAX), Some(300.0));
        assert_eq!(schedule.entries().count(), 3);
    }

    #[test]
    fn given_seoul_dates_when_asked_at_utc_instants_then_the_local_date_decides() {
        // 2026-02-28T15:30Z is 2026-03-01 00:30 in Seoul (UTC+9): already March there.
        let at = jiff::Timestamp::from_second(1_772_292_600)
            .unwrap()
            .as_millisecond();
        let entries = || vec![dated(None, 100.0), dated(Some(date(2026, 3, 1)), 200.0)];

        let in_seoul = TargetSchedule::new(entries(), &seoul()).unwrap();
        let in_utc = TargetSchedule::new(entries(), &TimeZone::UTC).unwrap();

        assert_eq!(in_seoul.at(at).map(|t| t.baseline), Some(200.0));
        assert_eq!(in_utc.at(at).map(|t| t.baseline), Some(100.0));
    }

    #[test]
    fn given_a_date_whose_midnight_falls_in_a_dst_gap_when_scheduled_then_it_holds_from_its_first_instant(
    ) {
        // Given Chile, where clocks jump from 00:00 to 01:00 on 2026-09-06 (04:00Z).
        let tz = TimeZone::get("America/Santiago").unwrap();
        let first_instant = jiff::Timestamp::from_second(1_788_667_200).unwrap();
        assert_eq!(first_instant.to_zoned(tz.clone()).hour(), 1);
        let schedule = TargetSchedule::new(
            vec![dated(None, 100.0), dated(Some(date(2026, 9, 6)), 200.0)],
            &tz,
        )
        .unwrap();

        // Then the day's target holds from 01:00, its first instant, and the day before keeps the old one.
        let at = first_instant.as_millisecond();
        assert_eq!(schedule.at(at).map(|t| t.baseline), Some(200.0));
        assert_eq!(schedule.at(at - 1).map(|t| t.baseline), Some(100.0));
    }

    #[test]
    fn given_a_schedule_starting_on_a_date_when_asked_before_it_then_there_is_no_target() {
        let schedule =
            TargetSchedule::new(vec![dated(Some(date(2026, 3, 1)), 200.0)], &TimeZone::UTC)
                .unwrap();

        let march_first = local(&TimeZone::UTC, 2026, 3, 1, 0, 0);
        assert_eq!(schedule.at(march_first - 1), None);
        assert_eq!(schedule.at(march_first).map(|t| t.baseline), Some(200.0));
    }

    #[test]
    fn given_bad_entry_lists_when_scheduled_then_the_offending_entry_is_named() {
        let tz = TimeZone::UTC;
        let march = Some(date(2026, 3, 1));
        let july = Some(date(2026, 7, 1));
        assert_eq!(TargetSchedule::new(vec![], &tz), Err(ScheduleError::Empty));
        assert_eq!(
            TargetSchedule::new(vec![dated(march, 1.0), dated(None, 2.0)], &tz),
            Err(ScheduleError::MissingValidFrom { index: 1 })
        );
        assert_eq!(
            TargetSchedule::new(vec![dated(july, 1.0), dated(march, 2.0)], &tz),
            Err(ScheduleError::NotAscending { index: 1 })
        );
        assert_eq!(
            TargetSchedule::new(
                vec![dated(None, 0.0), dated(march, 1.0), dated(march, 2.0)],
                &tz
            ),
            Err(ScheduleError::NotAscending { index: 2 })
        );
    }
}
