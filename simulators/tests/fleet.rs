//! End-to-end test of `Fleet` over real loopback TCP: every PLC answers on its own port with its own machines,
//! reads are counted per PLC, and the request ledger stays empty however many requests arrive.

use std::time::Duration;

use simulators::{Fleet, FleetSpec, REGISTER_COUNT};
use tokio_modbus::client::tcp;
use tokio_modbus::prelude::{Reader, Slave, SlaveContext};

#[tokio::test]
async fn given_a_fleet_when_every_plc_and_unit_is_read_then_each_answers_on_its_own_port_without_a_ledger(
) {
    let spec = FleetSpec {
        cycle_time: Duration::from_millis(5),
        ..FleetSpec::new(3, 2)
    };
    let fleet = Fleet::start(&spec).await.unwrap();
    let addresses = fleet.addresses();
    assert_eq!(addresses.len(), 3);
    let mut ports: Vec<u16> = addresses.iter().map(|a| a.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "one port per PLC");

    const ROUNDS: u64 = 20;
    for address in &addresses {
        let mut context = tcp::connect_slave(*address, Slave(1)).await.unwrap();
        for _ in 0..ROUNDS {
            for unit_id in 1..=2u8 {
                context.set_slave(Slave(unit_id));
                let words = context
                    .read_holding_registers(0, REGISTER_COUNT)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(words.len(), usize::from(REGISTER_COUNT));
                assert!((1..=3).contains(&words[20]), "state register: {words:?}");
            }
        }
        context.set_slave(Slave(3));
        let unknown = context.read_holding_registers(0, 1).await.unwrap();
        assert!(unknown.is_err(), "unit 3 is not simulated: {unknown:?}");
    }

    for plc in fleet.plcs() {
        let stats = plc.stats();
        assert_eq!(stats.reads, ROUNDS * 2 + 1);
        assert_eq!(stats.connections, 1);
        assert!(
            plc.requests().is_empty(),
            "the fleet keeps no request ledger"
        );
    }
    let total = fleet.stats();
    assert_eq!(total.reads, 3 * (ROUNDS * 2 + 1));
    assert_eq!(total.connections, 3);
    fleet.shutdown().await;
}
