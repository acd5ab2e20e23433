//! The process lifecycle, as one state machine:
//!
//! ```text
//!  Start ──> Ready ──> Serving ──SIGTERM/SIGINT──────────────> Draining ──> exit
//!                        │  ^
//!               SIGHUP / │  │ successor died while we were still
//!        reload request  v  │ here, and nobody supervises us: take back
//!                      HandedOff (draining, watching the successor) ──> exit
//! ```
//!
//! - Start: SIGHUP/SIGTERM/SIGINT are blocked from the first instruction of
//!   `serve` and handled before anything can report ready, so a signal that
//!   arrives while we start or the moment we are ready waits, never kills.
//! - Ready: tell systemd (`READY=1`) or the previous process (hand-off).
//! - Serving: until a stop signal, or a reload whose successor serves.
//! - HandedOff: the successor serves; this instance drains, and its idle
//!   keep-alive connections go to the successor (see `handover`). Under a
//!   service manager (`NOTIFY_SOCKET`) the successor is the unit's main process and
//!   `Restart=` covers its death. Without one, this process is the only one
//!   that can cover it: it watches the successor for at least [`STANDBY`]
//!   and, if it dies abnormally meanwhile, serves the listeners again.
//! - Draining: stop accepting, finish requests in flight, exit. Idle
//!   connections go to systemd's fd store when there is one (the next
//!   process serves them), else they are closed.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use tokio::sync::mpsc;

use crate::config::Settings;
use crate::handover::{self, Handover};
use crate::http::{self, Factory, ServeError};
use crate::listeners::Taken;
use crate::notify;
use crate::signals::{Event, Signals};
use crate::state::{AppState, Instance};
use crate::successor::Successor;

/// Why the serve loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM or SIGINT: drained and exiting.
    Signal(&'static str),
    /// The listeners were handed to a new process, which now serves.
    HandedOff,
}

/// Hooks the lifecycle exposes to the hand-off machinery, so that this module
/// stays about the order of things.
pub trait Lifecycle {
    /// Called once the server accepts on every listener (again after a
    /// take-back). Connections the previous process hands over go to `adopt`.
    fn ready(&mut self, state: &AppState, listeners: &[Taken], adopt: &Adopt);
    /// Called on SIGHUP (or a control request): the successor, once it serves
    /// on the listeners and this process should drain; None if the reload
    /// failed and this process keeps serving.
    fn reload(
        &mut self,
        state: &AppState,
        listeners: &[Taken],
    ) -> impl std::future::Future<Output = Option<Successor>>;
    /// A future that resolves when a reload is requested by other means than
    /// SIGHUP (the control socket).
    fn reload_requested(&mut self) -> impl std::future::Future<Output = ()>;
}

/// A start or drain hook with the service's settings bound in.
pub(crate) type BoundHook =
    Box<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>>;

/// The application handoff serves: its routes and its hooks.
pub(crate) struct Application {
    pub routes: http::Routes,
    pub on_start: Vec<BoundHook>,
    pub on_drain: Vec<BoundHook>,
}

/// Where connections handed to this process (by the previous one, or from
/// systemd's fd store) are sent to be served.
pub type Adopt = mpsc::UnboundedSender<OwnedFd>;

/// How long an unsupervised old process stays to take its listeners back if
/// its successor dies, even when its own drain ends sooner.
pub const STANDBY: Duration = Duration::from_secs(2);

