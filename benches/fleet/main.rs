//! The fleet benchmark: the agent against the floor (a bare client doing the same work) on one simulated fleet
//! and one Mosquitto, in one run. Prints one table per scenario; asserts nothing (README, "Performance").
//!
//! ```text
//! cargo bench --bench fleet                                  # every scenario at full size (about N minutes)
//! cargo bench --bench fleet -- --scenarios S0,S2 --duration 30
//! cargo bench --profile dev --bench fleet -- --scale smoke   # seconds: what CI runs so it cannot rot
//! ```
//!
//! Every party is its own process so that its CPU, memory and disk figures are its own: the fleet simulator and
//! the floors are this binary started again with `--role NAME`, the agent is the release `shopfloor-agent`
//! built with this benchmark, the broker is Mosquitto. Layout: `measure` (/proc figures), `report` (tables),
//! `agent` (the agent process, its configuration and `/metrics`), `poll` (fleet simulator, polling floor,
//! S0–S3), `uplink` (publishing floor, outbox scenarios S4–S6).

// A benchmark binary: `pub` marks what its modules offer one another, there is no public API to keep small.
#![allow(unreachable_pub)]

mod agent;
mod measure;
mod poll;
mod report;
mod subscriber;
mod uplink;

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context as _;

/// One scenario of the benchmark (README, "Performance", says what each one measures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// Medium: 10 PLCs x 32 registers at 200 ms.
    S0,
    /// Steady, large: 200 PLCs x 1 machine at 1 s.
    S1,
    /// Fast: 20 PLCs at 50 ms.
    S2,
    /// Ceiling: the highest poll rate held without schedule lag.
    S3,
    /// Drain: a full outbox meets a returning broker.
    S4,
    /// Recovery: SIGKILL with a full outbox, then restart.
    S5,
    /// Reconnect: broker outages of several lengths.
    S6,
}

impl Scenario {
    const ALL: [Scenario; 7] = [
        Scenario::S0,
        Scenario::S1,
        Scenario::S2,
        Scenario::S3,
        Scenario::S4,
        Scenario::S5,
        Scenario::S6,
    ];

    fn parse(text: &str) -> anyhow::Result<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|s| format!("{s:?}").eq_ignore_ascii_case(text.trim()))
            .with_context(|| format!("unknown scenario {text:?}; expected S0 to S6"))
    }
}

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// The sizes and durations the budgets are stated for.
    Full,
    /// Tiny sizes, seconds per scenario: checks that every scenario still runs end to end.
    Smoke,
}

/// The command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which scenarios, in order.
    pub scenarios: Vec<Scenario>,
    /// Full or smoke sizes.
    pub scale: Scale,
    /// Overrides the measured duration of the steady scenarios (S0–S3).
    pub duration: Option<Duration>,
    /// Overrides the number of PLCs of S0–S3.
    pub plcs: Option<usize>,
    /// Overrides the outbox size of S4 and S5.
    pub rows: Option<u64>,
    /// Overrides the number of outage runs per length in S6.
    pub runs: Option<usize>,
    /// Overrides the agent's `agent.poll_schedule` in S0–S2 (S3 climbs with both).
    pub poll_schedule: Option<shopfloor_agent::config::PollSchedule>,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut options = Options {
            scenarios: Scenario::ALL.to_vec(),
            scale: Scale::Full,
            duration: None,
            plcs: None,
            rows: None,
            runs: None,
            poll_schedule: None,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .with_context(|| format!("{flag} needs a value"))
                    .cloned()
            };
            match flag.as_str() {
                "--scenarios" => {
                    options.scenarios = value()?
                        .split(',')
                        .map(Scenario::parse)
                        .collect::<anyhow::Result<_>>()?
                }
                "--scale" => {
                    options.scale = match value()?.as_str() {
                        "full" => Scale::Full,
                        "smoke" => Scale::Smoke,
                        other => anyhow::bail!("--scale {other:?}: expected full or smoke"),
                    }
                }
                "--duration" => {
                    options.duration = Some(Duration::from_secs(value()?.parse()?));
                }
                "--plcs" => options.plcs = Some(value()?.parse()?),
                "--rows" => options.rows = Some(value()?.parse()?),
                "--runs" => options.runs = Some(value()?.parse()?),
                "--poll-schedule" => {
                    let name = value()?;
                    let schedule = shopfloor_agent::config::PollSchedule::ALL
                        .iter()
                        .find(|(known, _)| *known == name)
                        .map(|(_, schedule)| *schedule);
                    options.poll_schedule = Some(schedule.with_context(|| {
                        format!("--poll-schedule {name:?}: expected aligned or spread")
                    })?);
                }
                // `cargo bench` passes `--bench`; a filter word would name a scenario.
                "--bench" => {}
                other => anyhow::bail!(
                    "unknown argument {other:?}; usage: [--scale full|smoke] [--scenarios S0,S1,..] \
                     [--duration SECS] [--plcs N] [--rows N] [--runs N] [--poll-schedule aligned|spread]"
                ),
            }
        }
        Ok(options)
    }
}

/// Starts this benchmark binary again in role `role` with `args`; its stdout is piped to the caller, its
/// stderr inherited.
pub fn spawn_role(role: &str, args: &[String]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find the benchmark's own executable")?;
    Command::new(exe)
        .arg("--role")
        .arg(role)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start the {role} role"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = if args.first().map(String::as_str) == Some("--role") {
        run_role(&args[1..])
    } else {
        Options::parse(&args).and_then(|options| run(&options))
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fleet benchmark: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A child process's work: the fleet simulator or a floor.
fn run_role(args: &[String]) -> anyhow::Result<()> {
    let (role, rest) = args.split_first().context("--role needs a name")?;
    if let Some(outcome) = poll::run_role(role, rest) {
        return outcome;
    }
    if let Some(outcome) = uplink::run_role(role, rest) {
        return outcome;
    }
    anyhow::bail!("unknown role {role:?}")
}

fn run(options: &Options) -> anyhow::Result<()> {
    println!(
        "fleet benchmark: scale {:?}, scenarios {:?}; machine: {}; agent: {}",
        options.scale,
        options.scenarios,
        machine_description(),
        agent::agent_binary().display()
    );
    for scenario in &options.scenarios {
        let tables = match scenario {
            Scenario::S0 | Scenario::S1 | Scenario::S2 | Scenario::S3 => {
                poll::run(*scenario, options)
            }
            Scenario::S4 | Scenario::S5 | Scenario::S6 => uplink::run(*scenario, options),
        }
        .with_context(|| format!("scenario {scenario:?}"))?;
        for table in tables {
            table.print();
        }
    }
    Ok(())
}

/// CPU model and count, memory, and the kernel: the figures mean little without them.
fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or("? GiB".to_string(), |kib| {
            format!("{} GiB", kib / 1024 / 1024)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cores} cores, {memory}, Linux {}", kernel.trim())
}
