//! HTTP/3's transport: one QUIC endpoint per process on the UDP socket
//! named `quic`, kept whole across a reload.
//!
//! QUIC has no accept queue: every datagram of every connection arrives on
//! the one socket, and whichever process reads it receives it. handoff
//! keeps each connection with the process that made it, as Meta's proxies
//! do ("Zero Downtime Release", SIGCOMM 2020):
//! - every connection ID a process issues begins with its tag (`cid`), so a
//!   datagram says which process's connection it belongs to;
//! - at a reload the old process makes a unix datagram socket pair and
//!   hands one end to its successor with the listeners; once the successor
//!   serves, the old process stops reading the UDP socket, the successor
//!   reads every datagram, serves new connections and its own, and passes
//!   those bearing an earlier tag to its predecessor (`socket`, `forward`);
//! - the old process goes on serving its connections from what it is
//!   passed, sends from the shared socket, and at its drain sends HTTP/3
//!   GOAWAY on each (`http::h3`) and finishes their requests; their
//!   clients open new connections, which reach the successor, and close
//!   the old ones (or leave them to idle out at `server.keep_alive`). The
//!   old process never closes one itself: a QUIC close discards what the
//!   peer has not yet acknowledged, the end of a response among it;
//! - the keys behind stateless resets and Retry tokens are handed over with
//!   the tag lineage, so a Retry the old process sent is honoured by the
//!   new one, and a reset from any process is one the client believes.
//!
//! At a stop (no successor) the drain is the same without the forwarding,
//! except that each connection ends with H3_NO_ERROR once its answers are
//! out (the next process waits for this one to exit); new connections are
//! ignored meanwhile (no answer at all, so that their clients try again,
//! and reach the next process). A client whose address
//! is not yet validated is asked to prove it (a Retry) once more handshakes
//! are under way than `tls.max_handshakes`.

pub mod cid;
pub mod forward;
pub mod socket;

use std::fmt::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Endpoint, EndpointConfig, Incoming, ServerConfig, TransportConfig, VarInt};
use ring::rand::{SecureRandom, SystemRandom};

use crate::settings::Settings;
use cid::{Tag, TaggedCids};
use socket::{RouteCounts, Router, RoutingSocket};

/// What a predecessor hands over for QUIC: the keys' secret, the tags of
/// its lineage (its own first), and its end of the forwarding pair.
pub struct Inherited {
    secret: [u8; 32],
    lineage: Vec<Tag>,
    to_older: Option<UnixDatagram>,
}

impl Inherited {
    /// Reads what [`Quic::hand_off`] wrote: `SECRET-HEX TAG,TAG,...`, and
    /// the fd of the pair's end when forwarding is on.
    pub fn parse(line: &str, to_older: Option<OwnedFd>) -> Result<Self, String> {
        let (secret_hex, tags) = line
            .split_once(' ')
            .ok_or_else(|| "not SECRET TAGS".to_owned())?;
        if secret_hex.len() != 64 {
            return Err("the secret is not 32 bytes of hex".to_owned());
        }
        let mut secret = [0u8; 32];
        for (i, byte) in secret.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&secret_hex[2 * i..2 * i + 2], 16)
                .map_err(|_| "the secret is not hex".to_owned())?;
        }
        let lineage = tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| Tag::parse(t).ok_or_else(|| format!("{t:?} is not a tag")))
            .collect::<Result<Vec<_>, _>>()?;
        let to_older = to_older.map(UnixDatagram::from);
        if let Some(s) = &to_older {
            s.set_nonblocking(true)
                .map_err(|e| format!("the forwarding socket: {e}"))?;
        }
        Ok(Self {
            secret,
            lineage,
            to_older,
        })
    }
}

/// What a reload gives the successor for QUIC, and what this process
/// keeps until the successor serves.
pub struct HandOff {
    /// Written on the ready channel before the successor starts.
    pub line: String,
    /// The successor's end of the forwarding pair (None: forwarding off).
    pub theirs: Option<OwnedFd>,
    /// Ours: what the successor forwards arrives here.
    ours: Option<UnixDatagram>,
}

