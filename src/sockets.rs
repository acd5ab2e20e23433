//! Where the listening sockets come from: inherited from systemd (or from the
//! previous handoff process during a reload) by the `LISTEN_FDS` protocol, or
//! bound from the configured addresses when nothing was passed.
//!
//! The environment is validated here before `listenfd` takes the fds: listenfd
//! silently ignores a malformed `LISTEN_FDS`, does not know `LISTEN_FDNAMES`
//! and does not check that a socket is listening, and each of those deserves a
//! clear startup error naming the fd rather than a server that never answers.

use std::fmt;
use std::io;
use std::net::{TcpListener, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use socket2::{Domain, SockRef, Socket, Type};

use crate::settings::ListenAddr;

/// First fd of the passed sockets, fixed by the protocol.
pub const SD_LISTEN_FDS_START: RawFd = 3;
/// The fd name handoff serves HTTP on (`FileDescriptorName=http`).
pub const HTTP_FD_NAME: &str = "http";
/// The fd name handoff serves HTTPS on (`FileDescriptorName=https`).
pub const HTTPS_FD_NAME: &str = "https";
/// The fd name handoff serves HTTP/3 on: a datagram socket
/// (`ListenDatagram=`, `FileDescriptorName=quic`).
pub const QUIC_FD_NAME: &str = "quic";

pub const LISTEN_FDS: &str = "LISTEN_FDS";
pub const LISTEN_PID: &str = "LISTEN_PID";
pub const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
/// Most descriptors accepted in `LISTEN_FDS`: listeners plus connections
/// from the fd store (`FileDescriptorStoreMax=`).
pub const MAX_PASSED_FDS: usize = 65_536;

/// A listening socket, ready to hand to the HTTP server: stream sockets
/// for HTTP/1.1 and HTTP/2, a UDP socket for HTTP/3 (QUIC).
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
    Udp(UdpSocket),
}

impl Listener {
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Tcp(l) => l.as_fd(),
            Self::Unix(l) => l.as_fd(),
            Self::Udp(s) => s.as_fd(),
        }
    }

    /// The local address, for logs: `127.0.0.1:8080` or `unix:/run/x.sock`.
    pub fn local_addr(&self) -> String {
        match self {
            Self::Tcp(l) => l
                .local_addr()
                .map_or_else(|e| format!("tcp:?({e})"), |a| a.to_string()),
            Self::Unix(l) => match l.local_addr() {
                Ok(a) => match a.as_pathname() {
                    Some(p) => format!("unix:{}", p.display()),
                    None => "unix:(unnamed)".to_owned(),
                },
                Err(e) => format!("unix:?({e})"),
            },
            Self::Udp(s) => s
                .local_addr()
                .map_or_else(|e| format!("udp:?({e})"), |a| format!("udp:{a}")),
        }
    }

    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Self::Tcp(l) => Self::Tcp(l.try_clone()?),
            Self::Unix(l) => Self::Unix(l.try_clone()?),
            Self::Udp(s) => Self::Udp(s.try_clone()?),
        })
    }
}

/// Where a listener came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Passed at `fd` by systemd or by the previous process, under `name`.
    Inherited { fd: RawFd, name: String },
    /// Bound by this process from the configuration (`server.listen` as
    /// `http`, `tls.listen` as `https`).
    Bound { name: &'static str },
}

/// A listener and where it came from; the name travels with it on a hand-off.
#[derive(Debug)]
pub struct Taken {
    pub listener: Listener,
    pub origin: Origin,
}

impl Taken {
    /// The `LISTEN_FDNAMES` entry to pass on in a hand-off.
    pub fn fd_name(&self) -> &str {
        match &self.origin {
            Origin::Inherited { name, .. } => name,
            Origin::Bound { name } => name,
        }
    }

    /// Serves HTTPS: the socket is named `https`.
    pub fn is_https(&self) -> bool {
        self.fd_name() == HTTPS_FD_NAME
    }

    /// Serves HTTP/3: a UDP socket named `quic`.
    pub fn is_quic(&self) -> bool {
        matches!(self.listener, Listener::Udp(_))
    }
}

