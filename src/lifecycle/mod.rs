//! The process lifecycle, as one state machine, top to bottom in [`serve`]
//! and [`run`]:
//!
//! ```text
//!  Start ──> Ready ──> Serving ──stop signal──> LameDuck ──> Draining ──> Exit
//!                       │   ^
//!          SIGHUP, or   │   │ the successor died while this process could
//!  `handoff reload`     v   │ still serve, and nobody supervises it:
//!                     HandedOff ────────────── take the listeners back
//!            (draining, idle connections to the successor) ──> Exit
//! ```
//!
//! - Start: stop and reload signals are blocked from the first instruction
//!   and handled before anything can report ready, so a signal that arrives
//!   while the process starts (or the moment it is ready) waits, never kills.
//!   Then logging, the open-files limit, what a predecessor passed
//!   (generation, ready channel), the sockets, and, unless this is PID 1 of a
//!   container (which supervises instead, see `supervisor`), the runtime:
//!   signal handlers, the service's state (its database pool, built before
//!   the process reports ready, so a start or a reload that cannot build it
//!   fails), and a server instance on the listeners.
//! - Ready: tell systemd (`READY=1`), or the predecessor, which then names
//!   this process to systemd and hands its idle connections over.
//! - Serving: until a stop signal, or a reload whose successor serves.
//! - LameDuck (`server.shutdown_delay`, stops only): still serving, `/readyz`
//!   at 503, so a load balancer takes this host out before anything closes.
//!   The handlers' drain signal fires here (`http::drain_signal`), so that
//!   WebSocket sessions and event streams can end and their clients move.
//! - Draining: the drain signal fires if it has not; stop accepting, finish
//!   requests in flight; idle connections go to systemd's fd store when
//!   there is one (the next process serves them), else stay until their
//!   next request or keep-alive timeout. Draining ends when every connection
//!   has, or at `server.drain_timeout`, which cuts what is left.
//! - HandedOff: the successor serves; this instance drains (the drain signal
//!   fires), and its idle connections go to the successor. Under a service manager the successor
//!   is the unit's main process and `Restart=` covers its death. Without
//!   one, this process is the only one that can: it watches the successor
//!   for at least [`STANDBY`] and, if it dies abnormally meanwhile, serves
//!   the listeners again.
//! - Exit: the service's drain hooks (close the pool), then the exit status.

mod control;
pub(crate) mod reload;
mod signals;
pub(crate) mod stop;
mod successor;
mod supervisor;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use actix_web::web;
use tokio::sync::mpsc;

use crate::handover::{self, Destination};
use crate::http::shared::state::{AppState, Info};
use crate::http::{Adopter, Instance, StartError, UserApp, millis};
use crate::settings::Settings;
use crate::{exit, notify, quic, sockets, telemetry, tls};
use reload::Reloader;
use signals::{Event, Signals};
use successor::Successor;

pub(crate) use reload::request as request_reload;

/// How the service's application starts in a process: builds its state (once,
/// before the process reports ready) and returns the app and drain hooks
/// that use it.
pub(crate) type Start = Box<dyn FnOnce(Info) -> LocalFuture<Result<Started, String>>>;

/// The service's application, once its state is built.
pub(crate) struct Started {
    pub app: UserApp,
    /// Run after the drain, when no request is in flight any more.
    pub on_drain: Vec<DrainHook>,
}

pub(crate) type DrainHook = Box<dyn Fn() -> LocalFuture<Result<(), String>>>;
pub(crate) type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Why the process stops, after Serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM, SIGINT or SIGRTMIN+3: drained and exiting.
    Signal(&'static str),
    /// The listeners were handed to a new process, which now serves.
    HandedOff,
}

/// Why the process failed after Start began (exit status 70).
#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("the service's state could not be built: {0}")]
    State(String),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot serve HTTP/3: {0}")]
    Quic(String),
}

/// How long an unsupervised old process stays to take its listeners back if
/// its successor dies, even when its own drain ends sooner.
pub const STANDBY: Duration = Duration::from_secs(2);

