//! `PlcSimulator`: one Modbus/TCP listener (tokio-modbus server) serving simulated machines by unit id, and one
//! timer task per machine stepping its [`MachineModel`]. Raw counters and ground truth live together behind one
//! mutex, so once a machine is frozen its registers and [`PlcSimulator::truth`] agree exactly.
//!
//! Map per machine, 0-based protocol addresses relative to its `base_address` (same for FC 3 holding and FC 4
//! input registers): +0..+1 produced u32 (high word first), +2..+3 defective u32, +10.. one u16 per reason
//! (wrapping at 2^16), +20 state (1 running, 2 planned stop, 3 fault); offsets in between read 0. Coils (FC 1)
//! and discrete inputs (FC 2), same base: +0 running, +1 planned stop, +2 fault (exactly one is set).
//! Exceptions: unknown unit id -> GatewayTargetDevice (0x0B); any address outside the machine's block ->
//! IllegalDataAddress (0x02); quantity 0 or above 125 registers / 2000 bits -> IllegalDataValue (0x03); every
//! other function code, writes included -> IllegalFunction (0x01), and counted in [`SimStats::non_reads`].
//! Faults on cue ([`FaultRule`]) are applied per request in `service`; half frames by the per-connection
//! transport in `transport`. [`PlcSimulator::go_down`] / [`PlcSimulator::come_up`] close the listener and every
//! connection and reopen them on the same port (a reboot or a long outage).

mod fault;
mod service;
mod transport;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_modbus::server::tcp::Server;

pub use crate::model::{
    CounterLayout, CycleOutcome, MachineModel, MachineSpec, MachineState, SpecError, Truth,
    BIT_COUNT, DEFECTIVE_OFFSET, MAX_REASONS, PRODUCED_OFFSET, REASONS_OFFSET, REGISTER_COUNT,
    STATE_OFFSET,
};
use fault::FaultBook;
pub use fault::{Fault, FaultRule, RequestRecord, SimStats};
use service::PlcService;
use transport::{ConnectionCue, FaultyStream};

/// Pause before listening again after the listener failed (for example, out of file descriptors).
const RELISTEN_DELAY: Duration = Duration::from_millis(100);
/// How long [`PlcSimulator::come_up`] keeps trying to bind its old port again.
const REBIND_PATIENCE: Duration = Duration::from_secs(10);

