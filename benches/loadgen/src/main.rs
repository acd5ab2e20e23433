//! `loadgen --addr 127.0.0.1:8080 --duration 30 --group fast:/:24:ka --group slow:/delay/1000:8:close`
//! prints per-group figures; `--samples FILE` writes every request as JSON lines.
//!
//! The load runs until SIGTERM or SIGINT (clients finish the request they
//! are in), or until `--duration` seconds, its ceiling. Exit status: 0 when
//! every request succeeded without a retry and the load was stopped before
//! its ceiling; 1 when a request failed or was retried; 2 when the load hit
//! its ceiling before it was stopped (disruptions after that point happened
//! without load, so the run proves nothing about them).

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use loadgen::{Group, Plan};

#[derive(Parser)]
#[command(about = "HTTP/1.1 or HTTP/3 load that records every request's outcome")]
struct Args {
    #[arg(long)]
    addr: SocketAddr,
    /// Ceiling in seconds: the load ends here if nothing stopped it before.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// name:path:clients:ka|close|pooledMS; repeat for several groups.
    #[arg(long = "group", value_parser = Group::parse, required = true)]
    groups: Vec<Group>,
    /// Seconds after which a request counts as timed out.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Write every sample as a JSON line to this file.
    #[arg(long)]
    samples: Option<std::path::PathBuf>,
    /// Every group over HTTP/3 (UDP, the same port), trusting the
    /// certificates in this PEM file for the name `localhost`.
    #[arg(long, value_name = "CA_FILE")]
    http3: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let plan = Plan {
        addr: args.addr,
        groups: match &args.http3 {
            Some(ca) => args.groups.into_iter().map(|g| g.over_http3(ca)).collect(),
            None => args.groups,
        },
        duration: Duration::from_secs(args.duration),
        request_timeout: Duration::from_secs(args.timeout),
    };
    let stop = async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    let (samples, stopped) = loadgen::run_until_stopped(&plan, stop).await;
    for stats in loadgen::summarize(&plan, &samples) {
        println!("{stats}");
    }
    for (pid, first, last) in loadgen::pid_spans(&samples) {
        println!(
            "pid {pid} answered from {:.3} s to {:.3} s",
            first as f64 / 1e6,
            last as f64 / 1e6
        );
    }
    if let Some(path) = args.samples {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&path).expect("create samples file"));
        for s in &samples {
            serde_json::to_writer(&mut out, s).expect("write sample");
            out.write_all(b"\n").expect("write sample");
        }
    }
    if samples.iter().any(|s| !s.outcome.is_ok() || s.retried) {
        return std::process::ExitCode::from(1);
    }
    if !stopped {
        println!(
            "the load reached its ceiling of {} s before it was stopped",
            args.duration
        );
        return std::process::ExitCode::from(2);
    }
    std::process::ExitCode::SUCCESS
}