/// Counts handshakes under way while held.
pub struct Handshaking(Arc<AtomicUsize>);

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The process's QUIC endpoint.
pub struct Quic {
    endpoint: Endpoint,
    router: Arc<Router>,
    secret: [u8; 32],
    /// A stop's drain began: new connections are ignored.
    refusing: AtomicBool,
    handshaking: Arc<AtomicUsize>,
    /// Handshakes under way above which unvalidated clients get a Retry.
    retry_above: usize,
    port: u16,
}

/// Why HTTP/3 cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    #[error("the system's random number generator failed")]
    Random,
    #[error("the TLS configuration cannot serve QUIC: {0}")]
    Tls(String),
    #[error("the QUIC socket: {0}")]
    Io(#[from] std::io::Error),
}

impl Quic {
    /// The endpoint on `socket` (a copy of the listener), in a tokio
    /// runtime; with what a predecessor handed over, if this is a reload's
    /// successor.
    pub fn start(
        socket: std::net::UdpSocket,
        tls: &rustls::ServerConfig,
        settings: &Settings,
        inherited: Option<Inherited>,
        counts: RouteCounts,
    ) -> Result<Self, QuicError> {
        let port = socket.local_addr()?.port();
        let tag = Tag::random().ok_or(QuicError::Random)?;
        let (secret, lineage, to_older) = match inherited {
            Some(i) => (i.secret, i.lineage, i.to_older),
            None => {
                let mut secret = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut secret)
                    .map_err(|_| QuicError::Random)?;
                (secret, Vec::new(), None)
            }
        };
        let router = Router::new(tag, lineage, to_older, counts);
        let socket = Arc::new(RoutingSocket::new(socket, router.clone())?);

        let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let mut endpoint_config = EndpointConfig::new(Arc::new(reset_key));
        endpoint_config.cid_generator(move || Box::new(TaggedCids::new(tag)));

