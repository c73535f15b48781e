//! `shopfloor-agent replay` as the binary: golden inputs in `tests/replay/` (`NAME.toml`, `NAME.csv`,
//! expected `NAME.jsonl`) whose figures are also computed by hand in each test, and bad input, which
//! stops with its line and column and exit code 2. Set `SHOPFLOOR_BLESS=1` to rewrite the `.jsonl`
//! files from the current output (then check them against the hand calculations).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::Value;
use shopfloor_agent::config::Config;

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
    // performance 102 x 30 s / 3600 s = 0.85. 07:00-08:00 counts 4 x 30 = 120, performance 1. No
    // [calendar]: every window is flagged no_calendar.
    assert_eq!(rollups.len(), 2);
    let (first, second) = (&rollups[0], &rollups[1]);
    assert_eq!(first["window"]["start"], "2026-11-27T06:00:00+00:00");
    assert_eq!(first["counts"]["produced"], 102);
    assert_eq!(first["flags"], serde_json::json!(["no_calendar", "reset"]));
    close(&first["kpi"]["performance"], 0.85);
    assert_eq!(second["window"]["start"], "2026-11-27T07:00:00+00:00");
    assert_eq!(second["counts"]["produced"], 120);
    assert_eq!(second["flags"], serde_json::json!(["no_calendar"]));
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

/// Two machines on one PLC, polled every 10 s for 15 minutes into 1-minute and 15-minute windows:
/// stops, failed polls followed by no polls at all, a counter reset and a wrap, and a machine without a
/// state register.
const EQUIVALENCE_CONFIG: &str = r#"
[agent]
site = "acme"
gateway = "gw-01"
timezone = "Europe/Berlin"
data_dir = "/nonexistent/replay-opens-no-store"
periods = ["1m", "15m"]

[[plc]]
id = "plc-a"
address = "127.0.0.1:502"
poll_interval = "10s"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
ideal_cycle_time = "2s"
counters.produced = { table = "holding", address = 0, type = "u32", word_order = "little", byte_swap = true }
counters.defective = { table = "holding", address = 2, type = "u16" }
defect_reasons = { scratch = { table = "holding", address = 3, type = "u16" } }
state = { table = "holding", address = 10, type = "i16", running = [1], planned_stop = [2], unplanned_stop = [-3] }

[[machine]]
id = "press-02"
line = "line-a"
plc = "plc-a"
ideal_cycle_time = "5s"
counters.produced = { table = "input", address = 0, type = "u16" }
"#;

/// One poll of both machines: `None` for a failed poll, else press-01's produced, defective, scratch
/// and state, and press-02's produced.
type Poll = Option<(u64, u64, u64, i64, u64)>;

/// 2026-11-27T09:00:00Z.
const EQUIVALENCE_T0: i64 = 1_795_770_000_000;

/// Polls 50..62 fail and 62..70 never happen (the agent was not polling): 200 s without a good poll.
fn equivalence_polls() -> Vec<(i64, Poll)> {
    let (mut produced, mut defective, mut scratch, mut other) =
        (4_000_000_000u64, 7u64, 3u64, 65_500u64);
    (0..90)
        .filter_map(|i: i64| {
            let at = EQUIVALENCE_T0 + i * 10_000;
            produced += ((i * 7) % 5) as u64;
            if i == 75 {
                produced = 5; // the counter was reset
            }
            if i % 13 == 0 {
                defective += 1;
                scratch += 1;
            }
            if !(30..45).contains(&i) {
                other = (other + (i % 3) as u64) % 65_536; // wraps past 65535
            }
            let state = match i {
                20..26 => -3,
                40..45 => 2,
                _ => 1,
            };
            let poll =
                (!(50..62).contains(&i)).then_some((produced, defective, scratch, state, other));
            (!(62..70).contains(&i)).then_some((at, poll))
        })
        .collect()
}

fn equivalence_csv(polls: &[(i64, Poll)]) -> String {
    let mut csv = String::from("utc,machine,produced,defective,state,scratch\n");
    for (at, poll) in polls {
        let utc = jiff::Timestamp::from_millisecond(*at).unwrap();
        match poll {
            Some((produced, defective, scratch, state, other)) => {
                csv.push_str(&format!(
                    "{utc},press-01,{produced},{defective},{state},{scratch}\n"
                ));
                csv.push_str(&format!("{utc},press-02,{other},,,\n"));
            }
            None => {
                csv.push_str(&format!("{utc},press-01,,,,\n"));
                csv.push_str(&format!("{utc},press-02,,,,\n"));
            }
        }
    }
    csv
}

