//! Drives the pure core with samples and time: decode → counter steps → windows → KPIs → payloads,
//! and commits the results of the cycles since the last commit to the store in ONE transaction (invariant 3).
//! It never touches the network: it only talks to the store and to in-memory watch channels.
//!
//! Layout: this file (machine state, one cycle's work, the commit), `clock` (wall-clock steps at the
//! intake), `commit_policy` (when to commit: group commit), `events` (durable events about devices, drops
//! and recovery), `live` (live snapshots, health and the terminal view), `restore` (construction from
//! restored state, with or without a store), `retention` (windows loaded for late facts, evicted after
//! commits, and store pruning), `run` (the task), `reconfigure` (a new configuration taken between two
//! cycles, as a restart would build it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::SharedClock;
use crate::config::{self, Config, CounterTag, MachineConfig};
use crate::logic::calendar::UnknownTime;
use crate::logic::clock::{StepDetector, StepLog};
use crate::logic::counter::{CounterState, CounterStep, StepKind};
use crate::logic::decode::{decode_counter, Value};
use crate::logic::kpi::{self, Kpis};
use crate::logic::payload::{self, DeviceHealth, EventKind, Identity};
use crate::logic::rollup::{
    Channel, Flag, MachineState, MachineWindows, StateTracker, WindowRecord,
};
use crate::logic::Millis;
use crate::poller::{HealthBoard, PollEvent, ReadPlan, Sample};
use crate::publisher::LiveMessage;
use crate::store::{CycleWrite, DeltaRow, OutboxDraft, StoreHandle};

mod attention;
#[cfg(test)]
mod attention_tests;
mod clock;
mod commit_policy;
#[cfg(test)]
mod commit_tests;
#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod counter_tests;
mod delta_log;
mod events;
mod live;
mod quarantine;
mod reconfigure;
#[cfg(test)]
mod reconfigure_tests;
mod restore;
mod retention;
mod run;
mod standalone;
#[cfg(test)]
mod test_core;
#[cfg(test)]
mod tests;

use events::apply_step;

pub use live::MachineView;
pub use reconfigure::Reconfigure;
pub use retention::PruneReport;
pub use run::{run, Inputs};
pub use standalone::DraftKind;

/// Most delta audit rows kept in memory while the store refuses writes; older ones are dropped and counted.
const MAX_PENDING_DELTAS: usize = 100_000;

/// Channels the processor feeds besides the store.
pub struct Outputs {
    /// Rings when new outbox rows were committed.
    pub outbox_notify: Arc<Notify>,
    /// Latest live and health messages (retained, not durable).
    pub live_tx: watch::Sender<Vec<LiveMessage>>,
    /// Latest per-machine figures for the terminal view.
    pub view_tx: watch::Sender<Vec<MachineView>>,
    /// PLC health, for the health payload.
    pub plc_health: HealthBoard,
    /// The publisher's figures, for the health payload's `mqtt` part.
    pub publisher_stats: Arc<crate::publisher::PublisherStats>,
    /// The process's metrics (store commits, PLCs up).
    pub metrics: crate::metrics::SharedMetrics,
    /// Where the loop reports progress and the outcome of its commits.
    pub liveness: crate::liveness::Liveness,
}

struct CounterChannel {
    key: String,
    channel: Channel,
    tag_index: usize,
    tag: CounterTag,
    state: CounterState,
    /// True once the state changed since the last commit.
    dirty: bool,
    /// Since when the counter reads values at or above its modulus (announced once per episode).
    invalid_since: Option<Millis>,
}

struct MachineRuntime {
    config: MachineConfig,
    counters: Vec<CounterChannel>,
    state_tag_index: Option<usize>,
    tracker: StateTracker,
    /// Store key of the persisted tracker.
    tracker_key: String,
    tracker_dirty: bool,
    current_state: Option<MachineState>,
    /// Last time the produced counter moved, for inferring "running" without a state register.
    last_movement: Option<Millis>,
    /// One accumulator per configured period (each period has its own grace).
    windows: Vec<MachineWindows>,
    /// Start of the current gap (failed polls), if any.
    gap_since: Option<Millis>,
    /// Latest time in the state restored at start (counter baselines, tracker), until the first
    /// sample has been checked against it.
    stored_until: Option<Millis>,
}

