//! The status report from stored figures, the snapshot's "since", and a real read-only read of a store file.

use super::*;
use crate::poller::{PlcHealth, UnitHealth};
use crate::store::{Backlog, DropCounters, Store, StoreOptions};

const CONFIG: &str = r#"
    [agent]
    site = "acme"
    gateway = "gw-01"
    timezone = "UTC"
    data_dir = "/tmp/x"

    [[plc]]
    id = "plc-a"
    address = "127.0.0.1:502"

    [[machine]]
    id = "press-01"
    line = "line-a"
    plc = "plc-a"
    counters.produced = { table = "holding", address = 100, type = "u32" }
"#;

const T0: Millis = 1_795_869_000_000;

fn config() -> Config {
    Config::from_toml(CONFIG, "status.toml", false).unwrap()
}

fn board(up: bool, unit_up: bool) -> Vec<PlcHealth> {
    vec![PlcHealth {
        id: "plc-a".into(),
        up,
        last_error: (!up).then(|| "connect refused".to_owned()),
        units: vec![UnitHealth {
            unit_id: 1,
            up: unit_up,
            ..UnitHealth::default()
        }],
        ..PlcHealth::default()
    }]
}

#[test]
fn since_moves_only_when_the_state_changes() {
    let mut history = HealthHistory::default();
    let first = history.observe(&board(true, true), T0);
    assert_eq!(first.plcs[0].since, T0);
    let same = history.observe(&board(true, false), T0 + 1_000);
    assert_eq!(same.plcs[0].since, T0);
    assert_eq!(same.plcs[0].units[0].since, T0 + 1_000);
    let down = history.observe(&board(false, false), T0 + 5_000);
    assert_eq!((down.plcs[0].up, down.plcs[0].since), (false, T0 + 5_000));
    assert_eq!(down.plcs[0].units[0].since, T0 + 1_000);
    assert_eq!(down.at, T0 + 5_000);
}

#[test]
fn the_report_shows_ages_relative_to_now_and_the_snapshot_with_its_age() {
    let mut history = HealthHistory::default();
    let snapshot = history.observe(&board(false, false), T0);
    let stored = StoreStatus {
        db_epoch: Some("0123456789abcdef".into()),
        backlog: Backlog {
            rows: 4,
            bytes: 400,
            oldest_enqueued_at: Some(T0 - 60_000),
        },
        drops: DropCounters {
            rollup_1m: 2,
            durable: 1,
            ..DropCounters::default()
        },
        last_publish_at: Some(T0 - 90_000),
        opened_at: Some(T0 - 3_600_000),
        quarantined_pending: Some(1),
        health_snapshot: Some(serde_json::to_string(&snapshot).unwrap()),
    };
    let report = report(&config(), "/tmp/x/agent.db", &stored, T0 + 10_000);
    assert_eq!(report.backlog.oldest_unsent.as_ref().unwrap().age_s, 70.0);
    assert_eq!(report.last_publish.as_ref().unwrap().age_s, 100.0);
    assert_eq!(report.drops.rows_total, 3);
    assert_eq!(report.drops.rows_by_class["rollup_1m"], 2);
    let devices = report.devices.as_ref().unwrap();
    assert_eq!((devices.plcs_up, devices.snapshot.age_s), (0, 10.0));
    assert_eq!(
        devices.plcs[0].last_error.as_deref(),
        Some("connect refused")
    );
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    for field in [
        "database",
        "db_epoch",
        "now",
        "backlog",
        "drops",
        "last_publish",
        "last_restart",
        "quarantined_pending",
        "devices",
    ] {
        assert!(json.get(field).is_some(), "{field} missing");
    }
    let text = render::text(&report);
    assert!(text.contains("4 rows, 400 bytes"), "{text}");
    assert!(text.contains("0 of 1 PLCs up"), "{text}");
    assert!(text.contains("connect refused"), "{text}");
}

