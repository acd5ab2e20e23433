//! HTTPS on a plain process: sockets named `https` serve TLS with the
//! certificate and key of `[tls]`, checked at every start; a reload is how a
//! renewed certificate is taken up, and one that cannot be used fails the
//! reload while the old process serves on. Certificates are made here with
//! openssl, and the clients are curl, openssl s_client and Python's
//! requests and http.client.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::clients::*;
use support::*;

const EX_TEMPFAIL: i32 = 75;
const EX_CONFIG: i32 = 78;

/// A certificate authority of the test's own and the certificates it issues
/// for `localhost` and 127.0.0.1, as files in a temporary folder.
struct Pki {
    dir: tempfile::TempDir,
    issued: usize,
}

/// One issued certificate: its files and its serial number, as openssl
/// prints it (`serial=...`).
struct Issued {
    cert: PathBuf,
    key: PathBuf,
    serial: String,
}

fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            &[
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
                "/CN=handoff test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
            dir.path(),
        );
        std::fs::write(
            dir.path().join("leaf.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        Self { dir, issued: 0 }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A new key and a certificate for it, valid for `days`.
    fn issue(&mut self, days: u32) -> Issued {
        self.issued += 1;
        let name = format!("leaf{}", self.issued);
        let (key, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let dir = self.dir.path();
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
            dir,
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &format!("{}", 1000 + self.issued),
                "-days",
                &days.to_string(),
                "-extfile",
                "leaf.ext",
                "-out",
                &cert,
            ],
            dir,
        );
        let serial = openssl(&["x509", "-in", &cert, "-noout", "-serial"], dir);
        Issued {
            cert: dir.join(cert),
            key: dir.join(key),
            serial,
        }
    }

    /// Where the service reads its certificate and key: the files a
    /// renewal replaces.
    fn live(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("live.crt"),
            self.dir.path().join("live.key"),
        )
    }

    /// Installs `cert` and `key` as the live files, each replaced at once
    /// (renamed into place, as certbot and lego do).
    fn install(&self, cert: &Path, key: &Path) {
        let (live_cert, live_key) = self.live();
        for (from, to) in [(cert, &live_cert), (key, &live_key)] {
            let tmp = to.with_extension("new");
            std::fs::copy(from, &tmp).unwrap();
            std::fs::rename(&tmp, to).unwrap();
        }
    }
}

/// handoff bound to `http` and, for HTTPS, `https`, with the live files.
fn start(pki: &Pki, http: &str, https: &str, env: &[(&str, &str)]) -> Proc {
    let (cert, key) = pki.live();
    let mut cmd = handoff();
    cmd.args(["--listen", http])
        .env("HANDOFF__TLS__LISTEN", https)
        .env("HANDOFF__TLS__CERTIFICATE", &cert)
        .env("HANDOFF__TLS__KEY", &key)
        .envs(env.iter().copied());
    Proc::spawn(cmd)
}

/// The serial number of the certificate a new handshake on `addr` sees.
fn served_serial(addr: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr} -servername localhost </dev/null 2>/dev/null \
             | openssl x509 -noout -serial"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn metric(addr: &str, line_prefix: &str) -> f64 {
    let body = get(addr, "/metrics").unwrap().body;
    body.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[test]
