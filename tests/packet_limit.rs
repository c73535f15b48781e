//! The largest-message bound `validate` checks `mqtt.max_packet_size` against, held against what the
//! running agent really publishes: a simulated PLC with long ids and many defect reasons → the agent → a
//! real broker → a recording subscriber. Every message of every kind (rollups, live, health, events
//! including a device going down with its error text) must fit the bound computed for that kind.

use std::collections::BTreeMap;
use std::time::Duration;

use shopfloor_agent::config::largest::{largest_messages, MessageKind, PACKET_HEADROOM};
use shopfloor_agent::config::Config;
use shopfloor_agent::publisher::publish_packet_size;
use shopfloor_agent::supervisor::{self, Observers};
use simulators::{MachineSpec, PlcSimulator};
use tokio_util::sync::CancellationToken;

use crate::support::{self, Recorder};

/// Overall safety net of every wait; never an expectation about speed.
const PATIENCE: Duration = Duration::from_secs(60);
const MACHINE: &str = "press-with-a-long-machine-identifier-0001";
const REASONS: [&str; 4] = [
    "scratch_on_the_left_side",
    "dent_near_the_flange_area",
    "colour_mismatch_of_the_coating",
    "burr_left_after_deburring",
];

fn config_text(plc: &str, port: u16, data_dir: &std::path::Path) -> String {
    let reasons: Vec<String> = REASONS
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name} = {{ address = {}, type = \"u16\" }}", 10 + i))
        .collect();
    format!(
        r#"
[agent]
site = "a-rather-long-site-name-of-a-plant.example"
gateway = "gateway-number-0001-in-the-north-hall"
timezone = "Asia/Kolkata"
data_dir = "{data_dir}"
periods = ["2s", "4s"]
live_interval = "1s"
health_interval = "1s"

[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "packet-limit-{port}"
topic_prefix = "shopfloor/v1"

[[plc]]
id = "plc-line-a-north-hall-cabinet-7"
address = "{plc}"
poll_interval = "200ms"
timeout = "300ms"
unit_failure_threshold = 2

[[machine]]
id = "{MACHINE}"
line = "line-with-a-long-identifier-as-well-0001"
plc = "plc-line-a-north-hall-cabinet-7"
unit_id = 1
ideal_cycle_time = "40ms"
counters.produced = {{ address = 0, type = "u32" }}
counters.defective = {{ address = 2, type = "u32" }}
defect_reasons = {{ {reasons} }}
state = {{ address = 20, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }}
targets.productivity = {{ baseline = 50000.0, target = 80000.0 }}
targets.defect_rate = {{ baseline = 0.2, target = 0.1 }}
"#,
        data_dir = data_dir.display(),
        reasons = reasons.join(", "),
    )
}

fn kind_of(topic: &str) -> Option<MessageKind> {
    if topic.contains("/rollup/") {
        Some(MessageKind::Rollup)
    } else if topic.ends_with("/event") {
        Some(MessageKind::Event)
    } else if topic.ends_with("/live") {
        Some(MessageKind::Live)
    } else if topic.ends_with("/health") {
        Some(MessageKind::Health)
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_the_agent_publishes_fits_the_bound_validate_checks() {
    // Given a PLC with one machine with long ids and four defect reasons, and the agent's config.
    let spec = MachineSpec {
        cycle_time: Duration::from_millis(20),
        defect_probability: 0.3,
        stop_probability: 0.05,
        reasons: REASONS.iter().map(|r| r.to_string()).collect(),
        ..MachineSpec::new(1)
    };
    let plc = PlcSimulator::start("127.0.0.1:0", vec![spec], 7)
        .await
        .unwrap();
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "shopfloor/v1/#").await;
    let data_dir = tempfile::tempdir().unwrap();
    let text = config_text(&plc.local_addr().to_string(), broker.port, data_dir.path());
    let config = Config::from_toml(&text, "packet-limit.toml", false).unwrap();
    let bounds: BTreeMap<String, u64> = largest_messages(&config)
        .into_iter()
        .map(|b| (format!("{:?}", b.kind), b.needs))
        .collect();
    let protocol = config.mqtt.protocol;

    // When the agent runs until both periods closed a window, then the PLC goes away.
    let shutdown = CancellationToken::new();
    let (observers_tx, observers_rx) = std::sync::mpsc::channel::<Observers>();
    let agent = tokio::spawn(supervisor::run(config, shutdown.clone(), move |o| {
        let _ = observers_tx.send(o);
    }));
    let _observers: Observers =
        tokio::task::spawn_blocking(move || observers_rx.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .expect("the agent starts");
    support::wait_until(PATIENCE, "a closed window of each period", || {
        ["/rollup/2s", "/rollup/4s"]
            .iter()
            .all(|period| !recorder.messages_matching(period).is_empty())
    })
    .await;
    plc.shutdown().await;
    support::wait_until(PATIENCE, "the device_down event", || {
        recorder
            .messages_matching("/event")
            .iter()
            .any(|(_, body)| body["kind"] == "device_down")
    })
    .await;
    shutdown.cancel();
    agent.await.unwrap().unwrap();

    // Then every message fits the bound of its kind.
    let mut largest: BTreeMap<String, u64> = BTreeMap::new();
    for message in recorder.messages() {
        let Some(kind) = kind_of(&message.topic) else {
            continue;
        };
        let payload = serde_json::to_vec(&message.body).unwrap().len() as u64;
        let packet = publish_packet_size(protocol, message.topic.len(), payload as usize);
        let needs = match kind {
            MessageKind::Rollup | MessageKind::Event => packet.max(payload + PACKET_HEADROOM),
            MessageKind::Live | MessageKind::Health => packet,
        };
        let key = format!("{kind:?}");
        let entry = largest.entry(key.clone()).or_default();
        *entry = (*entry).max(needs);
        assert!(
            needs <= bounds[&key],
            "{key} on {} needs {needs} bytes, bound {}",
            message.topic,
            bounds[&key]
        );
    }
    support::report(&format!(
        "packet limit: largest published {largest:?}; bounds {bounds:?}"
    ));
    assert_eq!(largest.len(), 4, "every kind was published: {largest:?}");
}
