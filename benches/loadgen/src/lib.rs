//! HTTP/1.1 load for restart tests and benchmarks.
//!
//! Each virtual client sends GET requests back to back, on one kept-alive
//! connection or a new connection per request, and records for every request
//! when it started, how long it took, how it ended, and which pid answered
//! (handoff names its pid in `/` and `/delay/{ms}` answers).
//!
//! One retry is made, and counted, in exactly one case: a request written on a
//! *reused* keep-alive connection that the server closed before sending any
//! byte of a response. RFC 9112 §9.3.1 lets a client retry an idempotent
//! request then, and Go's net/http, curl and browsers all do; a server closing
//! an idle keep-alive connection always races with a client reusing it. Every
//! other failure counts: connect errors, resets, EOF after a response began,
//! timeouts, non-2xx statuses.
//!
//! Pooled clients ([`Group::pooled`]) are how load balancers and HTTP client
//! pools send: one kept connection each, a random pause between requests,
//! `POST` with a body (not idempotent), and **no retry of any kind**. Each
//! answer must echo the body sent, byte for byte (`POST /echo`), so a request
//! read twice or partly lost counts as failed too.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Clients that request the same path the same way.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub name: String,
    pub path: String,
    pub clients: usize,
    pub keep_alive: bool,
    /// Pooled clients: the longest random pause between two requests.
    pub pooled_pause: Option<Duration>,
}

impl Group {
    pub fn new(name: &str, path: &str, clients: usize, keep_alive: bool) -> Self {
        Self {
            name: name.to_owned(),
            path: path.to_owned(),
            clients,
            keep_alive,
            pooled_pause: None,
        }
    }

    /// Pooled clients: `POST` a body to `path` (which must echo it) on one
    /// kept connection each, pausing 0 to `max_pause` between requests,
    /// never retrying.
    pub fn pooled(name: &str, path: &str, clients: usize, max_pause: Duration) -> Self {
        Self {
            pooled_pause: Some(max_pause),
            ..Self::new(name, path, clients, true)
        }
    }

