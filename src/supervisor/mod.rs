//! The one place that wires the agent: opens the store, creates channels, spawns the pollers, the
//! processor and the publisher, applies a reloaded configuration, and shuts them down in order with a
//! deadline. Shutdown order: pollers stop → processor commits what they sent → publisher awaits in-flight acks.
//!
//! Layout: this file (wiring, waiting, draining), `pollers` (the poller tasks by PLC), `reload` (a new
//! configuration applied to the running tasks), `changes` (what a new configuration changes, pure).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};

use crate::clock::{self, SharedClock};
use crate::config::{Config, ConfigError};
use crate::liveness::Liveness;
use crate::logic::payload::{self, Identity};
use crate::metrics::{self, Metrics, SharedMetrics};
use crate::notify::{self, Notifier, StatusSources};
use crate::poller::{self, HealthBoard, ReadPlan};
use crate::processor::{self, MachineView, Outputs, Processor, Reconfigure};
use crate::publisher::{self, PublisherConfig, PublisherStats};
use crate::store::{self, ClientIdLock, DataDirLock, Store, StoreHandle, StoreOptions};

mod changes;
mod pollers;
mod reload;

use pollers::PollerSet;

/// Capacity of the poller → processor channel (bounded: invariant 7).
const SAMPLE_CHANNEL_CAPACITY: usize = 1024;
/// How often the database file is checked to still be the one at its path (one `stat`; commits check too).
const STORE_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// How long the whole shutdown may take before stragglers are abandoned (the systemd unit's stop timeout
/// must exceed it).
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(8);

/// Handles an embedding program (the demo, tests) can watch while the agent runs.
#[derive(Clone)]
pub struct Observers {
    /// Per-machine figures, refreshed every live interval.
    pub view_rx: watch::Receiver<Vec<MachineView>>,
    /// Publisher counters.
    pub publisher_stats: Arc<PublisherStats>,
    /// PLC health.
    pub plc_health: HealthBoard,
    /// The store, for backlog figures.
    pub store: StoreHandle,
}

/// The database file inside `data_dir`.
pub fn database_path(config: &Config) -> PathBuf {
    store::database_path(&config.agent.data_dir)
}

/// Takes the lock file in `data_dir` (created with mode 0700 when needed); a second instance refuses to start.
pub fn lock_data_dir(config: &Config) -> anyhow::Result<DataDirLock> {
    Ok(store::lock_data_dir(&config.agent.data_dir)?)
}

/// Takes the host-wide lock on the MQTT client id, which does not live in `data_dir`: a second agent with the
/// same client id refuses to start, naming this one, even if `data_dir` is deleted under this one.
pub fn lock_client_id(config: &Config) -> anyhow::Result<ClientIdLock> {
    let holder = format!(
        "pid {}, data_dir {}",
        std::process::id(),
        config.agent.data_dir.display()
    );
    Ok(store::lock_client_id(&config.mqtt.client_id, holder)?)
}

/// Checks every [`STORE_CHECK_INTERVAL`] that the database file is still at its path; returns why not.
async fn watch_store_file(store: StoreHandle) -> anyhow::Error {
    let mut tick = tokio::time::interval(STORE_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        match store.call(|store| store.check_in_place()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return anyhow::Error::new(error).context(
                    "the store is gone; stopping so that a restart opens a fresh one (a store_recovered \
                     event will say so)",
                )
            }
            Err(error) => return error,
        }
    }
}

/// The progress board of the poll loops and the processor, with one watchdog period of slack when systemd
/// watches the agent.
fn liveness_board(config: &Config, clock: &SharedClock, notifier: Option<&Notifier>) -> Liveness {
    Liveness::new(
        &plc_ids(config),
        clock.now().mono,
        Notifier::slack(notifier),
    )
}

/// The ids of `config`'s PLCs, in configuration order.
fn plc_ids(config: &Config) -> Vec<String> {
    config.plcs.iter().map(|plc| plc.id.clone()).collect()
}

/// The identity every payload carries.
pub fn identity(config: &Config) -> Identity {
    Identity {
        prefix: config.mqtt.topic_prefix.clone(),
        site: config.agent.site.clone(),
        gateway: config.agent.gateway.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        config_hash: config.config_hash.clone(),
    }
}

/// Where a running agent takes a new configuration from: a request per reload signal, and the loader
/// that reads the configuration again (for `run`, the same file with `SHOPFLOOR__` overrides).
pub struct Reloads {
    /// One message per reload request (SIGHUP).
    pub requests: mpsc::Receiver<()>,
    /// Reads and validates the configuration again.
    pub load: Box<dyn Fn() -> Result<Config, ConfigError> + Send>,
}

