//! Starting the process that takes over the listeners in a reload, and
//! waiting until it serves.
//!
//! The successor gets the listeners at fds 3.. by the same `LISTEN_FDS`,
//! `LISTEN_FDNAMES` and `LISTEN_PID` protocol systemd uses, so it takes them
//! through the same code. It reports readiness on one more fd, named by
//! `HANDOFF_READY_FD`, by writing `READY=1`; its generation is
//! `HANDOFF_GENERATION`.
//!
//! The successor starts in a process group of its own, so that a failed
//! reload stops it *and everything it started* (a forked child would
//! otherwise keep the listening sockets open). Once it has reported ready it
//! joins the previous process's group (`HANDOFF_PGID`), where a terminal's
//! Ctrl-C or a supervisor's group kill reaches it as it reached the first.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use command_fds::{CommandFdExt, FdMapping};
use tokio::io::AsyncReadExt;

use crate::sockets::{LISTEN_FDNAMES, LISTEN_FDS, LISTEN_PID, SD_LISTEN_FDS_START, Taken};

pub const READY_FD_ENV: &str = "HANDOFF_READY_FD";
pub const GENERATION_ENV: &str = "HANDOFF_GENERATION";
pub const PGID_ENV: &str = "HANDOFF_PGID";
/// Set when the first line on the ready fd, before anything else, is the
/// TLS session-ticket keys (see `tls::tickets`).
pub const TICKETS_ENV: &str = "HANDOFF_TLS_TICKETS";
/// Set when a line of the QUIC hand-off follows (after the tickets line):
/// the keys' secret and the tag lineage (see `quic`).
pub const QUIC_ENV: &str = "HANDOFF_QUIC";
/// The fd of the predecessor's end of the QUIC forwarding pair.
pub const QUIC_FD_ENV: &str = "HANDOFF_QUIC_FD";
/// The longest keys line read: far above what two keys take.
const MAX_TICKETS_LINE: usize = 1024;
const READY_MESSAGE: &[u8] = b"READY=1\n";
/// The line after READY=1 that says how many connections the successor has
/// room for: its open-files limit, less what it has open and a margin.
/// Written in the same write as READY=1; a successor that does not send it
/// is taken to have room for all.
const ROOM: &str = "FDS=";

/// What to run as the successor: the binary, its arguments (global options;
/// `serve` is the default command), and its environment.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Launch {
    pub exe: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Why a successor did not take over. The old process keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum SuccessorError {
    #[error("cannot start {exe}: {source}")]
    Spawn { exe: String, source: io::Error },
    #[error("new process {pid} exited before it was ready: {status}{hint}")]
    Exited {
        pid: u32,
        status: ExitStatus,
        hint: &'static str,
    },
    #[error("new process {pid} was not ready within {timeout:?}; stopped it")]
    NotReady { pid: u32, timeout: Duration },
}

impl SuccessorError {
    /// The label used in metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Spawn { .. } => "spawn_failed",
            Self::Exited { .. } => "exited",
            Self::NotReady { .. } => "not_ready",
        }
    }
}

/// Variables that describe this process's own relation to the service
/// manager or to the listeners: they are set for the successor here, never
/// copied from the reload client's environment.
const PROCESS_VARS: &[&str] = &[
    LISTEN_FDS,
    LISTEN_PID,
    LISTEN_FDNAMES,
    READY_FD_ENV,
    GENERATION_ENV,
    PGID_ENV,
    TICKETS_ENV,
    QUIC_ENV,
    QUIC_FD_ENV,
    "NOTIFY_SOCKET",
    "JOURNAL_STREAM",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "MAINPID",
    "MANAGERPID",
];

/// The successor's environment: `launch.env` without the process-specific
/// variables, plus this process's own `NOTIFY_SOCKET`, `JOURNAL_STREAM` (its
/// stderr is ours) and `WATCHDOG_USEC` (without `WATCHDOG_PID`, so that the
/// successor pings once it is the main process).
fn successor_env(launch: &Launch) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = launch
        .env
        .iter()
        .filter(|(k, _)| !PROCESS_VARS.contains(&k.as_str()))
        .cloned()
        .collect();
    for var in ["NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC"] {
        if let Ok(v) = std::env::var(var) {
            env.push((var.to_owned(), v));
        }
    }
    env
}

