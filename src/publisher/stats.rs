//! Counters the publisher updates as it works, for health reporting, the demo view and tests. Each figure is
//! an independent atomic; nothing here decides anything.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use crate::config::MqttProtocol;

/// Counters the publisher updates as it works; read by health reporting and the demo view.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// True between a CONNACK and the end of that connection.
    pub connected: AtomicBool,
    /// Protocol of the latest accepted connection (0 = none yet); read it with [`PublisherStats::protocol`].
    protocol: AtomicU8,
    /// True once the broker refused MQTT 5 at CONNECT and the run fell back to MQTT 3.1.1.
    pub fallback: AtomicBool,
    /// Outbox-row publishes written to the network (re-sends after a reconnect count again).
    pub published: AtomicU64,
    /// Outbox rows retired after an accepted PUBACK.
    pub acked: AtomicU64,
    /// Live messages written to the network.
    pub live_published: AtomicU64,
    /// Connections lost or connection attempts failed.
    pub reconnects: AtomicU64,
    /// Rows that can never be published (invalid topic or larger than the broker's maximum packet size),
    /// each counted once per run; they stay in the outbox for the store's refusal policy.
    pub unsendable: AtomicU64,
    /// Outbox rows the broker did not take (each time counts; the row is kept and retried): an MQTT 5 PUBACK
    /// with a failure reason code, or with MQTT 3.1.1 a row acknowledged but never read back.
    pub refused: AtomicU64,
    /// `publish_failure` alarm events enqueued.
    pub alarms: AtomicU64,
    /// Backlog rows submitted with `"replayed": true`.
    pub replayed: AtomicU64,
    /// Connections the application watchdog rebuilt because nothing progressed.
    pub watchdog_trips: AtomicU64,
    /// Publishes (rows, live, status) currently awaiting their PUBACK.
    pub in_flight: AtomicU64,
    /// Store calls of the publisher (outbox reads, retirements) that failed; each is retried with backoff.
    pub store_failures: AtomicU64,
    /// The most recent connection error, with its cause chain.
    pub last_error: Mutex<Option<String>>,
}

/// A point-in-time copy of [`PublisherStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PublisherSnapshot {
    /// See [`PublisherStats::connected`].
    pub connected: bool,
    /// See [`PublisherStats::protocol`].
    #[serde(serialize_with = "serialize_protocol")]
    pub protocol: Option<MqttProtocol>,
    /// See [`PublisherStats::fallback`].
    pub fallback: bool,
    /// See [`PublisherStats::published`].
    pub published: u64,
    /// See [`PublisherStats::acked`].
    pub acked: u64,
    /// See [`PublisherStats::live_published`].
    pub live_published: u64,
    /// See [`PublisherStats::reconnects`].
    pub reconnects: u64,
    /// See [`PublisherStats::unsendable`].
    pub unsendable: u64,
    /// See [`PublisherStats::refused`].
    pub refused: u64,
    /// See [`PublisherStats::alarms`].
    pub alarms: u64,
    /// See [`PublisherStats::replayed`].
    pub replayed: u64,
    /// See [`PublisherStats::watchdog_trips`].
    pub watchdog_trips: u64,
    /// See [`PublisherStats::in_flight`].
    pub in_flight: u64,
    /// See [`PublisherStats::store_failures`].
    pub store_failures: u64,
    /// See [`PublisherStats::last_error`].
    pub last_error: Option<String>,
}

impl PublisherStats {
    /// Copies every counter (each read individually; they are independent figures).
    pub fn snapshot(&self) -> PublisherSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        PublisherSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            protocol: self.protocol(),
            fallback: self.fallback.load(Ordering::Relaxed),
            published: read(&self.published),
            acked: read(&self.acked),
            live_published: read(&self.live_published),
            reconnects: read(&self.reconnects),
            unsendable: read(&self.unsendable),
            refused: read(&self.refused),
            alarms: read(&self.alarms),
            replayed: read(&self.replayed),
            watchdog_trips: read(&self.watchdog_trips),
            in_flight: read(&self.in_flight),
            store_failures: read(&self.store_failures),
            last_error: self.last_error(),
        }
    }

    /// Protocol of the latest accepted connection; `None` before the first CONNACK.
    pub fn protocol(&self) -> Option<MqttProtocol> {
        match self.protocol.load(Ordering::Relaxed) {
            4 => Some(MqttProtocol::V4),
            5 => Some(MqttProtocol::V5),
            _ => None,
        }
    }

    pub(super) fn set_protocol(&self, protocol: MqttProtocol) {
        let code = match protocol {
            MqttProtocol::V4 => 4,
            MqttProtocol::V5 => 5,
        };
        self.protocol.store(code, Ordering::Relaxed);
    }

    /// The most recent connection error, if any.
    pub fn last_error(&self) -> Option<String> {
        match self.last_error.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(super) fn set_last_error(&self, error: String) {
        match self.last_error.lock() {
            Ok(mut guard) => *guard = Some(error),
            Err(poisoned) => *poisoned.into_inner() = Some(error),
        }
    }
}

/// `"v4"` / `"v5"` / null, the spelling of `[mqtt] protocol`.
fn serialize_protocol<S: serde::Serializer>(
    protocol: &Option<MqttProtocol>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match protocol {
        Some(MqttProtocol::V4) => serializer.serialize_some("v4"),
        Some(MqttProtocol::V5) => serializer.serialize_some("v5"),
        None => serializer.serialize_none(),
    }
}
