//! What every worker shares: identity of this process, settings, metrics;
//! and, per server instance, whether it is draining.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use crate::config::Settings;
use crate::metrics::Metrics;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Which build this is, set at compile time (`HANDOFF_BUILD_ID=...`; the Nix
/// package sets one), so that two builds of one version can be told apart.
pub const BUILD: &str = match option_env!("HANDOFF_BUILD_ID") {
    Some(id) => id,
    None => "dev",
};

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

    pub fn started_rfc3339(&self) -> String {
        humantime::format_rfc3339_seconds(self.started).to_string()
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
