//! Instructions per request, counted by valgrind's callgrind: unlike a
//! request rate, the same on a quiet machine and a busy one. The server runs
//! under callgrind twice, once serving nothing and once serving `n`
//! requests (hey, 8 keep-alive clients); the difference over `n` is what one
//! request costs in user space, start-up and exit cancelled out. The kernel's
//! share (syscalls, TCP) is not counted: it is the same for both servers, so
//! the ratio here is an upper bound of the ratio in time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::services::{self, Binaries, Kind, Server};

pub fn available() -> bool {
    services::which("valgrind").is_some() && services::which("hey").is_some()
}

/// User-space instructions per request of `kind` on `/hello`.
pub fn per_request(kind: Kind, bins: &Binaries, n: u64) -> f64 {
    let idle = total(kind, bins, 0);
    let busy = total(kind, bins, n);
    busy.saturating_sub(idle) as f64 / n as f64
}

fn total(kind: Kind, bins: &Binaries, requests: u64) -> u64 {
    let dir = services::work_dir().join(format!("callgrind-{kind:?}-{requests}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = services::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=callgrind", "--quiet"]).arg(format!(
        "--callgrind-out-file={}/callgrind.out.%p",
        dir.display()
    ));
    match kind {
        Kind::Handoff => cmd
            .arg(&bins.hello)
            .args(["--listen", &addr])
            .env("HANDOFF__SERVER__WORKERS", services::WORKERS),
        Kind::Actix => cmd
            .arg(&bins.hello_actix)
            .env("LISTEN", &addr)
            .env("WORKERS", services::WORKERS),
        Kind::Go => panic!("the Go runtime does not run under valgrind"),
    };
    let server = Server::spawn(&mut cmd, port);
    if requests > 0 {
        let status = Command::new("hey")
            .args(["-n", &requests.to_string(), "-c", "8"])
            .arg(format!("http://{addr}/hello"))
            .stdout(Stdio::null())
            .status()
            .expect("run hey");
        assert!(status.success(), "hey: {status}");
    }
    // A clean exit writes the counts.
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    let pid = server.pid();
    for _ in 0..600 {
        if !Path::new(&format!("/proc/{pid}/stat")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    summary(&dir)
}

/// The sum of the `summary:` lines of every callgrind output in `dir`.
fn summary(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.strip_prefix("summary:")?.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}
