//! What a reload costs: the rate of the same pooled load before and after
//! one hand-off, and how the successor's CPU spreads over its threads; and
//! how long thousands of idle connections take to hand over.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::services::{self, Binaries, Server};
use super::wrk;

#[derive(Debug, Serialize)]
pub struct AfterReload {
    pub route: String,
    pub before_per_s: f64,
    pub after_per_s: f64,
    pub ratio: f64,
    /// The busiest thread's share of the process's CPU, and its name.
    pub before_busiest: (f64, String),
    pub after_busiest: (f64, String),
    /// CPU the process used, in cores.
    pub before_cores: f64,
    pub after_cores: f64,
    pub adopted: u64,
    pub wrk_errors: u64,
}

/// One window's measurements of the serving process.
struct Window {
    per_s: f64,
    busiest: (f64, String),
    cores: f64,
}

fn window(port: u16, pid: u32, length: Duration) -> Window {
    let requests = || services::metric_sum(port, "handoff_http_requests_total");
    let (r0, cpu0) = (requests(), services::thread_cpu(pid));
    let started = Instant::now();
    std::thread::sleep(length);
    let (r1, cpu1) = (requests(), services::thread_cpu(pid));
    let seconds = started.elapsed().as_secs_f64();
    let (share, name, cores) = services::busiest_share(&cpu0, &cpu1, seconds);
    Window {
        per_s: (r1 - r0) as f64 / seconds,
        busiest: (share, name),
        cores,
    }
}

/// 64 pooled clients (wrk, 1 ms pause between requests on each kept
/// connection) on `route` of the reference service with 2 workers; the rate
/// and CPU over `length` before the SIGHUP, and over `length` once the
/// successor serves them.
pub fn after_reload(bins: &Binaries, route: &str, length: Duration) -> AfterReload {
    let port = services::free_port();
    let server = Server::reference(bins, port, &[("HANDOFF__SERVER__KEEP_ALIVE", "60s")]);
    let old = server.pid();
    let url = format!("http://127.0.0.1:{port}{route}");
    let load = wrk::start(&url, 64, length * 2 + Duration::from_secs(8), 1);
    std::thread::sleep(Duration::from_secs(2));
    let before = window(port, old, length);
    // SAFETY: kill(2) on the process we started.
    unsafe { libc::kill(old as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let new = loop {
        match services::serving_pid(port) {
            Some(pid) if pid != old => break pid,
            _ => assert!(Instant::now() < deadline, "no successor serves"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    while std::path::Path::new(&format!("/proc/{old}/fd/0")).exists() {
        assert!(Instant::now() < deadline, "the old process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = window(port, new, length);
    let adopted = services::metric_sum(port, "handoff_connections_adopted_total");
    let run = wrk::finish(load);
    AfterReload {
        route: route.to_owned(),
        ratio: after.per_s / before.per_s,
        before_per_s: before.per_s,
        after_per_s: after.per_s,
        before_busiest: before.busiest,
        after_busiest: after.busiest,
        before_cores: before.cores,
        after_cores: after.cores,
        adopted,
        wrk_errors: run.errors,
    }
}

#[derive(Debug, Serialize)]
pub struct AtScale {
    pub connections: usize,
    /// From SIGHUP until the successor had adopted every connection.
    pub handed_over_ms: f64,
    /// From SIGHUP until the old process exited.
    pub old_exited_ms: f64,
    pub fds_before: usize,
    pub fds_after: usize,
    /// Connections whose next request the successor answered.
    pub answered: usize,
}

/// `n` idle keep-alive connections (one request answered on each), one
/// SIGHUP: how long until the successor has them all, the fds of both
/// processes, and whether each then answers.
pub fn at_scale(bins: &Binaries, n: usize) -> AtScale {
    let port = services::free_port();
    let server = Server::reference(bins, port, &[("HANDOFF__SERVER__KEEP_ALIVE", "10m")]);
    let old = server.pid();
    let mut conns: Vec<TcpStream> = (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            assert!(request(&mut s).is_some(), "first request on connection {i}");
            s
        })
        .collect();
    let fds_before = services::open_fds(old);
    let started = Instant::now();
    // SAFETY: kill(2) on the process we started.
    unsafe { libc::kill(old as i32, libc::SIGHUP) };
    let deadline = started + Duration::from_secs(120);
    let new = loop {
        match services::serving_pid(port) {
            Some(pid) if pid != old => break pid,
            _ => assert!(Instant::now() < deadline, "no successor serves"),
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    while services::metric_sum(port, "handoff_connections_adopted_total") < n as u64 {
        assert!(Instant::now() < deadline, "not all connections handed over");
        std::thread::sleep(Duration::from_millis(5));
    }
    let handed_over = started.elapsed();
    while std::path::Path::new(&format!("/proc/{old}/fd/0")).exists() {
        assert!(Instant::now() < deadline, "the old process did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
    let old_exited = started.elapsed();
    let fds_after = services::open_fds(new);
    let answered = conns
        .iter_mut()
        .map(|s| request(s).is_some_and(|body| body.contains(&format!("pid {new} "))))
        .filter(|&ok| ok)
        .count();
    drop(server);
    AtScale {
        connections: n,
        handed_over_ms: handed_over.as_secs_f64() * 1000.0,
        old_exited_ms: old_exited.as_secs_f64() * 1000.0,
        fds_before,
        fds_after,
        answered,
    }
}

/// `GET /` on a kept connection; the body, if answered.
fn request(s: &mut TcpStream) -> Option<String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n").ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return Some(body.to_owned());
            }
        }
    }
}
