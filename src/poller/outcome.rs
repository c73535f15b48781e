//! Health bookkeeping of one PLC task after each cycle: per-unit failure counting and backoff, up/down
//! transitions with their events and log lines (each logged once, then a summary every ten minutes while a PLC or
//! unit stays down, never a line per retry), and the copy onto the shared health board.
//! The poll cycle itself is in `cycle`; this module decides what its outcome means.

use tokio::time::Instant;
use tracing::{info, warn};

use super::connection::Connection;
use super::cycle::{CycleRun, Poller, UnitCycle, UnitState};
use super::health::{unit_entries, HealthBoard, PlcHealth, PollEvent, Transition, UnitHealth};
use crate::logic::Millis;
use crate::outage;

impl Poller {
    pub(super) fn after_cycle(&mut self, run: &CycleRun, started: Instant, at: Millis) {
        let (read_any, lost) = (run.read_any, run.lost.as_deref());
        let threshold = self.config.unit_failure_threshold;
        self.requests_per_poll = run.sent;
        for (unit_id, unit_cycle) in &run.units {
            self.settle_unit(*unit_id, unit_cycle, read_any, at);
        }
        if run.sent == run.refused && lost.is_none() {
            // Every unit skipped, every tag disabled, or only configuration refusals (a disabled tag's probe
            // included): the device answered, but nothing new about the connection.
            return;
        }
        if read_any {
            self.polls += 1;
            self.last_cycle_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        } else {
            self.failures += 1;
            self.last_error = lost
                .map(str::to_string)
                .or_else(|| run.units.values().find_map(|u| u.error.clone()))
                .or(self.last_error.take());
        }
        let change = self.plc_state.record(read_any, threshold);
        let error = self.last_error.clone();
        self.plc_transition(change, at, error.as_deref());
        self.note_plc_outage(read_any);
    }

    /// What one cycle means for unit `unit_id`: its failure count, its backoff while the others on the
    /// connection deliver (`read_any`), and its up/down transition.
    fn settle_unit(&mut self, unit_id: u8, unit_cycle: &UnitCycle, read_any: bool, at: Millis) {
        let threshold = self.config.unit_failure_threshold;
        let Some(unit) = self.units.get_mut(&unit_id) else {
            return;
        };
        unit.requests_per_poll = unit_cycle.requests;
        let ok = match (unit_cycle.read, unit_cycle.failed) {
            (true, _) => true,
            (false, true) => false,
            // Only configuration refusals: the unit answered, but that says nothing about its data.
            (false, false) => return,
        };
        if !ok {
            unit.last_error = unit_cycle.error.clone();
        }
        let change = unit.up_down.record(ok, threshold);
        note_unit_outage(&self.config.id, unit_id, unit, ok);
        if ok {
            unit.skipped_until = None;
        } else if read_any && unit.up_down.consecutive_failures >= u64::from(threshold) {
            // Back off only while others on the connection deliver; a silent device as a whole is the
            // connection backoff's business.
            if unit.skipped_until.is_none() {
                info!(
                    device = %self.config.id, unit = unit_id,
                    failures = unit.up_down.consecutive_failures,
                    "Unit keeps failing; skipping it for {:?} at a time while the others are polled.",
                    self.config.unit_backoff
                );
            }
            unit.skipped_until = Some(crate::config::arith::deadline_after(
                Instant::now(),
                self.config.unit_backoff,
            ));
        }
        if let Some((up, previous)) = change {
            let error = (!up).then(|| unit.last_error.clone()).flatten();
            match up {
                true => info!(device = %self.config.id, unit = unit_id, "Unit is up."),
                false => {
                    warn!(device = %self.config.id, unit = unit_id, error = ?error, "Unit is down.")
                }
            }
            self.events.push(PollEvent::Transition(Transition {
                plc: self.plc,
                plc_id: self.config.id.clone(),
                unit_id: Some(unit_id),
                up,
                previous,
                at,
                error,
            }));
        }
    }

