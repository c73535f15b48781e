//! The simulated plant of the fault scenarios: two Modbus/TCP PLC simulators with three machines, frozen
//! until a scenario starts production, and the agent configuration that maps their registers.

use std::time::Duration;

use simulators::{MachineSpec, PlcSimulator, Truth};

use super::{PERIODS, TIMEZONE};

/// Simulated PLCs: plc-a serves m1 and m2, plc-b serves m3.
pub(crate) struct Plant {
    plcs: Vec<PlcSimulator>,
    /// (index into `plcs`, unit id, machine id).
    units: Vec<(usize, u8, &'static str)>,
}

impl Plant {
    /// Starts both PLCs with production frozen; `seed` makes their behaviour reproducible.
    pub(crate) async fn start(seed: u64) -> Plant {
        let spec = |unit_id, cycle_ms, initial_produced| MachineSpec {
            cycle_time: Duration::from_millis(cycle_ms),
            defect_probability: 0.1,
            stop_probability: 0.02,
            initial_produced,
            reasons: vec!["scratch".into(), "dent".into()],
            ..MachineSpec::new(unit_id)
        };
        let plc_a = PlcSimulator::start(
            "127.0.0.1:0",
            vec![spec(1, 30, u32::MAX - 500), spec(2, 45, 1000)],
            seed,
        )
        .await
        .expect("plc-a simulator starts");
        let plc_b = PlcSimulator::start("127.0.0.1:0", vec![spec(1, 60, 0)], seed + 1)
            .await
            .expect("plc-b simulator starts");
        let plant = Plant {
            plcs: vec![plc_a, plc_b],
            units: vec![(0, 1, "m1"), (0, 2, "m2"), (1, 1, "m3")],
        };
        plant.set_producing(false);
        plant
    }

    /// Starts or freezes every machine.
    pub(crate) fn set_producing(&self, on: bool) {
        for (plc, unit, _) in &self.units {
            self.plcs[*plc].set_producing(*unit, on);
        }
    }

    /// Ground truth of every machine, in `machines()` order.
    pub(crate) fn truth(&self) -> Vec<Truth> {
        self.units
            .iter()
            .map(|(plc, unit, _)| self.plcs[*plc].truth(*unit))
            .collect()
    }

    /// Machine ids.
    pub(crate) fn machines(&self) -> Vec<&'static str> {
        self.units.iter().map(|(_, _, machine)| *machine).collect()
    }

    /// Stops the simulators.
    pub(crate) async fn shutdown(self) {
        for plc in self.plcs {
            plc.shutdown().await;
        }
    }

    /// The agent configuration for this plant, publishing to 127.0.0.1:`mqtt_port`, with `tuning`.
    pub(crate) fn config_text(
        &self,
        mqtt_port: u16,
        tuning: &super::Tuning<'_>,
        data_dir: &std::path::Path,
    ) -> String {
        let (live_interval, mqtt_extra) = (tuning.live_interval, tuning.mqtt);
        let (agent_extra, store_extra) = (tuning.agent, tuning.store);
        let [plc_a, plc_b] = [0, 1].map(|index| self.plcs[index].local_addr().to_string());
        let periods = PERIODS.map(|period| format!("\"{period}\"")).join(", ");
        format!(
            r#"
[agent]
site = "fault-site"
gateway = "gw-fault"
timezone = "{TIMEZONE}"
data_dir = "{data_dir}"
periods = [{periods}]
live_interval = "{live_interval}"
health_interval = "2s"
{agent_extra}

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
client_id = "fault-{mqtt_port}"
{mqtt_extra}

[store]
{store_extra}

[[plc]]
id = "plc-a"
address = "{plc_a}"
poll_interval = "200ms"
timeout = "1s"

[[plc]]
id = "plc-b"
address = "{plc_b}"
poll_interval = "300ms"
timeout = "1s"

[[machine]]
id = "m1"
line = "line-a"
plc = "plc-a"
unit_id = 1
ideal_cycle_time = "30ms"
counters.produced = {{ address = 0, type = "u32" }}
counters.defective = {{ address = 2, type = "u32" }}
defect_reasons = {{ scratch = {{ address = 10, type = "u16" }}, dent = {{ address = 11, type = "u16" }} }}
state = {{ address = 20, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }}

[[machine]]
id = "m2"
line = "line-a"
plc = "plc-a"
unit_id = 2
counters.produced = {{ address = 0, type = "u32" }}
counters.defective = {{ address = 2, type = "u32" }}

[[machine]]
id = "m3"
line = "line-b"
plc = "plc-b"
unit_id = 1
counters.produced = {{ address = 0, type = "u32" }}
counters.defective = {{ address = 2, type = "u32" }}
"#,
            data_dir = data_dir.display()
        )
    }
}
