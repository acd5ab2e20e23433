//! The drain signal handlers and long-lived tasks are given: it fires when
//! the server instance that runs them starts to stop (the lame duck's delay,
//! else the drain), whether for a reload, a restart or a stop.
//!
//! A request handler ends when it answers, so a drain waits for it. A
//! WebSocket session or a server-sent-events stream does not end by itself:
//! without being told, it holds the old process until
//! `server.drain_timeout` and is then cut (WebSocket clients see 1006, no
//! close frame). Told, it can end the way its protocol allows a client to
//! resume: a close frame (1012, service restart), the end of an event
//! stream after a `retry:` hint, and the client reconnects to the process
//! that now holds the listeners. The drain ends as soon as the last such
//! connection closed.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Fires when this process starts to stop serving the connection's
/// instance. A handler takes it as an argument (it is an extractor); the
/// application factory gets it as `ctx.drain` for tasks of its own.
///
/// ```no_run
/// use actix_web::{HttpResponse, web};
///
/// // A stream that ends at the drain, as a server-sent-events handler
/// // would; clients reconnect to the process that serves next.
/// async fn events(drain: actix_handoff::DrainSignal) -> HttpResponse {
///     let ticks = futures_util::stream::unfold(0u64, |n| async move {
///         tokio::time::sleep(std::time::Duration::from_secs(1)).await;
///         Some((Ok::<_, actix_web::Error>(web::Bytes::from(format!("data: {n}\n\n"))), n + 1))
///     });
///     let until_drain = futures_util::StreamExt::take_until(ticks, drain.wait());
///     HttpResponse::Ok().content_type("text/event-stream").streaming(until_drain)
/// }
/// ```
///
/// Outside handoff (the same `App` under actix-web's `HttpServer`, or in
/// `actix_web::test`), the extractor gives a signal that never fires.
#[derive(Clone, Debug, Default)]
pub struct DrainSignal(CancellationToken);

impl DrainSignal {
    /// Resolves when the drain signal fires (at once if it has); owns what
    /// it needs, so it can move into a spawned task or a `select!`.
    pub fn wait(&self) -> WaitForCancellationFutureOwned {
        self.0.clone().cancelled_owned()
    }

    /// Whether the signal has fired: the instance is stopping, a new
    /// long-lived session should not begin here.
    pub fn is_draining(&self) -> bool {
        self.0.is_cancelled()
    }

    pub(crate) fn fire(&self) {
        self.0.cancel();
    }
}

impl FromRequest for DrainSignal {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(req.app_data::<Self>().cloned().unwrap_or_default()))
    }
}

/// A response that lasts as long as its handler wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongLived {
    /// A 101: a WebSocket, or any upgrade.
    Upgrade = 0,
    /// A body with no length: server-sent events, a long poll, a download.
    Stream = 1,
}

impl LongLived {
    pub const ALL: [Self; 2] = [Self::Upgrade, Self::Stream];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upgrade => "upgrade",
            Self::Stream => "stream",
        }
    }
}
