//! HTTP/3 connections, served by the same middleware and `App` as HTTP/1.1
//! and HTTP/2, over quinn and h3 (`quic` owns the endpoint and the
//! routing of datagrams between processes).
//!
//! A new connection arrives at a worker (the one serving the fewest
//! connections, as adopted ones do) as quinn's `Incoming`: its handshake
//! and all its requests run on that worker's thread, with that worker's
//! instance of the `App`. At the drain each connection sends GOAWAY (two
//! of them, as RFC 9114 §5.2 describes) and answers the requests it took;
//! the client opens a new connection for anything after, which reaches the
//! process that serves next. After a reload the old connection stays until
//! its client closes it, or `server.keep_alive` after its last answer (its
//! datagrams still reach this process); at a stop it ends with H3_NO_ERROR
//! once its answers are out and acknowledged, since the next process starts
//! only when this one has exited. A connection with no request open for
//! `server.keep_alive` ends the same way at any time.
//!
//! Each connection's cost is bounded as HTTP/2's: `tls.handshake_timeout`
//! for the QUIC and TLS handshake, `limits.max_concurrent_streams` requests
//! at once (the transport's stream limit), heads of `limits.max_head_bytes`
//! (431 from h3 beyond), `server.client_body_timeout` for a body,
//! `server.send_timeout` for a client that reads nothing of an answer, and
//! `server.keep_alive` with no request open; flow control windows
//! (`quic::transport`) bound the request bodies it holds.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::{Method, Payload, Request, Response};
use actix_service::Service;
use bytes::{Buf, Bytes};
use futures_core::Stream as FuturesStream;
use h3::error::Code;
use h3::server::RequestStream;
use tokio::sync::Notify;
use tokio::time::{Sleep, sleep, timeout};

use super::h2::head_of;
use crate::quic::Handshaking;

type RecvHalf = RequestStream<h3_quinn::RecvStream, Bytes>;
type SendHalf = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;

/// What an HTTP/3 connection is served with.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    pub handshake_timeout: Duration,
    /// With no request open this long, a connection says GOAWAY and ends
    /// (`server.keep_alive`, as an HTTP/1.1 or HTTP/2 one).
    pub keep_alive: Duration,
    /// A request's head must come within this of its stream.
    pub head_timeout: Duration,
    pub send_timeout: Duration,
    pub body_timeout: Duration,
    pub max_head: u64,
}

/// H3_NO_ERROR: how a connection ends that finished its work.
const NO_ERROR: u32 = 0x100;

/// The instance's signals a connection ends by: the drain (GOAWAY, then
/// the end once its requests are answered) and the cut at
/// `server.drain_timeout` (the end now).
pub(crate) struct Ends<D, C> {
    pub drain: D,
    pub cut: C,
}

/// Serves one QUIC connection from its handshake until it closes; at the
/// drain, GOAWAY, the requests it took, then the end: the client's close
/// after a reload (`to_successor` says which drain this is), ours at a stop;
/// at the cut, ours at once.
pub(crate) async fn serve<S, B>(
    incoming: quinn::Incoming,
    handshaking: Handshaking,
    service: Rc<S>,
    ends: Ends<impl Future<Output = ()>, impl Future<Output = ()>>,
    to_successor: impl Fn() -> bool,
    limits: Limits,
    metrics: &crate::http::shared::metrics::Metrics,
) where
    S: Service<Request, Response = Response<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    let peer = incoming.remote_address();
    let Ok(connecting) = incoming.accept() else {
        metrics.record_quic_handshake("failed");
        return;
    };
    let connection = match timeout(limits.handshake_timeout, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(_)) => {
            metrics.record_quic_handshake("failed");
            return;
        }
        Err(_) => {
            metrics.record_quic_handshake("timeout");
            return;
        }
    };
    drop(handshaking);
    let mut builder = h3::server::builder();
    builder.max_field_section_size(limits.max_head);
    // No reserved ("grease") frames after a response: aioquic up to 1.3
    // (nixpkgs' build) then never reports the response's end, and its
    // request waits until the connection idles out. Grease is optional
    // (RFC 9114 §7.2.8); a client that works is not.
    builder.send_grease(false);
    let built = builder.build::<_, Bytes>(h3_quinn::Connection::new(connection.clone()));
    let mut h3 = match timeout(limits.handshake_timeout, built).await {
        Ok(Ok(h3)) => h3,
        _ => {
            metrics.record_quic_handshake("failed");
            connection.close(quinn::VarInt::from_u32(NO_ERROR), b"");
            return;
        }
    };
    metrics.record_quic_handshake("ok");
    metrics.quic_connections.inc();
    // However this future ends (the drain's timeout drops it), the client
    // is told why: H3_NO_ERROR, so it connects again for what is next
    // rather than taking the end for a failure. No-op once closed.
    let _close = CloseOnDrop(connection.clone());
    let served = serve_connection(
        &connection,
        &mut h3,
        service,
        ends.drain,
        &to_successor,
        limits,
        peer,
    );
    tokio::select! {
        () = served => {}
        () = ends.cut => {
            // The drain timeout passed and what is left is cut: the client
            // is told now, while this worker's runtime still runs the task
            // that sends the close (the cut stops it next; a connection
            // dropped unannounced leaves its client waiting until its idle
            // timeout).
            connection.close(quinn::VarInt::from_u32(NO_ERROR), b"");
        }
    }
    drop(h3);
    metrics.quic_connections.dec();
}

