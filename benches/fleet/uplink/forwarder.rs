//! The TCP hop between the agent and Mosquitto that makes S6's outages and times the CONNACK exactly.
//!
//! An outage ([`Forwarder::down`]) closes the listener (new connections are refused) and resets every relayed
//! connection (every accepted socket has a zero linger, so closing it sends RST): what the agent sees when the
//! broker's host dies. [`Forwarder::up`] listens again on the same port and returns the instant it did. The
//! first byte the broker sends on a connection is its CONNACK (packet type 2, first byte 0x20 in MQTT 3.1.1
//! and 5); the forwarder notes when it passed that byte on to the agent.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::task::{AbortHandle, JoinHandle};

/// First byte of a CONNACK packet (type 2, no flags).
const CONNACK: u8 = 0x20;

/// A forwarder on 127.0.0.1:`port` relaying to 127.0.0.1:`upstream`.
pub(super) struct Forwarder {
    /// The port the agent connects to.
    pub(super) port: u16,
    upstream: u16,
    runtime: Handle,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    connections: Mutex<Vec<AbortHandle>>,
    connacks: Mutex<Vec<Instant>>,
    upstream_connects: Mutex<Vec<Instant>>,
}

impl Forwarder {
    /// Listens on a free port of 127.0.0.1 and relays every connection to 127.0.0.1:`upstream`.
    ///
    /// The port is taken below Linux's ephemeral range (32768 and up): during an outage the port is closed, and
    /// an ephemeral one could meanwhile be handed to any process on the machine that binds port 0 or connects.
    pub(super) fn start(runtime: &Handle, upstream: u16) -> anyhow::Result<Forwarder> {
        let mut forwarder = Forwarder {
            port: 0,
            upstream,
            runtime: runtime.clone(),
            shared: Arc::default(),
            accept: None,
        };
        let first = 20_000 + (std::process::id() % 4_000) as u16 * 2;
        for port in (first..32_000).chain(20_000..first) {
            forwarder.port = port;
            if forwarder.up().is_ok() {
                return Ok(forwarder);
            }
        }
        anyhow::bail!("the forwarder found no free port between 20000 and 32000")
    }

    /// Listens again (on the same port once it has one); returns when it listens.
    pub(super) fn up(&mut self) -> anyhow::Result<Instant> {
        let port = self.port;
        let listener = self
            .runtime
            .block_on(TcpListener::bind(("127.0.0.1", port)))
            .with_context(|| format!("the forwarder cannot listen on port {port}"))?;
        let listening = Instant::now();
        self.port = listener.local_addr()?.port();
        let shared = Arc::clone(&self.shared);
        let upstream = self.upstream;
        self.accept = Some(self.runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let _ = client.set_nodelay(true);
                // Closing this socket, for whatever reason, resets the connection.
                let _ = client.set_zero_linger();
                let relay = tokio::spawn(relay(client, upstream, Arc::clone(&shared)));
                if let Ok(mut connections) = shared.connections.lock() {
                    connections.retain(|handle| !handle.is_finished());
                    connections.push(relay.abort_handle());
                }
            }
        }));
        Ok(listening)
    }

    /// The outage: stops listening (returns once the port is closed) and resets every relayed connection.
    pub(super) fn down(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            // The listener is dropped when the aborted task is; wait for that.
            let _ = self.runtime.block_on(accept);
        }
        let connections: Vec<AbortHandle> = self
            .shared
            .connections
            .lock()
            .map(|mut connections| connections.drain(..).collect())
            .unwrap_or_default();
        for connection in connections {
            connection.abort();
        }
    }

    /// The first connection to the broker made at or after `since` (the broker was accepting then).
    pub(super) fn upstream_connect_since(&self, since: Instant) -> Option<Instant> {
        let connects = self.shared.upstream_connects.lock().ok()?;
        connects.iter().copied().find(|at| *at >= since)
    }

    /// The first CONNACK passed to the agent at or after `since`.
    pub(super) fn connack_since(&self, since: Instant) -> Option<Instant> {
        let connacks = self.shared.connacks.lock().ok()?;
        connacks.iter().copied().find(|at| *at >= since)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.down();
    }
}

/// Relays one connection both ways until either side closes, noting when a CONNACK went to the client.
async fn relay(client: TcpStream, upstream: u16, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    if let Ok(mut connects) = shared.upstream_connects.lock() {
        connects.push(Instant::now());
    }
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up = tokio::io::copy(&mut client_rx, &mut server_tx);
    let down = async {
        let mut buffer = vec![0u8; 16 * 1024];
        let mut first = true;
        loop {
            let read = server_rx.read(&mut buffer).await?;
            if read == 0 {
                return std::io::Result::Ok(());
            }
            client_tx.write_all(&buffer[..read]).await?;
            if first && buffer[0] == CONNACK {
                if let Ok(mut connacks) = shared.connacks.lock() {
                    connacks.push(Instant::now());
                }
            }
            first = false;
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}
