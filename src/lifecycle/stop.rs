//! `handoff stop --pid PID`: the unit's `ExecStop=`. It sends the main
//! process SIGTERM and waits until that process has exited.
//!
//! systemd waits for a stopping main process by its SIGCHLD when it forked
//! it, and otherwise by its cgroup becoming empty. After a reload the main
//! process is the successor, which systemd did not fork; where cgroup
//! notifications are not reliable (a container on cgroup v1: systemd 252
//! in podman here) systemd then does not wait at all but SIGKILLs the
//! successor right after SIGTERM, so no drain, lame duck or fd store
//! happens. An `ExecStop=` that waits is the way systemd documents for it:
//! systemd runs it as its own child and sends its stop signal only once the
//! command returned, by then to an empty unit. systemd's `TimeoutStopSec=`
//! bounds the wait.
//!
//! It needs no configuration, so a broken configuration file does not keep a
//! service from stopping.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `handoff stop --pid PID`: the exit status (0 once the process is gone,
/// or when there was none; 64 for a pid that is not one).
pub fn command(name: &str, pid: &str) -> u8 {
    match stop(pid) {
        Ok(Stopped::Exited) => {
            println!("stopped pid {}", pid.trim());
            crate::exit::OK
        }
        Ok(Stopped::NotRunning) => {
            println!("no process to stop");
            crate::exit::OK
        }
        Err(e) => {
            eprintln!("{name}: stop: {e}");
            crate::exit::USAGE
        }
    }
}

/// What became of the stop.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The process received SIGTERM and has exited.
    Exited,
    /// There was no process to stop (`$MAINPID` is empty once the main
    /// process has exited, or the pid is gone).
    NotRunning,
}

/// Sends SIGTERM to `pid` (as systemd passes `$MAINPID`: possibly empty)
/// and waits until it exits.
pub fn stop(pid: &str) -> Result<Stopped, String> {
    let pid = pid.trim();
    if pid.is_empty() {
        return Ok(Stopped::NotRunning);
    }
    let pid: libc::pid_t = pid
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("--pid {pid:?}: not a process id"))?;
    match pidfd_open(pid) {
        Ok(fd) => stop_by_pidfd(&fd),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(Stopped::NotRunning),
        // No pidfd (kernel before 5.3, or a seccomp filter): by pid.
        Err(_) => stop_by_pid(pid),
    }
}

fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Through a pidfd: the signal reaches the process the fd names even if its
/// pid were reused meanwhile, and the fd turns readable when it exits.
fn stop_by_pidfd(fd: &OwnedFd) -> Result<Stopped, String> {
    // SAFETY: pidfd_send_signal(2) with a pidfd we own and no siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGTERM,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(Stopped::NotRunning);
        }
        return Err(format!("cannot signal the process: {e}"));
    }
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one pollfd we own; no timeout (systemd bounds the stop).
        match unsafe { libc::poll(&mut poll, 1, -1) } {
            1 => return Ok(Stopped::Exited),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(format!("cannot wait for the process: {e}"));
                }
            }
        }
    }
}

fn stop_by_pid(pid: libc::pid_t) -> Result<Stopped, String> {
    // SAFETY: kill(2) with a pid and a valid signal.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESRCH) => Ok(Stopped::NotRunning),
            _ => Err(format!("cannot signal pid {pid}: {e}")),
        };
    }
    // SAFETY: kill(2) with signal 0 only checks that the pid exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Stopped::Exited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_a_process_that_is_not_our_child_and_waits_for_it() {
        // A grandchild: the shell starts `sleep` in the background, prints
        // its pid and exits, so we are not the sleeper's parent.
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 30 >/dev/null 2>&1 & echo $!"])
            .output()
            .unwrap();
        let pid = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stop(&pid), Ok(Stopped::Exited));
        let alive = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .is_ok_and(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'));
        assert!(!alive, "pid {pid} still runs");
    }

    #[test]
    fn nothing_to_stop_is_not_an_error_and_garbage_is() {
        assert_eq!(stop(""), Ok(Stopped::NotRunning));
        assert_eq!(stop("2147483646"), Ok(Stopped::NotRunning));
        assert!(stop("soon").unwrap_err().contains("not a process id"));
        assert!(stop("-1").is_err());
    }
}
