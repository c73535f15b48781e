//! SQLite (WAL) adapter: counter baselines, window records, the delta audit log and the outbox. Sync API, used from
//! ONE dedicated thread through [`StoreHandle`]; it never decides what to write, only how to write it durably.
//!
//! Guaranteed:
//! - One transaction per processor commit (the polls of up to `store.commit_interval`): [`Store::commit_cycle`]
//!   writes baselines, deltas, windows, outbox rows, overflow drops and the drop counters in a single
//!   `BEGIN IMMEDIATE` transaction; all of them or none (invariant 3).
//! - `seq` never goes back within one database file: the outbox key is `INTEGER PRIMARY KEY AUTOINCREMENT`, so it
//!   keeps growing after the queue empties, after drops and after a reopen. Every payload carries `seq` and
//!   `db_epoch`; a new `db_epoch` (new file, or a file replaced at start-up) tells consumers seq restarted.
//! - A row leaves the outbox only via [`Store::retire`] (after its PUBACK, invariant 4) or as a counted, reported
//!   overflow drop ([`CommitOutcome::dropped`], [`Store::drops`]); never silently (invariant 5).
//! - Quota (ARCHITECTURE.md, invariant 7): `max_page_count` = `max_bytes` / page size, so `SQLITE_FULL` comes before the disk fills.
//!   On `SQLITE_FULL` the cycle rolls back and is retried in a new transaction that first deletes victims worth
//!   about 5 % of the quota (10 %, 15 %, ... on further attempts): the delta audit log oldest first, then unsent
//!   rows by [`DropClass`] (periods < 15m, < 1h, unknown periods, ≥ 1h, and shift/day/event rows only when nothing
//!   else is left), oldest first within a class. The cycle's own rows are always kept, and so are rows the
//!   publisher has claimed ([`Store::claim`]) and not retired or released: they may be on the broker, and a gap
//!   record must not count a delivered row as lost. Only when everything droppable would not make room is the
//!   answer [`StoreError::Full`], with nothing dropped. Freed pages are reused (no `auto_vacuum`, so the file
//!   never shrinks), and commits resume by themselves once rows are retired.
//!   The WAL (≤ `journal_size_limit` after checkpoints) and start-up migrations are outside the quota.
//! - A full filesystem is not a full quota: an `SQLITE_FULL` while the file is well below its quota is
//!   [`StoreError::DiskFull`]. Nothing is dropped for it; the WAL is checkpointed and truncated to zero bytes,
//!   the automatic checkpoint threshold is lowered to half the WAL size that met the full disk (SQLite's default
//!   needs a WAL of ~4 MiB, which a small filesystem may never hold), and the write is retried once. The cycle
//!   then stays with the caller, and commits resume by themselves once there is room.
//! - A payload larger than `max_payload_bytes` is refused at enqueue, counted and reported, never stored.
//! - The backlog figure ([`Store::backlog`]) is kept, not scanned (`totals`): the outbox's rows and payload
//!   bytes are written to the meta table in the same transaction as every enqueue, overflow drop and
//!   retirement, so they always equal the committed rows, also after a crash; the oldest `enqueued_at` is that
//!   of the lowest seq (queue order).
//! - Quarantine (`quarantine`): a release request is recorded by `shopfloor-agent quarantine release` on its own
//!   connection and marked released by [`Store::commit_cycle_releasing`] in the transaction that commits the
//!   windows it restates, so a release is applied exactly once, even across a crash.
//! - Retention (`retention`): window records are read back by machine, period and start range and deleted by end
//!   time, the delta audit log by age and beyond a byte share; in small batches, with cutoffs the caller chooses.
//! - Start-up ([`Store::open`]): pragmas are set and read back, `PRAGMA quick_check` runs, every statement is
//!   prepared. A file that fails any of this (corrupt, not a database, truncated, empty, a newer schema, or a
//!   write-ahead log missing after an unclean stop) is moved aside with its `-wal` and `-shm` and replaced by a
//!   fresh database with a new `db_epoch`, reported by [`Store::recovery`]. A lost WAL is detected by the
//!   `in_use` meta marker: set (and checkpointed) at open, cleared at a clean close, while the `-wal` file exists
//!   for the whole session. Failures that are not the file's (busy, permissions, disk full) are errors and move
//!   nothing; there is one replacement per open, never a loop.
//! - The database file stays the one at its path: its device and inode are recorded at open and checked by
//!   [`Store::check_in_place`] (every commit; the supervisor every few seconds). A file deleted or replaced
//!   under the store is [`StoreError::Displaced`] (the agent must stop), and the note left at the path makes
//!   the next open report it as a [`Recovery`] without `moved_to`.
//! - Files are private whatever the umask: the directory 0700, the database (hence its `-wal`, `-shm`) 0600;
//!   wider modes found at open are tightened. One agent per data directory (lock file) and per MQTT client id
//!   (an abstract Unix socket, outside the data directory): [`lock_data_dir`], [`lock_client_id`].
//! - A damaged meta value (`db_epoch`, `created_at`, the `in_use` marker, a drop counter) does not condemn the
//!   file: it is reset with a warning and the unsent rows stay. A reset `db_epoch` is a new random one, since
//!   nobody can tell whether the file's seqs continue the old epoch's; consumers see seq restart as for a new file.
//!
//! Not guaranteed: bit flips inside a record's content are not detected (SQLite pages carry no checksums); claims
//! live in memory, so a row in flight when the agent crashed can be dropped after the restart and still have
//! reached the broker (its gap record then overstates the loss); a gap record for a drop is the caller's to
//! enqueue, so a crash right after the drop's commit loses the record but not the counters; data in a file moved
//! aside is not published (it is kept for manual recovery), nor are the unsent rows of a database file deleted
//! while the store had it open.

