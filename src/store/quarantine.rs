//! The quarantine: audit rows of deltas the plausibility guard rejected, and the release requests an operator
//! records against them. [`QuarantineDb`] is the review side (`shopfloor-agent quarantine`): its own connection
//! to the database file, beside a running agent (WAL: a reader never blocks the agent, a request waits at most
//! for one of the agent's short transactions). The agent's [`Store`] reads pending requests and marks them
//! released in the transaction that commits the windows they restate. Nothing here deletes an audit row.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{schema, u64_from_sql, u64_to_sql, Store, StoreError};
use crate::logic::counter::StepKind;
use crate::logic::Millis;

/// A quarantined delta from the audit log, with the state of its release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedDelta {
    /// Audit-row id; what `quarantine release --id` takes.
    pub id: i64,
    /// Counter key (machine and counter).
    pub key: String,
    /// The amount that was not counted.
    pub amount: u64,
    /// Raw register value of the sample.
    pub raw: u64,
    /// Start of the interval the amount was produced over (the previous accepted sample).
    pub t_from: Millis,
    /// End of that interval: when the delta was read.
    pub t_to: Millis,
    /// Whether it was released.
    pub release: ReleaseStatus,
}

/// Where a quarantined delta stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseStatus {
    /// Not counted; no release requested.
    Quarantined,
    /// A release was requested and the agent has not applied it yet.
    Requested {
        /// When the request was recorded.
        requested_at: Millis,
    },
    /// The agent counted the amount in the windows of its interval.
    Released {
        /// When the request was recorded.
        requested_at: Millis,
        /// When the agent committed the restated windows.
        released_at: Millis,
    },
}

impl ReleaseStatus {
    /// The status as one word: `quarantined`, `release_requested` or `released`.
    pub fn name(self) -> &'static str {
        match self {
            ReleaseStatus::Quarantined => "quarantined",
            ReleaseStatus::Requested { .. } => "release_requested",
            ReleaseStatus::Released { .. } => "released",
        }
    }

    fn from_columns(requested_at: Option<Millis>, released_at: Option<Millis>) -> ReleaseStatus {
        match (requested_at, released_at) {
            (Some(requested_at), Some(released_at)) => ReleaseStatus::Released {
                requested_at,
                released_at,
            },
            (Some(requested_at), None) => ReleaseStatus::Requested { requested_at },
            (None, _) => ReleaseStatus::Quarantined,
        }
    }
}

/// A release the agent has still to apply: the amount goes to the windows of `[t_from, t_to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRequest {
    /// Audit-row id of the quarantined delta.
    pub delta_id: i64,
    /// Counter key (machine and counter).
    pub key: String,
    /// Units to count.
    pub amount: u64,
    /// Start of the delta's interval.
    pub t_from: Millis,
    /// End of the delta's interval.
    pub t_to: Millis,
    /// When the request was recorded.
    pub requested_at: Millis,
}

/// Why a quarantine command failed.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// There is no database file at the path (wrong `agent.data_dir`, or the agent never ran).
    #[error("no store database at {path} (check agent.data_dir; the agent creates it at its first start)")]
    NoDatabase {
        /// The database path.
        path: PathBuf,
    },
    /// The database was created by an older agent and not migrated yet.
    #[error("the store {path} has schema version {found}; quarantine releases need version {needed}: start this version of the agent once to migrate it")]
    SchemaTooOld {
        /// The database path.
        path: PathBuf,
        /// `user_version` in the file.
        found: i64,
        /// The version that added the release table.
        needed: i64,
    },
    /// No audit row has this id: it never existed or was pruned (`store.audit_retention`).
    #[error("no delta with id {id} in the store's delta log (unknown, or pruned after store.audit_retention); `quarantine list` shows the ids")]
    UnknownId {
        /// The id asked for.
        id: i64,
    },
    /// The audit row is a counted step, not a quarantined one.
    #[error("delta {id} is a \"{}\" step, not a quarantined delta; only rejected deltas can be released", kind.as_str())]
    NotQuarantined {
        /// The id asked for.
        id: i64,
        /// Its step kind.
        kind: StepKind,
    },
    /// A release of this delta was requested before.
    #[error("delta {id} {}: it cannot be released twice", already(*status))]
    AlreadyReleased {
        /// The id asked for.
        id: i64,
        /// Where the earlier request stands.
        status: ReleaseStatus,
    },
    /// Any other store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How [`QuarantineError::AlreadyReleased`] puts an earlier request.
fn already(status: ReleaseStatus) -> &'static str {
    match status {
        ReleaseStatus::Released { .. } => "was already released",
        ReleaseStatus::Requested { .. } => {
            "already has a release requested, which the agent applies within seconds or at its next start"
        }
        ReleaseStatus::Quarantined => "is quarantined",
    }
}

