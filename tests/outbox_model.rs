//! Model test of outbox delivery without a network: random sequences of enqueue (a store commit), publish,
//! PUBACK (out of order, accepted or refused with an MQTT 5 failure code), connection drop, crash (everything
//! in memory dropped) and restart (the store file reopened) run against the real `Store` and the publisher's
//! packet-id correlation (`publisher::Inflight`), checked against a simple in-memory model.
//!
//! A tiny stand-in for rumqttc's state machine hands out packet ids exactly as rumqttc 0.25 does (1..=window,
//! wrapping; a publish whose next id is still unacknowledged is held until that PUBACK frees it; a refused
//! PUBACK does not release a held publish, so the connection ends). Properties, checked after every step:
//! - seq strictly increases across commits, drops and restarts;
//! - a row leaves the store only after an accepted PUBACK for the packet id that carried it (the model knows
//!   which row each packet id carried; `Inflight` must name the same row);
//! - every enqueued row is eventually retired (a final healing phase delivers everything) or reported dropped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;
use serde_json::json;
use shopfloor_agent::publisher::{AckOutcome, Inflight, Refusal, Settled, Submitted};
use shopfloor_agent::store::{CycleWrite, OutboxDraft, Store, StoreOptions};

/// rumqttc's `max_inflight` and our window: small, so packet ids wrap and collide often.
const WINDOW: u16 = 4;
const REFUSED: Refusal = Refusal {
    code: Some(0x87),
    reason: "not_authorized",
};

#[derive(Debug, Clone)]
enum Op {
    /// Commit a cycle with this many rows.
    Enqueue(usize),
    /// Submit up to this many rows (refused rows first, then the outbox after the cursor).
    Publish(usize),
    /// The broker acknowledges its `n`-th outstanding packet id (modulo), accepting or refusing it.
    Ack { nth: usize, accepted: bool },
    /// The connection drops: a fresh session re-publishes every unacknowledged row.
    Drop,
    /// The process dies: everything in memory is gone, the store is closed.
    Crash,
    /// The process starts again and reopens the store file.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1_usize..4).prop_map(Op::Enqueue),
        5 => (1_usize..6).prop_map(Op::Publish),
        6 => (0_usize..8, prop::bool::weighted(0.8)).prop_map(|(nth, accepted)| Op::Ack { nth, accepted }),
        1 => Just(Op::Drop),
        1 => Just(Op::Crash),
        2 => Just(Op::Restart),
    ]
}

/// rumqttc's packet-id handling for one connection, as read from `state.rs`.
#[derive(Default)]
struct Wire {
    /// Requests handed to the client, not yet taken by the event loop.
    queue: VecDeque<i64>,
    /// Packet ids written and not yet acknowledged, with the row each carried.
    outstanding: BTreeMap<u16, i64>,
    /// A publish whose packet id was still in use, waiting for that id's PUBACK.
    collided: Option<(u16, i64)>,
    last_pkid: u16,
}

impl Wire {
    fn next_pkid(&mut self) -> u16 {
        let next = self.last_pkid + 1;
        if next == WINDOW {
            self.last_pkid = 0;
        } else {
            self.last_pkid = next;
        }
        next
    }

    /// The event loop takes requests while nothing collided and its window has room; each written publish
    /// is reported to `inflight`, which must name the same row.
    fn process(&mut self, inflight: &mut Inflight) -> Result<(), TestCaseError> {
        while self.collided.is_none() && self.outstanding.len() < usize::from(WINDOW) {
            let Some(seq) = self.queue.pop_front() else {
                break;
            };
            let pkid = self.next_pkid();
            if self.outstanding.contains_key(&pkid) {
                self.collided = Some((pkid, seq));
                break;
            }
            self.outstanding.insert(pkid, seq);
            let reported = inflight.on_outgoing_publish(pkid);
            prop_assert_eq!(reported, Ok(Submitted::Row(seq)));
        }
        Ok(())
    }
}

/// The publisher's memory of one process lifetime.
struct Process {
    store: Store,
    inflight: Inflight,
    wire: Wire,
    cursor: i64,
    refused: VecDeque<i64>,
}

