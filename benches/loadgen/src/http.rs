//! One HTTP/1.1 exchange on a kept or new TCP connection, with the response
//! read exactly as RFC 9112 §6.3 frames it, and every way it can fail told
//! apart. The client is a few lines over a socket, not an HTTP library, so
//! that connection reuse, retries and failure kinds are exactly what the
//! crate's docs say.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Outcome;

/// A request that did not get a complete answer.
#[derive(Debug)]
pub(crate) struct Failure {
    pub outcome: Outcome,
    /// The server closed the connection (EOF, reset or broken pipe) before
    /// sending any byte of a response: the one case RFC 9112 §9.3.1 lets a
    /// client retry an idempotent request on a reused connection.
    pub closed_before_response: bool,
}

/// A complete answer.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    /// The connection may carry the next request.
    pub keep_alive: bool,
    pub body: Vec<u8>,
}

/// Sends `request` on `conn` (connecting first when it is None) and reads
/// one response. On any failure the caller must drop the connection.
pub(crate) async fn exchange(
    conn: &mut Option<TcpStream>,
    addr: SocketAddr,
    request: &[u8],
) -> Result<Response, Failure> {
    if conn.is_none() {
        let stream = TcpStream::connect(addr).await.map_err(|e| Failure {
            outcome: Outcome::Connect(io_kind(&e)),
            closed_before_response: false,
        })?;
        let _ = stream.set_nodelay(true);
        *conn = Some(stream);
    }
    let stream = conn.as_mut().expect("connected above");
    stream
        .write_all(request)
        .await
        .map_err(|e| io_failure(&e, true))?;
    read_response(stream, request.starts_with(b"HEAD ")).await
}

/// Reads one response: its head, then a body delimited by chunked coding,
/// by `Content-Length`, by the status (1xx, 204, 304) or the request method
/// (HEAD), or else by the close of the connection.
pub(crate) async fn read_response(
    stream: &mut TcpStream,
    head_request: bool,
) -> Result<Response, Failure> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    let (status, head_len, framing, keep_alive) = loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| io_failure(&e, buf.is_empty()))?;
        if n == 0 {
            return Err(Failure {
                outcome: Outcome::Eof,
                closed_before_response: buf.is_empty(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = parsed.code.unwrap_or(0);
                let framing = body_framing(&parsed, status, head_request)?;
                let close = header(&parsed, "connection").is_some_and(|v| v.contains("close"));
                let keep_alive = !close && framing != BodyFraming::UntilClose;
                break (status, len, framing, keep_alive);
            }
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err(bad(format!("bad response head: {e}"))),
        }
    };
    let mut body = buf.split_off(head_len);
    match framing {
        BodyFraming::Empty => {
            if !body.is_empty() {
                return Err(bad("bytes after a response that has no body".to_owned()));
            }
        }
        BodyFraming::Length(len) => {
            while body.len() < len {
                let n = read_more(stream, &mut chunk).await?;
                body.extend_from_slice(&chunk[..n]);
            }
            if body.len() > len {
                return Err(bad(format!(
                    "{} bytes after a body of Content-Length {len}",
                    body.len() - len
                )));
            }
        }
        BodyFraming::Chunked => body = read_chunked(stream, body, &mut chunk).await?,
        BodyFraming::UntilClose => loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| io_failure(&e, false))?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        },
    }
    Ok(Response {
        status,
        keep_alive,
        body,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFraming {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

fn header(parsed: &httparse::Response<'_, '_>, name: &str) -> Option<String> {
    parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
}

fn body_framing(
    parsed: &httparse::Response<'_, '_>,
    status: u16,
    head_request: bool,
) -> Result<BodyFraming, Failure> {
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyFraming::Empty);
    }
    if header(parsed, "transfer-encoding").is_some_and(|v| v.ends_with("chunked")) {
        return Ok(BodyFraming::Chunked);
    }
    match header(parsed, "content-length") {
        Some(v) => v
            .parse()
            .map(BodyFraming::Length)
            .map_err(|_| bad(format!("bad Content-Length {v:?}"))),
        None => Ok(BodyFraming::UntilClose),
    }
}

/// Reads at least one byte; the end of the stream mid-body is a failure.
async fn read_more(stream: &mut TcpStream, chunk: &mut [u8]) -> Result<usize, Failure> {
    match stream.read(chunk).await {
        Ok(0) => Err(Failure {
            outcome: Outcome::Eof,
            closed_before_response: false,
        }),
        Ok(n) => Ok(n),
        Err(e) => Err(io_failure(&e, false)),
    }
}

/// Decodes a chunked body whose first bytes are in `raw`.
async fn read_chunked(
    stream: &mut TcpStream,
    mut raw: Vec<u8>,
    chunk: &mut [u8],
) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        // A size line.
        let line_end = loop {
            if let Some(i) = raw[at..].windows(2).position(|w| w == b"\r\n") {
                break at + i;
            }
            let n = read_more(stream, chunk).await?;
            raw.extend_from_slice(&chunk[..n]);
        };
        let line = String::from_utf8_lossy(&raw[at..line_end]).into_owned();
        let digits = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(digits, 16)
            .map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
        at = line_end + 2;
        if size == 0 {
            // The blank line, after trailer lines if any.
            loop {
                if raw[at..].starts_with(b"\r\n") {
                    at += 2;
                    break;
                }
                if let Some(i) = raw[at..].windows(4).position(|w| w == b"\r\n\r\n") {
                    at += i + 4;
                    break;
                }
                let n = read_more(stream, chunk).await?;
                raw.extend_from_slice(&chunk[..n]);
            }
            if raw.len() > at {
                return Err(bad("bytes after the end of a chunked body".to_owned()));
            }
            return Ok(body);
        }
        while raw.len() < at + size + 2 {
            let n = read_more(stream, chunk).await?;
            raw.extend_from_slice(&chunk[..n]);
        }
        body.extend_from_slice(&raw[at..at + size]);
        if &raw[at + size..at + size + 2] != b"\r\n" {
            return Err(bad("chunk data not followed by CRLF".to_owned()));
        }
        at += size + 2;
    }
}

fn bad(message: String) -> Failure {
    Failure {
        outcome: Outcome::Io(message),
        closed_before_response: false,
    }
}

pub(crate) fn io_kind(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "refused".into(),
        std::io::ErrorKind::ConnectionReset => "reset".into(),
        std::io::ErrorKind::TimedOut => "timeout".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// An I/O error during an exchange. Only a close (reset, broken pipe) with
/// nothing of a response read counts as "closed before the response".
fn io_failure(e: &std::io::Error, nothing_read: bool) -> Failure {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    let (outcome, closed) = match e.kind() {
        ConnectionReset | BrokenPipe => (Outcome::Reset, true),
        UnexpectedEof => (Outcome::Eof, true),
        _ => (Outcome::Io(io_kind(e)), false),
    };
    Failure {
        outcome,
        closed_before_response: closed && nothing_read,
    }
}
