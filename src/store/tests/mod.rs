//! Store tests against real SQLite files in temporary directories: `basics` (open, commit, retire, handle),
//! `data_dir` (the client-id lock, a database deleted under the store),
//! `quota` (overflow policy, refused payloads, migration of the drop class), `quarantine` (release requests),
//! `recovery` (corrupt, truncated,
//! stale and busy files at open), `totals` (the kept backlog figure against a fresh count), `windows` (time-first
//! window keys: the migration of old keys, the pages a window close writes) and `model` (a
//! proptest of commit/retire/reopen against a `VecDeque`, the backlog figure included).

mod basics;
mod data_dir;
mod model;
mod quarantine;
mod quota;
mod recovery;
mod totals;
mod windows;

use std::path::{Path, PathBuf};

use super::*;
use crate::logic::counter::StepKind;

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested").join("agent.db");
    (dir, path)
}

fn open(path: &Path) -> Store {
    Store::open(path, &StoreOptions::default()).expect("open store")
}

/// A store at `path` with a byte quota of `max_bytes`.
pub(super) fn open_with_quota(path: &Path, max_bytes: u64) -> Store {
    Store::open(
        path,
        &StoreOptions {
            max_bytes,
            ..StoreOptions::default()
        },
    )
    .expect("open store")
}

/// Every stored window record, by key, read with plain SQL: production code reads windows only by span.
pub(super) fn window_records(store: &Store) -> Vec<String> {
    let mut stmt = store
        .conn
        .prepare("SELECT record FROM windows ORDER BY key")
        .expect("prepare");
    let rows = stmt.query_map([], |row| row.get(0)).expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

fn draft(topic: &str, body: serde_json::Value) -> OutboxDraft {
    OutboxDraft {
        topic: topic.to_owned(),
        body,
        class: DropClass::of_stored_topic(topic),
    }
}

fn cycle_with_outbox(now: Millis, drafts: Vec<OutboxDraft>) -> CycleWrite {
    CycleWrite {
        outbox: drafts,
        now,
        ..CycleWrite::default()
    }
}

fn payload_json(row: &OutboxRow) -> serde_json::Value {
    serde_json::from_slice(&row.payload).expect("payload is JSON")
}

/// Every unsent row, in seq order.
fn all_unacked(store: &Store) -> Vec<OutboxRow> {
    store.unacked(0, usize::MAX).expect("read outbox")
}

/// `path` with `suffix` appended to the file name (`-wal`, `-shm`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
