//! The QUIC socket as quinn sees it: one UDP socket that several processes
//! share across a reload, and the routing that keeps each connection with
//! the process that made it.
//!
//! Every process of the service holds the same UDP socket (systemd's, or
//! the one the first process bound), but only the newest reads it: a
//! datagram goes to whichever reader takes it first, so two readers would
//! split each connection's packets at random. The newest reads every
//! datagram and keeps those for its own connections and the Initials of
//! new ones; a datagram whose connection ID bears an earlier process's tag
//! (`cid`) it forwards to its predecessor over the pair made at the reload
//! (`forward`), and the predecessor, which no longer reads the socket,
//! reads those instead, passing on in turn what belongs to a process before
//! it. Every process sends from the shared socket: a client sees one
//! server address throughout.
//!
//! Reading stops when this process hands over ([`Router::forwarded`]) and
//! starts again if it takes the socket back ([`Router::reading`]).

use std::fmt;
use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};

use prometheus_client::metrics::counter::Counter;
use quinn::udp::{EcnCodepoint, RecvMeta, Transmit, UdpSocketState};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::io::{Interest, ReadBuf};

use super::cid::{Tag, tag_of};
use super::forward;
use crate::sync::lock;

/// What the routing counts: datagrams passed to an earlier process, and
/// those dropped because it is gone or its queue is full.
#[derive(Clone, Debug)]
pub struct RouteCounts {
    pub forwarded: Counter,
    pub dropped_gone: Counter,
    pub dropped_full: Counter,
}

/// Where this process's datagrams come from, and where those of earlier
/// processes go.
#[derive(Debug)]
pub struct Router {
    mine: Tag,
    routes: Mutex<Routes>,
    counts: RouteCounts,
}

#[derive(Debug, Default)]
struct Routes {
    /// This process reads the UDP socket (it is the newest).
    reading: bool,
    /// The tags of earlier processes that may still serve connections:
    /// their datagrams go to `to_older`.
    older: Vec<Tag>,
    /// The predecessor's end of the pair made when it handed over to us.
    to_older: Option<Arc<UnixDatagram>>,
    /// Our end of the pair made when we handed over: the successor's
    /// forwards arrive here.
    from_newer: Option<Arc<tokio::net::UnixDatagram>>,
    /// The endpoint's receiving task, to wake when the source changes.
    waker: Option<Waker>,
    /// The last frame sent to an earlier process, reused.
    frame: Vec<u8>,
}

/// The most earlier processes remembered: each reload adds one; those that
/// ended are forwarded to and dropped by their successor.
const MAX_OLDER: usize = 16;

impl Router {
    /// The first process of a service, or the successor of `older`'s first
    /// (the predecessor, whose pair end is `to_older`).
    pub fn new(
        mine: Tag,
        older: Vec<Tag>,
        to_older: Option<UnixDatagram>,
        counts: RouteCounts,
    ) -> Arc<Self> {
        let mut older = older;
        older.retain(|t| *t != mine);
        older.truncate(MAX_OLDER);
        Arc::new(Self {
            mine,
            routes: Mutex::new(Routes {
                reading: true,
                older,
                to_older: to_older.map(Arc::new),
                ..Routes::default()
            }),
            counts,
        })
    }

    pub fn mine(&self) -> Tag {
        self.mine
    }

    /// The tags a successor is to forward for: ours, then our earlier ones.
    pub fn lineage(&self) -> Vec<Tag> {
        let routes = lock(&self.routes);
        std::iter::once(self.mine)
            .chain(routes.older.iter().copied())
            .take(MAX_OLDER)
            .collect()
    }

    /// A successor reads the socket from now on; this process reads what it
    /// forwards on `from_newer`.
    pub fn forwarded(&self, from_newer: tokio::net::UnixDatagram) {
        let mut routes = lock(&self.routes);
        routes.reading = false;
        routes.from_newer = Some(Arc::new(from_newer));
        if let Some(w) = routes.waker.take() {
            w.wake();
        }
    }

    /// A successor reads the socket, and forwards nothing here (forwarding
    /// is off): this process's connections hear nothing more.
    pub fn forwarded_nowhere(&self) {
        let mut routes = lock(&self.routes);
        routes.reading = false;
        routes.from_newer = None;
        if let Some(w) = routes.waker.take() {
            w.wake();
        }
    }

    /// This process reads the socket again (its successor died).
    pub fn reading(&self) {
        let mut routes = lock(&self.routes);
        routes.reading = true;
        routes.from_newer = None;
        if let Some(w) = routes.waker.take() {
            w.wake();
        }
    }

    /// Whether an earlier process may still have connections: it holds
    /// its end of the pair until it exits. Datagrams for all of them pass
    /// through this process, so it must not exit before they have. Probed
    /// with an empty datagram, which the receiver skips: a unix datagram
    /// pair says the peer is gone only when sent to.
    pub fn older_alive(&self) -> bool {
        let mut routes = lock(&self.routes);
        let Some(to) = routes.to_older.clone() else {
            return false;
        };
        match to.send(&[]) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(_) => {
                routes.to_older = None;
                false
            }
        }
    }

    /// Whether `datagram` is an earlier process's (and was forwarded, or
    /// dropped if that cannot be); false when it is this process's to
    /// handle (its own connections, new ones, anything unknown).
    fn pass_on(&self, routes: &mut Routes, datagram: &[u8], meta: &forward::Meta) -> bool {
        let Some(tag) = tag_of(datagram) else {
            return false;
        };
        if tag == self.mine || !routes.older.contains(&tag) {
            return false;
        }
        let Some(to) = routes.to_older.clone() else {
            self.counts.dropped_gone.inc();
            return true;
        };
        let mut frame = std::mem::take(&mut routes.frame);
        forward::encode(meta, datagram, &mut frame);
        match to.send(&frame) {
            Ok(_) => {
                self.counts.forwarded.inc();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.counts.dropped_full.inc();
            }
            // The earlier processes have all exited: their connections are
            // gone, and so is the way to them.
            Err(_) => {
                self.counts.dropped_gone.inc();
                routes.to_older = None;
            }
        };
        routes.frame = frame;
        true
    }
}

