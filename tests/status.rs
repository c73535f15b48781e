//! `shopfloor-agent status` (the real binary, beside the running agent) and the `/metrics` endpoint while the
//! broker is down and after it returns: both show the backlog grow, then drain to 0. `/healthz` answers 200
//! all along (a broker outage is not the agent's ill health).

use std::time::Duration;

use shopfloor_agent::broker::MosquittoSettings;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::agent::{Agent, Plant, Tuning};
use crate::support::{self, wait_until_async};

/// Safety net of every wait; never an expectation about speed.
const PATIENCE: Duration = Duration::from_secs(60);

/// `GET path` on 127.0.0.1:`port`: the status code and the body.
async fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the endpoint accepts connections");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    (code, body.to_owned())
}

/// The value of the unlabelled metric `name` on /metrics.
async fn metric(port: u16, name: &str) -> f64 {
    let (code, body) = get(port, "/metrics").await;
    assert_eq!(code, 200, "{body}");
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from\n{body}"))
}

/// `shopfloor-agent status --config F --json`, run as the real binary.
async fn status(config: &std::path::Path) -> serde_json::Value {
    let config = config.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_shopfloor-agent"))
            .args(["status", "--json", "--config"])
            .arg(&config)
            .output()
            .expect("the binary runs");
        assert!(
            output.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("status --json prints JSON")
    })
    .await
    .unwrap()
}

/// The backlog rows as `status` and as /metrics show them now.
async fn backlog_figures(config: &std::path::Path, http_port: u16) -> (u64, f64) {
    (
        backlog_rows(&status(config).await),
        metric(http_port, "shopfloor_backlog_rows").await,
    )
}

fn backlog_rows(status: &serde_json::Value) -> u64 {
    status["backlog"]["rows"].as_u64().expect("backlog.rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_show_the_backlog_grow_while_the_broker_is_down_and_drain_after() {
    let Some(mut broker) = support::mosquitto(&MosquittoSettings::default()) else {
        return;
    };
    let plant = Plant::start(91).await;
    plant.set_producing(true);
    let dir = tempfile::tempdir().unwrap();
    let http_port = support::free_port();
    let http = format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\n");
    let tuning = Tuning {
        live_interval: "1s",
        mqtt: "",
        agent: "",
        store: &http,
    };
    let config_path = dir.path().join("agent.toml");
    let data_dir = dir.path().join("data");
    std::fs::write(
        &config_path,
        plant.config_text(broker.port, &tuning, &data_dir),
    )
    .unwrap();
    let agent = Agent::start(&plant, broker.port, &tuning, &data_dir).await;

    // Given a running agent that has published: status names the last publish and the PLCs it polls.
    wait_until_async(
        PATIENCE,
        "a publish and a health snapshot in status",
        || async {
            let status = status(&config_path).await;
            !status["last_publish"].is_null() && status["devices"]["plcs_up"] == 2
        },
    )
    .await;
    assert_eq!(get(http_port, "/healthz").await, (200, "ok\n".to_owned()));

    // When the broker goes away, both views show the backlog grow.
    broker.kill().expect("kill mosquitto");
    let first = backlog_figures(&config_path, http_port).await;
    wait_until_async(
        PATIENCE,
        "status and /metrics show a growing backlog",
        || async {
            let (rows, scraped) = backlog_figures(&config_path, http_port).await;
            rows > first.0 && scraped > first.1
        },
    )
    .await;
    let during = status(&config_path).await;
    assert!(
        during["backlog"]["oldest_unsent"]["age_s"]
            .as_f64()
            .unwrap()
            >= 0.0
    );
    assert!(metric(http_port, "shopfloor_mqtt_reconnects_total").await >= 1.0);
    assert_eq!(get(http_port, "/healthz").await.0, 200);
    support::report(&format!(
        "status: backlog grew from {} to {} rows ({} bytes) while the broker was down",
        first.0,
        backlog_rows(&during),
        during["backlog"]["bytes"]
    ));

    // When it is back, both show the backlog drained to 0.
    broker.restart().expect("restart mosquitto on its port");
    wait_until_async(
        PATIENCE,
        "status and /metrics show the backlog drained",
        || async {
            backlog_rows(&status(&config_path).await) == 0
                && metric(http_port, "shopfloor_backlog_rows").await == 0.0
        },
    )
    .await;
    let after = status(&config_path).await;
    assert!(after["backlog"]["oldest_unsent"].is_null());
    assert!(metric(http_port, "shopfloor_puback_latency_seconds_count").await > 0.0);
    assert!(metric(http_port, "shopfloor_store_commits_total").await > 0.0);

    agent.stop().await;
    plant.shutdown().await;
}

#[tokio::test]
async fn status_without_a_store_names_the_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    let data_dir = dir.path().join("never-started");
    std::fs::write(
        &config,
        format!(
            r#"
[agent]
site = "s"
gateway = "g"
timezone = "UTC"
data_dir = "{}"

[[plc]]
id = "plc-a"
address = "127.0.0.1:502"

[[machine]]
id = "m1"
line = "l"
plc = "plc-a"
counters.produced = {{ address = 0, type = "u32" }}
"#,
            data_dir.display()
        ),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shopfloor-agent"))
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&data_dir.display().to_string()), "{stderr}");
    assert!(!data_dir.exists(), "status must not create the data_dir");
}
