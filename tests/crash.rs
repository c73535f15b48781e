//! The agent binary under abuse: killed with SIGKILL at random moments, stopped with SIGTERM and
//! restarted after downtime, started twice on one data directory or with one MQTT client id, its data
//! directory deleted while it runs, started under umask 000. Production runs throughout; the oracle is
//! the simulator's truth against the de-duplicated final rollups a subscriber received.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use simulators::{MachineSpec, PlcSimulator, Truth};

use crate::support::agent::{final_rollups, sum_of};
use crate::support::{self, FaultProxy, Mode, Recorder};

const BINARY: &str = env!("CARGO_BIN_EXE_shopfloor-agent");
const MACHINES: [(u8, &str); 2] = [(1, "m1"), (2, "m2")];

/// One agent installation: a config file and a data directory.
struct Install {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Install {
    fn new(plc: &str, broker_port: u16) -> Install {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        let text = format!(
            r#"
[agent]
site = "crash-site"
gateway = "gw-crash"
timezone = "Asia/Seoul"
data_dir = "{data}"
periods = ["1s", "5s"]
grace = {{ "1s" = "400ms", "5s" = "1s" }}
live_interval = "1s"
health_interval = "1s"

[mqtt]
port = {broker_port}
client_id = "crash-{broker_port}"
keep_alive = "5s"

[[plc]]
id = "plc-a"
address = "{plc}"
poll_interval = "100ms"
timeout = "1s"
backoff_max = "500ms"

[[machine]]
id = "m1"
line = "line-a"
plc = "plc-a"
unit_id = 1
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
            data = dir.path().join("data").display()
        );
        std::fs::write(&config, text).unwrap();
        Install { dir, config }
    }

