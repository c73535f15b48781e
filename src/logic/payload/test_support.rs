//! Fixtures shared by the payload tests: an identity, a time zone, targets, a window record, and schema
//! validation against the files in `schemas/`.

pub(super) use std::collections::{BTreeMap, BTreeSet};

use super::*;
pub(super) use crate::logic::calendar::UnknownTime;
pub(super) use crate::logic::clock::StepDirection;
pub(super) use crate::logic::kpi::{compute, KpiFlag, Kpis, NullReason};
pub(super) use crate::logic::rollup::WindowStatus;
pub(super) use crate::logic::rollup::{Flag, WindowRecord, WindowSums};
pub(super) use crate::logic::targets::{Target, TargetSchedule, Targets};

/// The rollup schema text.
pub(super) const ROLLUP: &str = include_str!("../../../schemas/rollup.schema.json");
/// The live schema text.
pub(super) const LIVE: &str = include_str!("../../../schemas/live.schema.json");
/// The status schema text.
pub(super) const STATUS: &str = include_str!("../../../schemas/status.schema.json");
/// The health schema text.
pub(super) const HEALTH: &str = include_str!("../../../schemas/health.schema.json");
/// The event schema text.
pub(super) const EVENT: &str = include_str!("../../../schemas/event.schema.json");

/// 2026-11-28T09:00:00+09:00.
pub(super) const NINE_AM_SEOUL: Millis = 1_795_824_000_000;
/// One minute in ms.
pub(super) const MINUTE: Millis = 60_000;

/// A site/gateway identity with fixed versions.
pub(super) fn identity() -> Identity {
    Identity {
        prefix: "shopfloor".into(),
        site: "changwon-1".into(),
        gateway: "gw-01".into(),
        agent_version: "0.1.0".into(),
        config_hash: "5f2c0d9a".into(),
    }
}

/// The Asia/Seoul zone.
pub(super) fn seoul() -> TimeZone {
    TimeZone::get("Asia/Seoul").unwrap()
}

/// Productivity and defect-rate targets valid from the start of time.
pub(super) fn targets() -> Targets {
    Targets {
        productivity: Some(TargetSchedule::single(Target {
            baseline: 40.0,
            target: 50.0,
        })),
        defect_rate: Some(TargetSchedule::single(Target {
            baseline: 0.05,
            target: 0.0,
        })),
        ..Targets::default()
    }
}

/// KPIs of a window, with the targets valid at its start.
pub(super) fn kpis_for(window: &WindowRecord, ideal_ms: Option<u64>, targets: &Targets) -> Kpis {
    let ideal = ideal_ms.map(std::time::Duration::from_millis);
    compute(
        &window.sums,
        ideal,
        targets,
        window.start,
        UnknownTime::Loss,
    )
}

/// A 15-minute window of press-3 from 09:00 Seoul with `status` and `revision`.
pub(super) fn record(status: WindowStatus, revision: u32) -> WindowRecord {
    WindowRecord {
        machine: "press-3".into(),
        period: "15m".into(),
        start: NINE_AM_SEOUL,
        end: NINE_AM_SEOUL + 15 * MINUTE,
        shift: Some("early".into()),
        production_date: Some(jiff::civil::date(2026, 11, 28)),
        sums: WindowSums {
            produced: 212,
            defective: 4,
            by_reason: BTreeMap::from([("burr".into(), 3), ("crack".into(), 1)]),
            running_ms: 12 * MINUTE,
            planned_stop_ms: MINUTE,
            unplanned_stop_ms: 90_000,
            unknown_ms: 30_000,
            out_of_plan_ms: 0,
            out_of_plan_produced: 0,
            out_of_plan_defective: 0,
            flags: BTreeSet::from([Flag::Estimated, Flag::Gap]),
        },
        status,
        revision,
        dirty: false,
    }
}

/// The schema violations of `instance` (empty when it validates).
pub(super) fn validate(schema_text: &str, instance: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(schema_text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator
        .iter_errors(instance)
        .map(|error| format!("{} at {}", error, error.instance_path))
        .collect()
}

/// `body` as the store enqueues it: with `seq` and `db_epoch`.
pub(super) fn as_stored(mut body: Value, seq: i64) -> Value {
    body["seq"] = json!(seq);
    body["db_epoch"] = json!("3b1f9c7e2a6d4e10");
    body
}