impl fmt::Display for Taken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Inherited { fd, name } => write!(
                f,
                "{} (fd {fd}, name {name:?}, inherited)",
                self.listener.local_addr()
            ),
            Origin::Bound { name } if *name == HTTP_FD_NAME => {
                write!(f, "{} (bound)", self.listener.local_addr())
            }
            Origin::Bound { name } => {
                write!(f, "{} (name {name:?}, bound)", self.listener.local_addr())
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{var}={value:?}: {reason}")]
    Environment {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("fd {fd} (name {name:?}): {reason}")]
    Fd {
        fd: RawFd,
        name: String,
        reason: String,
    },
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
}

impl ListenError {
    /// True when the fault is in what we were given (the environment), false
    /// when binding a configured address failed.
    pub fn is_environment(&self) -> bool {
        !matches!(self, Self::Bind { .. })
    }
}

/// Names handoff knows how to serve. An fd with any other name is a unit
/// that expects a service handoff does not provide: refuse to start.
fn is_served_name(name: &str) -> bool {
    // "http", "https": what our units set with FileDescriptorName=.
    // "unknown": sd_listen_fds_with_names(3)'s placeholder for unnamed fds.
    // "<unit>.socket": systemd's default name when FileDescriptorName= is unset.
    name == HTTP_FD_NAME
        || name == HTTPS_FD_NAME
        || name == QUIC_FD_NAME
        || name == "unknown"
        || name.ends_with(".socket")
}

/// The parsed, validated socket-activation variables.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Activation {
    count: usize,
    names: Vec<String>,
}

/// Reads `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` from `get`.
/// `Ok(None)`: nothing passed, or passed to another process.
fn parse_activation(
    get: impl Fn(&str) -> Option<String>,
    my_pid: u32,
) -> Result<Option<Activation>, ListenError> {
    let Some(fds) = get(LISTEN_FDS) else {
        return Ok(None);
    };
    let count: usize = digits(&fds).ok_or_else(|| ListenError::Environment {
        var: LISTEN_FDS,
        value: fds.clone(),
        reason: "not a whole number of file descriptors (digits only, as systemd sets it)"
            .to_owned(),
    })?;
    if count > MAX_PASSED_FDS {
        return Err(ListenError::Environment {
            var: LISTEN_FDS,
            value: fds,
            reason: format!(
                "more than {MAX_PASSED_FDS} file descriptors is not a plausible set of \
                 sockets and stored connections"
            ),
        });
    }
    // systemd's rule: the variables are for the process whose pid they name.
    // An absent LISTEN_PID is accepted, as listenfd and systemfd do.
    if let Some(pid) = get(LISTEN_PID).filter(|p| !p.is_empty()) {
        let pid: u32 = digits(&pid).ok_or_else(|| ListenError::Environment {
            var: LISTEN_PID,
            value: pid.clone(),
            reason: "not a process id (digits only, as systemd sets it)".to_owned(),
        })?;
        if pid != my_pid {
            tracing::info!(
                listen_pid = pid,
                pid = my_pid,
                "LISTEN_FDS is addressed to another process; ignoring it"
            );
            return Ok(None);
        }
    }
    if count == 0 {
        return Ok(None);
    }
    let names = match get(LISTEN_FDNAMES) {
        None => vec![HTTP_FD_NAME.to_owned(); count],
        Some(text) => {
            let names: Vec<String> = text.split(':').map(str::to_owned).collect();
            if names.len() != count {
                return Err(ListenError::Environment {
                    var: LISTEN_FDNAMES,
                    value: text,
                    reason: format!("{} names for LISTEN_FDS={count}", names.len()),
                });
            }
            names
        }
    };
    Ok(Some(Activation { count, names }))
}

/// A number written the way systemd writes these variables: ASCII digits and
/// nothing else. (listenfd reads them without trimming, so a value with
/// spaces would pass here and then fail there with a vaguer message.)
fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Checks that `fd` is an open, listening stream socket of a family handoff
/// serves, and returns that family.
fn check_listening_stream(fd: RawFd, name: &str) -> Result<Domain, ListenError> {
    check_stream(fd, name, true)
}

/// Checks that `fd` is an open socket; why not, if it is not.
fn check_socket(fd: RawFd) -> Result<(), String> {
    // SAFETY: fstat only writes into the zeroed struct we own.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        let err = io::Error::last_os_error();
        return Err(format!("not an open file descriptor ({err})"));
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err("not a socket".to_owned());
    }
    Ok(())
}

