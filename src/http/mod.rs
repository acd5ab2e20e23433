//! The HTTP server: actix-server accepting on the taken listeners,
//! actix-http speaking HTTP/1.1 over handoff's own connection type
//! (`h1`), HTTP/2 over the `h2` crate (`h2`), HTTP/3 over quinn and h3
//! (`h3`), TLS on https sockets (`tls`), what they share in front of the
//! service's `App` (`shared`: the middleware, routes, counts, state).
//!
//! This is what `actix_web::HttpServer` assembles, with one difference that
//! is the reason for doing it here: every accepted stream is wrapped in
//! `Conn` before the dispatcher sees it, so that handoff bounds each
//! connection's cost and can hand an idle one to another process; and
//! HTTP/2 connections get GOAWAY at a drain. `pipeline` builds what serves
//! one connection.
//!
//! One run of the server on the listeners is an [`Instance`]: it starts,
//! serves, and drains (handing its idle connections over, see `handover`).

// One folder per protocol, and what they share in front of the `App`.
mod h1;
mod h2;
mod h3;
pub mod shared;
// Around them: what serves one connection, TLS over TCP (HTTP/1.1 and
// HTTP/2; QUIC has its own, `crate::quic`), and the workers.
mod pipeline;
mod tls;
mod workers;

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_http::error::DispatchError;
use actix_service::boxed::{BoxService, BoxServiceFactory};
use actix_service::{IntoServiceFactory, ServiceFactory};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Server, ServerHandle, ServiceFactory as AppServiceFactory};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{App, web};
use tokio::net::{TcpStream, UnixStream};

use crate::handover::{Destination, Handover};
use crate::sockets::{Listener, Taken};
use h1::conn::Stream;
use pipeline::pipeline;
use shared::drain_signal::DrainSignal;
use shared::state::{AppState, Phase};
use workers::{Handed, Worker, Workers};

/// A server instance could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve on {addr}: {source}")]
pub struct StartError {
    addr: String,
    source: std::io::Error,
}

/// The service's application, as what serves one connection, for each kind
/// of stream. The `App` type the service wrote is erased here, once per
/// connection: nothing boxed is added per request.
#[derive(Clone)]
pub(crate) struct UserApp {
    tcp: MakeConn<TcpStream>,
    unix: MakeConn<UnixStream>,
    quic: MakeQuic,
}

/// What serves one accepted connection.
type ConnFactory<S> = BoxServiceFactory<(), S, (), DispatchError, ()>;
/// What serves new QUIC connections on a worker.
type QuicFactory = BoxServiceFactory<(), (quinn::Incoming, crate::quic::Handshaking), (), (), ()>;
/// What serves new QUIC connections on a worker, built.
type QuicService = BoxService<(quinn::Incoming, crate::quic::Handshaking), (), ()>;
/// Makes, on a worker, what serves its QUIC connections.
type MakeQuic = Arc<dyn Fn(&Parts, &Worker, &Listening) -> QuicFactory + Send + Sync>;
/// Makes, on a worker, what serves its connections of one kind.
type MakeConn<S> =
    Arc<dyn Fn(&Parts, &Worker, Arrival, &Listening) -> ConnFactory<S> + Send + Sync>;

/// What a listener is to the connections that come through it: whether it
/// speaks TLS, and the `AppConfig` actix-web's `HttpServer` would give the
/// `App` on it (`req.app_config()`, and through it `connection_info()`'s
/// scheme and host when a request names none, and `url_for`).
#[derive(Clone)]
pub(crate) struct Listening {
    pub security: Security,
    pub config: AppConfig,
    /// A TCP listener's address, to find the listener of a connection
    /// handed over (which arrives without one).
    tcp: Option<std::net::SocketAddr>,
    /// The QUIC socket (HTTP/3), served by the process's endpoint, not by
    /// actix-server.
    quic: bool,
    /// `Alt-Svc` for HTTPS answers when HTTP/3 is served.
    pub alt_svc: Option<actix_web::http::header::HeaderValue>,
}

