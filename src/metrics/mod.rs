//! Prometheus metrics: one [`Metrics`] registry per process, created by the supervisor and shared as an
//! `Arc` with the pollers, the processor and the publisher, so it outlives any poller that is restarted.
//! Per-PLC series carry the label `plc` (the PLC id). The optional HTTP endpoint (`[http] listen`) serves
//! them as Prometheus text on `/metrics`, and `/healthz` (`http`).
//!
//! Figures the store already keeps (backlog, drops by class) are read at scrape time with one store call
//! ([`Metrics::refresh`]); everything else is counted where it happens. Names: README, "Status and metrics".

mod http;

use std::sync::Arc;
use std::time::Duration;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::poller::connection::ReadError;
use crate::poller::frame::ResponseError;
use crate::store::{Backlog, DropClass, DropCounters, StoreHandle};

pub use http::{liveness_check, serve, spawn_endpoint, HealthCheck, HealthVerdict};

/// Why a poll request (or connection attempt) failed, as the poller classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PollErrorKind {
    /// The TCP connection could not be established (refused, unreachable, resolve failure, connect timeout).
    Connect,
    /// No answer within the PLC's timeout; the connection was kept.
    Timeout,
    /// The device answered with a Modbus exception.
    Exception,
    /// The answer had the wrong number of registers or bits.
    WrongLength,
    /// The answer was not a well-formed response.
    Protocol,
    /// The byte stream could not be trusted any more; the connection was rebuilt.
    Transport,
}

impl PollErrorKind {
    /// The label value: `connect`, `timeout`, `exception`, `wrong_length`, `protocol` or `transport`.
    pub fn name(self) -> &'static str {
        match self {
            PollErrorKind::Connect => "connect",
            PollErrorKind::Timeout => "timeout",
            PollErrorKind::Exception => "exception",
            PollErrorKind::WrongLength => "wrong_length",
            PollErrorKind::Protocol => "protocol",
            PollErrorKind::Transport => "transport",
        }
    }

    /// The kind of a failed read.
    pub fn of_read(error: &ReadError) -> PollErrorKind {
        match error {
            ReadError::Response(ResponseError::Exception { .. }) => PollErrorKind::Exception,
            ReadError::Response(ResponseError::WrongLength { .. }) => PollErrorKind::WrongLength,
            ReadError::Response(ResponseError::Malformed(_)) => PollErrorKind::Protocol,
            ReadError::Timeout(_) => PollErrorKind::Timeout,
            ReadError::Broken(_) => PollErrorKind::Transport,
        }
    }
}

/// The drop class as a label value: the store's name of the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DropLabel(DropClass);

impl EncodeLabelValue for DropLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.name())
    }
}

impl EncodeLabelValue for PollErrorKind {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PlcLabels {
    plc: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PollErrorLabels {
    plc: String,
    kind: PollErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DropLabels {
    class: DropLabel,
}

type HistogramFamily = Family<PlcLabels, Histogram, fn() -> Histogram>;

/// Request round trips: 1 ms to about 16 s.
fn rtt_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Schedule lag of poll cycles: 1 ms to about 4 s.
fn lag_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 13))
}

/// Store commits and PUBACK latency: 1 ms to about 33 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// One PLC's series updated at every poll ([`Metrics::plc_series`]); they share their values with the
/// registry, so the exposition shows what is counted here.
#[derive(Debug, Clone)]
pub struct PlcSeries {
    polls: Counter,
    poll_lag: Histogram,
    ticks_skipped: Counter,
    rtt: Histogram,
}

impl PlcSeries {
    /// One poll cycle ran (as [`Metrics::poll`]).
    pub fn poll(&self) {
        self.polls.inc();
    }

    /// A cycle started `lag` after its scheduled instant, `ticks_skipped` ticks after the previous one's (as
    /// [`Metrics::poll_started`]).
    pub fn poll_started(&self, lag: Duration, ticks_skipped: u64) {
        self.poll_lag.observe(lag.as_secs_f64());
        self.ticks_skipped.inc_by(ticks_skipped);
    }

    /// A request was answered (data or exception) after `rtt`.
    pub fn answered(&self, rtt: Duration) {
        self.rtt.observe(rtt.as_secs_f64());
    }
}

