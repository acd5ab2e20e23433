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
}

impl Instance {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the instance draining; true the first time only.
    pub fn begin_draining(&self) -> bool {
        !self.draining.swap(true, Ordering::AcqRel)
    }
}
