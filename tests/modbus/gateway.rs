//! Many units behind one Modbus/TCP connection: every table read and decoded, requests serialised and paced,
//! a silent unit costing at most one timeout per cycle and then backed off alone while the others keep
//! polling, and not a single write request in a full run.

use std::time::Duration;

use shopfloor_agent::logic::decode::{DataType, Table, Value};
use shopfloor_agent::poller::TagError;
use simulators::{Fault, FaultRule, MachineState, PlcSimulator};

use super::{frozen_machine, machine_tags, plc_config, tag, Poll, PATIENCE};
use crate::support::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_three_units_and_every_table_when_polled_with_a_pause_then_values_match_requests_are_paced_and_nothing_is_written(
) {
    // Given three frozen machines with distinct counters behind one address, and a plan over all four tables.
    let sim = PlcSimulator::start(
        "127.0.0.1:0",
        vec![frozen_machine(1), frozen_machine(2), frozen_machine(3)],
        5,
    )
    .await
    .unwrap();
    let mut tags = Vec::new();
    for unit in 1..=3u8 {
        sim.set_producing(unit, false);
        sim.advance(unit, 40 * u64::from(unit));
        sim.set_counter(unit, 100_000 * u32::from(unit) + 7);
        tags.extend([
            tag(unit, Table::Holding, 0, DataType::U32),
            tag(unit, Table::Holding, 20, DataType::U16),
            tag(unit, Table::Input, 2, DataType::U32),
            tag(unit, Table::Coil, 0, DataType::Bool),
            tag(unit, Table::Discrete, 2, DataType::Bool),
        ]);
    }
    let pause = Duration::from_millis(15);
    let poll = Poll::start(
        plc_config(&sim.local_addr().to_string(), |plc| {
            plc.poll_interval = Duration::from_millis(200);
            plc.pause_between_requests = pause;
            plc.max_gap = 18;
        }),
        tags,
    );

    // When it has polled for a few cycles.
    poll.wait_reads(0, 8, "eight reads of unit 1").await;
    poll.stop().await;

    // Then every tag decodes to exactly what the simulator holds.
    for unit in 1..=3u8 {
        let registers = sim.registers(unit);
        let base = 5 * usize::from(unit - 1);
        let expected = [
            Value::UInt(100_000 * u64::from(unit) + 7),
            Value::UInt(u64::from(registers[20])),
            Value::UInt((u64::from(registers[2]) << 16) | u64::from(registers[3])),
            Value::Bool(sim.state(unit) == MachineState::Running),
            Value::Bool(sim.state(unit) == MachineState::Fault),
        ];
        for (offset, expected) in expected.iter().enumerate() {
            let values = poll.values(base + offset);
            assert!(values.len() >= 8, "unit {unit} tag {offset}: {values:?}");
            assert!(
                values.iter().all(|v| v == expected),
                "unit {unit} tag {offset}: {values:?} != {expected:?}"
            );
        }
    }
    // Four requests per unit (holding merged, input, coil, discrete), one connection, paced, read-only.
    let health = poll.health();
    assert_eq!(poll.plan.requests.len(), 12);
    assert_eq!(health.requests_per_poll, 12);
    assert!(health
        .units
        .iter()
        .all(|u| u.requests_per_poll == 4 && u.up));
    let ledger = sim.requests();
    assert!(ledger.iter().all(|r| r.connection == 1));
    for pair in ledger.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= pause, "requests {gap:?} apart, pause is {pause:?}");
    }
    let stats = sim.stats();
    assert_eq!(stats.non_reads, 0, "a full poll run sends no write");
    assert!(stats.reads >= 8 * 12, "{stats:?}");
    eprintln!(
        "measured: {} requests/poll, request RTT p50 {:?} ms p99 {:?} ms, cycle {:?} ms (pause {:?} between requests)",
        health.requests_per_poll, health.rtt_p50_ms(), health.rtt_p99_ms(), health.rtt_ms, pause
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_silent_unit_behind_the_gateway_when_polled_then_one_timeout_per_cycle_then_backoff_while_others_poll(
) {
    // Given units 1..=3 on one gateway, unit 2 accepting requests but never answering (timeouts).
    let sim = PlcSimulator::start(
        "127.0.0.1:0",
        vec![frozen_machine(1), frozen_machine(2), frozen_machine(3)],
        6,
    )
    .await
    .unwrap();
    sim.arm(FaultRule::new(Fault::Silent).unit(2));
    let tags: Vec<_> = (1..=3).flat_map(|unit| machine_tags(unit, 0)).collect();
    let poll = Poll::start(
        plc_config(&sim.local_addr().to_string(), |plc| {
            plc.unit_failure_threshold = 2;
            plc.unit_backoff = Duration::from_millis(1500);
        }),
        tags,
    );

    // When it runs until unit 2 is backed off and the healthy units have kept reading.
    wait_until(PATIENCE, "unit 2 backed off", || {
        poll.health()
            .units
            .iter()
            .any(|u| u.unit_id == 2 && u.backed_off)
    })
    .await;
    poll.wait_reads(0, 10, "unit 1 keeps polling").await;
    poll.wait_reads(6, 10, "unit 3 keeps polling").await;

    // Then unit 2 got at most one request per cycle (its coil read is skipped after the holding timeout), …
    let ledger = sim.requests();
    let mut unit2_in_cycle = 0;
    for record in &ledger {
        match (record.unit_id, record.function, record.address) {
            (1, 3, 0) => unit2_in_cycle = 0,
            (2, ..) => {
                unit2_in_cycle += 1;
                assert!(
                    unit2_in_cycle <= 1,
                    "two requests to the silent unit in one cycle"
                );
            }
            _ => {}
        }
    }
    // … it is skipped while backed off, the connection was never dropped for it, and it went down once.
    assert!(poll
        .readings(3)
        .iter()
        .any(|r| matches!(r, Err(TagError::UnitSkipped { unit_id: 2 }))));
    assert!(poll
        .readings(3)
        .iter()
        .any(|r| matches!(r, Err(TagError::Timeout(_)))));
    assert_eq!(sim.stats().connections, 1);
    let down: Vec<_> = poll.transitions(Some(2));
    assert_eq!(down.iter().filter(|t| !t.up).count(), 1, "{down:?}");
    assert!(
        poll.transitions(None).iter().all(|t| t.up),
        "the PLC itself never went down"
    );

    // When unit 2 answers again, it is retried after its backoff and reads resume.
    sim.clear_faults();
    poll.wait_reads(3, 3, "unit 2 reads again after its backoff")
        .await;
    let unit2 = poll.transitions(Some(2));
    assert!(unit2.last().is_some_and(|t| t.up), "{unit2:?}");
    let health = poll.health();
    eprintln!(
        "measured with a silent unit: p50 {:?} ms p99 {:?} ms per request, unit 2 requests/poll {}",
        health.rtt_p50_ms(),
        health.rtt_p99_ms(),
        health.units[1].requests_per_poll
    );
    poll.stop().await;
    sim.shutdown().await;
}
