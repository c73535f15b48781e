//! End to end: simulated PLCs over TCP → the agent (real SQLite file) → a real MQTT broker → a
//! recording subscriber. The oracle is the simulator's ground truth: the de-duplicated final rollups
//! must sum exactly to what the machines produced since the agent's first poll.

use std::collections::BTreeMap;
use std::time::Duration;

use shopfloor_agent::config::Config;
use shopfloor_agent::supervisor::{self, Observers};
use simulators::{MachineSpec, PlcSimulator, Truth};
use tokio_util::sync::CancellationToken;

use crate::support::agent::{final_rollups, sum_of};
use crate::support::{self, Recorder};

const WINDOW: &str = "2s";

fn config_text(plc_a: &str, plc_b: &str, port: u16, data_dir: &std::path::Path) -> String {
    format!(
        r#"
[agent]
site = "e2e-site"
gateway = "gw-e2e"
timezone = "Asia/Kolkata"
data_dir = "{data_dir}"
periods = ["{WINDOW}", "10s"]
live_interval = "1s"
health_interval = "2s"

[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "e2e-{port}"

[[plc]]
id = "plc-a"
address = "{plc_a}"
poll_interval = "200ms"
timeout = "1s"

[[plc]]
id = "plc-b"
address = "{plc_b}"
poll_interval = "300ms"
timeout = "1s"

[[machine]]
id = "m1"
line = "line-a"
plc = "plc-a"
unit_id = 1
ideal_cycle_time = "40ms"
counters.produced = {{ address = 0, type = "u32" }}
counters.defective = {{ address = 2, type = "u32" }}
defect_reasons = {{ scratch = {{ address = 10, type = "u16" }}, dent = {{ address = 11, type = "u16" }} }}
state = {{ address = 20, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }}
targets.productivity = {{ baseline = 50000.0, target = 80000.0 }}
targets.defect_rate = {{ baseline = 0.2, target = 0.1 }}

[[machine]]
id = "m2"
line = "line-a"
plc = "plc-a"
unit_id = 2
counters.produced = {{ address = 0, type = "u32" }}
counters.defective = {{ address = 2, type = "u32" }}
state = {{ address = 20, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }}

[[machine]]
id = "m3"
line = "line-b"
plc = "plc-b"
unit_id = 1
counters.produced = {{ address = 0, type = "u32" }}
counters.defective = {{ address = 2, type = "u32" }}
"#,
        data_dir = data_dir.display()
    )
}

fn spec(unit_id: u8, cycle_ms: u64, initial_produced: u32) -> MachineSpec {
    MachineSpec {
        cycle_time: Duration::from_millis(cycle_ms),
        defect_probability: 0.1,
        stop_probability: 0.02,
        initial_produced,
        reasons: vec!["scratch".into(), "dent".into()],
        ..MachineSpec::new(unit_id)
    }
}

fn minus(after: &Truth, before: &Truth) -> (u64, u64) {
    (
        after.produced - before.produced,
        after.defective - before.defective,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_rollups_sum_exactly_to_the_simulator_truth() {
    // Given two simulated PLCs with three machines, one of them about to wrap past 2^32,
    // frozen until the agent has taken its baselines.
    let plc_a = PlcSimulator::start(
        "127.0.0.1:0",
        vec![spec(1, 30, u32::MAX - 40), spec(2, 45, 1000)],
        11,
    )
    .await
    .unwrap();
    let plc_b = PlcSimulator::start("127.0.0.1:0", vec![spec(1, 60, 0)], 12)
        .await
        .unwrap();
    let units = [(&plc_a, 1u8, "m1"), (&plc_a, 2, "m2"), (&plc_b, 1, "m3")];
    for (plc, unit, _) in units {
        plc.set_producing(unit, false);
    }
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "shopfloor/v1/#").await;
    let data_dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &plc_a.local_addr().to_string(),
        &plc_b.local_addr().to_string(),
        broker.port,
        data_dir.path(),
    );
    let config = Config::from_toml(&text, "e2e.toml", false).unwrap();

    // When the agent runs, has polled every PLC, and the machines then produce for a while.
    let shutdown = CancellationToken::new();
    let (observers_tx, observers_rx) = std::sync::mpsc::channel::<Observers>();
    let agent = tokio::spawn(supervisor::run(config, shutdown.clone(), move |o| {
        let _ = observers_tx.send(o);
    }));
    let observers = observers_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    support::wait_until(Duration::from_secs(20), "every PLC polled twice", || {
        observers
            .plc_health
            .lock()
            .unwrap()
            .iter()
            .all(|h| h.polls >= 2)
    })
    .await;
    let before: Vec<Truth> = units.iter().map(|(p, u, _)| p.truth(*u)).collect();
    for (plc, unit, _) in units {
        plc.set_producing(unit, true);
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    for (plc, unit, _) in units {
        plc.set_producing(unit, false);
    }
    let frozen_at = shopfloor_agent::poller::now_millis();
    let after: Vec<Truth> = units.iter().map(|(p, u, _)| p.truth(*u)).collect();

    // Then, once windows after the freeze have closed, the final rollups sum to the truth exactly.
    support::wait_until(Duration::from_secs(40), "rollups after the freeze", || {
        units.iter().all(|(_, _, machine)| {
            final_rollups(&recorder, machine, "10s").values().any(|w| {
                let start = w["window"]["start"].as_str().unwrap_or_default();
                let start: jiff::Timestamp = start.parse().unwrap();
                start.as_millisecond() > frozen_at
            })
        })
    })
    .await;

    let machines: Vec<&str> = units.iter().map(|(_, _, machine)| *machine).collect();
    assert_rollups_match_truth(&recorder, &machines, &before, &after);
    // Windows are aligned to the local clock of Asia/Kolkata (+05:30).
    let any = final_rollups(&recorder, "m1", WINDOW);
    let start = any.values().next().unwrap()["window"]["start"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(start.ends_with("+05:30"), "{start}");

    assert_every_message_validates(&recorder);

    // And the status topic says online, live messages arrived, and the agent stops cleanly.
    assert!(recorder
        .messages_matching("/_gateway/gw-e2e/status")
        .iter()
        .any(|(_, b)| b["state"] == "online"));
    assert!(!recorder.messages_matching("/m1/live").is_empty());
    shutdown.cancel();
    agent.await.unwrap().unwrap();
    plc_a.shutdown().await;
    plc_b.shutdown().await;
}

/// For every machine, the final rollups of both periods sum to the simulator's truth between `before` and
/// `after`, and m1's defects by reason do too.
fn assert_rollups_match_truth(
    recorder: &Recorder,
    machines: &[&str],
    before: &[Truth],
    after: &[Truth],
) {
    for (index, machine) in machines.iter().enumerate() {
        let (produced, defective) = minus(&after[index], &before[index]);
        assert!(produced > 20, "{machine} produced only {produced} units");
        for period in [WINDOW, "10s"] {
            let windows = final_rollups(recorder, machine, period);
            assert_eq!(
                (sum_of(&windows, "produced"), sum_of(&windows, "defective")),
                (produced, defective),
                "{machine} {period}: rollups vs truth"
            );
        }
        let by_reason: u64 = final_rollups(recorder, machine, WINDOW)
            .values()
            .flat_map(|w| {
                w["counts"]["by_reason"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|v| v.as_u64().unwrap())
                    .collect::<Vec<_>>()
            })
            .sum();
        if *machine == "m1" {
            let truth: u64 = after[index].by_reason.values().sum::<u64>()
                - before[index].by_reason.values().sum::<u64>();
            assert_eq!(by_reason, truth, "{machine}: defects by reason");
        }
        crate::support::report(&format!(
            "e2e {machine}: truth produced {produced} defective {defective}; final rollups match \
             ({} windows of {WINDOW})",
            final_rollups(recorder, machine, WINDOW).len()
        ));
    }
}

/// Every message of every kind validates against the schema it names, and every kind was seen.
fn assert_every_message_validates(recorder: &Recorder) {
    let mut kinds = BTreeMap::new();
    for (topic, body) in recorder.messages_matching("/") {
        let kind = body["schema"]
            .as_str()
            .and_then(|s| s.strip_prefix("shopfloor."))
            .and_then(|s| s.strip_suffix("/1"))
            .unwrap_or_else(|| panic!("{topic}: no schema tag"))
            .to_string();
        support::assert_valid(&support::schema(&kind), &body);
        *kinds.entry(kind).or_insert(0) += 1;
    }
    crate::support::report(&format!(
        "e2e: messages validated against their schemas: {kinds:?}"
    ));
    for kind in ["rollup", "live", "status", "health"] {
        assert!(
            kinds.contains_key(kind),
            "no {kind} message seen: {kinds:?}"
        );
    }
}
