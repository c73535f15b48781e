//! The one integration test binary (`cargo test --test integration`): real TCP sockets, real SQLite files,
//! a real MQTT broker (Mosquitto when installed, else rumqttd in-process; see `support`).
//!
//! Modules, each documented at its top:
//! - `support`: per-test broker, recording subscriber, cuttable TCP forwarder, `wait_until`, schemas.
//! - `publisher`: outbox → broker delivery, retire-after-PUBACK, outages, status and live retention.
//! - `crash`: the agent binary killed with SIGKILL 50 times, restarted after downtime, started twice.
//! - `e2e`: simulated PLCs → agent → broker; final rollups sum exactly to the simulator's truth.

mod support;

mod crash;
mod e2e;
mod publisher;