/// The connection once HTTP/3 is set up: requests until the drain, the two
/// GOAWAYs, the requests taken, then the end.
async fn serve_connection<S, B>(
    connection: &quinn::Connection,
    h3: &mut h3::server::Connection<h3_quinn::Connection, Bytes>,
    service: Rc<S>,
    drain: impl Future<Output = ()>,
    to_successor: &impl Fn() -> bool,
    limits: Limits,
    peer: std::net::SocketAddr,
) where
    S: Service<Request, Response = Response<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    let answering = Answering::default();
    let mut drain = pin!(drain);
    // None until the drain; then the moment the second GOAWAY is due.
    let mut narrow_at: Option<Pin<Box<Sleep>>> = None;
    let mut narrowed = false;
    // At a stop, once narrowed: done when every answer is out and has had
    // time to be acknowledged (the client may send nothing more, and the
    // next process waits for this one to exit).
    let mut ending: Option<Pin<Box<dyn Future<Output = ()>>>> = None;
    let mut ended_here = false;
    // Requests h3 took so far. A client's request streams are numbered 0,
    // 4, 8, ... and h3 takes them in that order, so the next one's id is
    // four times this.
    let mut taken: u64 = 0;
    // The id from which requests are refused unprocessed: the id the last
    // GOAWAY named. RFC 9114 §5.2: a GOAWAY's id and every higher one were
    // not processed, and a client may send those requests again elsewhere;
    // h3 0.0.8 refuses only the ids above the one it sends, so the one it
    // names is refused here.
    let refuse_from = Rc::new(Cell::new(u64::MAX));
    // No request open for `server.keep_alive`: the connection ends as at a
    // stop (QUIC's own idle timeout is longer, and kept off by pings while
    // a request is open; see `quic::transport`).
    // `server.keep_alive = 0` turns keep-alive off for HTTP/1.1; here, as
    // for HTTP/2, it turns the idle close off (ending a connection before
    // its first request would refuse every request).
    let mut idle = pin!(idle_for(answering.clone(), limits.keep_alive));
    let idle_closes = !limits.keep_alive.is_zero();
    let mut idled = false;
    loop {
        tokio::select! {
            () = &mut idle, if narrow_at.is_none() && idle_closes => {
                idled = true;
                narrow_at = Some(Box::pin(sleep(Duration::ZERO)));
            }
            () = &mut drain, if narrow_at.is_none() => {
                // RFC 9114 §5.2's graceful close, in two steps. First a
                // GOAWAY naming the largest id: no new request from here
                // on, yet every request the client sent before it hears
                // this is still taken (none is rejected for having crossed
                // it in flight). h3 can name that only once it took a
                // request (before, it names 0); a connection with none
                // gets the second GOAWAY alone.
                if taken > 0 {
                    let _ = h3.shutdown(usize::MAX).await;
                }
                narrow_at = Some(Box::pin(sleep(narrow_delay(connection, to_successor()))));
            }
            () = async { narrow_at.as_mut().expect("set at the drain").await },
                if narrow_at.is_some() && !narrowed => {
                // A round trip later the client has heard it: the GOAWAY
                // now names the first request not taken, and it and every
                // later one are refused unprocessed (H3_REQUEST_REJECTED,
                // safe to send again), so a client that ignores GOAWAY
                // cannot keep giving the old process work. (h3 names the
                // last taken plus one: four times the count.)
                narrowed = true;
                refuse_from.set(refuse_from.get().min(4 * taken));
                let _ = h3.shutdown(1).await;
                // Then the end, once every answer is out: after a reload,
                // `server.keep_alive` later unless the client closed first
                // (as browsers do after a GOAWAY); at a stop or when idle,
                // a few round trips later, for the acknowledgements: the
                // next process waits for this one to exit.
                let grace = if to_successor() && !idled {
                    limits.keep_alive.max(linger_after_answers(connection))
                } else {
                    linger_after_answers(connection)
                };
                let answering = answering.clone();
                ending = Some(Box::pin(async move {
                    answering.none_left().await;
                    sleep(grace).await;
                }));
            }
            () = async { ending.as_mut().expect("set at a stop").await }, if ending.is_some() => {
                ended_here = true;
                break;
            }
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    taken += 1;
                    let service = service.clone();
                    let answer_of = answering.begin();
                    let refuse_from = refuse_from.clone();
                    let unread_wait = linger_after_answers(connection).min(UNREAD_WAIT_MAX);
                    actix_web::rt::spawn(async move {
                        let _answer_of = answer_of;
                        let Ok(Ok((request, mut stream))) =
                            timeout(limits.head_timeout, resolver.resolve_request()).await
                        else {
                            return;
                        };
                        if stream.send_id().into_inner() >= refuse_from.get() {
                            // The head came from a read that returned:
                            // h3-quinn holds the stream, so stopping it
                            // cannot panic (see `discard`).
                            stream.stop_sending(Code::H3_REQUEST_REJECTED);
                            stream.stop_stream(Code::H3_REQUEST_REJECTED);
                            return;
                        }
                        answer(request, stream, peer, service, limits, unread_wait).await;
                    });
                }
                // The connection ended (its client closed it, or it went
                // idle), or h3 takes no more requests: after a GOAWAY,
                // the client's own or a stream beyond ours refused with
                // nothing left in flight.
                Ok(None) | Err(_) => break,
            },
        }
    }
    // Never closed before every answer is out and has had time to be
    // acknowledged: QUIC has no kernel to deliver what is left after a
    // close, as TCP has, and quinn's close drops every byte not yet
    // acknowledged (a GOAWAY, a refusal, the last answers). Then
    // H3_NO_ERROR, and the client connects again, to whichever process
    // serves.
    if ended_here {
        connection.close(quinn::VarInt::from_u32(NO_ERROR), b"");
    } else if narrow_at.is_some() {
        // h3 stopped taking requests before the grace ran out.
        answering.none_left().await;
        tokio::select! {
            _ = connection.closed() => {}
            () = sleep(linger_after_answers(connection)) => {
                connection.close(quinn::VarInt::from_u32(NO_ERROR), b"");
            }
        }
    } else {
        // The client ended it, or said GOAWAY itself and has nothing open:
        // its close is due; pings would keep a silent one for ever.
        answering.none_left().await;
        tokio::select! {
            _ = connection.closed() => {}
            () = sleep(limits.keep_alive.max(linger_after_answers(connection))) => {
                connection.close(quinn::VarInt::from_u32(NO_ERROR), b"");
            }
        }
    }
}

