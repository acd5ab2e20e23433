//! What handoff costs against what its users would run otherwise, bare
//! actix-web's `HttpServer` (and, for scale, Go's net/http), measured in one
//! run on one machine, as ratios (these machines are noisy):
//!
//! 1. steady state: the same handler (`GET /hello`), the same 2 workers,
//!    wrk with 64 keep-alive clients, in alternating rounds;
//! 2. instructions per request (callgrind), if valgrind and hey are here;
//! 3. after a reload: the same pooled load before and after one hand-off,
//!    and the busiest thread's share of the successor's CPU, on a cheap
//!    route and on a CPU-bound one;
//! 4. hand-over at scale: 1,000 and 10,000 idle connections in one reload;
//! 5. memory under clients that pipeline without reading;
//! 6. steady state over TLS, HTTP/1.1 and h2, beside actix-web's own
//!    rustls listener with the same certificate and configuration;
//! 7. HTTP/3 beside HTTP/2 on handoff (actix-web has no HTTP/3), and one
//!    reload under HTTP/3 load.
//!
//! Prints figures, asserts nothing. Writes cost.md and cost.json.
//!
//!   cargo run --release -p cost-bench -- --out benches/results

mod callgrind;
mod hostile;
mod http3;
mod reload;
mod report;
mod services;
mod tls;
mod wrk;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;

use services::{Binaries, Kind, Server};

#[derive(Parser)]
#[command(about = "handoff against bare actix-web: rate, instructions, reloads, memory")]
struct Args {
    /// Folder for cost.md and cost.json.
    #[arg(long, default_value = "benches/results")]
    out: PathBuf,
    /// Steady-state rounds; each runs every service once, in turn.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Seconds of load per service and round.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Requests counted under callgrind.
    #[arg(long, default_value_t = 20_000)]
    callgrind_requests: u64,
    /// Seconds of each window before and after the reload.
    #[arg(long, default_value_t = 6)]
    window: u64,
    /// A handoff reference binary to measure instead of this checkout's
    /// (e.g. an older build, for before-and-after figures).
    #[arg(long)]
    handoff_bin: Option<PathBuf>,
    /// An examples/hello binary to measure instead of this checkout's.
    #[arg(long)]
    hello_bin: Option<PathBuf>,
    /// Sections to run: steady, callgrind, reload, scale, hostile, tls, http3.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "steady,callgrind,reload,scale,hostile,tls,http3"
    )]
    only: Vec<String>,
}

#[derive(Serialize)]
struct Steady {
    service: String,
    /// Every round's rate, in order.
    rounds: Vec<wrk::Run>,
    /// The server's CPU time (user and system) per request, per round.
    cpu_us: Vec<f64>,
    median_per_s: f64,
    median_p99_ms: f64,
    median_cpu_us: f64,
    /// This service's rate over bare actix-web's, per round.
    ratios: Vec<f64>,
    /// This service's CPU per request over bare actix-web's, per round.
    cpu_ratios: Vec<f64>,
    rss_mib: f64,
}

#[derive(Serialize)]
struct Instructions {
    service: String,
    per_request: f64,
}

