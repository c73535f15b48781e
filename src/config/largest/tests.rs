//! The bound against payloads the real pipeline code builds: windows driven through `MachineWindows`
//! with every channel, state and flag and production far beyond any real window, closed, restated,
//! turned into KPIs and payloads exactly as the processor does.

use super::*;
use crate::config::Config;
use crate::logic::rollup::{Channel, MachineWindows};

const CONFIG: &str = r#"
[agent]
site = "a-rather-long-site-name-of-a-plant.example"
gateway = "gateway-number-0001-in-the-north-hall"
timezone = "America/St_Johns"
data_dir = "/var/lib/shopfloor-agent/with/a/deep/path"
periods = ["1m", "15m", "1h"]

[mqtt]
topic_prefix = "company/shopfloor/v1"
client_id = "gw-0001"
protocol = "v5"

[[plc]]
id = "plc-line-a-north-hall-cabinet-7"
address = "plc-line-a.north-hall.plant.example:502"

[[machine]]
id = "press-with-a-long-machine-identifier-0001"
line = "line-with-a-long-identifier-as-well-0001"
plc = "plc-line-a-north-hall-cabinet-7"
ideal_cycle_time = "7ms"
counters.produced = { address = 0, type = "u64" }
counters.defective = { address = 4, type = "u64" }
defect_reasons = { scratch_on_the_left_side = { address = 10, type = "u64" }, dent_near_the_flange_area = { address = 14, type = "u64" }, colour_mismatch_of_the_coating = { address = 18, type = "u64" } }
state = { address = 30, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }
targets.productivity = { baseline = 0.000123456789012345, target = 98765.43210987654 }
targets.defect_rate = { baseline = 0.0999999999999999, target = 0.0000000000000001 }
"#;

/// 2026-11-28T09:00:00.001 in Newfoundland (offset -03:30).
const T0: Millis = 1_795_869_000_001;
const HOUR: Millis = 3_600_000;

fn config() -> Config {
    Config::from_toml(CONFIG, "largest.toml", false).expect("the test config is valid")
}

/// Drives every window of every period for two hours as the processor does: odd-length intervals in
/// every state, a huge count on every channel (each below u64::MAX / 4, so the sums cannot wrap),
/// every flag, `close_due` after each poll and a live message after each poll. A late fact at the end
/// restates a closed hour. Returns the largest rollup and live packet as the publisher would send them.
fn largest_real_packets(config: &Config) -> (u64, u64) {
    let identity = identity(config);
    let machine = &config.machines[0];
    let tz = &config.agent.timezone;
    let periods = config
        .agent
        .periods
        .iter()
        .map(|p| p.period.clone())
        .collect();
    let mut windows = MachineWindows::new(
        machine.id.clone(),
        periods,
        10_000,
        72 * HOUR,
        config.calendar.clone(),
    );
    let mut channels = vec![Channel::Produced, Channel::Defective];
    channels.extend(
        machine
            .defect_reasons
            .iter()
            .map(|(name, _)| Channel::Reason(name.clone())),
    );
    let states = [
        MachineState::Running,
        MachineState::PlannedStop,
        MachineState::UnplannedStop,
        MachineState::Unknown,
    ];
    let kpis_of = |record: &WindowRecord| {
        kpi::of_window(
            record,
            machine.ideal_cycle_time,
            &machine.targets,
            config.agent.unknown_time,
        )
    };
    let live_topic = payload::live_topic(&identity, &machine.line, &machine.id);
    let mut live_needs = 0;
    let mut closed = Vec::new();
    let mut t = T0;
    let mut step = 0;
    while t < T0 + 2 * HOUR {
        let next = t + 7_777;
        windows.add_state(states[step % states.len()], t, next);
        for channel in &channels {
            windows.add_count(channel, u64::MAX / 4 / 1_000, t, next, None);
        }
        for flag in every_flag() {
            windows.flag(next, flag);
        }
        closed.extend(windows.close_due(next));
        let open: Vec<WindowRecord> = windows.open_windows().into_iter().cloned().collect();
        let kpis: Vec<Kpis> = open.iter().map(kpis_of).collect();
        let pairs: Vec<(&WindowRecord, &Kpis)> = open.iter().zip(&kpis).collect();
        let state = Some(MachineState::UnplannedStop);
        let live = payload::live_payload(
            &identity,
            &machine.line,
            &machine.id,
            state,
            &pairs,
            next,
            tz,
        );
        let needs = bound(config, MessageKind::Live, live_topic.clone(), &live).needs;
        live_needs = live_needs.max(needs);
        t = next;
        step += 1;
    }
    closed.extend(windows.close_due(t + HOUR));
    windows.add_count(&Channel::Produced, 1, T0 + HOUR, T0 + HOUR + 1, None);
    closed.extend(windows.close_due(t + HOUR + 1));
    assert!(closed.iter().any(|r| r.status == WindowStatus::Restated));
    let rollup_needs = closed
        .iter()
        .map(|record| {
            let body =
                payload::rollup_payload(&identity, &machine.line, record, &kpis_of(record), tz);
            let topic =
                payload::rollup_topic(&identity, &machine.line, &machine.id, &record.period);
            bound(config, MessageKind::Rollup, topic, &as_sent(body)).needs
        })
        .max()
        .expect("windows closed");
    (rollup_needs, live_needs)
}