/// Everything waiting to be committed; upserts are merged, appends accumulate until a commit succeeds.
#[derive(Default)]
struct Pending {
    counters: BTreeMap<String, String>,
    windows: BTreeMap<String, String>,
    deltas: delta_log::DeltaLog,
    outbox: Vec<QueuedDraft>,
    dropped_deltas: u64,
    /// Quarantine releases applied to the windows, to be marked released with this work's commit.
    releases: BTreeSet<i64>,
}

/// What a queued draft is, so that the store's refusal of it is announced only when it is not itself
/// an announcement of a refusal (which would raise one more event per cycle, forever), and so that a
/// processor with no store behind it can tell its rollups from its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DraftRole {
    /// The rollup of a closed window.
    Rollup,
    /// An event about the machines, the devices or the store.
    Event,
    /// A `payload_refused` event: the announcement of a refused draft.
    RefusalAlarm,
}

/// An outbox draft waiting for the next commit.
struct QueuedDraft {
    draft: OutboxDraft,
    role: DraftRole,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.counters.is_empty()
            && self.windows.is_empty()
            && self.deltas.is_empty()
            && self.outbox.is_empty()
            && self.releases.is_empty()
    }

    /// Moves the upserts and drafts into one transaction's write (the audit rows are copied: they stay until the
    /// commit succeeds, and shedding them is decided here), with each draft's role in the same order.
    fn take_cycle(&mut self, now: Millis) -> (CycleWrite, Vec<DraftRole>) {
        let (outbox, roles) = std::mem::take(&mut self.outbox)
            .into_iter()
            .map(|queued| (queued.draft, queued.role))
            .unzip();
        let cycle = CycleWrite {
            counters: std::mem::take(&mut self.counters).into_iter().collect(),
            deltas: self.deltas.rows().to_vec(),
            windows: std::mem::take(&mut self.windows).into_iter().collect(),
            outbox,
            now,
        };
        (cycle, roles)
    }

    /// Puts back what [`Pending::take_cycle`] moved out, after the transaction failed.
    fn restore_cycle(&mut self, cycle: CycleWrite, roles: Vec<DraftRole>) {
        self.counters = cycle.counters.into_iter().collect();
        self.windows = cycle.windows.into_iter().collect();
        self.outbox = cycle
            .outbox
            .into_iter()
            .zip(roles)
            .map(|(draft, role)| QueuedDraft { draft, role })
            .collect();
    }

    /// Queues an event for the next commit.
    fn push(&mut self, draft: OutboxDraft) {
        self.outbox.push(QueuedDraft {
            draft,
            role: DraftRole::Event,
        });
    }

    /// Queues a rollup for the next commit.
    fn push_rollup(&mut self, draft: OutboxDraft) {
        self.outbox.push(QueuedDraft {
            draft,
            role: DraftRole::Rollup,
        });
    }
}

/// The processor: owns the pure-core state of every machine.
pub struct Processor {
    config: Arc<Config>,
    identity: Identity,
    machines: Vec<MachineRuntime>,
    pending: Pending,
    /// The clock the task loop and the health message read.
    clock: SharedClock,
    /// Origin of the monotonic milliseconds handed to `logic::clock`.
    mono_origin: Instant,
    /// One wall-clock step detector per PLC (each PLC's samples arrive in order).
    step_detectors: Vec<StepDetector>,
    /// Steps already reported (logged once; the last one goes on the health topic).
    step_log: StepLog,
    /// Whether "the stored state is in the future" was logged in this run.
    stored_ahead_logged: bool,
    /// Drafts the store refused for their size: counted, and logged at most once a minute.
    refusals: events::RefusalTally,
    /// Quarantine releases whose counter is not in the configuration: logged once, left pending.
    unmatched_releases: BTreeSet<i64>,
    /// Commit counts and latency; the task loop hands it the process's registry ([`Outputs::metrics`]).
    metrics: crate::metrics::SharedMetrics,
    /// The machines of each PLC (indexes into `machines`), so that a sample visits only its own.
    by_plc: Vec<Vec<usize>>,
    /// Which machines the per-pass work must look at since its last pass.
    attention: attention::Attention,
}

impl Processor {
    /// Feeds one poll cycle into the pure core. Results wait in `pending` until [`Processor::commit`].
    pub fn on_sample(&mut self, sample: &Sample) {
        self.feed(sample, |_| true);
    }

