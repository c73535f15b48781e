//! Quarantine releases: a delta the plausibility guard rejected is counted once an operator releases it
//! (`shopfloor-agent quarantine release`). The amount goes to the windows of its original interval through the
//! late-fact path (`MachineWindows::add_count`), so windows already published are restated; the release is
//! marked applied in the commit that carries those windows, and announced by a `quarantine_released` event.

use super::*;
use crate::store::ReleaseRequest;

/// How often the task looks for release requests (and once at start, for those made while it was stopped).
pub(super) const RELEASE_POLL_INTERVAL: Duration = Duration::from_secs(2);

impl Processor {
    /// Reads the release requests the store holds and applies the new ones; returns how many were applied.
    pub async fn pick_up_releases(&mut self, store: &StoreHandle) -> anyhow::Result<usize> {
        let requests = store.call(|s| s.pending_releases()).await??;
        let now = self.clock.utc();
        Ok(self.apply_releases(&requests, now))
    }

    /// Counts each released amount over its interval in every period of its machine and queues the event;
    /// `at` is the time of the events. A request already applied and waiting for its commit is skipped, and one
    /// whose counter is not configured is left pending (logged once). Returns how many were applied.
    pub fn apply_releases(&mut self, requests: &[ReleaseRequest], at: Millis) -> usize {
        let mut applied = 0;
        for request in requests {
            if self.pending.releases.contains(&request.delta_id) {
                continue;
            }
            let found = self
                .machines
                .iter()
                .enumerate()
                .find_map(|(position, machine)| {
                    let index = machine.counters.iter().position(|c| c.key == request.key)?;
                    Some((position, index))
                });
            let Some((position, index)) = found else {
                if self.unmatched_releases.insert(request.delta_id) {
                    warn!(
                        delta_id = request.delta_id,
                        counter = %request.key,
                        "A quarantine release names a counter that is not configured; it stays pending."
                    );
                }
                continue;
            };
            self.attention.note(position);
            let machine = &mut self.machines[position];
            let channel = &machine.counters[index];
            for acc in &mut machine.windows {
                acc.add_count(
                    &channel.channel,
                    request.amount,
                    request.t_from,
                    request.t_to,
                    None,
                );
            }
            let draft = events::machine_event(
                &self.identity,
                &machine.config,
                EventKind::QuarantineReleased,
                at,
                serde_json::json!({
                    "counter": channel.key,
                    "delta_id": request.delta_id,
                    "amount": request.amount,
                    "from": payload_time(request.t_from, &self.config),
                    "to": payload_time(request.t_to, &self.config),
                    "requested_at": payload_time(request.requested_at, &self.config),
                }),
            );
            self.pending.push(draft);
            info!(
                delta_id = request.delta_id,
                counter = %channel.key,
                amount = request.amount,
                "Released a quarantined delta; its windows are restated."
            );
            self.pending.releases.insert(request.delta_id);
            applied += 1;
        }
        applied
    }
}
