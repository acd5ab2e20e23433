//! What serves one accepted connection, built once on each worker for each
//! listener: the TLS handshake on https sockets, then HTTP/2 (after ALPN, or
//! the preface on a plain socket) or `Conn` and actix-http's HTTP/1.1
//! dispatcher, both calling the same middleware and `App`.

use std::future::ready;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_http::error::DispatchError;
use actix_service::boxed;
use actix_service::{Service, ServiceFactory, fn_factory, fn_service};
use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::web;

use super::h1::conn::{Conn, ConnState, Stream};
use super::shared::middleware;
use super::shared::state::AppState;
use super::workers::{Live, Worker};
use super::{Arrival, ConnFactory, Listening, Parts, PeerAddr, QuicFactory, Security, h2, h3, tls};
use crate::handover::Handover;

/// The middleware in front of `app` on `listening`, as every protocol has
/// it (an https listener's Alt-Svc among it; other listeners have none).
fn layer<A>(
    app: A,
    parts: &Parts,
    listening: &Listening,
    builtin_routes: bool,
) -> Rc<middleware::Factory<A>> {
    Rc::new(middleware::Factory {
        app,
        config: listening.config.clone(),
        shared: middleware::Shared {
            state: parts.state.clone(),
            phase: parts.phase.clone(),
            builtin_routes,
            alt_svc: listening.alt_svc.clone(),
        },
    })
}

/// accept -> [TLS handshake ->] HTTP/2, or `Conn` -> HTTP/1.1 dispatcher;
/// either -> middleware -> `App`.
pub(super) fn pipeline<S, A, B>(
    app: A,
    parts: &Parts,
    worker: &Worker,
    arrival: Arrival,
    listening: &Listening,
    builtin_routes: bool,
) -> ConnFactory<S>
where
    S: Stream + PeerAddr,
    A: ServiceFactory<
            actix_http::Request,
            Config = actix_web::dev::AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    A::Future: 'static,
    B: MessageBody + 'static,
{
    let layer = layer(app, parts, listening, builtin_routes);
    let s = &parts.state.settings.server;
    let setup = Rc::new(ConnSetup {
        state: parts.state.clone(),
        handover: parts.handover.clone(),
        worker: worker.clone(),
        // Handed-over connections are HTTP/1.1 between two requests.
        http2: s.http2 && matches!(arrival, Arrival::Accepted),
        h2: h2::Limits {
            handshake_timeout: s.client_header_timeout,
            keep_alive: s.keep_alive,
            send_timeout: s.send_timeout,
            body_timeout: s.client_body_timeout + middleware::BODY_DEADLINE_GRACE,
            max_head: u32::try_from(parts.state.settings.limits.max_head_bytes).unwrap_or(u32::MAX),
            max_streams: parts.state.settings.limits.max_concurrent_streams,
        },
        keep_alive: s.keep_alive,
        request_timeout: match arrival {
            Arrival::Accepted => s.client_header_timeout,
            Arrival::Adopted => s.keep_alive.max(s.client_header_timeout),
        },
    });
    let tls = match listening.security {
        Security::Plain => None,
        Security::Tls => parts.state.tls.as_ref(),
    };
    // Built once on each worker: the application, and the HTTP/1.1
    // dispatcher's service over it; HTTP/2 connections call the same
    // application.
    let Some(tls) = tls else {
        return boxed::factory(fn_factory(move || {
            let (layer, setup) = (layer.clone(), setup.clone());
            async move {
                let app = Rc::new(layer.new_service(()).await?);
                let h1 = Rc::new(h1::<S, _>(app.clone(), &setup).new_service(()).await?);
                Ok(fn_service(move |io: S| {
                    serve_plain(io, setup.clone(), app.clone(), h1.clone())
                }))
            }
        }));
    };
    let t = &parts.state.settings.tls;
    let handshakes =
        tls::Handshakes::new(tls.config.clone(), t.handshake_timeout, t.max_handshakes);
    boxed::factory(fn_factory(move || {
        let (layer, setup, handshakes) = (layer.clone(), setup.clone(), handshakes.clone());
        async move {
            let app = Rc::new(layer.new_service(()).await?);
            let h1 = Rc::new(
                h1::<tls::TlsStream<S>, _>(app.clone(), &setup)
                    .new_service(())
                    .await?,
            );
            Ok(fn_service(move |io: S| {
                serve_tls(
                    io,
                    handshakes.clone(),
                    setup.clone(),
                    app.clone(),
                    h1.clone(),
                )
            }))
        }
    }))
}

