//! The polling side: the fleet simulator role, the polling floor role, and scenarios S0–S3.
//!
//! Per scenario: Mosquitto, the fleet simulator (`fleet-sim`, its own process) and a bench subscriber on the
//! rollup topics start once; then the floor (`poll-floor`: a bare tokio-modbus client per PLC doing the
//! agent's read plan at the agent's schedule) runs alone, then the agent alone on the same fleet and broker,
//! never both at once, each measured after a warm-up. S3 steps the load up, for each side on its own, until
//! it no longer holds its schedule; the agent climbs twice, with `agent.poll_schedule` "aligned" and "spread".

mod roles;
mod rollups;

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use shopfloor_agent::broker::Broker;
use shopfloor_agent::config::{Config, PollSchedule};
use shopfloor_agent::logic::decode::Table as RegisterTable;
use shopfloor_agent::poller::ReadPlan;

use crate::agent::{AgentProcess, FleetConfig, Metrics};
use crate::measure::{quantile, Usage};
use crate::report::Table;
use crate::{spawn_role, Options, Scale, Scenario};
use rollups::RollupSubscriber;

/// Buckets of the floor's lag histogram: eight per doubling from 1 µs, the last one open (about 30 s up).
pub const LAG_BUCKETS: usize = 200;

/// Poll cycles the agent counts (one per PLC cycle, failed or not).
const AGENT_POLLS: &str = "shopfloor_polls_total";
/// The agent's failed requests and connection attempts.
const AGENT_POLL_ERRORS: &str = "shopfloor_poll_errors_total";
/// The agent's schedule lag histogram (start minus scheduled tick).
const AGENT_LAG: &str = "shopfloor_poll_lag_seconds";
/// Ticks the agent skipped because a cycle overran.
const AGENT_SKIPPED: &str = "shopfloor_poll_ticks_skipped_total";
/// The agent's store transactions.
const AGENT_COMMITS: &str = "shopfloor_store_commits_total";
/// Outbox rows the agent handed to the broker.
const AGENT_PUBLISHES: &str = "shopfloor_publishes_total";

/// Runs the child role `role` if it is one of this module's.
pub fn run_role(role: &str, args: &[String]) -> Option<anyhow::Result<()>> {
    roles::run(role, args)
}

/// Runs one of S0–S3 and returns its tables.
pub fn run(scenario: Scenario, options: &Options) -> anyhow::Result<Vec<Table>> {
    match scenario {
        Scenario::S0 | Scenario::S1 | Scenario::S2 => {
            let workload = Workload::of(scenario, options)?;
            steady(scenario, &workload).map(|table| vec![table])
        }
        Scenario::S3 => ceiling(options).map(|table| vec![table]),
        other => anyhow::bail!("{other:?} is not a polling scenario"),
    }
}

/// One read of the floor's plan, as the agent's read plan has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Unit id.
    pub unit_id: u8,
    /// Function code: 1 coils, 2 discrete inputs, 3 holding, 4 input registers.
    pub function: u8,
    /// First address.
    pub start: u16,
    /// Registers or bits.
    pub count: u16,
}

impl Read {
    /// Parses `UNIT:FC:START:COUNT`.
    pub fn parse(text: &str) -> anyhow::Result<Read> {
        let parts: Vec<&str> = text.split(':').collect();
        let [unit_id, function, start, count] = parts[..] else {
            anyhow::bail!("a read is UNIT:FC:START:COUNT, not {text:?}");
        };
        Ok(Read {
            unit_id: unit_id.parse()?,
            function: function.parse()?,
            start: start.parse()?,
            count: count.parse()?,
        })
    }

    fn text(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.unit_id, self.function, self.start, self.count
        )
    }
}

/// The floor's cumulative counters, one JSON line every 250 ms on its stdout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FloorStatus {
    /// Poll cycles run (every PLC's reads once).
    pub polls: u64,
    /// Register (or bit) values received.
    pub values: u64,
    /// Failed requests and connection attempts.
    pub errors: u64,
    /// Ticks missed because a cycle overran the next one.
    pub skipped: u64,
    /// Lag histogram: counts per bucket (`roles::lag_bucket`).
    pub lag: Vec<u64>,
}