/// Runs the agent with the machine's clock until `shutdown` is cancelled or a task fails. `on_start`
/// receives observers once everything is wired (the demo uses it for its terminal view).
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_start: impl FnOnce(Observers),
) -> anyhow::Result<()> {
    run_with_clock(config, clock::system(), shutdown, on_start).await
}

/// Like [`run`], with every task reading `clock` (tests step its wall clock).
pub async fn run_with_clock(
    config: Config,
    clock: SharedClock,
    shutdown: CancellationToken,
    on_start: impl FnOnce(Observers),
) -> anyhow::Result<()> {
    run_agent(config, clock, shutdown, on_start, None).await
}

/// Like [`run`], and applies a new configuration from `reloads` at each request (README, "Reload").
pub async fn run_reloading(
    config: Config,
    reloads: Reloads,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_agent(config, clock::system(), shutdown, |_| {}, Some(reloads)).await
}

async fn run_agent(
    config: Config,
    clock: SharedClock,
    shutdown: CancellationToken,
    on_start: impl FnOnce(Observers),
    reloads: Option<Reloads>,
) -> anyhow::Result<()> {
    let _lock = lock_data_dir(&config)?;
    let _client_id_lock = lock_client_id(&config)?;
    // The store opens (its `quick_check` reads the whole file) while the pollers already poll.
    let opening = {
        let config = config.clone();
        tokio::spawn(async move { open_store(&config).await })
    };
    let notifier = Notifier::from_env();
    let watch = Watch {
        metrics: Arc::new(Metrics::new()),
        liveness: liveness_board(&config, &clock, notifier.as_ref()),
    };
    let config = Arc::new(config);
    let mut agent =
        Running::start(config.clone(), clock.clone(), opening, &watch, on_start).await?;
    let store = agent.store.clone();
    let http_token = shutdown.child_token();
    let http = metrics::spawn_endpoint(
        &config,
        watch.metrics.clone(),
        store.clone(),
        metrics::liveness_check(watch.liveness.clone(), clock.clone()),
        clock.clone(),
        http_token.clone(),
    )
    .await;
    let service = notifier.map(|notifier| {
        let sources = StatusSources {
            store: store.clone(),
            plc_health: agent.plc_health.clone(),
            publisher_stats: agent.publisher_stats.clone(),
        };
        notify::Service::start(notifier, watch.liveness.clone(), sources, clock.clone())
    });
    let failure = agent.wait(&shutdown, reloads).await;
    if let Some(service) = service {
        service.stopping();
    }
    if let Some(error) = &failure {
        error!(
            error = format!("{error:#}"),
            "A task stopped; shutting down."
        );
    }
    agent.drain().await;
    http_token.cancel();
    if let Some(http) = http {
        let _ = http.await;
    }
    // Observers (the demo view, tests) may still hold handles; do not wait for them for long.
    if tokio::time::timeout(Duration::from_secs(2), store.close())
        .await
        .is_err()
    {
        warn!("Store handles are still held elsewhere; the store closes when they are dropped.");
    }
    info!("Stopped.");
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Opens the database in `data_dir` on the store's own thread.
async fn open_store(config: &Config) -> anyhow::Result<StoreHandle> {
    let db_path = database_path(config);
    let store_options = StoreOptions {
        max_bytes: config.store.max_bytes,
        // Leave room for the topic and the MQTT header inside the broker's packet limit.
        max_payload_bytes: config
            .mqtt
            .max_packet_size
            .saturating_sub(crate::config::largest::PACKET_HEADROOM),
    };
    let store = {
        let path = db_path.clone();
        tokio::task::spawn_blocking(move || Store::open(&path, &store_options))
            .await
            .context("store open task failed")?
            .with_context(|| format!("cannot open store {}", db_path.display()))?
    };
    info!(path = %db_path.display(), db_epoch = store.db_epoch(), "Store opened.");
    Ok(StoreHandle::spawn(store))
}

/// What watches the running tasks and outlives a reload: the metrics registry and the progress board.
struct Watch {
    metrics: SharedMetrics,
    liveness: Liveness,
}

/// The wired, running agent: its tasks and what a reload needs to change them.
struct Running {
    /// The configuration the tasks run on (the last one applied).
    config: Arc<Config>,
    /// Its read plans, by PLC index.
    plans: Vec<ReadPlan>,
    plc_health: HealthBoard,
    publisher_stats: Arc<PublisherStats>,
    pollers: PollerSet,
    reconfigure_tx: mpsc::Sender<Reconfigure>,
    processor_task: JoinHandle<anyhow::Result<()>>,
    publisher_task: JoinHandle<anyhow::Result<()>>,
    process_token: CancellationToken,
    publish_token: CancellationToken,
    store: StoreHandle,
}

impl Running {
    /// Spawns the pollers, then (once `opening` has the store) builds the processor from the store and spawns
    /// it and the publisher. Samples polled meanwhile wait in the sample channel; a store that cannot be opened
    /// stops the pollers again and is the error.
    async fn start(
        config: Arc<Config>,
        clock: SharedClock,
        opening: JoinHandle<anyhow::Result<StoreHandle>>,
        watch: &Watch,
        on_start: impl FnOnce(Observers),
    ) -> anyhow::Result<Running> {
        let identity = identity(&config);
        let plans = read_plans(&config);
        let plc_health = poller::health_board(&config);
        let (sample_tx, sample_rx) = mpsc::channel(SAMPLE_CHANNEL_CAPACITY);
        let polling_since = clock.now().mono;
        let mut pollers = PollerSet::new(sample_tx, plc_health.clone(), clock.clone(), watch);
        for (index, plan) in plans.iter().enumerate() {
            pollers.start(index, &config, plan);
        }
        let opened = async {
            let store = opening.await.context("store open task failed")??;
            let processor =
                start_processor(config.clone(), identity.clone(), &plans, &store, &clock).await?;
            anyhow::Ok((store, processor))
        };
        let (store, mut processor) = match opened.await {
            Ok(opened) => opened,
            Err(error) => {
                pollers.stop_all().await;
                return Err(error);
            }
        };
        processor.poll_origin(polling_since);
        let publisher_stats = Arc::new(PublisherStats::default());
        let (reconfigure_tx, reconfigure_rx) = mpsc::channel(1);
        let (live_tx, live_rx) = watch::channel(Vec::new());
        let (view_tx, view_rx) = watch::channel(Vec::new());
        let outbox_notify = Arc::new(Notify::new());
        on_start(Observers {
            view_rx,
            publisher_stats: publisher_stats.clone(),
            plc_health: plc_health.clone(),
            store: store.clone(),
        });

        // Separate tokens so that shutdown can proceed stage by stage.
        let process_token = CancellationToken::new();
        let publish_token = CancellationToken::new();
        let processor_task = tokio::spawn(processor::run(
            processor,
            processor::Inputs {
                sample_rx,
                reconfigure_rx,
            },
            store.clone(),
            Outputs {
                outbox_notify: outbox_notify.clone(),
                live_tx,
                view_tx,
                plc_health: plc_health.clone(),
                publisher_stats: publisher_stats.clone(),
                metrics: watch.metrics.clone(),
                liveness: watch.liveness.clone(),
            },
            process_token.clone(),
        ));
        let publisher_task = spawn_publisher(
            &config,
            identity,
            clock,
            PublisherParts {
                store: store.clone(),
                outbox_notify,
                live_rx,
                stats: publisher_stats.clone(),
                metrics: watch.metrics.clone(),
                token: publish_token.clone(),
            },
        );
        announce(&config);
        Ok(Running {
            config,
            plans,
            plc_health,
            publisher_stats,
            pollers,
            reconfigure_tx,
            processor_task,
            publisher_task,
            process_token,
            publish_token,
            store,
        })
    }

    /// Waits for the stop signal (`None`) or for any task to end on its own, which is a failure; applies
    /// a new configuration at each reload request meanwhile.
    async fn wait(
        &mut self,
        shutdown: &CancellationToken,
        mut reloads: Option<Reloads>,
    ) -> Option<anyhow::Error> {
        let store_watch = watch_store_file(self.store.clone());
        tokio::pin!(store_watch);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    info!("Stopping.");
                    return None;
                }
                Some(()) = next_request(&mut reloads) => {
                    if let Some(reloads) = &reloads {
                        if let Err(error) = self.reload((reloads.load)()).await {
                            return Some(error);
                        }
                    }
                }
                Some(result) = self.pollers.next_end() => return Some(task_failure("poller", result)),
                result = &mut self.processor_task => return Some(task_failure("processor", result)),
                result = &mut self.publisher_task => return Some(task_failure("publisher", result)),
                error = &mut store_watch => return Some(error),
            }
        }
    }

    /// Stops the tasks stage by stage within [`SHUTDOWN_DEADLINE`]; stragglers are abandoned.
    async fn drain(self) {
        let Running {
            pollers,
            reconfigure_tx,
            mut processor_task,
            mut publisher_task,
            process_token,
            publish_token,
            ..
        } = self;
        drop(reconfigure_tx);
        let drain = async {
            pollers.stop_all().await;
            process_token.cancel();
            if !processor_task.is_finished() {
                if let Err(error) = (&mut processor_task).await {
                    warn!(%error, "Processor task failed during shutdown.");
                }
            }
            publish_token.cancel();
            if !publisher_task.is_finished() {
                if let Err(error) = (&mut publisher_task).await {
                    warn!(%error, "Publisher task failed during shutdown.");
                }
            }
        };
        if tokio::time::timeout(SHUTDOWN_DEADLINE, drain)
            .await
            .is_err()
        {
            warn!(deadline = ?SHUTDOWN_DEADLINE, "Shutdown deadline passed; abandoning stragglers.");
            processor_task.abort();
            publisher_task.abort();
        }
    }
}

