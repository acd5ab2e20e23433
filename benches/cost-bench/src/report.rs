//! cost.md: the figures as tables, with how they were measured.

use std::fmt::Write;

use super::{Args, Figures};

pub fn render(args: &Args, f: &Figures) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "Measured {} on {}, one run.\n", f.date, f.machine);
    if !f.steady.is_empty() {
        steady(&mut md, args, f);
    }
    if !f.instructions.is_empty() {
        instructions(&mut md, args, f);
    }
    if !f.after_reload.is_empty() {
        after_reload(&mut md, args, f);
    }
    if !f.at_scale.is_empty() {
        at_scale(&mut md, f);
    }
    if !f.hostile.is_empty() {
        hostile(&mut md, f);
    }
    if !f.tls.is_empty() {
        tls(&mut md, args, f);
    }
    if !f.http3.is_empty() {
        http3(&mut md, args, f);
    }
    md
}

fn http3(md: &mut String, args: &Args, f: &Figures) {
    let _ = writeln!(
        md,
        "HTTP/3 beside HTTP/2 on handoff (bare actix-web has no HTTP/3): examples/hello, \
         `GET /hello`, 2 workers, HTTPS and QUIC on one port, 16 connections with one request \
         at a time each, {} s each, {} rounds, alternating which runs first. The clients \
         differ (h2load; the load generator's quinn and h3 clients), so the rates are what \
         each client reached; the server's CPU per request is what the protocols compare \
         on.\n",
        args.seconds, args.rounds
    );
    md.push_str(
        "| protocol | client | requests/s (median) | server CPU µs a request (median) | failed |\n\
         |---|---|---:|---:|---:|\n",
    );
    for t in &f.http3 {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.1} | {} |",
            t.protocol, t.client, t.median_per_s, t.median_cpu_us_per_request, t.errors
        );
    }
    if let [h2, h3] = &f.http3[..] {
        let _ = writeln!(
            md,
            "\nHTTP/3's CPU a request over HTTP/2's: {:.2}.",
            h3.median_cpu_us_per_request / h2.median_cpu_us_per_request
        );
    }
    if let Some(r) = &f.http3_reload {
        let _ = writeln!(
            md,
            "\nOne reload of the reference service under HTTP/3 load (16 back-to-back and 8 \
             pooled quinn/h3 clients, 7 s, the reload at 3 s): {} requests, {} failed, the \
             longest time with no answer {:.1} ms, the slowest request {:.1} ms, {} datagrams \
             passed from the new process to the old one.",
            r.requests, r.failed, r.longest_gap_ms, r.max_latency_ms, r.datagrams_forwarded
        );
    }
    md.push('\n');
}

fn tls(md: &mut String, args: &Args, f: &Figures) {
    let _ = writeln!(
        md,
        "Steady state over TLS: `GET /hello`, 2 workers, the same self-signed P-256 \
         certificate and rustls configuration (ring provider, TLS 1.3) on both; HTTP/1.1 with \
         `wrk -t2 -c64`, h2 with `h2load -c16 -m10`, {} s each, {} rounds, alternating which \
         service runs first. Ratios are each round's rate over bare actix-web's.\n",
        args.seconds, args.rounds
    );
    md.push_str(
        "| protocol | service | requests/s (median) | rate over bare actix-web: median (min-max) | failed |\n\
         |---|---|---|---|---|\n",
    );
    for t in &f.tls {
        let lo = t.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = t.ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.3} ({lo:.3}-{hi:.3}) | {} |",
            t.protocol,
            t.service,
            t.median_per_s,
            super::median(t.ratios.clone()),
            t.errors
        );
    }
    md.push('\n');
}

