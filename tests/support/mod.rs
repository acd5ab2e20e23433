//! Shared pieces of the integration tests: a minimal HTTP/1.1 client that works
//! over TCP and unix sockets and shows the raw headers, a guard for the child
//! process, and a harness that passes sockets exactly as systemd does.

#![allow(dead_code)] // each test binary uses a different subset

pub mod clients;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_handoff")
}

/// A command for the handoff binary with a clean socket-activation slate and
/// plain logs on stderr.
pub fn handoff() -> Command {
    service(bin())
}

/// The binary of an example (cargo builds examples before it runs tests,
/// beside the test binaries' folder).
pub fn example_bin(name: &str) -> std::path::PathBuf {
    let deps = std::env::current_exe().unwrap();
    let path = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} missing: cargo test builds examples",
        path.display()
    );
    path
}

/// A command for `program`, a handoff service, set up as [`handoff`] is.
pub fn service(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "JOURNAL_STREAM",
        "HANDOFF_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HANDOFF__LOG__FORMAT", "text")
        .env("HANDOFF__LOG__LEVEL", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` with `fds` at 3, 4, ... and `LISTEN_FDS`/`LISTEN_PID` set the
/// way systemd sets them: `LISTEN_PID` is the pid of the process that execs
/// handoff. A shell sets it to its own pid (`$$`) and execs, so the pid holds.
pub fn with_listen_fds(
    cmd: Command,
    fds: Vec<OwnedFd>,
    names: Option<&str>,
    listen_pid: Option<&str>,
) -> Command {
    let program = cmd.get_program().to_owned();
    let mut sh = Command::new("/bin/sh");
    let script = match listen_pid {
        None => r#"LISTEN_PID=$$ exec "$0" "$@""#.to_owned(),
        Some(pid) => format!(r#"LISTEN_PID={pid} exec "$0" "$@""#),
    };
    sh.arg("-c").arg(script).arg(program).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.env("LISTEN_FDS", fds.len().to_string());
    if let Some(names) = names {
        sh.env("LISTEN_FDNAMES", names);
    }
    sh.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mappings = fds
        .into_iter()
        .enumerate()
        .map(|(i, fd)| FdMapping {
            parent_fd: fd,
            child_fd: 3 + i as i32,
        })
        .collect();
    sh.fd_mappings(mappings)
        .expect("fd mappings do not collide");
    sh
}

/// A child that is killed when the test ends, however it ends, with every
/// process it led to: it starts a session of its own, which every handoff
/// generation it leads to stays in (a successor is forked by its
/// predecessor and changes only its process group), and dropping it kills
/// the whole session.
pub struct Proc {
    pub child: Child,
    /// What the child wrote to stderr so far. Read by a thread into a shared
    /// buffer rather than joined: a successor started by a reload inherits
    /// the pipe and may hold it open long after this child exited.
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Self {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid(2) is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        let mut child = cmd.spawn().expect("spawn handoff");
        let mut err = child.stderr.take().expect("stderr piped");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self { child, stderr }
    }

    /// What the child wrote to stderr so far.
    pub fn stderr_now(&self) -> String {
        // Lets the reader catch up with the last lines written before exit.
        std::thread::sleep(Duration::from_millis(100));
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.child.id());
    }

    /// Waits for the exit; panics after `limit`. Returns status and stderr.
    /// The processes it led to (successors) live on until the `Proc` is
    /// dropped.
    pub fn wait(&mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, self.stderr_now());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "handoff did not exit within {limit:?}; stderr:\n{}",
                    self.stderr_now()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_session(self.child.id());
    }
}

/// The pids of the live (not zombie) processes in session `sid`.
pub fn session_members(sid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // After the command: state ppid pgrp session ...
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
                fields.len() > 3 && fields[0] != "Z" && fields[3].parse::<u32>().ok() == Some(sid)
            })
        })
        .collect()
}

/// SIGKILLs every process of session `sid`, until none is left.
pub fn kill_session(sid: u32) {
    for _ in 0..50 {
        let members = session_members(sid);
        if members.is_empty() {
            return;
        }
        for pid in members {
            // SAFETY: kill(2); a pid that just exited gets ESRCH.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to completion: exit status and stderr.
pub fn run(mut cmd: Command) -> (ExitStatus, String) {
    Proc::spawn({
        cmd.stdout(Stdio::null());
        cmd
    })
    .wait(Duration::from_secs(20))
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The pid in `GET /`'s "handoff X pid N generation G started T".
    pub fn pid(&self) -> u32 {
        word_after(&self.body, "pid").parse().expect("pid in body")
    }
}

fn word_after<'a>(text: &'a str, key: &str) -> &'a str {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words.next().unwrap_or("");
        }
    }
    panic!("no {key:?} in {text:?}")
}

/// Writes one request and reads one response (by Content-Length).
pub fn exchange<S: Read + Write>(
    stream: &mut S,
    method: &str,
    path: &str,
    extra_headers: &str,
    body: &[u8],
) -> std::io::Result<Response> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n{extra_headers}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut buf = vec![0; len];
    reader.read_exact(&mut buf)?;
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&buf).into_owned(),
    })
}

pub fn connect_tcp(addr: &str) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    Ok(s)
}

/// One request on a fresh connection with `Connection: close`.
pub fn get(addr: &str, path: &str) -> std::io::Result<Response> {
    exchange(
        &mut connect_tcp(addr)?,
        "GET",
        path,
        "Connection: close\r\n",
        b"",
    )
}

pub fn get_unix(path: &Path, uri: &str) -> std::io::Result<Response> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    exchange(&mut s, "GET", uri, "Connection: close\r\n", b"")
}

/// Polls `GET /` until it answers 200 or `limit` passes.
pub fn wait_until_serving(addr: &str, limit: Duration) -> Response {
    let deadline = Instant::now() + limit;
    loop {
        match get(addr, "/") {
            Ok(r) if r.status == 200 => return r,
            other => {
                if Instant::now() > deadline {
                    panic!("{addr} not serving after {limit:?}: {other:?}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The pid answering `GET /`, waiting up to `limit` for an answer.
pub fn answering_pid(addr: &str, limit: Duration) -> u32 {
    wait_until_serving(addr, limit).pid()
}

/// Waits up to `limit` until `GET /` is answered by another pid than `old`;
/// None if `old` still answers then. Callers assert on it as fits the test.
pub fn wait_for_new_pid(addr: &str, old: u32, limit: Duration) -> Option<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let pid = answering_pid(addr, limit);
        if pid != old {
            return Some(pid);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The port of `host:port`.
pub fn port_of(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

/// A port that was free a moment ago (the test binds it right after).
pub fn free_port() -> u16 {
    // Never the same port twice in one test binary: the kernel may give a
    // port it gave a moment ago, once its first holder closed it, and two
    // tests running side by side would then start their servers on one
    // port; the second fails to bind, and its test, waiting for an answer
    // there, talks to the first test's server. (The likely cause of one run
    // in which two tests/hostile.rs tests saw their connections reset at
    // once, in the sandbox twin.)
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// True while `pid` runs (a zombie has exited; only its parent has not
/// reaped it yet).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits up to `limit` for `pid` to exit; true if it did.
pub fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The open descriptors of a running process; panics if it cannot tell
/// (a count of 0 from an unreadable folder would prove any bound).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("cannot list the fds of pid {pid}: {e}"))
        .count()
}

/// The hand-off promise, as an order of events rather than a time bound:
/// after each hand-off in `pids` (the answering pids, in order), the
/// successor answered requests *before* the old process gave its last
/// answer, that is while the old one was still draining its slow requests.
/// A restart cannot do that: there the next process serves only once the
/// old one is gone, so every request that arrives meanwhile waits for the
/// drain. Needs requests in flight on the old process at each hand-off (the
/// 1 s requests of the mixed load) and answers that name their pid.
pub fn assert_each_successor_served_during_the_drain(samples: &[loadgen::Sample], pids: &[u32]) {
    for pair in pids.windows(2) {
        let (old, new) = (pair[0], pair[1]);
        let old_last = samples
            .iter()
            .filter(|s| s.pid == Some(old))
            .map(loadgen::Sample::end_us)
            .max()
            .unwrap_or_else(|| panic!("pid {old} answered nothing"));
        let new_first = samples
            .iter()
            .filter(|s| s.pid == Some(new))
            .map(loadgen::Sample::end_us)
            .min()
            .unwrap_or_else(|| panic!("pid {new} answered nothing"));
        assert!(
            new_first < old_last,
            "pid {new} first answered at {:.3} s, after pid {old}'s last answer at {:.3} s: \
             requests waited for the old process's drain (pids {pids:?})",
            new_first as f64 / 1e6,
            old_last as f64 / 1e6
        );
    }
}

/// Debian's Python, which tests/run gives python3-websockets and
/// python3-requests, or `$HANDOFF_PYTHON` (the Nix check sets one): for
/// the clients of tests/live.rs and the harness of tests/nixos.rs.
pub fn python() -> String {
    std::env::var("HANDOFF_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_owned())
}

/// Prints figures and keeps them in target/test-reports/NAME.txt (cargo
/// shows a passing test's output only with --nocapture; CI prints the
/// folder).
pub fn report(name: &str, text: &str) {
    print!("{text}");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../test-reports");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{name}.txt")), text);
}
