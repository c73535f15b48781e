//! A loopback TCP fault proxy placed between a client and its server (MQTT broker or Modbus PLC), so tests
//! inject real network faults. Modes apply to every relayed connection and to new ones:
//! - `Pass`: relay bytes unchanged (with the optional `delay` and `throttle` applied);
//! - `Refuse`: close existing connections and close new ones at once (the server looks unreachable);
//! - `Blackhole`: forward nothing, keep the sockets open, read nothing more (a half-open link; the sender's
//!   buffers fill). A connection that saw the blackhole stays dead for ever, as a real one would after lost
//!   segments; new connections made after returning to `Pass` work;
//! - `Reset`: reset existing connections (RST) and reset new ones once they send their first bytes.
//!
//! `throttle` caps each direction of each connection at N bytes/s; `delay` adds latency to every chunk.
//! `swallow_replies` drops the server's bytes while the client's still arrive (lost acknowledgements).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

/// What the proxy does with connections (see the module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Relay.
    Pass,
    /// Close everything; new connections are closed at once.
    Refuse,
    /// Hold the sockets, forward nothing.
    Blackhole,
    /// Reset existing connections; reset new ones after their first bytes.
    Reset,
}

/// Chunks read but not yet written, per direction (bounded: the reader waits when full).
const CHUNK_QUEUE: usize = 64;
/// Largest chunk read at once; with a throttle, chunks are also cut to a tenth of a second's worth.
const CHUNK_BYTES: usize = 16 * 1024;

/// A fault proxy listening on 127.0.0.1:`port`, relaying to `upstream`.
pub(crate) struct FaultProxy {
    /// The port clients connect to.
    pub port: u16,
    shared: Arc<Shared>,
    _accept: AbortOnDropHandle<()>,
}

/// The name the first tests used; it is the same proxy.
pub(crate) type Forwarder = FaultProxy;

struct Shared {
    upstream: std::net::SocketAddr,
    mode_tx: watch::Sender<Mode>,
    throttle: AtomicU64,
    delay_ms: AtomicU64,
    swallow_replies: AtomicBool,
    accepted: AtomicU64,
    /// Bumped by every switch to `Reset`; relays watch it and reset their client socket.
    resets_tx: watch::Sender<u64>,
    connections: Mutex<Vec<AbortHandle>>,
}

impl FaultProxy {
    /// Listens on `port` (0 = any free port) and relays each connection to 127.0.0.1:`upstream`.
    pub(crate) async fn start(port: u16, upstream: u16) -> FaultProxy {
        Self::start_to(port, ([127, 0, 0, 1], upstream).into()).await
    }

