//! The same `App` (examples/mirror) under actix-web's own `HttpServer`
//! (`bind_auto_h2c`, `bind_rustls_0_23`) and under handoff: the same
//! requests, by clients nobody here wrote (curl over HTTP/1.0, HTTP/1.1,
//! h2c and h2 on TLS; Python's h2 for frames curl will not send), must get
//! the same answers and show the handlers the same request, `AppConfig`
//! and `ConnectionInfo`. What handoff does differently on purpose is listed
//! in the README ("Differences from actix-web's HttpServer") and tested
//! here as such.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::clients::curl;
use support::*;

/// A self-signed certificate for localhost, made with openssl.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// One server: its plain and TLS ports.
struct Server {
    plain: u16,
    tls: u16,
    _proc: Proc,
}

/// The mirror under both servers, on ports of their own.
struct Both {
    actix: Server,
    handoff: Server,
    dir: tempfile::TempDir,
}

fn start_both(handoff_env: &[(&str, &str)]) -> Both {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let ports = || (free_port(), free_port());
    let (plain, tls) = ports();
    let mut cmd = Command::new(example_bin("mirror-actix"));
    cmd.env("LISTEN", format!("127.0.0.1:{plain}"))
        .env("TLS_LISTEN", format!("127.0.0.1:{tls}"))
        .env("TLS_CERT", &cert)
        .env("TLS_KEY", &key)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let actix = Server {
        plain,
        tls,
        _proc: Proc::spawn(cmd),
    };
    let (plain, tls) = ports();
    let mut cmd = service(example_bin("mirror"));
    cmd.args(["--listen", &format!("127.0.0.1:{plain}")])
        .env("HANDOFF__TLS__LISTEN", format!("127.0.0.1:{tls}"))
        .env("HANDOFF__TLS__CERTIFICATE", &cert)
        .env("HANDOFF__TLS__KEY", &key)
        .env("HANDOFF__SERVER__WORKERS", "1")
        .env("HANDOFF__LOG__LEVEL", "warn")
        .envs(handoff_env.iter().copied());
    let handoff = Server {
        plain,
        tls,
        _proc: Proc::spawn(cmd),
    };
    for server in [&actix, &handoff] {
        for port in [server.plain, server.tls] {
            wait_for_port(port);
        }
    }
    Both {
        actix,
        handoff,
        dir,
    }
}

fn wait_for_port(port: u16) {
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a client got: the status line, the headers that say how the answer
/// is framed and what it is, the body; the same for both servers once each
/// server's ports are written as names.
#[derive(Debug, PartialEq)]
struct Answer {
    status: String,
    headers: Vec<String>,
    body: String,
    /// curl's exit status: a stream reset or a cut connection shows here.
    exit: String,
}

/// The headers compared: how the body is framed and what it is. `date`
/// varies, `connection` is where handoff deliberately differs (it closes a
/// connection whose body a handler left unread, which actix-web drains).
const COMPARED: &[&str] = &["content-length", "content-type", "transfer-encoding"];

fn normalize(text: &str, server: &Server) -> String {
    text.replace(&server.plain.to_string(), "PLAIN")
        .replace(&server.tls.to_string(), "TLS")
}

/// curl with `args`, where `{plain}` and `{tls}` stand for the server's
/// base URLs.
fn ask(server: &Server, args: &[&str]) -> Answer {
    let plain = format!("http://127.0.0.1:{}", server.plain);
    let tls = format!("https://127.0.0.1:{}", server.tls);
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{plain}", &plain).replace("{tls}", &tls))
        .collect();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "10", "-k"])
        .args(&args);
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("").trim().to_owned();
    let mut headers: Vec<String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .filter(|(k, _)| COMPARED.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    headers.sort();
    Answer {
        status,
        headers,
        body: normalize(body, server),
        exit: out.status.code().map_or("killed".into(), |c| c.to_string()),
    }
}

/// The same request to both; both answers, for the caller's own checks.
fn same(both: &Both, case: &str, args: &[&str]) -> Answer {
    let bare = ask(&both.actix, args);
    let ours = ask(&both.handoff, args);
    assert_eq!(
        ours, bare,
        "{case}: handoff (left) and actix-web's HttpServer (right) differ"
    );
    println!(
        "{case}: the same: {} {}",
        bare.status,
        bare.headers.join(", ")
    );
    ours
}

