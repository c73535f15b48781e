//! Soak: the agent binary with a short restatement horizon, fast polls and several machines runs for about a
//! minute while its resident memory and the database's used pages are sampled. Once the horizon (and the audit
//! retention, which defaults to it) has passed, both must stay flat: window records and audit rows leave as
//! fast as they come. And a PLC outage longer than the time closed windows stay in memory: the first poll
//! after it restates windows the agent must load back from its database, with exact totals.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use simulators::{MachineSpec, PlcSimulator};

use crate::support::agent::{final_rollups, sum_of};
use crate::support::{self, FaultProxy, Mode, Recorder};

const BINARY: &str = env!("CARGO_BIN_EXE_shopfloor-agent");
/// Machines on the simulated PLC, unit ids 1..=MACHINES.
const MACHINES: u8 = 8;
/// Samples taken, one every `SAMPLE_EVERY`; the run lasts about `SAMPLES * SAMPLE_EVERY`.
const SAMPLES: usize = 14;
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// One observation of the running agent.
#[derive(Debug, Clone, Copy)]
struct Sample {
    seconds: u64,
    rss_kib: u64,
    used_bytes: u64,
    deltas: u64,
    windows: u64,
    /// Rollups received so far, so a stalled agent cannot pass for a flat one.
    rollups: usize,
}

fn config(dir: &Path, plc: &str, broker_port: u16, machines: u8, horizon: &str) -> String {
    let mut text = format!(
        r#"
[agent]
site = "soak-site"
gateway = "gw-soak"
data_dir = "{data}"
periods = ["1s", "5s"]
grace = {{ "1s" = "400ms", "5s" = "1s" }}
live_interval = "1s"
health_interval = "2s"
restatement_horizon = "{horizon}"

[mqtt]
port = {broker_port}
client_id = "soak-{broker_port}"

[[plc]]
id = "plc-a"
address = "{plc}"
poll_interval = "100ms"
timeout = "1s"
backoff_max = "500ms"
"#,
        data = dir.join("data").display()
    );
    for unit in 1..=machines {
        text.push_str(&format!(
            r#"
[[machine]]
id = "m{unit}"
line = "line-a"
plc = "plc-a"
unit_id = {unit}
counters.produced = {{ address = 0, type = "u32" }}
counters.defective = {{ address = 2, type = "u32" }}
state = {{ address = 20, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }}
"#
        ));
    }
    text
}

/// VmRSS of `pid` in KiB (0 when /proc is not there).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Used bytes (pages in use, WAL included) and the audit and window row counts, read through a short
/// read-only connection so it never holds back the agent's checkpoints.
fn database_figures(database: &Path) -> Option<(u64, u64, u64)> {
    let conn =
        rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row(
        "SELECT ((SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count()))
                * (SELECT page_size FROM pragma_page_size()),
                (SELECT count(*) FROM deltas), (SELECT count(*) FROM windows)",
        [],
        |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?)),
    )
    .ok()
    .map(|(used, deltas, windows)| (used as u64, deltas as u64, windows as u64))
}

/// Starts the agent binary on `config`, logging to `dir/agent.log`.
fn start_agent(dir: &Path, config: &Path) -> Child {
    let log = std::fs::File::create(dir.join("agent.log")).expect("log file");
    Command::new(BINARY)
        .args(["run", "--config"])
        .arg(config)
        .env("SHOPFLOOR_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the agent binary starts")
}

