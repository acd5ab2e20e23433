//! The clients of the HTTPS and HTTP/2 tests, each a real client run as a
//! process: Python's requests (tests/clients/pooled_clients.py) and Go's
//! net/http (tests/clients/h2_clients.go), counting every request's outcome
//! until told to stop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::python;

/// Clients run as a process until told to stop (a file appears), which
/// then print their counts as JSON.
pub struct Clients {
    what: &'static str,
    child: std::process::Child,
    stop: PathBuf,
    _dir: tempfile::TempDir,
}

impl Clients {
    /// Runs the command `make` builds given the stop file's path.
    fn spawn(what: &'static str, make: impl FnOnce(&Path) -> Command) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stop = dir.path().join("stop");
        let child = make(&stop)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run the {what}: {e}"));
        Self {
            what,
            child,
            stop,
            _dir: dir,
        }
    }

    /// Stops them; what they counted.
    pub fn finish(mut self) -> serde_json::Value {
        std::fs::write(&self.stop, b"").unwrap();
        let mut stdout = Vec::new();
        std::io::Read::read_to_end(self.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the {} failed: {status}", self.what);
        serde_json::from_slice(&stdout).unwrap()
    }
}

impl Drop for Clients {
    /// A test that failed half-way leaves no clients running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python clients over HTTPS (tests/clients/pooled_clients.py), each
/// request's outcome counted.
pub struct PooledClients;

impl PooledClients {
    pub fn start(base: &str, clients: usize, ca: &Path) -> Clients {
        Clients::spawn("Python clients", |stop| {
            let mut cmd = Command::new(python());
            cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/pooled_clients.py"))
                .arg(base)
                .arg(clients.to_string())
                .arg(stop)
                .arg(ca);
            cmd
        })
    }
}

/// tests/clients/h2_clients.go, built once with Debian's Go, offline.
pub fn go_clients() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let out = target.join("h2_clients");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/h2_clients.go");
        let built = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(&source)
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", target.join("go-cache"))
            .output()
            .expect("go runs (golang-go)");
        assert!(
            built.status.success(),
            "go build: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        out
    })
}

/// Go's net/http clients (tests/clients/h2_clients.go).
pub struct GoClients;

impl GoClients {
    pub fn start(transport: &[&str], base: &str, clients: usize, mode: &str) -> Clients {
        Clients::spawn("Go clients", |stop| {
            let mut cmd = Command::new(go_clients());
            cmd.args(transport)
                .arg(base)
                .arg(clients.to_string())
                .arg(mode)
                .arg(stop);
            cmd
        })
    }
}

/// curl with `args`, silent but for errors, 10 s at most: whether it
/// succeeded, its output, and its log (stderr; `-v` puts the TLS and
/// HTTP/2 details there).
pub fn curl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// aioquic's HTTP/3 clients (tests/clients/h3_clients.py, `clients` of
/// them) on UDP `port` of 127.0.0.1, trusting `ca`; None when no Python
/// with aioquic is here (tests/run installs one and names it in
/// `HANDOFF_H3_PYTHON`).
pub struct H3Clients;

impl H3Clients {
    pub fn python() -> Option<String> {
        let python = std::env::var("HANDOFF_H3_PYTHON").unwrap_or_else(|_| python());
        Command::new(&python)
            .args(["-c", "import aioquic"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            .then_some(python)
    }

    pub fn start(python: &str, port: u16, clients: usize, ca: &Path) -> Clients {
        Clients::spawn("HTTP/3 clients", |stop| {
            let mut cmd = Command::new(python);
            cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/h3_clients.py"))
                .args(["127.0.0.1", &port.to_string(), &clients.to_string()])
                .arg(stop)
                .arg(ca);
            cmd
        })
    }
}
