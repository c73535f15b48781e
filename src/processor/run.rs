//! The processor task: samples, window deadlines, live, health and prune ticks; group commit (one transaction
//! per `store.commit_interval`, at once for rollups, events and releases); a new configuration taken between
//! two cycles.

use super::commit_policy::{CommitPolicy, Work};
use super::live::health_message;
use super::reconfigure::Reconfigure;
use super::*;
use crate::clock::Now;

/// The processor task's timers; rebuilt when a new configuration changes their intervals.
struct Ticks {
    live: tokio::time::Interval,
    health: tokio::time::Interval,
    prune: tokio::time::Interval,
    release: tokio::time::Interval,
}

impl Ticks {
    fn new(processor: &Processor) -> Ticks {
        let every = |period: Duration| {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick
        };
        Ticks {
            live: every(processor.config.agent.live_interval),
            health: every(processor.config.agent.health_interval),
            prune: every(processor.prune_interval()),
            // The first tick is at once: requests made while the agent was stopped are applied at start.
            release: every(super::quarantine::RELEASE_POLL_INTERVAL),
        }
    }
}

/// What the task remembers between cycles: the latest live and health messages (the publisher gets both
/// on every change) and which store operations are failing (each change is logged once).
#[derive(Default)]
struct LoopState {
    live: Vec<LiveMessage>,
    health: Vec<LiveMessage>,
    store_failing: bool,
    prune_failing: bool,
    release_failing: bool,
    /// Since when each PLC and unit is in its state, for the snapshot `status` reads.
    health_history: crate::status::HealthHistory,
}

/// How soon the loop promises its next iteration: every branch ends within the shortest tick.
fn promise(processor: &Processor) -> Duration {
    processor
        .config
        .agent
        .live_interval
        .min(processor.config.agent.health_interval)
        .min(super::quarantine::RELEASE_POLL_INTERVAL)
}

/// The processor's inputs besides the store: samples from the pollers and new configurations.
pub struct Inputs {
    /// One sample per poll cycle; the task ends once every sender is gone and the channel is empty.
    pub sample_rx: mpsc::Receiver<Sample>,
    /// New configurations, applied between two cycles (a reload).
    pub reconfigure_rx: mpsc::Receiver<Reconfigure>,
}

/// Runs the processor until the sample channel closes (all pollers stopped), then commits and returns.
pub async fn run(
    mut processor: Processor,
    inputs: Inputs,
    store: StoreHandle,
    outputs: Outputs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Inputs {
        mut sample_rx,
        mut reconfigure_rx,
    } = inputs;
    let mut ticks = Ticks::new(&processor);
    let mut policy = CommitPolicy::new(processor.config.store.commit_interval);
    let mut state = LoopState::default();
    processor.metrics = outputs.metrics.clone();
    let heartbeat = outputs.liveness.processor();
    let stall_fault = crate::liveness::StallFault::from_env(processor.clock.now().mono);
    loop {
        let mono = processor.clock.now().mono;
        heartbeat.beat(mono, promise(&processor));
        stall_fault.hold_if_due(mono).await;
        let now = processor.clock.utc();
        let until_close = processor
            .next_deadline()
            .map(|d| Duration::from_millis(d.saturating_sub(now).max(0) as u64))
            .unwrap_or(Duration::from_secs(3600));
        // The commit timer: routine work is committed when its interval ends even if no sample arrives.
        let commit_due = policy
            .next_due()
            .unwrap_or(mono + Duration::from_secs(3600));
        tokio::select! {
            sample = sample_rx.recv() => match sample {
                Some(sample) => {
                    processor.on_sample(&sample);
                    // Drain whatever else is queued so one pass of the loop covers a burst.
                    while let Ok(sample) = sample_rx.try_recv() {
                        processor.on_sample(&sample);
                    }
                }
                None => break,
            },
            Some(request) = reconfigure_rx.recv() => {
                let applied;
                (processor, applied) = reconfigure(processor, request, &mut sample_rx, &store, &outputs).await;
                if applied {
                    ticks = Ticks::new(&processor);
                    // The reconfiguration committed everything pending.
                    policy = CommitPolicy::new(processor.config.store.commit_interval);
                    processor.metrics = outputs.metrics.clone();
                }
                continue;
            }
            _ = tokio::time::sleep(until_close) => {}
            _ = tokio::time::sleep_until(commit_due.into()) => {}
            _ = ticks.live.tick() => {
                let (messages, views) = processor.live(processor.clock.utc());
                state.live = messages;
                outputs.live_tx.send_replace([state.live.clone(), state.health.clone()].concat());
                outputs.view_tx.send_replace(views);
                continue;
            }
            _ = ticks.health.tick() => {
                if let Some(message) = health_message(&processor, &store, &outputs).await {
                    state.health = vec![message];
                }
                let now = processor.clock.utc();
                crate::status::persist_health(&mut state.health_history, &outputs.plc_health, &store, now).await;
                outputs.live_tx.send_replace([state.live.clone(), state.health.clone()].concat());
                continue;
            }
            _ = ticks.release.tick() => {
                // Applied releases are committed below, with the windows they restate.
                let outcome = processor.pick_up_releases(&store).await;
                note_releases(&mut state, outcome.map(|_| ()));
            }
            _ = ticks.prune.tick() => {
                let outcome = processor.prune(&store, processor.clock.utc()).await;
                note_prune(&mut state, outcome.map(|_| ()));
                continue;
            }
        }
        end_cycle(&mut processor, &store, &outputs, &mut state, &mut policy).await;
        if shutdown.is_cancelled() && sample_rx.is_closed() && sample_rx.is_empty() {
            break;
        }
    }
    // Final commit: whatever the last cycles derived is persisted before exit.
    let now = processor.clock.utc();
    let _ = processor.load_deferred(&store).await;
    processor.close_due(now);
    if let Err(error) = processor.commit(&store, now).await {
        warn!(error = format!("{error:#}"), "Final store commit failed.");
    }
    outputs.outbox_notify.notify_one();
    Ok(())
}

