//! Arbitrary bytes as Modbus responses, over real TCP from `simulators::ScriptedServer`: first straight into
//! `Connection::read` (a seeded proptest), then into the running poller task while a healthy PLC keeps
//! polling. Nothing may panic (the test binary aborts on a panic), and nothing but a well-formed answer of the
//! right length may come back as a value.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestRunner};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shopfloor_agent::logic::decode::{DataType, Table};
use shopfloor_agent::poller::frame::function_code;
use shopfloor_agent::poller::Connection;
use simulators::{PlcSimulator, Reply, ScriptedServer};

use super::{frozen_machine, machine_tags, plc_config, tag, Poll};

/// Garbage answers fed to the running poller (each broken connection costs a tick plus a short backoff).
const GARBAGE_REPLIES: u64 = 120;

/// Replies a client must survive for a read of `count` items of `table`: raw garbage, garbage behind a valid
/// header, near-valid answers with a random byte count, exceptions, silence, a closed connection, and (so the
/// happy path is fuzzed too) well-formed answers of the right length.
fn replies(table: Table, count: u16) -> impl Strategy<Value = Reply> {
    let function = function_code(table);
    let bytes = match table {
        Table::Coil | Table::Discrete => usize::from(count).div_ceil(8),
        Table::Holding | Table::Input => usize::from(count) * 2,
    };
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Reply::Raw),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Reply::Pdu),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..24)).prop_map(
            move |(byte_count, data)| {
                let mut pdu = vec![function, byte_count];
                pdu.extend(data);
                Reply::Pdu(pdu)
            }
        ),
        (any::<u8>(), any::<u8>())
            .prop_map(|(function, code)| Reply::Pdu(vec![function | 0x80, code])),
        proptest::collection::vec(any::<u8>(), bytes..=bytes).prop_map(move |data| {
            let mut pdu = vec![function, data.len() as u8];
            pdu.extend(data);
            Reply::Pdu(pdu)
        }),
        Just(Reply::Silence),
        Just(Reply::Close),
    ]
}

fn table(index: u8) -> Table {
    [Table::Coil, Table::Discrete, Table::Holding, Table::Input][usize::from(index % 4)]
}

/// A table, a count and a reply to a read of them.
fn cases() -> impl Strategy<Value = (u8, u16, Reply)> {
    (0u8..4, 1u16..=20).prop_flat_map(|(table_index, count)| {
        (
            Just(table_index),
            Just(count),
            replies(table(table_index), count),
        )
    })
}

#[test]
fn given_arbitrary_response_bytes_when_read_through_a_connection_then_nothing_panics_and_only_right_lengths_pass(
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(ScriptedServer::start("127.0.0.1:0", Reply::Silence))
        .unwrap();
    let address = server.local_addr().to_string();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 160,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x0b5e_55ed),
        ..ProptestConfig::default()
    });
    let outcomes = [std::cell::Cell::new(0usize), std::cell::Cell::new(0usize)];
    runner
        .run(&cases(), |(table_index, count, reply)| {
            server.push(reply);
            let result = runtime.block_on(async {
                let mut connection = Connection::connect(&address, Duration::from_secs(5))
                    .await
                    .expect("the scripted server accepts");
                connection
                    .read(1, table(table_index), 0, count, Duration::from_millis(40))
                    .await
            });
            if let Ok(items) = &result {
                prop_assert_eq!(items.len(), usize::from(count));
            }
            let slot = &outcomes[usize::from(result.is_ok())];
            slot.set(slot.get() + 1);
            Ok(())
        })
        .unwrap();
    eprintln!(
        "fuzzed reads: {} failed cleanly, {} decoded",
        outcomes[0].get(),
        outcomes[1].get()
    );
    assert!(outcomes[1].get() > 0, "the well-formed answers decode");
    assert_eq!(server.requests(), 160);
    runtime.block_on(server.shutdown());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_device_answering_garbage_when_polled_then_the_poller_survives_and_another_plc_keeps_polling(
) {
    let garbage = ScriptedServer::start("127.0.0.1:0", Reply::Silence)
        .await
        .unwrap();
    let mut rng = StdRng::seed_from_u64(0xBAD_F00D);
    for _ in 0..GARBAGE_REPLIES {
        let length = rng.random_range(0..32);
        let bytes: Vec<u8> = (0..length).map(|_| rng.random()).collect();
        garbage.push(if rng.random_bool(0.5) {
            Reply::Raw(bytes)
        } else {
            Reply::Pdu(bytes)
        });
    }
    let healthy = PlcSimulator::start("127.0.0.1:0", vec![frozen_machine(1)], 3)
        .await
        .unwrap();
    let tags = vec![
        tag(1, Table::Holding, 0, DataType::U32),
        tag(2, Table::Input, 5, DataType::F64),
        tag(3, Table::Coil, 7, DataType::Bool),
    ];
    let garbage_poll = Poll::start(
        plc_config(&garbage.local_addr().to_string(), |plc| {
            plc.poll_interval = Duration::from_millis(50);
            plc.timeout = Duration::from_millis(60);
            plc.backoff_max = Duration::from_millis(50);
        }),
        tags,
    );
    let healthy_poll = Poll::start(
        plc_config(&healthy.local_addr().to_string(), |_| {}),
        machine_tags(1, 0),
    );

    crate::support::wait_until(super::PATIENCE, "the garbage is used up", || {
        garbage.requests() >= GARBAGE_REPLIES
    })
    .await;
    healthy_poll
        .wait_reads(0, 5, "the healthy PLC keeps polling")
        .await;
    garbage_poll.stop().await;
    healthy_poll.stop().await;

    assert!(
        garbage_poll.sample_count() > 20,
        "{}",
        garbage_poll.sample_count()
    );
    for (index, tag) in garbage_poll.plan.tags.iter().enumerate() {
        for reading in garbage_poll.readings(index).into_iter().flatten() {
            assert_eq!(reading.len(), usize::from(tag.count()));
        }
    }
    garbage.shutdown().await;
    healthy.shutdown().await;
}