/// A running Modbus/TCP PLC simulator with exact ground truth; dropping it stops all its tasks.
///
/// Methods taking a `unit_id` panic when no machine has that unit id: that is a bug in the calling test.
pub struct PlcSimulator {
    local_addr: SocketAddr,
    plant: Arc<Mutex<Plant>>,
    tasks: JoinSet<()>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl PlcSimulator {
    /// Validates `machines`, binds `addr` (use port 0 in tests) and starts serving and producing.
    /// Each machine's random stream depends only on `seed` and its unit id.
    pub async fn start(addr: &str, machines: Vec<MachineSpec>, seed: u64) -> anyhow::Result<Self> {
        let plant = Plant::new(machines, seed).context("invalid machine specs")?;
        let cycle_times: Vec<(u8, Duration)> = plant
            .machines
            .iter()
            .map(|(unit_id, machine)| (*unit_id, machine.model.spec().cycle_time))
            .collect();
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind Modbus/TCP listener on {addr}"))?;
        let local_addr = listener
            .local_addr()
            .context("cannot read the listener's local address")?;
        let plant = Arc::new(Mutex::new(plant));
        let server = tokio::spawn(serve(listener, Arc::clone(&plant)));
        let mut tasks = JoinSet::new();
        for (unit_id, cycle_time) in cycle_times {
            tasks.spawn(drive(Arc::clone(&plant), unit_id, cycle_time));
        }
        Ok(Self {
            local_addr,
            plant,
            tasks,
            server: Mutex::new(Some(server)),
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The unit ids served, ascending.
    pub fn units(&self) -> Vec<u8> {
        self.lock().machines.keys().copied().collect()
    }

    /// Ground truth of one machine since start; unaffected by [`Self::set_counter`].
    pub fn truth(&self, unit_id: u8) -> Truth {
        self.lock().machine(unit_id).model.truth().clone()
    }

    /// Current state of one machine, as its state register shows it.
    pub fn state(&self, unit_id: u8) -> MachineState {
        self.lock().machine(unit_id).model.state()
    }

    /// Raw value of one machine's produced register.
    pub fn raw_produced(&self, unit_id: u8) -> u32 {
        self.lock().machine(unit_id).model.raw_produced()
    }

    /// One machine's register image (offsets 0..[`REGISTER_COUNT`] from its base address).
    pub fn registers(&self, unit_id: u8) -> [u16; REGISTER_COUNT as usize] {
        self.lock().machine(unit_id).model.register_image()
    }

    /// Truth, state and registers of one machine, read together under the plant lock.
    pub fn snapshot(&self, unit_id: u8) -> Snapshot {
        let plant = self.lock();
        let machine = plant.machine(unit_id);
        Snapshot {
            truth: machine.model.truth().clone(),
            state: machine.model.state(),
            registers: machine.model.register_image(),
            producing: machine.producing,
            cycles: machine.model.cycles(),
        }
    }

    /// Freezes (`false`) or resumes (`true`) one machine's timer-driven production; time keeps passing, so a
    /// frozen machine simply makes nothing and keeps its state.
    pub fn set_producing(&self, unit_id: u8, on: bool) {
        self.lock().machine_mut(unit_id).producing = on;
    }

    /// Overwrites the raw produced register only (a PLC reset with 0, or a jump near 2^32); later units count
    /// on from `produced`. The ground truth keeps counting units and is not changed.
    pub fn set_counter(&self, unit_id: u8, produced: u32) {
        self.lock()
            .machine_mut(unit_id)
            .model
            .set_raw_produced(produced);
    }

    /// Steps one machine `cycles` times right now, whether or not it is frozen: with `set_producing(unit, false)`
    /// this gives exact, timer-free control over production.
    pub fn advance(&self, unit_id: u8, cycles: u64) {
        let mut plant = self.lock();
        let machine = plant.machine_mut(unit_id);
        for _ in 0..cycles {
            machine.model.step();
        }
    }

    /// Sets every raw counter of every machine to 0 (a reboot that lost retained memory); truth is untouched.
    pub fn reset_counters(&self) {
        for machine in self.lock().machines.values_mut() {
            machine.model.reset_counters();
        }
    }

    /// Arms a fault rule; rules are checked in the order they were armed, the first match applies.
    pub fn arm(&self, rule: FaultRule) {
        self.lock().faults.arm(rule);
    }

    /// Removes every armed fault rule: the simulator behaves again.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Request and connection counters since start.
    pub fn stats(&self) -> SimStats {
        self.lock().faults.stats()
    }

    /// The most recent requests (up to 50 000, or the capacity set by [`Self::set_ledger_capacity`]), oldest
    /// first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().faults.ledger()
    }

    /// Keeps at most `capacity` requests in the ledger [`Self::requests`] returns (0: none, so nothing grows
    /// per request over a long run); [`Self::stats`] still counts every request.
    pub fn set_ledger_capacity(&self, capacity: usize) {
        self.lock().faults.set_ledger_capacity(capacity);
    }

    /// Whether the listener is open (between [`Self::come_up`] and [`Self::go_down`]).
    pub fn is_up(&self) -> bool {
        self.server_slot().is_some()
    }

    /// Closes the listener and every open connection (clients see the connection end, new connects are
    /// refused); production goes on. Waits until the port is closed. Does nothing when already down.
    pub async fn go_down(&self) {
        let server = self.server_slot().take();
        if let Some(server) = server {
            server.abort();
            // Dropping the serve future closes the listener and cancels every connection task.
            let _ = server.await;
        }
    }

    /// Listens again on the same address after [`Self::go_down`]. Does nothing when already up.
    pub async fn come_up(&self) -> anyhow::Result<()> {
        if self.is_up() {
            return Ok(());
        }
        let deadline = Instant::now() + REBIND_PATIENCE;
        let listener = loop {
            match TcpListener::bind(self.local_addr).await {
                Ok(listener) => break listener,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(RELISTEN_DELAY).await;
                }
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("cannot listen on {} again", self.local_addr))
                }
            }
        };
        let server = tokio::spawn(serve(listener, Arc::clone(&self.plant)));
        *self.server_slot() = Some(server);
        Ok(())
    }

    /// A reboot: down for `down_for` (connections closed, connects refused), optionally with every raw counter
    /// reset to 0, then up again on the same port.
    pub async fn reboot(&self, down_for: Duration, reset_counters: bool) -> anyhow::Result<()> {
        self.go_down().await;
        if reset_counters {
            self.reset_counters();
        }
        tokio::time::sleep(down_for).await;
        self.come_up().await
    }