/// Checks that `fd` is an open stream socket of a family handoff serves,
/// listening or (a stored connection) not, and returns that family.
fn check_stream(fd: RawFd, name: &str, want_listening: bool) -> Result<Domain, ListenError> {
    let fail = |reason: String| ListenError::Fd {
        fd,
        name: name.to_owned(),
        reason,
    };
    check_socket(fd).map_err(fail)?;
    // SAFETY: check_socket just proved the fd is open; it stays open (we do not close
    // it here) for the life of the borrow, which ends with this function.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = SockRef::from(&borrowed);
    let ty = sock
        .r#type()
        .map_err(|e| fail(format!("cannot read socket type ({e})")))?;
    if ty != Type::STREAM {
        return Err(fail(
            "not a stream socket (a UDP socket is served for HTTP/3 under the name quic)"
                .to_owned(),
        ));
    }
    let listening = sock
        .is_listener()
        .map_err(|e| fail(format!("cannot read SO_ACCEPTCONN ({e})")))?;
    if listening && !want_listening {
        return Err(fail(format!(
            "a listening socket under the name {:?}, which is for connections kept in \
             the fd store",
            crate::handover::STORED_CONNECTION_NAME
        )));
    }
    if !listening && want_listening {
        return Err(fail(
            "a stream socket that is not listening (a unit with Accept=yes passes \
             connections; handoff needs Accept=no)"
                .to_owned(),
        ));
    }
    let domain = sock
        .domain()
        .map_err(|e| fail(format!("cannot read socket family ({e})")))?;
    if domain != Domain::IPV4 && domain != Domain::IPV6 && domain != Domain::UNIX {
        return Err(fail(format!("unsupported socket family {domain:?}")));
    }
    Ok(domain)
}

/// Checks that `fd` (named `quic`) is an open UDP socket, IPv4 or IPv6.
fn check_datagram(fd: RawFd, name: &str) -> Result<(), ListenError> {
    let fail = |reason: String| ListenError::Fd {
        fd,
        name: name.to_owned(),
        reason,
    };
    check_socket(fd).map_err(fail)?;
    // SAFETY: open (check_socket said so) for the life of the borrow.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = SockRef::from(&borrowed);
    let ty = sock
        .r#type()
        .map_err(|e| fail(format!("cannot read socket type ({e})")))?;
    let domain = sock
        .domain()
        .map_err(|e| fail(format!("cannot read socket family ({e})")))?;
    if ty != Type::DGRAM || (domain != Domain::IPV4 && domain != Domain::IPV6) {
        return Err(fail(
            "the name quic is for a UDP socket (ListenDatagram=), and this is not one".to_owned(),
        ));
    }
    Ok(())
}

/// What the `LISTEN_FDS` protocol passed: listening sockets, and connections
/// a previous process left in systemd's fd store (named `conn`).
#[derive(Debug, Default)]
pub struct Passed {
    pub listeners: Vec<Taken>,
    pub connections: Vec<OwnedFd>,
}

