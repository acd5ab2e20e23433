//! The promise on real parts, as podman users deploy it: the Debian image
//! (containers/), systemd as PID 1 owning handoff.socket. What NixOS users
//! get is proved by the VM test scripts of nix/tests/, which run here too
//! (tests/nixos.rs) on the units the NixOS module renders; tests/module.rs
//! checks that those units say what containers/units/ says. The tests here
//! are what only the image and podman have, and the failures and pooled
//! clients the scripts do not cover.
//!
//! Needs root, podman, runc and debootstrap (see README); the first run builds
//! a Debian base image from the Debian mirror, later runs reuse it.

mod podman;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use loadgen::{Group, Load, Plan, Report};
use podman::{Container, serial, skipped};
use support::{answering_pid, connect_tcp, free_port, get, report, wait_for_new_pid};

/// A fresh container for one test, with the lock that keeps containers one at
/// a time; the container is removed before the lock is released.
struct Isolated {
    container: Container,
    _one: std::sync::MutexGuard<'static, ()>,
}

/// None (and a note) when the container suite is skipped.
fn isolated(test: &str) -> Option<Isolated> {
    if skipped(test) {
        return None;
    }
    let one = serial();
    Some(Isolated {
        container: Container::start(free_port()),
        _one: one,
    })
}

/// The mixed load: fast and 1 s requests,
/// with and without keep-alive, 32 clients.
fn mixed_load(addr: &str, duration: Duration) -> Plan {
    Plan {
        addr: addr.parse::<SocketAddr>().unwrap(),
        groups: vec![
            Group::new("fast-ka", "/", 12, true),
            Group::new("fast-close", "/", 12, false),
            Group::new("slow-ka", "/delay/1000", 4, true),
            Group::new("slow-close", "/delay/1000", 4, false),
        ],
        duration,
        request_timeout: Duration::from_secs(30),
    }
}

/// Clients of a connection pool (load balancer, HTTP client pool): one kept
/// connection each, POST with a body, 0-300 ms pauses, no retry.
fn pooled_load(addr: &str, duration: Duration) -> Plan {
    Plan::pooled(
        addr.parse().unwrap(),
        32,
        Duration::from_millis(300),
        duration,
    )
}

/// How long a restart or reload may take before another pid answers.
const NEW_PID_LIMIT: Duration = Duration::from_secs(30);
/// The longest any load here runs: a ceiling for a test that hangs, not
/// the length of the load (which ends [`SETTLE`] after the last disruption).
const CEILING: Duration = Duration::from_secs(180);
/// Load that must follow the last disruption.
const SETTLE: Duration = Duration::from_secs(2);

/// What happened under load while `disrupt` ran `times` times.
struct Run {
    report: Report,
    /// The pid answering `/` before the first and after each disruption.
    pids: Vec<u32>,
}

/// Runs `load` and, starting 2 s in, calls `disrupt` `times` times, `gap`
/// apart, recording the answering pid after each; the load ends [`SETTLE`]
/// after the last one.
fn under_load(
    c: &Container,
    load: fn(&str, Duration) -> Plan,
    times: usize,
    gap: Duration,
    mut disrupt: impl FnMut(&Container),
) -> Run {
    let plan = load(&c.addr(), CEILING);
    let mut load = Load::start(&plan);
    std::thread::sleep(Duration::from_secs(2));
    let mut pids = vec![answering_pid(&c.addr(), NEW_PID_LIMIT)];
    for i in 0..times {
        load.mark(format!("disruption {}", i + 1));
        disrupt(c);
        let before = *pids.last().unwrap();
        // The same pid is recorded when none other answers in time:
        // Run::assert_new_pid_after_each judges it with the whole list.
        let after = wait_for_new_pid(&c.addr(), before, NEW_PID_LIMIT).unwrap_or(before);
        pids.push(after);
        std::thread::sleep(gap);
    }
    Run {
        report: load.finish(SETTLE),
        pids,
    }
}

