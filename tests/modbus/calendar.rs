//! Shift and break boundaries get a poll of their own: with a poll interval of seconds, a sample lands
//! on a shift start that falls between two regular polls, and the regular polls stay on their grid.
//! The test's clock is set just before a whole minute, so the boundary comes a second into the test.

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use shopfloor_agent::clock::{Clock as _, SteppableClock, SystemClock};
use shopfloor_agent::logic::calendar::{Calendar, ShiftSpec};
use shopfloor_agent::poller::{PollTiming, Sample};
use simulators::PlcSimulator;

use super::{frozen_machine, machine_tags, plc_config, Poll, PATIENCE};
use crate::support::wait_until;

/// The regular poll interval; a minute is not a multiple of it, so shift starts fall between polls.
const INTERVAL_MS: i64 = 3_500;
/// How long before the shift start the test's clock begins.
const LEAD_MS: i64 = 1_000;
/// Least distance between the shift start and either neighbouring regular poll.
const CLEARANCE_MS: i64 = 1_500;

/// The first whole minute after `now` that lies at least `CLEARANCE_MS` from both regular polls
/// around it (minutes step through every residue of 500 ms modulo the interval).
fn minute_between_polls(now: i64) -> i64 {
    let mut minute = (now / 60_000 + 1) * 60_000;
    loop {
        let offset = minute.rem_euclid(INTERVAL_MS);
        if offset >= CLEARANCE_MS && INTERVAL_MS - offset >= CLEARANCE_MS {
            return minute;
        }
        minute += 60_000;
    }
}

/// The first sample stamped at or after `at`, if any yet.
fn first_at_or_after(poll: &Poll, at: i64) -> Option<Sample> {
    poll.samples
        .lock()
        .unwrap()
        .iter()
        .find(|sample| sample.utc >= at)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_shift_start_between_two_regular_polls_when_the_clock_passes_it_then_a_sample_lands_on_it(
) {
    // Given a PLC polled every 3.5 s, and a UTC calendar whose shift starts on a whole minute that lies
    // 1.5 s or more from both regular polls around it, with the poller's clock a second before it.
    let sim = PlcSimulator::start("127.0.0.1:0", vec![frozen_machine(1)], 5)
        .await
        .unwrap();
    let real_now = SystemClock.utc();
    let boundary = minute_between_polls(real_now);
    let clock = Arc::new(SteppableClock::new(boundary - LEAD_MS - real_now));
    let start = Timestamp::from_millisecond(boundary)
        .unwrap()
        .to_zoned(TimeZone::UTC)
        .time();
    let shift = ShiftSpec {
        name: "early".into(),
        start,
        duration_ms: 3_600_000,
        breaks: vec![],
    };
    let calendar = Calendar::new(TimeZone::UTC, vec![shift], vec![]).unwrap();
    let config = plc_config(&sim.local_addr().to_string(), |plc| {
        plc.poll_interval = Duration::from_millis(INTERVAL_MS as u64);
    });
    let poll = Poll::start_with(
        config,
        machine_tags(1, 0),
        PollTiming {
            clock,
            calendar,
            ..PollTiming::system()
        },
    );

    // When the poller's clock passes the shift start.
    wait_until(PATIENCE, "a sample at or after the shift start", || {
        first_at_or_after(&poll, boundary).is_some()
    })
    .await;

    // Then the first sample from the shift start on was taken for it, well before the next regular
    // poll, and it read the PLC.
    let next_regular = (boundary / INTERVAL_MS + 1) * INTERVAL_MS;
    let at_boundary = first_at_or_after(&poll, boundary).unwrap();
    assert!(
        at_boundary.utc < next_regular,
        "sample at {} ms after the shift start; the next regular poll is {} ms after it",
        at_boundary.utc - boundary,
        next_regular - boundary
    );
    assert!(
        at_boundary.readings.iter().all(Result::is_ok),
        "{:?}",
        at_boundary.readings
    );

    // And the regular schedule goes on: the next sample is the regular poll after the boundary.
    wait_until(PATIENCE, "the regular poll after the shift start", || {
        first_at_or_after(&poll, at_boundary.utc + 1).is_some()
    })
    .await;
    let regular = first_at_or_after(&poll, at_boundary.utc + 1).unwrap();
    assert!(
        regular.utc >= next_regular,
        "an extra sample {} ms after the shift start",
        regular.utc - boundary
    );
    poll.stop().await;
}
