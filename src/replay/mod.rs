//! `shopfloor-agent replay`: feeds recorded poll values through the same processor `run` uses, with time
//! taken from the samples, and writes every closed rollup as one JSON line, as `run` publishes it. It
//! never opens the agent's store and needs no broker or PLC.
//!
//! Layout: this file (the drive loop and the output), `input` (the CSV header and records),
//! `encode` (a value back into the register words the PLC would return, so the real decode path runs).

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Clock, Now};
use crate::config::Config;
use crate::logic::Millis;
use crate::poller::{ReadPlan, Sample, TagError};
use crate::processor::{DraftKind, Processor};

pub mod encode;
pub mod input;

pub use input::InputError;

/// What replay writes as `db_epoch`: no store numbers its rows, and a real `db_epoch` is 16 hex digits,
/// so a consumer can never mistake replayed rollups for those of a real database.
pub const REPLAY_DB_EPOCH: &str = "replay";

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The input is bad at a line and column.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The input could not be read.
    #[error("cannot read the samples: {0}")]
    Read(#[source] std::io::Error),
    /// The output could not be written.
    #[error("cannot write the rollups: {0}")]
    Write(#[source] std::io::Error),
}

/// What a replay read and wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Poll records read.
    pub records: usize,
    /// Rollup lines written.
    pub rollups: u64,
    /// Events (gaps, counter anomalies, ...) the processor raised; not written.
    pub events: u64,
}

/// The clock the processor is built with: fixed at the first record. The processor only takes its
/// monotonic origin from it; every sample carries its own time.
#[derive(Debug)]
struct FixedClock(Now);

impl Clock for FixedClock {
    fn now(&self) -> Now {
        self.0
    }
}

/// Replays `input` (header, then records) and writes one JSON line per closed rollup to `output`:
/// each record is one poll of its machine, windows close as `run` closes them (when their grace has
/// passed by the records' time), and at the end every window that ended at or before the last record's
/// time is closed. `seq` numbers the written lines from 1; `db_epoch` is [`REPLAY_DB_EPOCH`].
pub fn replay(
    config: Arc<Config>,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<ReplaySummary, ReplayError> {
    let mut lines = input.lines().enumerate();
    let header = match lines.next() {
        Some((_, line)) => line.map_err(ReplayError::Read)?,
        None => String::new(),
    };
    let mut reader = input::Reader::new(&config, &header)?;
    let mut drive: Option<Drive> = None;
    let mut summary = ReplaySummary::default();
    for (index, line) in lines {
        let line = line.map_err(ReplayError::Read)?;
        if line.trim().is_empty() {
            continue;
        }
        let record = reader.record(index + 1, &line)?;
        let drive = drive.get_or_insert_with(|| Drive::new(Arc::clone(&config), record.utc));
        drive.poll(&record);
        summary.records += 1;
        drive.write(&mut output, &mut summary)?;
    }
    if let Some(mut drive) = drive {
        drive.processor.close_ended(drive.last);
        drive.write(&mut output, &mut summary)?;
    }
    output.flush().map_err(ReplayError::Write)?;
    Ok(summary)
}

/// The processor and what turns records into its samples.
struct Drive {
    config: Arc<Config>,
    processor: Processor,
    plans: Vec<ReadPlan>,
    /// The monotonic instant of the first record; a record's is this plus its time since the first,
    /// so no step of the wall clock is ever seen.
    mono_origin: Instant,
    first: Millis,
    /// The latest record's time.
    last: Millis,
    /// Poll sequence number per PLC.
    seqs: Vec<u64>,
}

impl Drive {
    fn new(config: Arc<Config>, first: Millis) -> Drive {
        let plans: Vec<ReadPlan> = (0..config.plcs.len())
            .map(|plc| ReadPlan::for_plc(&config, plc))
            .collect();
        let identity = crate::supervisor::identity(&config);
        let mono_origin = Instant::now();
        let clock = Arc::new(FixedClock(Now {
            mono: mono_origin,
            utc: first,
        }));
        let seqs = vec![0; config.plcs.len()];
        let processor = Processor::restore(
            Arc::clone(&config),
            identity,
            &plans,
            Default::default(),
            Vec::new(),
            clock,
        );
        Drive {
            config,
            processor,
            plans,
            mono_origin,
            first,
            last: first,
            seqs,
        }
    }

    /// One record, as the run loop handles a sample: windows whose deadline passed before the poll
    /// close first (the loop's timer), then the sample, then whatever it made due (restatements).
    fn poll(&mut self, record: &input::Record) {
        let plc = self.config.machines[record.machine].plc;
        let plan = &self.plans[plc];
        let mut readings: Vec<Result<Vec<u16>, TagError>> =
            vec![Err(TagError::Transport("not read in this record".into())); plan.tags.len()];
        for (tag, words) in &record.reads {
            let index = plan
                .index_of(tag)
                .expect("every machine tag is in its PLC's plan");
            readings[index] = words
                .clone()
                .ok_or_else(|| TagError::Transport("empty cell: the read failed".into()));
        }
        self.seqs[plc] += 1;
        let since_first = u64::try_from(record.utc - self.first).unwrap_or(0);
        let sample = Sample {
            plc,
            seq: self.seqs[plc],
            mono: self.mono_origin + Duration::from_millis(since_first),
            utc: record.utc,
            readings,
            events: Vec::new(),
        };
        self.processor.close_due(record.utc);
        self.processor.on_machine_sample(&sample, record.machine);
        // No store is behind this processor and nothing leaves its memory: an empty answer is exact.
        self.processor.load_deferred_with(|_, _| Vec::new());
        self.processor.close_due(record.utc);
        self.last = record.utc;
    }

    /// Writes the rollups closed so far, each with `seq` and `db_epoch` as the store would add them.
    fn write(
        &mut self,
        output: &mut impl Write,
        summary: &mut ReplaySummary,
    ) -> Result<(), ReplayError> {
        for (kind, draft) in self.processor.take_drafts() {
            if kind == DraftKind::Event {
                summary.events += 1;
                continue;
            }
            summary.rollups += 1;
            let mut body = draft.body;
            if let Some(object) = body.as_object_mut() {
                object.insert("seq".to_owned(), summary.rollups.into());
                object.insert("db_epoch".to_owned(), REPLAY_DB_EPOCH.into());
            }
            let line = serde_json::to_string(&body).expect("a JSON value always serialises");
            writeln!(output, "{line}").map_err(ReplayError::Write)?;
        }
        Ok(())
    }
}
