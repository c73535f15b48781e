//! Start-up safety of the store: [`Store::open`] checks the file (pragmas read back, `quick_check`, schema,
//! meta, a write-ahead log lost after an unclean stop) and replaces an unusable file by a fresh database with
//! a new `db_epoch`, keeping the old one (and its `-wal`, `-shm`) beside it. It never retries in a loop: one
//! replacement, and only a failure to create the fresh database is an error. Clean closing lives here too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode};

use super::data_dir::{self, FileId};
use super::meta::{self, Identity, Session};
use super::quota::DropCounters;
use super::space::Space;
use super::totals::OutboxTotals;
use super::{schema, wall_clock_millis, Store, StoreError, StoreOptions};

/// The path SQLite reads as "a private in-memory database".
const IN_MEMORY: &str = ":memory:";
/// Problems listed in a recovery reason, at most (a corrupt file can produce thousands of lines).
const MAX_PROBLEMS_IN_REASON: usize = 3;

/// An unusable database file that [`Store::open`] moved aside before creating a fresh one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Where the old file now is; its `-wal` and `-shm` (if any) sit beside it with the same suffixes. `None`
    /// when the old file was not found at start but vanished while the previous run had it open.
    pub moved_to: Option<PathBuf>,
    /// Why the old file could not be used, for the alarm and the log.
    pub reason: String,
}

/// Why one open attempt failed.
#[derive(Debug)]
enum OpenFailure {
    /// The file's content is unusable: corrupt, empty, stale, from a newer schema.
    Unusable(String),
    /// An error; [`blames_file`] decides whether the file or the environment is at fault.
    Error(StoreError),
}

impl From<StoreError> for OpenFailure {
    fn from(error: StoreError) -> Self {
        OpenFailure::Error(error)
    }
}

