//! The layer around the service's `App`, which every request passes: it
//! answers `/healthz`, `/readyz` and `/metrics` itself (so the application's
//! own middleware, a request logger or an auth layer, never sees them),
//! counts requests, refuses bodies announced larger than the limit, bounds
//! the time to receive a body, and ends the connection after the response
//! when
//! - the instance is draining, so keep-alive clients move to the next process
//!   instead of being cut off when this one exits;
//! - the handler left part of the body unread: actix would otherwise read a
//!   chunked rest for as long as the client trickles it.
//!
//! It also tells the connection (`ConnState`) when each response is done,
//! which is half of knowing that a connection is idle (see `conn`).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::{ConnectionType, HttpMessage, Request, Response};
use actix_service::{Service, ServiceFactory};
use actix_web::dev::{AppConfig, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpResponse, ResponseError, web};

use super::drain_signal::LongLived;
use super::payload::{BodyWatch, Tracked};
use super::request_counts::{Cell as CountCell, WorkerCounts};
use super::routes;
use super::state::{AppState, Phase};
use crate::http::h1::conn::ConnState;

/// How long after `server.client_body_timeout` the connection itself ends an
/// incomplete body, so that a handler's own answer to it gets out first.
pub(crate) const BODY_DEADLINE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// What the layer needs besides the application.
#[derive(Clone)]
pub(crate) struct Shared {
    pub state: web::Data<AppState>,
    pub phase: web::Data<Phase>,
    /// Answer `/healthz`, `/readyz`, `/metrics`.
    pub builtin_routes: bool,
    /// `Alt-Svc` for answers on an HTTPS listener while HTTP/3 is served:
    /// how a client learns that it may come back over QUIC.
    pub alt_svc: Option<header::HeaderValue>,
}

/// Makes the layer around each new instance of the application.
pub(crate) struct Factory<A> {
    pub app: A,
    /// What the `App` is told of its listener, as `HttpServer` tells it.
    pub config: AppConfig,
    pub shared: Shared,
}

impl<A, B> ServiceFactory<Request> for Factory<A>
where
    A: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        >,
    A::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = Response<Counted>;
    type Error = actix_web::Error;
    type Config = ();
    type Service = Middleware<A::Service>;
    type InitError = ();
    type Future = Pin<Box<dyn Future<Output = Result<Self::Service, ()>>>>;

    fn new_service(&self, (): ()) -> Self::Future {
        let app = self.app.new_service(self.config.clone());
        let shared = self.shared.clone();
        Box::pin(async move {
            let counts = shared.state.metrics.requests.worker();
            Ok(Middleware {
                app: app.await?,
                local: Rc::new(Local {
                    shared,
                    counts,
                    paths: RefCell::default(),
                }),
            })
        })
    }
}

/// The layer around one instance of the application (one worker's).
pub(crate) struct Middleware<S> {
    app: S,
    local: Rc<Local>,
}

/// What the layer keeps on its worker: the shared parts, its request
/// counts, and what it learned about the paths it answered.
pub(crate) struct Local {
    shared: Shared,
    counts: WorkerCounts,
    paths: RefCell<Paths>,
}

/// What the paths a worker answered lead to, so that counting a request
/// costs one lookup: actix-web finds a request's route pattern by matching
/// its path against the routes again, and the counter for the pattern,
/// method and status would be another lookup. A path keeps its pattern.
/// Bounded: at most `PATHS_KEPT` paths of at most `PATH_KEPT` bytes,
/// forgotten all at once when full (a client that asks for ever new paths
/// only makes it start over), and `PAIRS_KEPT` method and status pairs each.
type Paths = std::collections::HashMap<String, PathCounts, foldhash::fast::RandomState>;
const PATHS_KEPT: usize = 512;
const PATH_KEPT: usize = 256;
const PAIRS_KEPT: usize = 8;

