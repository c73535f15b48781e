//! [`Store::commit_cycle`]: one processor commit (the polls since the last) in one transaction, with the quota's overflow policy applied when
//! SQLite answers `SQLITE_FULL` (free a batch, retry, until the cycle fits or nothing droppable is left) and
//! oversized payloads refused up front. Which rows are worth least is decided in `quota`.

use rusqlite::TransactionBehavior;

use super::quarantine;
use super::quota::{DropClass, DropPlan};
use super::space::{Shortage, Space};
use super::{
    schema, u64_to_sql, CommitOutcome, CycleWrite, DraftOwner, RefusedDraft, Store, StoreError,
};

/// Each overflow attempt frees this fraction of the quota more than the previous one (1/20 = 5 %).
const DROP_STEP_DIVISOR: u64 = 20;
/// Lower bound of a step, so tiny test quotas still free whole pages per attempt.
const MIN_DROP_STEP_BYTES: u64 = 8 * 1024;

/// A draft that passed the size check, with `seq` and `db_epoch` still to be filled in.
struct Accepted {
    topic: String,
    class: DropClass,
    body: serde_json::Map<String, serde_json::Value>,
}

/// How one attempt failed.
enum AttemptError {
    /// `SQLITE_FULL`; `exhausted` when the attempt had already dropped everything droppable.
    Full {
        source: rusqlite::Error,
        exhausted: bool,
    },
    /// Anything else: returned as is.
    Other(StoreError),
}

impl Store {
    /// Writes one cycle in ONE `BEGIN IMMEDIATE` transaction and reports the new seqs (in draft order), the
    /// drafts refused for their size, and the rows dropped to make room. On `SQLITE_FULL` the attempt rolls
    /// back and is retried with a growing batch of victims deleted in the same transaction (see the module
    /// header of `store`), so counters and windows are never lost to a full quota. [`StoreError::Full`] means
    /// that even dropping everything droppable would not make room. [`StoreError::DiskFull`] means the filesystem
    /// is full while the quota has room: nothing is dropped; the WAL is checkpointed and truncated and the
    /// attempt retried once. [`StoreError::Displaced`] means the database file is no longer at its path. On any
    /// error nothing is stored.
    pub fn commit_cycle(&mut self, cycle: &CycleWrite) -> Result<CommitOutcome, StoreError> {
        self.commit_cycle_releasing(cycle, &[])
    }

    /// [`Store::commit_cycle`] that also marks the quarantine release requests of `released` (audit-row ids)
    /// as applied, in the same transaction as the windows they restate.
    pub fn commit_cycle_releasing(
        &mut self,
        cycle: &CycleWrite,
        released: &[i64],
    ) -> Result<CommitOutcome, StoreError> {
        self.check_in_place()?;
        let (accepted, refused) = self.screen_drafts(cycle)?;
        let step = (self.options.max_bytes / DROP_STEP_DIVISOR)
            .max(MIN_DROP_STEP_BYTES)
            .max(self.page_size * 2);
        let mut budget = 0_u64;
        let mut wal_released = false;
        loop {
            let attempt = self.try_commit(cycle, released, &accepted, &refused, budget);
            let (source, exhausted) = match attempt {
                Ok(outcome) => {
                    self.note_space(Space::Available);
                    return Ok(outcome);
                }
                Err(AttemptError::Other(error)) => return Err(error),
                Err(AttemptError::Full { source, exhausted }) => (source, exhausted),
            };
            match self.shortage(cycle_bytes(cycle))? {
                Shortage::Quota if exhausted => {
                    self.note_space(Space::QuotaFull);
                    return Err(StoreError::Full(source));
                }
                Shortage::Quota => budget = budget.saturating_add(step),
                // A full disk: dropping rows cannot help (deleting needs room in the WAL too), but truncating
                // the WAL can. Once per commit, then the cycle stays with the caller until there is room.
                Shortage::Disk if !wal_released => {
                    self.cap_wal()?;
                    self.release_wal();
                    wal_released = true;
                }
                Shortage::Disk => {
                    self.note_space(Space::DiskFull);
                    return Err(self.disk_full(source));
                }
            }
        }
    }

    /// Splits the drafts into those within `max_payload_bytes` and those refused. The size is measured with the
    /// widest possible `seq`, so the stored payload is never larger than the size checked.
    fn screen_drafts(
        &self,
        cycle: &CycleWrite,
    ) -> Result<(Vec<Accepted>, Vec<RefusedDraft>), StoreError> {
        let mut accepted = Vec::with_capacity(cycle.outbox.len());
        let mut refused = Vec::new();
        for (index, draft) in cycle.outbox.iter().enumerate() {
            let mut body = draft
                .body
                .as_object()
                .ok_or_else(|| StoreError::PayloadNotObject {
                    topic: draft.topic.clone(),
                })?
                .clone();
            body.insert("seq".to_owned(), i64::MAX.into());
            body.insert("db_epoch".to_owned(), self.db_epoch.clone().into());
            let bytes = u64::try_from(serde_json::to_vec(&body)?.len()).unwrap_or(u64::MAX);
            if bytes > self.options.max_payload_bytes {
                refused.push(RefusedDraft {
                    index,
                    topic: draft.topic.clone(),
                    bytes,
                    owner: DraftOwner::of_body(&body),
                });
            } else {
                accepted.push(Accepted {
                    topic: draft.topic.clone(),
                    class: draft.class,
                    body,
                });
            }
        }
        Ok((accepted, refused))
    }

