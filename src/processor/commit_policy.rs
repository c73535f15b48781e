//! When the processor commits (group commit), pure: time is an argument. Routine work (counter baselines,
//! delta audit rows, window sums) waits up to `store.commit_interval` for one transaction, because counters
//! are cumulative and the next poll carries what a crash loses; work someone waits for (rollups of closed
//! windows, events, quarantine releases) is committed at once. It does not commit: the task loop does.

use std::time::{Duration, Instant};

/// What waits for a transaction, as far as the timing of the commit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Work {
    /// Nothing: no transaction.
    Nothing,
    /// Counter baselines, delta audit rows and window sums: they may wait for the interval.
    Routine,
    /// Outbox drafts (rollups, events) or quarantine releases: committed at once.
    Urgent,
}

/// Decides when the pending work is committed; one per processor task, rebuilt with a new configuration.
#[derive(Debug, Clone)]
pub(super) struct CommitPolicy {
    interval: Duration,
    /// When the oldest uncommitted work was first seen.
    pending_since: Option<Instant>,
    /// After a failed commit: when the next attempt is due (urgent work does not bring it forward, so a
    /// store that refuses writes is not retried in a tight loop).
    retry_at: Option<Instant>,
}

impl CommitPolicy {
    /// A policy committing routine work at most `interval` after it appeared (zero: at once).
    pub(super) fn new(interval: Duration) -> CommitPolicy {
        CommitPolicy {
            interval,
            pending_since: None,
            retry_at: None,
        }
    }

    /// Notes the `work` pending at `now` and says whether to commit it now.
    pub(super) fn due(&mut self, now: Instant, work: Work) -> bool {
        if work == Work::Nothing {
            self.pending_since = None;
            self.retry_at = None;
            return false;
        }
        let since = *self.pending_since.get_or_insert(now);
        if let Some(retry_at) = self.retry_at {
            return now >= retry_at;
        }
        work == Work::Urgent || now >= since + self.interval
    }

    /// When the task must wake to commit even if no sample arrives; `None`: no commit waits for a time
    /// (nothing pending, or a zero interval, where every cycle commits and a retry waits for the next cycle).
    pub(super) fn next_due(&self) -> Option<Instant> {
        if self.interval.is_zero() {
            return None;
        }
        self.retry_at
            .or_else(|| self.pending_since.map(|since| since + self.interval))
    }

    /// Records a commit attempt at `now`: `ok` or not, and the work still pending after it (events about
    /// the commit itself, or everything when it failed).
    pub(super) fn committed(&mut self, now: Instant, ok: bool, remaining: Work) {
        if ok {
            self.retry_at = None;
            self.pending_since = (remaining != Work::Nothing).then_some(now);
        } else {
            self.retry_at = Some(now + self.interval);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn at(base: Instant, millis: u64) -> Instant {
        base + Duration::from_millis(millis)
    }

    #[test]
    fn routine_work_waits_for_the_interval_then_commits_once() {
        let t0 = Instant::now();
        let mut policy = CommitPolicy::new(SECOND);
        assert!(!policy.due(t0, Work::Routine));
        assert_eq!(policy.next_due(), Some(at(t0, 1_000)));
        assert!(!policy.due(at(t0, 999), Work::Routine));
        assert!(policy.due(at(t0, 1_000), Work::Routine));
        policy.committed(at(t0, 1_000), true, Work::Nothing);
        assert_eq!(policy.next_due(), None);
        // The next interval starts with the next work, not at the commit.
        assert!(!policy.due(at(t0, 1_500), Work::Routine));
        assert_eq!(policy.next_due(), Some(at(t0, 2_500)));
    }

    #[test]
    fn urgent_work_commits_at_once() {
        let t0 = Instant::now();
        let mut policy = CommitPolicy::new(SECOND);
        assert!(!policy.due(t0, Work::Routine));
        assert!(policy.due(at(t0, 10), Work::Urgent));
    }

    #[test]
    fn nothing_pending_commits_nothing_and_arms_no_timer() {
        let t0 = Instant::now();
        let mut policy = CommitPolicy::new(SECOND);
        assert!(!policy.due(t0, Work::Nothing));
        assert!(!policy.due(at(t0, 60_000), Work::Nothing));
        assert_eq!(policy.next_due(), None);
    }

    #[test]
    fn a_zero_interval_commits_every_cycle_without_a_timer() {
        let t0 = Instant::now();
        let mut policy = CommitPolicy::new(Duration::ZERO);
        for step in 0..5 {
            assert!(policy.due(at(t0, step * 100), Work::Routine));
            policy.committed(at(t0, step * 100), true, Work::Nothing);
            assert_eq!(policy.next_due(), None);
        }
    }

    #[test]
    fn a_failed_commit_is_retried_at_the_next_due_commit_even_for_urgent_work() {
        let t0 = Instant::now();
        let mut policy = CommitPolicy::new(SECOND);
        assert!(policy.due(t0, Work::Urgent));
        policy.committed(t0, false, Work::Urgent);
        assert_eq!(policy.next_due(), Some(at(t0, 1_000)));
        assert!(!policy.due(at(t0, 500), Work::Urgent));
        assert!(policy.due(at(t0, 1_000), Work::Urgent));
        policy.committed(at(t0, 1_000), true, Work::Nothing);
        assert!(policy.due(at(t0, 1_001), Work::Urgent));
    }

    #[test]
    fn a_zero_interval_retries_a_failed_commit_with_the_next_cycle() {
        let t0 = Instant::now();
        let mut policy = CommitPolicy::new(Duration::ZERO);
        assert!(policy.due(t0, Work::Routine));
        policy.committed(t0, false, Work::Routine);
        assert_eq!(policy.next_due(), None);
        assert!(policy.due(at(t0, 100), Work::Routine));
    }

    #[test]
    fn work_left_by_a_commit_starts_a_new_interval() {
        let t0 = Instant::now();
        let mut policy = CommitPolicy::new(SECOND);
        assert!(policy.due(t0, Work::Urgent));
        policy.committed(t0, true, Work::Routine);
        assert_eq!(policy.next_due(), Some(at(t0, 1_000)));
    }

    proptest::proptest! {
        /// Whatever the arrivals, routine work waits less than the interval unless a timer is armed for
        /// it, and commits never come closer together than the interval.
        #[test]
        fn routine_commits_are_spaced_by_the_interval_and_none_is_late(
            gaps in proptest::collection::vec(1u64..400, 1..200),
        ) {
            let t0 = Instant::now();
            let mut policy = CommitPolicy::new(SECOND);
            let mut now = t0;
            let mut last_commit: Option<Instant> = None;
            let mut oldest: Option<Instant> = None;
            for gap in gaps {
                now += Duration::from_millis(gap);
                oldest.get_or_insert(now);
                if policy.due(now, Work::Routine) {
                    if let Some(last) = last_commit {
                        proptest::prop_assert!(now - last >= SECOND);
                    }
                    policy.committed(now, true, Work::Nothing);
                    last_commit = Some(now);
                    oldest = None;
                } else {
                    let first = oldest.expect("work was noted");
                    // Not yet due: the oldest work is younger than the interval, and a timer is armed.
                    proptest::prop_assert!(now - first < SECOND);
                    proptest::prop_assert!(policy.next_due().is_some_and(|due| due > now));
                }
            }
        }
    }
}
