//! The clients of the HTTPS and HTTP/2 tests, each a real client run as a
//! process: Python's requests (tests/clients/pooled_clients.py) and Go's
//! net/http (tests/clients/h2_clients.go), counting every request's outcome
//! until told to stop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::python;

/// Python clients over HTTPS, each request's outcome counted.
pub struct PooledClients {
    child: std::process::Child,
    stop: PathBuf,
    _dir: tempfile::TempDir,
}

impl PooledClients {
    pub fn start(base: &str, clients: usize, ca: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stop = dir.path().join("stop");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/pooled_clients.py");
        let child = Command::new(python())
            .arg(script)
            .arg(base)
            .arg(clients.to_string())
            .arg(&stop)
            .arg(ca)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Self {
            child,
            stop,
            _dir: dir,
        }
    }

    pub fn finish(mut self) -> serde_json::Value {
        std::fs::write(&self.stop, b"").unwrap();
        let mut stdout = Vec::new();
        std::io::Read::read_to_end(self.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the clients failed: {status}");
        serde_json::from_slice(&stdout).unwrap()
    }
}

impl Drop for PooledClients {
    /// A test that failed half-way leaves no clients running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Go clients running until `finish`.
pub struct GoClients {
    child: std::process::Child,
    stop: PathBuf,
    _dir: tempfile::TempDir,
}

impl GoClients {
    pub fn start(transport: &[&str], base: &str, clients: usize, mode: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stop = dir.path().join("stop");
        let child = Command::new(go_clients())
            .args(transport)
            .arg(base)
            .arg(clients.to_string())
            .arg(mode)
            .arg(&stop)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Self {
            child,
            stop,
            _dir: dir,
        }
    }

    pub fn finish(mut self) -> serde_json::Value {
        std::fs::write(&self.stop, b"").unwrap();
        let mut stdout = Vec::new();
        std::io::Read::read_to_end(self.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the Go clients failed: {status}");
        serde_json::from_slice(&stdout).unwrap()
    }
}

impl Drop for GoClients {
    /// A test that failed half-way leaves no clients running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
