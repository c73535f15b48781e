//! [`StoreError`]: the one error type of the SQLite boundary. `SQLITE_FULL` is classified apart from every other
//! SQLite failure so callers can apply the overflow policy instead of treating a full quota as a crash, and a
//! full quota apart from a full disk (which no drop can fix).

use std::path::PathBuf;

/// Errors at the SQLite boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation around the database failed.
    #[error("store I/O failed at {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The byte quota (`store.max_bytes`, enforced as `max_page_count`) is reached and nothing droppable is
    /// left. Also the first classification of any `SQLITE_FULL`, until [`StoreError::DiskFull`] is told apart.
    #[error("store quota (store.max_bytes) is reached and nothing droppable is left")]
    Full(#[source] rusqlite::Error),
    /// `SQLITE_FULL` while the database is well below its quota: the filesystem holding it has no room.
    #[error("the filesystem holding the store {path} is full (the store quota is not reached)")]
    DiskFull {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file was deleted or replaced while the store had it open.
    #[error("the store database {path} was deleted or replaced while the agent ran ({detail})")]
    Displaced {
        /// The database path.
        path: PathBuf,
        /// What is at the path now.
        detail: &'static str,
    },
    /// Any other SQLite failure.
    #[error("SQLite call failed")]
    Sqlite(#[source] rusqlite::Error),
    /// A pragma did not take the value the store depends on.
    #[error("pragma {pragma} is {actual:?}, expected {expected:?}")]
    PragmaMismatch {
        /// Pragma name.
        pragma: &'static str,
        /// Required value.
        expected: String,
        /// Value read back.
        actual: String,
    },
    /// The file was written by a newer agent with more migrations than this one knows.
    #[error("store schema version {found} is newer than this agent supports ({supported})")]
    SchemaTooNew {
        /// `user_version` in the file.
        found: i64,
        /// Number of migrations this build knows.
        supported: i64,
    },
    /// An outbox draft's body is not a JSON object, so `seq` and `db_epoch` cannot be added.
    #[error("outbox draft for topic {topic} is not a JSON object")]
    PayloadNotObject {
        /// Topic of the rejected draft.
        topic: String,
    },
    /// The database file is unusable and could not be moved aside (it was new, so there is nothing to keep).
    #[error("store {path} is unusable: {reason}")]
    Unusable {
        /// The database file.
        path: PathBuf,
        /// What the start-up checks found.
        reason: String,
    },
    /// An unusable database was moved aside, but creating a fresh one in its place failed.
    #[error(
        "store was moved aside to {moved_to} ({reason}), but a fresh database could not be created"
    )]
    RecoveryFailed {
        /// Where the old file now is.
        moved_to: PathBuf,
        /// Why the old file was unusable.
        reason: String,
        /// Why the fresh database failed.
        #[source]
        source: Box<StoreError>,
    },
    /// A payload could not be serialized.
    #[error("outbox payload serialization failed")]
    Json(#[from] serde_json::Error),
}

impl From<rusqlite::Error> for StoreError {
    /// Classifies `SQLITE_FULL` as [`StoreError::Full`] so every `?` keeps the quota signal distinct.
    fn from(error: rusqlite::Error) -> Self {
        if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            StoreError::Full(error)
        } else {
            StoreError::Sqlite(error)
        }
    }
}