/// The processor's clock: fixed; it only takes its monotonic origin from it.
#[derive(Debug)]
struct FixedClock(shopfloor_agent::clock::Now);

impl shopfloor_agent::clock::Clock for FixedClock {
    fn now(&self) -> shopfloor_agent::clock::Now {
        self.0
    }
}

/// The rollups the store-backed processor commits for `polls`, driven as the run loop drives it: one
/// sample per poll of the PLC, windows due closed before and after each sample, a commit per cycle
/// (which evicts settled windows, so restatements read them back from the SQLite file). Also returns
/// how many window records were read back.
async fn store_backed_rollups(config: Arc<Config>, polls: &[(i64, Poll)]) -> (Vec<Value>, usize) {
    use shopfloor_agent::poller::{ReadPlan, Sample, TagError};
    use shopfloor_agent::processor::Processor;
    use shopfloor_agent::replay::encode::encode;
    use shopfloor_agent::store::{Store, StoreHandle, StoreOptions};

    let dir = tempfile::tempdir().unwrap();
    let store = StoreHandle::spawn(
        Store::open(&dir.path().join("agent.db"), &StoreOptions::default()).unwrap(),
    );
    let plan = ReadPlan::for_plc(&config, 0);
    let mono_origin = std::time::Instant::now();
    let clock = Arc::new(FixedClock(shopfloor_agent::clock::Now {
        mono: mono_origin,
        utc: EQUIVALENCE_T0,
    }));
    let identity = shopfloor_agent::supervisor::identity(&config);
    let mut processor = Processor::new(
        Arc::clone(&config),
        identity,
        std::slice::from_ref(&plan),
        &store,
        clock,
    )
    .await
    .unwrap();
    let (press_01, press_02) = (&config.machines[0], &config.machines[1]);
    let mut loaded = 0;
    for (seq, (at, poll)) in polls.iter().enumerate() {
        let mut readings =
            vec![Err(TagError::Transport("connection refused".into())); plan.tags.len()];
        if let Some((produced, defective, scratch, state, other)) = poll {
            let values = [
                (press_01.produced.tag, produced.to_string()),
                (
                    press_01.defective.as_ref().unwrap().tag,
                    defective.to_string(),
                ),
                (press_01.defect_reasons[0].1.tag, scratch.to_string()),
                (press_01.state.as_ref().unwrap().tag, state.to_string()),
                (press_02.produced.tag, other.to_string()),
            ];
            for (tag, text) in values {
                readings[plan.index_of(&tag).unwrap()] = Ok(encode(&text, &tag).unwrap());
            }
        }
        let sample = Sample {
            plc: 0,
            seq: seq as u64 + 1,
            mono: mono_origin + std::time::Duration::from_millis((at - EQUIVALENCE_T0) as u64),
            utc: *at,
            readings,
            events: Vec::new(),
        };
        processor.close_due(*at);
        processor.on_sample(&sample);
        loaded += processor.load_deferred(&store).await.unwrap();
        processor.close_due(*at);
        processor.commit(&store, *at).await.unwrap();
    }
    let last = polls.last().unwrap().0;
    processor.close_ended(last);
    processor.commit(&store, last).await.unwrap();
    let rows = store
        .call(|s| s.unacked(0, 100_000))
        .await
        .unwrap()
        .unwrap();
    let rollups = rows
        .iter()
        .map(|row| serde_json::from_slice::<Value>(&row.payload).unwrap())
        .filter(|body| body["schema"] == "shopfloor.rollup/1")
        .collect();
    (rollups, loaded)
}

/// A rollup without what its store adds (`seq`, `db_epoch`).
fn content(mut rollup: Value) -> Value {
    let object = rollup.as_object_mut().unwrap();
    object.remove("seq");
    object.remove("db_epoch");
    rollup
}

