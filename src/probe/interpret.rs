//! Pure half of the probe: every plausible reading of a register range (u16/i16 per register; u32/i32/f32 in
//! the four byte orders per register pair) and, from two samples, the counter candidates ranked by how
//! believable their step is. No I/O; the decoding itself is `logic::decode`.

use crate::logic::decode::{decode, DataType, Encoding, Value, WordOrder};

/// What the device answered for one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// The register (or bit, as 0/1).
    Value(u16),
    /// The device refused the address with this exception code (02 illegal data address, usually).
    Refused(u8),
}

impl Cell {
    /// The value, when the address was readable.
    pub fn value(self) -> Option<u16> {
        match self {
            Cell::Value(value) => Some(value),
            Cell::Refused(_) => None,
        }
    }
}

/// The four layouts of a two-register value, named by where bytes A (most significant) … D land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Order {
    /// Big-endian words, big-endian bytes: `word_order = "big"`.
    Abcd,
    /// Word swap: `word_order = "little"`.
    Cdab,
    /// Byte swap: `word_order = "big", byte_swap = true`.
    Badc,
    /// Both swapped: `word_order = "little", byte_swap = true`.
    Dcba,
}

impl Order {
    /// All four, in display order.
    pub const ALL: [Order; 4] = [Order::Abcd, Order::Cdab, Order::Badc, Order::Dcba];

    /// The letters, e.g. "CDAB".
    pub fn name(self) -> &'static str {
        match self {
            Order::Abcd => "ABCD",
            Order::Cdab => "CDAB",
            Order::Badc => "BADC",
            Order::Dcba => "DCBA",
        }
    }

    /// The configuration keys selecting this order.
    pub fn config_keys(self) -> String {
        let encoding = self.encoding(DataType::U32);
        let word_order = format!("word_order = \"{}\"", encoding.word_order.name());
        if encoding.byte_swap {
            format!("{word_order}, byte_swap = true")
        } else {
            word_order
        }
    }

    fn encoding(self, data_type: DataType) -> Encoding {
        let (word_order, byte_swap) = match self {
            Order::Abcd => (WordOrder::Big, false),
            Order::Cdab => (WordOrder::Little, false),
            Order::Badc => (WordOrder::Big, true),
            Order::Dcba => (WordOrder::Little, true),
        };
        Encoding {
            data_type,
            word_order,
            byte_swap,
        }
    }
}

/// One interpretation of the value starting at `address`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// First address.
    pub address: u16,
    /// Data type (u16, i16, u32, i32 or f32).
    pub data_type: DataType,
    /// Byte order, for two-register types.
    pub order: Option<Order>,
    /// The decoded value.
    pub value: Value,
    /// False for floats that are NaN, infinite or of an absurd magnitude (almost surely the wrong type).
    pub plausible: bool,
}

/// Every interpretation of the readable registers starting at `start`, address by address.
pub fn interpretations(start: u16, cells: &[Cell]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (offset, cell) in cells.iter().enumerate() {
        let Some(word) = cell.value() else {
            continue;
        };
        let address = start.saturating_add(offset as u16);
        for data_type in [DataType::U16, DataType::I16] {
            rows.push(row(address, &[word], data_type, None));
        }
        let Some(next) = cells.get(offset + 1).and_then(|c| c.value()) else {
            continue;
        };
        for order in Order::ALL {
            for data_type in [DataType::U32, DataType::I32, DataType::F32] {
                rows.push(row(address, &[word, next], data_type, Some(order)));
            }
        }
    }
    rows
}

fn row(address: u16, words: &[u16], data_type: DataType, order: Option<Order>) -> Row {
    let encoding = order.unwrap_or(Order::Abcd).encoding(data_type);
    let value = decode(words, &encoding).expect("the word count matches the data type");
    let plausible = match value {
        Value::Float(float) => {
            float == 0.0 || (float.is_finite() && (1e-6..=1e9).contains(&float.abs()))
        }
        _ => true,
    };
    Row {
        address,
        data_type,
        order,
        value,
        plausible,
    }
}

/// An unsigned interpretation that grew between two samples, as a production counter does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// First address.
    pub address: u16,
    /// u16 or u32.
    pub data_type: DataType,
    /// Byte order, for u32.
    pub order: Option<Order>,
    /// Value in the first sample.
    pub first: u64,
    /// Value in the last sample.
    pub last: u64,
}

impl Candidate {
    /// How much it grew.
    pub fn step(&self) -> u64 {
        self.last - self.first
    }

    /// Ranking: the smallest step first (a wrong byte order multiplies the step by 256 or 65 536); among equal
    /// steps a u32 whose value needs both words, then a u16, then a u32 whose second word is zero (ambiguous).
    fn rank(&self) -> (u64, u8, u16, Option<Order>) {
        let width = match self.data_type {
            DataType::U32 if self.last > u64::from(u16::MAX) => 0,
            DataType::U16 => 1,
            _ => 2,
        };
        (self.step(), width, self.address, self.order)
    }
}

