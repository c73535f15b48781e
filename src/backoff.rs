//! Capped, jittered retry backoff shared by every link that retries: the PLC connections (poller), the broker
//! connection, refused publishes and failing store calls (publisher). Pure: the caller passes the time and the
//! jitter unit, so every schedule is tested without a clock or a random source.
//!
//! Two ways for the ceiling of the next delay to grow ([`Growth`]): doubling per attempt, or with how long the
//! failing episode has lasted, so that after an outage of any length the next attempt comes within a known
//! fraction of it (the broker reconnect; README, "Reconnect").

use std::time::{Duration, Instant};

/// With [`Growth::WithOutage`] the ceiling of the next delay is the time the episode has lasted divided by
/// this: after a 60 s outage the next attempt comes within 1.5 s.
pub const OUTAGE_DIVISOR: u32 = 40;

/// How the ceiling of the next delay grows while a failing episode lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// The ceiling doubles with each attempt, from `initial` up to `max`.
    PerAttempt,
    /// The ceiling is the time since the episode's first delay divided by [`OUTAGE_DIVISOR`], between `initial`
    /// and `max`: it grows with the outage, not with the number of attempts.
    WithOutage,
}

/// A retry schedule: each delay is drawn from `[ceiling/2, ceiling]` by the jitter unit the caller passes, so a
/// fleet of gateways that lost a peer at the same instant does not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    growth: Growth,
    initial: Duration,
    max: Duration,
    /// The next ceiling of [`Growth::PerAttempt`].
    next: Duration,
    /// When the episode's first delay was asked for; `None` after a reset.
    since: Option<Instant>,
}

impl Backoff {
    /// A backoff whose ceiling starts at `initial` and doubles per attempt up to `max`.
    pub fn doubling(initial: Duration, max: Duration) -> Self {
        Self::new(Growth::PerAttempt, initial, max)
    }

    /// A backoff whose ceiling follows the episode's length (see [`Growth::WithOutage`]), between `initial` and
    /// `max`.
    pub fn with_outage(initial: Duration, max: Duration) -> Self {
        Self::new(Growth::WithOutage, initial, max)
    }

    fn new(growth: Growth, initial: Duration, max: Duration) -> Self {
        let initial = initial.min(max);
        Self {
            growth,
            initial,
            max,
            next: initial,
            since: None,
        }
    }

    /// The largest delay [`Backoff::next_delay`] would return at `now`.
    pub fn ceiling(&self, now: Instant) -> Duration {
        match self.growth {
            Growth::PerAttempt => self.next,
            Growth::WithOutage => {
                let lasted = self
                    .since
                    .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
                (lasted / OUTAGE_DIVISOR).clamp(self.initial, self.max)
            }
        }
    }

    /// The delay before the next attempt, asked for at `now` (the first call after a reset starts the episode);
    /// `unit` in `[0, 1]` picks the jitter (pass a random number; values outside are clamped).
    pub fn next_delay(&mut self, now: Instant, unit: f64) -> Duration {
        self.since.get_or_insert(now);
        let ceiling = self.ceiling(now);
        self.next = self.next.saturating_mul(2).min(self.max);
        jittered(ceiling, unit)
    }

    /// Starts over at `initial` (after a connection that lasted, or a call that succeeded).
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.since = None;
    }
}

