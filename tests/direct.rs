//! podman without systemd inside: the host holds the socket, podman passes it
//! in (`LISTEN_FDS`, `LISTEN_PID=1`), and the image's handoff is the
//! container's command, so PID 1 (see src/lifecycle/supervisor.rs). The test process
//! holds the socket here, as the host's systemd (a `.socket` unit beside a
//! quadlet `.container`) or `systemd-socket-activate` would: these are the
//! `podman run` lines quadlet generates from containers/quadlet/handoff-sa.*.

mod podman;
mod support;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::process::Command;
use std::time::{Duration, Instant};

use loadgen::{Group, Load, Plan, Report};
use podman::{DIRECT_HARDENING, image, podman, serial, skipped};
use support::*;

/// A container running `handoff` as its command on a socket the test holds.
struct Direct {
    name: String,
    addr: String,
    listener: TcpListener,
    run: Option<Proc>,
    /// What handoff's supervisor notifies. `Conmon`: through podman's
    /// --sdnotify=container, as quadlet's `Notify=true` unit receives it
    /// (conmon 2.1 passes on only READY=1); `Direct`: the socket mounted in
    /// the container, so every state the supervisor forwards arrives.
    notify: std::os::unix::net::UnixDatagram,
    notify_path: String,
    via: Via,
    /// The configuration, mounted read-only at /etc/handoff: a read-only
    /// container changes its configuration this way.
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Conmon,
    Direct,
}

impl Direct {
    fn start(name: &str) -> Self {
        Self::start_via(name, Via::Conmon)
    }

    fn start_via(name: &str, via: Via) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let dir = tempfile::tempdir().unwrap();
        let notify_path = dir.path().join("notify").display().to_string();
        let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
        // Mounted into the container for Via::Direct, where handoff runs as
        // an unprivileged user: as systemd's own notify socket, anyone may
        // write to it.
        std::fs::set_permissions(
            &notify_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .unwrap();
        let config = dir.path().join("etc");
        std::fs::create_dir(&config).unwrap();
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/containers/handoff.toml"),
            config.join("handoff.toml"),
        )
        .unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut d = Self {
            name: format!("{name}-{}", std::process::id()),
            addr,
            listener,
            run: None,
            notify,
            notify_path,
            via,
            config,
            _dir: dir,
        };
        d.run();
        d
    }

    /// `podman run` with the held socket at fd 3, as systemd passes it to
    /// the service quadlet makes (LISTEN_PID is podman's own pid), hardened
    /// as handoff-sa.container asks.
    fn run(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
        let fd: OwnedFd = self.listener.try_clone().unwrap().into();
        let mut cmd = Command::new("podman");
        cmd.args(["run", "--rm", "--name", &self.name, "--network=none"])
            .args(DIRECT_HARDENING)
            .arg("-v")
            .arg(format!("{}:/etc/handoff:ro", self.config.display()))
            .env(
                "CONTAINERS_CONF",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/podman/containers.conf"),
            );
        match self.via {
            Via::Conmon => {
                cmd.arg("--sdnotify=container")
                    .env("NOTIFY_SOCKET", &self.notify_path);
            }
            Via::Direct => {
                cmd.args([
                    "--sdnotify=ignore",
                    "-e",
                    "NOTIFY_SOCKET=/run/host-notify.sock",
                ])
                .arg("-v")
                .arg(format!("{}:/run/host-notify.sock", self.notify_path))
                .env_remove("NOTIFY_SOCKET");
            }
        }
        cmd.args([image(), "handoff"]);
        let cmd = with_listen_fds(cmd, vec![fd], Some("http"), None);
        self.run = Some(Proc::spawn(cmd));
        wait_until_serving(&self.addr, Duration::from_secs(60));
    }

    fn running(&self) -> bool {
        let out = podman(&["inspect", "-f", "{{.State.Running}}", &self.name]);
        String::from_utf8_lossy(&out.stdout).trim() == "true"
    }

    fn reload(&self) {
        let out = podman(&["kill", "--signal", "HUP", &self.name]);
        assert!(out.status.success(), "{out:?}");
    }

    /// `podman stop`: the image's stop signal, SIGRTMIN+3. The container
    /// must end by itself with status 0, having drained: podman's SIGKILL at
    /// the end of its timeout would show as status 137.
    fn stop(&mut self) {
        let out = podman(&["stop", "-t", "30", &self.name]);
        assert!(out.status.success(), "{out:?}");
        if let Some(mut run) = self.run.take() {
            let (status, log) = run.wait(Duration::from_secs(30));
            assert!(status.success(), "podman run ended with {status}:\n{log}");
        }
    }

    /// Notifications received until one has `line` (20 s at most).
    fn notified(&self, line: &str) -> String {
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.notify.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.push_str(&message);
            if message.lines().any(|l| l == line) {
                return seen;
            }
        }
        panic!("no {line} from podman; received: {seen:?}");
    }

    fn generation(&self) -> u64 {
        let version: serde_json::Value =
            serde_json::from_str(&get(&self.addr, "/version").unwrap().body).unwrap();
        version["generation"].as_u64().unwrap()
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
    }
}

