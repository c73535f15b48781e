//! Building a processor from restored state: [`Processor::restore`] is synchronous and needs no store
//! (the replay and unit tests use it directly); [`Processor::new`] loads that state from the store first.

use super::*;

impl Processor {
    /// Moves the origin of the monotonic milliseconds back to `mono`: samples polled while the store was still
    /// opening (before this processor existed) are then measured from an instant no later than theirs.
    pub fn poll_origin(&mut self, mono: std::time::Instant) {
        self.mono_origin = self.mono_origin.min(mono);
    }

    /// Builds the processor and restores counter baselines and the open and dirty windows from the store
    /// (other windows are loaded when a late fact touches them, [`Processor::load_deferred`]); `clock` is
    /// the one the pollers stamp their samples with.
    pub async fn new(
        config: Arc<Config>,
        identity: Identity,
        plans: &[ReadPlan],
        store: &StoreHandle,
        clock: SharedClock,
    ) -> anyhow::Result<Processor> {
        let (counters, windows) = store
            .call(|s| {
                Ok::<_, crate::store::StoreError>((s.load_counters()?, s.load_unsettled_windows()?))
            })
            .await??;
        let counters: BTreeMap<String, String> = counters.into_iter().collect();
        let records = retention::parse_records(windows);
        info!(
            counters = counters.len(),
            windows = records.len(),
            "Restored counter baselines and the open and dirty windows."
        );
        Ok(Processor::restore(
            config, identity, plans, counters, records, clock,
        ))
    }

    /// Builds the processor from restored state without touching a store: `counters` maps store keys
    /// (`machine/counter`, `machine/$state`) to the persisted counter baselines and state trackers as
    /// JSON, `records` are the open and dirty window records. Empty state is a first start. Any other
    /// window may be persisted elsewhere, so a change to one waits until it is loaded
    /// ([`Processor::load_deferred`], or [`Processor::load_deferred_with`] without a store).
    pub fn restore(
        config: Arc<Config>,
        identity: Identity,
        plans: &[ReadPlan],
        counters: BTreeMap<String, String>,
        records: Vec<WindowRecord>,
        clock: SharedClock,
    ) -> Processor {
        let machines = config
            .machines
            .iter()
            .map(|machine| {
                MachineRuntime::restore(machine, &plans[machine.plc], &config, &counters, &records)
            })
            .collect();
        let by_plc = (0..config.plcs.len())
            .map(|plc| config.machines_of(plc).map(|(index, _)| index).collect())
            .collect();
        let step_detectors = vec![StepDetector::new(); config.plcs.len()];
        Processor {
            config,
            identity,
            machines,
            pending: Pending::default(),
            mono_origin: clock.now().mono,
            clock,
            step_detectors,
            step_log: StepLog::new(),
            stored_ahead_logged: false,
            refusals: events::RefusalTally::default(),
            unmatched_releases: BTreeSet::new(),
            metrics: crate::metrics::SharedMetrics::default(),
            by_plc,
            attention: attention::Attention::default(),
        }
    }
}

impl MachineRuntime {
    /// One machine's runtime from its restored baselines, tracker and window records.
    fn restore(
        machine: &MachineConfig,
        plan: &ReadPlan,
        config: &Config,
        counters: &BTreeMap<String, String>,
        records: &[WindowRecord],
    ) -> MachineRuntime {
        let counter_channels = counter_channels(machine, plan, counters);
        let horizon_ms = config::arith::millis(config.agent.restatement_horizon);
        let windows = config
            .agent
            .periods
            .iter()
            .map(|p| {
                let mut acc = MachineWindows::new(
                    machine.id.clone(),
                    vec![p.period.clone()],
                    config::arith::millis(p.grace),
                    horizon_ms,
                    config.calendar.clone(),
                );
                acc.restore(
                    records
                        .iter()
                        .filter(|r| r.machine == machine.id && r.period == p.period.name)
                        .cloned()
                        .collect(),
                );
                acc
            })
            .collect();
        let tracker = restore_tracker(counters.get(&tracker_key(&machine.id)));
        MachineRuntime {
            config: machine.clone(),
            state_tag_index: machine.state.as_ref().map(|s| {
                plan.index_of(&s.tag)
                    .expect("every machine tag is in its PLC's plan")
            }),
            stored_until: stored_until(&counter_channels, &tracker),
            counters: counter_channels,
            tracker,
            tracker_key: tracker_key(&machine.id),
            tracker_dirty: false,
            current_state: None,
            last_movement: None,
            windows,
            gap_since: None,
        }
    }
}

/// The machine's counters (produced, defective, then each defect reason) with their restored baselines;
/// an unreadable baseline starts a new one.
fn counter_channels(
    machine: &MachineConfig,
    plan: &ReadPlan,
    counters: &BTreeMap<String, String>,
) -> Vec<CounterChannel> {
    let mut channels: Vec<(Channel, &str, &CounterTag)> =
        vec![(Channel::Produced, "produced", &machine.produced)];
    if let Some(defective) = &machine.defective {
        channels.push((Channel::Defective, "defective", defective));
    }
    for (name, tag) in &machine.defect_reasons {
        channels.push((Channel::Reason(name.clone()), name.as_str(), tag));
    }
    channels
        .into_iter()
        .map(|(channel, name, tag)| {
            let key = machine.counter_key(name);
            let state = match counters.get(&key) {
                Some(json) => serde_json::from_str(json).unwrap_or_else(|error| {
                    warn!(counter = %key, %error, "Unreadable counter baseline; starting a new one.");
                    CounterState::default()
                }),
                None => CounterState::default(),
            };
            CounterChannel {
                key,
                channel,
                tag_index: plan
                    .index_of(&tag.tag)
                    .expect("every machine tag is in its PLC's plan"),
                tag: tag.clone(),
                state,
                dirty: false,
                invalid_since: None,
            }
        })
        .collect()
}

/// Latest time in a machine's restored state: its counter baselines and its state tracker.
fn stored_until(counters: &[CounterChannel], tracker: &StateTracker) -> Option<Millis> {
    let baselines = counters
        .iter()
        .filter(|c| c.state.last_raw().is_some())
        .map(|c| c.state.last_at());
    let held = tracker.current().map(|(_, since)| since);
    baselines.chain(held).max()
}

/// Store key of a machine's persisted state tracker (beside its counter baselines).
fn tracker_key(machine: &str) -> String {
    format!("{machine}/$state")
}

/// Restores a machine's state tracker: the time since its last sample before the restart is
/// unknown (the agent was not looking), until the first good sample after it.
fn restore_tracker(json: Option<&String>) -> StateTracker {
    let restored: Option<StateTracker> = json.and_then(|j| serde_json::from_str(j).ok());
    let mut tracker = StateTracker::default();
    if let Some((_, since)) = restored.and_then(|t| t.current()) {
        tracker.observe(None, since);
    }
    tracker
}
