//! A plain MQTT 3.1.1 subscriber (QoS 0) in its own thread that records every message it receives with the
//! monotonic and the wall-clock time of its arrival.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

/// How long the subscription gets to be acknowledged.
const SUBACK_PATIENCE: Duration = Duration::from_secs(10);

/// One received message.
#[derive(Debug, Clone)]
pub(super) struct Received {
    /// When it arrived (monotonic).
    pub(super) at: Instant,
    /// When it arrived (wall clock), to compare with the times in payloads.
    pub(super) wall: SystemTime,
    /// Its topic.
    pub(super) topic: String,
    /// Its payload.
    pub(super) payload: Vec<u8>,
}

/// A running subscriber; disconnects when dropped.
pub(super) struct Subscriber {
    client: Client,
    messages: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    /// Connects to 127.0.0.1:`port`, subscribes to `filter` and returns once the broker acknowledged it.
    pub(super) fn start(port: u16, filter: &str) -> anyhow::Result<Subscriber> {
        let id = format!("fleet-sub-{}-{port}", std::process::id());
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
    pub(super) fn messages(&self) -> Vec<Received> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Returns once nothing has arrived for `quiet` (messages still on their way from a killed publisher
    /// have landed), or after `patience` at most.
    pub(super) fn wait_quiet(&self, quiet: Duration, patience: Duration) {
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
    pub(super) fn first_since(&self, since: Instant) -> Option<Received> {
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
