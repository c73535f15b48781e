//! What a window holds: its additive sums, its lifecycle status and the persisted record, plus
//! the count channels and the tally of facts older than the restatement horizon.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::logic::calendar::UnknownTime;

use super::{Flag, MachineState};
use crate::logic::Millis;

/// Additive sums of one window: times in ms and counts as integers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowSums {
    /// Units produced (good + defective).
    pub produced: u64,
    /// Defective units.
    pub defective: u64,
    /// Defective units by reason.
    pub by_reason: BTreeMap<String, u64>,
    /// In-plan time in the running state.
    pub running_ms: i64,
    /// In-plan time in a planned stop.
    pub planned_stop_ms: i64,
    /// In-plan time in an unplanned stop.
    pub unplanned_stop_ms: i64,
    /// In-plan time not covered by a good sample.
    pub unknown_ms: i64,
    /// Observed time out of plan (between shifts, in breaks, on days off), whatever the state.
    #[serde(default)]
    pub out_of_plan_ms: i64,
    /// Units produced out of plan (good + defective).
    #[serde(default)]
    pub out_of_plan_produced: u64,
    /// Defective units produced out of plan (not kept per reason).
    #[serde(default)]
    pub out_of_plan_defective: u64,
    /// Provenance flags.
    pub flags: BTreeSet<Flag>,
}

/// Where a window is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowStatus {
    /// Still accumulating; published on the live topic.
    Open,
    /// Closed once after its grace period; revision 0.
    Final,
    /// Republished after late facts arrived; revision ≥ 1.
    Restated,
}

impl WindowStatus {
    /// The snake_case name, as serialized and published.
    pub fn name(self) -> &'static str {
        match self {
            WindowStatus::Open => "open",
            WindowStatus::Final => "final",
            WindowStatus::Restated => "restated",
        }
    }
}

/// One machine's window, as persisted and as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    /// Machine id.
    pub machine: String,
    /// Period name ("1m", "15m", "1h", "shift", "day", ...).
    pub period: String,
    /// Inclusive start.
    pub start: Millis,
    /// Exclusive end.
    pub end: Millis,
    /// The worked shift that is this window or wholly contains it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<String>,
    /// Production date of a shift or day window, or of a window inside a shift.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_date"
    )]
    pub production_date: Option<Date>,
    /// The sums.
    pub sums: WindowSums,
    /// Lifecycle status.
    pub status: WindowStatus,
    /// 0 for the first final publication, +1 per restatement.
    pub revision: u32,
    /// Changed since it was last emitted as final/restated.
    pub dirty: bool,
}

impl WindowSums {
    /// Planned busy time (PBT, docs/kpi.md): in-plan running, unplanned stop and, unless
    /// `unknown_time = "exclude"`, unknown time. Planned stops are planned downtime, not in PBT.
    pub fn planned_ms(&self, unknown_time: UnknownTime) -> i64 {
        let unknown = match unknown_time {
            UnknownTime::Loss => self.unknown_ms.max(0),
            UnknownTime::Exclude => 0,
        };
        self.running_ms.max(0) + self.unplanned_stop_ms.max(0) + unknown
    }

    /// All in-plan time, whatever the state.
    pub fn in_plan_ms(&self) -> i64 {
        self.running_ms + self.planned_stop_ms + self.unplanned_stop_ms + self.unknown_ms
    }

    /// All observed time of the window: in plan and out of plan.
    pub fn observed_ms(&self) -> i64 {
        self.in_plan_ms() + self.out_of_plan_ms
    }

    pub(super) fn add_count(&mut self, channel: &Channel, amount: u64) {
        match channel {
            Channel::Produced => self.produced += amount,
            Channel::Defective => self.defective += amount,
            Channel::Reason(reason) => *self.by_reason.entry(reason.clone()).or_default() += amount,
        }
    }

