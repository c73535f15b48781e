//! A value as the PLC's decoded register reads (a CSV cell) → the register words the PLC would return,
//! per the tag's type, word order and byte swap: the inverse of `logic::decode`, so that the replay runs
//! the real decode path. Pure; owns nothing about which tags a machine has.

use crate::config::TagAddress;
use crate::logic::decode::{DataType, WordOrder};

/// Encodes `text` as the words of `tag`, or says why it cannot be that tag's value.
pub fn encode(text: &str, tag: &TagAddress) -> Result<Vec<u16>, String> {
    let data_type = tag.encoding.data_type;
    if let (DataType::Bool, Some(bit)) = (data_type, tag.bit) {
        // A bit of a register: the other bits are not known, so they read as zero.
        return Ok(vec![u16::from(parse_bool(text)?) << bit]);
    }
    let bits: u64 = match data_type {
        DataType::Bool => u64::from(parse_bool(text)?),
        DataType::U16 => u64::from(parse_unsigned::<u16>(text, "u16")?),
        DataType::U32 => u64::from(parse_unsigned::<u32>(text, "u32")?),
        DataType::U64 => parse_unsigned::<u64>(text, "u64")?,
        // The `as` casts reinterpret a signed value as its two's-complement bits of the type's width.
        DataType::I16 => u64::from(parse_signed::<i16>(text, "i16")? as u16),
        DataType::I32 => u64::from(parse_signed::<i32>(text, "i32")? as u32),
        DataType::I64 => parse_signed::<i64>(text, "i64")? as u64,
        DataType::F32 => u64::from((parse_float(text)? as f32).to_bits()),
        DataType::F64 => parse_float(text)?.to_bits(),
    };
    Ok(disassemble(
        bits,
        data_type.register_count(),
        tag.encoding.word_order,
        tag.encoding.byte_swap,
    ))
}

/// Splits the low `count * 16` bits of `bits` into words, most significant first, then applies the word
/// order and the byte swap the way the device lays them out.
fn disassemble(bits: u64, count: u16, word_order: WordOrder, byte_swap: bool) -> Vec<u16> {
    let mut words: Vec<u16> = (0..count)
        .rev()
        .map(|index| (bits >> (16 * u32::from(index))) as u16)
        .collect();
    if word_order == WordOrder::Little {
        words.reverse();
    }
    if byte_swap {
        words.iter_mut().for_each(|word| *word = word.swap_bytes());
    }
    words
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "0" | "false" => Ok(false),
        "1" | "true" => Ok(true),
        _ => Err(format!("{text:?} is not a bool (0, 1, false or true)")),
    }
}

fn parse_unsigned<T: TryFrom<u64>>(text: &str, type_name: &str) -> Result<T, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a whole number ≥ 0"));
    }
    text.parse::<u64>()
        .ok()
        .and_then(|value| T::try_from(value).ok())
        .ok_or_else(|| format!("{text} is out of the range of {type_name}"))
}

fn parse_signed<T: TryFrom<i64>>(text: &str, type_name: &str) -> Result<T, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a whole number"));
    }
    text.parse::<i64>()
        .ok()
        .and_then(|value| T::try_from(value).ok())
        .ok_or_else(|| format!("{text} is out of the range of {type_name}"))
}

