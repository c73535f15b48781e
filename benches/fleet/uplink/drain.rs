//! S4 drain: a full outbox meets a returning broker. The outbox is filled through the library with copies of
//! a rollup the agent published, the agent starts with the broker down, then Mosquitto comes up:
//! - `drain_rate = 0` (unlimited): how fast the backlog drains against the publishing floor on the same
//!   broker with the same topic, payload and in-flight window, the agent's CPU per 1000 rows, its RSS;
//! - `drain_rate = 500`: while the backlog drains, how late the live rollups of short windows arrive.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use shopfloor_agent::broker::{spawn_mosquitto, Broker};

use super::floor::{self, FloorFigures, FloorRun};
use super::rig::database_of;
use super::rig::{config_of, copy_outbox, fill_outbox, rollup_filter, wall_ms, Rig, Rollup};
use super::Sizes;
use crate::agent::{AgentProcess, FleetConfig};
use crate::measure::{quantile, Usage};
use crate::report::Table;
use crate::subscriber::Subscriber;

/// The backlog gauge of `/metrics`.
const BACKLOG_ROWS: &str = "shopfloor_backlog_rows";
/// The agent's publish → PUBACK histogram.
const PUBACK_LATENCY: &str = "shopfloor_puback_latency_seconds";
/// How often the drain is sampled (from the database file and `/proc`, so the sampling adds no work to the
/// agent; what one `/metrics` scrape costs it is its own row).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Scrapes timed (with the broker down, nothing else to do) to tell what one costs the agent.
const COSTED_SCRAPES: u32 = 5;
/// How long an agent with a full outbox gets to serve `/metrics`.
const READY_PATIENCE: Duration = Duration::from_secs(120);
/// Grace of the live windows in the paced run: a window closes this long after it ends.
const LIVE_GRACE: Duration = Duration::from_millis(500);
/// The paced run's drain rate.
const PACED_RATE: u32 = 500;
/// Bytes per MB in the tables.
const MB: f64 = 1024.0 * 1024.0;

/// One reading during a drain.
#[derive(Debug, Clone, Copy)]
struct Sample {
    backlog: f64,
    usage: Usage,
    /// CPU seconds one `/metrics` scrape cost the agent at this backlog (measured at the start only).
    scrape_cpu: f64,
    /// Filled rows still in the outbox, read from the database file (`MIN(seq)`, one index lookup).
    queued: f64,
}

/// Runs S4 and returns its two tables.
pub(super) fn run(rig: &Rig, sizes: &Sizes) -> anyhow::Result<Vec<Table>> {
    let mut broker = spawn_mosquitto(0)?;
    let rollup = rig.capture_rollup(&broker)?;
    let seed_fleet = rig.fleet(Duration::from_secs(1), broker.port);
    let inflight = max_inflight(&seed_fleet)?;
    let floor = floor::measure(
        &FloorRun {
            port: broker.port,
            topic: &rollup.topic,
            payload: &rollup.payload,
            count: sizes.floor_messages,
            inflight,
        },
        rig.scratch.path(),
    )?;
    let seed_dir = rig.dir("seed");
    let fill = fill_outbox(&seed_fleet, &seed_dir, &rollup, sizes.rows)?;
    let setup = Setup {
        rig,
        seed_fleet: &seed_fleet,
        seed_dir: &seed_dir,
        rollup: &rollup,
        sizes,
        fill,
    };
    let unlimited = unlimited(&setup, &mut broker, &floor, inflight)?;
    let paced = paced(&setup, &mut broker)?;
    let _ = std::fs::remove_dir_all(&seed_dir);
    Ok(vec![unlimited, paced])
}

/// What both runs start from.
struct Setup<'a> {
    rig: &'a Rig,
    seed_fleet: &'a FleetConfig,
    seed_dir: &'a std::path::Path,
    rollup: &'a Rollup,
    sizes: &'a Sizes,
    fill: Duration,
}

