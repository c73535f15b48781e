//! Reload on SIGHUP: the agent binary polls one machine of a simulated PLC; its file is rewritten to add a
//! second machine on the same PLC (so that PLC's poller restarts) and to change the first machine's target,
//! and a real SIGHUP applies it: the new machine's rollups appear, the new target and hash show, and the first
//! machine's final rollups still sum exactly to the simulator's truth. Then a broken file and a SIGHUP: every
//! problem is logged with its TOML path and the agent keeps publishing under the last good configuration.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use simulators::{MachineSpec, PlcSimulator};

use crate::support::agent::{final_rollups, sum_of};
use crate::support::child::ChildAgent;
use crate::support::{self, Recorder};

const PERIOD: &str = "2s";

fn config_text(plc: &str, port: u16, data_dir: &Path, target: f64, with_m2: bool) -> String {
    let mut text = format!(
        r#"
[agent]
site = "reload-site"
gateway = "gw-reload"
data_dir = "{data_dir}"
periods = ["{PERIOD}"]
grace = {{ "{PERIOD}" = "500ms" }}
live_interval = "1s"
health_interval = "2s"

[mqtt]
port = {port}
client_id = "reload-{port}"

[[plc]]
id = "plc-a"
address = "{plc}"
poll_interval = "200ms"
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
targets.productivity = {{ baseline = 1000.0, target = {target:.1} }}
"#,
        data_dir = data_dir.display()
    );
    if with_m2 {
        text.push_str(
            r#"
[[machine]]
id = "m2"
line = "line-a"
plc = "plc-a"
unit_id = 2
counters.produced = { address = 0, type = "u32" }
counters.defective = { address = 2, type = "u32" }
"#,
        );
    }
    text
}

fn spec(unit_id: u8) -> MachineSpec {
    MachineSpec {
        cycle_time: Duration::from_millis(50),
        defect_probability: 0.1,
        stop_probability: 0.0,
        ..MachineSpec::new(unit_id)
    }
}

/// Final rollups of `machine` that start after `after` (UTC ms).
fn rollups_after(recorder: &Recorder, machine: &str, after: i64) -> Vec<Value> {
    final_rollups(recorder, machine, PERIOD)
        .into_iter()
        .filter(|(start, _)| *start > after)
        .map(|(_, body)| body)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_new_machine_and_target_and_keeps_running_on_a_broken_file() {
    // Given one PLC with two units, frozen, and the agent binary polling only m1 (unit 1).
    let plc = PlcSimulator::start("127.0.0.1:0", vec![spec(1), spec(2)], 21)
        .await
        .unwrap();
    plc.set_producing(1, false);
    plc.set_producing(2, false);
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "shopfloor/v1/#").await;
    let dir = tempfile::tempdir().unwrap();
    let address = plc.local_addr().to_string();
    let data_dir = dir.path().join("data");
    let config_file = dir.path().join("agent.toml");
    let mut agent = ChildAgent::start(
        dir.path(),
        &config_text(&address, broker.port, &data_dir, 1200.0, false),
    );
    let started = shopfloor_agent::poller::now_millis();
    support::wait_until(Duration::from_secs(30), "a first m1 rollup", || {
        !rollups_after(&recorder, "m1", started).is_empty()
    })
    .await;
    let old_hash = rollups_after(&recorder, "m1", started)[0]["config_hash"].clone();
    let before = plc.truth(1);
    plc.set_producing(1, true);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // When the file gains m2 and a new m1 target, and the agent gets SIGHUP.
    std::fs::write(
        &config_file,
        config_text(&address, broker.port, &data_dir, 1500.0, true),
    )
    .unwrap();
    let reloaded_at = shopfloor_agent::poller::now_millis();
    agent.signal("HUP");

    // Then m2's rollups appear and m1's next rollups carry the new target and the new hash.
    support::wait_until(
        Duration::from_secs(30),
        "m2 rollups and m1's new target",
        || {
            let m1_new = rollups_after(&recorder, "m1", reloaded_at)
                .iter()
                .any(|r| r["targets"]["productivity"]["target"] == 1500.0);
            m1_new && !rollups_after(&recorder, "m2", reloaded_at).is_empty()
        },
    )
    .await;
    let new_hash = rollups_after(&recorder, "m2", reloaded_at)[0]["config_hash"].clone();
    assert_ne!(new_hash, old_hash);
    let log = agent.log();
    assert!(log.contains("Configuration reloaded."), "{log}");
    assert!(
        log.contains("machines +[\\\"m2\\\"]") || log.contains("machines +[\"m2\"]"),
        "{log}"
    );

    // When a broken file arrives with a SIGHUP, then the agent refuses it and keeps running on the last good one.
    let broken = config_text(&address, broker.port, &data_dir, 1500.0, true)
        .replace("poll_interval = \"200ms\"", "poll_interval = \"soon\"")
        .replace(
            "[[machine]]\nid = \"m2\"",
            "[[machine]]\nid = \"m2\"\ncolour = \"red\"",
        );
    assert_a_broken_file_is_refused(&mut agent, &recorder, &config_file, &broken, &new_hash).await;

    // And m1's final rollups sum exactly to the truth across the reloads: nothing lost or counted twice.
    plc.set_producing(1, false);
    let frozen_at = shopfloor_agent::poller::now_millis();
    let after = plc.truth(1);
    support::wait_until(
        Duration::from_secs(30),
        "m1 rollups after the freeze",
        || !rollups_after(&recorder, "m1", frozen_at).is_empty(),
    )
    .await;
    let windows = final_rollups(&recorder, "m1", PERIOD);
    let (produced, defective) = (
        after.produced - before.produced,
        after.defective - before.defective,
    );
    assert!(produced > 20, "m1 produced only {produced} units");
    assert_eq!(
        (sum_of(&windows, "produced"), sum_of(&windows, "defective")),
        (produced, defective),
        "m1 rollups vs truth"
    );
    support::report(&format!(
        "reload: m1 truth produced {produced} defective {defective} across two SIGHUPs; rollups match"
    ));
    assert!(agent.stop().await.success());
    plc.shutdown().await;
}

/// Writes `broken` to `config_file` and sends SIGHUP: every problem is logged with its path, and m1 keeps being
/// published under the last good file (`good_hash`).
async fn assert_a_broken_file_is_refused(
    agent: &mut ChildAgent,
    recorder: &Recorder,
    config_file: &std::path::Path,
    broken: &str,
    good_hash: &Value,
) {
    std::fs::write(config_file, broken).unwrap();
    let broken_at = shopfloor_agent::poller::now_millis();
    agent.signal("HUP");

    support::wait_until(
        Duration::from_secs(20),
        "the broken file's problems logged",
        || agent.log().contains("Reload refused"),
    )
    .await;
    let log = agent.log();
    for path in ["plc[0].poll_interval", "machine[1].colour"] {
        assert!(
            log.lines()
                .any(|l| l.contains("Reloaded configuration is invalid") && l.contains(path)),
            "{path} not logged:\n{log}"
        );
    }
    support::wait_until(
        Duration::from_secs(20),
        "m1 rollups after the broken file",
        || rollups_after(recorder, "m1", broken_at + 1000).len() >= 2,
    )
    .await;
    assert!(rollups_after(recorder, "m1", broken_at + 1000)
        .iter()
        .all(|r| r["config_hash"] == *good_hash));
    assert!(agent.running());
}