    /// `name:path:clients:ka|close|pooledMS`, e.g. `fast:/:16:ka` or
    /// `pool:/echo:32:pooled300` (pauses of 0-300 ms).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let [name, path, clients, mode] = parts[..] else {
            return Err(format!(
                "{spec:?}: expected name:path:clients:ka|close|pooledMS"
            ));
        };
        let clients = clients
            .parse()
            .map_err(|_| format!("{spec:?}: clients {clients:?} is not a number"))?;
        match mode {
            "ka" => Ok(Self::new(name, path, clients, true)),
            "close" => Ok(Self::new(name, path, clients, false)),
            other => match other.strip_prefix("pooled").map(str::parse::<u64>) {
                Some(Ok(ms)) => Ok(Self::pooled(name, path, clients, Duration::from_millis(ms))),
                _ => Err(format!(
                    "{spec:?}: mode {other:?} is not ka, close or pooledMS (e.g. pooled300)"
                )),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub addr: SocketAddr,
    pub groups: Vec<Group>,
    pub duration: Duration,
    /// A request (connect to last body byte) taking longer is a failure.
    pub request_timeout: Duration,
}

impl Plan {
    /// Only pooled clients on `POST /echo` (see [`Group::pooled`]), for
    /// `duration`, each request allowed 30 s.
    pub fn pooled(
        addr: SocketAddr,
        clients: usize,
        max_pause: Duration,
        duration: Duration,
    ) -> Self {
        Self {
            addr,
            groups: vec![Group::pooled("pooled", "/echo", clients, max_pause)],
            duration,
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Outcome {
    Ok,
    Status(u16),
    Connect(String),
    Reset,
    Eof,
    Timeout,
    Io(String),
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        *self == Outcome::Ok
    }

    /// A short kind for tables: `status 503`, `connect refused`, `reset`, ...
    pub fn kind(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Status(s) => format!("status {s}"),
            Outcome::Connect(k) => format!("connect {k}"),
            Outcome::Reset => "reset".into(),
            Outcome::Eof => "eof".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Io(k) => format!("io {k}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub group: usize,
    /// Start of the request, from the start of the run.
    pub start_us: u64,
    pub latency_us: u64,
    pub outcome: Outcome,
    pub pid: Option<u32>,
    /// The stale keep-alive retry described in the crate docs happened.
    pub retried: bool,
}

/// Runs the plan to its end and returns every request's sample.
pub async fn run(plan: &Plan) -> Vec<Sample> {
    let origin = Instant::now();
    let deadline = origin + plan.duration;
    let mut tasks = Vec::new();
    for (gi, group) in plan.groups.iter().enumerate() {
        for ci in 0..group.clients {
            let group = group.clone();
            let addr = plan.addr;
            let timeout = plan.request_timeout;
            tasks.push(tokio::spawn(async move {
                match group.pooled_pause {
                    Some(pause) => {
                        let seed = (gi as u64) << 32 | ci as u64;
                        pooled_client(gi, &group, pause, seed, addr, timeout, origin, deadline)
                            .await
                    }
                    None => client(gi, &group, addr, timeout, origin, deadline).await,
                }
            }));
        }
    }
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.expect("client task panicked"));
    }
    samples.sort_by_key(|s| s.start_us);
    samples
}

async fn client(
    group_index: usize,
    group: &Group,
    addr: SocketAddr,
    timeout: Duration,
    origin: Instant,
    deadline: Instant,
) -> Vec<Sample> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: loadgen\r\nUser-Agent: handoff-loadgen\r\n{}\r\n",
        group.path,
        if group.keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        }
    );
    let mut conn: Option<TcpStream> = None;
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        let started = Instant::now();
        let reused = conn.is_some();
        let mut result = tokio::time::timeout(timeout, attempt(&mut conn, addr, &request)).await;
        let mut retried = false;
        if reused
            && matches!(
                result,
                Ok(Err(Failure {
                    before_response: true,
                    ..
                }))
            )
        {
            retried = true;
            conn = None;
            let left = timeout.saturating_sub(started.elapsed());
            result = tokio::time::timeout(left, attempt(&mut conn, addr, &request)).await;
        }
        let (outcome, pid, keep) = match result {
            Err(_) => (Outcome::Timeout, None, false),
            Ok(Err(f)) => (f.outcome, None, false),
            Ok(Ok(resp)) => {
                let outcome = if (200..300).contains(&resp.status) {
                    Outcome::Ok
                } else {
                    Outcome::Status(resp.status)
                };
                (outcome, resp.pid, resp.keep_alive && group.keep_alive)
            }
        };
        if !keep {
            conn = None;
        }
        let failed = !outcome.is_ok();
        samples.push(Sample {
            group: group_index,
            start_us: micros(started - origin),
            latency_us: micros(started.elapsed()),
            outcome,
            pid,
            retried,
        });
        if failed {
            // Do not spin on a dead server: a short pause, like a client's backoff.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    samples
}

/// A client of a connection pool: see the crate docs. A new connection only
/// after the server closed the last one (as a pool does), never a retry.
#[allow(clippy::too_many_arguments)]
async fn pooled_client(
    group_index: usize,
    group: &Group,
    max_pause: Duration,
    seed: u64,
    addr: SocketAddr,
    timeout: Duration,
    origin: Instant,
    deadline: Instant,
) -> Vec<Sample> {
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut conn: Option<TcpStream> = None;
    let mut samples = Vec::new();
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        n += 1;
        // A body that differs per request, so an echo of another one shows.
        let body = format!(
            "client {seed:x} request {n} {}",
            "x".repeat((n % 64) as usize)
        );
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: loadgen\r\nUser-Agent: handoff-loadgen\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n{body}",
            group.path,
            body.len()
        );
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, attempt(&mut conn, addr, &request)).await;
        let (outcome, keep) = match result {
            Err(_) => (Outcome::Timeout, false),
            Ok(Err(f)) => (f.outcome, false),
            Ok(Ok(resp)) if !(200..300).contains(&resp.status) => {
                (Outcome::Status(resp.status), false)
            }
            Ok(Ok(resp)) if resp.body != body.as_bytes() => (
                Outcome::Io("echo differs from the body sent".to_owned()),
                false,
            ),
            Ok(Ok(resp)) => (Outcome::Ok, resp.keep_alive),
        };
        if !keep {
            conn = None;
        }
        samples.push(Sample {
            group: group_index,
            start_us: micros(started - origin),
            latency_us: micros(started.elapsed()),
            outcome,
            pid: None,
            retried: false,
        });
        let pause = max_pause.mul_f64(rng.unit());
        tokio::time::sleep(pause).await;
    }
    samples
}

/// A small deterministic generator for the pauses (no dependency needed).
struct XorShift(u64);