/// Takes the sockets passed by the `LISTEN_FDS` protocol, validating each, and
/// removes the variables so that child processes do not inherit them.
///
/// Must run before any other thread exists: it modifies the environment.
pub fn take_inherited() -> Result<Option<Passed>, ListenError> {
    let activation = parse_activation(|k| std::env::var(k).ok(), std::process::id());
    let activation = match activation {
        Ok(Some(a)) => a,
        other => {
            remove_activation_env();
            return other.map(|_| None);
        }
    };

    // What each passed fd is, as checked.
    enum Kind {
        Stream(Domain),
        Datagram,
        Stored,
    }
    let mut domains = Vec::with_capacity(activation.count);
    for (i, name) in activation.names.iter().enumerate() {
        let fd = SD_LISTEN_FDS_START + i as RawFd;
        if name == crate::handover::STORED_CONNECTION_NAME {
            match check_stream(fd, name, false) {
                Ok(_) => {
                    domains.push(Kind::Stored);
                    continue;
                }
                Err(e) => {
                    remove_activation_env();
                    return Err(e);
                }
            }
        }
        if name == QUIC_FD_NAME {
            match check_datagram(fd, name) {
                Ok(()) => {
                    domains.push(Kind::Datagram);
                    continue;
                }
                Err(e) => {
                    remove_activation_env();
                    return Err(e);
                }
            }
        }
        if !is_served_name(name) {
            remove_activation_env();
            return Err(ListenError::Fd {
                fd,
                name: name.clone(),
                reason: format!(
                    "no listener of handoff uses this name; name the socket \
                     FileDescriptorName={HTTP_FD_NAME}, {HTTPS_FD_NAME} or {QUIC_FD_NAME} (or leave it unset)"
                ),
            });
        }
        match check_listening_stream(fd, name) {
            Ok(domain) => domains.push(Kind::Stream(domain)),
            Err(e) => {
                remove_activation_env();
                return Err(e);
            }
        }
    }

    // listenfd reads (and removes) LISTEN_FDS and LISTEN_PID and marks each
    // fd close-on-exec as it takes it.
    let mut fds = listenfd::ListenFd::from_env();
    remove_activation_env();
    let mut taken = Vec::with_capacity(activation.count);
    let mut connections = Vec::new();
    for (i, (name, kind)) in activation.names.into_iter().zip(domains).enumerate() {
        let fd = SD_LISTEN_FDS_START + i as RawFd;
        let domain = match kind {
            Kind::Stored => {
                // SAFETY: checked above to be an open socket; the protocol
                // passes it to us alone, and listenfd does not take it.
                let conn = unsafe { OwnedFd::from_raw_fd(fd) };
                // SAFETY: F_SETFD on a descriptor we own.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
                connections.push(conn);
                continue;
            }
            Kind::Datagram => None,
            Kind::Stream(domain) => Some(domain),
        };
        let fail = |e: io::Error| ListenError::Fd {
            fd,
            name: name.clone(),
            reason: e.to_string(),
        };
        let missing = || ListenError::Fd {
            fd,
            name: name.clone(),
            reason: "listenfd did not find it".to_owned(),
        };
        let listener = match domain {
            None => Listener::Udp(fds.take_udp_socket(i).map_err(fail)?.ok_or_else(missing)?),
            Some(Domain::UNIX) => Listener::Unix(
                fds.take_unix_listener(i)
                    .map_err(fail)?
                    .ok_or_else(missing)?,
            ),
            Some(_) => Listener::Tcp(
                fds.take_tcp_listener(i)
                    .map_err(fail)?
                    .ok_or_else(missing)?,
            ),
        };
        taken.push(Taken {
            listener,
            origin: Origin::Inherited { fd, name },
        });
    }
    Ok(Some(Passed {
        listeners: taken,
        connections,
    }))
}

fn remove_activation_env() {
    for var in [LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES] {
        // SAFETY: called from take_inherited, which runs before the runtime
        // starts any thread, so nothing reads the environment concurrently.
        unsafe { std::env::remove_var(var) };
    }
}

/// Binds each configured address with the given listen(2) backlog, as a
/// socket of that name.
pub fn bind_all(
    addrs: &[String],
    name: &'static str,
    backlog: u32,
) -> Result<Vec<Taken>, ListenError> {
    addrs
        .iter()
        .map(|addr| {
            let fail = |reason: String| ListenError::Bind {
                addr: addr.clone(),
                reason,
            };
            let parsed = ListenAddr::parse(addr).map_err(&fail)?;
            let listener = match parsed {
                ListenAddr::Tcp(a) => Listener::Tcp(bind_tcp(&a, backlog).map_err(&fail)?),
                ListenAddr::Unix(p) => Listener::Unix(bind_unix(&p, backlog).map_err(&fail)?),
            };
            Ok(Taken {
                listener,
                origin: Origin::Bound { name },
            })
        })
        .collect()
}