    /// Stops the listener, every open connection and every production timer, and waits for them to end.
    pub async fn shutdown(mut self) {
        self.go_down().await;
        self.tasks.shutdown().await;
    }

    fn server_slot(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.server
            .lock()
            .expect("server slot mutex poisoned: a simulator thread panicked")
    }

    fn lock(&self) -> MutexGuard<'_, Plant> {
        self.plant
            .lock()
            .expect("plant mutex poisoned: a simulator thread panicked")
    }
}

/// One machine seen at one instant: its ground truth and exactly what a poller would read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Ground truth since start.
    pub truth: Truth,
    /// Current state.
    pub state: MachineState,
    /// Register image (offsets 0..[`REGISTER_COUNT`] from the base address).
    pub registers: [u16; REGISTER_COUNT as usize],
    /// Whether timer-driven production is on.
    pub producing: bool,
    /// Cycles stepped since start (stopped cycles included).
    pub cycles: u64,
}

impl Drop for PlcSimulator {
    fn drop(&mut self) {
        // The server task is not in the JoinSet (it is replaced on come_up); stop it with the simulator.
        if let Some(server) = self.server_slot().take() {
            server.abort();
        }
    }
}

/// All simulated machines, keyed by unit id; the one place counters and truth change. Armed faults and the
/// request ledger live here too, so one lock decides an answer.
pub(crate) struct Plant {
    machines: BTreeMap<u8, Machine>,
    faults: FaultBook,
}

struct Machine {
    model: MachineModel,
    producing: bool,
}

impl Plant {
    fn new(specs: Vec<MachineSpec>, seed: u64) -> Result<Self, SpecError> {
        let mut machines = BTreeMap::new();
        for spec in specs {
            spec.validate()?;
            let unit_id = spec.unit_id;
            let machine = Machine {
                model: MachineModel::new(spec, seed),
                producing: true,
            };
            if machines.insert(unit_id, machine).is_some() {
                return Err(SpecError::DuplicateUnit { unit_id });
            }
        }
        Ok(Self {
            machines,
            faults: FaultBook::default(),
        })
    }

    /// The model serving `unit_id`, if any.
    pub(crate) fn model(&self, unit_id: u8) -> Option<&MachineModel> {
        self.machines.get(&unit_id).map(|machine| &machine.model)
    }

    fn machine(&self, unit_id: u8) -> &Machine {
        self.machines
            .get(&unit_id)
            .unwrap_or_else(|| panic!("unit {unit_id} is not simulated"))
    }

    fn machine_mut(&mut self, unit_id: u8) -> &mut Machine {
        self.machines
            .get_mut(&unit_id)
            .unwrap_or_else(|| panic!("unit {unit_id} is not simulated"))
    }
}

/// Accepts Modbus/TCP connections until aborted, each served by its own tokio-modbus task.
async fn serve(listener: TcpListener, plant: Arc<Mutex<Plant>>) {
    let server = Server::new(listener);
    let on_connected = |stream: TcpStream, _peer: SocketAddr| {
        let id = plant
            .lock()
            .expect("plant mutex poisoned: a simulator thread panicked")
            .faults
            .connection_opened();
        let cue = Arc::new(ConnectionCue::new(id));
        let service = PlcService::new(Arc::clone(&plant), Arc::clone(&cue));
        let transport = FaultyStream::new(stream, cue);
        async move { Ok(Some((service, transport))) }
    };
    loop {
        // A failing connection (client gone mid-frame, garbage bytes) ends only that connection, silently.
        if let Err(error) = server.serve(&on_connected, |_connection_error| {}).await {
            eprintln!("plc-sim: Modbus/TCP listener failed, listening again: {error}");
            tokio::time::sleep(RELISTEN_DELAY).await;
        }
    }
}

/// Steps one machine once per cycle time. Burst catches up ticks a busy runtime delayed, so no cycle is lost.
async fn drive(plant: Arc<Mutex<Plant>>, unit_id: u8, cycle_time: Duration) {
    let mut ticker = interval_at(Instant::now() + cycle_time, cycle_time);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    loop {
        ticker.tick().await;
        let mut plant = plant
            .lock()
            .expect("plant mutex poisoned: a simulator thread panicked");
        let machine = plant.machine_mut(unit_id);
        if machine.producing {
            machine.model.step();
        }
    }
}
