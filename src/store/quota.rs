//! The overflow policy of the byte quota (ARCHITECTURE.md, invariant 7): the value class of each outbox row, the choice of victims
//! when `SQLITE_FULL` arrives (delta audit log first, then the least valuable unsent rows, oldest first), and the
//! persisted counters of everything dropped or refused. It plans; [`super::Store::commit_cycle`] executes.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use super::schema;
use super::{DraftOwner, StoreError};
use crate::logic::window::{Period, PeriodKind};
use crate::logic::Millis;

/// Estimated bytes a deleted outbox row frees beyond its topic and payload (record header, cell pointer,
/// the `outbox_by_drop_class` index entry). Only steers batch sizes; the retry loop corrects any error.
const OUTBOX_ROW_OVERHEAD: u64 = 40;
/// Estimated bytes a deleted audit-log entry frees beyond its key and kind (four integers, header, index).
const DELTA_ROW_OVERHEAD: u64 = 64;

const MINUTE_MS: i64 = 60_000;
const QUARTER_MS: i64 = 15 * MINUTE_MS;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// Value class of an outbox row under the overflow policy; lower classes are dropped first, oldest first
/// within a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum DropClass {
    /// `/rollup/1m` and every other fixed period shorter than 15 minutes.
    #[serde(rename = "rollup_1m")]
    Rollup1m,
    /// `/rollup/15m` and every other fixed period from 15 minutes up to, not including, 1 hour.
    #[serde(rename = "rollup_15m")]
    Rollup15m,
    /// A rollup whose period is neither a fixed length nor `shift`/`day`: ranked between 15m and 1h.
    #[serde(rename = "rollup_unknown")]
    RollupUnknown,
    /// `/rollup/1h` and longer fixed periods.
    #[serde(rename = "rollup_1h")]
    Rollup1h,
    /// Shift and day rollups, events (gap records, alarms) and every other topic: dropped only when nothing
    /// else is left.
    #[serde(rename = "durable")]
    Durable,
}

impl DropClass {
    /// Every class, in drop order.
    pub const ALL: [DropClass; 5] = [
        DropClass::Rollup1m,
        DropClass::Rollup15m,
        DropClass::RollupUnknown,
        DropClass::Rollup1h,
        DropClass::Durable,
    ];

    /// The class of a rollup of `period`: shift and day rollups are durable, fixed periods rank by length.
    pub fn of_period(period: &Period) -> DropClass {
        match period.kind {
            PeriodKind::Shift | PeriodKind::Day => DropClass::Durable,
            PeriodKind::Fixed { length_ms } if length_ms < QUARTER_MS => DropClass::Rollup1m,
            PeriodKind::Fixed { length_ms } if length_ms < HOUR_MS => DropClass::Rollup15m,
            PeriodKind::Fixed { .. } => DropClass::Rollup1h,
        }
    }

    /// Classifies a stored row by its topic's suffix, for rows written before the class had its own column
    /// (the schema migration that added it): `…/event` and `…/rollup/{shift,day}` are durable,
    /// `…/rollup/{period}` ranks by the period's length, a period that does not parse is `RollupUnknown`,
    /// anything else is durable. New rows carry their class from the code that built them.
    pub(super) fn of_stored_topic(topic: &str) -> DropClass {
        if topic.ends_with("/event") {
            return DropClass::Durable;
        }
        let Some((_, period)) = topic.rsplit_once("/rollup/") else {
            return DropClass::Durable;
        };
        if period.contains('/') {
            return DropClass::Durable;
        }
        match Period::parse(period) {
            Ok(period) => DropClass::of_period(&period),
            Err(_) => DropClass::RollupUnknown,
        }
    }

    /// Position in the drop order, as stored in the `drop_class` column.
    pub fn rank(self) -> i64 {
        match self {
            DropClass::Rollup1m => 0,
            DropClass::Rollup15m => 1,
            DropClass::RollupUnknown => 2,
            DropClass::Rollup1h => 3,
            DropClass::Durable => 4,
        }
    }