impl Setup<'_> {
    /// Kills the broker, gives `fleet`'s agent in scratch directory `name` a copy of the full outbox and
    /// starts it; returns it with its backlog once it serves `/metrics`.
    fn start_agent(
        &self,
        broker: &mut Broker,
        fleet: &FleetConfig,
        name: &str,
    ) -> anyhow::Result<(AgentProcess, Sample)> {
        broker.kill()?;
        let dir = self.rig.dir(name);
        copy_outbox(self.seed_fleet, self.seed_dir, fleet, &dir)?;
        let agent = AgentProcess::spawn(fleet, &dir)?;
        let metrics = agent.wait_ready(READY_PATIENCE)?;
        std::thread::sleep(SAMPLE_EVERY);
        let before = agent.usage()?;
        for _ in 0..COSTED_SCRAPES {
            agent.metrics()?;
        }
        let scrape_cpu =
            agent.usage()?.since(&before).cpu.as_secs_f64() / f64::from(COSTED_SCRAPES);
        let start = Sample {
            backlog: metrics.sum(BACKLOG_ROWS),
            usage: agent.usage()?,
            scrape_cpu,
            queued: self.sizes.rows as f64,
        };
        anyhow::ensure!(
            start.backlog >= self.sizes.rows as f64,
            "the agent sees {} rows queued, {} were filled",
            start.backlog,
            self.sizes.rows
        );
        Ok((agent, start))
    }
}

/// `mqtt.max_inflight` of `fleet`'s configuration.
fn max_inflight(fleet: &FleetConfig) -> anyhow::Result<u16> {
    Ok(config_of(fleet, std::path::Path::new("/nonexistent"))?
        .mqtt
        .max_inflight)
}

/// `drain_rate = 0`: the whole backlog against the floor.
fn unlimited(
    setup: &Setup<'_>,
    broker: &mut Broker,
    floor: &FloorFigures,
    inflight: u16,
) -> anyhow::Result<Table> {
    let mut fleet = setup.rig.fleet(Duration::from_secs(1), broker.port);
    fleet.mqtt_extra.push_str("drain_rate = 0\n");
    let (agent, start) = setup.start_agent(broker, &fleet, "drain-unlimited")?;
    broker.restart()?;
    let up = Instant::now();
    let patience = Duration::from_secs(120.max(setup.sizes.rows / 200));
    let database = database_of(&fleet, &agent.dir)?;
    let rows = setup.sizes.rows;
    let queued = || filled_rows_queued(&database, rows);
    let samples = watch(&agent, up + patience, queued, |sample| sample.queued <= 0.0)?;
    let metrics = agent.metrics()?;
    let dir = agent.dir.clone();
    agent.stop()?;
    let _ = std::fs::remove_dir_all(dir);
    let drain = Drain::of(start, &samples, metrics.sum(BACKLOG_ROWS)).context("nothing drained")?;
    let mut table = Table::new(
        "S4 drain, drain_rate = 0 (unlimited)",
        format!(
            "{} rollups of {} bytes queued on {}, agent started with the broker down, then Mosquitto came up; \
             floor: {} publishes of the same payload on the same topic, MQTT 5, in-flight window {inflight}",
            setup.sizes.rows,
            setup.rollup.payload.len(),
            setup.rollup.topic,
            floor.messages
        ),
    );
    let p = |q| {
        metrics
            .histogram_quantile(PUBACK_LATENCY, q)
            .map(|s| s * 1000.0)
    };
    table
        .row("throughput", "msgs/s", Some(floor.rate), Some(drain.rate), ">= 0.70 x floor")
        .row("CPU per 1000 messages", "s", Some(floor.cpu_per_1000), Some(drain.cpu_per_1000), "")
        .row("publish -> PUBACK p50", "ms", Some(floor.p50 * 1000.0), p(0.5), "")
        .row("publish -> PUBACK p99", "ms", Some(floor.p99 * 1000.0), p(0.99), "")
        .row("peak RSS", "MB", Some(floor.peak_rss as f64 / MB), Some(drain.peak_rss / MB), "")
        .row("RSS at start of drain", "MB", None, Some(start.usage.rss as f64 / MB), "")
        .row("RSS max while draining", "MB", None, Some(drain.max_rss / MB), "flat")
        .row("RSS at end of drain", "MB", None, Some(drain.end_rss / MB), "flat")
        .row("broker up -> first row retired", "s", None, Some(drain.first_progress.duration_since(up).as_secs_f64()), "")
        .row("rows drained", "rows", None, Some(drain.rows), "")
        .row("CPU of one /metrics scrape, full outbox", "s", None, Some(start.scrape_cpu), "")
        .note(format!(
            "agent throughput and CPU: from the last sample before the first filled row was retired to \
             the first sample without any (the outbox's smallest seq read from the database file every \
             {SAMPLE_EVERY:?}, as is RSS from /proc); /metrics is not scraped during the drain (what \
             one scrape costs is the row above); {:.0} rows were left at the end",
            drain.left
        ))
        .note(format!(
            "the agent sends backlog rows with its in-flight window less a sixteenth kept for fresh rows; \
             the outbox was filled through the store in {:.1} s",
            setup.fill.as_secs_f64()
        ));
    if !drain.complete {
        table.note("the backlog was NOT empty when the run's patience ran out: figures cover the part drained");
    }
    Ok(table)
}

