//! `shopfloor-agent replay` as the binary: golden inputs in `tests/replay/` (`NAME.toml`, `NAME.csv`,
//! expected `NAME.jsonl`) whose figures are also computed by hand in each test, and bad input, which
//! stops with its line and column and exit code 2. Set `SHOPFLOOR_BLESS=1` to rewrite the `.jsonl`
//! files from the current output (then check them against the hand calculations).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support;

const BINARY: &str = env!("CARGO_BIN_EXE_shopfloor-agent");

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay")
}

/// Runs `replay` on `config` and `samples`; `data_dir` overrides the configuration's.
fn run_replay(config: &Path, samples: &Path, data_dir: Option<&Path>) -> Output {
    let mut command = Command::new(BINARY);
    command
        .args(["replay", "--config"])
        .arg(config)
        .arg("--samples")
        .arg(samples);
    if let Some(dir) = data_dir {
        command.env("SHOPFLOOR__AGENT__DATA_DIR", dir);
    }
    command.output().unwrap()
}

/// The rollups of a successful replay, each checked against the rollup schema.
fn rollups_of(output: &Output) -> Vec<Value> {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let schema = support::schema("rollup");
    stdout
        .lines()
        .map(|line| {
            let rollup: Value = serde_json::from_str(line).unwrap();
            support::assert_valid(&schema, &rollup);
            rollup
        })
        .collect()
}

/// Replays golden input `name` and checks the output equals `name.jsonl` (whose `agent_version` is
/// read as this build's); returns the rollups.
fn replay_golden(name: &str) -> Vec<Value> {
    let dir = golden_dir();
    let output = run_replay(
        &dir.join(format!("{name}.toml")),
        &dir.join(format!("{name}.csv")),
        None,
    );
    let rollups = rollups_of(&output);
    let expected_path = dir.join(format!("{name}.jsonl"));
    if std::env::var_os("SHOPFLOOR_BLESS").is_some() {
        std::fs::write(&expected_path, &output.stdout).unwrap();
    }
    let expected: Vec<Value> = std::fs::read_to_string(&expected_path)
        .unwrap()
        .lines()
        .map(|line| {
            let mut rollup: Value = serde_json::from_str(line).unwrap();
            rollup["agent_version"] = env!("CARGO_PKG_VERSION").into();
            rollup
        })
        .collect();
    assert_eq!(
        rollups, expected,
        "replay of {name} differs from {name}.jsonl"
    );
    rollups
}

fn float(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{value} is not a number"))
}

fn close(actual: &Value, expected: f64) {
    let actual = float(actual);
    assert!((actual - expected).abs() < 1e-12, "{actual} != {expected}");
}

#[test]
fn given_the_worked_example_when_replayed_then_its_8h_window_has_the_hand_computed_kpis() {
    // Given one 8-hour window 00:00-08:00: running 00:00-07:00 (420 min), an unplanned stop
    // 07:00-08:00 (60 min); produced 70000 → 70400 (400 units, a u32 in CDAB order), defective
    // 100 → 120 (20); ideal cycle time 1 min. With no calendar all 480 min are planned.
    // When it is replayed.
    let rollups = replay_golden("worked_example");

    // Then by hand: availability 420/480 = 0.875; performance 400 x 1 min / 420 min = 400/420;
    // quality 380/400 = 0.95; oee = 0.875 x 400/420 x 0.95 = 19/24.
    assert_eq!(rollups.len(), 1);
    let window = &rollups[0];
    assert_eq!(window["window"]["start"], "2026-11-27T00:00:00+00:00");
    assert_eq!(window["window"]["end"], "2026-11-27T08:00:00+00:00");
    assert_eq!(window["status"], "final");
    assert_eq!(window["times_ms"]["planned"], 480 * 60_000);
    assert_eq!(window["times_ms"]["running"], 420 * 60_000);
    assert_eq!(window["times_ms"]["unplanned_stop"], 60 * 60_000);
    assert_eq!(window["counts"]["produced"], 400);
    assert_eq!(window["counts"]["good"], 380);
    close(&window["kpi"]["availability"], 0.875);
    close(&window["kpi"]["performance"], 400.0 / 420.0);
    close(&window["kpi"]["quality"], 0.95);
    close(&window["kpi"]["oee"], 19.0 / 24.0);
    assert_eq!(window["seq"], 1);
    assert_eq!(window["db_epoch"], "replay");
}

