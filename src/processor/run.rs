//! The processor task: samples, window deadlines, live, health and prune ticks; one commit per cycle.

use super::live::health_message;
use super::*;

/// Runs the processor until the sample channel closes (all pollers stopped), then commits and returns.
pub async fn run(
    mut processor: Processor,
    mut sample_rx: mpsc::Receiver<Sample>,
    store: StoreHandle,
    outputs: Outputs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let live_every = processor.config.agent.live_interval;
    let health_every = processor.config.agent.health_interval;
    let mut live_tick = tokio::time::interval(live_every);
    live_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut health_tick = tokio::time::interval(health_every);
    health_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut prune_tick = tokio::time::interval(processor.prune_interval());
    prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut prune_failing = false;
    // The first tick is at once: requests made while the agent was stopped are applied at start.
    let mut release_tick = tokio::time::interval(super::quarantine::RELEASE_POLL_INTERVAL);
    release_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut release_failing = false;
    // Latest live snapshots and latest health message; the publisher gets both on every change.
    let mut live: Vec<LiveMessage> = Vec::new();
    let mut health: Vec<LiveMessage> = Vec::new();
    let mut store_failing = false;
    processor.metrics = outputs.metrics.clone();
    let mut health_history = crate::status::HealthHistory::default();
    // Every branch below ends the iteration within the shortest tick (the release tick is 2 s).
    let promise = live_every
        .min(health_every)
        .min(super::quarantine::RELEASE_POLL_INTERVAL);
    let heartbeat = outputs.liveness.processor();
    let stall_fault = crate::liveness::StallFault::from_env(processor.clock.now().mono);

    loop {
        let mono = processor.clock.now().mono;
        heartbeat.beat(mono, promise);
        stall_fault.hold_if_due(mono).await;
        let now = processor.clock.utc();
        let until_close = processor
            .next_deadline()
            .map(|d| Duration::from_millis(d.saturating_sub(now).max(0) as u64))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            sample = sample_rx.recv() => match sample {
                Some(sample) => {
                    processor.on_sample(&sample);
                    // Drain whatever else is queued so one transaction covers a burst.
                    while let Ok(sample) = sample_rx.try_recv() {
                        processor.on_sample(&sample);
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep(until_close) => {}
            _ = live_tick.tick() => {
                let (messages, views) = processor.live(processor.clock.utc());
                live = messages;
                outputs.live_tx.send_replace([live.clone(), health.clone()].concat());
                outputs.view_tx.send_replace(views);
                continue;
            }
            _ = health_tick.tick() => {
                if let Some(message) = health_message(&processor, &store, &outputs).await {
                    health = vec![message];
                }
                let now = processor.clock.utc();
                crate::status::persist_health(&mut health_history, &outputs.plc_health, &store, now).await;
                outputs.live_tx.send_replace([live.clone(), health.clone()].concat());
                continue;
            }
            _ = release_tick.tick() => {
                // Applied releases are committed below, with the windows they restate.
                let outcome = processor.pick_up_releases(&store).await;
                if outcome.is_err() != release_failing {
                    release_failing = outcome.is_err();
                    match outcome {
                        Err(error) => warn!(error = format!("{error:#}"), "Reading quarantine releases failed; retrying."),
                        Ok(_) => info!("Reading quarantine releases works again."),
                    }
                }
            }
            _ = prune_tick.tick() => {
                let outcome = processor.prune(&store, processor.clock.utc()).await;
                if outcome.is_err() != prune_failing {
                    prune_failing = outcome.is_err();
                    match outcome {
                        Err(error) => warn!(error = format!("{error:#}"), "Store pruning failed; retrying at the next prune."),
                        Ok(_) => info!("Store pruning works again."),
                    }
                }
                continue;
            }
        }
        let now = processor.clock.utc();
        // Late facts first get the window records they restate; a failure shows at the commit, which retries.
        let _ = processor.load_deferred(&store).await;
        processor.close_due(now);
        let committed = processor.commit(&store, now).await;
        outputs.liveness.set_store_ok(committed.is_ok());
        match committed {
            Ok(rows) => {
                if store_failing {
                    info!("Store accepts writes again.");
                    store_failing = false;
                }
                if rows > 0 {
                    debug!(rows, "Enqueued outbox rows.");
                    outputs.outbox_notify.notify_one();
                }
            }
            Err(error) => {
                if !store_failing {
                    warn!(
                        error = format!("{error:#}"),
                        "Store commit failed; keeping work pending."
                    );
                    store_failing = true;
                }
            }
        }
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
