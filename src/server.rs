//! Runs the HTTP server on the taken listeners and owns the process
//! lifecycle: ready, watchdog, signals, hand-off, drain, exit.

use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Settings;
use crate::listeners::{Listener, Taken};
use crate::notify;
use crate::observe::observe;
use crate::routes;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot serve on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot install signal handler: {0}")]
    Signals(std::io::Error),
    #[error("server failed: {0}")]
    Runtime(std::io::Error),
}

/// Why the serve loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM or SIGINT: drain and exit.
    Signal(&'static str),
    /// The listeners were handed to a new process, which now serves.
    HandedOff,
}

/// Hooks the lifecycle exposes to the hand-off machinery, so that this module
/// stays about serving.
pub trait Lifecycle {
    /// Called once the server accepts on every listener.
    fn ready(&mut self, state: &AppState, listeners: &[Taken]);
    /// Called on SIGHUP (or a control request): true when the listeners now
    /// belong to a new process and this one should drain.
    fn reload(
        &mut self,
        state: &AppState,
        listeners: &[Taken],
    ) -> impl std::future::Future<Output = bool>;
    /// Called on each iteration; a future that resolves when another reload
    /// is requested by other means than SIGHUP (the control socket).
    fn reload_requested(&mut self) -> impl std::future::Future<Output = ()>;
}

fn build_server(
    state: web::Data<AppState>,
    listeners: &[Taken],
) -> Result<actix_web::dev::Server, ServeError> {
    let s = &state.settings.server;
    let workers = if s.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        s.workers
    };
    let app_state = state.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .wrap(from_fn(observe))
            .configure(routes::configure)
    })
    .workers(workers)
    .max_connections(s.max_connections)
    .keep_alive(if s.keep_alive.is_zero() {
        actix_web::http::KeepAlive::Disabled
    } else {
        actix_web::http::KeepAlive::Timeout(s.keep_alive)
    })
    .client_request_timeout(s.client_header_timeout)
    .shutdown_timeout(s.drain_timeout.as_secs().max(1))
    // We handle signals ourselves: SIGHUP means hand-off, not stop.
    .disable_signals();

    for taken in listeners {
        // actix takes ownership; we keep the original for a later hand-off.
        let addr = taken.listener.local_addr();
        let fail = |source| ServeError::Listen {
            addr: addr.clone(),
            source,
        };
        server = match taken.listener.try_clone().map_err(fail)? {
            Listener::Tcp(l) => server.listen(l).map_err(fail)?,
            Listener::Unix(l) => server.listen_uds(l).map_err(fail)?,
        };
    }
    Ok(server.run())
}

/// Serves until SIGTERM/SIGINT (drain, then return) or a successful hand-off
/// (drain, then return). In-flight requests get up to `server.drain_timeout`.
pub async fn serve(
    settings: Settings,
    listeners: Vec<Taken>,
    generation: u64,
    lifecycle: &mut impl Lifecycle,
) -> Result<Stop, ServeError> {
    let state = web::Data::new(AppState::new(settings, generation));
    let server = build_server(state.clone(), &listeners)?;
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);

    for taken in &listeners {
        tracing::info!(listener = %taken, "listening");
    }
    tracing::info!(
        pid = state.pid,
        generation,
        listeners = listeners.len(),
        "ready"
    );
    lifecycle.ready(&state, &listeners);

    let watchdog = notify::watchdog_interval().map(|every| {
        tracing::info!(interval_ms = every.as_millis() as u64, "watchdog enabled");
        actix_web::rt::spawn(async move {
            // The first ping after one interval: a successor becomes the
            // main process (and may ping) only after it reported ready.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                notify::watchdog();
            }
        })
    });

    let stop = wait_for_stop(&state, &listeners, lifecycle).await?;
    drain(&state, &handle, stop).await;
    if let Some(w) = watchdog {
        w.abort();
    }
    match running.await {
        Ok(Ok(())) => Ok(stop),
        Ok(Err(e)) => Err(ServeError::Runtime(e)),
        Err(e) => Err(ServeError::Runtime(std::io::Error::other(e))),
    }
}

async fn wait_for_stop(
    state: &AppState,
    listeners: &[Taken],
    lifecycle: &mut impl Lifecycle,
) -> Result<Stop, ServeError> {
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Signals)?;
    loop {
        let reload = tokio::select! {
            _ = term.recv() => return Ok(Stop::Signal("SIGTERM")),
            _ = int.recv() => return Ok(Stop::Signal("SIGINT")),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: handing the listeners to a new process");
                true
            }
            () = lifecycle.reload_requested() => true,
        };
        if reload && lifecycle.reload(state, listeners).await {
            return Ok(Stop::HandedOff);
        }
    }
}

async fn drain(state: &AppState, handle: &ServerHandle, stop: Stop) {
    state.begin_draining();
    let in_flight = state.metrics.in_flight.get();
    let timeout = state.settings.server.drain_timeout;
    let status = format!("draining {in_flight} requests in flight");
    match stop {
        // After a hand-off the new process is the unit's main process:
        // STOPPING=1 from us would stop the unit.
        Stop::HandedOff => {}
        Stop::Signal(_) => notify::stopping(&status),
    }
    tracing::info!(
        reason = ?stop,
        in_flight,
        timeout_s = timeout.as_secs(),
        "draining: stopped accepting, finishing requests in flight"
    );
    let started = Instant::now();
    // Stop accepting first and let the workers take and read what was already
    // accepted: actix's stop drops connections still queued for a worker and
    // closes those whose first request is not parsed yet, which a client sees
    // as a reset on a brand-new connection. Connections not yet accepted stay
    // in the kernel's queue for the next process.
    handle.pause().await;
    tokio::time::sleep(ACCEPTED_GRACE).await;
    handle.stop(true).await;
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

/// Time for workers to pick up and read connections accepted before the pause.
const ACCEPTED_GRACE: Duration = Duration::from_millis(100);

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}
