//! What S4–S6 share: a runtime for the simulated PLC (and the forwarder), one PLC with one machine, a scratch
//! directory in the target directory, a real rollup captured from the agent, and outboxes filled with it
//! through the library before the agent starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use shopfloor_agent::broker::Broker;
use shopfloor_agent::config::Config;
use shopfloor_agent::logic::window::Period;
use shopfloor_agent::store::{CycleWrite, OutboxDraft, Store, StoreOptions};
use simulators::{MachineSpec, PlcSimulator};

use crate::agent::{AgentProcess, FleetConfig};
use crate::subscriber::Subscriber;

/// Rows committed per transaction while filling an outbox.
const FILL_BATCH: usize = 10_000;
/// How long the agent gets to publish its first rollup when one is captured.
const CAPTURE_PATIENCE: Duration = Duration::from_secs(30);

/// The shared parts of one scenario run.
pub(super) struct Rig {
    /// Runs the simulated PLC and the forwarder.
    pub(super) runtime: tokio::runtime::Runtime,
    /// The one PLC (one machine, unit 1) every agent of S4–S6 polls.
    pub(super) plc: PlcSimulator,
    /// Scratch space for agent directories and databases; removed on drop.
    pub(super) scratch: tempfile::TempDir,
}

/// A rollup as the agent published it, the template of every filled row and of the floor's payloads.
#[derive(Debug, Clone)]
pub(super) struct Rollup {
    /// Its topic.
    pub(super) topic: String,
    /// The bytes as received (with `seq` and `db_epoch`, as a stored row carries them).
    pub(super) payload: Vec<u8>,
    /// The body without `seq`, `db_epoch` and `replayed`: what the processor hands the store.
    pub(super) body: serde_json::Map<String, serde_json::Value>,
    /// Its window's period.
    pub(super) period: Period,
}

impl Rig {
    /// Starts the runtime and the PLC, and makes the scratch directory.
    pub(super) fn start() -> anyhow::Result<Rig> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot build the runtime of the simulated PLC")?;
        let plc = runtime.block_on(PlcSimulator::start(
            "127.0.0.1:0",
            vec![MachineSpec::new(1)],
            7,
        ))?;
        let scratch = tempfile::Builder::new()
            .prefix("fleet-uplink-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .context("cannot make a scratch directory")?;
        Ok(Rig {
            runtime,
            plc,
            scratch,
        })
    }

    /// Keeps the scratch directory after the run (for its agent logs) and returns its path.
    pub(super) fn keep_scratch(self) -> PathBuf {
        self.scratch.keep()
    }

    /// The PLC's address.
    pub(super) fn plc_address(&self) -> SocketAddr {
        self.plc.local_addr()
    }

    /// A one-PLC, one-machine fleet polled every `poll_interval`, publishing to 127.0.0.1:`mqtt_port`, with
    /// an MQTT client id of its own: the agent locks its client id host-wide, and other benchmark runs on
    /// the same host configure the same site and gateway.
    pub(super) fn fleet(&self, poll_interval: Duration, mqtt_port: u16) -> FleetConfig {
        static FLEETS: AtomicU64 = AtomicU64::new(0);
        let mut fleet = FleetConfig::new(vec![self.plc_address()], 1, poll_interval, mqtt_port);
        fleet.mqtt_extra = format!(
            "client_id = \"fleet-uplink-{}-{}\"\n",
            std::process::id(),
            FLEETS.fetch_add(1, Ordering::Relaxed)
        );
        fleet
    }