#[derive(Serialize, Default)]
struct Figures {
    machine: String,
    date: String,
    steady: Vec<Steady>,
    instructions: Vec<Instructions>,
    after_reload: Vec<reload::AfterReload>,
    at_scale: Vec<reload::AtScale>,
    hostile: Vec<hostile::Hostile>,
    tls: Vec<tls::TlsSteady>,
    http3: Vec<http3::Http3Steady>,
    http3_reload: Option<http3::Http3Reload>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn steady(args: &Args, bins: &Binaries) -> Vec<Steady> {
    let mut kinds = vec![Kind::Handoff, Kind::Actix];
    if bins.go.is_some() {
        kinds.push(Kind::Go);
    }
    let servers: Vec<Server> = kinds
        .iter()
        .map(|&k| Server::start(k, bins, services::free_port()))
        .collect();
    let url = |s: &Server| format!("http://127.0.0.1:{}/hello", s.port);
    let length = Duration::from_secs(args.seconds);
    for s in &servers {
        wrk::run(&url(s), 64, Duration::from_secs(2), 0);
    }
    let mut runs: Vec<Vec<wrk::Run>> = vec![Vec::new(); kinds.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for round in 0..args.rounds {
        // Each round starts with another service, so that none always runs
        // first (or right after the same one).
        for i in 0..kinds.len() {
            let k = (round + i) % kinds.len();
            let pid = servers[k].pid();
            let cpu_before = services::process_cpu(pid);
            let run = wrk::run(&url(&servers[k]), 64, length, 0);
            let requests = run.requests_per_s * length.as_secs_f64();
            let cpu_us = (services::process_cpu(pid) - cpu_before) * 1e6 / requests;
            eprintln!(
                "round {}: {:<45} {:>9.0} req/s p99 {:.2} ms, {cpu_us:.1} us CPU a request",
                round + 1,
                kinds[k].name(),
                run.requests_per_s,
                run.p99_ms
            );
            runs[k].push(run);
            cpu[k].push(cpu_us);
        }
    }
    let actix = kinds.iter().position(|&k| k == Kind::Actix).unwrap();
    let actix_rates: Vec<f64> = runs[actix].iter().map(|r| r.requests_per_s).collect();
    let actix_cpu = cpu[actix].clone();
    kinds
        .iter()
        .zip(&servers)
        .zip(runs.into_iter().zip(cpu))
        .map(|((kind, server), (rounds, cpu_us))| {
            let ratios = rounds
                .iter()
                .zip(&actix_rates)
                .map(|(r, a)| r.requests_per_s / a)
                .collect();
            let cpu_ratios = cpu_us.iter().zip(&actix_cpu).map(|(c, a)| c / a).collect();
            // The Go service's pid is systemd-socket-activate's, which
            // execs it.
            let (rss, _) = services::rss_kib(server.pid());
            Steady {
                service: kind.name().to_owned(),
                median_per_s: median(rounds.iter().map(|r| r.requests_per_s).collect()),
                median_p99_ms: median(rounds.iter().map(|r| r.p99_ms).collect()),
                median_cpu_us: median(cpu_us.clone()),
                rounds,
                cpu_us,
                ratios,
                cpu_ratios,
                rss_mib: rss as f64 / 1024.0,
            }
        })
        .collect()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), Linux {}", kernel.trim())
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Every section, in the order a whole run runs them.
const ALL_SECTIONS: [&str; 7] = [
    "steady",
    "callgrind",
    "reload",
    "scale",
    "hostile",
    "tls",
    "http3",
];

fn main() {
    let args = Args::parse();
    let only = |s: &str| args.only.iter().any(|o| o == s);
    let bins = services::build(args.handoff_bin.clone(), args.hello_bin.clone());
    let mut figures = Figures {
        machine: machine(),
        date: date(),
        ..Figures::default()
    };
    if only("steady") {
        eprintln!("== steady state");
        figures.steady = steady(&args, &bins);
    }
    if only("callgrind") {
        if callgrind::available() {
            eprintln!("== instructions per request (callgrind)");
            for kind in [Kind::Handoff, Kind::Actix] {
                let per_request = callgrind::per_request(kind, &bins, args.callgrind_requests);
                eprintln!("{:<45} {per_request:.0}", kind.name());
                figures.instructions.push(Instructions {
                    service: kind.name().to_owned(),
                    per_request,
                });
            }
        } else {
            eprintln!("== callgrind skipped: needs valgrind and hey");
        }
    }
    if only("reload") {
        eprintln!("== after a reload");
        for route in ["/", "/spin/200"] {
            let r = reload::after_reload(&bins, route, Duration::from_secs(args.window));
            eprintln!("{r:?}");
            figures.after_reload.push(r);
        }
    }
    if only("scale") {
        eprintln!("== hand-over at scale");
        let limit = services::raise_nofile();
        for n in [1_000, 10_000] {
            // Each process (this one, either server) holds n of them.
            if n as u64 + 1_000 > limit {
                eprintln!("skipped {n}: the open-files limit is {limit}");
                continue;
            }
            let r = reload::at_scale(&bins, n);
            eprintln!("{r:?}");
            figures.at_scale.push(r);
        }
    }
    if only("hostile") {
        eprintln!("== clients that pipeline without reading");
        for kind in [Kind::Actix, Kind::Handoff] {
            let r = hostile::pipelining_without_reading(kind, &bins, 16, Duration::from_secs(5));
            eprintln!("{r:?}");
            figures.hostile.push(r);
        }
    }
    if only("tls") {
        eprintln!("== steady state over TLS");
        figures.tls = tls::steady(&bins, args.rounds, args.seconds);
    }
    if only("http3") {
        eprintln!("== HTTP/3 beside HTTP/2, and a reload under HTTP/3 load");
        figures.http3 = http3::steady(&bins, &bins.loadgen, args.rounds, args.seconds);
        let r = http3::reload(&bins, &bins.loadgen);
        eprintln!("{r:?}");
        figures.http3_reload = Some(r);
    }
    std::fs::create_dir_all(&args.out).expect("create the output folder");
    let md = report::render(&args, &figures);
    print!("{md}");
    // A run of some sections does not overwrite the whole run's figures:
    // `--only tls` writes cost-tls.md and cost-tls.json.
    let stem = if ALL_SECTIONS.iter().all(|s| only(s)) {
        "cost".to_owned()
    } else {
        format!("cost-{}", args.only.join("-"))
    };
    let (md_path, json_path) = (
        args.out.join(format!("{stem}.md")),
        args.out.join(format!("{stem}.json")),
    );
    std::fs::write(&md_path, &md).unwrap_or_else(|e| panic!("write {}: {e}", md_path.display()));
    std::fs::write(&json_path, serde_json::to_string_pretty(&figures).unwrap())
        .unwrap_or_else(|e| panic!("write {}: {e}", json_path.display()));
    eprintln!("wrote {} and {}", md_path.display(), json_path.display());
}
