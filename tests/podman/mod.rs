//! Podman harness for the container suite: builds the base and the handoff
//! image once, runs containers with systemd as PID 1, and removes them.
//!
//! Set `HANDOFF_SKIP_CONTAINER_TESTS=1` to skip the suite where podman cannot
//! run. A skipped test passes as far as cargo knows, so it also writes its
//! name to `$HANDOFF_TEST_SKIPS`, which `tests/run` counts and lists.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub const BASE_IMAGE: &str = "localhost/debian-systemd:bookworm";
pub const IMAGE: &str = "localhost/handoff:test";
pub const HTTPS_IMAGE: &str = "localhost/handoff-https:test";
pub const HELLO_IMAGE: &str = "localhost/hello:test";
pub const NOTES_IMAGE: &str = "localhost/notes:test";
pub const LIVE_IMAGE: &str = "localhost/live:test";

/// The direct mode's hardening, as `podman run` flags: what
/// containers/quadlet/handoff-sa.container asks for (`User=handoff`,
/// `DropCapability=all`, `ReadOnly=true`, `NoNewPrivileges=true`; quadlet
/// writes them this way) and the README's `podman run` line has.
pub const DIRECT_HARDENING: &[&str] = &[
    "--user=handoff",
    "--cap-drop=all",
    "--read-only",
    "--security-opt=no-new-privileges",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn containers_conf() -> PathBuf {
    root().join("tests/podman/containers.conf")
}

/// True when the suite is switched off; the skip is recorded (see the
/// module docs).
pub fn skipped(test: &str) -> bool {
    if std::env::var_os("HANDOFF_SKIP_CONTAINER_TESTS").is_none_or(|v| v != "1") {
        return false;
    }
    record_skip(test, "HANDOFF_SKIP_CONTAINER_TESTS=1");
    true
}

/// Says that `test` did not run and why, on stderr and in
/// `$HANDOFF_TEST_SKIPS`, which `tests/run` counts and lists.
pub fn record_skip(test: &str, why: &str) {
    let line = format!("{test}: {why}\n");
    eprint!("SKIPPED {line}");
    if let Some(path) = std::env::var_os("HANDOFF_TEST_SKIPS") {
        let recorded = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
        if let Err(e) = recorded {
            panic!("cannot record the skip in {path:?}: {e}");
        }
    }
}

/// One container at a time: two cores, and each test loads the machine.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .env("CONTAINERS_CONF", containers_conf())
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run podman ({e}); install podman and runc, or set HANDOFF_SKIP_CONTAINER_TESTS=1")
        })
}

