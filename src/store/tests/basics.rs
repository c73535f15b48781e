//! Basic behaviour of the store against real SQLite files: open, pragmas, epoch, commit, retire, seq, rollback,
//! the async handle.

use std::path::Path;

use serde_json::json;

use super::*;

#[test]
fn given_a_new_path_when_opened_then_directory_is_created_and_pragmas_read_back() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    assert!(path.exists());
    let journal_mode: String = store
        .conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    let synchronous: i64 = store
        .conn
        .pragma_query_value(None, "synchronous", |row| row.get(0))
        .unwrap();
    let temp_store: i64 = store
        .conn
        .pragma_query_value(None, "temp_store", |row| row.get(0))
        .unwrap();
    let user_version: i64 = store
        .conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(journal_mode, "wal");
    assert_eq!(synchronous, 2);
    assert_eq!(temp_store, 2);
    assert_eq!(
        user_version,
        i64::try_from(schema::MIGRATIONS.len()).unwrap()
    );
    assert_eq!(store.db_epoch().len(), 16);
    assert!(store.db_epoch().chars().all(|c| c.is_ascii_hexdigit()));
    assert!(store.created_at() > 0);
}

#[test]
fn given_a_max_bytes_quota_when_opened_then_max_page_count_is_quota_over_page_size() {
    let (_dir, path) = temp_db();
    let store = Store::open(
        &path,
        &StoreOptions {
            max_bytes: 8 * 1024 * 1024,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let page_size: i64 = store
        .conn
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .unwrap();
    let max_page_count: i64 = store
        .conn
        .pragma_query_value(None, "max_page_count", |row| row.get(0))
        .unwrap();
    assert_eq!(max_page_count, 8 * 1024 * 1024 / page_size);
}

#[test]
fn given_an_in_memory_database_when_opened_then_wal_mismatch_is_a_typed_error() {
    // An in-memory database cannot use WAL: SQLite answers journal_mode = memory.
    let result = Store::open(Path::new(":memory:"), &StoreOptions::default());
    match result {
        Err(StoreError::PragmaMismatch {
            pragma, expected, ..
        }) => {
            assert_eq!(pragma, "journal_mode");
            assert_eq!(expected, "wal");
        }
        other => panic!("expected PragmaMismatch, got {other:?}"),
    }
}

#[test]
fn given_committed_state_when_reopened_then_db_epoch_counters_and_windows_survive() {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    let epoch = store.db_epoch().to_owned();
    let created_at = store.created_at();
    store
        .commit_cycle(&CycleWrite {
            counters: vec![
                ("press-01/produced".into(), r#"{"last":10}"#.into()),
                ("press-01/defective".into(), r#"{"last":1}"#.into()),
            ],
            windows: vec![("press-01/1m/0".into(), r#"{"start":0}"#.into())],
            now: 1_000,
            ..CycleWrite::default()
        })
        .unwrap();
    store
        .commit_cycle(&CycleWrite {
            counters: vec![("press-01/produced".into(), r#"{"last":12}"#.into())],
            now: 2_000,
            ..CycleWrite::default()
        })
        .unwrap();
    drop(store);

    let store = open(&path);
    assert_eq!(store.db_epoch(), epoch);
    assert_eq!(store.created_at(), created_at);
    assert_eq!(
        store.load_counters().unwrap(),
        vec![
            ("press-01/defective".to_owned(), r#"{"last":1}"#.to_owned()),
            ("press-01/produced".to_owned(), r#"{"last":12}"#.to_owned()),
        ]
    );
    assert_eq!(window_records(&store), vec![r#"{"start":0}"#.to_owned()]);
}

#[test]
fn given_two_database_files_when_opened_then_their_epochs_differ() {
    let (_dir_a, path_a) = temp_db();
    let (_dir_b, path_b) = temp_db();
    assert_ne!(open(&path_a).db_epoch(), open(&path_b).db_epoch());
}

#[test]
fn given_drafts_when_committed_then_payloads_carry_seq_and_db_epoch_in_seq_order() {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    let seqs = store
        .commit_cycle(&cycle_with_outbox(
            5_000,
            vec![
                draft("t/rollup/1m", json!({"msg_id": "a", "seq": "overwritten"})),
                draft("t/rollup/15m", json!({"msg_id": "b"})),
            ],
        ))
        .unwrap()
        .seqs;
    assert_eq!(seqs, vec![1, 2]);

    let rows = store.unacked(0, 10).unwrap();
    assert_eq!(rows.len(), 2);
    for (row, (seq, msg_id)) in rows.iter().zip([(1, "a"), (2, "b")]) {
        let body = payload_json(row);
        assert_eq!(row.seq, seq);
        assert_eq!(row.enqueued_at, 5_000);
        assert_eq!(body["seq"], json!(seq));
        assert_eq!(body["db_epoch"], json!(store.db_epoch()));
        assert_eq!(body["msg_id"], json!(msg_id));
    }
    assert_eq!(rows[0].topic, "t/rollup/1m");
    assert_eq!(store.unacked(1, 10).unwrap()[0].seq, 2);
    assert_eq!(store.unacked(0, 1).unwrap().len(), 1);

    let backlog = store.backlog().unwrap();
    assert_eq!(backlog.rows, 2);
    let bytes: usize = rows.iter().map(|row| row.payload.len()).sum();
    assert_eq!(backlog.bytes, u64::try_from(bytes).unwrap());
    assert_eq!(backlog.oldest_enqueued_at, Some(5_000));
}

#[test]
fn given_all_rows_retired_when_reopened_then_seq_keeps_increasing() {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    let drafts = vec![
        draft("t", json!({})),
        draft("t", json!({})),
        draft("t", json!({})),
    ];
    let seqs = store
        .commit_cycle(&cycle_with_outbox(1, drafts))
        .unwrap()
        .seqs;
    assert_eq!(store.retire(&seqs).unwrap(), 3);
    assert_eq!(
        store.retire(&seqs).unwrap(),
        0,
        "a duplicate PUBACK retires nothing"
    );
    assert_eq!(store.backlog().unwrap(), Backlog::default());
    assert_eq!(store.last_seq().unwrap(), 3);
    drop(store);

    let mut store = open(&path);
    assert_eq!(store.last_seq().unwrap(), 3);
    let next = store
        .commit_cycle(&cycle_with_outbox(2, vec![draft("t", json!({}))]))
        .unwrap()
        .seqs;
    assert_eq!(next, vec![4]);
    assert_eq!(
        payload_json(&store.unacked(0, 10).unwrap()[0])["seq"],
        json!(4)
    );
}

fn committed_baseline(store: &mut Store) {
    store
        .commit_cycle(&CycleWrite {
            counters: vec![("c".into(), "old".into())],
            deltas: vec![DeltaRow {
                key: "c".into(),
                kind: StepKind::Baseline,
                delta: 0,
                raw: 7,
                t_from: 10,
                t_to: 10,
            }],
            windows: vec![("w".into(), "old".into())],
            outbox: vec![draft("t", json!({"n": 1}))],
            now: 10,
        })
        .unwrap();
}

fn poisoned_cycle(poison: OutboxDraft) -> CycleWrite {
    CycleWrite {
        counters: vec![("c".into(), "new".into()), ("d".into(), "new".into())],
        deltas: vec![DeltaRow {
            key: "c".into(),
            kind: StepKind::Normal,
            delta: 3,
            raw: 10,
            t_from: 10,
            t_to: 20,
        }],
        windows: vec![("w".into(), "new".into()), ("w2".into(), "new".into())],
        outbox: vec![draft("t", json!({"n": 2})), poison],
        now: 20,
    }
}

fn assert_only_baseline(store: &Store) {
    assert_eq!(
        store.load_counters().unwrap(),
        vec![("c".into(), "old".into())]
    );
    assert_eq!(window_records(store), vec!["old".to_owned()]);
    assert_eq!(store.deltas_after(0, 100).unwrap().len(), 1);
    assert_eq!(store.unacked(0, 100).unwrap().len(), 1);
    assert_eq!(
        store.last_seq().unwrap(),
        1,
        "a rolled-back seq is not consumed"
    );
}

#[test]
fn given_a_draft_that_is_not_an_object_when_committing_then_nothing_of_the_cycle_is_stored() {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    committed_baseline(&mut store);
    let result = store.commit_cycle(&poisoned_cycle(draft("bad", json!([1, 2]))));
    assert!(matches!(result, Err(StoreError::PayloadNotObject { ref topic }) if topic == "bad"));
    assert_only_baseline(&store);
    drop(store);
    assert_only_baseline(&open(&path));
}

#[test]
fn given_a_failing_outbox_insert_when_committing_then_the_whole_cycle_rolls_back() {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    committed_baseline(&mut store);
    // Inject an SQL-level failure after the counters, deltas and windows were written in the same transaction.
    store
        .conn
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON outbox WHEN NEW.topic = 'poison'
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    let result = store.commit_cycle(&poisoned_cycle(draft("poison", json!({}))));
    assert!(matches!(result, Err(StoreError::Sqlite(_))), "{result:?}");
    assert_only_baseline(&store);
    drop(store);
    assert_only_baseline(&open(&path));
}

#[test]
fn given_deltas_when_pruned_then_only_older_entries_go_and_u64_values_round_trip() {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    let row = |t_to: Millis, raw: u64| DeltaRow {
        key: "c".into(),
        kind: StepKind::Normal,
        delta: 1,
        raw,
        t_from: t_to - 1,
        t_to,
    };
    store
        .commit_cycle(&CycleWrite {
            deltas: vec![row(100, 1), row(200, u64::MAX), row(300, 3)],
            ..CycleWrite::default()
        })
        .unwrap();
    assert_eq!(store.prune_deltas(200).unwrap(), 1);
    let left: Vec<DeltaRow> = store
        .deltas_after(0, 10)
        .unwrap()
        .into_iter()
        .map(|(_, delta)| delta)
        .collect();
    assert_eq!(left, vec![row(200, u64::MAX), row(300, 3)]);
}

#[tokio::test]
async fn given_a_store_handle_when_called_from_async_tasks_then_requests_run_and_close_releases_the_file(
) {
    let (_dir, path) = temp_db();
    let handle = StoreHandle::spawn(open(&path));
    let mut tasks = tokio::task::JoinSet::new();
    for task_index in 0..4 {
        let handle = handle.clone();
        tasks.spawn(async move {
            handle
                .call(move |store| {
                    store.commit_cycle(&cycle_with_outbox(
                        task_index,
                        vec![draft("t", json!({"task": task_index}))],
                    ))
                })
                .await
        });
    }
    let mut seqs = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        seqs.extend(joined.unwrap().unwrap().unwrap().seqs);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    let backlog = handle.call(|store| store.backlog()).await.unwrap().unwrap();
    assert_eq!(backlog.rows, 4);

    handle.close().await;
    // The last connection to close checkpoints the WAL and deletes it.
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    assert!(!Path::new(&wal).exists());
    assert_eq!(open(&path).last_seq().unwrap(), 4);
}

#[test]
fn given_delta_rows_written_as_text_by_earlier_builds_when_read_then_each_kind_reads_back() {
    // The delta log has always stored a step kind as its serde name; rows written before the kind was typed
    // must read the same.
    let stored = [
        ("baseline", StepKind::Baseline),
        ("normal", StepKind::Normal),
        ("wrap", StepKind::Wrap),
        ("reset", StepKind::Reset),
        ("glitch_zero", StepKind::GlitchZero),
        ("held_zero", StepKind::HeldZero),
        ("ignored_decrease", StepKind::IgnoredDecrease),
        ("rejected", StepKind::Rejected),
        ("invalid", StepKind::Invalid),
    ];
    let (_dir, path) = temp_db();
    let store = open(&path);
    for (name, _) in stored {
        store
            .conn
            .execute(
                "INSERT INTO deltas (key, kind, delta, raw, t_from, t_to) VALUES ('m/produced', ?1, 1, 2, 3, 4)",
                [name],
            )
            .unwrap();
    }
    drop(store);
    let store = open(&path);
    let kinds: Vec<StepKind> = store
        .deltas_after(0, 100)
        .unwrap()
        .into_iter()
        .map(|(_, row)| row.kind)
        .collect();
    assert_eq!(kinds, stored.map(|(_, kind)| kind).to_vec());
}

#[test]
fn given_a_typed_step_kind_when_committed_then_the_stored_text_is_its_serde_name() {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    store
        .commit_cycle(&CycleWrite {
            deltas: vec![DeltaRow {
                key: "m/produced".into(),
                kind: StepKind::IgnoredDecrease,
                delta: 0,
                raw: 5,
                t_from: 1,
                t_to: 2,
            }],
            ..CycleWrite::default()
        })
        .unwrap();
    let text: String = store
        .conn
        .query_row("SELECT kind FROM deltas", [], |row| row.get(0))
        .unwrap();
    assert_eq!(text, "ignored_decrease");
    assert_eq!(
        serde_json::to_value(StepKind::IgnoredDecrease).unwrap(),
        json!(text)
    );
}

#[test]
fn given_a_step_kind_this_build_does_not_know_when_read_then_it_is_an_error_not_a_guess() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    store
        .conn
        .execute(
            "INSERT INTO deltas (key, kind, delta, raw, t_from, t_to) VALUES ('m/produced', 'warp', 1, 2, 3, 4)",
            [],
        )
        .unwrap();
    assert!(matches!(
        store.deltas_after(0, 100),
        Err(StoreError::Sqlite(_))
    ));
}
