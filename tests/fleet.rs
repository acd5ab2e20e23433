//! A fleet behind HAProxy: three hosts (systemd containers of the image) and
//! Debian's HAProxy with containers/fleet/haproxy.cfg (only its addresses
//! rewritten), under the mixed load plus pooled clients through the
//! balancer. Twin of nix/tests/fleet.nix. Each scenario: 0 failed requests,
//! and its p99 and max beside the steady state's.

mod podman;
mod support;

use std::io::BufRead;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use loadgen::{Group, Load, Plan, Report, Stats};
use podman::{Container, podman, serial, skipped};
use support::*;

/// The lame duck the hosts use: above the balancer's 2 s to take a host out.
const SHUTDOWN_DELAY: &str = "4s";

struct Fleet {
    hosts: Vec<Container>,
    front: String,
    _haproxy: Proc,
    /// HAProxy's log lines (server state changes), with when they came.
    log: std::sync::Arc<std::sync::Mutex<Vec<(SystemTime, String)>>>,
    _cfg: tempfile::NamedTempFile,
}

impl Fleet {
    fn start() -> Self {
        let hosts: Vec<Container> = (0..3).map(|_| Container::start(free_port())).collect();
        for c in &hosts {
            // The lame duck, and room for it in the stop timeout.
            c.sh(&format!(
                "mkdir -p /etc/systemd/system/handoff.service.d && printf '[Service]\\n\
                 Environment=HANDOFF__SERVER__SHUTDOWN_DELAY={SHUTDOWN_DELAY}\\n\
                 TimeoutStopSec=60\\n' > /etc/systemd/system/handoff.service.d/lame-duck.conf \
                 && systemctl daemon-reload"
            ));
            wait_until_serving(&c.addr(), Duration::from_secs(30));
        }
        let front = format!("127.0.0.1:{}", free_port());
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/containers/fleet/haproxy.cfg"
        ))
        .unwrap();
        let mut cfg_text = String::new();
        for line in shipped.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("bind ") {
                cfg_text.push_str(&format!("    bind {front}\n"));
            } else if trimmed.starts_with("server web") {
                continue;
            } else {
                cfg_text.push_str(line);
                cfg_text.push('\n');
            }
        }
        for (i, c) in hosts.iter().enumerate() {
            cfg_text.push_str(&format!("    server web{} {}\n", i + 1, c.addr()));
        }
        let cfg = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(cfg.path(), cfg_text).unwrap();
        let mut cmd = std::process::Command::new("haproxy");
        cmd.arg("-db")
            .arg("-f")
            .arg(cfg.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut haproxy = Proc::spawn(cmd);
        // The shipped file logs warnings (a server going DOWN) to stdout.
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stdout = haproxy.child.stdout.take().expect("stdout piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push((SystemTime::now(), line));
            }
        });
        let fleet = Self {
            hosts,
            front,
            _haproxy: haproxy,
            log,
            _cfg: cfg,
        };
        fleet.wait_all_in_rotation();
        fleet
    }

    /// Until every host is back in rotation: its `/readyz` answers 200,
    /// then HAProxy's checks see it twice (rise 2, inter 1s). (Pids cannot
    /// tell hosts apart: each container has its own pid namespace.)
    fn wait_all_in_rotation(&self) {
        for c in &self.hosts {
            let deadline = Instant::now() + Duration::from_secs(30);
            while get(&c.addr(), "/readyz").map(|r| r.status).ok() != Some(200) {
                assert!(Instant::now() < deadline, "{} not ready", c.name);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        std::thread::sleep(Duration::from_millis(3000));
        assert_eq!(get(&self.front, "/").unwrap().status, 200);
    }

    fn load(&self) -> Plan {
        Plan {
            addr: self.front.parse::<SocketAddr>().unwrap(),
            groups: vec![
                Group::new("fast-ka", "/", 8, true),
                Group::new("fast-close", "/", 8, false),
                Group::new("slow-ka", "/delay/1000", 3, true),
                Group::new("slow-close", "/delay/1000", 3, false),
                Group::pooled("pooled", "/echo", 12, Duration::from_millis(300)),
            ],
            // A ceiling: the load ends 2 s after the scenario.
            duration: Duration::from_secs(180),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Runs `scenario` under load, from 1 s in; the scenario marks its
    /// disruptions, and the load runs 2 s past its end.
    fn under_load(&self, scenario: impl FnOnce(&Fleet, &mut Load)) -> Report {
        let mut load = Load::start(&self.load());
        std::thread::sleep(Duration::from_secs(1));
        scenario(self, &mut load);
        load.finish(Duration::from_secs(2))
    }

    /// When HAProxy last logged that host `i` (0-based) went DOWN.
    fn last_down(&self, i: usize) -> Option<SystemTime> {
        let needle = format!("handoff/web{} is DOWN", i + 1);
        self.log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(_, line)| line.contains(&needle))
            .map(|(at, _)| *at)
    }
}

/// When the host's handoff last began a drain for a stop signal, from its
/// journal.
fn last_stop_drain(c: &Container) -> SystemTime {
    let out = c.sh("journalctl -u handoff.service -o json --no-pager");
    let at = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["MESSAGE"]
                .as_str()
                .is_some_and(|m| m.starts_with("draining"))
                && e["F_REASON"]
                    .as_str()
                    .is_some_and(|r| r.contains("SIGTERM"))
        })
        .filter_map(|e| e["__REALTIME_TIMESTAMP"].as_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or_else(|| panic!("{}: no drain for SIGTERM in the journal", c.name));
    SystemTime::UNIX_EPOCH + Duration::from_micros(at)
}

fn reload(c: &Container) {
    let out = podman(&["exec", &c.name, "systemctl", "reload", "handoff.service"]);
    assert!(out.status.success(), "{out:?}");
}

/// Points the unit at another build (a copy of the binary at another path),
/// as a deploy does; the next reload starts it.
fn stage_build(c: &Container, dir: &str, script: Option<&str>) {
    let install = match script {
        None => format!("mkdir -p {dir} && cp /usr/local/bin/handoff {dir}/handoff"),
        Some(body) => format!(
            "mkdir -p {dir} && printf '#!/bin/sh\\n{body}\\n' > {dir}/handoff && chmod +x {dir}/handoff"
        ),
    };
    c.sh(&format!(
        "{install} && mkdir -p /run/systemd/system/handoff.service.d && printf '[Service]\\n\
         ExecStart=\\nExecStart={dir}/handoff --config /etc/handoff/handoff.toml\\n\
         ExecReload=\\nExecReload={dir}/handoff --config /etc/handoff/handoff.toml reload --pid $MAINPID\\n' \
         > /run/systemd/system/handoff.service.d/10-build.conf && systemctl daemon-reload"
    ));
}

fn main_exe(c: &Container) -> String {
    c.sh("readlink /proc/$(systemctl show -p MainPID --value handoff.service)/exe")
}

fn report(name: &str, steady: &Stats, run: &Report) {
    let all = run.all();
    let fast = Stats::of("fast", run.samples.iter().filter(|s| s.group < 2));
    println!(
        "{name:<36} requests {:>7}  failed {:>3}  retried {:>3}  p99 {:>7.2} ms  max {:>8.2} ms  (fast: p99 {:.2} max {:.2}; steady fast: p99 {:.2} max {:.2})",
        all.requests,
        all.failed,
        all.retried,
        all.p99_ms,
        all.max_ms,
        fast.p99_ms,
        fast.max_ms,
        steady.p99_ms,
        steady.max_ms
    );
}

#[test]
fn a_fleet_deploys_restarts_and_loses_hosts_without_a_failed_request() {
    if skipped("a_fleet_deploys_restarts_and_loses_hosts_without_a_failed_request") {
        return;
    }
    let _one = serial();
    let fleet = Fleet::start();
    let steady_load = Load::start(&fleet.load());
    std::thread::sleep(Duration::from_secs(6));
    let steady = steady_load.finish(Duration::ZERO);
    let steady = Stats::of("fast", steady.samples.iter().filter(|s| s.group < 2));

    // 1. Rolling reload of every host to another build.
    let run = fleet.under_load(|f, load| {
        for c in &f.hosts {
            stage_build(c, "/opt/v2", None);
            load.mark(format!("reload {}", c.name));
            reload(c);
            std::thread::sleep(Duration::from_secs(2));
        }
    });
    report("1. rolling reload to another build", &steady, &run);
    run.assert_clean(1000);
    for c in &fleet.hosts {
        assert_eq!(
            main_exe(c),
            "/opt/v2/handoff",
            "{}: the new build serves",
            c.name
        );
    }

    // 2. Every host reloaded at the same moment.
    let run = fleet.under_load(|f, load| {
        load.mark("reload all");
        std::thread::scope(|s| {
            for c in &f.hosts {
                s.spawn(move || reload(c));
            }
        });
    });
    report("2. all hosts reloaded at once", &steady, &run);
    run.assert_clean(1000);

    // 3. Rolling restart: each host is taken out by its lame duck before it
    // drains, so no request waits behind a drain. As an order of events:
    // HAProxy logged the host DOWN before the host began its drain.
    let mut restarted = Vec::new();
    let run = fleet.under_load(|f, load| {
        for (i, c) in f.hosts.iter().enumerate() {
            let at = SystemTime::now();
            load.mark(format!("restart {}", c.name));
            c.sh("systemctl restart handoff.service");
            restarted.push((i, at, last_stop_drain(c)));
            f.wait_all_in_rotation();
        }
    });
    report("3. rolling restart (lame duck)", &steady, &run);
    run.assert_clean(1000);
    for (i, restart, drain) in restarted {
        let down = fleet
            .last_down(i)
            .filter(|down| *down >= restart)
            .unwrap_or_else(|| panic!("HAProxy never took web{} out after its restart", i + 1));
        assert!(
            down < drain,
            "web{} began its drain {:?} before HAProxy took it out",
            i + 1,
            down.duration_since(drain).unwrap_or_default()
        );
    }

    // 4. Each host stopped entirely, socket and service, and started again.
    let run = fleet.under_load(|f, load| {
        for c in &f.hosts {
            load.mark(format!("stop {}", c.name));
            c.sh("systemctl stop handoff.socket handoff.service");
            std::thread::sleep(Duration::from_secs(2));
            c.sh("systemctl start handoff.socket");
            f.wait_all_in_rotation();
        }
    });
    report("4. each host stopped and started", &steady, &run);
    run.assert_clean(1000);

    // 5. A broken build on one host: its reload fails, its old process serves.
    let broken = &fleet.hosts[1];
    let serving = broken.main_pid();
    let run = fleet.under_load(|_, load| {
        stage_build(broken, "/opt/broken", Some("exit 1"));
        load.mark("reload to a broken build");
        let out = podman(&[
            "exec",
            &broken.name,
            "systemctl",
            "reload",
            "handoff.service",
        ]);
        assert!(!out.status.success(), "the broken build's reload must fail");
    });
    report("5. a broken build on one host", &steady, &run);
    run.assert_clean(1000);
    assert_eq!(broken.main_pid(), serving, "the old process serves on");
}
