//! Restart strategies side by side, measured in one run on one machine:
//!
//! 1. `plain`: handoff binds its own socket; a restart kills it and starts it again.
//! 2. `go-systemd`: the seed article's Go service on a systemd socket, `systemctl restart`.
//! 3. `handoff-restart`: handoff on its systemd socket, `systemctl restart`.
//! 4. `handoff-reload`: handoff on its systemd socket, `systemctl reload` (hand-off).
//!
//! Each gets the same load (fast and 1 s requests, with and without
//! keep-alive, fixed clients, fixed duration) and restarts at the same
//! moments. 2-4 run under systemd in a podman container (needs what the
//! container suite needs; see README). Then cold activation; steady state
//! is the cost benchmark's (benches/cost-bench). Writes report.md,
//! latency.svg and figures.json.
//!
//!   cargo run --release -p restart-bench -- --out benches/results

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use loadgen::{Group, Plan, Sample, Stats};
use plotters::prelude::*;
use serde::Serialize;

const PLAIN_PORT: u16 = 28079;
const HANDOFF_PORT: u16 = 28080;
const GO_PORT: u16 = 28081;
const GO_HARDENED_PORT: u16 = 28082;
const CONTAINER: &str = "handoff-bench";
const BENCH_IMAGE: &str = "localhost/handoff-bench:latest";
const HANDOFF_IMAGE: &str = "localhost/handoff:bench";
const BASE_IMAGE: &str = "localhost/debian-systemd:bookworm";

#[derive(Parser)]
#[command(about = "Restart strategies under the same load, side by side")]
struct Args {
    /// Seconds of load per strategy.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Restarts per strategy.
    #[arg(long, default_value_t = 5)]
    restarts: usize,
    /// Folder for report.md, latency.svg and figures.json.
    #[arg(long, default_value = "benches/results")]
    out: PathBuf,
    /// Seconds counted as a restart's window, from the restart command on.
    #[arg(long, default_value_t = 3.0)]
    window: f64,
    /// Seconds of the same load without restarts, per strategy, first.
    #[arg(long, default_value_t = 10)]
    steady: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Strategy {
    Plain,
    GoSystemd,
    HandoffRestart,
    HandoffReload,
}

impl Strategy {
    const ALL: [Strategy; 4] = [
        Strategy::Plain,
        Strategy::GoSystemd,
        Strategy::HandoffRestart,
        Strategy::HandoffReload,
    ];

    fn name(self) -> &'static str {
        match self {
            Strategy::Plain => "plain (bind, kill + start)",
            Strategy::GoSystemd => "Go + go-systemd, systemctl restart",
            Strategy::HandoffRestart => "handoff, systemctl restart",
            Strategy::HandoffReload => "handoff, systemctl reload",
        }
    }

