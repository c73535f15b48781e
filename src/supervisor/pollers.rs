//! The running poller tasks, one per PLC index: started and stopped one by one, so that a reload restarts
//! only the pollers whose PLC changed. Owns the supervisor's sender of the sample channel, so the channel
//! closes (and the processor ends) only once every poller is stopped.

use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::liveness::Liveness;
use crate::metrics::SharedMetrics;
use crate::poller::{self, HealthBoard, ReadPlan, Sample};

/// One poller task.
struct Slot {
    task: Id,
    token: CancellationToken,
}

/// The poller tasks, by PLC index of the running configuration.
pub(super) struct PollerSet {
    tasks: JoinSet<anyhow::Result<()>>,
    slots: Vec<Option<Slot>>,
    sample_tx: mpsc::Sender<Sample>,
    health: HealthBoard,
    clock: SharedClock,
    metrics: SharedMetrics,
    liveness: Liveness,
    /// Parent of every poller's token: cancelling it stops them all.
    token: CancellationToken,
}

impl PollerSet {
    /// No pollers yet; each one started sends to `sample_tx`, reports to `health`, counts in the metrics of
    /// `watch` and beats on its progress board.
    pub(super) fn new(
        sample_tx: mpsc::Sender<Sample>,
        health: HealthBoard,
        clock: SharedClock,
        watch: &super::Watch,
    ) -> PollerSet {
        PollerSet {
            tasks: JoinSet::new(),
            slots: Vec::new(),
            sample_tx,
            health,
            clock,
            metrics: watch.metrics.clone(),
            liveness: watch.liveness.clone(),
            token: CancellationToken::new(),
        }
    }

    /// Starts the poller of PLC `index` of `config`, reading `plan`.
    pub(super) fn start(&mut self, index: usize, config: &Config, plan: &ReadPlan) {
        let plc_config = &config.plcs[index];
        let token = self.token.child_token();
        let span = tracing::info_span!("plc", device = %plc_config.id);
        let task = self.tasks.spawn(
            poller::run_with_clock(
                index,
                plc_config.clone(),
                plan.clone(),
                self.sample_tx.clone(),
                self.health.clone(),
                poller::PollTiming {
                    clock: self.clock.clone(),
                    calendar: config.calendar.clone(),
                    periods: config
                        .agent
                        .periods
                        .iter()
                        .map(|p| p.period.clone())
                        .collect(),
                    schedule: config.agent.poll_schedule,
                    metrics: self.metrics.clone(),
                    heartbeat: self.liveness.poller(index),
                },
                token.clone(),
            )
            .instrument(span),
        );
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some(Slot {
            task: task.id(),
            token,
        });
    }

    /// Stops the pollers of `indices` and waits until they have ended, so every sample they polled is in
    /// the channel. A poller that ends on its own meanwhile is a failure, as in [`PollerSet::next_end`].
    pub(super) async fn stop(&mut self, indices: &[usize]) -> anyhow::Result<()> {
        let mut waiting: Vec<Id> = Vec::new();
        for index in indices {
            if let Some(slot) = self.slots.get_mut(*index).and_then(Option::take) {
                slot.token.cancel();
                waiting.push(slot.task);
            }
        }
        while !waiting.is_empty() {
            match self.tasks.join_next_with_id().await {
                Some(Ok((id, _))) if waiting.contains(&id) => waiting.retain(|w| *w != id),
                Some(Err(error)) if waiting.contains(&error.id()) => {
                    waiting.retain(|w| *w != error.id());
                }
                Some(Ok((_, result))) => return Err(super::task_failure("poller", Ok(result))),
                Some(Err(error)) => return Err(super::task_failure("poller", Err(error))),
                None => break,
            }
        }
        Ok(())
    }

    /// Lays the set out for the PLCs of `config`, a reloaded configuration: keeps the first slots (stopped
    /// ones are empty) and watches the progress of exactly its PLCs.
    pub(super) fn lay_out(&mut self, config: &Config) {
        self.slots.resize_with(config.plcs.len(), || None);
        self.liveness
            .set_pollers(&super::plc_ids(config), self.clock.now().mono);
    }

    /// The next poller to end on its own, which is a failure: pollers run until they are stopped.
    pub(super) async fn next_end(
        &mut self,
    ) -> Option<Result<anyhow::Result<()>, tokio::task::JoinError>> {
        self.tasks.join_next().await
    }

    /// Stops every poller, waits for them, and drops the sample sender.
    pub(super) async fn stop_all(mut self) {
        self.token.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}
