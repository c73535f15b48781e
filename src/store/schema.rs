//! Schema and connection settings of the store: every SQL statement as a named const, the migration list
//! applied through `PRAGMA user_version`, and the pragmas that are set and read back at every open.
//! It does not decide what is written when; that is the job of [`super::Store`].

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::quota::DropClass;
use super::StoreError;

/// A data fix-up of a migration that needs Rust, run inside the migration's transaction.
pub(super) type Backfill = fn(&Transaction<'_>) -> Result<(), StoreError>;

/// One schema step: SQL, then an optional data fix-up that needs Rust (both in the same transaction).
pub(super) struct Migration {
    /// Statements of the step.
    pub sql: &'static str,
    /// Runs after `sql`, e.g. to backfill a new column from existing rows.
    pub backfill: Option<Backfill>,
}

/// Schema migrations, applied in order; `PRAGMA user_version` counts how many have been applied.
/// Never edit an entry once released: append a new one instead.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: MIGRATION_1_INITIAL,
        backfill: None,
    },
    Migration {
        sql: MIGRATION_2_DROP_CLASS,
        backfill: Some(backfill_drop_class),
    },
    Migration {
        sql: MIGRATION_3_WINDOW_SPANS,
        backfill: None,
    },
    Migration {
        sql: MIGRATION_4_QUARANTINE_RELEASES,
        backfill: None,
    },
    Migration {
        sql: MIGRATION_5_OUTBOX_TOTALS,
        backfill: Some(super::totals::backfill_outbox_totals),
    },
    Migration {
        sql: MIGRATION_6_TIME_FIRST_WINDOWS,
        backfill: Some(super::retention::rekey_windows),
    },
    Migration {
        sql: MIGRATION_7_UNSETTLED_WINDOWS,
        backfill: None,
    },
];

/// Schema version from which the store has [`MIGRATION_4_QUARANTINE_RELEASES`].
pub(super) const QUARANTINE_SCHEMA_VERSION: i64 = 4;

