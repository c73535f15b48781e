//! Window records keyed time first: a schema-5 file is rekeyed by migration 6 so the next upsert updates its
//! records in place, and a window close writes about as many pages into a store holding hours of records as
//! into a fresh one (counted as WAL frames after one commit from a checkpointed state: deterministic); start-up
//! reads the unsettled records through their partial index, at a cost that does not grow with the history.

use std::collections::BTreeSet;

use crate::logic::rollup::{Flag, WindowRecord, WindowStatus, WindowSums};

use super::*;

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;
/// An hour boundary (UTC), so 15-minute and hourly windows start at multiples of their length from here.
const T0: Millis = 1_795_824_000_000;
/// Machines of the close-cost test: the S1 fleet.
const MACHINES: usize = 200;
/// Hours of records before the measured close; `SHOPFLOOR_WINDOW_HISTORY_HOURS` overrides it (e.g. 24 for
/// the figures in README.md, which take a minute in a debug build).
const HISTORY_HOURS: i64 = 3;

fn record(machine: &str, period: &str, start: Millis, length: Millis) -> WindowRecord {
    let mut sums = WindowSums {
        produced: 1_234,
        defective: 12,
        running_ms: length * 3 / 4,
        unplanned_stop_ms: length / 4,
        ..WindowSums::default()
    };
    sums.by_reason.insert("scratch".into(), 7);
    sums.by_reason.insert("dent".into(), 5);
    sums.flags = BTreeSet::from([Flag::Estimated]);
    WindowRecord {
        machine: machine.into(),
        period: period.into(),
        start,
        end: start + length,
        shift: None,
        production_date: None,
        sums,
        status: WindowStatus::Final,
        revision: 0,
        dirty: false,
    }
}

fn open_record(machine: &str, period: &str, start: Millis, length: Millis) -> WindowRecord {
    WindowRecord {
        status: WindowStatus::Open,
        ..record(machine, period, start, length)
    }
}

/// The (key, JSON) pairs of `records` in key order, as the processor hands them to the store.
fn rows(records: &[WindowRecord]) -> Vec<(String, String)> {
    let mut rows: Vec<_> = records
        .iter()
        .map(|r| (r.key(), serde_json::to_string(r).unwrap()))
        .collect();
    rows.sort();
    rows
}

fn commit_windows(store: &mut Store, records: &[WindowRecord], now: Millis) {
    store
        .commit_cycle(&CycleWrite {
            windows: rows(records),
            now,
            ..CycleWrite::default()
        })
        .unwrap();
}

/// Every stored (key, record) pair, by key.
fn keyed_rows(store: &Store) -> Vec<(String, String)> {
    let mut stmt = store
        .conn
        .prepare("SELECT key, record FROM windows ORDER BY key")
        .unwrap();
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)));
    rows.unwrap().collect::<Result<_, _>>().unwrap()
}

/// A file at schema version 5 (before time-first keys) holding `records` under the keys of that version.
fn schema_5_file(path: &Path, records: &[WindowRecord]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    let tx = conn.transaction().unwrap();
    for migration in &schema::MIGRATIONS[..5] {
        tx.execute_batch(migration.sql).unwrap();
        if let Some(backfill) = migration.backfill {
            backfill(&tx).unwrap();
        }
    }
    for r in records {
        let legacy_key = format!("{}/{}/{}", r.machine, r.period, r.start);
        tx.execute(
            schema::UPSERT_WINDOW,
            (legacy_key, serde_json::to_string(r).unwrap(), 1),
        )
        .unwrap();
    }
    tx.execute(schema::UPSERT_WINDOW, ("not-json", "old", 1))
        .unwrap();
    tx.pragma_update(None, "user_version", 5).unwrap();
    tx.commit().unwrap();
}