mod commit;
mod data_dir;
mod error;
mod handle;
mod meta;
mod open;
mod quarantine;
mod quota;
mod retention;
mod schema;
mod space;
mod status;
#[cfg(test)]
mod tests;
mod totals;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension as _, ToSql, TransactionBehavior};
use serde::de::IntoDeserializer as _;
use serde::Deserialize as _;

use crate::logic::counter::StepKind;
use crate::logic::window::Period;
use crate::logic::Millis;

pub use data_dir::{
    database_path, lock_client_id, lock_data_dir, ClientIdLock, DataDirLock, LockError,
    DATABASE_FILE,
};
pub use error::StoreError;
pub use handle::StoreHandle;
pub use open::Recovery;
pub use quarantine::{
    QuarantineDb, QuarantineError, QuarantinedDelta, ReleaseRequest, ReleaseStatus,
};
pub use quota::{DropClass, DropCounters, DroppedRange};
pub use status::{StatusDb, StatusError, StoreStatus};

/// Settings of one store database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Byte quota of the database file; turned into `PRAGMA max_page_count` (quota / page size).
    pub max_bytes: u64,
    /// Largest serialized payload (including `seq` and `db_epoch`) accepted into the outbox; larger drafts are
    /// refused at enqueue, so a message the broker would reject can never block the queue.
    pub max_payload_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024 * 1024,
            max_payload_bytes: 256 * 1024,
        }
    }
}

/// Everything one processor commit persists (the polls since the last one), committed together by
/// [`Store::commit_cycle`].
#[derive(Debug, Clone, Default)]
pub struct CycleWrite {
    /// Counter baselines to upsert: (counter key, `CounterState` JSON).
    pub counters: Vec<(String, String)>,
    /// Counter steps to append to the delta audit log.
    pub deltas: Vec<DeltaRow>,
    /// Window records to upsert: (window key, `WindowRecord` JSON).
    pub windows: Vec<(String, String)>,
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
    /// What the step was; stored as its serde name (`normal`, `wrap`, `reset`, ...).
    pub kind: StepKind,
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
    /// Which rows the overflow policy drops first; set by the code that knows what the message is.
    pub class: DropClass,
}

impl OutboxDraft {
    /// A rollup of `period`: its drop class follows from the period.
    pub fn rollup(topic: String, body: serde_json::Value, period: &Period) -> OutboxDraft {
        OutboxDraft {
            topic,
            body,
            class: DropClass::of_period(period),
        }
    }

