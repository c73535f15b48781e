//! Correlates rumqttc's packet ids with what we submitted, so a PUBACK can retire the right outbox row.
//!
//! rumqttc's `AsyncClient::publish` does not return the packet id; the event loop reports it later as
//! `Event::Outgoing(Outgoing::Publish(pkid))`, in the order the requests were submitted (see the proof in
//! the `publisher` module header). It also decides what a PUBACK means for an outbox row: only an accepted
//! PUBACK for the packet id that carried the row may retire it (ARCHITECTURE.md, invariant 4; with MQTT 3.1.1
//! the session also waits for the row's read-back). Pure bookkeeping: no I/O, no clock. Public so the outbox
//! model test (`tests/outbox_model.rs`) can drive it without a network.

use std::collections::{HashMap, VecDeque};

use super::link::{AckOutcome, Refusal};

/// What one submitted QoS 1 publish carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// An outbox row; retired from the store when its PUBACK arrives.
    Row(i64),
    /// A live message: retained, latest only, not durable.
    Live,
    /// A status message (online/offline).
    Status,
}

/// What a PUBACK settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The broker accepted this outbox row: delete it from the store.
    Retire(i64),
    /// The broker refused this outbox row (MQTT 5 failure reason): it stays in the outbox, to be retried.
    Refused(i64, Refusal),
    /// A live or status message was acknowledged (or refused); nothing durable depends on it.
    Transient(Submitted, AckOutcome),
    /// No publish is waiting under this packet id (a duplicate or stray PUBACK); nothing to do.
    Unknown,
}

/// The submitted publishes of ONE connection, from hand-over to rumqttc until their PUBACK.
#[derive(Debug, Default)]
pub struct Inflight {
    /// Handed to rumqttc, packet id not yet known; in submission order.
    awaiting_pkid: VecDeque<Submitted>,
    /// Written to the network under this packet id, PUBACK not yet received.
    awaiting_ack: HashMap<u16, Submitted>,
}

/// The tracker and rumqttc disagree; the connection must be rebuilt (rows are then re-sent, at least once).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Desync {
    /// rumqttc reported a publish we never submitted.
    #[error("rumqttc reported publish pkid {0} but nothing was waiting for a packet id")]
    UnexpectedPublish(u16),
    /// rumqttc reused a packet id whose PUBACK we have not seen.
    #[error("rumqttc reused pkid {0} while it was still awaiting its PUBACK")]
    PkidInUse(u16),
}

impl Inflight {
    /// Records a publish just handed to rumqttc.
    pub fn submitted(&mut self, what: Submitted) {
        self.awaiting_pkid.push_back(what);
    }

    /// Handles `Outgoing::Publish(pkid)`: the oldest submission went out under `pkid`.
    pub fn on_outgoing_publish(&mut self, pkid: u16) -> Result<Submitted, Desync> {
        let what = self
            .awaiting_pkid
            .pop_front()
            .ok_or(Desync::UnexpectedPublish(pkid))?;
        if self.awaiting_ack.insert(pkid, what).is_some() {
            return Err(Desync::PkidInUse(pkid));
        }
        Ok(what)
    }

    /// Handles a PUBACK for `pkid` with its outcome: frees the packet id and says what it settled. A row is
    /// retired only when the broker accepted it; a refused row stays in the outbox.
    pub fn on_puback(&mut self, pkid: u16, outcome: AckOutcome) -> Settled {
        match (self.awaiting_ack.remove(&pkid), outcome) {
            (None, _) => Settled::Unknown,
            (Some(Submitted::Row(seq)), AckOutcome::Accepted) => Settled::Retire(seq),
            (Some(Submitted::Row(seq)), AckOutcome::Refused(refusal)) => {
                Settled::Refused(seq, refusal)
            }
            (Some(other), outcome) => Settled::Transient(other, outcome),
        }
    }

    /// Publishes submitted and not yet acknowledged.
    pub fn outstanding(&self) -> usize {
        self.awaiting_pkid.len() + self.awaiting_ack.len()
    }