impl Listening {
    /// As `HttpServer` builds it: secure on TLS sockets, the host named by
    /// `server.hostname` or else the socket's address, and that address
    /// (for a unix socket, the 127.0.0.1:8080 actix-web gives it too).
    fn of(listener: &Listener, security: Security, hostname: Option<&str>) -> Self {
        let (tcp, udp) = match listener {
            Listener::Tcp(l) => (l.local_addr().ok(), None),
            Listener::Unix(_) => (None, None),
            Listener::Udp(s) => (None, s.local_addr().ok()),
        };
        let addr = tcp
            .or(udp)
            .unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 8080)));
        let host = hostname.map_or_else(|| addr.to_string(), str::to_owned);
        // actix-web makes its AppConfig in HttpServer only; this is the
        // constructor it keeps public for actix-test (stable since 4.0).
        let config = AppConfig::__priv_test_new(security == Security::Tls, host, addr);
        Self {
            security,
            config,
            tcp,
            quic: matches!(listener, Listener::Udp(_)),
            alt_svc: None,
        }
    }

    /// Of the plain TCP listeners, the one a connection with this local
    /// address came through: the same address, else the same port on a
    /// wildcard address.
    fn find_tcp(listenings: &[Self], local: std::net::SocketAddr) -> Option<&Self> {
        let plain = || listenings.iter().filter(|l| l.security == Security::Plain);
        plain().find(|l| l.tcp == Some(local)).or_else(|| {
            plain().find(|l| {
                l.tcp
                    .is_some_and(|a| a.port() == local.port() && a.ip().is_unspecified())
            })
        })
    }
}

/// What a listener speaks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Security {
    /// Plain HTTP: connections can be handed to another process.
    Plain,
    /// HTTPS (a socket named `https`): connections stay in this process.
    Tls,
}

/// How a connection came to this process, which decides how long it may
/// wait before its next request.
#[derive(Clone, Copy)]
enum Arrival {
    /// Accepted here: its first request must come within
    /// `server.client_header_timeout`.
    Accepted,
    /// Handed over (by the previous process, or from systemd's fd store): a
    /// keep-alive connection between two requests, which waits as long as
    /// `server.keep_alive` lets it, as it would have where it came from.
    Adopted,
}

impl UserApp {
    /// `make` builds the service's `App`, once for every worker and listener
    /// (actix-web's `App` serves one worker), given the instance's drain
    /// signal; handoff adds the data its handlers may ask for (`Info`,
    /// `RequestLimits`, `DrainSignal`) and its middleware.
    pub fn new<F, T, B>(make: F, builtin_routes: bool) -> Self
    where
        F: Fn(&DrainSignal) -> App<T> + Send + Clone + 'static,
        T: AppServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: MessageBody + 'static,
    {
        // The closure runs on every worker thread; the factory need only be
        // Send, as actix-web's HttpServer asks, so each call clones it out.
        let make = Arc::new(Mutex::new(make));
        let app = move |parts: &Parts| {
            let make = crate::sync::lock(&make).clone();
            let drain = parts.phase.drain_signal();
            make(drain)
                .app_data(drain.clone())
                .app_data(web::Data::new(parts.state.info.clone()))
                .app_data(web::Data::new(parts.state.limits()))
                .into_factory()
        };
        let tcp_app = app.clone();
        let quic_app = app.clone();
        Self {
            quic: Arc::new(move |parts, worker, listening| {
                pipeline::quic_pipeline(quic_app(parts), parts, worker, listening, builtin_routes)
            }),
            tcp: Arc::new(move |parts, worker, arrival, listening| {
                pipeline(
                    tcp_app(parts),
                    parts,
                    worker,
                    arrival,
                    listening,
                    builtin_routes,
                )
            }),
            unix: Arc::new(move |parts, worker, arrival, listening| {
                pipeline(
                    app(parts),
                    parts,
                    worker,
                    arrival,
                    listening,
                    builtin_routes,
                )
            }),
        }
    }
}

/// What one connection's service is built from.
#[derive(Clone)]
pub(crate) struct Parts {
    pub state: web::Data<AppState>,
    pub phase: web::Data<Phase>,
    pub handover: Arc<Handover>,
    /// Every listener of the instance, in order.
    pub listenings: Arc<[Listening]>,
}

/// One run of the HTTP server on the listeners.
pub(crate) struct Instance {
    handle: ServerHandle,
    task: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
    parts: Parts,
    workers: Arc<Workers>,
}