/// Runs the service's process from Start to Exit; the exit status.
pub(crate) fn serve(name: &str, settings: Settings, start: Start) -> u8 {
    // Start: signals first, so that none is lost or fatal from here on.
    signals::block();
    telemetry::init(&settings.log, name);
    raise_fd_limit();
    // Before the runtime starts any thread: these edit the environment.
    let inherited = match successor::take_env() {
        Ok(v) => v,
        Err(e) => {
            telemetry::fatal(name, &format!("bad hand-off environment: {e}"));
            return exit::DATAERR;
        }
    };
    // The certificate and key, read now: a start (or a reload's successor)
    // that cannot serve HTTPS with them fails before it takes anything.
    let tls = match tls::load(
        &settings.tls,
        settings.server.http2,
        inherited.tickets.as_deref(),
    ) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            loaded.tls
        }
        Err(e) => {
            // As check-config says it: the same refusal, the same words.
            telemetry::fatal(name, &format!("invalid configuration: {e}"));
            return exit::CONFIG;
        }
    };
    let passed = match sockets::take_or_bind(
        &settings.server.listen,
        &settings.tls.listen,
        &settings.tls.quic_listen,
        settings.server.backlog,
    ) {
        Ok(t) => t,
        Err(e) => {
            telemetry::fatal(name, &e.to_string());
            return if e.is_environment() {
                exit::DATAERR
            } else {
                exit::UNAVAILABLE
            };
        }
    };
    if tls.is_none()
        && let Some(https) = passed
            .listeners
            .iter()
            .find(|l| l.is_https() || l.is_quic())
    {
        telemetry::fatal(
            name,
            &format!(
                "{https}: an https or quic socket needs tls.certificate and tls.key in the settings"
            ),
        );
        return exit::CONFIG;
    }
    // PID 1 of a container: supervise generations instead of serving, so
    // that a reload does not end the container.
    if inherited.ready_fd.is_none() && supervisor::wanted() {
        return supervisor::run(passed.listeners, settings.handoff.ready_timeout);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let generation = inherited.generation;
    let mut inherited = inherited;
    let quic_inherited = inherited.quic.take();
    let reloader = Reloader::new(inherited, exe, args, settings.handoff.ready_timeout);
    let system = actix_web::rt::System::new();
    match system.block_on(run(
        settings,
        tls,
        generation,
        start,
        passed,
        reloader,
        quic_inherited,
    )) {
        Ok(stop) => {
            tracing::info!(reason = ?stop, "exit");
            exit::OK
        }
        Err(e) => {
            telemetry::fatal(name, &e.to_string());
            exit::SOFTWARE
        }
    }
}

