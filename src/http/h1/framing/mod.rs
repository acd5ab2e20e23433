//! Where a client's byte stream stands relative to request boundaries.
//!
//! A connection can be handed to another process only between two requests:
//! when every byte read so far belongs to a request that has been answered.
//! actix-http keeps what it read in its own buffer, which nobody outside can
//! see, so the connection follows the request framing over the same bytes: a
//! head up to its blank line, then a body by `Content-Length` or chunked
//! coding.
//!
//! **The rule, enforced by construction: the follower says a request ended
//! only where actix-http's decoder (actix-http 3.20, `h1::Codec`) ends it,
//! at the same byte, or past a byte the decoder refuses** (it then answers
//! 400 or 431 itself and closes the connection: that request is never
//! answered by the application, so the connection is never idle and never
//! handed over). Where the follower is not sure the decoder frames a
//! request as it does, the connection becomes [`State::Opaque`]: served to
//! its end by this process, never handed over, and never held back (every
//! later byte goes to the dispatcher as it comes, so actix-http is never
//! kept waiting for bytes it needs). Opaque are:
//! - any bare LF in a head, any bare CR or LF in chunked framing (actix-http
//!   takes a bare LF as a line end in heads, and as a byte of a trailer line
//!   in the chunked trailer section: followed wrongly, a request ends early
//!   and the next one is answered by another process: a desync);
//! - a folded line, more than [`MAX_HEADERS`] fields;
//! - any `Upgrade` field and `CONNECT` (actix-http reads those to the end of
//!   the connection), another HTTP version than 1.0 and 1.1;
//! - a `Content-Length` that is not one field of plain digits, a
//!   `Transfer-Encoding` that is not one field `chunked` in HTTP/1.1, both
//!   together, an HTTP/1.1 request without exactly one `Host`, an HTTP/1.0
//!   `POST` without a length (actix-http answers each of these 400);
//! - chunk syntax the decoder refuses (actix-http drops the connection).
//!
//! A bare CR in a head, a field name that is no token, a space before a
//! colon: the decoder refuses those heads, which the rule covers.
//!
//! The chunked states mirror actix-http's `ChunkedState` one for one
//! (src/h1/chunked.rs there), with its errors, and bare line ends, made
//! opaque. `differential.rs` feeds generated and damaged request streams to
//! both and fails on any request end the decoder does not share.

/// `limits.max_head_bytes`' default: the longest head followed. A longer
/// one is [`Framing::head_too_large`], and the connection answers 431
/// itself: one bound for HTTP/1.1 and HTTP/2 (actix-http's own is its
/// 128 KiB read buffer).
pub const DEFAULT_MAX_HEAD: usize = 32 * 1024;

/// actix-http parses at most this many fields in a head (431 beyond).
const MAX_HEADERS: usize = 96;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Nothing of a next request has been read.
    Boundary,
    /// Part of a request head has been read (kept until its blank line).
    Head,
    /// This many bytes of a `Content-Length` body are still to come.
    Body(u64),
    Chunked(Chunk),
    /// Not followed: never at a boundary again.
    Opaque,
    /// A head longer than the limit: nothing more is followed or given on.
    TooLarge,
}

/// actix-http's chunked decoder states, by the same names; the size of the
/// chunk being read where there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The first hex digit of a chunk size.
    SizeFirst,
    SizeRest(u64),
    /// Spaces or tabs after the size.
    SizeLws(u64),
    /// A chunk extension, up to its CR.
    Extension(u64),
    /// The LF of the size line.
    SizeLf(u64),
    /// This many data bytes of the chunk are still to come.
    Body(u64),
    BodyCr,
    BodyLf,
    /// After the last chunk, at the start of a line: CR (the end) or the
    /// first byte of a trailer line.
    EndCr,
    EndLf,
    /// Inside a trailer line, up to its CR.
    Trailer,
    TrailerLf,
}

/// Follows request framing over the bytes read from one connection.
#[derive(Debug)]
pub struct Framing {
    state: State,
    head: Vec<u8>,
    /// Request heads completed so far.
    requests: u64,
    /// The longest head, its leading empty lines and blank line included.
    max_head: usize,
}

impl Default for Framing {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_HEAD)
    }
}

impl Framing {
    pub fn new(max_head: usize) -> Self {
        Self {
            state: State::Boundary,
            head: Vec::new(),
            requests: 0,
            max_head,
        }
    }

