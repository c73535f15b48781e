//! Unit tests and properties of the rollup accumulator, by topic; shared fixtures here.

mod accumulate;
mod calendar;
mod flags;
mod lifecycle;
mod properties;
mod state;

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::logic::calendar::Calendar;
use crate::logic::window::Period;
use crate::logic::Millis;

const SECOND: Millis = 1_000;
const MINUTE: Millis = 60_000;
const HOUR: Millis = 3_600_000;
/// 2026-11-28T00:00:00Z.
const T0: Millis = 1_795_824_000_000;

fn periods(names: &[&str]) -> Vec<Period> {
    names
        .iter()
        .map(|name| Period::parse(name).unwrap())
        .collect()
}

fn machine(names: &[&str]) -> MachineWindows {
    MachineWindows::new(
        "press-01".into(),
        periods(names),
        10_000,
        72 * HOUR,
        Calendar::all_planned(TimeZone::UTC),
    )
}

/// The flags of a window with nothing to report but the missing calendar.
fn no_calendar() -> BTreeSet<Flag> {
    BTreeSet::from([Flag::NoCalendar])
}

fn produced_by_window(records: &[WindowRecord]) -> Vec<(Millis, u64)> {
    records.iter().map(|r| (r.start, r.sums.produced)).collect()
}

/// Serves every load request of `windows` from `disk`, as the processor does from the store.
fn serve_loads(windows: &mut MachineWindows, disk: &BTreeMap<(String, Millis), WindowRecord>) {
    for request in windows.load_requests() {
        let records = disk
            .range((request.period.clone(), request.from)..(request.period.clone(), request.to))
            .map(|(_, record)| record.clone())
            .collect();
        windows.restore_range(&request.period, request.from, records);
    }
}

fn zone() -> impl Strategy<Value = TimeZone> {
    prop::sample::select(vec![
        "UTC",
        "Asia/Kolkata",
        "Europe/Berlin",
        "Australia/Lord_Howe",
    ])
    .prop_map(|name| TimeZone::get(name).unwrap())
}

/// Latest record per window, from everything `touched()` and `close_due()` reported.
fn absorb(latest: &mut BTreeMap<(String, Millis), WindowRecord>, records: Vec<WindowRecord>) {
    for record in records {
        latest.insert((record.period.clone(), record.start), record);
    }
}