#[tokio::test(flavor = "current_thread")]
async fn given_the_same_polls_when_replayed_and_run_through_the_store_then_the_rollups_are_equal() {
    // Given two machines on one PLC with stops, failed polls then none (restating closed windows), a
    // counter reset and a wrap, as CSV lines and as the samples a poller would send.
    let config =
        Arc::new(Config::from_toml(EQUIVALENCE_CONFIG, "equivalence.toml", false).unwrap());
    let polls = equivalence_polls();
    let csv = equivalence_csv(&polls);

    // When they are replayed, and run through a processor committing to a real SQLite store.
    let mut printed = Vec::new();
    let summary =
        shopfloor_agent::replay::replay(Arc::clone(&config), csv.as_bytes(), &mut printed).unwrap();
    let replayed: Vec<Value> = String::from_utf8(printed)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let (stored, loaded) = store_backed_rollups(Arc::clone(&config), &polls).await;

    // Then both give the same rollups in the same order (restatements included), apart from what the
    // store adds.
    assert_eq!(summary.records, 2 * 82);
    assert!(
        loaded > 0,
        "the restated windows were read back from the store"
    );
    assert!(
        replayed.iter().any(|r| r["status"] == "restated"),
        "the outage restates closed windows"
    );
    assert!(replayed
        .iter()
        .any(|r| r["flags"].as_array().unwrap().contains(&"gap".into())));
    assert!(replayed
        .iter()
        .any(|r| r["flags"].as_array().unwrap().contains(&"reset".into())));
    assert!(replayed
        .iter()
        .any(|r| r["flags"].as_array().unwrap().contains(&"wrap".into())));
    assert_eq!(replayed.len(), stored.len());
    let replayed: Vec<Value> = replayed.into_iter().map(content).collect();
    let stored: Vec<Value> = stored.into_iter().map(content).collect();
    assert_eq!(replayed, stored);
}

/// The rollup of `machine` for the window of `period` starting at `start`.
fn window<'a>(rollups: &'a [Value], machine: &str, period: &str, start: &str) -> &'a Value {
    rollups
        .iter()
        .find(|r| {
            r["machine"] == machine
                && r["window"]["period"] == period
                && r["window"]["start"] == start
        })
        .unwrap_or_else(|| panic!("no {period} window of {machine} at {start}"))
}

const MINUTE_MS: i64 = 60_000;

#[test]
fn given_a_night_shift_across_midnight_with_a_break_when_replayed_then_the_break_is_out_of_plan() {
    // Given a night shift 22:00-06:00 (production date 2026-11-26) with a break 02:00-02:30, polls
    // every 15 min from 21:00 to 07:00, 1 unit per running minute, ideal cycle time 1 min.
    // press-01 runs 21:30-06:30, through the break; press-02 runs 22:00-06:00 but stops (planned)
    // exactly at the break's start and runs again exactly at its end.
    // When it is replayed.
    let rollups = replay_golden("night_shift");

    // Then by hand, the shift window [22:00, 06:00): in plan 480 - 30 = 450 min, all running for both;
    // the break's 30 min are out of plan whatever the state.
    for machine in ["press-01", "press-02"] {
        let shift = window(&rollups, machine, "shift", "2026-11-26T22:00:00+00:00");
        assert_eq!(shift["window"]["end"], "2026-11-27T06:00:00+00:00");
        assert_eq!(shift["window"]["shift"], "night");
        assert_eq!(shift["window"]["production_date"], "2026-11-26");
        assert_eq!(shift["times_ms"]["running"], 450 * MINUTE_MS, "{machine}");
        assert_eq!(shift["times_ms"]["planned_stop"], 0, "{machine}");
        assert_eq!(shift["times_ms"]["planned"], 450 * MINUTE_MS, "{machine}");
        assert_eq!(
            shift["times_ms"]["out_of_plan"],
            30 * MINUTE_MS,
            "{machine}"
        );
        assert_eq!(shift["counts"]["produced"], 450, "{machine}");
        close(&shift["kpi"]["availability"], 1.0);
        close(&shift["kpi"]["performance"], 1.0);
    }
    // press-01 produced 30 units in the break (out of plan); press-02 none.
    let shift_01 = window(&rollups, "press-01", "shift", "2026-11-26T22:00:00+00:00");
    assert_eq!(shift_01["out_of_plan"]["produced"], 30);
    let shift_02 = window(&rollups, "press-02", "shift", "2026-11-26T22:00:00+00:00");
    assert_eq!(shift_02["out_of_plan"]["produced"], 0);

    // The hour 02:00-03:00 holds the break boundary: 30 min out of plan, 30 min running in plan; for
    // press-02 the state change at 02:30 falls on the boundary, so no in-plan planned stop.
    for (machine, out_of_plan_produced) in [("press-01", 30), ("press-02", 0)] {
        let hour = window(&rollups, machine, "1h", "2026-11-27T02:00:00+00:00");
        assert_eq!(hour["window"]["shift"], "night");
        assert_eq!(hour["window"]["production_date"], "2026-11-26");
        assert_eq!(hour["times_ms"]["running"], 30 * MINUTE_MS, "{machine}");
        assert_eq!(hour["times_ms"]["planned_stop"], 0, "{machine}");
        assert_eq!(hour["times_ms"]["out_of_plan"], 30 * MINUTE_MS, "{machine}");
        assert_eq!(hour["counts"]["produced"], 30, "{machine}");
        assert_eq!(
            hour["out_of_plan"]["produced"], out_of_plan_produced,
            "{machine}"
        );
    }
    // The hour 21:00-22:00 is before the shift: all out of plan, in no shift; press-01's 30 units
    // (21:30-22:00) are out-of-plan production.
    let before = window(&rollups, "press-01", "1h", "2026-11-26T21:00:00+00:00");
    assert!(before["window"].get("shift").is_none(), "{before}");
    assert_eq!(before["times_ms"]["out_of_plan"], 60 * MINUTE_MS);
    assert_eq!(before["times_ms"]["planned"], 0);
    assert_eq!(before["counts"]["produced"], 0);
    assert_eq!(before["out_of_plan"]["produced"], 30);
    // The hour after midnight belongs to the shift of the day before.
    let after_midnight = window(&rollups, "press-02", "1h", "2026-11-27T00:00:00+00:00");
    assert_eq!(after_midnight["window"]["production_date"], "2026-11-26");
    assert_eq!(after_midnight["counts"]["produced"], 60);
    // 10 hourly windows and one shift window per machine.
    assert_eq!(rollups.len(), 2 * 11);
}