/// A started successor that has not yet reported ready.
pub struct Pending {
    child: Child,
    ready: tokio::net::UnixStream,
}

impl Pending {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts `launch` with the listeners at fds 3.., `LISTEN_PID` set to the new
/// process's own pid, and a ready socket after the listeners.
pub fn spawn(
    launch: &Launch,
    listeners: &[Taken],
    generation: u64,
    tickets: Option<&str>,
    quic: Option<(&str, Option<OwnedFd>)>,
) -> Result<Pending, SuccessorError> {
    spawn_reporting_to(launch, listeners, generation, None, tickets, quic)
}

/// Like [`spawn`], with `NOTIFY_SOCKET` set to `notify` instead of this
/// process's own: the container supervisor is the child's service manager.
pub fn spawn_with_notify(
    launch: &Launch,
    listeners: &[Taken],
    generation: u64,
    notify: &str,
) -> Result<Pending, SuccessorError> {
    spawn_reporting_to(launch, listeners, generation, Some(notify), None, None)
}

fn spawn_reporting_to(
    launch: &Launch,
    listeners: &[Taken],
    generation: u64,
    notify: Option<&str>,
    tickets: Option<&str>,
    quic: Option<(&str, Option<OwnedFd>)>,
) -> Result<Pending, SuccessorError> {
    let fail = |source: io::Error| SuccessorError::Spawn {
        exe: launch.exe.display().to_string(),
        source,
    };
    let (mut ours, theirs) = UnixStream::pair().map_err(fail)?;
    // The session-ticket keys wait in the socket for the successor to read
    // first: in memory only, seen by no other process.
    if let Some(keys) = tickets {
        io::Write::write_all(&mut ours, format!("{keys}\n").as_bytes()).map_err(fail)?;
    }
    // And the QUIC keys' secret with the tag lineage, the same way.
    let (quic_line, quic_fd) = match quic {
        Some((line, fd)) => (Some(line), fd),
        None => (None, None),
    };
    if let Some(line) = quic_line {
        io::Write::write_all(&mut ours, format!("{line}\n").as_bytes()).map_err(fail)?;
    }
    ours.set_nonblocking(true).map_err(fail)?;
    let ready = tokio::net::UnixStream::from_std(ours).map_err(fail)?;

    let ready_fd = SD_LISTEN_FDS_START + listeners.len() as RawFd;
    let mut mappings = Vec::with_capacity(listeners.len() + 1);
    for (i, taken) in listeners.iter().enumerate() {
        let dup = taken.listener.as_fd().try_clone_to_owned().map_err(fail)?;
        mappings.push(FdMapping {
            parent_fd: dup,
            child_fd: SD_LISTEN_FDS_START + i as RawFd,
        });
    }
    mappings.push(FdMapping {
        parent_fd: OwnedFd::from(theirs),
        child_fd: ready_fd,
    });
    let quic_fd_number = ready_fd + 1;
    let has_quic_fd = quic_fd.is_some();
    if let Some(fd) = quic_fd {
        mappings.push(FdMapping {
            parent_fd: fd,
            child_fd: quic_fd_number,
        });
    }

    let names: Vec<&str> = listeners.iter().map(Taken::fd_name).collect();
    let mut env = successor_env(launch);
    if let Some(notify) = notify {
        env.retain(|(k, _)| k != "NOTIFY_SOCKET");
        env.push(("NOTIFY_SOCKET".to_owned(), notify.to_owned()));
    }
    env.push((LISTEN_FDS.to_owned(), listeners.len().to_string()));
    env.push((LISTEN_FDNAMES.to_owned(), names.join(":")));
    env.push((READY_FD_ENV.to_owned(), ready_fd.to_string()));
    env.push((GENERATION_ENV.to_owned(), (generation + 1).to_string()));
    if tickets.is_some() {
        env.push((TICKETS_ENV.to_owned(), "1".to_owned()));
    }
    if quic_line.is_some() {
        env.push((QUIC_ENV.to_owned(), "1".to_owned()));
    }
    if has_quic_fd {
        env.push((QUIC_FD_ENV.to_owned(), quic_fd_number.to_string()));
    }
    // SAFETY: getpgrp cannot fail. It is 0 when our group lies outside our
    // pid namespace (PID 1 of a container started by unshare): nothing to
    // join then.
    let pgid = unsafe { libc::getpgrp() };
    if pgid > 0 {
        env.push((PGID_ENV.to_owned(), pgid.to_string()));
    }

    let exec = Exec::new(launch, &env).map_err(fail)?;
    let mut cmd = Command::new(&launch.exe);
    cmd.fd_mappings(mappings)
        .map_err(|e| fail(io::Error::other(e.to_string())))?;
    // SAFETY: the closure only calls async-signal-safe functions (getpid,
    // execve) and writes into memory allocated before fork.
    unsafe { cmd.pre_exec(exec.into_pre_exec()) };
    let child = cmd.spawn().map_err(fail)?;
    Ok(Pending { child, ready })
}

/// A successor that reported ready and now serves.
pub struct Successor {
    child: Child,
    /// The channel it reported ready on: idle connections follow on it.
    channel: Option<tokio::net::UnixStream>,
    /// How many connections it has room for (None: it did not say).
    room: Option<usize>,
}

/// The room a ready message states, if it does.
fn room_in(message: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(message)
        .lines()
        .find_map(|l| l.strip_prefix(ROOM)?.parse().ok())
}

impl Successor {
    /// The channel to hand connections over on (once), and how many it has
    /// room for.
    pub fn take_channel(&mut self) -> Option<(tokio::net::UnixStream, Option<usize>)> {
        Some((self.channel.take()?, self.room))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resolves when the successor exits, with its status.
    pub async fn exited(&mut self) -> ExitStatus {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                // Not ours to wait for any more (reaped elsewhere): gone.
                Err(_) => return std::os::unix::process::ExitStatusExt::from_raw(0),
            }
        }
    }
}