fn steady(md: &mut String, args: &Args, f: &Figures) {
    let _ = writeln!(
        md,
        "Steady state: `GET /hello` answering `hello`, the same handler on each, 2 workers \
         (Go: GOMAXPROCS=2), `wrk -t2 -c64` for {} s, {} rounds; each round runs every service \
         in turn, starting with another one each round. The ratios are each round's figure over \
         bare actix-web's in the same round. The server's CPU time a request (user and system, \
         from /proc, over the requests wrk counted) depends less on how much of the 2 cores the \
         server got than its rate does.\n",
        args.seconds, args.rounds
    );
    md.push_str(
        "| service | requests/s (median) | rate over bare actix-web: median (min-max) | server CPU µs a request (median) | CPU over bare actix-web: median (min-max) | p99 ms (median) | RSS MiB |\n\
         |---|---:|---|---:|---|---:|---:|\n",
    );
    for s in &f.steady {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {} | {:.2} | {} | {:.2} | {:.1} |",
            s.service,
            s.median_per_s,
            spread(&s.ratios),
            s.median_cpu_us,
            spread(&s.cpu_ratios),
            s.median_p99_ms,
            s.rss_mib
        );
    }
    md.push('\n');
}

/// `median (min-max)` of per-round ratios.
fn spread(ratios: &[f64]) -> String {
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.3} ({min:.3}-{max:.3})", super::median(ratios.to_vec()))
}

fn instructions(md: &mut String, args: &Args, f: &Figures) {
    let _ = writeln!(
        md,
        "Instructions per request in user space (callgrind; {} requests from `hey -c 8` on \
         `/hello`, less a run that serves none): the same on a quiet machine and a busy one. \
         The kernel's work (syscalls, TCP) is the same for both and not counted, so the ratio \
         in time is smaller than this one.\n",
        args.callgrind_requests
    );
    md.push_str("| service | instructions per request | ratio |\n|---|---:|---:|\n");
    let base = f
        .instructions
        .iter()
        .find(|i| i.service.starts_with("bare"))
        .map_or(f64::NAN, |i| i.per_request);
    for i in &f.instructions {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.3} |",
            i.service,
            i.per_request,
            i.per_request / base
        );
    }
    md.push('\n');
}

fn after_reload(md: &mut String, args: &Args, f: &Figures) {
    let _ = writeln!(
        md,
        "After a reload: the reference service, 2 workers, 64 pooled clients (`wrk -t2 -c64`, \
         each connection pausing 1 ms between requests), {} s measured before the SIGHUP and {} s \
         once the successor serves the same connections (from `handoff_http_requests_total`). \
         The busiest thread's share of the process's CPU over the same windows (from \
         /proc/PID/task; fair with 2 workers: 50%).\n",
        args.window, args.window
    );
    md.push_str(
        "| route | before req/s | after req/s | ratio | busiest thread before | busiest thread after | CPU cores before, after | adopted | wrk errors |\n\
         |---|---:|---:|---:|---|---|---|---:|---:|\n",
    );
    for r in &f.after_reload {
        let _ = writeln!(
            md,
            "| `{}` | {:.0} | {:.0} | {:.3} | {:.0}% ({}) | {:.0}% ({}) | {:.2}, {:.2} | {} | {} |",
            r.route,
            r.before_per_s,
            r.after_per_s,
            r.ratio,
            r.before_busiest.0 * 100.0,
            r.before_busiest.1,
            r.after_busiest.0 * 100.0,
            r.after_busiest.1,
            r.before_cores,
            r.after_cores,
            r.adopted,
            r.wrk_errors
        );
    }
    md.push('\n');
}

fn at_scale(md: &mut String, f: &Figures) {
    md.push_str(
        "Hand-over at scale: idle keep-alive connections (one request answered on each), one \
         SIGHUP to the reference service.\n\n\
         | connections | SIGHUP to all adopted ms | SIGHUP to old process gone ms (it stands by 2 s for a take-back without systemd) | fds before (old) | fds after (new) | answered by the new process |\n\
         |---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &f.at_scale {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {} | {} | {} |",
            r.connections, r.handed_over_ms, r.old_exited_ms, r.fds_before, r.fds_after, r.answered
        );
    }
    md.push('\n');
}

fn hostile(md: &mut String, f: &Figures) {
    md.push_str(
        "Clients that pipeline `GET /hello` and never read the answers, for 5 s each: the \
         server's resident memory idle and at its peak, and whether another client was served \
         meanwhile.\n\n\
         | server | clients | RSS idle MiB | RSS peak MiB | another client served |\n\
         |---|---:|---:|---:|---|\n",
    );
    for r in &f.hostile {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} | {} |",
            r.server,
            r.clients,
            r.idle_rss_mib,
            r.peak_rss_mib,
            if r.others_served { "yes" } else { "no" }
        );
    }
    md.push('\n');
}
