//! The publishing floor: a bare rumqttc MQTT 5 client publishing one payload QoS 1 as fast as PUBACKs allow,
//! with the agent's in-flight window, on one thread. It runs as a child role so its `/proc` figures are its
//! own, and prints one line of `key=value` figures that [`measure`] reads back.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Outgoing;

use crate::measure::{quantile, Usage};

/// The role name `spawn_role` starts this as.
pub(super) const ROLE: &str = "publish-floor";
/// How long the floor waits for any event before it gives up.
const STALL: Duration = Duration::from_secs(30);

/// What the floor measured.
#[derive(Debug, Clone, Copy)]
pub(super) struct FloorFigures {
    /// Messages acknowledged.
    pub(super) messages: u64,
    /// Acknowledged messages per second, from the first publish to the last PUBACK.
    pub(super) rate: f64,
    /// Publish → PUBACK latency, median, seconds.
    pub(super) p50: f64,
    /// Publish → PUBACK latency, 99th percentile, seconds.
    pub(super) p99: f64,
    /// CPU seconds per 1000 messages (user + system, the whole process).
    pub(super) cpu_per_1000: f64,
    /// Peak resident set size, bytes.
    pub(super) peak_rss: u64,
}

/// The floor's parameters.
#[derive(Debug, Clone)]
pub(super) struct FloorRun<'a> {
    /// Broker port on 127.0.0.1.
    pub(super) port: u16,
    /// Topic of every publish.
    pub(super) topic: &'a str,
    /// Payload of every publish.
    pub(super) payload: &'a [u8],
    /// Messages to publish.
    pub(super) count: u64,
    /// Publishes awaiting PUBACK at most (the agent's `mqtt.max_inflight`).
    pub(super) inflight: u16,
}

/// Runs the floor as a child process (the payload goes through a file in `scratch`) and reads its figures.
pub(super) fn measure(run: &FloorRun<'_>, scratch: &Path) -> anyhow::Result<FloorFigures> {
    let payload_file = scratch.join("floor-payload.json");
    std::fs::write(&payload_file, run.payload)?;
    let args = [
        run.port.to_string(),
        run.topic.to_string(),
        payload_file.display().to_string(),
        run.count.to_string(),
        run.inflight.to_string(),
    ];
    let mut child = crate::spawn_role(ROLE, &args)?;
    let mut output = String::new();
    child
        .stdout
        .take()
        .context("the floor's stdout is not piped")?
        .read_to_string(&mut output)?;
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "the publishing floor failed ({status})");
    let figures: HashMap<&str, f64> = output
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(key, value)| Some((key, value.parse().ok()?)))
        .collect();
    let get = |key: &str| {
        figures
            .get(key)
            .copied()
            .with_context(|| format!("the floor printed no {key}: {output:?}"))
    };
    Ok(FloorFigures {
        messages: get("messages")? as u64,
        rate: get("rate")?,
        p50: get("p50")?,
        p99: get("p99")?,
        cpu_per_1000: get("cpu_per_1000")?,
        peak_rss: get("peak_rss")? as u64,
    })
}

/// The child's side: `PORT TOPIC PAYLOAD_FILE COUNT INFLIGHT`.
pub(super) fn run_role(args: &[String]) -> anyhow::Result<()> {
    let [port, topic, payload_file, count, inflight] = args else {
        anyhow::bail!("{ROLE}: expected PORT TOPIC PAYLOAD_FILE COUNT INFLIGHT, got {args:?}");
    };
    let payload = std::fs::read(payload_file)?;
    let run = FloorRun {
        port: port.parse()?,
        topic,
        payload: &payload,
        count: count.parse()?,
        inflight: inflight.parse()?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let before = Usage::of(std::process::id())?;
    let (elapsed, latencies) = runtime.block_on(publish_all(&run))?;
    let after = Usage::of(std::process::id())?;
    let span = after.since(&before);
    println!(
        "messages={} rate={} p50={} p99={} cpu_per_1000={} peak_rss={}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        quantile(&latencies, 0.5).unwrap_or(0.0),
        quantile(&latencies, 0.99).unwrap_or(0.0),
        span.cpu_per_1000(latencies.len() as u64),
        span.peak_rss,
    );
    Ok(())
}

/// Connects, then publishes `run.count` messages while polling the event loop; returns the time from the
/// first publish to the last PUBACK and every publish → PUBACK latency in seconds.
async fn publish_all(run: &FloorRun<'_>) -> anyhow::Result<(Duration, Vec<f64>)> {
    let mut options = MqttOptions::new(
        format!("fleet-floor-{}", std::process::id()),
        "127.0.0.1",
        run.port,
    );
    // The agent's socket options: Nagle's algorithm on (publisher `link`), so both coalesce the same way.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(false);
    options
        .set_clean_start(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_outgoing_inflight_upper_limit(run.inflight)
        .set_network_options(network);
    let capacity = 2 * usize::from(run.inflight) + 8;
    let (client, mut event_loop) = AsyncClient::new(options, capacity);
    loop {
        let event = tokio::time::timeout(STALL, event_loop.poll()).await??;
        if let Event::Incoming(Packet::ConnAck(_)) = event {
            break;
        }
    }
    let (topic, payload, count) = (run.topic.to_string(), run.payload.to_vec(), run.count);
    let publisher = tokio::spawn(async move {
        for _ in 0..count {
            client
                .publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
                .await?;
        }
        anyhow::Ok(client)
    });
    let mut sent: HashMap<u16, Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut first: Option<Instant> = None;
    while (latencies.len() as u64) < count {
        match tokio::time::timeout(STALL, event_loop.poll()).await?? {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let now = Instant::now();
                first.get_or_insert(now);
                sent.insert(pkid, now);
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(at) = sent.remove(&ack.pkid) {
                    latencies.push(at.elapsed().as_secs_f64());
                }
            }
            _ => {}
        }
    }
    let elapsed = first.map_or(Duration::ZERO, |first| first.elapsed());
    let client = publisher.await??;
    client.disconnect().await?;
    Ok((elapsed, latencies))
}