/// Waits until the successor reports ready; on failure it is stopped and
/// reaped with everything it started, and the error says why.
pub async fn wait_ready(
    mut pending: Pending,
    timeout: Duration,
) -> Result<Successor, SuccessorError> {
    let pid = pending.pid();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(timeout, async {
        let mut chunk = [0u8; 64];
        loop {
            match pending.ready.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.starts_with(READY_MESSAGE) {
                        return true;
                    }
                }
            }
        }
    })
    .await;
    match read {
        Ok(true) => Ok(Successor {
            child: pending.child,
            channel: Some(pending.ready),
            room: room_in(&buf),
        }),
        Ok(false) => {
            // It closed the ready socket without READY=1: it is exiting.
            let status = reap(pending.child, Duration::from_secs(5)).await;
            kill_group(pid);
            let hint = match status.code() {
                Some(78) => " (its configuration is invalid)",
                Some(65) => " (it rejected the passed sockets)",
                _ => "",
            };
            Err(SuccessorError::Exited { pid, status, hint })
        }
        Err(_) => {
            terminate(&pending.child);
            reap(pending.child, Duration::from_secs(5)).await;
            kill_group(pid);
            Err(SuccessorError::NotReady { pid, timeout })
        }
    }
}

fn terminate(child: &Child) {
    // SAFETY: kill(2) on our own, not yet reaped, child and its group.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGTERM);
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

/// SIGKILLs whatever is left in a failed successor's process group: children
/// it forked would otherwise outlive it holding the listening sockets.
fn kill_group(pgid: u32) {
    // SAFETY: kill(2) on a process group created for the successor; ESRCH
    // when it is already empty.
    let rc = unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
    if rc == 0 {
        tracing::warn!(pgid, "stopped processes the failed successor left behind");
    }
}

/// Waits for the child to exit, SIGKILLs it after `grace`; returns its status.
async fn reap(mut child: Child, grace: Duration) -> ExitStatus {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => {
                let _ = child.kill();
                return tokio::task::spawn_blocking(move || child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_else(|| std::os::unix::process::ExitStatusExt::from_raw(9));
            }
        }
    }
}

