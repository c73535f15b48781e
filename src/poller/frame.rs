//! Modbus/TCP framing, pure: encodes read requests and checks responses byte by byte. Only function codes 1–4
//! can be encoded — there is no way to build a write (ARCHITECTURE.md, invariant 1). Exception codes are classified
//! here. No I/O; fed arbitrary bytes by property tests.

use crate::logic::decode::Table;

/// Length of the MBAP header: transaction id, protocol id, length, unit id.
pub const MBAP_HEADER_LEN: usize = 7;
/// Largest MBAP length field: unit id + a PDU of at most 253 bytes.
const MAX_MBAP_LENGTH: u16 = 254;

/// The function code that reads `table` (1 coils, 2 discrete inputs, 3 holding, 4 input registers).
pub fn function_code(table: Table) -> u8 {
    match table {
        Table::Coil => 1,
        Table::Discrete => 2,
        Table::Holding => 3,
        Table::Input => 4,
    }
}

/// The 12-byte request ADU reading `count` items of `table` from `start` on `unit_id`.
pub fn encode_read(
    transaction: u16,
    unit_id: u8,
    table: Table,
    start: u16,
    count: u16,
) -> [u8; 12] {
    let [t_hi, t_lo] = transaction.to_be_bytes();
    let [s_hi, s_lo] = start.to_be_bytes();
    let [c_hi, c_lo] = count.to_be_bytes();
    // Length 6 = unit id + function code + start (2) + count (2).
    [
        t_hi,
        t_lo,
        0,
        0,
        0,
        6,
        unit_id,
        function_code(table),
        s_hi,
        s_lo,
        c_hi,
        c_lo,
    ]
}

/// The header of one complete frame at the start of a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Transaction id.
    pub transaction: u16,
    /// Unit id.
    pub unit_id: u8,
    /// Length of the whole frame (header + PDU) in bytes.
    pub frame_len: usize,
}

/// Why the bytes on the connection are not a Modbus/TCP frame: the stream cannot be trusted any more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The protocol id is not 0.
    #[error("protocol id {0:#06x} is not Modbus (0)")]
    ProtocolId(u16),
    /// The length field is impossible for a response.
    #[error("MBAP length {0} is outside 2..=254")]
    Length(u16),
}

/// Finds the frame at the start of `buffer`: `Ok(None)` while it is incomplete. The header is checked as soon
/// as its first six bytes are in, so garbage is refused without waiting for a length that never comes.
pub fn split_frame(buffer: &[u8]) -> Result<Option<FrameHeader>, FrameError> {
    if buffer.len() < 6 {
        return Ok(None);
    }
    let protocol = u16::from_be_bytes([buffer[2], buffer[3]]);
    if protocol != 0 {
        return Err(FrameError::ProtocolId(protocol));
    }
    let length = u16::from_be_bytes([buffer[4], buffer[5]]);
    if !(2..=MAX_MBAP_LENGTH).contains(&length) {
        return Err(FrameError::Length(length));
    }
    let frame_len = 6 + usize::from(length);
    if buffer.len() < frame_len {
        return Ok(None);
    }
    Ok(Some(FrameHeader {
        transaction: u16::from_be_bytes([buffer[0], buffer[1]]),
        unit_id: buffer[6],
        frame_len,
    }))
}

/// What is wrong with a response whose frame arrived intact (the connection stays usable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The device answered with a Modbus exception.
    #[error("exception {code:#04x} ({})", exception_name(*code))]
    Exception {
        /// Exception code.
        code: u8,
    },
    /// The answer carries a different number of registers (or bits) than asked for.
    #[error("wrong response length: expected {expected}, got {got}")]
    WrongLength {
        /// Registers or bits asked for.
        expected: usize,
        /// Registers or bits received (bits: whole bytes × 8).
        got: usize,
    },
    /// The answer is not a well-formed response to this request.
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// How an exception code is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionClass {
    /// 01 illegal function, 02 illegal data address, 03 illegal data value: the configuration asks for something
    /// the device does not have, or it cannot serve it right now (a program download). Retrying every cycle
    /// would not help; the tag is disabled and probed again with a growing delay.
    Configuration,
    /// 04 device failure, 05 acknowledge, 06 busy, 0A/0B gateway path/target, and unknown codes: retried.
    Transient,
}

