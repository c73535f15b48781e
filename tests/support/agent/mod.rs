//! Running the real agent (`supervisor::run`) against simulated PLCs for fault scenarios, and the oracle:
//! de-duplicated final rollups must sum exactly to the simulator's truth, every enqueued seq must reach the
//! subscriber, and the store must pass `integrity_check` after the agent stopped.
//!
//! Windows are compressed to "2s" and "10s". Production is frozen just before a 10 s boundary so the last
//! windows close a few seconds later instead of a whole period later.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use shopfloor_agent::config::Config;
use shopfloor_agent::publisher::PublisherSnapshot;
use shopfloor_agent::store::{Backlog, Store, StoreOptions};
use shopfloor_agent::supervisor::{self, Observers};
use simulators::Truth;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::counting::{CountingReport, Enqueued};
use super::recorder::Recorder;

mod plant;

pub(crate) use plant::Plant;

/// The rollup periods of every scenario, and the long one in milliseconds.
pub(crate) const PERIODS: [&str; 2] = ["2s", "10s"];
const LONG_PERIOD_MS: i64 = 10_000;
/// Timezone of the scenarios (its offset is a multiple of 10 s, so 10 s windows align as in UTC).
const TIMEZONE: &str = "Asia/Kolkata";
/// Overall safety net of the waits in this module; never an expectation about speed.
const PATIENCE: Duration = Duration::from_secs(60);

/// Per-scenario settings of the agent under test.
pub(crate) struct Tuning<'a> {
    /// `[agent] live_interval` (live traffic competes with rows for the in-flight window).
    pub live_interval: &'a str,
    /// More `[mqtt]` lines (protocol, max_inflight, drain_rate, ...).
    pub mqtt: &'a str,
    /// More `[agent]` lines (e.g. restatement_horizon).
    pub agent: &'a str,
    /// `[store]` lines (e.g. max_bytes).
    pub store: &'a str,
}

/// A running agent and what a scenario needs to watch it.
pub(crate) struct Agent {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    observers: Option<Observers>,
    db_path: PathBuf,
}

impl Agent {
    /// Starts the agent for `plant`, publishing to 127.0.0.1:`mqtt_port` with `tuning`. Returns once every
    /// PLC was polled twice.
    pub(crate) async fn start(
        plant: &Plant,
        mqtt_port: u16,
        tuning: &Tuning<'_>,
        data_dir: &std::path::Path,
    ) -> Agent {
        let text = plant.config_text(mqtt_port, tuning, data_dir);
        let config =
            Config::from_toml(&text, "fault.toml", false).expect("scenario config is valid");
        let db_path = supervisor::database_path(&config);
        let shutdown = CancellationToken::new();
        let (observers_tx, observers_rx) = std::sync::mpsc::channel::<Observers>();
        let task = tokio::spawn(supervisor::run(
            config,
            shutdown.clone(),
            move |observers| {
                let _ = observers_tx.send(observers);
            },
        ));
        let observers =
            tokio::task::spawn_blocking(move || observers_rx.recv_timeout(Duration::from_secs(30)))
                .await
                .expect("observer wait")
                .expect("the agent starts");
        super::wait_until(PATIENCE, "every PLC polled twice", || {
            observers
                .plc_health
                .lock()
                .expect("health lock")
                .iter()
                .all(|health| health.polls >= 2)
        })
        .await;
        Agent {
            shutdown,
            task,
            observers: Some(observers),
            db_path,
        }
    }

    fn observers(&self) -> &Observers {
        self.observers.as_ref().expect("the agent is running")
    }

    /// The publisher's counters now.
    pub(crate) fn stats(&self) -> PublisherSnapshot {
        self.observers().publisher_stats.snapshot()
    }

    /// The outbox backlog now.
    pub(crate) async fn backlog(&self) -> Backlog {
        self.observers()
            .store
            .call(|store| store.backlog())
            .await
            .expect("store thread alive")
            .expect("backlog query")
    }

