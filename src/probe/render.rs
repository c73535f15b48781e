//! Renders a probe report as the plain-text table `shopfloor-agent probe` prints: one block per address with
//! u16/i16 and the four orders of u32/i32/f32, refused addresses flagged, then counter candidates and the
//! configuration line for the best one. Pure formatting.

use std::fmt::Write as _;

use super::interpret::{rows_equal_to, Cell, Order, Row};
use super::ProbeReport;
use crate::logic::decode::{DataType, Table, Value};
use crate::poller::frame::exception_name;

/// The conventional 1-based reference number of an address (holding address 0 is 40001).
pub fn reference(table: Table, address: u16) -> u32 {
    let base = match table {
        Table::Coil => 1,
        Table::Discrete => 10_001,
        Table::Input => 30_001,
        Table::Holding => 40_001,
    };
    base + u32::from(address)
}

fn shown(row: Option<&Row>) -> String {
    match row {
        None => "-".into(),
        Some(row) if !row.plausible => "·".into(),
        Some(Row {
            value: Value::Float(float),
            ..
        }) if *float == 0.0 => "0".into(),
        Some(Row {
            value: Value::Float(float),
            ..
        }) => format!("{float:.6e}"),
        Some(row) => row.value.to_string(),
    }
}

/// The report as text; `find` marks rows equal to that value.
pub(super) fn render(report: &ProbeReport, find: Option<f64>) -> String {
    let mut out = String::new();
    header(&mut out, report);
    let registers = matches!(report.request.table, Table::Holding | Table::Input);
    if registers {
        let _ = writeln!(
            out,
            "{:>5} {:>6} {:>6} {:>6} {:>6} | {:<4} {:>11} {:>11} {:>14}",
            "addr", "ref", "hex", "u16", "i16", "pair", "u32", "i32", "f32"
        );
    } else {
        let _ = writeln!(out, "{:>5} {:>6} {:>5}", "addr", "ref", "bit");
    }
    for (offset, cell) in report.last.iter().enumerate() {
        address_lines(&mut out, report, offset, cell, registers);
    }
    if registers {
        let _ = writeln!(
            out,
            "· = implausible float, * = changed between the first and the last sample"
        );
    }
    if report.samples > 1 && registers {
        candidates(&mut out, report);
    }
    if let Some(target) = find {
        let found = rows_equal_to(&report.rows, target);
        let _ = writeln!(out, "\nInterpretations equal to {target}: {}", found.len());
        for row in found {
            let _ = writeln!(
                out,
                "  {:>5} {:<3} {}",
                row.address,
                row.data_type.name(),
                row.order.map_or("", Order::name)
            );
        }
    }
    out
}

/// The request line, and how many addresses were refused.
fn header(out: &mut String, report: &ProbeReport) {
    let request = &report.request;
    let table = request.table;
    let last_address = u32::from(request.start) + u32::from(request.count) - 1;
    let _ = writeln!(
        out,
        "probe {} unit {} {} {}..={} (ref {}..={}), {} sample(s){}, {} request(s); read-only (function codes 1-4)",
        request.address,
        request.unit_id,
        table.name(),
        request.start,
        last_address,
        reference(table, request.start),
        reference(table, request.start) + u32::from(request.count) - 1,
        report.samples,
        if report.samples > 1 {
            format!(" {:?} apart", report.interval)
        } else {
            String::new()
        },
        report.requests,
    );
    let refused = report
        .last
        .iter()
        .filter(|c| matches!(c, Cell::Refused(_)))
        .count();
    if refused > 0 {
        let _ = writeln!(out, "{refused} address(es) refused; they are marked below.");
    }
}