fn seen(answer: &Answer) -> serde_json::Value {
    serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("not what the handler saw ({e}): {answer:?}"))
}

#[test]
fn handlers_see_the_same_request_config_and_connection_info_on_every_protocol() {
    let both = start_both(&[]);
    let cases: &[(&str, &[&str])] = &[
        ("HTTP/1.1", &["--http1.1", "{plain}/seen?a=b"]),
        (
            "HTTP/1.0 without a Host",
            &["--http1.0", "-H", "Host:", "{plain}/seen"],
        ),
        (
            "h2c with prior knowledge",
            &["--http2-prior-knowledge", "{plain}/seen"],
        ),
        ("HTTPS, HTTP/1.1", &["--http1.1", "{tls}/seen"]),
        // No ALPN: rustls refuses curl's "http/1.0" (both servers alike).
        (
            "HTTPS, HTTP/1.0 without a Host",
            &["--http1.0", "--no-alpn", "-H", "Host:", "{tls}/seen"],
        ),
        ("HTTPS, h2", &["--http2", "{tls}/seen"]),
        (
            "X-Forwarded headers",
            &[
                "--http1.1",
                "-H",
                "X-Forwarded-Proto: https",
                "-H",
                "X-Forwarded-Host: example.org",
                "-H",
                "X-Forwarded-For: 192.0.2.1",
                "{plain}/seen",
            ],
        ),
        (
            "POST with a body",
            &["--http1.1", "--data-binary", "hello", "{plain}/seen"],
        ),
        (
            "h2 POST with a body",
            &["--http2", "--data-binary", "hello", "{tls}/seen"],
        ),
    ];
    for (case, args) in cases {
        let answer = same(&both, case, args);
        assert!(answer.status.contains(" 200"), "{case}: {answer:?}");
        let seen = seen(&answer);
        // What the differences were, before: every socket said
        // localhost:8080, 127.0.0.1:8080 and not secure.
        let tls = args.iter().any(|a| a.starts_with("{tls}"));
        assert_eq!(seen["app_config"]["secure"], tls, "{case}: {seen}");
        assert_eq!(
            seen["app_config"]["local_addr"],
            if tls {
                "127.0.0.1:TLS"
            } else {
                "127.0.0.1:PLAIN"
            },
            "{case}: {seen}"
        );
    }
    // h2 requests without :authority (curl always sends one): the host is
    // then the AppConfig's, the scheme the request's.
    for (case, mode) in [
        ("h2c without :authority", "h2c"),
        ("h2 without :authority", "tls"),
    ] {
        let frames = |server: &Server| h2_frames(server, mode, "/seen");
        let (bare, ours) = (frames(&both.actix), frames(&both.handoff));
        assert_eq!(
            ours, bare,
            "{case}: handoff (left) and actix-web (right) differ"
        );
        println!("{case}: the same: {} {}", bare.0, bare.1);
    }
}

