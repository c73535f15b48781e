//! Simulated shop-floor equipment with exact ground truth, for tests, benchmarks and the demo.
//!
//! Layout, in data-flow order:
//! - [`model`]: pure, seeded per-cycle production model of one machine and the register image it shows.
//! - [`plc`]: [`PlcSimulator`], a Modbus/TCP server serving machines by unit id, stepping each model on a timer.

pub mod model;
pub mod plc;

pub use plc::{
    CycleOutcome, MachineModel, MachineSpec, MachineState, PlcSimulator, Snapshot, SpecError,
    Truth, BIT_COUNT, DEFECTIVE_OFFSET, MAX_REASONS, PRODUCED_OFFSET, REASONS_OFFSET,
    REGISTER_COUNT, STATE_OFFSET,
};
