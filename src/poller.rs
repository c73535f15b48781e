//! Modbus/TCP acquisition: one task per PLC connection, reads only (function codes 1–4).
//! Every connect and request runs under the PLC's timeout; any transport error drops the connection
//! and rebuilds it with capped exponential backoff plus jitter. Decoding is not done here (`logic::decode`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::mpsc;
use tokio_modbus::client::{Client, Context, Reader};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::Slave;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, PlcConfig, TagAddress};
use crate::logic::decode::Table;
use crate::logic::Millis;

/// Largest number of bits in one coil/discrete read.
const MAX_BITS_PER_REQUEST: u16 = 2000;
/// A cycle that starts this close to its scheduled instant is stamped with that instant.
const TICK_SNAP_MS: i64 = 50;
/// First reconnect delay; doubles up to the PLC's `backoff_max`.
const BACKOFF_START: Duration = Duration::from_millis(250);

/// Why one tag has no value in a sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// The PLC answered with a Modbus exception.
    #[error("exception {code:#04x} ({name})")]
    Exception {
        /// Exception code.
        code: u8,
        /// Its name.
        name: String,
    },
    /// The answer had the wrong number of registers.
    #[error("wrong response length: expected {expected}, got {got}")]
    WrongLength {
        /// Registers asked for.
        expected: usize,
        /// Registers received.
        got: usize,
    },
    /// The connection failed; nothing was read in this cycle.
    #[error("{0}")]
    Transport(String),
}

/// One poll cycle of one PLC: a reading (or an error) for every tag of the PLC's plan.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Index of the PLC in [`Config::plcs`].
    pub plc: usize,
    /// Poll sequence number of this PLC, from 1; failed cycles count too.
    pub seq: u64,
    /// Monotonic instant the cycle started.
    pub mono: Instant,
    /// UTC time the cycle started.
    pub utc: Millis,
    /// Per tag of [`ReadPlan::tags`], in the same order.
    pub readings: Vec<Result<Vec<u16>, TagError>>,
}

impl Sample {
    /// True when the connection failed and no tag was read.
    pub fn is_gap(&self) -> bool {
        self.readings
            .iter()
            .all(|r| matches!(r, Err(TagError::Transport(_))))
    }
}

/// One Modbus read request covering one or more tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// Unit id.
    pub unit_id: u8,
    /// Table (selects the function code).
    pub table: Table,
    /// First address.
    pub start: u16,
    /// Number of registers or bits.
    pub count: u16,
    /// Indices into [`ReadPlan::tags`] served by this request.
    pub tags: Vec<usize>,
}

/// What one PLC task reads each cycle.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    /// Distinct tags, in a stable order the processor relies on.
    pub tags: Vec<TagAddress>,
    /// Requests covering every tag exactly once; a multi-register value is never split.
    pub requests: Vec<ReadRequest>,
}

