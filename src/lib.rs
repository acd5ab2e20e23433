//! handoff runs an actix-web service so that restarts and redeploys lose
//! nothing: it takes its listening sockets from systemd socket activation
//! (or binds them), drains on SIGTERM, and on reload hands its sockets *and
//! its idle keep-alive connections* to a new process that serves before the
//! old one stops. A service is a [`Service`] and a `main` of one line:
//!
//! ```no_run
//! use actix_web::{HttpResponse, web};
//!
//! fn main() -> std::process::ExitCode {
//!     handoff::Service::new(|cfg| {
//!         cfg.route("/hello", web::get().to(|| async { HttpResponse::Ok().body("hello") }));
//!     })
//!     .run()
//! }
//! ```
//!
//! The binary then understands `serve` (the default), `check-config` and
//! `reload --pid PID`, reads its settings from `--config FILE` /
//! `$HANDOFF_CONFIG` and `HANDOFF__*` variables, and answers `/healthz`,
//! `/readyz` and `/metrics` beside its own routes. The repository's NixOS
//! module and container units run any such binary; see the README.

mod cli;
mod config;
mod conn;
mod control;
pub mod duration;
pub mod exit;
mod framing;
mod handover;
mod http;
mod listeners;
mod metrics;
mod notify;
mod observe;
mod payload;
mod reload;
mod routes;
mod server;
mod service;
mod signals;
mod state;
mod stop;
mod successor;
mod supervisor;
mod telemetry;

pub use config::{AppSettings, NoAppSettings, SettingError};
pub use routes::{ApiError, get, method_not_allowed};
pub use service::{Info, RequestLimits, Service};
