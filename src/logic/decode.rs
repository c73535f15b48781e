//! Register words → typed values: data types, word order, byte swap.
//! Owns nothing about which registers to read; that is the poller's request plan.

use serde::{Deserialize, Serialize};

/// The Modbus table a tag lives in; addresses are 0-based protocol addresses within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    /// Read coils, function code 1.
    Coil,
    /// Read discrete inputs, function code 2.
    Discrete,
    /// Read input registers, function code 4.
    Input,
    /// Read holding registers, function code 3.
    Holding,
}

impl Table {
    /// Every table, in function-code order of the names (`coil`, `discrete`, `input`, `holding`).
    pub const ALL: [Table; 4] = [Table::Coil, Table::Discrete, Table::Input, Table::Holding];

    /// The name used in configuration files and payloads (`coil`, `discrete`, `input`, `holding`).
    pub fn name(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::Discrete => "discrete",
            Table::Input => "input",
            Table::Holding => "holding",
        }
    }

    /// The long form of the name that the command line also accepts (`holding_registers`, ...).
    fn long_name(self) -> &'static str {
        match self {
            Table::Coil => "coils",
            Table::Discrete => "discrete_inputs",
            Table::Input => "input_registers",
            Table::Holding => "holding_registers",
        }
    }
}

/// A name that is not in a closed vocabulary; the message lists the names that are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not one of {}", expected.join(", "))]
pub struct UnknownName {
    /// The text given.
    pub given: String,
    /// The accepted names.
    pub expected: Vec<&'static str>,
}

impl std::str::FromStr for Table {
    type Err = UnknownName;

    /// Parses a table name: `coil`, `discrete`, `input` or `holding`, or its long form with or without
    /// the final `s` (`coils`, `discrete_input`, `input_registers`, `holding_register`).
    fn from_str(text: &str) -> Result<Table, UnknownName> {
        Table::ALL
            .into_iter()
            .find(|table| {
                let long = table.long_name();
                text == table.name() || text == long || Some(text) == long.strip_suffix('s')
            })
            .ok_or_else(|| UnknownName {
                given: text.to_owned(),
                expected: Table::ALL.iter().map(|table| table.name()).collect(),
            })
    }
}

/// The data type a tag is decoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// One bit (coil or discrete input) or a register that is zero/non-zero.
    Bool,
    /// Unsigned 16-bit, one register.
    U16,
    /// Signed 16-bit, one register.
    I16,
    /// Unsigned 32-bit, two registers.
    U32,
    /// Signed 32-bit, two registers.
    I32,
    /// Unsigned 64-bit, four registers.
    U64,
    /// Signed 64-bit, four registers.
    I64,
    /// IEEE 754 single precision, two registers.
    F32,
    /// IEEE 754 double precision, four registers.
    F64,
}

/// Order of the 16-bit words of a multi-register value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WordOrder {
    /// Most significant word first (ABCD).
    #[default]
    Big,
    /// Least significant word first (CDAB).
    Little,
}

impl WordOrder {
    /// Both orders, most significant word first first.
    pub const ALL: [WordOrder; 2] = [WordOrder::Big, WordOrder::Little];

    /// The name used in configuration files (`big`, `little`).
    pub fn name(self) -> &'static str {
        match self {
            WordOrder::Big => "big",
            WordOrder::Little => "little",
        }
    }
}

impl std::str::FromStr for WordOrder {
    type Err = UnknownName;

    /// Parses a word order by its [`WordOrder::name`].
    fn from_str(text: &str) -> Result<WordOrder, UnknownName> {
        WordOrder::ALL
            .into_iter()
            .find(|order| order.name() == text)
            .ok_or_else(|| UnknownName {
                given: text.to_owned(),
                expected: WordOrder::ALL.iter().map(|order| order.name()).collect(),
            })
    }
}

