//! HTTP/3 across reloads: the service takes a UDP socket named `quic` as
//! systemd passes it, serves HTTP/3 on it beside HTTPS, and a reload moves
//! every QUIC client to the new process without a failed request. The
//! clients are aioquic's (PyPI; tests/run installs it into a venv and names
//! its Python in `HANDOFF_H3_PYTHON`): pooled, pausing between requests,
//! some uploading slowly across each reload, never retrying; and a second,
//! Rust's quinn and h3 (the load generator's HTTP/3 clients).
//!
//! What makes it work, and what each test shows can fail: the old process's
//! connections keep their datagrams after the new process reads the socket
//! (it passes them on, `handoff.quic_forwarding`); each connection says
//! GOAWAY at the drain and stays until its client has its answers and
//! closes; HTTPS answers name the HTTP/3 port (`Alt-Svc`).

mod podman;
mod support;

use std::net::{TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// The Python with aioquic, or None (the test is recorded as skipped).
fn h3_python(test: &str) -> Option<String> {
    let python = support::clients::H3Clients::python();
    if python.is_none() {
        podman::record_skip(
            test,
            "no Python with aioquic (tests/run installs it into target/h3-client; \
             set HANDOFF_H3_PYTHON)",
        );
    }
    python
}

/// A certificate for localhost and 127.0.0.1, its own authority.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "30"])
        .args(["-subj", "/CN=localhost", "-addext"])
        .arg("subjectAltName=DNS:localhost,IP:127.0.0.1")
        // An end-entity certificate: webpki (quinn's client) refuses one
        // that says it is a CA, as openssl's default for -x509 does.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{out:?}");
    (cert, key)
}

/// A TCP listener and a UDP socket on the same port of 127.0.0.1, as a
/// service's `https` and `quic` sockets are.
fn same_port_pair() -> (TcpListener, UdpSocket) {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)) {
            return (tcp, udp);
        }
    }
    panic!("no port free for both TCP and UDP");
}

/// The reference service, started as systemd starts it: sockets `http`,
/// `https` and `quic` passed in, HTTPS and HTTP/3 on the same port.
struct Service {
    proc: Proc,
    http: String,
    port: u16,
    cert: PathBuf,
    _dir: tempfile::TempDir,
}

impl Service {
    fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = certificate(dir.path());
        let http = TcpListener::bind("127.0.0.1:0").unwrap();
        let http_addr = http.local_addr().unwrap().to_string();
        let (https, quic) = same_port_pair();
        let port = https.local_addr().unwrap().port();
        let mut cmd = handoff();
        cmd.env("HANDOFF__TLS__CERTIFICATE", &cert)
            .env("HANDOFF__TLS__KEY", &key);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let fds: Vec<OwnedFd> = vec![http.into(), https.into(), quic.into()];
        let proc = Proc::spawn(with_listen_fds(cmd, fds, Some("http:https:quic"), None));
        wait_until_serving(&http_addr, Duration::from_secs(10));
        Self {
            proc,
            http: http_addr,
            port,
            cert,
            _dir: dir,
        }
    }

    /// The pid serving now (its plain HTTP answer names it).
    fn serving(&self) -> u32 {
        answering_pid(&self.http, Duration::from_secs(10))
    }

    fn metrics(&self) -> String {
        get(&self.http, "/metrics").unwrap().body
    }
}

/// What tests/clients/h3_clients.py reports.
#[derive(Debug)]
struct Outcome {
    json: serde_json::Value,
}

impl Outcome {
    fn n(&self, key: &str) -> u64 {
        self.json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in {}", self.json))
    }

    fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.json["pids"]
            .as_object()
            .unwrap()
            .keys()
            .map(|p| p.parse().unwrap())
            .collect();
        pids.sort_unstable();
        pids
    }

    fn summary(&self) -> String {
        let mut json = self.json.clone();
        json.as_object_mut().unwrap().remove("timeline");
        json.to_string()
    }
}