fn needs_of(config: &Config, kind: MessageKind) -> u64 {
    largest_messages(config)
        .into_iter()
        .find(|b| b.kind == kind)
        .map(|b| b.needs)
        .expect("every kind has a bound")
}

#[test]
fn the_bound_covers_every_rollup_and_live_message_the_pipeline_builds() {
    // Given a configuration with long ids, three defect reasons, both targets and three periods.
    let config = config();

    // When windows are driven far beyond any real production and closed, restated and sent.
    let (rollup, live) = largest_real_packets(&config);

    // Then the computed bounds are at least as large (before any margin).
    let rollup_bound = needs_of(&config, MessageKind::Rollup);
    let live_bound = needs_of(&config, MessageKind::Live);
    eprintln!("rollup: built {rollup} B, bound {rollup_bound} B; live: built {live} B, bound {live_bound} B");
    assert!(
        rollup <= rollup_bound,
        "rollup {rollup} > bound {rollup_bound}"
    );
    assert!(live <= live_bound, "live {live} > bound {live_bound}");
    // And the bound is an estimate, not a blanket: within a factor of two of the real rollup.
    assert!(
        rollup_bound < 2 * rollup,
        "rollup {rollup}, bound {rollup_bound}"
    );
}

#[test]
fn the_bound_covers_real_health_and_event_messages() {
    let config = config();
    let identity = identity(&config);
    let address = &config.plcs[0].address;
    // The longest error texts the poller produces name the address and carry an OS message.
    let error = format!("cannot resolve {address}: failed to lookup address information: Temporary failure in name resolution");
    let device = DeviceHealth {
        plc: config.plcs[0].id.clone(),
        up: false,
        consecutive_failures: 123_456_789,
        last_error: Some(error.clone()),
        rtt_ms: Some(1234.5678901234),
        rtt_p50_ms: Some(0.1234567890123),
        rtt_p99_ms: Some(98.76543210987),
        requests_per_poll: 125,
        polls: 987_654_321,
        failures: 123_456_789,
        late_answers: 42,
        units: vec![UnitHealthReport {
            unit_id: 1,
            up: false,
            consecutive_failures: 77,
            last_error: Some(error),
            rtt_p50_ms: Some(0.5),
            rtt_p99_ms: Some(1.5),
            requests_per_poll: 3,
            backed_off: true,
        }],
        disabled_tags: vec![DisabledTagReport {
            unit_id: 1,
            table: "holding".into(),
            address: 30,
            exception: 2,
            disabled_at: "2026-11-28T18:00:00.123+09:00".into(),
            failed_probes: 3,
            next_retry_at: "2026-11-28T18:15:00.123+09:00".into(),
        }],
    };
    let health = payload::health_payload(
        &identity,
        T0,
        payload::BacklogReport {
            rows: 1 << 40,
            bytes: 1 << 50,
            oldest_unsent_age_ms: Some(HOUR),
        },
        1 << 30,
        vec![device],
        None,
    );
    let health_needs = bound(
        &config,
        MessageKind::Health,
        payload::health_topic(&identity),
        &health,
    )
    .needs;
    assert!(health_needs <= needs_of(&config, MessageKind::Health));

    let machine = &config.machines[0];
    let detail = json!({
        "moved_to": format!("{}/shopfloor-agent.db.corrupt-20261128T090000Z", config.agent.data_dir.display()),
        "reason": "database disk image is malformed: file is not a database (quick_check failed on page 123456)",
        "note": "a fresh database with a new db_epoch was started; unsent rows of the old one were not published",
    });
    let event = payload::event_payload(
        &identity,
        &machine.line,
        &machine.id,
        payload::EventKind::StoreRecovered,
        T0,
        detail,
    );
    let topic = payload::event_topic(&identity, &machine.line, &machine.id);
    let event_needs = bound(&config, MessageKind::Event, topic, &as_sent(event)).needs;
    assert!(event_needs <= needs_of(&config, MessageKind::Event));
}

#[test]
fn the_required_size_adds_a_margin_to_the_largest_message() {
    let config = config();
    let largest = largest_messages(&config);
    let kinds: Vec<MessageKind> = largest.iter().map(|b| b.kind).collect();
    for kind in [
        MessageKind::Rollup,
        MessageKind::Event,
        MessageKind::Live,
        MessageKind::Health,
    ] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    let top = largest[0].needs;
    assert_eq!(required_packet_size(&config), top + margin(top));
    assert!(largest
        .windows(2)
        .all(|pair| pair[0].needs >= pair[1].needs));
}
