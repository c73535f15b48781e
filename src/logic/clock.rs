//! Wall-clock steps, found by comparing the monotonic and the wall clock between two readings.
//! NTP slews the wall clock by at most 500 ppm; a reading whose wall clock moved more than
//! `max(1 s, 1 % of the monotonic time elapsed)` away from the monotonic clock since the previous
//! reading is a step. Pure: readings are arguments; what a step does to windows, counters and state
//! is the processor's (see ARCHITECTURE.md, "Time").

use serde::{Deserialize, Serialize};

use super::Millis;

/// Smallest disagreement between the two clocks that counts as a step.
pub const STEP_MIN_MS: i64 = 1_000;
/// Above `STEP_MIN_MS`, a step must exceed this fraction (1 / N) of the monotonic time elapsed:
/// 1 %, twenty times the fastest NTP slew.
pub const STEP_FRACTION_DIVISOR: i64 = 100;

/// One reading of both clocks: the monotonic clock in ms since any fixed origin, and UTC ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReading {
    /// Monotonic milliseconds; only differences mean anything.
    pub mono_ms: i64,
    /// Wall-clock UTC milliseconds.
    pub utc: Millis,
}

impl ClockReading {
    /// Wall clock minus monotonic clock; a step changes it, elapsing time does not.
    fn offset(self) -> i64 {
        self.utc.saturating_sub(self.mono_ms)
    }
}

/// Which way the wall clock jumped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepDirection {
    /// The wall clock jumped ahead.
    Forward,
    /// The wall clock jumped back.
    Back,
}

impl StepDirection {
    /// The name on the health topic.
    pub fn as_str(self) -> &'static str {
        match self {
            StepDirection::Forward => "forward",
            StepDirection::Back => "back",
        }
    }
}

/// A step of the wall clock between two readings (or between the stored state and the first reading
/// after a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStep {
    /// Wall-clock time of the first reading after the step (new time).
    pub at: Millis,
    /// Wall-clock time of the last reading before the step (old time).
    pub before: Millis,
    /// Time that really elapsed between the two readings (monotonic); 0 when unknown (a restart).
    pub elapsed_ms: i64,
    /// How far the wall clock jumped, beyond the elapsed time; always positive.
    pub size_ms: i64,
    /// Which way it jumped.
    pub direction: StepDirection,
}

impl ClockStep {
    /// Where, in the new time, the interval between the two readings lies: `[at - elapsed, at)`.
    /// Facts measured across the step are placed there instead of across the jump.
    pub fn rebased_from(&self) -> Millis {
        self.at.saturating_sub(self.elapsed_ms)
    }
}

/// The disagreement two readings `elapsed_ms` apart may show without being a step.
pub fn step_threshold_ms(elapsed_ms: i64) -> i64 {
    STEP_MIN_MS.max(elapsed_ms / STEP_FRACTION_DIVISOR)
}

/// Finds steps in one source's readings (one PLC's samples), each against the previous one.
#[derive(Debug, Clone, Default)]
pub struct StepDetector {
    last: Option<ClockReading>,
}

impl StepDetector {
    /// A detector that has seen no reading.
    pub fn new() -> Self {
        StepDetector::default()
    }

    /// Takes the next reading; returns the step since the previous one, if the clocks disagree by
    /// more than [`step_threshold_ms`]. A reading older (monotonic) than the previous is ignored.
    pub fn observe(&mut self, reading: ClockReading) -> Option<ClockStep> {
        let Some(last) = self.last else {
            self.last = Some(reading);
            return None;
        };
        if reading.mono_ms < last.mono_ms {
            return None;
        }
        self.last = Some(reading);
        let elapsed_ms = reading.mono_ms - last.mono_ms;
        let jump = reading.offset().saturating_sub(last.offset());
        if jump.abs() <= step_threshold_ms(elapsed_ms) {
            return None;
        }
        Some(ClockStep {
            at: reading.utc,
            before: last.utc,
            elapsed_ms,
            size_ms: jump.abs(),
            direction: if jump > 0 {
                StepDirection::Forward
            } else {
                StepDirection::Back
            },
        })
    }
}

/// The step found when the first reading after a restart lies more than [`STEP_MIN_MS`] before the
/// latest time in the stored state (`stored`): the stored state is in the future of the new clock.
pub fn stored_state_ahead(stored: Millis, at: Millis) -> Option<ClockStep> {
    let ahead = stored.saturating_sub(at);
    (ahead > STEP_MIN_MS).then_some(ClockStep {
        at,
        before: stored,
        elapsed_ms: 0,
        size_ms: ahead,
        direction: StepDirection::Back,
    })
}

/// Steps seen by several sources (every PLC sees the same step of the one clock), reported once.
#[derive(Debug, Clone, Default)]
pub struct StepLog {
    /// Clock offset (wall − monotonic) after the last step reported, or at the first reading.
    offset: Option<i64>,
    last: Option<ClockStep>,
}

impl StepLog {
    /// An empty log.
    pub fn new() -> Self {
        StepLog::default()
    }