const MIGRATION_1_INITIAL: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE counter_state (
    key        TEXT PRIMARY KEY NOT NULL,
    state      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE windows (
    key        TEXT PRIMARY KEY NOT NULL,
    record     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE deltas (
    id     INTEGER PRIMARY KEY,
    key    TEXT NOT NULL,
    kind   TEXT NOT NULL,
    delta  INTEGER NOT NULL,
    raw    INTEGER NOT NULL,
    t_from INTEGER NOT NULL,
    t_to   INTEGER NOT NULL
);
CREATE INDEX deltas_by_t_to ON deltas (t_to);
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT NOT NULL,
    payload     BLOB NOT NULL,
    enqueued_at INTEGER NOT NULL
);
";

/// The overflow policy picks victims by value class, oldest first; the index makes that a range scan.
/// Existing rows get the `Durable` default here and are classified from their topic by the backfill.
const MIGRATION_2_DROP_CLASS: &str = "
ALTER TABLE outbox ADD COLUMN drop_class INTEGER NOT NULL DEFAULT 4;
CREATE INDEX outbox_by_drop_class ON outbox (drop_class, seq);
";

fn backfill_drop_class(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let mut select = tx.prepare("SELECT seq, topic FROM outbox")?;
    let mut update = tx.prepare("UPDATE outbox SET drop_class = ?2 WHERE seq = ?1")?;
    let rows: Vec<(i64, String)> = select
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (seq, topic) in rows {
        let class = DropClass::of_stored_topic(&topic);
        if class != DropClass::Durable {
            update.execute((seq, class.rank()))?;
        }
    }
    Ok(())
}

/// Meta key of the random per-database-file epoch.
pub(super) const META_DB_EPOCH: &str = "db_epoch";
/// Meta key of the creation time of the database file (UTC milliseconds, decimal text).
pub(super) const META_CREATED_AT: &str = "created_at";
/// Meta key of the session marker: "1" while a store has the file open, "0" after a clean close. Together with
/// the presence of the `-wal` file it reveals a write-ahead log that went missing after a crash.
pub(super) const META_IN_USE: &str = "in_use";

/// Meta key of the time this file was last opened by the agent (UTC milliseconds, decimal text): its last restart.
pub(super) const META_OPENED_AT: &str = "opened_at";
/// Meta key of the time of the last retirement after a PUBACK (UTC milliseconds, decimal text), written in the
/// retiring transaction.
pub(super) const META_LAST_PUBLISH_AT: &str = "last_publish_at";
/// Meta key of the latest device health snapshot (JSON written by the processor), for `shopfloor-agent status`.
pub(super) const META_HEALTH_SNAPSHOT: &str = "health_snapshot";

pub(super) const INSERT_META_IF_ABSENT: &str =
    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING";
pub(super) const UPSERT_META: &str =
    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
pub(super) const SELECT_META: &str = "SELECT value FROM meta WHERE key = ?1";
/// Whether the meta table exists yet (it does not in a file that was never migrated).
pub(super) const SELECT_HAS_META_TABLE: &str =
    "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta')";

pub(super) const UPSERT_COUNTER: &str = "
INSERT INTO counter_state (key, state, updated_at) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at";
pub(super) const SELECT_COUNTERS: &str = "SELECT key, state FROM counter_state ORDER BY key";

pub(super) const UPSERT_WINDOW: &str = "
INSERT INTO windows (key, record, updated_at) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at";

pub(super) const INSERT_DELTA: &str =
    "INSERT INTO deltas (key, kind, delta, raw, t_from, t_to) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
pub(super) const SELECT_DELTAS_AFTER: &str = "
SELECT id, key, kind, delta, raw, t_from, t_to FROM deltas WHERE id > ?1 ORDER BY id LIMIT ?2";
pub(super) const DELETE_DELTAS_BEFORE: &str = "DELETE FROM deltas WHERE t_to < ?1";

/// The payload is written empty first and filled in once the row's seq is known.
pub(super) const INSERT_OUTBOX: &str =
    "INSERT INTO outbox (topic, payload, enqueued_at, drop_class) VALUES (?1, x'', ?2, ?3)";
pub(super) const SET_OUTBOX_PAYLOAD: &str = "UPDATE outbox SET payload = ?2 WHERE seq = ?1";
pub(super) const SELECT_UNACKED: &str = "
SELECT seq, topic, payload, enqueued_at FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2";
pub(super) const DELETE_OUTBOX_ROW: &str = "DELETE FROM outbox WHERE seq = ?1";
/// Rows and payload bytes of the whole outbox: a full scan, run only to fill or repair the kept totals.
pub(super) const COUNT_OUTBOX: &str =
    "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(payload AS BLOB))), 0) FROM outbox";
/// `enqueued_at` of the first row in queue order: one probe of the primary key.
pub(super) const SELECT_FIRST_ENQUEUED_AT: &str =
    "SELECT enqueued_at FROM outbox ORDER BY seq LIMIT 1";
/// Payload size of one row, for a retirement of a row the publisher did not claim.
pub(super) const SELECT_PAYLOAD_BYTES: &str =
    "SELECT LENGTH(CAST(payload AS BLOB)) FROM outbox WHERE seq = ?1";
/// AUTOINCREMENT keeps the highest seq ever handed out in `sqlite_sequence`, even after the rows are gone.
pub(super) const SELECT_LAST_SEQ: &str =
    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)";

/// Overflow victims: the deltas audit log oldest first, with an estimate of each entry's size.
pub(super) const SELECT_DELTA_SIZES: &str =
    "SELECT id, LENGTH(key) + LENGTH(kind) FROM deltas ORDER BY id";
