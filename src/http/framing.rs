//! Where a client's byte stream stands relative to request boundaries.
//!
//! A connection can be handed to another process only between two requests:
//! when every byte read so far belongs to a request that has been answered.
//! actix-http keeps what it read in its own buffer, which nobody outside can
//! see, so the connection follows HTTP/1.1 message framing (RFC 9112 §6) over
//! the same bytes: a head up to its blank line, then a body by
//! `Content-Length` or chunked coding. Anything it does not follow exactly
//! (an upgrade, `CONNECT`, a transfer coding other than chunked, a head it
//! cannot parse) makes the connection [`Framing::Opaque`]: never handed over,
//! closed at a drain as before.

/// Longest head followed; actix-http refuses larger ones (431) anyway.
const MAX_HEAD: usize = 64 * 1024;

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line: the size so far, whether a digit was seen,
    /// whether we are past the digits (extensions), and whether CR was seen.
    Size {
        size: u64,
        digits: bool,
        ext: bool,
        cr: bool,
    },
    /// This many data bytes of the current chunk are still to come.
    Data(u64),
    /// The CRLF after a chunk's data: whether CR was seen.
    DataEnd { cr: bool },
    /// Trailer lines after the last chunk: the length of the current line.
    Trailer { line: usize },
}

/// Follows request framing over the bytes read from one connection.
#[derive(Debug)]
pub struct Framing {
    state: State,
    head: Vec<u8>,
    /// Request heads completed so far.
    requests: u64,
}

impl Default for Framing {
    fn default() -> Self {
        Self {
            state: State::Boundary,
            head: Vec::new(),
            requests: 0,
        }
    }
}

impl Framing {
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
            if self.head.len() > MAX_HEAD {
                self.become_opaque();
            }
            return bytes.len();
        };
        self.state = state;
        self.head.clear();
        self.count_request();
        end - start
    }

    fn count_request(&mut self) {
        if self.state != State::Opaque {
            self.requests += 1;
        }
    }

    fn feed_chunked(&mut self, bytes: &[u8]) -> usize {
        let State::Chunked(chunk) = &mut self.state else {
            unreachable!("called in the chunked state")
        };
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match chunk {
                Chunk::Data(left) => {
                    let n = (*left).min((bytes.len() - i) as u64);
                    *left -= n;
                    i += n as usize;
                    if *left == 0 {
                        *chunk = Chunk::DataEnd { cr: false };
                    }
                    continue;
                }
                Chunk::DataEnd { cr } => match (b, *cr) {
                    (b'\r', false) => *cr = true,
                    (b'\n', true) => {
                        *chunk = Chunk::Size {
                            size: 0,
                            digits: false,
                            ext: false,
                            cr: false,
                        }
                    }
                    _ => {
                        self.become_opaque();
                        return bytes.len();
                    }
                },
                Chunk::Size {
                    size,
                    digits,
                    ext,
                    cr,
                } => {
                    if *cr {
                        if b != b'\n' || !*digits {
                            self.become_opaque();
                            return bytes.len();
                        }
                        *chunk = if *size == 0 {
                            Chunk::Trailer { line: 0 }
                        } else {
                            Chunk::Data(*size)
                        };
                    } else if b == b'\r' {
                        *cr = true;
                    } else if *ext || b == b';' || b == b' ' || b == b'\t' {
                        *ext = true;
                    } else if let Some(d) = (b as char).to_digit(16) {
                        match size.checked_mul(16).and_then(|s| s.checked_add(d.into())) {
                            Some(s) => {
                                *size = s;
                                *digits = true;
                            }
                            None => {
                                self.become_opaque();
                                return bytes.len();
                            }
                        }
                    } else {
                        self.become_opaque();
                        return bytes.len();
                    }
                }
                Chunk::Trailer { line } => match b {
                    b'\r' => {}
                    b'\n' if *line == 0 => {
                        self.state = State::Boundary;
                        return i + 1;
                    }
                    b'\n' => *line = 0,
                    _ if *line > MAX_HEAD => {
                        self.become_opaque();
                        return bytes.len();
                    }
                    _ => *line += 1,
                },
            }
            i += 1;
        }
        i
    }

    fn become_opaque(&mut self) {
        self.state = State::Opaque;
        self.head = Vec::new();
    }
}

