//! A TLS connection as the rest of the server sees it: the handshake,
//! bounded in time and in how many one worker runs at once, then a
//! [`Stream`] of plaintext that [`super::h1::conn::Conn`] frames, bounds and
//! times like any other connection.
//!
//! Its one difference: it is never handed to another process. Its keys and
//! sequence numbers live in rustls, here; the socket alone would be useless
//! to the next process (kernel TLS could carry them, but not every kernel
//! has it). So at a drain it stays: its next request is answered with
//! `Connection: close`, and if none comes, the keep-alive timer closes it as
//! it would at any time.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;

use super::h1::conn::Stream;
use super::shared::metrics::Metrics;

/// The plaintext side of an established TLS connection over `S`.
pub struct TlsStream<S> {
    io: tokio_rustls::server::TlsStream<S>,
    _open: Open,
}

/// Counts an established TLS connection in `handoff_tls_connections`.
struct Open(prometheus_client::metrics::gauge::Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Accepts TLS on one worker's connections of one listener.
#[derive(Clone)]
pub(crate) struct Handshakes {
    acceptor: tokio_rustls::TlsAcceptor,
    timeout: Duration,
    /// Handshakes this worker may run at once (`tls.max_handshakes`).
    running: Rc<Semaphore>,
}

/// Why a handshake did not give a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HandshakeFailed {
    /// The client sent something that is not a TLS handshake we accept,
    /// or went away.
    Refused,
    /// Not complete within `tls.handshake_timeout` (waiting for a turn
    /// included).
    TimedOut,
}

impl Handshakes {
    pub fn new(config: Arc<rustls::ServerConfig>, timeout: Duration, max: usize) -> Self {
        Self {
            acceptor: tokio_rustls::TlsAcceptor::from(config),
            timeout,
            running: Rc::new(Semaphore::new(max)),
        }
    }

    /// Completes the server side of the handshake on `io`.
    pub async fn accept<S: Stream>(
        &self,
        io: S,
        metrics: &Metrics,
    ) -> Result<TlsStream<S>, HandshakeFailed> {
        let handshake = async {
            let _turn = self.running.acquire().await.map_err(|_| {
                // Never closed; a closed semaphore would refuse rather than wait.
                HandshakeFailed::Refused
            })?;
            self.acceptor
                .accept(io)
                .await
                .map_err(|_| HandshakeFailed::Refused)
        };
        let outcome = match tokio::time::timeout(self.timeout, handshake).await {
            Ok(done) => done,
            Err(_) => Err(HandshakeFailed::TimedOut),
        };
        metrics.record_handshake(match outcome {
            Ok(_) => "ok",
            Err(HandshakeFailed::Refused) => "failed",
            Err(HandshakeFailed::TimedOut) => "timeout",
        });
        outcome.map(|tls| {
            metrics.tls_connections.inc();
            TlsStream {
                io: tls,
                _open: Open(metrics.tls_connections.clone()),
            }
        })
    }
}

impl From<HandshakeFailed> for io::Error {
    fn from(failed: HandshakeFailed) -> Self {
        match failed {
            HandshakeFailed::Refused => {
                io::Error::new(io::ErrorKind::InvalidData, "TLS handshake failed")
            }
            HandshakeFailed::TimedOut => io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake not complete within tls.handshake_timeout",
            ),
        }
    }
}

impl<S> TlsStream<S> {
    /// ALPN chose HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.io.get_ref().1.alpn_protocol() == Some(b"h2")
    }
}

impl<S: Stream> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: Stream> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<S: Stream> AsFd for TlsStream<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().0.as_fd()
    }
}

impl<S: Stream> Stream for TlsStream<S> {
    const HANDS_OVER: bool = false;

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.get_ref().0.poll_writable(cx)
    }

    /// Always ready: rustls may hold the plaintext of the next request
    /// already, decrypted from a record the socket no longer shows. A wake
    /// with nothing to read costs one poll that returns pending.
    fn poll_readable(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn from_fd(_fd: OwnedFd) -> io::Result<Self> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a TLS connection cannot be adopted: its session is in the process that accepted it",
        ))
    }
}
