//! Long-lived connections across deploys (examples/live): WebSocket
//! sessions and server-sent-event streams end at the drain signal, their
//! clients (Python's `websockets` and `requests`, nobody's code here but
//! the loop that drives them) resume on the new process, nothing
//! acknowledged is lost, no event is missed or seen twice, and each old
//! process exits because its sessions ended, not at `server.drain_timeout`.
//! A handler that ignores the signal is still cut at the drain timeout.

mod podman;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use podman::{Container, serial, skipped};
use serde_json::Value;
use support::*;

const WS_CLIENTS: usize = 50;
const SSE_CLIENTS: usize = 20;
const RELOADS: usize = 10;
/// After the last reload, before the clients stop: long enough for every
/// one to be back (0.5 s at most measured) on a slow machine.
const SETTLE: Duration = Duration::from_secs(3);

fn live(addr: &str) -> Command {
    let mut cmd = service(example_bin("live"));
    cmd.args(["--listen", addr]);
    cmd
}

/// The clients, running until their stop file exists.
struct Clients {
    stop: PathBuf,
    ws: Option<Child>,
    sse: Option<Child>,
}

impl Clients {
    fn start(dir: &Path, addr: &str, ws: usize, sse: usize) -> Self {
        let stop = dir.join("stop");
        let script = |name: &str| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/clients")
                .join(name)
        };
        let spawn = |name: &str, url: String, n: usize| {
            Command::new(python())
                .arg(script(name))
                .arg(url)
                .arg(n.to_string())
                .arg(&stop)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()))
        };
        Self {
            ws: Some(spawn("ws_clients.py", format!("ws://{addr}/ws"), ws)),
            sse: Some(spawn(
                "sse_clients.py",
                format!("http://{addr}/events"),
                sse,
            )),
            stop,
        }
    }

    /// Stops them; what each kind reported.
    fn finish(mut self) -> (Vec<Value>, Vec<Value>) {
        std::fs::write(&self.stop, b"").unwrap();
        let report = |child: Child, what: &str| {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{what} clients failed: {}",
                out.status
            );
            let v: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{what} clients' report: {e}"));
            v["clients"].as_array().unwrap().clone()
        };
        let ws = report(self.ws.take().unwrap(), "WebSocket");
        (ws, report(self.sse.take().unwrap(), "SSE"))
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.stop, b"");
        for child in [self.ws.as_mut(), self.sse.as_mut()].into_iter().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One reload as the test saw it.
struct Reload {
    /// When it was asked for (Unix time, as the clients record theirs).
    at: f64,
    /// The generation that serves after it.
    generation: u64,
    /// How long the old process lived after the reload was asked for.
    old_lived: Duration,
}

fn connections(client: &Value) -> &Vec<Value> {
    client["connections"].as_array().unwrap()
}

/// The checks both runs share; prints the figures.
fn assert_clients_moved_and_lost_nothing(
    what: &str,
    ws: &[Value],
    sse: &[Value],
    reloads: &[Reload],
    drain_timeout: Duration,
) {
    let last_generation = reloads.last().unwrap().generation;
    // WebSockets: every message acknowledged once, every session ended by
    // the server with 1012 (never 1006, a cut), every generation visited.
    let mut acked = 0;
    for (i, c) in ws.iter().enumerate() {
        let (sent, got) = (c["sent"].as_u64().unwrap(), c["acked"].as_u64().unwrap());
        assert_eq!(c["unacked"], 0, "WebSocket client {i}: {c}");
        assert_eq!(sent, got, "WebSocket client {i}: {c}");
        assert_eq!(c["duplicate_acks"], 0, "WebSocket client {i}: {c}");
        assert!(
            c["errors"].as_array().unwrap().is_empty(),
            "WebSocket client {i}: {c}"
        );
        acked += got;
        // No handshake refused: a reload serves every new connection.
        assert_eq!(c["refused"], 0, "WebSocket client {i}: {c}");
        let conns = connections(c);
        let (last, before) = conns.split_last().unwrap();
        for conn in before {
            let code = conn["close_code"].as_u64().unwrap();
            assert_eq!(
                code, 1012,
                "WebSocket client {i}: a session ended with {code}, not 1012: {c}"
            );
        }
        assert_eq!(last["close_code"], 1000, "WebSocket client {i}: {c}");
        assert_eq!(
            last["generation"], last_generation,
            "WebSocket client {i}: {c}"
        );
    }
    // Events: every id once, none missed, from each generation.
    let mut events = 0;
    for (i, c) in sse.iter().enumerate() {
        let ids: Vec<u64> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(
            ids.len() > 10,
            "SSE client {i} saw {} events: {c}",
            ids.len()
        );
        for pair in ids.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "SSE client {i}: event {} after {}",
                pair[1],
                pair[0]
            );
        }
        assert!(
            c["errors"].as_array().unwrap().is_empty(),
            "SSE client {i}: {c}"
        );
        // A browser's EventSource gives up on any answer but 200.
        assert_eq!(
            c["non_200"],
            serde_json::json!([]),
            "SSE client {i}: a reconnect was answered other than 200: {c}"
        );
        assert_eq!(c["retry_ms"], 100, "SSE client {i}: {c}");
        events += ids.len();
    }
    // Back on each new generation: the first answer from it after the
    // reload, for every client.
    let mut slowest = Vec::new();
    for r in reloads {
        let mut worst: f64 = 0.0;
        for (i, c) in ws.iter().chain(sse).enumerate() {
            let first_key = if c.get("acked").is_some() {
                "first_ack"
            } else {
                "first_event"
            };
            let back = connections(c)
                .iter()
                .find(|conn| conn["generation"] == r.generation)
                .and_then(|conn| conn[first_key].as_f64())
                .unwrap_or_else(|| {
                    panic!("client {i} never reached generation {}: {c}", r.generation)
                });
            worst = worst.max(back - r.at);
        }
        slowest.push(worst);
        // The old process ended because its sessions did, well before the
        // drain timeout would have ended it.
        assert!(
            r.old_lived < drain_timeout,
            "generation {} lived {:?} after the reload (drain timeout {drain_timeout:?})",
            r.generation - 1,
            r.old_lived
        );
    }
    let lived: Vec<String> = reloads
        .iter()
        .map(|r| format!("{:.2}", r.old_lived.as_secs_f64()))
        .collect();
    let back: Vec<String> = slowest.iter().map(|s| format!("{s:.2}")).collect();
    let text = format!(
        "== {what}: {} WebSocket and {} SSE clients across {} reloads\n\
         messages acknowledged: {acked}, lost 0; events received: {events}, each once, none missed\n\
         last client back on the new generation, s after each reload: {}\n\
         old process lived after each reload, s: {}\n",
        ws.len(),
        sse.len(),
        reloads.len(),
        back.join(" "),
        lived.join(" "),
    );
    report(&format!("live-{}", what.replace(' ', "-")), &text);
}