#[test]
fn given_a_schema_5_file_with_windows_when_opened_then_records_are_rekeyed_and_updated_not_duplicated(
) {
    let (_dir, path) = temp_db();
    let mut records = Vec::new();
    for machine in ["m1", "m10", "press-01"] {
        for minute in 0..5 {
            records.push(record(machine, "1m", T0 + minute * MINUTE, MINUTE));
        }
        records.push(open_record(machine, "1m", T0 + 5 * MINUTE, MINUTE));
        records.push(open_record(machine, "1h", T0, HOUR));
    }
    schema_5_file(&path, &records);

    let mut store = open(&path);
    let stored = keyed_rows(&store);
    assert_eq!(stored.len(), records.len() + 1);
    for r in &records {
        let json = serde_json::to_string(r).unwrap();
        assert!(stored.contains(&(r.key(), json)), "{} not rekeyed", r.key());
    }
    assert!(stored.contains(&("not-json".to_owned(), "old".to_owned())));
    assert_eq!(store.load_unsettled_windows().unwrap().len(), 6);

    // The processor's next upserts (a close and a late restatement) go to the same rows.
    let mut closed = records[5].clone();
    closed.status = WindowStatus::Final;
    closed.sums.produced += 3;
    let mut restated = records[1].clone();
    restated.status = WindowStatus::Restated;
    restated.revision = 1;
    commit_windows(&mut store, &[closed.clone(), restated.clone()], T0 + HOUR);
    assert_eq!(keyed_rows(&store).len(), records.len() + 1, "no duplicate");
    let between: Vec<WindowRecord> = store
        .load_windows_between("m1", "1m", T0, T0 + HOUR)
        .unwrap()
        .iter()
        .map(|json| serde_json::from_str(json).unwrap())
        .collect();
    let mut expected = records[..6].to_vec();
    expected[1] = restated;
    expected[5] = closed;
    assert_eq!(between, expected);
    assert_eq!(store.load_unsettled_windows().unwrap().len(), 5);
    assert!(store.integrity_check().unwrap().is_empty());
    let plan = query_plan(
        &store,
        schema::SELECT_WINDOWS_BETWEEN,
        ("m1", "1m", T0, T0 + HOUR),
    );
    assert!(
        plan.iter().any(|step| step.contains("windows_by_time")),
        "{plan:?}"
    );
}