struct PathCounts {
    route: String,
    cells: Vec<(&'static str, u16, CountCell)>,
}

impl Local {
    /// Counts an answer to a request for `path` by its route pattern
    /// (`route`, asked only for a path not seen before), method and status.
    /// Methods outside the standard ones are one label: clients choose
    /// them, and each label is a series kept for good.
    fn count<R: AsRef<str>>(
        &self,
        path: &str,
        method: &Method,
        status: u16,
        route: impl FnOnce() -> R,
    ) {
        let method = standard_method(method);
        let mut paths = self.paths.borrow_mut();
        if let Some(seen) = paths.get_mut(path) {
            if let Some((_, _, cell)) = seen
                .cells
                .iter()
                .find(|(m, s, _)| *s == status && *m == method)
            {
                cell.bump();
                return;
            }
            let cell = self.counts.cell(&seen.route, method, status);
            cell.bump();
            if seen.cells.len() < PAIRS_KEPT {
                seen.cells.push((method, status, cell));
            }
            return;
        }
        let route = route();
        let cell = self.counts.cell(route.as_ref(), method, status);
        cell.bump();
        if path.len() <= PATH_KEPT {
            if paths.len() >= PATHS_KEPT {
                paths.clear();
            }
            let seen = PathCounts {
                route: route.as_ref().to_owned(),
                cells: vec![(method, status, cell)],
            };
            paths.insert(path.to_owned(), seen);
        }
    }
}

/// The route label of a request no route of the application matched.
const UNMATCHED: &str = "unmatched";

fn standard_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

impl<S, B> Service<Request> for Middleware<S>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    type Response = Response<Counted>;
    type Error = actix_web::Error;
    type Future = Answer<S::Future>;

    actix_service::forward_ready!(app);

    fn call(&self, mut req: Request) -> Self::Future {
        let local = &self.local;
        let shared = &local.shared;
        let state = &shared.state;
        local.counts.started();
        let in_flight = InFlight(local.clone());
        let done = Done {
            local: local.clone(),
            method: req.method().clone(),
            conn: req.conn_data::<Rc<ConnState>>().cloned(),
            unread_body: false,
        };
        if shared.builtin_routes
            && let Some((route, res)) =
                routes::builtin(req.method(), req.path(), state, &shared.phase)
        {
            let res = done.finish(res.into());
            local.count(req.path(), req.method(), res.status().as_u16(), || route);
            return Answer::Now {
                response: Some(res),
            };
        }
        let max = state.settings.limits.max_body_bytes;
        let announced = announced_length(&req);
        if let Some(max) = max
            && announced.is_some_and(|len| len > max as u64)
        {
            let res = done.finish(routes::too_large(max).error_response().into());
            local.count(req.path(), req.method(), res.status().as_u16(), || {
                UNMATCHED
            });
            return Answer::Now {
                response: Some(res),
            };
        }
        // A body is coming: bound the time to receive it, and learn whether
        // the handler read it to the end.
        let mut body = None;
        if has_body(&mut req, announced) {
            // A backstop: a handler reading the body under the same timeout
            // (the reference service's `/echo`) answers 408 first; the
            // connection ends just after.
            let deadline = tokio::time::Instant::now()
                + state.settings.server.client_body_timeout
                + BODY_DEADLINE_GRACE;
            let limit = max.map(|m| m as u64);
            let (payload, watch) =
                Tracked::wrap(req.take_payload(), done.conn.clone(), deadline, limit);
            req = req.replace_payload(payload).0;
            body = Some((watch, max.unwrap_or(usize::MAX)));
        }
        Answer::Later {
            app: self.app.call(req),
            done: Some(done),
            body,
            in_flight,
        }
    }
}

/// Decrements the in-flight gauge however the request ends, even when the
/// client goes away and the response future is dropped.
pub(crate) struct InFlight(Rc<Local>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.counts.finished();
    }
}

pin_project_lite::pin_project! {
    /// The response, handoff's own at once or the application's later.
    #[project = AnswerProj]
    pub(crate) enum Answer<F> {
        Now { response: Option<Response<Counted>> },
        Later {
            #[pin]
            app: F,
            done: Option<Done>,
            // The body the handler was given, and limits.max_body_bytes.
            body: Option<(Rc<BodyWatch>, usize)>,
            in_flight: InFlight,
        },
    }
}