fn must(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn script(path: &str, args: &[&str], env: &[(&str, &str)]) {
    let status = Command::new(root().join(path))
        .args(args)
        .envs(env.iter().copied())
        .env("CONTAINERS_CONF", containers_conf())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    assert!(status.success(), "{path} {args:?} failed: {status}");
}

/// What the suite puts in images and in the VM tests' stand-in packages,
/// built by tests/build-suite (one cargo invocation in Cargo.toml's suite
/// profile: release semantics unoptimized, incremental, in target/suite); a
/// second call (another test binary's) finds everything fresh at once.
/// `build_id` is bin/handoff's HANDOFF_BUILD_ID (None: none); another id
/// recompiles that binary alone, in seconds. The directory they are in.
pub fn suite_binaries(build_id: Option<&str>) -> PathBuf {
    let mut cmd = Command::new(root().join("tests/build-suite"));
    match build_id {
        Some(id) => cmd.env("HANDOFF_BUILD_ID", id),
        None => cmd.env_remove("HANDOFF_BUILD_ID"),
    };
    let status = cmd.status().expect("tests/build-suite");
    assert!(status.success(), "tests/build-suite failed");
    root().join("target/suite")
}

/// Builds `tag` with containers/build.sh `args` (and the debootstrap base,
/// if absent), once per test binary, and once per run of `tests/run`: the
/// source does not change during a run, so a later test binary of the
/// same run finds the image it would build (a stamp under target/ names
/// the run, `$HANDOFF_TEST_RUN`).
fn build_once(built: &OnceLock<()>, args: &[&str], tag: &str) {
    built.get_or_init(|| {
        let run = std::env::var("HANDOFF_TEST_RUN").ok();
        let stamp = root()
            .join("target/test-images")
            .join(tag.replace(['/', ':'], "_"));
        let exists = || {
            Command::new("podman")
                .args(["image", "exists", tag])
                .env("CONTAINERS_CONF", containers_conf())
                .status()
                .is_ok_and(|s| s.success())
        };
        if let Some(run) = &run
            && std::fs::read_to_string(&stamp).is_ok_and(|s| s == *run)
            && exists()
        {
            eprintln!("{tag}: built earlier in this run ({run})");
            return;
        }
        script("containers/make-base-image.sh", &[BASE_IMAGE], &[]);
        // The binary from the suite's one build (see suite_binaries);
        // build.sh takes it from target/suite.
        suite_binaries(None);
        let mut build_args = vec!["--profile", "suite"];
        build_args.extend_from_slice(args);
        build_args.push(tag);
        script(
            "containers/build.sh",
            &build_args,
            &[("BASE_IMAGE", BASE_IMAGE), ("SKIP_CARGO_BUILD", "1")],
        );
        if let Some(run) = run {
            let _ = std::fs::create_dir_all(stamp.parent().unwrap());
            let _ = std::fs::write(&stamp, run);
        }
    });
}

/// The handoff image from the current source (see [`build_once`]).
pub fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    build_once(&BUILT, &[], IMAGE);
    IMAGE
}

/// The handoff image built with `--https`: `handoff-https.socket` beside
/// `handoff.socket`, the certificate read from /etc/handoff/tls.
pub fn https_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    build_once(&BUILT, &["--https"], HTTPS_IMAGE);
    HTTPS_IMAGE
}

/// A certificate for localhost (fullchain.pem, key.pem) in `dir`, readable
/// by the `--https` image's `handoff` group, as a user would mount theirs;
/// the certificate's path.
pub fn https_certificate(dir: &std::path::Path) -> std::path::PathBuf {
    let image = https_image();
    let out = podman(&["run", "--rm", image, "getent", "group", "handoff"]);
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let gid: u32 = line
        .split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .unwrap_or_else(|| panic!("no group handoff in {image}: {line:?}"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "fullchain.pem",
        ])
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    for (path, mode) in [
        (dir.to_path_buf(), 0o750),
        (dir.join("key.pem"), 0o640),
        (dir.join("fullchain.pem"), 0o640),
    ] {
        std::os::unix::fs::chown(&path, Some(0), Some(gid)).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
    }
    dir.join("fullchain.pem")
}

/// The image of `examples/hello`, built the way a user builds theirs.
pub fn hello_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    example_image(&BUILT, "hello", HELLO_IMAGE)
}

/// The image of `examples/notes` (its handoff version).
pub fn notes_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    example_image(&BUILT, "notes", NOTES_IMAGE)
}

/// The image of `examples/live` (WebSockets and server-sent events).
pub fn live_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    example_image(&BUILT, "live", LIVE_IMAGE)
}

fn example_image(built: &OnceLock<()>, example: &str, tag: &'static str) -> &'static str {
    build_once(built, &["--example", example], tag);
    tag
}

/// A running container, removed on drop.
pub struct Container {
    pub name: String,
    pub port: u16,
    /// The service's name: its units are `NAME.socket` and `NAME.service`.
    pub service: String,
    _dropin: tempfile::NamedTempFile,
    _https_dropins: Vec<tempfile::NamedTempFile>,
}

/// A socket drop-in that moves the socket to `port`.
fn dropin(port: u16) -> tempfile::NamedTempFile {
    listen_dropin("ListenStream", port)
}

/// A drop-in that moves the socket's `key` (`ListenStream`,
/// `ListenDatagram`) to `port`.
fn listen_dropin(key: &str, port: u16) -> tempfile::NamedTempFile {
    let mut dropin = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut dropin,
        format!("[Socket]\n{key}=\n{key}={port}\n").as_bytes(),
    )
    .unwrap();
    dropin
}

