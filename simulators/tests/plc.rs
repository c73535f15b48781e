//! End-to-end tests of `PlcSimulator` over real loopback TCP with the tokio-modbus client: registers match the
//! ground truth, unit ids select machines, counters wrap, bad requests get exceptions, seeds are reproducible.
//! Waits are bounded polls of the truth, never timing assertions.

use std::net::SocketAddr;
use std::time::Duration;

use simulators::{MachineSpec, MachineState, PlcSimulator, Truth, REGISTER_COUNT};
use tokio_modbus::client::{tcp, Context};
use tokio_modbus::prelude::{ExceptionCode, Reader, Slave, SlaveContext, Writer};

/// Upper bound for waiting on timer-driven production; reached only if the simulator is broken.
const PATIENCE: Duration = Duration::from_secs(20);

/// A machine making a unit every 2 ms, with defects and stops, so a test sees everything within milliseconds.
fn fast_machine(unit_id: u8) -> MachineSpec {
    MachineSpec {
        cycle_time: Duration::from_millis(2),
        defect_probability: 0.3,
        stop_probability: 0.05,
        ..MachineSpec::new(unit_id)
    }
}

/// A machine whose timer never fires within a test; production happens only through `advance`.
fn manual_machine(unit_id: u8) -> MachineSpec {
    MachineSpec {
        cycle_time: Duration::from_secs(3600),
        defect_probability: 0.3,
        ..MachineSpec::new(unit_id)
    }
}

async fn connect(addr: SocketAddr, unit_id: u8) -> Context {
    tcp::connect_slave(addr, Slave(unit_id))
        .await
        .expect("the simulator accepts connections")
}