impl ReadPlan {
    /// Builds the plan for PLC `plc`: merges tags of one unit and table into requests of at most
    /// `max_registers_per_request` registers (2000 bits), bridging gaps of up to `max_gap`.
    pub fn for_plc(config: &Config, plc: usize) -> ReadPlan {
        let plc_config = &config.plcs[plc];
        let mut tags: Vec<TagAddress> = Vec::new();
        for (_, machine) in config.machines_of(plc) {
            for tag in machine_tags(machine) {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
        }
        let requests = plan_requests(
            &tags,
            plc_config.max_registers_per_request,
            plc_config.max_gap,
        );
        ReadPlan { tags, requests }
    }

    /// Index of `tag` in [`ReadPlan::tags`].
    pub fn index_of(&self, tag: &TagAddress) -> Option<usize> {
        self.tags.iter().position(|t| t == tag)
    }
}

/// Every tag a machine needs, in a fixed order.
pub fn machine_tags(machine: &crate::config::MachineConfig) -> Vec<TagAddress> {
    let mut tags = vec![machine.produced.tag];
    tags.extend(machine.defective.iter().map(|c| c.tag));
    tags.extend(machine.defect_reasons.iter().map(|(_, c)| c.tag));
    tags.extend(machine.state.iter().map(|s| s.tag));
    tags
}

/// Merges tags into requests. Pure; property-tested.
pub fn plan_requests(tags: &[TagAddress], max_registers: u16, max_gap: u16) -> Vec<ReadRequest> {
    let mut order: Vec<usize> = (0..tags.len()).collect();
    order.sort_by_key(|&i| (tags[i].unit_id, tags[i].table, tags[i].address));
    let mut requests: Vec<ReadRequest> = Vec::new();
    for i in order {
        let tag = &tags[i];
        let limit = match tag.table {
            Table::Coil | Table::Discrete => MAX_BITS_PER_REQUEST,
            Table::Input | Table::Holding => max_registers,
        };
        let tag_end = u32::from(tag.address) + u32::from(tag.count());
        if let Some(last) = requests.last_mut() {
            let last_end = u32::from(last.start) + u32::from(last.count);
            let same_block = last.unit_id == tag.unit_id && last.table == tag.table;
            let gap_ok = u32::from(tag.address) <= last_end + u32::from(max_gap);
            let new_end = last_end.max(tag_end);
            if same_block && gap_ok && new_end - u32::from(last.start) <= u32::from(limit) {
                last.count = (new_end - u32::from(last.start)) as u16;
                last.tags.push(i);
                continue;
            }
        }
        requests.push(ReadRequest {
            unit_id: tag.unit_id,
            table: tag.table,
            start: tag.address,
            count: tag.count(),
            tags: vec![i],
        });
    }
    requests
}

/// Live health of one PLC connection, shared with the health publisher and the demo.
#[derive(Debug, Clone, Default)]
pub struct PlcHealth {
    /// PLC id.
    pub id: String,
    /// Last cycle succeeded.
    pub up: bool,
    /// Failed cycles in a row.
    pub consecutive_failures: u64,
    /// Last error, if any.
    pub last_error: Option<String>,
    /// Round-trip time of the last good cycle.
    pub rtt_ms: Option<f64>,
    /// Good cycles.
    pub polls: u64,
    /// Failed cycles.
    pub failures: u64,
}

/// Health of every PLC, indexed like [`Config::plcs`].
pub type HealthBoard = Arc<Mutex<Vec<PlcHealth>>>;

/// Creates a health board for the configured PLCs.
pub fn health_board(config: &Config) -> HealthBoard {
    Arc::new(Mutex::new(
        config
            .plcs
            .iter()
            .map(|p| PlcHealth {
                id: p.id.clone(),
                ..PlcHealth::default()
            })
            .collect(),
    ))
}

/// Polls one PLC until `shutdown`; sends one [`Sample`] per cycle (or failed attempt) to `sample_tx`.
pub async fn run(
    plc: usize,
    plc_config: PlcConfig,
    plan: ReadPlan,
    sample_tx: mpsc::Sender<Sample>,
    health: HealthBoard,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut connection: Option<Context> = None;
    let mut seq: u64 = 0;
    let mut backoff = BACKOFF_START;
    let mut was_up: Option<bool> = None;

    while !shutdown.is_cancelled() {
        if connection.is_none() {
            match connect(&plc_config).await {
                Ok(ctx) => connection = Some(ctx),
                Err(error) => {
                    seq += 1;
                    let sample = failed_sample(plc, seq, &plan, &error);
                    report(&health, plc, &mut was_up, &plc_config.id, Err(&error), None);
                    if sample_tx.send(sample).await.is_err() {
                        break;
                    }
                    sleep_or_cancel(jitter(backoff), &shutdown).await;
                    backoff = (backoff * 2).min(plc_config.backoff_max);
                    continue;
                }
            }
        }
        // Cycles are aligned to the clock, so that with a 1 s poll every window boundary gets a poll.
        let (wait, tick_at) = next_tick(plc_config.poll_interval);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        let ctx = connection
            .as_mut()
            .expect("connection was established above");
        seq += 1;
        let mono = Instant::now();
        // Stamp the cycle with its scheduled instant when the timer fired on time, so a poll
        // scheduled on a window boundary does not straddle it by a few milliseconds of timer lag.
        let now = now_millis();
        let utc = if (now - tick_at).abs() <= TICK_SNAP_MS {
            tick_at
        } else {
            now
        };
        match poll_once(ctx, &plan, plc_config.timeout).await {
            Ok(readings) => {
                let rtt = mono.elapsed().as_secs_f64() * 1000.0;
                report(&health, plc, &mut was_up, &plc_config.id, Ok(()), Some(rtt));
                backoff = BACKOFF_START;
                let sample = Sample {
                    plc,
                    seq,
                    mono,
                    utc,
                    readings,
                };
                if sample_tx.send(sample).await.is_err() {
                    break;
                }
            }
            Err(error) => {
                // Drop the connection: a late answer must never be read as the next request's answer.
                connection = None;
                report(&health, plc, &mut was_up, &plc_config.id, Err(&error), None);
                let mut sample = failed_sample(plc, seq, &plan, &error);
                sample.utc = utc;
                sample.mono = mono;
                if sample_tx.send(sample).await.is_err() {
                    break;
                }
                sleep_or_cancel(jitter(backoff), &shutdown).await;
                backoff = (backoff * 2).min(plc_config.backoff_max);
            }
        }
    }
    if let Some(mut ctx) = connection {
        let _ = tokio::time::timeout(plc_config.timeout, ctx.disconnect()).await;
    }
    Ok(())
}

async fn connect(plc_config: &PlcConfig) -> Result<Context, String> {
    let attempt = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&plc_config.address)
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", plc_config.address))?
            .collect();
        let addr = addrs
            .first()
            .ok_or_else(|| format!("{} resolves to no address", plc_config.address))?;
        tokio_modbus::client::tcp::connect_slave(*addr, Slave(plc_config.unit_id))
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))
    };
    match tokio::time::timeout(plc_config.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("connect timed out after {:?}", plc_config.timeout)),
    }
}