impl Instance {
    /// Starts serving on every listener.
    pub fn start(
        state: &web::Data<AppState>,
        app: &UserApp,
        listeners: &[Taken],
    ) -> Result<Self, StartError> {
        let hostname = state.settings.server.hostname.as_deref();
        // HTTP/3 is served when there is a QUIC socket, TLS and no
        // server.http3 = false; HTTPS answers then say where (Alt-Svc).
        let h3_port = listeners
            .iter()
            .filter(|_| state.settings.server.http3 && state.tls.is_some())
            .find_map(|t| match &t.listener {
                Listener::Udp(s) => s.local_addr().ok().map(|a| a.port()),
                _ => None,
            });
        let alt_svc = h3_port.and_then(|port| {
            actix_web::http::header::HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400"))
                .ok()
        });
        let listenings: Arc<[Listening]> = listeners
            .iter()
            .map(|taken| {
                let security = if taken.is_https() || taken.is_quic() {
                    Security::Tls
                } else {
                    Security::Plain
                };
                let mut listening = Listening::of(&taken.listener, security, hostname);
                if taken.is_https() {
                    listening.alt_svc = alt_svc.clone();
                }
                listening
            })
            .collect();
        let parts = Parts {
            state: state.clone(),
            phase: web::Data::new(Phase::default()),
            handover: Arc::new(Handover::new(state.metrics.connections.clone())),
            listenings: listenings.clone(),
        };
        let s = &state.settings.server;
        let workers = if s.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            s.workers
        }
        // actix-server panics above this; the configuration refuses more.
        .min(crate::settings::MAX_WORKERS);
        let workers_of_instance = Workers::new(s.max_connections, &state.metrics);
        let mut builder = Server::build()
            .workers(workers)
            .max_concurrent_connections(s.max_connections)
            .shutdown_timeout(s.drain_timeout.as_secs().max(1))
            // Signals are the lifecycle's: SIGHUP means hand-off, not stop.
            .disable_signals();
        for (taken, listening) in listeners.iter().zip(listenings.iter()) {
            // The QUIC socket is the process's endpoint's (`quic`).
            if listening.quic {
                continue;
            }
            let addr = taken.listener.local_addr();
            let fail = |source| StartError {
                addr: addr.clone(),
                source,
            };
            if listening.security == Security::Tls && state.tls.is_none() {
                return Err(fail(std::io::Error::other(
                    "an https socket needs tls.certificate and tls.key",
                )));
            }
            let name = format!("{} {addr}", taken.fd_name());
            // Runs on each worker's thread as it starts.
            let on_worker = {
                let (app, parts, workers, listening) = (
                    app.clone(),
                    parts.clone(),
                    workers_of_instance.clone(),
                    listening.clone(),
                );
                move || {
                    let (worker, adopted) = workers.join();
                    if let Some(rx) = adopted {
                        let (app, parts) = (app.clone(), parts.clone());
                        actix_web::rt::spawn(serve_adopted(rx, app, parts, worker.clone()));
                    }
                    (worker, app.clone(), parts.clone(), listening.clone())
                }
            };
            // actix takes ownership of a clone; the original stays for a
            // later hand-off.
            builder = match taken.listener.try_clone().map_err(fail)? {
                Listener::Tcp(l) => builder
                    .listen(name, l, move || {
                        let (worker, app, parts, listening) = on_worker();
                        (app.tcp)(&parts, &worker, Arrival::Accepted, &listening)
                    })
                    .map_err(fail)?,
                Listener::Unix(l) => builder
                    .listen_uds(name, l, move || {
                        let (worker, app, parts, listening) = on_worker();
                        (app.unix)(&parts, &worker, Arrival::Accepted, &listening)
                    })
                    .map_err(fail)?,
                Listener::Udp(_) => unreachable!("skipped above"),
            };
        }
        let server = builder.run();
        Ok(Self {
            handle: server.handle(),
            task: actix_web::rt::spawn(server),
            parts,
            workers: workers_of_instance,
        })
    }

    /// Where this instance stands (the lame duck, the drain).
    pub fn phase(&self) -> &Phase {
        &self.parts.phase
    }

    /// Stops accepting, hands idle connections to `to` (none: they stay until
    /// their next request or their keep-alive timeout), lets requests in
    /// flight finish within `server.drain_timeout`, and waits for the
    /// instance to end.
    pub async fn drain(self, reason: impl std::fmt::Debug, to: Option<Destination>) {
        let state = &self.parts.state;
        let timeout = state.settings.server.drain_timeout;
        tracing::info!(
            reason = ?reason,
            in_flight = state.metrics.in_flight(),
            timeout_s = timeout.as_secs(),
            "draining: stopped accepting, finishing requests in flight"
        );
        let tls_open = state.metrics.tls_connections.get();
        if tls_open > 0 {
            let n = u64::try_from(tls_open).unwrap_or(0);
            state.metrics.tls_connections_at_drain.inc_by(n);
            tracing::info!(
                tls_connections = n,
                "TLS connections stay in this process: their next request is answered \
                 with Connection: close, and idle ones close at server.keep_alive"
            );
        }
        let started = Instant::now();
        let counts = &state.metrics.connections;
        let before = (
            counts.handed_over.get(),
            counts.stored.get(),
            counts.closed.get(),
        );
        // Stop accepting first and let the workers take and read what was
        // already accepted: actix's stop drops connections still queued for a
        // worker. Connections not yet accepted stay in the kernel's queue
        // for the next process. Every connection is woken: idle ones are
        // handed over at once, busy ones when their response is out.
        self.handle.pause().await;
        if self.parts.phase.begin_draining() {
            state.metrics.drains.inc();
        }
        self.parts.handover.begin(to);
        tokio::time::sleep(ACCEPTED_GRACE).await;
        // The drain signal only now that this instance accepts no more (a
        // reload has no lame duck to fire it earlier): a WebSocket or
        // event-stream client told to reconnect must reach the successor,
        // not an accept loop that has not paused yet and a handler that
        // refuses new sessions while draining. actix-server's pause answers
        // before its accept thread has deregistered the listeners; the
        // grace covers that.
        self.parts.phase.fire_drain_signal();
        // Every connection, accepted or adopted, ends or is handed over;
        // actix-server's graceful stop would wait only for those it accepted
        // and then end the workers with the adopted ones on them. A stop
        // after the drain timeout is forced: what is left is cut off.
        let left_time = timeout.saturating_sub(started.elapsed());
        let all_closed = tokio::time::timeout(left_time, self.workers.all_closed())
            .await
            .is_ok();
        if !all_closed {
            tracing::warn!(
                connections = self.workers.open(),
                "drain timeout reached with connections still open"
            );
            for (kind, n) in self.parts.phase.begin_cutting() {
                state.metrics.long_lived_ended(kind, true, n);
            }
            if self.parts.listenings.iter().any(|l| l.quic) {
                quic_closes_sent(state).await;
            }
        }
        self.handle.stop(all_closed).await;
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "server instance failed while draining"),
            Err(e) => tracing::error!(error = %e, "server instance task failed"),
        }
        self.parts.handover.end().await;
        tracing::info!(
            handed_over = counts.handed_over.get() - before.0,
            stored = counts.stored.get() - before.1,
            closed = counts.closed.get() - before.2,
            "idle connections at the drain"
        );
        let (closed, cut) = self.parts.phase.long_lived();
        tracing::info!(
            closed,
            cut,
            "upgraded connections and streams ended since the drain signal"
        );
        let took = started.elapsed();
        let left = state.metrics.in_flight();
        if left > 0 {
            tracing::warn!(
                left,
                took_ms = millis(took),
                "drain timeout reached; cut off requests in flight"
            );
        } else {
            tracing::info!(took_ms = millis(took), "drained");
        }
    }
}

