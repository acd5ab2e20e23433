//! Command line: `handoff [--config FILE] [--listen ADDR]... [serve|check-config]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Overrides, Settings};
use crate::listeners;
use crate::server::{self, Lifecycle};
use crate::state::AppState;
use crate::{exit, notify, telemetry};

#[derive(Debug, Parser)]
#[command(name = "handoff", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file (default: $HANDOFF_CONFIG, else built-in defaults).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to bind when systemd passes no sockets: host:port or a unix
    /// socket path; repeat for several. Overrides server.listen.
    #[arg(long, short = 'l', global = true, value_name = "ADDR")]
    pub listen: Vec<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Validate the configuration and print the effective settings as TOML.
    CheckConfig,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let overrides = Overrides {
        config_file: cli.config.clone(),
        listen: cli.listen.clone(),
    };
    let settings = match Settings::load(&overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("handoff: invalid configuration: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            print!("{}", settings.to_toml());
            ExitCode::from(exit::OK)
        }
        Command::Serve => ExitCode::from(serve(settings)),
    }
}

fn serve(settings: Settings) -> u8 {
    telemetry::init(&settings.log);
    // Before the runtime starts any thread: this edits the environment.
    let taken = match listeners::take_or_bind(&settings.server.listen, settings.server.backlog) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot take listeners");
            eprintln!("handoff: {e}");
            return if e.is_environment() {
                exit::DATAERR
            } else {
                exit::UNAVAILABLE
            };
        }
    };
    let system = actix_web::rt::System::new();
    let mut lifecycle = Standalone;
    match system.block_on(server::serve(settings, taken, 1, &mut lifecycle)) {
        Ok(stop) => {
            tracing::info!(reason = ?stop, "exit");
            exit::OK
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            eprintln!("handoff: {e}");
            exit::SOFTWARE
        }
    }
}

/// Lifecycle without hand-off: tells systemd when ready.
struct Standalone;

impl Lifecycle for Standalone {
    fn ready(&mut self, state: &AppState, listeners: &[listeners::Taken]) {
        notify::ready(&format!(
            "serving on {} listeners, pid {}",
            listeners.len(),
            state.pid
        ));
    }

    async fn reload(&mut self, _state: &AppState, _listeners: &[listeners::Taken]) -> bool {
        tracing::warn!("reload is not supported by this build");
        false
    }

    async fn reload_requested(&mut self) {
        std::future::pending::<()>().await
    }
}
