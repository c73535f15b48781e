//! The one integration test binary (`cargo test --test integration`): real TCP sockets, real SQLite files,
//! a real MQTT broker (Mosquitto when installed, else rumqttd in-process; see `support`).
//!
//! Modules, each documented at its top:
//! - `support`: per-test broker, recording subscriber + counting report, TCP fault proxy, the agent with
//!   simulated PLCs, `wait_until`, schemas.
//! - `publisher`: outbox → broker delivery, retire-after-PUBACK, outages, status and live retention.
//! - `cli`: `validate` on good and bad files, and the demo as a newcomer runs it.
//! - `crash`: the agent binary killed with SIGKILL 50 times, restarted after downtime, started twice (same
//!   data_dir, same client id), its data_dir deleted under it, its files' modes under umask 000.
//! - `clock`: wall-clock steps forward and back, and a restart with the clock behind the stored state.
//! - `e2e`: simulated PLCs → agent → broker; final rollups sum exactly to the simulator's truth.
//! - `modbus`: the poller against misbehaving PLCs (silence, late answers, half frames, exceptions, reboots,
//!   fuzzed bytes), many units on one gateway, and the commissioning probe.
//! - `interop`: the poller against a pymodbus 3.x server (a stack we did not write); every type and order.
//! - `faults_mqtt`: the agent under MQTT-side faults (outage, broker killed, half-open, slow link), each with
//!   a counting report.
//! - `packet_limit`: every message the running agent publishes fits the largest-message bound `validate` checks
//!   `mqtt.max_packet_size` against.
//! - `store_fs`: the store on a 2 MiB tmpfs that fills up: a full disk told from a full quota, and recovery.
//! - `outbox_model`: proptest of enqueue/publish/ack/drop/crash/restart against the real store and `Inflight`.
//! - `soak`: the agent binary past a short restatement horizon: memory and database size stay flat.

mod support;

mod cli;
mod clock;
mod crash;
mod e2e;
mod faults_mqtt;
mod interop;
mod modbus;
mod outbox_model;
mod packet_limit;
mod publisher;
mod quota;
mod soak;
mod store_fs;
