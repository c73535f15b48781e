//! shopfloor-agent: polls PLCs over Modbus/TCP, derives production and quality figures, buffers every
//! derived fact in SQLite and publishes rollups over MQTT.
//!
//! Crate map, in data-flow order:
//! - [`config`]: TOML + environment → validated [`config::Config`]; every problem reported with its path.
//! - [`clock`]: the injectable (monotonic, wall-clock) source the adapters read; tests step it.
//! - [`poller`]: one task per PLC connection; reads registers under timeouts and emits `Sample`s.
//! - [`probe`]: the read-only commissioning aid: every interpretation of a register range, counter candidates.
//! - [`logic`]: pure code (no I/O, no clock): decoding, counter deltas, windows, rollups, KPIs, payloads.
//! - [`processor`]: drives `logic` with samples and time; commits one store transaction per poll cycle.
//! - [`store`]: SQLite (WAL) adapter: counter baselines, windows, the outbox.
//! - [`publisher`]: moves outbox rows to the MQTT broker; retires a row only after its PUBACK.
//! - [`replay`]: recorded poll values from a CSV through the same processor, rollups as JSON lines.
//! - [`quarantine`]: the operator's view of quarantined counter deltas, and their release.
//! - [`tls`]: the uplink's TLS material: PEM files, the rustls client configuration, certificate facts.
//! - [`liveness`]: progress promises of the poll loops and the processor, for the watchdog and the health check.
//! - [`logging`]: log lines on stderr for journald or a terminal: text or JSON, colour only on a terminal.
//! - [`notify`]: the service manager's protocol: ready, status lines, the watchdog pinged only while nothing stalls.
//! - [`backoff`]: the capped, jittered retry schedule of every link (PLC, broker, refused rows, store calls).
//! - [`outage`]: when a peer that stays down (PLC, unit, broker) is summarised in the log: every ten minutes.
//! - [`supervisor`]: wires the tasks together, owns cancellation and the shutdown deadline.
//! - [`broker`]: an in-process MQTT broker for the demo and for tests on machines without Mosquitto.
//! - [`demo`]: simulated PLCs + broker + agent + live terminal view.
//!
//! `broker` and `demo` exist only with the cargo feature `demo` (on by default); the production build
//! (`--no-default-features`, the Debian package) has neither, nor their dependencies.

pub mod backoff;
#[cfg(feature = "demo")]
pub mod broker;
pub mod clock;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod liveness;
pub mod logging;
pub mod logic;
pub mod metrics;
pub mod notify;
pub mod outage;
pub mod poller;
pub mod probe;
pub mod processor;
pub mod publisher;
pub mod quarantine;
pub mod replay;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod tls;
