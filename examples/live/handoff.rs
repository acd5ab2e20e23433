//! Long-lived connections that behave at a deploy: a WebSocket route and a
//! server-sent-events route, each ending at handoff's drain signal in the
//! way its protocol lets a client resume, so that every client moves to the
//! process that serves next and the old process exits as soon as they have.
//! `cargo run --example live`.
//!
//! - `GET /ws`, a WebSocket: each text message is acknowledged with
//!   `{"ack": <the message>, "pid": .., "generation": ..}`. At the drain the
//!   session ends with close code 1012 (service restart: the server will be
//!   back, reconnect), not 1001 (going away), which clients and proxies take
//!   as "this endpoint is gone" and need not retry. A message the client
//!   sent after the close frame is never acknowledged: the client sends it
//!   again on its new connection.
//! - `GET /events`, server-sent events: event `n` is the `n`th tick of
//!   `[app] tick_ms` since the Unix epoch, a stand-in for an event log that
//!   outlives any one process (a table, a broker). A client that reconnects
//!   with `Last-Event-ID: k` first gets every event after `k` it missed. At
//!   the drain the stream sends `retry: <[app] retry_ms>` and ends, so the
//!   client reconnects (to the successor) that soon and misses nothing.
//!
//! `GET /` names the process: `live pid N generation G`. While this
//! instance stops, a new session is refused with 503 and
//! `Retry-After: 1`. `[app] close_at_drain = false` ignores the signal, as a
//! handler that was never told would: the sessions then hold the old process
//! until `server.drain_timeout` and are cut.

use std::pin::pin;
use std::time::{Duration, SystemTime};

use actix_handoff::{DrainSignal, Info};
use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// One event every this many milliseconds on `/events`.
    tick_ms: u64,
    /// The reconnection delay `/events` asks of its clients at the drain.
    retry_ms: u64,
    /// End sessions at the drain signal (the point of this example).
    close_at_drain: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tick_ms: 100,
            retry_ms: 100,
            close_at_drain: true,
        }
    }
}

impl actix_handoff::AppSettings for Settings {
    fn validate(&self) -> Result<(), actix_handoff::SettingError> {
        if !(1..=60_000).contains(&self.tick_ms) {
            let value = self.tick_ms.to_string();
            return Err(actix_handoff::SettingError::new(
                "tick_ms",
                &value,
                "must be 1 to 60000",
            ));
        }
        if self.retry_ms > 60_000 {
            let value = self.retry_ms.to_string();
            return Err(actix_handoff::SettingError::new(
                "retry_ms",
                &value,
                "must be at most 60000",
            ));
        }
        Ok(())
    }
}

fn stopping() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "1"))
        .json(serde_json::json!({"error": "this process is stopping; retry", "status": 503}))
}

async fn ws(
    req: HttpRequest,
    body: web::Payload,
    drain: DrainSignal,
    info: web::Data<Info>,
    settings: web::Data<Settings>,
) -> actix_web::Result<HttpResponse> {
    if drain.is_draining() {
        return Ok(stopping());
    }
    let (response, mut session, mut messages) = actix_ws::handle(&req, body)?;
    let close_at_drain = settings.close_at_drain;
    let (pid, generation) = (info.pid, info.generation);
    actix_web::rt::spawn(async move {
        let mut drained = pin!(drain.wait());
        let reason = loop {
            tokio::select! {
                // Messages already received are answered first.
                biased;
                message = messages.recv() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let ack = serde_json::json!({
                            "ack": &*text, "pid": pid, "generation": generation,
                        });
                        if session.text(ack.to_string()).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Close(reason))) => break reason,
                    Some(Ok(_)) => {}
                    // A protocol error or the client gone.
                    Some(Err(_)) | None => break None,
                },
                () = &mut drained, if close_at_drain => break Some(CloseReason {
                    code: CloseCode::Restart,
                    description: Some("restarting; reconnect".to_owned()),
                }),
            }
        };
        let _ = session.close(reason).await;
    });
    Ok(response)
}

/// The tick `now` falls in.
fn current_tick(tick_ms: u64) -> u64 {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    u64::try_from(ms / u128::from(tick_ms)).unwrap_or(u64::MAX)
}

async fn events(
    req: HttpRequest,
    drain: DrainSignal,
    info: web::Data<Info>,
    settings: web::Data<Settings>,
) -> HttpResponse {
    if drain.is_draining() {
        return stopping();
    }
    let tick_ms = settings.tick_ms;
    let now = current_tick(tick_ms);
    // Resume after the last event the client saw; a new client starts now.
    let first = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .map_or(now, |seen| {
            seen.saturating_add(1).max(now.saturating_sub(10_000))
        });
    let (pid, generation) = (info.pid, info.generation);
    let event = move |n: u64| {
        let data = serde_json::json!({"n": n, "pid": pid, "generation": generation});
        web::Bytes::from(format!("id: {n}\ndata: {data}\n\n"))
    };
    let ticks = stream::unfold(first, move |n| async move {
        // Missed events at once, then each at its tick.
        let due = n.saturating_mul(tick_ms);
        let now_ms = current_tick(1);
        if due > now_ms {
            tokio::time::sleep(Duration::from_millis(due - now_ms)).await;
        }
        Some((n, n + 1))
    })
    .map(event);
    let retry = web::Bytes::from(format!("retry: {}\n\n", settings.retry_ms));
    let body: stream::BoxStream<'static, web::Bytes> = if settings.close_at_drain {
        ticks
            .take_until(drain.wait())
            .chain(stream::once(async move { retry }))
            .boxed()
    } else {
        ticks.boxed()
    };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body.map(Ok::<_, actix_web::Error>))
}

/// Which process answers, for people and tests.
async fn index(info: web::Data<Info>) -> String {
    format!("live pid {} generation {}\n", info.pid, info.generation)
}

fn main() -> std::process::ExitCode {
    actix_handoff::Service::with_settings::<Settings>().run(|_| {
        App::new()
            .configure(actix_handoff::json_errors)
            .route("/", web::get().to(index))
            .route("/ws", web::get().to(ws))
            .route("/events", web::get().to(events))
    })
}