/// How long after the first GOAWAY the second follows. At a stop, two
/// round trips (quinn's estimate; before any sample, its initial 333 ms),
/// at least 50 ms: the next process waits for this one. After a reload
/// there is no hurry, and a client slow to read the GOAWAY (a busy
/// machine, a loaded client) would only see a request refused and send it
/// again: four round trips, at least 1 s.
fn narrow_delay(connection: &quinn::Connection, to_successor: bool) -> Duration {
    if to_successor {
        (connection.rtt() * 4).max(Duration::from_secs(1))
    } else {
        (connection.rtt() * 2).max(Duration::from_millis(50))
    }
}

/// Resolves once no request has been open for `keep_alive`.
async fn idle_for(answering: Answering, keep_alive: Duration) {
    loop {
        answering.none_left().await;
        let begun = answering.begun();
        sleep(keep_alive).await;
        if answering.begun() == begun && answering.open() == 0 {
            return;
        }
    }
}

/// How long a stopping process leaves a connection whose answers are all
/// sent, for their acknowledgements and the client's own close: four round
/// trips, at least 100 ms.
fn linger_after_answers(connection: &quinn::Connection) -> Duration {
    (connection.rtt() * 4).max(Duration::from_millis(100))
}

/// Closes the connection with H3_NO_ERROR when dropped.
struct CloseOnDrop(quinn::Connection);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close(quinn::VarInt::from_u32(NO_ERROR), b"");
    }
}