    pub(super) fn add_state(&mut self, state: MachineState, ms: i64) {
        match state {
            MachineState::Running => self.running_ms += ms,
            MachineState::PlannedStop => self.planned_stop_ms += ms,
            MachineState::UnplannedStop => self.unplanned_stop_ms += ms,
            MachineState::Unknown => self.unknown_ms += ms,
        }
    }

    /// Adds units counted out of plan; reasons are not kept per reason out of plan.
    pub(super) fn add_out_of_plan_count(&mut self, channel: &Channel, amount: u64) -> bool {
        match channel {
            Channel::Produced => self.out_of_plan_produced += amount,
            Channel::Defective => self.out_of_plan_defective += amount,
            Channel::Reason(_) => return false,
        }
        true
    }
}

/// `production_date` persisted as `"YYYY-MM-DD"`, jiff's civil date format.
mod optional_date {
    use jiff::civil::Date;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        date: &Option<Date>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match date {
            Some(date) => serializer.collect_str(date),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Date>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| text.parse::<Date>().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Digits `start` is zero-padded to in [`WindowRecord::key`]: the width of epoch milliseconds from
/// September 2001 to November 2286, so within a period the text order of keys is the time order of starts.
const KEY_START_DIGITS: usize = 13;

impl WindowRecord {
    /// The persistence key, time first: `period/start/machine`, with `start` zero-padded to 13
    /// digits. Records written in the same minute then sit side by side in the
    /// key index instead of one place per machine. Unique: a period name holds no `/`, so the first `/`
    /// ends it, and the start (digits) ends at the second. The only place a key is built; never parsed.
    pub fn key(&self) -> String {
        format!(
            "{}/{:0width$}/{}",
            self.period,
            self.start,
            self.machine,
            width = KEY_START_DIGITS
        )
    }
}

/// Which count a delta adds to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Units produced (good + defective).
    Produced,
    /// Defective units.
    Defective,
    /// Defective units of one named reason.
    Reason(String),
}

/// Facts (or parts of facts) that arrived for time older than the restatement horizon. Amounts
/// differ per period (a shorter period keeps its oldest window closer to the horizon); each fact
/// adds the largest amount over the periods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateTally {
    /// Facts that were partly or wholly late.
    pub facts: u64,
    /// Units (all channels) attributed to time before the horizon; re-homed, not lost.
    pub units: u64,
    /// State time before the horizon; discarded.
    pub state_ms: i64,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn record(machine: &str, period: &str, start: Millis) -> WindowRecord {
        WindowRecord {
            machine: machine.into(),
            period: period.into(),
            start,
            end: start + 60_000,
            shift: None,
            production_date: None,
            sums: WindowSums::default(),
            status: WindowStatus::Open,
            revision: 0,
            dirty: false,
        }
    }

    #[test]
    fn given_a_record_when_keyed_then_period_padded_start_and_machine_in_that_order() {
        assert_eq!(
            record("press-01", "1m", 1_795_824_000_000).key(),
            "1m/1795824000000/press-01"
        );
        assert_eq!(record("m", "day", 60_000).key(), "day/0000000060000/m");
    }

    fn period() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("1m".to_owned()),
            Just("15m".to_owned()),
            Just("1h".to_owned()),
            Just("shift".to_owned()),
            Just("day".to_owned()),
        ]
    }

    proptest! {
        /// Within a period, keys sort by start first, then machine; distinct records get distinct keys.
        #[test]
        fn keys_order_by_time_within_a_period_and_never_collide(
            period in period(),
            other_period in period(),
            a in (0_i64..9_999_999_999_999, "[a-z0-9/_-]{1,12}"),
            b in (0_i64..9_999_999_999_999, "[a-z0-9/_-]{1,12}"),
        ) {
            let (ka, kb) = (record(&a.1, &period, a.0).key(), record(&b.1, &period, b.0).key());
            prop_assert_eq!(ka.cmp(&kb), (a.0, &a.1).cmp(&(b.0, &b.1)));
            let kc = record(&b.1, &other_period, b.0).key();
            prop_assert_eq!(ka == kc, period == other_period && a == b);
        }
    }
}
