//! Packet limits the broker enforces without saying so. An MQTT 3.1.1 broker (and an MQTT 5 broker that
//! announces no limit) closes the connection when a PUBLISH exceeds its maximum packet size; resending the
//! same row after each reconnect would loop forever. When the broker closes the connection twice in a row
//! while the same row is the largest one written and unacknowledged, that row's size is taken as over the
//! limit for the rest of the run: the row (and every larger one) becomes unsendable, released to the store's
//! refusal policy, and costs no further reconnect. Pure: no I/O, no clock.

/// A row written to the network whose PUBACK has not arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SentRow {
    /// Outbox seq.
    pub(super) seq: i64,
    /// PUBLISH packet size in bytes.
    pub(super) size: u64,
    /// MQTT topic.
    pub(super) topic: String,
}

/// What a connection closed by the broker tells about packet sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// No row was waiting for its PUBACK: the close says nothing about sizes.
    NoSuspect,
    /// First close with this row the largest in flight: a suspicion, not yet a conclusion.
    Suspected(SentRow),
    /// Second close in a row with the same largest row: packets of its size are over the broker's limit.
    TooLarge(SentRow),
}

/// The suspicion carried from one connection to the next, and the limit learned so far.
#[derive(Debug, Default)]
pub(super) struct OversizeSuspects {
    suspect: Option<SentRow>,
    learned_max: Option<u64>,
}

impl OversizeSuspects {
    /// The packet limit to apply: `configured`, lowered by what was learned.
    pub(super) fn limit(&self, configured: u64) -> u64 {
        self.learned_max
            .map_or(configured, |learned| learned.min(configured))
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
            let limit = row.size.saturating_sub(1);
            self.learned_max = Some(self.learned_max.map_or(limit, |max| max.min(limit)));
            return Verdict::TooLarge(row);
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
        SentRow {
            seq,
            size,
            topic: "t".into(),
        }
    }

    #[test]
    fn given_two_closes_with_the_same_largest_row_then_its_size_is_over_the_limit() {
        let mut suspects = OversizeSuspects::default();
        assert_eq!(suspects.limit(1000), 1000);
        assert_eq!(
            suspects.on_closed_by_broker(Some(row(4, 900))),
            Verdict::Suspected(row(4, 900))
        );
        assert_eq!(suspects.limit(1000), 1000, "one close proves nothing");
        assert_eq!(
            suspects.on_closed_by_broker(Some(row(4, 900))),
            Verdict::TooLarge(row(4, 900))
        );
        assert_eq!(suspects.limit(1000), 899);
        assert_eq!(suspects.limit(500), 500);
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
        assert_eq!(suspects.limit(1000), 1000);
    }
}
