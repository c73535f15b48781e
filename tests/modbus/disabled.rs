//! A tag refused with a configuration exception (01/02/03) is disabled, probed again with a capped, doubling
//! backoff (one single read per retry, never one per cycle) and enabled again by the first good answer. Its
//! counts are not lost: the cumulative counter carries the disabled time to the first good read, so the final
//! rollups still sum to the simulator's truth.

use std::time::Duration;

use serde_json::Value;
use shopfloor_agent::config::Config;
use shopfloor_agent::logic::decode::{DataType, Table, Value as Reading};
use shopfloor_agent::poller::retry::JITTER;
use shopfloor_agent::poller::{PollEvent, RetrySchedule, TagError};
use shopfloor_agent::supervisor::{self, Observers};
use simulators::{Fault, FaultRule, MachineSpec, PlcSimulator};
use tokio_util::sync::CancellationToken;

use super::{frozen_machine, plc_config, tag, Poll, PATIENCE};
use crate::support::agent::{final_rollups, sum_of};
use crate::support::{self, wait_until, Recorder};

/// Refused single reads the simulator saw so far (the disabling read and every refused probe).
fn refused(sim: &PlcSimulator) -> u64 {
    sim.stats().faulted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_counter_refused_with_illegal_address_when_polled_then_it_is_probed_with_a_doubling_delay_and_enabled_by_the_first_good_answer(
) {
    // Given unit 2's produced counter refused with exception 02 (unit 1 healthy), a 100 ms poll and a
    // disabled-tag retry of 300 ms doubling up to 600 ms.
    let sim = PlcSimulator::start("127.0.0.1:0", vec![frozen_machine(1), frozen_machine(2)], 5)
        .await
        .unwrap();
    sim.set_counter(1, 111_111);
    sim.set_counter(2, 1_000);
    sim.arm(
        FaultRule::new(Fault::Exception(0x02))
            .unit(2)
            .addresses(0..=1),
    );
    let config = plc_config(&sim.local_addr().to_string(), |plc| {
        plc.disabled_retry = Duration::from_millis(300);
        plc.disabled_retry_max = Duration::from_millis(600);
    });
    let schedule = RetrySchedule::of(&config);
    let poll = Poll::start(
        config,
        vec![
            tag(1, Table::Holding, 0, DataType::U32),
            tag(2, Table::Holding, 0, DataType::U32),
        ],
    );

    // When the device keeps refusing it for the disabling read and three probes.
    wait_until(PATIENCE, "three refused probes", || refused(&sim) >= 4).await;
    let while_disabled = poll.health();
    let refused_while_disabled = refused(&sim);
    let stamps: Vec<i64> = poll.samples.lock().unwrap().iter().map(|s| s.utc).collect();

    // Then each probe waited its delay: the refused reads fit the schedule between the first and the last
    // cycle so far (load only spaces them further), so it was one read per retry, not one per cycle.
    let span_ms = stamps.last().unwrap() - stamps.first().unwrap();
    let refused_so_far = u32::try_from(refused_while_disabled).unwrap();
    let shortest_ms: u128 = (0..refused_so_far - 1)
        .map(|n| schedule.base(n).mul_f64(1.0 - JITTER).as_millis())
        .sum();
    assert!(
        shortest_ms <= u128::try_from(span_ms).unwrap(),
        "{refused_so_far} refused reads within {span_ms} ms of cycles"
    );
    // Health shows the tag with its next probe.
    assert_eq!(while_disabled.disabled_tags.len(), 1, "{while_disabled:?}");
    let disabled = &while_disabled.disabled_tags[0];
    assert_eq!(
        (disabled.unit_id, disabled.address, disabled.code),
        (2, 0, 2)
    );
    assert!(disabled.failed_probes >= 2, "{disabled:?}");
    assert!(disabled.next_retry_at > disabled.at, "{disabled:?}");

    // When the device answers normally again (its counter moved meanwhile).
    sim.set_counter(2, 1_234);
    sim.clear_faults();
    poll.wait_reads(1, 2, "the disabled counter is read again")
        .await;
    poll.stop().await;

    // Then it is enabled once, reads the true value, and was never a zero while disabled.
    let events = poll.events();
    let disabled_events = events
        .iter()
        .filter(|e| matches!(e, PollEvent::TagDisabled(_)))
        .count();
    let enabled: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            PollEvent::TagEnabled(enabled) => Some(enabled.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(disabled_events, 1, "reported once, not per probe");
    assert_eq!(enabled.len(), 1, "{enabled:?}");
    assert!(enabled[0].disabled.failed_probes >= 3);
    assert!(poll.health().disabled_tags.is_empty());
    assert_eq!(poll.values(1).first(), Some(&Reading::UInt(1_234)));
    let readings = poll.readings(1);
    let first_good = readings.iter().position(Result::is_ok).unwrap();
    assert!(
        readings[..first_good]
            .iter()
            .all(|r| matches!(r, Err(TagError::Disabled { code: 2, .. }))),
        "{:?}",
        &readings[..first_good]
    );
    assert!(poll.values(0).iter().all(|v| *v == Reading::UInt(111_111)));
    assert!(poll.reads(0) >= 4, "the healthy unit kept polling");
    support::report(&format!(
        "disabled tag: {refused_while_disabled} refused reads in {span_ms} ms of {} cycles; enabled after {} ms",
        stamps.len(),
        enabled[0].at - enabled[0].disabled.at
    ));
    sim.shutdown().await;
}

fn agent_config(plc: &str, port: u16, data_dir: &std::path::Path) -> String {
    format!(
        r#"
[agent]
site = "disabled-site"
gateway = "gw-disabled"
timezone = "UTC"
data_dir = "{data_dir}"
periods = ["2s"]
live_interval = "1s"
health_interval = "500ms"

[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "disabled-{port}"

[[plc]]
id = "plc-a"
address = "{plc}"
poll_interval = "200ms"
timeout = "1s"
disabled_retry = "400ms"
disabled_retry_max = "800ms"

[[machine]]
id = "m1"
line = "line-a"
plc = "plc-a"
unit_id = 1
counters.produced = {{ address = 0, type = "u32" }}
counters.defective = {{ address = 2, type = "u32" }}
state = {{ address = 20, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }}
"#,
        data_dir = data_dir.display()
    )
}

/// Waits until `condition` holds or `patience` ran out; returns whether it holds.
async fn wait_for(patience: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + patience;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Events of one kind the subscriber received for machine `m1`.
fn events_of(recorder: &Recorder, kind: &str) -> Vec<Value> {
    recorder
        .messages_matching("/m1/event")
        .into_iter()
        .map(|(_, body)| body)
        .filter(|body| body["kind"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_produced_counter_refused_with_exception_02_for_a_while_when_it_answers_again_then_the_final_rollups_sum_to_the_truth(
) {
    // Given a producing machine whose agent has its baselines.
    let sim = PlcSimulator::start(
        "127.0.0.1:0",
        vec![MachineSpec {
            cycle_time: Duration::from_millis(40),
            defect_probability: 0.1,
            stop_probability: 0.0,
            ..MachineSpec::new(1)
        }],
        21,
    )
    .await
    .unwrap();
    sim.set_producing(1, false);
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "shopfloor/v1/#").await;
    let data_dir = tempfile::tempdir().unwrap();
    let text = agent_config(&sim.local_addr().to_string(), broker.port, data_dir.path());
    let config = Config::from_toml(&text, "disabled.toml", false).unwrap();
    let shutdown = CancellationToken::new();
    let (observers_tx, observers_rx) = std::sync::mpsc::channel::<Observers>();
    let agent = tokio::spawn(supervisor::run(config, shutdown.clone(), move |o| {
        let _ = observers_tx.send(o);
    }));
    let observers =
        tokio::task::spawn_blocking(move || observers_rx.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .expect("the agent starts");
    let health = || observers.plc_health.lock().unwrap()[0].clone();
    wait_until(PATIENCE, "baselines taken", || health().polls >= 2).await;
    let before = sim.truth(1);
    sim.set_producing(1, true);
    let polls = health().polls;
    wait_until(PATIENCE, "production read", || health().polls >= polls + 3).await;

    // When the PLC refuses the produced counter with exception 02 (a program download) for ten polls, then
    // answers normally again.
    sim.arm(
        FaultRule::new(Fault::Exception(0x02))
            .unit(1)
            .addresses(0..=1),
    );
    wait_until(PATIENCE, "the counter disabled", || {
        !health().disabled_tags.is_empty()
    })
    .await;
    let polls = health().polls;
    wait_until(PATIENCE, "ten polls while disabled", || {
        health().polls >= polls + 10
    })
    .await;
    let probes_refused = health().disabled_tags.first().map(|t| t.failed_probes);
    let produced_while_disabled = sim.truth(1).produced;
    sim.clear_faults();
    // Not asserted here: a counter that never comes back shows up below as counts missing from the truth.
    let enabled_again = wait_for(PATIENCE, || health().disabled_tags.is_empty()).await;
    let polls = health().polls;
    wait_until(PATIENCE, "production read again", || {
        health().polls >= polls + 3
    })
    .await;
    sim.set_producing(1, false);
    let frozen_at = shopfloor_agent::poller::now_millis();
    let after = sim.truth(1);

    // Then the final rollups (highest revision per window) sum to the truth exactly.
    let settle_at = frozen_at + 1_000;
    wait_until(
        Duration::from_secs(60),
        "the window after the freeze",
        || {
            final_rollups(&recorder, "m1", "2s").values().any(|w| {
                let start: jiff::Timestamp =
                    w["window"]["start"].as_str().unwrap().parse().unwrap();
                start.as_millisecond() > settle_at
            })
        },
    )
    .await;
    let windows = final_rollups(&recorder, "m1", "2s");
    let (produced, defective) = (
        after.produced - before.produced,
        after.defective - before.defective,
    );
    let counted = (sum_of(&windows, "produced"), sum_of(&windows, "defective"));
    support::report(&format!(
        "disabled counter: truth produced {produced} defective {defective} ({} before the counter came \
         back, {probes_refused:?} probes refused, enabled again: {enabled_again}); final rollups \
         {counted:?} over {} windows",
        produced_while_disabled - before.produced,
        windows.len()
    ));
    assert!(produced > 20, "produced only {produced}");
    assert_eq!(counted, (produced, defective), "final rollups vs truth");

    assert_disabling_and_enabling_announced(&recorder);
    shutdown.cancel();
    tokio::time::timeout(PATIENCE, agent)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
    sim.shutdown().await;
}

/// The disabling and the re-enabling are one durable event each, valid against the schema; health showed
/// the disabled tag with its next probe.
fn assert_disabling_and_enabling_announced(recorder: &Recorder) {
    let event_schema = support::schema("event");
    let disabled = events_of(recorder, "tag_disabled");
    let enabled = events_of(recorder, "tag_enabled");
    assert_eq!((disabled.len(), enabled.len()), (1, 1));
    for event in disabled.iter().chain(&enabled) {
        support::assert_valid(&event_schema, event);
        assert_eq!(event["detail"]["address"], 0);
    }
    let health_schema = support::schema("health");
    let reported: Vec<Value> = recorder
        .messages_matching("/health")
        .into_iter()
        .map(|(_, body)| body)
        .filter(|body| {
            body["devices"][0]["disabled_tags"]
                .as_array()
                .is_some_and(|tags| !tags.is_empty())
        })
        .collect();
    assert!(!reported.is_empty(), "health showed the disabled tag");
    for body in &reported {
        support::assert_valid(&health_schema, body);
    }
}
