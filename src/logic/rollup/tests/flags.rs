//! Flags: serialized names, old persisted records, alphabetical order.

use super::*;

#[test]
fn every_flag_serializes_as_its_name_and_back() {
    for flag in Flag::ALL {
        let json = serde_json::to_value(flag).unwrap();
        assert_eq!(json, serde_json::Value::from(flag.as_str()));
        assert_eq!(serde_json::from_value::<Flag>(json).unwrap(), flag);
    }
}

#[test]
fn given_a_record_persisted_with_string_flags_when_loaded_then_its_flags_are_typed() {
    // A window record as earlier versions wrote it to the `windows` table: flags as a sorted
    // array of strings, every flag any version could raise.
    let old = r#"{"machine":"press-01","period":"1m","start":1795824000000,"end":1795824060000,
        "sums":{"produced":7,"defective":1,"by_reason":{"burr":1},"running_ms":50000,
        "planned_stop_ms":0,"unplanned_stop_ms":0,"unknown_ms":10000,
        "flags":["clock_step","estimated","gap","glitch_zero","late","rejected","reset",
                 "state_inferred","wrap"]},
        "status":"final","revision":0,"dirty":false}"#;
    let record: WindowRecord = serde_json::from_str(old).unwrap();
    let before_calendar: BTreeSet<Flag> = Flag::ALL
        .into_iter()
        .filter(|flag| *flag != Flag::NoCalendar)
        .collect();
    assert_eq!(record.sums.flags, before_calendar);
    // A record from before the calendar has no out-of-plan figures and no labels.
    assert_eq!(
        (
            record.sums.out_of_plan_ms,
            record.sums.out_of_plan_produced,
            record.sums.out_of_plan_defective
        ),
        (0, 0, 0)
    );
    assert_eq!((&record.shift, record.production_date), (&None, None));
    // Written back, the flags are the same strings in the same order.
    let again = serde_json::to_value(&record).unwrap();
    let before: serde_json::Value = serde_json::from_str(old).unwrap();
    assert_eq!(again["sums"]["flags"], before["sums"]["flags"]);
    assert!(again.get("shift").is_none() && again.get("production_date").is_none());
}

#[test]
fn given_a_shift_window_record_when_persisted_and_loaded_then_its_labels_survive() {
    let record = WindowRecord {
        machine: "press-01".into(),
        period: "shift".into(),
        start: T0,
        end: T0 + 12 * HOUR,
        shift: Some("night".into()),
        production_date: Some(jiff::civil::date(2026, 11, 27)),
        sums: WindowSums::default(),
        status: WindowStatus::Final,
        revision: 0,
        dirty: false,
    };
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["production_date"], "2026-11-27");
    assert_eq!(
        serde_json::from_value::<WindowRecord>(json).unwrap(),
        record
    );
}

#[test]
fn given_flags_in_a_set_when_serialized_then_they_are_in_alphabetical_order() {
    let set: BTreeSet<Flag> = [Flag::Wrap, Flag::ClockStep, Flag::Gap, Flag::Estimated]
        .into_iter()
        .collect();
    let json = serde_json::to_string(&set).unwrap();
    assert_eq!(json, r#"["clock_step","estimated","gap","wrap"]"#);
}
