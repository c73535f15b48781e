//! The backlog figure without a scan: the outbox's row count and payload bytes are kept in the meta table by
//! every transaction that inserts or deletes outbox rows (enqueue, overflow drops, retirement), and mirrored in
//! [`super::Store`] once that transaction has committed. [`super::Store::backlog`] reads the mirror and one
//! primary-key probe for the oldest row. The only full scan is the one that first fills the totals (the
//! schema migration that introduced them, or a repair of a damaged value at open).

use rusqlite::{Connection, OptionalExtension as _, Transaction};

use super::meta;
use super::schema;
use super::{Backlog, Store, StoreError};
use crate::logic::Millis;

/// Meta key of the number of rows in the outbox (decimal text).
const META_OUTBOX_ROWS: &str = "outbox.rows";
/// Meta key of the sum of the outbox's payload sizes in bytes (decimal text).
const META_OUTBOX_BYTES: &str = "outbox.bytes";

/// Rows and payload bytes in the outbox, as of the last committed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct OutboxTotals {
    /// Rows in the outbox.
    pub rows: u64,
    /// Sum of their payload sizes in bytes.
    pub bytes: u64,
}

impl OutboxTotals {
    /// Counts the outbox with one full scan (O(rows)); only for filling or repairing the persisted totals.
    pub(super) fn count(conn: &Connection) -> Result<OutboxTotals, StoreError> {
        let (rows, bytes): (i64, i64) = conn
            .prepare_cached(schema::COUNT_OUTBOX)?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(OutboxTotals {
            rows: u64::try_from(rows).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
        })
    }

    /// Loads the persisted totals at open. Absent or unreadable values (a damaged meta row) are recounted with
    /// one scan and written back, with a warning for an unreadable one: the rows themselves are the truth.
    pub(super) fn load(conn: &Connection) -> Result<OutboxTotals, StoreError> {
        if let Some(totals) = Self::peek(conn)? {
            return Ok(totals);
        }
        for key in [META_OUTBOX_ROWS, META_OUTBOX_BYTES] {
            if let Some(value) = meta::read_value(conn, key)? {
                if meta::parse_u64(&value).is_none() {
                    tracing::warn!(
                        key,
                        "Store meta value is unreadable; the outbox totals are counted again."
                    );
                }
            }
        }
        let totals = Self::count(conn)?;
        totals.write(conn)?;
        Ok(totals)
    }

    /// The persisted totals, or `None` when either value is absent or unreadable; repairs nothing, so it also
    /// serves a read-only connection.
    pub(super) fn peek(conn: &Connection) -> Result<Option<OutboxTotals>, StoreError> {
        let read = |key: &str| -> Result<Option<u64>, StoreError> {
            Ok(meta::read_value(conn, key)?
                .as_ref()
                .and_then(meta::parse_u64))
        };
        Ok(match (read(META_OUTBOX_ROWS)?, read(META_OUTBOX_BYTES)?) {
            (Some(rows), Some(bytes)) => Some(OutboxTotals { rows, bytes }),
            _ => None,
        })
    }

    /// Writes both totals (inside the caller's transaction).
    fn write(&self, conn: &Connection) -> Result<(), StoreError> {
        let mut upsert = conn.prepare_cached(schema::UPSERT_META)?;
        upsert.execute((META_OUTBOX_ROWS, self.rows.to_string()))?;
        upsert.execute((META_OUTBOX_BYTES, self.bytes.to_string()))?;
        Ok(())
    }

    /// Writes the totals that differ from `before` (inside the transaction that changed the outbox).
    pub(super) fn save(&self, conn: &Connection, before: &OutboxTotals) -> Result<(), StoreError> {
        let mut upsert = conn.prepare_cached(schema::UPSERT_META)?;
        if self.rows != before.rows {
            upsert.execute((META_OUTBOX_ROWS, self.rows.to_string()))?;
        }
        if self.bytes != before.bytes {
            upsert.execute((META_OUTBOX_BYTES, self.bytes.to_string()))?;
        }
        Ok(())
    }

    /// The totals after `rows` rows of `bytes` payload bytes were added.
    pub(super) fn plus(self, rows: u64, bytes: u64) -> OutboxTotals {
        OutboxTotals {
            rows: self.rows.saturating_add(rows),
            bytes: self.bytes.saturating_add(bytes),
        }
    }

    /// The totals after `rows` rows of `bytes` payload bytes were deleted.
    pub(super) fn minus(self, rows: u64, bytes: u64) -> OutboxTotals {
        OutboxTotals {
            rows: self.rows.saturating_sub(rows),
            bytes: self.bytes.saturating_sub(bytes),
        }
    }
}

/// The migration's backfill: fills the totals of a database created before they were kept (one scan).
pub(super) fn backfill_outbox_totals(tx: &Transaction<'_>) -> Result<(), StoreError> {
    OutboxTotals::count(tx)?.write(tx)
}

/// `enqueued_at` of the first row in queue order (lowest seq; a primary-key probe), `None` when empty.
pub(super) fn oldest_enqueued_at(conn: &Connection) -> Result<Option<Millis>, StoreError> {
    Ok(conn
        .prepare_cached(schema::SELECT_FIRST_ENQUEUED_AT)?
        .query_row([], |row| row.get(0))
        .optional()?)
}

/// The backlog as read by a connection other than the store's (`status`): the persisted totals, or one scan
/// for a file from before they were kept (or with a damaged value, which the agent repairs at its next open).
pub(super) fn read_backlog(conn: &Connection) -> Result<Backlog, StoreError> {
    let totals = match OutboxTotals::peek(conn)? {
        Some(totals) => totals,
        None => OutboxTotals::count(conn)?,
    };
    Ok(Backlog {
        rows: totals.rows,
        bytes: totals.bytes,
        oldest_enqueued_at: oldest_enqueued_at(conn)?,
    })
}

impl Store {
    /// Rows and payload bytes of the outbox (kept by the transactions that change it, never scanned), and the
    /// `enqueued_at` of its oldest row in queue order (the lowest seq, normally also the earliest time; a
    /// clock stepped back between two commits can make a later row's time earlier).
    pub fn backlog(&self) -> Result<Backlog, StoreError> {
        Ok(Backlog {
            rows: self.totals.rows,
            bytes: self.totals.bytes,
            oldest_enqueued_at: oldest_enqueued_at(&self.conn)?,
        })
    }
}
