//! Group commit of the publisher's retirements: which acknowledged rows go into the next retiring transaction,
//! and when it is due. A row is only ever queued here after its PUBACK (and, with MQTT 3.1.1, its read-back);
//! holding it a little longer before the delete costs nothing but a duplicate if the agent dies meanwhile (the
//! consumers de-duplicate by `msg_id`), whereas one transaction, and one fsync, per handful of PUBACKs made the
//! store thread the bottleneck of a drain.
//!
//! A batch is due when no retirement is running and the queue holds [`BATCH_ROWS`] rows, or its oldest row has
//! waited [`MAX_WAIT`], or nothing more is expected soon (no publish awaits its PUBACK). While one retirement
//! runs on the store thread the next batch fills, so the transaction rate adapts to the store's speed.
//! Pure bookkeeping: time is an argument.

use std::time::{Duration, Instant};

/// Acknowledged rows that make a retirement due at once.
pub(super) const BATCH_ROWS: usize = 1024;
/// Longest an acknowledged row waits for its retirement while acknowledgements keep arriving.
pub(super) const MAX_WAIT: Duration = Duration::from_millis(100);

/// Rows waiting for the next retiring transaction.
#[derive(Debug, Default)]
pub(super) struct RetireQueue {
    /// Seqs whose accepted PUBACK (and read-back) arrived: deleted by the next retirement.
    acked: Vec<i64>,
    /// Seqs known not to be on the broker (refused, or never sendable): their claim is released with the next
    /// retirement, so the quota may drop them again.
    released: Vec<i64>,
    /// When the oldest queued seq (of either kind) was queued.
    oldest: Option<Instant>,
}

/// One retiring transaction's rows.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct RetireBatch {
    /// Rows to delete.
    pub(super) acked: Vec<i64>,
    /// Claims to release.
    pub(super) released: Vec<i64>,
}

impl RetireQueue {
    /// Queues a row whose delivery is confirmed.
    pub(super) fn acked(&mut self, seq: i64, now: Instant) {
        self.acked.push(seq);
        self.oldest.get_or_insert(now);
    }

    /// Queues the release of a row the broker does not have.
    pub(super) fn released(&mut self, seq: i64, now: Instant) {
        self.released.push(seq);
        self.oldest.get_or_insert(now);
    }

    /// Nothing queued.
    pub(super) fn is_empty(&self) -> bool {
        self.acked.is_empty() && self.released.is_empty()
    }

    /// Whether the next retirement should start now: none is `running`, something is queued, and the batch is
    /// full, its oldest row has waited [`MAX_WAIT`], or `quiet` (no publish awaits a PUBACK, so the batch will not
    /// grow soon).
    pub(super) fn due(&self, now: Instant, running: bool, quiet: bool) -> bool {
        if running || self.is_empty() {
            return false;
        }
        quiet
            || self.acked.len() + self.released.len() >= BATCH_ROWS
            || self
                .oldest
                .is_some_and(|oldest| now.saturating_duration_since(oldest) >= MAX_WAIT)
    }

    /// When the queued rows become due by age; `None` when nothing is queued.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|oldest| oldest + MAX_WAIT)
    }

    /// Takes everything queued as the next batch.
    pub(super) fn take(&mut self) -> RetireBatch {
        self.oldest = None;
        RetireBatch {
            acked: std::mem::take(&mut self.acked),
            released: std::mem::take(&mut self.released),
        }
    }

    /// Puts back the acknowledged rows of a retirement the store refused, ahead of those queued since, as
    /// queued at `now`; their claims were not released either, so the released rows are already gone.
    pub(super) fn restore(&mut self, mut acked: Vec<i64>, now: Instant) {
        if acked.is_empty() {
            return;
        }
        acked.append(&mut self.acked);
        self.acked = acked;
        self.oldest = Some(self.oldest.map_or(now, |oldest| oldest.min(now)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn given_a_few_acks_while_more_are_expected_when_checked_then_they_wait_for_the_batch_or_its_age(
    ) {
        let start = Instant::now();
        let mut queue = RetireQueue::default();
        assert!(!queue.due(start, false, true), "nothing queued");
        queue.acked(1, start);
        queue.acked(2, start + Duration::from_millis(30));
        assert!(!queue.due(start + Duration::from_millis(50), false, false));
        assert_eq!(queue.deadline(), Some(start + MAX_WAIT));
        assert!(
            queue.due(start + MAX_WAIT, false, false),
            "the oldest waited long enough"
        );
        assert!(
            !queue.due(start + MAX_WAIT, true, false),
            "one retirement at a time"
        );
        assert!(
            queue.due(start, false, true),
            "quiet: nothing more is coming"
        );
    }

    #[test]
    fn given_a_full_batch_when_checked_then_it_is_due_at_once() {
        let start = Instant::now();
        let mut queue = RetireQueue::default();
        for seq in 0..BATCH_ROWS as i64 - 1 {
            queue.acked(seq, start);
        }
        assert!(!queue.due(start, false, false));
        queue.released(99_999, start);
        assert!(queue.due(start, false, false));
    }

    #[test]
    fn given_a_refused_retirement_when_restored_then_its_rows_go_first_and_are_due_by_their_new_age(
    ) {
        let start = Instant::now();
        let mut queue = RetireQueue::default();
        queue.acked(1, start);
        queue.released(7, start);
        let batch = queue.take();
        assert_eq!(batch.acked, vec![1]);
        assert_eq!(batch.released, vec![7]);
        assert!(queue.is_empty());
        assert_eq!(queue.deadline(), None);
        let later = start + Duration::from_millis(500);
        queue.acked(2, later);
        queue.restore(batch.acked, later + Duration::from_millis(10));
        assert_eq!(queue.deadline(), Some(later + MAX_WAIT));
        assert_eq!(queue.take().acked, vec![1, 2]);
    }

    proptest! {
        /// Whatever the interleaving of acks, releases, takes and refused retirements, every acked seq is
        /// retired exactly once in the end and none is invented; and a non-empty queue is always due within
        /// `MAX_WAIT` of its deadline.
        #[test]
        fn every_acked_row_is_retired_once(ops in proptest::collection::vec((0u8..4, 0u64..300), 1..200)) {
            let start = Instant::now();
            let mut queue = RetireQueue::default();
            let mut acked = Vec::new();
            let mut retired = Vec::new();
            let mut next_seq = 0_i64;
            for (op, millis) in ops {
                let now = start + Duration::from_millis(millis);
                match op {
                    0 => { queue.acked(next_seq, now); acked.push(next_seq); next_seq += 1; }
                    1 => { queue.released(-next_seq - 1, now); next_seq += 1; }
                    2 => retired.extend(queue.take().acked),
                    _ => { let batch = queue.take(); queue.restore(batch.acked, now); }
                }
                if let Some(deadline) = queue.deadline() {
                    prop_assert!(queue.due(deadline, false, false));
                }
            }
            retired.extend(queue.take().acked);
            retired.sort_unstable();
            prop_assert_eq!(retired, acked);
        }
    }
}
