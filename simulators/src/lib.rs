//! Simulated shop-floor equipment with exact ground truth, for tests, benchmarks and the demo.
//!
//! Layout, in data-flow order:
//! - [`model`]: pure, seeded per-cycle production model of one machine and the register image it shows.
//! - [`plc`]: [`PlcSimulator`], a Modbus/TCP server serving machines by unit id, stepping each model on a timer;
//!   it misbehaves on cue ([`FaultRule`]), goes down and comes back, and counts every request it saw.
//! - [`fleet`]: [`Fleet`], many [`PlcSimulator`]s on their own ports in one process, for benchmarks.
//! - [`scripted`]: [`ScriptedServer`], a raw responder answering each request with scripted bytes (fuzzing).

pub mod fleet;
pub mod model;
pub mod plc;
pub mod scripted;

pub use fleet::{Fleet, FleetSpec};
pub use plc::{
    CounterLayout, CycleOutcome, Fault, FaultRule, MachineModel, MachineSpec, MachineState,
    PlcSimulator, RequestRecord, SimStats, Snapshot, SpecError, Truth, BIT_COUNT, DEFECTIVE_OFFSET,
    MAX_REASONS, PRODUCED_OFFSET, REASONS_OFFSET, REGISTER_COUNT, STATE_OFFSET,
};
pub use scripted::{Reply, ScriptedServer};
