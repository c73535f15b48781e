//! What `shopfloor-agent status` reads: [`StatusDb`] is a read-only connection to the database file of a
//! (possibly running) agent, like the quarantine's review side. It never creates, migrates or writes the file
//! and takes no lock: in WAL mode a reader never blocks the agent. [`StoreStatus`] is one consistent read
//! (one read transaction) of the backlog, the drop totals, the last retirement, the last open, the pending
//! quarantine and the latest device health snapshot the processor wrote ([`Store::save_health_snapshot`]).

use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::{meta, schema, Backlog, DropCounters, Store, StoreError};
use crate::logic::counter::StepKind;
use crate::logic::Millis;

/// Why the status cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// There is no database file at the path (wrong `agent.data_dir`, or the agent never ran).
    #[error("no store database at {path} (check agent.data_dir; the agent creates it at its first start)")]
    NoDatabase {
        /// The database path.
        path: PathBuf,
    },
    /// The file's schema is newer than this build, or another store failure.
    #[error("cannot read the store {path}: {source}")]
    Store {
        /// The database path.
        path: PathBuf,
        /// What failed.
        source: StoreError,
    },
}

/// One read of the figures `status` shows, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    /// The database file's epoch.
    pub db_epoch: Option<String>,
    /// The unsent outbox.
    pub backlog: Backlog,
    /// Rows dropped and drafts refused since the file was created.
    pub drops: DropCounters,
    /// When a row was last retired after its PUBACK; `None` if never (since this was recorded).
    pub last_publish_at: Option<Millis>,
    /// When the agent last opened the file (its last start).
    pub opened_at: Option<Millis>,
    /// Quarantined counter deltas not released yet; `None` for a schema without the quarantine releases.
    pub quarantined_pending: Option<u64>,
    /// The latest device health snapshot (JSON) the agent wrote; `None` if none yet.
    pub health_snapshot: Option<String>,
}

/// A read-only connection for `status`.
#[derive(Debug)]
pub struct StatusDb {
    conn: Connection,
    path: PathBuf,
}

impl StatusDb {
    /// Opens the database at `path` read-only; a missing file is [`StatusError::NoDatabase`].
    pub fn open(path: &Path) -> Result<StatusDb, StatusError> {
        let failed = |source: StoreError| StatusError::Store {
            path: path.to_path_buf(),
            source,
        };
        if !path.is_file() {
            return Err(StatusError::NoDatabase {
                path: path.to_path_buf(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|error| failed(error.into()))?;
        conn.busy_timeout(schema::BUSY_TIMEOUT)
            .map_err(|error| failed(error.into()))?;
        Ok(StatusDb {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Reads every figure in one read transaction.
    pub fn read(&mut self) -> Result<StoreStatus, StatusError> {
        let path = self.path.clone();
        read(&mut self.conn).map_err(|source| StatusError::Store { path, source })
    }
}

fn read(conn: &mut Connection) -> Result<StoreStatus, StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let supported = i64::try_from(schema::MIGRATIONS.len()).expect("the migration list is tiny");
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    let tx = conn.transaction()?;
    let backlog = super::totals::read_backlog(&tx)?;
    let quarantined_pending = if found >= schema::QUARANTINE_SCHEMA_VERSION {
        let count: i64 = tx.query_row(
            schema::COUNT_QUARANTINED_PENDING,
            [StepKind::Rejected],
            |row| row.get(0),
        )?;
        Some(u64::try_from(count).unwrap_or(0))
    } else {
        None
    };
    let status = StoreStatus {
        db_epoch: text(meta::read_value(&tx, schema::META_DB_EPOCH)?),
        backlog,
        drops: DropCounters::peek(&tx)?,
        last_publish_at: millis(meta::read_value(&tx, schema::META_LAST_PUBLISH_AT)?),
        opened_at: millis(meta::read_value(&tx, schema::META_OPENED_AT)?),
        quarantined_pending,
        health_snapshot: text(meta::read_value(&tx, schema::META_HEALTH_SNAPSHOT)?),
    };
    tx.finish()?;
    Ok(status)
}

fn text(value: Option<Value>) -> Option<String> {
    match value? {
        Value::Text(text) => Some(text),
        _ => None,
    }
}

fn millis(value: Option<Value>) -> Option<Millis> {
    meta::parse_u64(&value?).and_then(|millis| i64::try_from(millis).ok())
}

impl Store {
    /// Records the latest device health snapshot (JSON) for `status`; one small write of its own.
    pub fn save_health_snapshot(&mut self, json: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(schema::UPSERT_META)?
            .execute((schema::META_HEALTH_SNAPSHOT, json))?;
        Ok(())
    }
}