    fn port(self) -> u16 {
        match self {
            Strategy::Plain => PLAIN_PORT,
            Strategy::GoSystemd => GO_PORT,
            Strategy::HandoffRestart | Strategy::HandoffReload => HANDOFF_PORT,
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn conf() -> PathBuf {
    root().join("tests/podman/containers.conf")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .env("CONTAINERS_CONF", conf())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn podman(args: &[&str]) -> String {
    run(Command::new("podman").args(args))
}

fn exec(script: &str) -> String {
    podman(&["exec", CONTAINER, "sh", "-c", script])
}

/// Builds handoff, the Go service and the benchmark image.
fn build() {
    let root = root();
    run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "--locked",
        "--bin",
        "handoff",
    ]));
    run(Command::new(root.join("containers/make-base-image.sh")).arg(BASE_IMAGE));
    run(Command::new(root.join("containers/build.sh"))
        .arg(HANDOFF_IMAGE)
        .env("BASE_IMAGE", BASE_IMAGE)
        .env("SKIP_CARGO_BUILD", "1"));
    let context = root.join("target/bench-image");
    let _ = std::fs::remove_dir_all(&context);
    std::fs::create_dir_all(&context).unwrap();
    let go = root.join("benches/go-activation");
    run(Command::new("go")
        .current_dir(&go)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", root.join("target/go-cache"))
        .args(["build", "-o"])
        .arg(context.join("go-activation"))
        .arg("."));
    for f in ["go-activation.socket", "go-activation.service"] {
        std::fs::copy(go.join(f), context.join(f)).unwrap();
    }
    write_hardened_go_units(&go, &context);
    std::fs::write(
        context.join("handoff-port.conf"),
        format!("[Socket]\nListenStream=\nListenStream={HANDOFF_PORT}\n"),
    )
    .unwrap();
    run(Command::new("podman")
        .args(["build", "--network=host", "--build-arg"])
        .arg(format!("HANDOFF_IMAGE={HANDOFF_IMAGE}"))
        .args(["-f"])
        .arg(go.join("Containerfile"))
        .args(["-t", BENCH_IMAGE])
        .arg(&context));
}

/// go-hardened.{socket,service}: the Go service on its own port with the
/// hardening lines of handoff's unit, so that cold starts compare the
/// services and not their sandboxes.
fn write_hardened_go_units(go: &Path, context: &Path) {
    let handoff_unit =
        std::fs::read_to_string(root().join("containers/units/handoff.service")).unwrap();
    let hardening: String = handoff_unit
        .lines()
        .skip_while(|l| !l.starts_with("# Hardening"))
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        hardening.contains("PrivateUsers="),
        "no hardening section found in handoff.service"
    );
    let socket = std::fs::read_to_string(go.join("go-activation.socket"))
        .unwrap()
        .replace(
            &format!("ListenStream={GO_PORT}"),
            &format!("ListenStream={GO_HARDENED_PORT}"),
        )
        .replace("go-activation.service", "go-hardened.service");
    assert!(socket.contains(&GO_HARDENED_PORT.to_string()), "{socket}");
    std::fs::write(context.join("go-hardened.socket"), socket).unwrap();
    let service = std::fs::read_to_string(go.join("go-activation.service"))
        .unwrap()
        .replace("go-activation.socket", "go-hardened.socket");
    std::fs::write(
        context.join("go-hardened.service"),
        format!("{service}\n{hardening}"),
    )
    .unwrap();
}

