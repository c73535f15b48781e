//! Timing policy of the publisher: reconnect backoff with jitter and the backlog drain-rate limit.
//!
//! Both are plain state machines with time passed in, so they are tested without a clock or a runtime.

use std::time::{Duration, Instant};

/// Capped exponential reconnect backoff: `initial`, doubling up to `max`, each delay jittered into
/// `[delay/2, delay]` so a fleet of gateways does not reconnect in lockstep after a broker restart.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and never exceeding `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt; `unit` in `[0, 1]` picks the jitter (pass a random number).
    pub(crate) fn next_delay(&mut self, unit: f64) -> Duration {
        let ceiling = self.next.min(self.max);
        self.next = ceiling.saturating_mul(2).min(self.max);
        let unit = unit.clamp(0.0, 1.0);
        ceiling.div_f64(2.0) + ceiling.div_f64(2.0).mul_f64(unit)
    }

    /// Starts over at `initial` (after a connection that lasted).
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// Token bucket limiting outbox rows per second. Capacity is one second's worth, so a burst after an
/// outage starts at once and then settles at the configured rate.
#[derive(Debug, Clone)]
pub(crate) struct DrainRate {
    per_second: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl DrainRate {
    /// A full bucket for `per_second` rows per second (at least 1).
    pub(crate) fn new(per_second: u32, now: Instant) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self {
            per_second,
            tokens: per_second,
            refilled_at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        self.refilled_at = now;
    }

    /// Takes one token if available.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be available (now, if one is).
    pub(crate) fn ready_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        let missing = (1.0 - self.tokens).max(0.0);
        now + Duration::from_secs_f64(missing / self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_repeated_failures_when_asking_for_delays_then_they_double_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        let upper: Vec<_> = (0..5).map(|_| backoff.next_delay(1.0)).collect();
        assert_eq!(
            upper,
            [200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0), Duration::from_millis(100));
    }

    #[test]
    fn given_any_jitter_when_asking_for_a_delay_then_it_lies_in_the_upper_half() {
        for unit in [0.0, 0.25, 0.5, 0.99, 1.0, -3.0, 7.0] {
            let mut backoff = Backoff::new(Duration::from_millis(800), Duration::from_secs(30));
            let delay = backoff.next_delay(unit);
            assert!(delay >= Duration::from_millis(400) && delay <= Duration::from_millis(800));
        }
    }

    #[test]
    fn given_an_empty_bucket_when_time_passes_then_tokens_return_at_the_rate() {
        let start = Instant::now();
        let mut rate = DrainRate::new(10, start);
        let burst = (0..20).filter(|_| rate.try_take(start)).count();
        assert_eq!(burst, 10);
        assert_eq!(rate.ready_at(start), start + Duration::from_millis(100));
        let later = start + Duration::from_millis(250);
        let refilled = (0..20).filter(|_| rate.try_take(later)).count();
        assert_eq!(refilled, 2);
    }
}