/// The drain log lines of every generation: (closed, cut) each.
fn drain_lines(log: &str) -> Vec<(u64, u64)> {
    log.lines()
        .filter(|l| l.contains("upgraded connections and streams ended since the drain signal"))
        .map(|l| {
            let field = |key: &str| -> u64 {
                let at = l.find(&format!(" {key}=")).unwrap() + key.len() + 2;
                l[at..].split_whitespace().next().unwrap().parse().unwrap()
            };
            (field("closed"), field("cut"))
        })
        .collect()
}

#[test]
fn websocket_and_sse_clients_follow_ten_reloads_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut first = Proc::spawn(live(&addr));
    let mut pid = answering_pid(&addr, Duration::from_secs(20));
    let clients = Clients::start(dir.path(), &addr, WS_CLIENTS, SSE_CLIENTS);
    std::thread::sleep(Duration::from_secs(2));
    let mut reloads = Vec::new();
    for i in 0..RELOADS {
        let at = now();
        let asked = Instant::now();
        // SAFETY: kill(2) on a pid this test started (through its session).
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
        let new = wait_for_new_pid(&addr, pid, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("reload {} did not hand off", i + 1));
        assert!(
            wait_gone(pid, Duration::from_secs(60)),
            "generation {} never exited",
            i + 1
        );
        reloads.push(Reload {
            at,
            generation: i as u64 + 2,
            old_lived: asked.elapsed(),
        });
        pid = new;
        std::thread::sleep(Duration::from_millis(500));
    }
    // Every client back on the last generation before they stop.
    std::thread::sleep(SETTLE);
    let (ws, sse) = clients.finish();
    assert_clients_moved_and_lost_nothing(
        "plain process",
        &ws,
        &sse,
        &reloads,
        Duration::from_secs(30),
    );
    // Each old process counted its sessions as closed at the drain, none cut.
    first.signal(libc::SIGTERM);
    let log = {
        // The log of every generation comes through the first's stderr.
        let _ = first.wait(Duration::from_secs(5));
        kill_session(first.pid());
        first.wait(Duration::from_secs(1)).1
    };
    let drains = drain_lines(&log);
    assert!(
        drains.len() >= RELOADS,
        "{} drain lines:\n{log}",
        drains.len()
    );
    for (closed, cut) in &drains[..RELOADS] {
        assert_eq!(*cut, 0, "a drain cut sessions:\n{log}");
        assert!(*closed > 0, "a drain closed no session:\n{log}");
    }
}

