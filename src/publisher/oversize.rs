//! Rows the broker answers by closing the connection. An MQTT 3.1.1 broker (and an MQTT 5 broker that
//! announces no limit) closes the connection when a PUBLISH exceeds its maximum packet size (some brokers do
//! the same for a publish their ACL denies); resending the same row after each reconnect would loop forever.
//! When the broker closes the connection twice in a row while the same row is the largest one written and
//! unacknowledged, that row is given up for the rest of the run: it stays in the outbox as unsendable,
//! released to the store's refusal policy, and costs no further reconnect. Only that row: a global size limit
//! learned this way would wrongly block every row of that size if the cause was an ACL. Pure: no I/O, no clock.

use std::collections::HashSet;

/// Most given-up seqs remembered (beyond that, a row may cost two more reconnects before it is given up).
const GIVEN_UP_REMEMBERED: usize = 4096;

/// A row written to the network whose PUBACK has not arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SentRow {
    /// Outbox seq.
    pub(super) seq: i64,
    /// PUBLISH packet size in bytes.
    pub(super) size: u64,
    /// MQTT topic.
    pub(super) topic: String,
    /// When it was handed to rumqttc (the start of its PUBACK latency).
    pub(super) handed_over: std::time::Instant,
}

/// What a connection closed by the broker tells about packet sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// No row was waiting for its PUBACK: the close says nothing about sizes.
    NoSuspect,
    /// First close with this row the largest in flight: a suspicion, not yet a conclusion.
    Suspected(SentRow),
    /// Second close in a row with the same largest row: it is given up for the rest of the run.
    GivenUp(SentRow),
}

/// The suspicion carried from one connection to the next, and the rows given up.
#[derive(Debug, Default)]
pub(super) struct OversizeSuspects {
    suspect: Option<SentRow>,
    given_up: HashSet<i64>,
}

impl OversizeSuspects {
    /// Whether row `seq` was given up: it must not be sent again in this run.
    pub(super) fn is_given_up(&self, seq: i64) -> bool {
        self.given_up.contains(&seq)
    }

    /// The broker closed a connection that had passed CONNACK; `largest` is the largest row written to the
    /// network and still unacknowledged at that moment.
    pub(super) fn on_closed_by_broker(&mut self, largest: Option<SentRow>) -> Verdict {
        let Some(row) = largest else {
            self.suspect = None;
            return Verdict::NoSuspect;
        };
        if self.suspect.as_ref().is_some_and(|s| s.seq == row.seq) {
            self.suspect = None;
            if self.given_up.len() < GIVEN_UP_REMEMBERED {
                self.given_up.insert(row.seq);
            }
            return Verdict::GivenUp(row);
        }
        self.suspect = Some(row.clone());
        Verdict::Suspected(row)
    }

    /// A connection ended any other way (timeout, watchdog, shutdown): the suspicion lapses.
    pub(super) fn on_other_end(&mut self) {
        self.suspect = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, size: u64) -> SentRow {
        // One instant for every row, so rows with the same seq and size compare equal.
        static HANDED_OVER: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        SentRow {
            seq,
            size,
            topic: "t".into(),
            handed_over: *HANDED_OVER.get_or_init(std::time::Instant::now),
        }
    }

    #[test]
    fn given_two_closes_with_the_same_largest_row_then_that_row_alone_is_given_up() {
        let mut suspects = OversizeSuspects::default();
        assert_eq!(
            suspects.on_closed_by_broker(Some(row(4, 900))),
            Verdict::Suspected(row(4, 900))
        );
        assert!(!suspects.is_given_up(4), "one close proves nothing");
        assert_eq!(
            suspects.on_closed_by_broker(Some(row(4, 900))),
            Verdict::GivenUp(row(4, 900))
        );
        assert!(suspects.is_given_up(4));
        assert!(!suspects.is_given_up(5));
    }

    #[test]
    fn given_closes_with_different_rows_or_other_ends_then_nothing_is_concluded() {
        let mut suspects = OversizeSuspects::default();
        suspects.on_closed_by_broker(Some(row(4, 900)));
        assert_eq!(
            suspects.on_closed_by_broker(Some(row(5, 900))),
            Verdict::Suspected(row(5, 900))
        );
        suspects.on_other_end();
        assert_eq!(
            suspects.on_closed_by_broker(Some(row(5, 900))),
            Verdict::Suspected(row(5, 900))
        );
        assert_eq!(suspects.on_closed_by_broker(None), Verdict::NoSuspect);
        assert!(!suspects.is_given_up(4) && !suspects.is_given_up(5));
    }
}
