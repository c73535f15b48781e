//! Ranges and cross-checks: hostile values give a problem with their TOML path, never a panic, and
//! the nonsense the runtime used to accept silently is refused.

use proptest::prelude::*;

use super::super::*;
use crate::logic::counter::DesignRate;

/// A valid file; each test puts one line back into one section.
fn config_with(agent: &str, mqtt: &str, plc: &str, machine: &str) -> String {
    format!(
        r#"
[agent]
site = "acme"
gateway = "gw-01"
data_dir = "/tmp/x"
{agent}

[mqtt]
{mqtt}

[[plc]]
id = "plc-a"
{plc}

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
counters.produced = {{ address = 100, type = "u32" }}
{machine}
"#
    )
}

const ADDRESS: &str = "address = \"127.0.0.1:502\"";

/// Where a duration key lives: (section, key, TOML path in problems).
const DURATION_KEYS: [(&str, &str, &str); 14] = [
    ("agent", "live_interval", "agent.live_interval"),
    ("agent", "health_interval", "agent.health_interval"),
    ("agent", "restatement_horizon", "agent.restatement_horizon"),
    ("agent", "grace", "agent.grace.1m"),
    ("mqtt", "keep_alive", "mqtt.keep_alive"),
    ("mqtt", "connect_timeout", "mqtt.connect_timeout"),
    ("mqtt", "reconnect_max", "mqtt.reconnect_max"),
    ("plc", "poll_interval", "plc[0].poll_interval"),
    ("plc", "timeout", "plc[0].timeout"),
    ("plc", "backoff_max", "plc[0].backoff_max"),
    (
        "plc",
        "pause_between_requests",
        "plc[0].pause_between_requests",
    ),
    ("plc", "unit_backoff", "plc[0].unit_backoff"),
    ("machine", "ideal_cycle_time", "machine[0].ideal_cycle_time"),
    ("store", "commit_interval", "store.commit_interval"),
];

/// A config with `key = value` (a TOML basic string) in its section.
fn with_duration(section: &str, key: &str, value: &str) -> String {
    let value = toml_string(value);
    let line = if key == "grace" {
        format!("grace = {{ \"1m\" = {value} }}")
    } else {
        format!("{key} = {value}")
    };
    match section {
        "agent" => config_with(&line, "", ADDRESS, ""),
        "mqtt" => config_with("", &line, ADDRESS, ""),
        "plc" => config_with("", "", &format!("{ADDRESS}\n{line}"), ""),
        "store" => config_with("", "", ADDRESS, "") + &format!("\n[store]\n{line}\n"),
        _ => config_with("", "", ADDRESS, &line),
    }
}

/// `value` as a TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn problems(text: &str) -> Vec<Problem> {
    match Config::from_toml(text, "test.toml", false) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected validation problems, got {other}"),
        Ok(_) => panic!("expected validation problems, got a valid config:\n{text}"),
    }
}

fn has_problem(found: &[Problem], path: &str, needle: &str) -> bool {
    found
        .iter()
        .any(|p| p.path == path && p.message.contains(needle))
}

#[test]
fn hostile_durations_are_problems_with_their_path_never_panics() {
    let hostile = [
        "500000000000y",
        "18446744073709551615s",
        "2000000000000000000s",
        "-1s",
        "1e400ms",
        "",
        "  ",
        "9000000h 9000000h 9000000h",
        "99999999999999999999999999999ns",
    ];
    for (section, key, path) in DURATION_KEYS {
        for value in hostile {
            let found = problems(&with_duration(section, key, value));
            assert!(
                found.iter().any(|p| p.path == path),
                "{path} = {value:?} gave {found:?}"
            );
        }
    }
}

#[test]
fn hostile_sizes_are_problems_with_their_path_never_panics() {
    let hostile = [
        "18446744073709551615GiB",
        "18446744073709551616",
        "99999999999999999999TiB",
        "-1",
        "1e400",
        "",
        "  ",
        "1 KiB KiB",
        "17TiB",
    ];
    for value in hostile {
        let value = toml_string(value);
        let text = config_with("", "", ADDRESS, "") + &format!("\n[store]\nmax_bytes = {value}\n");
        assert!(problems(&text).iter().any(|p| p.path == "store.max_bytes"));
        let text = config_with("", &format!("max_packet_size = {value}"), ADDRESS, "");
        assert!(problems(&text)
            .iter()
            .any(|p| p.path == "mqtt.max_packet_size"));
    }
}