/// Unsigned interpretations (u16, u32 in four orders) that increased from `before` to `after`, best first.
pub fn counter_candidates(start: u16, before: &[Cell], after: &[Cell]) -> Vec<Candidate> {
    let unsigned = |rows: Vec<Row>| -> Vec<(u16, DataType, Option<Order>, u64)> {
        rows.into_iter()
            .filter_map(|row| match (row.data_type, row.value) {
                (DataType::U16 | DataType::U32, Value::UInt(value)) => {
                    Some((row.address, row.data_type, row.order, value))
                }
                _ => None,
            })
            .collect()
    };
    let before = unsigned(interpretations(start, before));
    let after = unsigned(interpretations(start, after));
    let mut candidates: Vec<Candidate> = after
        .iter()
        .filter_map(|&(address, data_type, order, last)| {
            let &(_, _, _, first) = before
                .iter()
                .find(|b| (b.0, b.1, b.2) == (address, data_type, order))?;
            (last > first).then_some(Candidate {
                address,
                data_type,
                order,
                first,
                last,
            })
        })
        .collect();
    candidates.sort_by_key(Candidate::rank);
    candidates
}

/// The rows whose value equals `target` (integers exactly, floats to 1e-6 relative).
pub fn rows_equal_to(rows: &[Row], target: f64) -> Vec<Row> {
    rows.iter()
        .filter(|row| match row.value {
            Value::Float(float) => {
                row.plausible && (float - target).abs() <= target.abs().max(1.0) * 1e-6
            }
            other => other.as_f64() == target,
        })
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(words: &[u16]) -> Vec<Cell> {
        words.iter().map(|&w| Cell::Value(w)).collect()
    }

    fn find(rows: &[Row], address: u16, data_type: DataType, order: Option<Order>) -> Value {
        rows.iter()
            .find(|r| (r.address, r.data_type, r.order) == (address, data_type, order))
            .map(|r| r.value)
            .expect("row exists")
    }

    #[test]
    fn given_known_words_when_interpreted_then_every_type_and_order_is_listed() {
        // 0x42F6_E979 is 123.456 as f32; 0xFFFE as i16 is -2.
        let rows = interpretations(100, &cells(&[0x42F6, 0xE979, 0xFFFE]));

        // Three registers: 2 rows each, plus 12 rows for each of the two pairs.
        assert_eq!(rows.len(), 3 * 2 + 2 * 12);
        assert_eq!(find(&rows, 102, DataType::I16, None), Value::Int(-2));
        assert_eq!(
            find(&rows, 100, DataType::U32, Some(Order::Abcd)),
            Value::UInt(0x42F6_E979)
        );
        assert_eq!(
            find(&rows, 100, DataType::U32, Some(Order::Cdab)),
            Value::UInt(0xE979_42F6)
        );
        assert_eq!(
            find(&rows, 100, DataType::U32, Some(Order::Badc)),
            Value::UInt(0xF642_79E9)
        );
        assert_eq!(
            find(&rows, 100, DataType::U32, Some(Order::Dcba)),
            Value::UInt(0x79E9_F642)
        );
        assert_eq!(
            find(&rows, 100, DataType::F32, Some(Order::Abcd)),
            Value::Float(f64::from(123.456f32))
        );
        // The other orders read -1.9e25, -9.9e32 and 1.5e35: not floats anyone configures.
        let plausible_floats: Vec<Option<Order>> = rows
            .iter()
            .filter(|r| r.address == 100 && r.data_type == DataType::F32 && r.plausible)
            .map(|r| r.order)
            .collect();
        assert_eq!(plausible_floats, vec![Some(Order::Abcd)]);
    }

    #[test]
    fn given_a_refused_address_when_interpreted_then_no_pair_spans_it() {
        let rows = interpretations(10, &[Cell::Value(1), Cell::Refused(2), Cell::Value(3)]);
        assert!(rows.iter().all(|r| r.address != 11));
        assert!(rows.iter().all(|r| r.order.is_none()), "no readable pair");
        assert_eq!(rows.len(), 4);
    }

    #[test]
    fn given_a_cdab_counter_that_grew_when_ranked_then_u32_cdab_at_its_address_comes_first() {
        // A CDAB u32 counter at 100 going 0x0001_FFF0 → 0x0001_FFF9, a constant at 102.
        let before = cells(&[0xFFF0, 0x0001, 7]);
        let after = cells(&[0xFFF9, 0x0001, 7]);

        let candidates = counter_candidates(100, &before, &after);

        let best = candidates[0];
        assert_eq!(
            (best.address, best.data_type, best.order),
            (100, DataType::U32, Some(Order::Cdab))
        );
        assert_eq!(
            (best.first, best.last, best.step()),
            (0x0001_FFF0, 0x0001_FFF9, 9)
        );
        // The ABCD reading of the same pair steps by 9 × 65 536 and ranks far behind.
        let abcd = candidates
            .iter()
            .find(|c| c.address == 100 && c.order == Some(Order::Abcd))
            .expect("ABCD also increased");
        assert_eq!(abcd.step(), 9 << 16);
    }

    #[test]
    fn given_target_value_when_searching_then_matching_rows_are_found() {
        let rows = interpretations(0, &cells(&[0x0001, 0x86A0]));
        let found = rows_equal_to(&rows, 100_000.0);
        assert_eq!(found.len(), 2, "u32 and i32 ABCD: {found:?}");
        assert!(found.iter().all(|r| r.order == Some(Order::Abcd)));
    }
}