    /// Feeds one poll cycle to the machines of its PLC that `takes(machine index)` selects; the others
    /// see nothing (not even a failed read) of this cycle.
    fn feed(&mut self, sample: &Sample, takes: impl Fn(usize) -> bool) {
        self.record_poll_events(sample);
        let step = self.observe_clock(sample);
        // By position in the PLC's list: no list of the fed machines is built per sample.
        let fed = |processor: &Processor, at: usize| {
            let index = processor.by_plc[sample.plc][at];
            takes(index).then_some(index)
        };
        for at in 0..self.by_plc[sample.plc].len() {
            let Some(index) = fed(self, at) else { continue };
            self.attention.note(index);
            self.check_stored_time(index, sample.utc);
            if let Some(step) = &step {
                self.machines[index].clock_stepped(step);
            }
        }
        for at in 0..self.by_plc[sample.plc].len() {
            let Some(index) = fed(self, at) else { continue };
            let machine = &mut self.machines[index];
            let reads = machine.read_counters(sample, &self.identity, &mut self.pending);
            let observed = machine.observe_state(sample, &reads, &self.config);
            machine.current_state = observed;
            machine.tracker_dirty = true;
            if let Some((state, from, to)) = machine.tracker.observe(observed, sample.utc) {
                for acc in &mut machine.windows {
                    acc.add_state(state, from, to);
                }
            }
            let lost = sample.is_gap() || observed.is_none() && !reads.any_read;
            let gap = Gap {
                lost,
                counter_unread: reads.unread,
            };
            machine.note_gap(sample, gap, &self.identity, &self.config, &mut self.pending);
        }
    }

    /// Closes every window whose grace has passed and queues its rollup. Returns how many closed.
    pub fn close_due(&mut self, now: Millis) -> usize {
        self.close_as_of(|_grace| now)
    }

    /// Closes the windows each accumulator finds due at `now_for(its grace)` and queues their rollups.
    /// Returns how many closed.
    fn close_as_of(&mut self, now_for: impl Fn(Millis) -> Millis) -> usize {
        let mut closed = 0;
        for machine in &mut self.machines {
            for (acc, period) in machine.windows.iter_mut().zip(&self.config.agent.periods) {
                let class = crate::store::DropClass::of_period(&period.period);
                for record in acc.close_due(now_for(config::arith::millis(period.grace))) {
                    let kpis = kpis_of(&machine.config, &record, self.config.agent.unknown_time);
                    let body = payload::rollup_payload(
                        &self.identity,
                        &machine.config.line,
                        &record,
                        &kpis,
                        &self.config.agent.timezone,
                    );
                    self.pending.push_rollup(OutboxDraft {
                        class,
                        topic: payload::rollup_topic(
                            &self.identity,
                            &machine.config.line,
                            &machine.config.id,
                            &record.period,
                        ),
                        body,
                    });
                    closed += 1;
                }
            }
        }
        // Closing moved every due machine's deadline forward: the next pass recomputes them all.
        self.attention.note_all();
        closed
    }

    /// Moves changed baselines and windows into `pending`.
    fn collect_changes(&mut self) {
        self.attention.collected();
        for machine in &mut self.machines {
            if machine.tracker_dirty {
                let json = serde_json::to_string(&machine.tracker)
                    .expect("state tracker always serialises");
                self.pending
                    .counters
                    .insert(machine.tracker_key.clone(), json);
                machine.tracker_dirty = false;
            }
            for channel in machine.counters.iter_mut().filter(|c| c.dirty) {
                let json =
                    serde_json::to_string(&channel.state).expect("counter state always serialises");
                self.pending.counters.insert(channel.key.clone(), json);
                channel.dirty = false;
            }
            for acc in &mut machine.windows {
                for record in acc.touched() {
                    let key = record.key();
                    let json =
                        serde_json::to_string(&record).expect("window record always serialises");
                    self.pending.windows.insert(key, json);
                }
            }
        }
    }

