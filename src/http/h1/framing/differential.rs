//! The follower against actix-http's own decoder, on the same bytes.
//!
//! For generated request streams (every method, bodies by length and by
//! chunks with extensions and trailers, pipelined, leading empty lines) and
//! generic mutations of them (a line end made bare LF or bare CR, a stray
//! CR, LF or NUL, a folded line, a space before a colon, a framing header
//! added, a byte flipped, dropped or the stream cut short), the same bytes
//! go to actix-http's `h1::Codec` (the decoder its dispatcher runs, head and
//! payload, at the version handoff serves with) a byte at a time, and to the
//! follower split whole, a byte at a time and at random cuts. The follower
//! may say "a request ended here" only where actix-http's decoder finished
//! a request, with the same number of requests read: anywhere else a
//! connection could be called idle (and handed over) in the middle of a
//! request, or bytes actix-http still needs would be held back. Past the
//! byte actix-http refuses, nothing is compared: it closes the connection.
//!
//! Seeded: `HANDOFF_FRAMING_SEED` replays a run, `HANDOFF_FRAMING_CASES`
//! sets its size; a failure prints the seed, the case and both sides.

use actix_codec::Decoder;
use actix_http::ServiceConfig;
use actix_http::h1::{Codec, Message, MessageType};
use bytes::BytesMut;

use super::Framing;

/// splitmix64: small, seedable, and enough to spread cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A well-formed request as clients send them, now and then with an odd
/// but valid spelling (lowercase or extension methods, leading zeros,
/// whitespace after a chunk size, extensions, trailers, HTTP/1.0).
fn request(rng: &mut Rng) -> Vec<u8> {
    let method = rng.pick(&[
        "GET", "GET", "HEAD", "POST", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "get",
        "FOO", "PRI",
    ]);
    let target = rng.pick(&["/", "/a/b?c=d", "*", "/x%20y", "/echo"]);
    let version = if rng.percent(85) {
        "HTTP/1.1"
    } else {
        "HTTP/1.0"
    };
    let mut headers: Vec<String> = Vec::new();
    if rng.percent(92) {
        headers.push("Host: h".into());
    }
    for _ in 0..rng.below(3) {
        headers.push(
            rng.pick(&[
                "Accept: */*",
                "X-A: b",
                "User-Agent: t/1",
                "Connection: keep-alive",
                "Connection: close",
                "Expect: 100-continue",
                "Cookie: a=b; c=d",
                "X-Empty:",
                "X-Tab:\tv\t",
                "x-lower: v",
            ])
            .into(),
        );
    }
    let mut body = Vec::new();
    match rng.below(3) {
        0 => {}
        1 => {
            let n = rng.below(20);
            let spelled = if rng.percent(10) {
                format!("0{n}")
            } else {
                n.to_string()
            };
            let name = rng.pick(&["Content-Length", "content-length", "CONTENT-LENGTH"]);
            headers.push(format!("{name}: {spelled}"));
            body.extend((0..n).map(|i| b'a' + (i % 26) as u8));
        }
        _ => {
            let coding = rng.pick(&["chunked", "Chunked", "CHUNKED"]);
            headers.push(format!("Transfer-Encoding: {coding}"));
            for _ in 0..rng.below(4) {
                let n = 1 + rng.below(20);
                let mut size = if rng.percent(50) {
                    format!("{n:x}")
                } else {
                    format!("{n:X}")
                };
                if rng.percent(10) {
                    size.insert_str(0, "000");
                }
                body.extend_from_slice(size.as_bytes());
                body.extend_from_slice(chunk_extension(rng).as_bytes());
                body.extend_from_slice(b"\r\n");
                body.extend((0..n).map(|i| b'0' + (i % 10) as u8));
                body.extend_from_slice(b"\r\n");
            }
            body.push(b'0');
            body.extend_from_slice(chunk_extension(rng).as_bytes());
            body.extend_from_slice(b"\r\n");
            for _ in 0..rng.below(3) {
                body.extend_from_slice(rng.pick(&[&b"T: 1\r\n"[..], b"X-Sum: abc\r\n"]));
            }
            body.extend_from_slice(b"\r\n");
        }
    }
    // Header order is the client's.
    for i in (1..headers.len()).rev() {
        let j = rng.below(i + 1);
        headers.swap(i, j);
    }
    let mut out = format!("{method} {target} {version}\r\n").into_bytes();
    for h in &headers {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

fn chunk_extension(rng: &mut Rng) -> &'static str {
    if rng.percent(75) {
        return "";
    }
    rng.pick(&[";a=b", ";a", "; a=\"q\"", " ", "\t;x=1", ";name=v;o"])
}

/// A framing header that may well be wrong, added to a head.
const FRAMING_HEADERS: &[&str] = &[
    "Content-Length: 3",
    "Content-Length: 0",
    "Content-Length: +3",
    "Content-Length: -1",
    "Content-Length:  3 ",
    "Content-Length: 3, 3",
    "Content-Length: 3 3",
    "Content-Length: 0x3",
    "Content-Length: 18446744073709551616",
    "Content-Length:",
    "Transfer-Encoding: chunked",
    "Transfer-Encoding: gzip, chunked",
    "Transfer-Encoding: chunked, chunked",
    "Transfer-Encoding: chunked, gzip",
    "Transfer-Encoding: identity",
    "Transfer-Encoding: xchunked",
    "Transfer-Encoding:  chunked ",
    "Upgrade: websocket",
    "Upgrade: h2c",
    "Connection: upgrade",
    "Host: other",
];

/// Generic damage, applied anywhere: nothing here knows where a framing
/// follower is weak.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let crlfs: Vec<usize> = bytes
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w == b"\r\n")
        .map(|(i, _)| i)
        .collect();
    let at = rng.below(bytes.len() + 1);
    match rng.below(12) {
        // A line end made a bare LF, or a bare CR.
        0 | 1 if !crlfs.is_empty() => {
            let i = rng.pick(&crlfs);
            bytes.remove(i);
        }
        2 if !crlfs.is_empty() => {
            let i = rng.pick(&crlfs);
            bytes.remove(i + 1);
        }
        3 => bytes.insert(at, rng.pick(&[b'\r', b'\n', 0, b' ', b'\t', 0x7f, 0x80])),
        // A folded line: a line that begins with whitespace.
        4 if !crlfs.is_empty() => {
            let i = rng.pick(&crlfs) + 2;
            let fold: &[u8] = rng.pick(&[&b" folded\r\n"[..], b"\tfolded\r\n"]);
            bytes.splice(i..i, fold.iter().copied());
        }
        // A space (or tab) before a colon.
        5 => {
            let colons: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] == b':').collect();
            if !colons.is_empty() {
                let i = rng.pick(&colons);
                bytes.insert(i, rng.pick(b" \t"));
            }
        }
        // A framing header added after some line end.
        6 | 7 if !crlfs.is_empty() => {
            let i = rng.pick(&crlfs) + 2;
            let line = format!("{}\r\n", rng.pick(FRAMING_HEADERS));
            bytes.splice(i..i, line.into_bytes());
        }
        8 if at < bytes.len() => bytes[at] = rng.next() as u8,
        9 if at < bytes.len() => {
            bytes.remove(at);
        }
        10 => bytes.truncate(at),
        // Empty lines where a request may begin, and digits where a chunk
        // size may be.
        _ => {
            let insert: &[u8] = rng.pick(&[
                &b"\r\n"[..],
                b"\n",
                b"0",
                b"f",
                b"fffffffffffffffff",
                b"-",
                b"+",
                b"0x",
            ]);
            bytes.splice(at..at, insert.iter().copied());
        }
    }
}

