//! The command line as a plant engineer meets it: `validate` on good and bad files, and `demo`.

use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_shopfloor-agent");

#[test]
fn validate_accepts_the_example_and_prints_the_read_plan() {
    // Given the documented example configuration.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");

    // When it is validated.
    let output = Command::new(BINARY)
        .args(["validate", "--config", example])
        .output()
        .unwrap();

    // Then it passes and shows each planned request with its 40001-style number.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("OK"), "{stdout}");
    assert!(
        stdout.contains("40101"),
        "holding address 100 is register 40101: {stdout}"
    );
}

#[test]
fn validate_names_every_problem_with_its_path_and_the_file() {
    // Given a file with several mistakes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[agent]
site = "acme"
gateway = "gw 01"
timezone = "Asia/Nowhere"

[mqtt]
keep_alive = "soon"
colour = "blue"

[[plc]]
id = "plc-a"
address = "192.168.10.11"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-b"
counters.produced = { address = 100, type = "f32" }
"#,
    )
    .unwrap();

    // When it is validated.
    let output = Command::new(BINARY)
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();

    // Then it exits with the configuration error code and lists every problem at once.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
    for path in [
        "agent.gateway",
        "agent.timezone",
        "mqtt.keep_alive",
        "mqtt.colour",
        "plc[0].address",
        "machine[0].plc",
        "machine[0].counters.produced.type",
    ] {
        assert!(stderr.contains(path), "missing {path} in:\n{stderr}");
    }
}

#[test]
fn demo_runs_with_no_files_shows_live_figures_and_stops_cleanly() {
    // Given nothing but the binary.
    // When the demo runs for a few seconds (it picks a free MQTT port if 1883 is taken).
    let output = Command::new(BINARY)
        .args(["demo", "--seconds", "8", "--mqtt-port", "0"])
        .output()
        .unwrap();

    // Then it printed how to watch the topics and a table with three machines, and exited 0.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("mosquitto_sub -h 127.0.0.1 -p"), "{stdout}");
    for machine in ["press-01", "press-02", "weld-01"] {
        assert!(
            stdout.contains(machine),
            "{machine} missing from:\n{stdout}"
        );
    }
    assert!(stdout.contains("PLCs up 2/2"), "{stdout}");
}
