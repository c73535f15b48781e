//! `[calendar]` and `agent.unknown_time` from TOML: typed when sound, every problem with its path.

use jiff::civil::date;
use jiff::Timestamp;

use crate::config::{Config, ConfigError, Problem};
use crate::logic::calendar::{PlanSegment, UnknownTime};

/// A valid file in Asia/Seoul; `agent` lines go into `[agent]`, `tail` after everything.
fn config_text(agent: &str, tail: &str) -> String {
    format!(
        r#"
[agent]
site = "acme"
gateway = "gw-01"
timezone = "Asia/Seoul"
data_dir = "/tmp/x"
{agent}

[[plc]]
id = "plc-a"
address = "127.0.0.1:502"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
counters.produced = {{ address = 100, type = "u32" }}

{tail}
"#
    )
}

fn load(text: &str) -> Config {
    Config::from_toml(text, "test.toml", false).unwrap()
}

fn problems(text: &str) -> Vec<Problem> {
    match Config::from_toml(text, "test.toml", false) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected validation problems, got {other}"),
        Ok(_) => panic!("expected validation problems, got a valid config"),
    }
}

fn paths(text: &str) -> Vec<String> {
    problems(text).into_iter().map(|p| p.path).collect()
}

fn ms(text: &str) -> i64 {
    text.parse::<Timestamp>().unwrap().as_millisecond()
}

#[test]
fn without_a_calendar_all_time_is_planned_and_unknown_time_is_a_loss() {
    let config = load(&config_text("", ""));
    assert!(!config.calendar.is_configured());
    assert_eq!(config.calendar.timezone(), &config.agent.timezone);
    assert_eq!(config.agent.unknown_time, UnknownTime::Loss);
}

#[test]
fn a_calendar_is_read_in_the_agent_time_zone() {
    let config = load(&config_text(
        "unknown_time = \"exclude\"",
        r#"
[calendar]
shifts = [
  { name = "day", start = "07:00", duration = "12h", breaks = [{ start = "12:00", duration = "45m" }] },
  { name = "night", start = "19:00", duration = "12h", breaks = [{ start = "00:00", duration = "30m" }] },
]
days_off = ["2026-12-25"]
"#,
    ));
    assert_eq!(config.agent.unknown_time, UnknownTime::Exclude);
    let calendar = &config.calendar;
    assert!(calendar.is_configured());
    // 19:00 KST is 10:00Z; the night shift's break is at 00:00 KST of the next day, 15:00Z.
    let night = calendar.shift_at(ms("2026-06-10T12:00:00Z")).unwrap();
    assert_eq!(
        (night.name.as_str(), night.start),
        ("night", ms("2026-06-10T10:00:00Z"))
    );
    assert_eq!(night.production_date, date(2026, 6, 10));
    let segments = calendar.plan_segments(ms("2026-06-10T14:00:00Z"), ms("2026-06-10T16:00:00Z"));
    assert_eq!(
        segments[1],
        PlanSegment {
            start: ms("2026-06-10T15:00:00Z"),
            end: ms("2026-06-10T15:30:00Z"),
            in_plan: false
        }
    );
    assert!(calendar.shift_at(ms("2026-12-25T03:00:00Z")).is_none());
}

#[test]
fn shifts_may_be_written_as_an_array_of_tables() {
    let config = load(&config_text(
        "",
        r#"
[[calendar.shifts]]
name = "early"
start = "06:00"
duration = "8h"

[[calendar.shifts.breaks]]
start = "09:00"
duration = "15m"
"#,
    ));
    let early = config
        .calendar
        .shift_at(ms("2026-06-10T00:00:00Z"))
        .unwrap();
    assert_eq!(early.end - early.start, 8 * 3_600_000);
}

#[test]
fn syntax_problems_are_reported_with_their_paths() {
    let found = paths(&config_text(
        "unknown_time = \"ignore\"",
        r#"
[calendar]
shifts = [
  { name = "day", start = "7:00", duration = "soon", colour = "red" },
  { name = "late", start = "24:00", duration = "8h", breaks = [{ start = "18:60", duration = "1h" }] },
]
days_off = ["2026-13-01", "24.12.2026", "2026-12-24"]
"#,
    ));
    for expected in [
        "agent.unknown_time",
        "calendar.shifts[0].colour",
        "calendar.shifts[0].start",
        "calendar.shifts[0].duration",
        "calendar.shifts[1].start",
        "calendar.shifts[1].breaks[0].start",
        "calendar.days_off[0]",
        "calendar.days_off[1]",
    ] {
        assert!(
            found.iter().any(|p| p == expected),
            "{expected} not in {found:?}"
        );
    }
    assert_eq!(found.len(), 8, "{found:?}");
}

#[test]
fn shape_problems_are_reported_with_their_paths() {
    let found = problems(&config_text(
        "",
        r#"
[calendar]
shifts = [
  { name = "day", start = "06:00", duration = "12h", breaks = [
      { start = "17:30", duration = "1h" },
      { start = "08:00", duration = "13h" },
      { start = "10:00", duration = "1h" },
      { start = "10:30", duration = "1h" },
  ] },
  { name = "night", start = "17:00", duration = "14h" },
  { name = "day", start = "20:00", duration = "25h" },
  { name = "zero", start = "05:00", duration = "0s" },
]
days_off = ["2026-12-24", "2026-12-24"]
"#,
    ));
    let found: Vec<(String, String)> = found.into_iter().map(|p| (p.path, p.message)).collect();
    for (path, words) in [
        ("calendar.shifts[0].breaks[0]", "not wholly inside"),
        (
            "calendar.shifts[0].breaks[1].duration",
            "longer than its shift",
        ),
        (
            "calendar.shifts[0].breaks[3]",
            "overlaps breaks[2] of the same shift",
        ),
        ("calendar.shifts[1]", "overlaps shift \"day\""),
        ("calendar.shifts[2].name", "duplicate"),
        ("calendar.shifts[2].duration", "at most 24h"),
        ("calendar.shifts[3].duration", "longer than 0"),
        ("calendar.days_off[1]", "duplicate day off"),
    ] {
        assert!(
            found.iter().any(|(p, m)| p == path && m.contains(words)),
            "{path}: {words} not in {found:?}"
        );
    }
}

#[test]
fn the_calendar_is_checked_even_when_the_time_zone_is_unknown() {
    let text = config_text(
        "",
        r#"
[calendar]
shifts = [{ name = "day", start = "06:00", duration = "25h" }]
"#,
    )
    .replace("Asia/Seoul", "Mars/Olympus");
    let found = paths(&text);
    assert!(found.iter().any(|p| p == "agent.timezone"), "{found:?}");
    assert!(
        found.iter().any(|p| p == "calendar.shifts[0].duration"),
        "{found:?}"
    );
}
