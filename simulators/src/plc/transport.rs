//! The per-connection transport the Modbus server writes to: a `TcpStream` that can cut its next response frame
//! in half on cue, then either go silent for good or reset the connection (TCP RST).
//! Deliberately knows nothing about Modbus: the service arms it right before returning the answer to cut.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

const NOT_ARMED: u8 = 0;
const ARMED_STALL: u8 = 1;
const ARMED_RESET: u8 = 2;

/// What happens after half of the next response frame was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterHalf {
    /// Swallow everything written from now on: the peer sees a stalled device.
    Stall,
    /// Reset the connection.
    Reset,
}

/// Shared between one connection's service and its transport.
#[derive(Debug)]
pub(crate) struct ConnectionCue {
    /// Connection number, from 1.
    pub(crate) id: u64,
    armed: AtomicU8,
}

impl ConnectionCue {
    pub(crate) fn new(id: u64) -> Self {
        Self {
            id,
            armed: AtomicU8::new(NOT_ARMED),
        }
    }

    /// Cuts the next frame written on this connection in half.
    pub(crate) fn arm(&self, after: AfterHalf) {
        let value = match after {
            AfterHalf::Stall => ARMED_STALL,
            AfterHalf::Reset => ARMED_RESET,
        };
        self.armed.store(value, Ordering::SeqCst);
    }

    fn take(&self) -> Option<AfterHalf> {
        match self.armed.swap(NOT_ARMED, Ordering::SeqCst) {
            ARMED_STALL => Some(AfterHalf::Stall),
            ARMED_RESET => Some(AfterHalf::Reset),
            _ => None,
        }
    }
}

/// Half of one frame still to be written, and what to do once it is out.
struct HalfFrame {
    bytes: Vec<u8>,
    written: usize,
    frame_len: usize,
    after: AfterHalf,
}

/// A `TcpStream` that obeys its connection's cue.
pub(crate) struct FaultyStream {
    inner: TcpStream,
    cue: Arc<ConnectionCue>,
    half: Option<HalfFrame>,
    stalled: bool,
}

impl FaultyStream {
    pub(crate) fn new(inner: TcpStream, cue: Arc<ConnectionCue>) -> Self {
        Self {
            inner,
            cue,
            half: None,
            stalled: false,
        }
    }
}

impl AsyncRead for FaultyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.stalled {
            return Poll::Ready(Ok(buf.len()));
        }
        if this.half.is_none() {
            match this.cue.take() {
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
                Some(after) => {
                    let cut = (buf.len() / 2).max(1);
                    this.half = Some(HalfFrame {
                        bytes: buf[..cut].to_vec(),
                        written: 0,
                        frame_len: buf.len(),
                        after,
                    });
                }
            }
        }
        let half = this.half.as_mut().expect("set just above");
        while half.written < half.bytes.len() {
            match Pin::new(&mut this.inner).poll_write(cx, &half.bytes[half.written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => half.written += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let (frame_len, after) = (half.frame_len, half.after);
        if Pin::new(&mut this.inner).poll_flush(cx).is_pending() {
            return Poll::Pending;
        }
        this.half = None;
        match after {
            AfterHalf::Stall => {
                this.stalled = true;
                // Report the whole frame as written so the server believes it answered.
                Poll::Ready(Ok(frame_len.min(buf.len())))
            }
            AfterHalf::Reset => {
                // A zero linger makes the close that follows this error send RST instead of FIN.
                let _ = this.inner.set_zero_linger();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "simulated reset after half a frame",
                )))
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.stalled {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
