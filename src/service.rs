//! The public entry point: a [`Service`] runs the actix-web application a
//! service's factory builds, as `HttpServer` would, and restarts and
//! redeploys it with zero downtime.

use std::fmt;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, web};

use crate::cli::{self, Command};
use crate::exit;
use crate::http::UserApp;
use crate::http::shared::drain_signal::DrainSignal;
use crate::http::shared::state::Info;
use crate::lifecycle::{self, DrainHook, LocalFuture, Started};
use crate::settings::{AppSettings, NoAppSettings, Settings};

/// An actix-web service run by handoff: listening sockets from systemd (or
/// bound), layered settings, drain on SIGTERM, reload by hand-off with idle
/// connections handed over, sd_notify and the watchdog, `/healthz`,
/// `/readyz` and `/metrics`. [`run`](Service::run) takes the application
/// factory an actix-web service already has (what it gives `HttpServer::new`)
/// and parses the command line (`serve`, `check-config`, `reload --pid PID`,
/// `stop --pid PID`), so a service's `main` is this:
///
/// ```no_run
/// use actix_web::{App, HttpResponse, middleware, web};
///
/// fn main() -> std::process::ExitCode {
///     actix_handoff::Service::new().run(|_| {
///         App::new()
///             .wrap(middleware::Logger::default())
///             .route("/hello", web::get().to(|| async { HttpResponse::Ok().body("hello") }))
///     })
/// }
/// ```
///
/// With settings of its own (the `[app]` section) and state built from them,
/// such as a database pool, given to handlers as `web::Data`:
///
/// ```no_run
/// # #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
/// # struct Settings { database: String }
/// # impl actix_handoff::AppSettings for Settings {}
/// # struct Pool;
/// # impl Pool { async fn open(_: &str) -> Result<Pool, std::io::Error> { Ok(Pool) } async fn close(&self) {} }
/// use actix_web::{App, HttpResponse, web};
///
/// async fn count(pool: web::Data<Pool>) -> HttpResponse {
///     HttpResponse::Ok().finish()
/// }
///
/// fn main() -> std::process::ExitCode {
///     actix_handoff::Service::with_settings::<Settings>()
///         .state(|settings| async move { Pool::open(&settings.database).await })
///         .on_drain(|pool| async move {
///             pool.close().await;
///             Ok::<_, std::io::Error>(())
///         })
///         .run(|_| App::new().route("/count", web::get().to(count)))
/// }
/// ```
pub struct Service<A = NoAppSettings, S = ()> {
    name: Option<String>,
    version: Option<String>,
    builtin_routes: bool,
    state: StateBuilder<A, S>,
    on_drain: Vec<DrainFn<S>>,
}

type StateBuilder<A, S> = Box<dyn FnOnce(Arc<A>) -> LocalFuture<Result<S, String>>>;
type DrainFn<S> = Box<dyn Fn(Arc<S>) -> LocalFuture<Result<(), String>>>;

/// What the application factory gets on each worker: the service's
/// settings (`[app]`), its state, which process this is, and the drain
/// signal of the server instance the `App` serves. The same are given to
/// handlers as `web::Data<A>`, `web::Data<S>`, `web::Data<`[`Info`]`>` and
/// the [`DrainSignal`] extractor.
pub struct Context<'a, A, S> {
    pub settings: &'a A,
    pub state: &'a S,
    pub info: &'a Info,
    /// Fires when this instance starts to stop: for tasks the `App` starts
    /// itself (a broadcaster feeding WebSocket sessions, say).
    pub drain: &'a DrainSignal,
}

impl Service<NoAppSettings, ()> {
    /// A service with no settings of its own (an `[app]` section in its
    /// configuration is an error) and no state.
    pub fn new() -> Self {
        Self::with_settings()
    }

    /// A service with settings of its own: the `[app]` section of the
    /// configuration file and `HANDOFF__APP__*` variables, read into `A`
    /// (see [`AppSettings`]). A bad value stops `check-config` and a start
    /// alike with exit status 78.
    pub fn with_settings<A: AppSettings>() -> Service<A, ()> {
        Service {
            name: None,
            version: None,
            builtin_routes: true,
            state: Box::new(|_| Box::pin(async { Ok(()) })),
            on_drain: Vec::new(),
        }
    }
}

impl Default for Service<NoAppSettings, ()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: AppSettings> Service<A, ()> {
    /// The service's state, built from its settings once per process,
    /// before it reports ready: a database pool, a cache, an HTTP client.
    /// Handlers get it as `web::Data<S>`, the factory as `ctx.state`, the
    /// drain hooks as their argument. An error stops a start (exit status
    /// 70); in a reload the successor builds its own state before it takes
    /// over, so a database that refuses the new process fails the reload
    /// (75) and the old process serves on.
    pub fn state<S, F, Fut, E>(self, build: F) -> Service<A, S>
    where
        F: FnOnce(Arc<A>) -> Fut + 'static,
        Fut: Future<Output = Result<S, E>> + 'static,
        E: fmt::Display,
    {
        // Hooks added before the state have nothing to take from it.
        let on_drain = self
            .on_drain
            .into_iter()
            .map(|hook| Box::new(move |_: Arc<S>| hook(Arc::new(()))) as DrainFn<S>)
            .collect();
        Service {
            name: self.name,
            version: self.version,
            builtin_routes: self.builtin_routes,
            state: Box::new(move |settings| {
                let built = build(settings);
                Box::pin(async move { built.await.map_err(|e| e.to_string()) })
            }),
            on_drain,
        }
    }
}