        let crypto = QuicServerConfig::try_from(Arc::new(tls.clone()))
            .map_err(|e| QuicError::Tls(e.to_string()))?;
        let token_key =
            ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"handoff quic retry").extract(&secret);
        let mut server = ServerConfig::new(Arc::new(crypto), Arc::new(token_key));
        server.transport_config(Arc::new(transport(settings)));
        server.max_incoming(settings.server.max_connections.max(1));
        let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
        let endpoint =
            Endpoint::new_with_abstract_socket(endpoint_config, Some(server), socket, runtime)?;
        Ok(Self {
            endpoint,
            router,
            secret,
            refusing: AtomicBool::new(false),
            handshaking: Arc::new(AtomicUsize::new(0)),
            retry_above: settings.tls.max_handshakes,
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tag(&self) -> Tag {
        self.router.mine()
    }

    /// Accepts new connections until the endpoint closes, giving each to
    /// `dispatch` with its handshake counted; `on_retry` counts the Retries.
    pub async fn accept(&self, dispatch: impl Fn(Incoming, Handshaking), on_retry: impl Fn()) {
        while let Some(incoming) = self.endpoint.accept().await {
            if self.refusing.load(Ordering::Acquire) {
                incoming.ignore();
                continue;
            }
            let under_way = self.handshaking.load(Ordering::Relaxed);
            if under_way >= self.retry_above
                && !incoming.remote_address_validated()
                && incoming.may_retry()
            {
                on_retry();
                let _ = incoming.retry();
                continue;
            }
            self.handshaking.fetch_add(1, Ordering::Relaxed);
            dispatch(incoming, Handshaking(self.handshaking.clone()));
        }
    }

    /// What a reload's successor gets; `forwarding` off makes no pair (the
    /// old process's connections then end at the hand-off: a diagnostic).
    pub fn hand_off(&self, forwarding: bool) -> std::io::Result<HandOff> {
        let mut line = String::with_capacity(64 + 9 * 16);
        for byte in self.secret {
            let _ = write!(line, "{byte:02x}");
        }
        line.push(' ');
        let tags: Vec<String> = self.router.lineage().iter().map(Tag::to_string).collect();
        line.push_str(&tags.join(","));
        let (ours, theirs) = if forwarding {
            let (ours, theirs) = UnixDatagram::pair()?;
            // Roomy: a burst of datagrams for the old connections must not
            // be dropped while the old process catches up.
            for s in [&ours, &theirs] {
                let _ = socket2::SockRef::from(s).set_send_buffer_size(4 << 20);
                let _ = socket2::SockRef::from(s).set_recv_buffer_size(4 << 20);
            }
            (Some(ours), Some(OwnedFd::from(theirs)))
        } else {
            (None, None)
        };
        Ok(HandOff { line, theirs, ours })
    }

    /// The successor serves: from now on it reads the socket, and this
    /// process what it forwards. In the runtime.
    pub fn handed_over(&self, handoff: HandOff) {
        let from = handoff.ours.and_then(|ours| {
            ours.set_nonblocking(true).ok()?;
            tokio::net::UnixDatagram::from_std(ours).ok()
        });
        match from {
            Some(from) => self.router.forwarded(from),
            // Forwarding off: this process hears nothing more.
            None => self.router.forwarded_nowhere(),
        }
    }

    /// The successor serves, and no pair could be made for it: this
    /// process stops reading the socket and its connections hear nothing
    /// more.
    pub fn handed_over_without_pair(&self) {
        self.router.forwarded_nowhere();
        // No datagram reaches them any more: ended now, with H3_NO_ERROR,
        // their clients connect again, to the successor, rather than wait
        // for their idle timeout.
        self.endpoint.close(VarInt::from_u32(0x100), b"");
    }

    /// The successor died: this process reads the socket again.
    pub fn taken_back(&self) {
        self.router.reading();
        self.refusing.store(false, Ordering::Release);
    }

    /// A stop: new connections are ignored from now on.
    pub fn refuse_new(&self) {
        self.refusing.store(true, Ordering::Release);
    }

    /// Waits, up to `limit`, until every earlier process has exited: their
    /// datagrams reach them through this one.
    pub async fn wait_older_gone(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while self.router.older_alive() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    }

    /// Waits, up to `limit`, until the endpoint's connections are closed
    /// (their CONNECTION_CLOSE sent), before the process exits.
    pub async fn wait_idle(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.endpoint.wait_idle()).await;
    }
}

/// The transport limits, from the settings: `limits.max_concurrent_streams`
/// requests at once, the client's streams for HTTP/3's control and QPACK,
/// and flow control windows that bound what one connection can make this
/// process hold (request bodies a handler has not read yet), as HTTP/2's
/// do. QUIC's idle timeout only finds peers that are gone: the longest of
/// the request timeouts, with pings at a third of it so that a request
/// whose answer takes long is not cut; an idle connection ends at
/// `server.keep_alive` in `http::h3`, with GOAWAY.
fn transport(settings: &Settings) -> TransportConfig {
    let mut t = TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(settings.limits.max_concurrent_streams));
    t.max_concurrent_uni_streams(VarInt::from_u32(8));
    // quinn's defaults: an unbounded connection window and 1.25 MB a
    // stream, 100 MB and more a connection with 100 streams open.
    // The connection's window several streams wide: in QUIC request heads
    // count against it too, and two uploads a handler has not read yet
    // must not hold back every other request's head.
    t.receive_window(VarInt::from_u32(4 << 20));
    t.stream_receive_window(VarInt::from_u32(1 << 20));
    t.send_window(2 << 20);
    // HTTP/3 datagrams are not served: none is buffered.
    t.datagram_receive_buffer_size(None);
    let server = &settings.server;
    let idle = [
        server.keep_alive,
        server.client_header_timeout,
        server.client_body_timeout,
        server.send_timeout,
    ]
    .into_iter()
    .max()
    .unwrap_or_default()
    .max(Duration::from_secs(3));
    t.max_idle_timeout(idle.try_into().ok());
    // Below the client's idle timeout too (the smaller of the two rules;
    // 30 s is common), whatever the settings make ours.
    t.keep_alive_interval(Some((idle / 3).min(Duration::from_secs(10))));
    t
}