fn a_socket_named_https_serves_tls_to_curl_beside_plain_http() {
    let mut pki = Pki::new();
    let leaf = pki.issue(30);
    pki.install(&leaf.cert, &leaf.key);
    let (http, https) = (free_port(), free_port());
    let (cert, key) = pki.live();
    // systemd's own tool passes the two sockets, named as a unit names them.
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args([
        &format!("--listen=127.0.0.1:{http}"),
        &format!("--listen=127.0.0.1:{https}"),
        "--fdname=http:https",
        "-E",
        "HANDOFF__LOG__FORMAT=text",
        "-E",
        &format!("HANDOFF__TLS__CERTIFICATE={}", cert.display()),
        "-E",
        &format!("HANDOFF__TLS__KEY={}", key.display()),
        bin(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let _proc = Proc::spawn(cmd);
    let plain = format!("127.0.0.1:{http}");
    let pid = answering_pid(&plain, Duration::from_secs(10));

    let url = format!("https://localhost:{https}/");
    let ca = pki.ca();
    let (ok, body, log) = curl(&["-v", "--http1.1", "--cacert", ca.to_str().unwrap(), &url]);
    assert!(ok, "{log}");
    assert!(body.contains(&format!(" pid {pid} ")), "{body}");
    assert!(log.contains("ALPN: server accepted http/1.1"), "{log}");
    assert!(log.contains("SSL connection using TLSv1.3"), "{log}");
    // TLS 1.2 clients are served too.
    let (ok, _, log) = curl(&[
        "-v",
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        "--cacert",
        ca.to_str().unwrap(),
        &url,
    ]);
    assert!(ok && log.contains("TLSv1.2"), "{log}");
    // A client that does not trust the CA refuses the certificate.
    let (ok, _, log) = curl(&[&url]);
    assert!(
        !ok,
        "curl trusted a certificate of the test's own CA: {log}"
    );
    // Plain HTTP on the https socket is not served; on the http one it is.
    let (ok, _, _) = curl(&[&format!("http://127.0.0.1:{https}/")]);
    assert!(!ok);
    assert_eq!(get(&plain, "/").unwrap().status, 200);
    let m = get(&plain, "/metrics").unwrap().body;
    assert!(
        m.contains("handoff_tls_handshakes_total{result=\"ok\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("handoff_tls_handshakes_total{result=\"failed\"}"),
        "{m}"
    );
}

#[test]
fn check_config_and_start_refuse_tls_files_that_cannot_serve() {
    let mut pki = Pki::new();
    let a = pki.issue(30);
    let b = pki.issue(30);
    let check = |cert: &Path, key: &Path| {
        let out = handoff()
            .arg("check-config")
            .env("HANDOFF__TLS__CERTIFICATE", cert)
            .env("HANDOFF__TLS__KEY", key)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(check(&a.cert, &a.key).0, Some(0));
    let (code, err) = check(&a.cert, &b.key);
    assert_eq!(code, Some(EX_CONFIG), "{err}");
    assert!(
        err.contains(&format!(
            "tls.key = {:?}: not the key of the certificate in {:?}",
            b.key, a.cert
        )),
        "{err}"
    );
    let missing = pki.dir.path().join("missing.crt");
    let (code, err) = check(&missing, &a.key);
    assert_eq!(code, Some(EX_CONFIG), "{err}");
    assert!(
        err.contains(&format!("tls.certificate = {missing:?}: cannot read")),
        "{err}"
    );
    // Expiring within 14 days: served, with a warning naming the date.
    let soon = pki.issue(3);
    let (code, err) = check(&soon.cert, &soon.key);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: tls.certificate") && err.contains("renew it and reload"),
        "{err}"
    );

    // A start refuses the same, before it takes a socket.
    let port = free_port();
    let mut proc = start(
        &pki,
        &format!("127.0.0.1:{}", free_port()),
        &format!("127.0.0.1:{port}"),
        &[],
    );
    let (status, err) = proc.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(EX_CONFIG), "{err}");
    // In check-config's words (the README quotes them).
    assert!(
        err.contains("handoff: invalid configuration: tls.certificate") && err.contains("live.crt"),
        "{err}"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    // An https socket without [tls]: refused, naming the socket.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cmd = with_listen_fds(handoff(), vec![listener.into()], Some("https"), None);
    let mut proc = Proc::spawn(cmd);
    let (status, err) = proc.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(EX_CONFIG), "{err}");
    assert!(
        err.contains("name \"https\"") && err.contains("needs tls.certificate and tls.key"),
        "{err}"
    );
}

#[test]
fn pooled_https_clients_lose_nothing_across_10_reloads_each_with_a_renewed_certificate() {
    let mut pki = Pki::new();
    let first = pki.issue(30);
    pki.install(&first.cert, &first.key);
    let (http, https) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let _proc = start(&pki, &http, &https, &[]);
    let mut pid = answering_pid(&http, Duration::from_secs(10));
    assert_eq!(served_serial(&https), first.serial);

    let clients = PooledClients::start(
        &format!("https://localhost:{}", port_of(&https)),
        16,
        &pki.ca(),
    );
    std::thread::sleep(Duration::from_secs(1));
    let mut pids = vec![pid];
    let started = Instant::now();
    for round in 1..=10 {
        let renewed = pki.issue(30);
        pki.install(&renewed.cert, &renewed.key);
        // SAFETY: kill(2) on a pid this test started.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
        pid = wait_for_new_pid(&http, pid, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("round {round}: no successor serves"));
        pids.push(pid);
        assert_eq!(
            served_serial(&https),
            renewed.serial,
            "round {round}: a new handshake after the reload"
        );
        std::thread::sleep(Duration::from_millis(700));
    }
    let took = started.elapsed();
    let totals = clients.finish();
    let (ok, failed) = (
        totals["ok"].as_u64().unwrap(),
        totals["failed"].as_u64().unwrap(),
    );
    report(
        "tls-reload",
        &format!(
            "HTTPS, 16 pooled Python clients (requests: keep-alive, GET and POST, 0-300 ms pauses, \
             no retry), 10 reloads each with a renewed certificate in {:.1} s: {ok} requests, \
             {failed} failed, {} answered with Connection: close, {} connections, {} replaced \
             by urllib3; requests by answering pid {}\n",
            took.as_secs_f64(),
            totals["closes"],
            totals["connections"],
            totals["dropped"],
            totals["pids"]
        ),
    );
    assert_eq!(failed, 0, "{totals}");
    assert!(ok > 500, "{totals}");
    // How clients move: a TLS connection stays with its process, whose
    // next answer on it says Connection: close after a reload (at least
    // one per reload). urllib3 keeps such a connection in its pool and
    // replaces it before the next request ("Resetting dropped
    // connection"), so every replacement must follow an announced close:
    // one more would be a connection dropped without a word.
    let count = |key: &str| totals[key].as_u64().unwrap();
    assert!(count("closes") >= 10, "{totals}");
    assert_eq!(
        count("dropped"),
        count("closes") - count("pending_closes"),
        "{totals}"
    );
    assert_eq!(count("connections"), 16, "{totals}");
    // Every process answered HTTPS requests.
    for p in &pids {
        assert!(
            totals["pids"].get(p.to_string()).is_some(),
            "pid {p} answered none: {totals}"
        );
    }
}

#[test]
fn a_renewal_with_the_key_of_another_certificate_fails_the_reload_and_the_old_certificate_serves_on()
 {
    let mut pki = Pki::new();
    let good = pki.issue(30);
    pki.install(&good.cert, &good.key);
    let (http, https) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let (cert, key) = pki.live();
    let _proc = start(&pki, &http, &https, &[]);
    let pid = answering_pid(&http, Duration::from_secs(10));

    let other = pki.issue(30);
    let renewed = pki.issue(30);
    pki.install(&renewed.cert, &other.key);
    let out = handoff()
        .args(["reload", "--pid", &pid.to_string()])
        .env("HANDOFF__TLS__CERTIFICATE", &cert)
        .env("HANDOFF__TLS__KEY", &key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EX_TEMPFAIL), "{err}");
    assert!(
        err.contains("configuration is invalid")
            && err.contains(&format!("pid {pid} keeps serving")),
        "{err}"
    );
    assert_eq!(answering_pid(&http, Duration::from_secs(5)), pid);
    assert_eq!(served_serial(&https), good.serial);
    let ca = pki.ca();
    let (ok, body, log) = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        &format!("https://localhost:{}/", port_of(&https)),
    ]);
    assert!(ok && body.contains(&format!(" pid {pid} ")), "{log}");
}

