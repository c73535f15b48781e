//! Rollup latencies of the polling scenarios: for every closed window of the measured period the subscriber
//! received, how long after the window closed (its `end` plus that period's grace) it arrived. Only that
//! period's topics are subscribed: the other periods have other graces (S1's 15-minute windows wait 30 s).
//! A thin reading of the benchmark's one subscriber (`subscriber.rs`).

use std::time::{Duration, Instant};

use crate::subscriber::{Received, Subscriber};

/// A subscriber on the fleet's rollup topics of one period; stops when dropped.
pub struct RollupSubscriber {
    subscriber: Subscriber,
    grace: Duration,
}

impl RollupSubscriber {
    /// Subscribes to the rollups of `period` (every line and machine of the benchmark's fleet) on the broker at
    /// 127.0.0.1:`port`, whose windows close `grace` after their end, and returns once the broker confirmed it.
    pub fn start(port: u16, period: &str, grace: Duration) -> anyhow::Result<RollupSubscriber> {
        let filter = format!("shopfloor/v1/bench/+/+/rollup/{period}");
        Ok(RollupSubscriber {
            subscriber: Subscriber::start(port, &filter)?,
            grace,
        })
    }

    /// Latencies of the rollups that arrived between `from` and `to`: arrival minus window close (`end` +
    /// grace), seconds on the wall clock.
    pub fn latencies_between(&self, from: Instant, to: Instant) -> Vec<f64> {
        self.subscriber
            .messages()
            .iter()
            .filter(|m| m.at >= from && m.at <= to)
            .filter_map(|m| latency(m, self.grace))
            .collect()
    }

    /// Every rollup received so far.
    pub fn count(&self) -> usize {
        self.subscriber
            .messages()
            .iter()
            .filter(|m| latency(m, self.grace).is_some())
            .count()
    }
}

/// The message's arrival minus its window's close, seconds; `None` when the payload names no window end.
fn latency(message: &Received, grace: Duration) -> Option<f64> {
    let body: serde_json::Value = serde_json::from_slice(&message.payload).ok()?;
    let end: jiff::Timestamp = body.get("window")?.get("end")?.as_str()?.parse().ok()?;
    let arrived = jiff::Timestamp::try_from(message.wall).ok()?;
    let since = arrived.duration_since(end).as_secs_f64();
    Some(since - grace.as_secs_f64())
}