/// The requests of one connection still being answered.
#[derive(Clone, Default)]
struct Answering(Rc<AnsweringState>);

#[derive(Default)]
struct AnsweringState {
    open: Cell<usize>,
    /// Every answer ever begun on the connection.
    begun: Cell<u64>,
    done: Notify,
}

/// One answer under way; counted until dropped.
struct AnswerUnderWay(Rc<AnsweringState>);

impl Answering {
    fn begin(&self) -> AnswerUnderWay {
        self.0.open.set(self.0.open.get() + 1);
        self.0.begun.set(self.0.begun.get() + 1);
        AnswerUnderWay(self.0.clone())
    }

    fn open(&self) -> usize {
        self.0.open.get()
    }

    fn begun(&self) -> u64 {
        self.0.begun.get()
    }

    async fn none_left(&self) {
        while self.0.open.get() > 0 {
            self.0.done.notified().await;
        }
    }
}

impl Drop for AnswerUnderWay {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
        self.0.done.notify_waiters();
    }
}

/// One request: to the `App` as actix-http's request, the answer back;
/// what is left of a body the `App` did not read is read and dropped
/// meanwhile (`discard`), and for at most `unread_wait` after the answer.
async fn answer<S, B>(
    request: http1::Request<()>,
    stream: h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
    peer: SocketAddr,
    service: Rc<S>,
    limits: Limits,
    unread_wait: Duration,
) where
    S: Service<Request, Response = Response<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    let (mut send, recv) = stream.split();
    let head_only = request.method() == http1::Method::HEAD;
    let unread = Unread::default();
    let Some(req) = to_actix(request, recv, peer, limits.body_timeout, unread.clone()) else {
        send.stop_stream(Code::H3_MESSAGE_ERROR);
        return;
    };
    let response = match service.call(req).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(e) => Response::from(e),
    };
    // Taken before the answer: a body still held by the App (in its
    // answer, say) goes when it is dropped, stopped by quinn.
    let left = unread.borrow_mut().take();
    let Some(recv) = left else {
        respond(response, &mut send, head_only, limits.send_timeout).await;
        return;
    };
    // The unread bytes hold the connection's flow control window (4 MiB)
    // until read: read beside the answer, other requests' uploads on the
    // connection go on.
    let mut rest = pin!(discard(recv));
    let mut answering = pin!(respond(response, &mut send, head_only, limits.send_timeout));
    tokio::select! {
        whole = &mut answering => {
            // A failed answer leaves nothing to wait for: the body is
            // dropped at once.
            if whole {
                let _ = timeout(unread_wait, rest).await;
            }
        }
        () = &mut rest => {
            answering.await;
        }
    }
}

/// Where a body the `App` did not read to its end waits for its answer to
/// go out.
type Unread = Rc<RefCell<Option<RecvHalf>>>;

/// The longest an unread body is waited for after its answer.
const UNREAD_WAIT_MAX: Duration = Duration::from_secs(1);

/// The most of an unread body `discard` reads: the stream's flow control
/// window (`quic::transport`).
const UNREAD_MAX: usize = 1 << 20;