impl Process {
    fn start(path: &std::path::Path) -> Process {
        Process {
            store: Store::open(path, &StoreOptions::default()).expect("store opens"),
            inflight: Inflight::default(),
            wire: Wire::default(),
            cursor: 0,
            refused: VecDeque::new(),
        }
    }

    fn new_connection(&mut self) {
        self.inflight = Inflight::default();
        self.wire = Wire::default();
        self.cursor = 0;
        self.refused.clear();
    }
}

/// What must be true, independent of the code under test.
#[derive(Default)]
struct Model {
    enqueued: BTreeSet<i64>,
    retired: BTreeSet<i64>,
    dropped: BTreeSet<i64>,
    highest_seq: i64,
}

impl Model {
    fn check_store(&self, store: &Store) -> Result<(), TestCaseError> {
        let present: BTreeSet<i64> = store
            .unacked(0, 1 << 20)
            .expect("unacked")
            .into_iter()
            .map(|row| row.seq)
            .collect();
        let expected: BTreeSet<i64> = self
            .enqueued
            .iter()
            .filter(|seq| !self.retired.contains(seq) && !self.dropped.contains(seq))
            .copied()
            .collect();
        prop_assert_eq!(present, expected, "rows in the store vs the model");
        Ok(())
    }
}

/// The period of the rows this model enqueues.
fn one_minute() -> shopfloor_agent::logic::window::Period {
    shopfloor_agent::logic::window::Period::parse("1m").unwrap()
}

fn enqueue(process: &mut Process, model: &mut Model, rows: usize) -> Result<(), TestCaseError> {
    let outbox = (0..rows)
        .map(|n| OutboxDraft::rollup("m/s/l/m1/rollup/1m".into(), json!({"n": n}), &one_minute()))
        .collect();
    let cycle = CycleWrite {
        outbox,
        now: 1_700_000_000_000,
        ..CycleWrite::default()
    };
    let outcome = process.store.commit_cycle(&cycle).expect("commit");
    if !outcome.dropped.is_empty() {
        // The store reports drops as ranges per topic; the rows of a range that are gone were dropped.
        let present: BTreeSet<i64> = process
            .store
            .unacked(0, 1 << 20)
            .expect("unacked")
            .into_iter()
            .map(|row| row.seq)
            .collect();
        for range in &outcome.dropped {
            let gone = (range.first_seq..=range.last_seq).filter(|seq| !present.contains(seq));
            model.dropped.extend(gone);
        }
    }
    prop_assert_eq!(outcome.seqs.len(), rows);
    for seq in outcome.seqs {
        prop_assert!(
            seq > model.highest_seq,
            "seq {} after {}",
            seq,
            model.highest_seq
        );
        model.highest_seq = seq;
        model.enqueued.insert(seq);
    }
    Ok(())
}

fn publish(process: &mut Process, count: usize) -> Result<(), TestCaseError> {
    for _ in 0..count {
        if process.inflight.outstanding() >= usize::from(WINDOW) {
            break;
        }
        let seq = match process.refused.pop_front() {
            Some(seq) => seq,
            None => match process
                .store
                .unacked(process.cursor, 1)
                .expect("unacked")
                .first()
            {
                Some(row) => {
                    process.cursor = row.seq;
                    row.seq
                }
                None => break,
            },
        };
        process.inflight.submitted(Submitted::Row(seq));
        process.wire.queue.push_back(seq);
        process.wire.process(&mut process.inflight)?;
    }
    Ok(())
}

