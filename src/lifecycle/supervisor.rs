//! handoff as PID 1 of a container (`podman run IMAGE handoff`, the host's
//! systemd holding the socket): a small supervisor, so that a reload does
//! not end the container.
//!
//! A container lives as long as its PID 1. A reload replaces the serving
//! process, so that process cannot be PID 1. Instead PID 1 keeps what must
//! outlive every generation (the listening sockets, the container's
//! lifetime, the link to podman's notify socket) and runs the generations
//! as its children, as systemd runs a unit's processes:
//! - it starts generation 1 on the sockets through the hand-off machinery
//!   and gives it a notify socket of its own, so every generation reports to
//!   PID 1 (`READY=1`, `MAINPID=` of a successor, `STOPPING=1`) exactly as it
//!   reports to systemd;
//! - SIGHUP goes to the current generation, which hands off as usual; the
//!   successor, orphaned when its predecessor exits, is reaped here;
//! - SIGTERM, SIGINT and SIGRTMIN+3 (the image's stop signal, right for
//!   systemd) stop the current generation, which drains; PID 1 exits when
//!   no generation is left;
//! - `READY=1`, `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1` and `STATUS=` go on
//!   to podman's `--sdnotify=container` socket (conmon does not forward
//!   `MAINPID=`; it need not know which child serves);
//! - if the serving generation dies, PID 1 exits with status 70: the
//!   container ends, and a host unit's `Restart=` starts it again while the
//!   host keeps the socket.

use std::io;
use std::time::Duration;

use tokio::net::UnixDatagram;
use tokio::signal::unix::{SignalKind, signal};

use super::signals::{Event, Signals};
use super::successor::{self, Launch};
use crate::exit;
use crate::sockets::Taken;

/// True when this process is PID 1 and should supervise rather than serve.
/// `HANDOFF_NO_SUPERVISOR=1` serves directly (a container whose PID 1 is an
/// init such as `podman run --init` is not PID 1 here anyway).
pub fn wanted() -> bool {
    std::process::id() == 1 && std::env::var_os("HANDOFF_NO_SUPERVISOR").is_none_or(|v| v != "1")
}

/// Runs the supervisor until the last generation exits; the exit status.
pub fn run(listeners: Vec<Taken>, ready_timeout: Duration) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the supervisor's runtime");
            return exit::SOFTWARE;
        }
    };
    runtime.block_on(supervise(listeners, ready_timeout))
}