fn bind_tcp(addr: &str, backlog: u32) -> Result<TcpListener, String> {
    let resolved: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve ({e})"))?
        .collect();
    let mut last_err = String::from("resolves to no address");
    for sa in resolved {
        let attempt = (|| -> io::Result<TcpListener> {
            let sock = Socket::new(Domain::for_address(sa), Type::STREAM, None)?;
            // Lets a restarted process bind while old connections sit in TIME_WAIT.
            sock.set_reuse_address(true)?;
            if sa.is_ipv6() {
                sock.set_only_v6(true)?;
            }
            sock.bind(&sa.into())?;
            sock.listen(backlog.min(i32::MAX as u32) as i32)?;
            Ok(sock.into())
        })();
        match attempt {
            Ok(l) => return Ok(l),
            Err(e) => {
                // The address a name resolved to, when it is not the one
                // configured; and what to do about a busy port.
                let at = if sa.to_string() == addr {
                    String::new()
                } else {
                    format!("{sa}: ")
                };
                last_err = format!("{at}{e}{}", busy_hint(&e));
            }
        }
    }
    Err(last_err)
}

/// For an address already in use: how to choose another.
fn busy_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::AddrInUse {
        "; another process has it: choose another address with --listen ADDR or HANDOFF__SERVER__LISTEN"
    } else {
        ""
    }
}

fn bind_unix(path: &Path, backlog: u32) -> Result<UnixListener, String> {
    remove_stale_socket(path)?;
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| e.to_string())?;
    let addr = socket2::SockAddr::unix(path).map_err(|e| e.to_string())?;
    sock.bind(&addr).map_err(|e| e.to_string())?;
    sock.listen(backlog.min(i32::MAX as u32) as i32)
        .map_err(|e| e.to_string())?;
    Ok(sock.into())
}

/// A socket file left by a process that died is removed; one that a live
/// process still accepts on is an error, never stolen.
fn remove_stale_socket(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err("path exists and is not a socket; refusing to replace it".to_owned());
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err("another process is listening on this socket".to_owned()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).map_err(|e| format!("cannot remove stale socket file ({e})"))
        }
        Err(e) => Err(format!("cannot probe existing socket file ({e})")),
    }
}

/// Binds each of `addrs` (`host:port`) as a UDP socket named `quic`.
pub fn bind_udp_all(addrs: &[String]) -> Result<Vec<Taken>, ListenError> {
    addrs
        .iter()
        .map(|addr| {
            let fail = |reason: String| ListenError::Bind {
                addr: addr.clone(),
                reason,
            };
            let resolved: Vec<_> = addr
                .to_socket_addrs()
                .map_err(|e| fail(format!("cannot resolve ({e})")))?
                .collect();
            let mut last_err = String::from("resolves to no address");
            for sa in resolved {
                let attempt = (|| -> io::Result<UdpSocket> {
                    let sock = Socket::new(Domain::for_address(sa), Type::DGRAM, None)?;
                    // One UDP socket serves HTTP/3, so `[::]` takes IPv4
                    // too (as systemd's ListenDatagram=443 does); a
                    // specific IPv6 address stays IPv6 alone.
                    if sa.is_ipv6() {
                        sock.set_only_v6(!sa.ip().is_unspecified())?;
                    }
                    sock.bind(&sa.into())?;
                    Ok(sock.into())
                })();
                match attempt {
                    Ok(s) => {
                        return Ok(Taken {
                            listener: Listener::Udp(s),
                            origin: Origin::Bound { name: QUIC_FD_NAME },
                        });
                    }
                    Err(e) => last_err = format!("{e}{}", busy_hint(&e)),
                }
            }
            Err(fail(last_err))
        })
        .collect()
}

