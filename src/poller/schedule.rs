//! When one poller task polls: a fixed phase within its interval, so that a fleet of PLCs does not wake on the
//! same tick; the regular ticks `phase + k·interval` of the wall clock; and one extra cycle at every window
//! boundary of the configured periods and every shift or break edge of the calendar, so no window and no
//! planned time shares a poll interval with its neighbour. Pure: time comes in as an argument.

use std::time::Duration;

use crate::config::arith::millis;
use crate::logic::calendar::Calendar;
use crate::logic::window::{window_at, Period};
use crate::logic::Millis;

/// 2^64 / φ: multiplying a PLC index by it (modulo 2^64) gives the fractional part of `index / φ` in 64-bit
/// fixed point (Fibonacci hashing).
const GOLDEN_FRACTION: u64 = 0x9E37_79B9_7F4A_7C15;

/// How long a cached "no boundary ahead" answer is trusted before the calendar is asked again.
const NO_BOUNDARY_RECHECK_MS: Millis = 60_000;

/// The phase of PLC `plc` (its index in the configuration) within `interval`, in `[0, interval)`: the
/// fractional part of `plc / φ` of the interval, in whole milliseconds. The first N indices split every
/// interval into gaps of at most three lengths, the largest under 3·interval/N (the three-gap theorem), for
/// every N: a fleet is spread evenly however many PLCs it has, a PLC keeps its phase while its index does,
/// and PLCs appended by a reload fill the largest gaps instead of moving the others.
pub fn phase(plc: usize, interval: Duration) -> Duration {
    let interval_ms = u128::from(u64::try_from(millis(interval).max(1)).unwrap_or(1));
    let fraction = u128::from((plc as u64).wrapping_mul(GOLDEN_FRACTION));
    // fraction < 2^64, so the product shifted down is below interval_ms.
    Duration::from_millis(u64::try_from((fraction * interval_ms) >> 64).unwrap_or(0))
}

/// The regular ticks of one PLC: `phase + k·interval` for every whole k, in UTC milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Grid {
    interval_ms: Millis,
    phase_ms: Millis,
}

impl Grid {
    /// The ticks of `interval` shifted by `phase` (taken modulo the interval).
    pub(super) fn new(interval: Duration, phase: Duration) -> Grid {
        let interval_ms = millis(interval).max(1);
        Grid {
            interval_ms,
            phase_ms: millis(phase).rem_euclid(interval_ms),
        }
    }

    /// The first tick strictly after `now`.
    pub(super) fn next_after(&self, now: Millis) -> Millis {
        let k = (now - self.phase_ms).div_euclid(self.interval_ms) + 1;
        self.phase_ms + k * self.interval_ms
    }

    /// The ticks strictly between `previous` (the instant the previous cycle was scheduled for) and
    /// `tick_at` (this cycle's): those the schedule skipped because the previous cycle, or the hand-off of its
    /// sample, ran past them. A boundary cycle between two ticks skips nothing.
    pub(super) fn ticks_between(&self, previous: Millis, tick_at: Millis) -> u64 {
        // Indices k with previous < phase + k·interval < tick_at.
        let last_before = (tick_at - 1 - self.phase_ms).div_euclid(self.interval_ms);
        let last_at_or_before_previous = (previous - self.phase_ms).div_euclid(self.interval_ms);
        u64::try_from(last_before - last_at_or_before_previous).unwrap_or(0)
    }
}

/// The instants where a window of a configured period, or planned time of the calendar, begins or ends.
#[derive(Debug, Clone)]
pub(super) struct Boundaries {
    calendar: Calendar,
    periods: Vec<Period>,
    /// The last answer: from this instant on, the next boundary (`None`: none found). Valid while the clock
    /// reads between the two, so a cycle costs no time-zone arithmetic.
    cached: Option<(Millis, Option<Millis>)>,
}

impl Boundaries {
    /// The boundaries of `calendar`'s shifts and breaks and of the windows of `periods` (in the calendar's
    /// time zone).
    pub(super) fn new(calendar: Calendar, periods: Vec<Period>) -> Boundaries {
        Boundaries {
            calendar,
            periods,
            cached: None,
        }
    }

    /// The first boundary strictly after `now`, if there is one.
    pub(super) fn next_after(&mut self, now: Millis) -> Option<Millis> {
        if let Some((from, next)) = self.cached {
            let valid = match next {
                Some(next) => from <= now && now < next,
                None => from <= now && now - from < NO_BOUNDARY_RECHECK_MS,
            };
            if valid {
                return next;
            }
        }
        let next = self.compute(now);
        self.cached = Some((now, next));
        next
    }

    fn compute(&self, now: Millis) -> Option<Millis> {
        let windows = self
            .periods
            .iter()
            .filter_map(|period| window_at(period, now, &self.calendar).map(|(_, end)| end))
            .filter(|&end| end > now);
        windows.chain(self.calendar.next_boundary_after(now)).min()
    }
}

/// Where a poller task stands in its schedule.
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    grid: Grid,
    boundaries: Boundaries,
    /// The boundary the last cycle was scheduled on, so a timer that wakes a hair early on the wall clock does
    /// not poll the same boundary twice.
    last_boundary: Option<Millis>,
    /// The instant the previous cycle was scheduled for, while cycles follow each other on one connection (a
    /// reconnect pause in between skips ticks for another reason).
    last_scheduled: Option<Millis>,
}

impl Schedule {
    /// Regular ticks on `grid`, plus a cycle on each of `boundaries`.
    pub(super) fn new(grid: Grid, boundaries: Boundaries) -> Schedule {
        Schedule {
            grid,
            boundaries,
            last_boundary: None,
            last_scheduled: None,
        }
    }

    /// The wait from `now` until the next cycle and the instant it is scheduled for: the next regular tick,
    /// or the next boundary (other than the one already polled) when it comes first or with it.
    pub(super) fn next(&mut self, now: Millis) -> (Duration, Millis) {
        let tick_at = self.grid.next_after(now);
        let boundary = match self.boundaries.next_after(now) {
            Some(boundary) if Some(boundary) == self.last_boundary => {
                self.boundaries.next_after(boundary)
            }
            other => other,
        };
        let at = match boundary {
            Some(boundary) if boundary <= tick_at => {
                self.last_boundary = Some(boundary);
                boundary
            }
            _ => tick_at,
        };
        let wait = Duration::from_millis(u64::try_from(at - now).unwrap_or(0));
        (wait, at)
    }

    /// The cycle scheduled for `tick_at` starts; returns the regular ticks skipped since the previous cycle.
    pub(super) fn start(&mut self, tick_at: Millis) -> u64 {
        let skipped = self
            .last_scheduled
            .map_or(0, |previous| self.grid.ticks_between(previous, tick_at));
        self.last_scheduled = Some(tick_at);
        skipped
    }

    /// The connection was lost: the next cycle follows a reconnect, not this cycle.
    pub(super) fn interrupted(&mut self) {
        self.last_scheduled = None;
    }
}

#[cfg(test)]
mod tests;
