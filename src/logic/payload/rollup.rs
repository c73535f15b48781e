//! The rollup payload of a closed window (schemas/rollup.schema.json), and the window fields it shares with
//! the live payload. Pure: no I/O, no clock reads.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

use super::{insert_versions, msg_id, rfc3339, Identity, ROLLUP_SCHEMA};
use crate::logic::kpi::{Kpis, TargetFigures};
use crate::logic::rollup::WindowRecord;

/// `{end, period, production_date, shift, start}` (the last three only when the window has them).
#[derive(Serialize)]
struct WindowObject<'a> {
    end: String,
    period: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    production_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shift: Option<&'a str>,
    start: String,
}

#[derive(Serialize)]
struct Counts<'a> {
    by_reason: &'a BTreeMap<String, u64>,
    defective: u64,
    good: u64,
    produced: u64,
}

#[derive(Serialize)]
struct OutOfPlan {
    good: u64,
    produced: u64,
}

#[derive(Serialize)]
struct TimesMs {
    out_of_plan: i64,
    planned: i64,
    planned_stop: i64,
    running: i64,
    unknown: i64,
    unplanned_stop: i64,
}

#[derive(Serialize)]
struct Goal {
    attainment: Option<f64>,
    attainment_ratio: Option<f64>,
    baseline: f64,
    improvement: Option<f64>,
    target: f64,
}

/// The window fields of a rollup or live payload (`{period, start, end}` plus the window's times, counts,
/// KPIs, targets, nulls and flags), serialised straight from the record and its KPIs.
///
/// Every object is written with its keys in sorted order, the order of a `serde_json::Value` built from the
/// same fields: a payload's bytes are the same whether it is serialised directly (live, every
/// `live_interval` for every machine, without building a tree) or through a `Value` (rollups).
pub(super) struct WindowFields<'a> {
    pub(super) record: &'a WindowRecord,
    pub(super) kpis: &'a Kpis,
    pub(super) tz: &'a TimeZone,
}

impl Serialize for WindowFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (record, kpis) = (self.record, self.kpis);
        let (sums, basis) = (&record.sums, &kpis.basis);
        // Window flags and KPI flags share one list, sorted by name (docs/kpi.md#flags).
        let mut flags: Vec<&str> = sums.flags.iter().map(|flag| flag.as_str()).collect();
        flags.extend(kpis.flags.iter().map(|flag| flag.as_str()));
        flags.sort_unstable();
        flags.dedup();
        let mut map = serializer.serialize_map(Some(10))?;
        let counts = Counts {
            by_reason: &sums.by_reason,
            defective: sums.defective,
            good: basis.good,
            produced: sums.produced,
        };
        map.serialize_entry("counts", &counts)?;
        map.serialize_entry("flags", &flags)?;
        // The KPI maps are keyed by `&'static str`, so they iterate in sorted order too.
        map.serialize_entry("kpi", &kpis.values)?;
        // A null reason serialises as its name.
        map.serialize_entry("nulls", &kpis.nulls)?;
        let out_of_plan = OutOfPlan {
            good: basis.out_of_plan_good,
            produced: basis.out_of_plan_produced,
        };
        map.serialize_entry("out_of_plan", &out_of_plan)?;
        map.serialize_entry("revision", &record.revision)?;
        map.serialize_entry("status", record.status.name())?;
        map.serialize_entry("targets", &Goals(&kpis.targets))?;
        let times = TimesMs {
            out_of_plan: sums.out_of_plan_ms,
            planned: basis.planned_ms,
            planned_stop: sums.planned_stop_ms,
            running: sums.running_ms,
            unknown: sums.unknown_ms,
            unplanned_stop: sums.unplanned_stop_ms,
        };
        map.serialize_entry("times_ms", &times)?;
        let window = WindowObject {
            end: rfc3339(record.end, self.tz),
            period: &record.period,
            production_date: record.production_date.map(|date| date.to_string()),
            shift: record.shift.as_deref(),
            start: rfc3339(record.start, self.tz),
        };
        map.serialize_entry("window", &window)?;
        map.end()
    }
}

/// The goal figures by KPI name, each with its keys in sorted order.
struct Goals<'a>(&'a BTreeMap<&'static str, TargetFigures>);

impl Serialize for Goals<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, figures)| {
            let goal = Goal {
                attainment: figures.attainment,
                attainment_ratio: figures.attainment_ratio,
                baseline: figures.baseline,
                improvement: figures.improvement,
                target: figures.target,
            };
            (name, goal)
        }))
    }
}

