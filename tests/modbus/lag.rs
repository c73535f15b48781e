//! How late polls start, seen by the real poller task against a simulated PLC over loopback TCP: cycles that
//! take longer than the poll interval skip ticks, counted in `shopfloor_poll_ticks_skipped_total`, and every
//! cycle's start lag lands in `shopfloor_poll_lag_seconds`.

use std::sync::Arc;
use std::time::Duration;

use shopfloor_agent::metrics::Metrics;
use shopfloor_agent::poller::PollTiming;
use simulators::PlcSimulator;

use super::{frozen_machine, machine_tags, plc_config, Poll, PATIENCE};
use crate::support::wait_until;

/// The value of the series `name{plc="plc-under-test"}` in the exposition `text`.
fn series(text: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{plc=\"plc-under-test\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_cycles_longer_than_the_poll_interval_when_polling_then_skipped_ticks_are_counted_and_lag_observed(
) {
    // Given a PLC polled every 100 ms whose requests are paced 80 ms apart, so that a cycle of its two or
    // more requests runs past the next tick,
    let sim = PlcSimulator::start("127.0.0.1:0", vec![frozen_machine(1)], 5)
        .await
        .unwrap();
    let config = plc_config(&sim.local_addr().to_string(), |plc| {
        plc.pause_between_requests = Duration::from_millis(80);
    });
    let metrics = Arc::new(Metrics::new());
    let timing = PollTiming {
        metrics: metrics.clone(),
        ..PollTiming::system()
    };
    let poll = Poll::start_with(config, machine_tags(1, 0), timing);
    assert!(poll.plan.requests.len() >= 2, "{:?}", poll.plan.requests);

    // When it has polled for a while,
    poll.wait_reads(0, 5, "five reads of the counter").await;

    // Then the ticks its overrunning cycles skipped are counted, and each cycle's start lag is observed.
    wait_until(PATIENCE, "skipped ticks counted", || {
        series(&metrics.encode(), "shopfloor_poll_ticks_skipped_total").is_some_and(|n| n >= 1.0)
    })
    .await;
    let text = metrics.encode();
    let cycles = series(&text, "shopfloor_polls_total").unwrap_or(0.0);
    let lags = series(&text, "shopfloor_poll_lag_seconds_count").unwrap_or(0.0);
    assert!(cycles >= 5.0 && lags >= cycles, "{text}");
    poll.stop().await;
}
