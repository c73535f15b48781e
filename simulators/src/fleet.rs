//! [`Fleet`]: many simulated PLCs in one process, each a [`PlcSimulator`] on its own 127.0.0.1 port with the
//! same machines behind unit ids 1..=M. Built for benchmarks that poll hundreds of PLCs for minutes: the
//! request ledger is switched off, so nothing grows per request, and production runs on a slow cycle so the
//! simulator's own timers stay cheap next to the polling it serves.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;

use crate::plc::{MachineSpec, PlcSimulator, SimStats};

/// What a fleet looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSpec {
    /// Number of PLCs, each on its own port.
    pub plcs: usize,
    /// Machines per PLC, answering to unit ids 1..=M (register layout of [`PlcSimulator`]).
    pub machines_per_plc: u8,
    /// Production cycle time of every machine.
    pub cycle_time: Duration,
    /// Seed of PLC `i` is `seed + i`, so each PLC produces its own reproducible sequence.
    pub seed: u64,
}

impl FleetSpec {
    /// `plcs` PLCs with `machines_per_plc` machines each, one unit per second, seed 42.
    pub fn new(plcs: usize, machines_per_plc: u8) -> Self {
        Self {
            plcs,
            machines_per_plc,
            cycle_time: Duration::from_secs(1),
            seed: 42,
        }
    }
}

/// A running fleet of simulated PLCs; dropping it stops every one of them.
pub struct Fleet {
    plcs: Vec<PlcSimulator>,
}

impl Fleet {
    /// Binds one listener per PLC on 127.0.0.1 (free ports) and starts serving and producing.
    pub async fn start(spec: &FleetSpec) -> anyhow::Result<Fleet> {
        anyhow::ensure!(
            spec.machines_per_plc >= 1,
            "a PLC needs at least one machine"
        );
        let mut plcs = Vec::with_capacity(spec.plcs);
        for index in 0..spec.plcs {
            let machines = (1..=spec.machines_per_plc)
                .map(|unit_id| MachineSpec {
                    cycle_time: spec.cycle_time,
                    ..MachineSpec::new(unit_id)
                })
                .collect();
            let seed = spec.seed.wrapping_add(index as u64);
            let plc = PlcSimulator::start("127.0.0.1:0", machines, seed)
                .await
                .with_context(|| format!("cannot start PLC {index} of the fleet"))?;
            plc.set_ledger_capacity(0);
            plcs.push(plc);
        }
        Ok(Fleet { plcs })
    }

    /// The PLCs' addresses, in order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.plcs.iter().map(PlcSimulator::local_addr).collect()
    }

    /// The PLCs themselves, in order (ground truth, faults, outages per PLC).
    pub fn plcs(&self) -> &[PlcSimulator] {
        &self.plcs
    }

    /// Request and connection counters summed over every PLC (`faulted` included).
    pub fn stats(&self) -> SimStats {
        self.plcs
            .iter()
            .map(PlcSimulator::stats)
            .fold(SimStats::default(), |sum, one| SimStats {
                requests: sum.requests + one.requests,
                reads: sum.reads + one.reads,
                non_reads: sum.non_reads + one.non_reads,
                connections: sum.connections + one.connections,
                faulted: sum.faulted + one.faulted,
            })
    }

    /// Stops every PLC and waits for its tasks to end.
    pub async fn shutdown(self) {
        for plc in self.plcs {
            plc.shutdown().await;
        }
    }
}
