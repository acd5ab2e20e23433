//! The real binary on real sockets: socket activation by systemd's own
//! `systemd-socket-activate` and by a harness that passes fds exactly as
//! systemd does, the fallback bind, startup errors, drain, sd_notify.

mod support;

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const EX_DATAERR: i32 = 65;
const EX_UNAVAILABLE: i32 = 69;
const EX_CONFIG: i32 = 78;

fn tcp_listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

#[test]
fn serves_on_the_socket_systemd_socket_activate_passes() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["--listen", &addr, "--fdname=http"])
        // systemd-socket-activate passes only the variables named with -E.
        .args(["-E", "HANDOFF__LOG__FORMAT=text", "-E", "NO_COLOR=1"])
        // Would fail to bind (TEST-NET-1): proves the inherited socket is used.
        .args(["-E", "HANDOFF__SERVER__LISTEN=192.0.2.1:80"])
        .arg(bin())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut proc = Proc::spawn(cmd);

    // systemd-socket-activate execs handoff on the first connection, which
    // waits in the backlog meanwhile; the exec keeps the pid.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        match get(&addr, "/") {
            Ok(r) => break r,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("first request through the activated socket failed: {e}"),
        }
    };
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.pid(), proc.pid(), "answered by the activated process");

    proc.signal(libc::SIGTERM);
    let (status, stderr) = proc.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(r#"name "http", inherited"#),
        "logs say where the listener came from:\n{stderr}"
    );
}

#[test]
fn serves_several_named_tcp_and_unix_sockets_passed_as_systemd_does() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("handoff.sock");
    let (tcp_a, addr_a) = tcp_listener();
    let (tcp_b, addr_b) = tcp_listener();
    let unix = UnixListener::bind(&sock_path).unwrap();
    let fds: Vec<OwnedFd> = vec![tcp_a.into(), unix.into(), tcp_b.into()];

    let mut cmd = handoff();
    cmd.env("HANDOFF__SERVER__LISTEN", "192.0.2.1:80");
    let mut proc = Proc::spawn(with_listen_fds(
        cmd,
        fds,
        Some("http:handoff.socket:http"),
        None,
    ));

    let a = wait_until_serving(&addr_a, Duration::from_secs(10));
    assert_eq!(a.pid(), proc.pid());
    let b = get(&addr_b, "/").unwrap();
    assert_eq!((b.status, b.pid()), (200, proc.pid()));
    let u = get_unix(&sock_path, "/").unwrap();
    assert_eq!((u.status, u.pid()), (200, proc.pid()));

    proc.signal(libc::SIGTERM);
    let (status, stderr) = proc.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("fd 4") && stderr.contains("unix:"),
        "{stderr}"
    );
    assert!(
        sock_path.exists(),
        "the unix socket file belongs to whoever passed it; handoff must not remove it"
    );
}

#[test]
fn binds_the_configured_address_when_nothing_is_passed() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = handoff();
    cmd.args(["--listen", &addr]);
    let mut proc = Proc::spawn(cmd);
    let r = wait_until_serving(&addr, Duration::from_secs(10));
    assert_eq!(r.pid(), proc.pid());
    proc.signal(libc::SIGINT);
    let (status, stderr) = proc.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("(bound)"), "{stderr}");
}

#[test]
fn binds_a_unix_socket_path_and_replaces_a_stale_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sock");
    // A socket file left behind by a dead process: nobody accepts on it.
    drop(UnixListener::bind(&path).unwrap());
    let mut cmd = handoff();
    cmd.args(["--listen", path.to_str().unwrap()]);
    let proc = Proc::spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        match get_unix(&path, "/healthz") {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(25)),
            Err(e) => panic!("unix socket not served: {e}"),
        }
    };
    assert_eq!(r.status, 200);
    drop(proc);
}

#[test]
fn sockets_addressed_to_another_pid_are_ignored() {
    let (passed, passed_addr) = tcp_listener();
    let own = format!("127.0.0.1:{}", free_port());
    let mut cmd = handoff();
    cmd.args(["--listen", &own]);
    // LISTEN_PID=1: the variables are for another process (systemd's rule).
    let mut proc = Proc::spawn(with_listen_fds(cmd, vec![passed.into()], None, Some("1")));

    let r = wait_until_serving(&own, Duration::from_secs(10));
    assert_eq!(r.pid(), proc.pid());
    // The passed socket still queues connections, but nobody answers on it.
    let mut stream = connect_tcp(&passed_addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        exchange(&mut stream, "GET", "/", "", b"").is_err(),
        "a socket meant for another pid must not be served"
    );
    proc.signal(libc::SIGTERM);
    let (status, stderr) = proc.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(stderr.contains("addressed to another process"), "{stderr}");
}

