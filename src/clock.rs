//! The clock the adapters read: a monotonic instant and the wall clock (UTC ms), read together.
//! [`SystemClock`] is the machine's; [`SteppableClock`] adds an offset that a test can step, so tests
//! step the wall clock without touching the machine's time. `logic` never reads a clock; it gets the
//! readings as arguments (`logic::clock` compares them to detect wall-clock steps).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::logic::Millis;

/// One reading of both clocks, taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The monotonic clock: never steps, only measures elapsed time.
    pub mono: Instant,
    /// The wall clock in UTC milliseconds: NTP (or an operator) may step it either way.
    pub utc: Millis,
}

/// A source of (monotonic, wall-clock) readings; injected so tests can step the wall clock.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Both clocks now.
    fn now(&self) -> Now;

    /// The wall clock now, in UTC milliseconds.
    fn utc(&self) -> Millis {
        self.now().utc
    }
}

/// The clock handle the tasks share.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Now {
        Now {
            mono: Instant::now(),
            utc: jiff::Timestamp::now().as_millisecond(),
        }
    }
}

/// The machine's clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The machine's clocks with an offset added to the wall clock; `step` moves the wall clock the way
/// NTP steps it (the monotonic clock does not move).
#[derive(Debug, Default)]
pub struct SteppableClock {
    offset_ms: AtomicI64,
}

impl SteppableClock {
    /// A clock `offset_ms` ahead of the machine's wall clock (negative: behind).
    pub fn new(offset_ms: i64) -> Self {
        SteppableClock {
            offset_ms: AtomicI64::new(offset_ms),
        }
    }

    /// Steps the wall clock by `by_ms` (negative: back).
    pub fn step(&self, by_ms: i64) {
        self.offset_ms.fetch_add(by_ms, Ordering::SeqCst);
    }

    /// The current offset from the machine's wall clock.
    pub fn offset(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }
}

impl Clock for SteppableClock {
    fn now(&self) -> Now {
        let system = SystemClock.now();
        Now {
            mono: system.mono,
            utc: system.utc.saturating_add(self.offset()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_steppable_clock_when_stepped_then_only_the_wall_clock_moves() {
        let clock = SteppableClock::new(0);
        let before = clock.now();
        clock.step(3_600_000);
        let after = clock.now();
        let elapsed = after.mono.duration_since(before.mono).as_millis() as i64;
        let moved = after.utc - before.utc;
        // The two clocks are read a moment apart; a second of slack is far from the hour stepped.
        assert!((moved - elapsed - 3_600_000).abs() < 1_000);
        clock.step(-7_200_000);
        assert_eq!(clock.offset(), -3_600_000);
    }
}
