//! Driving the processor with no store behind it, as the replay does: one machine's poll record at a
//! time, the windows that ended closed whatever their grace, and the queued rollups and events taken
//! instead of committed. Nothing is evicted, so every window stays in memory and a load is answered
//! empty ([`Processor::load_deferred_with`]).

use super::*;

/// What a draft taken from a processor without a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftKind {
    /// The rollup of a closed window (final or restated).
    Rollup,
    /// An event (gap, counter anomaly, ...).
    Event,
}

impl Processor {
    /// Feeds one poll cycle to machine `machine` (an index into `config.machines`) only; the other
    /// machines of its PLC see nothing of it. For input that records each machine's polls on its own.
    pub fn on_machine_sample(&mut self, sample: &Sample, machine: usize) {
        self.feed(sample, |index| index == machine);
    }

    /// Closes every window that ended at or before `at`, whether or not its grace has passed, and
    /// queues its rollup (the end of a replay's input). Returns how many closed.
    pub fn close_ended(&mut self, at: Millis) -> usize {
        self.close_as_of(|grace| at.saturating_add(grace))
    }

    /// Takes the rollups and events queued since the last call, in order, in place of a commit. The
    /// counter baselines, window records and audit rows a commit would persist are dropped: with no
    /// store behind the processor, memory is the only copy and it is kept.
    pub fn take_drafts(&mut self) -> Vec<(DraftKind, OutboxDraft)> {
        self.collect_changes();
        std::mem::take(&mut self.pending)
            .outbox
            .into_iter()
            .map(|queued| {
                let kind = match queued.role {
                    DraftRole::Rollup => DraftKind::Rollup,
                    DraftRole::Event | DraftRole::RefusalAlarm => DraftKind::Event,
                };
                (kind, queued.draft)
            })
            .collect()
    }
}
