//! Handing idle keep-alive connections over: the one place that moves a
//! client's connection from one process to another, both ways.
//!
//! Out: when a server instance drains, each of its connections that is idle
//! (see `http::conn`) stops being read and offers its file descriptor to the
//! instance's [`Handover`] instead of being closed, so that a client writing
//! its next request at that instant loses nothing: the bytes wait in the
//! kernel for whoever takes the socket. Where the descriptors go is the
//! drain's [`Destination`]:
//! - a reload: to the successor, over the channel it reported ready on
//!   (SCM_RIGHTS), which serves them beside its listeners;
//! - a stop under systemd with a file descriptor store (`FDSTORE=` in the
//!   environment, set by systemd 254+ from `FileDescriptorStoreMax=`, or by
//!   the unit on older systemd): to the store, named `conn`; the next process
//!   gets them in `LISTEN_FDS` and serves them;
//! - no destination: nobody can take them, so none is offered; each stays in
//!   this process until its next request (answered with `Connection: close`)
//!   or its keep-alive timeout.
//!
//! In: a successor receives its predecessor's connections on the same
//! channel ([`receive_from_predecessor`]); a process started by systemd takes
//! the stored ones from `LISTEN_FDS` (see `sockets`) and tells the store to
//! forget them ([`forget_stored`]). Either way they go to the [`Adopt`]
//! channel, whose other end serves them (see `http`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::sync::lock;

/// The fd name of connections in systemd's store.
pub const STORED_CONNECTION_NAME: &str = "conn";

/// Where connections handed to this process are sent to be served.
pub type Adopt = mpsc::UnboundedSender<OwnedFd>;

/// Where a draining instance hands its idle connections.
pub enum Destination {
    /// The successor, on the channel it reported ready on, with room for
    /// this many (None: it did not say).
    Successor(tokio::net::UnixStream, Option<usize>),
    /// systemd's fd store, with room for this many.
    Store(usize),
}

impl Destination {
    /// The fd store when there is one to use: `FDSTORE=` (systemd 254+ sets
    /// it from `FileDescriptorStoreMax=`) under a service manager.
    pub fn store() -> Option<Self> {
        if !crate::notify::supervised() {
            return None;
        }
        std::env::var("FDSTORE")
            .ok()?
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .map(Self::Store)
    }
}

/// What became of a connection offered at a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Another process owns the socket now: never read, write or shut it
    /// down again.
    Taken,
    /// It could not be sent: close it.
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

/// Where offered connections go, as the drain proceeds.
enum Sink {
    /// Serving, or draining with no destination: nothing is offered.
    None,
    /// Draining: offered connections go to the pump.
    Pump(mpsc::UnboundedSender<OwnedFd>),
}

/// Shared by one server instance and all its connections.
pub struct Handover {
    drain: CancellationToken,
    /// Set with `drain`: read on every poll of every connection, where an
    /// atomic load is all that should be paid.
    draining: std::sync::atomic::AtomicBool,
    /// Set with `drain` when a successor serves on: a connection that
    /// stays with this process may stay until its client leaves.
    to_successor: std::sync::atomic::AtomicBool,
    sink: Mutex<Sink>,
    pump: Mutex<Option<tokio::task::JoinHandle<()>>>,
    counts: Counts,
}

impl Handover {
    pub fn new(counts: Counts) -> Self {
        Self {
            drain: CancellationToken::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            to_successor: std::sync::atomic::AtomicBool::new(false),
            sink: Mutex::new(Sink::None),
            pump: Mutex::new(None),
            counts,
        }
    }

    /// Resolves when the drain begins.
    pub fn draining(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.drain.clone().cancelled_owned()
    }

    /// Whether the drain began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Begins the drain: every connection is woken, and idle ones are sent to
    /// `to` from now on (None: none is offered). Call from the thread whose
    /// runtime should run the sending.
    pub fn begin(&self, to: Option<Destination>) {
        let to_successor = matches!(to, Some(Destination::Successor(..)));
        self.to_successor
            .store(to_successor, std::sync::atomic::Ordering::Release);
        if let Some(to) = to {
            let (tx, rx) = mpsc::unbounded_channel();
            let counts = self.counts.clone();
            let pump = match to {
                Destination::Successor(channel, room) => {
                    actix_web::rt::spawn(send_to_successor(channel, room, rx, counts))
                }
                Destination::Store(max) => actix_web::rt::spawn(send_to_store(rx, max, counts)),
            };
            *lock(&self.pump) = Some(pump);
            *lock(&self.sink) = Sink::Pump(tx);
        }
        self.draining
            .store(true, std::sync::atomic::Ordering::Release);
        self.drain.cancel();
    }

