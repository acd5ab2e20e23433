//! HTTP/2 connections: h2 after ALPN on TLS, h2c with prior knowledge on
//! plain sockets, served by the same middleware and `App` as HTTP/1.1.
//!
//! Served here over the `h2` crate rather than by actix-http's HTTP/2
//! dispatcher, for the drain: actix-http 3.20's never sends GOAWAY (its
//! graceful shutdown reaches HTTP/1 connections only) and answers the
//! client's pings forever, so an HTTP/2 connection would keep an old process
//! until `server.drain_timeout` cut it and its streams. Here, when the
//! instance drains, each connection sends GOAWAY (h2's graceful shutdown: a
//! first GOAWAY, a ping round trip, the final one naming the last stream it
//! took), finishes the streams it took, and closes; the client opens a new
//! connection, to the next process, for anything after. An HTTP/2 connection
//! is never handed over: the framing state is in this process.
//!
//! Each connection's cost is bounded: at most `limits.max_concurrent_streams`
//! streams at once, request heads of at most `limits.max_head_bytes` (as
//! HTTP/1.1's), actix-http's flow-control windows ([`STREAM_WINDOW`],
//! [`CONNECTION_WINDOW`]), [`SEND_BUFFER`] of queued response per stream, a response whose client reads nothing of it
//! for `server.send_timeout` is reset, a request body still arriving past
//! `server.client_body_timeout` ends in an error for the handler, and a
//! connection with no stream for `server.keep_alive` is closed with GOAWAY.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::header::{self, HeaderValue};
use actix_http::{Method, Payload, Request, Response};
use actix_service::Service;
use bytes::Bytes;
use futures_core::Stream as FuturesStream;
use h2::RecvStream;
use h2::server::SendResponse;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Sleep, sleep};

/// The receive windows actix-http opens (its `ServiceConfig` defaults): a
/// stream over a 100 ms path is not held to 64 KiB per round trip.
pub const STREAM_WINDOW: u32 = 1024 * 1024;
pub const CONNECTION_WINDOW: u32 = 2 * 1024 * 1024;
/// Response bytes queued per stream before the socket takes them.
pub const SEND_BUFFER: usize = 64 * 1024;
/// What one DATA frame carries at most (the protocol's default frame size).
const CHUNK: usize = 16 * 1024;

/// What an HTTP/2 connection is served with.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    /// The preface and SETTINGS must arrive within this; and after a
    /// GOAWAY, a client that does not acknowledge it is closed after this
    /// (once it has no stream open).
    pub handshake_timeout: Duration,
    /// Idle (no stream) this long: GOAWAY and close. Zero: never.
    pub keep_alive: Duration,
    pub send_timeout: Duration,
    /// From the head: the body must be complete by then (with the same
    /// grace as HTTP/1.1's, so a handler's own 408 gets out first).
    pub body_timeout: Duration,
    /// `limits.max_head_bytes`: the header list h2 accepts (431 beyond).
    pub max_head: u32,
    /// `limits.max_concurrent_streams`.
    pub max_streams: u32,
}

