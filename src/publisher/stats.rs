//! Counters the publisher updates as it works, for health reporting, the demo view and tests. Each figure is
//! an independent atomic; nothing here decides anything.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters the publisher updates as it works; read by health reporting and the demo view.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// True between a CONNACK and the end of that connection.
    pub connected: AtomicBool,
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
    /// MQTT 5 PUBACKs with a failure reason code for outbox rows (each refusal counts; the row is retried).
    pub refused: AtomicU64,
    /// `publish_failure` alarm events enqueued.
    pub alarms: AtomicU64,
    /// Backlog rows submitted with `"replayed": true`.
    pub replayed: AtomicU64,
    /// Connections the application watchdog rebuilt because nothing progressed.
    pub watchdog_trips: AtomicU64,
    /// Publishes (rows, live, status) currently awaiting their PUBACK.
    pub in_flight: AtomicU64,
    /// The most recent connection error, with its cause chain.
    pub last_error: Mutex<Option<String>>,
}

/// A point-in-time copy of [`PublisherStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PublisherSnapshot {
    /// See [`PublisherStats::connected`].
    pub connected: bool,
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
    /// See [`PublisherStats::last_error`].
    pub last_error: Option<String>,
}

impl PublisherStats {
    /// Copies every counter (each read individually; they are independent figures).
    pub fn snapshot(&self) -> PublisherSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        PublisherSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
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
            last_error: self.last_error(),
        }
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