/// A delay in `[ceiling/2, ceiling]`, placed by `unit` in `[0, 1]`.
fn jittered(ceiling: Duration, unit: f64) -> Duration {
    let unit = if unit.is_nan() {
        0.0
    } else {
        unit.clamp(0.0, 1.0)
    };
    let half = ceiling / 2;
    half + (ceiling - half).mul_f64(unit)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::{Rng as _, SeedableRng as _};

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// How long after the peer's return at `start + outage` the first attempt comes, for a link that failed at
    /// `start` and retries whenever its delay has passed (each failed attempt costing `attempt_cost`).
    fn lag_after_return(
        backoff: &mut Backoff,
        start: Instant,
        outage: Duration,
        rng: &mut rand::rngs::StdRng,
    ) -> Duration {
        let attempt_cost = ms(5);
        let back = start + outage;
        let mut now = start;
        loop {
            now += backoff.next_delay(now, rng.random::<f64>());
            if now >= back {
                return now - back;
            }
            now += attempt_cost;
        }
    }

    /// The lags of `runs` independent links (seeded draws), sorted.
    fn lags(make: impl Fn() -> Backoff, outage: Duration, runs: u64) -> Vec<Duration> {
        let start = Instant::now();
        let mut lags: Vec<Duration> = (0..runs)
            .map(|seed| {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                lag_after_return(&mut make(), start, outage, &mut rng)
            })
            .collect();
        lags.sort();
        lags
    }

    fn p90(sorted: &[Duration]) -> Duration {
        sorted[(sorted.len() * 9).div_ceil(10) - 1]
    }

    fn broker_reconnect(max: Duration) -> Backoff {
        Backoff::with_outage(ms(200), max)
    }

    #[test]
    fn given_repeated_failures_when_doubling_then_delays_double_up_to_the_cap_and_reset_starts_over(
    ) {
        let now = Instant::now();
        let mut backoff = Backoff::doubling(ms(200), secs(1));
        let upper: Vec<_> = (0..5).map(|_| backoff.next_delay(now, 1.0)).collect();
        assert_eq!(
            upper,
            [200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(now, 0.0), ms(100));
    }

    #[test]
    fn given_any_jitter_when_asking_for_a_delay_then_it_lies_in_the_upper_half_of_the_ceiling() {
        let now = Instant::now();
        for unit in [0.0, 0.25, 0.5, 0.99, 1.0, -3.0, 7.0, f64::NAN] {
            let mut backoff = Backoff::doubling(ms(800), secs(30));
            let delay = backoff.next_delay(now, unit);
            assert!(delay >= ms(400) && delay <= ms(800), "{unit}: {delay:?}");
        }
    }

    #[test]
    fn given_an_initial_delay_above_the_cap_when_asking_then_the_cap_wins() {
        let now = Instant::now();
        let mut doubling = Backoff::doubling(secs(5), secs(1));
        assert_eq!(doubling.next_delay(now, 1.0), secs(1));
        let mut with_outage = Backoff::with_outage(secs(5), secs(1));
        assert_eq!(with_outage.next_delay(now, 1.0), secs(1));
    }

    #[test]
    fn given_an_outage_when_growing_with_it_then_the_ceiling_follows_its_length_not_the_attempts() {
        let start = Instant::now();
        let mut backoff = broker_reconnect(secs(10));
        // Many quick attempts early on: the ceiling stays at the initial delay.
        for step in 0..20 {
            backoff.next_delay(start + ms(5 * step), 0.5);
        }
        assert_eq!(backoff.ceiling(start + ms(100)), ms(200));
        assert_eq!(backoff.ceiling(start + secs(60)), ms(1_500));
        assert_eq!(backoff.ceiling(start + secs(600)), secs(10));
        // After a connection that lasted, the next outage starts from the initial delay again.
        backoff.reset();
        let later = start + secs(3_600);
        assert_eq!(backoff.next_delay(later, 1.0), ms(200));
    }

    #[test]
    fn given_outages_of_5_15_and_60_s_when_the_broker_returns_then_the_p90_attempt_comes_within_2_s(
    ) {
        for outage_s in [5, 15, 60] {
            for max in [secs(1), secs(10), secs(15)] {
                let lags = lags(|| broker_reconnect(max), secs(outage_s), 2_000);
                let p90 = p90(&lags);
                assert!(
                    p90 <= secs(2),
                    "outage {outage_s} s, max {max:?}: p90 {p90:?}"
                );
            }
        }
    }

    #[test]
    fn given_a_10_minute_outage_when_the_broker_returns_then_every_attempt_comes_within_the_cap() {
        for max in [secs(1), secs(10), secs(15)] {
            let lags = lags(|| broker_reconnect(max), secs(600), 500);
            let worst = *lags.last().expect("runs");
            assert!(worst <= max, "max {max:?}: worst {worst:?}");
        }
    }

    #[test]
    fn given_a_15_s_outage_when_the_ceiling_doubles_per_attempt_then_the_2_s_budget_is_missed() {
        // The schedule the broker link used before: 200 ms doubling to 30 s.
        let lags = lags(|| Backoff::doubling(ms(200), secs(30)), secs(15), 2_000);
        assert!(p90(&lags) > secs(2), "p90 {:?}", p90(&lags));
    }

    #[test]
    fn given_a_thousand_gateways_losing_the_broker_together_when_it_returns_then_they_do_not_reconnect_in_step(
    ) {
        let lags = lags(|| broker_reconnect(secs(10)), secs(60), 1_000);
        let mut per_slot = std::collections::BTreeMap::<u128, usize>::new();
        for lag in &lags {
            *per_slot.entry(lag.as_millis() / 100).or_default() += 1;
        }
        let busiest = per_slot.values().copied().max().unwrap_or(0);
        assert!(
            busiest <= 200,
            "{busiest} of 1000 in one 100 ms slot: {per_slot:?}"
        );
        assert!(per_slot.len() >= 8, "{per_slot:?}");
    }

    proptest! {
        #[test]
        fn with_outage_every_delay_lies_between_half_the_initial_and_the_cap_and_within_the_outage_share(
            initial_ms in 1u64..2_000,
            max_ms in 1u64..60_000,
            steps in proptest::collection::vec((0u64..120_000, 0.0f64..=1.0), 1..40),
        ) {
            let (initial, max) = (ms(initial_ms), ms(max_ms));
            let start = Instant::now();
            let mut backoff = Backoff::with_outage(initial, max);
            let mut now = start;
            for (step_ms, unit) in steps {
                now += ms(step_ms);
                let delay = backoff.next_delay(now, unit);
                let share = now.duration_since(start) / OUTAGE_DIVISOR;
                prop_assert!(delay <= max);
                prop_assert!(delay >= initial.min(max) / 2);
                prop_assert!(delay <= share.max(initial.min(max)));
            }
        }
    }
}
