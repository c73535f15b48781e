//! `shopfloor-agent probe`: a read-only commissioning aid. It reads a register (or bit) range through the
//! poller's own connection — function codes 1–4 only, it never writes — bisects around addresses the device
//! refuses, and prints every plausible interpretation. With two samples it ranks counter candidates, so a plant
//! engineer finds the production counter and its byte order in minutes. Pure parts live in `interpret`.

mod interpret;
mod render;

use std::time::Duration;

use crate::logic::decode::Table;
use crate::poller::frame::{exception_name, ResponseError};
use crate::poller::plan::MAX_BITS_PER_REQUEST;
use crate::poller::{ConnectError, Connection, ReadError};

pub use interpret::{
    counter_candidates, interpretations, rows_equal_to, Candidate, Cell, Order, Row,
};
pub use render::reference;

/// Most registers one probe request asks for.
const MAX_REGISTERS: u16 = 125;

/// What to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    /// `host:port` of the PLC or gateway.
    pub address: String,
    /// Unit id.
    pub unit_id: u8,
    /// Table.
    pub table: Table,
    /// First 0-based address.
    pub start: u16,
    /// Number of registers (or bits).
    pub count: u16,
    /// Timeout of the connect and of every request.
    pub timeout: Duration,
}

/// Why a probe could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The range is empty or runs past address 65535.
    #[error(
        "start {start} with count {count} is not a range of 0-based addresses within 0..=65535"
    )]
    Range {
        /// Start asked for.
        start: u16,
        /// Count asked for.
        count: u16,
    },
    /// No connection.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The device answered with an exception that says nothing about addresses (busy, gateway, failure).
    #[error("unit {unit_id} answered exception {code:#04x} ({}); try again or check the unit id", exception_name(*code))]
    Device {
        /// The unit.
        unit_id: u8,
        /// The exception code.
        code: u8,
    },
    /// A read failed (timeout, broken connection, malformed answer).
    #[error("reading {count} item(s) from {start}: {source}")]
    Read {
        /// First address of the failed request.
        start: u16,
        /// Its count.
        count: u16,
        /// What went wrong.
        source: ReadError,
    },
}

/// The outcome of a probe: the first and last sample of the range, and what they mean.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// What was probed.
    pub request: ProbeRequest,
    /// Samples taken.
    pub samples: u32,
    /// Time between samples.
    pub interval: Duration,
    /// The first sample, one cell per address.
    pub first: Vec<Cell>,
    /// The last sample.
    pub last: Vec<Cell>,
    /// Interpretations of the last sample (registers only).
    pub rows: Vec<Row>,
    /// Counter candidates from the first to the last sample, best first (registers, two or more samples).
    pub candidates: Vec<Candidate>,
    /// Requests sent.
    pub requests: u32,
}

/// Connects, samples the range `samples` times (at least once) `interval` apart, and interprets it.
pub async fn probe(
    request: &ProbeRequest,
    samples: u32,
    interval: Duration,
) -> Result<ProbeReport, ProbeError> {
    if request.count == 0 || u32::from(request.start) + u32::from(request.count) > 65_536 {
        return Err(ProbeError::Range {
            start: request.start,
            count: request.count,
        });
    }
    let samples = samples.max(1);
    let mut connection = Connection::connect(&request.address, request.timeout).await?;
    let mut requests = 0u32;
    let first = read_range(&mut connection, request, &mut requests).await?;
    let mut last = first.clone();
    for _ in 1..samples {
        tokio::time::sleep(interval).await;
        last = read_range(&mut connection, request, &mut requests).await?;
    }
    connection.close(request.timeout).await;
    let registers = matches!(request.table, Table::Holding | Table::Input);
    let (rows, candidates) = if registers {
        (
            interpretations(request.start, &last),
            if samples > 1 {
                counter_candidates(request.start, &first, &last)
            } else {
                Vec::new()
            },
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(ProbeReport {
        request: request.clone(),
        samples,
        interval,
        first,
        last,
        rows,
        candidates,
        requests,
    })
}

/// Runs a probe and renders it as the text `shopfloor-agent probe` prints; `find` marks rows equal to a value
/// (for example the count shown on the machine's HMI).
pub async fn run(
    request: &ProbeRequest,
    samples: u32,
    interval: Duration,
    find: Option<f64>,
) -> anyhow::Result<String> {
    let report = probe(request, samples, interval).await?;
    Ok(render::render(&report, find))
}

/// Parses a table name for the command line, in any case: coil, discrete, input or holding (or a long form
/// such as `holding_registers`, as [`Table`]'s `FromStr` accepts).
pub fn parse_table(text: &str) -> Result<Table, String> {
    text.to_ascii_lowercase()
        .parse::<Table>()
        .map_err(|error| error.to_string())
}

/// Reads the whole range in requests of at most 125 registers (2000 bits). A span refused with 02 or 03 is
/// bisected until every refused address is found; 01 (function not supported) refuses the whole span at once.
async fn read_range(
    connection: &mut Connection,
    request: &ProbeRequest,
    requests: &mut u32,
) -> Result<Vec<Cell>, ProbeError> {
    let limit = match request.table {
        Table::Coil | Table::Discrete => MAX_BITS_PER_REQUEST,
        Table::Input | Table::Holding => MAX_REGISTERS,
    };
    let mut cells = vec![Cell::Refused(0); usize::from(request.count)];
    let end = u32::from(request.start) + u32::from(request.count);
    let mut spans: Vec<(u16, u16)> = Vec::new();
    let mut at = u32::from(request.start);
    while at < end {
        let count = (end - at).min(u32::from(limit));
        spans.push((at as u16, count as u16));
        at += count;
    }
    spans.reverse();
    while let Some((start, count)) = spans.pop() {
        *requests += 1;
        let offset = usize::from(start - request.start);
        match connection
            .read(
                request.unit_id,
                request.table,
                start,
                count,
                request.timeout,
            )
            .await
        {
            Ok(words) => {
                for (index, word) in words.into_iter().enumerate() {
                    cells[offset + index] = Cell::Value(word);
                }
            }
            Err(ReadError::Response(ResponseError::Exception { code: 0x02 | 0x03 }))
                if count > 1 =>
            {
                let half = count / 2;
                // Left half first: pushed last.
                spans.push((start + half, count - half));
                spans.push((start, half));
            }
            Err(ReadError::Response(ResponseError::Exception {
                code: code @ 0x01..=0x03,
            })) => {
                for cell in &mut cells[offset..offset + usize::from(count)] {
                    *cell = Cell::Refused(code);
                }
            }
            Err(ReadError::Response(ResponseError::Exception { code })) => {
                return Err(ProbeError::Device {
                    unit_id: request.unit_id,
                    code,
                })
            }
            Err(source) => {
                return Err(ProbeError::Read {
                    start,
                    count,
                    source,
                })
            }
        }
    }
    Ok(cells)
}
