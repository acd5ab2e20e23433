//! Memory under clients that pipeline requests and never read the answers:
//! what the server holds for them, bare actix-web against handoff.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::services::{self, Binaries, Kind, Server};

#[derive(Debug, Serialize)]
pub struct Hostile {
    pub server: String,
    pub clients: usize,
    pub idle_rss_mib: f64,
    pub peak_rss_mib: f64,
    /// A request from another client, while they write.
    pub others_served: bool,
}

/// `clients` connections each writing pipelined `GET /hello`s for `length`
/// without reading; the server's resident memory before and at its peak.
pub fn pipelining_without_reading(
    kind: Kind,
    bins: &Binaries,
    clients: usize,
    length: Duration,
) -> Hostile {
    let port = services::free_port();
    let server = Server::start(kind, bins, port);
    let (idle, _) = services::rss_kib(server.pid());
    let burst = b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n".repeat(256);
    let writers: Vec<_> = (0..clients)
        .map(|_| {
            let burst = burst.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.set_write_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let until = Instant::now() + length;
                while Instant::now() < until {
                    // A write that cannot go on (the server stopped reading)
                    // times out; the client keeps trying until the end.
                    let _ = s.write(&burst);
                }
                s
            })
        })
        .collect();
    std::thread::sleep(length / 2);
    let others_served = services::get(port, "/hello").is_some_and(|(status, _)| status == 200);
    let conns: Vec<TcpStream> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let (_, peak) = services::rss_kib(server.pid());
    drop(conns);
    Hostile {
        server: kind.name().to_owned(),
        clients,
        idle_rss_mib: idle as f64 / 1024.0,
        peak_rss_mib: peak as f64 / 1024.0,
        others_served,
    }
}