pub(super) const DELETE_DELTAS_UP_TO: &str = "DELETE FROM deltas WHERE id <= ?1";
/// Overflow victims: one value class of the outbox, oldest first (a range scan of `outbox_by_drop_class`).
pub(super) const SELECT_OUTBOX_CLASS: &str = "
SELECT seq, topic, LENGTH(topic) + LENGTH(payload), enqueued_at,
       COALESCE(json_extract(CAST(payload AS TEXT), '$.counts.produced'), 0),
       COALESCE(json_extract(CAST(payload AS TEXT), '$.counts.defective'), 0),
       json_extract(CAST(payload AS TEXT), '$.line'),
       json_extract(CAST(payload AS TEXT), '$.machine'),
       LENGTH(CAST(payload AS BLOB))
FROM outbox WHERE drop_class = ?1 ORDER BY seq";

/// Every statement the store runs after open; preparing them all at open proves the schema is what this
/// build expects (a damaged or foreign schema is found at start, not in the middle of a cycle).
pub(super) const ALL_STATEMENTS: &[&str] = &[
    INSERT_META_IF_ABSENT,
    UPSERT_META,
    SELECT_META,
    UPSERT_COUNTER,
    SELECT_COUNTERS,
    UPSERT_WINDOW,
    INSERT_DELTA,
    SELECT_DELTAS_AFTER,
    DELETE_DELTAS_BEFORE,
    INSERT_OUTBOX,
    SET_OUTBOX_PAYLOAD,
    SELECT_UNACKED,
    DELETE_OUTBOX_ROW,
    COUNT_OUTBOX,
    SELECT_FIRST_ENQUEUED_AT,
    SELECT_PAYLOAD_BYTES,
    SELECT_LAST_SEQ,
    SELECT_DELTA_SIZES,
    DELETE_DELTAS_UP_TO,
    SELECT_OUTBOX_CLASS,
    SELECT_UNSETTLED_WINDOWS,
    SELECT_WINDOWS_BETWEEN,
    DELETE_WINDOWS_ENDED_BEFORE,
    DELETE_DELTAS_OLDER_THAN,
    SELECT_DELTA_ID_SPAN,
    SELECT_RECENT_DELTA_TEXT_BYTES,
    DELETE_OLDEST_DELTAS,
    SELECT_QUARANTINED,
    SELECT_DELTA_FOR_RELEASE,
    INSERT_RELEASE_REQUEST,
    SELECT_PENDING_RELEASES,
    MARK_RELEASED,
    DELETE_APPLIED_RELEASES_BEFORE,
];

/// How long a statement waits for another connection's lock before failing with SQLITE_BUSY.
pub(super) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Upper bound for the WAL file left behind after a checkpoint.
pub(super) const JOURNAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// SQLite's hard ceiling for `max_page_count`.
const MAX_PAGE_COUNT_CEILING: u64 = 4_294_967_294;

/// Applies the connection pragmas and reads back the ones durability depends on. The byte quota is set
/// separately by [`apply_quota`], after the start-up writes, so a file already at its quota can still be opened
/// and migrated (a new connection starts without a page limit).
pub(super) fn apply_pragmas(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let journal_mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    expect_pragma("journal_mode", "wal", &journal_mode.to_ascii_lowercase())?;
    conn.pragma_update(None, "synchronous", 2)?;
    conn.pragma_update(None, "temp_store", 2)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    let _: i64 = conn.pragma_update_and_check(
        None,
        "journal_size_limit",
        JOURNAL_SIZE_LIMIT_BYTES,
        |row| row.get(0),
    )?;

    let journal_mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
    expect_pragma("journal_mode", "wal", &journal_mode.to_ascii_lowercase())?;
    let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |row| row.get(0))?;
    expect_pragma("synchronous", "2", &synchronous.to_string())?;
    let temp_store: i64 = conn.pragma_query_value(None, "temp_store", |row| row.get(0))?;
    expect_pragma("temp_store", "2", &temp_store.to_string())?;
    let foreign_keys: i64 = conn.pragma_query_value(None, "foreign_keys", |row| row.get(0))?;
    expect_pragma("foreign_keys", "1", &foreign_keys.to_string())?;
    Ok(())
}

