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
    assert_eq!(record.sums.flags, Flag::ALL.into_iter().collect());
    // Written back, the flags are the same strings in the same order.
    let again = serde_json::to_value(&record).unwrap();
    let before: serde_json::Value = serde_json::from_str(old).unwrap();
    assert_eq!(again["sums"]["flags"], before["sums"]["flags"]);
}

#[test]
fn given_flags_in_a_set_when_serialized_then_they_are_in_alphabetical_order() {
    let set: BTreeSet<Flag> = [Flag::Wrap, Flag::ClockStep, Flag::Gap, Flag::Estimated]
        .into_iter()
        .collect();
    let json = serde_json::to_string(&set).unwrap();
    assert_eq!(json, r#"["clock_step","estimated","gap","wrap"]"#);
}