/// Takes a new configuration between two cycles and answers the request; returns the processor to go on
/// with and whether it runs on the new configuration.
async fn reconfigure(
    mut processor: Processor,
    request: Reconfigure,
    sample_rx: &mut mpsc::Receiver<Sample>,
    store: &StoreHandle,
    outputs: &Outputs,
) -> (Processor, bool) {
    // Samples queued before the request were polled under the old plans: they go first.
    while let Ok(sample) = sample_rx.try_recv() {
        processor.on_sample(&sample);
    }
    let (next, outcome) = processor
        .reconfigured(request.config, &request.plans, store)
        .await;
    let applied = outcome.is_ok();
    let _ = request.applied.send(outcome);
    // The commit before the rebuild may have enqueued rollups.
    outputs.outbox_notify.notify_one();
    (next, applied)
}

/// Closes due windows and commits when a commit is due; a failing store is logged once per episode.
async fn end_cycle(
    processor: &mut Processor,
    store: &StoreHandle,
    outputs: &Outputs,
    state: &mut LoopState,
    policy: &mut CommitPolicy,
) {
    let now = processor.clock.now();
    let Some(committed) = processor.settle(store, policy, now).await else {
        return;
    };
    outputs.liveness.set_store_ok(committed.is_ok());
    match committed {
        Ok(rows) => {
            if state.store_failing {
                info!("Store accepts writes again.");
                state.store_failing = false;
            }
            if rows > 0 {
                debug!(rows, "Enqueued outbox rows.");
                outputs.outbox_notify.notify_one();
            }
        }
        Err(error) => {
            if !state.store_failing {
                warn!(
                    error = format!("{error:#}"),
                    "Store commit failed; keeping work pending."
                );
                state.store_failing = true;
            }
        }
    }
}

impl Processor {
    /// What waits for a transaction: drafts and releases are urgent; changed baselines, audit rows and
    /// window sums are routine.
    pub(super) fn work(&self) -> Work {
        if !self.pending.outbox.is_empty() || !self.pending.releases.is_empty() {
            return Work::Urgent;
        }
        // A baseline or tracker changes only on a machine that was touched (not by visiting them all).
        if self.attention.changed() || !self.pending.is_empty() {
            Work::Routine
        } else {
            Work::Nothing
        }
    }

    /// Loads the windows late facts wait for, closes the windows due at `now` (each only when the machines
    /// touched since the last pass say it has work), and commits when `policy`
    /// says so (a closed window's rollup at once). `None`: no commit was due.
    pub(super) async fn settle(
        &mut self,
        store: &StoreHandle,
        policy: &mut CommitPolicy,
        now: Now,
    ) -> Option<anyhow::Result<usize>> {
        // Late facts first get the window records they restate; a failure shows at the commit, which retries.
        if self.loads_waiting() {
            let _ = self.load_deferred(store).await;
        }
        self.close_if_due(now.utc);
        if !policy.due(now.mono, self.work()) {
            return None;
        }
        let committed = self.commit(store, now.utc).await;
        policy.committed(now.mono, committed.is_ok(), self.work());
        Some(committed)
    }
}

impl Processor {
    /// Whether late facts may wait for window records to be loaded; looks only at the machines touched since
    /// the last pass (see `attention`).
    pub(super) fn loads_waiting(&mut self) -> bool {
        self.attention.refresh(&self.machines);
        self.attention.deferred()
    }

    /// Closes the windows due at `now` when the machines touched since the last pass say that something is
    /// due: [`Processor::close_due`] without visiting every machine at every pass. Returns how many closed.
    pub(super) fn close_if_due(&mut self, now: Millis) -> usize {
        self.attention.refresh(&self.machines);
        if self.attention.close_due_at(now) {
            self.close_due(now)
        } else {
            0
        }
    }
}

fn note_releases(state: &mut LoopState, outcome: anyhow::Result<()>) {
    if outcome.is_err() != state.release_failing {
        state.release_failing = outcome.is_err();
        match outcome {
            Err(error) => warn!(
                error = format!("{error:#}"),
                "Reading quarantine releases failed; retrying."
            ),
            Ok(()) => info!("Reading quarantine releases works again."),
        }
    }
}

fn note_prune(state: &mut LoopState, outcome: anyhow::Result<()>) {
    if outcome.is_err() != state.prune_failing {
        state.prune_failing = outcome.is_err();
        match outcome {
            Err(error) => warn!(
                error = format!("{error:#}"),
                "Store pruning failed; retrying at the next prune."
            ),
            Ok(()) => info!("Store pruning works again."),
        }
    }
}
