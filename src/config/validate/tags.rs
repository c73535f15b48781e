//! Register tags: table, type, word order, counters, the state register and overlap checks.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::raw::{RawState, RawTag};
use super::super::*;
use super::ranges::COUNTER_T_MAX;
use super::Validator;
use crate::logic::counter::{DesignRate, DEFAULT_T_MAX_POLL_INTERVALS};

/// The register fields shared by counters and the state register.
pub(super) struct TagFields<'a> {
    table: &'a str,
    address: u32,
    data_type: &'a str,
    word_order: Option<&'a str>,
    byte_swap: bool,
    bit: Option<u8>,
}

/// The [`TagFields`] of a raw counter or state register (both carry the same register keys), with `bit`.
macro_rules! tag_fields {
    ($raw:expr, $bit:expr) => {
        TagFields {
            table: &$raw.table,
            address: $raw.address,
            data_type: &$raw.data_type,
            word_order: $raw.word_order.as_deref(),
            byte_swap: $raw.byte_swap,
            bit: $bit,
        }
    };
}

impl Validator<'_> {
    fn tag(&mut self, path: &str, fields: TagFields<'_>, unit_id: u8) -> Option<TagAddress> {
        let TagFields {
            table,
            address,
            data_type,
            word_order,
            byte_swap,
            bit,
        } = fields;
        let table = match table.parse::<Table>() {
            Ok(table) => Some(table),
            Err(error) => {
                self.problem(format!("{path}.table"), error.to_string());
                None
            }
        };
        let data_type = match data_type.parse::<DataType>() {
            Ok(data_type) => Some(data_type),
            Err(error) => {
                self.problem(format!("{path}.type"), error.to_string());
                None
            }
        };
        let word_order = match word_order.map(str::parse::<WordOrder>) {
            None => WordOrder::Big,
            Some(Ok(order)) => order,
            Some(Err(error)) => {
                self.problem(format!("{path}.word_order"), error.to_string());
                WordOrder::Big
            }
        };
        let (table, data_type) = (table?, data_type?);
        if matches!(table, Table::Coil | Table::Discrete) && data_type != DataType::Bool {
            self.problem(
                format!("{path}.type"),
                "coils and discrete inputs hold single bits: the type must be bool",
            );
        }
        let count = u32::from(data_type.register_count());
        if u64::from(address) + u64::from(count) > 65536 {
            self.problem(
                format!("{path}.address"),
                format!("{address} plus {count} register(s) runs past 65535 (addresses are 0-based: holding register 40001 is address 0)"),
            );
            return None;
        }
        if let Some(bit) = bit {
            if data_type != DataType::Bool || !matches!(table, Table::Input | Table::Holding) {
                self.problem(
                    format!("{path}.bit"),
                    "bit selects one bit of an input or holding register: use it with type = \"bool\"",
                );
            } else if bit > 15 {
                self.problem(format!("{path}.bit"), "must be between 0 and 15");
            }
        }
        Some(TagAddress {
            unit_id,
            table,
            address: address as u16,
            encoding: Encoding {
                data_type,
                word_order,
                byte_swap,
            },
            bit,
        })
    }

    /// A counter tag; `poll_interval` is its PLC's, from which `t_max` defaults.
    pub(super) fn counter(
        &mut self,
        path: &str,
        raw: &RawTag,
        unit_id: u8,
        poll_interval: Duration,
    ) -> Option<CounterTag> {
        let tag = self.tag(path, tag_fields!(raw, None), unit_id)?;
        let type_modulus: u128 = match tag.encoding.data_type {
            DataType::U16 => 1 << 16,
            DataType::U32 => 1 << 32,
            DataType::U64 => 1 << 64,
            _ => {
                self.problem(
                    format!("{path}.type"),
                    "a counter must be an unsigned integer type (u16, u32 or u64)",
                );
                return None;
            }
        };
        let modulus = match raw.modulus.as_deref() {
            None => type_modulus,
            Some(text) => match parse_modulus(text) {
                Some(m) if m >= 2 && m <= type_modulus => m,
                _ => {
                    self.problem(
                        format!("{path}.modulus"),
                        format!(
                            "{text:?} must be an integer or 2^N between 2 and the type's range"
                        ),
                    );
                    return None;
                }
            },
        };
        let on_decrease = match raw.on_decrease.as_deref().map(str::parse::<OnDecrease>) {
            None => OnDecrease::default(),
            Some(Ok(policy)) => policy,
            Some(Err(error)) => {
                self.problem(format!("{path}.on_decrease"), error.to_string());
                OnDecrease::default()
            }
        };
        if let Some(rate) = raw.design_rate {
            if !(rate.is_finite() && rate > 0.0) {
                self.problem(
                    format!("{path}.design_rate"),
                    "must be a positive number of units per second",
                );
            }
        }
        let t_max = match raw.t_max.as_deref() {
            Some(_) if raw.design_rate.is_none() => {
                self.problem(
                    format!("{path}.t_max"),
                    "bounds the plausibility guard, which needs design_rate: set design_rate or remove t_max",
                );
                None
            }
            Some(text) => self.duration_in(&format!("{path}.t_max"), text, COUNTER_T_MAX),
            None => None,
        };
        // Three poll intervals by default: see `DEFAULT_T_MAX_POLL_INTERVALS` for why.
        let t_max_ms = t_max.map(arith::millis).unwrap_or_else(|| {
            arith::millis(poll_interval).saturating_mul(DEFAULT_T_MAX_POLL_INTERVALS)
        });
        Some(CounterTag {
            tag,
            counter: CounterConfig {
                // A u64 counter's modulus 2^64 does not fit in u64; such counters never wrap in practice.
                modulus: u64::try_from(modulus).unwrap_or(u64::MAX),
                wrap: raw.wrap,
                on_decrease,
                design_rate: raw.design_rate.map(|units_per_s| DesignRate {
                    units_per_s,
                    t_max_ms,
                }),
            },
        })
    }

    pub(super) fn state(&mut self, path: &str, raw: &RawState, unit_id: u8) -> Option<StateTag> {
        let tag = self.tag(path, tag_fields!(raw, raw.bit), unit_id)?;
        if matches!(tag.encoding.data_type, DataType::F32 | DataType::F64) {
            self.problem(
                format!("{path}.type"),
                "a state register must be an integer or bool",
            );
        }
        let mut mapping = BTreeMap::new();
        for (list, state) in [
            (&raw.running, MachineState::Running),
            (&raw.planned_stop, MachineState::PlannedStop),
            (&raw.unplanned_stop, MachineState::UnplannedStop),
        ] {
            for value in list {
                if mapping.insert(*value, state).is_some() {
                    self.problem(
                        path,
                        format!("value {value} is mapped to more than one state"),
                    );
                }
            }
        }
        if raw.running.is_empty() {
            self.problem(format!("{path}.running"), "list at least one running value");
        }
        Some(StateTag { tag, mapping })
    }

    pub(super) fn overlaps(&mut self, machines: &[MachineConfig], plcs: &[PlcConfig]) {
        // Two tags that share a register on the same PLC and unit are almost always a typo.
        let mut seen: BTreeMap<(usize, u8, Table, u16), String> = BTreeMap::new();
        for (mi, machine) in machines.iter().enumerate() {
            let mut tags: Vec<(String, TagAddress)> =
                vec![("counters.produced".into(), machine.produced.tag)];
            if let Some(d) = &machine.defective {
                tags.push(("counters.defective".into(), d.tag));
            }
            for (name, c) in &machine.defect_reasons {
                tags.push((format!("defect_reasons.{name}"), c.tag));
            }
            if let Some(s) = &machine.state {
                tags.push(("state".into(), s.tag));
            }
            for (name, tag) in tags {
                let path = format!("machine[{mi}].{name}");
                let limit = plcs[machine.plc].max_registers_per_request;
                if matches!(tag.table, Table::Input | Table::Holding) && tag.count() > limit {
                    self.problem(
                        &path,
                        format!(
                            "needs {} registers in one request but plc {:?} allows {limit} (max_registers_per_request)",
                            tag.count(),
                            plcs[machine.plc].id
                        ),
                    );
                }
                for offset in 0..tag.count() {
                    let key = (machine.plc, tag.unit_id, tag.table, tag.address + offset);
                    if let Some(other) = seen.get(&key) {
                        self.problem(
                            &path,
                            format!(
                                "overlaps {other} (PLC {:?}, unit {}, {:?} address {})",
                                plcs[machine.plc].id,
                                tag.unit_id,
                                tag.table,
                                tag.address + offset
                            ),
                        );
                        break;
                    }
                    seen.insert(key, path.clone());
                }
            }
        }
    }
}
