//! Clients that misbehave, against the real binary on loopback: whatever a
//! client does, its connection costs bounded CPU and memory and is closed
//! within the configured timeouts. Each test here failed before src/http/h1/conn.rs.

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

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `n` clients that each pipeline as many GETs as `bytes` of requests, as
/// fast as the kernel takes them, and never read an answer.
fn pipelining_clients(addr: &str, n: usize, bytes: usize) -> Vec<TcpStream> {
    let request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let pipeline = request.repeat(bytes / request.len());
    (0..n)
        .map(|_| {
            // A small receive buffer, as a slow reader has: the kernel holds
            // fewer answers for it.
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.set_recv_buffer_size(4096).unwrap();
            s.connect(&addr.parse::<std::net::SocketAddr>().unwrap().into())
                .unwrap();
            let s = TcpStream::from(s);
            s.set_nonblocking(true).unwrap();
            let mut written = 0;
            while written < pipeline.len() {
                match (&s).write(&pipeline.as_bytes()[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(e) => panic!("writing the pipeline: {e}"),
                }
            }
            s
        })
        .collect()
}

#[test]
fn a_hundred_pipelining_clients_that_never_read_hold_bounded_memory() {
    // Before: a connection whose client pipelines without end and never
    // reads made the server parse far ahead of its answers and queue every
    // request parsed: about 20 MB a connection, not given back. Now a
    // connection is given one request at a time and holds at most one
    // answer; the rest waits in the kernel (whose buffers the kernel bounds),
    // and send_timeout ends the stall.
    let addr = format!("127.0.0.1:{}", free_port());
    let proc = start(&addr, &[("HANDOFF__SERVER__SEND_TIMEOUT", "2s")]);
    let pid = proc.pid();
    let (peak_kib, served_meanwhile) = pipeline_without_end(&addr, pid, 100);
    assert!(
        peak_kib < 64 * 1024,
        "the server held {peak_kib} KiB for 100 clients that do not read"
    );
    assert!(served_meanwhile, "other clients were not served meanwhile");
}

/// `n` clients pipeline GETs without end and never read, until the server
/// closes every one; the server's peak RSS meanwhile, and whether it served
/// another client while they were at it.
fn pipeline_without_end(addr: &str, pid: u32, n: usize) -> (u64, bool) {
    // /metrics: answers of a few KiB, so that the kernel's buffers fill
    // after hundreds of requests rather than tens of thousands.
    let burst = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    let mut conns: Vec<Option<TcpStream>> = pipelining_clients(addr, n, 0)
        .into_iter()
        .map(Some)
        .collect();
    let started = Instant::now();
    let mut closed = 0;
    let mut peak_kib = rss_kib(pid);
    let mut served_meanwhile = false;
    // The limit only guards a hang: send_timeout closes them.
    while started.elapsed() < Duration::from_secs(180) && closed < conns.len() {
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
        peak_kib = peak_kib.max(rss_kib(pid));
        if !served_meanwhile && closed == 0 {
            served_meanwhile = get(addr, "/healthz").is_ok_and(|r| r.status == 200);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "{n} clients pipelining without end, never reading: closed after {:?}, peak RSS {peak_kib} KiB",
        started.elapsed()
    );
    // Before: never closed.
    assert_eq!(closed, n, "only {closed} of {n} connections were closed");
    assert_eq!(get(addr, "/healthz").unwrap().status, 200);
    (peak_kib, served_meanwhile)
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

/// The requests of the pipelining test: HEAD among GET and POST, bodies by
/// Content-Length and by chunks.
const PIPELINE: &[&str] = &[
    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    "HEAD /version HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /version HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
    "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
];

/// Everything the server sent until it closed, its Date headers blanked
/// (they are the only part that differs between runs).
fn answers_to(addr: &str, parts: &[&[u8]]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // Another read on the server's side, most likely.
            std::thread::sleep(Duration::from_millis(2));
        }
        s.write_all(part).unwrap();
    }
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let mut text = String::from_utf8_lossy(&all).into_owned();
    let mut from = 0;
    while let Some(at) = text[from..].find("\r\ndate: ").map(|i| from + i + 8) {
        let end = at + text[at..].find("\r\n").unwrap();
        text.replace_range(at..end, "-");
        from = at;
    }
    text.replace("connection: close\r\n", "")
}

#[test]
fn pipelined_requests_are_answered_byte_exact_whatever_their_methods_and_splits() {
    // Bare actix-web answers a pipelined HEAD with a body, and a GET after
    // a HEAD without one: its codec has one HEAD flag per connection, set by
    // the last request parsed. Each answer here must be what the same
    // request gets alone.
    let addr = format!("127.0.0.1:{}", free_port());
    let _proc = start(&addr, &[]);
    let alone: String = PIPELINE
        .iter()
        .map(|r| {
            let close = if r.contains("Connection: close") {
                r.to_string()
            } else {
                r.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)
            };
            answers_to(&addr, &[close.as_bytes()])
        })
        .collect();
    let whole = PIPELINE.concat();
    assert_eq!(
        answers_to(&addr, &[whole.as_bytes()]),
        alone,
        "written in one piece"
    );
    for cut in 1..whole.len() {
        let (a, b) = whole.as_bytes().split_at(cut);
        assert_eq!(answers_to(&addr, &[a, b]), alone, "split after byte {cut}");
    }
}