    /// Commits everything pending in one transaction. On failure the work stays pending and is retried
    /// at the next due commit, so nothing derived is lost while the store refuses writes. Late facts waiting for
    /// window records are applied first; while they cannot be, nothing is committed (a counter baseline must
    /// not be persisted ahead of the windows its delta went to). After a commit, settled windows leave memory.
    pub async fn commit(&mut self, store: &StoreHandle, now: Millis) -> anyhow::Result<usize> {
        self.load_deferred(store).await?;
        anyhow::ensure!(
            !self.has_deferred(),
            "late facts still wait for window records; work kept pending"
        );
        self.collect_changes();
        if self.pending.is_empty() {
            self.evict_settled(now);
            return Ok(0);
        }
        // The pending work moves into the transaction and comes back if it fails: a copy would double the
        // commit's memory (hundreds of rollup bodies and window records at a window close). Only a store
        // thread that has stopped keeps it, and that ends the agent; the PLCs' counters carry the counts.
        let (cycle, roles) = self.pending.take_cycle(now);
        let released: Vec<i64> = self.pending.releases.iter().copied().collect();
        let started = Instant::now();
        let (cycle, result) = store
            .call(move |s| {
                let result = s.commit_cycle_releasing(&cycle, &released);
                (cycle, result)
            })
            .await?;
        self.metrics.commit(started.elapsed(), result.is_ok());
        match result {
            Ok(outcome) => {
                let dropped = std::mem::take(&mut self.pending.dropped_deltas);
                if dropped > 0 {
                    warn!(
                        dropped,
                        "Delta audit rows were dropped while the store refused writes."
                    );
                }
                self.pending = Pending::default();
                self.evict_settled(now);
                // Nothing lost silently: quota drops and refused payloads become durable events,
                // committed with the next cycle.
                self.announce_drops(&outcome.dropped, now);
                self.announce_refusals(&outcome.refused, &roles, now);
                Ok(outcome.seqs.len())
            }
            Err(error) => {
                self.pending.restore_cycle(cycle, roles);
                if matches!(error, crate::store::StoreError::Full(_)) {
                    // The quota cannot hold this cycle even after the store dropped what it may. Shed the
                    // audit rows (the lowest-value data, as the store would) so that the baselines, windows
                    // and rollups still fit once the publisher frees space.
                    self.pending.dropped_deltas += self.pending.deltas.clear() as u64;
                }
                self.pending.dropped_deltas +=
                    self.pending.deltas.keep_newest(MAX_PENDING_DELTAS) as u64;
                Err(anyhow::Error::new(error).context("store commit failed; work kept pending"))
            }
        }
    }

    /// Earliest time a window is due to close; looks at the machines touched since the last call only.
    pub fn next_deadline(&mut self) -> Option<Millis> {
        self.attention.refresh(&self.machines);
        self.attention.deadline()
    }
}

/// What one sample's counters told about a machine.
struct CounterReads {
    /// At least one counter was read and decoded.
    any_read: bool,
    /// The produced counter moved (for inferring the state without a state register).
    produced_moved: bool,
    /// At least one counter read as an error or could not be decoded.
    unread: bool,
}

/// What one sample failed to read of a machine.
#[derive(Clone, Copy)]
struct Gap {
    /// Nothing was read: the connection failed, or neither a counter nor the state was read.
    lost: bool,
    /// A counter read as an error while something else was read.
    counter_unread: bool,
}

impl MachineRuntime {
    /// Steps every counter the sample read and applies the steps to the windows.
    fn read_counters(
        &mut self,
        sample: &Sample,
        identity: &Identity,
        pending: &mut Pending,
    ) -> CounterReads {
        let mut reads = CounterReads {
            any_read: false,
            produced_moved: false,
            unread: false,
        };
        for channel in &mut self.counters {
            let words = match &sample.readings[channel.tag_index] {
                Ok(words) => words,
                Err(_) => {
                    reads.unread = true;
                    continue;
                }
            };
            let raw = match decode_counter(words, &channel.tag.tag.encoding) {
                Ok(raw) => raw,
                Err(error) => {
                    warn!(counter = %channel.key, %error, "Cannot decode counter.");
                    reads.unread = true;
                    continue;
                }
            };
            let step = channel.state.step(&channel.tag.counter, raw, sample.utc);
            if step.kind == StepKind::Invalid {
                // Not a reading: the counter is unread this cycle (a gap), its baseline untouched.
                reads.unread = true;
            } else {
                reads.any_read = true;
                channel.dirty = true;
            }
            if matches!(channel.channel, Channel::Produced) && counted(&step) > 0 {
                reads.produced_moved = true;
            }
            apply_step(
                identity,
                pending,
                &mut self.windows,
                &self.config,
                channel,
                &step,
            );
            channel.note_invalid(&step);
        }
        reads
    }

