//! Wall-clock steps at the sample intake: each PLC's samples are checked for a step (monotonic vs wall
//! clock, `logic::clock`), and the first sample after a start is checked against the stored state.
//! A step re-bases the machines of that PLC so that nothing is counted across the jump; see
//! ARCHITECTURE.md, "Time".

use tracing::{debug, warn};

use super::{payload_time, MachineRuntime, Processor};
use crate::logic::clock::{self, ClockReading, ClockStep};
use crate::logic::rollup::rebase_after_step;
use crate::logic::Millis;
use crate::poller::Sample;

impl Processor {
    /// Checks `sample` for a step of the wall clock since its PLC's previous sample; a step seen
    /// first by this PLC is logged once (the other PLCs see the same step and stay quiet).
    pub(super) fn observe_clock(&mut self, sample: &Sample) -> Option<ClockStep> {
        let mono_ms = sample.mono.saturating_duration_since(self.mono_origin);
        let reading = ClockReading {
            mono_ms: i64::try_from(mono_ms.as_millis()).unwrap_or(i64::MAX),
            utc: sample.utc,
        };
        let step = self.step_detectors[sample.plc].observe(reading);
        if self.step_log.record(Some(reading), step.as_ref()) {
            if let Some(step) = &step {
                warn!(
                    plc = %self.config.plcs[sample.plc].id,
                    direction = step.direction.as_str(),
                    size_ms = step.size_ms,
                    from = %payload_time(step.before, &self.config),
                    to = %payload_time(step.at, &self.config),
                    "The wall clock stepped; nothing is counted across the step and its windows are flagged clock_step."
                );
            }
        }
        step
    }

    /// On the first sample of machine `index` after a start, checks whether the stored state lies in
    /// the future of the clock (the clock was ahead when it was stored, or stepped back while the
    /// agent was down); if so, re-bases the machine on the new time.
    pub(super) fn check_stored_time(&mut self, index: usize, at: Millis) {
        let Some(stored) = self.machines[index].stored_until.take() else {
            return;
        };
        let Some(step) = clock::stored_state_ahead(stored, at) else {
            return;
        };
        let machine = &self.machines[index].config.id;
        if self.stored_ahead_logged {
            debug!(machine = %machine, ahead_ms = step.size_ms, "Stored state is in the future; re-based.");
        } else {
            warn!(
                machine = %machine,
                ahead_ms = step.size_ms,
                stored = %payload_time(stored, &self.config),
                now = %payload_time(at, &self.config),
                "The stored state is in the future of the wall clock; re-basing on the current time."
            );
            self.stored_ahead_logged = true;
        }
        self.step_log.record(None, Some(&step));
        self.machines[index].clock_stepped(&step);
    }

    /// The last wall-clock step seen, for the health topic.
    pub fn last_clock_step(&self) -> Option<&ClockStep> {
        self.step_log.last()
    }
}

impl MachineRuntime {
    /// Re-bases this machine after `step` (see [`rebase_after_step`]); the time marks of inferred
    /// running and of an open gap move by the same amount as the counter baselines.
    pub(super) fn clock_stepped(&mut self, step: &ClockStep) {
        let shift = step.rebased_from().saturating_sub(step.before);
        rebase_after_step(
            step,
            self.counters.iter_mut().map(|channel| {
                channel.dirty = true;
                &mut channel.state
            }),
            &mut self.tracker,
            &mut self.windows,
        );
        self.tracker_dirty = true;
        self.last_movement = self.last_movement.map(|t| t.saturating_add(shift));
        self.gap_since = self.gap_since.map(|t| t.saturating_add(shift));
    }
}
