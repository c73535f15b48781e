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
