//! Local MQTT brokers for the demo and the tests: rumqttd inside this process, or a spawned Mosquitto.
//!
//! Both listen on 127.0.0.1 only, without TLS, and support QoS 1, retained messages and last will; rumqttd
//! speaks MQTT 3.1.1, Mosquitto also MQTT 5. This module is not used by `run`; production talks to the site's
//! central broker. Fault tests use [`MosquittoSettings`] (packet-size limit, ACL) and [`Broker::kill`] /
//! [`Broker::restart`]. rumqttd 0.20 has no shutdown API: an in-process broker lives until the process exits.

mod mosquitto;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mosquitto::{find_mosquitto, MosquittoProcess};
pub use mosquitto::{
    mosquitto_available, spawn_mosquitto, spawn_mosquitto_with, MosquittoSettings,
};

/// Environment variable that picks the test broker: `mosquitto`, `inprocess`, or unset/`auto`.
pub const TEST_BROKER_ENV: &str = "SHOPFLOOR_TEST_BROKER";

/// How long a freshly started broker gets to accept its first TCP connection.
const LISTEN_DEADLINE: Duration = Duration::from_secs(10);

/// Largest publish payload the local brokers accept (rollups are a few KiB; leave ample room).
const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Errors of the local broker adapters.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// `mosquitto` was requested but is not installed.
    #[error("mosquitto executable not found on PATH (nor in /usr/sbin, /usr/local/sbin)")]
    MosquittoMissing,
    /// The broker process ended before it accepted connections.
    #[error("mosquitto exited during start-up ({status}); its output: {output}")]
    MosquittoExited {
        /// Exit status reported by the OS.
        status: std::process::ExitStatus,
        /// Captured stderr/stdout of the process.
        output: String,
    },
    /// Nothing accepted TCP connections on the port within the deadline.
    #[error("no broker accepted connections on 127.0.0.1:{port} within {deadline:?}")]
    NotListening {
        /// The port that was probed.
        port: u16,
        /// How long we waited.
        deadline: Duration,
    },
    /// The port accepts connections, but the listener belongs to another process than the spawned broker.
    #[error("127.0.0.1:{port} is served by another process, not by the mosquitto just spawned")]
    PortTaken {
        /// The port that was probed.
        port: u16,
    },
    /// `SHOPFLOOR_TEST_BROKER` holds a value we do not know.
    #[error("{TEST_BROKER_ENV}={0:?} is not one of \"mosquitto\", \"inprocess\", \"auto\"")]
    UnknownChoice(String),
    /// Local I/O failed (temp files, process spawn, socket bind).
    #[error("{what}")]
    Io {
        /// What we were doing.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Which implementation serves a [`Broker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// A `mosquitto` child process, killed when the [`Broker`] is dropped.
    Mosquitto,
    /// rumqttd threads inside this process; they cannot be stopped and live until the process exits.
    InProcess,
}

/// A running local broker on `127.0.0.1:port`.
///
/// Dropping it kills a Mosquitto child and removes its temporary config. For [`BrokerKind::InProcess`] drop
/// does nothing: rumqttd 0.20's `Broker::start` blocks forever in threads it owns and offers no way to stop
/// its router or listeners, so the port stays served until the process exits. Tests therefore start one
/// broker per test (on its own port) and never rely on an in-process broker going away.
#[derive(Debug)]
pub struct Broker {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Which implementation is serving.
    pub kind: BrokerKind,
    mosquitto: Option<MosquittoProcess>,
}

impl Broker {
    /// The `host:port` string clients connect to.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A short human-readable description, e.g. `mosquitto on 127.0.0.1:41234`.
    pub fn describe(&self) -> String {
        let name = match self.kind {
            BrokerKind::Mosquitto => "mosquitto",
            BrokerKind::InProcess => "in-process rumqttd",
        };
        format!("{name} on {}", self.address())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut process) = self.mosquitto.take() {
            // The child may already be gone; both calls are best effort on the way out.
            if let Some(mut child) = process.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = std::fs::remove_dir_all(&process.work_dir);
        }
    }
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, release it).
///
/// Another process could take the port before the caller binds it; on a test machine that race is rare and
/// shows up as a clear start-up error rather than a wrong result.
pub fn free_local_port() -> anyhow::Result<u16> {
    Ok(free_port_inner()?)
}