#[test]
fn a_client_that_stalls_its_handshake_is_closed_at_the_handshake_timeout() {
    let mut pki = Pki::new();
    let leaf = pki.issue(30);
    pki.install(&leaf.cert, &leaf.key);
    let (http, https) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let _proc = start(
        &pki,
        &http,
        &https,
        &[("HANDOFF__TLS__HANDSHAKE_TIMEOUT", "1s")],
    );
    answering_pid(&http, Duration::from_secs(10));
    // One says nothing; one sends the first bytes of a ClientHello and stops.
    let mut silent = std::net::TcpStream::connect(&https).unwrap();
    let mut partial = std::net::TcpStream::connect(&https).unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let started = Instant::now();
    for s in [&mut silent, &mut partial] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let n = std::io::Read::read(s, &mut buf).unwrap_or_else(|e| panic!("not closed: {e}"));
        assert_eq!(n, 0, "expected the end of the stream");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(
        metric(&http, "handoff_tls_handshakes_total{result=\"timeout\"}"),
        2.0
    );
}

#[test]
fn an_idle_https_connection_stays_with_the_old_process_and_its_next_request_is_answered_with_connection_close()
 {
    let mut pki = Pki::new();
    let leaf = pki.issue(30);
    pki.install(&leaf.cert, &leaf.key);
    let (http, https) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut proc = start(
        &pki,
        &http,
        &https,
        &[("HANDOFF__SERVER__KEEP_ALIVE", "10s")],
    );
    let old = answering_pid(&http, Duration::from_secs(10));
    // Python's http.client on one kept connection: a request, then another
    // when told (a line on stdin), each printed as `status pid connection`.
    let script = r#"
import http.client, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
conn = http.client.HTTPSConnection("localhost", int(sys.argv[1]), context=ctx, timeout=10)
for _ in sys.stdin:
    conn.request("GET", "/")
    r = conn.getresponse()
    body = r.read().decode()
    print(r.status, body.split(" pid ")[1].split()[0], r.getheader("connection"), flush=True)
"#;
    let mut client = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(port_of(&https))
        .arg(pki.ca())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = client.stdin.take().unwrap();
    let mut output = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut ask = || {
        writeln!(input, "go").unwrap();
        output.next().unwrap().unwrap()
    };
    assert_eq!(ask(), format!("200 {old} None"));
    proc.signal(libc::SIGHUP);
    let new = wait_for_new_pid(&http, old, Duration::from_secs(20)).unwrap();
    // Drained: no longer accepting, and this connection was not closed under
    // the client: its next request is answered here, with the close.
    assert_eq!(ask(), format!("200 {old} close"));
    assert!(
        wait_gone(old, Duration::from_secs(10)),
        "the old process stayed"
    );
    let (_, log) = proc.wait(Duration::from_secs(1));
    assert!(
        log.contains("TLS connections stay in this process") && log.contains("tls_connections=1"),
        "{log}"
    );
    // The client's next connection goes to the new process.
    assert_eq!(ask(), format!("200 {new} None"));
    drop(input);
    let _ = client.wait();
}

