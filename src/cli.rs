//! The command line every handoff service gets:
//! `NAME [--config FILE] [--listen ADDR]... [serve | check-config | reload --pid PID | stop --pid PID]`.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::exit;
use crate::settings::{self, Overrides};

/// Runs an actix-web service with zero-downtime restarts and reloads.
#[derive(Debug, Parser)]
#[command(name = "handoff", long_about = None)]
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
    /// Hand the listeners of the running process PID to a new process started
    /// from this binary, this configuration and this environment; wait until
    /// it serves (exit 0) or failed (exit 75, the old process keeps serving).
    /// Exit 69: no handoff process at PID takes reloads.
    Reload {
        /// The running handoff process (systemd: $MAINPID).
        #[arg(long)]
        pid: u32,
        /// Start this binary instead of the one running this command, e.g. a
        /// release staged beside the current one.
        #[arg(long, value_name = "PATH")]
        exe: Option<PathBuf>,
    },
    /// Send the running process PID SIGTERM and wait until it has exited
    /// (the unit's ExecStop=: systemd cannot wait for a process it did not
    /// start, which the main process is after a reload). Reads no
    /// configuration.
    Stop {
        /// The running handoff process (systemd: $MAINPID); empty when none.
        #[arg(long, value_name = "PID", allow_hyphen_values = true)]
        pid: String,
    },
}

/// Parses the command line of the service `name`; `Err` with the exit
/// status once clap printed the help, the version or what is wrong.
pub fn parse(name: &str, version: Option<&str>) -> Result<Cli, u8> {
    let mut command = Cli::command()
        .name(name.to_owned())
        .bin_name(name.to_owned());
    if let Some(version) = version {
        command = command.version(version.to_owned());
    }
    command
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
        .map_err(|e| {
            let _ = e.print();
            if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            }
        })
}

impl Cli {
    /// What the command line contributes to the settings.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            listen: self.listen.clone(),
        }
    }

    /// The global options to give a successor: the same configuration file
    /// (absolute, as the successor may not share our working directory) and
    /// listen overrides.
    pub fn successor_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(path) = settings::config_file(self.config.as_deref()) {
            let path = std::path::absolute(&path).unwrap_or(path);
            args.push("--config".to_owned());
            args.push(path.display().to_string());
        }
        for l in &self.listen {
            args.push("--listen".to_owned());
            args.push(l.clone());
        }
        args
    }
}

/// The binary's file name: the default name of a service.
pub fn binary_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "handoff".to_owned())
}
