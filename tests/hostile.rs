//! Clients that misbehave, against the real binary on loopback: whatever a
//! client does, its connection costs bounded CPU and memory and is closed
//! within the configured timeouts. Each test here failed before src/http/conn.rs.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

fn start(addr: &str, env: &[(&str, &str)]) -> Proc {
    let mut cmd = handoff();
    cmd.args(["--listen", addr])
        .env("HANDOFF__LOG__LEVEL", "warn")
        .envs(env.iter().copied());
    let proc = Proc::spawn(cmd);
    wait_until_serving(addr, Duration::from_secs(10));
    proc
}

/// CPU time (user + system) the process used so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state is [0], utime [11], stime [12].
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a constant.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as u64
}

#[test]
fn pipelining_clients_that_never_read_are_closed_and_others_served() {
    let addr = format!("127.0.0.1:{}", free_port());
    let proc = start(&addr, &[("HANDOFF__SERVER__SEND_TIMEOUT", "3s")]);
    let pid = proc.pid();

    // Four clients pipeline GETs as fast as the kernel takes them and never
    // read a byte of the answers.
    let burst = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    let mut conns: Vec<Option<TcpStream>> = (0..4)
        .map(|_| {
            let s = TcpStream::connect(&addr).unwrap();
            s.set_nonblocking(true).unwrap();
            Some(s)
        })
        .collect();
    let started = Instant::now();
    let ticks = cpu_ticks(pid);
    let mut closed = 0;
    // The limit only guards a hang: send_timeout (3 s) closes them.
    while started.elapsed() < Duration::from_secs(30) && closed < conns.len() {
        for slot in conns.iter_mut() {
            let Some(s) = slot else { continue };
            match s.write(burst.as_bytes()) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    // The server closed it (reset or broken pipe).
                    closed += 1;
                    *slot = None;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Figures, not bounds (the benchmark's business): how much the server
    // worked and held while the clients wrote and did not read.
    let cpu = (cpu_ticks(pid) - ticks) as f64 / ticks_per_second() as f64;
    println!(
        "4 clients pipelining without reading: closed after {:?}, server CPU {cpu:.2} s, RSS {} KiB",
        started.elapsed(),
        rss_kib(pid)
    );
    // Before: never closed.
    assert_eq!(closed, 4, "only {closed} of 4 connections were closed");
    // Others are served meanwhile and after.
    assert_eq!(get(&addr, "/healthz").unwrap().status, 200);
}

#[test]
fn a_body_that_never_ends_is_cut_off_and_answered() {
    let addr = format!("127.0.0.1:{}", free_port());
    let _proc = start(&addr, &[("HANDOFF__SERVER__CLIENT_BODY_TIMEOUT", "2s")]);

    // One to a route that reads no body (answered at once), one to the
    // route that reads it (answered 408 at the timeout): neither may keep the
    // connection open while the chunked body trickles on.
    for path in ["/nowhere", "/echo"] {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.write_all(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        let closed = loop {
            // Only a hang guard: client_body_timeout is 2 s.
            if started.elapsed() > Duration::from_secs(30) {
                break None;
            }
            if s.write_all(b"1\r\na\r\n").is_err() {
                break Some(started.elapsed());
            }
            let mut buf = [0u8; 4096];
            match s.read(&mut buf) {
                Ok(0) => break Some(started.elapsed()),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break Some(started.elapsed()),
            }
        };
        let answer = String::from_utf8_lossy(&answer);
        let closed = closed.unwrap_or_else(|| panic!("{path}: still open after 30 s: {answer}"));
        println!("{path}: cut off after {closed:?} (client_body_timeout 2s)");
        let expected = if path == "/echo" { "408" } else { "404" };
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {expected}")),
            "{path}: {answer}"
        );
    }
}

#[test]
fn head_is_answered_like_get_without_a_body() {
    let addr = format!("127.0.0.1:{}", free_port());
    let _proc = start(&addr, &[]);
    for path in ["/", "/healthz", "/readyz", "/version", "/metrics"] {
        let mut s = connect_tcp(&addr).unwrap();
        s.write_all(
            format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        let (head, body) = all.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(
            body.is_empty(),
            "{path}: HEAD answered with a body {body:?}"
        );
    }
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    use std::os::unix::process::CommandExt;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = handoff();
    cmd.args(["--listen", &addr]);
    // Start with a low soft limit, as a shell or a unit without
    // LimitNOFILE= passes it.
    // SAFETY: setrlimit in the child before exec; async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let mut lim: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim.rlim_cur = 256.min(lim.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let proc = Proc::spawn(cmd);
    wait_until_serving(&addr, Duration::from_secs(10));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", proc.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums[0], nums[1], "soft limit not raised: {line}");
}