/// Everything needed to turn register words into a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encoding {
    /// The data type.
    pub data_type: DataType,
    /// Word order of multi-register values.
    pub word_order: WordOrder,
    /// Swap the two bytes inside every word (BADC / DCBA).
    pub byte_swap: bool,
}

/// Why register words could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The number of words does not match the data type.
    #[error("{data_type:?} needs {expected} register(s), got {got}")]
    WrongLength {
        /// The data type asked for.
        data_type: DataType,
        /// Registers the type needs.
        expected: u16,
        /// Registers supplied.
        got: usize,
    },
    /// Counters are read as unsigned integers only (see `logic::counter`).
    #[error("{data_type:?} cannot be a counter: counters must be u16, u32 or u64")]
    NotACounter {
        /// The data type asked for.
        data_type: DataType,
    },
}

impl DataType {
    /// Every data type, in the order configuration errors list them.
    pub const ALL: [DataType; 9] = [
        DataType::Bool,
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::U64,
        DataType::I64,
        DataType::F32,
        DataType::F64,
    ];

    /// The name used in configuration files (`bool`, `u16`, ..., `f64`).
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
        }
    }

    /// Number of 16-bit registers (or bits, for coils and discrete inputs) the type occupies.
    pub fn register_count(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }

    /// Whether the type is an unsigned integer, i.e. may carry a cumulative counter.
    pub fn is_unsigned_integer(self) -> bool {
        matches!(self, DataType::U16 | DataType::U32 | DataType::U64)
    }

    /// The counter modulus implied by the type's range: 2^16 for u16, 2^32 for u32.
    ///
    /// `None` for u64, whose range 2^64 does not fit a `u64` (a u64 counter never wraps in
    /// practice; the counter logic reads `modulus == 0` as 2^64), and for every type that cannot
    /// be a counter.
    pub fn default_modulus(self) -> Option<u64> {
        match self {
            DataType::U16 => Some(1 << 16),
            DataType::U32 => Some(1 << 32),
            _ => None,
        }
    }
}

impl std::str::FromStr for DataType {
    type Err = UnknownName;

    /// Parses a data type by its [`DataType::name`].
    fn from_str(text: &str) -> Result<DataType, UnknownName> {
        DataType::ALL
            .into_iter()
            .find(|data_type| data_type.name() == text)
            .ok_or_else(|| UnknownName {
                given: text.to_owned(),
                expected: DataType::ALL.iter().map(|t| t.name()).collect(),
            })
    }
}

/// A decoded register value, before scale and offset.
///
/// `Float` carries what the device sent, which may be NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// From a bit, or a register that is zero / non-zero.
    Bool(bool),
    /// From a signed integer type.
    Int(i64),
    /// From an unsigned integer type.
    UInt(u64),
    /// From f32 (widened exactly) or f64.
    Float(f64),
}

impl Value {
    /// The value as a float: booleans are 0 and 1, integers are converted (u64/i64 beyond 2^53 round).
    pub fn as_f64(&self) -> f64 {
        match *self {
            Value::Bool(bit) => f64::from(u8::from(bit)),
            Value::Int(int) => int as f64,
            Value::UInt(uint) => uint as f64,
            Value::Float(float) => float,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(bit) => write!(f, "{bit}"),
            Value::Int(int) => write!(f, "{int}"),
            Value::UInt(uint) => write!(f, "{uint}"),
            Value::Float(float) => write!(f, "{float}"),
        }
    }
}

/// Puts the words of a value into most-significant-first order with the bytes of each word
/// most-significant-first, and returns them as one big-endian integer of `words.len() * 16` bits.
///
/// `Little` word order reverses all words (CDAB for 32 bits, GHEFCDAB for 64 bits); `byte_swap`
/// swaps the two bytes inside each word (BADC, DCBA).
fn assemble(words: &[u16], enc: &Encoding) -> u64 {
    let ordered = words.iter().copied().map(|word| {
        if enc.byte_swap {
            word.swap_bytes()
        } else {
            word
        }
    });
    match enc.word_order {
        WordOrder::Big => ordered.fold(0u64, |acc, word| (acc << 16) | u64::from(word)),
        WordOrder::Little => ordered
            .rev()
            .fold(0u64, |acc, word| (acc << 16) | u64::from(word)),
    }
}

