//! The same clients over HTTP/3 (quinn and h3, as a Rust service's own
//! HTTP/3 client would be built), with what a browser does at a GOAWAY: a
//! request not yet sent when the server said GOAWAY goes on a new
//! connection, and that is no failure and no retry. A request the server
//! refused unprocessed (H3_REQUEST_REJECTED, RFC 9114 §4.1.1) is sent once
//! more on a new connection, and counted as retried. Every other failure
//! counts: a handshake that fails, a reset stream, a connection that ends
//! under a request, a timeout, a non-2xx answer, an echo that differs.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use h3::error::{Code, StreamError};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::{Group, Outcome, Running, Sample, XorShift, pid_in};

type Requests = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// The name the server's certificate must carry.
const SERVER_NAME: &str = "localhost";

/// A client of `group` over HTTP/3: GET back to back (`ka`), a new
/// connection per request (`close`), or pooled POSTs with pauses; trusting
/// the certificates in `ca`.
pub(crate) async fn client(run: &Running, group: &Group, ca: &Path, seed: u64) -> Vec<Sample> {
    let endpoint = match endpoint(run.addr, ca) {
        Ok(e) => e,
        Err(why) => return vec![run.sample(Instant::now(), Outcome::Connect(why), None, false)],
    };
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut conn: Option<Requests> = None;
    let mut samples = Vec::new();
    let mut n: u64 = 0;
    while run.go_on() {
        n += 1;
        let started = Instant::now();
        let body = group.pooled_pause.map(|_| {
            Bytes::from(format!(
                "client {seed:x} request {n} {}",
                "x".repeat((n % 64) as usize)
            ))
        });
        let result = tokio::time::timeout(
            run.timeout,
            exchange(&endpoint, &mut conn, run.addr, &group.path, body.clone()),
        )
        .await;
        let (outcome, pid, retried) = match result {
            Err(_) => (Outcome::Timeout, None, false),
            Ok(Err((outcome, retried))) => (outcome, None, retried),
            Ok(Ok((status, answer, retried))) => {
                let outcome = if !(200..300).contains(&status) {
                    Outcome::Status(status)
                } else if body.as_ref().is_some_and(|b| *b != answer) {
                    Outcome::Io("echo differs from the body sent".to_owned())
                } else {
                    Outcome::Ok
                };
                (outcome, pid_in(&String::from_utf8_lossy(&answer)), retried)
            }
        };
        let failed = !outcome.is_ok();
        samples.push(run.sample(started, outcome, pid, retried));
        if failed || !group.keep_alive {
            conn = None;
        }
        match group.pooled_pause {
            Some(max) => tokio::time::sleep(max.mul_f64(rng.unit())).await,
            None if failed => tokio::time::sleep(Duration::from_millis(5)).await,
            None => {}
        }
    }
    drop(conn);
    endpoint.wait_idle().await;
    samples
}

/// A client endpoint on a UDP socket of its own.
fn endpoint(server: SocketAddr, ca: &Path) -> Result<quinn::Endpoint, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let mut endpoint = quinn::Endpoint::client(local).map_err(|e| e.to_string())?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    Ok(endpoint)
}

/// One request: GET `path`, or POST `body` to it; its status, its body and
/// whether it was sent twice. A connection is opened when there is none,
/// or when the server said GOAWAY on the last one.
async fn exchange(
    endpoint: &quinn::Endpoint,
    conn: &mut Option<Requests>,
    addr: SocketAddr,
    path: &str,
    body: Option<Bytes>,
) -> Result<(u16, Bytes, bool), (Outcome, bool)> {
    let mut retried = false;
    // A GOAWAY, then a refusal: at most a third connection.
    for _ in 0..3 {
        if conn.is_none() {
            *conn = Some(connect(endpoint, addr).await.map_err(|o| (o, retried))?);
        }
        let requests = conn.as_mut().expect("connected above");
        let request = http::Request::builder()
            .method(if body.is_some() { "POST" } else { "GET" })
            .uri(format!("https://{SERVER_NAME}{path}"))
            .body(())
            .expect("a request from a path");
        let mut stream = match requests.send_request(request).await {
            Ok(s) => s,
            // The server said GOAWAY: this request was never sent.
            Err(StreamError::RemoteClosing { .. }) => {
                *conn = None;
                continue;
            }
            Err(e) => return Err((stream_failure(&e), retried)),
        };
        let sent = async {
            if let Some(body) = &body {
                stream.send_data(body.clone()).await?;
            }
            stream.finish().await?;
            let head = stream.recv_response().await?;
            let mut answer = Vec::new();
            while let Some(mut chunk) = stream.recv_data().await? {
                while chunk.has_remaining() {
                    let piece = chunk.chunk();
                    answer.extend_from_slice(piece);
                    let len = piece.len();
                    chunk.advance(len);
                }
            }
            Ok::<_, StreamError>((head.status().as_u16(), Bytes::from(answer)))
        }
        .await;
        match sent {
            Ok((status, answer)) => return Ok((status, answer, retried)),
            Err(StreamError::RemoteTerminate { code, .. }) if code == Code::H3_REQUEST_REJECTED => {
                retried = true;
                *conn = None;
            }
            Err(e) => return Err((stream_failure(&e), retried)),
        }
    }
    Err((
        Outcome::Io("refused on three connections in a row".to_owned()),
        retried,
    ))
}

/// A new QUIC connection and HTTP/3 on it, its driver spawned.
async fn connect(endpoint: &quinn::Endpoint, addr: SocketAddr) -> Result<Requests, Outcome> {
    let connecting = endpoint
        .connect(addr, SERVER_NAME)
        .map_err(|e| Outcome::Connect(e.to_string()))?;
    let quic = connecting
        .await
        .map_err(|e| Outcome::Connect(e.to_string()))?;
    let (mut driver, requests) = h3::client::new(h3_quinn::Connection::new(quic))
        .await
        .map_err(|e| Outcome::Connect(e.to_string()))?;
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok(requests)
}

/// A failed request as the load's outcome.
fn stream_failure(e: &StreamError) -> Outcome {
    match e {
        StreamError::RemoteTerminate { code, .. } => Outcome::Io(format!("stream reset {code}")),
        other => Outcome::Io(other.to_string()),
    }
}