/// Start (the part in the runtime) to Exit.
async fn run(
    settings: Settings,
    tls: Option<tls::Tls>,
    generation: u64,
    start: Start,
    passed: sockets::Passed,
    mut reloader: Reloader,
    quic_inherited: Option<(String, Option<std::os::fd::OwnedFd>)>,
) -> Result<Stop, Failed> {
    let mut signals = Signals::install().map_err(Failed::Signals)?;
    let state = web::Data::new(AppState::new(settings, generation, tls));
    let started = start(state.info.clone()).await.map_err(Failed::State)?;
    let listeners = passed.listeners;
    let mut instance = Instance::start(&state, &started.app, &listeners)?;
    // Connections handed to this process go to the serving instance's
    // workers; one that arrives during a drain is idle and goes on with
    // that instance's others.
    let (adopt, adopted) = mpsc::unbounded_channel();
    let adopter = Adopter::new(&instance);
    actix_web::rt::spawn(adopter.clone().serve(adopted));
    // HTTP/3: the process's QUIC endpoint, whose new connections go to the
    // serving instance's workers as adopted ones do.
    let quic = start_quic(&state, &listeners, quic_inherited, &adopter)?;
    if !passed.connections.is_empty() {
        tracing::info!(
            connections = passed.connections.len(),
            "serving connections kept in the service manager's store"
        );
        handover::forget_stored();
        for fd in passed.connections {
            let _ = adopt.send(fd);
        }
    }

    // Ready.
    for taken in &listeners {
        tracing::info!(listener = %taken, "listening");
    }
    tracing::info!(
        pid = state.info.pid,
        generation,
        listeners = listeners.len(),
        "ready"
    );
    reloader.ready(&state, &listeners, &adopt);
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
            () = reloader.requested() => Event::Reload,
        };
        let mut successor = match event {
            Event::Stop(name) => {
                lame_duck(&state, &instance, &mut signals, name).await;
                // New QUIC connections get no answer now: their clients
                // try again, and reach the next process.
                if let Some(quic) = &quic {
                    quic.refuse_new();
                }
                // Draining: idle connections go to the fd store if there is
                // one (a restart's next process serves them).
                let stop = Stop::Signal(name);
                notify::stopping(&format!(
                    "draining {} requests in flight",
                    state.metrics.in_flight()
                ));
                instance.drain(stop, Destination::store()).await;
                break stop;
            }
            Event::Reload => match reloader.reload(&state, &listeners, quic.as_deref()).await {
                None => continue,
                Some(successor) => successor,
            },
        };
        // HandedOff: idle connections go to the successor. (No STOPPING=1:
        // the successor is the unit's main process now.)
        let to = successor
            .take_channel()
            .map(|(channel, room)| Destination::Successor(channel, room));
        let drained = actix_web::rt::spawn(instance.drain(Stop::HandedOff, to));
        if notify::supervised() {
            let _ = drained.await;
            break Stop::HandedOff;
        }
        match watch(successor, &mut signals).await {
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
                if let Some(quic) = &quic {
                    quic.taken_back();
                }
                instance = Instance::start(&state, &started.app, &listeners)?;
                adopter.switch_to(&instance);
                reloader.ready(&state, &listeners, &adopt);
            }
        }
    };

    // Exit.
    for drain in retired {
        let _ = drain.await;
    }
    // The QUIC connections closed with the drain; their CONNECTION_CLOSE
    // frames leave before the process does. An earlier process still
    // serving gets its datagrams through this one: it goes first (each is
    // bounded by its own drain timeout).
    if let Some(quic) = &quic {
        quic.wait_older_gone(state.settings.server.drain_timeout)
            .await;
        quic.wait_idle(Duration::from_secs(1)).await;
    }
    // No request is in flight any more: the application's own clean-up.
    let limit = state.settings.server.drain_timeout;
    for hook in &started.on_drain {
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

/// LameDuck: `server.shutdown_delay` of serving with `/readyz` at 503, so
/// that a load balancer's health check takes this host out before anything
/// closes. A second stop signal ends it early.
async fn lame_duck(state: &AppState, instance: &Instance, signals: &mut Signals, first: &str) {
    let delay = state.settings.server.shutdown_delay;
    if delay.is_zero() {
        return;
    }
    instance.phase().begin_lame_duck();
    let status = format!(
        "stopping ({first}): serving {} more, /readyz says 503",
        crate::settings::duration::display(delay)
    );
    notify::stopping(&status);
    tracing::info!(
        signal = first,
        delay_ms = millis(delay),
        "lame duck: {status}"
    );
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

/// HandedOff without a service manager: watches the successor for
/// [`STANDBY`]. A successor that ends with status 0 was stopped on purpose
/// (SIGTERM, drained): not taken back.
async fn watch(mut successor: Successor, signals: &mut Signals) -> Watch {
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

/// The QUIC endpoint on the socket named `quic`, when HTTP/3 is served
/// (`server.http3`, TLS, such a socket); its accept loop gives each new
/// connection to `adopter`'s workers.
fn start_quic(
    state: &web::Data<AppState>,
    listeners: &[sockets::Taken],
    inherited: Option<(String, Option<std::os::fd::OwnedFd>)>,
    adopter: &Adopter,
) -> Result<Option<std::rc::Rc<quic::Quic>>, Failed> {
    let (Some(tls), true) = (&state.tls, state.settings.server.http3) else {
        return Ok(None);
    };
    let udp: Vec<_> = listeners
        .iter()
        .filter_map(|t| match &t.listener {
            sockets::Listener::Udp(s) => Some(s),
            _ => None,
        })
        .collect();
    // One endpoint reads one socket: a second would be bound (or passed)
    // and never read, its datagrams lost while Alt-Svc names its port.
    let socket = match udp[..] {
        [] => return Ok(None),
        [socket] => socket,
        _ => {
            return Err(Failed::Quic(format!(
                "{} UDP sockets were passed or bound; HTTP/3 is served on one (one ListenDatagram=; [::] takes IPv4 too)",
                udp.len()
            )));
        }
    };
    let inherited = match inherited.map(|(line, fd)| quic::Inherited::parse(&line, fd)) {
        Some(Ok(i)) => Some(i),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "the QUIC hand-off is malformed; new keys, no forwarding");
            None
        }
        None => None,
    };
    let socket = socket
        .try_clone()
        .map_err(|e| Failed::Quic(e.to_string()))?;
    let quic = quic::Quic::start(
        socket,
        &tls.quic,
        &state.settings,
        inherited,
        state.metrics.quic_route_counts(),
    )
    .map_err(|e| Failed::Quic(e.to_string()))?;
    tracing::info!(port = quic.port(), tag = %quic.tag(), "serving HTTP/3 (QUIC)");
    let quic = std::rc::Rc::new(quic);
    let (endpoint, adopter, state) = (quic.clone(), adopter.clone(), state.clone());
    actix_web::rt::spawn(async move {
        endpoint
            .accept(
                |incoming, handshaking| adopter.quic(incoming, handshaking),
                || state.metrics.record_quic_handshake("retry"),
            )
            .await;
    });
    Ok(Some(quic))
}

fn spawn_watchdog(every: Duration) -> actix_web::rt::task::JoinHandle<()> {
    tracing::info!(interval_ms = millis(every), "watchdog enabled");
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

/// Raises the soft limit on open files to the hard limit, as Go's runtime
/// does: the inherited soft limit (often 1024) is far below what a server
/// with keep-alive clients needs, and the hard limit is the administrator's
/// real bound (`LimitNOFILE=` in the unit). At the limit, accept(2) fails
/// with EMFILE; actix-server then pauses accepting for 500 ms and retries,
/// while the connections already open are served.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we own.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let before = lim.rlim_cur;
    if before >= lim.rlim_max {
        tracing::debug!(nofile = before, "open files limit");
        return;
    }
    lim.rlim_cur = lim.rlim_max;
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        tracing::info!(
            from = before,
            to = lim.rlim_max,
            "raised the open files limit"
        );
    } else {
        tracing::warn!(
            nofile = before,
            error = %std::io::Error::last_os_error(),
            "cannot raise the open files limit; set LimitNOFILE= in the unit"
        );
    }
}