/// Logs once at start what runs.
fn announce(config: &Config) {
    if !config.calendar.is_configured() {
        info!("no [calendar]: all observed time counts as planned time");
    }
    info!(
        plcs = config.plcs.len(),
        machines = config.machines.len(),
        broker = %format!("{}:{}", config.mqtt.host, config.mqtt.port),
        "Agent running."
    );
}

/// The next reload request; never, without a reload source.
async fn next_request(reloads: &mut Option<Reloads>) -> Option<()> {
    match reloads {
        Some(reloads) => reloads.requests.recv().await,
        None => std::future::pending().await,
    }
}

/// One read plan per PLC of `config`.
fn read_plans(config: &Config) -> Vec<ReadPlan> {
    (0..config.plcs.len())
        .map(|plc| ReadPlan::for_plc(config, plc))
        .collect()
}

/// The processor restored from the store; a store that was lost and started afresh is announced.
async fn start_processor(
    config: Arc<Config>,
    identity: Identity,
    plans: &[ReadPlan],
    store: &StoreHandle,
    clock: &SharedClock,
) -> anyhow::Result<Processor> {
    let mut processor = Processor::new(config, identity, plans, store, clock.clone()).await?;
    if let Some(recovery) = store.call(|s| s.recovery().cloned()).await? {
        let moved_to = recovery
            .moved_to
            .as_ref()
            .map(|path| path.display().to_string());
        error!(moved_to = moved_to.as_deref().unwrap_or("-"), reason = %recovery.reason, "The previous database was lost or unusable; started a fresh one.");
        processor.alarm_store_recovered(moved_to.as_deref(), &recovery.reason, clock.utc());
    }
    Ok(processor)
}