/// Figures of one drain.
struct Drain {
    rows: f64,
    rate: f64,
    cpu_per_1000: f64,
    peak_rss: f64,
    max_rss: f64,
    end_rss: f64,
    first_progress: Instant,
    complete: bool,
    left: f64,
}

impl Drain {
    /// From the start reading, the samples and the backlog left at the end; `None` when nothing drained.
    fn of(start: Sample, samples: &[Sample], left: f64) -> Option<Drain> {
        let first = samples.iter().position(|s| s.queued < start.queued)?;
        let before = if first == 0 {
            start
        } else {
            samples[first - 1]
        };
        let end = samples
            .iter()
            .find(|s| s.queued <= 0.0)
            .or(samples.last())
            .copied()?;
        let rows = before.queued - end.queued;
        let span = end.usage.since(&before.usage);
        Some(Drain {
            rows,
            rate: rows / span.elapsed.as_secs_f64().max(1e-9),
            cpu_per_1000: span.cpu_per_1000(rows as u64),
            peak_rss: end.usage.peak_rss as f64,
            max_rss: samples.iter().map(|s| s.usage.rss).max().unwrap_or(0) as f64,
            end_rss: end.usage.rss as f64,
            first_progress: samples[first].usage.at,
            complete: end.queued <= 0.0,
            left,
        })
    }
}

/// How many of the `filled` rows (seqs 1..=filled) are still in the outbox of the database at `path`: the
/// backlog drains oldest first, so everything from the smallest seq left up to `filled` is still there.
fn filled_rows_queued(path: &std::path::Path, filled: u64) -> anyhow::Result<f64> {
    let connection =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let oldest: Option<i64> =
        connection.query_row("SELECT MIN(seq) FROM outbox", [], |row| row.get(0))?;
    let filled = i64::try_from(filled)?;
    Ok(match oldest {
        Some(seq) if seq <= filled => (filled - seq + 1) as f64,
        _ => 0.0,
    })
}

/// Samples the agent's usage and `queued` every [`SAMPLE_EVERY`] until `done` holds or `deadline` passes.
/// It does not scrape `/metrics`, so that the figures are the drain's alone.
fn watch(
    agent: &AgentProcess,
    deadline: Instant,
    queued: impl Fn() -> anyhow::Result<f64>,
    done: impl Fn(&Sample) -> bool,
) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    loop {
        std::thread::sleep(SAMPLE_EVERY);
        let sample = Sample {
            backlog: f64::NAN,
            usage: agent.usage()?,
            scrape_cpu: 0.0,
            queued: queued()?,
        };
        samples.push(sample);
        if done(&sample) || Instant::now() >= deadline {
            return Ok(samples);
        }
    }
}