    fn database(&self) -> PathBuf {
        self.dir.path().join("data").join("shopfloor-agent.db")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start(&self) -> Child {
        self.spawn(Command::new(BINARY))
    }

    /// Starts the agent under `umask 000`, so only the agent's own choice of modes protects its files.
    fn start_with_open_umask(&self) -> Child {
        let mut command = Command::new("sh");
        command.args(["-c", "umask 000 && exec \"$0\" \"$@\"", BINARY]);
        self.spawn(command)
    }

    fn spawn(&self, mut command: Command) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .unwrap();
        command
            .args(["run", "--config"])
            .arg(&self.config)
            .env("SHOPFLOOR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the agent binary starts")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let text = self.log();
        let start = text.len().saturating_sub(3000);
        text[start..].to_string()
    }
}

/// Counter baselines persisted so far (read-only look into the agent's database).
fn baselines(database: &Path) -> usize {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row("SELECT count(*) FROM counter_state", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as usize)
    .unwrap_or(0)
}

fn integrity(database: &Path) -> String {
    let conn = rusqlite::Connection::open(database).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap()
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("the agent did not stop within 15 s of SIGTERM");
}

/// Waits (polling, up to `patience`) for `child` to exit on its own; `None` if it is still running.
async fn exit_within(child: &mut Child, patience: Duration) -> Option<std::process::ExitStatus> {
    let deadline = tokio::time::Instant::now() + patience;
    while tokio::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Permission bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Counting report over every durable message: unique msg_ids, duplicates, and seq holes per epoch.
fn counting_report(recorder: &Recorder) -> (usize, usize, Vec<String>) {
    let mut ids = BTreeSet::new();
    let mut duplicates = 0;
    let mut seqs: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (_, body) in recorder.messages_matching("/") {
        let (Some(seq), Some(epoch)) = (body["seq"].as_u64(), body["db_epoch"].as_str()) else {
            continue; // live, status and health are not durable rows
        };
        if !ids.insert(body["msg_id"].as_str().unwrap().to_string()) {
            duplicates += 1;
        }
        seqs.entry(epoch.to_string()).or_default().insert(seq);
    }
    let mut holes = Vec::new();
    for (epoch, seen) in &seqs {
        let (first, last) = (*seen.first().unwrap(), *seen.last().unwrap());
        for seq in first..=last {
            if !seen.contains(&seq) {
                holes.push(format!("{epoch}:{seq}"));
            }
        }
    }
    (ids.len(), duplicates, holes)
}

async fn plc() -> PlcSimulator {
    let spec = |unit: u8, cycle_ms: u64| MachineSpec {
        cycle_time: Duration::from_millis(cycle_ms),
        defect_probability: 0.1,
        stop_probability: 0.01,
        initial_produced: u32::MAX - 500 * u32::from(unit),
        ..MachineSpec::new(unit)
    };
    PlcSimulator::start("127.0.0.1:0", vec![spec(1, 15), spec(2, 25)], 99)
        .await
        .unwrap()
}

/// A PLC, a broker with a recording subscriber, and an agent that took its baselines while
/// production was frozen; production runs from here on.
struct Scene {
    sim: PlcSimulator,
    _broker: shopfloor_agent::broker::Broker,
    recorder: Recorder,
    install: Install,
    agent: Child,
    before: Vec<Truth>,
    proxy: Option<FaultProxy>,
}

/// With `through_proxy`, the agent reaches the broker through a fault proxy (in `Scene::proxy`).
async fn producing_scene(through_proxy: bool) -> Scene {
    let sim = plc().await;
    set_producing(&sim, false);
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "shopfloor/v1/#").await;
    let proxy = match through_proxy {
        true => Some(FaultProxy::start(0, broker.port).await),
        false => None,
    };
    let mqtt_port = proxy.as_ref().map_or(broker.port, |p| p.port);
    let install = Install::new(&sim.local_addr().to_string(), mqtt_port);
    let agent = install.start();
    support::wait_until(Duration::from_secs(30), "baselines persisted", || {
        baselines(&install.database()) >= 4
    })
    .await;
    let before = truths(&sim);
    set_producing(&sim, true);
    Scene {
        sim,
        _broker: broker,
        recorder,
        install,
        agent,
        before,
        proxy,
    }
}

fn truths(sim: &PlcSimulator) -> Vec<Truth> {
    MACHINES.iter().map(|(unit, _)| sim.truth(*unit)).collect()
}

fn set_producing(sim: &PlcSimulator, on: bool) {
    for (unit, _) in MACHINES {
        sim.set_producing(unit, on);
    }
}

/// Waits until every machine has a final 5 s rollup whose window starts after `after_ms`.
async fn wait_for_windows_after(recorder: &Recorder, after_ms: i64, install: &Install) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = MACHINES.iter().all(|(_, machine)| {
            final_rollups(recorder, machine, "5s").values().any(|w| {
                let start: jiff::Timestamp =
                    w["window"]["start"].as_str().unwrap().parse().unwrap();
                start.as_millisecond() > after_ms
            })
        });
        if done {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rollups after the freeze; agent log:\n{}",
            install.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_rollups_match_truth(recorder: &Recorder, before: &[Truth], after: &[Truth], label: &str) {
    for (index, (_, machine)) in MACHINES.iter().enumerate() {
        let produced = after[index].produced - before[index].produced;
        let defective = after[index].defective - before[index].defective;
        for period in ["1s", "5s"] {
            let windows = final_rollups(recorder, machine, period);
            assert_eq!(
                (sum_of(&windows, "produced"), sum_of(&windows, "defective")),
                (produced, defective),
                "{label}: {machine} {period} rollups vs truth"
            );
        }
        crate::support::report(&format!(
            "{label}: {machine} truth produced {produced} defective {defective}: matched"
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_fifty_times_loses_and_double_counts_nothing() {
    // Given a producing PLC (both counters wrap past 2^32 during the test), a broker, a subscriber
    // and an agent that has taken its baselines while production was frozen.
    let Scene {
        sim,
        _broker,
        recorder,
        install,
        mut agent,
        before,
        ..
    } = producing_scene(false).await;

    // When the agent is killed with SIGKILL fifty times at random moments and restarted at once.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..900))).await;
        agent.kill().unwrap();
        agent.wait().unwrap();
        agent = install.start();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    set_producing(&sim, false);
    let frozen_at = shopfloor_agent::poller::now_millis();
    let after = truths(&sim);

    // Then the final rollups sum exactly to the truth, every durable row arrived, the agent stops
    // cleanly on SIGTERM and the database is sound.
    wait_for_windows_after(&recorder, frozen_at, &install).await;
    let status = sigterm(&mut agent);
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        install.log_tail()
    );
    assert_rollups_match_truth(&recorder, &before, &after, "sigkill x50");
    let (unique, duplicates, holes) = counting_report(&recorder);
    crate::support::report(&format!(
        "sigkill x50: {unique} unique durable messages, {duplicates} duplicates, {} missing",
        holes.len()
    ));
    assert!(holes.is_empty(), "missing seqs: {holes:?}");
    assert_eq!(integrity(&install.database()), "ok");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downtime_is_carried_by_the_first_poll_after_restart() {
    // Given an agent that has polled a producing PLC.
    let Scene {
        sim,
        _broker,
        recorder,
        install,
        mut agent,
        before,
        ..
    } = producing_scene(false).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // When it is stopped with SIGTERM for several seconds while the PLC keeps counting, then restarted.
    let status = sigterm(&mut agent);
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        install.log_tail()
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut agent = install.start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    set_producing(&sim, false);
    let frozen_at = shopfloor_agent::poller::now_millis();
    let after = truths(&sim);

    // Then the downtime's production is counted once, spread over the windows it spans and flagged.
    wait_for_windows_after(&recorder, frozen_at, &install).await;
    assert!(sigterm(&mut agent).success());
    assert_rollups_match_truth(&recorder, &before, &after, "downtime");
    let estimated = final_rollups(&recorder, "m1", "1s")
        .values()
        .filter(|w| {
            w["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "estimated")
        })
        .count();
    assert!(
        estimated >= 5,
        "the 6 s downtime spans several 1 s windows, got {estimated} estimated"
    );
    let offline = recorder
        .messages_matching("/_gateway/gw-crash/status")
        .iter()
        .any(|(_, b)| b["state"] == "offline");
    assert!(offline, "a clean stop publishes status offline");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_data_dir_refuses_to_start() {
    // Given a running agent.
    let sim = plc().await;
    let broker = support::broker();
    let install = Install::new(&sim.local_addr().to_string(), broker.port);
    let mut first = install.start();
    support::wait_until(Duration::from_secs(30), "baselines persisted", || {
        baselines(&install.database()) >= 4
    })
    .await;

    // When a second one starts with the same configuration.
    let output = Command::new(BINARY)
        .args(["run", "--config"])
        .arg(&install.config)
        .output()
        .unwrap();

    // Then it exits non-zero with a clear message, and the first one keeps running.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("already using data_dir"), "{stderr}");
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first agent must keep running"
    );
    assert!(sigterm(&mut first).success());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_database_is_moved_aside_and_announced_and_collection_goes_on() {
    // Given an installation whose database file is garbage (a torn write, a failing eMMC).
    let sim = plc().await;
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "shopfloor/v1/#").await;
    let install = Install::new(&sim.local_addr().to_string(), broker.port);
    std::fs::create_dir_all(install.database().parent().unwrap()).unwrap();
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(install.database(), garbage).unwrap();

    // When the agent starts on it.
    let mut agent = install.start();

    // Then it moves the file aside, starts a fresh database, says so on the gateway event topic,
    // and rollups flow as usual.
    support::wait_until(
        Duration::from_secs(30),
        "a store_recovered event and a rollup",
        || {
            let recovered = recorder
                .messages_matching("/_gateway/gw-crash/event")
                .iter()
                .any(|(_, b)| b["kind"] == "store_recovered");
            recovered && !recorder.messages_matching("/rollup/").is_empty()
        },
    )
    .await;
    assert!(
        sigterm(&mut agent).success(),
        "log:\n{}",
        install.log_tail()
    );
    let moved: Vec<String> = std::fs::read_dir(install.database().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.contains(".corrupt-"))
        .collect();
    assert!(!moved.is_empty(), "the corrupt file is kept for inspection");
    assert_eq!(integrity(&install.database()), "ok");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_with_two_sigkills_then_recovery_delivers_every_window_once() {
    // Given an agent publishing through a fault proxy while machines produce.
    let Scene {
        sim,
        _broker,
        recorder,
        install,
        mut agent,
        before,
        proxy,
    } = producing_scene(true).await;
    let proxy = proxy.expect("the scene has a proxy");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // When the broker becomes unreachable, the agent is killed with SIGKILL twice during the outage,
    // and the broker then comes back.
    proxy.set_mode(Mode::Refuse);
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        agent.kill().unwrap();
        agent.wait().unwrap();
        agent = install.start();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set_mode(Mode::Pass);
    tokio::time::sleep(Duration::from_secs(2)).await;
    set_producing(&sim, false);
    let frozen_at = shopfloor_agent::poller::now_millis();
    let after = truths(&sim);

    // Then every window arrives (exactly once after de-duplication) with the true totals, no seq is
    // missing, and the health topic tells the story: a backlog, then drained.
    wait_for_windows_after(&recorder, frozen_at, &install).await;
    support::wait_until(
        Duration::from_secs(30),
        "a health message with the backlog drained",
        || {
            recorder
                .messages_matching("/_gateway/gw-crash/health")
                .last()
                .is_some_and(|(_, b)| b["backlog"]["rows"] == 0)
        },
    )
    .await;
    assert!(
        sigterm(&mut agent).success(),
        "log:\n{}",
        install.log_tail()
    );
    assert_rollups_match_truth(&recorder, &before, &after, "outage + 2 kills");
    let (unique, duplicates, holes) = counting_report(&recorder);
    crate::support::report(&format!(
        "outage + 2 kills: {unique} unique durable messages, {duplicates} duplicates, {} missing",
        holes.len()
    ));
    assert!(holes.is_empty(), "missing seqs: {holes:?}");
    let max_backlog = recorder
        .messages_matching("/_gateway/gw-crash/health")
        .iter()
        .filter_map(|(_, b)| b["backlog"]["rows"].as_u64())
        .max()
        .unwrap_or(0);
    crate::support::report(&format!(
        "outage + 2 kills: largest backlog reported on the health topic: {max_backlog} rows"
    ));
    assert!(
        max_backlog > 0,
        "the health topic showed the backlog after the outage"
    );
    let onlines = recorder
        .messages_matching("/_gateway/gw-crash/status")
        .iter()
        .filter(|(_, b)| b["state"] == "online")
        .count();
    assert!(onlines >= 2, "status went online again after the outage");
    assert_eq!(integrity(&install.database()), "ok");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_data_dir_stops_the_agent_and_the_restart_announces_the_lost_store() {
    // Given a running agent that has persisted its baselines.
    let sim = plc().await;
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "shopfloor/v1/#").await;
    let install = Install::new(&sim.local_addr().to_string(), broker.port);
    let mut agent = install.start();
    support::wait_until(Duration::from_secs(30), "baselines persisted", || {
        baselines(&install.database()) >= 4
    })
    .await;

    // When its data directory is deleted under it.
    let deleted_at = std::time::Instant::now();
    std::fs::remove_dir_all(install.data_dir()).unwrap();

    // Then it stops on its own with a non-zero exit and says why.
    let Some(status) = exit_within(&mut agent, Duration::from_secs(60)).await else {
        agent.kill().unwrap();
        agent.wait().unwrap();
        panic!(
            "the agent kept running for 60 s after its data_dir was deleted; log:\n{}",
            install.log_tail()
        );
    };
    crate::support::report(&format!(
        "deleted data_dir: the agent exited with {status} {:.1} s after the deletion",
        deleted_at.elapsed().as_secs_f64()
    ));
    assert!(!status.success(), "log:\n{}", install.log_tail());
    assert!(
        install
            .log()
            .contains("was deleted or replaced while the agent ran"),
        "log:\n{}",
        install.log_tail()
    );

    // And when it is restarted (as systemd would), it starts a fresh store and announces the lost one.
    let mut agent = install.start();
    support::wait_until(Duration::from_secs(30), "a store_recovered event", || {
        recorder
            .messages_matching("/_gateway/gw-crash/event")
            .iter()
            .any(|(_, b)| {
                b["kind"] == "store_recovered"
                    && b["detail"]["moved_to"].is_null()
                    && b["detail"]["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("deleted or replaced"))
            })
    })
    .await;
    assert!(
        sigterm(&mut agent).success(),
        "log:\n{}",
        install.log_tail()
    );
    assert_eq!(integrity(&install.database()), "ok");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_with_the_same_client_id_refuses_to_start_and_names_the_first() {
    // Given a running agent.
    let sim = plc().await;
    let broker = support::broker();
    let first_install = Install::new(&sim.local_addr().to_string(), broker.port);
    let mut first = first_install.start();
    support::wait_until(Duration::from_secs(30), "baselines persisted", || {
        baselines(&first_install.database()) >= 4
    })
    .await;

    // When a second one starts with its own data_dir but the same MQTT client id.
    let second_install = Install::new(&sim.local_addr().to_string(), broker.port);
    let mut second = second_install.start();
    let Some(status) = exit_within(&mut second, Duration::from_secs(30)).await else {
        second.kill().unwrap();
        second.wait().unwrap();
        let _ = sigterm(&mut first);
        panic!(
            "a second agent with the same client id kept running; its log:\n{}",
            second_install.log_tail()
        );
    };

    // Then it exits non-zero naming the holder, and the first one keeps running.
    let log = second_install.log();
    crate::support::report(&format!(
        "same client id: the second agent exited with {status}: {}",
        log.lines().last().unwrap_or_default()
    ));
    assert!(!status.success());
    assert!(log.contains("client id"), "{log}");
    assert!(log.contains(&format!("pid {}", first.id())), "{log}");
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first agent must keep running"
    );
    assert!(sigterm(&mut first).success());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_store_files_are_private_whatever_the_umask() {
    // Given an agent started under umask 000.
    let sim = plc().await;
    let broker = support::broker();
    let install = Install::new(&sim.local_addr().to_string(), broker.port);
    let database = install.database();
    let files = |suffix: &str| PathBuf::from(format!("{}{suffix}", database.display()));
    let lock = install.data_dir().join("shopfloor-agent.lock");
    let modes = || {
        let mut found = vec![("data_dir".to_owned(), mode(&install.data_dir()))];
        for suffix in ["", "-wal", "-shm"] {
            found.push((format!("db{suffix}"), mode(&files(suffix))));
        }
        found.push(("lock".to_owned(), mode(&lock)));
        found
    };
    let private = vec![
        ("data_dir".to_owned(), 0o700),
        ("db".to_owned(), 0o600),
        ("db-wal".to_owned(), 0o600),
        ("db-shm".to_owned(), 0o600),
        ("lock".to_owned(), 0o600),
    ];
    let mut agent = install.start_with_open_umask();
    support::wait_until(Duration::from_secs(30), "baselines persisted", || {
        baselines(&database) >= 4
    })
    .await;

    // Then the directory is 0700 and the database, its WAL, its shared memory and the lock are 0600.
    let fresh = modes();
    crate::support::report(&format!(
        "umask 000, fresh install: {:?}",
        fresh
            .iter()
            .map(|(name, mode)| format!("{name} {mode:o}"))
            .collect::<Vec<_>>()
    ));
    assert_eq!(fresh, private);
    assert!(
        sigterm(&mut agent).success(),
        "log:\n{}",
        install.log_tail()
    );

    // And when an existing installation has lax modes, a restart tightens them.
    use std::os::unix::fs::PermissionsExt as _;
    let set = |path: &Path, mode: u32| {
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    set(&install.data_dir(), 0o777);
    for path in [files(""), files("-wal"), files("-shm"), lock.clone()] {
        set(&path, 0o666);
    }
    let mut agent = install.start_with_open_umask();
    support::wait_until(
        Duration::from_secs(30),
        "the restarted agent running",
        || install.log().matches("Agent running.").count() >= 2 && files("-shm").exists(),
    )
    .await;
    assert_eq!(modes(), private);
    assert!(
        sigterm(&mut agent).success(),
        "log:\n{}",
        install.log_tail()
    );
    sim.shutdown().await;
}