/// Serves one HTTP/2 connection until it closes; at `drain`, GOAWAY.
pub(crate) async fn serve<T, S, B>(
    io: T,
    peer: Option<SocketAddr>,
    service: Rc<S>,
    drain: impl Future<Output = ()>,
    limits: Limits,
) -> Result<(), h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    S: Service<Request, Response = Response<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(limits.max_head)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buffer_size(SEND_BUFFER)
        .handshake::<T, Bytes>(io);
    let Ok(connection) = tokio::time::timeout(limits.handshake_timeout, handshake).await else {
        return Ok(());
    };
    let mut connection = connection?;
    let open = Rc::new(Streams::default());
    let mut drain = pin!(drain);
    let mut draining = false;
    let mut idle: Option<Pin<Box<Sleep>>> = None;
    // Armed at the GOAWAY: h2 closes once the client acknowledges its ping
    // and the streams are done; one that never acknowledges is closed here,
    // once no stream of it is open, after this grace.
    let mut closing: Option<Pin<Box<Sleep>>> = None;
    let grace = limits.handshake_timeout;
    poll_fn(|cx| {
        loop {
            // The last stream's end wakes this task (idle timer, closing).
            open.watch(cx);
            if !draining && drain.as_mut().poll(cx).is_ready() {
                draining = true;
                connection.graceful_shutdown();
            }
            // Idle: armed while no stream is open, for keep_alive.
            if !draining && !limits.keep_alive.is_zero() {
                if open.count.get() > 0 {
                    idle = None;
                } else {
                    let timer = idle.get_or_insert_with(|| Box::pin(sleep(limits.keep_alive)));
                    if timer.as_mut().poll(cx).is_ready() {
                        draining = true;
                        connection.graceful_shutdown();
                    }
                }
            }
            if draining {
                let timer = closing.get_or_insert_with(|| Box::pin(sleep(grace)));
                if timer.as_mut().poll(cx).is_ready() && open.count.get() == 0 {
                    return Poll::Ready(Ok(()));
                }
            }
            match connection.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    let stream = Open::new(&open);
                    idle = None;
                    // A HEAD is answered with the head alone: its length as
                    // GET's, and the end of the stream.
                    let head_only = request.method() == Method::HEAD;
                    let call = service.call(to_actix(request, peer, limits.body_timeout));
                    let send_timeout = limits.send_timeout;
                    actix_web::rt::spawn(async move {
                        let _stream = stream;
                        let response = match call.await {
                            Ok(response) => response.map_into_boxed_body(),
                            Err(e) => Response::from(e),
                        };
                        send(response, respond, head_only, send_timeout).await;
                    });
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// Counts an open stream while held.
struct Open(Rc<Streams>);

/// The streams of one connection being answered, and the connection's task
/// to wake when the last one ends.
#[derive(Default)]
struct Streams {
    count: Cell<usize>,
    connection: RefCell<Option<Waker>>,
}

impl Streams {
    fn watch(&self, cx: &Context<'_>) {
        let mut waker = self.connection.borrow_mut();
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
    }
}

impl Open {
    fn new(streams: &Rc<Streams>) -> Self {
        streams.count.set(streams.count.get() + 1);
        Self(streams.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let left = self.0.count.get() - 1;
        self.0.count.set(left);
        if left == 0
            && let Some(waker) = self.0.connection.borrow().as_ref()
        {
            waker.wake_by_ref();
        }
    }
}

/// The h2 request as actix-http's, its body read as the handler reads it.
fn to_actix(
    request: http::Request<RecvStream>,
    peer: Option<SocketAddr>,
    body_timeout: Duration,
) -> Request {
    let (parts, recv) = request.into_parts();
    // A stream that ended with its head has no body (what the middleware
    // goes by); the others are read as the handler reads them.
    let mut req = if recv.is_end_stream() {
        Request::new()
    } else {
        let body = Body {
            recv,
            deadline: Some(Box::pin(sleep(body_timeout))),
            timed_out: false,
        };
        Request::with_payload(Payload::Stream {
            payload: Box::pin(body) as actix_http::BoxedPayloadStream,
        })
    };
    let head = req.head_mut();
    head.uri = parts.uri;
    head.method = parts.method;
    head.version = parts.version;
    head.headers = parts.headers.into();
    head.peer_addr = peer;
    req
}

/// A request body: each chunk's flow-control window is given back as the
/// handler takes it, so a client can send no more than a handler reads.
/// The body must be complete by `deadline` (`server.client_body_timeout`
/// from the head, and the same grace as HTTP/1.1's): a client that trickles
/// it then gets its stream ended, whether or not the handler bounds its read.
struct Body {
    recv: RecvStream,
    deadline: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
}

impl FuturesStream for Body {
    type Item = Result<Bytes, actix_http::error::PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.timed_out {
            return Poll::Ready(None);
        }
        let polled = self.recv.poll_data(cx);
        if polled.is_pending()
            && let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            self.deadline = None;
            self.timed_out = true;
            return Poll::Ready(Some(Err(actix_http::error::PayloadError::Io(
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request body not complete within server.client_body_timeout",
                ),
            ))));
        }
        match polled {
            Poll::Ready(Some(Ok(chunk))) => {
                let _ = self.recv.flow_control().release_capacity(chunk.len());
                Poll::Ready(Some(Ok(chunk)))
            }
            // As actix-http's own HTTP/2 dispatcher reports it.
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(actix_http::error::PayloadError::Http2Payload(e))))
            }
            Poll::Ready(None) => {
                self.deadline = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Sends the answer on its stream, as fast as the client's window allows.
async fn send(
    response: Response<BoxBody>,
    mut respond: SendResponse<Bytes>,
    head_only: bool,
    send_timeout: Duration,
) {
    let (response, body) = response.into_parts();
    let mut size = body.size();
    let head = head_of(&response, &mut size);
    let empty = head_only || matches!(size, BodySize::None | BodySize::Sized(0));
    let Ok(mut stream) = respond.send_response(head, empty) else {
        return;
    };
    if empty {
        return;
    }
    let mut body = pin!(body);
    loop {
        let chunk = match poll_fn(|cx| body.as_mut().poll_next(cx)).await {
            None => break,
            Some(Ok(chunk)) => chunk,
            // As actix-http does: the head and the data so far go out, then
            // the stream is dropped unfinished, which h2 resets (CANCEL).
            // An explicit reset would discard what is still queued.
            Some(Err(e)) => {
                tracing::warn!(error = %e, "response body failed; stream cancelled");
                return;
            }
        };
        let mut chunk: Bytes = chunk;
        while !chunk.is_empty() {
            stream.reserve_capacity(chunk.len().min(CHUNK));
            // No window for send_timeout: the client reads nothing of it.
            let capacity =
                tokio::time::timeout(send_timeout, poll_fn(|cx| stream.poll_capacity(cx))).await;
            let granted = match capacity {
                Ok(Some(Ok(n))) if n > 0 => n,
                Ok(Some(Ok(_))) => continue,
                // The stream was reset or the connection went away.
                Ok(None) | Ok(Some(Err(_))) => return,
                Err(_) => {
                    stream.send_reset(h2::Reason::CANCEL);
                    return;
                }
            };
            let part = chunk.split_to(granted.min(chunk.len()));
            if stream.send_data(part, false).is_err() {
                return;
            }
        }
    }
    let _ = stream.send_data(Bytes::new(), true);
}

/// The response head as h2 sends it, as actix-http's HTTP/2 dispatcher
/// makes it: no connection-specific fields (RFC 9113 8.2.2), the length
/// when known (a streamed body keeps the handler's own), a Date.
pub(crate) fn head_of(response: &Response<()>, size: &mut BodySize) -> http::Response<()> {
    let mut head = http::Response::new(());
    *head.status_mut() = response.status();
    *head.version_mut() = http::Version::HTTP_2;
    match response.status() {
        http::StatusCode::NO_CONTENT | http::StatusCode::NOT_MODIFIED => *size = BodySize::None,
        _ => {}
    }
    let headers = head.headers_mut();
    for (name, value) in response.headers() {
        if matches!(
            *name,
            header::CONNECTION | header::TRANSFER_ENCODING | header::UPGRADE
        ) || name == "keep-alive"
            || name == "proxy-connection"
            || (name == header::CONTENT_LENGTH && !matches!(size, BodySize::Stream))
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    if let BodySize::Sized(n) = size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(*n));
    }
    if !headers.contains_key(header::DATE) {
        let now = httpdate::fmt_http_date(std::time::SystemTime::now());
        if let Ok(v) = HeaderValue::from_str(&now) {
            headers.insert(header::DATE, v);
        }
    }
    head
}

/// What a plain connection's first bytes say it speaks.
pub(crate) enum Sniffed {
    /// The HTTP/2 connection preface: h2c with prior knowledge.
    Http2,
    Http1,
    /// Closed, failed, or silent for the whole time a request head has.
    Gone,
}

/// The client connection preface of RFC 9113, section 3.4.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Looks at a plain connection's first bytes without taking them: only the
/// whole 24-byte preface is HTTP/2; anything that differs from it at any
/// byte is HTTP/1.1 (`PRI /x HTTP/1.1` is a valid request with an unusual
/// method). Waits for them at most `limit` (the time a request head has).
pub(crate) async fn sniff<S: crate::http::h1::conn::Stream>(io: &S, limit: Duration) -> Sniffed {
    let look = async {
        let mut first = [0u8; PREFACE.len()];
        loop {
            if poll_fn(|cx| io.poll_readable(cx)).await.is_err() {
                return Sniffed::Gone;
            }
            match io.try_peek(&mut first) {
                Ok(0) => return Sniffed::Gone,
                Ok(n) if first[..n] != PREFACE[..n] => return Sniffed::Http1,
                Ok(n) if n == PREFACE.len() => return Sniffed::Http2,
                // A prefix of the preface so far: the rest is a moment away.
                Ok(_) => sleep(Duration::from_millis(5)).await,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Sniffed::Gone,
            }
        }
    };
    tokio::time::timeout(limit, look)
        .await
        .unwrap_or(Sniffed::Gone)
}
