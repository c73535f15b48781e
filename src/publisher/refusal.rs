//! What the publisher remembers across reconnects about rows it could not deliver: rows the broker refused
//! (MQTT 5 PUBACK failure reason), their retry backoff and the alarm about them; and rows too large to ever
//! send. Both are bounded; the outbox, not this memory, remains the source of truth (a row forgotten here is
//! sent again after the next CONNACK). Pure: time and jitter are arguments.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::link::Refusal;
use crate::backoff::Backoff;

/// Most refused rows remembered for a retry within one connection; beyond that they wait for the next one.
const RETRY_CAPACITY: usize = 4096;
/// Most seqs of our own alarm rows remembered (an alarm about a refused alarm would loop).
const ALARM_ROWS_REMEMBERED: usize = 64;
/// Most unsendable seqs remembered, so each is counted and logged once.
const UNSENDABLE_REMEMBERED: usize = 4096;
/// At most one log line about unsendable rows per this interval; the rows in between are counted in the next.
const UNSENDABLE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Refusals since the last alarm, summarised for one `publish_failure` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AlarmSummary {
    /// PUBACKs with a failure reason since the last alarm.
    pub(super) refused: u64,
    /// Lowest and highest refused seq.
    pub(super) first_seq: i64,
    pub(super) last_seq: i64,
    /// The most recent failure reason.
    pub(super) last: Refusal,
}

/// Refused rows waiting for their retry, the shared retry backoff, and the pending alarm.
#[derive(Debug)]
pub(super) struct Refusals {
    pending: BTreeSet<i64>,
    backoff: Backoff,
    /// A refusal after this much quiet starts a new episode (the backoff starts over).
    episode_gap: Duration,
    retry_at: Option<Instant>,
    last_refusal_at: Option<Instant>,
    alarm: Option<AlarmSummary>,
    /// Earliest time the next alarm may be raised; `None` = at once.
    next_alarm_at: Option<Instant>,
    alarm_interval: Duration,
    alarm_rows: VecDeque<i64>,
}

impl Refusals {
    /// Retries back off from `initial` doubling to `max`; at most one alarm per `alarm_interval`.
    pub(super) fn new(initial: Duration, max: Duration, alarm_interval: Duration) -> Self {
        Self {
            pending: BTreeSet::new(),
            backoff: Backoff::doubling(initial, max),
            episode_gap: max.saturating_mul(2),
            retry_at: None,
            last_refusal_at: None,
            alarm: None,
            next_alarm_at: None,
            alarm_interval,
            alarm_rows: VecDeque::new(),
        }
    }

    /// The broker refused row `seq`: remember it for a retry after the backoff and add it to the next alarm
    /// (unless it is one of our own alarm rows). `jitter` in `[0, 1]` spreads the retry time.
    pub(super) fn record(&mut self, seq: i64, refusal: Refusal, now: Instant, jitter: f64) {
        if !self.alarm_rows.contains(&seq) {
            let summary = self.alarm.get_or_insert(AlarmSummary {
                refused: 0,
                first_seq: seq,
                last_seq: seq,
                last: refusal,
            });
            summary.refused += 1;
            summary.first_seq = summary.first_seq.min(seq);
            summary.last_seq = summary.last_seq.max(seq);
            summary.last = refusal;
        }
        if self.pending.len() < RETRY_CAPACITY {
            self.pending.insert(seq);
        }
        if self
            .last_refusal_at
            .is_some_and(|last| now.saturating_duration_since(last) > self.episode_gap)
        {
            self.backoff.reset();
        }
        self.last_refusal_at = Some(now);
        if self.retry_at.is_none() {
            self.retry_at = Some(now + self.backoff.next_delay(now, jitter));
        }
    }