fn free_port_inner() -> Result<u16, BrokerError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| BrokerError::Io {
            what: "binding 127.0.0.1:0 to find a free port".into(),
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| BrokerError::Io {
            what: "reading the bound port".into(),
            source,
        })?
        .port();
    Ok(port)
}

/// `port` itself if nothing listens on it yet, a free port for 0. Checking first matters: the start-up probe
/// below would otherwise mistake whatever already listens there for our broker.
pub(super) fn usable_port(port: u16) -> Result<u16, BrokerError> {
    if port == 0 {
        return free_port_inner();
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(|source| BrokerError::Io {
        what: format!("port {port} on 127.0.0.1 is not available for a broker"),
        source,
    })?;
    Ok(port)
}

/// Starts rumqttd (MQTT 3.1.1, no TLS, no websocket) on `127.0.0.1:port` in its own threads; port 0 picks
/// a free port. Returns once the port accepts TCP connections.
pub fn start_in_process(port: u16) -> anyhow::Result<Broker> {
    let port = usable_port(port)?;
    let listen = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    let config = in_process_config(listen);

    // `Broker::new` spawns the router thread; `start` spawns one thread per listener and then blocks
    // joining them, so it gets a thread of its own.
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name(format!("rumqttd-{port}"))
        .spawn(move || {
            if let Err(error) = broker.start() {
                tracing::error!(%error, port, "In-process MQTT broker stopped.");
            }
        })
        .map_err(|source| BrokerError::Io {
            what: "spawning the rumqttd thread".into(),
            source,
        })?;

    wait_until_listening(port, || Ok(()))?;
    tracing::info!(port, "In-process MQTT broker (rumqttd) listening.");
    Ok(Broker {
        port,
        kind: BrokerKind::InProcess,
        mosquitto: None,
    })
}

fn in_process_config(listen: SocketAddr) -> rumqttd::Config {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: MAX_PAYLOAD_BYTES,
        // Packets read from one connection per batch; generous so bursts of QoS 1 publishes flow.
        max_inflight_count: 1_000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: format!("v4-{}", listen.port()),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 1_000,
            max_outgoing_packet_count: 1_000,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Default::default()
    }
}

/// Starts the broker tests and the demo should use: Mosquitto when it is installed, else rumqttd in-process.
///
/// `SHOPFLOOR_TEST_BROKER=mosquitto` insists on Mosquitto (error when missing), `inprocess` insists on
/// rumqttd, unset or `auto` chooses. `prefer_port` asks for a specific port (None = any free port).
pub fn start_for_tests_or_demo(prefer_port: Option<u16>) -> anyhow::Result<Broker> {
    let port = prefer_port.unwrap_or(0);
    let choice = std::env::var(TEST_BROKER_ENV).unwrap_or_default();
    match choice.trim().to_ascii_lowercase().as_str() {
        "mosquitto" => spawn_mosquitto(port),
        "inprocess" | "in-process" | "rumqttd" => start_in_process(port),
        "" | "auto" => {
            if find_mosquitto().is_some() {
                spawn_mosquitto(port)
            } else {
                start_in_process(port)
            }
        }
        _ => Err(BrokerError::UnknownChoice(choice).into()),
    }
}

/// Connects to 127.0.0.1:port until it succeeds or the deadline passes; `still_alive` lets the caller
/// abort early when the broker process has died.
pub(super) fn wait_until_listening(
    port: u16,
    mut still_alive: impl FnMut() -> Result<(), BrokerError>,
) -> Result<(), BrokerError> {
    let address = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    let started = Instant::now();
    loop {
        if TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        still_alive()?;
        if started.elapsed() >= LISTEN_DEADLINE {
            return Err(BrokerError::NotListening {
                port,
                deadline: LISTEN_DEADLINE,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_port_already_in_use_when_starting_a_broker_on_it_then_start_fails_instead_of_probing_the_stranger(
    ) {
        let stranger = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = stranger.local_addr().unwrap().port();
        assert!(start_in_process(port).is_err());
        assert!(spawn_mosquitto(port).is_err());
    }

    #[test]
    fn given_port_zero_when_starting_in_process_then_it_listens_on_a_real_port() {
        let broker = start_in_process(0).unwrap();
        assert_ne!(broker.port, 0);
        assert_eq!(broker.kind, BrokerKind::InProcess);
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, broker.port)).is_ok());
    }
}