/// What the connections of one worker and listener are served with.
struct ConnSetup {
    state: web::Data<AppState>,
    handover: Arc<Handover>,
    worker: Worker,
    /// HTTP/2 is served: h2c after its preface, h2 after ALPN.
    http2: bool,
    h2: h2::Limits,
    keep_alive: Duration,
    request_timeout: Duration,
}

impl ConnSetup {
    /// An HTTP/2 connection, plain or TLS, served until it ends; counted
    /// (`live`) until then.
    async fn serve_h2<T, M>(
        &self,
        io: T,
        peer: Option<std::net::SocketAddr>,
        app: Rc<M>,
        _live: Live,
    ) where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
        M: Service<
                actix_http::Request,
                Response = actix_http::Response<middleware::Counted>,
                Error = actix_web::Error,
            > + 'static,
    {
        let drain = self.handover.draining();
        if let Err(e) = h2::serve(io, peer, app, drain, self.h2).await {
            tracing::debug!(error = %e, "HTTP/2 connection ended with an error");
        }
    }

    /// An HTTP/1.1 connection's `Conn`, plain or TLS.
    fn conn<T: Stream>(&self, io: T, live: Live) -> Conn<T> {
        let settings = &self.state.settings;
        Conn::new(
            io,
            settings.server.send_timeout,
            settings.limits.max_head_bytes,
            self.handover.clone(),
            live,
        )
    }
}

/// A plain connection: HTTP/2 if it begins with the HTTP/2 preface (prior
/// knowledge), HTTP/1.1 otherwise.
async fn serve_plain<S, M, H>(
    io: S,
    setup: Rc<ConnSetup>,
    app: Rc<M>,
    h1: Rc<H>,
) -> Result<(), DispatchError>
where
    S: Stream + PeerAddr,
    M: Service<
            actix_http::Request,
            Response = actix_http::Response<middleware::Counted>,
            Error = actix_web::Error,
        > + 'static,
    H: Service<(Conn<S>, Option<std::net::SocketAddr>), Response = (), Error = DispatchError>,
{
    // Counted from the accept: the drain waits for every connection.
    let live = setup.worker.connection();
    let peer = io.peer();
    if setup.http2 {
        match h2::sniff(&io, setup.h2.handshake_timeout).await {
            h2::Sniffed::Http2 => {
                setup.serve_h2(io, peer, app, live).await;
                return Ok(());
            }
            h2::Sniffed::Gone => return Ok(()),
            h2::Sniffed::Http1 => {}
        }
    }
    h1.call((setup.conn(io, live), peer)).await
}

/// A TLS connection: the handshake, then HTTP/2 if ALPN chose it.
async fn serve_tls<S, M, H>(
    io: S,
    handshakes: tls::Handshakes,
    setup: Rc<ConnSetup>,
    app: Rc<M>,
    h1: Rc<H>,
) -> Result<(), DispatchError>
where
    S: Stream + PeerAddr,
    M: Service<
            actix_http::Request,
            Response = actix_http::Response<middleware::Counted>,
            Error = actix_web::Error,
        > + 'static,
    H: Service<
            (Conn<tls::TlsStream<S>>, Option<std::net::SocketAddr>),
            Response = (),
            Error = DispatchError,
        >,
{
    // Counted from the accept: a connection still in its handshake is open,
    // and the drain waits for it too.
    let live = setup.worker.connection();
    let peer = io.peer();
    let io = handshakes
        .accept(io, &setup.state.metrics)
        .await
        .map_err(|e| DispatchError::Io(e.into()))?;
    if io.is_h2() {
        setup.serve_h2(io, peer, app, live).await;
        return Ok(());
    }
    h1.call((setup.conn(io, live), peer)).await
}

