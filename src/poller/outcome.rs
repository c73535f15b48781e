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

    /// Brings this PLC's entry of the board up to date, in place: the figures of every poll are copied, the
    /// error texts, units and disabled tags are written only when they changed, so a steady poll allocates
    /// nothing here.
    pub(crate) fn publish(&mut self, board: &HealthBoard) {
        let up = self.plc_state.is_up();
        if self.published_up != Some(up) {
            self.metrics.plc_up(&self.config.id, up);
            self.published_up = Some(up);
        }
        let now = Instant::now();
        let late_answers =
            self.late_answers_closed + self.connection.as_ref().map_or(0, Connection::late_answers);
        let mut board = board.lock().expect("health board lock is never poisoned");
        let Some(entry) = board.get_mut(self.plc) else {
            return;
        };
        if entry.id != self.config.id {
            entry.id.clone_from(&self.config.id);
        }
        entry.up = up;
        entry.consecutive_failures = self.plc_state.consecutive_failures;
        assign_if_changed(&mut entry.last_error, &self.last_error);
        entry.rtt_ms = self.last_cycle_ms;
        entry.rtt.clone_from(&self.plc_rtt);
        entry.requests_per_poll = self.requests_per_poll;
        entry.polls = self.polls;
        entry.failures = self.failures;
        entry.late_answers = late_answers;
        entry.connects = self.connects;
        self.publish_units(&mut entry.units, now);
        if !entry
            .disabled_tags
            .iter()
            .eq(self.disabled.iter().flatten())
        {
            entry.disabled_tags = self.disabled_tags();
        }
    }

    /// Brings the board's `entries` of this PLC's units up to date (laid out afresh when the units differ).
    fn publish_units(&self, entries: &mut Vec<UnitHealth>, now: Instant) {
        if !entries
            .iter()
            .map(|entry| entry.unit_id)
            .eq(self.units.keys().copied())
        {
            *entries = unit_entries(&self.plan);
        }
        for (entry, unit) in entries.iter_mut().zip(self.units.values()) {
            entry.up = unit.up_down.is_up();
            entry.consecutive_failures = unit.up_down.consecutive_failures;
            assign_if_changed(&mut entry.last_error, &unit.last_error);
            entry.rtt.clone_from(&unit.rtt);
            entry.requests_per_poll = unit.requests_per_poll;
            entry.backed_off = unit.skipped_until.is_some_and(|until| now < until);
        }
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

/// Makes `slot` equal to `value`, allocating only when they differ.
fn assign_if_changed(slot: &mut Option<String>, value: &Option<String>) {
    if slot != value {
        slot.clone_from(value);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::logic::decode::Table;
    use crate::poller::health::{health_board, DisabledTag};
    use crate::poller::ReadPlan;

    const CONFIG: &str = r#"
[agent]
site = "s"
gateway = "gw"
timezone = "UTC"
data_dir = "/nonexistent"

[mqtt]
host = "127.0.0.1"

[[plc]]
id = "plc-a"
address = "127.0.0.1:1502"

[[machine]]
id = "m1"
line = "l"
plc = "plc-a"
unit_id = 1
counters.produced = { address = 0, type = "u32" }

[[machine]]
id = "m2"
line = "l"
plc = "plc-a"
unit_id = 2
counters.produced = { address = 0, type = "u32" }
"#;

    fn poller_and_board() -> (Poller, HealthBoard) {
        let config = Config::from_toml(CONFIG, "test config", false).unwrap();
        let plan = ReadPlan::for_plc(&config, 0);
        let poller = Poller::new(0, config.plcs[0].clone(), plan, Default::default());
        let board = health_board(&config);
        poller.publish_initial(&board);
        (poller, board)
    }

    #[test]
    fn a_steady_poll_updates_the_figures_in_place_and_a_change_is_written() {
        // Given a PLC with two units whose health was published once, with an error on unit 2,
        let (mut poller, board) = poller_and_board();
        poller.polls = 3;
        poller.plc_rtt.push(4.0);
        poller.last_error = Some("unit 2: timeout".into());
        poller.units.get_mut(&2).unwrap().last_error = Some("unit 2: timeout".into());
        poller.publish(&board);
        let (error_text, units) = {
            let board = board.lock().unwrap();
            let entry = &board[0];
            assert_eq!((entry.id.as_str(), entry.polls), ("plc-a", 3));
            assert_eq!(entry.rtt_p50_ms(), Some(4.0));
            assert_eq!(
                entry.units.iter().map(|u| u.unit_id).collect::<Vec<_>>(),
                [1, 2]
            );
            assert_eq!(
                entry.units[1].last_error.as_deref(),
                Some("unit 2: timeout")
            );
            (
                entry.last_error.as_ref().unwrap().as_ptr(),
                entry.units.as_ptr(),
            )
        };

        // When the next poll changes only figures, then they are copied and the texts and units stay where
        // they were (nothing was rebuilt),
        poller.polls = 4;
        poller.plc_rtt.push(8.0);
        poller.publish(&board);
        {
            let board = board.lock().unwrap();
            let entry = &board[0];
            assert_eq!(entry.polls, 4);
            assert_eq!(entry.rtt_p99_ms(), Some(8.0));
            assert_eq!(entry.last_error.as_ref().unwrap().as_ptr(), error_text);
            assert_eq!(entry.units.as_ptr(), units);
        }

        // and when the error, a unit's state and the disabled tags change, the readers see the new ones.
        poller.last_error = Some("connection refused".into());
        poller.units.get_mut(&1).unwrap().up_down.record(true, 1);
        let tag = DisabledTag {
            tag: 0,
            unit_id: 1,
            table: Table::Holding,
            address: 0,
            code: 2,
            at: 1_000,
            failed_probes: 0,
            next_retry_at: 2_000,
        };
        poller.disabled[0] = Some(tag.clone());
        poller.publish(&board);
        let board = board.lock().unwrap();
        let entry = &board[0];
        assert_eq!(entry.last_error.as_deref(), Some("connection refused"));
        assert!(entry.units[0].up && !entry.units[1].up);
        assert_eq!(entry.disabled_tags, vec![tag]);
    }
}
