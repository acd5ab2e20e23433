//! HTTP/3 beside HTTP/2, on the same handler in the same process (bare
//! actix-web has no HTTP/3 to compare with): examples/hello on handoff with
//! HTTPS and QUIC on one port, 16 connections each with one request at a
//! time, HTTP/2 from h2load (`-c16 -m1`) and HTTP/3 from the load
//! generator's quinn and h3 clients (16 kept connections), in alternating
//! rounds. The clients differ, so the rates say what each client reached;
//! the server's CPU per request (from /proc, over each round) is the
//! figure the protocols compare on. Then one reload under HTTP/3 load on
//! the reference service: failures, the longest time no answer arrived,
//! and the datagrams the new process passed to the old one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::median;
use super::services::{self, Binaries, Server, WORKERS};
use super::tls;

#[derive(Serialize)]
pub struct Http3Steady {
    /// `h2` or `h3`.
    pub protocol: String,
    /// Who drove it.
    pub client: String,
    pub rounds: Vec<f64>,
    pub median_per_s: f64,
    /// The server's CPU per request, in microseconds, per round.
    pub cpu_us_per_request: Vec<f64>,
    pub median_cpu_us_per_request: f64,
    pub errors: u64,
}

#[derive(Serialize, Debug)]
pub struct Http3Reload {
    pub requests: u64,
    pub failed: u64,
    /// The longest time, around the reload, in which no answer arrived.
    pub longest_gap_ms: f64,
    /// The slowest request.
    pub max_latency_ms: f64,
    /// What the new process passed to the old one.
    pub datagrams_forwarded: u64,
}

