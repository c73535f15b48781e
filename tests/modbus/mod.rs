//! Modbus acquisition against misbehaving PLCs over real loopback TCP (issue 4): the real poller task
//! (`poller::run`) polls `simulators::PlcSimulator`s with faults on cue, or raw fake servers that send garbage.
//! Every fault test also asserts that healthy devices (another unit on the same gateway, or another PLC) keep
//! polling while the fault runs. Waits are bounded polls of observed state; nothing asserts on speed.
//!
//! - `gateway`: many units on one connection: values, pacing, one timeout per cycle, unit backoff, no writes.
//! - `faults`: silence, late answers, half frames, wrong counts, exception classes, reboot, long outage.
//! - `disabled`: a tag refused with 01/02/03 is probed with backoff and enabled again; no count is lost.
//! - `fuzz`: arbitrary bytes as responses through a raw TCP server into the connection and the poller.
//! - `probe`: the commissioning probe finds the produced counter and its word order on the simulator.
//! - `calendar`: a shift boundary between two regular polls gets a poll of its own.
//! - `lag`: cycles that overrun the poll interval skip ticks, counted, and their start lag is observed.
//! - `phase`: a PLC polls at its own phase within the interval, and a window boundary gets a poll of its own.

mod calendar;
mod disabled;
mod faults;
mod fuzz;
mod gateway;
mod lag;
mod phase;
mod probe;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shopfloor_agent::config::{Config, PlcConfig, TagAddress};
use shopfloor_agent::logic::decode::{DataType, Encoding, Table, Value, WordOrder};
use shopfloor_agent::poller::{
    self, HealthBoard, PlcHealth, PollEvent, PollTiming, ReadPlan, Sample, TagError, Transition,
};
use simulators::MachineSpec;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Safety net of every wait; reached only when something is broken.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// A validated PLC config pointing at `address`, tuned for tests (100 ms polls, 400 ms timeout, short
/// backoffs), then adjusted by `tweak`.
pub(crate) fn plc_config(address: &str, tweak: impl FnOnce(&mut PlcConfig)) -> PlcConfig {
    let text = format!(
        r#"
[agent]
site = "modbus-tests"
gateway = "gw"
timezone = "UTC"
data_dir = "/nonexistent"

[mqtt]
host = "127.0.0.1"

[[plc]]
id = "plc-under-test"
address = "{address}"
poll_interval = "100ms"
timeout = "400ms"
backoff_max = "400ms"
unit_failure_threshold = 2
unit_backoff = "1s"

[[machine]]
id = "m"
line = "l"
plc = "plc-under-test"
counters.produced = {{ address = 0, type = "u32" }}
"#
    );
    let config = Config::from_toml(&text, "modbus test config", false).expect("valid test config");
    let mut plc = config.plcs[0].clone();
    tweak(&mut plc);
    plc
}

/// A tag of `unit_id` at `address`, big word order, no byte swap.
pub(crate) fn tag(unit_id: u8, table: Table, address: u16, data_type: DataType) -> TagAddress {
    ordered(unit_id, table, address, data_type, WordOrder::Big, false)
}

/// A tag with an explicit word order and byte swap.
pub(crate) fn ordered(
    unit_id: u8,
    table: Table,
    address: u16,
    data_type: DataType,
    word_order: WordOrder,
    byte_swap: bool,
) -> TagAddress {
    TagAddress {
        unit_id,
        table,
        address,
        encoding: Encoding {
            data_type,
            word_order,
            byte_swap,
        },
        bit: None,
    }
}

/// The produced counter (u32 at +0) and the state register (+20) of a simulated machine, plus its running coil.
pub(crate) fn machine_tags(unit_id: u8, base: u16) -> Vec<TagAddress> {
    vec![
        tag(unit_id, Table::Holding, base, DataType::U32),
        tag(unit_id, Table::Holding, base + 20, DataType::U16),
        tag(unit_id, Table::Coil, base, DataType::Bool),
    ]
}

/// A simulated machine whose production is driven only by the test (`set_counter`, `advance`).
pub(crate) fn frozen_machine(unit_id: u8) -> MachineSpec {
    MachineSpec {
        cycle_time: Duration::from_secs(3600),
        stop_probability: 0.0,
        ..MachineSpec::new(unit_id)
    }
}

