//! What a simulated machine is: its spec, the checks a spec must pass, and where its registers sit relative
//! to `base_address`. Plain data; the behaviour lives in the parent module's `MachineModel`.

use std::time::Duration;

/// Offset of the produced counter (u32, high word first) from `base_address`.
pub const PRODUCED_OFFSET: u16 = 0;
/// Offset of the defective counter (u32, high word first) from `base_address`.
pub const DEFECTIVE_OFFSET: u16 = 2;
/// Offset of the first per-reason defect counter (one u16 per reason, in `reasons` order).
pub const REASONS_OFFSET: u16 = 10;
/// Offset of the state register (see [`super::MachineState::code`]).
pub const STATE_OFFSET: u16 = 20;
/// Number of registers a machine maps from `base_address` (offsets 0..=20; unused ones read 0).
pub const REGISTER_COUNT: u16 = 21;
/// Most defect reasons a machine can have: the reason registers must end before the state register.
pub const MAX_REASONS: usize = (STATE_OFFSET - REASONS_OFFSET) as usize;
/// Number of coils (and discrete inputs) a machine maps from `base_address`: running, planned stop, fault.
pub const BIT_COUNT: u16 = 3;

/// How the simulator lays out the two words and four bytes of its u32 counters (A = most significant byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterLayout {
    /// High word first, high byte first (the Modbus convention; the default).
    #[default]
    Abcd,
    /// Low word first (word swap), as many PLC brands store 32-bit values.
    Cdab,
    /// High word first with the bytes of each word swapped.
    Badc,
    /// Low word first with the bytes of each word swapped (fully little-endian).
    Dcba,
}

impl CounterLayout {
    /// The two register words holding `value` in this layout, in address order.
    pub fn words(self, value: u32) -> [u16; 2] {
        let (high, low) = ((value >> 16) as u16, value as u16);
        match self {
            CounterLayout::Abcd => [high, low],
            CounterLayout::Cdab => [low, high],
            CounterLayout::Badc => [high.swap_bytes(), low.swap_bytes()],
            CounterLayout::Dcba => [low.swap_bytes(), high.swap_bytes()],
        }
    }

    /// Parses "abcd", "cdab", "badc" or "dcba" (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "abcd" => Some(CounterLayout::Abcd),
            "cdab" => Some(CounterLayout::Cdab),
            "badc" => Some(CounterLayout::Badc),
            "dcba" => Some(CounterLayout::Dcba),
            _ => None,
        }
    }
}

/// Static description of one simulated machine.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineSpec {
    /// Modbus unit id the machine answers to.
    pub unit_id: u8,
    /// First register (and bit) address of the machine's block; see the `*_OFFSET` constants.
    pub base_address: u16,
    /// Time one production cycle takes; at most one unit is made per cycle.
    pub cycle_time: Duration,
    /// Probability in [0, 1] that a produced unit is defective.
    pub defect_probability: f64,
    /// Probability in [0, 1], per running cycle, that a random stop starts.
    pub stop_probability: f64,
    /// Raw value of the produced register at start.
    pub initial_produced: u32,
    /// Defect reasons (at most [`MAX_REASONS`], unique); a defective unit gets one, chosen uniformly.
    pub reasons: Vec<String>,
    /// Word and byte order of the produced and defective u32 counters.
    pub counter_layout: CounterLayout,
}

impl MachineSpec {
    /// A typical machine: base address 0, 500 ms cycle, 5 % defects, 1 % stops, three reasons, ABCD counters.
    pub fn new(unit_id: u8) -> Self {
        Self {
            unit_id,
            base_address: 0,
            cycle_time: Duration::from_millis(500),
            defect_probability: 0.05,
            stop_probability: 0.01,
            initial_produced: 0,
            reasons: vec!["scratch".into(), "dent".into(), "misfeed".into()],
            counter_layout: CounterLayout::Abcd,
        }
    }