/// The HTTP/1.1 dispatcher over one kind of connection, calling `app`.
fn h1<S, M>(
    app: Rc<M>,
    setup: &ConnSetup,
) -> impl ServiceFactory<
    (Conn<S>, Option<std::net::SocketAddr>),
    Config = (),
    Response = (),
    Error = DispatchError,
    InitError = (),
> + use<S, M>
where
    S: Stream,
    M: Service<
            actix_http::Request,
            Response = actix_http::Response<middleware::Counted>,
            Error = actix_web::Error,
        > + 'static,
{
    // No graceful_shutdown_signal: at a drain, `Conn` releases idle
    // connections itself (handed over) and the middleware answers busy ones
    // with `Connection: close`.
    HttpService::<Conn<S>, _, _>::build()
        .keep_alive(if setup.keep_alive.is_zero() {
            actix_http::KeepAlive::Disabled
        } else {
            actix_http::KeepAlive::Timeout(setup.keep_alive)
        })
        .client_request_timeout(setup.request_timeout)
        .on_connect_ext(|conn: &Conn<S>, ext| {
            ext.insert::<Rc<ConnState>>(conn.state());
        })
        .h1(fn_factory(move || ready(Ok::<_, ()>(app.clone()))))
}

/// QUIC: the handshake, then HTTP/3 -> middleware -> `App`, built once on
/// each worker (at its first QUIC connection).
pub(super) fn quic_pipeline<A, B>(
    app: A,
    parts: &Parts,
    worker: &Worker,
    listening: &Listening,
    builtin_routes: bool,
) -> QuicFactory
where
    A: ServiceFactory<
            actix_http::Request,
            Config = actix_web::dev::AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    A::Future: 'static,
    B: MessageBody + 'static,
{
    let layer = layer(app, parts, listening, builtin_routes);
    let settings = &parts.state.settings;
    let limits = h3::Limits {
        handshake_timeout: settings.tls.handshake_timeout,
        keep_alive: settings.server.keep_alive,
        head_timeout: settings.server.client_header_timeout,
        send_timeout: settings.server.send_timeout,
        body_timeout: settings.server.client_body_timeout + middleware::BODY_DEADLINE_GRACE,
        max_head: settings.limits.max_head_bytes as u64,
    };
    let (state, handover, worker) = (parts.state.clone(), parts.handover.clone(), worker.clone());
    let phase = parts.phase.clone();
    boxed::factory(fn_factory(move || {
        let (layer, state, handover, worker, phase) = (
            layer.clone(),
            state.clone(),
            handover.clone(),
            worker.clone(),
            phase.clone(),
        );
        async move {
            let app = Rc::new(layer.new_service(()).await?);
            Ok(fn_service(
                move |(incoming, handshaking): (quinn::Incoming, crate::quic::Handshaking)| {
                    // Counted from now: the drain waits for it.
                    let live = worker.connection();
                    let (app, state, drain) = (app.clone(), state.clone(), handover.draining());
                    let cut = phase.cut_signal();
                    let handover = handover.clone();
                    actix_web::rt::spawn(async move {
                        let _live = live;
                        let to_successor = || handover.to_successor();
                        h3::serve(
                            incoming,
                            handshaking,
                            app,
                            h3::Ends { drain, cut },
                            to_successor,
                            limits,
                            &state.metrics,
                        )
                        .await;
                    });
                    ready(Ok::<_, ()>(()))
                },
            ))
        }
    }))
}