impl<A, S> Service<A, S>
where
    A: AppSettings,
    S: Send + Sync + 'static,
{
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

    /// Runs `hook` with the state after the drain, when no request is in
    /// flight any more (whether the process stops or handed its sockets to
    /// a successor): close a pool, flush a queue. Bounded by
    /// `server.drain_timeout`; an error is logged and the process still
    /// exits.
    pub fn on_drain<F, Fut, E>(mut self, hook: F) -> Self
    where
        F: Fn(Arc<S>) -> Fut + 'static,
        Fut: Future<Output = Result<(), E>> + 'static,
        E: fmt::Display,
    {
        self.on_drain.push(Box::new(move |state| {
            let fut = hook(state);
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        }));
        self
    }

    /// Parses the command line and does what it says; the exit status is
    /// one of [`crate::exit`]'s.
    ///
    /// `factory` is what the service gives actix-web's `HttpServer::new`:
    /// it builds the `App` (routes, `wrap` middleware, `app_data`, scopes,
    /// `default_service`), once for every worker. handoff registers the
    /// settings, the state, [`Info`] and [`RequestLimits`](crate::RequestLimits)
    /// as app data, and answers `/healthz`, `/readyz` and `/metrics` in
    /// front of the `App`, so its middleware does not see them.
    pub fn run<F, T, B>(self, factory: F) -> ExitCode
    where
        F: Fn(&Context<'_, A, S>) -> App<T> + Send + Clone + 'static,
        T: ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: MessageBody + 'static,
    {
        let name = self.name.clone().unwrap_or_else(cli::binary_name);
        let cli = match cli::parse(&name, self.version.as_deref()) {
            Ok(cli) => cli,
            Err(code) => return ExitCode::from(code),
        };
        let load = || {
            Settings::load::<A>(&cli.overrides()).map_err(|e| {
                eprintln!("{name}: invalid configuration: {e}");
                exit::CONFIG
            })
        };
        let code = match cli.command.as_ref().unwrap_or(&Command::Serve) {
            Command::Stop { pid } => lifecycle::stop::command(&name, pid),
            Command::CheckConfig => match load() {
                Ok((settings, app)) => {
                    match crate::tls::load(&settings.tls, settings.server.http2, None) {
                        Ok(loaded) => {
                            for warning in &loaded.warnings {
                                eprintln!("{name}: warning: {warning}");
                            }
                            print!("{}", settings.to_toml(&app));
                            exit::OK
                        }
                        Err(e) => {
                            eprintln!("{name}: invalid configuration: {e}");
                            exit::CONFIG
                        }
                    }
                }
                Err(code) => code,
            },
            Command::Reload { pid, exe } => match load() {
                Ok((settings, _)) => reload(&name, *pid, exe.as_deref(), &cli, &settings),
                Err(code) => code,
            },
            Command::Serve => match load() {
                Ok((settings, app)) => lifecycle::serve(&name, settings, self.start(app, factory)),
                Err(code) => code,
            },
        };
        ExitCode::from(code)
    }

    /// How the application starts in the serving process: its state, then
    /// the `App` of every worker, with the settings, the state and the
    /// process's identity given to the factory and the handlers.
    fn start<F, T, B>(self, settings: A, factory: F) -> lifecycle::Start
    where
        F: Fn(&Context<'_, A, S>) -> App<T> + Send + Clone + 'static,
        T: ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: MessageBody + 'static,
    {
        let Self {
            builtin_routes,
            state: build_state,
            on_drain,
            ..
        } = self;
        Box::new(move |info: Info| {
            Box::pin(async move {
                let settings = Arc::new(settings);
                let state = Arc::new(build_state(settings.clone()).await?);
                let make = {
                    let (settings, state) = (settings.clone(), state.clone());
                    move |drain: &DrainSignal| {
                        let ctx = Context {
                            settings: &*settings,
                            state: &*state,
                            info: &info,
                            drain,
                        };
                        factory(&ctx)
                            .app_data(web::Data::from(settings.clone()))
                            .app_data(web::Data::from(state.clone()))
                    }
                };
                let on_drain = on_drain
                    .into_iter()
                    .map(|hook| {
                        let state = state.clone();
                        Box::new(move || hook(state.clone())) as DrainHook
                    })
                    .collect();
                Ok(Started {
                    app: UserApp::new(make, builtin_routes),
                    on_drain,
                })
            })
        })
    }
}

/// `reload --pid PID`: the configuration was checked by loading it; the
/// successor gets this binary (or `--exe`) and the same options.
fn reload(
    name: &str,
    pid: u32,
    exe: Option<&std::path::Path>,
    cli: &cli::Cli,
    settings: &Settings,
) -> u8 {
    let exe = match exe
        .map(std::path::absolute)
        .unwrap_or_else(std::env::current_exe)
    {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("{name}: cannot tell which binary to start: {e}");
            return exit::SOFTWARE;
        }
    };
    // Room for the successor's ready timeout and its clean-up on failure.
    let timeout = settings.handoff.ready_timeout + std::time::Duration::from_secs(15);
    lifecycle::request_reload(name, pid, exe, cli.successor_args(), timeout)
}
