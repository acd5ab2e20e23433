//! `examples/hello`, a service built on handoff's public API alone, gets
//! every guarantee the reference service has: as a plain process, and as an
//! image made by `containers/build.sh --example hello` under real systemd.

mod podman;
mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use loadgen::{Group, Load, Plan, Report};
use podman::{Container, hello_image, serial, skipped};
use support::*;

fn hello(args: &[&str]) -> Command {
    let mut cmd = service(example_bin("hello"));
    cmd.args(args);
    cmd
}

#[test]
fn hello_serves_its_route_its_setting_and_the_built_in_routes() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = hello(&["--listen", &addr]);
    cmd.env("HANDOFF__APP__GREETING", "bonjour");
    let mut proc = Proc::spawn(cmd);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let answer = loop {
        match get(&addr, "/hello") {
            Ok(r) => break r,
            Err(e) if std::time::Instant::now() > deadline => panic!("not serving: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    };
    assert_eq!((answer.status, answer.body.as_str()), (200, "bonjour"));
    assert_eq!(get(&addr, "/healthz").unwrap().status, 200);
    assert_eq!(get(&addr, "/readyz").unwrap().status, 200);
    assert!(
        get(&addr, "/metrics")
            .unwrap()
            .body
            .contains("handoff_generation 1")
    );
    let missing = get(&addr, "/").unwrap();
    assert_eq!(
        missing.status, 404,
        "the reference service's routes are not here"
    );
    assert!(missing.body.contains("\"error\""), "{}", missing.body);
    proc.signal(libc::SIGTERM);
    let (status, _) = proc.wait(Duration::from_secs(15));
    assert!(status.success());
}

#[test]
fn hello_refuses_a_bad_setting_of_its_own_with_78_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.toml");
    for (text, expected) in [
        ("[app]\ngreeting = \"\"\n", "app.greeting = \"\": is empty"),
        // The config crate names only the section for a string given a list.
        ("[app]\ngreeting = [\"a\"]\n", "for key `app"),
        ("[app]\ngreting = \"hi\"\n", "unknown field `greting`"),
    ] {
        std::fs::write(&file, text).unwrap();
        for command in [&["check-config"][..], &[]] {
            let mut cmd = hello(&[
                "--config",
                file.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ]);
            cmd.args(command);
            let (status, stderr) = run(cmd);
            assert_eq!(status.code(), Some(78), "{text} {command:?}: {stderr}");
            assert!(stderr.contains(expected), "{text}: {stderr}");
            assert!(
                stderr.starts_with("hello: "),
                "named after itself: {stderr}"
            );
        }
    }
    std::fs::write(&file, "[app]\ngreeting = \"hi\"\n").unwrap();
    let out = hello(&["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("[app]\ngreeting = \"hi\""), "{printed}");
}

/// Fast requests on `/hello` with and without keep-alive (the load ends
/// after the disruptions; `duration` is its ceiling).
fn hello_load(c: &Container, duration: Duration) -> Plan {
    Plan {
        addr: c.addr().parse::<SocketAddr>().unwrap(),
        groups: vec![
            Group::new("hello-ka", "/hello", 12, true),
            Group::new("hello-close", "/hello", 12, false),
        ],
        duration,
        request_timeout: Duration::from_secs(30),
    }
}

fn generation(c: &Container) -> u64 {
    let metrics = get(&c.addr(), "/metrics").unwrap().body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("handoff_generation "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no generation in {metrics}"))
}

/// Runs `disrupt` `times` times, `apart`, under load that ends 2 s after
/// the last; the report, and the main pid after each.
fn under_load(
    c: &Container,
    times: usize,
    apart: Duration,
    disrupt: impl Fn(&Container),
) -> (Report, Vec<u32>) {
    let mut load = Load::start(&hello_load(c, Duration::from_secs(120)));
    std::thread::sleep(Duration::from_secs(1));
    let mut pids = vec![c.main_pid()];
    for i in 0..times {
        load.mark(format!("disruption {}", i + 1));
        disrupt(c);
        std::thread::sleep(apart);
        pids.push(c.main_pid());
    }
    let report = load.finish(Duration::from_secs(2));
    println!("{report}\n   main pids: {pids:?}");
    (report, pids)
}

#[test]
fn hello_restarts_reloads_and_survives_a_failed_reload_under_systemd() {
    if skipped("hello_restarts_reloads_and_survives_a_failed_reload_under_systemd") {
        return;
    }
    let _one = serial();
    let c = Container::start_image(hello_image(), "hello", free_port());
    assert_eq!(get(&c.addr(), "/hello").unwrap().body, "hello");

    // 1 s apart, as reloads: the units turn systemd's start limit off
    // (StartLimitIntervalSec=0), which would refuse a sixth start in 10 s.
    let (run, pids) = under_load(&c, 5, Duration::from_secs(1), |c| {
        c.sh("systemctl restart hello.service");
    });
    run.assert_clean(1000);
    assert!(
        pids.windows(2).all(|w| w[0] != w[1]),
        "a new process each time: {pids:?}"
    );

    let before = generation(&c);
    let (run, pids) = under_load(&c, 5, Duration::from_secs(1), |c| {
        c.sh("systemctl reload hello.service");
    });
    run.assert_clean(1000);
    assert!(
        pids.windows(2).all(|w| w[0] != w[1]),
        "a new process each time: {pids:?}"
    );
    assert_eq!(generation(&c), before + 5, "the new generation answers");
    assert_eq!(get(&c.addr(), "/hello").unwrap().body, "hello");

    // A deploy breaks the configuration: the reload fails, the old process
    // serves on, and no request fails meanwhile.
    let serving = c.main_pid();
    let (run, pids) = under_load(&c, 2, Duration::from_secs(1), |c| {
        let out = c.exec(&[
            "sh",
            "-c",
            "printf '[app]\\ngreeting = \"\"\\n' > /etc/hello/hello.toml && systemctl reload hello.service",
        ]);
        assert!(!out.status.success(), "the reload must fail");
    });
    run.assert_clean(500);
    assert!(
        pids.iter().all(|p| *p == serving),
        "the old process serves on: {pids:?}"
    );
    assert_eq!(get(&c.addr(), "/hello").unwrap().body, "hello");
}
