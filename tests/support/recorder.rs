//! Recording subscriber: a rumqttc client subscribed (QoS 1) to one topic filter that keeps every message
//! it receives, in arrival order, with its retain flag and arrival time. It resubscribes if its connection is
//! rebuilt and counts its confirmed subscriptions, so a test can wait until it listens again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio_util::task::AbortOnDropHandle;

/// One message as the subscriber saw it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Received {
    /// Topic it was published on.
    pub topic: String,
    /// Payload parsed as JSON (a JSON string holding the raw text when it is not JSON).
    pub body: Value,
    /// True when the broker delivered it as a retained message (i.e. on subscribe).
    pub retained: bool,
    /// When the subscriber received it.
    pub arrived: std::time::Instant,
}

/// A subscriber recording everything on its filter until dropped.
pub(crate) struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
    subscriptions: Arc<AtomicU64>,
    /// Kept so the event loop's request channel stays open.
    _client: AsyncClient,
    _task: AbortOnDropHandle<()>,
}

impl Recorder {
    /// Connects to 127.0.0.1:`port`, subscribes to `filter` and returns once the broker confirmed the
    /// subscription, so nothing published afterwards can be missed.
    pub(crate) async fn subscribe(port: u16, filter: &str) -> Recorder {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = format!(
            "recorder-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let options = MqttOptions::new(id, "127.0.0.1", port);
        Self::subscribe_with(options, filter).await
    }

    /// Like [`Recorder::subscribe`] with the caller's connection options (transport, credentials, client
    /// id); keep-alive and packet limits are set here.
    pub(crate) async fn subscribe_with(mut options: MqttOptions, filter: &str) -> Recorder {
        let port = options.broker_address().1;
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, mut event_loop) = AsyncClient::new(options, 16);
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("the request channel is open");
        let received = Arc::new(Mutex::new(Vec::new()));
        let subscribed = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => return,
                    Ok(Event::Incoming(Packet::Publish(publish))) => record(&received, &publish),
                    Ok(_) => {}
                    Err(error) => {
                        eprintln!("recorder: connecting: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
        .await;
        assert!(
            subscribed.is_ok(),
            "recorder could not subscribe to {filter} on port {port}"
        );

        let subscriptions = Arc::new(AtomicU64::new(1));
        let task_subscriptions = subscriptions.clone();
        let task_received = received.clone();
        let task_client = client.clone();
        let filter = filter.to_string();
        let task = tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        record(&task_received, &publish)
                    }
                    // A rebuilt connection has a clean session: subscribe again.
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = task_client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        task_subscriptions.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        eprintln!("recorder: connection error: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Recorder {
            received,
            subscriptions,
            _client: client,
            _task: AbortOnDropHandle::new(task),
        }
    }

    /// Subscriptions the broker confirmed so far (1 after `subscribe`, +1 per resubscription).
    pub(crate) fn subscriptions(&self) -> u64 {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// Everything received so far, in arrival order.
    pub(crate) fn messages(&self) -> Vec<Received> {
        self.received.lock().expect("recorder lock").clone()
    }

    /// (topic, body) of every message whose topic contains `topic_part`, in arrival order.
    pub(crate) fn messages_matching(&self, topic_part: &str) -> Vec<(String, Value)> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic.contains(topic_part))
            .map(|m| (m.topic, m.body))
            .collect()
    }
}

fn record(received: &Mutex<Vec<Received>>, publish: &rumqttc::Publish) {
    let body = serde_json::from_slice(&publish.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&publish.payload).into_owned()));
    received.lock().expect("recorder lock").push(Received {
        topic: publish.topic.clone(),
        body,
        retained: publish.retain,
        arrived: std::time::Instant::now(),
    });
}
