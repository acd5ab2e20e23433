//! One accepted connection, wrapped so that whatever its client does, it
//! costs bounded CPU and memory and ends within the configured timeouts.
//!
//! actix-http's HTTP/1 dispatcher has four holes this closes (measured with
//! actix-http 3.20, see tests/hostile.rs):
//! - A client that pipelines requests and never reads its responses: the
//!   dispatcher parses every request it has read and answers each into an
//!   unbounded write buffer (20 MB a connection, measured), and once its read
//!   buffer is full it wakes itself in a loop (100 % CPU).
//! - Pipelined requests mixing `HEAD` with others: its codec keeps one HEAD
//!   flag per connection, set by the last request parsed, so an answer
//!   encoded after the next request was parsed gets the wrong framing (a
//!   body after `HEAD`, none after `GET`).
//!
//!   Both are closed by giving the dispatcher one request at a time: the
//!   bytes of the next request are held back (in the kernel, or here if one
//!   read brought them) until the answer to the last one is written out.
//!   Reading also stops while the socket cannot take our writes (unless a
//!   request body is being received: a client may send its whole body before
//!   it reads anything).
//! - Nothing bounds how long a response may sit unread: a write that makes
//!   no progress for `server.send_timeout` ends the connection (nginx's
//!   `send_timeout` semantics: the time between two successful writes).
//! - A request head is bounded by what fits the dispatcher's buffer (128
//!   KiB) only; here `limits.max_head_bytes` bounds it, as it bounds an
//!   HTTP/2 header list: past it, the connection answers 431 itself and
//!   closes, and the dispatcher never sees the head whole.
//! - A chunked body the handler did not read is drained for as long as the
//!   client trickles it. The request middleware sets a body deadline
//!   (`server.client_body_timeout` from the head) in the connection's
//!   [`ConnState`]; once it passes, reading fails and the connection ends.
//!
//! And one thing actix-http cannot do at all: give a connection up between
//! two requests without closing it. When the server instance drains, a
//! connection that is idle (every byte read belongs to a request that was
//! answered, and the answer is flushed) stops reading and offers its socket
//! to the instance's [`Handover`]; if taken, the dispatcher sees the end of
//! the stream and goes away without shutting the socket down, and another
//! process serves the client's next request. Busy connections finish their
//! request here (answered with `Connection: close`) and are checked again
//! when they become idle.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::framing::Framing;
use crate::handover::{Handover, Offer};
use crate::http::workers::Live;

/// What the request middleware and the connection share. Both run on the
/// connection's own task, so plain cells suffice.
#[derive(Debug, Default)]
pub struct ConnState {
    /// When the body of the request being received must be complete; None
    /// between requests and once the body ended.
    body_deadline: Cell<Option<Instant>>,
    /// Responses whose body the dispatcher has finished with.
    responses: Cell<u64>,
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

    /// A response is complete (its body dropped by the dispatcher).
    pub fn response_done(&self) {
        self.responses.set(self.responses.get() + 1);
    }

    fn receiving_body(&self) -> bool {
        self.body_deadline.get().is_some()
    }
}

/// A stream the server accepts: TCP or unix, with write readiness exposed so
/// that reading can wait for it.
pub trait Stream: AsyncRead + AsyncWrite + AsFd + Unpin + Sized + 'static {
    /// Whether an idle connection can be given to another process: its
    /// socket is all there is to it. Not so for TLS (see `http::tls`).
    const HANDS_OVER: bool = true;

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Ready when there is something to read; otherwise the task is woken
    /// when there is.
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// The stream for a connected socket handed to this process.
    fn from_fd(fd: OwnedFd) -> io::Result<Self>;

    /// Copies the first bytes waiting to be read, leaving them there;
    /// `WouldBlock` when there are none yet (and readiness is cleared).
    fn try_peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let _ = buf;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// recv(2) with MSG_PEEK on a socket.
fn peek_fd(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: recv writes at most buf.len() bytes into buf, which we own.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl Stream for tokio::net::TcpStream {
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write_ready(cx)
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }

    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let std = std::net::TcpStream::from(fd);
        std.set_nonblocking(true)?;
        Self::from_std(std)
    }

    fn try_peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_io(tokio::io::Interest::READABLE, || peek_fd(self.as_fd(), buf))
    }
}