    /// A fresh directory named `name` in the scratch space.
    pub(super) fn dir(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    /// Runs the agent against `broker` with one-second windows until its first rollup arrives and returns
    /// it: the payload every filled row and every floor publish copies.
    pub(super) fn capture_rollup(&self, broker: &Broker) -> anyhow::Result<Rollup> {
        let mut fleet = self.fleet(Duration::from_millis(100), broker.port);
        fleet.periods = r#"["1s"]"#.to_string();
        fleet.agent_extra = "grace = { \"1s\" = \"100ms\" }".to_string();
        let subscriber = Subscriber::start(broker.port, &rollup_filter(&fleet, "+")?)?;
        let agent = AgentProcess::spawn(&fleet, &self.dir("capture"))?;
        let deadline = Instant::now() + CAPTURE_PATIENCE;
        let message = loop {
            if let Some(message) = subscriber.messages().into_iter().next() {
                break message;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the agent published no rollup within {CAPTURE_PATIENCE:?}; see {}",
                agent.dir.join("agent.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        agent.stop()?;
        let mut body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&message.payload).context("the rollup is not a JSON object")?;
        for added in ["seq", "db_epoch", "replayed"] {
            body.remove(added);
        }
        let period = body
            .get("window")
            .and_then(|window| window.get("period"))
            .and_then(serde_json::Value::as_str)
            .context("the rollup has no window.period")?;
        let period = Period::parse(period).map_err(anyhow::Error::msg)?;
        Ok(Rollup {
            topic: message.topic,
            payload: message.payload,
            body,
            period,
        })
    }
}

/// The agent's configuration as `fleet` writes it for directory `dir`.
pub(super) fn config_of(fleet: &FleetConfig, dir: &Path) -> anyhow::Result<Config> {
    let text = fleet.toml(&dir.join("data"), 1);
    Config::from_toml(&text, "agent.toml", false)
        .map_err(|error| anyhow::anyhow!("the benchmark's agent configuration: {error}"))
}

/// The database file the agent configured by `fleet` in `dir` opens (as `AgentProcess::spawn` writes it).
pub(super) fn database_of(fleet: &FleetConfig, dir: &Path) -> anyhow::Result<PathBuf> {
    Ok(shopfloor_agent::supervisor::database_path(&config_of(
        fleet, dir,
    )?))
}

/// The topic filter of the first machine's rollups of `period` (`+`: every period), as the agent names them.
pub(super) fn rollup_filter(fleet: &FleetConfig, period: &str) -> anyhow::Result<String> {
    let config = config_of(fleet, Path::new("/nonexistent"))?;
    let machine = config
        .machines
        .first()
        .context("the fleet has no machine")?;
    let identity = shopfloor_agent::supervisor::identity(&config);
    Ok(shopfloor_agent::logic::payload::rollup_topic(
        &identity,
        &machine.line,
        &machine.id,
        period,
    ))
}

/// Fills the outbox of the agent configured by `fleet` in `dir` with `rows` copies of `rollup` (each with
/// its own `msg_id`), through the store as the processor would, in transactions of [`FILL_BATCH`] rows.
pub(super) fn fill_outbox(
    fleet: &FleetConfig,
    dir: &Path,
    rollup: &Rollup,
    rows: u64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let path = database_of(fleet, dir)?;
    let data_dir = path.parent().context("the database has no directory")?;
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let options = StoreOptions {
        max_bytes: 2 * 1024 * 1024 * 1024,
        ..StoreOptions::default()
    };
    let mut store = Store::open(&path, &options)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_millis();
    let now = i64::try_from(now).context("the clock is past the year 292 million")?;
    let mut written = 0u64;
    while written < rows {
        let batch = (rows - written).min(FILL_BATCH as u64);
        let outbox = (written..written + batch)
            .map(|index| {
                let mut body = rollup.body.clone();
                body.insert("msg_id".into(), format!("{index:032x}").into());
                OutboxDraft::rollup(rollup.topic.clone(), body.into(), &rollup.period)
            })
            .collect();
        let outcome = store.commit_cycle(&CycleWrite {
            outbox,
            now,
            ..CycleWrite::default()
        })?;
        anyhow::ensure!(
            outcome.refused.is_empty() && outcome.dropped.is_empty(),
            "the store refused or dropped rows while filling: {outcome:?}"
        );
        written += batch;
    }
    Ok(started.elapsed())
}

/// Copies the database filled by [`fill_outbox`] for (`seed_fleet`, `seed_dir`) to where the agent
/// configured by `fleet` in `dir` looks for it (a copy is much quicker than a second fill).
pub(super) fn copy_outbox(
    seed_fleet: &FleetConfig,
    seed_dir: &Path,
    fleet: &FleetConfig,
    dir: &Path,
) -> anyhow::Result<()> {
    let from = database_of(seed_fleet, seed_dir)?;
    let to = database_of(fleet, dir)?;
    let data_dir = to.parent().context("the database has no directory")?;
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    std::fs::copy(&from, &to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", from.display()));
        if side.exists() {
            std::fs::copy(&side, format!("{}{suffix}", to.display()))?;
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch now.
pub(super) fn wall_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

/// Calls `probe` every 2 ms until it yields something; an error once `patience` has run out.
pub(super) fn wait_for<T>(
    patience: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(found) = probe() {
            return Ok(found);
        }
        anyhow::ensure!(Instant::now() < deadline, "nothing within {patience:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}
