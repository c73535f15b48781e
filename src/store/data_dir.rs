//! The agent's data directory and its single-instance guards: where the database lives, the modes of what the
//! agent creates there (0700 for the directory, 0600 for the database, its `-wal`/`-shm` and the lock file,
//! whatever the umask), the lock file that allows one agent per data directory, the lock that allows one agent
//! per MQTT client id (which must not live in the data directory, since that can be deleted under a running
//! agent), and the note a store leaves when its database file was deleted or replaced while it ran, which the
//! next start reports as a recovery.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Recovery, Store, StoreError};

/// File name of the database inside `data_dir`.
pub const DATABASE_FILE: &str = "shopfloor-agent.db";
/// File name of the data-directory lock inside `data_dir`.
const LOCK_FILE: &str = "shopfloor-agent.lock";
/// Mode of the data directory: only the agent's user may list or enter it.
pub(super) const DIR_MODE: u32 = 0o700;
/// Mode of every file the agent creates in it.
pub(super) const FILE_MODE: u32 = 0o600;
/// Suffix of the note left beside the database path when the database vanished under a running agent.
const VANISHED_NOTE_SUFFIX: &str = ".vanished";
/// Prefix of the abstract Unix socket name that stands for a held MQTT client id.
const CLIENT_ID_SOCKET_PREFIX: &str = "shopfloor-agent/mqtt-client-id/";
/// How long a starting agent waits for the holder of its client id to say who it is.
const HOLDER_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest holder description read (pid and data directory).
const HOLDER_ANSWER_MAX_BYTES: u64 = 1024;

/// Why an agent may not start next to another one.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another agent holds the lock file of this data directory.
    #[error("another shopfloor-agent is already using data_dir {dir} (lock file {lock} is held)")]
    DataDirBusy {
        /// The data directory.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// Another agent on this host runs with the same MQTT client id; the broker would let only one of them
    /// stay connected.
    #[error(
        "another shopfloor-agent ({holder}) already uses MQTT client id {client_id:?}; two agents with one \
         client id would knock each other off the broker"
    )]
    ClientIdBusy {
        /// The client id.
        client_id: String,
        /// What the holder said about itself (pid, data directory).
        holder: String,
    },
    /// A file-system or socket operation failed.
    #[error("cannot {action} {target}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The path or name involved.
        target: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The database file inside `data_dir`.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DATABASE_FILE)
}

/// Creates `dir` (and its parents) if needed and gives it [`DIR_MODE`], also when it existed with a wider mode.
pub(super) fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    restrict(dir, DIR_MODE)
}

/// Sets `mode` on `path` when its permission bits differ (logged once, with the mode found); a missing path
/// is fine, and so is a path the agent may not change (warned). The umask can only take bits away, so a file
/// created with `mode` needs this only if it existed.
pub(super) fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    let found = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    if found != mode {
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            Ok(()) => {}
            // Not the agent's own file (e.g. a shared directory chosen as data_dir): say so, do not refuse.
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::warn!(
                    path = %path.display(),
                    found = %format!("{found:o}"),
                    wanted = %format!("{mode:o}"),
                    "Cannot tighten the mode of a store path the agent does not own."
                );
                return Ok(());
            }
            Err(error) => return Err(error),
        }
        tracing::info!(
            path = %path.display(),
            found = %format!("{found:o}"),
            set = %format!("{mode:o}"),
            "Tightened the mode of a store file."
        );
    }
    Ok(())
}

/// Creates `path` empty with [`FILE_MODE`] unless it exists, and restricts it to that mode either way. SQLite
/// gives a database's `-wal` and `-shm` the mode of the database file, so this covers them too.
pub(super) fn create_private_file(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    restrict(path, FILE_MODE)
}

/// Holds the exclusive lock on a data directory; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the lock file in `data_dir`, creating the directory (mode 0700) when needed.
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock, LockError> {
    let io = |action, target: &Path| {
        let target = target.display().to_string();
        move |source| LockError::Io {
            action,
            target,
            source,
        }
    };
    ensure_private_dir(data_dir).map_err(io("create data_dir", data_dir))?;
    let path = data_dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(io("open lock file", &path))?;
    restrict(&path, FILE_MODE).map_err(io("set the mode of", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::DataDirBusy {
            dir: data_dir.to_path_buf(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(io("lock", &path)(source)),
    }
}

/// Holds an MQTT client id on this host: a Linux abstract Unix socket named after it is bound, so nothing
/// lives on disk and the kernel releases it when the process dies. A thread answers each connection with a
/// description of the holder, so a second agent can say who is in its way. Released when dropped.
#[derive(Debug)]
pub struct ClientIdLock {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    server: Option<std::thread::JoinHandle<()>>,
}

/// Takes the client-id lock for `client_id`; `holder` is what a refused agent is told about this one.
pub fn lock_client_id(client_id: &str, holder: String) -> Result<ClientIdLock, LockError> {
    let name = format!("{CLIENT_ID_SOCKET_PREFIX}{client_id}");
    let io = |action| {
        let target = format!("abstract socket @{name}");
        move |source| LockError::Io {
            action,
            target,
            source,
        }
    };
    let address = SocketAddr::from_abstract_name(name.as_bytes()).map_err(io("name"))?;
    let listener = match UnixListener::bind_addr(&address) {
        Ok(listener) => listener,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(LockError::ClientIdBusy {
                client_id: client_id.to_owned(),
                holder: ask_holder(&address),
            })
        }
        Err(error) => return Err(io("bind")(error)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("client-id-lock".to_owned())
            .spawn(move || answer_callers(&listener, &stop, holder.as_bytes()))
            .map_err(io("start the answering thread of"))?
    };
    Ok(ClientIdLock {
        address,
        stop,
        server: Some(server),
    })
}

/// Body of the lock's thread: tells every caller who holds the client id, until told to stop.
fn answer_callers(listener: &UnixListener, stop: &AtomicBool, holder: &[u8]) {
    for caller in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut caller) = caller {
            // A caller that does not read must not hold up the next one.
            let _ = caller.set_write_timeout(Some(HOLDER_ANSWER_TIMEOUT));
            let _ = caller.write_all(holder);
        }
    }
}

/// What the holder of a client id says about itself, or why it could not be asked.
fn ask_holder(address: &SocketAddr) -> String {
    let answer = UnixStream::connect_addr(address).and_then(|stream| {
        stream.set_read_timeout(Some(HOLDER_ANSWER_TIMEOUT))?;
        let mut text = String::new();
        stream
            .take(HOLDER_ANSWER_MAX_BYTES)
            .read_to_string(&mut text)?;
        Ok(text)
    });
    match answer {
        Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
        Ok(_) => "a process that did not say who it is".to_owned(),
        Err(error) => format!("a process that did not answer: {error}"),
    }
}

impl Drop for ClientIdLock {
    /// Stops the answering thread (waking its `accept` with one last connection) and waits for it, so the
    /// socket is closed and the client id free when this returns.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if UnixStream::connect_addr(&self.address).is_ok() {
            if let Some(server) = self.server.take() {
                let _ = server.join();
            }
        }
    }
}

