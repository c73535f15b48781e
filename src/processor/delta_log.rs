//! The delta audit rows waiting for the next commit, kept small: a normal step that moved nothing writes no row,
//! and consecutive normal steps of one counter between two commits become one row (their sum, from the first
//! step's start to the last one's end, ending at the last raw value). Every other kind of step (baseline, wrap,
//! reset, rejected, invalid, ...) keeps a row of its own, in order, and ends the running normal row of its
//! counter. With one commit per `store.commit_interval` this is what keeps the audit log's disk writes
//! proportional to the commits, not to the polls (ARCHITECTURE.md, "store").

use std::collections::HashMap;

use crate::logic::counter::StepKind;
use crate::store::DeltaRow;

/// Audit rows in the order they were derived, with the running normal row of each counter.
#[derive(Debug, Default)]
pub(super) struct DeltaLog {
    rows: Vec<DeltaRow>,
    /// Counter key → index in `rows` of its normal row that later normal steps extend.
    running: HashMap<String, usize>,
}

impl DeltaLog {
    /// Records one step's row (merged into its counter's running normal row where it continues it).
    pub(super) fn push(&mut self, row: DeltaRow) {
        if row.kind != StepKind::Normal {
            self.running.remove(&row.key);
            self.rows.push(row);
            return;
        }
        if let Some(&index) = self.running.get(&row.key) {
            let running = &mut self.rows[index];
            if running.t_to == row.t_from {
                running.delta = running.delta.saturating_add(row.delta);
                running.raw = row.raw;
                running.t_to = row.t_to;
                return;
            }
        }
        if row.delta == 0 {
            // Nothing moved and there is no row to extend: nothing to audit.
            self.running.remove(&row.key);
            return;
        }
        self.running.insert(row.key.clone(), self.rows.len());
        self.rows.push(row);
    }

    /// Rows waiting.
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row waits.
    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, oldest first.
    pub(super) fn rows(&self) -> &[DeltaRow] {
        &self.rows
    }

    /// Drops every row (the quota cannot hold them); returns how many.
    pub(super) fn clear(&mut self) -> usize {
        self.running.clear();
        std::mem::take(&mut self.rows).len()
    }

    /// Drops the oldest rows beyond `keep`; returns how many. Later steps start new rows.
    pub(super) fn keep_newest(&mut self, keep: usize) -> usize {
        let excess = self.rows.len().saturating_sub(keep);
        if excess > 0 {
            self.rows.drain(..excess);
            self.running.clear();
        }
        excess
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, kind: StepKind, delta: u64, raw: u64, t_from: i64, t_to: i64) -> DeltaRow {
        DeltaRow {
            key: key.into(),
            kind,
            delta,
            raw,
            t_from,
            t_to,
        }
    }

    #[test]
    fn given_normal_steps_of_one_counter_when_logged_then_they_are_one_row_with_their_sum() {
        let mut log = DeltaLog::default();
        log.push(row("m/produced", StepKind::Normal, 2, 102, 0, 200));
        log.push(row("m/produced", StepKind::Normal, 0, 102, 200, 400));
        log.push(row("m/produced", StepKind::Normal, 3, 105, 400, 600));
        assert_eq!(
            log.rows(),
            [row("m/produced", StepKind::Normal, 5, 105, 0, 600)]
        );
    }

    #[test]
    fn given_steps_that_move_nothing_when_logged_then_no_row_is_written() {
        let mut log = DeltaLog::default();
        for t in 0..5 {
            log.push(row(
                "m/defective",
                StepKind::Normal,
                0,
                7,
                t * 200,
                t * 200 + 200,
            ));
        }
        assert!(log.is_empty());
    }

    #[test]
    fn given_an_anomaly_between_normal_steps_when_logged_then_it_keeps_its_row_and_order() {
        let mut log = DeltaLog::default();
        log.push(row("m/produced", StepKind::Normal, 1, 10, 0, 200));
        log.push(row("m/scrap", StepKind::Normal, 1, 1, 0, 200));
        log.push(row("m/produced", StepKind::Wrap, 4, 2, 200, 400));
        log.push(row("m/produced", StepKind::Normal, 1, 3, 400, 600));
        log.push(row("m/scrap", StepKind::Normal, 2, 3, 200, 600));
        assert_eq!(
            log.rows(),
            [
                row("m/produced", StepKind::Normal, 1, 10, 0, 200),
                row("m/scrap", StepKind::Normal, 3, 3, 0, 600),
                row("m/produced", StepKind::Wrap, 4, 2, 200, 400),
                row("m/produced", StepKind::Normal, 1, 3, 400, 600),
            ]
        );
    }

    #[test]
    fn given_a_break_in_time_when_logged_then_a_new_row_starts() {
        let mut log = DeltaLog::default();
        log.push(row("m/produced", StepKind::Normal, 1, 1, 0, 200));
        // A failed poll in between: the next step starts where the last accepted sample was, not at 200.
        log.push(row("m/produced", StepKind::Normal, 2, 3, 100, 600));
        assert_eq!(log.len(), 2);
        assert_eq!(log.keep_newest(1), 1);
        log.push(row("m/produced", StepKind::Normal, 1, 4, 600, 800));
        assert_eq!(log.len(), 2);
        assert_eq!(log.clear(), 2);
        assert!(log.is_empty());
    }
}