/// The load ends 2 s after the last disruption; this is only its ceiling.
const CEILING: Duration = Duration::from_secs(120);

fn load(addr: &str, pooled: bool) -> Plan {
    let mut groups = vec![
        Group::new("fast-ka", "/", 8, true),
        Group::new("fast-close", "/", 8, false),
        Group::new("slow-ka", "/delay/1000", 3, true),
        Group::new("slow-close", "/delay/1000", 3, false),
    ];
    if pooled {
        groups.push(Group::pooled(
            "pooled",
            "/echo",
            12,
            Duration::from_millis(300),
        ));
    }
    Plan {
        addr: addr.parse::<SocketAddr>().unwrap(),
        groups,
        duration: CEILING,
        request_timeout: Duration::from_secs(30),
    }
}

/// Runs `plan` and calls `disrupt` `times` times, 1 s apart, from 2 s in;
/// the load ends 2 s after the last one.
fn under_load(
    d: &mut Direct,
    plan: Plan,
    times: usize,
    mut disrupt: impl FnMut(&mut Direct),
) -> Report {
    let mut load = Load::start(&plan);
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..times {
        load.mark(format!("disruption {}", i + 1));
        disrupt(d);
        std::thread::sleep(Duration::from_millis(1000));
    }
    let report = load.finish(Duration::from_secs(2));
    println!("{report}");
    report
}

/// Every generation answered the load: the one before the first reload and
/// the one after each (its successor served, not just started, before the
/// load ended). Reloads only: a restarted container's first process has
/// the pid of the one before, in its new pid namespace.
fn assert_every_generation_answered(report: &Report, reloads: usize) {
    let pids = loadgen::pids_in_order(&report.samples);
    assert!(
        pids.len() > reloads,
        "{} processes answered across {reloads} reloads: {pids:?}",
        pids.len()
    );
}