/// `drain_rate = 500` with short windows: how late live rollups arrive while the backlog drains.
fn paced(setup: &Setup<'_>, broker: &mut Broker) -> anyhow::Result<Table> {
    let period = setup.sizes.live_period;
    let mut fleet = setup.rig.fleet(Duration::from_millis(200), broker.port);
    fleet.periods = format!("[{period:?}]");
    fleet.agent_extra = format!(
        "grace = {{ {period:?} = \"{}ms\" }}",
        LIVE_GRACE.as_millis()
    );
    fleet
        .mqtt_extra
        .push_str(&format!("drain_rate = {PACED_RATE}\n"));
    let (agent, start) = setup.start_agent(broker, &fleet, "drain-paced")?;
    broker.restart()?;
    let subscriber = Subscriber::start(broker.port, &rollup_filter(&fleet, period)?)?;
    let watched_from = wall_ms(SystemTime::now());
    let samples = watch(
        &agent,
        Instant::now() + setup.sizes.live_run,
        || Ok(f64::NAN),
        |_| false,
    )?;
    let messages = subscriber.messages();
    drop(subscriber);
    let left = agent.metrics()?.sum(BACKLOG_ROWS);
    let end = *samples.last().context("no sample")?;
    let dir = agent.dir.clone();
    agent.stop()?;
    let _ = std::fs::remove_dir_all(dir);
    let mut late = Vec::new();
    let mut replayed = 0u64;
    for message in &messages {
        let body: serde_json::Value = serde_json::from_slice(&message.payload)?;
        if body.get("replayed").and_then(serde_json::Value::as_bool) == Some(true) {
            replayed += 1;
            continue;
        }
        let end: jiff::Timestamp = body
            .pointer("/window/end")
            .and_then(serde_json::Value::as_str)
            .context("a live rollup without window.end")?
            .parse()?;
        if end.as_millisecond() >= watched_from {
            late.push((wall_ms(message.wall) - end.as_millisecond()) as f64 / 1000.0);
        }
    }
    anyhow::ensure!(
        !late.is_empty(),
        "no live rollup arrived during the paced drain ({} messages, {replayed} replayed)",
        messages.len()
    );
    let drained = start.backlog - left;
    anyhow::ensure!(drained > 0.0, "nothing drained during the paced run");
    let drain_rate = drained / end.usage.since(&start.usage).elapsed.as_secs_f64();
    let max_rss = samples.iter().map(|s| s.usage.rss).max().unwrap_or(0) as f64;
    let grace = LIVE_GRACE.as_secs_f64();
    let mut table = Table::new(
        format!("S4 drain, drain_rate = {PACED_RATE}: live rollups during the drain"),
        format!(
            "{} rollups queued, broker up, then {:?} watching {period} windows (grace {:?}) on a subscriber; \
             {} live rollups counted",
            setup.sizes.rows,
            setup.sizes.live_run,
            LIVE_GRACE,
            late.len()
        ),
    );
    let q = |q| quantile(&late, q);
    let after_close = |v: Option<f64>| v.map(|v| v - grace);
    table
        .row("window end -> received p50", "s", None, q(0.5), "")
        .row("window end -> received p99", "s", None, q(0.99), "")
        .row("window end -> received max", "s", None, q(1.0), "")
        .row("window close -> received p99", "s", None, after_close(q(0.99)), "<= 1")
        .row("window close -> received max", "s", None, after_close(q(1.0)), "<= 1")
        .row("backlog drained meanwhile", "rows/s", None, Some(drain_rate), format!("<= {PACED_RATE}"))
        .row("RSS max while draining", "MB", None, Some(max_rss / MB), "flat")
        .note(format!(
            "live = a rollup without \"replayed\": true; close = window end + grace; RSS start {:.1} MB, \
             end {:.1} MB; {replayed} replayed rows seen on the live topic",
            start.usage.rss as f64 / MB,
            end.usage.rss as f64 / MB
        ));
    Ok(table)
}