/// What is left of a body the answer does not need, read and dropped until
/// its end or [`UNREAD_MAX`] bytes (a GET's end can come after its answer,
/// when datagrams are being forwarded). A body not over by then is
/// dropped, and quinn asks its client to stop sending it (RFC 9114 §4.1
/// allows an answer before the whole request). The code of that
/// STOP_SENDING is quinn's 0, not H3_NO_ERROR (an unknown code counts as
/// H3_NO_ERROR, RFC 9114 §8.1): h3-quinn 0.0.10 keeps the stream inside a
/// pending read, any read through h3 may leave it there, and asking for a
/// code then panics (hyperium/h3#330, #361; the request's task died with
/// it, and its client saw the stream end without an answer).
async fn discard(mut recv: RecvHalf) {
    let mut left = UNREAD_MAX;
    while let Ok(Some(mut piece)) = poll_fn(|cx| recv.poll_recv_data(cx)).await {
        let n = piece.remaining();
        piece.advance(n);
        left = left.saturating_sub(n);
        if left == 0 {
            return;
        }
    }
}

/// The h3 request as actix-http's, its body read as the handler reads it.
/// None when a name or value cannot be carried over (h3 checked them
/// against the same rules, so never in practice).
fn to_actix(
    request: http1::Request<()>,
    recv: RecvHalf,
    peer: SocketAddr,
    body_timeout: Duration,
    unread: Unread,
) -> Option<Request> {
    let (parts, ()) = request.into_parts();
    let body = Body {
        recv: Some(recv),
        deadline: Some(Box::pin(sleep(body_timeout))),
        end: None,
        unread,
    };
    let mut req = Request::with_payload(Payload::Stream {
        payload: Box::pin(body) as actix_http::BoxedPayloadStream,
    });
    let head = req.head_mut();
    head.method = Method::from_bytes(parts.method.as_str().as_bytes()).ok()?;
    head.uri = parts.uri.to_string().parse().ok()?;
    head.version = http::Version::HTTP_3;
    head.peer_addr = Some(peer);
    let headers = &mut head.headers;
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (name, value) in &parts.headers {
        // RFC 9114 §4.2.1: cookie crumbs are joined for an HTTP/1.1 world.
        if name == http1::header::COOKIE {
            cookies.push(value.as_bytes());
            continue;
        }
        headers.append(
            http::HeaderName::from_bytes(name.as_str().as_bytes()).ok()?,
            http::HeaderValue::from_bytes(value.as_bytes()).ok()?,
        );
    }
    if !cookies.is_empty() {
        headers.insert(
            http::header::COOKIE,
            http::HeaderValue::from_bytes(&cookies.join(&b"; "[..])).ok()?,
        );
    }
    // The authority is the request's host, as HTTP/2's :authority.
    if !headers.contains_key(http::header::HOST)
        && let Some(authority) = parts.uri.authority()
    {
        headers.insert(
            http::header::HOST,
            http::HeaderValue::from_str(authority.as_str()).ok()?,
        );
    }
    Some(req)
}

/// A request body, ending in an error for the handler if it is not complete
/// within `server.client_body_timeout` (and the same grace as HTTP/1.1's).
struct Body {
    /// None once dropped unread: then in `unread`, for after the answer.
    recv: Option<RecvHalf>,
    deadline: Option<Pin<Box<Sleep>>>,
    /// How reading ended; None while it goes on.
    end: Option<BodyEnd>,
    unread: Unread,
}

#[derive(Clone, Copy)]
enum BodyEnd {
    /// Read to its end, or failed: nothing is left to stop.
    Whole,
    /// Not complete within the body timeout: what is left is for
    /// `discard`.
    TimedOut,
}

