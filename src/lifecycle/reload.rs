//! Reload by hand-off, both sides.
//!
//! In the serving process ([`Reloader`]): start a successor on the same
//! listeners, wait until it serves, make it the unit's main process, then
//! let the lifecycle drain this one. The old process keeps serving whenever
//! the successor fails; a reload is never interleaved with another. It also
//! does what Ready means for hand-offs: report to the predecessor (which
//! then hands its idle connections over) and take reload requests.
//!
//! In `handoff reload --pid PID` ([`request`]): ask the running process to
//! reload with this binary, configuration and environment, and report the
//! outcome as an exit status.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::control::{self, ReloadReply};
use super::successor::{self, Launch, Successor};
use crate::handover::{self, Adopt};
use crate::http::millis;
use crate::http::shared::state::AppState;
use crate::quic::Quic;
use crate::sockets::Taken;
use crate::{exit, notify};

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

    /// Ready: tells the predecessor (which names us to the service manager
    /// and hands its idle connections over, to `adopt`) or the manager, and
    /// starts taking reload requests. Again after a take-back.
    pub fn ready(&mut self, state: &AppState, listeners: &[Taken], adopt: &Adopt) {
        let info = &state.info;
        match self.ready_fd.take() {
            Some(fd) => {
                let channel =
                    successor::report_ready(fd, self.pgid, handover::room()).and_then(|s| {
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
            None => notify::ready(&status_line(info.pid, info.generation, listeners.len())),
        }
        match control::listen(info.pid, self.busy.clone()) {
            Ok(rx) => self.control = Some(rx),
            Err(e) => tracing::warn!(
                error = %e,
                "reload control socket unavailable; `handoff reload` will not reach this \
                 process, SIGHUP still reloads"
            ),
        }
    }

    /// Resolves when a reload is requested through the control socket
    /// (SIGHUP is the lifecycle's signal).
    pub async fn requested(&mut self) {
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

    /// Starts a successor and waits until it serves: the successor, which
    /// the lifecycle then hands off to; None if it failed, and this process
    /// keeps serving.
    pub async fn reload(
        &mut self,
        state: &AppState,
        listeners: &[Taken],
        quic: Option<&Quic>,
    ) -> Option<Successor> {
        let (launch, reply_to): (Launch, Option<oneshot::Sender<ReloadReply>>) =
            match self.request.take() {
                Some((request, tx)) => (request.launch, Some(tx)),
                None => (
                    Launch {
                        exe: self.exe.clone(),
                        args: self.args.clone(),
                        env: std::env::vars().collect(),
                    },
                    None,
                ),
            };
        self.busy.store(true, Ordering::Release);
        let info = &state.info;
        let next = info.generation + 1;
        notify::reloading(&format!("reloading: starting generation {next}"));
        tracing::info!(
            exe = %launch.exe.display(),
            generation = next,
            "reload: starting a successor on the same listeners"
        );
        let started = Instant::now();
        // TLS sessions resume on the successor: it gets the ticket keys.
        let tickets = state.tls.as_ref().map(|t| t.tickets.export());
        // QUIC connections stay here and their datagrams are passed back.
        let mut quic_handoff = match quic
            .map(|q| q.hand_off(state.settings.handoff.quic_forwarding))
        {
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "no QUIC forwarding pair: this process's HTTP/3 connections end at the hand-off");
                None
            }
            None => None,
        };
        let theirs = quic_handoff.as_mut().and_then(|h| h.theirs.take());
        let outcome = match successor::spawn(
            &launch,
            listeners,
            info.generation,
            tickets.as_deref(),
            quic_handoff.as_ref().map(|h| (h.line.as_str(), theirs)),
        ) {
            Ok(pending) => {
                tracing::info!(
                    pid = pending.pid(),
                    "reload: successor started, waiting until it serves"
                );
                successor::wait_ready(pending, self.ready_timeout).await
            }
            Err(e) => Err(e),
        };
        let took_ms = millis(started.elapsed());
        state
            .metrics
            .handoff_last_duration_ms
            .set(i64::try_from(took_ms).unwrap_or(i64::MAX));

        let (reply, handed_off) = match outcome {
            Ok(successor) => {
                // The successor reads the QUIC socket from now on; without
                // a pair, this process stops reading it all the same (two
                // readers would split every connection's datagrams).
                match (quic, quic_handoff.take()) {
                    (Some(quic), Some(handoff)) => quic.handed_over(handoff),
                    (Some(quic), None) => quic.handed_over_without_pair(),
                    (None, _) => {}
                }
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
                        info.pid
                    ),
                };
                (reply, Some(successor))
            }
            Err(e) => {
                state.metrics.record_handoff(e.outcome());
                let message = format!("reload failed: {e}; pid {} keeps serving", info.pid);
                notify::ready(&message);
                tracing::error!(outcome = e.outcome(), took_ms, "{message}");
                self.busy.store(false, Ordering::Release);
                let reply = ReloadReply {
                    ok: false,
                    pid: info.pid,
                    generation: info.generation,
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

fn status_line(pid: u32, generation: u64, listeners: usize) -> String {
    format!("serving on {listeners} listeners, pid {pid}, generation {generation}")
}

/// `handoff reload --pid PID`: asks process `pid` to reload with `exe`,
/// `args` and this process's environment, and waits up to `timeout` for
/// the outcome; the exit status (0; 75 when the reload failed and the old
/// process serves on; 69 when no such process takes reloads).
pub fn request(name: &str, pid: u32, exe: PathBuf, args: Vec<String>, timeout: Duration) -> u8 {
    let launch = Launch {
        exe,
        args,
        env: std::env::vars().collect(),
    };
    match control::request_reload(pid, launch, timeout) {
        Ok(reply) if reply.ok => {
            println!("reloaded: {}", reply.message);
            exit::OK
        }
        Ok(reply) => {
            eprintln!("{name}: {}", reply.message);
            exit::TEMPFAIL
        }
        Err(e) => {
            eprintln!("{name}: reload failed: {e}");
            if matches!(e, control::ClientError::Connect { .. }) {
                exit::UNAVAILABLE
            } else {
                exit::TEMPFAIL
            }
        }
    }
}
