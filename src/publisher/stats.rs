//! Counters the publisher updates as it works, for health reporting, the demo view and tests. Each figure is
//! an independent atomic; nothing here decides anything.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use crate::config::MqttProtocol;
use crate::tls::UplinkFailure;

/// Stands for "no certificate" in the expiry atomics.
const NO_CERT: i64 = i64::MIN;

/// Counters the publisher updates as it works; read by health reporting and the demo view.
#[derive(Debug)]
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
    /// Failed secure connection attempts by cause, indexed by [`UplinkFailure::index`].
    tls_failures: [AtomicU64; UplinkFailure::ALL.len()],
    /// Expiry (Unix ms) of the client certificate read at the latest attempt; [`NO_CERT`] when none.
    client_cert_not_after: AtomicI64,
    /// Expiry (Unix ms) of the CA (from `ca_file`) that expires first, read at the latest attempt.
    ca_not_after: AtomicI64,
}

impl Default for PublisherStats {
    fn default() -> Self {
        Self {
            connected: AtomicBool::default(),
            protocol: AtomicU8::default(),
            fallback: AtomicBool::default(),
            published: AtomicU64::default(),
            acked: AtomicU64::default(),
            live_published: AtomicU64::default(),
            reconnects: AtomicU64::default(),
            unsendable: AtomicU64::default(),
            refused: AtomicU64::default(),
            alarms: AtomicU64::default(),
            replayed: AtomicU64::default(),
            watchdog_trips: AtomicU64::default(),
            in_flight: AtomicU64::default(),
            store_failures: AtomicU64::default(),
            last_error: Mutex::default(),
            tls_failures: Default::default(),
            client_cert_not_after: AtomicI64::new(NO_CERT),
            ca_not_after: AtomicI64::new(NO_CERT),
        }
    }
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
    /// Failed secure connection attempts by cause name; causes never seen are left out.
    pub tls_failures: std::collections::BTreeMap<&'static str, u64>,
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
            tls_failures: self.tls_failures(),
        }
    }

    /// Counts one failed secure connection attempt.
    pub(super) fn count_uplink_failure(&self, cause: UplinkFailure) {
        self.tls_failures[cause.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Failed secure connection attempts by cause name; causes never seen are left out.
    pub fn tls_failures(&self) -> std::collections::BTreeMap<&'static str, u64> {
        UplinkFailure::ALL
            .iter()
            .map(|cause| {
                (
                    cause.as_str(),
                    self.tls_failures[cause.index()].load(Ordering::Relaxed),
                )
            })
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// Records the expiry dates (Unix ms) of the certificates the latest attempt was built from.
    pub(super) fn set_cert_expiry(&self, client_cert: Option<i64>, ca: Option<i64>) {
        self.client_cert_not_after
            .store(client_cert.unwrap_or(NO_CERT), Ordering::Relaxed);
        self.ca_not_after
            .store(ca.unwrap_or(NO_CERT), Ordering::Relaxed);
    }

    /// Expiry (Unix ms) of the client certificate read at the latest connection attempt.
    pub fn client_cert_not_after(&self) -> Option<i64> {
        Some(self.client_cert_not_after.load(Ordering::Relaxed)).filter(|&ms| ms != NO_CERT)
    }

    /// Expiry (Unix ms) of the file CA that expires first, read at the latest connection attempt.
    pub fn ca_not_after(&self) -> Option<i64> {
        Some(self.ca_not_after.load(Ordering::Relaxed)).filter(|&ms| ms != NO_CERT)
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
