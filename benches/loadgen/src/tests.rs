//! How loadgen classifies what a server does, against small local servers
//! that misbehave on purpose, and the parts that need no server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::*;

/// What the fixture does with each request on a connection, in order; after
/// the last one it closes the connection.
#[derive(Clone, Copy)]
enum Reply {
    /// A complete answer that keeps the connection open.
    Answer,
    /// Reads the request, then closes without a byte.
    Close,
    /// Sends a head announcing 10 bytes, sends 5, closes.
    Half,
    /// Reads the request and never answers.
    Stall,
    /// An answer with neither length nor chunks: the body ends at the close.
    NoLength,
    /// A chunked answer.
    Chunked,
    /// Answers every request from here on.
    Forever,
}

/// A server on loopback that answers the requests of each connection as
/// `script` says; the script starts again on each new connection.
fn fixture(script: &'static [Reply]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || serve(conn, script));
        }
    });
    addr
}

fn serve(mut conn: TcpStream, script: &[Reply]) {
    let forever = std::iter::repeat(&Reply::Answer);
    let replies = script.iter().take_while(|r| !matches!(r, Reply::Forever));
    let replies: Box<dyn Iterator<Item = &Reply>> =
        if script.iter().any(|r| matches!(r, Reply::Forever)) {
            Box::new(replies.chain(forever))
        } else {
            Box::new(replies)
        };
    for reply in replies {
        let Some(body) = read_request(&mut conn) else {
            return;
        };
        let echo = String::from_utf8_lossy(&body).into_owned();
        let answer = match reply {
            Reply::Answer | Reply::Forever => format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{echo}",
                echo.len()
            ),
            Reply::Close => return,
            Reply::Half => "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello".to_owned(),
            Reply::Stall => {
                std::thread::sleep(Duration::from_secs(5));
                return;
            }
            Reply::NoLength => format!("HTTP/1.1 200 OK\r\n\r\n{echo} pid 7"),
            Reply::Chunked => format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{echo}\r\n0\r\n\r\n",
                echo.len()
            ),
        };
        if conn.write_all(answer.as_bytes()).is_err() {
            return;
        }
        if matches!(reply, Reply::Half | Reply::NoLength) {
            return;
        }
    }
}

/// Reads one request (head and Content-Length body); its body.
fn read_request(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; len];
    conn.read_exact(&mut body).ok()?;
    Some(body)
}

