//! The publisher's view of its own store calls (outbox reads, retirements): whether the last one failed and
//! when to try again. A failing store (full disk, full quota, busy, I/O) never ends the publisher: rows stay in
//! the outbox, nothing new is read or sent while it fails, and the failed call is retried with capped, jittered
//! backoff. Each failing episode starts and ends once, so the caller logs a change of mode, never a retry.
//! Pure: time and jitter are arguments.

use std::time::{Duration, Instant};

use crate::backoff::Backoff;

/// First delay before a failed store call is tried again; it doubles per failure.
const RETRY_INITIAL: Duration = Duration::from_millis(200);
/// Cap of that delay: a freed disk is noticed within this long.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The store call that failed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoreCall {
    /// Reading the highest seq at CONNACK (the backlog boundary).
    Boundary,
    /// Reading (claiming) a page of outbox rows.
    Claim,
    /// Deleting acknowledged rows (and releasing refused ones).
    Retire,
}

/// What a call's outcome changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// The first failure of an episode: say so once.
    Started,
    /// Another failure within an episode, or another success outside one: nothing to say.
    Unchanged,
    /// The first success after failures: say so once.
    Ended {
        /// Failed calls in the episode.
        failures: u64,
        /// From the first failure to this success.
        lasted: Duration,
    },
}

/// The failing episode, if one is running, and its retry schedule.
#[derive(Debug)]
pub(super) struct StoreFault {
    backoff: Backoff,
    /// When the episode's first failure happened; `None` while calls succeed.
    since: Option<Instant>,
    failures: u64,
    retry_at: Option<Instant>,
}

impl Default for StoreFault {
    fn default() -> Self {
        Self::new(RETRY_INITIAL, RETRY_MAX)
    }
}

impl StoreFault {
    /// Retries back off from `initial`, doubling up to `max`.
    pub(super) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            backoff: Backoff::doubling(initial, max),
            since: None,
            failures: 0,
            retry_at: None,
        }
    }

    /// A store call failed at `now`; the next one waits for the backoff (`jitter` in `[0, 1]`).
    pub(super) fn failed(&mut self, now: Instant, jitter: f64) -> Change {
        self.failures += 1;
        self.retry_at = Some(now + self.backoff.next_delay(now, jitter));
        if self.since.is_some() {
            return Change::Unchanged;
        }
        self.since = Some(now);
        Change::Started
    }

    /// A store call succeeded at `now`; ends the episode if one was running.
    pub(super) fn succeeded(&mut self, now: Instant) -> Change {
        self.retry_at = None;
        let Some(since) = self.since.take() else {
            return Change::Unchanged;
        };
        self.backoff.reset();
        Change::Ended {
            failures: std::mem::take(&mut self.failures),
            lasted: now.saturating_duration_since(since),
        }
    }

    /// Whether store calls must wait: a call failed and its retry is not due yet.
    pub(super) fn holding(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|at| at > now)
    }

    /// When the held calls may be tried again, while that is still ahead of `now`.
    pub(super) fn wake_at(&self, now: Instant) -> Option<Instant> {
        self.retry_at.filter(|at| *at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn given_repeated_failures_when_retrying_then_the_episode_starts_once_and_the_wait_doubles() {
        let start = Instant::now();
        let mut fault = StoreFault::new(100 * MS, 400 * MS);
        let mut now = start;
        let mut changes = Vec::new();
        let mut waits = Vec::new();
        for _ in 0..4 {
            changes.push(fault.failed(now, 1.0));
            let at = fault.wake_at(now).expect("a retry is scheduled");
            assert!(fault.holding(at - MS), "no call before its retry");
            assert!(!fault.holding(at));
            assert_eq!(fault.wake_at(at), None, "a due retry is no timer");
            waits.push(at - now);
            now = at;
        }
        assert_eq!(
            changes,
            [
                Change::Started,
                Change::Unchanged,
                Change::Unchanged,
                Change::Unchanged
            ]
        );
        assert_eq!(waits, [100, 200, 400, 400].map(|ms| ms * MS));
    }

    #[test]
    fn given_a_failing_episode_when_a_call_succeeds_then_it_ends_once_and_the_backoff_starts_over()
    {
        let start = Instant::now();
        let mut fault = StoreFault::new(100 * MS, 400 * MS);
        assert_eq!(fault.succeeded(start), Change::Unchanged);
        fault.failed(start, 1.0);
        fault.failed(start + 100 * MS, 1.0);
        assert_eq!(
            fault.succeeded(start + 350 * MS),
            Change::Ended {
                failures: 2,
                lasted: 350 * MS
            }
        );
        assert_eq!(fault.succeeded(start + 400 * MS), Change::Unchanged);
        assert!(!fault.holding(start + 400 * MS));
        assert_eq!(fault.wake_at(start + 400 * MS), None);
        assert_eq!(fault.failed(start + 500 * MS, 1.0), Change::Started);
        assert_eq!(fault.wake_at(start + 500 * MS), Some(start + 600 * MS));
    }
}