/// Serves until a stop signal (drain, then return) or a hand-off whose
/// successor keeps serving (drain, then return).
pub(crate) async fn serve(
    settings: Settings,
    application: Application,
    listeners: Vec<Taken>,
    connections: Vec<OwnedFd>,
    generation: u64,
    lifecycle: &mut impl Lifecycle,
) -> Result<Stop, ServeError> {
    // Start.
    let mut signals = Signals::install().map_err(ServeError::Signals)?;
    let supervised = notify::supervised();
    let state = actix_web::web::Data::new(AppState::new(settings, generation));
    for hook in &application.on_start {
        hook().await.map_err(ServeError::StartHook)?;
    }
    let routes = application.routes;
    let mut running = Running::start(&state, &routes, &listeners)?;
    // Connections handed to us are served by the first instance; if it
    // drains meanwhile, they are idle and go on with its other connections.
    let (adopt, adopted) = mpsc::unbounded_channel();
    actix_web::rt::spawn(running.factory.clone().adopt_all(adopted));
    if !connections.is_empty() {
        tracing::info!(
            connections = connections.len(),
            "serving connections kept in the service manager's store"
        );
        handover::forget_stored();
        for fd in connections {
            let _ = adopt.send(fd);
        }
    }
    // Ready.
    for taken in &listeners {
        tracing::info!(listener = %taken, "listening");
    }
    tracing::info!(
        pid = state.pid,
        generation,
        listeners = listeners.len(),
        "ready"
    );
    lifecycle.ready(&state, &listeners, &adopt);
    let watchdog = notify::watchdog_interval().map(spawn_watchdog);
    // Drains of instances handed over and then taken back; awaited at exit.
    let mut retired = Vec::new();

    let stop = loop {
        // Serving.
        let event = tokio::select! {
            event = signals.next() => {
                if event == Event::Reload {
                    tracing::info!("SIGHUP: handing the listeners to a new process");
                }
                event
            }
            () = lifecycle.reload_requested() => Event::Reload,
        };
        let mut successor = match event {
            Event::Stop(name) => {
                // Lame duck, then Draining.
                lame_duck(&state, &running, &mut signals, name).await;
                // Idle connections go to the fd store if there is one (a
                // restart's next process serves them), else close.
                let stop = Stop::Signal(name);
                let to = match handover::store_capacity() {
                    Some(max) => Passing::Store(max),
                    None => Passing::Close,
                };
                running.drain(&state, stop, to).await;
                break stop;
            }
            Event::Reload => match lifecycle.reload(&state, &listeners).await {
                None => continue,
                Some(successor) => successor,
            },
        };
        // HandedOff: idle connections go to the successor.
        let to = match successor.take_channel() {
            Some(channel) => Passing::Successor(channel),
            None => Passing::Close,
        };
        let drained = actix_web::rt::spawn(running.drain_owned(state.clone(), Stop::HandedOff, to));
        if supervised {
            let _ = drained.await;
            break Stop::HandedOff;
        }
        match watch_successor(successor, &mut signals).await {
            Watch::Confirmed => {
                let _ = drained.await;
                break Stop::HandedOff;
            }
            Watch::Died(status) => {
                tracing::error!(
                    %status,
                    "the successor died while this process could still serve; \
                     taking the listeners back"
                );
                state.metrics.record_handoff("successor_died");
                retired.push(drained);
                running = Running::start(&state, &routes, &listeners)?;
                lifecycle.ready(&state, &listeners, &adopt);
            }
        }
    };
    for drain in retired {
        let _ = drain.await;
    }
    // No request is in flight any more: the application's own clean-up.
    let limit = state.settings.server.drain_timeout;
    for hook in &application.on_drain {
        match tokio::time::timeout(limit, hook()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "drain hook failed"),
            Err(_) => tracing::error!(
                timeout_s = limit.as_secs(),
                "drain hook did not finish within server.drain_timeout"
            ),
        }
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    Ok(stop)
}

/// `server.shutdown_delay`: keeps serving with `/readyz` at 503 for that
/// long, so that a load balancer's health check takes this host out before
/// anything closes. A second stop signal ends it early.
async fn lame_duck(state: &AppState, running: &Running, signals: &mut Signals, first: &str) {
    let delay = state.settings.server.shutdown_delay;
    if delay.is_zero() {
        return;
    }
    running.factory.instance.begin_lame_duck();
    let status = format!(
        "stopping ({first}): serving {} more, /readyz says 503",
        crate::duration::display(delay)
    );
    notify::stopping(&status);
    tracing::info!(signal = first, delay_ms = ms(delay), "lame duck: {status}");
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        second = signals.stop() => {
            tracing::info!(signal = second, "second stop signal: draining now");
        }
    }
}

enum Watch {
    /// It outlived the standby, or this process was told to stop meanwhile.
    Confirmed,
    Died(std::process::ExitStatus),
}

/// Watches an unsupervised successor for [`STANDBY`]. A successor that ends
/// with status 0 was stopped on purpose (SIGTERM, drained): not taken back.
async fn watch_successor(mut successor: Successor, signals: &mut Signals) -> Watch {
    let standby = tokio::time::sleep(STANDBY);
    tokio::select! {
        status = successor.exited() => {
            if status.success() {
                tracing::info!(pid = successor.pid(), "the successor exited normally");
                Watch::Confirmed
            } else {
                Watch::Died(status)
            }
        }
        () = standby => Watch::Confirmed,
        name = signals.stop() => {
            tracing::info!(signal = name, "stopping: no longer standing by for the successor");
            Watch::Confirmed
        }
    }
}