fn stream(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..1 + rng.below(3) {
        if rng.percent(8) {
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend(request(rng));
    }
    if rng.percent(80) {
        for _ in 0..1 + rng.below(3) {
            mutate(rng, &mut bytes);
        }
    }
    bytes
}

/// What actix-http's decoder makes of `bytes`, given a byte at a time:
/// where each request ends (and how many had ended there), and how many
/// bytes it had been given when it refused the stream, if it did.
#[derive(Debug)]
struct Actix {
    ends: Vec<(usize, u64)>,
    refused_at: Option<usize>,
}

fn actix(config: &ServiceConfig, bytes: &[u8]) -> Actix {
    let mut codec = Codec::new(config.clone());
    let mut buf = BytesMut::new();
    let (mut ends, mut requests, mut in_payload) = (Vec::new(), 0u64, false);
    for (i, b) in bytes.iter().enumerate() {
        buf.extend_from_slice(&[*b]);
        loop {
            match codec.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(Message::Item(_))) => match codec.message_type() {
                    MessageType::None => {
                        requests += 1;
                        ends.push((i + 1, requests));
                    }
                    MessageType::Payload | MessageType::Stream => in_payload = true,
                },
                Ok(Some(Message::Chunk(Some(_)))) => {}
                Ok(Some(Message::Chunk(None))) => {
                    assert!(in_payload);
                    in_payload = false;
                    requests += 1;
                    ends.push((i + 1, requests));
                }
                Err(_) => {
                    return Actix {
                        ends,
                        refused_at: Some(i + 1),
                    };
                }
            }
        }
    }
    Actix {
        ends,
        refused_at: None,
    }
}