/// Sets `max_page_count` from the byte quota and returns the page size. SQLite never lowers the limit below
/// the current file size; a file that is already larger keeps its size as the effective quota (logged).
pub(super) fn apply_quota(conn: &Connection, max_bytes: u64) -> Result<u64, StoreError> {
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
    let page_size = u64::try_from(page_size).unwrap_or(4096).max(512);
    let wanted_pages = (max_bytes / page_size).clamp(1, MAX_PAGE_COUNT_CEILING);
    let granted_pages: i64 =
        conn.pragma_update_and_check(None, "max_page_count", wanted_pages, |row| row.get(0))?;
    if u64::try_from(granted_pages).ok() != Some(wanted_pages) {
        tracing::warn!(
            wanted_pages,
            granted_pages,
            page_size,
            "Store database is larger than its byte quota; its current size is the effective quota."
        );
    }
    Ok(page_size)
}

/// Runs `PRAGMA quick_check` (b-tree structure, page use, record format; O(file size)) and returns the
/// problems found, empty when the file is sound.
pub(super) fn quick_check(conn: &Connection) -> Result<Vec<String>, StoreError> {
    check_pragma(conn, "quick_check")
}

/// Runs `PRAGMA integrity_check` (like `quick_check`, plus index contents) and returns the problems found.
pub(super) fn integrity_check(conn: &Connection) -> Result<Vec<String>, StoreError> {
    check_pragma(conn, "integrity_check")
}

fn check_pragma(conn: &Connection, pragma: &str) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    conn.pragma_query(None, pragma, |row| {
        let line: String = row.get(0)?;
        if line != "ok" {
            problems.push(line);
        }
        Ok(())
    })?;
    Ok(problems)
}

/// Copies the WAL into the main file and truncates the WAL to zero bytes (the file itself stays). Returns
/// false when a reader blocked part of the checkpoint.
pub(super) fn checkpoint_truncate(conn: &Connection) -> Result<bool, StoreError> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
    Ok(busy == 0)
}

/// Prepares every statement the store uses, so a schema that is not this build's fails at open.
pub(super) fn verify_statements(conn: &Connection) -> Result<(), StoreError> {
    for sql in ALL_STATEMENTS {
        conn.prepare_cached(sql)?;
    }
    Ok(())
}

fn expect_pragma(pragma: &'static str, expected: &str, actual: &str) -> Result<(), StoreError> {
    if actual == expected {
        Ok(())
    } else {
        Err(StoreError::PragmaMismatch {
            pragma,
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        })
    }
}

/// Brings the schema up to date: each pending migration runs in its own transaction with its version bump.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let supported = i64::try_from(MIGRATIONS.len()).expect("the migration list is tiny");
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for (version, migration) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(migration.sql)?;
        if let Some(backfill) = migration.backfill {
            backfill(&tx)?;
        }
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "Store schema migrated.");
    }
    Ok(())
}

/// Window records are loaded by machine, period and start range, and deleted by end time, without parsing the
/// key. The columns are generated from the record itself, so they can never disagree with it; a record that is
/// not JSON (never written by the agent) has NULLs there. Adding VIRTUAL columns rewrites no row.
const MIGRATION_3_WINDOW_SPANS: &str = "
ALTER TABLE windows ADD COLUMN w_machine TEXT
    GENERATED ALWAYS AS (CASE WHEN json_valid(record) THEN json_extract(record, '$.machine') END) VIRTUAL;
ALTER TABLE windows ADD COLUMN w_period TEXT
    GENERATED ALWAYS AS (CASE WHEN json_valid(record) THEN json_extract(record, '$.period') END) VIRTUAL;
ALTER TABLE windows ADD COLUMN w_start INTEGER
    GENERATED ALWAYS AS (CASE WHEN json_valid(record) THEN json_extract(record, '$.start') END) VIRTUAL;