#[test]
fn a_passed_fd_that_is_not_a_socket_is_a_startup_error_naming_it() {
    let dev_null: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let (status, stderr) = run(with_listen_fds(handoff(), vec![dev_null], None, None));
    assert_eq!(status.code(), Some(EX_DATAERR), "{stderr}");
    assert!(
        stderr.contains(r#"fd 3 (name "http"): not a socket"#),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_passed_socket_that_is_not_listening_is_refused() {
    let (l, addr) = tcp_listener();
    let connected: OwnedFd = std::net::TcpStream::connect(&addr).unwrap().into();
    let (status, stderr) = run(with_listen_fds(handoff(), vec![connected], None, None));
    drop(l);
    assert_eq!(status.code(), Some(EX_DATAERR), "{stderr}");
    assert!(
        stderr.contains("fd 3") && stderr.contains("Accept=no"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_listen_fds_is_a_startup_error() {
    let mut cmd = handoff();
    cmd.env("LISTEN_FDS", "two");
    let (status, stderr) = run(cmd);
    assert_eq!(status.code(), Some(EX_DATAERR), "{stderr}");
    assert!(
        stderr.contains(r#"LISTEN_FDS="two": not a whole number"#),
        "{stderr}"
    );
}

#[test]
fn an_fd_name_nobody_serves_is_a_startup_error() {
    let (l, _) = tcp_listener();
    let (status, stderr) = run(with_listen_fds(
        handoff(),
        vec![l.into()],
        Some("metrics"),
        None,
    ));
    assert_eq!(status.code(), Some(EX_DATAERR), "{stderr}");
    assert!(
        stderr.contains(r#"fd 3 (name "metrics"): no listener of handoff uses this name"#),
        "{stderr}"
    );
}

#[test]
fn an_address_in_use_exits_unavailable() {
    let (_held, addr) = tcp_listener();
    let mut cmd = handoff();
    cmd.args(["--listen", &addr]);
    let (status, stderr) = run(cmd);
    assert_eq!(status.code(), Some(EX_UNAVAILABLE), "{stderr}");
    // Said once (the log on a terminal would repeat it), naming the address
    // once, and how to pick another.
    assert_eq!(
        stderr.trim(),
        format!(
            "handoff: cannot listen on {addr}: Address already in use (os error 98); another \
             process has it: choose another address with --listen ADDR or HANDOFF__SERVER__LISTEN"
        ),
    );
}

#[test]
fn bad_configuration_exits_78_naming_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("handoff.toml");

    std::fs::write(&file, "[server]\nworkerz = 2\n").unwrap();
    let mut cmd = handoff();
    cmd.arg("--config").arg(&file);
    let (status, stderr) = run(cmd);
    assert_eq!(status.code(), Some(EX_CONFIG), "{stderr}");
    assert!(
        stderr.contains("unknown field `workerz`") && stderr.contains("`server`"),
        "{stderr}"
    );

    std::fs::write(&file, "[server]\ndrain_timeout = \"soon\"\n").unwrap();
    let mut cmd = handoff();
    cmd.env("HANDOFF_CONFIG", &file);
    let (status, stderr) = run(cmd);
    assert_eq!(status.code(), Some(EX_CONFIG), "{stderr}");
    assert!(
        stderr.contains("\"soon\" is not a duration") && stderr.contains("server.drain_timeout"),
        "{stderr}"
    );

    let mut cmd = handoff();
    cmd.env("HANDOFF__SERVER__WORKERS", "many");
    let (status, stderr) = run(cmd);
    assert_eq!(status.code(), Some(EX_CONFIG), "{stderr}");
    assert!(
        stderr.contains("\"many\"") && stderr.contains("server.workers"),
        "{stderr}"
    );

    let mut cmd = handoff();
    cmd.args(["--listen", "8080", "check-config"]);
    let (status, stderr) = run(cmd);
    assert_eq!(status.code(), Some(EX_CONFIG), "{stderr}");
    assert!(stderr.contains(r#"server.listen = "8080""#), "{stderr}");
}

#[test]
fn check_config_prints_the_layered_settings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("handoff.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = [\"127.0.0.1:1\"]\nworkers = 3\ndrain_timeout = 12\n",
    )
    .unwrap();
    let layered = |env_listen: Option<&str>, cli_listen: Option<&str>| {
        let mut cmd = handoff();
        cmd.arg("--config").arg(&file).arg("check-config");
        if let Some(v) = env_listen {
            cmd.env("HANDOFF__SERVER__LISTEN", v);
        }
        if let Some(v) = cli_listen {
            cmd.args(["--listen", v]);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout).unwrap()
    };
    let file_only = layered(None, None);
    assert!(file_only.contains("\"127.0.0.1:1\""), "{file_only}");
    assert!(file_only.contains("workers = 3"), "{file_only}");
    assert!(file_only.contains("drain_timeout = \"12s\""), "{file_only}");
    assert!(
        file_only.contains("max_delay = \"10s\""),
        "defaults fill the rest"
    );
    let env = layered(Some("127.0.0.1:2,/run/h.sock"), None);
    assert!(
        env.contains("\"127.0.0.1:2\"") && env.contains("\"/run/h.sock\""),
        "{env}"
    );
    let cli = layered(Some("127.0.0.1:2"), Some("127.0.0.1:3"));
    assert!(
        cli.contains("\"127.0.0.1:3\"") && !cli.contains(":2\""),
        "{cli}"
    );
}

#[test]
fn sigterm_finishes_requests_in_flight_cuts_no_idle_connection_then_exits_0() {
    // No successor and no fd store: nobody can take the idle connections.
    // Closing them at the drain would fail whatever request a client writes
    // at that instant, so they are left open: the next request on each is
    // answered (with `Connection: close`), and one that stays idle is ended
    // by the keep-alive timer, as at any time.
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = handoff();
    cmd.args(["--listen", &addr])
        .env("HANDOFF__SERVER__KEEP_ALIVE", "1s");
    let mut proc = Proc::spawn(cmd);
    wait_until_serving(&addr, Duration::from_secs(10));

    let slow_addr = addr.clone();
    let slow = std::thread::spawn(move || {
        let mut s = connect_tcp(&slow_addr)?;
        exchange(&mut s, "GET", "/delay/1500", "", b"")
    });
    // Two keep-alive connections, idle when the drain begins.
    let idle = || {
        let mut c = connect_tcp(&addr).unwrap();
        let r = exchange(&mut c, "GET", "/readyz", "", b"").unwrap();
        assert_eq!(r.status, 200);
        c
    };
    let (mut writes_again, mut stays_idle) = (idle(), idle());
    std::thread::sleep(Duration::from_millis(300));
    proc.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));

    // Its next request, written while the drain goes on (the slow request
    // is still in flight), is answered, and the connection closes after it.
    let next = exchange(&mut writes_again, "GET", "/", "", b"").expect("answered, not cut");
    assert!(
        !slow.is_finished(),
        "the drain was over before the idle connection was used"
    );
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(next.header("connection"), Some("close"), "{next:?}");
    let mut byte = [0u8; 1];
    assert_eq!(
        std::io::Read::read(&mut writes_again, &mut byte).expect("an orderly close"),
        0
    );
    // The one that stays idle is closed by the keep-alive timer, cleanly.
    assert_eq!(
        std::io::Read::read(&mut stays_idle, &mut byte).expect("an orderly close, not a reset"),
        0
    );

    // The request in flight completes, and its connection closes after it.
    let slow = slow.join().unwrap().expect("the slow request completes");
    assert_eq!(slow.status, 200, "{slow:?}");
    assert!(slow.body.contains("\"slept_ms\":1500"), "{slow:?}");
    assert_eq!(slow.header("connection"), Some("close"), "{slow:?}");
    let (status, stderr) = proc.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("draining") && stderr.contains("drained"),
        "{stderr}"
    );
}

#[test]
fn tells_the_service_manager_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = handoff();
    cmd.args(["--listen", &addr])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000");
    let mut proc = Proc::spawn(cmd);

    let mut buf = [0u8; 4096];
    let mut recv = || {
        let n = notify.recv(&mut buf).expect("a notification arrives");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv();
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    assert!(first.contains("STATUS="), "{first:?}");
    // Once READY=1 was sent, the server accepts.
    assert_eq!(get(&addr, "/").unwrap().status, 200);
    let watchdog = recv();
    assert_eq!(watchdog.trim(), "WATCHDOG=1");

    proc.signal(libc::SIGTERM);
    let stopping = loop {
        let m = recv();
        if m.contains("STOPPING=1") {
            break m;
        }
        assert_eq!(m.trim(), "WATCHDOG=1", "only pings before STOPPING");
    };
    assert!(stopping.contains("STATUS=draining"), "{stopping:?}");
    let (status, _) = proc.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_http_api_answers_and_errors_are_json() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = handoff();
    cmd.args(["--listen", &addr])
        .env("HANDOFF__APP__MAX_DELAY", "2s")
        .env("HANDOFF__LIMITS__MAX_BODY_BYTES", "16");
    let proc = Proc::spawn(cmd);
    let index = wait_until_serving(&addr, Duration::from_secs(10));
    assert!(
        index.body.starts_with(&format!(
            "handoff {} build {} pid {} generation 1 started 20",
            env!("CARGO_PKG_VERSION"),
            option_env!("HANDOFF_BUILD_ID").unwrap_or("dev"),
            proc.pid()
        )),
        "{index:?}"
    );

    let ok = |path: &str| {
        let r = get(&addr, path).unwrap();
        assert_eq!(r.status, 200, "{path}: {r:?}");
        r
    };
    assert_eq!(ok("/healthz").body, r#"{"status":"ok"}"#);
    assert_eq!(ok("/readyz").body, r#"{"status":"ready"}"#);
    let version: serde_json::Value = serde_json::from_str(&ok("/version").body).unwrap();
    assert_eq!(version["pid"], proc.pid());
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    assert!(ok("/delay/10").body.contains("\"slept_ms\":10"));

    let err = |method: &str, path: &str, body: &[u8], status: u16, needle: &str| {
        let mut s = connect_tcp(&addr).unwrap();
        let r = exchange(&mut s, method, path, "Connection: close\r\n", body).unwrap();
        assert_eq!(r.status, status, "{method} {path}: {r:?}");
        let json: serde_json::Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {r:?}"));
        assert_eq!(json["status"], status);
        let msg = json["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{method} {path}: {msg:?}");
    };
    err("GET", "/delay/2001", b"", 400, "exceeds app.max_delay (2s)");
    err("GET", "/delay/soon", b"", 400, "soon");
    err("GET", "/spin/100001", b"", 400, "exceeds 100ms");
    err("GET", "/nowhere", b"", 404, "no route for GET /nowhere");
    err("DELETE", "/", b"", 405, "DELETE is not allowed on /");
    err(
        "POST",
        "/echo",
        &[b'x'; 17],
        413,
        "limits.max_body_bytes (16 bytes)",
    );

    let spun: serde_json::Value = serde_json::from_str(&ok("/spin/2000").body).unwrap();
    assert_eq!(spun["spun_us"], 2000);

    let mut s = connect_tcp(&addr).unwrap();
    let echo = exchange(&mut s, "POST", "/echo", "Connection: close\r\n", b"hello").unwrap();
    assert_eq!((echo.status, echo.body.as_str()), (200, "hello"));

    let metrics = ok("/metrics").body;
    for needle in [
        r#"handoff_http_requests_total{route="/healthz",method="GET",status="200"} 1"#,
        r#"handoff_http_requests_total{route="/delay/{ms}",method="GET",status="400"} 2"#,
        r#"handoff_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
        "handoff_http_requests_in_flight 1",
        "handoff_drains_total 0",
        "handoff_generation 1",
        "\nprocess_start_time_seconds ",
    ] {
        assert!(metrics.contains(needle), "missing {needle:?} in\n{metrics}");
    }
}

#[test]
fn logs_json_lines_when_asked() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = handoff();
    cmd.args(["--listen", &addr])
        .env("HANDOFF__LOG__FORMAT", "json");
    let mut proc = Proc::spawn(cmd);
    wait_until_serving(&addr, Duration::from_secs(10));
    proc.signal(libc::SIGTERM);
    let (status, stderr) = proc.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    for lifecycle in ["listening", "ready", "drained", "exit"] {
        assert!(
            messages.contains(&lifecycle),
            "no {lifecycle:?} in {messages:?}"
        );
    }
    let listening = events.iter().find(|e| e["message"] == "listening").unwrap();
    assert!(
        listening["listener"].as_str().unwrap().contains("(bound)"),
        "{listening}"
    );
}

#[test]
fn check_config_and_start_agree_on_what_they_refuse() {
    // Each of these passed check-config or was silently changed before:
    // workers 513-1024 panicked at start (exit 101), 2.5 became 3, "inof"
    // matched no log target and silenced every log line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("handoff.toml");
    let cases = [
        ("[server]\nworkers = 513\n", "server.workers = \"513\""),
        (
            "[server]\nworkers = 2.5\n",
            "server.workers = \"2.5\": must be a whole number",
        ),
        (
            "[server]\nbacklog = true\n",
            "server.backlog = \"true\": must be a whole number",
        ),
        ("[log]\nlevel = \"inof\"\n", "\"inof\" is not a level"),
        ("[server]\nsend_timeout = \"0s\"\n", "server.send_timeout"),
    ];
    for (text, expected) in cases {
        std::fs::write(&file, text).unwrap();
        for command in [Some("check-config"), None] {
            let addr = format!("127.0.0.1:{}", free_port());
            let mut cmd = handoff();
            // The harness sets the level in the environment, which would
            // override the file's.
            cmd.env_remove("HANDOFF__LOG__LEVEL");
            cmd.arg("--config").arg(&file).args(["--listen", &addr]);
            cmd.args(command);
            let (status, stderr) = run(cmd);
            assert_eq!(
                status.code(),
                Some(EX_CONFIG),
                "{text} {command:?}: {stderr}"
            );
            assert!(stderr.contains(expected), "{text} {command:?}: {stderr}");
        }
    }
    let mut cmd = handoff();
    cmd.env("HANDOFF__SERVER__WORKERS", "2.5")
        .arg("check-config");
    let (status, stderr) = run(cmd);
    assert_eq!(status.code(), Some(EX_CONFIG), "{stderr}");
    assert!(stderr.contains("server.workers"), "{stderr}");
    // A filter with targets is fine.
    let mut cmd = handoff();
    cmd.env("HANDOFF__LOG__LEVEL", "warn,actix_handoff=debug")
        .arg("check-config");
    let (status, stderr) = run(cmd);
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn a_config_path_that_is_not_a_small_regular_file_is_refused_at_once() {
    // /dev/zero was read forever, growing memory; a FIFO hung the start.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "#".repeat(2 * 1024 * 1024)).unwrap();
    for (path, expected) in [
        (std::path::PathBuf::from("/dev/zero"), "not a regular file"),
        (fifo, "not a regular file"),
        (dir.path().to_owned(), "not a regular file"),
        (big, "at most 1048576"),
    ] {
        // run() fails the test if the command hangs (reading /dev/zero or
        // waiting on the FIFO would).
        let mut cmd = handoff();
        cmd.arg("--config").arg(&path).arg("check-config");
        let (status, stderr) = run(cmd);
        assert_eq!(status.code(), Some(EX_CONFIG), "{path:?}: {stderr}");
        assert!(stderr.contains(expected), "{path:?}: {stderr}");
    }
}

#[test]
fn the_lame_duck_serves_with_readyz_503_then_drains() {
    // server.shutdown_delay: after SIGTERM, requests are still served (new
    // connections too) while /readyz says 503, so a load balancer takes the
    // host out before anything closes; then the drain, then exit 0.
    let (listener, addr) = tcp_listener();
    let mut cmd = handoff();
    cmd.env("HANDOFF__SERVER__SHUTDOWN_DELAY", "2s")
        .env("HANDOFF__LOG__FORMAT", "json");
    let mut proc = Proc::spawn(with_listen_fds(cmd, vec![listener.into()], None, None));
    wait_until_serving(&addr, Duration::from_secs(10));
    assert_eq!(get(&addr, "/readyz").unwrap().status, 200);
    proc.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let readyz = get(&addr, "/readyz").unwrap();
    assert_eq!(readyz.status, 503, "{readyz:?}");
    assert!(readyz.body.contains("stopping"), "{readyz:?}");
    assert_eq!(get(&addr, "/").unwrap().status, 200, "still serving");
    let (status, stderr) = proc.wait(Duration::from_secs(15));
    assert!(status.success(), "{stderr}");
    // The delay, on the process's own clock: from the lame duck's start to
    // the drain's.
    let at = |prefix: &str| {
        stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["message"].as_str().is_some_and(|m| m.starts_with(prefix)))
            .and_then(|e| humantime::parse_rfc3339(e["timestamp"].as_str()?).ok())
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{stderr}"))
    };
    let delay = at("draining").duration_since(at("lame duck")).unwrap();
    assert!(
        delay >= Duration::from_secs(2),
        "the drain began {delay:?} after the lame duck, before its 2 s"
    );
}

#[test]
fn a_second_stop_signal_cuts_the_lame_duck_short() {
    let (listener, addr) = tcp_listener();
    let mut cmd = handoff();
    cmd.env("HANDOFF__SERVER__SHUTDOWN_DELAY", "60s");
    let mut proc = Proc::spawn(with_listen_fds(cmd, vec![listener.into()], None, None));
    wait_until_serving(&addr, Duration::from_secs(10));
    proc.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&addr, "/readyz").unwrap().status, 503);
    proc.signal(libc::SIGTERM);
    // Well within the 60 s delay (the wait's limit only guards a hang).
    let (status, stderr) = proc.wait(Duration::from_secs(20));
    assert!(status.success(), "{stderr}");
    let second = stderr.find("second stop signal");
    let draining = stderr.find("draining");
    assert!(
        second.is_some() && second < draining,
        "the second signal must start the drain:\n{stderr}"
    );
}
