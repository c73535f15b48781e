//! [`ScriptedServer`]: a raw Modbus/TCP responder for fuzzing clients. It reads each request frame and answers
//! with whatever the test scripted — arbitrary bytes, a PDU wrapped in a header echoing the request, silence or
//! a closed connection — so a client's response path meets input no well-behaved server would send.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// These bytes, exactly as given.
    Raw(Vec<u8>),
    /// This PDU behind an MBAP header that echoes the request's transaction id and unit id.
    Pdu(Vec<u8>),
    /// No answer; the connection stays open.
    Silence,
    /// The connection is closed.
    Close,
}

#[derive(Debug)]
struct Script {
    queue: VecDeque<Reply>,
    fallback: Reply,
    requests: u64,
}

/// A scripted raw responder; dropping it stops the listener and every connection.
pub struct ScriptedServer {
    local_addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    tasks: JoinSet<()>,
}

impl ScriptedServer {
    /// Binds `addr` (port 0 in tests); requests are answered from the queue, then with `fallback`.
    pub async fn start(addr: &str, fallback: Reply) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind the scripted server on {addr}"))?;
        let local_addr = listener.local_addr().context("no local address")?;
        let script = Arc::new(Mutex::new(Script {
            queue: VecDeque::new(),
            fallback,
            requests: 0,
        }));
        let mut tasks = JoinSet::new();
        tasks.spawn(accept(listener, Arc::clone(&script)));
        Ok(Self {
            local_addr,
            script,
            tasks,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues the answer to a future request.
    pub fn push(&self, reply: Reply) {
        self.lock().queue.push_back(reply);
    }

    /// Replaces the answer used once the queue is empty.
    pub fn set_fallback(&self, reply: Reply) {
        self.lock().fallback = reply;
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Stops the listener and every connection.
    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
    }

    fn lock(&self) -> MutexGuard<'_, Script> {
        self.script
            .lock()
            .expect("script mutex poisoned: a scripted-server thread panicked")
    }
}

async fn accept(listener: TcpListener, script: Arc<Mutex<Script>>) {
    let mut connections = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        connections.spawn(answer(stream, Arc::clone(&script)));
    }
}

/// Reads request frames (7-byte header, then as many bytes as its length field says) and answers each.
async fn answer(mut stream: TcpStream, script: Arc<Mutex<Script>>) {
    let mut header = [0u8; 7];
    loop {
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let mut body = vec![0u8; length.saturating_sub(1)];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let reply = {
            let mut script = script
                .lock()
                .expect("script mutex poisoned: a scripted-server thread panicked");
            script.requests += 1;
            let fallback = script.fallback.clone();
            script.queue.pop_front().unwrap_or(fallback)
        };
        let bytes = match reply {
            Reply::Raw(bytes) => bytes,
            Reply::Pdu(pdu) => {
                let length = u16::try_from(pdu.len() + 1).unwrap_or(u16::MAX);
                let mut frame = vec![header[0], header[1], 0, 0];
                frame.extend_from_slice(&length.to_be_bytes());
                frame.push(header[6]);
                frame.extend_from_slice(&pdu);
                frame
            }
            Reply::Silence => continue,
            Reply::Close => return,
        };
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}