fn stop(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    for _ in 0..300 {
        if let Some(status) = child.try_wait().expect("wait on the agent") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill the agent");
    panic!("the agent did not stop within 15 s of SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_database_stay_flat_once_the_restatement_horizon_has_passed() {
    // Given eight producing machines polled every 100 ms, 1 s and 5 s windows, a 20 s restatement horizon
    // (and so a 20 s audit retention), and a broker that takes every row.
    let machines = (1..=MACHINES)
        .map(|unit| MachineSpec {
            cycle_time: Duration::from_millis(20 + 5 * u64::from(unit)),
            defect_probability: 0.1,
            stop_probability: 0.01,
            ..MachineSpec::new(unit)
        })
        .collect();
    let sim = PlcSimulator::start("127.0.0.1:0", machines, 7)
        .await
        .expect("simulator starts");
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "shopfloor/v1/+/+/+/rollup/#").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("agent.toml");
    std::fs::write(
        &config_path,
        config(
            dir.path(),
            &sim.local_addr().to_string(),
            broker.port,
            MACHINES,
            "20s",
        ),
    )
    .expect("write config");
    let database = dir.path().join("data").join("shopfloor-agent.db");
    let mut agent = start_agent(dir.path(), &config_path);
    support::wait_until(Duration::from_secs(60), "the first audit rows", || {
        database_figures(&database).is_some_and(|(_, deltas, _)| deltas > 0)
    })
    .await;

    // When it runs for about 70 s, sampled every 5 s.
    let mut samples = Vec::new();
    for index in 1..=SAMPLES {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let (used_bytes, deltas, windows) =
            database_figures(&database).expect("the database is readable");
        samples.push(Sample {
            seconds: index as u64 * SAMPLE_EVERY.as_secs(),
            rss_kib: rss_kib(agent.id()),
            used_bytes,
            deltas,
            windows,
            rollups: recorder.messages().len(),
        });
    }
    let status = stop(&mut agent);
    let agent_log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    sim.shutdown().await;
    drop(broker);

    // Then, between the middle of the run (well past the horizon) and its end, memory, used pages, audit
    // rows and window records grow by at most a small fraction.
    for sample in &samples {
        support::report(&format!(
            "soak t={:>3}s: rss {:>6} KiB, database {:>8} bytes, {:>6} audit rows, {:>5} window records, {:>6} rollups received",
            sample.seconds, sample.rss_kib, sample.used_bytes, sample.deltas, sample.windows, sample.rollups
        ));
    }
    assert!(status.success(), "exit status {status}; log:\n{agent_log}");
    let middle = samples[SAMPLES / 2 - 1];
    let last = samples[SAMPLES - 1];
    let first = samples[0];
    assert!(
        last.deltas > 0 && last.windows > 0 && last.rollups > middle.rollups,
        "the agent stopped working: {middle:?} -> {last:?}"
    );
    let grown = |from: u64, to: u64, share: u64, slack: u64| to <= from + from / share + slack;
    assert!(
        grown(middle.deltas, last.deltas, 4, 500),
        "audit rows kept growing: {middle:?} -> {last:?} (first {first:?})"
    );
    assert!(
        grown(middle.windows, last.windows, 4, 50),
        "window records kept growing: {middle:?} -> {last:?}"
    );
    assert!(
        grown(middle.used_bytes, last.used_bytes, 4, 64 * 1024),
        "the database kept growing: {middle:?} -> {last:?}"
    );
    if middle.rss_kib > 0 {
        assert!(
            grown(middle.rss_kib, last.rss_kib, 4, 8 * 1024),
            "memory kept growing: {middle:?} -> {last:?}"
        );
    }
}

/// Counter baselines the agent has persisted (a short read-only look into its database).
fn baselines(database: &Path) -> u64 {
    rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|conn| {
            conn.query_row("SELECT count(*) FROM counter_state", [], |row| {
                row.get::<_, i64>(0)
            })
        })
        .map_or(0, |count| count as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plc_outage_longer_than_the_memory_tail_restates_windows_loaded_back_from_the_database() {
    // Given two machines behind a TCP proxy, 1 s and 5 s windows (closed ones leave memory 1.4 s and 6 s after
    // they end), the default 72 h horizon, and an agent that took its baselines while production was frozen.
    let units: u8 = 2;
    let machines = (1..=units)
        .map(|unit| MachineSpec {
            cycle_time: Duration::from_millis(30 + 10 * u64::from(unit)),
            defect_probability: 0.1,
            stop_probability: 0.01,
            ..MachineSpec::new(unit)
        })
        .collect();
    let sim = PlcSimulator::start("127.0.0.1:0", machines, 11)
        .await
        .expect("simulator starts");
    let set_producing = |on: bool| (1..=units).for_each(|unit| sim.set_producing(unit, on));
    set_producing(false);
    let proxy = FaultProxy::start_to(0, sim.local_addr()).await;
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "shopfloor/v1/+/+/+/rollup/#").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("agent.toml");
    let plc = format!("127.0.0.1:{}", proxy.port);
    std::fs::write(
        &config_path,
        config(dir.path(), &plc, broker.port, units, "72h"),
    )
    .expect("write config");
    let database = dir.path().join("data").join("shopfloor-agent.db");
    let mut agent = start_agent(dir.path(), &config_path);
    support::wait_until(Duration::from_secs(60), "baselines persisted", || {
        baselines(&database) >= 2 * u64::from(units)
    })
    .await;
    let before: Vec<_> = (1..=units).map(|unit| sim.truth(unit)).collect();
    set_producing(true);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // When the PLC is unreachable for 12 s while the machines produce, then answers again.
    proxy.set_mode(Mode::Refuse);
    tokio::time::sleep(Duration::from_secs(12)).await;
    proxy.set_mode(Mode::Pass);
    tokio::time::sleep(Duration::from_secs(3)).await;
    set_producing(false);
    let frozen_at = shopfloor_agent::poller::now_millis();
    let after: Vec<_> = (1..=units).map(|unit| sim.truth(unit)).collect();

    // Then windows from before the outage were restated (their records came back from the database), and the
    // de-duplicated final rollups of both periods sum exactly to the truth.
    let window_start = |body: &serde_json::Value| {
        body["window"]["start"]
            .as_str()
            .and_then(|text| text.parse::<jiff::Timestamp>().ok())
            .map_or(0, |at| at.as_millisecond())
    };
    support::wait_until(Duration::from_secs(60), "rollups after the freeze", || {
        (1..=units).all(|unit| {
            final_rollups(&recorder, &format!("m{unit}"), "5s")
                .values()
                .any(|window| window_start(window) > frozen_at)
        })
    })
    .await;
    let status = stop(&mut agent);
    let agent_log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    assert!(status.success(), "exit status {status}; log:\n{agent_log}");
    for unit in 1..=units {
        let machine = format!("m{unit}");
        let index = usize::from(unit - 1);
        let produced = after[index].produced - before[index].produced;
        let defective = after[index].defective - before[index].defective;
        for period in ["1s", "5s"] {
            let windows = final_rollups(&recorder, &machine, period);
            let restated = windows
                .values()
                .filter(|w| w["revision"].as_u64().unwrap_or(0) > 0)
                .count();
            support::report(&format!(
                "outage past the memory tail: {machine} {period}: truth {produced}/{defective}, {restated} windows restated"
            ));
            assert!(restated > 0, "{machine} {period}: nothing was restated");
            assert_eq!(
                (sum_of(&windows, "produced"), sum_of(&windows, "defective")),
                (produced, defective),
                "{machine} {period}: final rollups vs truth"
            );
        }
    }
    sim.shutdown().await;
}
