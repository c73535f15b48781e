//! A PLC polls at its own phase within the poll interval, so a fleet's reads spread over the interval, and a
//! window boundary between two of its regular polls gets a poll of its own. The test's clock is set just
//! before a whole minute, so the boundary comes a second or two into the test.

use std::sync::Arc;
use std::time::Duration;

use shopfloor_agent::clock::{Clock as _, SteppableClock, SystemClock};
use shopfloor_agent::config::PollSchedule;
use shopfloor_agent::logic::window::Period;
use shopfloor_agent::poller::{self, PollTiming};
use simulators::PlcSimulator;

use super::{frozen_machine, machine_tags, plc_config, Poll, PATIENCE};
use crate::support::wait_until;

/// The regular poll interval.
const INTERVAL_MS: i64 = 1_000;
/// The PLC's index in the configuration; its phase is not zero.
const PLC: usize = 3;
/// How long before the whole minute the test's clock begins.
const LEAD_MS: i64 = 1_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_plc_with_a_phase_when_it_polls_then_its_samples_land_on_its_phase_and_on_the_window_boundary(
) {
    // Given PLC 3 polled every second on the spread schedule, one-minute windows, and the poller's clock 1.5 s before a minute,
    let sim = PlcSimulator::start("127.0.0.1:0", vec![frozen_machine(1)], 5)
        .await
        .unwrap();
    let phase_ms =
        i64::try_from(poller::phase(PLC, Duration::from_millis(INTERVAL_MS as u64)).as_millis())
            .unwrap();
    assert!(phase_ms > 0 && phase_ms < INTERVAL_MS, "{phase_ms}");
    let real_now = SystemClock.utc();
    let minute = (real_now / 60_000 + 1) * 60_000;
    let clock = Arc::new(SteppableClock::new(minute - LEAD_MS - real_now));
    let config = plc_config(&sim.local_addr().to_string(), |plc| {
        plc.poll_interval = Duration::from_millis(INTERVAL_MS as u64);
    });
    let timing = PollTiming {
        clock,
        periods: vec![Period::parse("1m").unwrap()],
        schedule: PollSchedule::Spread,
        ..PollTiming::system()
    };
    let poll = Poll::start_as(PLC, config, machine_tags(1, 0), timing);
    let stamps = || -> Vec<i64> {
        poll.samples
            .lock()
            .unwrap()
            .iter()
            .map(|sample| sample.utc)
            .collect()
    };

    // When it polls across the minute and a little beyond,
    wait_until(PATIENCE, "two regular polls after the minute", || {
        stamps()
            .iter()
            .filter(|&&utc| utc > minute && utc.rem_euclid(INTERVAL_MS) == phase_ms)
            .count()
            >= 2
    })
    .await;

    // then its regular samples were scheduled at its phase (the wait above), and the first sample from the
    // minute on was taken for the window boundary, before the next regular poll.
    let next_regular = minute + phase_ms;
    let stamps = stamps();
    let at_boundary = stamps.iter().copied().find(|&utc| utc >= minute).unwrap();
    assert!(
        at_boundary < next_regular,
        "first sample {} ms after the minute; the next regular poll is {phase_ms} ms after it",
        at_boundary - minute
    );
    poll.stop().await;
}
