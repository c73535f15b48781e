//! The bench's subscriber on the agent's rollup topics: for every closed window it receives, how long after
//! the window closed (its `end` plus the configured grace) it arrived. Runs on its own thread and runtime in
//! the benchmark's process, whose CPU is nobody's figure.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// One rollup as received.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// When it arrived.
    pub at: Instant,
    /// Arrival minus window close (`end` + grace), seconds on the wall clock.
    pub latency: f64,
}

/// A subscriber on `{prefix}/bench/+/+/rollup/#`; stops when dropped.
pub struct RollupSubscriber {
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RollupSubscriber {
    /// Subscribes (QoS 1) on the broker at 127.0.0.1:`port` and returns once the broker confirmed it.
    pub fn start(port: u16, grace: Duration) -> anyhow::Result<RollupSubscriber> {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let task_arrivals = Arc::clone(&arrivals);
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready_tx.send(Err(anyhow::anyhow!("runtime: {error}")));
                    return;
                }
            };
            runtime.block_on(async move {
                tokio::select! {
                    _ = stopped => {}
                    _ = listen(port, grace, task_arrivals, ready_tx) => {}
                }
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .context("the rollup subscriber did not subscribe within 20 s")??;
        Ok(RollupSubscriber {
            arrivals,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The rollups that arrived between `from` and `to`.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<Arrival> {
        self.arrivals
            .lock()
            .map(|all| {
                all.iter()
                    .filter(|a| a.at >= from && a.at <= to)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every rollup received so far.
    pub fn count(&self) -> usize {
        self.arrivals.lock().map_or(0, |all| all.len())
    }
}

impl Drop for RollupSubscriber {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn listen(
    port: u16,
    grace: Duration,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    ready: std::sync::mpsc::Sender<anyhow::Result<()>>,
) {
    let mut options = MqttOptions::new(
        format!("fleet-bench-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut event_loop) = AsyncClient::new(options, 64);
    if let Err(error) = client
        .subscribe("shopfloor/v1/bench/+/+/rollup/#", QoS::AtLeastOnce)
        .await
    {
        let _ = ready.send(Err(error.into()));
        return;
    }
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                let _ = ready.send(Ok(()));
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if let Some(latency) = latency_of(&publish.payload, grace) {
                    if let Ok(mut all) = arrivals.lock() {
                        all.push(Arrival {
                            at: Instant::now(),
                            latency,
                        });
                    }
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Now minus the window's close (`window.end` + `grace`), seconds; `None` when the payload has no end.
fn latency_of(payload: &[u8], grace: Duration) -> Option<f64> {
    let body: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let end: jiff::Timestamp = body.get("window")?.get("end")?.as_str()?.parse().ok()?;
    let since = jiff::Timestamp::now().duration_since(end).as_secs_f64();
    Some(since - grace.as_secs_f64())
}