/// Python's `ssl` on new connections, each offering the session of the
/// last: one line on stdin makes one connection and prints
/// `pid session_reused`.
const RESUMING_CLIENT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
session = None
for _ in sys.stdin:
    raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    tls = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = tls.recv(65536)
        if not chunk:
            break
        data += chunk
    print(data.split(b" pid ")[1].split()[0].decode(), tls.session_reused, flush=True)
    session = tls.session
    tls.close()
"#;

#[test]
fn tls_sessions_resume_on_the_successor_of_a_reload_and_not_on_a_new_process() {
    let mut pki = Pki::new();
    let leaf = pki.issue(30);
    pki.install(&leaf.cert, &leaf.key);
    let (http, https) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let proc = start(&pki, &http, &https, &[]);
    let first = answering_pid(&http, Duration::from_secs(10));
    let mut client = Command::new(python())
        .arg("-c")
        .arg(RESUMING_CLIENT)
        .arg(port_of(&https))
        .arg(pki.ca())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = client.stdin.take().unwrap();
    let mut output = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut connect = || {
        writeln!(input, "go").unwrap();
        output.next().unwrap().unwrap()
    };
    assert_eq!(connect(), format!("{first} False"));
    // Resumption works at all: on the same process.
    assert_eq!(connect(), format!("{first} True"));

    let mut pid = first;
    for round in 1..=3 {
        // SAFETY: kill(2) on a pid this test started.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
        pid = wait_for_new_pid(&http, pid, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("round {round}: no successor"));
        assert_eq!(
            connect(),
            format!("{pid} True"),
            "round {round}: the session did not resume on the successor"
        );
    }

    // A process that was handed no keys (a restart) cannot resume it: the
    // client gets a full handshake, and a new session.
    drop(proc);
    assert!(wait_gone(pid, Duration::from_secs(10)));
    let _restarted = start(&pki, &http, &https, &[]);
    let fresh = answering_pid(&http, Duration::from_secs(10));
    assert_eq!(connect(), format!("{fresh} False"));
    assert_eq!(connect(), format!("{fresh} True"));
    drop(input);
    let _ = client.wait();
}

#[test]
fn a_worker_runs_at_most_max_handshakes_at_once_and_the_next_waits_its_turn() {
    let mut pki = Pki::new();
    let leaf = pki.issue(30);
    pki.install(&leaf.cert, &leaf.key);
    let (http, https) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let _proc = start(
        &pki,
        &http,
        &https,
        &[
            ("HANDOFF__SERVER__WORKERS", "1"),
            ("HANDOFF__TLS__MAX_HANDSHAKES", "1"),
            ("HANDOFF__TLS__HANDSHAKE_TIMEOUT", "3s"),
        ],
    );
    answering_pid(&http, Duration::from_secs(10));
    // The one handshake slot, taken by a client that says nothing.
    let silent_at = Instant::now();
    let _silent = std::net::TcpStream::connect(&https).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let ca = pki.ca();
    let (ok, body, log) = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        &format!("https://localhost:{}/", port_of(&https)),
    ]);
    let answered = silent_at.elapsed();
    assert!(ok && body.starts_with("handoff "), "{log}");
    // Its turn came when the silent one's 3 s were up: the silent one's
    // timeout began when it was accepted, after it connected, so not
    // before 3 s from then (whatever the sleep overshot), and not long
    // after.
    assert!(
        answered >= Duration::from_millis(2950) && answered < Duration::from_secs(6),
        "answered {answered:?} after the silent client connected"
    );
    let m = get(&http, "/metrics").unwrap().body;
    assert!(
        m.contains("handoff_tls_handshakes_total{result=\"timeout\"} 1"),
        "{m}"
    );
}
