//! The two child roles of the polling side, each its own process so its `/proc` figures are its own:
//! `fleet-sim` (the simulated fleet, [`simulators::Fleet`]) and `poll-floor` (a bare tokio-modbus client loop
//! per PLC doing the agent's reads at the agent's schedule). Both report on stdout, one JSON line at a time
//! (the simulator every second, the floor every 250 ms), and run until killed or until stdout is closed.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use simulators::{Fleet, FleetSpec};
use tokio_modbus::client::{tcp, Context};
use tokio_modbus::prelude::{Reader, Slave, SlaveContext};

use super::{FloorStatus, Read, LAG_BUCKETS};

/// The fleet simulator role's name.
pub const FLEET_SIM: &str = "fleet-sim";
/// The polling floor role's name.
pub const POLL_FLOOR: &str = "poll-floor";

/// How long the floor waits before connecting again after a failed connection or read.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);
/// How often the floor prints its counters: the parent's measured span starts and ends on one of them.
const STATUS_EVERY: Duration = Duration::from_millis(250);
/// How long one floor request may take before it counts as an error (the agent's default `timeout`).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

/// Runs the child role `role` if it is one of this module's.
pub fn run(role: &str, args: &[String]) -> Option<anyhow::Result<()>> {
    let outcome = match role {
        FLEET_SIM => runtime().and_then(|rt| rt.block_on(fleet_sim(args))),
        POLL_FLOOR => runtime().and_then(|rt| rt.block_on(poll_floor(args))),
        _ => return None,
    };
    Some(outcome)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The value of `--name` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> anyhow::Result<&'a str> {
    args.iter()
        .position(|arg| arg == name)
        .and_then(|at| args.get(at + 1))
        .map(String::as_str)
        .with_context(|| format!("{name} is missing"))
}

/// Writes one line to stdout; an error means the parent is gone.
fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// `fleet-sim --plcs N --machines M`: prints `{"addresses":[...]}`, then `{"requests":N}` every second.
async fn fleet_sim(args: &[String]) -> anyhow::Result<()> {
    let plcs: usize = flag(args, "--plcs")?.parse()?;
    let machines: u8 = flag(args, "--machines")?.parse()?;
    let fleet = Fleet::start(&FleetSpec::new(plcs, machines)).await?;
    let addresses: Vec<String> = fleet.addresses().iter().map(|a| a.to_string()).collect();
    say(&serde_json::json!({ "addresses": addresses }).to_string())?;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let stats = fleet.stats();
        let line =
            serde_json::json!({ "requests": stats.requests, "connections": stats.connections });
        if say(&line.to_string()).is_err() {
            break;
        }
    }
    fleet.shutdown().await;
    Ok(())
}

/// The floor's counters, shared by every PLC loop.
#[derive(Default)]
struct Tally {
    polls: AtomicU64,
    values: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
    lag: Vec<AtomicU64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            lag: (0..LAG_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            ..Tally::default()
        }
    }

    fn status(&self) -> FloorStatus {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        FloorStatus {
            polls: load(&self.polls),
            values: load(&self.values),
            errors: load(&self.errors),
            skipped: load(&self.skipped),
            lag: self.lag.iter().map(load).collect(),
        }
    }
}

/// `poll-floor --addresses A,B,.. --reads U:FC:START:COUNT,.. --interval-ms MS`: one loop per PLC.
async fn poll_floor(args: &[String]) -> anyhow::Result<()> {
    let addresses: Vec<SocketAddr> = flag(args, "--addresses")?
        .split(',')
        .map(|a| a.parse().with_context(|| format!("bad address {a:?}")))
        .collect::<anyhow::Result<_>>()?;
    let reads: Arc<Vec<Read>> = Arc::new(
        flag(args, "--reads")?
            .split(',')
            .map(Read::parse)
            .collect::<anyhow::Result<_>>()?,
    );
    let interval = Duration::from_millis(flag(args, "--interval-ms")?.parse()?);
    anyhow::ensure!(!interval.is_zero(), "--interval-ms must be above 0");
    let tally = Arc::new(Tally::new());
    for address in addresses {
        tokio::spawn(poll_one(
            address,
            Arc::clone(&reads),
            interval,
            Arc::clone(&tally),
        ));
    }
    let mut every = tokio::time::interval(STATUS_EVERY);
    loop {
        every.tick().await;
        let line = serde_json::to_string(&tally.status())?;
        if say(&line).is_err() {
            return Ok(());
        }
    }
}

/// Milliseconds since the Unix epoch on the wall clock, which the agent aligns its ticks to.
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Microseconds since the Unix epoch on the wall clock.
fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// One PLC's loop: at every multiple of `interval` on the wall clock (as the agent schedules), the plan's
/// reads in order; the lag (start minus scheduled tick) and ticks missed by an overrun are counted.
async fn poll_one(
    address: SocketAddr,
    reads: Arc<Vec<Read>>,
    interval: Duration,
    tally: Arc<Tally>,
) {
    let interval_ms = (interval.as_millis() as u64).max(1);
    let mut context: Option<Context> = None;
    let mut last_tick: Option<u64> = None;
    loop {
        let now = wall_ms();
        let tick = (now / interval_ms + 1) * interval_ms;
        if let Some(last) = last_tick {
            let missed = (tick - last) / interval_ms;
            tally
                .skipped
                .fetch_add(missed.saturating_sub(1), Ordering::Relaxed);
        }
        last_tick = Some(tick);
        tokio::time::sleep(Duration::from_millis(tick - now)).await;
        let lag_us = wall_us().saturating_sub(tick * 1000);
        tally.lag[lag_bucket(lag_us)].fetch_add(1, Ordering::Relaxed);
        if context.is_none() {
            match tcp::connect(address).await {
                Ok(connected) => context = Some(connected),
                Err(_) => {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            }
        }
        let Some(connected) = context.as_mut() else {
            continue;
        };
        if !cycle(connected, &reads, &tally).await {
            context = None;
        }
        tally.polls.fetch_add(1, Ordering::Relaxed);
    }
}

/// One poll of one PLC; `false` when the connection broke.
async fn cycle(context: &mut Context, reads: &[Read], tally: &Tally) -> bool {
    for read in reads {
        context.set_slave(Slave(read.unit_id));
        let request = async {
            match read.function {
                1 => context
                    .read_coils(read.start, read.count)
                    .await
                    .map(|r| r.map(|bits| bits.len())),
                2 => context
                    .read_discrete_inputs(read.start, read.count)
                    .await
                    .map(|r| r.map(|bits| bits.len())),
                4 => context
                    .read_input_registers(read.start, read.count)
                    .await
                    .map(|r| r.map(|words| words.len())),
                _ => context
                    .read_holding_registers(read.start, read.count)
                    .await
                    .map(|r| r.map(|words| words.len())),
            }
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(Ok(values))) => {
                tally.values.fetch_add(values as u64, Ordering::Relaxed);
            }
            Ok(Ok(Err(_exception))) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(_)) | Err(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
    }
    true
}

/// The lag histogram's bucket of `micros`: 0 for under 1 µs, then eight buckets per doubling.
pub fn lag_bucket(micros: u64) -> usize {
    if micros == 0 {
        return 0;
    }
    let index = ((micros as f64).log2() * 8.0).floor() as usize + 1;
    index.min(LAG_BUCKETS - 1)
}

/// The upper bound, in seconds, of lag bucket `index`.
pub fn lag_bucket_upper(index: usize) -> f64 {
    if index == 0 {
        return 1e-6;
    }
    2f64.powf(index as f64 / 8.0) * 1e-6
}