/// [`WindowFields`] as a JSON object, for payloads built as a `Value`.
pub(super) fn window_fields(
    record: &WindowRecord,
    kpis: &Kpis,
    tz: &TimeZone,
) -> Map<String, Value> {
    match serde_json::to_value(WindowFields { record, kpis, tz }) {
        Ok(Value::Object(fields)) => fields,
        _ => unreachable!("window fields are always a JSON object"),
    }
}

/// The rollup of a closed window (status "final" or "restated"), without `seq` and `db_epoch`.
pub fn rollup_payload(
    id: &Identity,
    line: &str,
    record: &WindowRecord,
    kpis: &Kpis,
    tz: &TimeZone,
) -> Value {
    let mut body = Map::new();
    body.insert("schema".into(), json!(ROLLUP_SCHEMA));
    body.insert(
        "msg_id".into(),
        json!(msg_id(
            &id.site,
            Some(&id.gateway),
            &record.machine,
            &record.period,
            record.start,
            record.revision,
        )),
    );
    body.insert("site".into(), json!(id.site));
    body.insert("line".into(), json!(line));
    body.insert("machine".into(), json!(record.machine));
    body.insert("gateway".into(), json!(id.gateway));
    body.extend(window_fields(record, kpis, tz));
    insert_versions(&mut body, id);
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::payload::test_support::*;

    #[test]
    fn given_final_window_when_rollup_built_then_fields_match_design_and_schema() {
        // Given a final 15m window in Seoul.
        let window = record(WindowStatus::Final, 0);
        let kpis = kpis_for(&window, Some(3_000), &targets());

        // When
        let body = rollup_payload(&identity(), "line-a", &window, &kpis, &seoul());

        // Then the builder leaves seq/db_epoch to the store...
        assert!(body.get("seq").is_none() && body.get("db_epoch").is_none());
        // ...and with them added the payload satisfies the schema.
        let stored = as_stored(body, 42);
        assert_eq!(validate(ROLLUP, &stored), Vec::<String>::new());
        assert_eq!(stored["schema"], "shopfloor.rollup/1");
        assert_eq!(
            stored["msg_id"],
            msg_id(
                "changwon-1",
                Some("gw-01"),
                "press-3",
                "15m",
                NINE_AM_SEOUL,
                0
            )
        );
        assert_eq!(stored["window"]["start"], "2026-11-28T09:00:00+09:00");
        assert_eq!(stored["window"]["end"], "2026-11-28T09:15:00+09:00");
        assert_eq!(stored["window"]["shift"], "early");
        assert_eq!(stored["window"]["production_date"], "2026-11-28");
        assert_eq!(stored["status"], "final");
        // PBT = running 12 min + unplanned stop 1.5 min + unknown 0.5 min; the planned stop is not in it.
        assert_eq!(stored["times_ms"]["planned"], 14 * MINUTE);
        assert_eq!(stored["times_ms"]["out_of_plan"], 0);
        assert_eq!(stored["counts"]["good"], 208);
        assert_eq!(stored["counts"]["by_reason"]["burr"], 3);
        assert_eq!(stored["out_of_plan"]["produced"], 0);
        assert_eq!(stored["kpi"]["availability"], 12.0 / 14.0);
        assert_eq!(stored["targets"]["defect_rate"]["baseline"], 0.05);
        assert_eq!(stored["nulls"], json!({}));
        assert_eq!(stored["flags"], json!(["estimated", "gap"]));
        assert_eq!(stored["agent_version"], "0.1.0");
    }

    #[test]
    fn window_fields_are_written_with_their_keys_sorted_as_a_json_value_writes_them() {
        let tz = seoul();
        let full = record(WindowStatus::Final, 0);
        let mut empty = record(WindowStatus::Restated, 2);
        empty.sums = WindowSums::default();
        empty.shift = None;
        empty.production_date = None;
        let cases = [
            (&full, kpis_for(&full, Some(3_000), &targets())),
            (&empty, kpis_for(&empty, None, &targets())),
            (&full, kpis_for(&full, None, &Targets::default())),
        ];
        for (record, kpis) in &cases {
            let fields = WindowFields {
                record,
                kpis,
                tz: &tz,
            };
            let direct = serde_json::to_vec(&fields).unwrap();
            let as_value = serde_json::to_value(&fields).unwrap();
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                serde_json::to_string(&as_value).unwrap()
            );
            assert!(!as_value["nulls"].as_object().unwrap().is_empty() || kpis.nulls.is_empty());
        }
    }

    #[test]
    fn given_empty_restated_window_when_rollup_built_then_null_kpis_and_reasons_validate() {
        // Given a restated window with no time and no counts, replayed by the publisher.
        let mut window = record(WindowStatus::Restated, 2);
        window.sums = WindowSums::default();
        let kpis = kpis_for(&window, None, &targets());

        // When
        let mut stored = as_stored(
            rollup_payload(&identity(), "line-a", &window, &kpis, &seoul()),
            7,
        );
        stored["replayed"] = json!(true);

        // Then
        assert_eq!(validate(ROLLUP, &stored), Vec::<String>::new());
        assert_eq!(stored["status"], "restated");
        assert_eq!(stored["revision"], 2);
        assert_eq!(stored["kpi"]["oee"], Value::Null);
        assert_eq!(stored["nulls"]["oee"], "no_planned_time");
        assert_eq!(stored["nulls"]["defect_rate.attainment"], "no_production");
        assert_eq!(stored["targets"]["productivity"]["attainment"], Value::Null);
    }

    #[test]
    fn given_more_defective_than_produced_when_rollup_built_then_nulls_and_merged_flags_validate() {
        // Given a window whose defect counter ran ahead of its produced counter.
        let mut window = record(WindowStatus::Final, 0);
        window.sums.produced = 3;
        window.sums.defective = 5;
        window.sums.by_reason = BTreeMap::new();
        let kpis = kpis_for(&window, Some(3_000), &targets());

        // When
        let stored = as_stored(
            rollup_payload(&identity(), "line-a", &window, &kpis, &seoul()),
            9,
        );

        // Then quality and the defect figures are null with their reason, and the KPI flag sits among the
        // window flags in name order.
        assert_eq!(validate(ROLLUP, &stored), Vec::<String>::new());
        for name in ["quality", "oee", "defect_rate", "defect_ppm"] {
            assert_eq!(stored["kpi"][name], Value::Null, "{name}");
            assert_eq!(stored["nulls"][name], "inconsistent_counts", "{name}");
        }
        assert_eq!(
            stored["flags"],
            json!(["estimated", "gap", "inconsistent_counts"])
        );
    }

    #[test]
    fn given_a_machine_without_targets_when_rollup_built_then_goal_figures_are_null_no_target() {
        let window = record(WindowStatus::Final, 0);
        let kpis = kpis_for(&window, Some(3_000), &Targets::default());

        let stored = as_stored(
            rollup_payload(&identity(), "line-a", &window, &kpis, &seoul()),
            3,
        );

        assert_eq!(validate(ROLLUP, &stored), Vec::<String>::new());
        assert_eq!(stored["targets"], json!({}));
        assert_eq!(stored["nulls"]["productivity.attainment"], "no_target");
        assert_eq!(stored["nulls"]["defect_rate.improvement"], "no_target");
    }

    #[test]
    fn given_rollup_missing_a_required_field_when_validated_then_schema_rejects_it() {
        let window = record(WindowStatus::Final, 0);
        let kpis = kpis_for(&window, Some(3_000), &targets());
        let body = rollup_payload(&identity(), "line-a", &window, &kpis, &seoul());

        // Without the store's seq/db_epoch the payload is not publishable.
        assert!(!validate(ROLLUP, &body).is_empty());

        let mut stored = as_stored(body, 1);
        stored["kpi"].as_object_mut().unwrap().remove("oee");
        assert!(!validate(ROLLUP, &stored).is_empty());
    }

    #[test]
    fn given_rollup_with_wrong_status_or_extra_field_when_validated_then_schema_rejects_it() {
        let window = record(WindowStatus::Final, 0);
        let kpis = kpis_for(&window, Some(3_000), &targets());
        let stored = as_stored(
            rollup_payload(&identity(), "line-a", &window, &kpis, &seoul()),
            1,
        );

        let mut open = stored.clone();
        open["status"] = json!("open");
        let mut final_revised = stored.clone();
        final_revised["revision"] = json!(1);
        let mut extra = stored.clone();
        extra["surprise"] = json!(1);
        let mut unknown_reason = stored;
        unknown_reason["nulls"]["oee"] = json!("because");

        for bad in [open, final_revised, extra, unknown_reason] {
            assert!(!validate(ROLLUP, &bad).is_empty(), "{bad}");
        }
    }
}