impl FuturesStream for Body {
    type Item = Result<Bytes, actix_http::error::PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let (None, Some(recv)) = (this.end, this.recv.as_mut()) else {
            return Poll::Ready(None);
        };
        let polled = recv.poll_recv_data(cx);
        if polled.is_pending()
            && let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            this.end = Some(BodyEnd::TimedOut);
            return Poll::Ready(Some(Err(actix_http::error::PayloadError::Io(
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request body not complete within server.client_body_timeout",
                ),
            ))));
        }
        match polled {
            Poll::Ready(Ok(Some(mut chunk))) => {
                let bytes = chunk.copy_to_bytes(chunk.remaining());
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Ok(None)) => {
                this.end = Some(BodyEnd::Whole);
                this.deadline = None;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                this.end = Some(BodyEnd::Whole);
                Poll::Ready(Some(Err(actix_http::error::PayloadError::Io(
                    std::io::Error::other(e.to_string()),
                ))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Body {
    /// A body the handler did not read to its end waits in `unread` for
    /// the answer (`discard`). But first what has already arrived is
    /// read: a GET's stream ends with its head, and a stream the client
    /// has finished is one not to ask it to stop (some clients take that
    /// for the end of the whole stream, answer included: aioquic up to 1.3
    /// discards it).
    fn drop(&mut self) {
        if matches!(self.end, Some(BodyEnd::Whole)) {
            return;
        }
        let Some(mut recv) = self.recv.take() else {
            return;
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Bounded: what has arrived is within the stream's flow control
        // window, and nothing more arrives while this runs.
        loop {
            match recv.poll_recv_data(&mut cx) {
                Poll::Ready(Ok(Some(_))) => {}
                Poll::Ready(Ok(None) | Err(_)) => return,
                Poll::Pending => break,
            }
        }
        *self.unread.borrow_mut() = Some(recv);
    }
}

/// Sends the answer on its stream, as fast as the client reads it;
/// whether it went out whole.
async fn respond(
    response: Response<BoxBody>,
    send: &mut SendHalf,
    head_only: bool,
    send_timeout: Duration,
) -> bool {
    let (response, body) = response.into_parts();
    let mut size = body.size();
    let Some(head) = to_h3(&head_of(&response, &mut size)) else {
        send.stop_stream(Code::H3_INTERNAL_ERROR);
        return false;
    };
    // Every way out without a whole answer resets the stream: dropped, or
    // finished, a stream would end with no head or a cut body, which a
    // client takes for a broken server (h3's closes the whole connection)
    // or, without a length, for the whole answer.
    let outcome = timeout(send_timeout, send.send_response(head)).await;
    if !sent_or_reset(send, outcome, "head") {
        return false;
    }
    let empty = head_only || matches!(size, BodySize::None | BodySize::Sized(0));
    if !empty {
        let mut body = pin!(body);
        loop {
            let chunk = match poll_fn(|cx| body.as_mut().poll_next(cx)).await {
                None => break,
                Some(Ok(chunk)) => chunk,
                // The head and the data so far went out; the stream is reset
                // so the client does not take a cut body for a whole one.
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "response body failed; stream reset");
                    send.stop_stream(Code::H3_INTERNAL_ERROR);
                    return false;
                }
            };
            // send_data waits until QUIC took it all: the client's window.
            let outcome = timeout(send_timeout, send.send_data(chunk)).await;
            if !sent_or_reset(send, outcome, "body") {
                return false;
            }
        }
    }
    send.finish().await.is_ok()
}

/// Whether a part of the answer (`what`: head, body) went out within
/// `server.send_timeout`; if not, the stream is reset: H3_INTERNAL_ERROR
/// when sending failed, H3_REQUEST_CANCELLED when the client did not read
/// it in time.
fn sent_or_reset(
    send: &mut SendHalf,
    outcome: Result<Result<(), h3::error::StreamError>, tokio::time::error::Elapsed>,
    what: &str,
) -> bool {
    match outcome {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "HTTP/3 response {what} not sent; stream reset");
            send.stop_stream(Code::H3_INTERNAL_ERROR);
            false
        }
        Err(_) => {
            send.stop_stream(Code::H3_REQUEST_CANCELLED);
            false
        }
    }
}

/// An answer's head as h3 takes it (the `http` crate of version 1).
fn to_h3(head: &http::Response<()>) -> Option<http1::Response<()>> {
    let mut out = http1::Response::new(());
    *out.status_mut() = http1::StatusCode::from_u16(head.status().as_u16()).ok()?;
    let headers = out.headers_mut();
    for (name, value) in head.headers() {
        headers.append(
            http1::HeaderName::from_bytes(name.as_str().as_bytes()).ok()?,
            http1::HeaderValue::from_bytes(value.as_bytes()).ok()?,
        );
    }
    Some(out)
}
