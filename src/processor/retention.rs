//! Bounded memory and disk over the restatement horizon: window records that are not in memory are
//! loaded from the store before a deferred late fact is applied to them, settled windows leave memory
//! after each successful commit, and the store drops window records past the horizon and audit rows
//! past their retention (or beyond their share of the quota) in small batches.

use anyhow::Context as _;

use super::*;
use crate::logic::rollup::LoadRequest;

/// Rows deleted per store call while pruning; small, so the store thread is never held for long and
/// the publisher's reads and retires interleave with a long prune.
pub(super) const PRUNE_BATCH_ROWS: usize = 2_000;
/// Store calls per prune and table; whatever is left waits for the next prune.
const PRUNE_MAX_BATCHES: usize = 50;
/// The delta audit log may use at most 1/4 of the store quota; its oldest rows go first beyond that.
const AUDIT_QUOTA_SHARE_DIVISOR: u64 = 4;
/// Bounds of the time between prunes: an eighth of the shortest retention, within these.
const PRUNE_EVERY_MIN: Duration = Duration::from_secs(1);
const PRUNE_EVERY_MAX: Duration = Duration::from_secs(60);

/// What one prune removed from the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Window records that ended past the restatement horizon.
    pub windows: usize,
    /// Delta audit rows past `store.audit_retention` or beyond the audit log's share of the quota.
    pub deltas: usize,
}

impl Processor {
    /// How often the run loop prunes the store.
    pub fn prune_interval(&self) -> Duration {
        let shortest = self.horizon().min(self.audit_retention());
        (shortest / 8).clamp(PRUNE_EVERY_MIN, PRUNE_EVERY_MAX)
    }

