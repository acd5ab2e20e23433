//! wrk, the load: keep-alive clients on one URL for a fixed time, read back
//! from its report.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Serialize;

/// What one wrk run reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Run {
    pub requests_per_s: f64,
    pub p99_ms: f64,
    /// Socket errors (connect, read, write, timeout) and non-2xx answers.
    pub errors: u64,
}

/// wrk with `connections` clients over 2 threads; `pause_ms` > 0 makes
/// each connection wait that long between its requests, as pooled clients
/// do (a wrk script's `delay()`).
pub fn command(url: &str, connections: usize, duration: Duration, pause_ms: u64) -> Command {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{}s", duration.as_secs()),
        "--latency",
    ]);
    if pause_ms > 0 {
        let script = super::services::work_dir().join(format!("pause-{pause_ms}ms.lua"));
        std::fs::write(
            &script,
            format!("-- each connection pauses between its requests\nfunction delay() return {pause_ms} end\n"),
        )
        .expect("write the wrk script");
        cmd.arg("-s").arg(script);
    }
    cmd.arg(url);
    cmd
}

pub fn run(url: &str, connections: usize, duration: Duration, pause_ms: u64) -> Run {
    let out = command(url, connections, duration, pause_ms)
        .output()
        .expect("run wrk (apt-get install wrk)");
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Starts wrk in the background; `finish` reads its report.
pub fn start(url: &str, connections: usize, duration: Duration, pause_ms: u64) -> Child {
    command(url, connections, duration, pause_ms)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run wrk (apt-get install wrk)")
}

pub fn finish(child: Child) -> Run {
    let out = child.wait_with_output().expect("wrk ends");
    parse(&String::from_utf8_lossy(&out.stdout))
}

fn parse(report: &str) -> Run {
    let mut run = Run::default();
    for line in report.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            run.requests_per_s = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("99%") {
            run.p99_ms = millis(v.trim());
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            run.errors += v
                .split(',')
                .filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.errors += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    run
}

/// wrk's "1.23ms", "850.00us", "1.02s".
fn millis(v: &str) -> f64 {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_reports() {
        let report = "Running 5s test @ http://127.0.0.1:1/hello
  2 threads and 64 connections
  Latency Distribution
     50%  400.00us
     99%    2.12ms
  612345 requests in 5.00s, 50.00MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec: 122469.00
Transfer/sec:     10.00MB
";
        let run = parse(report);
        assert_eq!(run.requests_per_s, 122_469.0);
        assert_eq!(run.p99_ms, 2.12);
        assert_eq!(run.errors, 10);
        assert_eq!(millis("850.00us"), 0.85);
        assert_eq!(millis("1.5s"), 1500.0);
    }
}
