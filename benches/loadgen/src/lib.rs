//! HTTP/1.1 (and HTTP/3, `h3.rs`) load for restart tests and benchmarks.
//!
//! Each virtual client sends GET requests back to back, on one kept-alive
//! connection or a new connection per request, and records for every request
//! when it started, how long it took, how it ended, and which pid answered
//! (handoff names its pid in `/` and `/delay/{ms}` answers).
//!
//! One retry is made, and counted, in exactly one case: a request written on a
//! *reused* keep-alive connection that the server closed (EOF, reset) before
//! sending any byte of a response. RFC 9112 §9.3.1 lets a client retry an
//! idempotent request then, and Go's net/http, curl and browsers all do; a
//! server closing an idle keep-alive connection always races with a client
//! reusing it. Every other failure counts: connect errors, resets, EOF after
//! a response began, timeouts, non-2xx statuses, malformed answers. A test
//! asserts `retried == 0` too: a server that closes kept connections at a
//! restart shows there, even though the retry hid it from `failed`.
//!
//! Pooled clients ([`Group::pooled`]) are how load balancers and HTTP client
//! pools send: one kept connection each, a random pause between requests,
//! `POST` with a body (not idempotent), and **no retry of any kind**. Each
//! answer must echo the body sent, byte for byte (`POST /echo`), so a request
//! read twice or partly lost counts as failed too.
//!
//! A test that disrupts the server runs the load in the background with
//! [`Load`], marks each disruption, and ends the load only after the last one
//! has settled; [`Report::check`] fails a run in which a disruption fell
//! outside the load.

mod h3;
mod http;
mod load;

pub use load::{Load, Mark, Report};

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
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
    /// Over HTTP/3 (QUIC to the same port, UDP), trusting the certificates
    /// in this PEM file for `localhost`; None: HTTP/1.1 over TCP.
    pub http3: Option<std::path::PathBuf>,
}

impl Group {
    pub fn new(name: &str, path: &str, clients: usize, keep_alive: bool) -> Self {
        Self {
            name: name.to_owned(),
            path: path.to_owned(),
            clients,
            keep_alive,
            pooled_pause: None,
            http3: None,
        }
    }

