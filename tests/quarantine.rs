//! Counter readings the agent must not count, with real parts: a PLC simulator over TCP, the agent in process
//! (`supervisor::run`) with its SQLite file, and the `shopfloor-agent quarantine` binary beside the running
//! agent. No broker listens, so every row the agent derives stays in its outbox, where the test reads it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use shopfloor_agent::config::Config;
use shopfloor_agent::supervisor::{self, Observers};
use simulators::{MachineSpec, PlcSimulator};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::{self, wait_until, wait_until_async};

const BINARY: &str = env!("CARGO_BIN_EXE_shopfloor-agent");
/// Safety net of every wait; never an expectation about speed.
const PATIENCE: Duration = Duration::from_secs(60);
const UNIT: u8 = 1;

/// One machine on one simulated PLC, frozen, its produced counter (u32, modulus 10^6) at 1000.
async fn plc() -> PlcSimulator {
    let spec = MachineSpec {
        initial_produced: 1_000,
        ..MachineSpec::new(UNIT)
    };
    let plc = PlcSimulator::start("127.0.0.1:0", vec![spec], 7)
        .await
        .expect("the simulator starts");
    plc.set_producing(UNIT, false);
    plc
}

/// The agent's configuration: 2 s windows, 200 ms polls, `counter_extra` appended to the produced counter.
fn config_text(plc: SocketAddr, data_dir: &Path, counter_extra: &str) -> String {
    // Nothing listens on this port: the publisher keeps retrying and every row stays in the outbox.
    let mqtt_port = support::free_port();
    format!(
        r#"
[agent]
site = "acme"
gateway = "gw-q"
timezone = "UTC"
data_dir = "{data_dir}"
periods = ["2s"]
live_interval = "1s"
health_interval = "2s"

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
client_id = "quarantine-{mqtt_port}"

[[plc]]
id = "plc-a"
address = "{plc}"
poll_interval = "200ms"
timeout = "1s"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
unit_id = {UNIT}
counters.produced = {{ address = 0, type = "u32", modulus = "1000000"{counter_extra} }}
"#,
        data_dir = data_dir.display()
    )
}

/// The agent running in this process, with its configuration file for the command line.
struct RunningAgent {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    observers: Observers,
    config_file: std::path::PathBuf,
}

impl RunningAgent {
    /// Writes `text` to a file in `dir`, starts the agent on it and returns once its PLC was polled twice.
    async fn start(dir: &Path, text: String) -> RunningAgent {
        let config_file = dir.join("agent.toml");
        std::fs::write(&config_file, &text).unwrap();
        let config = Config::from_toml(&text, "agent.toml", false).expect("the config is valid");
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
                .unwrap()
                .expect("the agent starts");
        wait_until(PATIENCE, "the PLC polled twice", || {
            observers
                .plc_health
                .lock()
                .unwrap()
                .iter()
                .all(|health| health.polls >= 2)
        })
        .await;
        RunningAgent {
            shutdown,
            task,
            observers,
            config_file,
        }
    }

    /// Every payload in the outbox, in seq order.
    async fn outbox(&self) -> Vec<Value> {
        let rows = self
            .observers
            .store
            .call(|store| store.unacked(0, usize::MAX))
            .await
            .unwrap()
            .unwrap();
        rows.iter()
            .map(|row| serde_json::from_slice(&row.payload).unwrap())
            .collect()
    }

    /// Runs `shopfloor-agent quarantine <args> --config <file>`; returns (success, stdout, stderr).
    async fn quarantine(&self, args: &[&str]) -> (bool, String, String) {
        let mut command = Command::new(BINARY);
        command
            .arg("quarantine")
            .args(args)
            .arg("--config")
            .arg(&self.config_file);
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().expect("the agent stops cleanly");
    }
}

fn rollups<'a>(outbox: &'a [Value], status: &str) -> Vec<&'a Value> {
    outbox
        .iter()
        .filter(|body| body.get("window").is_some() && body["status"] == status)
        .collect()
}

