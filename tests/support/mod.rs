//! Test support: a real MQTT broker per test, a recording subscriber and its counting report, a TCP fault
//! proxy, the real agent with simulated PLCs (`agent`, in process; `child`, the binary), a small tmpfs that fills up (`tmpfs`), a polling
//! `wait_until` and JSON Schema checks; `tls`: Mosquitto with TLS, client certificates and passwords.
//! Nothing here fakes a seam; it only observes and breaks real connections.
//!
//! The broker is Mosquitto when installed (CI), else rumqttd in-process; `SHOPFLOOR_TEST_BROKER` forces
//! either (`mosquitto` | `inprocess`). Every helper waits with a generous overall deadline and never
//! asserts on timing.

pub(crate) mod agent;
pub(crate) mod child;
mod counting;
mod forwarder;
mod recorder;
pub(crate) mod tls;
pub(crate) mod tmpfs;

use std::time::Duration;

use shopfloor_agent::broker::{self, Broker, MosquittoSettings};

pub(crate) use counting::CountingReport;
pub(crate) use forwarder::{FaultProxy, Forwarder, Mode};
pub(crate) use recorder::Recorder;

/// Starts this test's own broker on a free port and says which one it is (the report names the broker).
pub(crate) fn broker() -> Broker {
    broker_on(None)
}

/// Starts this test's own broker, on `port` when given.
pub(crate) fn broker_on(port: Option<u16>) -> Broker {
    let broker = broker::start_for_tests_or_demo(port).expect("a test MQTT broker must start");
    announce(&broker);
    broker
}

/// Says which broker a test uses, on stderr and in `SHOPFLOOR_TEST_BROKER_LOG` when set.
fn announce(broker: &Broker) {
    eprintln!("test broker: {}", broker.describe());
    // CI checks this log to prove that the broker-facing tests ran against Mosquitto.
    if let Ok(path) = std::env::var("SHOPFLOOR_TEST_BROKER_LOG") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "broker: {}", broker.describe());
        }
    }
}

/// A Mosquitto broker with `settings` for tests that kill, restart or limit the broker; `None` (after saying
/// so) when Mosquitto is not installed, unless `SHOPFLOOR_TEST_BROKER=mosquitto` demands it.
pub(crate) fn mosquitto(settings: &MosquittoSettings) -> Option<Broker> {
    let demanded = std::env::var(broker::TEST_BROKER_ENV)
        .is_ok_and(|choice| choice.trim().eq_ignore_ascii_case("mosquitto"));
    if !broker::mosquitto_available() && !demanded {
        eprintln!("skipped: this test needs Mosquitto, which is not installed");
        return None;
    }
    let broker = broker::spawn_mosquitto_with(0, settings).expect("mosquitto must start");
    announce(&broker);
    Some(broker)
}

/// Prints a scenario's figures (counting reports, totals) and, when `SHOPFLOOR_TEST_REPORT` names a file,
/// appends them there too, so CI can show them although cargo test captures passing tests' output.
pub(crate) fn report(line: &str) {
    println!("{line}");
    if let Ok(path) = std::env::var("SHOPFLOOR_TEST_REPORT") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// A port on 127.0.0.1 with nothing listening on it (a moment ago).
pub(crate) fn free_port() -> u16 {
    broker::free_local_port().expect("the OS hands out a free port")
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` after `timeout`. The timeout is a
/// safety net against hangs, never an expectation about speed.
pub(crate) async fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`wait_until`] for conditions that need to `.await` (e.g. a store query).
pub(crate) async fn wait_until_async<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The compiled JSON Schema `schemas/{name}.schema.json`, compiled once per test process and shared: compiling
/// one of ours (jsonschema 0.33) raises the process's resident memory by 4–70 MB that is not given back, so
/// compiling one per message, in whichever threads the tests run, inflates the test process shared by all tests.
pub(crate) fn schema(name: &str) -> std::sync::Arc<jsonschema::Validator> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock, PoisonError};
    static COMPILED: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let mut compiled = COMPILED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    compiled
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(compile_schema(name)))
        .clone()
}

fn compile_schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/schemas/{name}.schema.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let schema: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"));
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("compiling {path}: {e}"))
}

/// Panics with every violation when `body` does not satisfy `schema`.
pub(crate) fn assert_valid(schema: &jsonschema::Validator, body: &serde_json::Value) {
    let errors: Vec<String> = schema
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "payload violates its schema: {errors:#?}\n{body:#}"
    );
}