    /// The same clients over HTTP/3 (see `h3.rs`), trusting `ca`.
    pub fn over_http3(self, ca: impl Into<std::path::PathBuf>) -> Self {
        Self {
            http3: Some(ca.into()),
            ..self
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
    /// How long the load runs at most: [`run`] runs this long; a [`Load`]
    /// stops earlier when the test finishes it.
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

impl Sample {
    /// When the answer (or the failure) came, from the start of the run.
    pub fn end_us(&self) -> u64 {
        self.start_us + self.latency_us
    }
}

/// Runs the plan until its `duration` ends and returns every request's sample.
pub async fn run(plan: &Plan) -> Vec<Sample> {
    run_until(plan, Instant::now(), Arc::new(AtomicBool::new(false))).await
}

/// Runs the plan until `stop` resolves, with its `duration` as a ceiling;
/// every request's sample, and whether `stop` came before the ceiling.
pub async fn run_until_stopped(
    plan: &Plan,
    stop: impl std::future::Future<Output = ()>,
) -> (Vec<Sample>, bool) {
    let origin = Instant::now();
    let flag = Arc::new(AtomicBool::new(false));
    let load = run_until(plan, origin, flag.clone());
    tokio::pin!(load);
    tokio::select! {
        samples = &mut load => return (samples, false),
        () = stop => {}
    }
    let stopped_in_time = origin.elapsed() < plan.duration;
    flag.store(true, Ordering::Release);
    (load.await, stopped_in_time)
}

/// Runs the plan from `origin` until `stop` is set or its `duration` ends,
/// whichever comes first; clients finish the request they are in.
async fn run_until(plan: &Plan, origin: Instant, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let deadline = origin + plan.duration;
    let mut tasks = Vec::new();
    for (gi, group) in plan.groups.iter().enumerate() {
        for ci in 0..group.clients {
            let group = group.clone();
            let run = Running {
                group_index: gi,
                addr: plan.addr,
                timeout: plan.request_timeout,
                origin,
                deadline,
                stop: stop.clone(),
            };
            tasks.push(tokio::spawn(async move {
                let seed = (gi as u64) << 32 | ci as u64;
                match (&group.http3, group.pooled_pause) {
                    (Some(ca), _) => h3::client(&run, &group, ca, seed).await,
                    (None, Some(pause)) => pooled_client(&run, &group, pause, seed).await,
                    (None, None) => client(&run, &group).await,
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

/// What every client of a run shares.
struct Running {
    group_index: usize,
    addr: SocketAddr,
    timeout: Duration,
    origin: Instant,
    deadline: Instant,
    stop: Arc<AtomicBool>,
}

impl Running {
    fn go_on(&self) -> bool {
        Instant::now() < self.deadline && !self.stop.load(Ordering::Acquire)
    }

    fn sample(
        &self,
        started: Instant,
        outcome: Outcome,
        pid: Option<u32>,
        retried: bool,
    ) -> Sample {
        Sample {
            group: self.group_index,
            start_us: micros(started - self.origin),
            latency_us: micros(started.elapsed()),
            outcome,
            pid,
            retried,
        }
    }
}

async fn client(run: &Running, group: &Group) -> Vec<Sample> {
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
    while run.go_on() {
        let started = Instant::now();
        let (outcome, pid, retried) =
            get(run, &mut conn, request.as_bytes(), group.keep_alive).await;
        let failed = !outcome.is_ok();
        samples.push(run.sample(started, outcome, pid, retried));
        if failed {
            // Do not spin on a dead server: a short pause, like a client's backoff.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    samples
}

/// One GET with the RFC 9112 retry: the outcome, the answering pid, and
/// whether the retry happened. Leaves `conn` open only for a kept connection.
async fn get(
    run: &Running,
    conn: &mut Option<TcpStream>,
    request: &[u8],
    keep_alive: bool,
) -> (Outcome, Option<u32>, bool) {
    let started = Instant::now();
    let reused = conn.is_some();
    let mut result =
        tokio::time::timeout(run.timeout, http::exchange(conn, run.addr, request)).await;
    let mut retried = false;
    if reused
        && matches!(
            result,
            Ok(Err(http::Failure {
                closed_before_response: true,
                ..
            }))
        )
    {
        retried = true;
        *conn = None;
        let left = run.timeout.saturating_sub(started.elapsed());
        result = tokio::time::timeout(left, http::exchange(conn, run.addr, request)).await;
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
            let pid = pid_in(&String::from_utf8_lossy(&resp.body));
            (outcome, pid, resp.keep_alive && keep_alive)
        }
    };
    if !keep {
        *conn = None;
    }
    (outcome, pid, retried)
}

/// A client of a connection pool: see the crate docs. A new connection only
/// after the server closed the last one (as a pool does), never a retry.
async fn pooled_client(
    run: &Running,
    group: &Group,
    max_pause: Duration,
    seed: u64,
) -> Vec<Sample> {
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut conn: Option<TcpStream> = None;
    let mut samples = Vec::new();
    let mut n: u64 = 0;
    while run.go_on() {
        n += 1;
        let started = Instant::now();
        let outcome = post_echo(run, &mut conn, &group.path, seed, n).await;
        samples.push(run.sample(started, outcome, None, false));
        let pause = max_pause.mul_f64(rng.unit());
        tokio::time::sleep(pause).await;
    }
    samples
}

/// One pooled `POST`, never retried; its answer must echo the body.
async fn post_echo(
    run: &Running,
    conn: &mut Option<TcpStream>,
    path: &str,
    seed: u64,
    n: u64,
) -> Outcome {
    // A body that differs per request, so an echo of another one shows.
    let body = format!(
        "client {seed:x} request {n} {}",
        "x".repeat((n % 64) as usize)
    );
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: loadgen\r\nUser-Agent: handoff-loadgen\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let result = tokio::time::timeout(
        run.timeout,
        http::exchange(conn, run.addr, request.as_bytes()),
    )
    .await;
    let (outcome, keep) = match result {
        Err(_) => (Outcome::Timeout, false),
        Ok(Err(f)) => (f.outcome, false),
        Ok(Ok(resp)) if !(200..300).contains(&resp.status) => (Outcome::Status(resp.status), false),
        Ok(Ok(resp)) if resp.body != body.as_bytes() => (
            Outcome::Io("echo differs from the body sent".to_owned()),
            false,
        ),
        Ok(Ok(resp)) => (Outcome::Ok, resp.keep_alive),
    };
    if !keep {
        *conn = None;
    }
    outcome
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

/// For each answering pid, in the order they first answered: when its
/// first and its last answer came (from the start of the run, µs). A
/// hand-off shows as a successor whose first answer comes before the old
/// process's last one.
pub fn pid_spans(samples: &[Sample]) -> Vec<(u32, u64, u64)> {
    let mut spans: Vec<(u32, u64, u64)> = Vec::new();
    for s in samples {
        let Some(pid) = s.pid else { continue };
        let end = s.end_us();
        match spans.iter_mut().find(|(p, _, _)| *p == pid) {
            Some((_, first, last)) => {
                *first = (*first).min(end);
                *last = (*last).max(end);
            }
            None => spans.push((pid, end, end)),
        }
    }
    spans
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
mod tests;