const DAY_CONFIG: &str = r#"
# Two shifts with breaks; the day before is a day off, so its night shift (ending 06:00) is not worked.
[agent]
site = "acme"
gateway = "gw-01"
timezone = "UTC"
data_dir = "/nonexistent/replay-opens-no-store"
periods = ["shift", "day"]

[calendar]
shifts = [
  { name = "early", start = "06:00", duration = "8h", breaks = [{ start = "10:00", duration = "30m" }] },
  { name = "night", start = "22:00", duration = "8h", breaks = [{ start = "02:00", duration = "30m" }] },
]
days_off = ["2026-11-26"]

[[plc]]
id = "plc-a"
address = "127.0.0.1:502"
poll_interval = "1m"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
ideal_cycle_time = "1m"
counters.produced = { table = "holding", address = 0, type = "u32" }
counters.defective = { table = "holding", address = 2, type = "u16" }
state = { table = "holding", address = 10, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }
"#;

/// The machine's state in minute `m` of 2026-11-27 (UTC): overtime 05:00-06:00 on the day off's night
/// shift; the early shift with its break, an unplanned stop 08:00-08:45 and a changeover 12:00-12:20;
/// idle until the night shift starts at 22:00.
fn day_state(m: u32) -> u16 {
    const RUNNING: u16 = 1;
    const PLANNED_STOP: u16 = 2;
    const UNPLANNED_STOP: u16 = 3;
    match m {
        300..360 => RUNNING,
        600..630 | 720..740 => PLANNED_STOP,
        480..525 => UNPLANNED_STOP,
        360..840 => RUNNING,
        1320.. => RUNNING,
        _ => PLANNED_STOP,
    }
}