impl Run {
    /// Each disruption produced a process of its own: a reload or restart
    /// that did nothing (the old process still answering) fails here, even
    /// if the load lost nothing.
    fn assert_new_pid_after_each(&self, times: usize) {
        assert_eq!(self.pids.len(), times + 1, "pids: {:?}", self.pids);
        for (i, pair) in self.pids.windows(2).enumerate() {
            assert_ne!(
                pair[0],
                pair[1],
                "disruption {} left pid {} answering (pids: {:?})",
                i + 1,
                pair[0],
                self.pids
            );
        }
    }
}

fn print_run(name: &str, title: &str, run: &Run) {
    report(
        name,
        &format!(
            "== {title}\n{}\n   answering pids: {:?}\n",
            run.report, run.pids
        ),
    );
}

/// `podman stop` stops systemd, which stops handoff, which drains.
#[test]
fn podman_stop_lets_the_request_in_flight_finish() {
    let Some(t) = isolated("podman_stop_lets_the_request_in_flight_finish") else {
        return;
    };
    let c = &t.container;
    assert_eq!(get(&c.addr(), "/").unwrap().status, 200);
    let addr = c.addr();
    let slow = std::thread::spawn(move || get(&addr, "/delay/1000"));
    std::thread::sleep(Duration::from_millis(200));
    let stopped = podman::podman(&["stop", "-t", "30", &c.name]);
    assert!(stopped.status.success(), "{stopped:?}");
    let slow = slow
        .join()
        .unwrap()
        .expect("answered before the container stopped");
    assert_eq!(slow.status, 200, "{slow:?}");
}

/// The documented way to run the image: published port instead of host network.
#[test]
fn the_image_serves_on_a_published_port() {
    if skipped("the_image_serves_on_a_published_port") {
        return;
    }
    let _one = serial();
    let image = podman::image();
    let port = free_port();
    let name = format!("handoff-test-publish-{}", std::process::id());
    let publish = format!("127.0.0.1:{port}:8080");
    let started = podman::podman(&[
        "run",
        "-d",
        "--name",
        &name,
        "--systemd=always",
        "-p",
        &publish,
        image,
    ]);
    assert!(started.status.success(), "{started:?}");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        match get(&addr, "/version") {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => {
                let _ = podman::podman(&["rm", "-f", &name]);
                panic!("published port not answering: {e}");
            }
        }
    };
    // The quadlet unit's health check, as podman runs it in the container.
    let quadlet = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/containers/quadlet/handoff.container"
    ))
    .unwrap();
    let health = quadlet
        .lines()
        .find_map(|l| l.strip_prefix("HealthCmd="))
        .unwrap()
        .to_owned();
    let checked = podman::podman(&["exec", &name, "sh", "-c", &health]);
    let _ = podman::podman(&["rm", "-f", "-t", "5", &name]);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.body.contains("\"name\":\"handoff\""), "{answer:?}");
    assert!(
        checked.status.success(),
        "health check failed: {health}: {checked:?}"
    );
}

