//! Idle keep-alive connections outlive the process that accepted them.
//!
//! When a server instance drains, each of its connections that is idle (see
//! `conn`) stops being read and gives up its file descriptor here instead of
//! being closed, so that a client writing its next request at that instant
//! loses nothing: the bytes wait in the kernel for whoever takes the socket.
//! Where the descriptors go depends on why the instance drains:
//! - a reload: to the successor, over the channel that said it is ready
//!   (SCM_RIGHTS), which serves them beside its listeners;
//! - a stop under systemd with a file descriptor store (`FDSTORE=` in the
//!   environment, set by systemd 254+ from `FileDescriptorStoreMax=`, or by
//!   the unit on older systemd): to the store, named `conn`; the next process
//!   gets them in `LISTEN_FDS` and serves them;
//! - otherwise nobody can take them: they are closed, as every server does.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The fd name of connections in systemd's store.
pub const STORED_CONNECTION_NAME: &str = "conn";

/// Where idle connections go once the drain began.
enum Destination {
    /// Not draining yet.
    None,
    /// Draining, and nobody takes them.
    Close,
    Pass(mpsc::UnboundedSender<OwnedFd>),
}

/// What became of a connection offered at a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Taken,
    Close,
}

/// Counters of what became of connections at drains and starts.
#[derive(Clone, Default)]
pub struct Counts {
    pub handed_over: Counter,
    pub stored: Counter,
    pub adopted: Counter,
    pub closed: Counter,
}

/// Shared by one server instance and all its connections.
pub struct Handover {
    drain: CancellationToken,
    destination: Mutex<Destination>,
    counts: Counts,
}

impl Handover {
    pub fn new(counts: Counts) -> Self {
        Self {
            drain: CancellationToken::new(),
            destination: Mutex::new(Destination::None),
            counts,
        }
    }

    /// Resolves when the drain begins.
    pub fn draining(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.drain.clone().cancelled_owned()
    }

    /// Begins the drain: every connection is woken, and idle ones go to
    /// `to` (None: closed).
    pub fn begin(&self, to: Option<mpsc::UnboundedSender<OwnedFd>>) {
        *self.lock() = match to {
            Some(tx) => Destination::Pass(tx),
            None => Destination::Close,
        };
        self.drain.cancel();
    }

    /// Ends the drain: nothing more is passed, so the pump sees the end.
    pub fn end(&self) {
        *self.lock() = Destination::Close;
    }

    /// True when idle connections go somewhere (a successor, the store)
    /// rather than being closed.
    pub fn passes(&self) -> bool {
        matches!(*self.lock(), Destination::Pass(_))
    }

    /// Offers an idle connection: Taken (this process must no longer read,
    /// write or shut it down) or Close.
    pub fn offer(&self, conn: &impl AsFd) -> Offer {
        let guard = self.lock();
        let Destination::Pass(tx) = &*guard else {
            self.counts.closed.inc();
            return Offer::Close;
        };
        // Our own copy to pass on: the connection's is closed by its owner.
        let sent = conn
            .as_fd()
            .try_clone_to_owned()
            .is_ok_and(|fd| tx.send(fd).is_ok());
        if sent {
            Offer::Taken
        } else {
            self.counts.closed.inc();
            Offer::Close
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Destination> {
        self.destination
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One byte goes with each descriptor, so that the stream carries a message
/// for every SCM_RIGHTS control message.
const MARK: &[u8] = b"C";

/// Sends every connection from `rx` to the successor on `channel` until the
/// drain ends. Returns (sent, failed); a connection that could not be sent is
/// closed (its client sees the close; nothing was read from it).
pub async fn send_to_successor(
    channel: tokio::net::UnixStream,
    mut rx: mpsc::UnboundedReceiver<OwnedFd>,
    counts: Counts,
) -> (u64, u64) {
    use sendfd::SendWithFd;
    let (mut sent, mut failed) = (0, 0);
    while let Some(fd) = rx.recv().await {
        let ok = loop {
            if channel.writable().await.is_err() {
                break false;
            }
            match channel.send_with_fd(MARK, &[fd.as_raw_fd()]) {
                Ok(_) => break true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot pass a connection to the successor");
                    break false;
                }
            }
        };
        if ok {
            sent += 1;
            counts.handed_over.inc();
        } else {
            failed += 1;
            counts.closed.inc();
        }
    }
    (sent, failed)
}

/// Receives connections from the previous process on `channel` until it
/// closes it, and gives each to `adopt`.
pub async fn receive_from_predecessor(
    channel: tokio::net::UnixStream,
    adopt: mpsc::UnboundedSender<OwnedFd>,
) -> u64 {
    use sendfd::RecvWithFd;
    use std::os::fd::FromRawFd;
    let mut received = 0;
    let mut bytes = [0u8; 64];
    let mut fds = [-1; 64];
    loop {
        if channel.readable().await.is_err() {
            return received;
        }
        match channel.recv_with_fd(&mut bytes, &mut fds) {
            Ok((0, 0)) => return received,
            Ok((_, n)) => {
                for raw in &fds[..n] {
                    // SAFETY: the kernel just installed this descriptor for
                    // us; nothing else owns it.
                    let fd = unsafe { OwnedFd::from_raw_fd(*raw) };
                    // SAFETY: F_SETFD on a descriptor we own. This task runs
                    // on the thread that starts successors, so no fork can
                    // come between the receipt and this.
                    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
                    received += 1;
                    let _ = adopt.send(fd);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::warn!(error = %e, "receiving connections from the previous process");
                return received;
            }
        }
    }
}

/// Stores every connection from `rx` in systemd's fd store (at most `max`;
/// more are closed), then waits until systemd has processed the messages:
/// a message still queued when this process exits would be dropped with its
/// descriptors.
pub async fn send_to_store(
    mut rx: mpsc::UnboundedReceiver<OwnedFd>,
    max: usize,
    counts: Counts,
) -> (u64, u64) {
    use sd_notify::NotifyState;
    let (mut stored, mut failed) = (0u64, 0u64);
    while let Some(fd) = rx.recv().await {
        if stored as usize >= max {
            failed += 1;
            counts.closed.inc();
            continue;
        }
        let states = [
            NotifyState::FdStore,
            NotifyState::FdName(STORED_CONNECTION_NAME),
        ];
        match sd_notify::notify_with_fds(&states, &[fd.as_fd()]) {
            Ok(()) => {
                stored += 1;
                counts.stored.inc();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot store a connection with the service manager");
                failed += 1;
                counts.closed.inc();
            }
        }
    }
    if stored > 0
        && let Err(e) = crate::notify::barrier(std::time::Duration::from_secs(5))
    {
        tracing::warn!(error = %e, "the service manager did not confirm the stored connections");
    }
    (stored, failed)
}

/// The fd store's capacity from `FDSTORE=` (systemd 254+ sets it from
/// `FileDescriptorStoreMax=`); None when there is no store to use.
pub fn store_capacity() -> Option<usize> {
    if !crate::notify::supervised() {
        return None;
    }
    std::env::var("FDSTORE")
        .ok()?
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
}

/// Tells systemd to forget the stored connections this process took from
/// `LISTEN_FDS`: they are served here now, and must not be passed again.
pub fn forget_stored() {
    use sd_notify::NotifyState;
    let states = [
        NotifyState::FdStoreRemove,
        NotifyState::FdName(STORED_CONNECTION_NAME),
    ];
    if crate::notify::supervised()
        && let Err(e) = sd_notify::notify(&states)
    {
        tracing::warn!(error = %e, "cannot remove the stored connections from the store");
    }
}