/// The note a store leaves beside its database path when the file vanished under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct VanishedNote {
    /// Epoch of the database that vanished: a file found at the path with the same epoch (a restored copy)
    /// must not continue it, since its seqs may repeat ones already published.
    pub db_epoch: String,
    /// What happened, for the `store_recovered` event.
    pub reason: String,
}

fn note_path(database: &Path) -> PathBuf {
    super::open::sidecar(database, VANISHED_NOTE_SUFFIX)
}

/// Writes the note for `database` (recreating its directory, mode 0700, if it was deleted) and syncs it.
pub(super) fn leave_vanished_note(database: &Path, note: &VanishedNote) -> Result<(), StoreError> {
    let path = note_path(database);
    let io = |source| StoreError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
        ensure_private_dir(dir).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(io)?;
    file.write_all(&serde_json::to_vec(note)?).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads the note for `database`, if one was left; an unreadable note still counts, with its text as reason.
pub(super) fn read_vanished_note(database: &Path) -> Option<VanishedNote> {
    let text = std::fs::read_to_string(note_path(database)).ok()?;
    Some(
        serde_json::from_str(&text).unwrap_or_else(|_| VanishedNote {
            db_epoch: String::new(),
            reason: format!("the previous database vanished while the agent ran (note: {text:?})"),
        }),
    )
}

/// Deletes the note once the store it concerns has been replaced and the recovery is reported.
pub(super) fn remove_vanished_note(database: &Path) -> Result<(), StoreError> {
    let path = note_path(database);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Io { path, source }),
    }
}

/// Device and inode of a file: what stays the same while the file is the one the store opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId {
    device: u64,
    inode: u64,
}

impl FileId {
    /// The identity of the file at `path` now.
    pub(super) fn of(path: &Path) -> std::io::Result<FileId> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path)?;
        Ok(FileId {
            device: meta.dev(),
            inode: meta.ino(),
        })
    }
}

impl Store {
    /// Checks (one `stat`) that the database file this store writes is still the one at its path. When it was
    /// deleted (with its directory, say) or replaced, every further write goes to a file nobody will read and
    /// the data-directory lock protects nothing, so the agent must stop: the answer is
    /// [`StoreError::Displaced`], and a note is left at the path (once) so that the next start reports the
    /// loss as a recovery.
    pub fn check_in_place(&mut self) -> Result<(), StoreError> {
        let detail = match FileId::of(&self.path) {
            Ok(id) if id == self.file_id => return Ok(()),
            Ok(_) => "another file is at its path now",
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                "it is gone from its path"
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        if !self.vanished_noted {
            self.vanished_noted = true;
            let note = VanishedNote {
                db_epoch: self.db_epoch.clone(),
                reason: format!(
                    "the database file {} was deleted or replaced while the agent ran ({detail}); its unsent \
                     rows were lost",
                    self.path.display()
                ),
            };
            if let Err(error) = leave_vanished_note(&self.path, &note) {
                tracing::warn!(
                    path = %self.path.display(),
                    error = format!("{:#}", anyhow::Error::new(error)),
                    "Could not leave a note about the vanished database; the next start will not report it."
                );
            }
        }
        Err(StoreError::Displaced {
            path: self.path.clone(),
            detail,
        })
    }

    /// Reports the database that vanished under the previous run (its note was found at open) as a recovery,
    /// and removes the note. A file at the path with the vanished database's epoch (a restored copy) gets a
    /// new epoch, since its seqs may repeat ones already published under the old one.
    pub(super) fn adopt_vanished_note(&mut self, note: VanishedNote) -> Result<(), StoreError> {
        if self.db_epoch == note.db_epoch {
            let fresh = super::meta::fresh_epoch();
            self.conn.execute(
                super::schema::UPSERT_META,
                (super::schema::META_DB_EPOCH, &fresh),
            )?;
            tracing::warn!(
                path = %self.path.display(),
                old = %self.db_epoch,
                db_epoch = %fresh,
                "The database at the path has the epoch of the one that vanished; it continues under a new epoch."
            );
            self.db_epoch = fresh;
        }
        self.recovery = Some(match self.recovery.take() {
            None => Recovery {
                moved_to: None,
                reason: note.reason,
            },
            Some(found) => Recovery {
                moved_to: found.moved_to,
                reason: format!("{}; then, at start: {}", note.reason, found.reason),
            },
        });
        remove_vanished_note(&self.path)
    }
}
