//! What every worker shares: the settings, which process this is and its
//! metrics; what handlers are given ([`Info`], [`RequestLimits`]); and, per
//! server instance, the [`Phase`] it is in.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use super::metrics::Metrics;
use crate::settings::Settings;

/// Shared by every worker of the process.
pub struct AppState {
    pub settings: Settings,
    pub info: Info,
    pub metrics: Metrics,
}

impl AppState {
    pub fn new(settings: Settings, generation: u64) -> Self {
        let info = Info {
            pid: std::process::id(),
            generation,
            started: SystemTime::now(),
        };
        Self {
            metrics: Metrics::new(info.started, generation),
            settings,
            info,
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
    /// `limits.max_body_bytes`: larger announced bodies are refused with 413
    /// before a handler runs; a handler reading a chunked body stops here.
    pub max_body_bytes: usize,
    /// `server.client_body_timeout`: the connection ends a body still
    /// arriving 0.5 s after this, so a handler answering 408 should use it.
    pub client_body_timeout: Duration,
}

/// Where one server instance stands. A process usually runs one instance; an
/// old process that takes its listeners back from a failed successor runs a
/// second while the first still drains, and each answers `/readyz` and
/// `Connection:` for itself.
#[derive(Debug, Default)]
pub struct Phase(AtomicU8);

const SERVING: u8 = 0;
const LAME_DUCK: u8 = 1;
const DRAINING: u8 = 2;

impl Phase {
    /// Stopping, but still serving (`server.shutdown_delay`): `/readyz` 503.
    pub fn begin_lame_duck(&self) {
        let _ = self
            .0
            .compare_exchange(SERVING, LAME_DUCK, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Marks the instance draining; true the first time only.
    pub fn begin_draining(&self) -> bool {
        self.0.swap(DRAINING, Ordering::AcqRel) != DRAINING
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire) == DRAINING
    }

    /// In the lame duck or draining: `/readyz` says 503.
    pub fn is_stopping(&self) -> bool {
        self.0.load(Ordering::Acquire) != SERVING
    }
}
