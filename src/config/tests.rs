//! Tests of loading and validating configuration files.

use super::*;
use std::path::Path;
use std::time::Duration;

const MINIMAL: &str = r#"
        [agent]
        site = "acme"
        gateway = "gw-01"
        timezone = "Asia/Seoul"
        data_dir = "/tmp/x"

        [[plc]]
        id = "plc-a"
        address = "127.0.0.1:502"

        [[machine]]
        id = "press-01"
        line = "line-a"
        plc = "plc-a"
        counters.produced = { table = "holding", address = 100, type = "u32" }
    "#;

fn problems(text: &str) -> Vec<Problem> {
    match Config::from_toml(text, "test.toml", false) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected validation problems, got {other}"),
        Ok(_) => panic!("expected validation problems, got a valid config"),
    }
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let config = Config::from_toml(MINIMAL, "test.toml", false).unwrap();
    assert_eq!(config.mqtt.client_id, "acme-gw-01");
    assert_eq!(config.mqtt.port, 1883);
    assert_eq!(config.agent.periods.len(), 3);
    assert_eq!(config.agent.periods[0].grace, Duration::from_secs(10));
    assert_eq!(config.machines[0].produced.counter.modulus, 1 << 32);
    assert_eq!(config.store.max_bytes, 1 << 30);
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let text = MINIMAL
        .replace("Asia/Seoul", "Mars/Olympus")
        .replace("type = \"u32\"", "type = \"f32\", bogus = 1")
        .replace("plc = \"plc-a\"", "plc = \"plc-b\"")
        + "\n[mqtt]\nkeep_alive = \"soon\"\n";
    let found = problems(&text);
    let paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
    assert!(paths.contains(&"agent.timezone"), "{found:?}");
    assert!(paths.contains(&"machine[0].plc"), "{found:?}");
    assert!(
        paths.contains(&"machine[0].counters.produced.type"),
        "{found:?}"
    );
    assert!(
        paths.contains(&"machine[0].counters.produced.bogus"),
        "{found:?}"
    );
    assert!(paths.contains(&"mqtt.keep_alive"), "{found:?}");
}

#[test]
fn overlapping_tags_are_rejected() {
    let text = MINIMAL.replace(
            "counters.produced = { table = \"holding\", address = 100, type = \"u32\" }",
            "counters.produced = { address = 100, type = \"u32\" }\ncounters.defective = { address = 101, type = \"u32\" }",
        );
    let found = problems(&text);
    assert!(
        found
            .iter()
            .any(|p| p.path == "machine[0].counters.defective" && p.message.contains("overlaps")),
        "{found:?}"
    );
}

#[test]
fn modulus_accepts_powers_and_plain_numbers() {
    let text = MINIMAL.replace("type = \"u32\"", "type = \"u16\", modulus = \"10000\"");
    let config = Config::from_toml(&text, "t", false).unwrap();
    assert_eq!(config.machines[0].produced.counter.modulus, 10000);
    let text = MINIMAL.replace("type = \"u32\"", "type = \"u16\", modulus = \"2^32\"");
    assert_eq!(
        problems(&text)[0].path,
        "machine[0].counters.produced.modulus"
    );
}

#[test]
fn sizes_and_periods_parse() {
    assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
    assert_eq!(parse_bytes("16TiB").unwrap(), 16 << 40);
    assert!(parse_bytes("12 parsecs").is_err());
    assert_eq!(Period::parse("15m").unwrap().nominal_ms(), 900_000);
    assert!(Period::parse("7m").is_err());
}

#[test]
fn every_file_in_the_config_folder_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(error) = Config::from_toml(&text, &path.display().to_string(), false) {
                panic!("{error}");
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected example.toml and demo.toml in {}",
        dir.display()
    );
}

#[test]
fn environment_overrides_apply_with_the_shopfloor_prefix() {
    // The variable name is unique to this test, so parallel tests are not affected.
    std::env::set_var("SHOPFLOOR__MQTT__CLIENT_ID", "from-env");
    let config = Config::from_toml(MINIMAL, "test.toml", true);
    std::env::remove_var("SHOPFLOOR__MQTT__CLIENT_ID");
    assert_eq!(config.unwrap().mqtt.client_id, "from-env");
}

#[test]
fn a_value_wider_than_one_request_is_rejected() {
    let text = MINIMAL.replace(
        "address = \"127.0.0.1:502\"",
        "address = \"127.0.0.1:502\"\nmax_registers_per_request = 1",
    );
    let found = problems(&text);
    assert!(
        found
            .iter()
            .any(|p| p.path == "machine[0].counters.produced"
                && p.message.contains("max_registers_per_request")),
        "{found:?}"
    );
}

#[test]
fn disabled_tag_retry_defaults_to_one_minute_doubling_to_fifteen_and_the_cap_cannot_undercut_it() {
    let config = Config::from_toml(MINIMAL, "test.toml", false).unwrap();
    assert_eq!(config.plcs[0].disabled_retry, Duration::from_secs(60));
    assert_eq!(config.plcs[0].disabled_retry_max, Duration::from_secs(900));

    let text = MINIMAL.replace(
        "address = \"127.0.0.1:502\"",
        "address = \"127.0.0.1:502\"\ndisabled_retry = \"10m\"\ndisabled_retry_max = \"5m\"",
    );
    let found = problems(&text);
    assert!(
        found.iter().any(|p| p.path == "plc[0].disabled_retry_max"),
        "{found:?}"
    );
}

#[test]
fn http_listen_is_optional_and_a_bad_address_names_its_path() {
    let config = Config::from_toml(MINIMAL, "test.toml", false).unwrap();
    assert_eq!(config.http.listen, None);
    let with = format!("{MINIMAL}\n[http]\nlisten = \"127.0.0.1:9464\"\n");
    let config = Config::from_toml(&with, "test.toml", false).unwrap();
    assert_eq!(config.http.listen, Some("127.0.0.1:9464".parse().unwrap()));
    let bad = format!("{MINIMAL}\n[http]\nlisten = \"localhost\"\n");
    let found = problems(&bad);
    assert!(found.iter().any(|p| p.path == "http.listen"), "{found:?}");
    match Config::from_toml(&bad, "test.toml", false) {
        Err(error) => assert!(error.to_string().contains("test.toml"), "{error}"),
        Ok(_) => panic!("a bad listen address is a config error"),
    }
}