impl Stream for tokio::net::UnixStream {
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write_ready(cx)
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }

    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let std = std::os::unix::net::UnixStream::from(fd);
        std.set_nonblocking(true)?;
        Self::from_std(std)
    }

    fn try_peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_io(tokio::io::Interest::READABLE, || peek_fd(self.as_fd(), buf))
    }
}

/// Where a connection is in giving itself up at a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// Serving.
    No,
    /// Handed over: another process owns the socket; never touch it again.
    HandedOver,
    /// Nobody took it: the dispatcher closes it as usual.
    Closing,
}

pub struct Conn<S> {
    /// Counts this connection on its worker and in the instance.
    _live: Live,
    io: S,
    state: Rc<ConnState>,
    /// Bytes read beyond the end of the request the dispatcher has: the
    /// next pipelined request(s), given to it once the answer is out.
    ahead: Vec<u8>,
    /// The client closed its side after the bytes in `ahead`.
    eof: bool,
    /// The dispatcher's waker while the next request waits for the answer
    /// to the last: woken once it is flushed.
    waiting: Option<Waker>,
    send_timeout: Duration,
    /// Set while the last write could not be completed; cleared by progress.
    write_stall: Option<Pin<Box<Sleep>>>,
    /// Armed to the body deadline, so that a silent client is woken for too.
    body_timer: Option<(Instant, Pin<Box<Sleep>>)>,
    framing: Framing,
    /// How many responses were complete at the last flush of everything
    /// written; None after a write since. Idle needs it equal to both
    /// the responses and the requests.
    flushed_at: Option<u64>,
    handover: Arc<Handover>,
    /// The 431 being written for a head over the limit, and how much of it
    /// is out; then the dispatcher is told the stream ended.
    refusal: Option<(Vec<u8>, usize)>,
    /// Resolves when the instance drains; polled to be woken for it.
    drain: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker `drain` was last polled with: while it is the same, an
    /// atomic load tells whether the drain began (polling the future again
    /// would register the waker anew, under a lock, on every read).
    drain_waker: Option<Waker>,
    release: Release,
}

impl<S: Stream> Conn<S> {
    pub fn new(
        io: S,
        send_timeout: Duration,
        max_head: usize,
        handover: Arc<Handover>,
        live: Live,
    ) -> Self {
        Self {
            _live: live,
            io,
            state: Rc::new(ConnState::default()),
            ahead: Vec::new(),
            eof: false,
            waiting: None,
            send_timeout,
            write_stall: None,
            body_timer: None,
            framing: Framing::new(max_head),
            flushed_at: Some(0),
            refusal: None,
            drain: Box::pin(handover.draining()),
            drain_waker: None,
            handover,
            release: Release::No,
        }
    }

    /// Every request the dispatcher was given is answered, and the answer
    /// written out.
    fn answered(&self) -> bool {
        let responses = self.state.responses.get();
        self.framing.requests() == responses && self.flushed_at == Some(responses)
    }

    /// Between two requests, with nothing unanswered, nothing unsent and
    /// nothing read ahead.
    fn is_idle(&self) -> bool {
        self.framing.at_boundary()
            && self.answered()
            && self.write_stall.is_none()
            && self.ahead.is_empty()
            && !self.eof
    }