#[test]
fn a_store_file_is_read_read_only_beside_its_open_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.db");
    let mut store = Store::open(&path, &StoreOptions::default()).unwrap();
    let mut history = HealthHistory::default();
    let snapshot = history.observe(&board(true, true), T0);
    store
        .save_health_snapshot(&serde_json::to_string(&snapshot).unwrap())
        .unwrap();
    let before = std::fs::read(&path).unwrap().len();

    let stored = StatusDb::open(&path).unwrap().read().unwrap();
    assert_eq!(stored.backlog, Backlog::default());
    assert!(stored.opened_at.is_some());
    assert_eq!(stored.last_publish_at, None);
    assert_eq!(stored.quarantined_pending, Some(0));
    assert_eq!(stored.db_epoch.as_deref(), Some(store.db_epoch()));
    let read_back: HealthSnapshot =
        serde_json::from_str(stored.health_snapshot.as_deref().unwrap()).unwrap();
    assert_eq!(read_back, snapshot);
    assert_eq!(std::fs::read(&path).unwrap().len(), before);

    let missing = dir.path().join("nothing.db");
    let error = StatusDb::open(&missing).unwrap_err();
    assert!(error.to_string().contains(&missing.display().to_string()));
}

#[test]
fn an_unchanged_snapshot_needs_no_write_until_the_refresh_interval() {
    let mut history = HealthHistory::default();
    let first = history.observe(&board(true, true), T0);
    assert!(history.needs_saving(&first), "nothing written yet");
    history.saved(first);

    let same = history.observe(&board(true, true), T0 + 30_000);
    assert!(!history.needs_saving(&same), "same devices 30 s later");
    let almost = history.observe(&board(true, true), T0 + SNAPSHOT_REFRESH_MS - 1);
    assert!(!history.needs_saving(&almost));
    let stale = history.observe(&board(true, true), T0 + SNAPSHOT_REFRESH_MS);
    assert!(history.needs_saving(&stale), "refreshed after the interval");

    let unit_down = history.observe(&board(true, false), T0 + 60_000);
    assert!(history.needs_saving(&unit_down), "a unit went down");
    let clock_back = history.observe(&board(true, true), T0 - 1);
    assert!(
        history.needs_saving(&clock_back),
        "the wall clock went back"
    );
}

#[test]
fn persisting_an_unchanged_board_leaves_the_stored_snapshot_alone_until_a_device_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.db");
    let store = Store::open(&path, &StoreOptions::default()).unwrap();
    let handle = StoreHandle::spawn(store);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stored_at = |path: &std::path::Path| -> (Millis, bool) {
        let stored = StatusDb::open(path).unwrap().read().unwrap();
        let snapshot: HealthSnapshot =
            serde_json::from_str(stored.health_snapshot.as_deref().unwrap()).unwrap();
        (snapshot.at, snapshot.plcs[0].units[0].up)
    };
    let live_board: crate::poller::HealthBoard =
        std::sync::Arc::new(std::sync::Mutex::new(board(true, true)));
    let mut history = HealthHistory::default();
    runtime.block_on(persist_health(&mut history, &live_board, &handle, T0));
    assert_eq!(stored_at(&path), (T0, true));

    // Given the same board at the next health ticks, when persisted, then the stored snapshot is not rewritten.
    runtime.block_on(persist_health(
        &mut history,
        &live_board,
        &handle,
        T0 + 30_000,
    ));
    runtime.block_on(persist_health(
        &mut history,
        &live_board,
        &handle,
        T0 + 60_000,
    ));
    assert_eq!(stored_at(&path), (T0, true));

    // A unit going down is written at the next tick.
    *live_board.lock().unwrap() = board(true, false);
    runtime.block_on(persist_health(
        &mut history,
        &live_board,
        &handle,
        T0 + 90_000,
    ));
    assert_eq!(stored_at(&path), (T0 + 90_000, false));
    runtime.block_on(handle.close());
}