fn start_container() {
    let _ = Command::new("podman")
        .env("CONTAINERS_CONF", conf())
        .args(["rm", "-f", CONTAINER])
        .output();
    podman(&[
        "run",
        "-d",
        "--name",
        CONTAINER,
        "--systemd=always",
        "--network=host",
        BENCH_IMAGE,
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while exec("systemctl is-active handoff.socket go-activation.socket go-hardened.socket || true")
        != "active\nactive\nactive"
    {
        assert!(
            Instant::now() < deadline,
            "sockets not active in the container"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One GET on a new connection: the status, or None.
fn get(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

fn wait_serving(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(port, "/") != Some(200) {
        assert!(Instant::now() < deadline, "port {port} not serving");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The plain strategy's process on the host.
struct Plain(Option<Child>);

impl Plain {
    fn start() -> Self {
        let child = Command::new(root().join("target/release/handoff"))
            .args(["--listen", &format!("127.0.0.1:{PLAIN_PORT}")])
            .env("HANDOFF__LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start handoff");
        wait_serving(PLAIN_PORT);
        Self(Some(child))
    }

    /// Kill and start again, as a supervisor without socket activation does.
    fn restart(&mut self) {
        self.stop();
        *self = Self::start();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // SAFETY: kill(2) to our own, not yet reaped, child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        self.stop();
    }
}

fn plan(port: u16, duration: Duration, groups: Vec<Group>) -> Plan {
    Plan {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        groups,
        duration,
        request_timeout: Duration::from_secs(30),
    }
}

/// The load of every strategy: fast and slow requests with and without
/// keep-alive, and clients of a connection pool (POST, pauses, no retry).
fn mixed(port: u16, duration: Duration) -> Plan {
    plan(
        port,
        duration,
        vec![
            Group::new("fast-ka", "/", 12, true),
            Group::new("fast-close", "/", 12, false),
            Group::new("slow-ka", "/delay/1000", 4, true),
            Group::new("slow-close", "/delay/1000", 4, false),
            Group::pooled("pooled", "/echo", 16, Duration::from_millis(300)),
        ],
    )
}

/// The fast requests of a run: groups on `/`.
fn fast_groups(plan: &Plan) -> Vec<usize> {
    plan.groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.path == "/")
        .map(|(i, _)| i)
        .collect()
}

#[derive(Serialize)]
struct StrategyResult {
    name: &'static str,
    /// The same load without restarts, fast requests only: what the
    /// restart-window figures are to be read against.
    fast_steady: Stats,
    overall: Vec<Stats>,
    /// The pooled clients' requests over the whole run.
    pooled: Stats,
    /// Fast requests that started inside a restart window.
    fast_in_windows: Stats,
    /// All requests that started inside a restart window.
    all_in_windows: Stats,
    /// Longest time in which no response completed, in ms.
    longest_gap_ms: f64,
    /// Restart moments, seconds from the start of the load.
    restarts_s: Vec<f64>,
    #[serde(skip)]
    samples: Vec<Sample>,
    /// Indexes of the groups of fast requests (path `/`) in `samples`.
    #[serde(skip)]
    fast_groups: Vec<usize>,
}

fn run_strategy(strategy: Strategy, args: &Args) -> StrategyResult {
    eprintln!("== {}", strategy.name());
    let mut plain = (strategy == Strategy::Plain).then(Plain::start);
    match strategy {
        Strategy::GoSystemd => wait_serving(GO_PORT),
        Strategy::HandoffRestart | Strategy::HandoffReload => wait_serving(HANDOFF_PORT),
        Strategy::Plain => {}
    }
    let duration = Duration::from_secs(args.duration);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // First the same load without restarts: the noise floor of this
    // machine for this strategy.
    let quiet = mixed(strategy.port(), Duration::from_secs(args.steady));
    let quiet_samples = runtime.block_on(loadgen::run(&quiet));
    let quiet_fast = fast_groups(&quiet);
    let fast_steady = Stats::of(
        "fast, no restarts",
        quiet_samples
            .iter()
            .filter(|s| quiet_fast.contains(&s.group)),
    );
    eprintln!("   {fast_steady}");
    let plan = mixed(strategy.port(), duration);
    let origin = Instant::now();
    let load = {
        let plan = plan.clone();
        runtime.spawn(async move { loadgen::run(&plan).await })
    };
    // Restarts evenly spread, at the same moments for every strategy.
    let every = duration.as_secs_f64() / (args.restarts + 1) as f64;
    let mut restarts_s = Vec::new();
    for k in 1..=args.restarts {
        let at = origin + Duration::from_secs_f64(every * k as f64);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        restarts_s.push(origin.elapsed().as_secs_f64());
        match strategy {
            Strategy::Plain => plain.as_mut().unwrap().restart(),
            Strategy::GoSystemd => {
                exec("systemctl restart go-activation.service");
            }
            Strategy::HandoffRestart => {
                exec("systemctl restart handoff.service");
            }
            Strategy::HandoffReload => {
                exec("systemctl reload handoff.service");
            }
        }
    }
    let samples = runtime.block_on(load).unwrap();
    drop(plain);

    let overall = loadgen::summarize(&plan, &samples);
    let fast_groups = fast_groups(&plan);
    let pooled = overall
        .iter()
        .find(|s| s.name == "pooled")
        .cloned()
        .expect("the pooled group");
    let in_window = |s: &&Sample| {
        let t = s.start_us as f64 / 1e6;
        restarts_s.iter().any(|r| t >= *r && t < r + args.window)
    };
    let fast_in_windows = Stats::of(
        "fast, in windows",
        samples
            .iter()
            .filter(|s| fast_groups.contains(&s.group))
            .filter(in_window),
    );
    let all_in_windows = Stats::of("all, in windows", samples.iter().filter(in_window));
    let mut done: Vec<u64> = samples
        .iter()
        .filter(|s| s.outcome.is_ok())
        .map(|s| s.start_us + s.latency_us)
        .collect();
    done.sort_unstable();
    let longest_gap_ms = done
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1000.0)
        .fold(0.0, f64::max);
    for s in &overall {
        eprintln!("   {s}");
    }
    eprintln!("   {fast_in_windows}\n   longest gap {longest_gap_ms:.1} ms");
    StrategyResult {
        name: strategy.name(),
        fast_steady,
        overall,
        pooled,
        fast_in_windows,
        all_in_windows,
        longest_gap_ms,
        restarts_s,
        samples,
        fast_groups,
    }
}

#[derive(Serialize)]
struct Cold {
    name: &'static str,
    median_ms: f64,
    runs_ms: Vec<f64>,
}

/// The first request through an idle socket: the service is stopped, the
/// socket listens, the request starts the service and is answered.
fn cold(name: &'static str, port: u16, unit: &str) -> Cold {
    let mut runs_ms = Vec::new();
    for _ in 0..5 {
        exec(&format!("systemctl stop {unit}.service"));
        assert_eq!(
            exec(&format!("systemctl is-active {unit}.service || true")),
            "inactive"
        );
        let t = Instant::now();
        assert_eq!(get(port, "/"), Some(200), "{name}: first request");
        runs_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut sorted = runs_ms.clone();
    sorted.sort_by(f64::total_cmp);
    eprintln!("== cold {name}: {runs_ms:.1?} ms");
    Cold {
        name,
        median_ms: sorted[sorted.len() / 2],
        runs_ms,
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), Linux {}", kernel.trim())
}

fn date() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn fmt_failures(s: &Stats) -> String {
    if s.failures.is_empty() {
        return "0".into();
    }
    let kinds: Vec<String> = s.failures.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!("{} ({})", s.failed, kinds.join(", "))
}

fn report(args: &Args, results: &[StrategyResult], cold: &[Cold]) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "Measured {} on {}, one run: each strategy under the same load for {} s \
         (12 + 12 clients on `/` with and without keep-alive, 4 + 4 on `/delay/1000`, \
         16 pooled clients: one kept connection each, `POST /echo`, 0-300 ms pauses, \
         no retry), restarted {} times at the same moments. A restart window is the \
         {} s from the restart command on. `retried` counts the RFC 9112 retry on a \
         stale keep-alive connection (never for pooled clients); every other failure \
         counts. Before each run, {} s of the same load without restarts give the \
         steady fast p99 and max to read the window figures against.\n\n",
        date(),
        machine(),
        args.duration,
        args.restarts,
        args.window,
        args.steady
    ));
    md.push_str(
        "| strategy | requests | failed | pooled: requests, failed | retried | p99 ms | in windows: failed | fast p99 ms (steady) | fast max ms (steady) | longest gap ms |\n\
         |---|---:|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        let all = r.overall.last().unwrap();
        md.push_str(&format!(
            "| {} | {} | {} | {}, {} | {} | {:.1} | {} | {:.1} ({:.1}) | {:.0} ({:.0}) | {:.0} |\n",
            r.name,
            all.requests,
            fmt_failures(all),
            r.pooled.requests,
            fmt_failures(&r.pooled),
            all.retried,
            all.p99_ms,
            r.all_in_windows.failed,
            r.fast_in_windows.p99_ms,
            r.fast_steady.p99_ms,
            r.fast_in_windows.max_ms,
            r.fast_steady.max_ms,
            r.longest_gap_ms
        ));
    }
    md.push_str(
        "\nCold activation, the first request through an idle socket (service stopped, \
         socket listening), median of 5. \"under handoff's hardening\" is the Go unit \
         with every hardening line of handoff.service (DynamicUser, PrivateUsers, \
         PrivateNetwork, ...), so that the services are compared and not their \
         sandboxes:\n\n| service | median ms | runs ms |\n|---|---:|---|\n",
    );
    for c in cold {
        let runs: Vec<String> = c.runs_ms.iter().map(|r| format!("{r:.1}")).collect();
        md.push_str(&format!(
            "| {} | {:.1} | {} |\n",
            c.name,
            c.median_ms,
            runs.join(", ")
        ));
    }
    md
}

/// Latency over time, one panel per strategy: the slowest fast request per
/// 100 ms, failures as red marks on top, restart moments as dashed lines.
fn plot(path: &Path, args: &Args, results: &[StrategyResult]) {
    let root = SVGBackend::new(path, (1000, 220 * results.len() as u32)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let panels = root.split_evenly((results.len(), 1));
    let top = 5000.0;
    for (panel, r) in panels.iter().zip(results) {
        let mut chart = ChartBuilder::on(panel)
            .caption(r.name, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..args.duration as f64, (0.1f64..top).log_scale())
            .unwrap();
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("slowest fast request, ms")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .unwrap();
        for &t in &r.restarts_s {
            chart
                .draw_series(DashedLineSeries::new(
                    [(t, 0.1), (t, top)],
                    4,
                    4,
                    BLUE.mix(0.6).stroke_width(1),
                ))
                .unwrap();
        }
        let buckets = (args.duration * 10) as usize + 1;
        let mut worst = vec![0f64; buckets];
        for s in r
            .samples
            .iter()
            .filter(|s| r.fast_groups.contains(&s.group))
        {
            let b = (s.start_us / 100_000) as usize;
            if b < buckets {
                worst[b] = worst[b].max(s.latency_us as f64 / 1000.0);
            }
        }
        // One line per run of buckets in which fast requests started: a
        // bucket where none started (every client waiting) breaks the line
        // rather than being bridged by a misleading slope.
        let mut segment: Vec<(f64, f64)> = Vec::new();
        for (b, w) in worst.iter().enumerate().chain([(buckets, &0.0)]) {
            if *w > 0.0 {
                segment.push((b as f64 / 10.0, w.clamp(0.1, top)));
            } else if !segment.is_empty() {
                let points = std::mem::take(&mut segment);
                if points.len() == 1 {
                    chart
                        .draw_series(points.iter().map(|p| Circle::new(*p, 2, BLACK.filled())))
                        .unwrap();
                } else {
                    chart
                        .draw_series(LineSeries::new(points, BLACK.stroke_width(1)))
                        .unwrap();
                }
            }
        }
        chart
            .draw_series(
                r.samples.iter().filter(|s| !s.outcome.is_ok()).map(|s| {
                    Cross::new((s.start_us as f64 / 1e6, top * 0.7), 4, RED.stroke_width(2))
                }),
            )
            .unwrap();
    }
    root.present().unwrap();
}

fn main() {
    let args = Args::parse();
    build();
    start_container();

    let results: Vec<StrategyResult> = Strategy::ALL
        .iter()
        .map(|&s| run_strategy(s, &args))
        .collect();
    let cold_start = vec![
        cold("handoff", HANDOFF_PORT, "handoff"),
        cold("Go + go-systemd", GO_PORT, "go-activation"),
        cold(
            "Go + go-systemd, under handoff's hardening",
            GO_HARDENED_PORT,
            "go-hardened",
        ),
    ];
    let _ = Command::new("podman")
        .env("CONTAINERS_CONF", conf())
        .args(["rm", "-f", "-t", "5", CONTAINER])
        .output();

    std::fs::create_dir_all(&args.out).unwrap();
    let md = report(&args, &results, &cold_start);
    std::fs::write(args.out.join("report.md"), &md).unwrap();
    plot(&args.out.join("latency.svg"), &args, &results);
    let figures = serde_json::json!({
        "date": date(),
        "machine": machine(),
        "strategies": results,
        "cold": cold_start,
    });
    std::fs::write(
        args.out.join("figures.json"),
        serde_json::to_string_pretty(&figures).unwrap(),
    )
    .unwrap();
    println!("{md}");
    println!("wrote {}", args.out.display());
}
