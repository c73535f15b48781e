//! The device health snapshot the processor persists for `status`: every PLC and unit up or down, since when
//! (as this process saw it), and the last error. [`HealthHistory`] remembers when each state began and what was
//! last written, so an unchanged snapshot is rewritten only every [`SNAPSHOT_REFRESH_MS`]; it is pure (time
//! comes in as an argument).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::logic::Millis;
use crate::poller::PlcHealth;

/// One unit behind a PLC connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitSnapshot {
    /// Unit id.
    pub unit_id: u8,
    /// Whether it answers.
    pub up: bool,
    /// When it was first seen in this state by the running agent (UTC milliseconds).
    pub since: Millis,
    /// Its last error, if any.
    pub last_error: Option<String>,
}

/// One PLC connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSnapshot {
    /// PLC id.
    pub id: String,
    /// Whether the connection reads.
    pub up: bool,
    /// When it was first seen in this state by the running agent (UTC milliseconds).
    pub since: Millis,
    /// Its last error, if any.
    pub last_error: Option<String>,
    /// The units behind it.
    pub units: Vec<UnitSnapshot>,
}

/// What the processor persists at each health tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSnapshot {
    /// When it was taken (UTC milliseconds).
    pub at: Millis,
    /// Every PLC, in configuration order.
    pub plcs: Vec<DeviceSnapshot>,
}

/// How long an unchanged snapshot goes without being rewritten (10 minutes): each write is a transaction of
/// its own that rewrites every page of the snapshot (tens of KiB with hundreds of PLCs), while `status` needs a
/// fresh one only when a device changed, and an age beyond this says the agent stopped writing it.
pub const SNAPSHOT_REFRESH_MS: Millis = 10 * 60 * 1000;

/// When each PLC and unit entered its current state, and the snapshot last written.
#[derive(Debug, Default)]
pub struct HealthHistory {
    since: HashMap<(String, Option<u8>), (bool, Millis)>,
    saved: Option<HealthSnapshot>,
}

impl HealthHistory {
    /// The snapshot of `board` at `now`; a state seen for the first time, or changed, starts at `now`.
    pub fn observe(&mut self, board: &[PlcHealth], now: Millis) -> HealthSnapshot {
        let plcs = board
            .iter()
            .map(|plc| DeviceSnapshot {
                id: plc.id.clone(),
                up: plc.up,
                since: self.since((plc.id.clone(), None), plc.up, now),
                last_error: plc.last_error.clone(),
                units: plc
                    .units
                    .iter()
                    .map(|unit| UnitSnapshot {
                        unit_id: unit.unit_id,
                        up: unit.up,
                        since: self.since((plc.id.clone(), Some(unit.unit_id)), unit.up, now),
                        last_error: unit.last_error.clone(),
                    })
                    .collect(),
            })
            .collect();
        HealthSnapshot { at: now, plcs }
    }

    /// Whether `snapshot` must be written: nothing was written yet, a PLC or unit differs from the last written
    /// snapshot (state, since, last error, the set of devices), the wall clock went back past it, or the last
    /// written one is [`SNAPSHOT_REFRESH_MS`] old.
    pub fn needs_saving(&self, snapshot: &HealthSnapshot) -> bool {
        let Some(saved) = &self.saved else {
            return true;
        };
        saved.plcs != snapshot.plcs
            || snapshot.at < saved.at
            || snapshot.at.saturating_sub(saved.at) >= SNAPSHOT_REFRESH_MS
    }

    /// Records that `snapshot` was written (a failed write is not recorded, so the next tick writes again).
    pub fn saved(&mut self, snapshot: HealthSnapshot) {
        self.saved = Some(snapshot);
    }

    fn since(&mut self, key: (String, Option<u8>), up: bool, now: Millis) -> Millis {
        let entry = self.since.entry(key).or_insert((up, now));
        if entry.0 != up {
            *entry = (up, now);
        }
        entry.1
    }
}
