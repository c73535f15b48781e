//! The one integration test binary (`cargo test --test integration`): real TCP sockets, real SQLite files,
//! a real MQTT broker (Mosquitto when installed, else rumqttd in-process; see `support`).
//!
//! Modules, each documented at its top (one line each):
//! - `support`: per-test broker, recording subscriber + counting report, TCP fault proxy, the agent in process
//!   with simulated PLCs (`agent`) or as the binary (`child`), a small tmpfs, `wait_until`, schemas.
//! - `publisher`: outbox → broker delivery against a real broker and SQLite file; its modules:
//!   - `publisher::delivery`: retire-after-PUBACK, outages, lost PUBACKs, status and live retention.
//!   - `publisher::faults`: the watchdog on a stalled link, oversized rows, live-first with a paced backlog.
//!   - `publisher::v5`: MQTT 5 delivery and PUBACK failure reason codes (Mosquitto ACL).
//!   - `publisher::acl`: an ACL that denies the agent's topics keeps every row; the fallback to MQTT 3.1.1.
//!   - `publisher::limits`: packet limits below the rows: a short log, no reconnect loop with MQTT 3.1.1.
//!   - `publisher::store_full`: the store's filesystem fills up during delivery; every row arrives later.
//! - `cli`: `validate` on good and bad files, and the demo as a newcomer runs it.
//! - `crash`: the agent binary killed with SIGKILL 50 times, restarted after downtime, started twice (same
//!   data_dir, same client id), its data_dir deleted under it, its files' modes under umask 000.
//! - `clock`: wall-clock steps forward and back, and a restart with the clock behind the stored state.
//! - `e2e`: simulated PLCs → agent → broker; final rollups sum exactly to the simulator's truth.
//! - `kpi`: goal figures wait for `targets.min_units`, dated targets, `no_target`, inconsistent counts null.
//! - `modbus`: the poller against misbehaving PLCs; its modules:
//!   - `modbus::gateway`: many units on one connection: values, pacing, unit backoff, no writes.
//!   - `modbus::faults`: silence, late answers, half frames, wrong counts, exceptions, reboot, long outage.
//!   - `modbus::disabled`: a tag refused with 01/02/03 is probed with backoff and enabled again.
//!   - `modbus::fuzz`: arbitrary bytes as responses into the connection and the poller.
//!   - `modbus::probe`: the commissioning probe finds the produced counter and its word order.
//!   - `modbus::calendar`: a shift start between two regular polls gets a poll of its own.
//! - `interop`: the poller against a pymodbus 3.x server (a stack we did not write); every type and order.
//! - `faults_mqtt`: the agent under MQTT-side faults (outage, broker killed, half-open, slow link, MQTT 5
//!   refused, full disk), each with a counting report.
//! - `packet_limit`: every message the running agent publishes fits the largest-message bound `validate` checks
//!   `mqtt.max_packet_size` against.
//! - `quarantine`: a counter read above its modulus is a gap; a quarantined jump released through the
//!   `quarantine` command line beside the running agent restates its window.
//! - `quota`: the store's byte quota under a long outage: drops announced as `gap` events, totals exact.
//! - `store_fs`: the store on a 2 MiB tmpfs that fills up: a full disk told from a full quota, and recovery.
//! - `outbox_model`: proptest of enqueue/publish/ack/drop/crash/restart against the real store and `Inflight`.
//! - `reload`: SIGHUP to the agent binary: a machine added and a target changed while counting exactly; a broken
//!   file logged with every problem while the last good configuration keeps running.
//! - `replay`: `shopfloor-agent replay` on golden CSV inputs with hand-computed rollups; bad input names line
//!   and column.
//! - `tls`: the agent binary against Mosquitto with TLS, client certificates and passwords: refusals named and
//!   survived, rotation without restart, ACL refusals after login, no secret in anything it writes.
//! - `status`: `status --json` (the binary, beside the running agent) and `/metrics` show the backlog grow while
//!   Mosquitto is down and drain after; `status` without a store names the missing file.
//! - `service`: the agent binary under a notify socket: ready, status lines, watchdog pings that stop for good
//!   when the processor stalls; no colour escape codes in a log that is not a terminal.
//! - `soak`: the agent binary past a short restatement horizon: memory and database size stay flat.
//! - `unit_file`: the systemd unit carries its hardening and lifecycle directives; `systemd-analyze verify`.
//! - `windows`: shift, day and hourly rollups of a night shift through `replay`: in and out of plan, labels.

// Tests may unwrap: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod support;

mod cli;
mod clock;
mod crash;
mod e2e;
mod faults_mqtt;
mod interop;
mod kpi;
mod modbus;
mod outbox_model;
mod packet_limit;
mod publisher;
mod quarantine;
mod quota;
mod reload;
mod replay;
mod service;
mod soak;
mod status;
mod store_fs;
mod tls;
mod unit_file;
mod windows;
