//! Simulated shop-floor equipment with exact ground truth, for tests, benchmarks and the demo.
//!
//! Layout, in data-flow order:
//! - [`model`]: pure, seeded per-cycle production model of one machine and the register image it shows.
//! - [`plc`]: [`PlcSimulator`], a Modbus/TCP server serving machines by unit id, stepping each model on a timer;
//!   it misbehaves on cue ([`FaultRule`]), goes down and comes back, and counts every request it saw.
//! - [`scripted`]: [`ScriptedServer`], a raw responder answering each request with scripted bytes (fuzzing).

pub mod model;
pub mod plc;
pub mod scripted;

pub use plc::{
    CounterLayout, CycleOutcome, Fault, FaultRule, MachineModel, MachineSpec, MachineState,
    PlcSimulator, RequestRecord, SimStats, Snapshot, SpecError, Truth, BIT_COUNT, DEFECTIVE_OFFSET,
    MAX_REASONS, PRODUCED_OFFSET, REASONS_OFFSET, REGISTER_COUNT, STATE_OFFSET,
};
pub use scripted::{Reply, ScriptedServer};
