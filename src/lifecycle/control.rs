//! The reload control channel: `handoff reload --pid PID` asks the running
//! process to hand its listeners to a new process and waits for the outcome.
//!
//! Under systemd the socket is `$RUNTIME_DIRECTORY/reload-PID.sock`
//! (`RuntimeDirectory=handoff`): the unit's private directory, writable under
//! `ProtectSystem=strict` and visible to `ExecReload=`. An abstract socket is
//! not: systemd 252 cannot move `ExecReload=` into the unit's network
//! namespace when `PrivateUsers=` is set too. Without a runtime directory
//! (plain processes) it is the abstract socket `handoff/INVOCATION_ID/PID`.
//! Either way the client checks with SO_PEERCRED that the pid it asked for
//! answered, and the server serves only its own uid and root.

use std::io::{self, BufRead, BufReader, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::successor::Launch;

/// Where process `pid` takes reload requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlAddr {
    Path(PathBuf),
    Abstract(String),
}

impl ControlAddr {
    pub fn of(pid: u32) -> Self {
        // RUNTIME_DIRECTORY may list several directories, separated by ':'.
        let runtime_dir = std::env::var("RUNTIME_DIRECTORY")
            .ok()
            .and_then(|dirs| dirs.split(':').next().map(PathBuf::from))
            .filter(|d| d.is_absolute());
        match runtime_dir {
            Some(dir) => Self::Path(dir.join(format!("reload-{pid}.sock"))),
            None => {
                let invocation =
                    std::env::var("INVOCATION_ID").unwrap_or_else(|_| "none".to_owned());
                Self::Abstract(format!("handoff/{invocation}/{pid}"))
            }
        }
    }

    fn socket_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Path(p) => SocketAddr::from_pathname(p),
            Self::Abstract(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        }
    }
}

impl std::fmt::Display for ControlAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Abstract(name) => write!(f, "@{name}"),
        }
    }
}

/// Removes a path control socket when the listener task ends.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReloadRequest {
    pub launch: Launch,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadReply {
    pub ok: bool,
    /// The pid serving now: the successor's on success, ours otherwise.
    pub pid: u32,
    pub generation: u64,
    pub duration_ms: u64,
    pub message: String,
}

/// A request from a client, with the way back to it.
pub type Pending = (ReloadRequest, oneshot::Sender<ReloadReply>);

/// Binds the control socket and serves it until the returned receiver is
/// dropped. `busy` tells whether a reload is running, so that a request
/// arriving meanwhile is refused at once instead of interleaved.
pub fn listen(
    pid: u32,
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> io::Result<mpsc::Receiver<Pending>> {
    let control = ControlAddr::of(pid);
    if let ControlAddr::Path(path) = &control {
        // Ours by name (our pid): a file left there belongs to a dead process.
        let _ = std::fs::remove_file(path);
    }
    let std_listener = UnixListener::bind_addr(&control.socket_addr()?)?;
    let cleanup = RemoveOnDrop(match &control {
        ControlAddr::Path(p) => Some(p.clone()),
        ControlAddr::Abstract(_) => None,
    });
    tracing::info!(control = %control, "taking reload requests");
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(std_listener)?;
    let (tx, rx) = mpsc::channel::<Pending>(1);
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    actix_web::rt::spawn(async move {
        let _cleanup = cleanup;
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let peer_uid = stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX);
            if peer_uid != uid && peer_uid != 0 {
                tracing::warn!(peer_uid, "control request from another user refused");
                continue;
            }
            let tx = tx.clone();
            let busy = busy.clone();
            actix_web::rt::spawn(async move {
                if let Err(e) = handle(stream, tx, &busy).await {
                    tracing::warn!(error = %e, "control request failed");
                }
            });
        }
    });
    Ok(rx)
}

async fn handle(
    stream: tokio::net::UnixStream,
    tx: mpsc::Sender<Pending>,
    busy: &std::sync::atomic::AtomicBool,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::io::BufReader::new(read).read_line(&mut line).await?;
    let reply = match serde_json::from_str::<ReloadRequest>(&line) {
        Err(e) => refusal(format!("malformed request: {e}")),
        Ok(_) if busy.load(std::sync::atomic::Ordering::Acquire) => {
            refusal("refused: a reload is already in progress".to_owned())
        }
        Ok(request) => {
            let (reply_tx, reply_rx) = oneshot::channel();
            match tx.try_send((request, reply_tx)) {
                Err(_) => refusal("refused: a reload is already in progress".to_owned()),
                Ok(()) => reply_rx.await.unwrap_or_else(|_| {
                    refusal("this process is stopping; it takes no reload".to_owned())
                }),
            }
        }
    };
    let mut bytes = serde_json::to_vec(&reply).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await
}

fn refusal(message: String) -> ReloadReply {
    ReloadReply {
        ok: false,
        pid: std::process::id(),
        generation: 0,
        duration_ms: 0,
        message,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no handoff process with pid {pid} takes reloads at {addr} ({source}); \
         is it running, and is this the same service?"
    )]
    Connect {
        pid: u32,
        addr: String,
        source: io::Error,
    },
    #[error("pid {asked} was asked but pid {answered} answered; refusing to talk to it")]
    WrongPeer { asked: u32, answered: u32 },
    #[error("control channel to pid {pid}: {source}")]
    Io { pid: u32, source: io::Error },
}

/// Asks process `pid` to reload with `launch`; waits up to `timeout`.
pub fn request_reload(
    pid: u32,
    launch: Launch,
    timeout: Duration,
) -> Result<ReloadReply, ClientError> {
    let control = ControlAddr::of(pid);
    let addr = control
        .socket_addr()
        .map_err(|source| ClientError::Io { pid, source })?;
    let mut stream = UnixStream::connect_addr(&addr).map_err(|source| ClientError::Connect {
        pid,
        addr: control.to_string(),
        source,
    })?;
    let answered = peer_pid(&stream).map_err(|source| ClientError::Io { pid, source })?;
    if answered != pid {
        return Err(ClientError::WrongPeer {
            asked: pid,
            answered,
        });
    }
    let io_err = |source| ClientError::Io { pid, source };
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    let mut request =
        serde_json::to_vec(&ReloadRequest { launch }).map_err(|e| io_err(io::Error::other(e)))?;
    request.push(b'\n');
    stream.write_all(&request).map_err(io_err)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(io_err)?;
    if line.is_empty() {
        return Err(io_err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed without an answer",
        )));
    }
    serde_json::from_str(&line).map_err(|e| io_err(io::Error::other(e)))
}

fn peer_pid(stream: &UnixStream) -> io::Result<u32> {
    // SAFETY: SO_PEERCRED fills a ucred struct of exactly this size.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.pid as u32)
}
