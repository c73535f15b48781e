//! When a disabled tag is probed again, pure: a capped, doubling backoff with jitter below the cap
//! (`disabled_retry` doubling up to `disabled_retry_max`), as a function of the cycle's time. No I/O,
//! no clock, no randomness of its own: the caller draws the jitter and passes it in.

use std::time::Duration;

use crate::config::PlcConfig;
use crate::logic::Millis;

/// Largest share of a delay that jitter takes off (the delay lies in `(1 − JITTER) · base ..= base`).
pub const JITTER: f64 = 0.2;

/// The retry schedule of one PLC's disabled tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Delay before the first probe after a tag was disabled.
    pub first: Duration,
    /// Cap of the doubling delay.
    pub max: Duration,
}

impl RetrySchedule {
    /// The schedule configured for one PLC.
    pub fn of(plc: &PlcConfig) -> Self {
        Self {
            first: plc.disabled_retry,
            max: plc.disabled_retry_max.max(plc.disabled_retry),
        }
    }

    /// Base delay after `failed_probes` probes that were refused again: `first · 2^n`, capped at `max`.
    pub fn base(&self, failed_probes: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed_probes.min(31));
        self.first.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next probe; `jitter` in `[0, 1)` takes up to [`JITTER`] of the base off, so the
    /// delay never exceeds the cap and tags disabled together do not probe together.
    pub fn delay(&self, failed_probes: u32, jitter: f64) -> Duration {
        let base = self.base(failed_probes);
        base.mul_f64(1.0 - JITTER * jitter.clamp(0.0, 1.0))
    }

    /// The instant of the next probe, `delay(failed_probes, jitter)` after `from`.
    pub fn next_at(&self, from: Millis, failed_probes: u32, jitter: f64) -> Millis {
        let delay =
            i64::try_from(self.delay(failed_probes, jitter).as_millis()).unwrap_or(i64::MAX);
        from.saturating_add(delay)
    }

    /// Whether a probe scheduled for `next_at` is due at `now`. A probe further away than the cap can only
    /// come from a wall clock that stepped back; it is due at once rather than after the step.
    pub fn is_due(&self, now: Millis, next_at: Millis) -> bool {
        let cap = i64::try_from(self.max.as_millis()).unwrap_or(i64::MAX);
        now >= next_at || next_at.saturating_sub(now) > cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn schedule() -> RetrySchedule {
        RetrySchedule {
            first: MINUTE,
            max: 15 * MINUTE,
        }
    }

    #[test]
    fn given_refused_probes_when_scheduling_then_the_delay_doubles_from_one_minute_up_to_fifteen() {
        let bases: Vec<u64> = (0..7).map(|n| schedule().base(n).as_secs() / 60).collect();
        assert_eq!(bases, vec![1, 2, 4, 8, 15, 15, 15]);
        assert_eq!(schedule().base(u32::MAX), 15 * MINUTE, "no overflow");
    }

    #[test]
    fn given_jitter_when_scheduling_then_the_delay_stays_within_a_fifth_below_the_base_and_never_above_the_cap(
    ) {
        let s = schedule();
        assert_eq!(s.delay(0, 0.0), MINUTE);
        assert_eq!(s.delay(0, 0.5), Duration::from_secs(54));
        assert_eq!(s.delay(10, 0.999_999).as_secs(), 720);
        for n in 0..10 {
            for jitter in [0.0, 0.25, 0.5, 0.75, 0.999, 7.0, -3.0] {
                let delay = s.delay(n, jitter);
                assert!(delay <= s.base(n) && delay <= s.max, "{n} {jitter}");
                assert!(delay >= s.base(n).mul_f64(1.0 - JITTER), "{n} {jitter}");
            }
        }
    }

    #[test]
    fn given_a_scheduled_probe_when_time_passes_then_it_is_due_at_its_instant_and_not_before() {
        let s = schedule();
        let disabled_at: Millis = 1_000_000;
        let next = s.next_at(disabled_at, 0, 0.0);
        assert_eq!(next, disabled_at + 60_000);
        assert!(!s.is_due(disabled_at, next));
        assert!(!s.is_due(next - 1, next));
        assert!(s.is_due(next, next));
        assert!(s.is_due(next + 5, next));
    }

    #[test]
    fn given_a_wall_clock_stepped_back_when_checking_then_the_probe_is_due_instead_of_waiting_out_the_step(
    ) {
        let s = schedule();
        let next = s.next_at(10_000_000, 4, 0.0);
        let an_hour_earlier = 10_000_000 - 3_600_000;
        assert!(s.is_due(an_hour_earlier, next));
    }
}