    /// Records a source's `reading` and the step it showed, if any; returns true when the step is
    /// news (no other source reported it yet). A step found at a restart (`reading` `None`) is
    /// always news.
    pub fn record(&mut self, reading: Option<ClockReading>, step: Option<&ClockStep>) -> bool {
        let offset = reading.map(ClockReading::offset);
        let Some(step) = step else {
            if self.offset.is_none() {
                self.offset = offset;
            }
            return false;
        };
        let news = match (self.offset, offset) {
            (Some(known), Some(now)) => (now - known).abs() > step_threshold_ms(step.elapsed_ms),
            _ => true,
        };
        if offset.is_some() {
            self.offset = offset;
        }
        if news {
            self.last = Some(*step);
        }
        news
    }

    /// The last step reported.
    pub fn last(&self) -> Option<&ClockStep> {
        self.last.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    /// 2026-11-28T00:00:00Z.
    const T0: Millis = 1_795_824_000_000;

    fn reading(mono_ms: i64, utc: Millis) -> ClockReading {
        ClockReading { mono_ms, utc }
    }

    #[test]
    fn given_clocks_in_step_with_timer_lag_and_slew_when_observed_then_no_step() {
        let mut detector = StepDetector::new();
        assert_eq!(detector.observe(reading(0, T0)), None);
        // A poll stamped 50 ms off its monotonic instant, then a minute-long backoff slewed by 500 ppm.
        assert_eq!(detector.observe(reading(1_000, T0 + 1_050)), None);
        assert_eq!(detector.observe(reading(61_000, T0 + 61_080)), None);
        // A ten-minute gap with a 5 s disagreement is under 1 % of it.
        assert_eq!(detector.observe(reading(661_000, T0 + 666_080)), None);
    }

    #[test]
    fn given_wall_clock_jumping_an_hour_ahead_when_observed_then_a_forward_step_at_the_new_time() {
        let mut detector = StepDetector::new();
        detector.observe(reading(0, T0));
        let step = detector.observe(reading(1_000, T0 + HOUR + 1_000)).unwrap();
        assert_eq!(
            step,
            ClockStep {
                at: T0 + HOUR + 1_000,
                before: T0,
                elapsed_ms: 1_000,
                size_ms: HOUR,
                direction: StepDirection::Forward,
            }
        );
        assert_eq!(step.rebased_from(), T0 + HOUR);
        // The next reading is compared with the stepped one: no second step.
        assert_eq!(detector.observe(reading(2_000, T0 + HOUR + 2_000)), None);
    }

    #[test]
    fn given_wall_clock_jumping_back_when_observed_then_a_back_step_and_small_steps_count_too() {
        let mut detector = StepDetector::new();
        detector.observe(reading(0, T0));
        let back = detector.observe(reading(1_000, T0 - HOUR + 1_000)).unwrap();
        assert_eq!(
            (back.direction, back.size_ms, back.rebased_from()),
            (StepDirection::Back, HOUR, T0 - HOUR)
        );
        // 1.5 s off over a 1 s poll is a step; 1 s off is not.
        assert!(detector
            .observe(reading(2_000, T0 - HOUR + 3_500))
            .is_some());
        assert!(detector
            .observe(reading(3_000, T0 - HOUR + 5_500))
            .is_none());
        // A reading older than the previous one (monotonic) tells nothing.
        assert!(detector.observe(reading(2_500, T0)).is_none());
    }

    #[test]
    fn given_stored_state_ahead_of_the_first_reading_when_checked_then_a_back_step_of_that_size() {
        assert_eq!(stored_state_ahead(T0, T0 - 500), None);
        assert_eq!(stored_state_ahead(T0, T0 + 5_000), None);
        let step = stored_state_ahead(T0 + HOUR, T0).unwrap();
        assert_eq!(
            (step.direction, step.size_ms, step.rebased_from()),
            (StepDirection::Back, HOUR, T0)
        );
    }

    #[test]
    fn given_two_sources_seeing_one_step_when_logged_then_reported_once_and_a_later_step_again() {
        let mut log = StepLog::new();
        let (mut plc_a, mut plc_b) = (StepDetector::new(), StepDetector::new());
        for (a, b) in [(0, 100), (1_000, 1_100)] {
            let ra = reading(a, T0 + a);
            let rb = reading(b, T0 + b);
            assert!(!log.record(Some(ra), plc_a.observe(ra).as_ref()));
            assert!(!log.record(Some(rb), plc_b.observe(rb).as_ref()));
        }
        let ra = reading(2_000, T0 + HOUR + 2_000);
        let rb = reading(2_100, T0 + HOUR + 2_100);
        let step_a = plc_a.observe(ra);
        let step_b = plc_b.observe(rb);
        assert!(step_a.is_some() && step_b.is_some());
        assert!(log.record(Some(ra), step_a.as_ref()));
        assert!(!log.record(Some(rb), step_b.as_ref()));
        assert_eq!(log.last(), step_a.as_ref());
        let ra = reading(3_000, T0 + 3_000);
        let back = plc_a.observe(ra);
        assert!(log.record(Some(ra), back.as_ref()));
        assert_eq!(log.last().unwrap().direction, StepDirection::Back);
        let restart = stored_state_ahead(T0 + HOUR, T0).unwrap();
        assert!(log.record(None, Some(&restart)));
    }
}
