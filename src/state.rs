//! What every worker shares: identity of this process, settings, metrics;
//! and, per server instance, whether it is draining.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use crate::config::Settings;
use crate::metrics::Metrics;

pub struct AppState {
    pub settings: Settings,
    pub pid: u32,
    pub started: SystemTime,
    /// 1 for a process started by systemd or by hand; n+1 for the process
    /// that takes over from generation n in a hand-off.
    pub generation: u64,
    pub metrics: Metrics,
}

impl AppState {
    pub fn new(settings: Settings, generation: u64) -> Self {
        let started = SystemTime::now();
        Self {
            settings,
            pid: std::process::id(),
            started,
            generation,
            metrics: Metrics::new(started, generation),
        }
    }

    /// What handlers see of this process.
    pub fn info(&self) -> crate::service::Info {
        crate::service::Info {
            pid: self.pid,
            generation: self.generation,
            started: self.started,
        }
    }
}

/// One run of the HTTP server on the listeners. A process usually has one;
/// an old process that takes its listeners back after a failed successor
/// (see `server`) serves a second instance while the first still drains, and
/// each must answer `/readyz` and `Connection:` for itself.
#[derive(Debug, Default)]
pub struct Instance {
    draining: AtomicBool,
    /// Stopping, but still serving (server.shutdown_delay).
    lame_duck: AtomicBool,
}

impl Instance {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Still serving, but about to stop: `/readyz` says 503.
    pub fn is_stopping(&self) -> bool {
        self.is_draining() || self.lame_duck.load(Ordering::Acquire)
    }

    pub fn begin_lame_duck(&self) {
        self.lame_duck.store(true, Ordering::Release);
    }

    /// Marks the instance draining; true the first time only.
    pub fn begin_draining(&self) -> bool {
        !self.draining.swap(true, Ordering::AcqRel)
    }
}