/// One HTTP/2 GET of `path` without `:authority`, by Python's h2 over TLS
/// (`mode` "tls") or h2c: the status, the body (ports as names), and how
/// the stream ended (its end, or the reset and its code).
fn h2_frames(
    server: &Server,
    mode: &str,
    path: &str,
) -> (serde_json::Value, String, serde_json::Value) {
    let port = if mode == "tls" {
        server.tls
    } else {
        server.plain
    };
    let scheme = if mode == "tls" { "https" } else { "http" };
    let out = Command::new(python())
        .arg(root().join("tests/clients/h2_frames.py"))
        .args(["127.0.0.1", &port.to_string(), mode])
        .args([
            ":method=GET",
            &format!(":scheme={scheme}"),
            &format!(":path={path}"),
        ])
        .output()
        .expect("python3 tests/clients/h2_frames.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let body = normalize(got["body"].as_str().unwrap(), server);
    (got["headers"][0].clone(), body, got["end"].clone())
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn bodies_are_bounded_by_the_apps_own_limits_as_under_httpserver() {
    let both = start_both(&[]);
    let file = both.dir.path().join("one-mib");
    std::fs::write(&file, vec![b'x'; 1024 * 1024]).unwrap();
    let data = format!("@{}", file.display());
    let stdin = |args: &[&str], server: &Server| {
        // `-T -`: curl does not know the length: chunked on HTTP/1.1, no
        // content-length on h2.
        let mut cmd = Command::new("sh");
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{plain}", &format!("http://127.0.0.1:{}", server.plain))
                    .replace("{tls}", &format!("https://127.0.0.1:{}", server.tls))
            })
            .collect();
        cmd.arg("-c")
            .arg(format!(
                "curl -sS -k --max-time 10 -o /dev/null -w '%{{http_code}} %{{http_version}}' -X POST -T - {} < '{}'",
                args.join(" "),
                file.display()
            ));
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
    };
    for (case, route, args) in [
        ("1 MiB with its length", "upload", vec!["--http1.1"]),
        ("1 MiB with its length, h2", "upload", vec!["--http2"]),
        ("1 MiB streamed", "payload", vec!["--http1.1"]),
        ("1 MiB streamed, h2", "payload", vec!["--http2"]),
    ] {
        let tls = args.contains(&"--http2");
        let url = if tls { "{tls}" } else { "{plain}" };
        let mut full = args.clone();
        full.extend(["--data-binary", &data]);
        let path = format!("{url}/{route}");
        full.push(&path);
        let answer = same(&both, case, &full);
        assert!(answer.status.contains(" 200"), "{case}: {answer:?}");
        assert_eq!(answer.body, r#"{"len":1048576}"#, "{case}");
        // And with no length announced.
        let (bare, ours) = (
            stdin(&[args[0], &path], &both.actix),
            stdin(&[args[0], &path], &both.handoff),
        );
        assert_eq!(ours, bare, "{case}, no length announced");
        assert!(
            ours.starts_with("200"),
            "{case}, no length announced: {ours}"
        );
    }
    // Past the route's own 10 MiB: 413 from both.
    let eleven = both.dir.path().join("eleven-mib");
    std::fs::write(&eleven, vec![b'x'; 11 * 1024 * 1024]).unwrap();
    let data = format!("@{}", eleven.display());
    let answer = same(
        &both,
        "11 MiB to a route of 10",
        &[
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            &data,
            "{plain}/upload",
        ],
    );
    assert!(answer.status.starts_with("413"), "{answer:?}");
}

#[test]
fn streamed_answers_keep_the_handlers_length_and_a_failing_body_ends_as_actix_ends_it() {
    let both = start_both(&[]);
    for (case, args) in [
        (
            "a streamed body with its length",
            vec!["--http1.1", "{plain}/stream"],
        ),
        (
            "a streamed body with its length, h2c",
            vec!["--http2-prior-knowledge", "{plain}/stream"],
        ),
        (
            "a streamed body with its length, h2",
            vec!["--http2", "{tls}/stream"],
        ),
        (
            "a body that fails after a part",
            vec!["--http1.1", "{plain}/broken"],
        ),
        (
            "a body that fails after a part, h2",
            vec!["--http2", "{tls}/broken"],
        ),
        (
            "a stream with the handler's own length",
            vec!["--http1.1", "{plain}/stream-raw"],
        ),
        (
            "a stream with the handler's own length, h2",
            vec!["--http2", "{tls}/stream-raw"],
        ),
    ] {
        let answer = same(&both, case, &args);
        assert!(answer.status.contains(" 200"), "{case}: {answer:?}");
    }
    // How a failing body ends its stream, frame by frame: the head, what
    // was sent of the body, and the reset (actix-web: CANCEL).
    for path in ["/broken", "/broken-at-once"] {
        let (bare, ours) = (
            h2_frames(&both.actix, "tls", path),
            h2_frames(&both.handoff, "tls", path),
        );
        assert_eq!(
            ours, bare,
            "{path}, h2: handoff (left) and actix-web (right) differ"
        );
        println!("{path}, h2: the same: {bare:?}");
    }
    // HEAD to a GET route: actix-web's guard does not take it (404), both.
    same(
        &both,
        "HEAD of a streamed body, h2",
        &["--http2", "-I", "{tls}/stream"],
    );
}

/// Deliberately different: one bound on request heads, the same on
/// HTTP/1.1 (plain and TLS) and HTTP/2 (`limits.max_head_bytes`, 32 KiB by
/// default), where actix-web's own is its 128 KiB read buffer on HTTP/1.1
/// and h2's 16 MiB on HTTP/2.
#[test]
fn one_head_limit_answers_431_on_every_protocol() {
    let both = start_both(&[("HANDOFF__LIMITS__MAX_HEAD_BYTES", "16384")]);
    let big = format!("X-Big: {}", "b".repeat(20 * 1024));
    let small = format!("X-Big: {}", "b".repeat(12 * 1024));
    for (case, args) in [
        ("HTTP/1.1", ["--http1.1", "{plain}/seen"]),
        ("HTTPS, HTTP/1.1", ["--http1.1", "{tls}/seen"]),
        ("h2c", ["--http2-prior-knowledge", "{plain}/seen"]),
        ("HTTPS, h2", ["--http2", "{tls}/seen"]),
    ] {
        let with = |header: &str, server: &Server| {
            let mut full = vec!["-H", header];
            full.extend(args);
            ask(server, &full)
        };
        let refused = with(&big, &both.handoff);
        assert!(
            refused.status.contains(" 431"),
            "{case}, 20 KiB: {refused:?}"
        );
        let served = with(&small, &both.handoff);
        assert!(served.status.contains(" 200"), "{case}, 12 KiB: {served:?}");
        let bare = with(&big, &both.actix);
        assert!(
            bare.status.contains(" 200"),
            "{case}, actix-web, 20 KiB: {bare:?}"
        );
        println!(
            "{case}: 20 KiB head: handoff {}, actix-web {}",
            refused.status, bare.status
        );
    }
}

/// With `limits.max_body_bytes` set, every body is bounded by it, whether
/// it announces its length or not, on every route (413, naming the
/// setting); unset (above), the routes' own limits decide.
#[test]
fn limits_max_body_bytes_bounds_every_body_announced_or_not() {
    let both = start_both(&[("HANDOFF__LIMITS__MAX_BODY_BYTES", "1000")]);
    let file = both.dir.path().join("body");
    std::fs::write(&file, vec![b'x'; 2000]).unwrap();
    let data = format!("@{}", file.display());
    for (case, args) in [
        (
            "with its length",
            vec!["--http1.1", "--data-binary", &data, "{plain}/upload"],
        ),
        (
            "chunked",
            vec![
                "--http1.1",
                "-H",
                "Transfer-Encoding: chunked",
                "--data-binary",
                &data,
                "{plain}/payload",
            ],
        ),
    ] {
        let answer = ask(&both.handoff, &args);
        assert!(answer.status.contains(" 413"), "{case}: {answer:?}");
        assert!(
            answer.body.contains("limits.max_body_bytes (1000 bytes)"),
            "{case}: {answer:?}"
        );
    }
    // h2, with and without a length. (curl 7.88 takes the RST_STREAM
    // NO_ERROR that follows a complete answer to an unfinished upload for an
    // error, with actix-web's server as with this one: Python's h2 here.)
    let body = "x".repeat(2000);
    for (case, length) in [
        ("h2 with its length", Some("content-length=2000")),
        ("h2 streamed", None),
    ] {
        let out = Command::new(python())
            .arg(root().join("tests/clients/h2_frames.py"))
            .args(["127.0.0.1", &both.handoff.tls.to_string(), "tls"])
            .args([
                ":method=POST",
                ":scheme=https",
                ":path=/payload",
                ":authority=localhost",
            ])
            .args(length)
            .arg(format!("--body={body}"))
            .output()
            .expect("python3 tests/clients/h2_frames.py");
        let got: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{case}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(
            got["headers"][0],
            serde_json::json!([":status", "413"]),
            "{case}: {got}"
        );
        assert!(
            got["body"]
                .as_str()
                .unwrap()
                .contains("limits.max_body_bytes (1000 bytes)"),
            "{case}: {got}"
        );
    }
    let (ok, out, err) = curl(&[
        "--http1.1",
        "--data-binary",
        "small",
        &format!("http://127.0.0.1:{}/payload", both.handoff.plain),
    ]);
    assert!(ok && out == r#"{"len":5}"#, "{out} {err}");
}
