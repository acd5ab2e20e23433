//! The signals a handoff process acts on: SIGTERM, SIGINT and SIGRTMIN+3
//! (systemd's stop signal, which container images set as theirs) stop it;
//! SIGHUP reloads. The serving process and the container supervisor both
//! take them from here.

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Stop, by the signal's name.
    Stop(&'static str),
    Reload,
}

/// The stop signals, kept apart from SIGHUP so that a stop can be awaited
/// alone (the lame duck, the standby) as well as with it.
struct Stops {
    term: Signal,
    int: Signal,
    rtmin3: Signal,
}

impl Stops {
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
            _ = self.rtmin3.recv() => "SIGRTMIN+3",
        }
    }
}

pub struct Signals {
    stops: Stops,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers, then lets the signals through (see [`block`]).
    pub fn install() -> io::Result<Self> {
        let signals = Self {
            stops: Stops {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                rtmin3: signal(SignalKind::from_raw(libc::SIGRTMIN() + 3))?,
            },
            hup: signal(SignalKind::hangup())?,
        };
        unblock();
        Ok(signals)
    }

    /// The next stop signal, by name.
    pub async fn stop(&mut self) -> &'static str {
        self.stops.recv().await
    }

    /// The next stop or reload signal.
    pub async fn next(&mut self) -> Event {
        tokio::select! {
            name = self.stops.recv() => Event::Stop(name),
            _ = self.hup.recv() => Event::Reload,
        }
    }
}

/// The signals above, as a set for sigprocmask(2).
fn sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [
            libc::SIGHUP,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGRTMIN() + 3,
        ] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks these signals in the calling thread (and the threads it starts
/// later). Called first thing, so that a signal that arrives while the
/// process starts (a successor is signalled the moment it is ready) is kept
/// pending until [`Signals::install`] handles it, not fatal: their default
/// action is to terminate.
pub fn block() {
    let set = sigset();
    // SAFETY: changes this thread's mask only.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Lets them through to this thread again, pending ones included, once they
/// are handled. Threads started meanwhile keep them blocked, so they are
/// delivered here.
fn unblock() {
    let set = sigset();
    // SAFETY: changes this thread's mask only.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
}
