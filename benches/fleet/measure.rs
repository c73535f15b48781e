//! What a process costs, read from `/proc`: CPU time (user + system), peak and current resident memory,
//! bytes written to storage and write calls. Read while the process runs: a reaped child has no `/proc` entry.

use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Clock ticks per second of `/proc/PID/stat` (`sysconf(_SC_CLK_TCK)`, 100 on every Linux this runs on).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// When it was read.
    pub at: Instant,
    /// User + system CPU time of every thread so far.
    pub cpu: Duration,
    /// Peak resident set size so far (`VmHWM`), bytes.
    pub peak_rss: u64,
    /// Resident set size now (`VmRSS`), bytes.
    pub rss: u64,
    /// Bytes the process caused to be sent to storage (`write_bytes` of `/proc/PID/io`).
    pub write_bytes: u64,
}

/// What happened between two readings.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// Wall-clock time between the readings.
    pub elapsed: Duration,
    /// CPU time used in between.
    pub cpu: Duration,
    /// Bytes written to storage in between.
    pub write_bytes: u64,
    /// Peak resident set size at the later reading, bytes.
    pub peak_rss: u64,
}

impl Span {
    /// CPU use as a share of one core (1.0 = one core busy all the time).
    pub fn core_share(&self) -> f64 {
        self.cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Bytes written per hour at this span's rate.
    pub fn write_bytes_per_hour(&self) -> f64 {
        self.write_bytes as f64 * 3600.0 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// CPU seconds per 1000 operations (polls) done in this span.
    pub fn cpu_per_1000(&self, operations: u64) -> f64 {
        self.cpu.as_secs_f64() * 1000.0 / (operations.max(1) as f64)
    }
}

impl Usage {
    /// Reads the counters of process `pid` (use `std::process::id()` for this one).
    pub fn of(pid: u32) -> anyhow::Result<Usage> {
        let at = Instant::now();
        let stat = read(pid, "stat")?;
        // Fields after the command name (which may hold spaces) in `(...)`: state is field 3, utime 14, stime 15.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .context("malformed /proc/PID/stat")?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |index: usize| -> anyhow::Result<f64> {
            let field = fields.get(index - 3).context("short /proc/PID/stat")?;
            Ok(field.parse::<f64>()?)
        };
        let cpu = Duration::from_secs_f64((ticks(14)? + ticks(15)?) / CLOCK_TICKS_PER_SECOND);
        let status = read(pid, "status")?;
        let kib = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        let io = read(pid, "io")?;
        let write_bytes = io
            .lines()
            .find_map(|line| line.strip_prefix("write_bytes:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .context("no write_bytes in /proc/PID/io")?;
        Ok(Usage {
            at,
            cpu,
            peak_rss: kib("VmHWM:"),
            rss: kib("VmRSS:"),
            write_bytes,
        })
    }

    /// The span from `earlier` to this reading.
    pub fn since(&self, earlier: &Usage) -> Span {
        Span {
            elapsed: self.at.saturating_duration_since(earlier.at),
            cpu: self.cpu.saturating_sub(earlier.cpu),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
            peak_rss: self.peak_rss,
        }
    }
}

fn read(pid: u32, file: &str) -> anyhow::Result<String> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))
}

/// The `q` quantile (0..=1) of `values` by the nearest-rank method; `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}