/// Serves, on a worker's thread, the adopted connections given to it (see
/// `workers`), as if it had accepted them.
async fn serve_adopted(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Handed>,
    app: UserApp,
    parts: Parts,
    worker: Worker,
) {
    // Built at the first connection through each listener: most workers of
    // most instances never adopt one.
    let mut tcp: std::collections::HashMap<Option<std::net::SocketAddr>, Served<TcpStream>> =
        std::collections::HashMap::new();
    let mut unix = None;
    let mut quic: Option<Rc<QuicService>> = None;
    // A unix listener's AppConfig is the same whichever it was.
    let unix_listening = Listening {
        security: Security::Plain,
        config: parts
            .listenings
            .iter()
            .find(|l| l.tcp.is_none() && !l.quic)
            .map_or_else(AppConfig::default, |l| l.config.clone()),
        tcp: None,
        quic: false,
        alt_svc: None,
    };
    while let Some(handed) = rx.recv().await {
        worker.received();
        let fd = match handed {
            Handed::Socket(fd) => fd,
            Handed::Quic(quic_connection) => {
                let (incoming, handshaking) = *quic_connection;
                let Some(listening) = parts.listenings.iter().find(|l| l.quic) else {
                    incoming.refuse();
                    continue;
                };
                let service = match &quic {
                    Some(s) => s.clone(),
                    None => match (app.quic)(&parts, &worker, listening).new_service(()).await {
                        Ok(built) => quic.insert(Rc::new(built)).clone(),
                        Err(()) => {
                            tracing::warn!("the application failed to build for HTTP/3");
                            incoming.refuse();
                            continue;
                        }
                    },
                };
                let _ = service.call((incoming, handshaking)).await;
                continue;
            }
        };
        let local = socket2::SockRef::from(&fd).local_addr().ok();
        let served = match local.as_ref().and_then(socket2::SockAddr::as_socket) {
            None => {
                serve_one(
                    &mut unix,
                    || (app.unix)(&parts, &worker, Arrival::Adopted, &unix_listening),
                    fd,
                )
                .await
            }
            Some(local) => {
                let listening = Listening::find_tcp(&parts.listenings, local).cloned();
                let key = listening.as_ref().and_then(|l| l.tcp);
                let listening = listening.unwrap_or_else(|| Listening {
                    security: Security::Plain,
                    config: AppConfig::__priv_test_new(false, local.to_string(), local),
                    tcp: None,
                    quic: false,
                    alt_svc: None,
                });
                serve_one(
                    tcp.entry(key).or_default(),
                    || (app.tcp)(&parts, &worker, Arrival::Adopted, &listening),
                    fd,
                )
                .await
            }
        };
        match served {
            Ok(()) => {
                parts.state.metrics.connections.adopted.inc();
                worker.adopted();
            }
            Err(e) => {
                tracing::warn!(error = %e, worker = worker.index(), "cannot serve an adopted connection");
                parts.state.metrics.connections.closed.inc();
            }
        }
    }
}

