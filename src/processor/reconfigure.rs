//! Taking a new configuration at a cycle boundary (a reload): everything derived so far is committed, then
//! the processor is rebuilt from the store exactly as a restart builds it ([`Processor::new`]), and what
//! only a running process knows is carried over: state trackers (no unknown interval is invented), wall-clock
//! step detectors, logged-once flags. It does not stop or start pollers; the supervisor does.

use tokio::sync::oneshot;

use super::*;

/// A new configuration for the running processor, applied at its next cycle boundary.
pub struct Reconfigure {
    /// The new configuration.
    pub config: Arc<Config>,
    /// Its read plans, one per PLC: samples of pollers started after the reply follow them.
    pub plans: Vec<ReadPlan>,
    /// Answered once the processor runs on `config`, or with why it still runs on the old one.
    pub applied: oneshot::Sender<anyhow::Result<()>>,
}

impl Processor {
    /// Commits everything derived under the running configuration and rebuilds the processor on
    /// `config` from the store. On failure (the store refuses the commit or the read) the running
    /// processor is returned unchanged with the reason, and nothing was lost.
    pub(super) async fn reconfigured(
        mut self,
        config: Arc<Config>,
        plans: &[ReadPlan],
        store: &StoreHandle,
    ) -> (Processor, anyhow::Result<()>) {
        let now = self.clock.utc();
        let _ = self.load_deferred(store).await;
        self.close_due(now);
        if let Err(error) = self.commit(store, now).await {
            return (self, Err(error.context("the reload waits for a commit")));
        }
        let identity = crate::supervisor::identity(&config);
        match Processor::new(config, identity, plans, store, self.clock.clone()).await {
            Ok(mut next) => {
                next.carry_over(self);
                (next, Ok(()))
            }
            Err(error) => (self, Err(error)),
        }
    }

    /// Takes over from `old` what a restart loses but this process still knows. A counter whose register
    /// changed (another address, type, unit or PLC) starts a new baseline: its old raw value says nothing
    /// about the new register. Every other counter keeps its baseline, which the rebuild restored.
    pub(super) fn carry_over(&mut self, old: Processor) {
        let Processor {
            config: old_config,
            machines: old_machines,
            pending,
            mono_origin,
            step_detectors,
            step_log,
            stored_ahead_logged,
            refusals,
            ..
        } = old;
        // A commit that succeeded leaves only the announcements of its own drops and refusals.
        self.pending = pending;
        self.mono_origin = mono_origin;
        self.step_log = step_log;
        self.stored_ahead_logged = stored_ahead_logged;
        self.refusals = refusals;
        for (index, plc) in self.config.plcs.iter().enumerate() {
            if let Some(old_index) = old_config.plcs.iter().position(|p| p.id == plc.id) {
                self.step_detectors[index] = step_detectors[old_index].clone();
            }
        }
        for machine in &mut self.machines {
            let Some(before) = old_machines
                .iter()
                .find(|m| m.config.id == machine.config.id)
            else {
                continue;
            };
            let same_plc =
                old_config.plcs[before.config.plc].id == self.config.plcs[machine.config.plc].id;
            machine.take_running_state(before, same_plc);
        }
    }
}

impl MachineRuntime {
    /// The running state of the same machine under the previous configuration.
    fn take_running_state(&mut self, before: &MachineRuntime, same_plc: bool) {
        self.tracker = before.tracker.clone();
        self.tracker_dirty = before.tracker_dirty;
        self.current_state = before.current_state;
        self.last_movement = before.last_movement;
        self.gap_since = before.gap_since;
        self.stored_until = before.stored_until;
        for channel in &mut self.counters {
            let Some(old) = before.counters.iter().find(|c| c.key == channel.key) else {
                continue;
            };
            if same_plc && old.tag.tag == channel.tag.tag {
                channel.invalid_since = old.invalid_since;
            } else {
                info!(
                    counter = %channel.key,
                    "Counter register changed; its next reading is a new baseline."
                );
                channel.state = CounterState::default();
                channel.dirty = true;
            }
        }
    }
}