/// Inherited sockets when any listener was passed, the configured addresses
/// otherwise (`http`, `https`, then `quic`); with the stored connections
/// passed either way.
pub fn take_or_bind(
    http: &[String],
    https: &[String],
    quic: &[String],
    backlog: u32,
) -> Result<Passed, ListenError> {
    match take_inherited()? {
        Some(passed) if !passed.listeners.is_empty() => Ok(passed),
        other => {
            let mut listeners = bind_all(http, HTTP_FD_NAME, backlog)?;
            listeners.extend(bind_all(https, HTTPS_FD_NAME, backlog)?);
            listeners.extend(bind_udp_all(quic)?);
            Ok(Passed {
                listeners,
                connections: other.map(|p| p.connections).unwrap_or_default(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Whatever systemd (or anyone) puts in LISTEN_*, parsing never
        /// panics, and what it accepts is consistent: as many names as fds.
        #[test]
        fn any_activation_environment_is_parsed_or_refused_without_panic(
            fds in prop_oneof![
                Just(None),
                "[0-9]{1,4}".prop_map(Some),
                any::<String>().prop_map(Some),
            ],
            pid in prop_oneof![Just(None), Just(Some("7".to_owned())), any::<String>().prop_map(Some)],
            names in prop_oneof![Just(None), "[a-z:.]{0,20}".prop_map(Some), any::<String>().prop_map(Some)],
        ) {
            let vars: HashMap<&str, String> = [(LISTEN_FDS, fds), (LISTEN_PID, pid), (LISTEN_FDNAMES, names)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
            match parse_activation(|k| vars.get(k).cloned(), 7) {
                Ok(Some(a)) => {
                    prop_assert!(a.count >= 1 && a.count <= MAX_PASSED_FDS);
                    prop_assert_eq!(a.names.len(), a.count);
                }
                Ok(None) => {}
                Err(e) => prop_assert!(e.is_environment(), "{e}"),
            }
        }
    }
    use std::os::fd::AsRawFd;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn nothing_passed_means_bind() {
        assert_eq!(parse_activation(env(&[]), 7).unwrap(), None);
        assert_eq!(
            parse_activation(env(&[("LISTEN_FDS", "0"), ("LISTEN_PID", "7")]), 7).unwrap(),
            None
        );
    }

    #[test]
    fn fds_for_another_pid_are_not_for_us() {
        let e = env(&[("LISTEN_FDS", "2"), ("LISTEN_PID", "8")]);
        assert_eq!(parse_activation(e, 7).unwrap(), None);
    }

    #[test]
    fn unnamed_fds_serve_http() {
        let e = env(&[("LISTEN_FDS", "2"), ("LISTEN_PID", "7")]);
        let a = parse_activation(e, 7).unwrap().unwrap();
        assert_eq!(a.names, ["http", "http"]);
    }

    #[test]
    fn malformed_variables_are_named_in_the_error() {
        let err = parse_activation(env(&[("LISTEN_FDS", "two")]), 7).unwrap_err();
        assert_eq!(
            err.to_string(),
            "LISTEN_FDS=\"two\": not a whole number of file descriptors \
             (digits only, as systemd sets it)"
        );
        // Spaces were trimmed here and then failed inside listenfd.
        for padded in [" 1", "1 ", "+1", ""] {
            let err = parse_activation(env(&[("LISTEN_FDS", padded)]), 7).unwrap_err();
            assert!(err.to_string().contains("digits only"), "{padded:?}: {err}");
        }
        let err =
            parse_activation(env(&[("LISTEN_FDS", "1"), ("LISTEN_PID", " 7")]), 7).unwrap_err();
        assert!(err.to_string().contains("digits only"), "{err}");
        let err =
            parse_activation(env(&[("LISTEN_FDS", "1"), ("LISTEN_PID", "x")]), 7).unwrap_err();
        assert!(err.to_string().starts_with("LISTEN_PID=\"x\""), "{err}");
        let e = env(&[
            ("LISTEN_FDS", "2"),
            ("LISTEN_PID", "7"),
            ("LISTEN_FDNAMES", "http"),
        ]);
        let err = parse_activation(e, 7).unwrap_err();
        assert_eq!(
            err.to_string(),
            "LISTEN_FDNAMES=\"http\": 1 names for LISTEN_FDS=2"
        );
    }

    #[test]
    fn served_names() {
        assert!(is_served_name("http"));
        assert!(is_served_name("https"));
        assert!(is_served_name("handoff.socket"));
        assert!(is_served_name("unknown"));
        assert!(!is_served_name("metrics"));
        assert!(!is_served_name("connection"));
    }

    #[test]
    fn checks_reject_non_listening_and_non_socket_fds() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let err = check_listening_stream(file.as_raw_fd(), "http").unwrap_err();
        assert!(err.to_string().ends_with("not a socket"), "{err}");

        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let err = check_listening_stream(sock.as_raw_fd(), "http").unwrap_err();
        assert!(err.to_string().contains("not listening"), "{err}");

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            check_listening_stream(listener.as_raw_fd(), "http").unwrap(),
            Domain::IPV4
        );
    }
}