ALTER TABLE windows ADD COLUMN w_end INTEGER
    GENERATED ALWAYS AS (CASE WHEN json_valid(record) THEN json_extract(record, '$.end') END) VIRTUAL;
CREATE INDEX windows_by_span ON windows (w_machine, w_period, w_start);
CREATE INDEX windows_by_end ON windows (w_end);
";

/// Records still to be closed or restated (open, or dirty), in storage order; the reader files them by machine,
/// period and start. Read once at start-up, through the partial index `windows_unsettled`: its cost follows the
/// records still to settle (a few per machine), not the hours of settled records the table keeps.
pub(super) const SELECT_UNSETTLED_WINDOWS: &str = "
SELECT record FROM windows INDEXED BY windows_unsettled WHERE w_unsettled ORDER BY rowid";
/// Records of one machine and period with `?3 <= start < ?4`, by start: a range scan of `windows_by_time`
/// over every machine's records of the period in that span, filtered on the machine within the index (only
/// the matching rows are read from the table).
pub(super) const SELECT_WINDOWS_BETWEEN: &str = "
SELECT record FROM windows WHERE w_machine = ?1 AND w_period = ?2 AND w_start >= ?3 AND w_start < ?4
ORDER BY w_start";
/// At most `?2` records that ended before `?1`, oldest first (a range scan of `windows_by_end`).
pub(super) const DELETE_WINDOWS_ENDED_BEFORE: &str = "
DELETE FROM windows WHERE rowid IN (SELECT rowid FROM windows WHERE w_end < ?1 ORDER BY w_end LIMIT ?2)";
/// Up to `?2` window rows after rowid `?1`, in rowid order: the batches of the key rewrite of migration 6.
pub(super) const SELECT_WINDOW_ROWS_AFTER: &str =
    "SELECT rowid, key, record FROM windows WHERE rowid > ?1 ORDER BY rowid LIMIT ?2";
pub(super) const SET_WINDOW_KEY: &str = "UPDATE windows SET key = ?2 WHERE rowid = ?1";
/// At most `?2` audit rows whose `t_to` is before `?1`, oldest first (a range scan of `deltas_by_t_to`).
pub(super) const DELETE_DELTAS_OLDER_THAN: &str = "
DELETE FROM deltas WHERE id IN (SELECT id FROM deltas WHERE t_to < ?1 ORDER BY t_to LIMIT ?2)";
/// Number of ids the audit log spans; two single-aggregate subqueries so each is one index probe.
pub(super) const SELECT_DELTA_ID_SPAN: &str = "
SELECT COALESCE((SELECT MAX(id) FROM deltas) - (SELECT MIN(id) FROM deltas) + 1, 0)";
/// Average text bytes of the newest audit rows (the rest of a row has a fixed size).
pub(super) const SELECT_RECENT_DELTA_TEXT_BYTES: &str = "
SELECT COALESCE(AVG(LENGTH(key) + LENGTH(kind)), 0) FROM (SELECT key, kind FROM deltas ORDER BY id DESC LIMIT 64)";
/// The `?1` oldest audit rows.
pub(super) const DELETE_OLDEST_DELTAS: &str = "
DELETE FROM deltas WHERE id IN (SELECT id FROM deltas ORDER BY id LIMIT ?1)";

/// Release requests for quarantined deltas (`shopfloor-agent quarantine release`). A request copies what the
/// release needs from its audit row (counter key, amount, interval), so pruning the audit log cannot lose a
/// request between the moment it is made and the moment the agent applies it. `released_at` is set in the
/// transaction that commits the restated windows. No foreign key: the audit row may be pruned by age.
const MIGRATION_4_QUARANTINE_RELEASES: &str = "
CREATE TABLE quarantine_releases (
    delta_id     INTEGER PRIMARY KEY NOT NULL,
    key          TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    t_from       INTEGER NOT NULL,
    t_to         INTEGER NOT NULL,
    requested_at INTEGER NOT NULL,
    released_at  INTEGER
);
CREATE INDEX quarantine_releases_pending ON quarantine_releases (delta_id) WHERE released_at IS NULL;
";

