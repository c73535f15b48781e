//! `shopfloor-agent status`: what a plant engineer with a terminal needs to see, read from the agent's database
//! file without disturbing a running agent (a read-only connection, no lock, no write; `store::StatusDb`).
//!
//! Device health (PLCs and units up or down) lives in the agent's memory; the processor persists a small
//! snapshot of it when it changed, checked at every health tick, and at least every ten minutes
//! ([`persist_health`]), so `status` shows it with its age. The JSON field
//! names are stable (README, "Status and metrics"); the text table shows the same figures.

mod render;
mod snapshot;

use anyhow::Context as _;
use serde::Serialize;

use crate::config::Config;
use crate::logic::Millis;
use crate::store::{database_path, DropClass, StatusDb, StoreHandle, StoreStatus};

pub use snapshot::{
    DeviceSnapshot, HealthHistory, HealthSnapshot, UnitSnapshot, SNAPSHOT_REFRESH_MS,
};

/// An instant with its age, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    /// RFC 3339 in the agent's time zone.
    pub at: String,
    /// Seconds between it and the moment `status` ran (negative if the wall clock went back since).
    pub age_s: f64,
}

/// The unsent outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacklogStatus {
    /// Rows waiting for a PUBACK.
    pub rows: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// When the oldest of them was enqueued; `null` when the outbox is empty.
    pub oldest_unsent: Option<Moment>,
}

/// Drops and refusals, as the store counts them since its database file was created.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DropStatus {
    /// Unsent rows dropped on overflow, by class (the store's class names).
    pub rows_by_class: std::collections::BTreeMap<&'static str, u64>,
    /// All classes together.
    pub rows_total: u64,
    /// Delta audit-log entries deleted on overflow.
    pub deltas_pruned: u64,
    /// Drafts refused because their payload was too large.
    pub refused: u64,
}

/// Everything `status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    /// The database file read.
    pub database: String,
    /// Its epoch (consumers see it in every message).
    pub db_epoch: Option<String>,
    /// When `status` ran.
    pub now: String,
    /// The unsent outbox.
    pub backlog: BacklogStatus,
    /// Drops and refusals.
    pub drops: DropStatus,
    /// The last row retired after its PUBACK; `null` if none was recorded yet.
    pub last_publish: Option<Moment>,
    /// The agent's last start (when it last opened the database).
    pub last_restart: Option<Moment>,
    /// Quarantined counter deltas not released yet; `null` for a database from before the quarantine releases.
    pub quarantined_pending: Option<u64>,
    /// PLC and unit health as the agent last persisted it; `null` before its first health tick.
    pub devices: Option<DevicesStatus>,
}

/// The persisted device health and its age.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DevicesStatus {
    /// When the agent wrote the snapshot, and how old it is.
    pub snapshot: Moment,
    /// PLCs up out of all.
    pub plcs_up: usize,
    /// Every PLC, in configuration order.
    pub plcs: Vec<PlcStatus>,
}

/// One PLC connection in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlcStatus {
    /// PLC id.
    pub id: String,
    /// Whether the connection reads.
    pub up: bool,
    /// Since when (as the running agent saw it: at most its start).
    pub since: Moment,
    /// Its last error, if any.
    pub last_error: Option<String>,
    /// The units behind it.
    pub units: Vec<UnitStatus>,
}

/// One unit behind a PLC connection in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitStatus {
    /// Unit id.
    pub unit_id: u8,
    /// Whether it answers.
    pub up: bool,
    /// Since when.
    pub since: Moment,
    /// Its last error, if any.
    pub last_error: Option<String>,
}

/// Reads the store of the agent configured by `config` at `now` and renders the report, as text or JSON.
pub fn run(config: &Config, json: bool, now: Millis) -> anyhow::Result<String> {
    let path = database_path(&config.agent.data_dir);
    let stored = StatusDb::open(&path)
        .and_then(|mut db| db.read())
        .context("reading the agent's status")?;
    let report = report(config, &path.display().to_string(), &stored, now);
    Ok(if json {
        let mut text = serde_json::to_string_pretty(&report).expect("JSON values always serialise");
        text.push('\n');
        text
    } else {
        render::text(&report)
    })
}

/// The report for `stored`, read at `now`.
pub fn report(config: &Config, database: &str, stored: &StoreStatus, now: Millis) -> StatusReport {
    let moment = |at: Millis| Moment {
        at: crate::logic::window::rfc3339(at, &config.agent.timezone),
        age_s: (now - at) as f64 / 1000.0,
    };
    let devices = stored
        .health_snapshot
        .as_deref()
        .and_then(|json| serde_json::from_str::<HealthSnapshot>(json).ok())
        .map(|snapshot| DevicesStatus {
            snapshot: moment(snapshot.at),
            plcs_up: snapshot.plcs.iter().filter(|plc| plc.up).count(),
            plcs: snapshot
                .plcs
                .into_iter()
                .map(|plc| PlcStatus {
                    since: moment(plc.since),
                    units: plc
                        .units
                        .into_iter()
                        .map(|unit| UnitStatus {
                            unit_id: unit.unit_id,
                            up: unit.up,
                            since: moment(unit.since),
                            last_error: unit.last_error,
                        })
                        .collect(),
                    id: plc.id,
                    up: plc.up,
                    last_error: plc.last_error,
                })
                .collect(),
        });
    StatusReport {
        database: database.to_owned(),
        db_epoch: stored.db_epoch.clone(),
        now: crate::logic::window::rfc3339(now, &config.agent.timezone),
        backlog: BacklogStatus {
            rows: stored.backlog.rows,
            bytes: stored.backlog.bytes,
            oldest_unsent: stored.backlog.oldest_enqueued_at.map(moment),
        },
        drops: DropStatus {
            rows_by_class: DropClass::ALL
                .iter()
                .map(|class| (class.name(), stored.drops.rows(*class)))
                .collect(),
            rows_total: stored.drops.rows_dropped(),
            deltas_pruned: stored.drops.deltas_pruned,
            refused: stored.drops.refused,
        },
        last_publish: stored.last_publish_at.map(moment),
        last_restart: stored.opened_at.map(moment),
        quarantined_pending: stored.quarantined_pending,
        devices,
    }
}

/// Records the health board in `history` at `now` and persists the snapshot for `status` when it changed or
/// the stored one is [`SNAPSHOT_REFRESH_MS`] old. A failed write is only logged at debug level: the
/// health message reports store trouble already, and the next tick retries.
pub async fn persist_health(
    history: &mut HealthHistory,
    board: &crate::poller::HealthBoard,
    store: &StoreHandle,
    now: Millis,
) {
    let snapshot = {
        let board = board.lock().expect("health board lock is never poisoned");
        history.observe(&board, now)
    };
    if !history.needs_saving(&snapshot) {
        return;
    }
    let json = serde_json::to_string(&snapshot).expect("JSON values always serialise");
    match store.call(move |s| s.save_health_snapshot(&json)).await {
        Ok(Ok(())) => history.saved(snapshot),
        Ok(Err(error)) => tracing::debug!(%error, "Health snapshot not saved."),
        Err(error) => tracing::debug!(error = format!("{error:#}"), "Health snapshot not saved."),
    }
}

#[cfg(test)]
mod tests;
