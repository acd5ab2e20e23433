//! `GET /`, `GET /version`, `GET /delay/{ms}`, `GET /spin/{us}`, `POST /echo`,
//! and the `[app]` settings they use.

use std::time::Duration;

use actix_handoff::{ApiError, Info, RequestLimits};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

/// The service's name: the binary's and the units' (the crate is
/// actix-handoff).
pub const NAME: &str = "handoff";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Which build this is, set at compile time (`HANDOFF_BUILD_ID=...`; the Nix
/// package sets one), so that two builds of one version can be told apart.
pub const BUILD: &str = match option_env!("HANDOFF_BUILD_ID") {
    Some(id) => id,
    None => "dev",
};

/// The `[app]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Demo {
    /// Longest sleep `GET /delay/{ms}` accepts.
    #[serde(with = "actix_handoff::duration")]
    pub max_delay: Duration,
    /// Largest body `POST /echo` answers back (actix-web's own default for
    /// a body read whole, `PayloadConfig`'s 256 KiB).
    pub echo_max_bytes: usize,
}

impl Default for Demo {
    fn default() -> Self {
        Self {
            max_delay: Duration::from_secs(10),
            echo_max_bytes: 256 * 1024,
        }
    }
}

impl actix_handoff::AppSettings for Demo {
    fn validate(&self) -> Result<(), actix_handoff::SettingError> {
        if !(1..=64 * 1024 * 1024).contains(&self.echo_max_bytes) {
            return Err(actix_handoff::SettingError::new(
                "echo_max_bytes",
                self.echo_max_bytes.to_string(),
                "must be 1 to 67108864",
            ));
        }
        if self.max_delay > Duration::from_secs(3600) {
            return Err(actix_handoff::SettingError::new(
                "max_delay",
                actix_handoff::duration::display(self.max_delay),
                "must be at most 1h",
            ));
        }
        Ok(())
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(actix_handoff::get("/", index))
        .service(actix_handoff::get("/version", version))
        .service(actix_handoff::get("/delay/{ms}", delay))
        .service(actix_handoff::get("/spin/{us}", spin))
        .service(
            web::resource("/echo")
                .route(web::post().to(echo))
                .default_service(web::to(|req: HttpRequest| async move {
                    actix_handoff::method_not_allowed(&req, "POST")
                })),
        );
}

/// Plain text naming the process, so a client can tell which one answered.
async fn index(info: web::Data<Info>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "handoff {VERSION} build {BUILD} pid {} generation {} started {}\n",
            info.pid,
            info.generation,
            info.started_rfc3339()
        ))
}

#[derive(Serialize)]
struct VersionInfo<'a> {
    name: &'a str,
    version: &'a str,
    build: &'a str,
    pid: u32,
    generation: u64,
    started: String,
}

async fn version(info: web::Data<Info>) -> HttpResponse {
    HttpResponse::Ok().json(VersionInfo {
        name: NAME,
        version: VERSION,
        build: BUILD,
        pid: info.pid,
        generation: info.generation,
        started: info.started_rfc3339(),
    })
}

/// Sleeps `ms` milliseconds, up to `app.max_delay`: a stand-in for slow
/// work, so tests can keep requests in flight across a restart.
async fn delay(
    settings: web::Data<Demo>,
    info: web::Data<Info>,
    ms: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let ms = ms.into_inner();
    let cap = settings.max_delay;
    if Duration::from_millis(ms) > cap {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "delay {ms}ms exceeds app.max_delay ({})",
                actix_handoff::duration::display(cap)
            ),
        ));
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "slept_ms": ms,
        "pid": info.pid,
    })))
}

/// Longest computation `GET /spin/{us}` does: it holds a worker thread.
const MAX_SPIN: Duration = Duration::from_millis(100);

/// Computes for `us` microseconds, up to 100 ms, on the worker thread: a
/// stand-in for CPU-bound handlers, so that benchmarks can show how work
/// spreads over the threads.
async fn spin(info: web::Data<Info>, us: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    let us = us.into_inner();
    let length = Duration::from_micros(us);
    if length > MAX_SPIN {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("spin {us}us exceeds 100ms"),
        ));
    }
    let until = std::time::Instant::now() + length;
    let mut rounds: u64 = 0;
    while std::time::Instant::now() < until {
        rounds = std::hint::black_box(rounds.wrapping_add(1));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "spun_us": us,
        "pid": info.pid,
    })))
}

/// Answers the request body back, within `[app] echo_max_bytes` and
/// `server.client_body_timeout`.
async fn echo(
    limits: web::Data<RequestLimits>,
    demo: web::Data<Demo>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let timeout = limits.client_body_timeout;
    let max = demo.echo_max_bytes;
    let body = tokio::time::timeout(timeout, payload.to_bytes_limited(max))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within server.client_body_timeout ({})",
                    actix_handoff::duration::display(timeout)
                ),
            )
        })?
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds app.echo_max_bytes ({max} bytes)"),
            )
        })?
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("request body: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(body))
}