/// The broker answers one outstanding packet id. Returns `true` when rumqttc would end the connection.
fn ack(
    process: &mut Process,
    model: &mut Model,
    nth: usize,
    accepted: bool,
) -> Result<bool, TestCaseError> {
    let Some(&pkid) = process
        .wire
        .outstanding
        .keys()
        .nth(nth % process.wire.outstanding.len().max(1))
    else {
        return Ok(false);
    };
    let carried = process.wire.outstanding.remove(&pkid).expect("outstanding");
    let outcome = if accepted {
        AckOutcome::Accepted
    } else {
        AckOutcome::Refused(REFUSED)
    };
    match process.inflight.on_puback(pkid, outcome) {
        Settled::Retire(seq) => {
            prop_assert!(accepted, "a refused PUBACK retired seq {}", seq);
            prop_assert_eq!(seq, carried, "pkid {} carried another row", pkid);
            process.store.retire(&[seq]).expect("retire");
            model.retired.insert(seq);
        }
        Settled::Refused(seq, refusal) => {
            prop_assert!(!accepted);
            prop_assert_eq!(seq, carried);
            prop_assert_eq!(refusal, REFUSED);
            process.refused.push_back(seq);
        }
        other => prop_assert!(false, "pkid {} carried a row, got {:?}", pkid, other),
    }
    match process.wire.collided {
        Some((held, seq)) if held == pkid => {
            if !accepted {
                // rumqttc resolves a collision only on a successful PUBACK: CollisionTimeout follows.
                return Ok(true);
            }
            process.wire.collided = None;
            process.wire.outstanding.insert(pkid, seq);
            let reported = process.inflight.on_outgoing_publish(pkid);
            prop_assert_eq!(reported, Ok(Submitted::Row(seq)));
            process.wire.process(&mut process.inflight)?;
        }
        _ => {}
    }
    Ok(false)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("outbox.db");
    let mut model = Model::default();
    let mut process = Some(Process::start(&path));
    for op in ops {
        match (op, process.as_mut()) {
            (Op::Restart, None) => process = Some(Process::start(&path)),
            (Op::Restart, Some(_)) | (_, None) => {}
            (Op::Crash, Some(_)) => process = None,
            (Op::Enqueue(rows), Some(live)) => enqueue(live, &mut model, rows)?,
            (Op::Publish(count), Some(live)) => publish(live, count)?,
            (Op::Ack { nth, accepted }, Some(live)) => {
                if ack(live, &mut model, nth, accepted)? {
                    live.new_connection();
                }
            }
            (Op::Drop, Some(live)) => live.new_connection(),
        }
        if let Some(live) = &process {
            model.check_store(&live.store)?;
        }
    }

    // Healing: the process runs, a fresh connection delivers everything, the broker accepts every PUBACK.
    let mut live = process.unwrap_or_else(|| Process::start(&path));
    live.new_connection();
    for _ in 0..10_000 {
        publish(&mut live, usize::from(WINDOW))?;
        if live.wire.outstanding.is_empty() {
            break;
        }
        ack(&mut live, &mut model, 0, true)?;
    }
    model.check_store(&live.store)?;
    let delivered: BTreeSet<i64> = model.retired.union(&model.dropped).copied().collect();
    prop_assert_eq!(
        &delivered,
        &model.enqueued,
        "every row retired or reported dropped"
    );
    prop_assert_eq!(live.store.backlog().expect("backlog").rows, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0b0c_5eed),
        ..ProptestConfig::default()
    })]

    #[test]
    fn given_random_enqueue_publish_ack_drop_crash_restart_when_replayed_then_nothing_is_lost_or_retired_early(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        run(ops)?;
    }
}

#[test]
fn given_out_of_order_acks_with_a_full_window_when_a_pkid_wraps_then_the_held_row_maps_to_the_freed_pkid(
) {
    // A fixed sequence that exercises the collision path: 4 rows fill the window, the second is acked first,
    // a fifth row collides on pkid 1 and goes out under it once pkid 1 is acked.
    let ops = vec![
        Op::Enqueue(3),
        Op::Enqueue(3),
        Op::Publish(4),
        Op::Ack {
            nth: 1,
            accepted: true,
        },
        Op::Publish(1),
        Op::Ack {
            nth: 0,
            accepted: true,
        },
        Op::Ack {
            nth: 0,
            accepted: false,
        },
        Op::Publish(2),
        Op::Crash,
        Op::Restart,
        Op::Publish(4),
    ];
    run(ops).expect("the fixed sequence holds");
}