fn running(addr: SocketAddr, timeout: Duration) -> Running {
    Running {
        group_index: 0,
        addr,
        timeout,
        origin: Instant::now(),
        deadline: Instant::now() + Duration::from_secs(60),
        stop: Arc::new(AtomicBool::new(false)),
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

#[tokio::test]
async fn a_kept_connection_closed_before_the_answer_is_retried_once_and_counted() {
    let run = running(
        fixture(&[Reply::Answer, Reply::Close]),
        Duration::from_secs(5),
    );
    let mut conn = None;
    assert_eq!(
        get(&run, &mut conn, GET, true).await,
        (Outcome::Ok, None, false)
    );
    assert!(conn.is_some(), "kept");
    // The second request on it is closed unanswered: retried on a new
    // connection, which answers.
    assert_eq!(
        get(&run, &mut conn, GET, true).await,
        (Outcome::Ok, None, true)
    );
}

#[tokio::test]
async fn a_new_connection_closed_before_the_answer_fails_without_a_retry() {
    let run = running(fixture(&[Reply::Close]), Duration::from_secs(5));
    let (outcome, _, retried) = get(&run, &mut None, GET, true).await;
    assert_eq!((outcome, retried), (Outcome::Eof, false));
}

#[tokio::test]
async fn half_an_answer_fails_and_is_never_retried() {
    let run = running(
        fixture(&[Reply::Answer, Reply::Half]),
        Duration::from_secs(5),
    );
    let mut conn = None;
    get(&run, &mut conn, GET, true).await;
    let (outcome, _, retried) = get(&run, &mut conn, GET, true).await;
    assert_eq!((outcome, retried), (Outcome::Eof, false));
}

#[tokio::test]
async fn a_pooled_request_on_a_connection_closed_before_the_answer_fails() {
    let run = running(
        fixture(&[Reply::Answer, Reply::Close]),
        Duration::from_secs(5),
    );
    let mut conn = None;
    assert_eq!(post_echo(&run, &mut conn, "/echo", 1, 1).await, Outcome::Ok);
    assert_eq!(
        post_echo(&run, &mut conn, "/echo", 1, 2).await,
        Outcome::Eof,
        "never retried: a POST may have been processed"
    );
}

#[tokio::test]
async fn a_stalled_answer_times_out_and_a_timeout_is_never_retried() {
    let run = running(
        fixture(&[Reply::Answer, Reply::Stall]),
        Duration::from_millis(300),
    );
    let mut conn = None;
    get(&run, &mut conn, GET, true).await;
    let (outcome, _, retried) = get(&run, &mut conn, GET, true).await;
    assert_eq!((outcome, retried), (Outcome::Timeout, false));
}

#[tokio::test]
async fn an_answer_without_a_length_ends_at_the_close_and_is_read_whole() {
    let run = running(fixture(&[Reply::NoLength]), Duration::from_secs(5));
    let mut conn = None;
    assert_eq!(
        post_echo(&run, &mut conn, "/echo", 1, 1).await,
        Outcome::Io("echo differs from the body sent".to_owned()),
        "the whole body up to the close is compared, not an empty one"
    );
    assert!(
        conn.is_none(),
        "a body ended by the close ends the connection"
    );
    let (outcome, pid, _) = get(&run, &mut None, GET, true).await;
    assert_eq!((outcome, pid), (Outcome::Ok, Some(7)));
}

#[tokio::test]
async fn chunked_answers_are_decoded() {
    let run = running(
        fixture(&[Reply::Chunked, Reply::Chunked]),
        Duration::from_secs(5),
    );
    let mut conn = None;
    assert_eq!(post_echo(&run, &mut conn, "/echo", 1, 1).await, Outcome::Ok);
    assert!(conn.is_some());
    assert_eq!(post_echo(&run, &mut conn, "/echo", 1, 2).await, Outcome::Ok);
}

#[test]
fn a_disruption_after_the_load_ended_makes_the_run_prove_nothing() {
    let addr = fixture(&[Reply::Forever]);
    let plan = Plan {
        addr,
        groups: vec![Group::new("g", "/", 1, true)],
        duration: Duration::from_millis(600),
        request_timeout: Duration::from_secs(5),
    };
    // Inside: the load runs its settle time after the mark.
    let mut load = Load::start(&plan);
    std::thread::sleep(Duration::from_millis(100));
    load.mark("early");
    let report = load.finish(Duration::from_millis(200));
    assert!(report.outside().is_empty(), "{:?}", report.outside());
    assert!(report.problems(1).is_empty(), "{:?}", report.problems(1));

    // The plan's duration ends the load before the last disruption settled.
    let mut load = Load::start(&plan);
    std::thread::sleep(Duration::from_millis(100));
    load.mark("early");
    std::thread::sleep(Duration::from_millis(500));
    load.mark("late");
    let report = load.finish(Duration::from_millis(200));
    let outside = report.outside();
    assert_eq!(outside.len(), 1, "{outside:?}");
    assert!(outside[0].starts_with("late at 0.6"), "{outside:?}");
    assert!(!report.problems(1).is_empty());
}

#[test]
fn finds_the_pid_in_both_answer_shapes() {
    assert_eq!(
        pid_in("handoff 0.1.0 pid 42 generation 1 started x\n"),
        Some(42)
    );
    assert_eq!(pid_in(r#"{"slept_ms":1000,"pid":7}"#), Some(7));
    assert_eq!(pid_in("hello"), None);
}

#[test]
fn parses_group_specs() {
    let g = Group::parse("slow:/delay/1000:8:close").unwrap();
    assert_eq!((g.clients, g.keep_alive), (8, false));
    assert!(Group::parse("x:/:n:ka").is_err());
    assert!(Group::parse("x:/:1:maybe").is_err());
    let p = Group::parse("pool:/echo:32:pooled300").unwrap();
    assert_eq!(p.pooled_pause, Some(Duration::from_millis(300)));
    assert!(Group::parse("pool:/echo:32:pooledx").is_err());
}

#[test]
fn percentiles_and_failure_kinds() {
    let mk = |lat_ms: u64, outcome| Sample {
        group: 0,
        start_us: 0,
        latency_us: lat_ms * 1000,
        outcome,
        pid: None,
        retried: false,
    };
    let mut samples: Vec<Sample> = (1..=100).map(|i| mk(i, Outcome::Ok)).collect();
    samples.push(mk(500, Outcome::Reset));
    let s = Stats::of("t", &samples);
    assert_eq!((s.requests, s.failed), (101, 1));
    assert_eq!(s.p50_ms, 51.0);
    assert_eq!(s.max_ms, 500.0);
    assert_eq!(s.failures, vec![("reset".to_string(), 1)]);
}