    /// Name used in logs and in the meta counter keys.
    pub fn name(self) -> &'static str {
        match self {
            DropClass::Rollup1m => "rollup_1m",
            DropClass::Rollup15m => "rollup_15m",
            DropClass::RollupUnknown => "rollup_unknown",
            DropClass::Rollup1h => "rollup_1h",
            DropClass::Durable => "durable",
        }
    }
}

/// Persisted totals of everything the store dropped or refused since the database file was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DropCounters {
    /// Outbox rows of [`DropClass::Rollup1m`] dropped on overflow.
    pub rollup_1m: u64,
    /// Outbox rows of [`DropClass::Rollup15m`] dropped on overflow.
    pub rollup_15m: u64,
    /// Outbox rows of [`DropClass::RollupUnknown`] dropped on overflow.
    pub rollup_unknown: u64,
    /// Outbox rows of [`DropClass::Rollup1h`] dropped on overflow.
    pub rollup_1h: u64,
    /// Outbox rows of [`DropClass::Durable`] dropped on overflow (only when nothing else was left).
    pub durable: u64,
    /// Delta audit-log entries deleted on overflow (they are never published; pruned before any outbox row).
    pub deltas_pruned: u64,
    /// Drafts refused because their payload exceeded `max_payload_bytes`.
    pub refused: u64,
    /// Payload bytes of the refused drafts.
    pub refused_bytes: u64,
}

impl DropCounters {
    /// Outbox rows of `class` dropped so far.
    pub fn rows(&self, class: DropClass) -> u64 {
        match class {
            DropClass::Rollup1m => self.rollup_1m,
            DropClass::Rollup15m => self.rollup_15m,
            DropClass::RollupUnknown => self.rollup_unknown,
            DropClass::Rollup1h => self.rollup_1h,
            DropClass::Durable => self.durable,
        }
    }

    /// Outbox rows dropped so far, all classes together.
    pub fn rows_dropped(&self) -> u64 {
        DropClass::ALL.iter().map(|class| self.rows(*class)).sum()
    }

    fn rows_mut(&mut self, class: DropClass) -> &mut u64 {
        match class {
            DropClass::Rollup1m => &mut self.rollup_1m,
            DropClass::Rollup15m => &mut self.rollup_15m,
            DropClass::RollupUnknown => &mut self.rollup_unknown,
            DropClass::Rollup1h => &mut self.rollup_1h,
            DropClass::Durable => &mut self.durable,
        }
    }

    /// Meta keys of the counters, in the order of [`DropCounters::values`].
    const KEYS: [&'static str; 8] = [
        "drops.rollup_1m",
        "drops.rollup_15m",
        "drops.rollup_unknown",
        "drops.rollup_1h",
        "drops.durable",
        "drops.deltas_pruned",
        "drops.refused",
        "drops.refused_bytes",
    ];

    fn values(&self) -> [u64; 8] {
        [
            self.rollup_1m,
            self.rollup_15m,
            self.rollup_unknown,
            self.rollup_1h,
            self.durable,
            self.deltas_pruned,
            self.refused,
            self.refused_bytes,
        ]
    }

    fn from_values(values: [u64; 8]) -> DropCounters {
        let [rollup_1m, rollup_15m, rollup_unknown, rollup_1h, durable, deltas_pruned, refused, refused_bytes] =
            values;
        DropCounters {
            rollup_1m,
            rollup_15m,
            rollup_unknown,
            rollup_1h,
            durable,
            deltas_pruned,
            refused,
            refused_bytes,
        }
    }

    /// Loads the counters from the meta table; absent keys count as 0, unreadable ones are reset to 0.
    pub(super) fn load(conn: &Connection) -> Result<DropCounters, StoreError> {
        let mut values = [0_u64; 8];
        for (key, value) in Self::KEYS.into_iter().zip(values.iter_mut()) {
            *value = super::meta::read_counter(conn, key)?;
        }
        Ok(Self::from_values(values))
    }