impl FloorStatus {
    fn minus(&self, earlier: &FloorStatus) -> FloorStatus {
        FloorStatus {
            polls: self.polls.saturating_sub(earlier.polls),
            values: self.values.saturating_sub(earlier.values),
            errors: self.errors.saturating_sub(earlier.errors),
            skipped: self.skipped.saturating_sub(earlier.skipped),
            lag: self
                .lag
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.lag.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    /// The `q` quantile of the lag, seconds (the upper bound of its bucket); `None` without polls.
    fn lag_quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.lag.iter().sum();
        if total == 0 {
            return None;
        }
        let target = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.lag.iter().enumerate() {
            seen += count;
            if seen >= target {
                return Some(roles::lag_bucket_upper(index));
            }
        }
        None
    }
}

/// The size and timing of one measured run.
#[derive(Debug, Clone)]
struct Workload {
    plcs: usize,
    machines: u8,
    interval: Duration,
    warmup: Duration,
    measure: Duration,
    /// The rollup period whose close → delivered latency is measured (and whose grace is set).
    period: &'static str,
    /// Every rollup period of the agent, as TOML: the measured one alone, or the agent's defaults (S1).
    periods: &'static str,
    grace: Duration,
    /// The agent's `agent.poll_schedule` (the floor always polls on the multiples of the interval).
    schedule: PollSchedule,
}

impl Workload {
    fn of(scenario: Scenario, options: &Options) -> anyhow::Result<Workload> {
        let smoke = options.scale == Scale::Smoke;
        let (plcs, machines, interval_ms, full_secs) = match scenario {
            // A machine's block is 21 registers (one read); two per PLC read 42, at least the 32 of the budget.
            Scenario::S0 => (10, 2, 200, 60),
            Scenario::S1 => (200, 1, 1000, 300),
            Scenario::S2 => (20, 1, 50, 60),
            other => anyhow::bail!("{other:?} has no steady workload"),
        };
        let mut workload = Workload {
            plcs: if smoke { 2 } else { plcs },
            machines,
            interval: Duration::from_millis(interval_ms),
            warmup: Duration::from_millis(if smoke { 500 } else { 5000 }),
            measure: Duration::from_secs(if smoke { 2 } else { full_secs }),
            period: if smoke { "1s" } else { "10s" },
            periods: if smoke { r#"["1s"]"# } else { r#"["10s"]"# },
            grace: Duration::from_millis(if smoke { 100 } else { 1000 }),
            schedule: options.poll_schedule.unwrap_or_default(),
        };
        if scenario == Scenario::S1 && !smoke {
            // The steady production case: the agent's default periods, whose disk writes the budget is about.
            workload.period = "1m";
            workload.periods = r#"["1m", "15m", "1h"]"#;
        }
        if let Some(plcs) = options.plcs {
            workload.plcs = plcs;
        }
        if let Some(duration) = options.duration {
            workload.measure = duration;
        }
        Ok(workload)
    }

    /// Polls per second the schedule asks for.
    fn scheduled_rate(&self) -> f64 {
        self.plcs as f64 / self.interval.as_secs_f64()
    }

    fn describe(&self, registers_per_poll: u64, reads_per_poll: usize) -> String {
        format!(
            "{} PLCs x {} machine(s) ({} read(s), {} holding registers per poll) every {}; {} measured per \
             side after {} warm-up; periods {} (latency of the first), grace {}; scheduled {:.0} polls/s",
            self.plcs,
            self.machines,
            reads_per_poll,
            registers_per_poll,
            humantime::format_duration(self.interval),
            humantime::format_duration(self.measure),
            humantime::format_duration(self.warmup),
            self.periods,
            humantime::format_duration(self.grace),
            self.scheduled_rate()
        )
    }
}

/// A child role: this benchmark re-executed with `--role`, its stdout lines read by a thread.
struct ChildRole {
    child: Child,
    lines: Receiver<String>,
}

impl ChildRole {
    fn spawn(role: &str, args: &[String]) -> anyhow::Result<ChildRole> {
        let mut child = spawn_role(role, args)?;
        let stdout = child
            .stdout
            .take()
            .context("the role's stdout is not piped")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ChildRole { child, lines })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line, waiting at most `patience`.
    fn line(&self, patience: Duration) -> anyhow::Result<String> {
        match self.lines.recv_timeout(patience) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => {
                anyhow::bail!("no line from the child within {patience:?}")
            }
            Err(RecvTimeoutError::Disconnected) => anyhow::bail!("the child ended"),
        }
    }

