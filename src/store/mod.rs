//! SQLite (WAL) adapter: counter baselines, window records, the delta audit log and the outbox. Sync API, used from
//! ONE dedicated thread through [`StoreHandle`]; it never decides what to write, only how to write it durably.
//!
//! Invariants this module upholds:
//! - One transaction per cycle: [`Store::commit_cycle`] writes baselines, deltas, windows and outbox rows in a single
//!   `BEGIN IMMEDIATE` transaction; it commits all of them or none (DESIGN §2 invariant 3).
//! - `seq` is never reused: the outbox key is `INTEGER PRIMARY KEY AUTOINCREMENT`, so it keeps growing after the
//!   queue empties and after a reopen. Every payload carries its own `seq` and `db_epoch`.
//! - A row leaves the outbox only via [`Store::retire`] (called after its PUBACK, invariant 4).
//! - `db_epoch` is created once per database file, at first open, and is stable across reopens.
//! - Durability settings (`journal_mode=WAL`, `synchronous=FULL`) are read back at open; a mismatch is an error.
//! - A full quota (`SQLITE_FULL` from `max_page_count`) is [`StoreError::Full`], never a panic, and leaves the file
//!   intact because the failed cycle rolls back.

mod error;
mod handle;
mod schema;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior};

use crate::logic::Millis;

pub use error::StoreError;
pub use handle::StoreHandle;

/// Settings of one store database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Byte quota of the database file; turned into `PRAGMA max_page_count` (quota / page size).
    pub max_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Everything one processor cycle persists, committed together by [`Store::commit_cycle`].
#[derive(Debug, Clone, Default)]
pub struct CycleWrite {
    /// Counter baselines to upsert: (counter key, `CounterState` JSON).
    pub counters: Vec<(String, String)>,
    /// Counter steps to append to the delta audit log.
    pub deltas: Vec<DeltaRow>,
    /// Window records to upsert: (window key, `WindowRecord` JSON).
    pub windows: Vec<(String, String)>,
    /// Keys of windows that left the restatement horizon; deleted after the upserts (removal wins).
    pub windows_removed: Vec<String>,
    /// Messages to enqueue; the store adds `seq` and `db_epoch` to each body.
    pub outbox: Vec<OutboxDraft>,
    /// Time of the cycle, stamped on updated rows and as `enqueued_at`.
    pub now: Millis,
}

/// One counter step in the delta audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRow {
    /// Counter key (machine and channel).
    pub key: String,
    /// Step kind in its serde name (`normal`, `wrap`, `reset`, ...).
    pub kind: String,
    /// Counted (or, for `rejected`, quarantined) amount.
    pub delta: u64,
    /// Raw register value the step was derived from.
    pub raw: u64,
    /// Time of the previous accepted sample.
    pub t_from: Millis,
    /// Time of this sample.
    pub t_to: Millis,
}

/// A message waiting for its `seq`: the body must be a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxDraft {
    /// MQTT topic the message is published on.
    pub topic: String,
    /// Payload without `seq` and `db_epoch`; the store adds both.
    pub body: serde_json::Value,
}

/// A durable message in the outbox, as handed to the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Position in the outbox; never reused within one database file.
    pub seq: i64,
    /// MQTT topic.
    pub topic: String,
    /// Serialized JSON payload, including `seq` and `db_epoch`.
    pub payload: Vec<u8>,
    /// Time of the cycle that enqueued the row.
    pub enqueued_at: Millis,
}

/// Size of the unsent outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Number of rows waiting for a PUBACK.
    pub rows: u64,
    /// Sum of their payload sizes in bytes.
    pub bytes: u64,
    /// `enqueued_at` of the oldest row, `None` when the outbox is empty.
    pub oldest_enqueued_at: Option<Millis>,
}

