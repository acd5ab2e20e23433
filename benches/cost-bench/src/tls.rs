//! Steady state over TLS: examples/hello on handoff beside the same handler
//! on bare actix-web's `HttpServer` with `bind_rustls_0_23`, the same
//! certificate and the same rustls configuration (ring, TLS 1.3 with 1.2,
//! ALPN h2 and http/1.1), HTTP/1.1 (wrk, 64 keep-alive clients) and h2
//! (h2load, 16 connections of 10 streams), in alternating rounds.

use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use super::services::{self, Binaries, Server, WORKERS};
use super::{median, wrk};

#[derive(Serialize)]
pub struct TlsSteady {
    /// `HTTP/1.1` or `h2`.
    pub protocol: String,
    pub service: String,
    /// Every round's rate, in order.
    pub rounds: Vec<f64>,
    pub median_per_s: f64,
    /// This service's rate over bare actix-web's, per round.
    pub ratios: Vec<f64>,
    /// Failed or errored requests, over all rounds.
    pub errors: u64,
}

/// A self-signed certificate for 127.0.0.1 in target/cost-bench.
fn certificate() -> (String, String) {
    let dir = services::work_dir();
    let (cert, key) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl could not make a certificate");
    (cert.display().to_string(), key.display().to_string())
}

/// Both services with HTTPS on a port of its own; their HTTPS ports.
fn start(bins: &Binaries) -> Vec<(&'static str, Server, u16)> {
    let (cert, key) = certificate();
    let (plain, https) = (services::free_port(), services::free_port());
    let mut handoff = Command::new(&bins.hello);
    handoff
        .args(["--listen", &format!("127.0.0.1:{plain}")])
        .env("HANDOFF__SERVER__WORKERS", WORKERS)
        .env("HANDOFF__TLS__LISTEN", format!("127.0.0.1:{https}"))
        .env("HANDOFF__TLS__CERTIFICATE", &cert)
        .env("HANDOFF__TLS__KEY", &key);
    let handoff = Server::spawn(&mut handoff, plain);
    let (plain2, https2) = (services::free_port(), services::free_port());
    let mut actix = Command::new(&bins.hello_actix);
    actix
        .env("LISTEN", format!("127.0.0.1:{plain2}"))
        .env("WORKERS", WORKERS)
        .env("TLS_LISTEN", format!("127.0.0.1:{https2}"))
        .env("TLS_CERT", &cert)
        .env("TLS_KEY", &key);
    let actix = Server::spawn(&mut actix, plain2);
    vec![
        ("handoff (examples/hello)", handoff, https),
        (
            "bare actix-web (HttpServer, bind_rustls_0_23)",
            actix,
            https2,
        ),
    ]
}

/// One h2load run, 16 connections of `streams` streams each: requests a
/// second and failed or errored requests.
pub fn h2load(port: u16, seconds: u64, streams: u32) -> (f64, u64) {
    let out = Command::new("h2load")
        .args(["-c16", &format!("-m{streams}"), "-D", &seconds.to_string()])
        .arg(format!("https://127.0.0.1:{port}/hello"))
        .output()
        .expect("run h2load (apt-get install nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .lines()
        .find_map(|l| {
            let (_, rest) = l.strip_prefix("finished in ")?.split_once(", ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0.0);
    let errors = text
        .lines()
        .find_map(|l| {
            let l = l.strip_prefix("requests: ")?;
            let n = |label: &str| -> Option<u64> {
                l.split(", ")
                    .find_map(|p| p.strip_suffix(label))?
                    .trim()
                    .parse()
                    .ok()
            };
            Some(n(" failed")? + n(" errored")?)
        })
        .unwrap_or(u64::MAX);
    (rate, errors)
}

pub fn steady(bins: &Binaries, rounds: usize, seconds: u64) -> Vec<TlsSteady> {
    let servers = start(bins);
    let mut out = Vec::new();
    for protocol in ["HTTP/1.1", "h2"] {
        let run = |port: u16, secs: u64| match protocol {
            "h2" => h2load(port, secs, 10),
            _ => {
                let r = wrk::run(
                    &format!("https://127.0.0.1:{port}/hello"),
                    64,
                    Duration::from_secs(secs),
                    0,
                );
                (r.requests_per_s, r.errors)
            }
        };
        for (_, _, port) in &servers {
            run(*port, 2);
        }
        let mut rates = vec![Vec::new(); servers.len()];
        let mut errors = vec![0; servers.len()];
        for round in 0..rounds {
            for i in 0..servers.len() {
                let k = (round + i) % servers.len();
                let (rate, failed) = run(servers[k].2, seconds);
                eprintln!(
                    "TLS {protocol} round {}: {:<48} {rate:>9.0} req/s",
                    round + 1,
                    servers[k].0
                );
                rates[k].push(rate);
                errors[k] += failed;
            }
        }
        let actix = rates[1].clone();
        for (k, (name, _, _)) in servers.iter().enumerate() {
            out.push(TlsSteady {
                protocol: protocol.to_owned(),
                service: (*name).to_owned(),
                median_per_s: median(rates[k].clone()),
                ratios: rates[k].iter().zip(&actix).map(|(r, a)| r / a).collect(),
                rounds: rates[k].clone(),
                errors: errors[k],
            });
        }
    }
    out
}