/// Runs every request of the plan once. A transport error or timeout fails the whole cycle;
/// an exception or a wrong-length answer fails only the tags of that request.
async fn poll_once(
    ctx: &mut Context,
    plan: &ReadPlan,
    timeout: Duration,
) -> Result<Vec<Result<Vec<u16>, TagError>>, String> {
    let mut readings: Vec<Result<Vec<u16>, TagError>> =
        vec![Err(TagError::Transport("not read".into())); plan.tags.len()];
    for request in &plan.requests {
        ctx.set_slave(Slave(request.unit_id));
        let words = match tokio::time::timeout(timeout, read(ctx, request)).await {
            Err(_) => return Err(format!("request timed out after {timeout:?}")),
            Ok(Err(error)) => return Err(error.to_string()),
            Ok(Ok(Err(exception))) => Err(TagError::Exception {
                code: u8::from(exception),
                name: format!("{exception:?}"),
            }),
            Ok(Ok(Ok(words))) if words.len() < usize::from(request.count) => {
                Err(TagError::WrongLength {
                    expected: usize::from(request.count),
                    got: words.len(),
                })
            }
            Ok(Ok(Ok(words))) => Ok(words),
        };
        for &tag_index in &request.tags {
            let tag = &plan.tags[tag_index];
            readings[tag_index] = match &words {
                Ok(words) => {
                    let offset = usize::from(tag.address - request.start);
                    Ok(words[offset..offset + usize::from(tag.count())].to_vec())
                }
                Err(error) => Err(error.clone()),
            };
        }
    }
    Ok(readings)
}

async fn read(ctx: &mut Context, request: &ReadRequest) -> tokio_modbus::Result<Vec<u16>> {
    let bits = |r: tokio_modbus::Result<Vec<bool>>| {
        r.map(|inner| inner.map(|bits| bits.into_iter().map(u16::from).collect()))
    };
    match request.table {
        Table::Holding => {
            ctx.read_holding_registers(request.start, request.count)
                .await
        }
        Table::Input => ctx.read_input_registers(request.start, request.count).await,
        Table::Coil => bits(ctx.read_coils(request.start, request.count).await),
        Table::Discrete => bits(ctx.read_discrete_inputs(request.start, request.count).await),
    }
}