#[test]
fn a_handler_that_ignores_the_drain_signal_is_cut_at_the_drain_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = live(&addr);
    cmd.env("HANDOFF__APP__CLOSE_AT_DRAIN", "false")
        .env("HANDOFF__SERVER__DRAIN_TIMEOUT", "3s");
    let mut first = Proc::spawn(cmd);
    let pid = answering_pid(&addr, Duration::from_secs(20));
    let clients = Clients::start(dir.path(), &addr, 5, 2);
    std::thread::sleep(Duration::from_secs(2));
    first.signal(libc::SIGHUP);
    let new = wait_for_new_pid(&addr, pid, Duration::from_secs(20)).expect("hand-off");
    let (_, log) = first.wait(Duration::from_secs(30));
    // The old process's own account: the drain timeout, then the cut.
    assert!(
        log.contains("drain timeout reached with connections still open"),
        "{log}"
    );
    let drains = drain_lines(&log);
    assert_eq!(drains, [(0, 7)], "{log}");
    std::thread::sleep(Duration::from_secs(1));
    let (ws, sse) = clients.finish();
    for c in &ws {
        // Cut: no close frame (1006); the client resumed on the new process
        // and its messages were acknowledged there.
        let codes: Vec<_> = connections(c)
            .iter()
            .map(|x| x["close_code"].clone())
            .collect();
        assert_eq!(codes[0], 1006, "{c}");
        assert_eq!(c["unacked"], 0, "{c}");
        assert_eq!(connections(c).last().unwrap()["pid"], new, "{c}");
    }
    for c in &sse {
        assert_eq!(connections(c).last().unwrap()["pid"], new, "{c}");
    }
}

#[test]
fn the_drain_signal_fires_when_the_lame_duck_begins_and_metrics_count_the_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = live(&addr);
    cmd.env("HANDOFF__SERVER__SHUTDOWN_DELAY", "4s");
    let mut proc = Proc::spawn(cmd);
    answering_pid(&addr, Duration::from_secs(20));
    let clients = Clients::start(dir.path(), &addr, 5, 2);
    std::thread::sleep(Duration::from_secs(2));
    proc.signal(libc::SIGTERM);
    // In the lame duck the process still serves: /readyz says 503 and the
    // sessions it had are closed, counted in /metrics; new ones are
    // refused with 503 and Retry-After.
    let deadline = Instant::now() + Duration::from_secs(3);
    let metrics = loop {
        let m = get(&addr, "/metrics").unwrap().body;
        let closed = |kind: &str| {
            m.lines().any(|l| {
                l == format!("handoff_long_lived_ended_at_drain_total{{kind=\"{kind}\",ended=\"closed\"}} {}",
                    if kind == "upgrade" { 5 } else { 2 })
            })
        };
        if closed("upgrade") && closed("stream") {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "sessions not counted closed in the lame duck:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(get(&addr, "/readyz").unwrap().status, 503);
    let refused = get(&addr, "/events").unwrap();
    assert_eq!(
        (refused.status, refused.header("retry-after")),
        (503, Some("1")),
        "{refused:?}"
    );
    assert!(!metrics.contains("ended=\"cut\""), "{metrics}");
    let (status, log) = proc.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{log}");
    drop(clients);
}

/// The same under systemd in the container, reloaded with `systemctl
/// reload`: the successor becomes the unit's main process, so an old one
/// leaves as soon as its sessions have (no standby, see `lifecycle`).
#[test]
fn websocket_and_sse_clients_follow_ten_reloads_of_the_systemd_container() {
    if skipped("websocket_and_sse_clients_follow_ten_reloads_of_the_systemd_container") {
        return;
    }
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let c = Container::start_image(podman::live_image(), "live", free_port());
    let addr = c.addr();
    answering_pid(&addr, Duration::from_secs(20));
    let clients = Clients::start(dir.path(), &addr, WS_CLIENTS, SSE_CLIENTS);
    std::thread::sleep(Duration::from_secs(2));
    let mut reloads = Vec::new();
    for _ in 0..RELOADS {
        let old = c.main_pid();
        let at = now();
        let asked = Instant::now();
        c.sh("systemctl reload live.service");
        c.sh(&format!(
            "timeout 60 sh -c 'while [ -d /proc/{old} ]; do sleep 0.02; done'"
        ));
        let old_lived = asked.elapsed();
        let generation: u64 = get(&addr, "/")
            .unwrap()
            .body
            .split_whitespace()
            .nth(4)
            .unwrap()
            .parse()
            .unwrap();
        reloads.push(Reload {
            at,
            generation,
            old_lived,
        });
        std::thread::sleep(Duration::from_millis(500));
    }
    // Every client back on the last generation before they stop.
    std::thread::sleep(SETTLE);
    let (ws, sse) = clients.finish();
    assert_clients_moved_and_lost_nothing(
        "systemd container",
        &ws,
        &sse,
        &reloads,
        Duration::from_secs(30),
    );
    // The drains' own account, from the journal's fields (tracing-journald
    // names them F_CLOSED, F_CUT).
    let out = c.exec(&[
        "journalctl",
        "--no-pager",
        "-o",
        "json",
        "-u",
        "live.service",
    ]);
    let drains: Vec<(u64, u64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["MESSAGE"]
                .as_str()
                .is_some_and(|m| m.contains("upgraded connections and streams ended"))
        })
        .map(|e| {
            let field = |k: &str| {
                e[k].as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(u64::MAX)
            };
            (field("F_CLOSED"), field("F_CUT"))
        })
        .collect();
    assert_eq!(drains.len(), RELOADS, "{drains:?}\n{}", c.journal());
    assert!(
        drains.iter().all(|(closed, cut)| *closed > 0 && *cut == 0),
        "{drains:?}"
    );
}
