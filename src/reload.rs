//! Reload by hand-off: start a successor on the same listeners, wait until it
//! serves, make it the unit's main process, then drain. The old process keeps
//! serving whenever the successor fails; a reload is never interleaved with
//! another.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::control::{self, ReloadReply};
use crate::handover;
use crate::listeners::Taken;
use crate::notify;
use crate::server::{Adopt, Lifecycle};
use crate::state::AppState;
use crate::successor::{self, Launch, Successor};

pub struct Reloader {
    /// Set in a successor: where to report ready to the previous process.
    ready_fd: Option<OwnedFd>,
    /// Set in a successor: the previous process's group, joined once ready.
    pgid: Option<libc::pid_t>,
    /// The binary this process was started from and its arguments: what a
    /// SIGHUP starts (the file at that path now, so a rebuilt binary runs).
    exe: PathBuf,
    args: Vec<String>,
    ready_timeout: Duration,
    control: Option<mpsc::Receiver<control::Pending>>,
    /// A control request received and not yet answered.
    request: Option<control::Pending>,
    busy: Arc<AtomicBool>,
}

impl Reloader {
    pub fn new(
        inherited: successor::Inherited,
        exe: PathBuf,
        args: Vec<String>,
        ready_timeout: Duration,
    ) -> Self {
        Self {
            ready_fd: inherited.ready_fd,
            pgid: inherited.pgid,
            exe,
            args,
            ready_timeout,
            control: None,
            request: None,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    fn own_launch(&self) -> Launch {
        Launch {
            exe: self.exe.clone(),
            args: self.args.clone(),
            env: std::env::vars().collect(),
        }
    }
}

fn status_line(pid: u32, generation: u64, listeners: usize) -> String {
    format!("serving on {listeners} listeners, pid {pid}, generation {generation}")
}

impl Lifecycle for Reloader {
    fn ready(&mut self, state: &AppState, listeners: &[Taken], adopt: &Adopt) {
        match self.ready_fd.take() {
            // The previous process tells the manager, naming us MAINPID, and
            // passes us its idle connections on the same channel.
            Some(fd) => {
                let channel = successor::report_ready(fd, self.pgid).and_then(|s| {
                    s.set_nonblocking(true).ok()?;
                    tokio::net::UnixStream::from_std(s).ok()
                });
                if let Some(channel) = channel {
                    let adopt = adopt.clone();
                    actix_web::rt::spawn(async move {
                        let n = handover::receive_from_predecessor(channel, adopt).await;
                        tracing::info!(
                            connections = n,
                            "took over the previous process's idle connections"
                        );
                    });
                }
            }
            None => notify::ready(&status_line(state.pid, state.generation, listeners.len())),
        }
        match control::listen(state.pid, self.busy.clone()) {
            Ok(rx) => self.control = Some(rx),
            Err(e) => tracing::warn!(
                error = %e,
                "reload control socket unavailable; `handoff reload` will not reach this \
                 process, SIGHUP still reloads"
            ),
        }
    }

    async fn reload_requested(&mut self) {
        let Some(rx) = self.control.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Some(pending) => self.request = Some(pending),
            None => {
                self.control = None;
                std::future::pending::<()>().await;
            }
        }
    }

    async fn reload(&mut self, state: &AppState, listeners: &[Taken]) -> Option<Successor> {
        let (launch, reply_to): (Launch, Option<oneshot::Sender<ReloadReply>>) =
            match self.request.take() {
                Some((request, tx)) => (request.launch, Some(tx)),
                None => (self.own_launch(), None),
            };
        self.busy.store(true, Ordering::Release);
        let next = state.generation + 1;
        notify::reloading(&format!("reloading: starting generation {next}"));
        tracing::info!(
            exe = %launch.exe.display(),
            generation = next,
            "reload: starting a successor on the same listeners"
        );
        let started = Instant::now();
        let outcome = match successor::spawn(&launch, listeners, state.generation) {
            Ok(pending) => {
                tracing::info!(
                    pid = pending.pid(),
                    "reload: successor started, waiting until it serves"
                );
                successor::wait_ready(pending, self.ready_timeout).await
            }
            Err(e) => Err(e),
        };
        let took = started.elapsed();
        let took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        state
            .metrics
            .handoff_last_duration_ms
            .set(i64::try_from(took_ms).unwrap_or(i64::MAX));

        let (reply, handed_off) = match outcome {
            Ok(successor) => {
                let pid = successor.pid();
                // Counted by the successor, whose generation says how many
                // hand-offs led to it (see metrics).
                notify::main_pid_ready(pid, &status_line(pid, next, listeners.len()));
                tracing::info!(
                    successor = pid,
                    generation = next,
                    took_ms,
                    "reload: successor serves; draining this process"
                );
                let reply = ReloadReply {
                    ok: true,
                    pid,
                    generation: next,
                    duration_ms: took_ms,
                    message: format!(
                        "pid {} handed its listeners to pid {pid} (generation {next}) in {took_ms} ms",
                        state.pid
                    ),
                };
                (reply, Some(successor))
            }
            Err(e) => {
                state.metrics.record_handoff(e.outcome());
                let message = format!("reload failed: {e}; pid {} keeps serving", state.pid);
                notify::ready(&message);
                tracing::error!(outcome = e.outcome(), took_ms, "{message}");
                self.busy.store(false, Ordering::Release);
                let reply = ReloadReply {
                    ok: false,
                    pid: state.pid,
                    generation: state.generation,
                    duration_ms: took_ms,
                    message,
                };
                (reply, None)
            }
        };
        if let Some(tx) = reply_to {
            let _ = tx.send(reply);
        }
        if handed_off.is_some() {
            // Stop taking reload requests: the successor takes them now.
            self.control = None;
            self.busy.store(false, Ordering::Release);
        }
        handed_off
    }
}
