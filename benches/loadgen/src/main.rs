//! `loadgen --addr 127.0.0.1:8080 --duration 30 --group fast:/:24:ka --group slow:/delay/1000:8:close`
//! prints per-group figures; `--samples FILE` writes every request as JSON lines.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use loadgen::{Group, Plan};

#[derive(Parser)]
#[command(about = "HTTP/1.1 load that records every request's outcome")]
struct Args {
    #[arg(long)]
    addr: SocketAddr,
    /// Seconds to run.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// name:path:clients:ka|close; repeat for several groups.
    #[arg(long = "group", value_parser = Group::parse, required = true)]
    groups: Vec<Group>,
    /// Seconds after which a request counts as timed out.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Write every sample as a JSON line to this file.
    #[arg(long)]
    samples: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let plan = Plan {
        addr: args.addr,
        groups: args.groups,
        duration: Duration::from_secs(args.duration),
        request_timeout: Duration::from_secs(args.timeout),
    };
    let samples = loadgen::run(&plan).await;
    for stats in loadgen::summarize(&plan, &samples) {
        println!("{stats}");
    }
    if let Some(path) = args.samples {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&path).expect("create samples file"));
        for s in &samples {
            serde_json::to_writer(&mut out, s).expect("write sample");
            out.write_all(b"\n").expect("write sample");
        }
    }
    let failed = samples.iter().any(|s| !s.outcome.is_ok());
    std::process::ExitCode::from(u8::from(failed))
}