/// The steps of SQLite's plan for `sql` with `params` (the `detail` column of `EXPLAIN QUERY PLAN`).
fn query_plan(store: &Store, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
    store
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(params, |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Pages one window close writes (WAL frames of its commit, from a checkpointed state) in a store holding
/// `hours` of records of `machines` machines (1m, 15m and 1h windows): at the close, each machine's 1m
/// window becomes final, the next one opens and its open 15m and 1h windows are updated.
fn window_close_pages(machines: usize, hours: i64) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.db");
    let mut store = open_with_quota(&path, 1 << 34);
    let ids: Vec<String> = (0..machines).map(|i| format!("machine-{i:03}")).collect();
    let close_at = T0 + hours * HOUR + 7 * MINUTE;
    let periods = [("1m", MINUTE), ("15m", 15 * MINUTE), ("1h", HOUR)];
    // History, an hour per commit: every window that ended before the open ones started.
    for hour in 0..=hours {
        let mut batch = Vec::new();
        for (period, length) in periods {
            let mut start = T0 + hour * HOUR;
            while start < T0 + (hour + 1) * HOUR && start + length < close_at {
                batch.extend(ids.iter().map(|id| record(id, period, start, length)));
                start += length;
            }
        }
        commit_windows(&mut store, &batch, T0 + (hour + 1) * HOUR);
    }
    let open_now: Vec<WindowRecord> = periods
        .iter()
        .flat_map(|(period, length)| {
            let start = close_at - MINUTE - (close_at - MINUTE - T0) % length;
            ids.iter()
                .map(move |id| open_record(id, period, start, *length))
        })
        .collect();
    commit_windows(&mut store, &open_now, close_at - 1);

    let mut close: Vec<WindowRecord> = open_now
        .into_iter()
        .map(|mut r| {
            r.sums.produced += 1;
            if r.end == close_at {
                r.status = WindowStatus::Final;
            }
            r
        })
        .collect();
    close.extend(ids.iter().map(|id| open_record(id, "1m", close_at, MINUTE)));
    assert!(schema::checkpoint_truncate(&store.conn).unwrap());
    let wal = with_suffix(&path, "-wal");
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    commit_windows(&mut store, &close, close_at);
    let wal_bytes = std::fs::metadata(&wal).unwrap().len();
    (wal_bytes - 32) / (store.page_size + 24)
}

#[test]
fn given_hours_of_window_records_when_a_window_closes_then_it_writes_about_as_many_pages_as_on_a_fresh_file(
) {
    let hours = std::env::var("SHOPFLOOR_WINDOW_HISTORY_HOURS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(HISTORY_HOURS);
    let fresh = window_close_pages(MACHINES, 0);
    let long_running = window_close_pages(MACHINES, hours);
    println!(
        "pages written by one window close, {MACHINES} machines: {fresh} with minutes of records, \
         {long_running} with {hours} h of records"
    );
    assert!(
        long_running <= fresh + fresh / 10,
        "{long_running} pages with {hours} h of records vs {fresh} on a fresh file"
    );
}

#[test]
fn given_open_dirty_and_settled_records_when_unsettled_windows_are_loaded_then_the_open_and_dirty_ones_come_back(
) {
    // The generated column spells the open status as the records do.
    assert_eq!(
        serde_json::to_value(WindowStatus::Open).unwrap(),
        schema::OPEN_STATUS_IN_RECORDS
    );
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    let settled = record("m1", "1m", T0, MINUTE);
    let open_window = open_record("m1", "1m", T0 + MINUTE, MINUTE);
    let dirty = WindowRecord {
        dirty: true,
        ..record("m2", "1m", T0, MINUTE)
    };
    let restated = WindowRecord {
        status: WindowStatus::Restated,
        revision: 1,
        ..record("m3", "1m", T0, MINUTE)
    };
    let restated_dirty = WindowRecord {
        dirty: true,
        ..restated.clone()
    };
    commit_windows(
        &mut store,
        &[settled, open_window.clone(), dirty.clone(), restated],
        T0 + MINUTE,
    );
    commit_windows(
        &mut store,
        std::slice::from_ref(&restated_dirty),
        T0 + 2 * MINUTE,
    );
    store
        .conn
        .execute(schema::UPSERT_WINDOW, ("not-json", "old", 1))
        .unwrap();

    let mut loaded: Vec<WindowRecord> = store
        .load_unsettled_windows()
        .unwrap()
        .iter()
        .map(|json| serde_json::from_str(json).unwrap())
        .collect();
    loaded.sort_by_key(WindowRecord::key);
    let mut expected = vec![open_window, dirty, restated_dirty];
    expected.sort_by_key(WindowRecord::key);
    assert_eq!(loaded, expected);
    let plan = query_plan(&store, schema::SELECT_UNSETTLED_WINDOWS, []);
    assert!(
        plan.iter().any(|step| step.contains("windows_unsettled")),
        "{plan:?}"
    );
}

#[test]
fn given_100_times_more_settled_records_when_unsettled_windows_are_loaded_then_it_costs_the_same_sqlite_steps(
) {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    let ids: Vec<String> = (0..10).map(|i| format!("machine-{i}")).collect();
    // Settled history of `minutes` minutes, then every machine's open window after it.
    let cost_with = |store: &mut Store, minutes: i64| {
        let history: Vec<WindowRecord> = (0..minutes)
            .flat_map(|minute| {
                ids.iter()
                    .map(move |id| record(id, "1m", T0 + minute * MINUTE, MINUTE))
            })
            .collect();
        commit_windows(store, &history, T0 + minutes * MINUTE);
        let open_now: Vec<WindowRecord> = ids
            .iter()
            .map(|id| open_record(id, "1m", T0 + minutes * MINUTE, MINUTE))
            .collect();
        commit_windows(store, &open_now, T0 + minutes * MINUTE);
        let steps = || {
            let stmt = store
                .conn
                .prepare_cached(schema::SELECT_UNSETTLED_WINDOWS)
                .unwrap();
            stmt.get_status(rusqlite::StatementStatus::VmStep)
        };
        let before = steps();
        assert_eq!(store.load_unsettled_windows().unwrap().len(), ids.len());
        let after = steps();
        after - before
    };
    let small = cost_with(&mut store, 2);
    // The open windows of the first call were settled by the second one's history.
    let large = cost_with(&mut store, 200);
    assert_eq!(small, large, "start-up read does not grow with history");
}