    /// One attempt: drop victims worth `budget` bytes (none when 0), write the cycle, update the counters, commit.
    fn try_commit(
        &mut self,
        cycle: &CycleWrite,
        released: &[i64],
        accepted: &[Accepted],
        refused: &[RefusedDraft],
        budget: u64,
    ) -> Result<CommitOutcome, AttemptError> {
        let classify = |error: StoreError, exhausted: bool| match error {
            StoreError::Full(source) => AttemptError::Full { source, exhausted },
            other => AttemptError::Other(other),
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|error| classify(error.into(), false))?;
        let plan = if budget > 0 {
            DropPlan::choose(&tx, budget, &self.claimed).map_err(|error| classify(error, false))?
        } else {
            DropPlan::default()
        };
        let exhausted = plan.exhausted;
        let mut counters = self.drops;
        counters.add(&plan, refused);
        let (seqs, totals) = (|| {
            plan.execute(&tx)?;
            let (seqs, enqueued_bytes) = write_cycle(&tx, cycle, accepted, &self.db_epoch)?;
            quarantine::mark_released(&tx, released, cycle.now)?;
            counters.save(&tx, &self.drops)?;
            let totals = self
                .totals
                .minus(count(plan.victims.len()), plan.victim_bytes)
                .plus(count(seqs.len()), enqueued_bytes);
            totals.save(&tx, &self.totals)?;
            Ok::<_, StoreError>((seqs, totals))
        })()
        .map_err(|error| classify(error, exhausted))?;
        // Dropping `tx` without commit (on any error above) rolls the attempt back.
        tx.commit()
            .map_err(|error| classify(error.into(), exhausted))?;
        self.drops = counters;
        self.totals = totals;

        if !plan.ranges.is_empty() || plan.deltas > 0 {
            let per_class: Vec<String> = DropClass::ALL
                .iter()
                .filter_map(|class| {
                    let rows: u64 = plan
                        .ranges
                        .iter()
                        .filter(|range| range.class == *class)
                        .map(|range| range.rows)
                        .sum();
                    (rows > 0).then(|| format!("{}={rows}", class.name()))
                })
                .collect();
            tracing::warn!(
                rows_dropped = plan.rows(),
                by_class = %per_class.join(","),
                deltas_pruned = plan.deltas,
                ranges = plan.ranges.len(),
                total_rows_dropped = self.drops.rows_dropped(),
                "Store quota reached; dropped the least valuable unsent rows to keep collecting."
            );
        }
        for draft in refused {
            tracing::warn!(
                topic = %draft.topic,
                bytes = draft.bytes,
                limit = self.options.max_payload_bytes,
                "Outbox draft refused: payload larger than the limit."
            );
        }
        Ok(CommitOutcome {
            seqs,
            refused: refused.to_vec(),
            dropped: plan.ranges,
            deltas_pruned: plan.deltas,
        })
    }
}

/// Rough size of what a cycle writes, to tell a full quota from a full disk.
fn cycle_bytes(cycle: &CycleWrite) -> u64 {
    let text = |pairs: &[(String, String)]| -> usize {
        pairs
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .sum()
    };
    let drafts: usize = cycle
        .outbox
        .iter()
        .map(|draft| draft.topic.len() + draft.body.to_string().len())
        .sum();
    let deltas: usize = cycle
        .deltas
        .iter()
        .map(|delta| delta.key.len() + delta.kind.as_str().len() + 32)
        .sum();
    let total = text(&cycle.counters) + text(&cycle.windows) + drafts + deltas;
    u64::try_from(total).unwrap_or(u64::MAX)
}

/// A number of rows as the totals count them.
fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

/// Writes counters, deltas, windows and outbox rows of one cycle into the open transaction; returns the seqs
/// and the payload bytes enqueued.
fn write_cycle(
    tx: &rusqlite::Transaction<'_>,
    cycle: &CycleWrite,
    accepted: &[Accepted],
    db_epoch: &str,
) -> Result<(Vec<i64>, u64), StoreError> {
    {
        let mut upsert = tx.prepare_cached(schema::UPSERT_COUNTER)?;
        for (key, state) in &cycle.counters {
            upsert.execute((key, state, cycle.now))?;
        }
    }
    {
        let mut insert = tx.prepare_cached(schema::INSERT_DELTA)?;
        for d in &cycle.deltas {
            insert.execute((
                &d.key,
                &d.kind,
                u64_to_sql(d.delta),
                u64_to_sql(d.raw),
                d.t_from,
                d.t_to,
            ))?;
        }
    }
    {
        let mut upsert = tx.prepare_cached(schema::UPSERT_WINDOW)?;
        for (key, record) in &cycle.windows {
            upsert.execute((key, record, cycle.now))?;
        }
    }
    let mut seqs = Vec::with_capacity(accepted.len());
    let mut enqueued_bytes = 0_u64;
    let mut insert = tx.prepare_cached(schema::INSERT_OUTBOX)?;
    let mut set_payload = tx.prepare_cached(schema::SET_OUTBOX_PAYLOAD)?;
    for draft in accepted {
        let seq = insert.insert((&draft.topic, cycle.now, draft.class.rank()))?;
        let mut body = draft.body.clone();
        body.insert("seq".to_owned(), seq.into());
        body.insert("db_epoch".to_owned(), db_epoch.into());
        let payload = serde_json::to_vec(&body)?;
        enqueued_bytes += count(payload.len());
        set_payload.execute((seq, payload))?;
        seqs.push(seq);
    }
    Ok((seqs, enqueued_bytes))
}