/// What a successor took from its environment at startup.
#[derive(Debug, Default)]
pub struct Inherited {
    pub generation: u64,
    /// Where to report ready to the previous process.
    pub ready_fd: Option<OwnedFd>,
    /// The previous process's group, to join once ready.
    pub pgid: Option<libc::pid_t>,
    /// The TLS session-ticket keys the previous process handed over.
    pub tickets: Option<String>,
    /// The QUIC hand-off line, and the forwarding pair's end (see `quic`).
    pub quic: Option<(String, Option<OwnedFd>)>,
}

/// Tells the previous process that this one serves, and how many connections
/// it has room for, then joins its process group (see the module docs).
/// Returns the channel, on which the previous process then hands its idle
/// connections over.
pub fn report_ready(
    ready_fd: OwnedFd,
    pgid: Option<libc::pid_t>,
    room: usize,
) -> Option<UnixStream> {
    let mut stream = UnixStream::from(ready_fd);
    let mut message = READY_MESSAGE.to_vec();
    message.extend_from_slice(format!("{ROOM}{room}\n").as_bytes());
    let reported = io::Write::write_all(&mut stream, &message);
    if let Err(e) = &reported {
        tracing::warn!(error = %e, "cannot tell the previous process that we are ready");
    }
    if let Some(pgid) = pgid {
        // SAFETY: setpgid on ourselves; fails harmlessly (EPERM) if that
        // group is gone or in another session.
        if unsafe { libc::setpgid(0, pgid) } != 0 {
            tracing::debug!(
                pgid,
                error = %io::Error::last_os_error(),
                "cannot join the previous process group"
            );
        }
    }
    reported.ok().map(|()| stream)
}

/// Reads and removes `HANDOFF_READY_FD`, `HANDOFF_GENERATION` and
/// `HANDOFF_PGID`. Must run before any other thread exists: it modifies the
/// environment.
pub fn take_env() -> Result<Inherited, String> {
    let generation = match std::env::var(GENERATION_ENV) {
        Err(_) => 1,
        Ok(v) => v.parse::<u64>().ok().filter(|g| *g >= 1).ok_or_else(|| {
            format!("{GENERATION_ENV}={v:?}: not a generation number (1, 2, ...)")
        })?,
    };
    let ready = match std::env::var(READY_FD_ENV) {
        Err(_) => None,
        Ok(v) => Some(take_fd(READY_FD_ENV, &v)?),
    };
    let pgid = match std::env::var(PGID_ENV) {
        Err(_) => None,
        Ok(v) => Some(
            v.parse::<libc::pid_t>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{PGID_ENV}={v:?}: not a process group id"))?,
        ),
    };
    let tickets = match (std::env::var_os(TICKETS_ENV), &ready) {
        (Some(_), Some(fd)) => Some(read_line(fd).map_err(|e| {
            format!("{TICKETS_ENV}: cannot read the keys from {READY_FD_ENV}: {e}")
        })?),
        (Some(_), None) => return Err(format!("{TICKETS_ENV} is set without {READY_FD_ENV}")),
        (None, _) => None,
    };
    let quic_fd = match std::env::var(QUIC_FD_ENV) {
        Err(_) => None,
        Ok(v) => Some(take_fd(QUIC_FD_ENV, &v)?),
    };
    let quic = match (std::env::var_os(QUIC_ENV), &ready) {
        (Some(_), Some(fd)) => Some((
            read_line(fd).map_err(|e| {
                format!("{QUIC_ENV}: cannot read the QUIC hand-off from {READY_FD_ENV}: {e}")
            })?,
            quic_fd,
        )),
        (Some(_), None) => return Err(format!("{QUIC_ENV} is set without {READY_FD_ENV}")),
        (None, _) => None,
    };
    for var in [
        GENERATION_ENV,
        READY_FD_ENV,
        PGID_ENV,
        TICKETS_ENV,
        QUIC_ENV,
        QUIC_FD_ENV,
    ] {
        // SAFETY: runs before any thread is started (see above).
        unsafe { std::env::remove_var(var) };
    }
    Ok(Inherited {
        generation,
        ready_fd: ready,
        pgid,
        tickets,
        quic,
    })
}