fn failed_sample(plc: usize, seq: u64, plan: &ReadPlan, error: &str) -> Sample {
    Sample {
        plc,
        seq,
        mono: Instant::now(),
        utc: now_millis(),
        readings: vec![Err(TagError::Transport(error.to_string())); plan.tags.len()],
    }
}

fn report(
    health: &HealthBoard,
    plc: usize,
    was_up: &mut Option<bool>,
    id: &str,
    outcome: Result<(), &str>,
    rtt_ms: Option<f64>,
) {
    let up = outcome.is_ok();
    if *was_up != Some(up) {
        match outcome {
            Ok(()) => info!(device = %id, "PLC is up."),
            Err(error) => warn!(device = %id, %error, "PLC is down; retrying with backoff."),
        }
        *was_up = Some(up);
    }
    let mut board = health.lock().expect("health board lock is never poisoned");
    let entry = &mut board[plc];
    entry.up = up;
    match outcome {
        Ok(()) => {
            entry.consecutive_failures = 0;
            entry.polls += 1;
            entry.rtt_ms = rtt_ms;
        }
        Err(error) => {
            entry.consecutive_failures += 1;
            entry.failures += 1;
            entry.last_error = Some(error.to_string());
        }
    }
}

fn jitter(base: Duration) -> Duration {
    let factor = rand::rng().random_range(0.8..1.2);
    base.mul_f64(factor)
}

async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(duration) => {}
    }
}

/// Time to sleep until the next multiple of `interval` on the wall clock, and that instant.
fn next_tick(interval: Duration) -> (Duration, Millis) {
    let interval_ms = interval.as_millis().max(1) as i64;
    let now = now_millis();
    let next = (now / interval_ms + 1) * interval_ms;
    (Duration::from_millis((next - now) as u64), next)
}

/// The wall clock in UTC milliseconds; only adapters read it, never `logic`.
pub fn now_millis() -> Millis {
    jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::decode::{DataType, Encoding, WordOrder};
    use proptest::prelude::*;

    fn tag(unit_id: u8, table: Table, address: u16, data_type: DataType) -> TagAddress {
        TagAddress {
            unit_id,
            table,
            address,
            encoding: Encoding {
                data_type,
                word_order: WordOrder::Big,
                byte_swap: false,
            },
            bit: None,
        }
    }

    #[test]
    fn adjacent_tags_of_one_unit_merge_into_one_request() {
        let tags = [
            tag(1, Table::Holding, 100, DataType::U32),
            tag(1, Table::Holding, 102, DataType::U32),
            tag(1, Table::Holding, 120, DataType::U16),
            tag(2, Table::Holding, 100, DataType::U32),
        ];
        let plan = plan_requests(&tags, 125, 16);
        assert_eq!(plan.len(), 2);
        assert_eq!((plan[0].start, plan[0].count), (100, 21));
        assert_eq!(plan[1].unit_id, 2);
    }

    proptest! {
        #[test]
        fn every_tag_is_covered_once_and_no_request_exceeds_the_limit(
            raw in proptest::collection::vec((1u8..3, 0u16..400, 0usize..3), 1..40),
            max_registers in 4u16..125,
            max_gap in 0u16..20,
        ) {
            let types = [DataType::U16, DataType::U32, DataType::U64];
            let mut tags: Vec<TagAddress> = raw
                .into_iter()
                .map(|(unit, address, t)| tag(unit, Table::Holding, address, types[t]))
                .collect();
            tags.dedup();
            let plan = plan_requests(&tags, max_registers, max_gap);
            let mut covered = vec![0; tags.len()];
            for request in &plan {
                prop_assert!(request.count <= max_registers);
                for &i in &request.tags {
                    covered[i] += 1;
                    let t = &tags[i];
                    prop_assert_eq!(t.unit_id, request.unit_id);
                    prop_assert!(t.address >= request.start);
                    prop_assert!(t.address + t.count() <= request.start + request.count);
                }
            }
            prop_assert!(covered.iter().all(|&c| c == 1));
        }
    }
}
