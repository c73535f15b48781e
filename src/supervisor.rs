//! The one place that wires the agent: opens the store, creates channels, spawns the pollers, the
//! processor and the publisher, and shuts them down in order with a deadline.
//! Shutdown order: pollers stop → processor commits what they sent → publisher awaits in-flight acks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};

use crate::clock::{self, SharedClock};
use crate::config::Config;
use crate::liveness::Liveness;
use crate::logic::payload::{self, Identity};
use crate::metrics::{self, Metrics};
use crate::notify::{self, Notifier, StatusSources};
use crate::poller::{self, HealthBoard, ReadPlan};
use crate::processor::{self, MachineView, Outputs, Processor};
use crate::publisher::{self, PublisherConfig, PublisherStats};
use crate::store::{self, ClientIdLock, DataDirLock, Store, StoreHandle, StoreOptions};

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
    let plc_ids: Vec<String> = config.plcs.iter().map(|plc| plc.id.clone()).collect();
    Liveness::new(&plc_ids, clock.now().mono, Notifier::slack(notifier))
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
    let _lock = lock_data_dir(&config)?;
    let _client_id_lock = lock_client_id(&config)?;
    let db_path = database_path(&config);
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
    let store = StoreHandle::spawn(store);

    let config = Arc::new(config);
    let identity = identity(&config);
    let plans: Vec<ReadPlan> = (0..config.plcs.len())
        .map(|plc| ReadPlan::for_plc(&config, plc))
        .collect();
    let plc_health = poller::health_board(&config);
    let metrics = Arc::new(Metrics::new());
    let notifier = Notifier::from_env();
    let liveness = liveness_board(&config, &clock, notifier.as_ref());
    let publisher_stats = Arc::new(PublisherStats::default());
    let mut processor = Processor::new(
        config.clone(),
        identity.clone(),
        &plans,
        &store,
        clock.clone(),
    )
    .await?;
    if let Some(recovery) = store.call(|s| s.recovery().cloned()).await? {
        let moved_to = recovery
            .moved_to
            .as_ref()
            .map(|path| path.display().to_string());
        error!(moved_to = moved_to.as_deref().unwrap_or("-"), reason = %recovery.reason, "The previous database was lost or unusable; started a fresh one.");
        processor.alarm_store_recovered(moved_to.as_deref(), &recovery.reason, clock.utc());
    }

    let (sample_tx, sample_rx) = mpsc::channel(SAMPLE_CHANNEL_CAPACITY);
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
    let poll_token = CancellationToken::new();
    let process_token = CancellationToken::new();
    let publish_token = CancellationToken::new();

    let mut pollers = JoinSet::new();
    for (index, plc_config) in config.plcs.iter().enumerate() {
        let span = tracing::info_span!("plc", device = %plc_config.id);
        pollers.spawn(
            poller::run_with_clock(
                index,
                plc_config.clone(),
                plans[index].clone(),
                sample_tx.clone(),
                plc_health.clone(),
                poller::PollTiming {
                    clock: clock.clone(),
                    calendar: config.calendar.clone(),
                    metrics: metrics.clone(),
                    heartbeat: liveness.poller(index),
                },
                poll_token.clone(),
            )
            .instrument(span),
        );
    }
    drop(sample_tx);

    let mut processor_task = tokio::spawn(processor::run(
        processor,
        sample_rx,
        store.clone(),
        Outputs {
            outbox_notify: outbox_notify.clone(),
            live_tx,
            view_tx,
            plc_health: plc_health.clone(),
            publisher_stats: publisher_stats.clone(),
            metrics: metrics.clone(),
            liveness: liveness.clone(),
        },
        process_token.clone(),
    ));

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
    publisher_config.drain_rate = config.mqtt.drain_rate;
    publisher_config.protocol = config.mqtt.protocol;
    publisher_config.max_packet_size = config.mqtt.max_packet_size;
    publisher_config.event_identity = Some(identity.clone());
    publisher_config.clock = clock.clone();
    publisher_config.tls = config.mqtt.tls.clone();
    publisher_config.credentials = config.mqtt.credentials.clone();
    publisher_config.metrics = metrics.clone();
    publisher::announce_uplink(&config.mqtt);
    let mut publisher_task = tokio::spawn(
        publisher::run(
            publisher_config,
            store.clone(),
            outbox_notify,
            live_rx,
            publisher_stats.clone(),
            publish_token.clone(),
        )
        .instrument(tracing::info_span!("mqtt")),
    );

    let http_token = shutdown.child_token();
    let health = metrics::liveness_check(liveness.clone(), clock.clone());
    let http = metrics::spawn_endpoint(
        &config,
        metrics,
        store.clone(),
        health,
        clock.clone(),
        http_token.clone(),
    )
    .await;

    if !config.calendar.is_configured() {
        info!("no [calendar]: all observed time counts as planned time");
    }
    info!(
        plcs = config.plcs.len(),
        machines = config.machines.len(),
        broker = %format!("{}:{}", config.mqtt.host, config.mqtt.port),
        "Agent running."
    );
    let service = notifier.map(|notifier| {
        let sources = StatusSources {
            store: store.clone(),
            plc_health: plc_health.clone(),
            publisher_stats,
        };
        notify::Service::start(notifier, liveness, sources, clock.clone())
    });

    // Wait for the stop signal or for any task to end on its own (which is a failure).
    let mut failure: Option<anyhow::Error> = None;
    tokio::select! {
        _ = shutdown.cancelled() => info!("Stopping."),
        Some(result) = pollers.join_next() => failure = Some(task_failure("poller", result)),
        result = &mut processor_task => failure = Some(task_failure("processor", result)),
        result = &mut publisher_task => failure = Some(task_failure("publisher", result)),
        error = watch_store_file(store.clone()) => failure = Some(error),
    }
    if let Some(service) = service {
        service.stopping();
    }
    if let Some(error) = &failure {
        error!(
            error = format!("{error:#}"),
            "A task stopped; shutting down."
        );
    }

    let drain = async {
        poll_token.cancel();
        while pollers.join_next().await.is_some() {}
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