/// What serves a worker's adopted connections of one kind.
type Served<S> = Option<Rc<BoxService<S, (), DispatchError>>>;

/// Serves one adopted connection, building the service the first time.
async fn serve_one<S: Stream>(
    service: &mut Served<S>,
    make: impl FnOnce() -> ConnFactory<S>,
    fd: OwnedFd,
) -> std::io::Result<()> {
    let io = S::from_fd(fd)?;
    let service = match service {
        Some(s) => s.clone(),
        None => {
            let built = make()
                .new_service(())
                .await
                .map_err(|()| std::io::Error::other("the application failed to build"))?;
            service.insert(Rc::new(built)).clone()
        }
    };
    actix_web::rt::spawn(async move { service.call(io).await });
    Ok(())
}

/// Gives the connections handed to this process (by the previous process,
/// or kept in systemd's fd store) to the workers of the instance serving
/// now: after a take-back, that is a new one.
#[derive(Clone)]
pub(crate) struct Adopter(Rc<RefCell<Arc<Workers>>>);

impl Adopter {
    pub fn new(instance: &Instance) -> Self {
        Self(Rc::new(RefCell::new(instance.workers.clone())))
    }

    /// From now on, connections go to `instance`'s workers.
    pub fn switch_to(&self, instance: &Instance) {
        *self.0.borrow_mut() = instance.workers.clone();
    }

    /// Gives every connection from `rx` to a worker, until `rx` closes.
    pub async fn serve(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<OwnedFd>) {
        while let Some(fd) = rx.recv().await {
            let workers = self.0.borrow().clone();
            if let Err(why) = workers.adopt(Handed::Socket(fd)) {
                tracing::warn!(%why, "closed an adopted connection");
            }
        }
    }

    /// Gives a new QUIC connection to a worker of the instance serving now
    /// (refused, when none can take it).
    pub fn quic(&self, incoming: quinn::Incoming, handshaking: crate::quic::Handshaking) {
        let workers = self.0.borrow().clone();
        if let Err(why) = workers.adopt(Handed::Quic(Box::new((incoming, handshaking)))) {
            tracing::debug!(%why, "refused a QUIC connection");
        }
    }
}

/// Time for workers to pick up and read connections accepted before the pause.
const ACCEPTED_GRACE: Duration = Duration::from_millis(100);

pub(crate) fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// The client's address, where the transport has one.
pub trait PeerAddr {
    fn peer(&self) -> Option<std::net::SocketAddr>;
}

impl PeerAddr for TcpStream {
    fn peer(&self) -> Option<std::net::SocketAddr> {
        self.peer_addr().ok()
    }
}

impl PeerAddr for UnixStream {
    fn peer(&self) -> Option<std::net::SocketAddr> {
        None
    }
}

/// At the cut, each QUIC connection closes itself (`h3::serve`); the tasks
/// that send those CONNECTION_CLOSE frames run on the workers' runtimes,
/// which the forced stop ends next. Waits until the connections are closed
/// (at most [`QUIC_CLOSE_GRACE`]), then a moment for those tasks to send.
async fn quic_closes_sent(state: &AppState) {
    let closed = async {
        while state.metrics.quic_connections.get() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let _ = tokio::time::timeout(QUIC_CLOSE_GRACE, closed).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// How long a cut waits for QUIC connections to close before the workers
/// stop.
const QUIC_CLOSE_GRACE: Duration = Duration::from_millis(250);
