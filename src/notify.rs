//! The sd_notify(3) protocol towards the service manager. Every call is silent
//! without `NOTIFY_SOCKET`, so the same binary runs under `cargo run`.
//!
//! `NOTIFY_SOCKET` is deliberately left in the environment: a process started
//! for a hand-off must reach the same manager to announce itself.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// True when a service manager watches this process (`NOTIFY_SOCKET`): it
/// restarts the service if the main process dies, so nothing else must.
pub fn supervised() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// `READY=1` with a status line: the manager may now consider us started.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STOPPING=1`: draining has begun.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// `RELOADING=1`: a reload (hand-off) is in progress.
pub fn reloading(status: &str) {
    send(&[NotifyState::Reloading, NotifyState::Status(status)]);
}

/// `MAINPID=` + `READY=1`: sent by the old main process once its successor
/// serves, making the successor the unit's main process. `WATCHDOG=1` resets
/// the manager's watchdog on the successor's behalf: its own first ping comes
/// one interval after it started, and the manager counts only the main
/// process's pings, so a series of quick reloads would otherwise starve it.
pub fn main_pid_ready(pid: u32, status: &str) {
    let mut states = vec![
        NotifyState::MainPid(pid),
        NotifyState::Ready,
        NotifyState::Status(status),
    ];
    if watchdog_interval().is_some() {
        states.push(NotifyState::Watchdog);
    }
    send(&states);
}

/// The interval at which to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, as
/// sd_watchdog_enabled(3) recommends; `None` when no watchdog is configured
/// (or it is meant for another pid).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// `BARRIER=1` (sd_notify_barrier(3)): returns once the manager processed
/// every message sent before, or after `timeout`.
pub fn barrier(timeout: Duration) -> std::io::Result<()> {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Ok(());
    }
    let mut ends = [-1; 2];
    // SAFETY: pipe2 fills the two descriptors we then own.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just created by pipe2.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    sd_notify::notify_with_fds(&[NotifyState::Custom("BARRIER=1")], &[write.as_fd()])?;
    drop(write);
    // The manager closes its copy of the write end once it got this far.
    let mut poll = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&read),
        events: 0,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one pollfd we own.
    match unsafe { libc::poll(&mut poll, 1, ms) } {
        1 => Ok(()),
        0 => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer to BARRIER=1",
        )),
        _ => Err(std::io::Error::last_os_error()),
    }
}