/// A certificate for `localhost` that webpki takes as a server's (not a
/// CA's), in target/cost-bench.
fn certificate() -> (PathBuf, PathBuf) {
    let dir = services::work_dir();
    let (cert, key) = (dir.join("h3-cert.pem"), dir.join("h3-key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl could not make a certificate");
    (cert, key)
}

/// `bin` with HTTPS and QUIC on one port of its own, `cert` and `key`:
/// the server, its plain HTTP port and that port.
fn start(bin: &Path, cert: &Path, key: &Path) -> (Server, u16, u16) {
    let (plain, port) = (services::free_port(), services::free_port());
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", &format!("127.0.0.1:{plain}")])
        .env("HANDOFF__SERVER__WORKERS", WORKERS)
        .env("HANDOFF__TLS__LISTEN", format!("127.0.0.1:{port}"))
        .env("HANDOFF__TLS__QUIC_LISTEN", format!("127.0.0.1:{port}"))
        .env("HANDOFF__TLS__CERTIFICATE", cert)
        .env("HANDOFF__TLS__KEY", key);
    (Server::spawn(&mut cmd, plain), plain, port)
}

/// One loadgen run over HTTP/3: requests a second and failed ones.
fn loadgen(bin: &Path, port: u16, ca: &Path, seconds: u64, groups: &[&str]) -> (f64, u64, String) {
    let started = Instant::now();
    let mut cmd = Command::new(bin);
    cmd.args(["--addr", &format!("127.0.0.1:{port}")])
        .arg("--http3")
        .arg(ca)
        .args(["--duration", &seconds.to_string()]);
    for g in groups {
        cmd.args(["--group", g]);
    }
    let out = cmd.output().expect("run loadgen");
    let took = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "all   requests   N  failed  F  ..."
    let all = text
        .lines()
        .find(|l| l.starts_with("all "))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>();
    let field = |name: &str| -> u64 {
        all.iter()
            .position(|w| *w == name)
            .and_then(|i| all.get(i + 1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("requests") as f64 / took, field("failed"), text)
}

pub fn steady(
    bins: &Binaries,
    loadgen_bin: &Path,
    rounds: usize,
    seconds: u64,
) -> Vec<Http3Steady> {
    let (cert, key) = certificate();
    let (server, _, port) = start(&bins.hello, &cert, &key);
    let pid = server.pid();
    let run = |protocol: &str, secs: u64| -> (f64, u64, f64) {
        let cpu = services::process_cpu(pid);
        let started = Instant::now();
        let (rate, errors) = match protocol {
            "h2" => tls::h2load(port, secs, 1),
            _ => {
                let (rate, failed, _) =
                    loadgen(loadgen_bin, port, &cert, secs, &["h3:/hello:16:ka"]);
                (rate, failed)
            }
        };
        let requests = rate * started.elapsed().as_secs_f64();
        let cpu_us = (services::process_cpu(pid) - cpu) * 1e6 / requests.max(1.0);
        (rate, errors, cpu_us)
    };
    // Warm both up.
    run("h2", 2);
    run("h3", 2);
    let protocols = ["h2", "h3"];
    let mut rates = vec![Vec::new(); 2];
    let mut cpu = vec![Vec::new(); 2];
    let mut errors = [0u64; 2];
    for round in 0..rounds {
        for i in 0..2 {
            let k = (round + i) % 2;
            let (rate, failed, cpu_us) = run(protocols[k], seconds);
            eprintln!(
                "HTTP/3 bench round {}: {:<3} {rate:>9.0} req/s, {cpu_us:>6.1} µs CPU a request",
                round + 1,
                protocols[k]
            );
            rates[k].push(rate);
            cpu[k].push(cpu_us);
            errors[k] += failed;
        }
    }
    drop(server);
    protocols
        .iter()
        .enumerate()
        .map(|(k, p)| Http3Steady {
            protocol: (*p).to_owned(),
            client: if *p == "h2" {
                "h2load -c16 -m1".to_owned()
            } else {
                "loadgen --http3, 16 kept connections (quinn, h3)".to_owned()
            },
            median_per_s: median(rates[k].clone()),
            median_cpu_us_per_request: median(cpu[k].clone()),
            rounds: rates[k].clone(),
            cpu_us_per_request: cpu[k].clone(),
            errors: errors[k],
        })
        .collect()
}

/// One reload of the reference service under HTTP/3 load.
pub fn reload(bins: &Binaries, loadgen_bin: &Path) -> Http3Reload {
    let (cert, key) = certificate();
    let (_server, plain, port) = start(&bins.handoff, &cert, &key);
    let samples = services::work_dir().join("h3-reload-samples.jsonl");
    let mut load = Command::new(loadgen_bin);
    load.args(["--addr", &format!("127.0.0.1:{port}")])
        .arg("--http3")
        .arg(&cert)
        .args(["--duration", "30", "--samples"])
        .arg(&samples)
        .args([
            "--group",
            "ka:/:16:ka",
            "--group",
            "pooled:/echo:8:pooled300",
        ])
        .stdout(std::process::Stdio::null());
    let mut load = load.spawn().expect("run loadgen");
    std::thread::sleep(Duration::from_secs(3));
    let old = services::serving_pid(plain).expect("the reference service names its pid");
    // SAFETY: kill(2) on the pid that just answered.
    unsafe { libc::kill(old as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_secs(4));
    // SAFETY: kill(2) on the load generator this function started.
    unsafe { libc::kill(load.id() as i32, libc::SIGTERM) };
    let _ = load.wait();
    let forwarded = services::metric_sum(plain, "handoff_quic_datagrams_forwarded_total");
    // Every request: its start and its latency, in µs.
    let text = std::fs::read_to_string(&samples).unwrap_or_default();
    let mut spans: Vec<(u64, u64, bool)> = text
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let start = v["start_us"].as_u64()?;
            let latency = v["latency_us"].as_u64()?;
            Some((start + latency, latency, v["outcome"] == "Ok"))
        })
        .collect();
    spans.sort_unstable();
    let longest_gap_us = spans.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap_or(0);
    Http3Reload {
        requests: spans.len() as u64,
        failed: spans.iter().filter(|s| !s.2).count() as u64,
        longest_gap_ms: longest_gap_us as f64 / 1e3,
        max_latency_ms: spans.iter().map(|s| s.1).max().unwrap_or(0) as f64 / 1e3,
        datagrams_forwarded: forwarded,
    }
}