impl From<rusqlite::Error> for QuarantineError {
    fn from(error: rusqlite::Error) -> Self {
        QuarantineError::Store(error.into())
    }
}

/// The review side's connection to the database file of a (possibly running) agent.
#[derive(Debug)]
pub struct QuarantineDb {
    conn: Connection,
}

impl QuarantineDb {
    /// Opens the database at `path` without creating, migrating or checking it (that is the agent's
    /// [`Store::open`]); read-only unless `write`. Refuses a file whose schema has no release table yet.
    pub fn open(path: &Path, write: bool) -> Result<QuarantineDb, QuarantineError> {
        if !path.is_file() {
            return Err(QuarantineError::NoDatabase {
                path: path.to_path_buf(),
            });
        }
        let access = if write {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        };
        let conn = Connection::open_with_flags(
            path,
            access | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(schema::BUSY_TIMEOUT)?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let supported =
            i64::try_from(schema::MIGRATIONS.len()).expect("the migration list is tiny");
        if found > supported {
            return Err(StoreError::SchemaTooNew { found, supported }.into());
        }
        if found < schema::QUARANTINE_SCHEMA_VERSION {
            return Err(QuarantineError::SchemaTooOld {
                path: path.to_path_buf(),
                found,
                needed: schema::QUARANTINE_SCHEMA_VERSION,
            });
        }
        Ok(QuarantineDb { conn })
    }

    /// Every quarantined delta still in the audit log, oldest first, with its release status.
    pub fn list(&self) -> Result<Vec<QuarantinedDelta>, QuarantineError> {
        let mut stmt = self.conn.prepare(schema::SELECT_QUARANTINED)?;
        let rows = stmt.query_map([StepKind::Rejected], |row| {
            Ok(QuarantinedDelta {
                id: row.get(0)?,
                key: row.get(1)?,
                amount: u64_from_sql(row.get(2)?),
                raw: u64_from_sql(row.get(3)?),
                t_from: row.get(4)?,
                t_to: row.get(5)?,
                release: ReleaseStatus::from_columns(row.get(6)?, row.get(7)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a release request for the quarantined delta `id` at `now`, in one transaction; the agent applies
    /// it. An unknown id, a step that was counted, or a delta released (or requested) before is an error.
    pub fn request_release(
        &mut self,
        id: i64,
        now: Millis,
    ) -> Result<QuarantinedDelta, QuarantineError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found = tx
            .query_row(schema::SELECT_DELTA_FOR_RELEASE, [id], |row| {
                let kind: StepKind = row.get(2)?;
                let delta = QuarantinedDelta {
                    id: row.get(0)?,
                    key: row.get(1)?,
                    amount: u64_from_sql(row.get(3)?),
                    raw: u64_from_sql(row.get(4)?),
                    t_from: row.get(5)?,
                    t_to: row.get(6)?,
                    release: ReleaseStatus::from_columns(row.get(7)?, row.get(8)?),
                };
                Ok((kind, delta))
            })
            .optional()?;
        let Some((kind, mut delta)) = found else {
            return Err(QuarantineError::UnknownId { id });
        };
        if kind != StepKind::Rejected {
            return Err(QuarantineError::NotQuarantined { id, kind });
        }
        if delta.release != ReleaseStatus::Quarantined {
            return Err(QuarantineError::AlreadyReleased {
                id,
                status: delta.release,
            });
        }
        tx.execute(
            schema::INSERT_RELEASE_REQUEST,
            (
                id,
                &delta.key,
                u64_to_sql(delta.amount),
                delta.t_from,
                delta.t_to,
                now,
            ),
        )?;
        tx.commit()?;
        delta.release = ReleaseStatus::Requested { requested_at: now };
        Ok(delta)
    }
}

impl Store {
    /// Release requests the agent has not applied yet, oldest delta first.
    pub fn pending_releases(&self) -> Result<Vec<ReleaseRequest>, StoreError> {
        let mut stmt = self.conn.prepare_cached(schema::SELECT_PENDING_RELEASES)?;
        let rows = stmt.query_map([], |row| {
            Ok(ReleaseRequest {
                delta_id: row.get(0)?,
                key: row.get(1)?,
                amount: u64_from_sql(row.get(2)?),
                t_from: row.get(3)?,
                t_to: row.get(4)?,
                requested_at: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Marks the requests of `delta_ids` released at `now`, inside the cycle's transaction.
pub(super) fn mark_released(
    tx: &rusqlite::Transaction<'_>,
    delta_ids: &[i64],
    now: Millis,
) -> Result<(), StoreError> {
    let mut mark = tx.prepare_cached(schema::MARK_RELEASED)?;
    for id in delta_ids {
        mark.execute((id, now))?;
    }
    Ok(())
}
