//! `shopfloor-agent probe` against the simulator: a producing machine whose u32 counters are stored word-swapped
//! (CDAB) at base address 100. The probe must name address 100, u32, CDAB as the produced counter, flag the
//! unmapped addresses around the block, and send nothing but reads.

use std::time::Duration;

use shopfloor_agent::logic::decode::{DataType, Table};
use shopfloor_agent::probe::{self, Cell, Order, ProbeRequest};
use simulators::{CounterLayout, MachineSpec, PlcSimulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_producing_machine_with_cdab_counters_when_probed_then_the_counter_and_its_order_are_found(
) {
    // Given a machine producing every 10 ms, its counter already past 65 535 so the high word matters.
    let sim = PlcSimulator::start(
        "127.0.0.1:0",
        vec![MachineSpec {
            base_address: 100,
            cycle_time: Duration::from_millis(10),
            stop_probability: 0.0,
            defect_probability: 0.0,
            initial_produced: 0x0001_2345,
            counter_layout: CounterLayout::Cdab,
            ..MachineSpec::new(4)
        }],
        21,
    )
    .await
    .unwrap();
    let request = ProbeRequest {
        address: sim.local_addr().to_string(),
        unit_id: 4,
        table: Table::Holding,
        start: 96,
        count: 30,
        timeout: Duration::from_secs(2),
    };

    // When probed twice, 300 ms apart.
    let report = probe::probe(&request, 2, Duration::from_millis(300))
        .await
        .unwrap();
    let text = probe::run(&request, 2, Duration::from_millis(300), None)
        .await
        .unwrap();

    // Then the best counter candidate is the produced counter, u32 CDAB at address 100, …
    let best = report.candidates[0];
    assert_eq!(
        (best.address, best.data_type, best.order),
        (100, DataType::U32, Some(Order::Cdab)),
        "{text}"
    );
    assert!(best.last > 0x0001_2345 && best.last <= u64::from(sim.raw_produced(4)));
    assert!(text.contains(r#"Best guess: { table = "holding", address = 100, type = "u32", word_order = "little" }"#), "{text}");
    // … the addresses outside the machine's block (96..=99, 121..=125) are found by bisection, …
    let refused: Vec<u16> = report
        .last
        .iter()
        .enumerate()
        .filter(|(_, cell)| **cell == Cell::Refused(0x02))
        .map(|(offset, _)| 96 + offset as u16)
        .collect();
    assert_eq!(refused, [96, 97, 98, 99, 121, 122, 123, 124, 125]);
    // … and the simulator saw reads only.
    let stats = sim.stats();
    assert_eq!(stats.non_reads, 0);
    assert!(stats.reads >= 4);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_unknown_unit_when_probed_then_the_gateway_exception_is_reported() {
    let sim = PlcSimulator::start("127.0.0.1:0", vec![MachineSpec::new(1)], 1)
        .await
        .unwrap();
    let request = ProbeRequest {
        address: sim.local_addr().to_string(),
        unit_id: 9,
        table: Table::Holding,
        start: 0,
        count: 4,
        timeout: Duration::from_secs(2),
    };

    let error = probe::probe(&request, 1, Duration::ZERO).await.unwrap_err();

    assert!(error.to_string().contains("0x0b"), "{error}");
    sim.shutdown().await;
}