/// The process's metrics. Cheap to update from any task (atomics behind the families' locks).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    polls: Family<PlcLabels, Counter>,
    poll_lag: HistogramFamily,
    ticks_skipped: Family<PlcLabels, Counter>,
    poll_errors: Family<PollErrorLabels, Counter>,
    rtt: HistogramFamily,
    plc_up: Family<PlcLabels, Gauge>,
    plc_reconnects: Family<PlcLabels, Counter>,
    commits: Counter,
    commit_failures: Counter,
    commit_seconds: Histogram,
    backlog_rows: Gauge,
    backlog_bytes: Gauge,
    oldest_unsent_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    publishes: Counter,
    puback_seconds: Histogram,
    drops: Family<DropLabels, Counter>,
    mqtt_reconnects: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under the prefix `shopfloor_`.
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("shopfloor"),
            polls: Family::default(),
            poll_lag: Family::new_with_constructor(lag_histogram),
            ticks_skipped: Family::default(),
            poll_errors: Family::default(),
            rtt: Family::new_with_constructor(rtt_histogram),
            plc_up: Family::default(),
            plc_reconnects: Family::default(),
            commits: Counter::default(),
            commit_failures: Counter::default(),
            commit_seconds: latency_histogram(),
            backlog_rows: Gauge::default(),
            backlog_bytes: Gauge::default(),
            oldest_unsent_age: Gauge::default(),
            publishes: Counter::default(),
            puback_seconds: latency_histogram(),
            drops: Family::default(),
            mqtt_reconnects: Counter::default(),
        };
        metrics.register();
        metrics
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register("polls", "Poll cycles run, per PLC", self.polls.clone());
        r.register_with_unit(
            "poll_lag",
            "How late poll cycles start after the instant they were scheduled for, per PLC",
            Unit::Seconds,
            self.poll_lag.clone(),
        );
        r.register(
            "poll_ticks_skipped",
            "Scheduled poll ticks skipped because the previous cycle ran past them, per PLC",
            self.ticks_skipped.clone(),
        );
        r.register(
            "poll_errors",
            "Failed requests and connection attempts, per PLC and kind",
            self.poll_errors.clone(),
        );
        r.register_with_unit(
            "request_rtt",
            "Round trip of answered Modbus requests, per PLC",
            Unit::Seconds,
            self.rtt.clone(),
        );
        r.register(
            "plc_up",
            "1 while the PLC connection is up",
            self.plc_up.clone(),
        );
        r.register(
            "plc_reconnects",
            "Modbus/TCP connections established after the first, per PLC",
            self.plc_reconnects.clone(),
        );
        r.register(
            "store_commits",
            "Store transactions committed by the processor",
            self.commits.clone(),
        );
        r.register(
            "store_commit_failures",
            "Store commits that failed (the work stays pending)",
            self.commit_failures.clone(),
        );
        r.register_with_unit(
            "store_commit",
            "Latency of the processor's store commits",
            Unit::Seconds,
            self.commit_seconds.clone(),
        );
        self.register_outbox();
    }

    fn register_outbox(&mut self) {
        let r = &mut self.registry;
        r.register(
            "backlog_rows",
            "Outbox rows waiting for a PUBACK",
            self.backlog_rows.clone(),
        );
        r.register_with_unit(
            "backlog",
            "Payload bytes of the outbox rows waiting for a PUBACK",
            Unit::Bytes,
            self.backlog_bytes.clone(),
        );
        r.register_with_unit(
            "oldest_unsent_age",
            "Age of the oldest unsent outbox row (0 when the outbox is empty)",
            Unit::Seconds,
            self.oldest_unsent_age.clone(),
        );
        r.register(
            "publishes",
            "Outbox-row publishes written to the broker (re-sends count again)",
            self.publishes.clone(),
        );
        r.register_with_unit(
            "puback_latency",
            "Time from handing an outbox row to the MQTT client to its accepted PUBACK",
            Unit::Seconds,
            self.puback_seconds.clone(),
        );
        r.register(
            "drops",
            "Unsent outbox rows dropped on overflow by the store, by class (since the database was created)",
            self.drops.clone(),
        );
        r.register(
            "mqtt_reconnects",
            "MQTT connections lost or connection attempts failed",
            self.mqtt_reconnects.clone(),
        );
    }

    /// The per-poll series of `plc`, looked up once: a poller task updates them without building labels or
    /// searching the families at every poll.
    pub fn plc_series(&self, plc: &str) -> PlcSeries {
        let labels = plc_labels(plc);
        PlcSeries {
            polls: self.polls.get_or_create(&labels).clone(),
            poll_lag: self.poll_lag.get_or_create(&labels).clone(),
            ticks_skipped: self.ticks_skipped.get_or_create(&labels).clone(),
            rtt: self.rtt.get_or_create(&labels).clone(),
        }
    }

    /// One poll cycle of `plc` ran.
    pub fn poll(&self, plc: &str) {
        self.polls.get_or_create(&plc_labels(plc)).inc();
    }

    /// A cycle of `plc` started `lag` after the instant it was scheduled for, `ticks_skipped` regular ticks after
    /// the previous cycle's.
    pub fn poll_started(&self, plc: &str, lag: Duration, ticks_skipped: u64) {
        let labels = plc_labels(plc);
        self.poll_lag
            .get_or_create(&labels)
            .observe(lag.as_secs_f64());
        self.ticks_skipped
            .get_or_create(&labels)
            .inc_by(ticks_skipped);
    }

    /// A connection attempt to `plc` failed.
    pub fn connect_failed(&self, plc: &str) {
        self.poll_error(plc, PollErrorKind::Connect);
    }

    /// A connection to `plc` was established; every one after the first is a reconnect.
    pub fn connected(&self, plc: &str, connects: u64) {
        if connects > 1 {
            self.plc_reconnects.get_or_create(&plc_labels(plc)).inc();
        }
    }

    /// One request to `plc` ended after `rtt`: an answer's round trip is observed, a failure counted by kind.
    pub fn request<T>(&self, plc: &str, rtt: Duration, result: &Result<T, ReadError>) {
        match result {
            Err(ReadError::Timeout(_) | ReadError::Broken(_)) => {}
            _ => self
                .rtt
                .get_or_create(&plc_labels(plc))
                .observe(rtt.as_secs_f64()),
        }
        if let Err(error) = result {
            self.poll_error(plc, PollErrorKind::of_read(error));
        }
    }

    fn poll_error(&self, plc: &str, kind: PollErrorKind) {
        let labels = PollErrorLabels {
            plc: plc.to_owned(),
            kind,
        };
        self.poll_errors.get_or_create(&labels).inc();
    }

    /// Whether `plc`'s connection is up now.
    pub fn plc_up(&self, plc: &str, up: bool) {
        self.plc_up
            .get_or_create(&plc_labels(plc))
            .set(i64::from(up));
    }

    /// A store commit of the processor ended after `latency`.
    pub fn commit(&self, latency: Duration, ok: bool) {
        if ok {
            self.commits.inc();
            self.commit_seconds.observe(latency.as_secs_f64());
        } else {
            self.commit_failures.inc();
        }
    }

    /// An outbox row was written to the broker.
    pub fn published(&self) {
        self.publishes.inc();
    }

    /// An outbox row's accepted PUBACK arrived `latency` after it was handed to the MQTT client.
    pub fn puback(&self, latency: Duration) {
        self.puback_seconds.observe(latency.as_secs_f64());
    }

    /// The MQTT connection was lost or could not be established.
    pub fn mqtt_reconnect(&self) {
        self.mqtt_reconnects.inc();
    }

    /// Sets the store's figures: the backlog at `now` (UTC milliseconds) and the persisted drop totals.
    pub fn store_figures(&self, backlog: Backlog, drops: DropCounters, now: crate::logic::Millis) {
        self.backlog_rows.set(saturating_i64(backlog.rows));
        self.backlog_bytes.set(saturating_i64(backlog.bytes));
        let age_ms = backlog.oldest_enqueued_at.map_or(0, |at| (now - at).max(0));
        self.oldest_unsent_age.set(age_ms as f64 / 1000.0);
        for class in DropClass::ALL {
            let counter = self.drops.get_or_create(&DropLabels {
                class: DropLabel(class),
            });
            // The store's totals only grow within one database file; a new file starts again at 0 and the
            // counter then waits until it has caught up, instead of going back.
            let stored = drops.rows(class);
            let shown = counter.get();
            if stored > shown {
                counter.inc_by(stored - shown);
            }
        }
    }

    /// Reads the backlog and the drop totals from the store (one call) and sets them.
    pub async fn refresh(
        &self,
        store: &StoreHandle,
        now: crate::logic::Millis,
    ) -> anyhow::Result<()> {
        let (backlog, drops) = store
            .call(|s| s.backlog().map(|backlog| (backlog, s.drops())))
            .await??;
        self.store_figures(backlog, drops, now);
        Ok(())
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// A shared handle on the process's metrics.
pub type SharedMetrics = Arc<Metrics>;

fn plc_labels(plc: &str) -> PlcLabels {
    PlcLabels {
        plc: plc.to_owned(),
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
