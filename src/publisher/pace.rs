//! Pacing of the publisher's backlog: the drain-rate limit. (Its retry and reconnect delays are
//! `crate::backoff`.)
//!
//! A plain state machine with time passed in, so it is tested without a clock or a runtime.

use std::time::{Duration, Instant};

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