    /// Checks the spec describes a machine the simulator can serve.
    pub fn validate(&self) -> Result<(), SpecError> {
        let unit_id = self.unit_id;
        if self.cycle_time.is_zero() {
            return Err(SpecError::ZeroCycleTime { unit_id });
        }
        for (field, value) in [
            ("defect_probability", self.defect_probability),
            ("stop_probability", self.stop_probability),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(SpecError::Probability {
                    unit_id,
                    field,
                    value,
                });
            }
        }
        if self.reasons.len() > MAX_REASONS {
            return Err(SpecError::TooManyReasons {
                unit_id,
                count: self.reasons.len(),
            });
        }
        for (index, reason) in self.reasons.iter().enumerate() {
            if self.reasons[..index].contains(reason) {
                return Err(SpecError::DuplicateReason {
                    unit_id,
                    reason: reason.clone(),
                });
            }
        }
        if u32::from(self.base_address) + u32::from(REGISTER_COUNT) > 0x1_0000 {
            return Err(SpecError::AddressOverflow {
                unit_id,
                base_address: self.base_address,
            });
        }
        Ok(())
    }
}

/// Why a set of machine specs cannot be simulated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// Two machines share one unit id.
    #[error("unit {unit_id}: unit id used by more than one machine")]
    DuplicateUnit {
        /// The unit id in question.
        unit_id: u8,
    },
    /// A zero cycle time would make infinitely many units.
    #[error("unit {unit_id}: cycle_time must be greater than zero")]
    ZeroCycleTime {
        /// The unit id in question.
        unit_id: u8,
    },
    /// A probability outside [0, 1].
    #[error("unit {unit_id}: {field} must be within [0, 1], got {value}")]
    Probability {
        /// The unit id in question.
        unit_id: u8,
        /// The spec field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// More reasons than reason registers.
    #[error("unit {unit_id}: {count} reasons given, at most {MAX_REASONS} fit before the state register")]
    TooManyReasons {
        /// The unit id in question.
        unit_id: u8,
        /// How many reasons were given.
        count: usize,
    },
    /// A reason listed twice.
    #[error("unit {unit_id}: reason {reason:?} listed twice")]
    DuplicateReason {
        /// The unit id in question.
        unit_id: u8,
        /// The repeated reason.
        reason: String,
    },
    /// The register block would run past address 65535.
    #[error(
        "unit {unit_id}: base_address {base_address} + {REGISTER_COUNT} registers runs past 65535"
    )]
    AddressOverflow {
        /// The unit id in question.
        unit_id: u8,
        /// The base address given.
        base_address: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_each_layout_when_laying_out_0x11223344_then_words_follow_the_letters() {
        let value = 0x1122_3344;
        assert_eq!(CounterLayout::Abcd.words(value), [0x1122, 0x3344]);
        assert_eq!(CounterLayout::Cdab.words(value), [0x3344, 0x1122]);
        assert_eq!(CounterLayout::Badc.words(value), [0x2211, 0x4433]);
        assert_eq!(CounterLayout::Dcba.words(value), [0x4433, 0x2211]);
        assert_eq!(CounterLayout::parse("CDAB"), Some(CounterLayout::Cdab));
        assert_eq!(CounterLayout::parse("abdc"), None);
    }

    #[test]
    fn given_invalid_specs_when_validating_then_each_problem_is_named() {
        let base = MachineSpec::new(4);
        assert_eq!(base.validate(), Ok(()));
        let zero = MachineSpec {
            cycle_time: Duration::ZERO,
            ..base.clone()
        };
        assert_eq!(
            zero.validate(),
            Err(SpecError::ZeroCycleTime { unit_id: 4 })
        );
        let bad_p = MachineSpec {
            stop_probability: 1.5,
            ..base.clone()
        };
        assert!(matches!(
            bad_p.validate(),
            Err(SpecError::Probability {
                field: "stop_probability",
                ..
            })
        ));
        let many = MachineSpec {
            reasons: (0..11).map(|i| format!("r{i}")).collect(),
            ..base.clone()
        };
        assert_eq!(
            many.validate(),
            Err(SpecError::TooManyReasons {
                unit_id: 4,
                count: 11
            })
        );
        let twice = MachineSpec {
            reasons: vec!["a".into(), "a".into()],
            ..base.clone()
        };
        assert!(matches!(
            twice.validate(),
            Err(SpecError::DuplicateReason { .. })
        ));
        let high = MachineSpec {
            base_address: 65_530,
            ..base
        };
        assert!(matches!(
            high.validate(),
            Err(SpecError::AddressOverflow { .. })
        ));
    }
}