    /// Rows the store's quota policy has dropped so far.
    pub(crate) async fn dropped_rows(&self) -> u64 {
        self.observers()
            .store
            .call(|store| store.drops().rows_dropped())
            .await
            .expect("store thread alive")
    }

    /// db_epoch, last seq and the seqs still in the outbox, read through the running agent's store.
    pub(crate) async fn enqueued(&self) -> Enqueued {
        self.observers()
            .store
            .call(|store| enqueued_in(store))
            .await
            .expect("store thread alive")
    }

    /// Cancels the agent, waits for it to return `Ok`, then reopens its database: `integrity_check` must be
    /// clean. Returns what the store still holds.
    pub(crate) async fn stop(mut self) -> Enqueued {
        drop(self.observers.take());
        self.shutdown.cancel();
        let result = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the agent stops after cancellation")
            .expect("the agent task did not panic");
        result.expect("the agent returns Ok on shutdown");
        let path = self.db_path.clone();
        tokio::task::spawn_blocking(move || {
            let store = Store::open(&path, &StoreOptions::default()).expect("the database reopens");
            let problems = store.integrity_check().expect("integrity_check runs");
            assert!(problems.is_empty(), "integrity_check: {problems:?}");
            enqueued_in(&store)
        })
        .await
        .expect("reopen task")
    }
}

fn enqueued_in(store: &Store) -> Enqueued {
    let last_seq = store.last_seq().expect("last_seq");
    let unsent: BTreeSet<i64> = store
        .unacked(0, usize::MAX >> 1)
        .expect("unacked rows")
        .into_iter()
        .map(|row| row.seq)
        .collect();
    Enqueued {
        epochs: [(store.db_epoch().to_string(), (last_seq, unsent))].into(),
    }
}

/// Final rollups of one machine and period, de-duplicated: the highest revision per window start.
pub(crate) fn final_rollups(
    recorder: &Recorder,
    machine: &str,
    period: &str,
) -> BTreeMap<i64, Value> {
    let mut windows: BTreeMap<i64, Value> = BTreeMap::new();
    for (_, body) in recorder.messages_matching(&format!("/{machine}/rollup/{period}")) {
        let Some(start) = window_millis(&body, "start") else {
            continue;
        };
        let revision = body["revision"].as_u64().unwrap_or(0);
        let keep = windows
            .get(&start)
            .is_none_or(|old| old["revision"].as_u64().unwrap_or(0) < revision);
        if keep {
            windows.insert(start, body);
        }
    }
    windows
}

fn window_millis(body: &Value, edge: &str) -> Option<i64> {
    let text = body["window"][edge].as_str()?;
    let timestamp: jiff::Timestamp = text.parse().ok()?;
    Some(timestamp.as_millisecond())
}

fn sum(windows: &BTreeMap<i64, Value>, field: &str) -> u64 {
    windows
        .values()
        .map(|window| {
            window["counts"][field]
                .as_u64()
                .expect("counts are integers")
        })
        .sum()
}

/// Keeps production running for at least `at_least`, then freezes it 1.5 s before the next 10 s boundary;
/// returns the freeze time (UTC milliseconds).
pub(crate) async fn freeze_before_boundary(plant: &Plant, at_least: Duration) -> i64 {
    tokio::time::sleep(at_least).await;
    let now = shopfloor_agent::poller::now_millis();
    let mut boundary = (now / LONG_PERIOD_MS + 1) * LONG_PERIOD_MS;
    if boundary - now < 1_800 {
        boundary += LONG_PERIOD_MS;
    }
    let freeze_at = boundary - 1_500;
    tokio::time::sleep(Duration::from_millis((freeze_at - now).unsigned_abs())).await;
    plant.set_producing(false);
    shopfloor_agent::poller::now_millis()
}

