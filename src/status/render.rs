//! The text form of a [`StatusReport`]: a few aligned lines and one table of PLCs and units.

use std::fmt::Write as _;

use super::{Moment, StatusReport};

/// The report as a plant engineer reads it in a terminal.
pub(super) fn text(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "database      {}  (epoch {})",
        report.database,
        report.db_epoch.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "now           {}", report.now);
    let _ = writeln!(
        out,
        "last restart  {}",
        moment(report.last_restart.as_ref())
    );
    let _ = writeln!(
        out,
        "backlog       {} rows, {} bytes, oldest unsent {}",
        report.backlog.rows,
        report.backlog.bytes,
        moment(report.backlog.oldest_unsent.as_ref())
    );
    let _ = writeln!(
        out,
        "last publish  {}",
        moment(report.last_publish.as_ref())
    );
    let by_class: Vec<String> = report
        .drops
        .rows_by_class
        .iter()
        .filter(|(_, rows)| **rows > 0)
        .map(|(class, rows)| format!("{class} {rows}"))
        .collect();
    let _ = writeln!(
        out,
        "drops         {} rows{}, {} audit rows pruned, {} refused",
        report.drops.rows_total,
        if by_class.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_class.join(", "))
        },
        report.drops.deltas_pruned,
        report.drops.refused
    );
    let _ = writeln!(
        out,
        "quarantined   {}",
        report.quarantined_pending.map_or_else(
            || "-".to_owned(),
            |n| format!("{n} pending (`quarantine list`)")
        )
    );
    devices(report, &mut out);
    out
}

fn devices(report: &StatusReport, out: &mut String) {
    let Some(devices) = &report.devices else {
        let _ = writeln!(
            out,
            "devices       no health snapshot yet (written at each health tick)"
        );
        return;
    };
    let _ = writeln!(
        out,
        "devices       {} of {} PLCs up, as of {}",
        devices.plcs_up,
        devices.plcs.len(),
        moment(Some(&devices.snapshot))
    );
    let _ = writeln!(
        out,
        "  {:<20} {:<5} {:<6} {:<32} last error",
        "plc", "unit", "state", "since"
    );
    for plc in &devices.plcs {
        let since = &plc.since.at;
        let _ = writeln!(
            out,
            "  {:<20} {:<5} {:<6} {:<32} {}",
            plc.id,
            "-",
            state(plc.up),
            since,
            plc.last_error.as_deref().unwrap_or("")
        );
        for unit in &plc.units {
            let since = &unit.since.at;
            let _ = writeln!(
                out,
                "  {:<20} {:<5} {:<6} {:<32} {}",
                "",
                unit.unit_id,
                state(unit.up),
                since,
                unit.last_error.as_deref().unwrap_or("")
            );
        }
    }
}

fn state(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

fn moment(moment: Option<&Moment>) -> String {
    match moment {
        Some(moment) => format!("{} ({})", moment.at, age(moment.age_s)),
        None => "never".to_owned(),
    }
}

fn age(seconds: f64) -> String {
    let whole = seconds.round() as i64;
    match whole {
        i64::MIN..=-1 => format!("{}s in the future", -whole),
        0..=119 => format!("{whole}s ago"),
        120..=7_199 => format!("{}m ago", whole / 60),
        7_200..=172_799 => format!("{}h ago", whole / 3_600),
        _ => format!("{}d ago", whole / 86_400),
    }
}