/// The fd a variable names: open, above 2, ours from now on (and not
/// inherited by what we start).
fn take_fd(var: &str, v: &str) -> Result<OwnedFd, String> {
    let fd: RawFd = v
        .parse()
        .ok()
        .filter(|fd| *fd > 2)
        .ok_or_else(|| format!("{var}={v:?}: not a file descriptor above 2"))?;
    // SAFETY: F_GETFD only queries the descriptor.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(format!("{var}={v:?}: fd {fd} is not open"));
    }
    // SAFETY: the fd is open and nothing else in this process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: setting FD_CLOEXEC on an fd we own.
    unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(owned)
}

/// One line from the ready fd, byte by byte: what follows it on the socket
/// (connections handed over) is not this function's to read. The
/// predecessor wrote it before starting this process.
fn read_line(fd: &OwnedFd) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: read(2) into a one-byte buffer we own.
        let n = unsafe { libc::read(fd.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
        match n {
            1 if byte[0] == b'\n' => break,
            1 => line.push(byte[0]),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
        if line.len() > MAX_TICKETS_LINE {
            return Err(io::Error::other("no end of line"));
        }
    }
    String::from_utf8(line).map_err(io::Error::other)
}

/// An execve(2) prepared before fork, so that the child can set `LISTEN_PID`
/// to its own pid without allocating: only the digits are written after fork.
struct Exec {
    path: CString,
    _args: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    /// `LISTEN_PID=` followed by room for the digits and a NUL.
    listen_pid: Box<[u8; 32]>,
    envp: Vec<*const libc::c_char>,
}

// SAFETY: the raw pointers point into the CStrings and the box owned by the
// same struct, which are never mutated except in the forked child.
unsafe impl Send for Exec {}
unsafe impl Sync for Exec {}

impl Exec {
    fn new(launch: &Launch, env: &[(String, String)]) -> io::Result<Self> {
        let cstr = |s: &OsStr| {
            CString::new(s.as_bytes()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{s:?} contains NUL"))
            })
        };
        let path = cstr(launch.exe.as_os_str())?;
        let mut args = vec![path.clone()];
        for a in &launch.args {
            args.push(cstr(OsStr::new(a))?);
        }
        let env: Vec<CString> = env
            .iter()
            .map(|(k, v)| cstr(&OsString::from(format!("{k}={v}"))))
            .collect::<io::Result<_>>()?;
        let mut listen_pid = Box::new([0u8; 32]);
        listen_pid[..11].copy_from_slice(b"LISTEN_PID=");
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        envp.push(listen_pid.as_ptr().cast());
        envp.push(std::ptr::null());
        Ok(Self {
            path,
            _args: args,
            argv,
            _env: env,
            listen_pid,
            envp,
        })
    }

    fn into_pre_exec(self) -> impl FnMut() -> io::Result<()> + Send + Sync + 'static {
        // Captured whole, so that the closure is Send through `Exec`'s impl.
        let mut exec = self;
        move || {
            let this = &mut exec;
            // SAFETY (async-signal-safety): setpgid, getpid and execve are
            // on the signal-safety(7) list; the digits go into memory
            // allocated before fork; nothing allocates.
            // A group of its own (see the module docs).
            if unsafe { libc::setpgid(0, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut pid = unsafe { libc::getpid() } as u32;
            let mut digits = [0u8; 10];
            let mut n = 0;
            loop {
                digits[n] = b'0' + (pid % 10) as u8;
                n += 1;
                pid /= 10;
                if pid == 0 {
                    break;
                }
            }
            for i in 0..n {
                this.listen_pid[11 + i] = digits[n - 1 - i];
            }
            this.listen_pid[11 + n] = 0;
            unsafe { libc::execve(this.path.as_ptr(), this.argv.as_ptr(), this.envp.as_ptr()) };
            Err(io::Error::last_os_error())
        }
    }
}
