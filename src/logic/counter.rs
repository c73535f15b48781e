//! Raw cumulative counter value → delta, as a `CounterStep` value (DESIGN §5).
//! Wraps, resets and glitches are values, never errors. No I/O, no clock.

use serde::{Deserialize, Serialize};

/// What to do when a counter goes down and it is not a wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDecrease {
    /// Treat the drop as a reset: the new value is the delta.
    #[default]
    Reset,
    /// Ignore the drop: delta 0, the new value becomes the baseline.
    Ignore,
}

/// Per-channel counter behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterConfig {
    /// The value at which the counter wraps to 0 (2^16, 2^32, 10000, ...).
    pub modulus: u64,
    /// Whether wrap detection is on.
    pub wrap: bool,
    /// Handling of a decrease that is not a wrap.
    pub on_decrease: OnDecrease,
    /// Design rate in units per second, for the plausibility guard.
    pub design_rate: Option<f64>,
}