fn check_length(words: &[u16], data_type: DataType) -> Result<(), DecodeError> {
    let expected = data_type.register_count();
    if words.len() == usize::from(expected) {
        Ok(())
    } else {
        Err(DecodeError::WrongLength {
            data_type,
            expected,
            got: words.len(),
        })
    }
}

/// Decodes the words of one tag (exactly `register_count` of them) into a typed value.
///
/// For `Bool`, any non-zero word is `true` (coils and discrete inputs deliver 0/1 per word).
pub fn decode(words: &[u16], enc: &Encoding) -> Result<Value, DecodeError> {
    check_length(words, enc.data_type)?;
    let bits = assemble(words, enc);
    // The `as` casts below reinterpret or truncate on purpose: `bits` holds exactly
    // `register_count * 16` significant bits, so narrowing keeps every one of them.
    let value = match enc.data_type {
        DataType::Bool => Value::Bool(bits != 0),
        DataType::U16 | DataType::U32 | DataType::U64 => Value::UInt(bits),
        DataType::I16 => Value::Int(i64::from(bits as u16 as i16)),
        DataType::I32 => Value::Int(i64::from(bits as u32 as i32)),
        DataType::I64 => Value::Int(bits as i64),
        DataType::F32 => Value::Float(f64::from(f32::from_bits(bits as u32))),
        DataType::F64 => Value::Float(f64::from_bits(bits)),
    };
    Ok(value)
}

/// Decodes a cumulative counter: the registers read as an unsigned integer (see `logic::counter`).
///
/// Signed, float and bool types are refused with [`DecodeError::NotACounter`].
pub fn decode_counter(words: &[u16], enc: &Encoding) -> Result<u64, DecodeError> {
    if !enc.data_type.is_unsigned_integer() {
        return Err(DecodeError::NotACounter {
            data_type: enc.data_type,
        });
    }
    check_length(words, enc.data_type)?;
    Ok(assemble(words, enc))
}

