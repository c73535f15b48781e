//! Retention: what the store reads and deletes so that it stays bounded over the restatement horizon. Window
//! records are read back by machine, period and start range (for late facts) or by status (at start-up), and
//! deleted by end time; the delta audit log is deleted by age and, beyond its byte share, oldest first. Every
//! delete is one small batch per call, so a long prune never holds the store thread (and its write lock) long.
//! It does not decide the cutoffs; the processor does.

use crate::logic::rollup::WindowStatus;
use crate::logic::Millis;

use super::{schema, usize_to_sql, Store, StoreError};

/// Bytes of one audit row besides its key and kind text: the integers, the record and cell headers, the
/// `deltas_by_t_to` index entry, and the slack of partly filled pages (measured: see the tests).
pub const AUDIT_ROW_FIXED_BYTES: u64 = 56;

impl Store {
    /// Window records still open or changed since they were emitted (`WindowRecord` JSON), by key: what a
    /// restart must hold in memory. Every other record is read on demand by [`Store::load_windows_between`].
    pub fn load_unsettled_windows(&self) -> Result<Vec<String>, StoreError> {
        let open = serde_json::to_value(WindowStatus::Open)?;
        let open = open.as_str().unwrap_or_default().to_owned();
        let mut stmt = self.conn.prepare_cached(schema::SELECT_UNSETTLED_WINDOWS)?;
        let rows = stmt.query_map([open], |row| row.get(0))?;
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
    pub fn prune_audit(
        &mut self,
        older_than: Millis,
        max_bytes: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
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
