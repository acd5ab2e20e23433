//! What every worker shares: the settings, which process this is and its
//! metrics; what handlers are given ([`Info`], [`RequestLimits`]); and, per
//! server instance, the [`Phase`] it is in.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::drain_signal::{DrainSignal, LongLived};
use super::metrics::Metrics;
use crate::settings::Settings;

/// Shared by every worker of the process.
pub struct AppState {
    pub settings: Settings,
    pub info: Info,
    pub metrics: Metrics,
    /// What the `https` listeners serve with; None without `[tls]`.
    pub tls: Option<crate::tls::Tls>,
}

impl AppState {
    pub fn new(settings: Settings, generation: u64, tls: Option<crate::tls::Tls>) -> Self {
        let info = Info {
            pid: std::process::id(),
            generation,
            started: SystemTime::now(),
        };
        Self {
            metrics: Metrics::new(info.started, generation),
            settings,
            info,
            tls,
        }
    }

    /// The limits handlers that read a body work within.
    pub fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_body_bytes: self.settings.limits.max_body_bytes,
            client_body_timeout: self.settings.server.client_body_timeout,
        }
    }
}

/// Which process answers: given to handlers as `web::Data<Info>`.
#[derive(Debug, Clone)]
pub struct Info {
    pub pid: u32,
    /// 1 for a process started by systemd or by hand; n+1 for the process
    /// that took over from generation n in a reload.
    pub generation: u64,
    pub started: SystemTime,
}

impl Info {
    /// The start time as RFC 3339, to the second.
    pub fn started_rfc3339(&self) -> String {
        humantime::format_rfc3339_seconds(self.started).to_string()
    }
}

/// The request limits of handoff's settings, for handlers that read a body:
/// given to handlers as `web::Data<RequestLimits>`.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// `limits.max_body_bytes`, when set: a body that announces more is
    /// refused with 413 before a handler runs, one that grows past it ends
    /// in `PayloadError::Overflow` for the handler (and the answer is 413).
    /// Unset, the application's own limits decide (`PayloadConfig`,
    /// `JsonConfig`, ...), as under `HttpServer`.
    pub max_body_bytes: Option<usize>,
    /// `server.client_body_timeout`: the connection ends a body still
    /// arriving 0.5 s after this, so a handler answering 408 should use it.
    pub client_body_timeout: Duration,
}

/// Where one server instance stands. A process usually runs one instance; an
/// old process that takes its listeners back from a failed successor runs a
/// second while the first still drains, and each answers `/readyz` and
/// `Connection:` for itself, and fires its own [`DrainSignal`].
#[derive(Debug, Default)]
pub struct Phase {
    at: AtomicU8,
    signal: DrainSignal,
    /// Upgraded connections and streamed responses open now, by kind.
    long_lived_open: [AtomicU64; 2],
    /// Those that ended since the instance began to stop: closed (by their
    /// handler or client), and cut at the drain timeout.
    long_lived_closed: AtomicU64,
    long_lived_cut: AtomicU64,
    /// Cancelled at the cut: what must say goodbye before its worker's
    /// runtime stops (a QUIC connection's close is sent by a task on that
    /// runtime) does it then.
    cut: tokio_util::sync::CancellationToken,
}

const SERVING: u8 = 0;
const LAME_DUCK: u8 = 1;
const DRAINING: u8 = 2;
/// The drain timeout passed: what is still open is being cut.
const CUTTING: u8 = 3;

impl Phase {
    /// Stopping, but still serving (`server.shutdown_delay`): `/readyz` 503,
    /// and the drain signal fires.
    pub fn begin_lame_duck(&self) {
        let _ = self
            .at
            .compare_exchange(SERVING, LAME_DUCK, Ordering::AcqRel, Ordering::Acquire);
        self.signal.fire();
    }

    /// Marks the instance draining (answers get `Connection: close`); true
    /// the first time only. The drain signal is [`Phase::fire_drain_signal`]'s.
    pub fn begin_draining(&self) -> bool {
        let before = self.at.fetch_max(DRAINING, Ordering::AcqRel);
        before < DRAINING
    }

    /// Fires the drain signal (if the lame duck has not): handlers end their
    /// sessions and streams, whose clients reconnect.
    pub fn fire_drain_signal(&self) {
        self.signal.fire();
    }

    /// The drain timeout passed: what is still open is cut. How many
    /// upgrades and streams of each kind that is.
    pub fn begin_cutting(&self) -> [(LongLived, u64); 2] {
        self.at.store(CUTTING, Ordering::Release);
        self.cut.cancel();
        LongLived::ALL.map(|kind| {
            let open = self.long_lived_open[kind as usize].load(Ordering::Acquire);
            self.long_lived_cut.fetch_add(open, Ordering::Relaxed);
            (kind, open)
        })
    }

    /// Resolves at the cut (the drain timeout passed).
    pub fn cut_signal(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.cut.clone().cancelled_owned()
    }

    pub fn is_draining(&self) -> bool {
        self.at.load(Ordering::Acquire) >= DRAINING
    }

    pub fn is_cutting(&self) -> bool {
        self.at.load(Ordering::Acquire) == CUTTING
    }

    /// In the lame duck or draining: `/readyz` says 503.
    pub fn is_stopping(&self) -> bool {
        self.at.load(Ordering::Acquire) != SERVING
    }

    /// An upgrade or a stream began.
    pub fn long_lived_opened(&self, kind: LongLived) {
        self.long_lived_open[kind as usize].fetch_add(1, Ordering::AcqRel);
    }

    /// An upgrade or a stream ended; true if it was closed while the
    /// instance stopped (before the cut, which counts the rest itself).
    pub fn long_lived_ended(&self, kind: LongLived) -> bool {
        self.long_lived_open[kind as usize].fetch_sub(1, Ordering::AcqRel);
        let closed_at_drain = self.is_stopping() && !self.is_cutting();
        if closed_at_drain {
            self.long_lived_closed.fetch_add(1, Ordering::Relaxed);
        }
        closed_at_drain
    }

    /// Upgrades and streams ended since the instance began to stop: closed,
    /// and cut.
    pub fn long_lived(&self) -> (u64, u64) {
        (
            self.long_lived_closed.load(Ordering::Relaxed),
            self.long_lived_cut.load(Ordering::Relaxed),
        )
    }

    /// What handlers of this instance are given.
    pub fn drain_signal(&self) -> &DrainSignal {
        &self.signal
    }
}
