//! The systemd unit as shipped (`systemd/shopfloor-agent.service`): every hardening and lifecycle directive
//! the README promises is there with its value, the packaged configuration matches its paths, and
//! `systemd-analyze verify` accepts it (where systemd's tools are installed).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shopfloor_agent::config::Config;
use shopfloor_agent::supervisor::SHUTDOWN_DEADLINE;

const BINARY: &str = env!("CARGO_BIN_EXE_shopfloor-agent");
const UNIT: &str = include_str!("../systemd/shopfloor-agent.service");
/// Where the Debian package installs the binary; the unit's commands run it from there.
const INSTALLED_BINARY: &str = "/usr/bin/shopfloor-agent";
/// Where the Debian package installs the configuration (from `config/example.toml`).
const INSTALLED_CONFIG: &str = "/etc/shopfloor-agent/agent.toml";

/// Every assignment of the unit by (section, key), in file order; comments and blank lines left out.
fn directives(unit: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut section = String::new();
    let mut map: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = line.split_once('=').expect("a unit line is key=value");
        assert!(!line.ends_with('\\'), "no continuation lines: {line}");
        map.entry((section.clone(), key.trim().to_string()))
            .or_default()
            .push(value.trim().to_string());
    }
    map
}

/// The values of `[Service] key`, panicking with the key's name when it is absent.
fn service<'a>(map: &'a BTreeMap<(String, String), Vec<String>>, key: &str) -> &'a [String] {
    map.get(&("Service".to_string(), key.to_string()))
        .unwrap_or_else(|| panic!("[Service] {key}= is missing"))
}

#[test]
fn the_unit_carries_every_required_directive() {
    let map = directives(UNIT);
    let exactly = [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "shopfloor-agent"),
        ("ConfigurationDirectory", "shopfloor-agent"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallArchitectures", "native"),
        ("Restart", "always"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("UMask", "0077"),
    ];
    for (key, value) in exactly {
        assert_eq!(service(&map, key), [value], "[Service] {key}=");
    }
    assert_eq!(
        service(&map, "ExecStartPre"),
        [format!(
            "{INSTALLED_BINARY} validate --config {INSTALLED_CONFIG}"
        )]
    );
    assert_eq!(
        service(&map, "ExecStart"),
        [format!(
            "{INSTALLED_BINARY} run --config {INSTALLED_CONFIG}"
        )]
    );
    assert_eq!(
        service(&map, "SystemCallFilter")
            .first()
            .map(String::as_str),
        Some("@system-service"),
        "the allow list comes first; later lines only take calls away"
    );
    assert!(
        service(&map, "SystemCallFilter")[1..]
            .iter()
            .all(|line| line.starts_with('~')),
        "every further SystemCallFilter= line is a deny list"
    );
    let memory_max = service(&map, "MemoryMax");
    assert!(
        memory_max.len() == 1 && memory_max[0].ends_with('M'),
        "one MemoryMax in MiB: {memory_max:?}"
    );
    assert!(
        service(&map, "Environment")
            .iter()
            .any(|assignment| assignment == "MALLOC_ARENA_MAX=2"),
        "glibc's malloc arenas are capped (README, \"Performance\")"
    );
}

#[test]
fn the_unit_times_leave_room_for_the_agent() {
    let map = directives(UNIT);
    let seconds = |key: &str| -> Duration {
        let values = service(&map, key);
        assert_eq!(values.len(), 1, "{key}= once");
        humantime::parse_duration(&values[0]).unwrap()
    };
    // systemd sends SIGKILL when the stop timeout passes: the agent's own shutdown deadline must fit first.
    assert!(
        seconds("TimeoutStopSec") > SHUTDOWN_DEADLINE + Duration::from_secs(5),
        "TimeoutStopSec must exceed the shutdown deadline ({SHUTDOWN_DEADLINE:?}) with a margin"
    );
    let watchdog = seconds("WatchdogSec");
    assert!(
        watchdog >= Duration::from_secs(10),
        "a short watchdog restarts a busy agent: {watchdog:?}"
    );
}

#[test]
fn the_unit_documents_a_credential_for_every_secret() {
    // LoadCredential= of a missing file fails the start, so the lines ship commented; each secret the
    // configuration can name has one ready to uncomment.
    for name in ["ca.pem", "client.pem", "client.key", "mqtt.pass"] {
        let line = format!("#LoadCredential={name}:/etc/shopfloor-agent/tls/{name}");
        assert!(UNIT.lines().any(|l| l.trim() == line), "missing: {line}");
    }
}

#[test]
fn the_packaged_configuration_keeps_its_data_in_the_state_directory() {
    // The package installs config/example.toml as the configuration: it must load as installed and keep
    // its data where the unit's StateDirectory= makes a writable place.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let config = Config::load(&example).unwrap();
    let map = directives(UNIT);
    let state = Path::new("/var/lib").join(&service(&map, "StateDirectory")[0]);
    assert_eq!(config.agent.data_dir, state);
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let available = Command::new("systemd-analyze").arg("--version").output();
    if !available.is_ok_and(|output| output.status.success()) {
        println!("skipped: systemd-analyze is not installed here");
        return;
    }
    // verify checks that every command exists: the copy runs the binary this build made, in place of the
    // packaged path (the installed unit itself is verified by CI after `dpkg -i`).
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("shopfloor-agent.service");
    std::fs::write(&unit, UNIT.replace(INSTALLED_BINARY, BINARY)).unwrap();

    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("shopfloor-agent"),
        "systemd-analyze verify warned about the unit: {stderr}"
    );
}
