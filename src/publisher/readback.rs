//! MQTT 3.1.1 delivery evidence. A 3.1.1 broker acknowledges a publish its ACL denies and drops it, so a
//! PUBACK proves nothing. Instead the publisher subscribes to exactly the topic of each row it sends and
//! retires a row only when BOTH its PUBACK arrived and the broker delivered the same bytes back to that
//! subscription. A row acknowledged but not read back within the wait counts as refused. Pure bookkeeping of
//! one connection: time is an argument.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Rows of one connection awaiting their read-back, and the topics subscribed so far.
#[derive(Debug)]
pub(super) struct ReadBack {
    wait: Duration,
    subscribed: HashSet<String>,
    by_key: HashMap<(String, u64), i64>,
    rows: HashMap<i64, Pending>,
}

#[derive(Debug)]
struct Pending {
    key: (String, u64),
    acked_at: Option<Instant>,
    read_back: bool,
}

impl ReadBack {
    /// A row acknowledged but not read back after `wait` counts as not delivered.
    pub(super) fn new(wait: Duration) -> Self {
        Self {
            wait,
            subscribed: HashSet::new(),
            by_key: HashMap::new(),
            rows: HashMap::new(),
        }
    }

    /// True the first time `topic` is seen on this connection: the caller must subscribe to it before
    /// publishing (the broker handles one client's packets in order, so the subscription precedes the row).
    pub(super) fn needs_subscription(&mut self, topic: &str) -> bool {
        if self.subscribed.contains(topic) {
            return false;
        }
        self.subscribed.insert(topic.to_string());
        true
    }

    /// Row `seq` was handed over with these topic and payload digest.
    pub(super) fn sent(&mut self, seq: i64, topic: &str, digest: u64) {
        let key = (topic.to_string(), digest);
        self.by_key.insert(key.clone(), seq);
        self.rows.insert(
            seq,
            Pending {
                key,
                acked_at: None,
                read_back: false,
            },
        );
    }

    /// The broker acknowledged row `seq`; true when it was already read back (retire it now).
    pub(super) fn acked(&mut self, seq: i64, now: Instant) -> bool {
        let Some(pending) = self.rows.get_mut(&seq) else {
            return true;
        };
        if pending.read_back {
            self.remove(seq);
            return true;
        }
        pending.acked_at = Some(now);
        false
    }

    /// The broker delivered `digest` on `topic` to us; the seq to retire when that row was already acked.
    pub(super) fn read_back(&mut self, topic: String, digest: u64) -> Option<i64> {
        let seq = *self.by_key.get(&(topic, digest))?;
        let pending = self.rows.get_mut(&seq)?;
        if pending.acked_at.is_some() {
            self.remove(seq);
            return Some(seq);
        }
        pending.read_back = true;
        None
    }

    /// Rows acknowledged longer than the wait ago and never read back; they are forgotten here.
    pub(super) fn overdue(&mut self, now: Instant) -> Vec<i64> {
        let wait = self.wait;
        let mut seqs: Vec<i64> = self
            .rows
            .iter()
            .filter(|(_, p)| {
                p.acked_at
                    .is_some_and(|at| now.saturating_duration_since(at) >= wait)
            })
            .map(|(seq, _)| *seq)
            .collect();
        seqs.sort_unstable();
        for seq in &seqs {
            self.remove(*seq);
        }
        seqs
    }

    /// When the oldest acknowledged row's wait ends.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.rows
            .values()
            .filter_map(|p| p.acked_at)
            .min()
            .map(|at| at + self.wait)
    }

    /// Rows sent and not yet settled here.
    pub(super) fn waiting(&self) -> usize {
        self.rows.len()
    }

    fn remove(&mut self, seq: i64) {
        if let Some(pending) = self.rows.remove(&seq) {
            self.by_key.remove(&pending.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn given_ack_then_read_back_when_both_arrive_then_the_row_retires_once() {
        let now = Instant::now();
        let mut rb = ReadBack::new(WAIT);
        assert!(rb.needs_subscription("a/b"));
        assert!(!rb.needs_subscription("a/b"));
        rb.sent(7, "a/b", 11);
        assert!(!rb.acked(7, now));
        assert_eq!(rb.read_back("a/b".into(), 99), None, "other bytes");
        assert_eq!(rb.read_back("a/c".into(), 11), None, "other topic");
        assert_eq!(rb.read_back("a/b".into(), 11), Some(7));
        assert_eq!(rb.waiting(), 0);
        assert!(rb.overdue(now + WAIT).is_empty());
    }

    #[test]
    fn given_read_back_before_ack_when_the_ack_arrives_then_it_retires() {
        let now = Instant::now();
        let mut rb = ReadBack::new(WAIT);
        rb.sent(3, "t", 1);
        assert_eq!(rb.read_back("t".into(), 1), None);
        assert!(rb.acked(3, now));
        assert_eq!(rb.waiting(), 0);
    }

    #[test]
    fn given_an_ack_without_read_back_when_the_wait_ends_then_the_row_is_overdue_not_retired() {
        let now = Instant::now();
        let mut rb = ReadBack::new(WAIT);
        rb.sent(5, "t", 1);
        rb.sent(4, "t", 2);
        rb.sent(6, "t", 3);
        assert!(!rb.acked(5, now));
        assert!(!rb.acked(4, now));
        assert_eq!(rb.next_deadline(), Some(now + WAIT));
        assert!(rb.overdue(now + WAIT - Duration::from_millis(1)).is_empty());
        assert_eq!(rb.overdue(now + WAIT), vec![4, 5]);
        // Row 6 was never acknowledged: it is not overdue, it waits for its PUBACK.
        assert_eq!(rb.waiting(), 1);
        assert_eq!(rb.next_deadline(), None);
    }
}