/// The UDP socket with its router, for quinn.
pub struct RoutingSocket {
    io: tokio::net::UdpSocket,
    state: UdpSocketState,
    router: Arc<Router>,
    /// Where a forwarded frame is read into (only the endpoint's one
    /// receiving task reads).
    scratch: Mutex<Vec<u8>>,
}

impl fmt::Debug for RoutingSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutingSocket")
            .field("local", &self.io.local_addr().ok())
            .field("mine", &self.router.mine)
            .finish_non_exhaustive()
    }
}

impl RoutingSocket {
    /// Wraps `socket` (a copy of the listener; the original stays for the
    /// next hand-off). In a tokio runtime.
    pub fn new(socket: std::net::UdpSocket, router: Arc<Router>) -> io::Result<Self> {
        let state = UdpSocketState::new((&socket).into())?;
        // quinn-udp turns on UDP_GRO, which coalesces datagrams of a flow
        // into one read: routing looks at each datagram alone, so the
        // socket gives them one at a time. The option is the socket's,
        // shared by every process that holds it.
        let off: libc::c_int = 0;
        // SAFETY: setsockopt with a pointer to an int we own and its size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_UDP,
                libc::UDP_GRO,
                (&off as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let io = tokio::net::UdpSocket::from_std(socket)?;
        Ok(Self {
            io,
            state,
            router,
            scratch: Mutex::new(vec![0u8; forward::HEADER + 65536]),
        })
    }

    /// Reads the UDP socket: keeps this process's datagrams at the front of
    /// `bufs`/`meta`, passes on the others; how many it kept.
    fn poll_socket(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.io.poll_recv_ready(cx))?;
            let Ok(n) = self.io.try_io(Interest::READABLE, || {
                self.state.recv((&self.io).into(), bufs, meta)
            }) else {
                continue;
            };
            let mut routes = lock(&self.router.routes);
            let mut kept = 0;
            for i in 0..n {
                let m = meta[i];
                let about = forward::Meta {
                    from: m.addr,
                    to_ip: m.dst_ip,
                    ecn: m.ecn.map(|e| e as u8),
                };
                if self.router.pass_on(&mut routes, &bufs[i][..m.len], &about) {
                    continue;
                }
                if kept != i {
                    bufs.swap(kept, i);
                    meta[kept] = m;
                }
                kept += 1;
            }
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
        }
    }

    /// Reads what the successor forwards: one datagram at a time.
    fn poll_forwarded(
        &self,
        cx: &mut Context<'_>,
        from: &tokio::net::UnixDatagram,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut scratch = lock(&self.scratch);
        loop {
            let mut read = ReadBuf::new(&mut scratch);
            match from.poll_recv(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                // The successor is gone: nothing more comes this way (a
                // take-back, if any, switches to the socket).
                Poll::Ready(Err(_)) => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
            }
            let frame = read.filled();
            if frame.is_empty() {
                // A successor's probe (`Router::older_alive`): nothing to read.
                continue;
            }
            let Some((about, datagram)) = forward::decode(frame) else {
                continue;
            };
            let mut routes = lock(&self.router.routes);
            if self.router.pass_on(&mut routes, datagram, &about) {
                continue;
            }
            let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
                return Poll::Ready(Ok(0));
            };
            let len = datagram.len().min(buf.len());
            buf[..len].copy_from_slice(&datagram[..len]);
            *m = RecvMeta {
                addr: about.from,
                len,
                stride: len,
                ecn: about.ecn.and_then(EcnCodepoint::from_bits),
                dst_ip: about.to_ip,
            };
            return Poll::Ready(Ok(1));
        }
    }
}

impl AsyncUdpSocket for RoutingSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable {
            socket: self,
            pending: None,
        })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        // UdpSocketState::send swallows what is not WouldBlock (a send
        // error must not end the connection, as in quinn's own socket).
        self.io.try_io(Interest::WRITABLE, || {
            self.state.send((&self.io).into(), transmit)
        })
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (reading, from) = {
            let mut routes = lock(&self.router.routes);
            if !routes
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                routes.waker = Some(cx.waker().clone());
            }
            (routes.reading, routes.from_newer.clone())
        };
        if reading {
            self.poll_socket(cx, bufs, meta)
        } else if let Some(from) = from {
            self.poll_forwarded(cx, &from, bufs, meta)
        } else {
            Poll::Pending
        }
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.io.local_addr()
    }

    fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }

    fn max_transmit_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    fn max_receive_segments(&self) -> usize {
        1
    }
}

/// Ready when the socket can take a datagram: what quinn waits on before
/// `try_send`.
struct Writable {
    socket: Arc<RoutingSocket>,
    pending: Option<Pin<Box<dyn std::future::Future<Output = io::Result<()>> + Send + Sync>>>,
}

impl fmt::Debug for Writable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Writable")
    }
}

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let pending = this.pending.get_or_insert_with(|| {
            let socket = this.socket.clone();
            Box::pin(async move { socket.io.writable().await })
        });
        let ready = pending.as_mut().poll(cx);
        if ready.is_ready() {
            this.pending = None;
        }
        ready
    }
}