    /// An event, an alarm or any other message dropped only when nothing else is left.
    pub fn durable(topic: String, body: serde_json::Value) -> OutboxDraft {
        OutboxDraft {
            topic,
            body,
            class: DropClass::Durable,
        }
    }
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

/// What [`Store::commit_cycle`] did besides committing the cycle.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommitOutcome {
    /// Seqs of the enqueued drafts, in draft order; refused drafts have none.
    pub seqs: Vec<i64>,
    /// Drafts not enqueued because their payload exceeded `max_payload_bytes`.
    pub refused: Vec<RefusedDraft>,
    /// Unsent rows deleted to make room, one range per topic; the caller announces each as a gap record.
    pub dropped: Vec<DroppedRange>,
    /// Delta audit-log entries deleted to make room.
    pub deltas_pruned: u64,
}

/// A draft refused at enqueue because its payload is larger than `max_payload_bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedDraft {
    /// Position of the draft in [`CycleWrite::outbox`].
    pub index: usize,
    /// Its topic.
    pub topic: String,
    /// Its serialized size in bytes, with `seq` counted at its widest.
    pub bytes: u64,
    /// The line and machine its payload names; `None` when it names none.
    pub owner: Option<DraftOwner>,
}

/// The line and machine a stored payload names in its `line` and `machine` fields, so whoever announces a
/// refused or dropped row learns whose it was from the payload's fields, not from its topic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DraftOwner {
    /// The payload's `line`.
    pub line: String,
    /// The payload's `machine`.
    pub machine: String,
}

impl DraftOwner {
    /// The owner named by `body`, or `None` unless both `line` and `machine` are strings.
    pub fn of_body(body: &serde_json::Map<String, serde_json::Value>) -> Option<DraftOwner> {
        Self::of_fields(
            body.get("line")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            body.get("machine")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
        )
    }

    /// The owner from a payload's `line` and `machine` fields, each as read (absent or not a string: `None`).
    pub(crate) fn of_fields(line: Option<String>, machine: Option<String>) -> Option<DraftOwner> {
        Some(DraftOwner {
            line: line?,
            machine: machine?,
        })
    }
}

/// Size of the unsent outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Number of rows waiting for a PUBACK.
    pub rows: u64,
    /// Sum of their payload sizes in bytes.
    pub bytes: u64,
    /// `enqueued_at` of the oldest row in queue order (the lowest seq), `None` when the outbox is empty.
    pub oldest_enqueued_at: Option<Millis>,
}

/// The open database; owned by exactly one thread (see [`StoreHandle`]).
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    options: StoreOptions,
    /// Bytes of one page; the quota is enforced in whole pages.
    page_size: u64,
    db_epoch: String,
    created_at: Millis,
    /// Mirror of the persisted counters; updated only after the transaction that changed them committed.
    drops: DropCounters,
    recovery: Option<Recovery>,
    /// Outbox rows handed to the publisher ([`Store::claim`]) and not yet retired. A claimed row may already
    /// have reached the broker, so the overflow policy never drops it (the gap record would count a delivered
    /// row as lost). In memory only: after a restart nothing is claimed until the publisher reads again.
    /// Each claim keeps the row's payload size, so its retirement updates the outbox totals without a read.
    claimed: BTreeMap<i64, u64>,
    /// Mirror of the persisted outbox totals; updated only after the transaction that changed them committed.
    totals: totals::OutboxTotals,
    /// Whether the last write found room; its changes are logged once each.
    space: space::Space,
    /// Device and inode of the database file at open; [`Store::check_in_place`] compares them with the path.
    file_id: data_dir::FileId,
    /// Whether the note about this database having vanished was written already.
    vanished_noted: bool,
}

impl Store {
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

    /// The database file this open replaced, if the previous one was unusable; `None` on a normal open.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// Totals of rows dropped on overflow and drafts refused, since this database file was created.
    pub fn drops(&self) -> DropCounters {
        self.drops
    }