/// The line(s) of one address: a refusal, a bit, or a register with its 16- and 32-bit interpretations.
fn address_lines(
    out: &mut String,
    report: &ProbeReport,
    offset: usize,
    cell: &Cell,
    registers: bool,
) {
    let table = report.request.table;
    let address = report.request.start + offset as u16;
    let changed = report.first.get(offset) != Some(cell);
    let mark = if changed { "*" } else { " " };
    let word = match cell {
        Cell::Refused(code) => {
            let _ = writeln!(
                out,
                "{address:>5} {:>6}  refused: exception {code:#04x} ({})",
                reference(table, address),
                exception_name(*code)
            );
            return;
        }
        Cell::Value(word) => *word,
    };
    if !registers {
        let _ = writeln!(
            out,
            "{address:>5} {:>6} {:>5}{mark}",
            reference(table, address),
            word
        );
        return;
    }
    let at = |data_type: DataType, order: Option<Order>| {
        report
            .rows
            .iter()
            .find(|r| (r.address, r.data_type, r.order) == (address, data_type, order))
    };
    let mut first_line = format!(
        "{address:>5} {:>6} {:>6} {:>6} {:>6}{mark}",
        reference(table, address),
        format!("{word:#06x}"),
        shown(at(DataType::U16, None)),
        shown(at(DataType::I16, None)),
    );
    if at(DataType::U32, Some(Order::Abcd)).is_none() {
        let _ = writeln!(out, "{first_line}| (no readable next register)");
        return;
    }
    let u32s: Vec<String> = Order::ALL
        .iter()
        .map(|&order| shown(at(DataType::U32, Some(order))))
        .collect();
    if u32s.iter().all(|value| *value == u32s[0]) {
        // All four orders agree (a zero pair, say): one line instead of four identical ones.
        let _ = writeln!(
            out,
            "{first_line}| {:<4} {:>11} {:>11} {:>14}",
            "any",
            u32s[0],
            shown(at(DataType::I32, Some(Order::Abcd))),
            shown(at(DataType::F32, Some(Order::Abcd))),
        );
        return;
    }
    for order in Order::ALL {
        let _ = writeln!(
            out,
            "{first_line}| {:<4} {:>11} {:>11} {:>14}",
            order.name(),
            shown(at(DataType::U32, Some(order))),
            shown(at(DataType::I32, Some(order))),
            shown(at(DataType::F32, Some(order))),
        );
        first_line = " ".repeat(first_line.chars().count());
    }
}

/// The counter candidates (values that increased between the samples) and the configuration line of the best.
fn candidates(out: &mut String, report: &ProbeReport) {
    let table = report.request.table;
    if report.candidates.is_empty() {
        let _ = writeln!(
            out,
            "\nNo value increased between the samples: is the machine producing?"
        );
        return;
    }
    let _ = writeln!(out, "\nCounter candidates (smallest step first):");
    for candidate in report.candidates.iter().take(6) {
        let _ = writeln!(
            out,
            "  {:>5} {:<3} {:<4} {} -> {} (+{})",
            candidate.address,
            candidate.data_type.name(),
            candidate.order.map_or("", Order::name),
            candidate.first,
            candidate.last,
            candidate.step()
        );
    }
    let best = report.candidates[0];
    let keys = best
        .order
        .map(|order| format!(", {}", order.config_keys()))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Best guess: {{ table = \"{}\", address = {}, type = \"{}\"{keys} }}  (ref {})",
        table.name(),
        best.address,
        best.data_type.name(),
        reference(table, best.address)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{counter_candidates, interpretations, ProbeRequest};
    use std::time::Duration;

    #[test]
    fn given_a_report_with_a_refused_address_and_a_counter_when_rendered_then_both_show() {
        let first = vec![Cell::Value(0x0010), Cell::Value(0x0001), Cell::Refused(2)];
        let last = vec![Cell::Value(0x0013), Cell::Value(0x0001), Cell::Refused(2)];
        let report = ProbeReport {
            request: ProbeRequest {
                address: "127.0.0.1:502".into(),
                unit_id: 1,
                table: Table::Holding,
                start: 100,
                count: 3,
                timeout: Duration::from_secs(1),
            },
            samples: 2,
            interval: Duration::from_secs(1),
            rows: interpretations(100, &last),
            candidates: counter_candidates(100, &first, &last),
            first,
            last,
            requests: 6,
        };

        let text = render(&report, Some(65_555.0));

        assert!(
            text.contains("102  40103  refused: exception 0x02 (illegal data address)"),
            "{text}"
        );
        assert!(
            text.contains(r#"Best guess: { table = "holding", address = 100, type = "u32", word_order = "little" }"#),
            "{text}"
        );
        assert!(text.contains("Interpretations equal to 65555: 2"), "{text}");
        assert_eq!(reference(Table::Input, 0), 30_001);
    }
}