/// Runs `clients` aioquic clients (h3_clients.py with `flags`) against
/// `service` and reloads it `reloads` times, 1.1 s apart, from 1 s after
/// they all connected; returns the clients' outcome and the pids that served, oldest
/// first.
fn reloads_under_h3_load(
    python: &str,
    service: &Service,
    clients: usize,
    reloads: usize,
    flags: &[&str],
) -> (Outcome, Vec<u32>) {
    let stop = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let stop_file = stop.to_path_buf();
    std::fs::remove_file(&stop_file).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/h3_clients.py");
    let load = Command::new(python)
        .arg(script)
        .args(["127.0.0.1", &service.port.to_string(), &clients.to_string()])
        .arg(&stop_file)
        .arg(&service.cert)
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the HTTP/3 clients start");
    // Every client connected, and some requests answered, before the first
    // reload (Python and the handshakes take a while on a busy machine).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metric(&service.metrics(), "handoff_quic_connections") < clients as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the HTTP/3 clients did not all connect"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut pids = vec![service.serving()];
    for _ in 0..reloads {
        let old = *pids.last().unwrap();
        // SAFETY: kill(2) to the pid that answered a moment ago.
        assert_eq!(unsafe { libc::kill(old as i32, libc::SIGHUP) }, 0);
        let new = wait_for_new_pid(&service.http, old, Duration::from_secs(15))
            .expect("a successor serves");
        pids.push(new);
        std::thread::sleep(Duration::from_millis(1100));
    }
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(&stop_file, b"").unwrap();
    let out = load.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "h3_clients.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (Outcome { json }, pids)
}

/// The value of a metric line `name` (labels included) in `/metrics`.
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}

#[test]
fn http3_clients_lose_nothing_across_ten_reloads() {
    let test = "http3_clients_lose_nothing_across_ten_reloads";
    let Some(python) = h3_python(test) else {
        return;
    };
    let service = Service::start(&[]);
    let (outcome, pids) = reloads_under_h3_load(&python, &service, 16, 10, &["--slow-uploads"]);
    report(
        "http3-reloads",
        &format!("{}\npids {pids:?}\n", outcome.summary()),
    );
    assert_eq!(outcome.n("failed"), 0, "{}", outcome.summary());
    // Every generation answered over HTTP/3, and uploads under way at the
    // reloads were answered in full.
    let served: Vec<u32> = outcome.pids();
    let mut expected = pids.clone();
    expected.sort_unstable();
    assert_eq!(served, expected, "{}", outcome.summary());
    assert!(outcome.n("slow_ok") > 0, "{}", outcome.summary());
    // Clients moved because they heard GOAWAY, never because a connection
    // was closed under them.
    assert!(outcome.n("goaways") >= 10, "{}", outcome.summary());
    assert_eq!(
        outcome.n("moved_without_goaway"),
        0,
        "{}",
        outcome.summary()
    );
    // And no GOAWAY declared a request unprocessed that was then answered:
    // a client that believes the GOAWAY sends it again elsewhere.
    assert_eq!(
        outcome.n("answered_beyond_goaway"),
        0,
        "{}",
        outcome.summary()
    );
    // The old connections' datagrams reached the old process through the
    // new one.
    let metrics = service.metrics();
    assert!(
        metric(&metrics, "handoff_quic_datagrams_forwarded_total") > 0.0,
        "{metrics}"
    );
    // And the old processes did not wait out their drain timeout (30 s):
    // each left once its clients had closed.
    for old in &pids[..pids.len() - 1] {
        assert!(
            wait_gone(*old, Duration::from_secs(10)),
            "pid {old} still runs"
        );
    }
    drop(service.proc);
}

#[test]
fn without_forwarding_uploads_under_way_at_a_reload_fail() {
    // The control: the same load with the old process's datagrams dropped
    // rather than passed on. If this passed without failures, the test
    // above would prove nothing about the forwarding.
    let test = "without_forwarding_uploads_under_way_at_a_reload_fail";
    let Some(python) = h3_python(test) else {
        return;
    };
    let service = Service::start(&[("HANDOFF__HANDOFF__QUIC_FORWARDING", "false")]);
    let (outcome, _) = reloads_under_h3_load(&python, &service, 16, 2, &["--slow-uploads"]);
    println!("{}", outcome.summary());
    assert!(outcome.n("failed") > 0, "{}", outcome.summary());
    drop(service.proc);
}

