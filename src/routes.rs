//! What every service answers besides its own routes: `/healthz`,
//! `/readyz`, `/metrics`, and errors as JSON (`{"error": "...", "status": N}`).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::state::{AppState, Instance};

/// An error answered to the client as JSON with the given status:
/// `{"error": message, "status": N}`.
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

/// What every service's `App` gets: JSON errors for bad path parameters.
pub(crate) fn defaults(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::PathConfig::default().error_handler(|err, _req| {
            ApiError::new(StatusCode::BAD_REQUEST, err.to_string()).into()
        }),
    );
}

/// `/healthz`, `/readyz`, `/metrics`.
pub(crate) fn builtin(cfg: &mut web::ServiceConfig) {
    cfg.service(get("/healthz", healthz))
        .service(get("/readyz", readyz))
        .service(get("/metrics", metrics));
}

/// A resource answering GET and HEAD with `handler` (HEAD gets the head
/// without the body) and 405 with `Allow: GET, HEAD` to other methods.
///
/// ```
/// use actix_web::{HttpResponse, web};
///
/// let config = |cfg: &mut web::ServiceConfig| {
///     cfg.service(handoff::get("/hello", || async { HttpResponse::Ok().body("hello") }));
/// };
/// # let _ = config;
/// ```
pub fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(|req: HttpRequest| async move {
            method_not_allowed(&req, "GET, HEAD")
        }))
}

/// 405 as JSON, with `Allow: allowed`.
pub fn method_not_allowed(req: &HttpRequest, allowed: &'static str) -> HttpResponse {
    let err = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.path()),
    );
    let mut res = err.error_response();
    res.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allowed));
    res
}

/// 404 as JSON: the default service of every `App`.
pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", req.method(), req.path()),
    )
    .error_response()
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 while accepting; 503 once stopping (the lame duck of
/// `server.shutdown_delay`, then the drain), so a load balancer in front of
/// several hosts stops sending here.
async fn readyz(instance: Option<web::Data<Instance>>) -> HttpResponse {
    match instance {
        Some(i) if i.is_draining() => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "draining" }))
        }
        Some(i) if i.is_stopping() => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "stopping" }))
        }
        _ => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
    }
}

async fn metrics(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

pub(crate) fn too_large(max: usize) -> ApiError {
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
                .configure(super::builtin),
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