#[test]
fn handoff_as_the_containers_command_serves_reloads_and_drains() {
    if skipped("handoff_as_the_containers_command_serves_reloads_and_drains") {
        return;
    }
    let _one = serial();
    let mut d = Direct::start("handoff-direct");
    // Activation: the first request, through the socket the host holds.
    let first = get(&d.addr, "/").unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(d.generation(), 1);
    // The host unit learns that the service is up, through conmon, and up
    // again once a reload's next generation serves.
    d.notified("READY=1");
    d.reload();
    d.notified("READY=1");
    assert_eq!(d.generation(), 2);

    // Ten reloads under the mixed load plus pooled clients: the container
    // lives on, every generation serves, nothing fails.
    let plan = load(&d.addr, true);
    let report = under_load(&mut d, plan, 10, |d| d.reload());
    report.assert_clean(1000);
    assert_every_generation_answered(&report, 10);
    assert!(d.running(), "the container must outlive its reloads");
    assert_eq!(d.generation(), 12);

    // A broken configuration: the reload fails, the old generation serves on.
    std::fs::write(d.config.join("handoff.toml"), "[server]\nworkers = \"x\"\n").unwrap();
    d.reload();
    // The SIGHUP was acted on: a successor was started and refused the
    // configuration, and the old process says so (an ignored SIGHUP would
    // pass the checks below).
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = loop {
        let log = d.run.as_ref().unwrap().stderr_now();
        if log.contains("reload failed") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        log.contains("reload failed") && log.contains("workers"),
        "no failed reload naming server.workers in the log:\n{log}"
    );
    assert!(d.running());
    assert_eq!(d.generation(), 12, "the failed successor did not take over");

    // podman stop: the request in flight finishes, and the container ends
    // by itself (status 0), not killed at podman's timeout.
    let addr = d.addr.clone();
    let in_flight = std::thread::spawn(move || get(&addr, "/delay/1000"));
    std::thread::sleep(Duration::from_millis(200));
    d.stop();
    let answer = in_flight.join().unwrap().expect("answered");
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[test]
fn a_container_restart_with_the_host_holding_the_socket_fails_no_request() {
    if skipped("a_container_restart_with_the_host_holding_the_socket_fails_no_request") {
        return;
    }
    let _one = serial();
    let mut d = Direct::start("handoff-direct-restart");
    let plan = load(&d.addr, false);
    under_load(&mut d, plan, 3, |d| {
        d.stop();
        d.run();
    })
    .assert_clean(1000);
}

#[test]
fn the_supervisor_tells_the_host_unit_ready_reloading_and_stopping() {
    if skipped("the_supervisor_tells_the_host_unit_ready_reloading_and_stopping") {
        return;
    }
    let _one = serial();
    let mut d = Direct::start_via("handoff-direct-notify", Via::Direct);
    let started = d.notified("READY=1");
    assert!(started.contains("STATUS=serving"), "{started:?}");
    d.reload();
    let reloaded = d.notified("READY=1");
    assert!(reloaded.contains("RELOADING=1"), "{reloaded:?}");
    assert!(
        !reloaded.contains("MAINPID="),
        "which child serves is PID 1's business: {reloaded:?}"
    );
    d.stop();
    d.notified("STOPPING=1");
}

#[test]
fn systemd_socket_activate_starts_the_container_on_the_first_request() {
    if skipped("systemd_socket_activate_starts_the_container_on_the_first_request") {
        return;
    }
    let _one = serial();
    let name = format!("handoff-activate-{}", std::process::id());
    let addr = format!("127.0.0.1:{}", free_port());
    // The README's line: the socket bound by systemd's tool, podman started
    // by the first connection.
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", &addr, "--fdname=http", "-E", "CONTAINERS_CONF"])
        .args(["podman", "run", "--rm", "--name", &name, "--network=none"])
        .args(DIRECT_HARDENING)
        .args([image(), "handoff"])
        .env(
            "CONTAINERS_CONF",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/podman/containers.conf"),
        )
        .env_remove("LISTEN_FDS")
        .env_remove("NOTIFY_SOCKET")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut activator = Proc::spawn(cmd);
    // Nothing runs before the first connection.
    std::thread::sleep(Duration::from_secs(1));
    let out = podman(&["inspect", &name]);
    assert!(
        !out.status.success(),
        "the container ran before any request"
    );
    // The first connection starts podman; its request is answered, without a
    // retry. (Refused only while the tool has not bound the socket yet.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match connect_tcp(&addr) {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("systemd-socket-activate is not listening: {e}"),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let first = exchange(&mut conn, "GET", "/", "Connection: close\r\n", b"")
        .expect("answered on the first try");
    assert_eq!(first.status, 200, "{first:?}");
    let out = podman(&["stop", &name]);
    assert!(out.status.success(), "{out:?}");
    let (status, log) = activator.wait(Duration::from_secs(30));
    assert!(status.success(), "{log}");
}

/// The direct mode gets what the systemd unit's sandbox gives, as far as
/// podman allows, checked inside the running container on handoff's own
/// process (PID 1): an unprivileged user, no capability in any set, no new
/// privileges, a read-only root file system even for root.
#[test]
fn the_direct_mode_runs_unprivileged_without_capabilities_on_a_read_only_root() {
    if skipped("the_direct_mode_runs_unprivileged_without_capabilities_on_a_read_only_root") {
        return;
    }
    let _one = serial();
    let d = Direct::start("handoff-direct-hardened");
    let exec = |args: &[&str]| {
        let mut all = vec!["exec"];
        all.extend_from_slice(args);
        podman(&all)
    };
    let status = exec(&[&d.name, "cat", "/proc/1/status"]);
    assert!(status.status.success(), "{status:?}");
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert!(
        field("Name").contains(&"handoff"),
        "PID 1 is handoff: {status}"
    );
    for id in field("Uid").into_iter().chain(field("Gid")) {
        assert_ne!(id, "0", "handoff runs as root: {status}");
    }
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(set), ["0000000000000000"], "{set}: {status}");
    }
    assert_eq!(field("NoNewPrivs"), ["1"], "{status}");
    let user = exec(&[&d.name, "id", "-un"]);
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "handoff");

    // Read-only root: nothing can be added to the image, not even by root.
    let mounts = exec(&[&d.name, "cat", "/proc/1/mountinfo"]);
    let mounts = String::from_utf8_lossy(&mounts.stdout).into_owned();
    let root = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no root mount in {mounts}"));
    assert!(
        root.split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{root}"
    );
    for user in ["handoff", "root"] {
        let out = exec(&["--user", user, &d.name, "touch", "/usr/local/bin/x"]);
        assert!(!out.status.success(), "{user} changed the image: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Read-only file system"),
            "{out:?}"
        );
    }

    // And thus confined it serves and hands off.
    assert_eq!(get(&d.addr, "/").unwrap().status, 200);
    d.reload();
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.generation() != 2 {
        assert!(Instant::now() < deadline, "no hand-off");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// HTTPS in the direct mode: a second socket held by the host, named
/// `https`, and the certificate as a volume readable by the image's
/// `handoff` group. Pooled Python clients over TLS and Go's h2 clients
/// across 5 reloads (SIGHUP to the container): nothing fails.
#[test]
fn https_from_a_second_host_socket_in_the_direct_mode_survives_reloads() {
    if skipped("https_from_a_second_host_socket_in_the_direct_mode_survives_reloads") {
        return;
    }
    let _one = serial();
    let tls = tempfile::tempdir().unwrap();
    let cert = podman::https_certificate(tls.path());
    let name = format!("handoff-sa-https-{}", std::process::id());
    let (http, https) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args([
        "-l",
        &http,
        "-l",
        &https,
        "--fdname=http:https",
        "-E",
        "CONTAINERS_CONF",
    ])
    .args(["podman", "run", "--rm", "--name", &name, "--network=none"])
    .args(DIRECT_HARDENING)
    .args([
        "-e",
        "HANDOFF__TLS__CERTIFICATE=/etc/handoff/tls/fullchain.pem",
    ])
    .args(["-e", "HANDOFF__TLS__KEY=/etc/handoff/tls/key.pem"])
    .arg("-v")
    .arg(format!("{}:/etc/handoff/tls:ro", tls.path().display()))
    .args([podman::https_image(), "handoff"])
    .env(
        "CONTAINERS_CONF",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/podman/containers.conf"),
    )
    .env_remove("LISTEN_FDS")
    .env_remove("NOTIFY_SOCKET")
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut activator = Proc::spawn(cmd);
    wait_until_serving(&http, Duration::from_secs(60));
    let port = port_of(&https);
    let base = format!("https://localhost:{port}");
    let python = support::clients::PooledClients::start(&base, 8, &cert);
    let go =
        support::clients::GoClients::start(&["tls", cert.to_str().unwrap()], &base, 8, "pooled");
    std::thread::sleep(Duration::from_secs(1));
    for _ in 0..5 {
        let out = podman(&["kill", "--signal", "HUP", &name]);
        assert!(out.status.success(), "{out:?}");
        std::thread::sleep(Duration::from_millis(1000));
    }
    let (python, go) = (python.finish(), go.finish());
    let generation: serde_json::Value =
        serde_json::from_str(&get(&http, "/version").unwrap().body).unwrap();
    report(
        "direct-https",
        &format!(
            "direct mode, HTTPS on a second host socket, 5 reloads (SIGHUP): 8 pooled Python \
             TLS clients {} requests, {} failed; 8 pooled Go h2 clients {} requests, {} failed, \
             {} retried after GOAWAY, protocols {}\n",
            python["ok"], python["failed"], go["ok"], go["failed"], go["retried"], go["proto"]
        ),
    );
    // HTTP/2 throughout: a silent fallback to HTTP/1.1 would pass otherwise.
    assert_eq!(
        go["proto"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["HTTP/2.0"],
        "{go}"
    );
    assert_eq!(generation["generation"], 6, "{generation}");
    assert_eq!(python["failed"], 0, "{python}");
    assert_eq!(go["failed"], 0, "{go}");
    assert!(python["ok"].as_u64().unwrap() > 100 && go["ok"].as_u64().unwrap() > 100);
    // How the TLS clients moved: each old process said Connection: close on
    // their next answer (at least once a reload), and urllib3 replaced only
    // connections so announced; one more would be one dropped unannounced.
    let count = |key: &str| python[key].as_u64().unwrap();
    assert!(count("closes") >= 5, "{python}");
    assert_eq!(
        count("dropped"),
        count("closes") - count("pending_closes"),
        "{python}"
    );
    let out = podman(&["stop", &name]);
    assert!(out.status.success(), "{out:?}");
    let (status, log) = activator.wait(Duration::from_secs(30));
    assert!(status.success(), "{log}");
}
