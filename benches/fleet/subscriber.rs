//! The benchmark's one MQTT subscriber: plain MQTT 3.1.1 (QoS 0) in its own thread, recording every message it
//! receives with the monotonic and the wall-clock time of its arrival. It runs in the benchmark's own process,
//! whose CPU is nobody's figure. The polling scenarios read rollup latencies from it (`poll/rollups.rs`), the
//! uplink scenarios their first and drained messages.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

/// Subscribers started by this process so far; numbers their client ids so none takes over another's session.
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// How long the subscription gets to be acknowledged.
const SUBACK_PATIENCE: Duration = Duration::from_secs(10);

/// One received message.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// When it arrived (monotonic).
    pub(crate) at: Instant,
    /// When it arrived (wall clock), to compare with the times in payloads.
    pub(crate) wall: SystemTime,
    /// Its topic.
    pub(crate) topic: String,
    /// Its payload.
    pub(crate) payload: Vec<u8>,
}

/// A running subscriber; disconnects when dropped.
pub(crate) struct Subscriber {
    client: Client,
    messages: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    /// Connects to 127.0.0.1:`port`, subscribes to `filter` and returns once the broker acknowledged it.
    pub(crate) fn start(port: u16, filter: &str) -> anyhow::Result<Subscriber> {
        let serial = STARTED.fetch_add(1, Ordering::Relaxed);
        let id = format!("fleet-sub-{}-{port}-{serial}", std::process::id());
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, mut connection) = Client::new(options, 64);
        client
            .subscribe(filter, QoS::AtMostOnce)
            .context("cannot queue the subscription")?;
        let messages = Arc::new(Mutex::new(Vec::new()));
        let (subscribed_tx, subscribed_rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&messages);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let received = Received {
                            at: Instant::now(),
                            wall: SystemTime::now(),
                            topic: publish.topic,
                            payload: publish.payload.to_vec(),
                        };
                        if let Ok(mut messages) = sink.lock() {
                            messages.push(received);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(_) if stopping.load(Ordering::Relaxed) => break,
                    // The broker went away: the iterator reconnects on the next call.
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        subscribed_rx
            .recv_timeout(SUBACK_PATIENCE)
            .with_context(|| format!("no SUBACK for {filter:?} within {SUBACK_PATIENCE:?}"))?;
        Ok(Subscriber {
            client,
            messages,
            stop,
            thread: Some(thread),
        })
    }

    /// Every message received so far, in arrival order.
    pub(crate) fn messages(&self) -> Vec<Received> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Returns once nothing has arrived for `quiet` (messages still on their way from a killed publisher
    /// have landed), or after `patience` at most.
    pub(crate) fn wait_quiet(&self, quiet: Duration, patience: Duration) {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            let last = self
                .messages
                .lock()
                .ok()
                .and_then(|messages| messages.last().map(|m| m.at));
            if last.is_none_or(|at| at.elapsed() >= quiet) {
                return;
            }
            std::thread::sleep(quiet / 4);
        }
    }

    /// The first message received at or after `since`.
    pub(crate) fn first_since(&self, since: Instant) -> Option<Received> {
        let messages = self.messages.lock().ok()?;
        messages.iter().find(|m| m.at >= since).cloned()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.disconnect();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