    /// The first line that arrives at or after `not_before`, with this process's usage read on its arrival.
    fn sample_after(&self, not_before: Instant) -> anyhow::Result<(String, Usage)> {
        loop {
            let line = self.line(Duration::from_secs(30))?;
            if Instant::now() >= not_before {
                return Ok((line, Usage::of(self.pid())?));
            }
        }
    }
}

impl Drop for ChildRole {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one scenario shares between its floor and agent runs.
struct Bench {
    broker: Broker,
    sim: ChildRole,
    addresses: Vec<SocketAddr>,
    subscriber: RollupSubscriber,
}

impl Bench {
    fn start(plcs: usize, machines: u8, period: &str, grace: Duration) -> anyhow::Result<Bench> {
        let broker =
            shopfloor_agent::broker::spawn_mosquitto(0).context("cannot start Mosquitto")?;
        let sim = ChildRole::spawn(
            roles::FLEET_SIM,
            &[
                "--plcs".into(),
                plcs.to_string(),
                "--machines".into(),
                machines.to_string(),
            ],
        )?;
        #[derive(Deserialize)]
        struct Started {
            addresses: Vec<SocketAddr>,
        }
        let first = sim.line(Duration::from_secs(60))?;
        let started: Started = serde_json::from_str(&first)
            .with_context(|| format!("the fleet simulator said {first:?}"))?;
        let subscriber = RollupSubscriber::start(broker.port, period, grace)?;
        Ok(Bench {
            broker,
            sim,
            addresses: started.addresses,
            subscriber,
        })
    }

    /// The agent's configuration for `workload` on this fleet and broker.
    fn fleet_config(&self, workload: &Workload) -> anyhow::Result<FleetConfig> {
        anyhow::ensure!(
            workload.plcs <= self.addresses.len(),
            "{} PLCs asked for, the fleet has {}",
            workload.plcs,
            self.addresses.len()
        );
        let mut config = FleetConfig::new(
            self.addresses[..workload.plcs].to_vec(),
            workload.machines,
            workload.interval,
            self.broker.port,
        );
        config.periods = workload.periods.to_string();
        // The agent refuses a client id another agent on this machine holds (another benchmark, a test).
        // The health message names every PLC: with hundreds it outgrows the default packet limit.
        config.mqtt_extra = format!(
            "client_id = \"fleet-bench-{}-{}\"\nmax_packet_size = \"16MiB\"",
            std::process::id(),
            self.broker.port
        );
        config.agent_extra = format!(
            "grace = {{ \"{}\" = \"{}\" }}\npoll_schedule = \"{}\"",
            workload.period,
            humantime::format_duration(workload.grace),
            schedule_name(workload.schedule)
        );
        Ok(config)
    }

    /// The reads the agent's read plan makes of one PLC of this fleet (every PLC has the same machines).
    fn reads(&self, workload: &Workload) -> anyhow::Result<Vec<Read>> {
        let text = self
            .fleet_config(workload)?
            .toml(Path::new("/nonexistent/fleet-bench"), 1);
        let config = Config::from_toml(&text, "fleet-bench.toml", false)
            .map_err(|error| anyhow::anyhow!("the fleet configuration is invalid: {error}"))?;
        Ok(ReadPlan::for_plc(&config, 0)
            .requests
            .iter()
            .map(|request| Read {
                unit_id: request.unit_id,
                function: match request.table {
                    RegisterTable::Coil => 1,
                    RegisterTable::Discrete => 2,
                    RegisterTable::Holding => 3,
                    RegisterTable::Input => 4,
                },
                start: request.start,
                count: request.count,
            })
            .collect())
    }