    /// Reads the counters without repairing anything, for a read-only connection: an unreadable value reads as 0
    /// (the agent resets it at its next open).
    pub(super) fn peek(conn: &Connection) -> Result<DropCounters, StoreError> {
        let mut values = [0_u64; 8];
        for (key, value) in Self::KEYS.into_iter().zip(values.iter_mut()) {
            *value = super::meta::read_value(conn, key)?
                .as_ref()
                .and_then(super::meta::parse_u64)
                .unwrap_or(0);
        }
        Ok(Self::from_values(values))
    }

    /// Writes the counters that differ from `before` into the meta table (inside the caller's transaction).
    pub(super) fn save(&self, conn: &Connection, before: &DropCounters) -> Result<(), StoreError> {
        let mut upsert = conn.prepare_cached(schema::UPSERT_META)?;
        for ((key, value), old) in Self::KEYS
            .into_iter()
            .zip(self.values())
            .zip(before.values())
        {
            if value != old {
                upsert.execute((key, value.to_string()))?;
            }
        }
        Ok(())
    }

    /// Adds what one commit dropped and refused.
    pub(super) fn add(&mut self, plan: &DropPlan, refused: &[super::RefusedDraft]) {
        for range in &plan.ranges {
            *self.rows_mut(range.class) += range.rows;
        }
        self.deltas_pruned += plan.deltas;
        self.refused += u64::try_from(refused.len()).unwrap_or(u64::MAX);
        self.refused_bytes += refused.iter().map(|draft| draft.bytes).sum::<u64>();
    }
}

/// Unsent rows of one topic that the overflow policy deleted in one commit. No row of the same topic with a seq
/// between `first_seq` and `last_seq` is left in the outbox, so a consumer that misses a message of this topic
/// within the range knows it was dropped (rows of other topics interleave; retired rows were delivered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedRange {
    /// Topic of every dropped row in the range.
    pub topic: String,
    /// Value class of that topic.
    pub class: DropClass,
    /// Lowest dropped seq.
    pub first_seq: i64,
    /// Highest dropped seq.
    pub last_seq: i64,
    /// Number of rows dropped (≤ `last_seq - first_seq + 1`).
    pub rows: u64,
    /// `enqueued_at` of the oldest dropped row.
    pub first_enqueued_at: Millis,
    /// `enqueued_at` of the newest dropped row.
    pub last_enqueued_at: Millis,
    /// Sum of `counts.produced` of the dropped rows (rollups; 0 for other rows), so the loss is a number.
    pub produced: u64,
    /// Sum of `counts.defective` of the dropped rows.
    pub defective: u64,
    /// The line and machine the range's payloads name (every row of a topic names the same); `None` when
    /// they name none.
    pub owner: Option<DraftOwner>,
}

/// Victims chosen for one attempt: everything up to a cut-off, per table and class.
#[derive(Debug, Default)]
pub(super) struct DropPlan {
    /// Delete audit-log entries with `id <=` this.
    pub delta_cutoff: Option<i64>,
    /// Number of audit-log entries at or below the cut-off.
    pub deltas: u64,
    /// The outbox rows to delete, by seq.
    pub victims: Vec<i64>,
    /// Sum of the victims' payload sizes, for the outbox totals.
    pub victim_bytes: u64,
    /// The chosen outbox rows, one range per topic, in drop order.
    pub ranges: Vec<DroppedRange>,
    /// True when every audit-log entry and every unclaimed outbox row was chosen: nothing more can be freed.
    pub exhausted: bool,
}

/// The owner named by an outbox row of [`schema::SELECT_OUTBOX_CLASS`] (its `line` and `machine` columns);
/// a field that is absent or not text names no one.
fn owner_of(row: &rusqlite::Row<'_>) -> Result<Option<DraftOwner>, StoreError> {
    let text = |column: usize| -> Result<Option<String>, StoreError> {
        Ok(match row.get_ref(column)? {
            rusqlite::types::ValueRef::Text(bytes) => {
                Some(String::from_utf8_lossy(bytes).into_owned())
            }
            _ => None,
        })
    };
    Ok(DraftOwner::of_fields(text(6)?, text(7)?))
}