impl Container {
    /// Starts the handoff image with systemd as PID 1 on the host network; a
    /// drop-in moves `handoff.socket` to `port` so tests never collide with a
    /// host service on 8080.
    pub fn start(port: u16) -> Self {
        Self::start_image(image(), "handoff", port)
    }

    /// Starts `image`, whose service is `service`, the same way.
    pub fn start_image(image: &str, service: &str, port: u16) -> Self {
        Self::start_with(image, service, port, &[])
    }

    /// Starts the `--https` image with its HTTPS socket moved to
    /// `https_port`, its HTTP/3 socket to the same port over UDP (on the
    /// host's network, never the image's 8443), and `tls_dir`
    /// (fullchain.pem, key.pem) as its certificate's volume.
    pub fn start_https(port: u16, https_port: u16, tls_dir: &std::path::Path) -> Self {
        let https_dropin = dropin(https_port);
        let quic_dropin = listen_dropin("ListenDatagram", https_port);
        let mounts = [
            format!(
                "{}:/etc/systemd/system/handoff-https.socket.d/10-test-port.conf:ro,Z",
                https_dropin.path().display()
            ),
            format!(
                "{}:/etc/systemd/system/handoff-quic.socket.d/10-test-port.conf:ro,Z",
                quic_dropin.path().display()
            ),
            format!("{}:/etc/handoff/tls:ro,Z", tls_dir.display()),
        ];
        let mut c = Self::start_with(https_image(), "handoff", port, &mounts);
        c._https_dropins = vec![https_dropin, quic_dropin];
        c
    }

    fn start_with(image: &str, service: &str, port: u16, mounts: &[String]) -> Self {
        let name = format!("{service}-test-{}-{port}", std::process::id());
        let _ = podman(&["rm", "-f", &name]);
        let dropin = dropin(port);
        let mount = format!(
            "{}:/etc/systemd/system/{service}.socket.d/10-test-port.conf:ro,Z",
            dropin.path().display()
        );
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--systemd=always",
            "--network=host",
            "-v",
            &mount,
        ];
        for m in mounts {
            args.extend(["-v", m.as_str()]);
        }
        args.push(image);
        must(&args);
        let c = Self {
            name,
            port,
            service: service.to_owned(),
            _dropin: dropin,
            _https_dropins: Vec::new(),
        };
        c.wait_for_socket();
        c
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `podman exec` a command; its output, whatever the status.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", &self.name];
        args.extend_from_slice(cmd);
        podman(&args)
    }

    /// `podman exec`, asserting success; trimmed stdout.
    pub fn sh(&self, script: &str) -> String {
        let out = self.exec(&["sh", "-c", script]);
        assert!(
            out.status.success(),
            "in {}: {script}: {}\n{}{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn is_active(&self, unit: &str) -> String {
        let out = self.exec(&["systemctl", "is-active", unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn main_pid(&self) -> u32 {
        self.sh(&format!(
            "systemctl show -p MainPID --value {}.service",
            self.service
        ))
        .parse()
        .unwrap()
    }

    /// Processes of the service's binary in the container.
    pub fn handoff_processes(&self) -> usize {
        self.sh(&format!(
            "grep -lx {} /proc/[0-9]*/comm 2>/dev/null | wc -l",
            self.service
        ))
        .parse()
        .unwrap()
    }

    pub fn journal(&self) -> String {
        let out = self.exec(&[
            "journalctl",
            "--no-pager",
            "-u",
            &format!("{}.service", self.service),
            "-u",
            &format!("{}.socket", self.service),
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for_socket(&self) {
        let socket = format!("{}.socket", self.service);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.is_active(&socket) == "active" {
                return;
            }
            if Instant::now() > deadline {
                let status = self.exec(&["systemctl", "status", "--no-pager", &socket]);
                panic!(
                    "{socket} not active after 60s:\n{}",
                    String::from_utf8_lossy(&status.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- journal of {} ---\n{}", self.name, self.journal());
        }
        let _ = podman(&["rm", "-f", "-t", "5", &self.name]);
    }
}
