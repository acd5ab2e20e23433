//! The services under test: built, started on a loopback port, asked
//! things over plain HTTP/1.1, and looked at through /proc.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binaries to compare.
pub struct Binaries {
    /// examples/hello on handoff.
    pub hello: PathBuf,
    /// examples/hello on actix-web's own HttpServer.
    pub hello_actix: PathBuf,
    /// The reference service (for reloads: it has `/spin/{us}`).
    pub handoff: PathBuf,
    /// benches/go-activation, if Go is installed.
    pub go: Option<PathBuf>,
    /// The load generator (its HTTP/3 clients).
    pub loadgen: PathBuf,
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn work_dir() -> PathBuf {
    let dir = root().join("target/cost-bench");
    std::fs::create_dir_all(&dir).expect("create target/cost-bench");
    dir
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?}: {status}");
}

/// Builds what is not given: the release binaries of this checkout, and
/// the Go service if `go` is on PATH.
pub fn build(handoff: Option<PathBuf>, hello: Option<PathBuf>) -> Binaries {
    let root = root();
    run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "--locked",
        "--bin",
        "handoff",
        "--example",
        "hello",
        "--example",
        "hello-actix",
    ]));
    run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "--locked",
        "--package",
        "loadgen",
        "--bin",
        "loadgen",
    ]));
    let release = root.join("target/release");
    let go = which("go").map(|go| {
        let out = work_dir().join("go-activation");
        run(Command::new(go)
            .current_dir(root.join("benches/go-activation"))
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", root.join("target/go-cache"))
            .args(["build", "-o"])
            .arg(&out)
            .arg("."));
        out
    });
    Binaries {
        hello: hello.unwrap_or_else(|| release.join("examples/hello")),
        hello_actix: release.join("examples/hello-actix"),
        handoff: handoff.unwrap_or_else(|| release.join("handoff")),
        go,
        loadgen: release.join("loadgen"),
    }
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())
}

/// Which service, started how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// examples/hello on handoff, 2 workers.
    Handoff,
    /// examples/hello on HttpServer, 2 workers.
    Actix,
    /// The Go service on a socket from systemd-socket-activate, GOMAXPROCS=2.
    Go,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Handoff => "handoff (examples/hello)",
            Kind::Actix => "bare actix-web (HttpServer, examples/hello)",
            Kind::Go => "Go net/http (benches/go-activation)",
        }
    }
}

/// A running service: killed, with its process group, when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

pub const WORKERS: &str = "2";

impl Server {
    pub fn start(kind: Kind, bins: &Binaries, port: u16) -> Self {
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = match kind {
            Kind::Handoff => {
                let mut c = Command::new(&bins.hello);
                c.args(["--listen", &addr])
                    .env("HANDOFF__SERVER__WORKERS", WORKERS);
                c
            }
            Kind::Actix => {
                let mut c = Command::new(&bins.hello_actix);
                c.env("LISTEN", &addr).env("WORKERS", WORKERS);
                c
            }
            Kind::Go => {
                let mut c = Command::new("systemd-socket-activate");
                c.args(["-l", &addr])
                    .arg(bins.go.as_ref().expect("Go service built"))
                    .env("GOMAXPROCS", WORKERS);
                c
            }
        };
        Self::spawn(&mut cmd, port)
    }

    /// The reference service, for reloads.
    pub fn reference(bins: &Binaries, port: u16, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(&bins.handoff);
        cmd.args(["--listen", &format!("127.0.0.1:{port}")])
            .env("HANDOFF__SERVER__WORKERS", WORKERS)
            .envs(env.iter().copied());
        Self::spawn(&mut cmd, port)
    }

    pub fn spawn(cmd: &mut Command, port: u16) -> Self {
        use std::os::unix::process::CommandExt;
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .env("RUST_LOG", "warn")
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let server = Self { child, port };
        wait_serving(port, "/healthz", Duration::from_secs(120));
        server
    }

    /// The process: for handoff, the first generation (after a reload ask
    /// `/` which one serves).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group we made; the successors of a
        // reload stay in it.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Waits until `path` answers at all (any status: the Go service has no
/// /healthz but answers every path).
pub fn wait_serving(port: u16, path: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while get(port, path).is_none() {
        assert!(Instant::now() < deadline, "nothing serves on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One request on a fresh connection: status and body.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// The pid the reference service names in `GET /`.
pub fn serving_pid(port: u16) -> Option<u32> {
    let (_, body) = get(port, "/")?;
    let mut words = body.split_whitespace();
    words.find(|w| *w == "pid")?;
    words.next()?.parse().ok()
}

/// The sum of a counter's series in `/metrics`.
pub fn metric_sum(port: u16, name: &str) -> u64 {
    let (_, body) = get(port, "/metrics").expect("/metrics answers");
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Resident memory now and at its peak, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// CPU time each thread of `pid` used so far, in clock ticks, by thread id,
/// with the thread's name.
pub fn thread_cpu(pid: u32) -> Vec<(u32, String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let tid: u32 = t.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            let comm = &stat[stat.find('(')? + 1..stat.rfind(')')?];
            // Under an actix System the workers are arbiters, named
            // `actix-rt|system:0|arbiter:N` (cut to 15 bytes); the accept
            // loop runs on `actix-server acceptor`.
            let name = if tid == pid {
                "main thread".to_owned()
            } else if comm.starts_with("actix-server ac") {
                "the accept thread".to_owned()
            } else if comm.starts_with("actix") {
                "a worker".to_owned()
            } else {
                comm.replace('|', "/")
            };
            // Fields after the name: state is the 3rd field of stat(5);
            // utime and stime the 14th and 15th.
            let rest: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
            let ticks = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
            Some((tid, name, ticks))
        })
        .collect()
}

/// CPU time the process used so far (user and system), in seconds.
pub fn process_cpu(pid: u32) -> f64 {
    let ticks: u64 = thread_cpu(pid).iter().map(|(_, _, t)| t).sum();
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The busiest thread's share of the process's CPU between two samples of
/// `thread_cpu`, its name, and the process's CPU in cores.
pub fn busiest_share(
    before: &[(u32, String, u64)],
    after: &[(u32, String, u64)],
    seconds: f64,
) -> (f64, String, f64) {
    let used: Vec<(String, u64)> = after
        .iter()
        .map(|(tid, name, t)| {
            let t0 = before
                .iter()
                .find(|(b, _, _)| b == tid)
                .map_or(0, |(_, _, t)| *t);
            (name.clone(), t - t0)
        })
        .collect();
    let total: u64 = used.iter().map(|(_, t)| t).sum();
    let (name, top) = used.into_iter().max_by_key(|(_, t)| *t).unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let share = if total == 0 {
        0.0
    } else {
        top as f64 / total as f64
    };
    (share, name, total as f64 / hz / seconds)
}

/// Raises the soft open-files limit to the hard one (children inherit it)
/// and returns it.
pub fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit on this process, into a struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        lim.rlim_cur
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