impl From<rusqlite::Error> for OpenFailure {
    fn from(error: rusqlite::Error) -> Self {
        OpenFailure::Error(error.into())
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`: applies and checks pragmas, runs `quick_check`,
    /// migrates the schema, creates `db_epoch` on first open and sets the byte quota. A file that turns out to
    /// be unusable is moved aside (see [`Recovery`]) and a fresh database is created in its place; errors that
    /// are not the file's fault (busy, permissions, disk full, WAL unsupported) are returned and move nothing.
    /// The directory gets mode 0700 and the database with its `-wal` and `-shm` mode 0600, whatever the umask
    /// and whatever modes existing files had. A note left by a store whose file vanished while it ran is
    /// reported as a recovery too.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        restrict_files(path)?;
        let vanished = data_dir::read_vanished_note(path);
        let mut store = open_or_replace(path, options)?;
        if let Some(note) = vanished {
            store.adopt_vanished_note(note)?;
        }
        Ok(store)
    }
}

/// Creates the database's directory with mode 0700 and gives existing database files mode 0600.
fn restrict_files(path: &Path) -> Result<(), StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        data_dir::ensure_private_dir(parent).map_err(io(parent))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = sidecar(path, suffix);
        data_dir::restrict(&file, data_dir::FILE_MODE).map_err(io(&file))?;
    }
    Ok(())
}

/// The body of [`Store::open`]: one checked open, and one replacement if the file is unusable.
fn open_or_replace(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
    let leftovers = ["", "-wal", "-shm"]
        .iter()
        .any(|suffix| sidecar(path, suffix).exists());
    let reason = match open_checked(path, options) {
        Ok(store) => return Ok(store),
        Err(OpenFailure::Unusable(reason)) if leftovers => reason,
        Err(OpenFailure::Error(error)) if leftovers && blames_file(&error) => {
            format!("{:#}", anyhow::Error::new(error))
        }
        Err(OpenFailure::Unusable(reason)) => {
            return Err(StoreError::Unusable {
                path: path.to_path_buf(),
                reason,
            })
        }
        Err(OpenFailure::Error(error)) => return Err(error),
    };
    let moved_to = move_aside(path)?;
    tracing::error!(
        path = %path.display(),
        moved_to = %moved_to.display(),
        %reason,
        "Store database unusable; moved aside, starting a fresh database with a new epoch."
    );
    let mut store = open_checked(path, options).map_err(|failure| {
        let source = match failure {
            OpenFailure::Unusable(reason) => StoreError::Unusable {
                path: path.to_path_buf(),
                reason,
            },
            OpenFailure::Error(error) => error,
        };
        StoreError::RecoveryFailed {
            moved_to: moved_to.clone(),
            reason: reason.clone(),
            source: Box::new(source),
        }
    })?;
    store.recovery = Some(Recovery {
        moved_to: Some(moved_to),
        reason,
    });
    Ok(store)
}

/// One open attempt with every start-up check; the connection is closed again on failure.
fn open_checked(path: &Path, options: &StoreOptions) -> Result<Store, OpenFailure> {
    let wal_existed = sidecar(path, "-wal").exists();
    if std::fs::metadata(path).is_ok_and(|meta| meta.len() == 0) {
        // A database we created always has a header; zero bytes means truncation (or a crash before the very
        // first write, when nothing was stored yet).
        return Err(OpenFailure::Unusable(
            "the database file is empty".to_owned(),
        ));
    }
    // SQLite would create the file with mode 0644 minus the umask, and give its -wal and -shm the same mode.
    // (":memory:" is no file; it fails the journal_mode check below.)
    if path != Path::new(IN_MEMORY) {
        data_dir::create_private_file(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let mut conn = Connection::open(path)?;
    // Until the file has passed every check, closing must not checkpoint: that would merge the WAL into a
    // damaged file and delete it, destroying the evidence that is about to be moved aside.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    schema::apply_pragmas(&conn)?;
    let file_id = FileId::of(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let problems = schema::quick_check(&conn)?;
    if !problems.is_empty() {
        return Err(OpenFailure::Unusable(format!(
            "quick_check found {} problem(s): {}",
            problems.len(),
            problems
                .iter()
                .take(MAX_PROBLEMS_IN_REASON)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    if meta::read_session(&conn)? == Session::Open && !wal_existed {
        // Every session keeps its -wal file from its first write until its clean close, so a session that
        // did not close cleanly left one behind. Without it the file may miss committed transactions: its seq
        // and baselines could go back under the same epoch.
        return Err(OpenFailure::Unusable(
            "the previous session did not close cleanly and its write-ahead log (-wal) is missing"
                .to_owned(),
        ));
    }
    schema::migrate(&mut conn)?;
    conn.set_prepared_statement_cache_capacity(schema::ALL_STATEMENTS.len() + 8);
    schema::verify_statements(&conn)?;
    let Identity {
        db_epoch,
        created_at,
    } = meta::ensure_identity(&mut conn, wall_clock_millis())?;
    let drops = DropCounters::load(&conn)?;
    let totals = OutboxTotals::load(&conn)?;
    // Mark the session open and push the mark into the main file, so a later loss of the -wal is detectable.
    conn.execute(schema::UPSERT_META, (schema::META_IN_USE, "1"))?;
    conn.execute(
        schema::UPSERT_META,
        (schema::META_OPENED_AT, wall_clock_millis().to_string()),
    )?;
    if !schema::checkpoint_truncate(&conn)? {
        tracing::warn!(path = %path.display(), "Start-up checkpoint was partial; another reader is active.");
    }
    let page_size = schema::apply_quota(&conn, options.max_bytes)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)?;
    tracing::debug!(path = %path.display(), %db_epoch, "Store opened.");
    Ok(Store {
        conn,
        path: path.to_path_buf(),
        options: options.clone(),
        page_size,
        db_epoch,
        created_at,
        drops,
        recovery: None,
        claimed: BTreeMap::new(),
        totals,
        space: Space::Available,
        file_id,
        vanished_noted: false,
    })
}

/// Whether an open error means the file is unusable (move it aside) rather than the environment failing (a
/// fresh file would fail the same way, or another process holds it).
fn blames_file(error: &StoreError) -> bool {
    match error {
        StoreError::Sqlite(error) | StoreError::Full(error) => !matches!(
            error.sqlite_error_code(),
            Some(
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::CannotOpen
                    | ErrorCode::PermissionDenied
                    | ErrorCode::ReadOnly
                    | ErrorCode::OutOfMemory
                    | ErrorCode::DiskFull
                    | ErrorCode::FileLockingProtocolFailed
                    | ErrorCode::NoLargeFileSupport
                    | ErrorCode::OperationInterrupted
            )
        ),
        StoreError::SchemaTooNew { .. } => true,
        StoreError::DiskFull { .. }
        | StoreError::Displaced { .. }
        | StoreError::Io { .. }
        | StoreError::PragmaMismatch { .. }
        | StoreError::PayloadNotObject { .. }
        | StoreError::Json(_)
        | StoreError::Unusable { .. }
        | StoreError::RecoveryFailed { .. } => false,
    }
}

/// `path` with `suffix` appended to its file name (`agent.db` + `-wal` → `agent.db-wal`).
pub(super) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Renames the database and its `-wal` and `-shm` to `<name>.corrupt-<unix ms>` (+ the same suffixes, so the
/// SQLite shell opens the moved file with its WAL), WAL first: a crash half-way leaves the main file in place,
/// and the next start moves it too. The directory is synced so the renames survive a power cut.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = wall_clock_millis();
    let base = path.as_os_str().to_owned();
    let mut target = PathBuf::from(format!("{}.corrupt-{stamp}", base.to_string_lossy()));
    let mut attempt = 1;
    while ["", "-wal", "-shm"]
        .iter()
        .any(|suffix| sidecar(&target, suffix).exists())
    {
        target = PathBuf::from(format!(
            "{}.corrupt-{stamp}-{attempt}",
            base.to_string_lossy()
        ));
        attempt += 1;
    }
    for suffix in ["-wal", "-shm", ""] {
        let from = sidecar(path, suffix);
        match std::fs::rename(&from, sidecar(&target, suffix)) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::Io { path: from, source }),
        }
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let synced = std::fs::File::open(parent).and_then(|dir| dir.sync_all());
        if let Err(error) = synced {
            tracing::warn!(path = %parent.display(), %error, "Could not sync the store directory.");
        }
    }
    Ok(target)
}

impl Drop for Store {
    /// Marks the session closed before the connection closes (which checkpoints and deletes the WAL). If the
    /// mark cannot be written, the connection is leaked instead, so the WAL stays exactly as after a crash and
    /// the next open does not mistake it for a lost log.
    fn drop(&mut self) {
        if let Err(error) = self
            .conn
            .execute(schema::UPSERT_META, (schema::META_IN_USE, "0"))
        {
            tracing::warn!(path = %self.path.display(), %error, "Could not mark the store closed; keeping its WAL.");
            if let Ok(placeholder) = Connection::open_in_memory() {
                std::mem::forget(std::mem::replace(&mut self.conn, placeholder));
            }
        }
    }
}