/// Classifies an exception code.
pub fn classify(code: u8) -> ExceptionClass {
    match code {
        0x01..=0x03 => ExceptionClass::Configuration,
        _ => ExceptionClass::Transient,
    }
}

/// The name of an exception code from the Modbus application protocol.
pub fn exception_name(code: u8) -> &'static str {
    match code {
        0x01 => "illegal function",
        0x02 => "illegal data address",
        0x03 => "illegal data value",
        0x04 => "server device failure",
        0x05 => "acknowledge",
        0x06 => "server device busy",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target device failed to respond",
        _ => "unknown exception",
    }
}

/// Checks the PDU of a response to a read of `count` items from `table` and returns the items, one `u16` per
/// register or per bit (0 or 1).
pub fn parse_read_response(
    table: Table,
    count: u16,
    pdu: &[u8],
) -> Result<Vec<u16>, ResponseError> {
    let function = function_code(table);
    let (&code, rest) = pdu
        .split_first()
        .ok_or_else(|| ResponseError::Malformed("empty PDU".into()))?;
    if code == function | 0x80 {
        return match rest {
            [exception] => Err(ResponseError::Exception { code: *exception }),
            _ => Err(ResponseError::Malformed(format!(
                "exception response of {} bytes",
                pdu.len()
            ))),
        };
    }
    if code != function {
        return Err(ResponseError::Malformed(format!(
            "function code {code:#04x} answers a request with {function:#04x}"
        )));
    }
    let (&byte_count, data) = rest
        .split_first()
        .ok_or_else(|| ResponseError::Malformed("no byte count".into()))?;
    if usize::from(byte_count) != data.len() {
        return Err(ResponseError::Malformed(format!(
            "byte count {byte_count} but {} data bytes",
            data.len()
        )));
    }
    let count = usize::from(count);
    match table {
        Table::Holding | Table::Input => {
            if data.len() % 2 != 0 {
                return Err(ResponseError::Malformed(format!(
                    "odd byte count {byte_count} for registers"
                )));
            }
            if data.len() / 2 != count {
                return Err(ResponseError::WrongLength {
                    expected: count,
                    got: data.len() / 2,
                });
            }
            Ok(data
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect())
        }
        Table::Coil | Table::Discrete => {
            if data.len() != count.div_ceil(8) {
                return Err(ResponseError::WrongLength {
                    expected: count,
                    got: data.len() * 8,
                });
            }
            // Bits are packed least significant first; padding bits of the last byte are ignored.
            Ok((0..count)
                .map(|bit| u16::from((data[bit / 8] >> (bit % 8)) & 1))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TABLES: [Table; 4] = [Table::Coil, Table::Discrete, Table::Holding, Table::Input];

    #[test]
    fn given_each_table_when_encoding_then_only_read_function_codes_appear() {
        let codes: Vec<u8> = TABLES
            .iter()
            .map(|&table| encode_read(0x0102, 9, table, 0x0304, 0x0005)[7])
            .collect();
        assert_eq!(codes, vec![1, 2, 3, 4]);
        assert_eq!(
            encode_read(0x0102, 9, Table::Holding, 0x0304, 0x0005),
            [1, 2, 0, 0, 0, 6, 9, 3, 3, 4, 0, 5]
        );
    }

    #[test]
    fn given_partial_and_complete_frames_when_split_then_headers_are_found_or_refused() {
        let frame = [0, 7, 0, 0, 0, 5, 1, 3, 2, 0x12, 0x34];
        assert_eq!(split_frame(&frame[..5]), Ok(None));
        assert_eq!(split_frame(&frame[..10]), Ok(None));
        assert_eq!(
            split_frame(&frame),
            Ok(Some(FrameHeader {
                transaction: 7,
                unit_id: 1,
                frame_len: 11
            }))
        );
        assert_eq!(
            split_frame(&[0, 7, 0, 1, 0, 5]),
            Err(FrameError::ProtocolId(1))
        );
        assert_eq!(
            split_frame(&[0, 7, 0, 0, 1, 0]),
            Err(FrameError::Length(256))
        );
        assert_eq!(split_frame(&[0, 7, 0, 0, 0, 1]), Err(FrameError::Length(1)));
    }

    #[test]
    fn given_register_responses_when_parsed_then_words_or_typed_errors() {
        assert_eq!(
            parse_read_response(Table::Holding, 2, &[3, 4, 0x12, 0x34, 0xAB, 0xCD]),
            Ok(vec![0x1234, 0xABCD])
        );
        assert_eq!(
            parse_read_response(Table::Input, 2, &[4, 2, 0x12, 0x34]),
            Err(ResponseError::WrongLength {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            parse_read_response(Table::Holding, 1, &[0x83, 0x02]),
            Err(ResponseError::Exception { code: 2 })
        );
        assert!(matches!(
            parse_read_response(Table::Holding, 1, &[4, 2, 0, 1]),
            Err(ResponseError::Malformed(_))
        ));
        assert!(matches!(
            parse_read_response(Table::Holding, 1, &[3, 3, 0, 1]),
            Err(ResponseError::Malformed(_))
        ));
        assert!(matches!(
            parse_read_response(Table::Holding, 1, &[3, 1, 0]),
            Err(ResponseError::Malformed(_))
        ));
    }

    #[test]
    fn given_bit_responses_when_parsed_then_bits_are_unpacked_least_significant_first() {
        assert_eq!(
            parse_read_response(Table::Coil, 10, &[1, 2, 0b1000_0101, 0b10]),
            Ok(vec![1, 0, 1, 0, 0, 0, 0, 1, 0, 1])
        );
        assert_eq!(
            parse_read_response(Table::Discrete, 3, &[2, 1, 0b110]),
            Ok(vec![0, 1, 1])
        );
        assert_eq!(
            parse_read_response(Table::Coil, 9, &[1, 1, 0xFF]),
            Err(ResponseError::WrongLength {
                expected: 9,
                got: 8
            })
        );
    }

    #[test]
    fn given_exception_codes_when_classified_then_01_to_03_are_configuration_and_others_transient()
    {
        let classes: Vec<(u8, ExceptionClass)> =
            [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0A, 0x0B, 0x42]
                .into_iter()
                .map(|code| (code, classify(code)))
                .collect();
        use ExceptionClass::{Configuration as C, Transient as T};
        assert_eq!(
            classes,
            vec![
                (0x01, C),
                (0x02, C),
                (0x03, C),
                (0x04, T),
                (0x05, T),
                (0x06, T),
                (0x0A, T),
                (0x0B, T),
                (0x42, T)
            ]
        );
        assert_eq!(
            exception_name(0x0B),
            "gateway target device failed to respond"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2048,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0xf4a3e),
            ..ProptestConfig::default()
        })]

        #[test]
        fn arbitrary_bytes_never_panic_and_frames_never_overrun(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some(header)) = split_frame(&bytes) {
                prop_assert!(header.frame_len <= bytes.len());
                prop_assert!(header.frame_len > MBAP_HEADER_LEN);
            }
            for table in TABLES {
                for count in [0u16, 1, 2, 9, 125, 2000] {
                    if let Ok(items) = parse_read_response(table, count, &bytes) {
                        prop_assert_eq!(items.len(), usize::from(count));
                    }
                }
            }
        }

        #[test]
        fn well_formed_register_answers_round_trip(words in proptest::collection::vec(any::<u16>(), 1..=125)) {
            let mut pdu = vec![3, (words.len() * 2) as u8];
            for word in &words {
                pdu.extend_from_slice(&word.to_be_bytes());
            }
            prop_assert_eq!(parse_read_response(Table::Holding, words.len() as u16, &pdu), Ok(words));
        }
    }
}
