//! handoff runs an actix-web service so that restarts and redeploys lose
//! nothing: it takes its listening sockets from systemd socket activation
//! (or binds them), drains on SIGTERM, and on reload hands its sockets *and
//! its idle keep-alive connections* to a new process that serves before the
//! old one stops. A service is the `App` factory it would give actix-web's
//! `HttpServer`, given to a [`Service`] instead:
//!
//! ```no_run
//! use actix_web::{App, HttpResponse, web};
//!
//! fn main() -> std::process::ExitCode {
//!     actix_handoff::Service::new().run(|_| {
//!         App::new().route("/hello", web::get().to(|| async { HttpResponse::Ok().body("hello") }))
//!     })
//! }
//! ```
//!
//! The binary then understands `serve` (the default), `check-config`,
//! `reload --pid PID` and `stop --pid PID`, reads its settings from
//! `--config FILE` / `$HANDOFF_CONFIG` and `HANDOFF__*` variables, and
//! answers `/healthz`, `/readyz` and `/metrics` beside its own routes. The
//! repository's NixOS module and container units run any such binary; see
//! the README.
//!
//! The crate's folders are its architecture: `lifecycle` (the process's
//! states, reload, successor, control channel, signals, the container
//! supervisor), `http` (the server, its connection type, request framing,
//! the middleware in front of the `App`, built-in routes, metrics),
//! `settings`, `sockets`, and `handover` (idle connections to the next
//! process and from the previous one).

mod cli;
pub mod exit;
mod handover;
mod http;
mod lifecycle;
mod notify;
mod quic;
mod service;
mod settings;
mod sockets;
mod sync;
mod telemetry;
mod tls;

pub use http::shared::drain_signal::DrainSignal;
pub use http::shared::routes::{ApiError, get, json_errors, method_not_allowed, not_found};
pub use http::shared::state::{Info, RequestLimits};
pub use service::{Context, Service};
pub use settings::duration;
pub use settings::{AppSettings, NoAppSettings, SettingError};
