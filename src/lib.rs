//! handoff: an actix-web service that takes its listening sockets from systemd
//! socket activation (or binds them itself), drains on SIGTERM, and hands its
//! listeners to a new process on reload so that a deploy has no gap at all.
//!
//! The binary is a thin wrapper around [`cli::main`]; the modules are public so
//! that tests and tools reuse the same pieces.

pub mod cli;
pub mod config;
pub mod conn;
pub mod control;
pub mod duration;
pub mod exit;
pub mod framing;
pub mod handover;
pub mod http;
pub mod listeners;
pub mod metrics;
pub mod notify;
pub mod observe;
pub mod payload;
pub mod reload;
pub mod routes;
pub mod server;
pub mod state;
pub mod successor;
pub mod telemetry;