/// Where the head at the start of `bytes` ends (just past its blank line),
/// and what follows it; None while its blank line has not come.
///
/// What follows is decided by the rules actix-http's decoder applies (RFC
/// 9112 §6.3): `Transfer-Encoding: chunked`, else `Content-Length`, else
/// no body. Only the request line and the three headers that decide it are
/// looked at, in one pass over the lines, so a head is not parsed twice.
/// Anything the decoder would refuse or that is not followed exactly
/// (`CONNECT`, `Upgrade`, another coding, a repeated length, a folded line,
/// another HTTP version) makes the connection opaque: never handed over, and
/// given to the dispatcher as it comes.
fn scan_head(bytes: &[u8]) -> Option<(usize, State)> {
    let mut lines = memchr::memchr_iter(b'\n', bytes);
    let first_end = lines.next()?;
    let request = trim_cr(&bytes[..first_end]);
    let mut opaque = !(request.ends_with(b" HTTP/1.1") || request.ends_with(b" HTTP/1.0"))
        || request.starts_with(b"CONNECT ");
    let (mut length, mut chunked, mut coded) = (None::<u64>, false, false);
    let mut start = first_end + 1;
    for end in lines {
        let line = trim_cr(&bytes[start..end]);
        start = end + 1;
        let Some(&first) = line.first() else {
            let state = match (opaque, chunked, length) {
                (true, _, _) | (false, true, Some(_)) => State::Opaque,
                (false, true, None) => State::Chunked(Chunk::Size {
                    size: 0,
                    digits: false,
                    ext: false,
                    cr: false,
                }),
                (false, false, Some(0) | None) => State::Boundary,
                (false, false, Some(n)) => State::Body(n),
            };
            return Some((end + 1, state));
        };
        if opaque {
            continue;
        }
        if first == b' ' || first == b'\t' {
            opaque = true;
        } else if is_field(line, b"content-length") {
            let value = line[15..].trim_ascii();
            let digits = !value.is_empty() && value.iter().all(u8::is_ascii_digit);
            match std::str::from_utf8(value).map(str::parse::<u64>) {
                Ok(Ok(n)) if digits && length.is_none() => length = Some(n),
                _ => opaque = true,
            }
        } else if is_field(line, b"transfer-encoding") {
            let value = line[18..].trim_ascii();
            if coded {
                opaque = true;
            } else if value.eq_ignore_ascii_case(b"chunked") {
                chunked = true;
            } else if !value.eq_ignore_ascii_case(b"identity") {
                opaque = true;
            }
            coded = true;
        } else if is_field(line, b"upgrade") {
            opaque = true;
        }
    }
    None
}

/// Whether `line` is the field `name` (lowercase): the name, then the colon
/// right after it, as RFC 9112 writes fields (no space before the colon).
fn is_field(line: &[u8], name: &[u8]) -> bool {
    line.len() > name.len()
        && line[name.len()] == b':'
        && line[..name.len()].eq_ignore_ascii_case(name)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

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
        let mut f = fed(&[b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234"]);
        assert!(!f.at_boundary());
        f.feed(b"56789");
        assert!(f.at_boundary());
        f.feed(b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nabGET / HTTP/1.1\r\n");
        assert!(!f.at_boundary(), "the pipelined GET has begun");
        assert_eq!(f.requests(), 2);
        f.feed(b"\r\n");
        assert!(f.at_boundary());
        assert_eq!(f.requests(), 3);
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let body: &[u8] = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                            5;name=v\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n\
                            0\r\nX-Trailer: 1\r\n\r\n";
        assert!(fed(&[body]).at_boundary());
        // Byte by byte, the same.
        let mut f = Framing::default();
        for (i, b) in body.iter().enumerate() {
            f.feed(&[*b]);
            assert_eq!(f.at_boundary(), i + 1 == body.len(), "after byte {i}");
        }
        let no_trailer = b"POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n0\r\n\r\n";
        assert!(fed(&[no_trailer]).at_boundary());
    }

    #[test]
    fn take_stops_at_the_end_of_the_request_it_is_in() {
        let two = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nabGET / HTTP/1.1\r\n\r\n";
        let mut f = Framing::default();
        let first = two.len() - b"GET / HTTP/1.1\r\n\r\n".len();
        assert_eq!(f.take(two), first);
        assert!(f.at_boundary());
        assert_eq!(f.take(&two[first..]), two.len() - first);
        assert_eq!(f.requests(), 2);
        // A request split over reads: all of a partial one is taken.
        let mut f = Framing::default();
        assert_eq!(f.take(b"GET / HT"), 8);
        assert_eq!(f.take(b"TP/1.1\r\n\r\nGET"), 10, "up to the blank line");
        // Opaque: everything.
        let mut f = Framing::default();
        let upgrade = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nframes";
        assert_eq!(f.take(upgrade), upgrade.len());
    }

    #[test]
    fn what_is_not_followed_is_opaque_for_good() {
        for head in [
            &b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"[..],
            b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            // The decoder refuses any coding list, chunked last or not.
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"\x00\x01 garbage\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let mut f = fed(&[head]);
            assert!(f.is_opaque(), "{:?}", String::from_utf8_lossy(head));
            f.feed(b"GET / HTTP/1.1\r\n\r\n");
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
                    1 => format!("POST / HTTP/1.1\r\nContent-Length: {len}\r\n\r\n{body}")
                        .into_bytes(),
                    _ => {
                        let mut r =
                            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
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
                    bytes.extend_from_slice(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
                    if *len > 0 {
                        bytes.extend_from_slice(format!("{len:x}\r\n{body}\r\n").as_bytes());
                    }
                    bytes.extend_from_slice(b"0\r\n\r\n");
                } else {
                    bytes.extend_from_slice(format!("POST / HTTP/1.1\r\nContent-Length: {len}\r\n\r\n{body}").as_bytes());
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
