//! Start-up safety on real files: truncated, overwritten, garbage, empty, stale (WAL lost after a crash) and
//! newer-schema databases open to a working store, either intact or moved aside and replaced by a fresh one
//! with a new epoch; a busy database is never moved. Corruption is seeded, so every run damages the same bytes.

use std::io::{Seek as _, SeekFrom, Write as _};

use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

use super::*;

const PAGE: u64 = 4096;

/// What a populated store held when it was closed.
struct Snapshot {
    epoch: String,
    rows: Vec<OutboxRow>,
    counters: Vec<(String, String)>,
}

/// Commits 60 cycles of three ~500-byte rows (smaller than a page, so no overflow pages) plus counters.
fn populate(store: &mut Store) {
    for index in 0..60 {
        store
            .commit_cycle(&CycleWrite {
                counters: vec![("press-01/produced".into(), format!("{{\"last\":{index}}}"))],
                windows: vec![(format!("w/{index}"), "{}".into())],
                outbox: ["rollup/1m", "rollup/15m", "event"]
                    .iter()
                    .map(|suffix| {
                        draft(
                            &format!("p/s/l/press-01/{suffix}"),
                            json!({"cycle": index, "filler": "y".repeat(450)}),
                        )
                    })
                    .collect(),
                now: index,
                ..CycleWrite::default()
            })
            .unwrap();
    }
}

fn populated(path: &Path) -> Snapshot {
    let mut store = open(path);
    populate(&mut store);
    let snapshot = Snapshot {
        epoch: store.db_epoch().to_owned(),
        rows: all_unacked(&store),
        counters: store.load_counters().unwrap(),
    };
    drop(store);
    assert!(
        !with_suffix(path, "-wal").exists(),
        "a clean close checkpoints"
    );
    snapshot
}

/// The store reports a recovery: the old files sit at `moved_to`, the new database is empty, sound, writable,
/// has a new epoch, and reopens without another recovery.
fn assert_recovered(store: Store, old_epoch: &str) -> Recovery {
    let recovery = store.recovery().cloned().expect("a recovery is reported");
    let moved_to = recovery
        .moved_to
        .as_ref()
        .expect("the old file was moved aside");
    assert!(moved_to.exists(), "{recovery:?}");
    assert!(moved_to.to_string_lossy().contains("agent.db.corrupt-"));
    assert_ne!(store.db_epoch(), old_epoch);
    assert_eq!(store.backlog().unwrap(), Backlog::default());
    assert_eq!(store.last_seq().unwrap(), 0);
    assert!(store.load_counters().unwrap().is_empty());
    assert!(store.integrity_check().unwrap().is_empty());
    let path = store.path().to_path_buf();
    let epoch = store.db_epoch().to_owned();
    let mut store = store;
    assert_eq!(
        store
            .commit_cycle(&cycle_with_outbox(1, vec![draft("t/event", json!({}))]))
            .unwrap()
            .seqs,
        vec![1]
    );
    drop(store);
    let reopened = open(&path);
    assert!(reopened.recovery().is_none());
    assert_eq!(reopened.db_epoch(), epoch);
    recovery
}

