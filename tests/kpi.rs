//! KPI figures through the real pipeline: a simulated PLC over TCP → the agent (real SQLite file) → a real
//! MQTT broker. Goal figures wait for `targets.min_units`, dated targets pick the entry valid today, a
//! KPI without a target says `no_target`, and a defect counter ahead of the produced counter gives
//! `inconsistent_counts` instead of clamped figures (docs/kpi.md).

use std::time::Duration;

use serde_json::Value;
use shopfloor_agent::config::Config;
use shopfloor_agent::logic::kpi::{self, NullReason};
use shopfloor_agent::logic::rollup::{WindowRecord, WindowStatus, WindowSums};
use shopfloor_agent::processor::MachineView;
use shopfloor_agent::supervisor::{self, Observers};
use simulators::{MachineSpec, PlcSimulator};
use tokio_util::sync::CancellationToken;

use crate::support::{self, Recorder};

/// Units a window needs before its goal figures appear (per machine; the agent default is larger).
const MIN_UNITS: u64 = 20;

fn config_text(plc: &str, port: u16, data_dir: &std::path::Path) -> String {
    format!(
        r#"
[agent]
site = "kpi-site"
gateway = "gw-kpi"
timezone = "UTC"
data_dir = "{data_dir}"
periods = ["12h"]
live_interval = "300ms"
health_interval = "5s"
targets.min_units = 1000

[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "kpi-{port}"

[[plc]]
id = "plc-a"
address = "{plc}"
poll_interval = "200ms"
timeout = "1s"

# Every unit defective. The defect-rate target changed on 2001-01-01; productivity has a target only
# from 2999 on.
[[machine]]
id = "m1"
line = "line-a"
plc = "plc-a"
unit_id = 1
ideal_cycle_time = "3ms 600us"
counters.produced = {{ address = 0, type = "u32" }}
counters.defective = {{ address = 2, type = "u32" }}
state = {{ address = 20, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }}
targets.min_units = {MIN_UNITS}
targets.defect_rate = [
  {{ baseline = 0.06, target = 0.02 }},
  {{ baseline = 0.04, target = 0.01, valid_from = "2001-01-01" }},
]
targets.productivity = [{{ baseline = 10.0, target = 20.0, valid_from = "2999-01-01" }}]

# The counters wired the wrong way round: "produced" reads the defective register.
[[machine]]
id = "m2"
line = "line-a"
plc = "plc-a"
unit_id = 2
counters.produced = {{ address = 2, type = "u32" }}
counters.defective = {{ address = 0, type = "u32" }}
"#,
        data_dir = data_dir.display()
    )
}

fn spec(unit_id: u8, defect_probability: f64) -> MachineSpec {
    MachineSpec {
        cycle_time: Duration::from_millis(50),
        defect_probability,
        stop_probability: 0.0,
        ..MachineSpec::new(unit_id)
    }
}

/// The newest open window of the last live message of `machine` with at least `produced` units.
fn live_window(recorder: &Recorder, machine: &str, produced: u64) -> Option<Value> {
    recorder
        .messages_matching(&format!("/{machine}/live"))
        .into_iter()
        .rev()
        .flat_map(|(_, body)| body["windows"].as_array().cloned().unwrap_or_default())
        .find(|window| window["counts"]["produced"].as_u64() >= Some(produced))
}

fn view_of(observers: &Observers, machine: &str) -> Option<MachineView> {
    observers
        .view_rx
        .borrow()
        .iter()
        .find(|view| view.machine == machine)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goal_figures_wait_for_min_units_and_inconsistent_counts_are_null_through_the_broker() {
    // Given a simulated PLC with two frozen machines and the agent publishing to a real broker.
    let plc = PlcSimulator::start("127.0.0.1:0", vec![spec(1, 1.0), spec(2, 0.5)], 21)
        .await
        .unwrap();
    plc.set_producing(1, false);
    plc.set_producing(2, false);
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "shopfloor/v1/#").await;
    let data_dir = tempfile::tempdir().unwrap();
    let text = config_text(&plc.local_addr().to_string(), broker.port, data_dir.path());
    let config = Config::from_toml(&text, "kpi.toml", false).unwrap();
    let shutdown = CancellationToken::new();
    let (observers_tx, observers_rx) = std::sync::mpsc::channel::<Observers>();
    let agent = tokio::spawn(supervisor::run(config, shutdown.clone(), move |o| {
        let _ = observers_tx.send(o);
    }));
    let observers = observers_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    support::wait_until(Duration::from_secs(20), "the PLC polled twice", || {
        observers
            .plc_health
            .lock()
            .unwrap()
            .iter()
            .all(|h| h.polls >= 2)
    })
    .await;

    // When m1 makes one defective unit,
    plc.advance(1, 1);
    support::wait_until(Duration::from_secs(20), "m1 live with one unit", || {
        live_window(&recorder, "m1", 1).is_some()
    })
    .await;

    // then its defect rate is published but no goal figure is (it read -3200 % against 4 % → 1 %).
    let one = live_window(&recorder, "m1", 1).unwrap();
    assert_eq!(one["kpi"]["defect_rate"], 1.0);
    assert_eq!(one["targets"]["defect_rate"]["attainment"], Value::Null);
    assert_eq!(one["nulls"]["defect_rate.attainment"], "too_few_units");
    assert_eq!(one["nulls"]["productivity.attainment"], "no_target");
    support::wait_until(Duration::from_secs(20), "the live view of m1", || {
        view_of(&observers, "m1").is_some_and(|view| view.produced >= 1)
    })
    .await;
    let view = view_of(&observers, "m1").unwrap();
    assert_eq!(view.defect_rate_attainment, Err(NullReason::TooFewUnits));

    // When m1 reaches the minimum, the goal figures appear against the entry valid today.
    plc.advance(1, MIN_UNITS - 1);
    support::wait_until(Duration::from_secs(20), "m1 live at the minimum", || {
        live_window(&recorder, "m1", MIN_UNITS).is_some()
    })
    .await;
    let enough = live_window(&recorder, "m1", MIN_UNITS).unwrap();
    let figures = &enough["targets"]["defect_rate"];
    assert_eq!(
        (figures["baseline"].as_f64(), figures["target"].as_f64()),
        (Some(0.04), Some(0.01))
    );
    let expected = (1.0 - 0.04) / (0.01 - 0.04);
    assert!(
        (figures["attainment"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{figures}"
    );
    assert_eq!(enough["nulls"].get("defect_rate.attainment"), None);

    // When m2's swapped counters count more defective than produced units,
    plc.advance(2, 12);
    let truth = plc.truth(2);
    assert!(
        0 < truth.defective && truth.defective < truth.produced,
        "the seeded machine must make some but not only defective units: {truth:?}"
    );
    support::wait_until(Duration::from_secs(20), "m2 live with its units", || {
        live_window(&recorder, "m2", truth.defective)
            .is_some_and(|w| w["counts"]["defective"].as_u64() == Some(truth.produced))
    })
    .await;

    // then quality and the defect figures are null with their reason, and the window is flagged.
    let inconsistent = live_window(&recorder, "m2", truth.defective).unwrap();
    for name in ["quality", "defect_rate", "defect_ppm"] {
        assert_eq!(inconsistent["kpi"][name], Value::Null, "{name}");
        assert_eq!(inconsistent["nulls"][name], "inconsistent_counts", "{name}");
    }
    let flags = inconsistent["flags"].as_array().unwrap();
    assert!(
        flags.contains(&Value::from("inconsistent_counts")),
        "{flags:?}"
    );

    // And every live message validates against its schema.
    let schema = support::schema("live");
    for (_, body) in recorder.messages_matching("/live") {
        support::assert_valid(&schema, &body);
    }
    shutdown.cancel();
    agent.await.unwrap().unwrap();
    plc.shutdown().await;
}

#[test]
fn a_sub_millisecond_ideal_cycle_time_from_the_config_gives_exact_performance() {
    // Given the configured 3.6 ms cycle, and 1000 units in 3.6 s of running time.
    let text = config_text("127.0.0.1:502", 1883, std::path::Path::new("/tmp/unused"));
    let config = Config::from_toml(&text, "kpi.toml", false).unwrap();
    let machine = &config.machines[0];
    let record = WindowRecord {
        machine: machine.id.clone(),
        period: "12h".into(),
        start: 0,
        end: 12 * 3_600_000,
        shift: None,
        production_date: None,
        sums: WindowSums {
            produced: 1000,
            running_ms: 3_600,
            ..WindowSums::default()
        },
        status: WindowStatus::Final,
        revision: 0,
        dirty: false,
    };

    // When
    let kpis = kpi::of_window(
        &record,
        machine.ideal_cycle_time,
        &machine.targets,
        config.agent.unknown_time,
    );

    // Then performance is 1, not the 0.83 a cycle truncated to 3 ms gave.
    assert_eq!(kpis.value("performance"), Some(1.0));
}