#[test]
fn given_a_counter_reset_mid_shift_when_replayed_then_the_value_after_the_reset_counts() {
    // Given hourly windows, running throughout, ideal cycle time 30 s, a poll every 15 min:
    // 06:00 500, 06:15 530, 06:30 560, 06:45 12 (reset), 07:00 42, then +30 every 15 min to 162.
    // When it is replayed.
    let rollups = replay_golden("counter_reset");

    // Then by hand: 06:00-07:00 counts 30 + 30 + 12 (the reset's value) + 30 = 102, flagged reset;
    // performance 102 x 30 s / 3600 s = 0.85. 07:00-08:00 counts 4 x 30 = 120, performance 1.
    assert_eq!(rollups.len(), 2);
    let (first, second) = (&rollups[0], &rollups[1]);
    assert_eq!(first["window"]["start"], "2026-11-27T06:00:00+00:00");
    assert_eq!(first["counts"]["produced"], 102);
    assert_eq!(first["flags"], serde_json::json!(["reset"]));
    close(&first["kpi"]["performance"], 0.85);
    assert_eq!(second["window"]["start"], "2026-11-27T07:00:00+00:00");
    assert_eq!(second["counts"]["produced"], 120);
    assert_eq!(second["flags"], serde_json::json!([]));
    close(&second["kpi"]["performance"], 1.0);
    assert_eq!(
        rollups.iter().map(|r| r["seq"].clone()).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[test]
fn given_a_data_dir_when_replayed_then_nothing_is_written_there() {
    // Given the worked example with its data_dir pointed at an empty directory.
    let data_dir = tempfile::tempdir().unwrap();
    let dir = golden_dir();

    // When it is replayed.
    let output = run_replay(
        &dir.join("worked_example.toml"),
        &dir.join("worked_example.csv"),
        Some(data_dir.path()),
    );

    // Then it succeeds and the directory is still empty: no store, no lock file.
    assert_eq!(rollups_of(&output).len(), 1);
    let entries: Vec<_> = std::fs::read_dir(data_dir.path()).unwrap().collect();
    assert!(entries.is_empty(), "{entries:?}");
}

#[test]
fn given_bad_input_when_replayed_then_it_stops_naming_line_and_column_with_exit_code_2() {
    const HEADER: &str = "utc,machine,produced,defective,state\n";
    const GOOD: &str = "2026-11-27T00:00:00Z,press-01,70000,100,1\n";
    let cases = [
        (
            "unknown machine",
            format!("{HEADER}{GOOD}2026-11-27T00:01:00Z,press-99,70001,100,1\n"),
            "line 3, column 2 (machine): unknown machine \"press-99\"",
        ),
        (
            "unparsable time",
            format!("{HEADER}yesterday,press-01,70000,100,1\n"),
            "line 2, column 1 (utc): \"yesterday\" is not an RFC 3339 time",
        ),
        (
            "time going backwards",
            format!("{HEADER}{GOOD}2026-11-26T23:59:00Z,press-01,70001,100,1\n"),
            "line 3, column 1 (utc): time goes backwards",
        ),
        (
            "non-numeric value",
            format!("{HEADER}{GOOD}2026-11-27T00:01:00Z,press-01,lots,100,1\n"),
            "line 3, column 3 (produced): \"lots\" is not a whole number",
        ),
        (
            "unknown column",
            format!("utc,machine,produced,defective,state,colour\n{GOOD}"),
            "line 1, column 6 (colour): unknown column \"colour\"",
        ),
        (
            "value too large for its register",
            format!("{HEADER}2026-11-27T00:00:00Z,press-01,70000,65536,1\n"),
            "line 2, column 4 (defective): 65536 is out of the range of u16",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let config = golden_dir().join("worked_example.toml");
    for (what, csv, expected) in cases {
        // Given input with one mistake.
        let samples = dir.path().join("samples.csv");
        std::fs::write(&samples, csv).unwrap();

        // When it is replayed.
        let output = run_replay(&config, &samples, None);

        // Then it stops with exit code 2 and says where and what.
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{what}: {stderr}");
        assert!(stderr.contains(expected), "{what}: {stderr}");
    }
}
