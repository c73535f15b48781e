//! The command line as a plant engineer meets it: `validate` on good and bad files, and `demo`.

use std::process::Command;

use crate::support;

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
    let (output, stderr) = validate(&path, &[]);

    // Then it exits with the configuration error code and lists every problem at once.
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
fn validate_names_calendar_problems_with_their_path_and_the_file() {
    // Given a calendar whose shifts overlap on the daily timeline and whose break leaves its shift.
    let dir = tempfile::tempdir().unwrap();
    let calendar = r#"
[calendar]
shifts = [
  { name = "day", start = "06:00", duration = "12h", breaks = [{ start = "17:30", duration = "1h" }] },
  { name = "night", start = "17:00", duration = "12h" },
]
days_off = ["2026-12-25"]
"#;
    let file = config_file(dir.path(), calendar, "", "");

    // When it is validated.
    let (output, stderr) = validate(&file, &[]);

    // Then it exits with the configuration error code and names each problem with its TOML path.
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("agent.toml"), "{stderr}");
    for expected in [
        "calendar.shifts[0].breaks[0]: break is not wholly inside its shift \"day\"",
        "calendar.shifts[1]: shift \"night\" overlaps shift \"day\"",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected} in:\n{stderr}"
        );
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

/// Runs `validate --config file` with `env` set; returns the output and its stderr as text.
fn validate(file: &std::path::Path, env: &[(&str, &str)]) -> (std::process::Output, String) {
    let output = Command::new(BINARY)
        .args(["validate", "--config"])
        .arg(file)
        .envs(env.iter().copied())
        .output()
        .expect("the agent binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr)
}

/// A valid file with `agent`, `mqtt` and `plc` lines added to their sections.
fn config_file(dir: &std::path::Path, agent: &str, mqtt: &str, plc: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    let data_dir = dir.join("data");
    std::fs::write(
        &path,
        format!(
            r#"
[agent]
site = "acme"
gateway = "gw-01"
data_dir = "{}"
{agent}

[mqtt]
host = "127.0.0.1"
port = 1
{mqtt}

[[plc]]
id = "plc-a"
address = "127.0.0.1:1"
{plc}

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
counters.produced = {{ address = 100, type = "u32" }}
"#,
            data_dir.display()
        ),
    )
    .unwrap();
    path
}

/// The values that used to pass `validate` and abort `run` (or abort `validate` itself, exit 134).
const ABORTING: [(&str, &str, &str, &str); 4] = [
    (
        "",
        "",
        "poll_interval = \"2000000000000000000s\"",
        "plc[0].poll_interval",
    ),
    (
        "",
        "",
        "pause_between_requests = \"500000000000y\"",
        "plc[0].pause_between_requests",
    ),
    ("", "keep_alive = \"500000000000y\"", "", "mqtt.keep_alive"),
    (
        "",
        "connect_timeout = \"500000000000y\"",
        "",
        "mqtt.connect_timeout",
    ),
];

#[test]
fn validate_refuses_out_of_range_durations_with_their_path_instead_of_aborting() {
    for (agent, mqtt, plc, path) in ABORTING {
        // Given a file with one duration far out of range.
        let dir = tempfile::tempdir().unwrap();
        let file = config_file(dir.path(), agent, mqtt, plc);

        // When it is validated.
        let (output, stderr) = validate(&file, &[]);

        // Then it exits with the configuration error code (not an abort) and names the key and the range.
        assert_eq!(output.status.code(), Some(2), "{path}: {stderr}");
        assert!(stderr.contains(path), "missing {path} in:\n{stderr}");
        assert!(stderr.contains("must be between"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn run_refuses_previously_aborting_values_before_starting() {
    for (agent, mqtt, plc, path) in ABORTING {
        // Given a file with one duration that used to abort the running agent.
        let dir = tempfile::tempdir().unwrap();
        let file = config_file(dir.path(), agent, mqtt, plc);

        // When the agent is started with it.
        let mut child = Command::new(BINARY)
            .args(["run", "--config"])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("run with {path} out of range did not exit: it started");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };

        // Then it exits with the configuration error code, and never opened a store.
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(2), "{path}: {stderr}");
        assert!(stderr.contains(path), "missing {path} in:\n{stderr}");
        assert!(!dir.path().join("data").exists(), "the store was opened");
    }
}

#[test]
fn validate_names_the_environment_variable_behind_a_bad_value() {
    // Given a good file and an override with a hostile keep-alive.
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path(), "", "", "");

    // When it is validated with the override.
    let (output, stderr) = validate(&file, &[("SHOPFLOOR__MQTT__KEEP_ALIVE", "500000000000y")]);

    // Then the problem names the key and the variable that set it.
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("mqtt.keep_alive (from SHOPFLOOR__MQTT__KEEP_ALIVE): "),
        "{stderr}"
    );
}

#[test]
fn validate_refuses_a_packet_limit_below_the_largest_message_and_accepts_the_default() {
    let dir = tempfile::tempdir().unwrap();

    // Given a 1KiB packet limit, when validated, then it is refused with the size it needs.
    let file = config_file(dir.path(), "", "max_packet_size = \"1KiB\"", "");
    let (output, stderr) = validate(&file, &[]);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("mqtt.max_packet_size: 1KiB is below the largest message this configuration can publish (about "),
        "{stderr}"
    );
    assert!(stderr.contains("use at least "), "{stderr}");

    // Given the default limit, when validated, then it passes.
    let file = config_file(dir.path(), "", "", "");
    let (output, stderr) = validate(&file, &[]);
    assert!(output.status.success(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_says_once_at_start_when_no_calendar_makes_all_time_planned() {
    const NO_CALENDAR: &str = "no [calendar]: all observed time counts as planned time";
    let calendar = r#"
[calendar]
shifts = [{ name = "day", start = "06:00", duration = "8h" }]
"#;
    for (agent_lines, expected) in [("", 1), (calendar, 0)] {
        // Given a valid file with or without a calendar (PLC and broker unreachable: the agent keeps running).
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(config_file(dir.path(), agent_lines, "", "")).unwrap();

        // When the agent runs until it has started.
        let agent = support::child::ChildAgent::start(dir.path(), &text);
        support::wait_until(
            std::time::Duration::from_secs(30),
            "the agent running",
            || agent.log().contains("Agent running."),
        )
        .await;

        // Then the all-planned notice is logged exactly once without a calendar, and not with one.
        let log = agent.log();
        assert_eq!(log.matches(NO_CALENDAR).count(), expected, "{log}");
        assert!(agent.stop().await.success());
    }
}