/// Applies `value * scale + offset` to a non-counter value (counters are never scaled).
pub fn scale(value: &Value, scale: f64, offset: f64) -> f64 {
    value.as_f64() * scale + offset
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(data_type: DataType, word_order: WordOrder, byte_swap: bool) -> Encoding {
        Encoding {
            data_type,
            word_order,
            byte_swap,
        }
    }

    /// The four 32-bit layouts of one value whose big-endian bytes are A B C D.
    fn orders_32(abcd: [u8; 4]) -> Vec<(&'static str, Vec<u16>, WordOrder, bool)> {
        let [a, b, c, d] = abcd;
        let word = |hi: u8, lo: u8| u16::from_be_bytes([hi, lo]);
        vec![
            ("ABCD", vec![word(a, b), word(c, d)], WordOrder::Big, false),
            (
                "CDAB",
                vec![word(c, d), word(a, b)],
                WordOrder::Little,
                false,
            ),
            ("BADC", vec![word(b, a), word(d, c)], WordOrder::Big, true),
            (
                "DCBA",
                vec![word(d, c), word(b, a)],
                WordOrder::Little,
                true,
            ),
        ]
    }

    #[test]
    fn given_f32_123_456_in_each_byte_order_when_decoded_then_every_order_yields_the_value() {
        // 123.456f32 is 0x42F6E979.
        for (name, words, order, swap) in orders_32(123.456f32.to_be_bytes()) {
            let value = decode(&words, &enc(DataType::F32, order, swap)).unwrap();
            assert_eq!(value, Value::Float(f64::from(123.456f32)), "{name}");
        }
        assert_eq!(
            decode(
                &[0x42F6, 0xE979],
                &enc(DataType::F32, WordOrder::Big, false)
            )
            .unwrap(),
            Value::Float(f64::from(123.456f32))
        );
    }

    #[test]
    fn given_i32_minus_two_in_each_byte_order_when_decoded_then_sign_is_kept() {
        for (name, words, order, swap) in orders_32((-2i32).to_be_bytes()) {
            let value = decode(&words, &enc(DataType::I32, order, swap)).unwrap();
            assert_eq!(value, Value::Int(-2), "{name}");
        }
        assert_eq!(
            decode(
                &[0xFFFF, 0xFFFE],
                &enc(DataType::I32, WordOrder::Big, false)
            )
            .unwrap(),
            Value::Int(-2)
        );
    }

    #[test]
    fn given_known_words_when_decoded_then_each_type_matches_the_table() {
        use DataType::*;
        use WordOrder::*;
        let cases: Vec<(DataType, WordOrder, bool, Vec<u16>, Value)> = vec![
            (Bool, Big, false, vec![0], Value::Bool(false)),
            (Bool, Big, false, vec![1], Value::Bool(true)),
            (Bool, Big, false, vec![0xFF00], Value::Bool(true)),
            (U16, Big, false, vec![0xFFFF], Value::UInt(65_535)),
            (U16, Big, true, vec![0x3412], Value::UInt(0x1234)),
            (I16, Big, false, vec![0xFFFE], Value::Int(-2)),
            (I16, Big, false, vec![0x7FFF], Value::Int(32_767)),
            (U32, Big, false, vec![0x0001, 0x0000], Value::UInt(65_536)),
            (
                U32,
                Little,
                false,
                vec![0x0000, 0x0001],
                Value::UInt(65_536),
            ),
            (
                U32,
                Big,
                false,
                vec![0xB2D0, 0x5E00],
                Value::UInt(3_000_000_000),
            ),
            (
                U64,
                Big,
                false,
                vec![0x0123, 0x4567, 0x89AB, 0xCDEF],
                Value::UInt(0x0123_4567_89AB_CDEF),
            ),
            (
                U64,
                Little,
                false,
                vec![0xCDEF, 0x89AB, 0x4567, 0x0123],
                Value::UInt(0x0123_4567_89AB_CDEF),
            ),
            (
                U64,
                Big,
                true,
                vec![0x2301, 0x6745, 0xAB89, 0xEFCD],
                Value::UInt(0x0123_4567_89AB_CDEF),
            ),
            (
                U64,
                Little,
                true,
                vec![0xEFCD, 0xAB89, 0x6745, 0x2301],
                Value::UInt(0x0123_4567_89AB_CDEF),
            ),
            (I64, Big, false, vec![0xFFFF; 4], Value::Int(-1)),
            (
                I64,
                Little,
                false,
                vec![0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF],
                Value::Int(-2),
            ),
            (
                F64,
                Big,
                false,
                vec![0x4028, 0x0000, 0x0000, 0x0000],
                Value::Float(12.0),
            ),
            (
                F64,
                Little,
                true,
                vec![0x0000, 0x0000, 0x0000, 0x2840],
                Value::Float(12.0),
            ),
        ];
        for (data_type, order, swap, words, expected) in cases {
            let got = decode(&words, &enc(data_type, order, swap)).unwrap();
            assert_eq!(
                got, expected,
                "{data_type:?} {order:?} swap={swap} {words:04X?}"
            );
        }
    }

    #[test]
    fn given_wrong_number_of_words_when_decoded_then_wrong_length_error() {
        let err = decode(&[1, 2, 3], &enc(DataType::U32, WordOrder::Big, false)).unwrap_err();
        assert_eq!(
            err,
            DecodeError::WrongLength {
                data_type: DataType::U32,
                expected: 2,
                got: 3
            }
        );
        assert!(decode(&[], &enc(DataType::Bool, WordOrder::Big, false)).is_err());
        assert!(decode_counter(&[1], &enc(DataType::U64, WordOrder::Big, false)).is_err());
    }

    #[test]
    fn given_counter_types_when_decoded_as_counter_then_unsigned_raw_or_refusal() {
        let big = |t| enc(t, WordOrder::Big, false);
        assert_eq!(decode_counter(&[0xFFFF], &big(DataType::U16)), Ok(65_535));
        assert_eq!(
            decode_counter(
                &[0x0000, 0xFFFF],
                &enc(DataType::U32, WordOrder::Little, false)
            ),
            Ok(0xFFFF_0000)
        );
        assert_eq!(
            decode_counter(&[0xFFFF; 4], &big(DataType::U64)),
            Ok(u64::MAX)
        );
        for refused in [
            DataType::Bool,
            DataType::I16,
            DataType::I32,
            DataType::I64,
            DataType::F32,
            DataType::F64,
        ] {
            let words = vec![0; usize::from(refused.register_count())];
            assert_eq!(
                decode_counter(&words, &big(refused)),
                Err(DecodeError::NotACounter { data_type: refused })
            );
        }
    }

    #[test]
    fn given_data_types_when_asked_for_shape_then_counts_and_moduli_follow_the_range() {
        assert_eq!(DataType::Bool.register_count(), 1);
        assert_eq!(DataType::I16.register_count(), 1);
        assert_eq!(DataType::F32.register_count(), 2);
        assert_eq!(DataType::I64.register_count(), 4);
        assert_eq!(DataType::U16.default_modulus(), Some(65_536));
        assert_eq!(DataType::U32.default_modulus(), Some(1 << 32));
        assert_eq!(DataType::U64.default_modulus(), None);
        assert_eq!(DataType::I32.default_modulus(), None);
        assert!(DataType::U64.is_unsigned_integer());
        assert!(!DataType::I16.is_unsigned_integer());
    }

    #[test]
    fn given_every_table_and_type_when_named_then_the_name_parses_back() {
        for table in Table::ALL {
            assert_eq!(table.name().parse::<Table>(), Ok(table));
            // The serde name is the same word.
            assert_eq!(
                serde_json::to_value(table).unwrap(),
                serde_json::json!(table.name())
            );
        }
        for data_type in DataType::ALL {
            assert_eq!(data_type.name().parse::<DataType>(), Ok(data_type));
            assert_eq!(
                serde_json::to_value(data_type).unwrap(),
                serde_json::json!(data_type.name())
            );
        }
        for order in WordOrder::ALL {
            assert_eq!(order.name().parse::<WordOrder>(), Ok(order));
            assert_eq!(
                serde_json::to_value(order).unwrap(),
                serde_json::json!(order.name())
            );
        }
        assert_eq!("holding_registers".parse::<Table>(), Ok(Table::Holding));
        assert_eq!("discrete_input".parse::<Table>(), Ok(Table::Discrete));
        assert_eq!("coils".parse::<Table>(), Ok(Table::Coil));
        assert_eq!(
            "register".parse::<Table>().unwrap_err().to_string(),
            r#""register" is not one of coil, discrete, input, holding"#
        );
        assert_eq!(
            "float".parse::<DataType>().unwrap_err().to_string(),
            r#""float" is not one of bool, u16, i16, u32, i32, u64, i64, f32, f64"#
        );
    }

    #[test]
    fn given_scale_and_offset_when_applied_then_linear_transform_of_each_variant() {
        assert_eq!(scale(&Value::Int(-20), 0.5, 1.0), -9.0);
        assert_eq!(scale(&Value::UInt(250), 0.1, 0.0), 25.0);
        assert_eq!(scale(&Value::Bool(true), 1.0, 0.0), 1.0);
        assert_eq!(scale(&Value::Float(2.5), 2.0, -1.0), 4.0);
    }
}
