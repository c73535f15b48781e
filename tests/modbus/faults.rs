//! The misbehaving-PLC cases of issue 4, each against the simulator over real TCP with the real poller task,
//! and each asserting that a healthy device (another unit on the same connection, or another PLC) keeps
//! polling while the fault runs.

use std::time::Duration;

use shopfloor_agent::logic::decode::{DataType, Table, Value};
use shopfloor_agent::poller::{PollEvent, TagError};
use simulators::{Fault, FaultRule, PlcSimulator};

use super::{frozen_machine, machine_tags, plc_config, tag, Poll, PATIENCE};
use crate::support::wait_until;

/// One simulator with frozen units `1..=units`; unit `u`'s produced counter reads `u * 111_111`.
async fn gateway(units: u8) -> PlcSimulator {
    let sim = PlcSimulator::start("127.0.0.1:0", (1..=units).map(frozen_machine).collect(), 9)
        .await
        .unwrap();
    for unit in 1..=units {
        sim.set_producing(unit, false);
        sim.set_counter(unit, 111_111 * u32::from(unit));
    }
    sim
}

fn produced(unit: u8) -> Value {
    Value::UInt(111_111 * u64::from(unit))
}

/// Polls units 1 and 2 of `sim` (three tags each; tag 0 = unit 1 produced, tag 3 = unit 2 produced).
fn poll_two_units(sim: &PlcSimulator) -> Poll {
    let tags = [machine_tags(1, 0), machine_tags(2, 0)].concat();
    Poll::start(plc_config(&sim.local_addr().to_string(), |_| {}), tags)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_plc_that_accepts_tcp_and_never_answers_when_polled_then_it_is_down_and_another_plc_keeps_polling(
) {
    let silent = gateway(1).await;
    let healthy = gateway(1).await;
    silent.arm(FaultRule::new(Fault::Silent));
    let silent_poll = Poll::start(
        plc_config(&silent.local_addr().to_string(), |_| {}),
        machine_tags(1, 0),
    );
    let healthy_poll = Poll::start(
        plc_config(&healthy.local_addr().to_string(), |_| {}),
        machine_tags(1, 0),
    );

    // While the silent PLC fails cycle after cycle, the other PLC keeps reading.
    wait_until(PATIENCE, "silent PLC reported down", || {
        !silent_poll.health().up && silent_poll.health().consecutive_failures >= 3
    })
    .await;
    healthy_poll
        .wait_reads(0, 10, "the healthy PLC keeps polling")
        .await;
    assert_eq!(
        silent_poll.reads(0),
        0,
        "a silent PLC is never read as a value"
    );
    assert!(silent_poll
        .readings(0)
        .iter()
        .all(|r| matches!(r, Err(TagError::Timeout(_) | TagError::Transport(_)))));
    assert!(
        silent.stats().connections >= 2,
        "the silent connection is rebuilt"
    );
    assert_eq!(silent_poll.transitions(None).len(), 1);

    // When it answers again, polling resumes by itself.
    silent.clear_faults();
    silent_poll.wait_reads(0, 3, "the PLC answers again").await;
    assert_eq!(silent_poll.values(0).last(), Some(&produced(1)));
    assert!(silent_poll.transitions(None).last().is_some_and(|t| t.up));
    silent_poll.stop().await;
    healthy_poll.stop().await;
    silent.shutdown().await;
    healthy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_answers_arriving_after_the_timeout_when_polled_then_no_read_gets_another_requests_answer(
) {
    // Unit 2 answers 650 ms late (timeout 400 ms); its stale answers queue in front of unit 1's.
    let sim = gateway(2).await;
    sim.arm(FaultRule::new(Fault::Delay(Duration::from_millis(650))).unit(2));
    let poll = poll_two_units(&sim);

    wait_until(PATIENCE, "late answers dropped", || {
        poll.health().late_answers >= 3
    })
    .await;
    poll.wait_reads(0, 5, "unit 1 keeps polling").await;
    sim.clear_faults();
    poll.wait_reads(3, 5, "unit 2 reads again once it answers in time")
        .await;
    poll.stop().await;

    // Every value read is the right unit's: no transaction-id cascade, and the connection was kept.
    assert!(
        poll.values(0).iter().all(|v| *v == produced(1)),
        "{:?}",
        poll.values(0)
    );
    assert!(
        poll.values(3).iter().all(|v| *v == produced(2)),
        "{:?}",
        poll.values(3)
    );
    assert!(poll
        .readings(3)
        .iter()
        .any(|r| matches!(r, Err(TagError::Timeout(_)))));
    assert_eq!(
        sim.stats().connections,
        1,
        "a late answer does not cost the connection"
    );
    sim.shutdown().await;
}

async fn half_frame_case(fault: Fault) {
    let sim = gateway(2).await;
    let poll = poll_two_units(&sim);
    poll.wait_reads(3, 2, "both units polled").await;

    sim.arm(FaultRule::new(fault).unit(2).times(1));
    wait_until(PATIENCE, "the connection is rebuilt", || {
        sim.stats().connections >= 2
    })
    .await;
    poll.wait_reads(0, 5, "unit 1 keeps polling").await;
    poll.wait_reads(3, 5, "unit 2 reads again on the new connection")
        .await;
    poll.stop().await;

    assert!(poll.values(0).iter().all(|v| *v == produced(1)));
    assert!(poll.values(3).iter().all(|v| *v == produced(2)));
    assert!(
        poll.readings(3)
            .iter()
            .any(|r| matches!(r, Err(TagError::Transport(_)))),
        "the cut read is a transport error, never a value"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_half_a_frame_then_a_stall_when_polled_then_the_connection_is_rebuilt_and_reads_stay_correct(
) {
    half_frame_case(Fault::HalfFrameThenStall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_half_a_frame_then_a_reset_when_polled_then_the_connection_is_rebuilt_and_reads_stay_correct(
) {
    half_frame_case(Fault::HalfFrameThenReset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_wrong_register_count_when_polled_then_a_typed_error_and_the_other_unit_keeps_polling(
) {
    let sim = gateway(2).await;
    sim.arm(
        FaultRule::new(Fault::WrongCount(-1))
            .unit(2)
            .addresses(0..=1),
    );
    let poll = poll_two_units(&sim);

    wait_until(PATIENCE, "wrong lengths seen", || {
        poll.readings(3)
            .iter()
            .filter(|r| matches!(r, Err(TagError::WrongLength { .. })))
            .count()
            >= 3
    })
    .await;
    poll.wait_reads(0, 3, "unit 1 keeps polling").await;
    sim.clear_faults();
    sim.arm(
        FaultRule::new(Fault::WrongCount(3))
            .unit(2)
            .addresses(0..=1)
            .times(2),
    );
    poll.wait_reads(3, 3, "unit 2 reads again").await;
    poll.stop().await;

    assert!(poll.values(3).iter().all(|v| *v == produced(2)));
    let lengths: Vec<(usize, usize)> = poll
        .readings(3)
        .iter()
        .filter_map(|r| match r {
            Err(TagError::WrongLength { expected, got }) => Some((*expected, *got)),
            _ => None,
        })
        .collect();
    // The u32 at 0 is read on its own (the gap to the state register exceeds max_gap): 2 registers asked.
    assert!(
        lengths.contains(&(2, 1)) && lengths.contains(&(2, 5)),
        "{lengths:?}"
    );
    assert_eq!(
        sim.stats().connections,
        1,
        "a whole frame with a wrong count keeps the connection"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_each_exception_code_when_polled_then_config_errors_disable_the_tag_once_and_transient_ones_retry(
) {
    let sim = gateway(2).await;
    for code in [0x01u8, 0x02, 0x03, 0x04, 0x06, 0x0B] {
        // Unit 2's state register (its own request) is refused with `code`; unit 1 is healthy.
        sim.clear_faults();
        sim.arm(
            FaultRule::new(Fault::Exception(code))
                .unit(2)
                .addresses(20..=20),
        );
        let refused_before = sim.stats().faulted;
        let tags = vec![
            tag(1, Table::Holding, 0, DataType::U32),
            tag(2, Table::Holding, 20, DataType::U16),
        ];
        let poll = Poll::start(
            plc_config(&sim.local_addr().to_string(), |plc| plc.max_gap = 0),
            tags,
        );
        wait_until(PATIENCE, "the refusal is seen twice", || {
            poll.readings(1).iter().filter(|r| r.is_err()).count() >= 2
        })
        .await;
        let refused_so_far = sim.stats().faulted - refused_before;
        sim.clear_faults();
        poll.wait_reads(0, 4, "unit 1 keeps polling").await;
        let disabled_events: Vec<PollEvent> = poll
            .events()
            .into_iter()
            .filter(|e| matches!(e, PollEvent::TagDisabled(_)))
            .collect();
        if code <= 0x03 {
            // Configuration error: disabled, reported once, and not asked again before its first probe
            // (`disabled_retry`, 1 minute by default, far beyond this test).
            assert!(
                poll.readings(1)
                    .iter()
                    .all(|r| matches!(r, Err(TagError::Disabled { code: c, .. }) if *c == code)),
                "code {code:#04x}: {:?}",
                poll.readings(1)
            );
            assert_eq!(disabled_events.len(), 1, "code {code:#04x}");
            assert_eq!(refused_so_far, 1, "code {code:#04x}: asked once");
            assert_eq!(poll.health().disabled_tags.len(), 1);
        } else {
            // Transient: retried every cycle, and read again once the device answers.
            assert!(poll
                .readings(1)
                .iter()
                .any(|r| matches!(r, Err(TagError::Exception { code: c, .. }) if *c == code)));
            assert!(disabled_events.is_empty(), "code {code:#04x}");
            assert!(refused_so_far >= 2, "code {code:#04x}: retried");
            assert!(
                poll.readings(1)
                    .iter()
                    .any(|r| matches!(r, Err(TagError::UnitSkipped { unit_id: 2 }))),
                "code {code:#04x}: the failing unit is backed off on its own"
            );
            poll.wait_reads(1, 2, "the tag is read again").await;
        }
        assert!(poll.values(0).iter().all(|v| *v == produced(1)));
        poll.stop().await;
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_merged_read_refused_with_illegal_address_when_polled_then_it_is_split_and_every_tag_is_read(
) {
    // A device that refuses reads touching 10..=12 (an unmapped hole the merged read bridges).
    let sim = gateway(1).await;
    sim.arm(FaultRule::new(Fault::Exception(0x02)).addresses(10..=12));
    let poll = Poll::start(
        plc_config(&sim.local_addr().to_string(), |plc| plc.max_gap = 20),
        vec![
            tag(1, Table::Holding, 0, DataType::U32),
            tag(1, Table::Holding, 20, DataType::U16),
        ],
    );
    assert_eq!(poll.plan.requests.len(), 1, "merged across the hole");

    poll.wait_reads(0, 4, "produced read").await;
    poll.wait_reads(1, 4, "state read").await;
    poll.stop().await;

    assert!(
        poll.readings(0).iter().all(Result::is_ok),
        "the first cycle already split and retried"
    );
    assert_eq!(poll.health().requests_per_poll, 2);
    assert!(poll.health().disabled_tags.is_empty());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_device_that_reboots_and_loses_its_counters_when_polled_then_polling_resumes_with_the_new_values(
) {
    let sim = gateway(2).await;
    let other = gateway(1).await;
    let poll = poll_two_units(&sim);
    let other_poll = Poll::start(
        plc_config(&other.local_addr().to_string(), |_| {}),
        machine_tags(1, 0),
    );
    poll.wait_reads(0, 3, "polling before the reboot").await;

    let before = other_poll.reads(0);
    sim.reboot(Duration::from_millis(800), true).await.unwrap();
    let during = other_poll.reads(0) - before;
    poll.wait_reads(0, 3, "polling after the reboot").await;
    poll.wait_reads(3, 3, "unit 2 after the reboot").await;
    poll.stop().await;
    other_poll.stop().await;

    assert!(
        during >= 2,
        "the other PLC polled {during} times during the reboot"
    );
    let values = poll.values(0);
    assert_eq!(values.first(), Some(&produced(1)));
    assert_eq!(
        values.last(),
        Some(&Value::UInt(0)),
        "the counter reset is read, not hidden"
    );
    assert!(sim.stats().connections >= 2);
    sim.shutdown().await;
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_plc_down_for_a_long_time_when_it_comes_back_then_polling_resumes_by_itself() {
    // "An hour" compressed: backoff capped at 400 ms, down for about 2 s (several capped backoff rounds).
    let sim = gateway(1).await;
    let other = gateway(1).await;
    let poll = Poll::start(
        plc_config(&sim.local_addr().to_string(), |_| {}),
        machine_tags(1, 0),
    );
    let other_poll = Poll::start(
        plc_config(&other.local_addr().to_string(), |_| {}),
        machine_tags(1, 0),
    );
    poll.wait_reads(0, 3, "polling before the outage").await;

    sim.go_down().await;
    let failures_at_start = poll.health().failures;
    other_poll
        .wait_reads(0, 20, "the other PLC polls through the outage")
        .await;
    let health = poll.health();
    assert!(!health.up);
    assert!(health.failures >= failures_at_start + 3, "{health:?}");
    sim.come_up().await.unwrap();
    poll.wait_reads(0, 3, "polling after the outage").await;
    poll.stop().await;
    other_poll.stop().await;

    let transitions = poll.transitions(None);
    assert_eq!(
        transitions
            .iter()
            .map(|t| (t.up, t.previous))
            .collect::<Vec<_>>(),
        vec![(true, None), (false, Some(true)), (true, Some(false))],
        "one event per transition"
    );
    assert!(
        poll.transitions(Some(1)).iter().all(|t| t.up),
        "a dead connection is not the unit's failure"
    );
    assert!(
        poll.values(0).iter().all(|v| *v == produced(1)),
        "no failed poll became a value"
    );
    sim.shutdown().await;
    other.shutdown().await;
}