/// The latest revision of every closed window (final or restated), as a consumer keeps them after
/// de-duplication: units that reach a window after it closed are in its restated revision.
fn latest_windows(outbox: &[Value]) -> Vec<&Value> {
    let mut latest: std::collections::BTreeMap<(String, String), &Value> = Default::default();
    for body in outbox
        .iter()
        .filter(|body| body.get("window").is_some() && body["status"] != "open")
    {
        let key = (
            body["window"]["period"].to_string(),
            body["window"]["start"].to_string(),
        );
        let newer = latest
            .get(&key)
            .is_none_or(|kept| kept["revision"].as_u64() < body["revision"].as_u64());
        if newer {
            latest.insert(key, body);
        }
    }
    latest.into_values().collect()
}

fn events<'a>(outbox: &'a [Value], kind: &str) -> Vec<&'a Value> {
    outbox.iter().filter(|body| body["kind"] == kind).collect()
}

/// An RFC 3339 time from a payload or from `quarantine list --json`.
fn instant(value: &Value) -> jiff::Timestamp {
    value.as_str().unwrap().parse().unwrap()
}

fn has_flag(rollup: &Value, flag: &str) -> bool {
    rollup["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == flag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_jump_released_through_the_cli_restates_its_window_with_the_units() {
    // Given: a running agent guarding the counter at 5 units/s, and a jump of 500 between two 200 ms polls.
    let plc = plc().await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(plc.local_addr(), dir.path(), ", design_rate = 5.0");
    let agent = RunningAgent::start(dir.path(), text).await;
    plc.set_counter(UNIT, 1_500);
    wait_until_async(
        PATIENCE,
        "the window of the jump published, flagged rejected",
        || async {
            let outbox = agent.outbox().await;
            let finals = rollups(&outbox, "final");
            finals.iter().any(|r| has_flag(r, "rejected"))
        },
    )
    .await;
    let outbox = agent.outbox().await;
    let final_window = rollups(&outbox, "final")
        .into_iter()
        .find(|r| has_flag(r, "rejected"))
        .cloned()
        .unwrap();
    assert_eq!(final_window["counts"]["produced"], 0);

    // When: the operator lists the quarantine and releases the jump, while the agent runs.
    let (ok, stdout, stderr) = agent.quarantine(&["list", "--json"]).await;
    assert!(ok, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{stdout}");
    assert_eq!(
        (
            &listed[0]["machine"],
            &listed[0]["counter"],
            &listed[0]["amount"],
            &listed[0]["status"]
        ),
        (
            &Value::from("press-01"),
            &Value::from("produced"),
            &Value::from(500),
            &Value::from("quarantined")
        )
    );
    let id = listed[0]["id"].as_i64().unwrap().to_string();
    let (ok, stdout, stderr) = agent.quarantine(&["release", "--id", &id]).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("500 units of press-01 produced"),
        "{stdout}"
    );

    // Then: releasing it twice, or an unknown id, is a clear error.
    assert_second_release_and_unknown_id_refused(&agent, &id).await;

    // And the agent restates the window(s) of the jump's 200 ms interval with the 500 units (split in
    // proportion to time should the interval straddle a window boundary), and announces the release.
    wait_until_async(
        PATIENCE,
        "the windows restated with the released units",
        || async {
            let outbox = agent.outbox().await;
            let restated = rollups(&outbox, "restated");
            restated
                .iter()
                .map(|r| r["counts"]["produced"].as_u64().unwrap())
                .sum::<u64>()
                == 500
        },
    )
    .await;
    let outbox = agent.outbox().await;
    let restated = rollups(&outbox, "restated");
    // Each restated window overlaps the jump's interval; which windows those are depends on how long the
    // poll that saw the jump took, so no one window is singled out.
    let interval = (instant(&listed[0]["from"]), instant(&listed[0]["to"]));
    for rollup in &restated {
        let window = (
            instant(&rollup["window"]["start"]),
            instant(&rollup["window"]["end"]),
        );
        assert!(
            window.0 < interval.1 && interval.0 < window.1,
            "restated window {window:?} outside the jump's interval {interval:?}"
        );
    }
    for rollup in &restated {
        assert_eq!(rollup["revision"], 1);
        support::assert_valid(&support::schema("rollup"), rollup);
    }
    let outbox = agent.outbox().await;
    let released = events(&outbox, "quarantine_released");
    assert_eq!(released.len(), 1, "{outbox:#?}");
    assert_eq!(released[0]["detail"]["amount"], 500);
    support::assert_valid(&support::schema("event"), released[0]);
    let (ok, stdout, stderr) = agent.quarantine(&["list", "--json"]).await;
    assert!(ok, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed[0]["status"], "released", "{stdout}");
    support::report(&format!(
        "quarantine: a jump of 500 quarantined (window {} counted 0), released through the CLI, restated in {} \
         window(s) with 500 units",
        final_window["window"]["start"],
        restated.len()
    ));

    agent.stop().await;
    plc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_read_above_its_modulus_is_a_gap_announced_once_and_never_counted() {
    // Given: a running agent without a design rate, and the counter reading 2,000,000 (modulus 10^6) for a
    // while before it reads 1003 again.
    let plc = plc().await;
    let dir = tempfile::tempdir().unwrap();
    let agent =
        RunningAgent::start(dir.path(), config_text(plc.local_addr(), dir.path(), "")).await;
    plc.set_counter(UNIT, 2_000_000);
    wait_until_async(PATIENCE, "the invalid reading announced", || async {
        !events(&agent.outbox().await, "counter_anomaly").is_empty()
    })
    .await;
    let polls = agent.observers.plc_health.lock().unwrap()[0].polls;
    wait_until(PATIENCE, "five more polls of the invalid value", || {
        agent.observers.plc_health.lock().unwrap()[0].polls >= polls + 5
    })
    .await;

    // When the counter reads a valid value again, 3 units above the last valid one.
    plc.set_counter(UNIT, 1_003);
    wait_until_async(
        PATIENCE,
        "closed windows that counted the 3 units",
        || async {
            let outbox = agent.outbox().await;
            let closed = latest_windows(&outbox);
            closed
                .iter()
                .map(|r| r["counts"]["produced"].as_u64().unwrap())
                .sum::<u64>()
                == 3
        },
    )
    .await;

    // Then: before the fix the agent counted 1,999,000 units and then a "reset" of 1003 (2,000,003 in all).
    // Now only the 3 count, the windows of the invalid readings are flagged gap, and one event says why.
    // The 3 units are spread over the invalid readings' time, so on a slow machine part of them reaches
    // windows that had closed already: each window is read at its latest revision.
    let outbox = agent.outbox().await;
    let finals = latest_windows(&outbox);
    let produced: u64 = finals
        .iter()
        .map(|r| r["counts"]["produced"].as_u64().unwrap())
        .sum();
    assert_eq!(produced, 3);
    assert!(finals.iter().any(|r| has_flag(r, "gap")), "{finals:#?}");
    assert!(!finals.iter().any(|r| has_flag(r, "reset")), "{finals:#?}");
    let anomalies = events(&outbox, "counter_anomaly");
    assert_eq!(anomalies.len(), 1, "{anomalies:#?}");
    assert_eq!(anomalies[0]["detail"]["kind"], "invalid");
    assert_eq!(anomalies[0]["detail"]["raw"], 2_000_000);
    support::assert_valid(&support::schema("event"), anomalies[0]);
    support::report(&format!(
        "invalid counter: 2,000,000 read at modulus 10^6 for 5+ polls; counted {produced} (2,000,003 before the fix)"
    ));

    agent.stop().await;
    plc.shutdown().await;
}

/// A second release of `id`, and a release of an id that does not exist, each fail with a clear error.
async fn assert_second_release_and_unknown_id_refused(agent: &RunningAgent, id: &str) {
    let (ok, _, stderr) = agent.quarantine(&["release", "--id", id]).await;
    assert!(
        !ok && stderr.contains("cannot be released twice"),
        "{stderr}"
    );
    let (ok, _, stderr) = agent.quarantine(&["release", "--id", "999999"]).await;
    assert!(
        !ok && stderr.contains("no delta with id 999999"),
        "{stderr}"
    );
}