    /// The machine's state: the register when there is one, else inferred from counter movement
    /// (and the windows flagged [`Flag::StateInferred`]).
    fn observe_state(
        &mut self,
        sample: &Sample,
        reads: &CounterReads,
        config: &Config,
    ) -> Option<MachineState> {
        let at = sample.utc;
        match self.state_tag_index {
            Some(index) => {
                let words = sample.readings[index].as_ref().ok()?;
                let state_tag = self
                    .config
                    .state
                    .as_ref()
                    .expect("state index implies a state tag");
                let value = state_tag.tag.decode(words).ok()?;
                Some(state_tag.state_of(value_as_i64(&value)))
            }
            None if reads.any_read => {
                if reads.produced_moved {
                    self.last_movement = Some(at);
                }
                let window = inferred_running_window(&self.config, config);
                let running = self.last_movement.is_some_and(|t| at - t <= window);
                for acc in &mut self.windows {
                    acc.flag(at, Flag::StateInferred);
                }
                Some(if running {
                    MachineState::Running
                } else {
                    MachineState::UnplannedStop
                })
            }
            None => None,
        }
    }

    /// Gaps: a failed cycle starts one; the next good cycle ends it with an event. A cycle that read
    /// the machine but not one of its counters flags its windows too: that counter's counts are
    /// carried to its next good read (its own event, such as `tag_disabled`, says why).
    fn note_gap(
        &mut self,
        sample: &Sample,
        gap: Gap,
        identity: &Identity,
        config: &Config,
        pending: &mut Pending,
    ) {
        let at = sample.utc;
        if gap.lost || gap.counter_unread {
            for acc in &mut self.windows {
                acc.flag(at, Flag::Gap);
            }
        }
        if gap.lost {
            self.gap_since.get_or_insert(at);
            return;
        }
        let Some(since) = self.gap_since.take() else {
            return;
        };
        let body = payload::event_payload(
            identity,
            &self.config.line,
            &self.config.id,
            EventKind::Gap,
            at,
            serde_json::json!({
                "plc": config.plcs[self.config.plc].id,
                "from": payload_time(since, config),
                "to": payload_time(at, config),
                "duration_ms": at - since,
                "note": "counts of the gap are carried by the next good poll and attributed across it (flag estimated)",
            }),
        );
        pending.push(OutboxDraft {
            class: crate::store::DropClass::Durable,
            topic: payload::event_topic(identity, &self.config.line, &self.config.id),
            body,
        });
    }
}

impl CounterChannel {
    /// Tracks an episode of values at or above the modulus; its start and its end are logged once.
    fn note_invalid(&mut self, step: &CounterStep) {
        match (step.kind == StepKind::Invalid, self.invalid_since) {
            (true, None) => {
                warn!(
                    counter = %self.key,
                    raw = step.raw,
                    modulus = self.tag.counter.modulus,
                    "Counter reads a value at or above its modulus; it counts as unread until a valid value."
                );
                self.invalid_since = Some(step.t_to);
            }
            (false, Some(since)) => {
                info!(counter = %self.key, invalid_ms = step.t_to - since, "Counter reads valid values again.");
                self.invalid_since = None;
            }
            _ => {}
        }
    }
}

/// Units a step adds to the window sums; a quarantined delta adds nothing.
fn counted(step: &CounterStep) -> u64 {
    if step.kind.is_counted() {
        step.delta
    } else {
        0
    }
}

/// KPIs of a window of `machine`, with the agent's choice of how unknown time counts in PBT.
fn kpis_of(machine: &MachineConfig, record: &WindowRecord, unknown_time: UnknownTime) -> Kpis {
    kpi::of_window(
        record,
        machine.ideal_cycle_time,
        &machine.targets,
        unknown_time,
    )
}

fn inferred_running_window(machine: &MachineConfig, config: &Config) -> Millis {
    let poll = config::arith::millis(config.plcs[machine.plc].poll_interval);
    let cycle = machine
        .ideal_cycle_time
        .map(config::arith::millis)
        .unwrap_or(0);
    cycle.saturating_mul(3).max(poll.saturating_mul(2))
}

fn value_as_i64(value: &Value) -> i64 {
    match *value {
        Value::Bool(b) => i64::from(b),
        Value::Int(i) => i,
        Value::UInt(u) => i64::try_from(u).unwrap_or(i64::MAX),
        Value::Float(f) => f as i64,
    }
}

fn payload_time(at: Millis, config: &Config) -> String {
    crate::logic::window::rfc3339(at, &config.agent.timezone)
}