impl XorShift {
    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

struct Failure {
    outcome: Outcome,
    /// Nothing of a response arrived: the request may not have been seen.
    before_response: bool,
}

struct Response {
    status: u16,
    keep_alive: bool,
    pid: Option<u32>,
    body: Vec<u8>,
}

async fn attempt(
    conn: &mut Option<TcpStream>,
    addr: SocketAddr,
    request: &str,
) -> Result<Response, Failure> {
    if conn.is_none() {
        let stream = TcpStream::connect(addr).await.map_err(|e| Failure {
            outcome: Outcome::Connect(io_kind(&e)),
            before_response: true,
        })?;
        let _ = stream.set_nodelay(true);
        *conn = Some(stream);
    }
    let stream = conn.as_mut().expect("connected above");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| io_failure(&e, true))?;

    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| io_failure(&e, buf.is_empty()))?;
        if n == 0 {
            return Err(Failure {
                outcome: Outcome::Eof,
                before_response: buf.is_empty(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => continue,
            Err(e) => {
                return Err(Failure {
                    outcome: Outcome::Io(format!("bad response: {e}")),
                    before_response: false,
                });
            }
        };
        let status = parsed.code.unwrap_or(0);
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
        };
        let length: usize = header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let keep_alive = header("connection").is_none_or(|v| !v.contains("close"));
        while buf.len() < head_len + length {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| io_failure(&e, false))?;
            if n == 0 {
                return Err(Failure {
                    outcome: Outcome::Eof,
                    before_response: false,
                });
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[head_len..head_len + length].to_vec();
        return Ok(Response {
            status,
            keep_alive,
            pid: pid_in(&String::from_utf8_lossy(&body)),
            body,
        });
    }
}

fn io_kind(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "refused".into(),
        std::io::ErrorKind::ConnectionReset => "reset".into(),
        std::io::ErrorKind::TimedOut => "timeout".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn io_failure(e: &std::io::Error, before_response: bool) -> Failure {
    let outcome = match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Outcome::Reset,
        std::io::ErrorKind::UnexpectedEof => Outcome::Eof,
        _ => Outcome::Io(io_kind(e)),
    };
    Failure {
        outcome,
        before_response,
    }
}

/// The pid in `handoff 0.1.0 pid 42 ...` or `{"slept_ms":1,"pid":42}`.
pub fn pid_in(body: &str) -> Option<u32> {
    let rest = if let Some(i) = body.find("\"pid\":") {
        &body[i + 6..]
    } else {
        let i = body.find(" pid ")?;
        &body[i + 5..]
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Figures for one group (or all): counts, failures by kind, latency.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub name: String,
    pub requests: usize,
    pub failed: usize,
    pub retried: usize,
    pub failures: Vec<(String, usize)>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    pub fn of<'a>(name: &str, samples: impl IntoIterator<Item = &'a Sample>) -> Self {
        let samples: Vec<&Sample> = samples.into_iter().collect();
        let mut lat: Vec<u64> = samples.iter().map(|s| s.latency_us).collect();
        lat.sort_unstable();
        let pct = |p: f64| -> f64 {
            if lat.is_empty() {
                return 0.0;
            }
            let idx = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
            lat[idx] as f64 / 1000.0
        };
        let mut failures: Vec<(String, usize)> = Vec::new();
        for s in samples.iter().filter(|s| !s.outcome.is_ok()) {
            let kind = s.outcome.kind();
            match failures.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => failures.push((kind, 1)),
            }
        }
        Self {
            name: name.to_owned(),
            requests: samples.len(),
            failed: samples.iter().filter(|s| !s.outcome.is_ok()).count(),
            retried: samples.iter().filter(|s| s.retried).count(),
            failures,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            max_ms: lat.last().map_or(0.0, |&m| m as f64 / 1000.0),
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<14} requests {:>7}  failed {:>4}  retried {:>3}  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
            self.name,
            self.requests,
            self.failed,
            self.retried,
            self.p50_ms,
            self.p99_ms,
            self.max_ms
        )?;
        if !self.failures.is_empty() {
            write!(f, "  failures: {:?}", self.failures)?;
        }
        Ok(())
    }
}

/// Stats for every group, then for all requests together.
pub fn summarize(plan: &Plan, samples: &[Sample]) -> Vec<Stats> {
    let mut out: Vec<Stats> = plan
        .groups
        .iter()
        .enumerate()
        .map(|(gi, g)| Stats::of(&g.name, samples.iter().filter(|s| s.group == gi)))
        .collect();
    out.push(Stats::of("all", samples));
    out
}

/// Distinct pids in the order they first answered.
pub fn pids_in_order(samples: &[Sample]) -> Vec<u32> {
    let mut pids = Vec::new();
    for p in samples.iter().filter_map(|s| s.pid) {
        if !pids.contains(&p) {
            pids.push(p);
        }
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pid_in_both_answer_shapes() {
        assert_eq!(
            pid_in("handoff 0.1.0 pid 42 generation 1 started x\n"),
            Some(42)
        );
        assert_eq!(pid_in(r#"{"slept_ms":1000,"pid":7}"#), Some(7));
        assert_eq!(pid_in("hello"), None);
    }

    #[test]
    fn parses_group_specs() {
        let g = Group::parse("slow:/delay/1000:8:close").unwrap();
        assert_eq!((g.clients, g.keep_alive), (8, false));
        assert!(Group::parse("x:/:n:ka").is_err());
        assert!(Group::parse("x:/:1:maybe").is_err());
        let p = Group::parse("pool:/echo:32:pooled300").unwrap();
        assert_eq!(p.pooled_pause, Some(Duration::from_millis(300)));
        assert!(Group::parse("pool:/echo:32:pooledx").is_err());
    }

    #[test]
    fn percentiles_and_failure_kinds() {
        let mk = |lat_ms: u64, outcome| Sample {
            group: 0,
            start_us: 0,
            latency_us: lat_ms * 1000,
            outcome,
            pid: None,
            retried: false,
        };
        let mut samples: Vec<Sample> = (1..=100).map(|i| mk(i, Outcome::Ok)).collect();
        samples.push(mk(500, Outcome::Reset));
        let s = Stats::of("t", &samples);
        assert_eq!((s.requests, s.failed), (101, 1));
        assert_eq!(s.p50_ms, 51.0);
        assert_eq!(s.max_ms, 500.0);
        assert_eq!(s.failures, vec![("reset".to_string(), 1)]);
    }
}