    /// Counts a connect or cycle of the PLC into its outage: a summary line every ten minutes while it stays down
    /// (the transition itself is logged by `plc_transition`), and the end of the outage on success.
    pub(super) fn note_plc_outage(&mut self, ok: bool) {
        let now = std::time::Instant::now();
        if ok {
            self.outage.recovered(now);
            return;
        }
        let error = self.last_error.as_deref().unwrap_or("-");
        if let Some(summary) = self.outage.failed(now, error) {
            warn!(
                device = %self.config.id,
                down_for = %outage::Clock(summary.down_for),
                attempts = summary.attempts,
                last_error = %summary.last_error,
                "PLC still down."
            );
        }
    }

    pub(super) fn plc_transition(
        &mut self,
        change: Option<(bool, Option<bool>)>,
        at: Millis,
        error: Option<&str>,
    ) {
        let Some((up, previous)) = change else {
            return;
        };
        match up {
            true => info!(device = %self.config.id, "PLC is up."),
            false => warn!(device = %self.config.id, error, "PLC is down; retrying with backoff."),
        }
        self.events.push(PollEvent::Transition(Transition {
            plc: self.plc,
            plc_id: self.config.id.clone(),
            unit_id: None,
            up,
            previous,
            at,
            error: (!up).then(|| error.map(str::to_string)).flatten(),
        }));
    }

    /// Copies the current health into this PLC's entry of the board.
    pub(crate) fn publish(&self, board: &HealthBoard) {
        self.metrics.plc_up(&self.config.id, self.plc_state.is_up());
        let now = Instant::now();
        let units: Vec<UnitHealth> = self
            .units
            .iter()
            .map(|(&unit_id, unit)| UnitHealth {
                unit_id,
                up: unit.up_down.is_up(),
                consecutive_failures: unit.up_down.consecutive_failures,
                last_error: unit.last_error.clone(),
                rtt_p50_ms: unit.rtt.percentile(50.0),
                rtt_p99_ms: unit.rtt.percentile(99.0),
                requests_per_poll: unit.requests_per_poll,
                backed_off: unit.skipped_until.is_some_and(|until| now < until),
            })
            .collect();
        let late_answers =
            self.late_answers_closed + self.connection.as_ref().map_or(0, Connection::late_answers);
        let mut board = board.lock().expect("health board lock is never poisoned");
        let Some(entry) = board.get_mut(self.plc) else {
            return;
        };
        *entry = PlcHealth {
            id: self.config.id.clone(),
            up: self.plc_state.is_up(),
            consecutive_failures: self.plc_state.consecutive_failures,
            last_error: self.last_error.clone(),
            rtt_ms: self.last_cycle_ms,
            rtt_p50_ms: self.plc_rtt.percentile(50.0),
            rtt_p99_ms: self.plc_rtt.percentile(99.0),
            requests_per_poll: self.requests_per_poll,
            polls: self.polls,
            failures: self.failures,
            late_answers,
            connects: self.connects,
            units,
            disabled_tags: self.disabled_tags(),
        };
    }

    /// Writes the board entry of a plan that has not run yet (the units it will poll).
    pub(crate) fn publish_initial(&self, board: &HealthBoard) {
        let mut board = board.lock().expect("health board lock is never poisoned");
        if let Some(entry) = board.get_mut(self.plc) {
            *entry = PlcHealth {
                id: self.config.id.clone(),
                units: unit_entries(&self.plan),
                ..PlcHealth::default()
            };
        }
    }
}

/// Counts one cycle's attempt at `unit` into its outage, as `Poller::note_plc_outage` does for the PLC.
fn note_unit_outage(plc_id: &str, unit_id: u8, unit: &mut UnitState, ok: bool) {
    let now = std::time::Instant::now();
    if ok {
        unit.outage.recovered(now);
        return;
    }
    let error = unit.last_error.as_deref().unwrap_or("-");
    if let Some(summary) = unit.outage.failed(now, error) {
        warn!(
            device = %plc_id,
            unit = unit_id,
            down_for = %outage::Clock(summary.down_for),
            attempts = summary.attempts,
            last_error = %summary.last_error,
            "Unit still down."
        );
    }
}
