//! Command line of every handoff service:
//! `NAME [--config FILE] [--listen ADDR]... [serve|check-config|reload --pid PID]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{self, AppSettings, Overrides, Settings};
use crate::reload::Reloader;
use crate::service::Service;
use crate::successor::{self, Launch};
use crate::{control, exit, listeners, server, telemetry};

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

/// The binary's file name: the default name of a service.
fn binary_name() -> String {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "handoff".to_owned())
}

pub(crate) fn main<A: AppSettings>(service: Service<A>) -> ExitCode {
    let name = service.name.clone().unwrap_or_else(binary_name);
    let mut command = Cli::command().name(name.clone()).bin_name(name.clone());
    if let Some(version) = &service.version {
        command = command.version(version.clone());
    }
    let parsed = command
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
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
    if let Some(Command::Stop { pid }) = &cli.command {
        return match crate::stop::stop(pid) {
            Ok(stopped) => {
                println!("{stopped:?}");
                ExitCode::from(exit::OK)
            }
            Err(e) => {
                eprintln!("{name}: stop: {e}");
                ExitCode::from(exit::USAGE)
            }
        };
    }
    let overrides = Overrides {
        config_file: cli.config.clone(),
        listen: cli.listen.clone(),
    };
    let (settings, app) = match Settings::load::<A>(&overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: invalid configuration: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    match &cli.command {
        Some(Command::CheckConfig) => {
            print!("{}", settings.to_toml(&app));
            ExitCode::from(exit::OK)
        }
        None | Some(Command::Serve) => ExitCode::from(serve(&name, service, settings, app)),
        Some(Command::Reload { pid, exe }) => {
            ExitCode::from(reload(&name, *pid, exe.as_deref(), &cli, &settings))
        }
        Some(Command::Stop { .. }) => unreachable!("handled before the settings"),
    }
}

/// The global options to give the successor: the same configuration file
/// (absolute, as the successor may not share our working directory) and
/// listen overrides.
fn successor_args(cli: &Cli) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(path) = config::config_file(cli.config.as_deref()) {
        let path = std::path::absolute(&path).unwrap_or(path);
        args.push("--config".to_owned());
        args.push(path.display().to_string());
    }
    for l in &cli.listen {
        args.push("--listen".to_owned());
        args.push(l.clone());
    }
    args
}

fn reload(
    name: &str,
    pid: u32,
    exe: Option<&std::path::Path>,
    cli: &Cli,
    settings: &Settings,
) -> u8 {
    let exe = match exe
        .map(std::path::absolute)
        .unwrap_or_else(std::env::current_exe)
    {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("{name}: cannot tell which binary to start: {e}");
            return exit::SOFTWARE;
        }
    };
    let launch = Launch {
        exe,
        args: successor_args(cli),
        env: std::env::vars().collect(),
    };
    // Room for the successor's ready timeout and its cleanup on failure.
    let timeout = settings.handoff.ready_timeout + Duration::from_secs(15);
    match control::request_reload(pid, launch, timeout) {
        Ok(reply) if reply.ok => {
            println!("reloaded: {}", reply.message);
            exit::OK
        }
        Ok(reply) => {
            eprintln!("{name}: {}", reply.message);
            exit::TEMPFAIL
        }
        Err(e) => {
            eprintln!("{name}: reload failed: {e}");
            if matches!(e, control::ClientError::Connect { .. }) {
                exit::UNAVAILABLE
            } else {
                exit::TEMPFAIL
            }
        }
    }
}

fn serve<A: AppSettings>(name: &str, service: Service<A>, settings: Settings, app: A) -> u8 {
    // Until the lifecycle handles them, these signals wait instead of
    // killing us (see signals).
    crate::signals::block();
    telemetry::init(&settings.log, name);
    raise_fd_limit();
    // Before the runtime starts any thread: these edit the environment.
    let inherited = match successor::take_env() {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "bad hand-off environment");
            eprintln!("{name}: {e}");
            return exit::DATAERR;
        }
    };
    let passed = match listeners::take_or_bind(&settings.server.listen, settings.server.backlog) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot take listeners");
            eprintln!("{name}: {e}");
            return if e.is_environment() {
                exit::DATAERR
            } else {
                exit::UNAVAILABLE
            };
        }
    };
    // PID 1 of a container: supervise generations instead of serving, so
    // that a reload does not end the container.
    if inherited.ready_fd.is_none() && crate::supervisor::wanted() {
        return crate::supervisor::run(
            passed.listeners,
            passed.connections,
            settings.handoff.ready_timeout,
        );
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let generation = inherited.generation;
    let mut lifecycle = Reloader::new(inherited, exe, args, settings.handoff.ready_timeout);
    let application = application(service, app);
    let system = actix_web::rt::System::new();
    match system.block_on(server::serve(
        settings,
        application,
        passed.listeners,
        passed.connections,
        generation,
        &mut lifecycle,
    )) {
        Ok(stop) => {
            tracing::info!(reason = ?stop, "exit");
            exit::OK
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            eprintln!("{name}: {e}");
            exit::SOFTWARE
        }
    }
}

/// The service's routes with its settings registered as `web::Data<A>`, and
/// its hooks with the settings bound in.
fn application<A: AppSettings>(service: Service<A>, app: A) -> server::Application {
    let app = std::sync::Arc::new(app);
    let data = actix_web::web::Data::from(app.clone());
    let user = service.configure;
    let bind = |hooks: Vec<crate::service::Hook<A>>| -> Vec<server::BoundHook> {
        hooks
            .into_iter()
            .map(|hook| {
                let app = app.clone();
                Box::new(move || hook(app.clone())) as server::BoundHook
            })
            .collect()
    };
    server::Application {
        routes: crate::http::Routes {
            configure: std::sync::Arc::new(move |cfg| {
                cfg.app_data(data.clone());
                user(cfg);
            }),
            builtin: service.builtin_routes,
        },
        on_start: bind(service.on_start),
        on_drain: bind(service.on_drain),
    }
}

/// Raises the soft limit on open files to the hard limit, as Go's runtime
/// does: the inherited soft limit (often 1024) is far below what a server
/// with keep-alive clients needs, and the hard limit is the administrator's
/// real bound (`LimitNOFILE=` in the unit). At the limit, accept(2) fails
/// with EMFILE; actix-server then pauses accepting for 500 ms and retries,
/// while the connections already open are served.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we own.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let before = lim.rlim_cur;
    if before >= lim.rlim_max {
        tracing::debug!(nofile = before, "open files limit");
        return;
    }
    lim.rlim_cur = lim.rlim_max;
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        tracing::info!(
            from = before,
            to = lim.rlim_max,
            "raised the open files limit"
        );
    } else {
        tracing::warn!(
            nofile = before,
            error = %std::io::Error::last_os_error(),
            "cannot raise the open files limit; set LimitNOFILE= in the unit"
        );
    }
}