    /// Whether the instance drains; keeps this task registered to be woken
    /// when it begins.
    fn poll_draining(&mut self, cx: &mut Context<'_>) -> bool {
        if self
            .drain_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return self.handover.is_draining();
        }
        self.drain_waker = Some(cx.waker().clone());
        self.drain.as_mut().poll(cx).is_ready()
    }

    /// At a drain, once idle: hand the socket over, or let it close.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> bool {
        if self.release != Release::No {
            return true;
        }
        if !self.poll_draining(cx) || !self.is_idle() {
            return false;
        }
        // With nowhere to hand it (or a TLS session that cannot go with
        // it), closing an idle connection now would fail
        // whatever request its client is writing at this instant (the 502 of
        // every deploy behind a pool). It is not closed: its next request is
        // served, answered with `Connection: close`, or the keep-alive timer
        // ends it as at any other time. Handed over, its bytes go with it.
        if !S::HANDS_OVER || !self.handover.hands_over() {
            return false;
        }
        self.release = match self.handover.offer(&self.io) {
            Offer::Taken => Release::HandedOver,
            Offer::Close => Release::Closing,
        };
        true
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

    /// Writes the 431 for a head over `limits.max_head_bytes`; ready once it
    /// is out (or cannot be), when the dispatcher is told the stream ended.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let refusal = self.refusal.get_or_insert_with(|| {
            let date = httpdate::fmt_http_date(std::time::SystemTime::now());
            let answer = format!(
                "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
                 connection: close\r\ndate: {date}\r\n\r\n"
            );
            (answer.into_bytes(), 0)
        });
        while refusal.1 < refusal.0.len() {
            match Pin::new(&mut self.io).poll_write(cx, &refusal.0[refusal.1..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(n)) => {
                    refusal.1 += n;
                    self.write_stall = None;
                }
                Poll::Pending => return self.poll_stall(cx).map_ok(|_| ()),
            }
        }
        let _ = Pin::new(&mut self.io).poll_flush(cx);
        Poll::Ready(Ok(()))
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

impl<S: Stream> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Released: the end of the stream, as far as the dispatcher knows.
        if this.poll_release(cx) {
            return Poll::Ready(Ok(()));
        }
        if let Err(e) = this.poll_body_deadline(cx) {
            return Poll::Ready(Err(e));
        }
        if this.framing.head_too_large() {
            return this.poll_refuse(cx);
        }
        // The next request waits until the answer to the last one is out
        // (see the module docs); poll_flush wakes us.
        if this.framing.at_boundary() && !this.answered() {
            this.waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if !this.ahead.is_empty() {
            let n = this.ahead.len().min(buf.remaining());
            let n = this.framing.take(&this.ahead[..n]);
            if this.framing.head_too_large() {
                this.ahead = Vec::new();
                return this.poll_refuse(cx);
            }
            buf.put_slice(&this.ahead[..n]);
            this.ahead.drain(..n);
            return Poll::Ready(Ok(()));
        }
        if this.eof {
            return Poll::Ready(Ok(()));
        }
        // Responses are waiting for the client to read them: take no further
        // bytes until it does (the kernel's buffers hold them meanwhile).
        if this.write_stall.is_some() && !this.state.receiving_body() {
            match this.io.poll_writable(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(_) => {}
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            let new = &buf.filled()[before..];
            // Whatever follows the end of this request waits in `ahead`.
            let used = this.framing.take(new);
            if this.framing.head_too_large() {
                buf.set_filled(before);
                return this.poll_refuse(cx);
            }
            if used < new.len() {
                this.ahead.extend_from_slice(&new[used..]);
                buf.set_filled(before + used);
            }
        }
        read
    }
}

impl<S: Stream> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.release == Release::HandedOver {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        this.flushed_at = None;
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
        let this = self.get_mut();
        if this.release == Release::HandedOver {
            return Poll::Ready(Ok(()));
        }
        // actix-http flushes the stream only once its write buffer is empty,
        // and on every turn of its loop.
        let flushed = Pin::new(&mut this.io).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.flushed_at = Some(this.state.responses.get());
            // The held reader may go on: at once if the next request is
            // here already (read ahead, or waiting in the socket); else the
            // socket wakes it when one comes, as for any request.
            if this.answered()
                && let Some(reader) = this.waiting.take()
                && (!this.ahead.is_empty() || this.eof || this.io.poll_readable(cx).is_ready())
            {
                reader.wake();
            }
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // The socket is another process's now: no FIN from here.
        if this.release == Release::HandedOver {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.io).poll_shutdown(cx) {
            // A client that reads nothing must not hold the close either.
            Poll::Pending => this.poll_stall(cx).map_ok(|_| ()),
            done => done,
        }
    }
}