impl<F, B> Future for Answer<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody + 'static,
{
    type Output = Result<Response<Counted>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AnswerProj::Now { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
            AnswerProj::Later {
                app, done, body, ..
            } => {
                let result = std::task::ready!(app.poll(cx));
                let mut done = done.take().expect("polled after completion");
                done.unread_body = body.as_ref().is_some_and(|(b, _)| !b.finished());
                let local = done.local.clone();
                let response = match result {
                    // The body went past limits.max_body_bytes: whatever the
                    // handler made of the error, the answer names the limit.
                    Ok(res) if body.as_ref().is_some_and(|(b, _)| b.overflowed()) => {
                        let max = body.as_ref().map_or(0, |(_, max)| *max);
                        let (req, _) = res.into_parts();
                        let res = routes::too_large(max).error_response();
                        local.count(req.path(), &done.method, res.status().as_u16(), || {
                            req.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned())
                        });
                        done.finish(res.into())
                    }
                    Ok(res) => {
                        let (req, status) = (res.request(), res.status().as_u16());
                        local.count(req.path(), &done.method, status, || {
                            req.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned())
                        });
                        done.finish(res.map_into_boxed_body().into())
                    }
                    // An error the application did not turn into a response
                    // itself: answered here, so it is counted like any other.
                    Err(e) => {
                        let res: HttpResponse = e.error_response();
                        let method = standard_method(&done.method);
                        let status = res.status().as_u16();
                        local.counts.cell(UNMATCHED, method, status).bump();
                        done.finish(res.into())
                    }
                };
                Poll::Ready(Ok(response))
            }
        }
    }
}

/// Finishes a response: marks `Connection: close` when due, and ties its
/// body to the connection.
pub(crate) struct Done {
    local: Rc<Local>,
    method: Method,
    conn: Option<Rc<ConnState>>,
    /// The handler left part of the request body unread.
    unread_body: bool,
}

impl Done {
    fn finish(self, mut res: Response<BoxBody>) -> Response<Counted> {
        let upgrade = res.status() == StatusCode::SWITCHING_PROTOCOLS;
        // Draining now, even if it was not when the request came. (An
        // upgrade keeps its `Connection: upgrade`; it ends by its handler.)
        if !upgrade && (self.unread_body || self.local.shared.phase.is_draining()) {
            res.head_mut().set_connection_type(ConnectionType::Close);
        }
        if let Some(alt_svc) = &self.local.shared.alt_svc
            && !res.headers().contains_key(header::ALT_SVC)
        {
            res.headers_mut().insert(header::ALT_SVC, alt_svc.clone());
        }
        let long_lived = if upgrade {
            Some(LongLived::Upgrade)
        } else if matches!(res.body().size(), BodySize::Stream) {
            Some(LongLived::Stream)
        } else {
            None
        };
        if let Some(kind) = long_lived {
            self.local.shared.phase.long_lived_opened(kind);
        }
        let conn = self.conn;
        let local = self.local;
        res.map_body(|_, body| Counted {
            body,
            conn,
            long_lived: long_lived.map(|kind| (kind, local)),
        })
    }
}

fn announced_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A request has a body when it announces a length above zero or a transfer
/// coding (RFC 9112 §6.3; the parser has refused anything ambiguous), or,
/// on HTTP/2, when its stream did not end with its head (a length is
/// optional there).
fn has_body(req: &mut Request, announced: Option<u64>) -> bool {
    announced.is_some_and(|n| n > 0)
        || req.headers().contains_key(header::TRANSFER_ENCODING)
        || (req.version() == actix_http::Version::HTTP_2
            && !matches!(req.payload(), actix_http::Payload::None))
}

/// A response body that tells the connection when the dispatcher is done
/// with it (dropped after its last byte was encoded, or never polled when
/// empty): part of knowing that a connection is idle.
pub(crate) struct Counted {
    body: BoxBody,
    conn: Option<Rc<ConnState>>,
    /// An upgrade's or a stream's kind: counted if it ends while the
    /// instance stops, by how it ended.
    long_lived: Option<(LongLived, Rc<Local>)>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(conn) = &self.conn {
            conn.response_done();
        }
        if let Some((kind, local)) = &self.long_lived
            && local.shared.phase.long_lived_ended(*kind)
        {
            local.shared.state.metrics.long_lived_ended(*kind, false, 1);
        }
    }
}

impl MessageBody for Counted {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> actix_http::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<actix_web::web::Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}