    /// Up to `limit` refused seqs (lowest first) whose retry is due; the rest follow on the next call.
    pub(super) fn take_due(&mut self, now: Instant, limit: usize) -> Vec<i64> {
        if self.retry_at.is_none_or(|at| at > now) {
            return Vec::new();
        }
        let mut due = Vec::new();
        while due.len() < limit {
            match self.pending.pop_first() {
                Some(seq) => due.push(seq),
                None => break,
            }
        }
        self.retry_at = (!self.pending.is_empty()).then_some(now);
        due
    }

    /// Puts back refused seqs taken by [`Refusals::take_due`] that could not be read (the store failed); they
    /// are due again at once, so the caller's own wait decides when.
    pub(super) fn requeue(&mut self, seqs: Vec<i64>, now: Instant) {
        for seq in seqs {
            if self.pending.len() < RETRY_CAPACITY {
                self.pending.insert(seq);
            }
        }
        if !self.pending.is_empty() {
            self.retry_at = Some(self.retry_at.map_or(now, |at| at.min(now)));
        }
    }

    /// A new connection re-sends every unacknowledged row anyway; pending retries are dropped (not the backoff).
    pub(super) fn forget_pending(&mut self) {
        self.pending.clear();
        self.retry_at = None;
    }

    /// Whether an alarm is waiting and may be raised now.
    pub(super) fn alarm_due(&self, now: Instant) -> bool {
        self.alarm.is_some() && self.next_alarm_at.is_none_or(|at| at <= now)
    }

    /// Takes the waiting alarm if it may be raised now.
    pub(super) fn take_alarm(&mut self, now: Instant) -> Option<AlarmSummary> {
        if !self.alarm_due(now) {
            return None;
        }
        self.next_alarm_at = Some(now + self.alarm_interval);
        self.alarm.take()
    }

    /// Remembers the seq of an alarm row we enqueued, so its own refusal raises no further alarm.
    pub(super) fn note_alarm_row(&mut self, seq: i64) {
        if self.alarm_rows.len() >= ALARM_ROWS_REMEMBERED {
            self.alarm_rows.pop_front();
        }
        self.alarm_rows.push_back(seq);
    }