#[test]
fn previously_aborting_values_name_the_range() {
    let found = problems(&with_duration(
        "plc",
        "poll_interval",
        "2000000000000000000s",
    ));
    assert!(
        has_problem(&found, "plc[0].poll_interval", "between 10ms and 1h"),
        "{found:?}"
    );
    let found = problems(&with_duration("mqtt", "keep_alive", "500000000000y"));
    assert!(
        has_problem(&found, "mqtt.keep_alive", "between 5s and 65535s"),
        "{found:?}"
    );
    // Only the bad key is reported: no follow-up problems from a fallback value.
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn commit_interval_defaults_to_a_minute_accepts_zero_and_stops_at_a_minute() {
    let default = Config::from_toml(&config_with("", "", ADDRESS, ""), "test.toml", false).unwrap();
    assert_eq!(
        default.store.commit_interval,
        std::time::Duration::from_secs(60)
    );
    let every_cycle = Config::from_toml(
        &with_duration("store", "commit_interval", "0s"),
        "test.toml",
        false,
    )
    .unwrap();
    assert_eq!(every_cycle.store.commit_interval, std::time::Duration::ZERO);
    let found = problems(&with_duration("store", "commit_interval", "61s"));
    assert!(
        has_problem(&found, "store.commit_interval", "between 0s and 1m"),
        "{found:?}"
    );
}

#[test]
fn keep_alive_is_limited_to_what_mqtt_can_carry() {
    let ok = with_duration("mqtt", "keep_alive", "65535s");
    assert!(Config::from_toml(&ok, "t", false).is_ok());
    let found = problems(&with_duration("mqtt", "keep_alive", "65536s"));
    assert!(
        has_problem(&found, "mqtt.keep_alive", "65535s"),
        "{found:?}"
    );
}

#[test]
fn pause_between_requests_must_be_shorter_than_the_poll_interval() {
    let plc = format!("{ADDRESS}\npoll_interval = \"1s\"\npause_between_requests = \"1s\"");
    let found = problems(&config_with("", "", &plc, ""));
    assert!(
        has_problem(
            &found,
            "plc[0].pause_between_requests",
            "shorter than the poll interval"
        ),
        "{found:?}"
    );
    let plc = format!("{ADDRESS}\npoll_interval = \"1s\"\npause_between_requests = \"50ms\"");
    assert!(Config::from_toml(&config_with("", "", &plc, ""), "t", false).is_ok());
}

#[test]
fn a_grace_longer_than_its_period_is_refused() {
    let found = problems(&config_with(
        "grace = { \"1m\" = \"61s\" }",
        "",
        ADDRESS,
        "",
    ));
    assert!(
        has_problem(&found, "agent.grace.1m", "longer than its period"),
        "{found:?}"
    );
    let ok = config_with("grace = { \"1m\" = \"1m\" }", "", ADDRESS, "");
    assert!(Config::from_toml(&ok, "t", false).is_ok());
}

#[test]
fn every_period_must_be_at_least_the_slowest_poll_interval() {
    let plc = format!("{ADDRESS}\npoll_interval = \"2m\"");
    let found = problems(&config_with("", "", &plc, ""));
    assert!(
        has_problem(&found, "agent.periods[0]", "slowest poll interval"),
        "{found:?}"
    );
    assert!(!found.iter().any(|p| p.path == "agent.periods[1]"));
}

#[test]
fn shift_and_day_periods_parse_with_a_five_minute_grace_and_shift_needs_a_calendar() {
    // Given "shift" and "day" periods without a [calendar]: the shift period is a problem.
    let periods = "periods = [\"15m\", \"shift\", \"day\"]";
    let found = problems(&config_with(periods, "", ADDRESS, ""));
    assert!(
        has_problem(&found, "agent.periods[1]", "needs a [calendar]"),
        "{found:?}"
    );
    assert_eq!(found.len(), 1, "{found:?}");
    // With a calendar both parse, each with the 5 min default grace; a grace up to a day is allowed.
    let calendar =
        "\n[calendar]\nshifts = [{ name = \"early\", start = \"06:00\", duration = \"8h\" }]";
    let text = format!(
        "{}{calendar}",
        config_with(
            &format!("{periods}\ngrace = {{ \"day\" = \"2h\" }}"),
            "",
            ADDRESS,
            ""
        )
    );
    let config = Config::from_toml(&text, "t", false).unwrap();
    let graces: Vec<(String, Duration)> = config
        .agent
        .periods
        .iter()
        .map(|p| (p.period.name.clone(), p.grace))
        .collect();
    assert_eq!(
        graces,
        vec![
            ("15m".into(), Duration::from_secs(30)),
            ("shift".into(), Duration::from_secs(300)),
            ("day".into(), Duration::from_secs(7_200)),
        ]
    );
    let duplicate = problems(&config_with(
        "periods = [\"day\", \" day\"]",
        "",
        ADDRESS,
        "",
    ));
    assert!(
        has_problem(&duplicate, "agent.periods[1]", "listed twice"),
        "{duplicate:?}"
    );
}

#[test]
fn plc_port_zero_and_bad_hosts_are_refused() {
    for (address, needle) in [
        ("127.0.0.1:0", "port"),
        ("127.0.0.1:65536", "port"),
        ("my plc:502", "host"),
        ("[::1:502", "host"),
    ] {
        let found = problems(&config_with(
            "",
            "",
            &format!("address = \"{address}\""),
            "",
        ));
        assert!(
            has_problem(&found, "plc[0].address", needle),
            "{address}: {found:?}"
        );
    }
    let ipv6 = config_with("", "", "address = \"[fd00::10]:502\"", "");
    assert!(Config::from_toml(&ipv6, "t", false).is_ok());
}

#[test]
fn broker_host_and_topic_prefix_are_checked() {
    for host in ["mqtt://broker", "broker:1883", "bad host", "-x"] {
        let found = problems(&config_with("", &format!("host = \"{host}\""), ADDRESS, ""));
        assert!(
            has_problem(&found, "mqtt.host", "host name"),
            "{host}: {found:?}"
        );
    }
    for prefix in ["a//b", "/a", "a/", "a/+", "#", "$SYS"] {
        let found = problems(&config_with(
            "",
            &format!("topic_prefix = \"{prefix}\""),
            ADDRESS,
            "",
        ));
        assert!(
            found.iter().any(|p| p.path == "mqtt.topic_prefix"),
            "{prefix}: {found:?}"
        );
    }
}

#[test]
fn an_address_past_the_register_space_is_a_problem_not_an_overflow() {
    let text = config_with("", "", ADDRESS, "").replace(
        "address = 100, type = \"u32\"",
        "address = 4294967295, type = \"u32\"",
    );
    let found = problems(&text);
    assert!(
        found
            .iter()
            .any(|p| p.path == "machine[0].counters.produced.address"),
        "{found:?}"
    );
}

#[test]
fn t_max_defaults_to_three_poll_intervals_of_the_counters_plc_and_is_checked() {
    let counter = |keys: &str| {
        config_with("", "", &format!("{ADDRESS}\npoll_interval = \"2s\""), "").replace(
            "address = 100, type = \"u32\"",
            &format!("address = 100, type = \"u32\"{keys}"),
        )
    };
    let rate = |text: &str| {
        Config::from_toml(text, "test.toml", false)
            .unwrap()
            .machines[0]
            .produced
            .counter
            .design_rate
    };
    assert_eq!(
        rate(&counter(", design_rate = 5.0")),
        Some(DesignRate {
            units_per_s: 5.0,
            t_max_ms: 6_000
        })
    );
    assert_eq!(
        rate(&counter(", design_rate = 5.0, t_max = \"5s\"")),
        Some(DesignRate {
            units_per_s: 5.0,
            t_max_ms: 5_000
        })
    );
    assert_eq!(rate(&counter("")), None);
    let found = problems(&counter(", t_max = \"5s\""));
    assert!(
        has_problem(
            &found,
            "machine[0].counters.produced.t_max",
            "needs design_rate"
        ),
        "{found:?}"
    );
    let found = problems(&counter(", design_rate = 5.0, t_max = \"0s\""));
    assert!(
        has_problem(&found, "machine[0].counters.produced.t_max", ""),
        "{found:?}"
    );
}

#[test]
fn table_and_type_problems_list_the_closed_vocabulary() {
    let text = config_with("", "", ADDRESS, "").replace(
        "address = 100, type = \"u32\"",
        "table = \"registers\", address = 100, type = \"uint32\"",
    );
    let found = problems(&text);
    assert!(
        has_problem(
            &found,
            "machine[0].counters.produced.table",
            "is not one of coil, discrete, input, holding"
        ),
        "{found:?}"
    );
    assert!(
        has_problem(
            &found,
            "machine[0].counters.produced.type",
            "is not one of bool, u16, i16, u32, i32, u64, i64, f32, f64"
        ),
        "{found:?}"
    );
}

#[test]
fn a_packet_limit_below_the_largest_message_is_refused_with_the_figure() {
    let found = problems(&config_with("", "max_packet_size = \"1KiB\"", ADDRESS, ""));
    let problem = found
        .iter()
        .find(|p| p.path == "mqtt.max_packet_size")
        .expect("max_packet_size refused");
    assert!(
        problem.message.contains("below the largest message")
            && problem.message.contains("KiB")
            && problem.message.contains("use at least"),
        "{problem}"
    );
    let default = config_with("", "", ADDRESS, "");
    assert!(Config::from_toml(&default, "t", false).is_ok());
}

#[test]
fn an_override_names_its_environment_variable() {
    let mut found = vec![
        Problem {
            path: "mqtt.keep_alive".into(),
            message: "too long".into(),
            from_env: None,
        },
        Problem {
            path: "mqtt.keep_alive_extra".into(),
            message: "unknown key".into(),
            from_env: None,
        },
    ];
    let overrides = [("SHOPFLOOR__MQTT__KEEP_ALIVE".to_string(), "9y".to_string())];
    blame_overrides(&mut found, &overrides);
    assert_eq!(
        found[0].to_string(),
        "mqtt.keep_alive (from SHOPFLOOR__MQTT__KEEP_ALIVE): too long"
    );
    assert_eq!(found[1].from_env, None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any text in any duration key validates or gives a problem at that key (or at the key a
    /// cross-check relates it to); it never panics.
    #[test]
    fn any_duration_text_is_a_value_or_a_problem_at_its_path(
        key in 0..DURATION_KEYS.len(),
        text in "[0-9]{0,22}(\\.[0-9]{0,3})?( ?(ns|us|ms|s|m|h|d|w|M|y|years|days))?( [0-9]{1,20}[a-z]{1,3}){0,3}",
    ) {
        let (section, name, path) = DURATION_KEYS[key];
        if let Err(error) = Config::from_toml(&with_duration(section, name, &text), "p.toml", false) {
            let ConfigError::Invalid { problems, .. } = error else {
                panic!("{error}");
            };
            // A value in range can still be refused by a cross-check that names the related key.
            let related = |p: &Problem| {
                p.path == path || p.path == "plc[0].timeout" || p.path.starts_with("agent.periods")
            };
            prop_assert!(problems.iter().any(|p| p.path == path) || problems.iter().all(related), "{:?}", problems);
        }
    }
}

#[test]
fn log_format_is_text_by_default_json_on_request_and_anything_else_names_its_path() {
    let text = config_with("", "", ADDRESS, "");
    let config = Config::from_toml(&text, "test.toml", false).unwrap();
    assert_eq!(config.agent.log_format, LogFormat::Text);
    let json = config_with("log_format = \"json\"", "", ADDRESS, "");
    let config = Config::from_toml(&json, "test.toml", false).unwrap();
    assert_eq!(config.agent.log_format, LogFormat::Json);
    let found = problems(&config_with("log_format = \"ansi\"", "", ADDRESS, ""));
    assert!(
        has_problem(&found, "agent.log_format", "not one of text, json"),
        "{found:?}"
    );
}

#[test]
fn poll_schedule_is_aligned_by_default_spread_on_request_and_anything_else_names_its_path() {
    let text = config_with("", "", ADDRESS, "");
    let config = Config::from_toml(&text, "test.toml", false).unwrap();
    assert_eq!(config.agent.poll_schedule, PollSchedule::Aligned);
    let spread = config_with("poll_schedule = \"spread\"", "", ADDRESS, "");
    let config = Config::from_toml(&spread, "test.toml", false).unwrap();
    assert_eq!(config.agent.poll_schedule, PollSchedule::Spread);
    let found = problems(&config_with("poll_schedule = \"random\"", "", ADDRESS, ""));
    assert!(
        has_problem(&found, "agent.poll_schedule", "not one of aligned, spread"),
        "{found:?}"
    );
}