/// The poller task and the task collecting its samples.
type Tasks = (JoinHandle<anyhow::Result<()>>, JoinHandle<()>);

/// A running `poller::run` task and everything it produced so far.
pub(crate) struct Poll {
    /// The plan it runs.
    pub plan: ReadPlan,
    /// Every sample, in order.
    pub samples: Arc<Mutex<Vec<Sample>>>,
    /// Its health board (one PLC, index 0).
    pub health: HealthBoard,
    shutdown: CancellationToken,
    tasks: Mutex<Option<Tasks>>,
}

impl Poll {
    /// Starts polling `tags` with `config` as PLC 0.
    pub(crate) fn start(config: PlcConfig, tags: Vec<TagAddress>) -> Poll {
        Poll::start_with(config, tags, PollTiming::system())
    }

    /// Starts polling `tags` with `config` as PLC 0 on `timing`'s clock and calendar.
    pub(crate) fn start_with(config: PlcConfig, tags: Vec<TagAddress>, timing: PollTiming) -> Poll {
        Poll::start_as(0, config, tags, timing)
    }

    /// Starts polling `tags` with `config` as PLC `plc` of the configuration (its index decides its phase).
    pub(crate) fn start_as(
        plc: usize,
        config: PlcConfig,
        tags: Vec<TagAddress>,
        timing: PollTiming,
    ) -> Poll {
        let plan = ReadPlan::from_tags(tags, &config);
        let health: HealthBoard = Arc::new(Mutex::new(vec![PlcHealth::default()]));
        let (sample_tx, mut sample_rx) = tokio::sync::mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(poller::run_with_clock(
            plc,
            config,
            plan.clone(),
            sample_tx,
            health.clone(),
            timing,
            shutdown.clone(),
        ));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = samples.clone();
        let collector = tokio::spawn(async move {
            while let Some(sample) = sample_rx.recv().await {
                sink.lock().unwrap().push(sample);
            }
        });
        Poll {
            plan,
            samples,
            health,
            shutdown,
            tasks: Mutex::new(Some((task, collector))),
        }
    }

    /// Samples in which tag `index` was read.
    pub(crate) fn reads(&self, index: usize) -> usize {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.readings[index].is_ok())
            .count()
    }

    /// Samples so far.
    pub(crate) fn sample_count(&self) -> usize {
        self.samples.lock().unwrap().len()
    }

    /// Waits until tag `index` has been read `more` more times than now.
    pub(crate) async fn wait_reads(&self, index: usize, more: usize, what: &str) {
        let target = self.reads(index) + more;
        crate::support::wait_until(PATIENCE, what, || self.reads(index) >= target).await;
    }

    /// Every reading of tag `index` so far, oldest first.
    pub(crate) fn readings(&self, index: usize) -> Vec<Result<Vec<u16>, TagError>> {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.readings[index].clone())
            .collect()
    }

    /// The decoded values of every successful reading of tag `index`.
    pub(crate) fn values(&self, index: usize) -> Vec<Value> {
        let tag = self.plan.tags[index];
        self.readings(index)
            .into_iter()
            .filter_map(Result::ok)
            .map(|words| tag.decode(&words).expect("a read tag decodes"))
            .collect()
    }

    /// Every event so far.
    pub(crate) fn events(&self) -> Vec<PollEvent> {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .flat_map(|s| s.events.clone())
            .collect()
    }

    /// Up/down transitions of the PLC (`unit = None`) or of one unit.
    pub(crate) fn transitions(&self, unit: Option<u8>) -> Vec<Transition> {
        self.events()
            .into_iter()
            .filter_map(|event| match event {
                PollEvent::Transition(t) if t.unit_id == unit => Some(t),
                _ => None,
            })
            .collect()
    }

    /// A copy of the PLC's health entry.
    pub(crate) fn health(&self) -> PlcHealth {
        self.health.lock().unwrap()[0].clone()
    }

    /// Stops the task and waits for it; what it produced stays readable.
    pub(crate) async fn stop(&self) {
        self.shutdown.cancel();
        let Some((task, collector)) = self.tasks.lock().unwrap().take() else {
            return;
        };
        let result = tokio::time::timeout(PATIENCE, task)
            .await
            .expect("the poller stops when cancelled")
            .expect("the poller task does not panic");
        result.expect("the poller ends without error");
        let _ = collector.await;
    }
}