/// Waits until `unit_id`'s truth satisfies `done`, then freezes the machine and returns its final truth.
async fn produce_then_freeze(
    sim: &PlcSimulator,
    unit_id: u8,
    done: impl Fn(&Truth) -> bool,
) -> Truth {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done(&sim.truth(unit_id)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "unit {unit_id} did not produce: {:?}",
            sim.truth(unit_id)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.set_producing(unit_id, false);
    sim.truth(unit_id)
}

fn u32_at(words: &[u16], offset: usize) -> u32 {
    (u32::from(words[offset]) << 16) | u32::from(words[offset + 1])
}

#[tokio::test]
async fn given_running_machine_when_frozen_then_every_table_matches_the_truth() {
    let spec = MachineSpec {
        initial_produced: 1_000,
        ..fast_machine(1)
    };
    let reasons = spec.reasons.clone();
    let sim = PlcSimulator::start("127.0.0.1:0", vec![spec], 42)
        .await
        .unwrap();

    let truth = produce_then_freeze(&sim, 1, |truth| {
        truth.produced >= 30 && truth.defective >= 2
    })
    .await;
    let state = sim.state(1);
    let mut ctx = connect(sim.local_addr(), 1).await;
    let holding = ctx
        .read_holding_registers(0, REGISTER_COUNT)
        .await
        .unwrap()
        .unwrap();
    let input = ctx
        .read_input_registers(0, REGISTER_COUNT)
        .await
        .unwrap()
        .unwrap();
    let coils = ctx.read_coils(0, 3).await.unwrap().unwrap();
    let discrete = ctx.read_discrete_inputs(0, 3).await.unwrap().unwrap();

    assert_eq!(u64::from(u32_at(&holding, 0)), 1_000 + truth.produced);
    assert_eq!(u64::from(u32_at(&holding, 2)), truth.defective);
    for (index, reason) in reasons.iter().enumerate() {
        assert_eq!(
            u64::from(holding[10 + index]),
            truth.by_reason.get(reason).copied().unwrap_or(0),
            "{reason}"
        );
    }
    assert_eq!(truth.by_reason.values().sum::<u64>(), truth.defective);
    assert_eq!(holding[20], state.code());
    assert_eq!(input, holding);
    let expected_bits: Vec<bool> = (0..3).map(|bit| bit == state.bit_offset()).collect();
    assert_eq!(coils[..3], expected_bits[..]);
    assert_eq!(discrete[..3], expected_bits[..]);
    assert_eq!(sim.registers(1).to_vec(), holding);
    assert_eq!(sim.truth(1), truth, "a frozen machine makes nothing more");
    sim.shutdown().await;
}

#[tokio::test]
async fn given_two_machines_on_one_port_when_reading_each_unit_then_each_shows_its_own_block() {
    let first = MachineSpec {
        initial_produced: 0,
        ..fast_machine(1)
    };
    let second = MachineSpec {
        unit_id: 7,
        base_address: 100,
        initial_produced: 500_000,
        ..fast_machine(7)
    };
    let sim = PlcSimulator::start("127.0.0.1:0", vec![first, second], 3)
        .await
        .unwrap();
    assert_eq!(sim.units(), vec![1, 7]);

    let truth_1 = produce_then_freeze(&sim, 1, |truth| truth.produced >= 10).await;
    let truth_7 = produce_then_freeze(&sim, 7, |truth| truth.produced >= 10).await;
    let mut ctx = connect(sim.local_addr(), 1).await;
    let words_1 = ctx.read_holding_registers(0, 4).await.unwrap().unwrap();
    let misplaced_1 = ctx.read_holding_registers(100, 4).await.unwrap();
    ctx.set_slave(Slave(7));
    let words_7 = ctx.read_holding_registers(100, 4).await.unwrap().unwrap();
    let misplaced_7 = ctx.read_holding_registers(0, 4).await.unwrap();

    assert_eq!(u64::from(u32_at(&words_1, 0)), truth_1.produced);
    assert_eq!(u64::from(u32_at(&words_1, 2)), truth_1.defective);
    assert_eq!(u64::from(u32_at(&words_7, 0)), 500_000 + truth_7.produced);
    assert_eq!(u64::from(u32_at(&words_7, 2)), truth_7.defective);
    assert_eq!(misplaced_1, Err(ExceptionCode::IllegalDataAddress));
    assert_eq!(misplaced_7, Err(ExceptionCode::IllegalDataAddress));
    sim.shutdown().await;
}

#[tokio::test]
async fn given_counter_near_2_pow_32_when_producing_then_register_wraps_and_truth_keeps_counting() {
    let initial = u32::MAX - 2;
    let spec = MachineSpec {
        initial_produced: initial,
        stop_probability: 0.0,
        ..fast_machine(1)
    };
    let sim = PlcSimulator::start("127.0.0.1:0", vec![spec], 11)
        .await
        .unwrap();

    let truth = produce_then_freeze(&sim, 1, |truth| truth.produced >= 10).await;
    let mut ctx = connect(sim.local_addr(), 1).await;
    let words = ctx.read_holding_registers(0, 2).await.unwrap().unwrap();

    let expected = (u64::from(initial) + truth.produced) % (1u64 << 32);
    assert_eq!(u64::from(u32_at(&words, 0)), expected);
    assert!(expected < truth.produced, "the register wrapped past 2^32");
    sim.shutdown().await;
}

#[tokio::test]
async fn given_bad_requests_when_sent_then_exceptions_come_back_and_the_connection_survives() {
    let spec = MachineSpec {
        base_address: 40,
        ..manual_machine(1)
    };
    let sim = PlcSimulator::start("127.0.0.1:0", vec![spec], 1)
        .await
        .unwrap();
    let mut ctx = connect(sim.local_addr(), 1).await;

    assert_eq!(
        ctx.read_holding_registers(39, 1).await.unwrap(),
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        ctx.read_holding_registers(60, 2).await.unwrap(),
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        ctx.read_input_registers(61, 1).await.unwrap(),
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        ctx.read_coils(42, 2).await.unwrap(),
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        ctx.read_holding_registers(40, 126).await.unwrap(),
        Err(ExceptionCode::IllegalDataValue)
    );
    assert_eq!(
        ctx.write_single_register(40, 5).await.unwrap(),
        Err(ExceptionCode::IllegalFunction)
    );
    assert_eq!(
        ctx.write_single_coil(40, true).await.unwrap(),
        Err(ExceptionCode::IllegalFunction)
    );
    assert_eq!(
        ctx.write_multiple_registers(40, &[1, 2]).await.unwrap(),
        Err(ExceptionCode::IllegalFunction)
    );
    ctx.set_slave(Slave(9));
    assert_eq!(
        ctx.read_holding_registers(40, 1).await.unwrap(),
        Err(ExceptionCode::GatewayTargetDevice)
    );
    ctx.set_slave(Slave(1));
    let state = ctx.read_holding_registers(60, 1).await.unwrap().unwrap();

    assert_eq!(state, vec![MachineState::Running.code()]);
    assert_eq!(sim.truth(1), Truth::default(), "writes changed nothing");
    sim.shutdown().await;
}

#[tokio::test]
async fn given_set_counter_when_reading_then_only_the_raw_register_moves() {
    let spec = MachineSpec {
        stop_probability: 0.0,
        ..manual_machine(5)
    };
    let sim = PlcSimulator::start("127.0.0.1:0", vec![spec], 8)
        .await
        .unwrap();
    sim.set_producing(5, false);
    let mut ctx = connect(sim.local_addr(), 5).await;

    sim.advance(5, 10);
    let before_reset = ctx.read_holding_registers(0, 2).await.unwrap().unwrap();
    sim.set_counter(5, 0);
    let after_reset = ctx.read_holding_registers(0, 2).await.unwrap().unwrap();
    sim.advance(5, 3);
    let counting_on = ctx.read_holding_registers(0, 2).await.unwrap().unwrap();
    sim.set_counter(5, u32::MAX);
    sim.advance(5, 2);
    let across_wrap = ctx.read_holding_registers(0, 2).await.unwrap().unwrap();

    assert_eq!(u32_at(&before_reset, 0), 10);
    assert_eq!(u32_at(&after_reset, 0), 0);
    assert_eq!(u32_at(&counting_on, 0), 3);
    assert_eq!(u32_at(&across_wrap, 0), 1);
    assert_eq!(sim.raw_produced(5), 1);
    assert_eq!(sim.truth(5).produced, 15);
    sim.shutdown().await;
}

#[tokio::test]
async fn given_same_seed_when_advancing_equally_then_truth_and_registers_match() {
    let machines = || vec![manual_machine(1), manual_machine(2)];
    let first = PlcSimulator::start("127.0.0.1:0", machines(), 42)
        .await
        .unwrap();
    let second = PlcSimulator::start("127.0.0.1:0", machines(), 42)
        .await
        .unwrap();
    let other_seed = PlcSimulator::start("127.0.0.1:0", machines(), 43)
        .await
        .unwrap();
    for sim in [&first, &second, &other_seed] {
        for unit_id in [1, 2] {
            sim.set_producing(unit_id, false);
            sim.advance(unit_id, 1_000);
        }
    }
    let mut first_ctx = connect(first.local_addr(), 2).await;
    let mut second_ctx = connect(second.local_addr(), 2).await;

    let first_words = first_ctx
        .read_holding_registers(0, REGISTER_COUNT)
        .await
        .unwrap()
        .unwrap();
    let second_words = second_ctx
        .read_holding_registers(0, REGISTER_COUNT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first_words, second_words);
    for unit_id in [1, 2] {
        assert_eq!(first.snapshot(unit_id), second.snapshot(unit_id));
        assert_ne!(first.truth(unit_id), other_seed.truth(unit_id));
    }
    assert_ne!(
        first.truth(1),
        first.truth(2),
        "each unit has its own random stream"
    );
    for sim in [first, second, other_seed] {
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn given_open_connection_when_shut_down_then_the_client_sees_the_connection_end() {
    let sim = PlcSimulator::start("127.0.0.1:0", vec![manual_machine(1)], 1)
        .await
        .unwrap();
    let mut ctx = connect(sim.local_addr(), 1).await;
    ctx.read_holding_registers(0, 1).await.unwrap().unwrap();

    sim.shutdown().await;
    let after = tokio::time::timeout(PATIENCE, ctx.read_holding_registers(0, 1)).await;

    assert!(
        matches!(after, Ok(Err(_))),
        "expected a transport error, got {after:?}"
    );
}

#[tokio::test]
async fn given_duplicate_unit_ids_when_starting_then_start_fails_naming_the_unit() {
    let result =
        PlcSimulator::start("127.0.0.1:0", vec![manual_machine(3), manual_machine(3)], 1).await;

    let error = result.err().expect("duplicate unit ids are rejected");
    assert!(format!("{error:#}").contains("unit 3"), "{error:#}");
}