/// How many audit rows of kind `?1` (the quarantined kind) have not been released yet.
pub(super) const COUNT_QUARANTINED_PENDING: &str = "
SELECT COUNT(*) FROM deltas d LEFT JOIN quarantine_releases r ON r.delta_id = d.id
WHERE d.kind = ?1 AND r.released_at IS NULL";
/// Audit rows of kind `?1` (the quarantined kind) with their release, if any, oldest first.
pub(super) const SELECT_QUARANTINED: &str = "
SELECT d.id, d.key, d.delta, d.raw, d.t_from, d.t_to, r.requested_at, r.released_at
FROM deltas d LEFT JOIN quarantine_releases r ON r.delta_id = d.id
WHERE d.kind = ?1 ORDER BY d.id";
/// One audit row and its release, if any.
pub(super) const SELECT_DELTA_FOR_RELEASE: &str = "
SELECT d.id, d.key, d.kind, d.delta, d.raw, d.t_from, d.t_to, r.requested_at, r.released_at
FROM deltas d LEFT JOIN quarantine_releases r ON r.delta_id = d.id
WHERE d.id = ?1";
pub(super) const INSERT_RELEASE_REQUEST: &str = "
INSERT INTO quarantine_releases (delta_id, key, amount, t_from, t_to, requested_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// Requests not applied yet, oldest delta first.
pub(super) const SELECT_PENDING_RELEASES: &str = "
SELECT delta_id, key, amount, t_from, t_to, requested_at FROM quarantine_releases
WHERE released_at IS NULL ORDER BY delta_id";
pub(super) const MARK_RELEASED: &str =
    "UPDATE quarantine_releases SET released_at = ?2 WHERE delta_id = ?1 AND released_at IS NULL";
/// Applied releases of deltas whose interval ended before `?1` (their audit rows are pruned by age too).
pub(super) const DELETE_APPLIED_RELEASES_BEFORE: &str =
    "DELETE FROM quarantine_releases WHERE released_at IS NOT NULL AND t_to < ?1";

/// The outbox's row count and payload bytes are kept in the meta table from this version on (the store's
/// `totals` module), so the backlog figure needs no scan. No table changes; the backfill counts the rows once.
/// The version bump also keeps an older agent, which would change the outbox without the totals, off the file.
const MIGRATION_5_OUTBOX_TOTALS: &str = "";

/// Window records keyed and indexed time first. Keys were `machine/period/start` and `windows_by_span` was
/// ordered machine first, so once the table held hours of records every commit touched one leaf page per machine
/// in both indexes. Keys become `period/start/machine` (`WindowRecord::key`; the backfill rewrites every record
/// it can read) and the span index is ordered (period, start, machine): the records a commit writes, which
/// share their period and start, then share index pages.
const MIGRATION_6_TIME_FIRST_WINDOWS: &str = "
DROP INDEX windows_by_span;
CREATE INDEX windows_by_time ON windows (w_period, w_start, w_machine);
";

/// The status of an open window record as the record's JSON spells it (`WindowStatus::Open`; a test pins both).
#[cfg(test)]
pub(super) const OPEN_STATUS_IN_RECORDS: &str = "open";

/// Start-up read the unsettled window records by parsing every record the table held (72 h of them at 200
/// machines: about 900,000 rows). A generated column says whether a record is still to settle (status open, or
/// dirty) and a partial index holds only those rows. Adding a VIRTUAL column rewrites no row; the index is
/// built once here.
const MIGRATION_7_UNSETTLED_WINDOWS: &str = "
ALTER TABLE windows ADD COLUMN w_unsettled INTEGER
    GENERATED ALWAYS AS (CASE WHEN json_valid(record)
        THEN json_extract(record, '$.status') = 'open' OR json_extract(record, '$.dirty') END) VIRTUAL;
CREATE INDEX windows_unsettled ON windows (w_unsettled) WHERE w_unsettled;
";
