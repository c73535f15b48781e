//! The simulator's fault modes over real loopback TCP, observed with clients we did not write (tokio-modbus) or
//! with raw sockets where a client library would hide the misbehaviour (half frames). Every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use simulators::{Fault, FaultRule, MachineSpec, PlcSimulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_modbus::client::{tcp, Client, Context};
use tokio_modbus::prelude::{ExceptionCode, Reader, Request, Response, Slave, Writer};

/// Safety net for every wait; reached only when the simulator is broken.
const PATIENCE: Duration = Duration::from_secs(10);

fn manual_machine(unit_id: u8) -> MachineSpec {
    MachineSpec {
        cycle_time: Duration::from_secs(3600),
        stop_probability: 0.0,
        ..MachineSpec::new(unit_id)
    }
}

async fn start(units: &[u8]) -> PlcSimulator {
    let specs = units.iter().map(|&unit| manual_machine(unit)).collect();
    PlcSimulator::start("127.0.0.1:0", specs, 1).await.unwrap()
}

async fn connect(addr: SocketAddr, unit_id: u8) -> Context {
    tcp::connect_slave(addr, Slave(unit_id)).await.unwrap()
}

/// A raw FC 3 request for one register at `address` of unit 1, transaction id 7.
const RAW_READ: [u8; 12] = [0, 7, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1];