    fn sim_usage(&self) -> anyhow::Result<Usage> {
        Usage::of(self.sim.pid())
    }
}

/// One side's figures over its measured span.
#[derive(Debug, Clone, Default)]
struct Side {
    polls: u64,
    polls_per_s: f64,
    values_per_s: f64,
    cpu_per_1000: f64,
    core_share: f64,
    peak_rss_mb: f64,
    /// Resident memory at the end of the span: next to the peak, it shows growth.
    rss_mb: f64,
    /// From spawn to `/metrics` answering (the agent only).
    ready_s: Option<f64>,
    lag_p50: Option<f64>,
    lag_p99: Option<f64>,
    skipped: Option<f64>,
    errors: f64,
    commits_per_s: Option<f64>,
    write_mb_per_hour: f64,
    close_p50: Option<f64>,
    close_p99: Option<f64>,
    /// Rollups the bench subscriber received in the span (the agent only).
    rollups: Option<usize>,
    published: f64,
    sim_core_share: f64,
    /// The simulator's resident memory at the end of the span (flat: it keeps nothing per request).
    sim_rss_mb: f64,
}

impl Side {
    /// Whether the side held its schedule: at least 95 % of the scheduled polls, lag p99 within half the
    /// interval (when the side reports a lag).
    fn holds(&self, workload: &Workload) -> bool {
        let rate_ok = self.polls_per_s >= 0.95 * workload.scheduled_rate();
        let lag_ok = self
            .lag_p99
            .is_none_or(|p99| p99 <= workload.interval.as_secs_f64() / 2.0);
        rate_ok && lag_ok
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Runs the floor alone on `bench` for `workload`.
fn measure_floor(bench: &Bench, workload: &Workload) -> anyhow::Result<Side> {
    let reads = bench.reads(workload)?;
    let addresses: Vec<String> = bench.addresses[..workload.plcs]
        .iter()
        .map(SocketAddr::to_string)
        .collect();
    let reads_arg: Vec<String> = reads.iter().map(Read::text).collect();
    let floor = ChildRole::spawn(
        roles::POLL_FLOOR,
        &[
            "--addresses".into(),
            addresses.join(","),
            "--reads".into(),
            reads_arg.join(","),
            "--interval-ms".into(),
            workload.interval.as_millis().to_string(),
        ],
    )?;
    let (first, usage0) = floor.sample_after(Instant::now() + workload.warmup)?;
    let sim0 = bench.sim_usage()?;
    let (last, usage1) = floor.sample_after(usage0.at + workload.measure)?;
    let sim1 = bench.sim_usage()?;
    drop(floor);
    let status0: FloorStatus = serde_json::from_str(&first)?;
    let status1: FloorStatus = serde_json::from_str(&last)?;
    let delta = status1.minus(&status0);
    let span = usage1.since(&usage0);
    let seconds = span.elapsed.as_secs_f64();
    Ok(Side {
        polls: delta.polls,
        polls_per_s: delta.polls as f64 / seconds,
        values_per_s: delta.values as f64 / seconds,
        cpu_per_1000: span.cpu_per_1000(delta.polls),
        core_share: span.core_share(),
        peak_rss_mb: span.peak_rss as f64 / MIB,
        rss_mb: usage1.rss as f64 / MIB,
        lag_p50: delta.lag_quantile(0.5),
        lag_p99: delta.lag_quantile(0.99),
        skipped: Some(delta.skipped as f64),
        errors: delta.errors as f64,
        write_mb_per_hour: span.write_bytes_per_hour() / MIB,
        sim_core_share: sim1.since(&sim0).core_share(),
        sim_rss_mb: sim1.rss as f64 / MIB,
        ..Side::default()
    })
}

/// One scrape of the agent with its usage and the simulator's, taken together.
struct AgentSample {
    metrics: Metrics,
    usage: Usage,
    sim: Usage,
}

fn sample_agent(bench: &Bench, agent: &AgentProcess) -> anyhow::Result<AgentSample> {
    Ok(AgentSample {
        metrics: agent.metrics()?,
        usage: agent.usage()?,
        sim: bench.sim_usage()?,
    })
}

/// Runs the agent alone on `bench` for `workload`; `must_publish` waits (at most a minute) for its first
/// publish when none came during the run.
fn measure_agent(bench: &Bench, workload: &Workload, must_publish: bool) -> anyhow::Result<Side> {
    let dir = tempfile::tempdir().context("cannot create the agent's directory")?;
    let config = bench.fleet_config(workload)?;
    let agent = AgentProcess::spawn(&config, dir.path())?;
    if let Err(error) = agent.wait_ready(Duration::from_secs(60)) {
        let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(error.context(format!("the agent's log ends with:\n{}", tail.join("\n"))));
    }
    let ready_s = agent.started.elapsed().as_secs_f64();
    std::thread::sleep(workload.warmup);
    let first = sample_agent(bench, &agent)?;
    std::thread::sleep(workload.measure);
    let last = sample_agent(bench, &agent)?;
    let mut published = last.metrics.sum(AGENT_PUBLISHES);
    if must_publish && published == 0.0 {
        published = wait_for_publish(&agent, Duration::from_secs(60))?;
    }
    if must_publish {
        // A clean stop is part of what a steady scenario checks.
        agent.stop()?;
    } else {
        // A ceiling step keeps nothing; SIGKILL spares a thousand-PLC shutdown.
        agent.kill()?;
    }
    let side = agent_side(bench, workload, &first, &last);
    Ok(Side {
        published,
        ready_s: Some(ready_s),
        ..side
    })
}

/// Scrapes until the agent has published something or `patience` ran out; returns what it published.
fn wait_for_publish(agent: &AgentProcess, patience: Duration) -> anyhow::Result<f64> {
    let deadline = Instant::now() + patience;
    loop {
        let published = agent.metrics()?.sum(AGENT_PUBLISHES);
        if published > 0.0 || Instant::now() >= deadline {
            return Ok(published);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn agent_side(bench: &Bench, workload: &Workload, first: &AgentSample, last: &AgentSample) -> Side {
    let delta = last.metrics.minus(&first.metrics);
    let span = last.usage.since(&first.usage);
    let seconds = span.elapsed.as_secs_f64();
    let polls = delta.sum(AGENT_POLLS);
    let registers_per_poll = bench.reads(workload).map_or(0, |reads| {
        reads.iter().map(|r| u64::from(r.count)).sum::<u64>()
    });
    let latencies = bench
        .subscriber
        .latencies_between(first.usage.at, last.usage.at);
    Side {
        polls: polls as u64,
        polls_per_s: polls / seconds,
        // The agent does not count values; every answered poll reads the plan's registers.
        values_per_s: polls * registers_per_poll as f64 / seconds,
        cpu_per_1000: span.cpu_per_1000(polls as u64),
        core_share: span.core_share(),
        peak_rss_mb: span.peak_rss as f64 / MIB,
        rss_mb: last.usage.rss as f64 / MIB,
        ready_s: None,
        lag_p50: delta.histogram_quantile(AGENT_LAG, 0.5),
        lag_p99: delta.histogram_quantile(AGENT_LAG, 0.99),
        skipped: last
            .metrics
            .has(AGENT_SKIPPED)
            .then(|| delta.sum(AGENT_SKIPPED)),
        errors: delta.sum(AGENT_POLL_ERRORS),
        commits_per_s: Some(delta.sum(AGENT_COMMITS) / seconds),
        write_mb_per_hour: span.write_bytes_per_hour() / MIB,
        close_p50: quantile(&latencies, 0.5),
        close_p99: quantile(&latencies, 0.99),
        rollups: Some(latencies.len()),
        published: 0.0,
        sim_core_share: last.sim.since(&first.sim).core_share(),
        sim_rss_mb: last.sim.rss as f64 / MIB,
    }
}

/// The budgets of one scenario: (CPU-s per 1000 polls, core share %, peak RSS MB, MB written per hour).
fn budgets(scenario: Scenario) -> [&'static str; 4] {
    match scenario {
        Scenario::S0 => ["<= 0.06", "", "<= 12", ""],
        Scenario::S1 => ["", "<= 1", "<= 20", "<= 50"],
        Scenario::S2 => ["<= 2x floor", "", "", ""],
        _ => ["", "", "", ""],
    }
}

/// A steady scenario: the floor, then the agent, on one fleet.
fn steady(scenario: Scenario, workload: &Workload) -> anyhow::Result<Table> {
    let bench = Bench::start(
        workload.plcs,
        workload.machines,
        workload.period,
        workload.grace,
    )?;
    let reads = bench.reads(workload)?;
    let registers: u64 = reads.iter().map(|r| u64::from(r.count)).sum();
    let floor = measure_floor(&bench, workload)?;
    let agent = measure_agent(&bench, workload, true)?;
    ensure_alive(scenario, &floor, &agent, bench.subscriber.count())?;
    let title = match scenario {
        Scenario::S0 => "S0 medium",
        Scenario::S1 => "S1 steady, large",
        _ => "S2 fast",
    };
    let mut table = Table::new(title, workload.describe(registers, reads.len()));
    side_rows(&mut table, &floor, &agent, workload, budgets(scenario));
    if scenario == Scenario::S0 {
        table.note(
            "the budget is stated for 32 registers per PLC; a simulated machine's block is 21 registers \
             (one read), so each PLC has two machines and reads 42",
        );
    }
    if agent.lag_p99.is_none() {
        table.note(format!(
            "the agent exposes no {AGENT_LAG} (nor {AGENT_SKIPPED}): its lag shows \"-\""
        ));
    }
    table.note(format!(
        "close -> delivered: bench subscriber's arrival minus (window end + grace), {} rollups in the \
         agent's span",
        agent.rollups.unwrap_or(0)
    ));
    Ok(table)
}

/// Fails when a side polled nothing or the agent published nothing: the benchmark must not rot silently.
fn ensure_alive(
    scenario: Scenario,
    floor: &Side,
    agent: &Side,
    rollups: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(floor.polls > 0, "{scenario:?}: the floor polled nothing");
    anyhow::ensure!(agent.polls > 0, "{scenario:?}: the agent polled nothing");
    anyhow::ensure!(
        agent.published > 0.0 || rollups > 0,
        "{scenario:?}: the agent published nothing"
    );
    Ok(())
}

/// Picks one figure of a side; `None` where the side has no such figure.
type Pick = fn(&Side) -> Option<f64>;

fn side_rows(
    table: &mut Table,
    floor: &Side,
    agent: &Side,
    workload: &Workload,
    budget: [&str; 4],
) {
    let scheduled = format!("scheduled {:.0}", workload.scheduled_rate());
    let rows: [(&str, &'static str, Pick, &str); 18] = [
        ("polls", "1/s", |s| Some(s.polls_per_s), &scheduled),
        ("register values", "1/s", |s| Some(s.values_per_s), ""),
        (
            "CPU per 1000 polls",
            "s",
            |s| Some(s.cpu_per_1000),
            budget[0],
        ),
        (
            "CPU",
            "% of a core",
            |s| Some(s.core_share * 100.0),
            budget[1],
        ),
        ("peak RSS", "MiB", |s| Some(s.peak_rss_mb), budget[2]),
        ("RSS at end", "MiB", |s| Some(s.rss_mb), ""),
        ("start -> /metrics ready", "s", |s| s.ready_s, ""),
        (
            "schedule lag p50",
            "ms",
            |s| s.lag_p50.map(|v| v * 1000.0),
            "",
        ),
        (
            "schedule lag p99",
            "ms",
            |s| s.lag_p99.map(|v| v * 1000.0),
            "",
        ),
        ("ticks skipped", "", |s| s.skipped, ""),
        ("request errors", "", |s| Some(s.errors), ""),
        ("SQLite commits", "1/s", |s| s.commits_per_s, ""),
        (
            "disk writes",
            "MiB/h",
            |s| Some(s.write_mb_per_hour),
            budget[3],
        ),
        (
            "window close -> delivered p50",
            "ms",
            |s| s.close_p50.map(|v| v * 1000.0),
            "",
        ),
        (
            "window close -> delivered p99",
            "ms",
            |s| s.close_p99.map(|v| v * 1000.0),
            "",
        ),
        ("rollups received", "", |s| s.rollups.map(|n| n as f64), ""),
        (
            "simulator CPU",
            "% of a core",
            |s| Some(s.sim_core_share * 100.0),
            "",
        ),
        ("simulator RSS at end", "MiB", |s| Some(s.sim_rss_mb), ""),
    ];
    for (figure, unit, pick, budget) in rows {
        table.row(figure, unit, pick(floor), pick(agent), budget);
    }
}

/// The name of `schedule` in the agent's configuration file.
fn schedule_name(schedule: PollSchedule) -> &'static str {
    PollSchedule::ALL
        .iter()
        .find(|(_, value)| *value == schedule)
        .map_or("aligned", |(name, _)| name)
}

/// The load steps of S3 for a fleet of at most `max_plcs`: (PLCs, interval), rising poll rates.
fn ladder(scale: Scale, max_plcs: usize) -> Vec<(usize, Duration)> {
    if scale == Scale::Smoke {
        return vec![(max_plcs, Duration::from_millis(50))];
    }
    let intervals_ms: [u64; 8] = [1000, 500, 200, 100, 66, 50, 20, 10];
    [
        1_000.0, 2_000.0, 5_000.0, 10_000.0, 15_000.0, 20_000.0, 40_000.0, 80_000.0,
    ]
    .into_iter()
    .filter_map(|rate: f64| {
        intervals_ms.iter().find_map(|&ms| {
            let plcs = (rate * ms as f64 / 1000.0).round() as usize;
            (plcs <= max_plcs && plcs > 0).then(|| (plcs, Duration::from_millis(ms)))
        })
    })
    .collect()
}

/// One step of S3 for one side.
struct Step {
    workload: Workload,
    side: Side,
    held: bool,
}

/// S3: each side alone climbs the ladder until it no longer holds its schedule.
fn ceiling(options: &Options) -> anyhow::Result<Table> {
    let smoke = options.scale == Scale::Smoke;
    let max_plcs = options.plcs.unwrap_or(if smoke { 3 } else { 1000 });
    let base = Workload {
        plcs: 1,
        machines: 1,
        interval: Duration::from_secs(1),
        warmup: Duration::from_millis(if smoke { 500 } else { 5000 }),
        measure: options
            .duration
            .unwrap_or(Duration::from_secs(if smoke { 2 } else { 10 })),
        period: if smoke { "1s" } else { "10s" },
        periods: if smoke { r#"["1s"]"# } else { r#"["10s"]"# },
        grace: Duration::from_millis(if smoke { 100 } else { 1000 }),
        schedule: PollSchedule::Aligned,
    };
    let bench = Bench::start(max_plcs, base.machines, base.period, base.grace)?;
    let steps = ladder(options.scale, max_plcs);
    let floor = climb(&steps, &base, |w| measure_floor(&bench, w))?;
    let agent = climb(&steps, &base, |w| measure_agent(&bench, w, smoke))?;
    // The same ladder with each PLC at its own phase: the schedule meant for large fleets at short intervals.
    let spread_base = Workload {
        schedule: PollSchedule::Spread,
        ..base.clone()
    };
    let spread = climb(&steps, &spread_base, |w| measure_agent(&bench, w, smoke))?;
    let first = |steps: &[Step]| steps.first().map_or(Side::default(), |s| s.side.clone());
    ensure_alive(
        Scenario::S3,
        &first(&floor),
        &first(&agent),
        bench.subscriber.count(),
    )?;
    let best = |steps: &[Step]| {
        steps
            .iter()
            .filter(|s| s.held)
            .map(|s| s.side.polls_per_s)
            .fold(None, |best: Option<f64>, rate| {
                Some(best.map_or(rate, |b| b.max(rate)))
            })
    };
    let mut table = Table::new(
        "S3 ceiling",
        format!(
            "up to {max_plcs} PLCs x 1 machine (1 read of 21 registers per poll); steps of {} measured \
             after {} warm-up; a step holds with >= 95 % of the scheduled polls and lag p99 <= half the \
             interval",
            humantime::format_duration(base.measure),
            humantime::format_duration(base.warmup)
        ),
    );
    table.row(
        "highest held poll rate, poll_schedule = \"aligned\"",
        "1/s",
        best(&floor),
        best(&agent),
        ">= 20000",
    );
    table.row(
        "highest held poll rate, poll_schedule = \"spread\"",
        "1/s",
        best(&floor),
        best(&spread),
        ">= 20000",
    );
    for (name, steps) in [
        ("floor", &floor),
        ("agent aligned", &agent),
        ("agent spread", &spread),
    ] {
        for step in steps {
            table.note(step_note(name, step));
        }
    }
    Ok(table)
}

/// Measures `steps` in order with `measure` until one does not hold.
fn climb(
    steps: &[(usize, Duration)],
    base: &Workload,
    mut measure: impl FnMut(&Workload) -> anyhow::Result<Side>,
) -> anyhow::Result<Vec<Step>> {
    let mut done = Vec::new();
    for &(plcs, interval) in steps {
        let workload = Workload {
            plcs,
            interval,
            ..base.clone()
        };
        let side = measure(&workload)?;
        let held = side.holds(&workload);
        done.push(Step {
            workload,
            side,
            held,
        });
        if !held {
            break;
        }
    }
    Ok(done)
}

fn step_note(name: &str, step: &Step) -> String {
    let ms =
        |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{:.1} ms", v * 1000.0));
    format!(
        "{name}: {} PLCs every {}: {:.0} of {:.0} polls/s, lag p50 {} p99 {}, {:.1} % of a core, {:.4} \
         CPU-s/1000 polls, peak RSS {:.1} MiB, simulator {:.1} % of a core: {}",
        step.workload.plcs,
        humantime::format_duration(step.workload.interval),
        step.side.polls_per_s,
        step.workload.scheduled_rate(),
        ms(step.side.lag_p50),
        ms(step.side.lag_p99),
        step.side.core_share * 100.0,
        step.side.cpu_per_1000,
        step.side.peak_rss_mb,
        step.side.sim_core_share * 100.0,
        if step.held { "held" } else { "NOT held" }
    )
}