    /// Listens on `port` (0 = any free port) and relays each connection to `upstream`.
    pub(crate) async fn start_to(port: u16, upstream: std::net::SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the proxy port is free");
        let port = listener.local_addr().expect("bound address").port();
        let (mode_tx, _) = watch::channel(Mode::Pass);
        let shared = Arc::new(Shared {
            upstream,
            mode_tx,
            throttle: AtomicU64::new(0),
            delay_ms: AtomicU64::new(0),
            swallow_replies: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            resets_tx: watch::channel(0).0,
            connections: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accept_shared.accepted.fetch_add(1, Ordering::Relaxed);
                let _ = client.set_nodelay(true);
                match *accept_shared.mode_tx.borrow() {
                    Mode::Refuse => {
                        let _ = client.set_zero_linger();
                        drop(client);
                        continue;
                    }
                    Mode::Pass | Mode::Blackhole | Mode::Reset => {}
                }
                let relay = tokio::spawn(relay(client, accept_shared.clone()));
                let mut connections = accept_shared.connections.lock().expect("proxy lock");
                connections.retain(|handle| !handle.is_finished());
                connections.push(relay.abort_handle());
            }
        });
        FaultProxy {
            port,
            shared,
            _accept: AbortOnDropHandle::new(accept),
        }
    }

    /// Switches the mode; `Refuse` and `Reset` act on existing connections at once.
    pub(crate) fn set_mode(&self, mode: Mode) {
        self.shared.mode_tx.send_replace(mode);
        match mode {
            Mode::Refuse => self.cut(),
            Mode::Reset => {
                self.shared.resets_tx.send_modify(|resets| *resets += 1);
            }
            Mode::Pass | Mode::Blackhole => {}
        }
        eprintln!("fault proxy :{} -> {mode:?}", self.port);
    }

    /// Caps each direction of every connection at `bytes_per_second`; `None` removes the cap.
    pub(crate) fn throttle(&self, bytes_per_second: Option<u64>) {
        self.shared
            .throttle
            .store(bytes_per_second.unwrap_or(0), Ordering::Relaxed);
    }

    /// Delivers every chunk `delay` after it was read (latency, not a throughput limit).
    pub(crate) fn delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(millis, Ordering::Relaxed);
    }

    /// Closes every relayed connection now (both sockets); new connections are still accepted.
    pub(crate) fn cut(&self) {
        let connections: Vec<AbortHandle> = self
            .shared
            .connections
            .lock()
            .expect("proxy lock")
            .drain(..)
            .collect();
        for connection in connections {
            connection.abort();
        }
    }

    /// While `on`, bytes from the server are read and dropped: the client hears nothing back.
    pub(crate) fn swallow_replies(&self, on: bool) {
        self.shared.swallow_replies.store(on, Ordering::Relaxed);
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// One accepted connection: connect upstream (unless blackholed or reset), then relay both directions until
/// either side closes, or a reset is ordered (the client then gets an RST).
async fn relay(mut client: TcpStream, shared: Arc<Shared>) {
    let mut resets_rx = shared.resets_tx.subscribe();
    let mode = *shared.mode_tx.borrow();
    match mode {
        Mode::Blackhole => return hold_forever(client).await,
        Mode::Reset => {
            let mut first = [0u8; 1];
            let _ = client.read(&mut first).await;
            let _ = client.set_zero_linger();
            return;
        }
        Mode::Pass | Mode::Refuse => {}
    }
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let poisoned = AtomicBool::new(false);
    let up = pump(&mut client_rx, &mut server_tx, &shared, &poisoned, false);
    let down = pump(&mut server_rx, &mut client_tx, &shared, &poisoned, true);
    // Either side closing ends the relay; dropping the halves closes the other side too.
    let reset = tokio::select! {
        () = up => false,
        () = down => false,
        changed = resets_rx.changed() => changed.is_ok(),
    };
    if reset {
        let _ = client_tx.as_ref().set_zero_linger();
    }
}

/// Keeps a socket open without reading from it, until the relay task is aborted.
async fn hold_forever(client: TcpStream) {
    std::future::pending::<()>().await;
    drop(client);
}

/// Copies one direction chunk by chunk: a reader task feeds a bounded queue, the writer applies delay,
/// throttle, swallowing and the blackhole.
async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    shared: &Shared,
    poisoned: &AtomicBool,
    from_server: bool,
) {
    let (chunk_tx, mut chunk_rx) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNK_QUEUE);
    let reader_shared = shared;
    let reader_poisoned = poisoned;
    let reader = async move {
        let mut mode_rx = reader_shared.mode_tx.subscribe();
        let mut buffer = vec![0u8; CHUNK_BYTES];
        loop {
            if reader_poisoned.load(Ordering::Relaxed)
                || *mode_rx.borrow_and_update() == Mode::Blackhole
            {
                reader_poisoned.store(true, Ordering::Relaxed);
                return std::future::pending::<()>().await;
            }
            let limit = chunk_limit(reader_shared.throttle.load(Ordering::Relaxed));
            let read = tokio::select! {
                read = from.read(&mut buffer[..limit]) => read,
                _ = mode_rx.changed() => continue,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if chunk_tx
                        .send((Instant::now(), buffer[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let writer = async {
        while let Some((read_at, chunk)) = chunk_rx.recv().await {
            let delay = Duration::from_millis(shared.delay_ms.load(Ordering::Relaxed));
            tokio::time::sleep_until(read_at + delay).await;
            if poisoned.load(Ordering::Relaxed) || *shared.mode_tx.borrow() == Mode::Blackhole {
                poisoned.store(true, Ordering::Relaxed);
                return std::future::pending::<()>().await;
            }
            if from_server && shared.swallow_replies.load(Ordering::Relaxed) {
                continue;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            let throttle = shared.throttle.load(Ordering::Relaxed);
            if throttle > 0 {
                let seconds = chunk.len() as f64 / throttle as f64;
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            }
        }
    };
    tokio::select! {
        () = reader => {}
        () = writer => {}
    }
}

/// Bytes read at once: a tenth of a second's worth under a throttle (at least 1), else a full chunk.
fn chunk_limit(throttle: u64) -> usize {
    if throttle == 0 {
        CHUNK_BYTES
    } else {
        usize::try_from(throttle / 10)
            .unwrap_or(CHUNK_BYTES)
            .clamp(1, CHUNK_BYTES)
    }
}
