//! Wall-clock steps: the agent runs in-process with a `SteppableClock` (the machine's clocks plus an
//! offset the test steps, as NTP does after boot on a gateway without a hardware clock), a simulated PLC
//! over TCP, a real broker and a real SQLite file. The oracle: de-duplicated final rollups sum exactly
//! to the simulator's truth, no window holds time the agent did not observe, the windows at a step are
//! flagged `clock_step`, rollups keep flowing after a step back, and a restart with the clock behind the
//! stored state publishes from the first windows on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use shopfloor_agent::broker::Broker;
use shopfloor_agent::clock::{Clock as _, SteppableClock};
use shopfloor_agent::config::Config;
use shopfloor_agent::supervisor::{self, Observers};
use simulators::{MachineSpec, PlcSimulator, Truth};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::agent::{final_rollups, sum_of};
use crate::support::{self, Recorder};

const HOUR_MS: i64 = 3_600_000;
const PERIODS: [&str; 2] = ["2s", "10s"];
const MACHINES: [(u8, &str); 2] = [(1, "m1"), (2, "m2")];
/// Safety net of every wait; never an expectation about speed.
const PATIENCE: Duration = Duration::from_secs(45);

fn config_text(plc: &str, port: u16, data_dir: &std::path::Path) -> String {
    let periods = PERIODS.map(|p| format!("\"{p}\"")).join(", ");
    format!(
        r#"
[agent]
site = "clock-site"
gateway = "gw-clock"
timezone = "UTC"
data_dir = "{data_dir}"
periods = [{periods}]
live_interval = "1s"
health_interval = "1s"

[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "clock-{port}"

[[plc]]
id = "plc-a"
address = "{plc}"
poll_interval = "200ms"
timeout = "1s"

[[machine]]
id = "m1"
line = "line-a"
plc = "plc-a"
unit_id = 1
ideal_cycle_time = "30ms"
counters.produced = {{ address = 0, type = "u32" }}
counters.defective = {{ address = 2, type = "u32" }}
state = {{ address = 20, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }}

[[machine]]
id = "m2"
line = "line-a"
plc = "plc-a"
unit_id = 2
counters.produced = {{ address = 0, type = "u32" }}
counters.defective = {{ address = 2, type = "u32" }}
"#,
        data_dir = data_dir.display()
    )
}

async fn start_plc(seed: u64) -> PlcSimulator {
    let spec = |unit_id, cycle_ms| MachineSpec {
        cycle_time: Duration::from_millis(cycle_ms),
        defect_probability: 0.1,
        stop_probability: 0.02,
        initial_produced: 5_000,
        ..MachineSpec::new(unit_id)
    };
    let plc = PlcSimulator::start("127.0.0.1:0", vec![spec(1, 30), spec(2, 45)], seed)
        .await
        .expect("the simulator starts");
    set_producing(&plc, false);
    plc
}

fn set_producing(plc: &PlcSimulator, on: bool) {
    for (unit, _) in MACHINES {
        plc.set_producing(unit, on);
    }
}

fn truth(plc: &PlcSimulator) -> Vec<Truth> {
    MACHINES.iter().map(|(unit, _)| plc.truth(*unit)).collect()
}

/// One scenario's real parts: a simulated PLC over TCP, a broker with a recording subscriber, a data
/// directory for the SQLite store, and the agent's configuration text.
struct Bench {
    plc: PlcSimulator,
    // The recorder goes before the broker it listens to.
    recorder: Recorder,
    _broker: Broker,
    _data_dir: tempfile::TempDir,
    text: String,
}

impl Bench {
    async fn start(seed: u64) -> Bench {
        let plc = start_plc(seed).await;
        let broker = support::broker();
        let recorder = Recorder::subscribe(broker.port, "shopfloor/v1/#").await;
        let data_dir = tempfile::tempdir().unwrap();
        let text = config_text(&plc.local_addr().to_string(), broker.port, data_dir.path());
        Bench {
            plc,
            recorder,
            _broker: broker,
            _data_dir: data_dir,
            text,
        }
    }

    fn config(&self) -> Config {
        Config::from_toml(&self.text, "clock.toml", false).expect("scenario config is valid")
    }

    async fn shutdown(self) {
        self.plc.shutdown().await;
    }
}

/// The agent running in-process on `clock`.
struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Starts the agent and returns once the PLC was polled twice.
    async fn start(config: Config, clock: Arc<SteppableClock>) -> Running {
        let shutdown = CancellationToken::new();
        let (observers_tx, observers_rx) = std::sync::mpsc::channel::<Observers>();
        let task = tokio::spawn(supervisor::run_with_clock(
            config,
            clock,
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
        support::wait_until(PATIENCE, "the PLC polled twice", || {
            observers.plc_health.lock().unwrap()[0].polls >= 2
        })
        .await;
        Running { shutdown, task }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("agent task")
            .expect("agent stops cleanly");
    }
}

fn window_ms(window: &Value, edge: &str) -> i64 {
    let text = window["window"][edge]
        .as_str()
        .expect("window edges are strings");
    text.parse::<jiff::Timestamp>()
        .expect("RFC 3339")
        .as_millisecond()
}

/// True once, for every machine and period, a rollup of the window holding `at` has arrived after
/// `since` (a window published before a step back may already cover `at` with phantom time).
fn closed_through(recorder: &Recorder, at: i64, since: Instant) -> bool {
    let received = recorder.messages();
    MACHINES.iter().all(|(_, machine)| {
        PERIODS.iter().all(|period| {
            let topic = format!("/{machine}/rollup/{period}");
            received.iter().any(|m| {
                m.arrived >= since
                    && m.topic.ends_with(&topic)
                    && window_ms(&m.body, "start") <= at
                    && at < window_ms(&m.body, "end")
            })
        })
    })
}

/// Rollups of `machine` that arrived after `since`.
fn rollups_since(recorder: &Recorder, machine: &str, since: Instant) -> usize {
    let topic = format!("/{machine}/rollup/");
    recorder
        .messages()
        .iter()
        .filter(|m| m.arrived >= since && m.topic.contains(&topic))
        .count()
}

/// Polls `condition` until it holds or `PATIENCE` passes; returns whether it held, so that a scenario
/// can still report its figures before it asserts.
async fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

fn times_ms(windows: &BTreeMap<i64, Value>, field: &str) -> i64 {
    windows
        .values()
        .map(|w| w["times_ms"][field].as_i64().expect("times are integers"))
        .sum()
}

fn flagged(windows: &BTreeMap<i64, Value>, flag: &str) -> Vec<i64> {
    windows
        .iter()
        .filter(|(_, w)| {
            w["flags"]
                .as_array()
                .is_some_and(|f| f.contains(&flag.into()))
        })
        .map(|(start, _)| *start)
        .collect()
}

/// "rollups N / truth M" for m1's 2 s windows, for the scenario reports.
fn m1_count(recorder: &Recorder, before: &[Truth], after: &[Truth]) -> String {
    let rollups = sum_of(&final_rollups(recorder, "m1", "2s"), "produced");
    format!(
        "m1 produced: rollups {rollups} / truth {}",
        after[0].produced - before[0].produced
    )
}

/// Asserts per machine and period that the final rollups sum to the truth between `before` and `after`.
fn assert_totals(scenario: &str, recorder: &Recorder, before: &[Truth], after: &[Truth]) {
    for (index, (_, machine)) in MACHINES.iter().enumerate() {
        let produced = after[index].produced - before[index].produced;
        let defective = after[index].defective - before[index].defective;
        assert!(
            produced > 20,
            "[{scenario}] {machine} produced only {produced}"
        );
        for period in PERIODS {
            let windows = final_rollups(recorder, machine, period);
            assert_eq!(
                (sum_of(&windows, "produced"), sum_of(&windows, "defective")),
                (produced, defective),
                "[{scenario}] {machine} {period}: final rollups vs simulator truth"
            );
        }
        support::report(&format!(
            "[{scenario}] {machine}: truth produced {produced} defective {defective} = final rollups"
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_stepped_forward_and_back_an_hour_keeps_rollups_exact_flagged_and_flowing() {
    // Given a PLC with two machines, a broker, and the agent on a clock the test can step.
    let bench = Bench::start(31).await;
    let (plc, recorder) = (&bench.plc, &bench.recorder);
    let clock = Arc::new(SteppableClock::new(0));
    let observed_since = Instant::now();
    let agent = Running::start(bench.config(), clock.clone()).await;
    let before = truth(plc);
    set_producing(plc, true);

    // When NTP steps the wall clock forward an hour while the machines produce, then back an hour.
    tokio::time::sleep(Duration::from_secs(3)).await;
    clock.step(HOUR_MS);
    tokio::time::sleep(Duration::from_secs(4)).await;
    clock.step(-HOUR_MS);
    let back_at = clock.utc();
    let stepped_back = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    set_producing(plc, false);
    let frozen_at = clock.utc();
    let after = truth(plc);

    // Then the windows of the production after the step back close and are published.
    let flowing = wait_for(|| closed_through(recorder, frozen_at + 1_000, stepped_back)).await;
    let observed_ms = observed_since.elapsed().as_millis() as i64;
    let m1 = final_rollups(recorder, "m1", "10s");
    let after_back = rollups_since(recorder, "m1", stepped_back);
    let (running, planned) = (times_ms(&m1, "running"), times_ms(&m1, "planned"));
    support::report(&format!(
        "[clock steps] {}; m1 10s windows: running {running} ms, planned {planned} ms, observed for \
         {observed_ms} ms; m1 rollups published after the step back: {after_back}; clock_step \
         flagged windows: {:?}",
        m1_count(recorder, &before, &after),
        flagged(&m1, "clock_step")
    ));
    assert!(
        flowing,
        "rollups stopped after the step back ({after_back} m1 rollups since it)"
    );
    // No phantom time: the windows hold no more time than the agent watched.
    assert!(
        planned <= observed_ms,
        "phantom time: windows hold {planned} ms, the agent observed {observed_ms} ms"
    );
    assert_totals("clock steps", recorder, &before, &after);
    // Both steps are flagged: the 10 s windows around the forward and around the back step.
    let steps = flagged(&m1, "clock_step");
    assert!(
        steps.iter().any(|s| *s > back_at + HOUR_MS / 2) && steps.iter().any(|s| *s <= back_at),
        "clock_step flags on {steps:?}"
    );
    // The health topic names the last step: an hour back.
    let health = recorder.messages_matching("/_gateway/gw-clock/health");
    let last_step = &health.last().expect("health published").1["clock"]["last_step"];
    assert_eq!(last_step["direction"], "back", "{last_step}");
    let size = last_step["size_ms"].as_i64().expect("size_ms");
    assert!((size - HOUR_MS).abs() < 5_000, "{last_step}");
    for (_, body) in &health {
        support::assert_valid(&support::schema("health"), body);
    }
    for (_, body) in recorder.messages_matching("/rollup/") {
        support::assert_valid(&support::schema("rollup"), &body);
    }
    agent.stop().await;
    bench.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_the_clock_an_hour_behind_the_stored_state_publishes_at_once() {
    // Given an agent that ran and stored its state with the clock an hour ahead (a gateway that booted
    // with a wrong time), while the machines produce.
    let bench = Bench::start(41).await;
    let (plc, recorder) = (&bench.plc, &bench.recorder);
    let first = Running::start(bench.config(), Arc::new(SteppableClock::new(HOUR_MS))).await;
    let before = truth(plc);
    set_producing(plc, true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.stop().await;

    // When it restarts with the right time, an hour behind everything it stored.
    let clock = Arc::new(SteppableClock::new(0));
    let restarted_at = clock.utc();
    let restarted = Instant::now();
    let second = Running::start(bench.config(), clock.clone()).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    set_producing(plc, false);
    let frozen_at = clock.utc();
    let after = truth(plc);

    // Then the windows of the new time are published at once, and the totals are exact.
    let flowing = wait_for(|| closed_through(recorder, frozen_at + 1_000, restarted)).await;
    let m1 = final_rollups(recorder, "m1", "2s");
    let new_time = m1
        .range(restarted_at - 2_000..restarted_at + HOUR_MS / 2)
        .count();
    support::report(&format!(
        "[clock restart] 2s windows of the new time published: {new_time}; clock_step flagged \
         windows: {:?}",
        flagged(&m1, "clock_step")
    ));
    assert!(
        flowing,
        "nothing published after the restart ({new_time} windows)"
    );
    assert_totals("clock restart", recorder, &before, &after);
    assert!(!flagged(&m1, "clock_step").is_empty());
    second.stop().await;
    bench.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_stepped_back_an_hour_keeps_rollups_flowing_in_the_windows_of_the_new_time() {
    // Given the agent running while the machines produce.
    let bench = Bench::start(51).await;
    let (plc, recorder) = (&bench.plc, &bench.recorder);
    let clock = Arc::new(SteppableClock::new(0));
    let agent = Running::start(bench.config(), clock.clone()).await;
    let before = truth(plc);
    set_producing(plc, true);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // When NTP steps the wall clock back an hour and the machines go on producing.
    clock.step(-HOUR_MS);
    let back_at = clock.utc();
    let stepped_back = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    set_producing(plc, false);
    let frozen_at = clock.utc();
    let after = truth(plc);

    // Then the windows of the new time close and are published as the clock passes them, each with
    // its own production, and the totals are exact.
    let flowing = wait_for(|| closed_through(recorder, frozen_at + 1_000, stepped_back)).await;
    let after_back = rollups_since(recorder, "m1", stepped_back);
    let new_time: Vec<u64> = final_rollups(recorder, "m1", "2s")
        .range(back_at - 2_000..=frozen_at)
        .map(|(_, w)| {
            w["counts"]["produced"]
                .as_u64()
                .expect("counts are integers")
        })
        .collect();
    support::report(&format!(
        "[clock back] {}; m1 rollups published after the step back: {after_back}; m1 2s windows of \
         the new time, produced: {new_time:?}",
        m1_count(recorder, &before, &after)
    ));
    assert!(
        flowing,
        "rollups stopped after the step back ({after_back} m1 rollups since it)"
    );
    assert_totals("clock back", recorder, &before, &after);
    assert!(
        new_time.iter().filter(|produced| **produced > 0).count() >= 2,
        "production after the step back lumped together: {new_time:?}"
    );
    agent.stop().await;
    bench.shutdown().await;
}