/// The open database; owned by exactly one thread (see [`StoreHandle`]).
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    db_epoch: String,
    created_at: Millis,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies and checks pragmas, migrates the schema and
    /// creates `db_epoch` on first open.
    pub fn open(path: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let mut conn = Connection::open(path)?;
        schema::apply_pragmas(&conn, opts.max_bytes)?;
        schema::migrate(&mut conn)?;
        let (db_epoch, created_at) = schema::ensure_meta(&mut conn, wall_clock_millis())?;
        tracing::debug!(path = %path.display(), %db_epoch, "Store opened.");
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            db_epoch,
            created_at,
        })
    }

    /// Random 16-hex-digit identity of this database file; published with every message for gap detection.
    pub fn db_epoch(&self) -> &str {
        &self.db_epoch
    }

    /// Time the database file was created (first open).
    pub fn created_at(&self) -> Millis {
        self.created_at
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All persisted counter baselines as (key, `CounterState` JSON), ordered by key.
    pub fn load_counters(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(schema::SELECT_COUNTERS)?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// All persisted window records (`WindowRecord` JSON), ordered by key.
    pub fn load_windows(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(schema::SELECT_WINDOWS)?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes one cycle in ONE `BEGIN IMMEDIATE` transaction and returns the new outbox seqs in draft order.
    /// On any error nothing of the cycle is stored.
    pub fn commit_cycle(&mut self, cycle: &CycleWrite) -> Result<Vec<i64>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut upsert = tx.prepare_cached(schema::UPSERT_COUNTER)?;
            for (key, state) in &cycle.counters {
                upsert.execute((key, state, cycle.now))?;
            }
        }
        {
            let mut insert = tx.prepare_cached(schema::INSERT_DELTA)?;
            for d in &cycle.deltas {
                insert.execute((
                    &d.key,
                    &d.kind,
                    u64_to_sql(d.delta),
                    u64_to_sql(d.raw),
                    d.t_from,
                    d.t_to,
                ))?;
            }
        }
        {
            let mut upsert = tx.prepare_cached(schema::UPSERT_WINDOW)?;
            for (key, record) in &cycle.windows {
                upsert.execute((key, record, cycle.now))?;
            }
            let mut delete = tx.prepare_cached(schema::DELETE_WINDOW)?;
            for key in &cycle.windows_removed {
                delete.execute([key])?;
            }
        }
        let mut seqs = Vec::with_capacity(cycle.outbox.len());
        {
            let mut insert = tx.prepare_cached(schema::INSERT_OUTBOX)?;
            let mut set_payload = tx.prepare_cached(schema::SET_OUTBOX_PAYLOAD)?;
            for draft in &cycle.outbox {
                let mut body = draft.body.clone();
                let fields = body
                    .as_object_mut()
                    .ok_or_else(|| StoreError::PayloadNotObject {
                        topic: draft.topic.clone(),
                    })?;
                let seq = insert.insert((&draft.topic, cycle.now))?;
                fields.insert("seq".to_owned(), seq.into());
                fields.insert("db_epoch".to_owned(), self.db_epoch.clone().into());
                set_payload.execute((seq, serde_json::to_vec(&body)?))?;
                seqs.push(seq);
            }
        }
        tx.commit()?;
        Ok(seqs)
    }

    /// Up to `limit` outbox rows with `seq > after_seq`, in seq order.
    pub fn unacked(&self, after_seq: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(schema::SELECT_UNACKED)?;
        let rows = stmt.query_map((after_seq, usize_to_sql(limit)), |row| {
            Ok(OutboxRow {
                seq: row.get(0)?,
                topic: row.get(1)?,
                payload: row.get(2)?,
                enqueued_at: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes the given rows (their PUBACK arrived); returns how many existed. Unknown seqs are ignored, so a
    /// duplicate PUBACK is harmless.
    pub fn retire(&mut self, seqs: &[i64]) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut retired = 0;
        {
            let mut delete = tx.prepare_cached(schema::DELETE_OUTBOX_ROW)?;
            for seq in seqs {
                retired += delete.execute([seq])?;
            }
        }
        tx.commit()?;
        Ok(retired)
    }

    /// Rows, payload bytes and the oldest `enqueued_at` of the outbox.
    pub fn backlog(&self) -> Result<Backlog, StoreError> {
        let (rows, bytes, oldest_enqueued_at): (i64, i64, Option<Millis>) = self
            .conn
            .prepare_cached(schema::SELECT_BACKLOG)?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        Ok(Backlog {
            rows: u64::try_from(rows).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
            oldest_enqueued_at,
        })
    }

    /// Highest seq ever assigned in this database file (0 if none), even if that row was retired.
    pub fn last_seq(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(schema::SELECT_LAST_SEQ)?
            .query_row([], |row| row.get(0))?)
    }

    /// Up to `limit` audit-log entries with `id > after_id`, in id order, as (id, row).
    pub fn deltas_after(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<(i64, DeltaRow)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(schema::SELECT_DELTAS_AFTER)?;
        let rows = stmt.query_map((after_id, usize_to_sql(limit)), |row| {
            Ok((
                row.get(0)?,
                DeltaRow {
                    key: row.get(1)?,
                    kind: row.get(2)?,
                    delta: u64_from_sql(row.get(3)?),
                    raw: u64_from_sql(row.get(4)?),
                    t_from: row.get(5)?,
                    t_to: row.get(6)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes audit-log entries whose `t_to` is before `older_than`; returns how many were deleted.
    pub fn prune_deltas(&mut self, older_than: Millis) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .execute(schema::DELETE_DELTAS_BEFORE, [older_than])?)
    }

    /// Runs `PRAGMA integrity_check`; returns the problems found (empty when the file is sound).
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        self.conn.pragma_query(None, "integrity_check", |row| {
            let line: String = row.get(0)?;
            if line != "ok" {
                problems.push(line);
            }
            Ok(())
        })?;
        Ok(problems)
    }
}

/// SQLite integers are signed 64-bit; u64 values are stored by bit pattern so none is lost or rejected.
fn u64_to_sql(value: u64) -> i64 {
    value as i64
}

/// Inverse of [`u64_to_sql`].
fn u64_from_sql(value: i64) -> u64 {
    value as u64
}

fn usize_to_sql(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The adapter's only clock read: the creation time recorded in a new database file.
fn wall_clock_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
