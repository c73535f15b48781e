//! The device health snapshot the processor persists for `status`: every PLC and unit up or down, since when
//! (as this process saw it), and the last error. [`HealthHistory`] remembers when each state began; it is pure
//! (time comes in as an argument).

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

/// When each PLC and unit entered its current state.
#[derive(Debug, Default)]
pub struct HealthHistory {
    since: HashMap<(String, Option<u8>), (bool, Millis)>,
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

    fn since(&mut self, key: (String, Option<u8>), up: bool, now: Millis) -> Millis {
        let entry = self.since.entry(key).or_insert((up, now));
        if entry.0 != up {
            *entry = (up, now);
        }
        entry.1
    }
}