#[test]
fn a_client_that_ignores_goaway_is_refused_not_cut_off() {
    // A client that sends on after the GOAWAY gets its next request
    // refused unprocessed (H3_REQUEST_REJECTED, which it may send again
    // elsewhere), delivered before the connection goes: never a request
    // lost with a closed connection.
    let test = "a_client_that_ignores_goaway_is_refused_not_cut_off";
    let Some(python) = h3_python(test) else {
        return;
    };
    let service = Service::start(&[]);
    let (outcome, pids) = reloads_under_h3_load(&python, &service, 4, 2, &["--ignore-goaway"]);
    println!("{}", outcome.summary());
    assert_eq!(outcome.n("failed"), 0, "{}", outcome.summary());
    assert!(outcome.n("rejected") > 0, "{}", outcome.summary());
    assert_eq!(
        outcome.n("moved_without_goaway"),
        0,
        "{}",
        outcome.summary()
    );
    // And no GOAWAY declared a request unprocessed that was then answered:
    // a client that believes the GOAWAY sends it again elsewhere.
    assert_eq!(
        outcome.n("answered_beyond_goaway"),
        0,
        "{}",
        outcome.summary()
    );
    // They stayed with the old process until refused (a second after its
    // GOAWAY), then reached the newest; a generation that served only
    // between two reloads 1.1 s apart may have had none of them.
    let served = outcome.pids();
    for pid in [pids[0], *pids.last().unwrap()] {
        assert!(served.contains(&pid), "{pid}: {}", outcome.summary());
    }
    drop(service.proc);
}

#[test]
fn https_answers_name_the_http3_port_unless_http3_is_off() {
    let alt_svc = |env: &[(&str, &str)]| {
        let service = Service::start(env);
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-D", "-", "--cacert"])
            .arg(&service.cert)
            .arg(format!("https://localhost:{}/", service.port))
            .args([
                "--resolve",
                &format!("localhost:{}:127.0.0.1", service.port),
            ])
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "{out:?}");
        let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
        let line = head
            .lines()
            .find_map(|l| l.strip_prefix("alt-svc: "))
            .map(|v| v.trim().to_owned());
        (line, service.port)
    };
    let (line, port) = alt_svc(&[]);
    assert_eq!(line, Some(format!("h3=\":{port}\"; ma=86400")));
    let (line, _) = alt_svc(&[("HANDOFF__SERVER__HTTP3", "false")]);
    assert_eq!(line, None);
}

#[test]
fn handshakes_beyond_max_handshakes_prove_their_address_and_are_served() {
    // With one handshake allowed at a time, the clients that arrive
    // together get a Retry: they must echo its token, which the endpoint
    // checks, before it spends a handshake on them. aioquic follows Retry,
    // so each must still be served: a token the endpoint could not read
    // back would fail them, and no Retry at all leaves the counter at 0.
    let test = "handshakes_beyond_max_handshakes_prove_their_address_and_are_served";
    let Some(python) = h3_python(test) else {
        return;
    };
    let service = Service::start(&[("HANDOFF__TLS__MAX_HANDSHAKES", "1")]);
    let (outcome, _) = reloads_under_h3_load(&python, &service, 16, 0, &[]);
    assert_eq!(outcome.n("failed"), 0, "{}", outcome.summary());
    assert!(outcome.n("ok") > 0, "{}", outcome.summary());
    let metrics = service.metrics();
    assert!(
        metric(&metrics, "handoff_quic_handshakes_total{result=\"retry\"}") > 0.0,
        "{metrics}"
    );
    drop(service.proc);
}

