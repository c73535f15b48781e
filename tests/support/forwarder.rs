//! A loopback TCP forwarder placed between a client and the broker, so tests can inject real network
//! faults: cut every connection, or swallow the broker's replies (PUBACKs included) while the client's
//! bytes still reach the broker.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio_util::task::AbortOnDropHandle;

/// A forwarder listening on 127.0.0.1:`port`, relaying to 127.0.0.1:`upstream`.
pub struct Forwarder {
    /// The port clients connect to.
    pub port: u16,
    shared: Arc<Shared>,
    _accept: AbortOnDropHandle<()>,
}

#[derive(Default)]
struct Shared {
    swallow_replies: AtomicBool,
    accepted: AtomicU64,
    connections: Mutex<Vec<AbortHandle>>,
}

impl Forwarder {
    /// Listens on `port` (0 = any free port) and relays each accepted connection to `upstream`.
    pub async fn start(port: u16, upstream: u16) -> Forwarder {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the forwarder port is free");
        let port = listener.local_addr().expect("bound address").port();
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accept_shared.accepted.fetch_add(1, Ordering::Relaxed);
                let relay_shared = accept_shared.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(broker) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        relay_connection(client, broker, &relay_shared).await;
                    }
                });
                accept_shared
                    .connections
                    .lock()
                    .expect("forwarder lock")
                    .push(relay.abort_handle());
            }
        });
        Forwarder {
            port,
            shared,
            _accept: AbortOnDropHandle::new(accept),
        }
    }

    /// Closes every relayed connection now (both sockets); new connections are still accepted.
    pub fn cut(&self) {
        for connection in self
            .shared
            .connections
            .lock()
            .expect("forwarder lock")
            .drain(..)
        {
            connection.abort();
        }
    }

    /// While `on`, bytes from the broker are read and dropped: the client hears nothing back.
    pub fn swallow_replies(&self, on: bool) {
        self.shared.swallow_replies.store(on, Ordering::Relaxed);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.cut();
    }
}

async fn relay_connection(client: TcpStream, broker: TcpStream, shared: &Shared) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut broker_rx, mut broker_tx) = broker.into_split();
    let upstream = async {
        let _ = tokio::io::copy(&mut client_rx, &mut broker_tx).await;
    };
    let downstream = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match broker_rx.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if shared.swallow_replies.load(Ordering::Relaxed) {
                        continue;
                    }
                    if client_tx.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    // Either side closing ends the relay; dropping the halves closes the other side too.
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}