    /// A head went past the limit; the bytes of the read that showed it
    /// were not taken.
    pub fn head_too_large(&self) -> bool {
        self.state == State::TooLarge
    }

    /// True when every byte read belongs to a complete request.
    pub fn at_boundary(&self) -> bool {
        self.state == State::Boundary
    }

    #[cfg(test)]
    pub fn is_opaque(&self) -> bool {
        self.state == State::Opaque
    }

    /// How many request heads were read completely.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Follows `bytes`, the next bytes read from the client, whatever
    /// requests they hold.
    #[cfg(test)]
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let used = self.take(bytes);
            if used == 0 {
                return;
            }
            bytes = &bytes[used..];
        }
    }

    /// Follows `bytes` up to the end of the request they are in, and no
    /// further; how many of them that is (all of them when the request goes
    /// on beyond, or when the connection is opaque). A connection can be
    /// given one request at a time this way.
    pub fn take(&mut self, bytes: &[u8]) -> usize {
        let mut used = 0;
        while used < bytes.len() {
            let rest = &bytes[used..];
            used += match &mut self.state {
                State::Opaque => return bytes.len(),
                State::TooLarge => return 0,
                State::Boundary => {
                    self.state = State::Head;
                    0
                }
                State::Head => self.feed_head(rest),
                State::Body(left) => {
                    let n = (*left).min(rest.len() as u64);
                    *left -= n;
                    if *left == 0 {
                        self.state = State::Boundary;
                    }
                    n as usize
                }
                State::Chunked(_) => self.feed_chunked(rest),
            };
            if self.state == State::Boundary {
                break;
            }
        }
        used
    }

    /// Takes head bytes up to and including the blank line; returns how
    /// many of `bytes` it used. A head that arrives whole is read where it
    /// lies; one split over reads is gathered first.
    fn feed_head(&mut self, bytes: &[u8]) -> usize {
        if self.head.is_empty()
            && let Some((end, state)) = scan_head(bytes)
        {
            if end > self.max_head {
                return self.refuse_head();
            }
            self.state = state;
            self.count_request();
            return end;
        }
        let start = self.head.len();
        self.head.extend_from_slice(bytes);
        // A head gathered over reads is scanned again only when a line
        // ended: cheap for a client that sends it a byte at a time.
        let ended = memchr::memchr(b'\n', bytes).is_some();
        let Some((end, state)) = ended.then(|| scan_head(&self.head)).flatten() else {
            if self.head.len() > self.max_head {
                return self.refuse_head();
            }
            return bytes.len();
        };
        if end > self.max_head {
            return self.refuse_head();
        }
        self.state = state;
        self.head.clear();
        self.count_request();
        end - start
    }

    fn refuse_head(&mut self) -> usize {
        self.state = State::TooLarge;
        self.head = Vec::new();
        0
    }

    fn count_request(&mut self) {
        if self.state != State::Opaque {
            self.requests += 1;
        }
    }

    /// One step of actix-http's chunked decoder per byte (all of the data
    /// bytes a chunk has at once); how many of `bytes` it used.
    fn feed_chunked(&mut self, bytes: &[u8]) -> usize {
        let State::Chunked(chunk) = &mut self.state else {
            unreachable!("called in the chunked state")
        };
        let mut i = 0;
        while i < bytes.len() {
            if let Chunk::Body(left) = chunk {
                let n = (*left).min((bytes.len() - i) as u64);
                *left -= n;
                i += n as usize;
                if *left == 0 {
                    *chunk = Chunk::BodyCr;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            let next = match (*chunk, b) {
                (Chunk::SizeFirst, _) => hex(b).map(|d| Chunk::SizeRest(u64::from(d))),
                (Chunk::SizeRest(size), _) => match b {
                    b'\t' | b' ' => Some(Chunk::SizeLws(size)),
                    b';' => Some(Chunk::Extension(size)),
                    b'\r' => Some(Chunk::SizeLf(size)),
                    // Past 16 significant digits the decoder refuses the size.
                    _ => hex(b).and_then(|d| {
                        size.checked_mul(16)
                            .map(|s| Chunk::SizeRest(s + u64::from(d)))
                    }),
                },
                (Chunk::SizeLws(size), b'\t' | b' ') => Some(Chunk::SizeLws(size)),
                (Chunk::SizeLws(size), b';') => Some(Chunk::Extension(size)),
                (Chunk::SizeLws(size), b'\r') => Some(Chunk::SizeLf(size)),
                (Chunk::SizeLws(_), _) => None,
                (Chunk::Extension(size), b'\r') => Some(Chunk::SizeLf(size)),
                // Control bytes, LF among them, end the decoder's patience.
                (Chunk::Extension(_), 0x00..=0x08 | 0x0a..=0x1f | 0x7f) => None,
                (Chunk::Extension(size), _) => Some(Chunk::Extension(size)),
                (Chunk::SizeLf(0), b'\n') => Some(Chunk::EndCr),
                (Chunk::SizeLf(size), b'\n') => Some(Chunk::Body(size)),
                (Chunk::BodyCr, b'\r') => Some(Chunk::BodyLf),
                (Chunk::BodyLf, b'\n') => Some(Chunk::SizeFirst),
                (Chunk::EndCr, b'\r') => Some(Chunk::EndLf),
                // The decoder takes a bare LF here as the first byte of a
                // trailer line; a follower that took it as the end would
                // end the body early.
                (Chunk::EndCr, b'\n') => None,
                (Chunk::EndCr, _) => Some(Chunk::Trailer),
                (Chunk::Trailer, b'\r') => Some(Chunk::TrailerLf),
                // Not a line end for the decoder: opaque.
                (Chunk::Trailer, b'\n') => None,
                (Chunk::Trailer, _) => Some(Chunk::Trailer),
                (Chunk::TrailerLf, b'\n') => Some(Chunk::EndCr),
                (Chunk::EndLf, b'\n') => {
                    self.state = State::Boundary;
                    return i;
                }
                (Chunk::SizeLf(_) | Chunk::BodyCr | Chunk::BodyLf, _)
                | (Chunk::TrailerLf | Chunk::EndLf, _) => None,
                (Chunk::Body(_), _) => unreachable!("data bytes are taken above"),
            };
            match next {
                Some(next) => *chunk = next,
                None => {
                    self.become_opaque();
                    return bytes.len();
                }
            }
        }
        i
    }

    fn become_opaque(&mut self) {
        self.state = State::Opaque;
        self.head = Vec::new();
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Where the head at the start of `bytes` ends (just past its blank line),
/// and what follows it; None while its blank line has not come.
///
/// What follows is decided by the rules actix-http's decoder applies (RFC
/// 9112 §6.3): `Transfer-Encoding: chunked`, else `Content-Length`, else no
/// body. The request line and the fields that decide the framing are looked
/// at in one pass over the lines, so a head is not parsed twice; anything
/// outside the rule of this module's opening makes the connection opaque.
fn scan_head(bytes: &[u8]) -> Option<(usize, State)> {
    // Empty lines before a request line, which the decoder skips too.
    let mut skipped = 0;
    while bytes[skipped..].starts_with(b"\r\n") {
        skipped += 2;
    }
    let head_bytes = &bytes[skipped..];
    let mut lines = memchr::memchr_iter(b'\n', head_bytes);
    let first_end = lines.next()?;
    let mut head = Head::default();
    // Every line must end with CRLF. A CR anywhere else is in a field name
    // (no token holds it: opaque) or in the request line or a value, where
    // the decoder refuses the head (400) and closes the connection, whose
    // request is then never answered here: never idle.
    match head_bytes[..first_end].strip_suffix(b"\r") {
        Some(request) => head.request_line(request),
        None => head.opaque = true,
    }
    let mut start = first_end + 1;
    for end in lines {
        let line = head_bytes[start..end].strip_suffix(b"\r");
        start = end + 1;
        match line {
            Some([]) => return Some((skipped + end + 1, head.framing())),
            Some(line) if !head.opaque => head.field(line),
            // A bare line end: the rest is the decoder's alone.
            None => head.opaque = true,
            Some(_) => {}
        }
    }
    None
}

/// What a head's lines said about its framing, so far.
#[derive(Default)]
struct Head {
    opaque: bool,
    http10: bool,
    post: bool,
    fields: usize,
    hosts: usize,
    length: Option<u64>,
    chunked: bool,
    codings: usize,
}

impl Head {
    fn request_line(&mut self, line: &[u8]) {
        if line.ends_with(b" HTTP/1.0") {
            self.http10 = true;
        } else if !line.ends_with(b" HTTP/1.1") {
            self.opaque = true;
        }
        self.post = line.starts_with(b"POST ");
        self.opaque |= line.starts_with(b"CONNECT ");
    }

    fn field(&mut self, line: &[u8]) {
        self.fields += 1;
        // A folded line, more fields than the decoder parses: its refusals.
        if matches!(line.first(), Some(b' ' | b'\t')) || self.fields > MAX_HEADERS {
            self.opaque = true;
            return;
        }
        // The four names that decide the framing, each exactly followed by
        // its colon, as the decoder reads a field (a name it would not
        // take, a space before the colon, it answers 400 instead). The
        // first byte tells them apart.
        match line.first().map(|b| b | 0x20) {
            Some(b'c') => {
                if let Some(value) = field_value(line, b"content-length") {
                    let digits = !value.is_empty() && value.iter().all(u8::is_ascii_digit);
                    match std::str::from_utf8(value).map(str::parse::<u64>) {
                        Ok(Ok(n)) if digits && self.length.is_none() => self.length = Some(n),
                        _ => self.opaque = true,
                    }
                }
            }
            Some(b't') => {
                if let Some(value) = field_value(line, b"transfer-encoding") {
                    self.codings += 1;
                    self.chunked = value.eq_ignore_ascii_case(b"chunked");
                    self.opaque |= !self.chunked || self.codings > 1 || self.http10;
                }
            }
            Some(b'h') if field_value(line, b"host").is_some() => self.hosts += 1,
            Some(b'u') if field_value(line, b"upgrade").is_some() => self.opaque = true,
            _ => {}
        }
    }

    fn framing(&self) -> State {
        let refused = (self.chunked && self.length.is_some())
            || (!self.http10 && self.hosts != 1)
            || self.hosts > 1
            || (self.http10 && self.post && self.length.is_none());
        match self.length {
            _ if self.opaque || refused => State::Opaque,
            _ if self.chunked => State::Chunked(Chunk::SizeFirst),
            Some(0) | None => State::Boundary,
            Some(n) => State::Body(n),
        }
    }
}

/// The value of field `name` (lowercase) if `line` is that field: the
/// name, then the colon right after it; without surrounding whitespace.
fn field_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    (line.len() > name.len()
        && line[name.len()] == b':'
        && line[..name.len()].eq_ignore_ascii_case(name))
    .then(|| line[name.len() + 1..].trim_ascii())
}

#[cfg(test)]
mod differential;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fed(parts: &[&[u8]]) -> Framing {
        let mut f = Framing::default();
        for p in parts {
            f.feed(p);
        }
        f
    }

    #[test]
    fn requests_without_a_body_end_at_their_blank_line() {
        let f = fed(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]);
        assert!(f.at_boundary());
        assert_eq!(f.requests(), 1);
        let f = fed(&[b"GET / HTTP/1.1\r\nHo", b"st: x\r\n\r", b"\n"]);
        assert!(f.at_boundary());
        let f = fed(&[b"GET / HTTP/1.1\r\nHost: x\r\n"]);
        assert!(!f.at_boundary());
    }

    #[test]
    fn content_length_bodies_across_reads_and_a_pipelined_next_request() {
        let mut f = fed(&[b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234"]);
        assert!(!f.at_boundary());
        f.feed(b"56789");
        assert!(f.at_boundary());
        f.feed(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nabGET / HTTP/1.1\r\n");
        assert!(!f.at_boundary(), "the pipelined GET has begun");
        assert_eq!(f.requests(), 2);
        f.feed(b"Host: x\r\n\r\n");
        assert!(f.at_boundary());
        assert_eq!(f.requests(), 3);
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let body: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                            5;name=v\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n\
                            0\r\nX-Trailer: 1\r\n\r\n";
        assert!(fed(&[body]).at_boundary());
        // Byte by byte, the same.
        let mut f = Framing::default();
        for (i, b) in body.iter().enumerate() {
            f.feed(&[*b]);
            assert_eq!(f.at_boundary(), i + 1 == body.len(), "after byte {i}");
        }
        let no_trailer =
            b"POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: Chunked\r\n\r\n0\r\n\r\n";
        assert!(fed(&[no_trailer]).at_boundary());
    }

    #[test]
    fn take_stops_at_the_end_of_the_request_it_is_in() {
        let two = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nabGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut f = Framing::default();
        let first = two.len() - b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".len();
        assert_eq!(f.take(two), first);
        assert!(f.at_boundary());
        assert_eq!(f.take(&two[first..]), two.len() - first);
        assert_eq!(f.requests(), 2);
        // A request split over reads: all of a partial one is taken.
        let mut f = Framing::default();
        assert_eq!(f.take(b"GET / HT"), 8);
        assert_eq!(
            f.take(b"TP/1.1\r\nHost: x\r\n\r\nGET"),
            19,
            "up to the blank line"
        );
        // Opaque: everything.
        let mut f = Framing::default();
        let upgrade = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nframes";
        assert_eq!(f.take(upgrade), upgrade.len());
    }

    #[test]
    fn what_is_not_followed_is_opaque_for_good() {
        for head in [
            &b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"[..],
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            // The decoder refuses any coding list, chunked last or not.
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"\x00\x01 garbage\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            // Bare line ends: a trailer line ended by LF alone, a last
            // chunk followed by LF alone (the decoder reads on, as trailer),
            // a head line ended by LF alone.
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n",
            b"GET / HTTP/1.1\nHost: x\r\n\r\n",
            b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            // What the decoder answers 400: no Host or two, a coding in
            // HTTP/1.0, an HTTP/1.0 POST of no length, a space before a colon.
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            // A chunk size the decoder refuses: whitespace inside, a sign,
            // 17 significant digits.
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1 2\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+1\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
        ] {
            let mut f = fed(&[head]);
            assert!(f.is_opaque(), "{:?}", String::from_utf8_lossy(head));
            f.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert!(!f.at_boundary());
        }
    }

    /// A pipeline of well-formed requests (bodies by Content-Length and by
    /// chunks, with extensions and trailers), then an arbitrary tail.
    fn pipeline() -> impl Strategy<Value = Vec<u8>> {
        let request = (0usize..3, 0usize..40, any::<bool>(), any::<bool>()).prop_map(
            |(kind, len, ext, trailer)| {
                let body = "b".repeat(len);
                match kind {
                    0 => b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
                    1 => {
                        format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {len}\r\n\r\n{body}")
                            .into_bytes()
                    }
                    _ => {
                        let mut r =
                            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                .to_vec();
                        if len > 0 {
                            let ext = if ext { ";a=b" } else { "" };
                            r.extend_from_slice(format!("{len:X}{ext}\r\n{body}\r\n").as_bytes());
                        }
                        r.extend_from_slice(b"0\r\n");
                        if trailer {
                            r.extend_from_slice(b"T: 1\r\n");
                        }
                        r.extend_from_slice(b"\r\n");
                        r
                    }
                }
            },
        );
        (
            prop::collection::vec(request, 0..6),
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(requests, tail)| {
                let mut bytes: Vec<u8> = requests.concat();
                bytes.extend_from_slice(&tail);
                bytes
            })
    }

    proptest! {
        /// However the same bytes are split into reads, the framing ends in
        /// the same state, and never panics: over pipelines of well-formed
        /// requests (whose requests it counts) followed by anything.
        #[test]
        fn splits_do_not_matter(
            bytes in pipeline(),
            cuts in prop::collection::vec(0usize..600, 0..8),
        ) {
            let whole = fed(&[&bytes]);
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c <= bytes.len()).collect();
            cuts.sort_unstable();
            let mut f = Framing::default();
            let mut from = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                f.feed(&bytes[from..c]);
                from = c;
            }
            prop_assert_eq!(&f.state, &whole.state);
            prop_assert_eq!(f.requests, whole.requests);
        }

        /// Well-formed pipelined requests, fed byte by byte: at a boundary
        /// exactly at the end of each request.
        #[test]
        fn boundaries_of_generated_requests(
            reqs in prop::collection::vec((0usize..40, any::<bool>()), 1..6),
        ) {
            let mut bytes = Vec::new();
            let mut ends = Vec::new();
            for (len, chunked) in &reqs {
                let body = "b".repeat(*len);
                if *chunked {
                    bytes.extend_from_slice(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
                    if *len > 0 {
                        bytes.extend_from_slice(format!("{len:x}\r\n{body}\r\n").as_bytes());
                    }
                    bytes.extend_from_slice(b"0\r\n\r\n");
                } else {
                    bytes.extend_from_slice(format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n{body}").as_bytes());
                }
                ends.push(bytes.len());
            }
            let mut f = Framing::default();
            for (i, b) in bytes.iter().enumerate() {
                f.feed(&[*b]);
                prop_assert_eq!(f.at_boundary(), ends.contains(&(i + 1)), "after byte {}", i);
            }
            prop_assert_eq!(f.requests(), reqs.len() as u64);
        }
    }
}