    /// All persisted counter baselines as (key, `CounterState` JSON), ordered by key.
    pub fn load_counters(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(schema::SELECT_COUNTERS)?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
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

    /// Like [`Store::unacked`], for the publisher: the rows returned are claimed, so the overflow policy leaves
    /// them alone until they are retired.
    pub fn claim(&mut self, after_seq: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = self.unacked(after_seq, limit)?;
        self.note_claims(&rows);
        Ok(rows)
    }

    /// Claims the rows with exactly these seqs that are still in the outbox, in the order given.
    pub fn claim_exact(&mut self, seqs: &[i64]) -> Result<Vec<OutboxRow>, StoreError> {
        let mut rows = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            let found = self.unacked(seq - 1, 1)?;
            rows.extend(found.into_iter().filter(|row| row.seq == seq));
        }
        self.note_claims(&rows);
        Ok(rows)
    }

    fn note_claims(&mut self, rows: &[OutboxRow]) {
        self.claimed.extend(rows.iter().map(|row| {
            (
                row.seq,
                u64::try_from(row.payload.len()).unwrap_or(u64::MAX),
            )
        }));
    }

    /// Gives up the claim on rows the broker is known not to have (refused, or never sendable): the overflow
    /// policy may drop them again. A later read claims them anew.
    pub fn release(&mut self, seqs: &[i64]) {
        for seq in seqs {
            self.claimed.remove(seq);
        }
    }

    /// Number of rows currently claimed by the publisher.
    pub fn claimed(&self) -> usize {
        self.claimed.len()
    }

    /// Deletes the given rows (their PUBACK arrived); returns how many existed. Unknown seqs are ignored, so a
    /// duplicate PUBACK is harmless. On a full disk the WAL is checkpointed and truncated and the delete retried
    /// once; [`StoreError::DiskFull`] if it still finds no room.
    pub fn retire(&mut self, seqs: &[i64]) -> Result<usize, StoreError> {
        match self.try_retire(seqs) {
            Err(StoreError::Full(_)) if self.shortage(0)? == space::Shortage::Disk => {
                self.cap_wal()?;
                self.release_wal();
                match self.try_retire(seqs) {
                    Err(StoreError::Full(source)) => Err(self.disk_full(source)),
                    other => other,
                }
            }
            other => other,
        }
    }

    fn try_retire(&mut self, seqs: &[i64]) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut retired = 0;
        let mut retired_bytes = 0_u64;
        {
            let mut size_of = tx.prepare_cached(schema::SELECT_PAYLOAD_BYTES)?;
            let mut delete = tx.prepare_cached(schema::DELETE_OUTBOX_ROW)?;
            for seq in seqs {
                // A claimed row's size is known; any other row (retired without a claim) is looked up.
                let bytes = match self.claimed.get(seq) {
                    Some(bytes) => *bytes,
                    None => size_of
                        .query_row([seq], |row| row.get::<_, i64>(0))
                        .optional()?
                        .map_or(0, |bytes| u64::try_from(bytes).unwrap_or(0)),
                };
                let deleted = delete.execute([seq])?;
                retired += deleted;
                if deleted > 0 {
                    retired_bytes += bytes;
                }
            }
        }
        let totals = self
            .totals
            .minus(u64::try_from(retired).unwrap_or(u64::MAX), retired_bytes);
        if retired > 0 {
            totals.save(&tx, &self.totals)?;
            tx.execute(
                schema::UPSERT_META,
                (
                    schema::META_LAST_PUBLISH_AT,
                    wall_clock_millis().to_string(),
                ),
            )?;
        }
        tx.commit()?;
        self.totals = totals;
        self.release(seqs);
        Ok(retired)
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
        schema::integrity_check(&self.conn)
    }
}

/// SQLite integers are signed 64-bit; u64 values are stored by bit pattern so none is lost or rejected.
fn u64_to_sql(value: u64) -> i64 {
    value as i64
}

/// The delta log stores a step kind as its serde name, [`StepKind::as_str`].
impl ToSql for StepKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// Reads a stored step kind back by its serde name; a name this build does not know is a conversion error.
impl FromSql for StepKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        StepKind::deserialize(name.into_deserializer())
            .map_err(|error: serde::de::value::Error| FromSqlError::Other(Box::new(error)))
    }
}

/// Inverse of [`u64_to_sql`].
fn u64_from_sql(value: i64) -> u64 {
    value as u64
}

fn usize_to_sql(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The adapter's only clock read: the creation and open times of the database file and the time of the last
/// retirement, recorded for `shopfloor-agent status`.
fn wall_clock_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