    /// Loads from the store the window records that deferred late facts touch, then applies those facts.
    /// Returns how many records were loaded.
    pub async fn load_deferred(&mut self, store: &StoreHandle) -> anyhow::Result<usize> {
        let requests = self.deferred_requests();
        if requests.is_empty() {
            return Ok(0);
        }
        let queries: Vec<(String, LoadRequest)> = requests
            .iter()
            .map(|(_, _, machine, request)| (machine.clone(), request.clone()))
            .collect();
        let answers = store
            .call(move |s| {
                queries
                    .iter()
                    .map(|(machine, r)| s.load_windows_between(machine, &r.period, r.from, r.to))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?
            .context("loading window records for late facts")?;
        let answers = answers.into_iter().map(parse_records).collect();
        let loaded = self.apply_loaded(requests, answers);
        debug!(loaded, "Loaded window records for late facts.");
        Ok(loaded)
    }

    /// Like [`Processor::load_deferred`], with `load(machine, request)` answering each request in place
    /// of a store: for a processor with no store behind it (the replay, tests), whose windows never left
    /// memory, an empty answer is exact. Returns how many records were loaded.
    pub fn load_deferred_with(
        &mut self,
        mut load: impl FnMut(&str, &LoadRequest) -> Vec<WindowRecord>,
    ) -> usize {
        let requests = self.deferred_requests();
        let answers = requests
            .iter()
            .map(|(_, _, machine, request)| load(machine, request))
            .collect();
        self.apply_loaded(requests, answers)
    }

    /// Every load the deferred facts wait for: (machine index, accumulator index, machine id, request).
    fn deferred_requests(&self) -> Vec<(usize, usize, String, LoadRequest)> {
        let mut requests = Vec::new();
        for (machine_index, machine) in self.machines.iter().enumerate() {
            for (acc_index, acc) in machine.windows.iter().enumerate() {
                for request in acc.load_requests() {
                    requests.push((machine_index, acc_index, machine.config.id.clone(), request));
                }
            }
        }
        requests
    }

    /// Hands each request's answer to its accumulator, which applies the facts that waited for it.
    fn apply_loaded(
        &mut self,
        requests: Vec<(usize, usize, String, LoadRequest)>,
        answers: Vec<Vec<WindowRecord>>,
    ) -> usize {
        if !requests.is_empty() {
            // Loaded windows may be due at once, and the deferred facts are applied: look at every machine.
            self.attention.note_all();
        }
        let mut loaded = 0;
        for ((machine_index, acc_index, _, request), records) in requests.into_iter().zip(answers) {
            loaded += records.len();
            self.machines[machine_index].windows[acc_index].restore_range(
                &request.period,
                request.from,
                records,
            );
        }
        loaded
    }

    /// Whether late facts still wait for window records from the store.
    pub(super) fn has_deferred(&self) -> bool {
        self.machines
            .iter()
            .any(|m| m.windows.iter().any(MachineWindows::has_deferred))
    }

    /// Forgets settled windows; call only right after a successful commit, when the store has them all.
    pub(super) fn evict_settled(&mut self, now: Millis) {
        for machine in &mut self.machines {
            for acc in &mut machine.windows {
                acc.evict(now);
            }
        }
    }

    /// Deletes window records past the restatement horizon and audit rows past their retention or beyond
    /// their share of the quota, each in batches of [`PRUNE_BATCH_ROWS`] (one store call per batch).
    pub async fn prune(&mut self, store: &StoreHandle, now: Millis) -> anyhow::Result<PruneReport> {
        let mut report = PruneReport::default();
        // Every accumulator must agree: one still waiting for a load, or that saw nothing, prunes nothing.
        let cutoff = self
            .machines
            .iter()
            .flat_map(|m| m.windows.iter().map(MachineWindows::prune_before))
            .try_fold(Millis::MAX, |cutoff, before| before.map(|b| cutoff.min(b)));
        if let Some(cutoff) = cutoff.filter(|c| *c != Millis::MAX) {
            report.windows = batched(|| {
                let store = store.clone();
                async move {
                    store
                        .call(move |s| s.prune_windows(cutoff, PRUNE_BATCH_ROWS))
                        .await?
                        .context("pruning window records")
                }
            })
            .await?;
        }
        let older_than = now.saturating_sub(millis_of(self.audit_retention()));
        let max_bytes = self.config.store.max_bytes / AUDIT_QUOTA_SHARE_DIVISOR;
        report.deltas = batched(|| {
            let store = store.clone();
            async move {
                store
                    .call(move |s| s.prune_audit(older_than, max_bytes, PRUNE_BATCH_ROWS))
                    .await?
                    .context("pruning the delta audit log")
            }
        })
        .await?;
        if report != PruneReport::default() {
            debug!(
                windows = report.windows,
                deltas = report.deltas,
                "Pruned the store."
            );
        }
        Ok(report)
    }

    fn horizon(&self) -> Duration {
        self.config.agent.restatement_horizon
    }

    /// How long audit rows are kept: `store.audit_retention`, else the restatement horizon.
    fn audit_retention(&self) -> Duration {
        self.config
            .store
            .audit_retention
            .unwrap_or_else(|| self.horizon())
    }
}

/// Runs `batch` until it deletes fewer than a full batch, at most [`PRUNE_MAX_BATCHES`] times.
async fn batched<F, Fut>(mut batch: F) -> anyhow::Result<usize>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let mut total = 0;
    for _ in 0..PRUNE_MAX_BATCHES {
        let deleted = batch().await?;
        total += deleted;
        if deleted < PRUNE_BATCH_ROWS {
            break;
        }
    }
    Ok(total)
}

/// Window records from their persisted JSON; an unreadable one is skipped with a warning.
pub(super) fn parse_records(jsons: Vec<String>) -> Vec<WindowRecord> {
    jsons
        .into_iter()
        .filter_map(|json| match serde_json::from_str::<WindowRecord>(&json) {
            Ok(record) => Some(record),
            Err(error) => {
                warn!(%error, "Skipping an unreadable window record.");
                None
            }
        })
        .collect()
}

fn millis_of(duration: Duration) -> Millis {
    Millis::try_from(duration.as_millis()).unwrap_or(Millis::MAX)
}