    /// The next moment something here becomes due (a retry or a rate-limited alarm).
    pub(super) fn next_wake(&self) -> Option<Instant> {
        let alarm = self.alarm.as_ref().and(self.next_alarm_at);
        match (self.retry_at, alarm) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Seqs of rows that can never be published (too large for the broker or an invalid topic), and the rate
/// limit of the log lines about them.
#[derive(Debug, Default)]
pub(super) struct Unsendable {
    seqs: HashSet<i64>,
    last_line_at: Option<Instant>,
    unlogged: u64,
}

impl Unsendable {
    /// True the first time `seq` is reported (and always once the memory is full), so each is counted once.
    pub(super) fn first_time(&mut self, seq: i64) -> bool {
        if self.seqs.len() >= UNSENDABLE_REMEMBERED {
            return !self.seqs.contains(&seq);
        }
        self.seqs.insert(seq)
    }

    /// For a newly counted unsendable row: `Some(rows not logged since the last line)` when a line may be
    /// written now, `None` when this row is only counted for the next line.
    pub(super) fn line_due(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last_line_at
            .is_none_or(|at| now.saturating_duration_since(at) >= UNSENDABLE_LOG_INTERVAL);
        if !due {
            self.unlogged += 1;
            return None;
        }
        self.last_line_at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const DENIED: Refusal = Refusal {
        code: Some(0x87),
        reason: "not_authorized",
    };

    #[test]
    fn given_repeated_refusals_when_retrying_then_the_delay_doubles_instead_of_spinning() {
        let start = Instant::now();
        let mut refusals = Refusals::new(100 * MS, 1000 * MS, 5000 * MS);
        let mut now = start;
        let mut delays = Vec::new();
        for _ in 0..5 {
            refusals.record(7, DENIED, now, 1.0);
            let at = refusals.next_wake().unwrap();
            assert!(
                refusals.take_due(at - MS, 10).is_empty(),
                "not before its time"
            );
            assert_eq!(refusals.take_due(at, 10), vec![7]);
            delays.push(at - now);
            now = at;
        }
        assert_eq!(delays, [100, 200, 400, 800, 1000].map(|ms| ms * MS));
        // After a quiet spell longer than twice the cap, a new episode starts over.
        refusals.record(7, DENIED, now + 2500 * MS, 1.0);
        assert_eq!(refusals.next_wake(), Some(now + 2600 * MS));
    }

    #[test]
    fn given_many_refused_rows_when_due_then_they_come_lowest_first_in_batches() {
        let start = Instant::now();
        let mut refusals = Refusals::new(100 * MS, 1000 * MS, 5000 * MS);
        for seq in [9, 3, 5, 1] {
            refusals.record(seq, DENIED, start, 0.0);
        }
        let due = start + 100 * MS;
        assert_eq!(refusals.take_due(due, 3), vec![1, 3, 5]);
        assert_eq!(refusals.take_due(due, 3), vec![9]);
        assert!(refusals.take_due(due, 3).is_empty());
        assert_eq!(refusals.next_wake(), None);
    }

    #[test]
    fn given_due_retries_the_store_could_not_read_when_requeued_then_they_come_again_at_once() {
        let start = Instant::now();
        let mut refusals = Refusals::new(100 * MS, 1000 * MS, 5000 * MS);
        refusals.record(3, DENIED, start, 0.0);
        refusals.record(1, DENIED, start, 0.0);
        let due = start + 100 * MS;
        let taken = refusals.take_due(due, 10);
        assert_eq!(taken, vec![1, 3]);
        assert_eq!(refusals.next_wake(), None);
        refusals.requeue(taken, due);
        assert_eq!(refusals.next_wake(), Some(due));
        assert_eq!(refusals.take_due(due, 10), vec![1, 3]);
    }

    #[test]
    fn given_refusals_when_alarms_are_raised_then_they_are_summarised_and_rate_limited() {
        let start = Instant::now();
        let mut refusals = Refusals::new(100 * MS, 1000 * MS, 5000 * MS);
        refusals.record(4, DENIED, start, 0.0);
        refusals.record(2, DENIED, start, 0.0);
        let first = refusals.take_alarm(start).unwrap();
        assert_eq!((first.refused, first.first_seq, first.last_seq), (2, 2, 4));
        refusals.record(8, DENIED, start + MS, 0.0);
        assert!(refusals.take_alarm(start + 4999 * MS).is_none());
        let second = refusals.take_alarm(start + 5000 * MS).unwrap();
        assert_eq!((second.refused, second.first_seq), (1, 8));
    }

    #[test]
    fn given_our_own_alarm_row_refused_when_recorded_then_no_new_alarm_but_a_retry() {
        let start = Instant::now();
        let mut refusals = Refusals::new(100 * MS, 1000 * MS, 5000 * MS);
        refusals.note_alarm_row(40);
        refusals.record(40, DENIED, start, 0.0);
        assert!(!refusals.alarm_due(start));
        assert_eq!(refusals.take_due(start + 100 * MS, 10), vec![40]);
    }

    #[test]
    fn given_an_unsendable_row_when_reported_twice_then_it_counts_once() {
        let mut unsendable = Unsendable::default();
        assert!(unsendable.first_time(5));
        assert!(!unsendable.first_time(5));
        assert!(unsendable.first_time(6));
    }

    #[test]
    fn given_a_stream_of_unsendable_rows_when_logged_then_one_line_per_interval_counts_the_rest() {
        let start = Instant::now();
        let mut unsendable = Unsendable::default();
        assert_eq!(unsendable.line_due(start), Some(0));
        for n in 1..=500 {
            assert_eq!(unsendable.line_due(start + n * MS), None);
        }
        assert_eq!(
            unsendable.line_due(start + UNSENDABLE_LOG_INTERVAL),
            Some(500)
        );
        assert_eq!(unsendable.line_due(start + UNSENDABLE_LOG_INTERVAL), None);
    }
}