#[test]
fn a_stop_answers_what_it_took_then_ends_each_connection_with_h3_no_error() {
    // A stop has no successor, and the next process starts only once this
    // one has exited: a connection whose client sends nothing more must
    // not hold the restart until it idles out (server.keep_alive, 30 s
    // here). Its request under way is answered; then the connection ends
    // with H3_NO_ERROR, which tells the client to connect again.
    let test = "a_stop_answers_what_it_took_then_ends_each_connection_with_h3_no_error";
    let Some(python) = h3_python(test) else {
        return;
    };
    let service = Service::start(&[("HANDOFF__SERVER__KEEP_ALIVE", "30s")]);
    let (pid, seen) = stop_under_an_h3_request(&python, &service, 600);
    assert_eq!(seen["delayed_status"], "200", "{seen}");
    assert_eq!(seen["close_code"], 0x100, "{seen}");
    let after = seen["closed_after_s"].as_f64().unwrap();
    assert!(after < 5.0, "closed {after} s after the stop: {seen}");
    assert!(
        wait_gone(pid, Duration::from_secs(5)),
        "pid {pid} still runs"
    );
    drop(service.proc);
}

/// tests/clients/h3_stop.py against `service`: once its `GET
/// /delay/DELAY_MS` is under way, SIGTERM to the process it reached. That
/// pid, and the client's report (what became of the request, the close it
/// heard within 20 s).
fn stop_under_an_h3_request(
    python: &str,
    service: &Service,
    delay_ms: u32,
) -> (u32, serde_json::Value) {
    let mut client = h3_script(python, "h3_stop.py", service)
        .args([&delay_ms.to_string(), "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the HTTP/3 client starts");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(client.stdout.take().unwrap()));
    let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
    let pid: u32 = next()
        .strip_prefix("pid ")
        .and_then(|p| p.parse().ok())
        .expect("the client names the pid it reached");
    assert_eq!(next(), "waiting");
    // SAFETY: kill(2) to the process the client just reached.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let report = next();
    let seen: serde_json::Value =
        serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}: {report:?}"));
    let _ = client.wait();
    (pid, seen)
}

#[test]
fn a_request_cut_at_the_drain_timeout_ends_its_connection_with_h3_no_error() {
    // What outlives server.drain_timeout at a stop is cut. Its QUIC
    // connection must still be closed, not dropped: a dropped one leaves
    // its client waiting for an answer until its idle timeout, while the
    // next process already serves. (QUIC's connection tasks run on the
    // worker runtimes, which the cut stops: the close is sent first.)
    let test = "a_request_cut_at_the_drain_timeout_ends_its_connection_with_h3_no_error";
    let Some(python) = h3_python(test) else {
        return;
    };
    let service = Service::start(&[
        ("HANDOFF__SERVER__KEEP_ALIVE", "30s"),
        ("HANDOFF__SERVER__DRAIN_TIMEOUT", "1s"),
    ]);
    // A request of 8 s, cut 1 s after the stop.
    let (pid, seen) = stop_under_an_h3_request(&python, &service, 8000);
    assert_eq!(seen["delayed_status"], serde_json::Value::Null, "{seen}");
    assert_eq!(seen["close_code"], 0x100, "no CONNECTION_CLOSE: {seen}");
    let after = seen["closed_after_s"].as_f64().unwrap();
    assert!(after < 3.0, "closed {after} s after the stop: {seen}");
    assert!(
        wait_gone(pid, Duration::from_secs(5)),
        "pid {pid} still runs"
    );
    drop(service.proc);
}

/// One slow upload by `tests/clients/h3_upload.py`: `size` bytes in
/// `pieces` pieces `pause` seconds apart, POSTed to `path`; what it reports.
fn slow_upload(
    python: &str,
    service: &Service,
    size: usize,
    pieces: u32,
    pause: f64,
    path: &str,
) -> serde_json::Value {
    let out = h3_script(python, "h3_upload.py", service)
        .args([size.to_string(), pieces.to_string(), pause.to_string()])
        .arg(path)
        .output()
        .expect("the HTTP/3 client runs");
    last_json(&out)
}

/// `python` running tests/clients/`script`, a one-shot client, against
/// `service`: its address and certificate, the script's own arguments to
/// follow.
fn h3_script(python: &str, script: &str, service: &Service) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/clients")
            .join(script),
    )
    .args(["127.0.0.1", &service.port.to_string()])
    .arg(&service.cert);
    cmd
}

