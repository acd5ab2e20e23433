//! The public entry point: a [`Service`] is an actix-web application that
//! handoff runs, restarts and redeploys.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::web;

use crate::config::{AppSettings, NoAppSettings};

/// Adds the application's routes (and app data, scopes, middleware inside
/// scopes) to each worker's `App`: what `App::configure` takes.
pub(crate) type Configure = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A start or drain hook, with the service's settings.
pub(crate) type Hook<A> = Box<dyn Fn(Arc<A>) -> Pin<Box<dyn Future<Output = Result<(), String>>>>>;

/// An actix-web service run by handoff: listening sockets from systemd (or
/// bound), layered settings, drain on SIGTERM, reload by hand-off with idle
/// connections passed on, sd_notify and the watchdog, `/healthz`, `/readyz`
/// and `/metrics`. `run` parses the command line (`serve`, `check-config`,
/// `reload --pid PID`), so a service's `main` is this and nothing else:
///
/// ```no_run
/// use actix_web::{HttpResponse, web};
///
/// fn main() -> std::process::ExitCode {
///     handoff::Service::new(|cfg| {
///         cfg.route("/hello", web::get().to(|| async { HttpResponse::Ok().body("hello") }));
///     })
///     .run()
/// }
/// ```
///
/// Handlers reach the service's settings as `web::Data<A>` (see
/// [`Service::with_settings`]) and which process answers as
/// `web::Data<`[`Info`]`>`.
pub struct Service<A: AppSettings = NoAppSettings> {
    pub(crate) name: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) configure: Configure,
    pub(crate) builtin_routes: bool,
    pub(crate) on_start: Vec<Hook<A>>,
    pub(crate) on_drain: Vec<Hook<A>>,
}

impl Service<NoAppSettings> {
    /// A service with the routes `configure` adds and no settings of its
    /// own (an `[app]` section in its configuration is an error).
    pub fn new<F>(configure: F) -> Self
    where
        F: Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    {
        Self::with_settings(configure)
    }

    /// A service with settings of its own: the `[app]` section of the
    /// configuration file and `HANDOFF__APP__*` variables, read into `A`
    /// (see [`AppSettings`]) and given to handlers as `web::Data<A>`.
    ///
    /// ```no_run
    /// # #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
    /// # struct Hello { greeting: String }
    /// # impl handoff::AppSettings for Hello {}
    /// use actix_web::{HttpResponse, web};
    ///
    /// async fn hello(settings: web::Data<Hello>) -> HttpResponse {
    ///     HttpResponse::Ok().body(settings.greeting.clone())
    /// }
    ///
    /// fn main() -> std::process::ExitCode {
    ///     handoff::Service::with_settings::<Hello>(|cfg| {
    ///         cfg.route("/hello", web::get().to(hello));
    ///     })
    ///     .run()
    /// }
    /// ```
    pub fn with_settings<A: AppSettings>(
        configure: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> Service<A> {
        Service {
            name: None,
            version: None,
            configure: Arc::new(configure),
            builtin_routes: true,
            on_start: Vec::new(),
            on_drain: Vec::new(),
        }
    }
}

impl<A: AppSettings> Service<A> {
    /// The name in `--help`, logs (the journal's identifier) and errors;
    /// default: the binary's file name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The version `--version` prints, e.g. `env!("CARGO_PKG_VERSION")`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Leaves out `/healthz`, `/readyz` and `/metrics`. The drain still
    /// answers busy connections with `Connection: close`; a load balancer
    /// then needs another way to see that a host drains.
    pub fn without_builtin_routes(mut self) -> Self {
        self.builtin_routes = false;
        self
    }

    /// Runs `hook` once the settings are loaded and the sockets taken,
    /// before the process reports ready: open a database pool, warm a cache.
    /// An error stops the start (exit status 70); in a reload, the old
    /// process keeps serving.
    pub fn on_start<F, Fut, E>(mut self, hook: F) -> Self
    where
        F: Fn(Arc<A>) -> Fut + 'static,
        Fut: Future<Output = Result<(), E>> + 'static,
        E: fmt::Display,
    {
        self.on_start.push(erase(hook));
        self
    }

    /// Runs `hook` after the drain, when no request is in flight any more
    /// (whether the process stops or handed its sockets to a successor):
    /// close a pool, flush a queue. Bounded by `server.drain_timeout`; an
    /// error is logged and the process still exits.
    pub fn on_drain<F, Fut, E>(mut self, hook: F) -> Self
    where
        F: Fn(Arc<A>) -> Fut + 'static,
        Fut: Future<Output = Result<(), E>> + 'static,
        E: fmt::Display,
    {
        self.on_drain.push(erase(hook));
        self
    }

    /// Parses the command line and does what it says; the exit status is
    /// one of [`crate::exit`]'s.
    pub fn run(self) -> ExitCode {
        crate::cli::main(self)
    }
}

fn erase<A, F, Fut, E>(hook: F) -> Hook<A>
where
    F: Fn(Arc<A>) -> Fut + 'static,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: fmt::Display,
{
    Box::new(move |settings| {
        let fut = hook(settings);
        Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
    })
}

/// Which process answers: given to handlers as `web::Data<Info>`.
#[derive(Debug, Clone)]
pub struct Info {
    pub pid: u32,
    /// 1 for a process started by systemd or by hand; n+1 for the process
    /// that took over from generation n in a reload.
    pub generation: u64,
    pub started: SystemTime,
}

impl Info {
    /// The start time as RFC 3339, to the second.
    pub fn started_rfc3339(&self) -> String {
        humantime::format_rfc3339_seconds(self.started).to_string()
    }
}

/// The request limits of handoff's settings, for handlers that read a body:
/// given to handlers as `web::Data<RequestLimits>`.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// `limits.max_body_bytes`: larger announced bodies are refused with 413
    /// before a handler runs; a handler reading a chunked body stops here.
    pub max_body_bytes: usize,
    /// `server.client_body_timeout`: the connection ends a body still
    /// arriving 0.5 s after this, so a handler answering 408 should use it.
    pub client_body_timeout: std::time::Duration,
}
