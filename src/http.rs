//! The HTTP server on the taken listeners: actix-server accepting, actix-http
//! speaking HTTP/1.1 over our own connection type ([`Conn`]), and the
//! actix-web `App` answering.
//!
//! This is what `actix_web::HttpServer` assembles, with one difference that
//! is the reason for doing it here: every accepted stream is wrapped in
//! [`Conn`] before the dispatcher sees it, so that handoff bounds each
//! connection's cost (see `conn`).

use std::future::ready;
use std::rc::Rc;

use actix_http::HttpService;
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::dev::{AppConfig, Server};
use actix_web::middleware::from_fn;
use actix_web::{App, web};

use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::conn::{Conn, ConnState, Stream};
use crate::handover::Handover;
use crate::listeners::{Listener, Taken};
use crate::observe::observe;
use crate::routes;
use crate::state::{AppState, Instance};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot serve on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot install signal handler: {0}")]
    Signals(std::io::Error),
    #[error("start hook failed: {0}")]
    StartHook(String),
}

/// What the application adds to each worker's `App`.
#[derive(Clone)]
pub(crate) struct Routes {
    pub configure: crate::service::Configure,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub builtin: bool,
}

/// Builds (does not start) a server instance on every listener.
pub fn build(factory: &Factory, listeners: &[Taken]) -> Result<Server, ServeError> {
    let state = &factory.state;
    let s = &state.settings.server;
    let workers = if s.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        s.workers
    }
    // actix-server panics above this; the configuration refuses more.
    .min(crate::config::MAX_WORKERS);
    let mut builder = Server::build()
        .workers(workers)
        .max_concurrent_connections(s.max_connections)
        .shutdown_timeout(s.drain_timeout.as_secs().max(1))
        // We handle signals ourselves: SIGHUP means hand-off, not stop.
        .disable_signals();

    for taken in listeners {
        let addr = taken.listener.local_addr();
        let fail = |source| ServeError::Listen {
            addr: addr.clone(),
            source,
        };
        let name = format!("http {addr}");
        let make = factory.clone();
        // actix takes ownership of a clone; we keep the original for a
        // later hand-off.
        builder = match taken.listener.try_clone().map_err(fail)? {
            Listener::Tcp(l) => builder
                .listen(name, l, move || make.service::<tokio::net::TcpStream>())
                .map_err(fail)?,
            Listener::Unix(l) => builder
                .listen_uds(name, l, move || make.service::<tokio::net::UnixStream>())
                .map_err(fail)?,
        };
    }
    Ok(builder.run())
}

/// What each worker (and the adoption of handed-over connections) needs to
/// build the service for a connection.
#[derive(Clone)]
pub struct Factory {
    pub(crate) routes: Routes,
    pub state: web::Data<AppState>,
    pub instance: web::Data<Instance>,
    pub handover: Arc<Handover>,
    /// Connections adopted from another process, served on this thread.
    pub adopted: tokio_util::task::TaskTracker,
}

impl Factory {
    /// Serves every connection from `rx` (handed over by the previous process
    /// or kept in systemd's store): idle, so the next bytes on each are the
    /// start of a request. On this thread, beside the workers, until closed.
    pub async fn adopt_all(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<OwnedFd>) {
        use actix_service::ServiceFactory;
        let (Ok(tcp), Ok(unix)) = (
            self.service::<tokio::net::TcpStream>()
                .new_service(())
                .await,
            self.service::<tokio::net::UnixStream>()
                .new_service(())
                .await,
        ) else {
            tracing::error!("cannot build the service for adopted connections");
            return;
        };
        let (tcp, unix) = (std::rc::Rc::new(tcp), std::rc::Rc::new(unix));
        // actix-server bounds the connections it accepts per worker; these it
        // never sees, so the same bound applies to them here.
        let cap = self.state.settings.server.max_connections;
        while let Some(fd) = rx.recv().await {
            if self.adopted.len() >= cap {
                tracing::warn!(cap, "too many adopted connections; closing one");
                self.state.metrics.connections.closed.inc();
                continue;
            }
            let unix_socket = socket2::SockRef::from(&fd)
                .local_addr()
                .is_ok_and(|a| a.is_unix());
            let served = if unix_socket {
                self.serve_adopted(&unix, fd)
            } else {
                self.serve_adopted(&tcp, fd)
            };
            match served {
                Ok(()) => {
                    self.state.metrics.connections.adopted.inc();
                }
                Err(e) => tracing::warn!(error = %e, "cannot serve an adopted connection"),
            }
        }
    }

    /// Serves one adopted connection with `service`, on this thread.
    fn serve_adopted<S, Svc>(&self, service: &std::rc::Rc<Svc>, fd: OwnedFd) -> std::io::Result<()>
    where
        S: Stream,
        Svc: actix_service::Service<S> + 'static,
    {
        let io = S::from_fd(fd)?;
        let service = service.clone();
        self.adopted
            .spawn_local(async move { service.call(io).await });
        Ok(())
    }

    pub fn service<S: Stream + PeerAddr>(
        &self,
    ) -> impl actix_service::ServiceFactory<
        S,
        Config = (),
        Response = (),
        Error = actix_http::error::DispatchError,
        InitError = (),
    > + use<S> {
        let s = &self.state.settings.server;
        let send_timeout = s.send_timeout;
        let app_state = self.state.clone();
        let instance = self.instance.clone();
        let info = web::Data::new(self.state.info());
        let limits = web::Data::new(crate::service::RequestLimits {
            max_body_bytes: self.state.settings.limits.max_body_bytes,
            client_body_timeout: self.state.settings.server.client_body_timeout,
        });
        let user = self.routes.configure.clone();
        let builtin = self.routes.builtin;
        let app = App::new()
            .app_data(app_state)
            .app_data(instance)
            .app_data(info)
            .app_data(limits)
            .wrap(from_fn(observe))
            .configure(move |cfg| {
                routes::defaults(cfg);
                if builtin {
                    routes::builtin(cfg);
                }
                user(cfg);
            })
            .default_service(web::to(routes::not_found))
            .into_factory()
            .map_err(|err: actix_web::Error| err.error_response());
        let handover = self.handover.clone();
        // No graceful_shutdown_signal: at a drain, `Conn` releases idle
        // connections itself (handed over or closed) and the middleware
        // answers busy ones with `Connection: close`.
        let http = HttpService::<Conn<S>, _, _>::build()
            .keep_alive(if s.keep_alive.is_zero() {
                actix_http::KeepAlive::Disabled
            } else {
                actix_http::KeepAlive::Timeout(s.keep_alive)
            })
            .client_request_timeout(s.client_header_timeout)
            .on_connect_ext(|conn: &Conn<S>, ext| {
                ext.insert::<Rc<ConnState>>(conn.state());
            })
            .h1(map_config(app, |()| AppConfig::default()));
        fn_service(move |io: S| {
            let peer = io.peer();
            ready(Ok((Conn::new(io, send_timeout, handover.clone()), peer)))
        })
        .and_then(http)
    }
}

/// The client's address, where the transport has one.
pub trait PeerAddr {
    fn peer(&self) -> Option<std::net::SocketAddr>;
}

impl PeerAddr for tokio::net::TcpStream {
    fn peer(&self) -> Option<std::net::SocketAddr> {
        self.peer_addr().ok()
    }
}

impl PeerAddr for tokio::net::UnixStream {
    fn peer(&self) -> Option<std::net::SocketAddr> {
        None
    }
}
