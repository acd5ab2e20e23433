//! Prometheus metrics: requests by route and status, requests in flight,
//! drains, hand-offs, and the process start time.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::drain_signal::LongLived;
use super::request_counts::RequestCounts;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandoffLabels {
    /// `success`, `spawn_failed`, `exited`, `not_ready`, `successor_died`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    /// The worker thread's index in its server instance, from 0.
    pub worker: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LongLivedLabels {
    /// `upgrade` (a WebSocket, any 101) or `stream` (a response whose body
    /// has no length: server-sent events, a long poll, a download).
    pub kind: &'static str,
    /// `closed` before `server.drain_timeout` (by the handler or the
    /// client), or `cut` at it.
    pub ended: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// `ok`, `failed` (not TLS, refused, or the client left) or `timeout`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DroppedLabels {
    /// `gone` (the earlier process has exited) or `full` (its queue was).
    pub reason: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// Requests answered and in flight, counted per worker.
    pub requests: Arc<RequestCounts>,
    pub drains: Counter,
    pub handoffs: Family<HandoffLabels, Counter>,
    pub handoff_last_duration_ms: Gauge,
    /// What became of idle connections at drains, and adoptions at starts.
    pub connections: crate::handover::Counts,
    pub worker_connections: Family<WorkerLabels, Gauge>,
    pub worker_adopted: Family<WorkerLabels, Counter>,
    /// Upgraded connections and streamed responses that ended while their
    /// instance was stopping.
    pub long_lived: Family<LongLivedLabels, Counter>,
    pub tls_handshakes: Family<HandshakeLabels, Counter>,
    /// TLS connections open now, handshake complete.
    pub tls_connections: Gauge,
    /// TLS connections open when their instance began draining: they stay
    /// in this process until they close (see `http::tls`).
    pub tls_connections_at_drain: Counter,
    /// QUIC (HTTP/3) handshakes, by result (as the TLS ones, plus `retry`:
    /// answered with a Retry, to validate the client's address first).
    pub quic_handshakes: Family<HandshakeLabels, Counter>,
    /// QUIC connections open now.
    pub quic_connections: Gauge,
    /// Datagrams of an earlier process's QUIC connections, passed to it.
    pub quic_forwarded: Counter,
    /// Datagrams of an earlier process's QUIC connections that could not
    /// be passed to it.
    pub quic_dropped: Family<DroppedLabels, Counter>,
}

impl Metrics {
    pub fn new(started: SystemTime, generation: u64) -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("handoff");
        // handoff_http_requests_total{route,method,status} and
        // handoff_http_requests_in_flight.
        let requests = Arc::new(RequestCounts::default());
        registry.register_collector(Box::new(requests.clone()));
        let drains = Counter::default();
        registry.register(
            "drains",
            "Times this process began draining (stopped accepting)",
            drains.clone(),
        );
        let handoffs = Family::<HandoffLabels, Counter>::default();
        registry.register(
            "reloads",
            "Reloads: hand-offs of the listeners to a new process, by outcome",
            handoffs.clone(),
        );
        let handoff_last_duration_ms = Gauge::default();
        registry.register(
            "reload_last_duration_milliseconds",
            "Duration of the last hand-off attempt, from spawn to outcome",
            handoff_last_duration_ms.clone(),
        );
        let generation_gauge: Gauge = Gauge::default();
        generation_gauge.set(i64::try_from(generation).unwrap_or(i64::MAX));
        registry.register(
            "generation",
            "How many processes have served these listeners, this one included",
            generation_gauge,
        );
        let connections = crate::handover::Counts::default();
        registry.register(
            "connections_handed_over",
            "Idle connections passed to the successor at a reload's drain",
            connections.handed_over.clone(),
        );
        registry.register(
            "connections_stored",
            "Idle connections put in the service manager's fd store at a stop",
            connections.stored.clone(),
        );
        registry.register(
            "connections_adopted",
            "Connections taken from the previous process or the fd store and served",
            connections.adopted.clone(),
        );
        registry.register(
            "connections_closed_at_drain",
            "Idle connections closed at a drain: nobody could take them",
            connections.closed.clone(),
        );
        let worker_connections = Family::<WorkerLabels, Gauge>::default();
        registry.register(
            "worker_connections",
            "Connections open now, accepted or adopted, by worker thread",
            worker_connections.clone(),
        );
        let worker_adopted = Family::<WorkerLabels, Counter>::default();
        registry.register(
            "worker_connections_adopted",
            "Adopted connections given to each worker thread",
            worker_adopted.clone(),
        );
        let long_lived = Family::<LongLivedLabels, Counter>::default();
        registry.register(
            "long_lived_ended_at_drain",
            "Upgraded connections and streamed responses that ended while their \
             server instance was stopping, by kind and by how they ended",
            long_lived.clone(),
        );
        let tls_handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes on the https listeners, by result",
            tls_handshakes.clone(),
        );
        let tls_connections = Gauge::default();
        registry.register(
            "tls_connections",
            "TLS connections open now (handshake complete)",
            tls_connections.clone(),
        );
        let tls_connections_at_drain = Counter::default();
        registry.register(
            "tls_connections_kept_at_drain",
            "TLS connections open at a drain, which stay in this process: \
             answered with Connection: close, or closed idle by server.keep_alive",
            tls_connections_at_drain.clone(),
        );
        let quic_handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "quic_handshakes",
            "QUIC (HTTP/3) handshakes, by result (retry: answered with a Retry)",
            quic_handshakes.clone(),
        );
        let quic_connections = Gauge::default();
        registry.register(
            "quic_connections",
            "QUIC (HTTP/3) connections open now",
            quic_connections.clone(),
        );
        let quic_forwarded = Counter::default();
        registry.register(
            "quic_datagrams_forwarded",
            "Datagrams of an earlier process's QUIC connections passed to it after a reload",
            quic_forwarded.clone(),
        );
        let quic_dropped = Family::<DroppedLabels, Counter>::default();
        registry.register(
            "quic_datagrams_dropped",
            "Datagrams of an earlier process's QUIC connections dropped: gone (it exited) or full",
            quic_dropped.clone(),
        );
        let start = Gauge::<f64, AtomicU64>::default();
        start.set(
            started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        // Unprefixed: the conventional name dashboards and alerts look for.
        root.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            start,
        );
        // Every generation after the first exists because a hand-off to it
        // succeeded: the count survives the process that made it. Failed
        // reloads are counted by the process that stayed, which serves on.
        handoffs
            .get_or_create(&HandoffLabels {
                outcome: "success".to_owned(),
            })
            .inc_by(generation.saturating_sub(1));
        Self {
            registry: root,
            requests,
            drains,
            handoffs,
            handoff_last_duration_ms,
            connections,
            worker_connections,
            worker_adopted,
            long_lived,
            tls_handshakes,
            tls_connections,
            tls_connections_at_drain,
            quic_handshakes,
            quic_connections,
            quic_forwarded,
            quic_dropped,
        }
    }

    pub fn record_quic_handshake(&self, result: &'static str) {
        self.quic_handshakes
            .get_or_create(&HandshakeLabels { result })
            .inc();
    }

    /// The counters the QUIC socket's routing keeps.
    pub fn quic_route_counts(&self) -> crate::quic::socket::RouteCounts {
        // One at a time: get_or_create's guard holds the family's lock.
        let gone = self
            .quic_dropped
            .get_or_create(&DroppedLabels { reason: "gone" })
            .clone();
        let full = self
            .quic_dropped
            .get_or_create(&DroppedLabels { reason: "full" })
            .clone();
        crate::quic::socket::RouteCounts {
            forwarded: self.quic_forwarded.clone(),
            dropped_gone: gone,
            dropped_full: full,
        }
    }

    pub fn record_handshake(&self, result: &'static str) {
        self.tls_handshakes
            .get_or_create(&HandshakeLabels { result })
            .inc();
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> i64 {
        self.requests.in_flight()
    }

    pub fn record_handoff(&self, outcome: &str) {
        self.handoffs
            .get_or_create(&HandoffLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// `n` long-lived responses of `kind` ended while their instance
    /// stopped: closed, or cut at the drain timeout.
    pub fn long_lived_ended(&self, kind: LongLived, cut: bool, n: u64) {
        let ended = if cut { "cut" } else { "closed" };
        let kind = kind.as_str();
        self.long_lived
            .get_or_create(&LongLivedLabels { kind, ended })
            .inc_by(n);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