fn spawn_watchdog(every: Duration) -> actix_web::rt::task::JoinHandle<()> {
    tracing::info!(interval_ms = every.as_millis() as u64, "watchdog enabled");
    actix_web::rt::spawn(async move {
        // The first ping after one interval: a successor becomes the main
        // process (and may ping) only after it reported ready.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            notify::watchdog();
        }
    })
}

/// Where a draining instance's idle connections go.
enum Passing {
    Close,
    Successor(tokio::net::UnixStream),
    /// systemd's fd store, with room for this many.
    Store(usize),
}

/// One server instance on the listeners, and its task.
struct Running {
    handle: ServerHandle,
    factory: Factory,
    task: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    fn start(
        state: &actix_web::web::Data<AppState>,
        routes: &http::Routes,
        listeners: &[Taken],
    ) -> Result<Self, ServeError> {
        let factory = Factory {
            routes: routes.clone(),
            state: state.clone(),
            instance: actix_web::web::Data::new(Instance::default()),
            handover: Arc::new(Handover::new(state.metrics.connections.clone())),
            adopted: tokio_util::task::TaskTracker::new(),
        };
        let server = http::build(&factory, listeners)?;
        Ok(Self {
            handle: server.handle(),
            factory,
            task: actix_web::rt::spawn(server),
        })
    }

    async fn drain_owned(self, state: actix_web::web::Data<AppState>, stop: Stop, to: Passing) {
        self.drain(&state, stop, to).await;
    }

    /// Stops accepting, passes idle connections on (`to`), lets requests in
    /// flight finish within `server.drain_timeout`, and waits for the
    /// instance to end.
    async fn drain(self, state: &AppState, stop: Stop, to: Passing) {
        if self.factory.instance.begin_draining() {
            state.metrics.drains.inc();
        }
        let in_flight = state.metrics.in_flight.get();
        let timeout = state.settings.server.drain_timeout;
        match stop {
            // After a hand-off the new process is the unit's main process:
            // STOPPING=1 from us would stop the unit.
            Stop::HandedOff => {}
            Stop::Signal(_) => {
                notify::stopping(&format!("draining {in_flight} requests in flight"))
            }
        }
        tracing::info!(
            reason = ?stop,
            in_flight,
            timeout_s = timeout.as_secs(),
            "draining: stopped accepting, finishing requests in flight"
        );
        let started = Instant::now();
        let counts = state.metrics.connections.clone();
        let before = (
            counts.handed_over.get(),
            counts.stored.get(),
            counts.closed.get(),
        );
        let (tx, pump) = match to {
            Passing::Close => (None, None),
            Passing::Successor(channel) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let pump = handover::send_to_successor(channel, rx, counts.clone());
                (Some(tx), Some(actix_web::rt::spawn(pump)))
            }
            Passing::Store(max) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let pump = handover::send_to_store(rx, max, counts.clone());
                (Some(tx), Some(actix_web::rt::spawn(pump)))
            }
        };
        // Stop accepting first and let the workers take and read what was
        // already accepted: actix's stop drops connections still queued for a
        // worker. Connections not yet accepted stay in the kernel's queue
        // for the next process. Every connection is woken: idle ones are
        // released at once, busy ones when their response is out.
        self.handle.pause().await;
        self.factory.handover.begin(tx);
        tokio::time::sleep(ACCEPTED_GRACE).await;
        self.handle.stop(true).await;
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "server instance failed while draining"),
            Err(e) => tracing::error!(error = %e, "server instance task failed"),
        }
        // Connections adopted from a predecessor are served outside
        // actix-server: wait for them too.
        self.factory.adopted.close();
        let left_for_adopted = state
            .settings
            .server
            .drain_timeout
            .saturating_sub(started.elapsed());
        if tokio::time::timeout(left_for_adopted, self.factory.adopted.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = self.factory.adopted.len(),
                "drain timeout reached with adopted connections still busy"
            );
        }
        self.factory.handover.end();
        if let Some(pump) = pump {
            let _ = pump.await;
        }
        tracing::info!(
            handed_over = counts.handed_over.get() - before.0,
            stored = counts.stored.get() - before.1,
            closed = counts.closed.get() - before.2,
            "idle connections at the drain"
        );
        let took = started.elapsed();
        let left = state.metrics.in_flight.get();
        if left > 0 {
            tracing::warn!(
                left,
                took_ms = ms(took),
                "drain timeout reached; cut off requests in flight"
            );
        } else {
            tracing::info!(took_ms = ms(took), "drained");
        }
    }
}

/// Time for workers to pick up and read connections accepted before the pause.
const ACCEPTED_GRACE: Duration = Duration::from_millis(100);

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}
