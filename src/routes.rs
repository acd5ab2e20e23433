//! The HTTP API. Every error is JSON: `{"error": "...", "status": N}`.

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;

use crate::duration;
use crate::state::{AppState, BUILD, Instance, VERSION};

/// An error answered to the client as JSON with the given status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(serde_json::json!({
            "error": self.message,
            "status": self.status.as_u16(),
        }))
    }
}

type State = web::Data<AppState>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::PathConfig::default().error_handler(|err, _req| {
            ApiError::new(StatusCode::BAD_REQUEST, err.to_string()).into()
        }),
    )
    .service(get("/", index))
    .service(get("/healthz", healthz))
    .service(get("/readyz", readyz))
    .service(get("/version", version))
    .service(get("/metrics", metrics))
    .service(get("/delay/{ms}", delay))
    .service(
        web::resource("/echo")
            .route(web::post().to(echo))
            .default_service(web::to(method_not_allowed)),
    )
    .default_service(web::to(not_found));
}

/// A GET and HEAD resource that answers 405 to other methods. HEAD runs the
/// GET handler; the HTTP layer sends its head without the body.
fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(method_not_allowed))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", req.method(), req.path()),
    )
    .error_response()
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let allowed = if req.path() == "/echo" {
        "POST"
    } else {
        "GET, HEAD"
    };
    let err = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.path()),
    );
    let mut res = err.error_response();
    res.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allowed));
    res
}

/// Plain text naming the process, so a client can tell which one answered.
async fn index(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "handoff {VERSION} build {BUILD} pid {} generation {} started {}\n",
            state.pid,
            state.generation,
            state.started_rfc3339()
        ))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 while accepting; 503 once draining, so a load balancer in front of
/// several hosts stops sending here.
async fn readyz(instance: Option<web::Data<Instance>>) -> HttpResponse {
    if instance.is_some_and(|i| i.is_draining()) {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "draining" }))
    } else {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    }
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

async fn version(state: State) -> HttpResponse {
    HttpResponse::Ok().json(VersionInfo {
        name: env!("CARGO_PKG_NAME"),
        version: VERSION,
        build: BUILD,
        pid: state.pid,
        generation: state.generation,
        started: state.started_rfc3339(),
    })
}

async fn metrics(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// Sleeps `ms` milliseconds, up to `limits.max_delay`: a stand-in for slow
/// work, so tests can keep requests in flight across a restart.
async fn delay(state: State, ms: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    let ms = ms.into_inner();
    let wanted = Duration::from_millis(ms);
    let cap = state.settings.limits.max_delay;
    if wanted > cap {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "delay {ms}ms exceeds limits.max_delay ({})",
                duration::display(cap)
            ),
        ));
    }
    tokio::time::sleep(wanted).await;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "slept_ms": ms,
        "pid": state.pid,
    })))
}

/// Answers the request body back. The body must arrive within
/// `server.client_body_timeout` and be at most `limits.max_body_bytes`.
async fn echo(state: State, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let limits = &state.settings.limits;
    let timeout = state.settings.server.client_body_timeout;
    let body = tokio::time::timeout(timeout, payload.to_bytes_limited(limits.max_body_bytes))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within server.client_body_timeout ({})",
                    duration::display(timeout)
                ),
            )
        })?
        .map_err(|_| too_large(limits.max_body_bytes))?
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("request body: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(body))
}

pub fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body exceeds limits.max_body_bytes ({max} bytes)"),
    )
}

#[cfg(test)]
mod tests {
    use actix_web::{App, test, web};

    use crate::config::Settings;
    use crate::state::{AppState, Instance};

    #[actix_web::test]
    async fn readyz_turns_503_once_draining() {
        let state = web::Data::new(AppState::new(Settings::default(), 1));
        let instance = web::Data::new(Instance::default());
        let app = test::init_service(
            App::new()
                .app_data(state.clone())
                .app_data(instance.clone())
                .configure(super::configure),
        )
        .await;
        let ready =
            test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
        assert_eq!(ready.status(), 200);
        assert!(instance.begin_draining());
        assert!(
            !instance.begin_draining(),
            "only the first call starts a drain"
        );
        let draining =
            test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
        assert_eq!(draining.status(), 503);
    }
}