/// A broken binary or configuration makes `systemctl reload` fail while the
/// old process keeps serving, and no request fails meanwhile.
#[test]
fn failed_reloads_leave_the_old_process_serving() {
    let Some(t) = isolated("failed_reloads_leave_the_old_process_serving") else {
        return;
    };
    let c = &t.container;
    c.sh(
        "printf '#!/bin/sh\\nexit 1\\n' > /usr/local/bin/broken-handoff \
          && chmod 755 /usr/local/bin/broken-handoff",
    );
    let mut outcomes = Vec::new();
    answering_pid(&c.addr(), NEW_PID_LIMIT); // starts the service through its socket
    let main = c.main_pid();

    let mut load = Load::start(&mixed_load(&c.addr(), CEILING));
    std::thread::sleep(Duration::from_secs(2));

    // 1. The unit's reload command starts a binary that exits 1.
    load.mark("reload to a broken binary");
    c.sh("mkdir -p /run/systemd/system/handoff.service.d && printf '[Service]\\nExecReload=\\n\
          ExecReload=/usr/local/bin/handoff --config /etc/handoff/handoff.toml reload --pid $MAINPID \
          --exe /usr/local/bin/broken-handoff\\n' > /run/systemd/system/handoff.service.d/broken.conf \
          && systemctl daemon-reload");
    let broken = c.exec(&["systemctl", "reload", "handoff.service"]);
    outcomes.push(("broken binary", broken.status.success()));
    std::thread::sleep(Duration::from_secs(2));

    // 2. The configuration no longer validates.
    load.mark("reload with an invalid configuration");
    c.sh(
        "rm /run/systemd/system/handoff.service.d/broken.conf && systemctl daemon-reload \
          && cp /etc/handoff/handoff.toml /etc/handoff/handoff.toml.good \
          && printf '[server]\\nworkers = \"two\"\\n' > /etc/handoff/handoff.toml",
    );
    let bad_config = c.exec(&["systemctl", "reload", "handoff.service"]);
    outcomes.push(("invalid configuration", bad_config.status.success()));
    c.sh("mv /etc/handoff/handoff.toml.good /etc/handoff/handoff.toml");

    let run = load.finish(SETTLE);
    report(
        "failed-reloads",
        &format!("== failed reloads under load\n{run}\n"),
    );

    for (what, succeeded) in &outcomes {
        assert!(!succeeded, "systemctl reload with a {what} must fail");
    }
    assert_eq!(
        c.main_pid(),
        main,
        "the old process is still the main process"
    );
    assert_eq!(get(&c.addr(), "/").unwrap().pid(), main);
    assert_eq!(c.is_active("handoff.service"), "active");
    assert_eq!(c.handoff_processes(), 1);
    run.assert_clean(1000);
    let journal = c.journal();
    assert!(journal.contains("exited before it was ready"), "{journal}");

    // And a good reload still works afterwards.
    c.sh("systemctl reload handoff.service");
    assert!(
        wait_for_new_pid(&c.addr(), main, Duration::from_secs(10)).is_some(),
        "no successor after a good reload"
    );
}

/// A successor killed right after it became the unit's main process: systemd
/// restarts the service (`Restart=on-failure`) while the socket stays open,
/// so only requests in flight on the killed process fail, none queued.
#[test]
fn a_successor_killed_after_the_hand_off_is_restarted_by_systemd() {
    let Some(t) = isolated("a_successor_killed_after_the_hand_off_is_restarted_by_systemd") else {
        return;
    };
    let c = &t.container;
    let plan = Plan {
        addr: c.addr().parse().unwrap(),
        groups: vec![
            Group::new("fast-ka", "/", 8, true),
            Group::new("fast-close", "/", 8, false),
        ],
        duration: CEILING,
        request_timeout: Duration::from_secs(30),
    };
    let mut load = Load::start(&plan);
    std::thread::sleep(Duration::from_secs(2));
    let first = c.main_pid();
    load.mark("reload");
    c.sh("systemctl reload handoff.service");
    let successor = c.main_pid();
    assert_ne!(successor, first, "the reload named a successor");
    // The kill happens between these two instants.
    let before_kill = load.mark("SIGKILL to the successor");
    c.sh(&format!("kill -KILL {successor}"));
    let after_kill = load.elapsed();
    let back = wait_for_new_pid(&c.addr(), successor, NEW_PID_LIMIT);
    let run = Run {
        report: load.finish(SETTLE),
        pids: vec![first, successor, back.unwrap_or(successor)],
    };
    print_run(
        "successor-killed",
        "successor SIGKILLed right after a reload (systemd restarts it)",
        &run,
    );
    let back = back.expect("a new process serves after the successor was killed");
    assert!(back != first && back != successor);
    assert_eq!(c.is_active("handoff.service"), "active");
    assert_eq!(
        c.sh("systemctl show -P NRestarts handoff.service").trim(),
        "1"
    );
    // Killing a process loses what it held, and only that: requests in
    // flight on it (failed; each started before the kill was done and ended
    // after it began) and its kept connections (a keep-alive client finds
    // its connection closed unanswered and retries, once per client); none
    // queued on the socket.
    let report = &run.report;
    assert!(report.outside().is_empty(), "{:?}", report.outside());
    let failed: Vec<&loadgen::Sample> = report
        .samples
        .iter()
        .filter(|s| !s.outcome.is_ok())
        .collect();
    assert!(failed.len() <= 16, "failed: {:#?}", report.failures(20));
    for s in failed {
        assert!(
            s.start_us <= after_kill.as_micros() as u64
                && s.end_us() >= before_kill.as_micros() as u64,
            "a request from {:.3} s to {:.3} s failed; the kill was between {before_kill:?} \
             and {after_kill:?}: {:?}",
            s.start_us as f64 / 1e6,
            s.end_us() as f64 / 1e6,
            s.outcome
        );
    }
    let retried = report.group("fast-ka").retried;
    assert!(
        retried <= 8 && report.group("fast-close").retried == 0,
        "retried more than the 8 kept connections the kill closed: {report}"
    );
}