fn parse_float(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
        .ok_or_else(|| format!("{text:?} is not a finite number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::decode::{decode, decode_counter, Encoding, Table, Value};
    use proptest::prelude::*;

    fn tag(
        data_type: DataType,
        word_order: WordOrder,
        byte_swap: bool,
        bit: Option<u8>,
    ) -> TagAddress {
        TagAddress {
            unit_id: 1,
            table: Table::Holding,
            address: 0,
            encoding: Encoding {
                data_type,
                word_order,
                byte_swap,
            },
            bit,
        }
    }

    fn orders() -> impl Strategy<Value = (WordOrder, bool)> {
        (
            prop_oneof![Just(WordOrder::Big), Just(WordOrder::Little)],
            any::<bool>(),
        )
    }

    #[test]
    fn given_a_u32_in_cdab_when_encoded_then_the_low_word_comes_first() {
        let words = encode("65538", &tag(DataType::U32, WordOrder::Little, false, None)).unwrap();
        assert_eq!(words, vec![2, 1]);
        let words = encode("65538", &tag(DataType::U32, WordOrder::Big, true, None)).unwrap();
        assert_eq!(words, vec![0x0100, 0x0200]);
    }

    #[test]
    fn given_a_bit_of_a_register_when_encoded_then_only_that_bit_is_set_and_decodes_back() {
        let state = tag(DataType::Bool, WordOrder::Big, false, Some(3));
        let words = encode("1", &state).unwrap();
        assert_eq!(words, vec![8]);
        assert_eq!(state.decode(&words).unwrap(), Value::Bool(true));
        assert_eq!(
            state.decode(&encode("false", &state).unwrap()).unwrap(),
            Value::Bool(false)
        );
    }

    #[test]
    fn given_values_outside_the_type_when_encoded_then_each_is_refused_with_the_reason() {
        let u16_tag = tag(DataType::U16, WordOrder::Big, false, None);
        assert!(encode("65536", &u16_tag)
            .unwrap_err()
            .contains("out of the range of u16"));
        assert!(encode("-1", &u16_tag)
            .unwrap_err()
            .contains("not a whole number"));
        assert!(encode("12x", &u16_tag)
            .unwrap_err()
            .contains("not a whole number"));
        assert!(encode("1.5", &u16_tag)
            .unwrap_err()
            .contains("not a whole number"));
        let i16_tag = tag(DataType::I16, WordOrder::Big, false, None);
        assert!(encode("-32769", &i16_tag)
            .unwrap_err()
            .contains("out of the range of i16"));
        let f32_tag = tag(DataType::F32, WordOrder::Big, false, None);
        assert!(encode("NaN", &f32_tag)
            .unwrap_err()
            .contains("not a finite number"));
        let bool_tag = tag(DataType::Bool, WordOrder::Big, false, None);
        assert!(encode("2", &bool_tag).unwrap_err().contains("not a bool"));
    }

    proptest! {
        #[test]
        fn given_any_counter_value_and_layout_when_encoded_then_the_counter_decode_returns_it(
            value in any::<u64>(),
            (word_order, byte_swap) in orders(),
            data_type in prop_oneof![Just(DataType::U16), Just(DataType::U32), Just(DataType::U64)],
        ) {
            let counter = tag(data_type, word_order, byte_swap, None);
            let width = 16 * u32::from(data_type.register_count());
            let value = if width == 64 { value } else { value % (1u64 << width) };
            let words = encode(&value.to_string(), &counter).unwrap();
            prop_assert_eq!(words.len(), usize::from(data_type.register_count()));
            prop_assert_eq!(decode_counter(&words, &counter.encoding).unwrap(), value);
        }

        #[test]
        fn given_any_signed_or_float_value_when_encoded_then_decode_returns_it(
            int in any::<i64>(),
            float in any::<f64>().prop_filter("finite", |f| f.is_finite()),
            (word_order, byte_swap) in orders(),
        ) {
            for (data_type, expected) in [
                (DataType::I16, Value::Int(i64::from(int as i16))),
                (DataType::I32, Value::Int(i64::from(int as i32))),
                (DataType::I64, Value::Int(int)),
                (DataType::F64, Value::Float(float)),
            ] {
                let state = tag(data_type, word_order, byte_swap, None);
                let text = match expected {
                    Value::Int(i) => i.to_string(),
                    Value::Float(f) => format!("{f:?}"),
                    _ => unreachable!("only ints and floats are listed"),
                };
                let words = encode(&text, &state).unwrap();
                prop_assert_eq!(decode(&words, &state.encoding).unwrap(), expected);
            }
        }
    }
}