/// Either the data survived exactly, or a recovery was reported; returns whether it was recovered.
fn assert_intact_or_recovered(store: Store, snapshot: &Snapshot) -> bool {
    if store.recovery().is_some() {
        assert_recovered(store, &snapshot.epoch);
        true
    } else {
        assert_eq!(store.db_epoch(), snapshot.epoch);
        assert_eq!(all_unacked(&store), snapshot.rows);
        assert_eq!(store.load_counters().unwrap(), snapshot.counters);
        assert!(store.integrity_check().unwrap().is_empty());
        false
    }
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn given_a_truncated_file_when_opened_then_it_is_moved_aside_and_a_fresh_store_starts() {
    for keep in [None, Some(0), Some(100)] {
        let (_dir, path) = temp_db();
        let snapshot = populated(&path);
        let len = std::fs::metadata(&path).unwrap().len();
        truncate(&path, keep.unwrap_or(len / 2));
        let recovery = assert_recovered(open(&path), &snapshot.epoch);
        // The moved file is the damaged original, kept for inspection.
        assert_eq!(
            std::fs::metadata(recovery.moved_to.as_ref().unwrap())
                .unwrap()
                .len(),
            keep.unwrap_or(len / 2)
        );
    }
}

#[test]
fn given_garbage_over_any_page_when_opened_then_the_data_is_intact_or_a_recovery_is_reported() {
    let (dir, path) = temp_db();
    let snapshot = populated(&path);
    let pages = std::fs::metadata(&path).unwrap().len() / PAGE;
    assert!(pages > 8, "the fixture spans many pages");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut recovered = 0;
    for page in 0..pages {
        let copy = dir.path().join(format!("page-{page}")).join("agent.db");
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(&path, &copy).unwrap();
        let mut garbage = vec![0_u8; usize::try_from(PAGE).unwrap()];
        rng.fill(&mut garbage[..]);
        let mut file = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
        file.seek(SeekFrom::Start(page * PAGE)).unwrap();
        file.write_all(&garbage).unwrap();
        drop(file);
        if assert_intact_or_recovered(open(&copy), &snapshot) {
            recovered += 1;
        }
    }
    // Every page of this fixture is in use (nothing was ever deleted), so garbage anywhere is found.
    assert_eq!(recovered, pages);
}

#[test]
fn given_a_garbage_file_with_garbage_wal_and_shm_when_opened_then_all_three_are_moved_aside() {
    let (_dir, path) = temp_db();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for suffix in ["", "-wal", "-shm"] {
        let mut garbage = vec![0_u8; 64 * 1024];
        rng.fill(&mut garbage[..]);
        std::fs::write(with_suffix(&path, suffix), garbage).unwrap();
    }
    let recovery = assert_recovered(open(&path), "none");
    for suffix in ["", "-wal", "-shm"] {
        assert!(
            with_suffix(recovery.moved_to.as_ref().unwrap(), suffix).exists(),
            "{suffix} moved"
        );
    }
}

#[test]
fn given_a_crash_image_without_its_wal_when_opened_then_the_stale_file_is_replaced() {
    let (dir, path) = temp_db();
    let mut store = open(&path);
    populate(&mut store);
    assert!(
        std::fs::metadata(with_suffix(&path, "-wal")).unwrap().len() > 0,
        "the WAL holds committed frames"
    );
    // Copies taken while the store is open are what a power cut leaves behind.
    let with_wal = dir.path().join("with-wal").join("agent.db");
    let without_wal = dir.path().join("without-wal").join("agent.db");
    for copy in [&with_wal, &without_wal] {
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(&path, copy).unwrap();
    }
    for suffix in ["-wal", "-shm"] {
        std::fs::copy(with_suffix(&path, suffix), with_suffix(&with_wal, suffix)).unwrap();
    }
    let snapshot = Snapshot {
        epoch: store.db_epoch().to_owned(),
        rows: all_unacked(&store),
        counters: store.load_counters().unwrap(),
    };
    drop(store);

    let crashed = open(&with_wal);
    assert!(
        crashed.recovery().is_none(),
        "a crash with its WAL is no corruption"
    );
    assert!(!assert_intact_or_recovered(crashed, &snapshot));

    let stale = open(&without_wal);
    let recovery = assert_recovered(stale, &snapshot.epoch);
    assert!(
        recovery.reason.contains("write-ahead log"),
        "{}",
        recovery.reason
    );
}

#[test]
fn given_a_file_from_a_newer_schema_when_opened_then_it_is_moved_aside_intact() {
    let (_dir, path) = temp_db();
    let snapshot = populated(&path);
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);
    let recovery = assert_recovered(open(&path), &snapshot.epoch);
    assert!(recovery.reason.contains("newer"), "{}", recovery.reason);
    // The moved file is untouched: a newer agent can still use it.
    let moved = rusqlite::Connection::open(recovery.moved_to.as_ref().unwrap()).unwrap();
    let rows: i64 = moved
        .query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 180);
}

#[test]
fn given_a_database_locked_by_another_process_when_opened_then_it_is_an_error_and_nothing_moves() {
    let (_dir, path) = temp_db();
    let snapshot = populated(&path);
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder
        .pragma_update(None, "locking_mode", "EXCLUSIVE")
        .unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let result = Store::open(&path, &StoreOptions::default());
    assert!(
        matches!(result, Err(StoreError::Sqlite(ref error)) if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)),
        "{result:?}"
    );
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    let store = open(&path);
    assert!(!assert_intact_or_recovered(store, &snapshot));
}

#[test]
fn given_one_unreadable_meta_value_when_opened_then_it_is_reset_and_the_unsent_rows_stay() {
    let blob = rusqlite::types::Value::Blob(vec![0xde, 0xad]);
    let text = |value: &str| rusqlite::types::Value::Text(value.to_owned());
    let cases = [
        ("db_epoch", text("not an epoch")),
        ("db_epoch", blob.clone()),
        ("created_at", text("yesterday")),
        ("created_at", blob.clone()),
        ("in_use", text("maybe")),
        ("in_use", blob.clone()),
        ("drops.rollup_1m", text("-3")),
        ("drops.refused_bytes", blob),
    ];
    for (key, bad) in cases {
        let (_dir, path) = temp_db();
        let snapshot = populated(&path);
        let raw = rusqlite::Connection::open(&path).unwrap();
        let changed = raw
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, &bad),
            )
            .unwrap();
        assert_eq!(changed, 1);
        drop(raw);

        let store = open(&path);
        assert!(
            store.recovery().is_none(),
            "{key} = {bad:?}: {:?}",
            store.recovery()
        );
        assert_eq!(all_unacked(&store), snapshot.rows, "{key} = {bad:?}");
        assert_eq!(store.load_counters().unwrap(), snapshot.counters);
        if key == "db_epoch" {
            // Seq continuity under the old epoch is unknown, so the file continues under a new one.
            assert_ne!(store.db_epoch(), snapshot.epoch);
            assert_eq!(store.db_epoch().len(), 16);
            assert!(store.db_epoch().bytes().all(|b| b.is_ascii_hexdigit()));
        } else {
            assert_eq!(store.db_epoch(), snapshot.epoch);
        }
        assert_eq!(store.drops(), DropCounters::default());
        let (epoch, created_at) = (store.db_epoch().to_owned(), store.created_at());
        drop(store);

        // The repair is persisted: the next open finds the same values and nothing to repair.
        let reopened = open(&path);
        assert!(reopened.recovery().is_none());
        assert_eq!(
            (reopened.db_epoch(), reopened.created_at()),
            (epoch.as_str(), created_at)
        );
        assert_eq!(all_unacked(&reopened), snapshot.rows);
        assert!(reopened.integrity_check().unwrap().is_empty());
    }
}