/// Reads a counter from `/metrics`.
fn metric(c: &Container, name: &str) -> u64 {
    let metrics = get(&c.addr(), "/metrics").unwrap().body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

/// Pooled clients across reloads: idle connections go to the successor.
#[test]
fn pooled_clients_lose_nothing_across_ten_reloads() {
    let Some(t) = isolated("pooled_clients_lose_nothing_across_ten_reloads") else {
        return;
    };
    let c = &t.container;
    // 1 s apart: systemd's start limit counts starts, not reloads.
    let run = under_load(c, pooled_load, 10, Duration::from_secs(1), |c| {
        c.sh("systemctl reload handoff.service");
    });
    print_run(
        "reload-pooled",
        "systemctl reload x10, pooled clients",
        &run,
    );
    run.report.assert_clean(1000);
    run.assert_new_pid_after_each(10);
    assert!(metric(c, "handoff_connections_adopted_total") > 0);
}

/// Pooled clients across restarts: idle connections wait in systemd's fd
/// store while no process runs, and the next one serves them.
#[test]
fn pooled_clients_lose_nothing_across_ten_restarts() {
    let Some(t) = isolated("pooled_clients_lose_nothing_across_ten_restarts") else {
        return;
    };
    let c = &t.container;
    // 1 s apart: the service turns systemd's start limit off
    // (StartLimitIntervalSec=0, containers/units), which would otherwise
    // refuse a sixth start within 10 s.
    let run = under_load(c, pooled_load, 10, Duration::from_secs(1), |c| {
        c.sh("systemctl restart handoff.service");
    });
    print_run(
        "restart-pooled",
        "systemctl restart x10, pooled clients (fd store)",
        &run,
    );
    run.report.assert_clean(1000);
    run.assert_new_pid_after_each(10);
    assert!(metric(c, "handoff_connections_adopted_total") > 0);
    assert_eq!(c.handoff_processes(), 1);
}

/// After a reload the unit's main process is the successor, which is not
/// systemd's child. systemd cannot wait for a process it did not fork
/// unless its cgroup tells it when the process is gone, which in a
/// container on cgroup v1 it does not: a stop then SIGKILLs the successor
/// at once, cutting its requests in flight and skipping the lame duck and
/// the fd store. `ExecStop=` (handoff stop --pid $MAINPID) signals the main
/// process and waits for it, whoever its parent.
#[test]
fn a_stop_after_a_reload_lets_the_successor_drain() {
    let Some(t) = isolated("a_stop_after_a_reload_lets_the_successor_drain") else {
        return;
    };
    let c = &t.container;
    let first = answering_pid(&c.addr(), NEW_PID_LIMIT);
    c.sh("systemctl reload handoff.service");
    let successor = wait_for_new_pid(&c.addr(), first, NEW_PID_LIMIT).expect("a successor");
    assert_eq!(c.main_pid(), successor);
    // A request in flight on the successor when the restart comes.
    let addr = c.addr();
    let slow = std::thread::spawn(move || get(&addr, "/delay/1500"));
    std::thread::sleep(Duration::from_millis(300));
    c.sh("systemctl restart handoff.service");
    let slow = slow
        .join()
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(slow.status, 200, "{slow:?}");
    assert_eq!(loadgen::pid_in(&slow.body), Some(successor), "{slow:?}");
    let journal = c.journal();
    assert!(
        journal.contains(&format!("handoff[{successor}]: drained")),
        "the successor did not drain:\n{journal}"
    );
}

#[test]
fn https_in_the_container_loses_nothing_across_ten_reloads_and_ten_restarts() {
    if skipped("https_in_the_container_loses_nothing_across_ten_reloads_and_ten_restarts") {
        return;
    }
    let Some(h3_python) = support::clients::H3Clients::python() else {
        podman::record_skip(
            "https_in_the_container_loses_nothing_across_ten_reloads_and_ten_restarts",
            "no Python with aioquic for its HTTP/3 clients (tests/run installs it; \
             set HANDOFF_H3_PYTHON)",
        );
        return;
    };
    let _one = serial();
    let tls = tempfile::tempdir().unwrap();
    let cert = podman::https_certificate(tls.path());
    let (port, https_port) = (free_port(), free_port());
    let c = Container::start_https(port, https_port, tls.path());
    answering_pid(&c.addr(), Duration::from_secs(30));
    assert_eq!(c.is_active("handoff-https.socket"), "active");
    assert_eq!(c.is_active("handoff-quic.socket"), "active");
    // The hardened unit keeps its score with the HTTPS socket and the
    // certificate's group.
    let security = c.sh("systemd-analyze security --no-pager handoff.service | tail -n 1");
    let score: f64 = security
        .split("Overall exposure level for handoff.service: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {security:?}"));
    // A bound: the score may improve, not worsen past the README's 0.2.
    assert!(score <= 0.2, "{security}");

    let base = format!("https://localhost:{https_port}");
    let python = support::clients::PooledClients::start(&base, 16, &cert);
    let go =
        support::clients::GoClients::start(&["tls", cert.to_str().unwrap()], &base, 8, "pooled");
    let go_busy = support::clients::GoClients::start(
        &["tls", cert.to_str().unwrap()],
        &base,
        2,
        "back-to-back",
    );
    // HTTP/3 on the UDP socket systemd holds for the container's service.
    let h3 = support::clients::H3Clients::start(&h3_python, https_port, 16, &cert);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    for _ in 0..10 {
        c.sh("systemctl reload handoff.service");
        std::thread::sleep(Duration::from_millis(700));
    }
    let reloads = started.elapsed();
    // 1 s apart, as the reloads: no start limit (StartLimitIntervalSec=0).
    for _ in 0..10 {
        c.sh("systemctl restart handoff.service");
        std::thread::sleep(Duration::from_secs(1));
    }
    let python = python.finish();
    let go = go.finish();
    let go_busy = go_busy.finish();
    let h3 = h3.finish();
    report(
        "container-https",
        &format!(
            "systemd container built with --https, 10 reloads ({:.1} s) then 10 restarts ({:.1} s):\n  \
             16 pooled Python clients over TLS (HTTP/1.1, GET and POST, 0-300 ms pauses, no retry): \
             {} requests, {} failed, {} answered with Connection: close, {} replaced by urllib3\n  \
             8 pooled Go net/http clients (h2 over TLS): {} requests, {} failed, {} retried \
             after GOAWAY, protocols {}\n  \
             2 back-to-back Go net/http clients (h2 over TLS): {} requests, {} failed, {} retried\n  \
             16 pooled aioquic clients (HTTP/3): {} requests, {} failed, {} moved after a GOAWAY, \
             {} without one, {} refused unprocessed, {} answered beyond a GOAWAY's id\n  \
             systemd-analyze security: {security}\n",
            reloads.as_secs_f64(),
            (started.elapsed() - reloads).as_secs_f64(),
            python["ok"],
            python["failed"],
            python["closes"],
            python["dropped"],
            go["ok"],
            go["failed"],
            go["retried"],
            go["proto"],
            go_busy["ok"],
            go_busy["failed"],
            go_busy["retried"],
            h3["ok"],
            h3["failed"],
            h3["moved_after_goaway"],
            h3["moved_without_goaway"],
            h3["rejected"],
            h3["answered_beyond_goaway"]
        ),
    );
    // HTTP/3 through reloads (forwarded datagrams) and restarts (GOAWAY,
    // then H3_NO_ERROR once answered; the next process takes the new
    // connections): nothing failed, nothing answered that a GOAWAY said
    // was not processed.
    assert_eq!(h3["failed"], 0, "{h3}");
    assert_eq!(h3["answered_beyond_goaway"], 0, "{h3}");
    assert!(h3["ok"].as_u64().unwrap() > 300, "{h3}");
    // Go's clients spoke HTTP/2 throughout: a fallback to HTTP/1.1 would
    // not test what this claims.
    for (name, t) in [("pooled Go", &go), ("back-to-back Go", &go_busy)] {
        assert_eq!(
            t["proto"].as_object().unwrap().keys().collect::<Vec<_>>(),
            ["HTTP/2.0"],
            "{name}: {t}"
        );
    }
    assert_eq!(python["failed"], 0, "{python}");
    // The TLS clients were moved as designed: each old process answered
    // their next request with Connection: close (at least one per reload;
    // the restarts' lame ducks add theirs, so this is a floor).
    assert!(python["closes"].as_u64().unwrap() >= 10, "{python}");
    // And urllib3 replaced only connections so announced: one more would be
    // a connection dropped without a word (the clients pause at most 300 ms,
    // far below server.keep_alive, so none idles out).
    let count = |key: &str| python[key].as_u64().unwrap();
    assert_eq!(
        count("dropped"),
        count("closes") - count("pending_closes"),
        "{python}"
    );
    assert_eq!(go["failed"], 0, "{go}");
    assert_eq!(go_busy["failed"], 0, "{go_busy}");
    assert!(python["ok"].as_u64().unwrap() > 500, "{python}");
    assert!(go["ok"].as_u64().unwrap() > 300, "{go}");
}