    /// Seqs of outbox rows written to the network (packet id known) whose PUBACK has not arrived.
    pub fn rows_on_the_wire(&self) -> impl Iterator<Item = i64> + '_ {
        self.awaiting_ack.values().filter_map(|what| match what {
            Submitted::Row(seq) => Some(*seq),
            _ => None,
        })
    }

    /// Outbox rows submitted and not yet acknowledged.
    pub fn outstanding_rows(&self) -> usize {
        self.awaiting_pkid
            .iter()
            .chain(self.awaiting_ack.values())
            .filter(|what| matches!(what, Submitted::Row(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: AckOutcome = AckOutcome::Accepted;

    #[test]
    fn given_submissions_in_order_when_pkids_arrive_then_each_puback_names_its_own_row() {
        let mut inflight = Inflight::default();
        inflight.submitted(Submitted::Status);
        inflight.submitted(Submitted::Row(7));
        inflight.submitted(Submitted::Row(8));
        assert_eq!(inflight.on_outgoing_publish(1), Ok(Submitted::Status));
        assert_eq!(inflight.on_outgoing_publish(2), Ok(Submitted::Row(7)));
        assert_eq!(inflight.on_outgoing_publish(3), Ok(Submitted::Row(8)));
        assert_eq!(inflight.outstanding(), 3);
        assert_eq!(inflight.outstanding_rows(), 2);

        // Acks may come in any order; each names the row sent under that pkid.
        assert_eq!(inflight.on_puback(3, OK), Settled::Retire(8));
        assert_eq!(
            inflight.on_puback(1, OK),
            Settled::Transient(Submitted::Status, OK)
        );
        assert_eq!(inflight.on_puback(2, OK), Settled::Retire(7));
        assert_eq!(inflight.on_puback(2, OK), Settled::Unknown);
        assert_eq!(inflight.outstanding(), 0);
    }

    #[test]
    fn given_a_recycled_pkid_when_the_old_one_was_acked_first_then_the_new_row_maps_to_it() {
        let mut inflight = Inflight::default();
        inflight.submitted(Submitted::Row(1));
        inflight.submitted(Submitted::Row(2));
        assert_eq!(inflight.on_outgoing_publish(1), Ok(Submitted::Row(1)));
        assert_eq!(inflight.on_puback(1, OK), Settled::Retire(1));
        // rumqttc emits the collided publish only after the PUBACK that freed its pkid.
        assert_eq!(inflight.on_outgoing_publish(1), Ok(Submitted::Row(2)));
        assert_eq!(inflight.on_puback(1, OK), Settled::Retire(2));
    }

    #[test]
    fn given_a_refused_puback_when_settled_then_the_row_is_not_retired_and_the_pkid_is_free() {
        let mut inflight = Inflight::default();
        inflight.submitted(Submitted::Row(9));
        assert_eq!(inflight.on_outgoing_publish(1), Ok(Submitted::Row(9)));
        let refusal = Refusal {
            code: Some(0x87),
            reason: "not_authorized",
        };
        assert_eq!(
            inflight.on_puback(1, AckOutcome::Refused(refusal)),
            Settled::Refused(9, refusal)
        );
        assert_eq!(inflight.outstanding(), 0);
        assert_eq!(inflight.on_puback(1, OK), Settled::Unknown);
    }

    #[test]
    fn given_nothing_submitted_when_a_publish_is_reported_then_it_is_a_desync() {
        let mut inflight = Inflight::default();
        assert_eq!(
            inflight.on_outgoing_publish(4),
            Err(Desync::UnexpectedPublish(4))
        );
    }

    #[test]
    fn given_a_pkid_awaiting_its_ack_when_it_is_reported_again_then_it_is_a_desync() {
        let mut inflight = Inflight::default();
        inflight.submitted(Submitted::Row(1));
        inflight.submitted(Submitted::Row(2));
        assert_eq!(inflight.on_outgoing_publish(5), Ok(Submitted::Row(1)));
        assert_eq!(inflight.on_outgoing_publish(5), Err(Desync::PkidInUse(5)));
    }
}
