//! One Modbus/TCP connection: connect under a timeout, then one read at a time, each under its own timeout.
//! Answers are matched by transaction id. A late answer to a request we gave up on is recognised by its id and
//! dropped, so a silent unit behind a gateway costs one timeout, not the connection. Anything that leaves the
//! byte stream in doubt — half a frame at the deadline, an unknown transaction id, a broken header, EOF — breaks
//! the connection, and the caller rebuilds it. Framing lives in `frame`; this module owns the socket only.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::frame::{encode_read, parse_read_response, split_frame, ResponseError, MBAP_HEADER_LEN};
use crate::logic::decode::Table;

/// Transaction ids of abandoned requests remembered, so their late answers can be recognised and dropped.
const ABANDONED_REMEMBERED: usize = 16;
/// Bytes read from the socket at a time; more than the largest frame (260).
const READ_CHUNK: usize = 512;

/// Why a connection could not be established.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address did not resolve.
    #[error("cannot resolve {address}: {source}")]
    Resolve {
        /// The configured address.
        address: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The address resolved to nothing.
    #[error("{0} resolves to no address")]
    NoAddress(String),
    /// The TCP connect failed.
    #[error("connect to {peer}: {source}")]
    Connect {
        /// The address tried.
        peer: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// Resolve and connect took longer than the timeout.
    #[error("connect to {address} timed out after {timeout:?}")]
    Timeout {
        /// The configured address.
        address: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// Why one read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// A whole, matching answer arrived but it is an exception or not the answer asked for; the connection is fine.
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// Nothing of the answer arrived in time; its transaction id is remembered and the connection stays usable.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection cannot be trusted any more and must be rebuilt.
    #[error("{0}")]
    Broken(String),
}

/// An open Modbus/TCP connection that only ever reads.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    buffer: Vec<u8>,
    next_transaction: u16,
    abandoned: VecDeque<u16>,
    late_answers: u64,
    broken: Option<String>,
}

impl Connection {
    /// Resolves `address` (`host:port`) and connects, all within `timeout`.
    pub async fn connect(address: &str, timeout: Duration) -> Result<Connection, ConnectError> {
        let attempt = async {
            let peers: Vec<SocketAddr> = tokio::net::lookup_host(address)
                .await
                .map_err(|source| ConnectError::Resolve {
                    address: address.to_string(),
                    source,
                })?
                .collect();
            let peer = *peers
                .first()
                .ok_or_else(|| ConnectError::NoAddress(address.to_string()))?;
            let stream = TcpStream::connect(peer)
                .await
                .map_err(|source| ConnectError::Connect { peer, source })?;
            // Request/response traffic: do not let Nagle hold a 12-byte request back.
            let _ = stream.set_nodelay(true);
            Ok(Connection {
                stream,
                peer,
                buffer: Vec::with_capacity(READ_CHUNK),
                next_transaction: 1,
                abandoned: VecDeque::with_capacity(ABANDONED_REMEMBERED),
                late_answers: 0,
                broken: None,
            })
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout {
                address: address.to_string(),
                timeout,
            }),
        }
    }

    /// The address connected to.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Late answers recognised and dropped on this connection so far.
    pub fn late_answers(&self) -> u64 {
        self.late_answers
    }

    /// Why the connection is unusable, once a read reported [`ReadError::Broken`].
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Reads `count` registers (or bits, one `u16` of 0/1 each) of `table` from `start` on `unit_id`, waiting at
    /// most `timeout` for the whole exchange.
    pub async fn read(
        &mut self,
        unit_id: u8,
        table: Table,
        start: u16,
        count: u16,
        timeout: Duration,
    ) -> Result<Vec<u16>, ReadError> {
        if let Some(reason) = &self.broken {
            return Err(ReadError::Broken(reason.clone()));
        }
        let result = self.exchange(unit_id, table, start, count, timeout).await;
        if let Err(ReadError::Broken(reason)) = &result {
            self.broken = Some(reason.clone());
        }
        result
    }

    async fn exchange(
        &mut self,
        unit_id: u8,
        table: Table,
        start: u16,
        count: u16,
        timeout: Duration,
    ) -> Result<Vec<u16>, ReadError> {
        let deadline = crate::config::arith::deadline_after(Instant::now(), timeout);
        let transaction = self.next_transaction;
        self.next_transaction = self.next_transaction.wrapping_add(1);
        let request = encode_read(transaction, unit_id, table, start, count);
        match tokio::time::timeout_at(deadline, self.stream.write_all(&request)).await {
            Err(_) => {
                return Err(ReadError::Broken(
                    "request could not be sent in time".into(),
                ))
            }
            Ok(Err(error)) => return Err(ReadError::Broken(format!("send failed: {error}"))),
            Ok(Ok(())) => {}
        }
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            // Frames already buffered first: they may be late answers that arrived in the meantime.
            match split_frame(&self.buffer) {
                Err(error) => return Err(ReadError::Broken(error.to_string())),
                Ok(Some(header)) => {
                    let frame: Vec<u8> = self.buffer.drain(..header.frame_len).collect();
                    if header.transaction == transaction {
                        if header.unit_id != unit_id {
                            return Err(ResponseError::Malformed(format!(
                                "answer from unit {} to a request to unit {unit_id}",
                                header.unit_id
                            ))
                            .into());
                        }
                        return Ok(parse_read_response(
                            table,
                            count,
                            &frame[MBAP_HEADER_LEN..],
                        )?);
                    }
                    match self.abandoned.iter().position(|&t| t == header.transaction) {
                        Some(index) => {
                            self.abandoned.remove(index);
                            self.late_answers += 1;
                            continue;
                        }
                        None => {
                            return Err(ReadError::Broken(format!(
                                "answer with unknown transaction id {} (waiting for {transaction})",
                                header.transaction
                            )))
                        }
                    }
                }
                Ok(None) => {}
            }
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) if self.buffer.is_empty() => {
                    if self.abandoned.len() == ABANDONED_REMEMBERED {
                        self.abandoned.pop_front();
                    }
                    self.abandoned.push_back(transaction);
                    return Err(ReadError::Timeout(timeout));
                }
                Err(_) => {
                    return Err(ReadError::Broken(format!(
                        "{} byte(s) of a frame, then nothing within {timeout:?}",
                        self.buffer.len()
                    )))
                }
                Ok(Ok(0)) => {
                    return Err(ReadError::Broken("connection closed by the device".into()))
                }
                Ok(Ok(n)) => self.buffer.extend_from_slice(&chunk[..n]),
                Ok(Err(error)) => {
                    return Err(ReadError::Broken(format!("receive failed: {error}")))
                }
            }
        }
    }

    /// Closes the connection politely (FIN), within `timeout`.
    pub async fn close(mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.stream.shutdown()).await;
    }
}