#[test]
fn given_a_24_hour_run_with_two_shifts_breaks_and_a_day_off_when_replayed_then_shift_and_day_match_the_hand_calculation(
) {
    // Given one poll a minute over 2026-11-27 00:00 → 2026-11-28 00:00 (1441 polls, generated): one
    // unit per running minute (the counter at minute m counts the running minutes before m), a
    // defective unit in every running minute that is a multiple of 20.
    let dir = tempfile::tempdir().unwrap();
    let (mut produced, mut defective) = (0u32, 0u32);
    let mut csv = String::from("utc,machine,produced,defective,state\n");
    let day = jiff::Timestamp::from_millisecond(1_795_737_600_000).unwrap(); // 2026-11-27T00:00Z
    for m in 0..=1440u32 {
        if m > 0 && day_state(m - 1) == 1 {
            produced += 1;
            if (m - 1) % 20 == 0 {
                defective += 1;
            }
        }
        let at = day + jiff::SignedDuration::from_mins(i64::from(m));
        csv.push_str(&format!(
            "{at},press-01,{produced},{defective},{}\n",
            day_state(m)
        ));
    }
    let config = dir.path().join("day.toml");
    let samples = dir.path().join("day.csv");
    std::fs::write(&config, DAY_CONFIG).unwrap();
    std::fs::write(&samples, csv).unwrap();

    // When it is replayed.
    let rollups = rollups_of(&run_replay(&config, &samples, None));

    // Then two rollups close by 2026-11-28 00:00: the early shift and the day (the night shift of the
    // 27th ends on the 28th at 06:00; the night shift of the 26th is not worked: a day off).
    assert_eq!(rollups.len(), 2, "{rollups:#?}");

    // The early shift [06:00, 14:00), break 10:00-10:30 (out of plan). In plan: unplanned stop 45 min,
    // changeover 20 min, running 480 - 30 - 45 - 20 = 385 min; PBT = 385 + 45 = 430 min.
    // Defective: multiples of 20 in [360, 840) are 24; less 600, 620 (break), 480, 500, 520 (stop),
    // 720 (changeover) = 18. Availability 385/430, performance 385 x 1 min / 385 min = 1,
    // quality 367/385, OEE 367/430.
    let early = window(&rollups, "press-01", "shift", "2026-11-27T06:00:00+00:00");
    assert_eq!(early["window"]["shift"], "early");
    assert_eq!(early["window"]["production_date"], "2026-11-27");
    assert_eq!(early["times_ms"]["running"], 385 * MINUTE_MS);
    assert_eq!(early["times_ms"]["unplanned_stop"], 45 * MINUTE_MS);
    assert_eq!(early["times_ms"]["planned_stop"], 20 * MINUTE_MS);
    assert_eq!(early["times_ms"]["planned"], 430 * MINUTE_MS);
    assert_eq!(early["times_ms"]["out_of_plan"], 30 * MINUTE_MS);
    assert_eq!(early["counts"]["produced"], 385);
    assert_eq!(early["counts"]["defective"], 18);
    assert_eq!(early["out_of_plan"]["produced"], 0);
    close(&early["kpi"]["availability"], 385.0 / 430.0);
    close(&early["kpi"]["performance"], 1.0);
    close(&early["kpi"]["quality"], 367.0 / 385.0);
    close(&early["kpi"]["oee"], 367.0 / 430.0);

    // The day [27th 00:00, 28th 00:00). In plan: the early shift (450 min) and the night shift's first
    // 120 min (22:00-24:00, running) = 570 min; out of plan 1440 - 570 = 870 min (00:00-06:00 of the
    // day off's night shift, the break, 14:00-22:00). Running 385 + 120 = 505, PBT 505 + 45 = 550.
    // Out of plan the machine ran 05:00-06:00: 60 units, of which 300, 320, 340 defective.
    // Defective in plan 18 + 6 (1320..1420) = 24: quality 481/505, OEE 505/550 x 1 x 481/505 = 481/550.
    let day = window(&rollups, "press-01", "day", "2026-11-27T00:00:00+00:00");
    assert_eq!(day["window"]["end"], "2026-11-28T00:00:00+00:00");
    assert_eq!(day["window"]["production_date"], "2026-11-27");
    assert_eq!(day["times_ms"]["running"], 505 * MINUTE_MS);
    assert_eq!(day["times_ms"]["unplanned_stop"], 45 * MINUTE_MS);
    assert_eq!(day["times_ms"]["planned_stop"], 20 * MINUTE_MS);
    assert_eq!(day["times_ms"]["planned"], 550 * MINUTE_MS);
    assert_eq!(day["times_ms"]["out_of_plan"], 870 * MINUTE_MS);
    assert_eq!(day["counts"]["produced"], 505);
    assert_eq!(day["counts"]["defective"], 24);
    assert_eq!(day["out_of_plan"]["produced"], 60);
    assert_eq!(day["out_of_plan"]["good"], 57);
    close(&day["kpi"]["availability"], 505.0 / 550.0);
    close(&day["kpi"]["quality"], 481.0 / 505.0);
    close(&day["kpi"]["oee"], 481.0 / 550.0);
}