#[tokio::test]
async fn given_silent_unit_when_read_then_no_answer_comes_and_other_units_still_answer() {
    let sim = start(&[1, 2]).await;
    sim.arm(FaultRule::new(Fault::Silent).unit(2));
    let mut silent = connect(sim.local_addr(), 2).await;
    let mut healthy = connect(sim.local_addr(), 1).await;

    let unanswered = tokio::time::timeout(
        Duration::from_millis(300),
        silent.read_holding_registers(0, 1),
    )
    .await;
    let answered = healthy.read_holding_registers(20, 1).await.unwrap();

    assert!(unanswered.is_err(), "got {unanswered:?}");
    assert_eq!(answered, Ok(vec![1]));
    assert_eq!(sim.stats().faulted, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn given_delay_when_read_then_the_answer_is_correct_but_late() {
    let sim = start(&[1]).await;
    sim.arm(FaultRule::new(Fault::Delay(Duration::from_millis(200))).times(1));
    let mut ctx = connect(sim.local_addr(), 1).await;

    let started = tokio::time::Instant::now();
    let late = ctx.read_holding_registers(20, 1).await.unwrap();
    let waited = started.elapsed();
    let prompt = ctx.read_holding_registers(20, 1).await.unwrap();

    assert_eq!(late, Ok(vec![1]));
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert_eq!(prompt, Ok(vec![1]));
    sim.shutdown().await;
}

#[tokio::test]
async fn given_exception_rules_when_read_then_each_code_comes_back_for_its_range_only() {
    let sim = start(&[1]).await;
    let mut ctx = connect(sim.local_addr(), 1).await;
    for code in [0x01u8, 0x02, 0x03, 0x04, 0x06, 0x0A, 0x0B] {
        sim.clear_faults();
        sim.arm(FaultRule::new(Fault::Exception(code)).addresses(10..=11));

        let hit = ctx.read_holding_registers(9, 2).await.unwrap();
        let miss = ctx.read_holding_registers(12, 1).await.unwrap();

        assert_eq!(hit, Err(ExceptionCode::new(code)), "code {code:#04x}");
        assert!(miss.is_ok(), "code {code:#04x}: {miss:?}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn given_wrong_count_when_read_then_the_answer_has_more_or_fewer_registers() {
    let sim = start(&[1]).await;
    let mut ctx = connect(sim.local_addr(), 1).await;

    // `Client::call`, not `read_holding_registers`: tokio-modbus debug-asserts the count in the latter.
    let words_of = |response| match response {
        Response::ReadHoldingRegisters(words) => words,
        other => panic!("unexpected {other:?}"),
    };
    sim.arm(FaultRule::new(Fault::WrongCount(-1)).times(1));
    let fewer = ctx
        .call(Request::ReadHoldingRegisters(0, 4))
        .await
        .unwrap()
        .unwrap();
    sim.arm(FaultRule::new(Fault::WrongCount(2)).times(1));
    let more = ctx
        .call(Request::ReadHoldingRegisters(0, 4))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(words_of(fewer).len(), 3);
    assert_eq!(words_of(more).len(), 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn given_half_frame_then_stall_when_read_raw_then_half_arrives_and_then_nothing() {
    let sim = start(&[1]).await;
    sim.arm(FaultRule::new(Fault::HalfFrameThenStall).times(1));
    let mut socket = TcpStream::connect(sim.local_addr()).await.unwrap();

    socket.write_all(&RAW_READ).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 64];
    // A full answer would be 11 bytes; collect whatever arrives within a short window.
    while let Ok(read) =
        tokio::time::timeout(Duration::from_millis(300), socket.read(&mut buf)).await
    {
        let n = read.unwrap();
        assert!(n > 0, "a stall keeps the connection open");
        received.extend_from_slice(&buf[..n]);
    }

    assert_eq!(received.len(), 5, "half of an 11-byte frame: {received:?}");
    assert_eq!(received[..2], [0, 7]);
    sim.shutdown().await;
}

#[tokio::test]
async fn given_half_frame_then_reset_when_read_raw_then_half_arrives_and_the_connection_breaks() {
    let sim = start(&[1]).await;
    sim.arm(FaultRule::new(Fault::HalfFrameThenReset).times(1));
    let mut socket = TcpStream::connect(sim.local_addr()).await.unwrap();

    socket.write_all(&RAW_READ).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 64];
    let ended = loop {
        match tokio::time::timeout(PATIENCE, socket.read(&mut buf)).await {
            Err(_) => panic!("the connection neither ended nor broke"),
            Ok(Ok(0)) => break "eof",
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break "reset",
        }
    };

    assert_eq!(received.len(), 5, "{received:?}");
    assert_eq!(ended, "reset");
    sim.shutdown().await;
}

#[tokio::test]
async fn given_down_simulator_when_connecting_then_refused_and_after_coming_up_reads_work_again() {
    let sim = start(&[1]).await;
    let mut before = connect(sim.local_addr(), 1).await;
    before.read_holding_registers(20, 1).await.unwrap().unwrap();

    sim.go_down().await;
    let refused = TcpStream::connect(sim.local_addr()).await;
    let old = tokio::time::timeout(PATIENCE, before.read_holding_registers(20, 1))
        .await
        .expect("a closed connection fails instead of hanging");
    sim.come_up().await.unwrap();
    let mut after = connect(sim.local_addr(), 1).await;
    let read_after = after.read_holding_registers(20, 1).await.unwrap();

    assert!(refused.is_err());
    assert!(old.is_err(), "{old:?}");
    assert_eq!(read_after, Ok(vec![1]));
    assert!(sim.is_up());
    assert_eq!(sim.stats().connections, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn given_reboot_with_reset_when_reading_after_then_counters_start_from_zero() {
    let sim = start(&[1]).await;
    sim.set_producing(1, false);
    sim.advance(1, 50);
    let produced_before = sim.truth(1).produced;
    assert!(produced_before > 0);

    sim.reboot(Duration::from_millis(100), true).await.unwrap();
    let mut ctx = connect(sim.local_addr(), 1).await;
    let counters = ctx.read_holding_registers(0, 4).await.unwrap().unwrap();

    assert_eq!(counters, vec![0, 0, 0, 0]);
    assert_eq!(sim.truth(1).produced, produced_before, "truth survives");
    sim.shutdown().await;
}

#[tokio::test]
async fn given_writes_and_reads_when_counting_then_every_write_is_a_non_read() {
    let sim = start(&[1]).await;
    let mut ctx = connect(sim.local_addr(), 1).await;

    ctx.read_holding_registers(0, 2).await.unwrap().unwrap();
    ctx.read_coils(0, 3).await.unwrap().unwrap();
    let refused = ctx.write_single_register(0, 5).await.unwrap();
    let ledger = sim.requests();

    assert_eq!(refused, Err(ExceptionCode::IllegalFunction));
    let stats = sim.stats();
    assert_eq!((stats.reads, stats.non_reads), (2, 1));
    assert_eq!(
        ledger.iter().map(|r| r.function).collect::<Vec<_>>(),
        vec![3, 1, 6]
    );
    assert_eq!((ledger[0].address, ledger[0].quantity), (0, 2));
    sim.shutdown().await;
}