/// What the publisher task shares with the rest of the agent.
struct PublisherParts {
    store: StoreHandle,
    outbox_notify: Arc<Notify>,
    live_rx: watch::Receiver<Vec<crate::publisher::LiveMessage>>,
    stats: Arc<PublisherStats>,
    metrics: SharedMetrics,
    token: CancellationToken,
}

/// Spawns the publisher on `config`'s `[mqtt]` settings.
fn spawn_publisher(
    config: &Config,
    identity: Identity,
    clock: SharedClock,
    parts: PublisherParts,
) -> JoinHandle<anyhow::Result<()>> {
    let status_topic = payload::status_topic(&identity);
    let online = serde_json::to_vec(&payload::status_payload(&identity, "online", None))
        .expect("JSON values always serialise");
    let offline = serde_json::to_vec(&payload::status_payload(&identity, "offline", None))
        .expect("JSON values always serialise");
    let mut publisher_config = PublisherConfig::new(
        config.mqtt.host.clone(),
        config.mqtt.port,
        config.mqtt.client_id.clone(),
        status_topic,
        online,
        offline,
    );
    publisher_config.keep_alive = config.mqtt.keep_alive;
    publisher_config.max_inflight = config.mqtt.max_inflight;
    publisher_config.connect_timeout = config.mqtt.connect_timeout;
    publisher_config.reconnect_max = config.mqtt.reconnect_max;
    publisher_config.drain_rate = config.mqtt.drain_rate;
    publisher_config.protocol = config.mqtt.protocol;
    publisher_config.max_packet_size = config.mqtt.max_packet_size;
    publisher_config.event_identity = Some(identity);
    publisher_config.clock = clock;
    publisher_config.tls = config.mqtt.tls.clone();
    publisher_config.credentials = config.mqtt.credentials.clone();
    publisher_config.metrics = parts.metrics;
    publisher::announce_uplink(&config.mqtt);
    tokio::spawn(
        publisher::run(
            publisher_config,
            parts.store,
            parts.outbox_notify,
            parts.live_rx,
            parts.stats,
            parts.token,
        )
        .instrument(tracing::info_span!("mqtt")),
    )
}

fn task_failure(
    name: &str,
    result: Result<anyhow::Result<()>, tokio::task::JoinError>,
) -> anyhow::Error {
    match result {
        Ok(Ok(())) => anyhow::anyhow!("{name} task ended unexpectedly"),
        Ok(Err(error)) => error.context(format!("{name} task failed")),
        Err(error) => anyhow::Error::new(error).context(format!("{name} task panicked")),
    }
}
