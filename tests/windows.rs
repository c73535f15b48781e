//! Windows on the shift calendar through `shopfloor-agent replay` (configuration, processor and
//! payloads as `run` uses them): a Seoul night shift with a break after midnight gives one `shift`
//! rollup dated the evening it started, local `day` rollups, and hours labelled with the shift.

use std::fmt::Write as _;
use std::process::Command;

use serde_json::Value;

use crate::support;

const BINARY: &str = env!("CARGO_BIN_EXE_shopfloor-agent");
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

const CONFIG: &str = r#"
[agent]
site = "acme"
gateway = "gw-01"
timezone = "Asia/Seoul"
data_dir = "/nonexistent/replay-opens-no-store"
periods = ["1h", "shift", "day"]

[[plc]]
id = "plc-a"
address = "127.0.0.1:502"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
ideal_cycle_time = "1m"
counters.produced = { table = "holding", address = 0, type = "u32" }
counters.defective = { table = "holding", address = 2, type = "u16" }
state = { table = "holding", address = 10, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }

[calendar]
shifts = [{ name = "night", start = "19:00", duration = "12h", breaks = [{ start = "00:00", duration = "30m" }] }]
"#;

/// Polls every 15 min from 18:00 KST on the 27th (09:00Z) to 10:00 KST on the 28th (01:00Z): the
/// machine runs throughout and makes one unit a minute.
fn samples() -> String {
    let mut csv = String::from("utc,machine,produced,defective,state\n");
    let first = "2026-11-27T09:00:00Z".parse::<jiff::Timestamp>().unwrap();
    for poll in 0..=64 {
        let at = first
            .checked_add(jiff::SignedDuration::from_mins(15 * poll))
            .unwrap();
        writeln!(csv, "{at},press-01,{},0,1", 1000 + 15 * poll).unwrap();
    }
    csv
}

fn rollups(period: &str, all: &[Value]) -> Vec<Value> {
    all.iter()
        .filter(|r| r["window"]["period"] == period)
        .cloned()
        .collect()
}

#[test]
fn given_a_seoul_night_shift_when_replayed_then_shift_day_and_hour_rollups_split_plan_and_carry_labels(
) {
    let dir = tempfile::tempdir().unwrap();
    let (config, csv) = (dir.path().join("night.toml"), dir.path().join("night.csv"));
    std::fs::write(&config, CONFIG).unwrap();
    std::fs::write(&csv, samples()).unwrap();

    // When the polls are replayed.
    let output = Command::new(BINARY)
        .args(["replay", "--config"])
        .arg(&config)
        .arg("--samples")
        .arg(&csv)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let schema = support::schema("rollup");
    let all: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    for rollup in &all {
        support::assert_valid(&schema, rollup);
        assert!(!rollup["flags"]
            .as_array()
            .unwrap()
            .contains(&"no_calendar".into()));
    }

    // Then one shift rollup, 19:00-07:00 KST, dated the 27th: 11.5 h running in plan, the 30 min
    // break out of plan, with its units (one a minute).
    let shifts = rollups("shift", &all);
    assert_eq!(shifts.len(), 1, "{shifts:#?}");
    let night = &shifts[0];
    assert_eq!(night["window"]["start"], "2026-11-27T19:00:00+09:00");
    assert_eq!(night["window"]["end"], "2026-11-28T07:00:00+09:00");
    assert_eq!(night["window"]["shift"], "night");
    assert_eq!(night["window"]["production_date"], "2026-11-27");
    assert_eq!(night["times_ms"]["running"], 11 * HOUR + 30 * MINUTE);
    assert_eq!(night["times_ms"]["planned"], 11 * HOUR + 30 * MINUTE);
    assert_eq!(night["times_ms"]["out_of_plan"], 30 * MINUTE);
    assert_eq!(night["counts"]["produced"], 690);
    assert_eq!(night["out_of_plan"]["produced"], 30);
    assert_eq!(night["kpi"]["availability"], 1.0);

    // And the day of the 27th (closed; the 28th is still open at the last poll) holds 18:00-19:00
    // out of plan and 19:00-24:00 in plan: the night's hours after midnight belong to the 28th.
    let days = rollups("day", &all);
    assert_eq!(days.len(), 1, "{days:#?}");
    assert_eq!(days[0]["window"]["production_date"], "2026-11-27");
    assert!(days[0]["window"].get("shift").is_none());
    assert_eq!(days[0]["times_ms"]["running"], 5 * HOUR);
    assert_eq!(days[0]["times_ms"]["out_of_plan"], HOUR);
    assert_eq!(days[0]["counts"]["produced"], 300);
    assert_eq!(days[0]["out_of_plan"]["produced"], 60);

    // And the hour 01:00-02:00 KST lies inside the night: its name and start date; the hour
    // 00:00-01:00 holds the break; the hour 07:00-08:00 lies outside every shift.
    let hours = rollups("1h", &all);
    let hour = |start: &str| {
        hours
            .iter()
            .find(|r| r["window"]["start"] == start)
            .unwrap_or_else(|| panic!("no hour at {start}"))
    };
    let after_midnight = hour("2026-11-28T01:00:00+09:00");
    assert_eq!(after_midnight["window"]["shift"], "night");
    assert_eq!(after_midnight["window"]["production_date"], "2026-11-27");
    let with_break = hour("2026-11-28T00:00:00+09:00");
    assert_eq!(with_break["times_ms"]["running"], 30 * MINUTE);
    assert_eq!(with_break["times_ms"]["out_of_plan"], 30 * MINUTE);
    let morning = hour("2026-11-28T07:00:00+09:00");
    assert!(morning["window"].get("shift").is_none());
    assert_eq!(morning["times_ms"]["out_of_plan"], HOUR);
    assert_eq!(morning["kpi"]["availability"], Value::Null);
    assert_eq!(morning["nulls"]["availability"], "no_planned_time");
}