/// The oracle of every scenario, run after production was frozen at `frozen_at`: waits until the windows
/// holding the last production are final and every enqueued row reached `recorder`, stops the agent (store
/// integrity checked), prints the counting report and asserts: nothing missing, and per machine and period
/// the de-duplicated final rollups sum exactly to the truth between `before` and now. Returns the report and
/// the publisher's last counters.
pub(crate) async fn settle_and_check(
    scenario: &str,
    plant: &Plant,
    agent: Agent,
    recorder: &Recorder,
    before: &[Truth],
    frozen_at: i64,
) -> (CountingReport, PublisherSnapshot) {
    wait_for_last_windows(plant, recorder, frozen_at).await;
    super::wait_until_async(PATIENCE, "every enqueued row at the subscriber", || async {
        let enqueued = agent.enqueued().await;
        CountingReport::count(&recorder.messages(), &enqueued)
            .0
            .missing
            == 0
    })
    .await;
    let after = plant.truth();
    let stats = agent.stats();
    let enqueued = agent.stop().await;
    crate::support::report(&format!("publisher stats [{scenario}]: {stats:?}"));
    let report = assert_matches_truth(scenario, plant, recorder, &enqueued, before, &after);
    (report, stats)
}

/// The counting oracle: every enqueued row reached the subscriber (the report counts duplicates and
/// missing rows), and for every machine and period the final rollups sum to the simulator's truth between
/// `before` and `after`. Returns the report.
pub(crate) fn assert_matches_truth(
    scenario: &str,
    plant: &Plant,
    recorder: &Recorder,
    enqueued: &Enqueued,
    before: &[Truth],
    after: &[Truth],
) -> CountingReport {
    let (report, missing) = CountingReport::count(&recorder.messages(), enqueued);
    report.print(scenario);
    assert!(
        missing.is_empty(),
        "[{scenario}] rows never delivered: {missing:?}"
    );
    for (index, machine) in plant.machines().into_iter().enumerate() {
        let produced = after[index].produced - before[index].produced;
        let defective = after[index].defective - before[index].defective;
        assert!(produced > 0, "[{scenario}] {machine} produced nothing");
        for period in PERIODS {
            let windows = final_rollups(recorder, machine, period);
            assert_eq!(
                (sum(&windows, "produced"), sum(&windows, "defective")),
                (produced, defective),
                "[{scenario}] {machine} {period}: final rollups vs simulator truth"
            );
        }
        crate::support::report(&format!(
            "[{scenario}] {machine}: truth produced {produced} defective {defective} = final rollups"
        ));
    }
    report
}

/// Waits until, for every machine and period, the final window holding `frozen_at + 1 s` arrived.
pub(crate) async fn wait_for_last_windows(plant: &Plant, recorder: &Recorder, frozen_at: i64) {
    let settle_at = frozen_at + 1_000;
    super::wait_until(
        PATIENCE,
        "the windows of the last production to close",
        || {
            plant.machines().iter().all(|machine| {
                PERIODS.iter().all(|period| {
                    final_rollups(recorder, machine, period)
                        .values()
                        .any(|window| {
                            window_millis(window, "start").is_some_and(|start| start <= settle_at)
                                && window_millis(window, "end").is_some_and(|end| settle_at < end)
                        })
                })
            })
        },
    )
    .await;
}

/// Sum of `counts.<field>` over de-duplicated final rollups.
pub(crate) fn sum_of(windows: &BTreeMap<i64, Value>, field: &str) -> u64 {
    sum(windows, field)
}

/// Starts the agent, takes the truth once every PLC has been polled, and starts production.
pub(crate) async fn start_producing(
    plant: &Plant,
    mqtt_port: u16,
    tuning: &Tuning<'_>,
    data_dir: &std::path::Path,
) -> (Agent, Vec<Truth>) {
    let agent = Agent::start(plant, mqtt_port, tuning, data_dir).await;
    let before = plant.truth();
    plant.set_producing(true);
    (agent, before)
}
