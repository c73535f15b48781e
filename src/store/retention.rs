//! Retention: what the store reads and deletes so that it stays bounded over the restatement horizon. Window
//! records are read back by machine, period and start range (for late facts) or by status (at start-up), and
//! deleted by end time; the delta audit log is deleted by age and, beyond its byte share, oldest first. Every
//! delete is one small batch per call, so a long prune never holds the store thread (and its write lock) long.
//! It does not decide the cutoffs; the processor does.

use rusqlite::Transaction;

use crate::logic::rollup::WindowRecord;
use crate::logic::Millis;

use super::{schema, usize_to_sql, Store, StoreError};

/// Rows read per batch by [`rekey_windows`]: bounds its memory whatever the size of the table.
const REKEY_BATCH_ROWS: i64 = 10_000;

/// Backfill of migration 6: gives every window record the key [`WindowRecord::key`] builds now, so the
/// processor's next upsert of it updates the row instead of adding a second one. Rows are read in batches
/// in rowid order (about time order) and each batch is rewritten in the order of its old keys, so both the
/// entries removed and those added stay within a few index pages at a time. A row whose record cannot be
/// read as a `WindowRecord` (never written by the agent) keeps its key.
pub(super) fn rekey_windows(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let mut select = tx.prepare(schema::SELECT_WINDOW_ROWS_AFTER)?;
    let mut update = tx.prepare(schema::SET_WINDOW_KEY)?;
    let (mut after, mut rekeyed, mut unreadable) = (0_i64, 0_u64, 0_u64);
    loop {
        let mut batch: Vec<(i64, String, String)> = select
            .query_map((after, REKEY_BATCH_ROWS), |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let Some(last) = batch.iter().map(|(rowid, _, _)| *rowid).max() else {
            break;
        };
        after = last;
        batch.sort_unstable_by(|a, b| a.1.cmp(&b.1));
        for (rowid, old_key, record) in batch {
            let Ok(record) = serde_json::from_str::<WindowRecord>(&record) else {
                unreadable += 1;
                continue;
            };
            let key = record.key();
            if key != old_key {
                update.execute((rowid, key))?;
                rekeyed += 1;
            }
        }
    }
    tracing::info!(rekeyed, unreadable, "Window records rekeyed time first.");
    Ok(())
}

/// Bytes of one audit row besides its key and kind text: the integers, the record and cell headers, the
/// `deltas_by_t_to` index entry, and the slack of partly filled pages (measured: see the tests).
pub(super) const AUDIT_ROW_FIXED_BYTES: u64 = 34;

impl Store {
    /// Window records still open or changed since they were emitted (`WindowRecord` JSON), by key: what a
    /// restart must hold in memory. Every other record is read on demand by [`Store::load_windows_between`].
    pub fn load_unsettled_windows(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(schema::SELECT_UNSETTLED_WINDOWS)?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Window records of `machine` and `period` whose start lies in `[from, to)`, by start.
    pub fn load_windows_between(
        &self,
        machine: &str,
        period: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(schema::SELECT_WINDOWS_BETWEEN)?;
        let rows = stmt.query_map((machine, period, from, to), |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes at most `limit` window records that ended before `ended_before`, oldest first; returns how many.
    pub fn prune_windows(
        &mut self,
        ended_before: Millis,
        limit: usize,
    ) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            schema::DELETE_WINDOWS_ENDED_BEFORE,
            (ended_before, usize_to_sql(limit)),
        )?)
    }

    /// Deletes at most `limit` audit rows, oldest first: those whose `t_to` is before `older_than`, then, while
    /// the log is estimated above `max_bytes` ([`Store::audit_bytes`]), the oldest ones. Returns how many.
    /// Applied quarantine releases of deltas older than `older_than` go with them; pending ones stay.
    pub fn prune_audit(
        &mut self,
        older_than: Millis,
        max_bytes: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.conn
            .execute(schema::DELETE_APPLIED_RELEASES_BEFORE, [older_than])?;
        let aged = self.conn.execute(
            schema::DELETE_DELTAS_OLDER_THAN,
            (older_than, usize_to_sql(limit)),
        )?;
        let room = limit.saturating_sub(aged);
        if room == 0 {
            return Ok(aged);
        }
        let (rows, row_bytes) = self.audit_shape()?;
        let keep_rows = max_bytes / row_bytes.max(1);
        let excess = usize::try_from(rows.saturating_sub(keep_rows)).unwrap_or(usize::MAX);
        if excess == 0 {
            return Ok(aged);
        }
        let oldest = self.conn.execute(
            schema::DELETE_OLDEST_DELTAS,
            [usize_to_sql(excess.min(room))],
        )?;
        Ok(aged + oldest)
    }

    /// Estimated bytes of the delta audit log (rows times the size of a recent row), from two index probes
    /// and the newest rows; cheap enough for every prune, unlike counting pages.
    pub fn audit_bytes(&self) -> Result<u64, StoreError> {
        let (rows, row_bytes) = self.audit_shape()?;
        Ok(rows.saturating_mul(row_bytes))
    }

    /// Rows of the audit log (ids are assigned in order and deleted oldest first, so the id span counts them)
    /// and the estimated bytes of one row.
    fn audit_shape(&self) -> Result<(u64, u64), StoreError> {
        let span: i64 = self
            .conn
            .prepare_cached(schema::SELECT_DELTA_ID_SPAN)?
            .query_row([], |row| row.get(0))?;
        let text: f64 = self
            .conn
            .prepare_cached(schema::SELECT_RECENT_DELTA_TEXT_BYTES)?
            .query_row([], |row| row.get(0))?;
        let text = if text.is_finite() && text > 0.0 {
            text.ceil() as u64
        } else {
            0
        };
        Ok((
            u64::try_from(span).unwrap_or(0),
            AUDIT_ROW_FIXED_BYTES + text,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::logic::counter::StepKind;
    use crate::logic::rollup::{WindowRecord, WindowStatus, WindowSums};
    use crate::store::tests::{open_with_quota as open, window_records};
    use crate::store::{CycleWrite, DeltaRow};

    use super::*;

    const MINUTE: Millis = 60_000;

    fn record(machine: &str, period: &str, start: Millis, status: WindowStatus) -> WindowRecord {
        WindowRecord {
            machine: machine.into(),
            period: period.into(),
            start,
            end: start + MINUTE,
            shift: None,
            production_date: None,
            sums: WindowSums::default(),
            status,
            revision: 0,
            dirty: false,
        }
    }

    fn write_windows(store: &mut Store, records: &[WindowRecord]) {
        let windows = records
            .iter()
            .map(|r| (r.key(), serde_json::to_string(r).unwrap()))
            .collect();
        store
            .commit_cycle(&CycleWrite {
                windows,
                now: 1,
                ..CycleWrite::default()
            })
            .unwrap();
    }

    fn starts(jsons: Vec<String>) -> Vec<(String, String, Millis)> {
        jsons
            .iter()
            .map(|json| serde_json::from_str::<WindowRecord>(json).unwrap())
            .map(|r| (r.machine, r.period, r.start))
            .collect()
    }

    /// Bytes of the pages in use (`page_count - freelist_count`).
    fn used_bytes(store: &Store) -> u64 {
        let pages: i64 = store
            .conn
            .query_row(
                "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count())",
                [],
                |row| row.get(0),
            )
            .unwrap();
        u64::try_from(pages).unwrap() * store.page_size
    }

    #[test]
    fn given_window_records_when_loaded_by_range_and_pruned_by_end_then_only_that_span_and_the_expired_go(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir.path().join("agent.db"), 1 << 30);
        let mut records = Vec::new();
        for machine in ["m1", "m10"] {
            for period in ["1m", "1h"] {
                for i in 0..10 {
                    let status = if i == 9 {
                        WindowStatus::Open
                    } else {
                        WindowStatus::Final
                    };
                    records.push(record(machine, period, i * MINUTE, status));
                }
            }
        }
        records[3].dirty = true;
        write_windows(&mut store, &records);

        let between = starts(
            store
                .load_windows_between("m1", "1m", 2 * MINUTE, 5 * MINUTE)
                .unwrap(),
        );
        assert_eq!(
            between,
            (2..5)
                .map(|i| ("m1".to_owned(), "1m".to_owned(), i * MINUTE))
                .collect::<Vec<_>>()
        );
        let unsettled = starts(store.load_unsettled_windows().unwrap());
        assert_eq!(unsettled.len(), 5, "{unsettled:?}");
        assert!(unsettled.contains(&("m1".into(), "1m".into(), 3 * MINUTE)));
        assert!(unsettled
            .iter()
            .all(|(_, _, start)| *start == 9 * MINUTE || *start == 3 * MINUTE));

        // Records ending before 5 min: starts 0..4 of 4 series = 16, in batches of 10.
        assert_eq!(store.prune_windows(5 * MINUTE, 10).unwrap(), 10);
        assert_eq!(store.prune_windows(5 * MINUTE, 10).unwrap(), 6);
        assert_eq!(store.prune_windows(5 * MINUTE, 10).unwrap(), 0);
        assert_eq!(window_records(&store).len(), 40 - 16);
        assert!(
            store
                .load_windows_between("m10", "1h", 0, Millis::MAX)
                .unwrap()
                .len()
                == 6
        );
    }

    #[test]
    fn given_a_version_2_database_with_windows_when_opened_then_the_migration_makes_them_loadable_by_span(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.db");
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            let tx = conn.transaction().unwrap();
            for migration in &schema::MIGRATIONS[..2] {
                tx.execute_batch(migration.sql).unwrap();
            }
            let old = record("m1", "1m", 7 * MINUTE, WindowStatus::Final);
            tx.execute(
                schema::UPSERT_WINDOW,
                (old.key(), serde_json::to_string(&old).unwrap(), 1),
            )
            .unwrap();
            tx.execute(schema::UPSERT_WINDOW, ("not-json", "old", 1))
                .unwrap();
            tx.pragma_update(None, "user_version", 2).unwrap();
            tx.commit().unwrap();
        }
        let mut store = open(&path, 1 << 30);
        assert_eq!(
            starts(
                store
                    .load_windows_between("m1", "1m", 0, Millis::MAX)
                    .unwrap()
            ),
            vec![("m1".to_owned(), "1m".to_owned(), 7 * MINUTE)]
        );
        assert_eq!(store.prune_windows(Millis::MAX, 100).unwrap(), 1);
        assert_eq!(window_records(&store), vec!["old".to_owned()]);
    }

    fn audit_cycle(now: Millis, counters: usize) -> CycleWrite {
        CycleWrite {
            deltas: (0..counters)
                .map(|i| DeltaRow {
                    key: format!("machine-{:02}/produced", i),
                    kind: StepKind::Normal,
                    delta: 1,
                    raw: 1_000_000 + u64::try_from(now / 1_000).unwrap(),
                    t_from: now - 1_000,
                    t_to: now,
                })
                .collect(),
            now,
            ..CycleWrite::default()
        }
    }

    #[test]
    fn given_80_counters_at_1s_when_the_audit_log_is_pruned_by_age_then_the_database_stops_growing()
    {
        // Given 80 counters polled every second for 12 simulated minutes, audit rows kept for 4 minutes and
        // pruned every simulated 30 s (as the processor does)
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir.path().join("agent.db"), 1 << 30);
        let t0: Millis = 1_795_824_000_000;
        let retention = 4 * MINUTE;
        let mut used = BTreeMap::new();
        for second in 1..=12 * 60 {
            let now = t0 + second * 1_000;
            store.commit_cycle(&audit_cycle(now, 80)).unwrap();
            if second % 30 == 0 {
                while store.prune_audit(now - retention, u64::MAX, 2_000).unwrap() == 2_000 {}
                used.insert(second / 60, used_bytes(&store));
            }
        }
        // Then: growth while the log fills (the write rate) vs growth once rows leave as fast as they come
        let per_hour = |from: i64, to: i64| {
            (used[&to] as f64 - used[&from] as f64) / ((to - from) as f64 / 60.0) / 1e6
        };
        let filling = per_hour(1, 4);
        let steady = per_hour(6, 12);
        println!(
            "audit log, 80 counters at 1 s: {filling:.1} MB/hour while filling, {steady:.2} MB/hour once pruned; used bytes by minute {used:?}"
        );
        assert!(filling > 5.0, "{filling}");
        assert!(steady.abs() < 0.1 * filling, "{steady} vs {filling}");
        // And the estimate the byte cap uses is close to the pages the log occupies.
        let rows = u64::try_from(80 * retention / 1_000).unwrap();
        let estimate = store.audit_bytes().unwrap();
        let measured_per_row = (used[&4] - used[&1]) / (3 * 60 * 80);
        println!(
            "audit row: estimated {} bytes, measured {measured_per_row} bytes",
            estimate / rows.max(1)
        );
        assert!(estimate.abs_diff(rows * measured_per_row) < rows * measured_per_row / 4);
    }

    #[test]
    fn given_an_audit_log_over_its_byte_share_when_pruned_then_the_oldest_rows_go_in_batches_until_under(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir.path().join("agent.db"), 1 << 30);
        let t0: Millis = 1_795_824_000_000;
        for second in 1..=50 {
            store
                .commit_cycle(&audit_cycle(t0 + second * 1_000, 100))
                .unwrap();
        }
        let row_bytes = store.audit_bytes().unwrap() / 5_000;
        let cap = 1_200 * row_bytes;
        // Nothing is old enough; the byte share alone removes rows, at most a batch per call.
        assert_eq!(store.prune_audit(t0, cap, 3_000).unwrap(), 3_000);
        assert_eq!(store.prune_audit(t0, cap, 3_000).unwrap(), 800);
        assert_eq!(store.prune_audit(t0, cap, 3_000).unwrap(), 0);
        let left = store.deltas_after(0, usize::MAX >> 1).unwrap();
        assert_eq!(left.len(), 1_200);
        assert_eq!(left[0].1.t_to, t0 + 39_000, "the oldest went first");
    }
}