    /// Whether this drain is a reload's: a successor serves the sockets.
    /// False before the drain and at a stop.
    pub fn to_successor(&self) -> bool {
        self.to_successor.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Ends the drain: nothing more is offered, and what was is sent (or
    /// counted closed) by the time this returns.
    pub async fn end(&self) {
        *lock(&self.sink) = Sink::None;
        let pump = lock(&self.pump).take();
        if let Some(pump) = pump {
            let _ = pump.await;
        }
    }

    /// True when idle connections go somewhere (a successor, the store).
    pub fn hands_over(&self) -> bool {
        matches!(*lock(&self.sink), Sink::Pump(_))
    }

    /// Offers an idle connection: Taken, or Close if it could not be sent.
    pub fn offer(&self, conn: &impl AsFd) -> Offer {
        let sink = lock(&self.sink);
        let Sink::Pump(tx) = &*sink else {
            self.counts.closed.inc();
            return Offer::Close;
        };
        // Our own copy to send: the connection's is closed by its owner.
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
}

/// At most this many descriptors go in one SCM_RIGHTS message (the
/// kernel's SCM_MAX_FD); each message carries one byte, so that the stream
/// has data for every control message.
const BATCH: usize = 253;
const MARK: &[u8] = b"C";

/// Sends every connection from `rx` to the successor on `channel` until the
/// drain ends, in batches, and no more than `room` of them: descriptors the
/// successor cannot hold under its open-files limit would be dropped by the
/// kernel on the way. A connection that could not be sent is closed (its
/// client sees the close; nothing was read from it), and counted.
async fn send_to_successor(
    channel: tokio::net::UnixStream,
    room: Option<usize>,
    mut rx: mpsc::UnboundedReceiver<OwnedFd>,
    counts: Counts,
) {
    use sendfd::SendWithFd;
    let mut room = room.unwrap_or(usize::MAX);
    let mut batch: Vec<OwnedFd> = Vec::with_capacity(BATCH);
    while let Some(fd) = rx.recv().await {
        batch.push(fd);
        while batch.len() < BATCH
            && let Ok(fd) = rx.try_recv()
        {
            batch.push(fd);
        }
        if batch.len() > room {
            tracing::warn!(
                room,
                closed = batch.len() - room,
                "the successor has no room for more connections; closing the rest"
            );
            counts.closed.inc_by((batch.len() - room) as u64);
            batch.truncate(room);
        }
        let raw: Vec<_> = batch.iter().map(AsRawFd::as_raw_fd).collect();
        let sent = loop {
            if raw.is_empty() || channel.writable().await.is_err() {
                break false;
            }
            match channel.send_with_fd(MARK, &raw) {
                Ok(_) => break true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot hand connections to the successor");
                    break false;
                }
            }
        };
        let n = batch.len() as u64;
        if sent {
            counts.handed_over.inc_by(n);
            room -= batch.len();
        } else {
            counts.closed.inc_by(n);
        }
        batch.clear();
    }
}

/// How many more connections this process can hold: its open-files limit,
/// less the descriptors it has open and a margin for what serving needs
/// besides (listeners, logs, the connections it accepts meanwhile).
pub fn room() -> usize {
    const MARGIN: usize = 256;
    // SAFETY: getrlimit only writes into the struct we own.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return usize::MAX;
    }
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
    usize::try_from(lim.rlim_cur)
        .unwrap_or(usize::MAX)
        .saturating_sub(open + MARGIN)
}

/// Receives connections from the previous process on `channel` until it
/// closes it, and gives each to `adopt`; how many.
pub async fn receive_from_predecessor(channel: tokio::net::UnixStream, adopt: Adopt) -> u64 {
    use sendfd::RecvWithFd;
    use std::os::fd::FromRawFd;
    let mut received = 0;
    let mut bytes = [0u8; BATCH];
    let mut fds = [-1; BATCH];
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
async fn send_to_store(mut rx: mpsc::UnboundedReceiver<OwnedFd>, max: usize, counts: Counts) {
    use sd_notify::NotifyState;
    let mut stored = 0;
    while let Some(fd) = rx.recv().await {
        if stored >= max {
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
                counts.closed.inc();
            }
        }
    }
    if stored > 0
        && let Err(e) = crate::notify::barrier(std::time::Duration::from_secs(5))
    {
        tracing::warn!(error = %e, "the service manager did not confirm the stored connections");
    }
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