async fn supervise(listeners: Vec<Taken>, ready_timeout: Duration) -> u8 {
    let (mut signals, mut child) =
        match Signals::install().and_then(|s| Ok((s, signal(SignalKind::child())?))) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot install signal handlers");
                return exit::SOFTWARE;
            }
        };
    // podman's notify socket (--sdnotify=container), if any: ours to forward to.
    let upstream = std::env::var_os("NOTIFY_SOCKET");
    let (notify, address) = match bind_notify() {
        Ok(pair) => pair,
        Err(e) => {
            tracing::error!(error = %e, "cannot bind the supervisor's notify socket");
            return exit::SOFTWARE;
        }
    };
    // The child's NOTIFY_SOCKET is set to ours by spawn_with_notify.
    let launch = Launch {
        exe: std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into()),
        args: std::env::args().skip(1).collect(),
        env: std::env::vars().collect(),
    };
    // Generation 1, started like a successor of this process: the sockets at
    // 3.., ready reported on a channel, its failure reported here.
    let first = match successor::spawn_with_notify(&launch, &listeners, 0, &address) {
        Ok(pending) => successor::wait_ready(pending, ready_timeout).await,
        Err(e) => Err(e),
    };
    let mut main = match first {
        Ok(s) => s.pid(),
        Err(e) => {
            tracing::error!(error = %e, "the first generation did not start");
            return exit::SOFTWARE;
        }
    };
    // The sockets live on in the generations; this process only supervises.
    drop(listeners);
    tracing::info!(pid = main, "supervising: generation 1 serves");
    forward(
        upstream.as_deref(),
        &format!("READY=1\nSTATUS=serving, pid {main}\n"),
    );

    let mut stopping = false;
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            received = notify.recv(&mut buf) => {
                let Ok(n) = received else { continue };
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if let Some(pid) = main_pid_in(&message) {
                    tracing::info!(pid, "a new generation serves");
                    main = pid;
                }
                let passed: String = message
                    .lines()
                    .filter(|l| FORWARDED.iter().any(|p| l.starts_with(p)))
                    .map(|l| format!("{l}\n"))
                    .collect();
                // A draining old generation's STOPPING=1 is not the service's.
                let from_old = stopping_from_old(&message, stopping);
                if !passed.is_empty() && !from_old {
                    forward(upstream.as_deref(), &passed);
                }
            }
            signal = signals.next() => match signal {
                Event::Reload => {
                    tracing::info!(pid = main, "SIGHUP: the serving generation hands off");
                    send(main, libc::SIGHUP);
                }
                Event::Stop(name) => {
                    tracing::info!(signal = name, pid = main, "stopping: the serving generation drains");
                    stopping = true;
                    send(main, libc::SIGTERM);
                }
            },
            // SIGCHLD: tokio keeps one that arrives between two waits.
            _ = child.recv() => {}
        }
        // Reap every child that exited: generations, and orphans reparented
        // to PID 1.
        loop {
            let mut status = 0;
            // SAFETY: waitpid(2) on any child, not blocking.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                if pid < 0 && stopping {
                    // No child left: the drain is over.
                    tracing::info!("every generation exited");
                    return exit::OK;
                }
                break;
            }
            if pid as u32 == main {
                let clean = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
                if stopping && clean {
                    continue;
                }
                tracing::error!(
                    pid,
                    status,
                    "the serving generation died; ending the container"
                );
                forward(
                    upstream.as_deref(),
                    "STOPPING=1\nSTATUS=the serving process died\n",
                );
                return if clean { exit::OK } else { exit::SOFTWARE };
            }
        }
    }
}

/// What goes on to podman's notify socket.
const FORWARDED: &[&str] = &["READY=", "RELOADING=", "STOPPING=", "WATCHDOG=", "STATUS="];

/// A `STOPPING=1` is only forwarded while the service stops: generations
/// that drain after a hand-off do not say it (they are no longer the main
/// process), but a guard costs nothing.
fn stopping_from_old(message: &str, stopping: bool) -> bool {
    !stopping && message.lines().any(|l| l == "STOPPING=1")
}

fn main_pid_in(message: &str) -> Option<u32> {
    message
        .lines()
        .find_map(|l| l.strip_prefix("MAINPID="))
        .and_then(|p| p.parse().ok())
}

fn send(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child of ours (or a reparented descendant).
    unsafe { libc::kill(pid as i32, sig) };
}

/// Sends `message` to podman's notify socket, when there is one.
fn forward(upstream: Option<&std::ffi::OsStr>, message: &str) {
    let Some(path) = upstream else { return };
    let result = std::os::unix::net::UnixDatagram::unbound().and_then(|s| {
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            s.send_to_addr(message.as_bytes(), &addr)
        } else {
            s.send_to(message.as_bytes(), std::path::Path::new(path))
        }
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot notify podman");
    }
}

/// The supervisor's own notify socket and its `NOTIFY_SOCKET` value: a path
/// (sd_notify clients, the sd-notify crate among them, do not all speak
/// abstract addresses) in `/run` (podman mounts a tmpfs there even for
/// `--read-only` images), else the temporary folder.
fn bind_notify() -> io::Result<(UnixDatagram, String)> {
    let mut last = io::Error::other("no folder for the notify socket");
    for dir in [std::path::PathBuf::from("/run"), std::env::temp_dir()] {
        let path = dir.join(format!("handoff-supervisor-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        match UnixDatagram::bind(&path) {
            Ok(socket) => return Ok((socket, path.display().to_string())),
            Err(e) => last = e,
        }
    }
    Err(last)
}
