//! What handoff answers itself: `/healthz`, `/readyz` and `/metrics` (in
//! front of the application, see `middleware`), its errors as JSON
//! (`{"error": "...", "status": N}`); and the helpers a service may use for
//! the same shape: [`ApiError`], [`get`], [`method_not_allowed`],
//! [`json_errors`].

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use super::state::{AppState, Phase};

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

/// Makes an `App` answer like handoff's own routes: a path, query or JSON
/// body that does not parse is a JSON 400, and a request no route takes is a
/// JSON 404 (a `default_service` the application sets later replaces it):
///
/// ```
/// use actix_web::App;
///
/// let app = App::new().configure(actix_handoff::json_errors);
/// # let _ = app;
/// ```
pub fn json_errors(cfg: &mut web::ServiceConfig) {
    let bad = |err: String| ApiError::new(StatusCode::BAD_REQUEST, err).into();
    cfg.app_data(web::PathConfig::default().error_handler(move |err, _| bad(err.to_string())))
        .app_data(web::QueryConfig::default().error_handler(move |err, _| bad(err.to_string())))
        .app_data(web::JsonConfig::default().error_handler(move |err, _| bad(err.to_string())))
        .default_service(web::to(not_found));
}

/// A resource answering GET and HEAD with `handler` (HEAD gets the head
/// without the body) and 405 with `Allow: GET, HEAD` to other methods.
///
/// ```
/// use actix_web::{HttpResponse, web};
///
/// let config = |cfg: &mut web::ServiceConfig| {
///     cfg.service(actix_handoff::get("/hello", || async { HttpResponse::Ok().body("hello") }));
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
    not_allowed(req.method(), req.path(), allowed)
}

fn not_allowed(method: &Method, path: &str, allowed: &'static str) -> HttpResponse {
    let err = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {path}"),
    );
    let mut res = err.error_response();
    res.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allowed));
    res
}

/// 404 as JSON: `no route for GET /nope`. [`json_errors`] makes it an
/// `App`'s default service.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", req.method(), req.path()),
    )
    .error_response()
}

/// The built-in route `path` names, answered: its pattern (the metrics'
/// label) and the response; None when `path` is not one of them.
pub(crate) fn builtin(
    method: &Method,
    path: &str,
    state: &AppState,
    phase: &Phase,
) -> Option<(&'static str, HttpResponse)> {
    let route = match path {
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        _ => return None,
    };
    if method != Method::GET && method != Method::HEAD {
        return Some((route, not_allowed(method, path, "GET, HEAD")));
    }
    let res = match route {
        "/healthz" => HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })),
        "/readyz" => readyz(phase),
        _ => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(state.metrics.render()),
    };
    Some((route, res))
}

/// 200 while accepting; 503 once stopping (the lame duck of
/// `server.shutdown_delay`, then the drain), so a load balancer in front of
/// several hosts stops sending here.
fn readyz(phase: &Phase) -> HttpResponse {
    if phase.is_draining() {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "draining" }))
    } else if phase.is_stopping() {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "stopping" }))
    } else {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    }
}

pub(crate) fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body exceeds limits.max_body_bytes ({max} bytes)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn status(method: Method, path: &str, state: &AppState, phase: &Phase) -> Option<u16> {
        builtin(&method, path, state, phase).map(|(_, r)| r.status().as_u16())
    }

    #[test]
    fn readyz_turns_503_in_the_lame_duck_and_the_drain() {
        let state = AppState::new(Settings::default(), 1, None);
        let phase = Phase::default();
        assert_eq!(status(Method::GET, "/readyz", &state, &phase), Some(200));
        phase.begin_lame_duck();
        assert_eq!(status(Method::GET, "/readyz", &state, &phase), Some(503));
        assert!(phase.begin_draining());
        assert!(
            !phase.begin_draining(),
            "only the first call starts a drain"
        );
        assert_eq!(status(Method::HEAD, "/readyz", &state, &phase), Some(503));
        assert_eq!(status(Method::GET, "/healthz", &state, &phase), Some(200));
    }

    #[test]
    fn only_the_three_paths_and_only_get_and_head() {
        let state = AppState::new(Settings::default(), 1, None);
        let phase = Phase::default();
        assert_eq!(status(Method::POST, "/metrics", &state, &phase), Some(405));
        assert_eq!(status(Method::GET, "/metrics/", &state, &phase), None);
        assert_eq!(status(Method::GET, "/", &state, &phase), None);
    }
}
