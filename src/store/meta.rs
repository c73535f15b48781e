//! The meta table at open: `db_epoch`, `created_at`, the session marker and the drop counters are read as
//! whatever SQLite holds (text, integer, blob) and checked one by one. A bad value is a damaged value, not a
//! damaged file: it is reset with a warning and the file, with its unsent rows, is kept. A reset `db_epoch`
//! gets a NEW random epoch, because nothing tells whether the file's seqs continue the old epoch's.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior};

use super::schema;
use super::StoreError;
use crate::logic::Millis;

/// Hex digits of a `db_epoch` (a random u64).
const EPOCH_DIGITS: usize = 16;

/// What the session marker said about the previous session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Session {
    /// No marker (a file from before the marker existed, or a new file) or "0": the last session closed cleanly.
    Closed,
    /// "1": the last session did not close cleanly, so its `-wal` must still exist.
    Open,
    /// Anything else: damaged. The marker is rewritten at open; a lost WAL cannot be told from it this time.
    Unreadable,
}

/// The identity values of the file, after any repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    /// Random per-file epoch, 16 hex digits.
    pub db_epoch: String,
    /// Creation time of the file, UTC milliseconds.
    pub created_at: Millis,
}

/// Reads one meta value as stored, whatever its type; `None` when the key is absent.
pub(super) fn read_value(conn: &Connection, key: &str) -> Result<Option<Value>, StoreError> {
    Ok(conn
        .query_row(schema::SELECT_META, [key], |row| row.get::<_, Value>(0))
        .optional()?)
}

/// The session marker ([`schema::META_IN_USE`]), read before migrations so a file about to be moved aside is
/// not written to. A file without a meta table yet counts as closed.
pub(super) fn read_session(conn: &Connection) -> Result<Session, StoreError> {
    let has_meta: bool = conn.query_row(schema::SELECT_HAS_META_TABLE, [], |row| row.get(0))?;
    if !has_meta {
        return Ok(Session::Closed);
    }
    Ok(match read_value(conn, schema::META_IN_USE)? {
        None => Session::Closed,
        Some(Value::Text(text)) if text == "0" => Session::Closed,
        Some(Value::Text(text)) if text == "1" => Session::Open,
        Some(Value::Integer(0)) => Session::Closed,
        Some(Value::Integer(1)) => Session::Open,
        Some(other) => {
            tracing::warn!(
                key = schema::META_IN_USE,
                value = %describe(&other),
                "Store meta value is unreadable; a write-ahead log lost by the previous session cannot be detected this time. It is rewritten."
            );
            Session::Unreadable
        }
    })
}

/// Creates `db_epoch` and `created_at` on first open, repairs them when unreadable, and returns them.
pub(super) fn ensure_identity(conn: &mut Connection, now: Millis) -> Result<Identity, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = read_value(&tx, schema::META_DB_EPOCH)?;
    let db_epoch = match found.as_ref().and_then(parse_epoch) {
        Some(epoch) => epoch,
        None => {
            let fresh = fresh_epoch();
            if let Some(bad) = found {
                tracing::warn!(
                    key = schema::META_DB_EPOCH,
                    value = %describe(&bad),
                    db_epoch = %fresh,
                    "Store meta value is unreadable; a new db_epoch starts (consumers see seq continuity restart)."
                );
            }
            tx.execute(schema::UPSERT_META, (schema::META_DB_EPOCH, &fresh))?;
            fresh
        }
    };
    let found = read_value(&tx, schema::META_CREATED_AT)?;
    let stored = found
        .as_ref()
        .and_then(parse_u64)
        .and_then(|millis| i64::try_from(millis).ok());
    let created_at = match stored {
        Some(millis) => millis,
        None => {
            if let Some(bad) = found {
                tracing::warn!(
                    key = schema::META_CREATED_AT,
                    value = %describe(&bad),
                    reset_to = now,
                    "Store meta value is unreadable; reset to now."
                );
            }
            tx.execute(
                schema::UPSERT_META,
                (schema::META_CREATED_AT, now.to_string()),
            )?;
            now
        }
    };
    tx.commit()?;
    Ok(Identity {
        db_epoch,
        created_at,
    })
}

/// Reads a non-negative counter; an unreadable value is reset to 0 in the file with a warning (the total
/// restarts, the rows it counted are gone either way). Absent counts as 0.
pub(super) fn read_counter(conn: &Connection, key: &'static str) -> Result<u64, StoreError> {
    match read_value(conn, key)? {
        None => Ok(0),
        Some(value) => match parse_u64(&value) {
            Some(count) => Ok(count),
            None => {
                tracing::warn!(
                    key,
                    value = %describe(&value),
                    "Store meta counter is unreadable; reset to 0."
                );
                conn.execute(schema::UPSERT_META, (key, "0"))?;
                Ok(0)
            }
        },
    }
}

/// A new random epoch.
pub(super) fn fresh_epoch() -> String {
    format!("{:0width$x}", rand::random::<u64>(), width = EPOCH_DIGITS)
}

/// The epoch in `value` if it is what [`fresh_epoch`] makes: 16 lowercase hex digits.
fn parse_epoch(value: &Value) -> Option<String> {
    match value {
        Value::Text(text)
            if text.len() == EPOCH_DIGITS
                && text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Some(text.clone())
        }
        _ => None,
    }
}

/// A decimal u64 stored as text (the store's format) or as an integer.
pub(super) fn parse_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Text(text) => text.parse().ok(),
        Value::Integer(number) => u64::try_from(*number).ok(),
        _ => None,
    }
}

/// A short, log-safe rendering of a stored value.
fn describe(value: &Value) -> String {
    const SHOWN: usize = 40;
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Integer(number) => number.to_string(),
        Value::Real(number) => number.to_string(),
        Value::Text(text) => format!("{:?}", text.chars().take(SHOWN).collect::<String>()),
        Value::Blob(bytes) => format!("blob of {} bytes", bytes.len()),
    }
}
