//! The worker threads of one server instance, as handoff sees them: how many
//! connections each serves, and where a connection adopted from another
//! process goes.
//!
//! actix-server spreads the connections it accepts over its workers; the
//! ones handed to this process (by its predecessor, or kept in systemd's fd
//! store) never pass its accept loop, so handoff spreads those itself: each
//! goes to the worker serving the fewest connections, accepted or adopted,
//! and a worker at `server.max_connections` takes none. Served on its worker,
//! an adopted connection is the same as an accepted one from there on.
//!
//! New QUIC connections (HTTP/3) come the same way: the process's one QUIC
//! endpoint gives each to the worker serving the fewest, which runs its
//! handshake and its requests.
//!
//! Every connection of the instance holds a [`Live`] while it is open, so
//! the drain can wait until the last one is gone, whichever way it came.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;
use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};

use super::shared::metrics::{Metrics, WorkerLabels};
use crate::sync::lock;

/// The workers of one instance.
pub(crate) struct Workers {
    slots: Mutex<Vec<Slot>>,
    /// One token for every open connection.
    open: TaskTracker,
    /// Connections a worker may serve (`server.max_connections`).
    cap: usize,
    metrics: WorkerMetrics,
}

/// The per-worker series (shared by the instances of a process: worker 0
/// of a later instance counts on worker 0's series) and the count of
/// connections closed for want of room.
struct WorkerMetrics {
    open: Family<WorkerLabels, Gauge>,
    adopted: Family<WorkerLabels, Counter>,
    closed: Counter,
}

struct Slot {
    thread: ThreadId,
    worker: Worker,
    /// Connections for this worker's thread to serve.
    adopt: mpsc::UnboundedSender<Handed>,
}

/// A connection a worker is given rather than accepts.
pub(crate) enum Handed {
    /// A TCP or unix connection between two requests, from the previous
    /// process or the fd store.
    Socket(OwnedFd),
    /// A new QUIC connection, its handshake counted until done.
    /// (Boxed: quinn's `Incoming` is large, and most handed are sockets.)
    Quic(Box<(quinn::Incoming, crate::quic::Handshaking)>),
}

/// One worker: its place in the instance and its count of open connections.
#[derive(Clone)]
pub(crate) struct Worker {
    index: usize,
    load: Arc<AtomicUsize>,
    open_gauge: Gauge,
    adopted: Counter,
    workers: Arc<Workers>,
}

/// Held by an open connection: it counts on its worker and in the instance
/// until dropped.
pub(crate) struct Live {
    load: Arc<AtomicUsize>,
    gauge: Gauge,
    _open: TaskTrackerToken,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.load.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

/// Why an adopted connection was closed instead of served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error("every worker serves server.max_connections ({0}) connections")]
    Full(usize),
    #[error("no worker is running")]
    NoWorker,
}

impl Workers {
    pub fn new(cap: usize, metrics: &Metrics) -> Arc<Self> {
        Arc::new(Self {
            slots: Mutex::new(Vec::new()),
            open: TaskTracker::new(),
            cap,
            metrics: WorkerMetrics {
                open: metrics.worker_connections.clone(),
                adopted: metrics.worker_adopted.clone(),
                closed: metrics.connections.closed.clone(),
            },
        })
    }

    /// Called on a worker's thread as it builds its services (once for each
    /// listener): this worker, and, the first time, the receiving end of its
    /// adopted connections, for a task on this thread to serve.
    pub fn join(self: &Arc<Self>) -> (Worker, Option<mpsc::UnboundedReceiver<Handed>>) {
        let thread = std::thread::current().id();
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.iter().find(|s| s.thread == thread) {
            return (slot.worker.clone(), None);
        }
        let labels = WorkerLabels {
            worker: slots.len() as u64,
        };
        let worker = Worker {
            index: slots.len(),
            load: Arc::new(AtomicUsize::new(0)),
            open_gauge: self.metrics.open.get_or_create(&labels).clone(),
            adopted: self.metrics.adopted.get_or_create(&labels).clone(),
            workers: self.clone(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        slots.push(Slot {
            thread,
            worker: worker.clone(),
            adopt: tx,
        });
        (worker, Some(rx))
    }

    /// Gives a connection to the worker serving the fewest, unless all are
    /// at the cap. Returns the worker's index; a refused connection is
    /// closed (a QUIC one refused) and counted.
    pub fn adopt(&self, handed: Handed) -> Result<usize, Refused> {
        let slots = lock(&self.slots);
        let refused = |why| {
            self.metrics.closed.inc();
            Err(why)
        };
        let Some(slot) = slots
            .iter()
            .filter(|s| !s.adopt.is_closed())
            .min_by_key(|s| s.worker.load.load(Ordering::Relaxed))
        else {
            return refused(Refused::NoWorker);
        };
        if slot.worker.load.load(Ordering::Relaxed) >= self.cap {
            return refused(Refused::Full(self.cap));
        }
        // Counted until the worker takes it (`received`), so that a burst
        // of adoptions spreads instead of all going to the same worker.
        slot.worker.load.fetch_add(1, Ordering::Relaxed);
        if slot.adopt.send(handed).is_err() {
            slot.worker.load.fetch_sub(1, Ordering::Relaxed);
            return refused(Refused::NoWorker);
        }
        Ok(slot.worker.index)
    }

    /// Waits until every connection of the instance is closed or handed
    /// over. Connections opened after this began are not waited for.
    pub async fn all_closed(&self) {
        self.open.close();
        self.open.wait().await;
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.len()
    }
}

impl Worker {
    /// Counts a connection this worker serves until the returned guard drops.
    pub fn connection(&self) -> Live {
        self.load.fetch_add(1, Ordering::Relaxed);
        self.open_gauge.inc();
        Live {
            load: self.load.clone(),
            gauge: self.open_gauge.clone(),
            _open: self.workers.open.token(),
        }
    }

    /// The worker took an adopted connection off its queue: from here on
    /// the connection's [`Live`] counts it.
    pub fn received(&self) {
        self.load.fetch_sub(1, Ordering::Relaxed);
    }

    /// The worker serves an adopted connection now.
    pub fn adopted(&self) {
        self.adopted.inc();
    }

    pub fn index(&self) -> usize {
        self.index
    }
}