/// Reads one answer from `stream` (the head, then a body by
/// Content-Length), or None when the connection ends first.
fn read_answer(stream: &mut TcpStream) -> Option<Response> {
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).ok()?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).ok()?;
        match line.trim_end().split_once(':') {
            Some((k, v)) => headers.push((k.trim().to_owned(), v.trim().to_owned())),
            None => break,
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A chunked body whose trailer section holds a bare LF: actix-http reads
/// the LF as a byte of a trailer line and goes on reading the body, so the
/// bytes that follow, a second request to an eye that ends the body at the
/// LF, are trailer. The framing follower once ended the body at the LF,
/// called the connection idle, and a reload handed it over: the successor
/// answered the "second request" that the old process had read as trailer
/// (a desync). Now the connection stays with the process that read it: the
/// second request is the old process's to answer, or nobody's.
#[test]
fn a_bare_lf_in_a_chunked_trailer_never_hands_a_connection_over_mid_request() {
    let addr = format!("127.0.0.1:{}", free_port());
    let proc = start(&addr, &[]);
    let old = answering_pid(&addr, Duration::from_secs(5));
    let mut conns = Vec::new();
    for path in ["/", "/nope"] {
        for last_chunk in ["0\r\n\n", "0\r\nX-T: 1\n\r\n"] {
            let mut s = connect_tcp(&addr).unwrap();
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n{last_chunk}"
            );
            s.write_all(request.as_bytes()).unwrap();
            let first = read_answer(&mut s).expect("the first request is answered");
            assert_eq!(first.status, if path == "/" { 200 } else { 404 });
            conns.push((path, last_chunk, s));
        }
    }
    proc.signal(libc::SIGHUP);
    let new = wait_for_new_pid(&addr, old, Duration::from_secs(10)).expect("a successor serves");
    for (path, last_chunk, mut s) in conns {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        if let Some(answer) = read_answer(&mut s) {
            assert_ne!(
                answer.pid(),
                new,
                "GET {path} with a last chunk {last_chunk:?}: the successor answered what the \
                 old process read as trailer"
            );
        }
    }
}

/// The same bodies on a route that reads them: actix-http needs the CRLF
/// that ends its trailer section, and a follower that thought the body had
/// ended held those bytes back until the body timeout (408 after 30 s).
/// bare actix-web answers at once; so must handoff.
#[test]
fn a_bare_lf_in_a_chunked_trailer_is_not_held_back_from_the_decoder() {
    let addr = format!("127.0.0.1:{}", free_port());
    let _proc = start(&addr, &[("HANDOFF__SERVER__CLIENT_BODY_TIMEOUT", "10s")]);
    for last_chunk in ["0\r\n\n\r\n\r\n", "0\r\nX-T: 1\n\r\n\r\n"] {
        let mut s = connect_tcp(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        let request = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n{last_chunk}"
        );
        s.write_all(request.as_bytes()).unwrap();
        let answer = read_answer(&mut s);
        let took = started.elapsed();
        let answer = answer.unwrap_or_else(|| panic!("{last_chunk:?}: no answer in {took:?}"));
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "hello"),
            "{last_chunk:?}"
        );
        assert!(
            took < Duration::from_secs(2),
            "{last_chunk:?}: answered after {took:?}"
        );
    }
}

/// Only the whole HTTP/2 preface makes a plain connection HTTP/2: `PRI` is a
/// method like any other to HTTP/1.1, and a request with it is answered as
/// HTTP/1.1 (actix-web answers 404 for a path it has no route for).
#[test]
fn a_request_with_the_method_pri_is_answered_as_http_1_1() {
    let addr = format!("127.0.0.1:{}", free_port());
    let _proc = start(&addr, &[]);
    let mut s = connect_tcp(&addr).unwrap();
    s.write_all(b"PRI /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_answer(&mut s).expect("an HTTP/1.1 answer");
    assert_eq!(answer.status, 404, "{answer:?}");
}
