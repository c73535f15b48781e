//! The single-instance guards and the vanished-database check, in process: the client-id lock refuses a
//! second holder and is free again once dropped; a deleted database file is reported and announced at reopen.

use super::*;

#[test]
fn given_a_held_client_id_when_taken_again_then_it_is_refused_naming_the_holder_until_released() {
    let client_id = format!("store-test-{}-{}", std::process::id(), line!());
    let first = lock_client_id(&client_id, "the first holder".to_owned()).expect("free id");
    match lock_client_id(&client_id, "the second".to_owned()) {
        Err(LockError::ClientIdBusy {
            client_id: busy,
            holder,
        }) => {
            assert_eq!(busy, client_id);
            assert_eq!(holder, "the first holder");
        }
        other => panic!("expected ClientIdBusy, got {other:?}"),
    }
    drop(first);
    let again = lock_client_id(&client_id, "the third".to_owned());
    assert!(again.is_ok(), "released on drop: {again:?}");
}

#[test]
fn given_the_database_deleted_under_the_store_when_checked_then_it_is_displaced_and_the_reopen_reports_it(
) {
    let (_dir, path) = temp_db();
    let mut store = open(&path);
    store.check_in_place().expect("in place after open");
    let epoch = store.db_epoch().to_owned();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();

    let result = store.commit_cycle(&cycle_with_outbox(1, vec![]));
    assert!(
        matches!(result, Err(StoreError::Displaced { .. })),
        "{result:?}"
    );
    drop(store);

    let reopened = open(&path);
    let recovery = reopened
        .recovery()
        .cloned()
        .expect("the vanished store is reported");
    assert_eq!(recovery.moved_to, None);
    assert!(
        recovery.reason.contains("deleted or replaced"),
        "{}",
        recovery.reason
    );
    assert_ne!(reopened.db_epoch(), epoch);
    drop(reopened);
    assert!(open(&path).recovery().is_none(), "reported once");
}