impl DropPlan {
    /// Chooses victims worth about `budget` bytes: audit-log entries oldest first, then outbox rows class by
    /// class, oldest first within a class, never a row in `claimed` (handed to the publisher, so possibly
    /// delivered already). Runs inside the commit's transaction, so the plan is exact.
    pub(super) fn choose(
        conn: &Connection,
        budget: u64,
        claimed: &BTreeMap<i64, u64>,
    ) -> Result<DropPlan, StoreError> {
        let mut plan = DropPlan::default();
        let mut freed = 0_u64;
        {
            let mut select = conn.prepare_cached(schema::SELECT_DELTA_SIZES)?;
            let mut rows = select.query([])?;
            while freed < budget {
                let Some(row) = rows.next()? else { break };
                let id: i64 = row.get(0)?;
                let size: i64 = row.get(1)?;
                freed += u64::try_from(size).unwrap_or(0) + DELTA_ROW_OVERHEAD;
                plan.delta_cutoff = Some(id);
                plan.deltas += 1;
            }
        }
        let mut select = conn.prepare_cached(schema::SELECT_OUTBOX_CLASS)?;
        for class in DropClass::ALL {
            if freed >= budget {
                break;
            }
            let mut by_topic: BTreeMap<String, DroppedRange> = BTreeMap::new();
            let mut ranges: Vec<DroppedRange> = Vec::new();
            let mut rows = select.query([class.rank()])?;
            while freed < budget {
                let Some(row) = rows.next()? else { break };
                let seq: i64 = row.get(0)?;
                let topic: String = row.get(1)?;
                if claimed.contains_key(&seq) {
                    // A kept row ends its topic's range: ranges never straddle a row left in the outbox.
                    ranges.extend(by_topic.remove(&topic));
                    continue;
                }
                let size: i64 = row.get(2)?;
                let enqueued_at: Millis = row.get(3)?;
                let produced = u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0);
                let defective = u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0);
                freed += u64::try_from(size).unwrap_or(0) + OUTBOX_ROW_OVERHEAD;
                plan.victims.push(seq);
                plan.victim_bytes += u64::try_from(row.get::<_, i64>(8)?).unwrap_or(0);
                by_topic
                    .entry(topic.clone())
                    .and_modify(|range| {
                        range.last_seq = seq;
                        range.rows += 1;
                        range.last_enqueued_at = enqueued_at;
                        range.produced += produced;
                        range.defective += defective;
                    })
                    .or_insert(DroppedRange {
                        topic,
                        class,
                        first_seq: seq,
                        last_seq: seq,
                        rows: 1,
                        first_enqueued_at: enqueued_at,
                        last_enqueued_at: enqueued_at,
                        produced,
                        defective,
                        owner: owner_of(row)?,
                    });
            }
            ranges.extend(by_topic.into_values());
            ranges.sort_by_key(|range| range.first_seq);
            plan.ranges.extend(ranges);
        }
        plan.exhausted = freed < budget;
        Ok(plan)
    }

    /// Outbox rows chosen.
    pub(super) fn rows(&self) -> u64 {
        self.ranges.iter().map(|range| range.rows).sum()
    }

    /// Deletes the chosen victims (inside the caller's transaction).
    pub(super) fn execute(&self, conn: &Connection) -> Result<(), StoreError> {
        if let Some(cutoff) = self.delta_cutoff {
            let deleted = conn
                .prepare_cached(schema::DELETE_DELTAS_UP_TO)?
                .execute([cutoff])?;
            debug_assert_eq!(u64::try_from(deleted).ok(), Some(self.deltas));
        }
        let mut delete = conn.prepare_cached(schema::DELETE_OUTBOX_ROW)?;
        for seq in &self.victims {
            delete.execute([seq])?;
        }
        Ok(())
    }
}