/// A one-shot client's report: the JSON object on its last line.
fn last_json(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(report)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn an_answer_that_leaves_the_upload_unread_arrives_whole() {
    // RFC 9114 §4.1: a server may answer before the request's body is in,
    // then ask the client to stop sending it. A handler that never reads
    // the body (a 405 here) and one that gives up on it (the echo's own
    // 1 s body timeout, the client pausing 3 s) both answer while pieces
    // are still on their way. The server once took the stream back from
    // h3-quinn while a read was pending, which panics: the request's task
    // died and the client saw its stream end without an answer.
    let test = "an_answer_that_leaves_the_upload_unread_arrives_whole";
    let Some(python) = h3_python(test) else {
        return;
    };
    let service = Service::start(&[("HANDOFF__SERVER__CLIENT_BODY_TIMEOUT", "1s")]);
    let unread = slow_upload(&python, &service, 65536, 8, 0.25, "/");
    let stalled = slow_upload(&python, &service, 65536, 2, 3.0, "/echo");
    println!("unread {unread}\nstalled {stalled}");
    for (seen, status) in [(&unread, "405"), (&stalled, "408")] {
        assert_eq!(seen["status"], status, "{seen}");
        assert_eq!(seen["error"], serde_json::Value::Null, "{seen}");
        // Told once to stop sending, after the answer (with quinn's code
        // 0: h3-quinn 0.0.10 cannot give another while a read is pending).
        let stops = seen["stops"].as_array().expect("a list of codes");
        assert_eq!(stops.len(), 1, "{seen}");
    }
    let log = service.proc.stderr_now();
    assert!(!log.contains("panicked"), "{log}");
    drop(service.proc);
}

#[test]
fn an_upload_to_a_process_two_reloads_old_is_answered_after_the_one_between_left() {
    // Datagrams for the oldest process travel newest -> middle -> oldest.
    // The middle process has no client and finishes its drain first; it
    // must still pass on what is for the oldest until that one has gone,
    // or an upload under way there stops halfway.
    let test = "an_upload_to_a_process_two_reloads_old_is_answered_after_the_one_between_left";
    let Some(python) = h3_python(test) else {
        return;
    };
    let service = Service::start(&[]);
    // 192 KiB over 7 s: under way past the middle process's standby (2 s).
    let mut client = h3_script(&python, "h3_upload.py", &service)
        .args(["196608", "70", "0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the HTTP/3 client starts");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(client.stdout.take().unwrap()));
    let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
    let oldest: u32 = next()
        .strip_prefix("pid ")
        .and_then(|p| p.parse().ok())
        .expect("the client names the pid it reached");
    assert_eq!(next(), "uploading");
    // SAFETY: kill(2) to the pid the client reached.
    assert_eq!(unsafe { libc::kill(oldest as i32, libc::SIGHUP) }, 0);
    let middle = wait_for_new_pid(&service.http, oldest, Duration::from_secs(15))
        .expect("a successor serves");
    // SAFETY: kill(2) to the pid that answered a moment ago.
    assert_eq!(unsafe { libc::kill(middle as i32, libc::SIGHUP) }, 0);
    let newest = wait_for_new_pid(&service.http, middle, Duration::from_secs(15))
        .expect("a successor serves");
    let report = next();
    let seen: serde_json::Value =
        serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}: {report:?}"));
    assert_eq!(seen["status"], "200", "{seen}");
    assert_eq!(seen["echoed"], true, "{seen}");
    assert_eq!(answering_pid(&service.http, Duration::from_secs(5)), newest);
    let _ = client.wait();
    // Then both go, the middle one once the oldest has: well before the
    // drain timeout (30 s).
    for pid in [oldest, middle] {
        assert!(
            wait_gone(pid, Duration::from_secs(10)),
            "pid {pid} still runs"
        );
    }
    // A datagram for the oldest's connections now has nowhere to go: the
    // newest drops it and counts it. A short header (0x40) and a
    // connection ID that begins with the oldest's tag, read from its log.
    let log = service.proc.stderr_now();
    let tag = log
        .lines()
        .find(|l| l.contains("serving HTTP/3"))
        .and_then(|l| l.split("tag=").nth(1))
        .map(|t| t.trim_matches('"').get(..8).unwrap_or(t).to_owned())
        .unwrap_or_else(|| panic!("no tag in:\n{log}"));
    let tag = u32::from_str_radix(&tag, 16).expect("a tag is 8 hex digits");
    let mut datagram = vec![0x40u8];
    datagram.extend_from_slice(&tag.to_be_bytes());
    datagram.extend_from_slice(&[0x5a; 4 + 40]);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let gone = "handoff_quic_datagrams_dropped_total{reason=\"gone\"}";
    let before = metric(&service.metrics(), gone);
    udp.send_to(&datagram, ("127.0.0.1", service.port)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while metric(&service.metrics(), gone) <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the datagram for a process that exited was not counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(service.proc);
}

#[test]
fn quinn_h3_clients_lose_nothing_across_ten_reloads() {
    // The second client nobody here wrote: quinn and h3 as a Rust service
    // would call another over HTTP/3 (benches/loadgen/src/h3.rs), back to
    // back and pooled (POST, pauses, no retry). Needs no Python: it runs in
    // the build sandbox too.
    let service = Service::start(&[]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", service.port).parse().unwrap();
    let plan = loadgen::Plan {
        addr,
        groups: vec![
            loadgen::Group::new("get", "/", 4, true).over_http3(&service.cert),
            loadgen::Group::pooled("pooled", "/echo", 8, Duration::from_millis(300))
                .over_http3(&service.cert),
        ],
        duration: Duration::from_secs(60),
        request_timeout: Duration::from_secs(30),
    };
    let mut load = loadgen::Load::start(&plan);
    std::thread::sleep(Duration::from_secs(1));
    let mut pids = vec![service.serving()];
    for i in 0..10 {
        let old = *pids.last().unwrap();
        load.mark(format!("reload {i}"));
        // SAFETY: kill(2) to the pid that answered a moment ago.
        assert_eq!(unsafe { libc::kill(old as i32, libc::SIGHUP) }, 0);
        let new = wait_for_new_pid(&service.http, old, Duration::from_secs(15))
            .expect("a successor serves");
        pids.push(new);
        std::thread::sleep(Duration::from_millis(1000));
    }
    let report = load.finish(Duration::from_secs(1));
    let marks: Vec<String> = report
        .marks
        .iter()
        .map(|m| format!("{} at {:.3}s", m.what, m.at_us as f64 / 1e6))
        .collect();
    support::report(
        "http3-quinn-reloads",
        &format!(
            "{report}\npids {pids:?}\nfailures {:?}\nmarks {marks:?}",
            report.failures(10)
        ),
    );
    // A task that panics drops its stream, which then ends without an
    // answer: the log says why (it once did, 1 run in 10).
    let log = service.proc.stderr_now();
    assert!(!log.contains("panicked"), "{log}");
    report.assert_clean(1000);
    // Every generation answered over HTTP/3.
    let served = loadgen::pids_in_order(&report.samples);
    assert_eq!(served, pids, "{report}");
    drop(service.proc);
}

#[test]
fn an_answer_slower_than_keep_alive_arrives_and_an_idle_connection_ends_with_h3_no_error() {
    // server.keep_alive is 1 s here. A request whose answer takes 2.5 s
    // keeps its connection (QUIC's idle timer would have cut it at 1 s,
    // as it did when it was server.keep_alive); a connection with no
    // request open for 1 s then ends, with H3_NO_ERROR, as an idle HTTP/2
    // one ends with GOAWAY.
    let test =
        "an_answer_slower_than_keep_alive_arrives_and_an_idle_connection_ends_with_h3_no_error";
    let Some(python) = h3_python(test) else {
        return;
    };
    let service = Service::start(&[("HANDOFF__SERVER__KEEP_ALIVE", "1s")]);
    let out = h3_script(&python, "h3_stop.py", &service)
        .args(["2500", "10"])
        .output()
        .expect("the HTTP/3 client runs");
    let seen = last_json(&out);
    assert_eq!(seen["delayed_status"], "200", "{seen}");
    assert_eq!(seen["close_code"], 0x100, "{seen}");
    // From the start of the 2.5 s request: its answer, then 1 s idle.
    let after = seen["closed_after_s"].as_f64().unwrap();
    assert!((2.5..6.0).contains(&after), "closed {after} s in: {seen}");
    drop(service.proc);
}