/// Where the follower says a request ended, fed `bytes` in the pieces
/// `cuts` makes, the way a connection feeds it (`take` up to the end of a
/// request at most), with the requests it had counted there.
fn follower(bytes: &[u8], cuts: &[usize]) -> Vec<(usize, u64)> {
    let mut f = Framing::default();
    let mut ends = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain([&bytes.len()]) {
        let mut at = from;
        while at < to {
            let used = f.take(&bytes[at..to]);
            at += used;
            if f.at_boundary() && ends.last().is_none_or(|&(end, _)| end != at) {
                ends.push((at, f.requests()));
            }
            if used == 0 {
                break;
            }
        }
        from = to;
    }
    ends
}

/// The follower's ends that actix-http's decoder does not share, before the
/// byte it refuses: each a place where the follower would call a connection
/// idle mid-request, or hold back bytes the decoder needs.
fn disagreements(actix: &Actix, follower: &[(usize, u64)]) -> Vec<(usize, u64)> {
    follower
        .iter()
        .filter(|(end, _)| actix.refused_at.is_none_or(|r| *end < r))
        .filter(|end| !actix.ends.contains(end))
        .copied()
        .collect()
}

fn cases() -> usize {
    std::env::var("HANDOFF_FRAMING_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn seed() -> u64 {
    std::env::var("HANDOFF_FRAMING_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Runs `cases` generated streams from `seed`; the first disagreement, as a
/// message that names the seed, the case, the split and both sides.
fn run(seed: u64, cases: usize) -> Result<Stats, String> {
    // A service configuration starts actix's date timer: in its runtime.
    actix_web::rt::System::new().block_on(async { run_in_runtime(seed, cases) })
}

fn run_in_runtime(seed: u64, cases: usize) -> Result<Stats, String> {
    let config = ServiceConfig::default();
    let mut rng = Rng(seed);
    let mut stats = Stats::default();
    for case in 0..cases {
        let bytes = stream(&mut rng);
        let decoded = actix(&config, &bytes);
        stats.count(&decoded);
        let mut random_cuts: Vec<usize> = (0..rng.below(6))
            .map(|_| rng.below(bytes.len() + 1))
            .collect();
        random_cuts.sort_unstable();
        let every_byte: Vec<usize> = (1..bytes.len()).collect();
        for (split, cuts) in [
            ("whole", &[][..]),
            ("a byte at a time", &every_byte[..]),
            ("at random cuts", &random_cuts[..]),
        ] {
            let followed = follower(&bytes, cuts);
            let wrong = disagreements(&decoded, &followed);
            if !wrong.is_empty() {
                return Err(format!(
                    "HANDOFF_FRAMING_SEED={seed}, case {case}, fed {split} {cuts:?}:\n\
                     bytes {:?}\n\
                     the follower ends requests at {followed:?} (byte, requests so far)\n\
                     actix-http's decoder at {:?}, refusing at byte {:?}\n\
                     not actix-http's: {wrong:?}",
                    bytes.escape_ascii().to_string(),
                    decoded.ends,
                    decoded.refused_at,
                ));
            }
        }
    }
    Ok(stats)
}

/// What the generated streams were, to show the run covered both sides.
#[derive(Debug, Default)]
struct Stats {
    requests: u64,
    refused: usize,
}

impl Stats {
    fn count(&mut self, decoded: &Actix) {
        self.requests += decoded.ends.last().map_or(0, |&(_, n)| n);
        self.refused += usize::from(decoded.refused_at.is_some());
    }
}

#[test]
fn the_follower_never_ends_a_request_where_actix_http_does_not() {
    let (seed, cases) = (seed(), cases());
    match run(seed, cases) {
        Ok(stats) => {
            println!("{cases} streams from seed {seed}: {stats:?}");
            assert!(stats.requests > cases as u64 / 2, "{stats:?}");
            assert!(stats.refused > cases / 20, "{stats:?}");
        }
        Err(e) => panic!("{e}"),
    }
}

/// The streams where the follower and actix-http agree by design, checked
/// to agree fully: every request end of the decoder is the follower's.
#[test]
fn on_well_formed_pipelines_the_follower_ends_every_request_actix_http_ends() {
    actix_web::rt::System::new().block_on(async { well_formed_pipelines(seed()) });
}

fn well_formed_pipelines(seed: u64) {
    let config = ServiceConfig::default();
    let mut rng = Rng(seed);
    for _ in 0..500 {
        let mut bytes = Vec::new();
        for _ in 0..1 + rng.below(4) {
            bytes.extend(request(&mut rng));
        }
        let decoded = actix(&config, &bytes);
        if decoded.refused_at.is_some() {
            continue;
        }
        assert_eq!(
            follower(&bytes, &[]),
            decoded.ends,
            "HANDOFF_FRAMING_SEED={seed}: {}",
            bytes.escape_ascii()
        );
    }
}
