//! One accepted connection, wrapped so that whatever its client does, it
//! costs bounded CPU and memory and ends within the configured timeouts.
//!
//! actix-http's HTTP/1 dispatcher has three holes this closes (measured with
//! actix-http 3.20, see tests/hostile.rs):
//! - A client that pipelines requests and never reads its responses: the
//!   dispatcher keeps reading and answering into an unbounded write buffer,
//!   and once its read buffer is full it wakes itself in a loop (100 % CPU).
//!   Here, reading stops while the socket cannot take our writes (unless a
//!   request body is being received: a client may send its whole body before
//!   it reads anything), so pipelined requests wait in the kernel.
//! - Nothing bounds how long a response may sit unread: a write that makes
//!   no progress for `server.send_timeout` ends the connection (nginx's
//!   `send_timeout` semantics: the time between two successful writes).
//! - A chunked body the handler did not read is drained for as long as the
//!   client trickles it. The request middleware sets a body deadline
//!   (`server.client_body_timeout` from the head) in the connection's
//!   [`ConnState`]; once it passes, reading fails and the connection ends.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What the request middleware and the connection share. Both run on the
/// connection's own task, so plain cells suffice.
#[derive(Debug, Default)]
pub struct ConnState {
    /// When the body of the request being received must be complete; None
    /// between requests and once the body ended.
    body_deadline: Cell<Option<Instant>>,
}

impl ConnState {
    /// A request with a body began: it must be received by `deadline`.
    pub fn expect_body_until(&self, deadline: Instant) {
        self.body_deadline.set(Some(deadline));
    }

    /// The body was received completely.
    pub fn body_complete(&self) {
        self.body_deadline.set(None);
    }

    fn receiving_body(&self) -> bool {
        self.body_deadline.get().is_some()
    }
}

/// A stream the server accepts: TCP or unix, with write readiness exposed so
/// that reading can wait for it.
pub trait Stream: AsyncRead + AsyncWrite + AsRawFd + Unpin + 'static {
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl Stream for tokio::net::TcpStream {
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write_ready(cx)
    }
}

impl Stream for tokio::net::UnixStream {
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write_ready(cx)
    }
}

pub struct Conn<S> {
    io: S,
    state: Rc<ConnState>,
    send_timeout: Duration,
    /// Set while the last write could not be completed; cleared by progress.
    write_stall: Option<Pin<Box<Sleep>>>,
    /// Armed to the body deadline, so that a silent client is woken for too.
    body_timer: Option<(Instant, Pin<Box<Sleep>>)>,
}

impl<S: Stream> Conn<S> {
    pub fn new(io: S, send_timeout: Duration) -> Self {
        Self {
            io,
            state: Rc::new(ConnState::default()),
            send_timeout,
            write_stall: None,
            body_timer: None,
        }
    }

    /// The state to put in the connection's extensions for the middleware.
    pub fn state(&self) -> Rc<ConnState> {
        self.state.clone()
    }

    /// Fails once the body deadline passed; otherwise keeps a timer armed
    /// for it, so that the task wakes even if the client sends nothing.
    fn poll_body_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some(deadline) = self.state.body_deadline.get() else {
            self.body_timer = None;
            return Ok(());
        };
        let timer = match &mut self.body_timer {
            Some((at, timer)) if *at == deadline => timer,
            slot => {
                &mut slot
                    .insert((deadline, Box::pin(tokio::time::sleep_until(deadline))))
                    .1
            }
        };
        if timer.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request body not complete within server.client_body_timeout",
            ));
        }
        Ok(())
    }

    /// Called when a write could not proceed: fails once writes made no
    /// progress for `send_timeout`.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let send_timeout = self.send_timeout;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(send_timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client read nothing of the response within server.send_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future;

impl<S: Stream> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.poll_body_deadline(cx) {
            return Poll::Ready(Err(e));
        }
        // Responses are waiting for the client to read them: take no further
        // requests until it does (the kernel's buffers hold them meanwhile).
        if this.write_stall.is_some() && !this.state.receiving_body() {
            match this.io.poll_writable(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(_) => {}
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<S: Stream> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.write_stall = None;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_stall(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_shutdown(cx) {
            // A client that reads nothing must not hold the close either.
            Poll::Pending => this.poll_stall(cx).map_ok(|_| ()),
            done => done,
        }
    }
}

impl<S: Stream> AsRawFd for Conn<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}