/// A restart into a bad configuration (exit 78), with a client waiting on
/// the socket: the socket stays listening and the client waits (systemd
/// holds its connection while the service waits to be restarted, 1 s
/// apart), and once the configuration is fixed, a restart answers it.
/// Before, systemd started the service five times within a second, then
/// failed the socket (service-start-limit-hit): the client was reset and
/// new ones refused until someone restarted the socket.
#[test]
fn a_restart_into_a_bad_configuration_keeps_the_socket_and_its_waiting_client() {
    if skipped("a_restart_into_a_bad_configuration_keeps_the_socket_and_its_waiting_client") {
        return;
    }
    let _one = serial();
    let c = Container::start(free_port());
    answering_pid(&c.addr(), NEW_PID_LIMIT);
    c.sh(
        "cp /etc/handoff/handoff.toml /etc/handoff/handoff.toml.good \
          && printf '[server]\\nworkers = \"two\"\\n' > /etc/handoff/handoff.toml",
    );
    let restart = c.exec(&["systemctl", "restart", "handoff.service"]);
    assert!(!restart.status.success(), "a restart into exit 78 fails");
    // A client arrives meanwhile and waits for its answer.
    let mut waiting = connect_tcp(&c.addr()).expect("the socket accepts");
    waiting
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    std::io::Write::write_all(&mut waiting, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let show = |unit: &str, what: &str| c.sh(&format!("systemctl show -p {what} --value {unit}"));
    assert_eq!(
        show("handoff.socket", "ActiveState"),
        "active",
        "{}",
        c.journal()
    );
    assert_eq!(
        show("handoff.service", "ActiveState"),
        "activating",
        "{}",
        c.journal()
    );
    // Paced, not a loop: about one start a second.
    let restarts: u32 = show("handoff.service", "NRestarts").parse().unwrap();
    assert!((2..=8).contains(&restarts), "{restarts} restarts in 4 s");
    // A new client is not refused either.
    let mut second = connect_tcp(&c.addr()).expect("a new client is not refused");
    std::io::Write::write_all(&mut second, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // The configuration fixed, a restart serves both.
    c.sh("mv /etc/handoff/handoff.toml.good /etc/handoff/handoff.toml");
    c.sh("systemctl restart handoff.service");
    for (who, stream) in [
        ("the waiting client", &mut waiting),
        ("the second", &mut second),
    ] {
        let mut reader = std::io::BufReader::new(stream);
        let mut status = String::new();
        std::io::BufRead::read_line(&mut reader, &mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{who}: {status:?}");
    }
}
