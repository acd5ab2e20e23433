//! The kv service's application: an in-memory key-value cache with a time
//! to live, JSON values, writes behind a bearer token, and CORS for one
//! origin. Shared by its two `main`s, which are all that differs between
//! running it on actix-web's `HttpServer` (`actix.rs`) and on handoff
//! (`handoff.rs`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

/// The service's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Bearer tokens that may write.
    pub tokens: Vec<String>,
    /// How long a value lives.
    #[serde(with = "actix_handoff::duration")]
    pub ttl: Duration,
    /// Most values kept; a write beyond answers 507.
    pub max_entries: usize,
    /// The one origin browsers may call from.
    pub allowed_origin: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            ttl: Duration::from_secs(300),
            max_entries: 10_000,
            allowed_origin: "https://example.com".to_owned(),
        }
    }
}

impl Settings {
    /// What deserializing cannot check: which key is wrong, and why.
    pub fn check(&self) -> Result<(), (&'static str, String, &'static str)> {
        if self.tokens.iter().any(|t| t.len() < 16) {
            return Err((
                "tokens",
                "(hidden)".to_owned(),
                "each token needs 16 characters or more",
            ));
        }
        if self.max_entries == 0 {
            return Err(("max_entries", "0".to_owned(), "must be at least 1"));
        }
        Ok(())
    }
}

/// The cache: shared by every worker.
pub struct Store {
    entries: RwLock<HashMap<String, (serde_json::Value, Instant)>>,
    ttl: Duration,
    max: usize,
}

impl Store {
    pub fn new(settings: &Settings) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            ttl: settings.ttl,
            max: settings.max_entries,
        }
    }
}

/// The JSON body a write takes.
#[derive(Deserialize)]
pub struct Put {
    value: serde_json::Value,
}

/// `/kv`: the values. Reads are open; writes need a token (see [`authorize`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|err, _req| {
                problem(StatusCode::UNPROCESSABLE_ENTITY, &err.to_string()).into()
            }),
    )
    .route("", web::get().to(keys))
    .service(
        web::resource("/{key}")
            .route(web::get().to(get))
            .route(web::put().to(put))
            .route(web::delete().to(delete)),
    );
}

/// An error as RFC 9457 problem details.
pub fn problem(status: StatusCode, detail: &str) -> actix_web::error::InternalError<String> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    actix_web::error::InternalError::from_response(
        detail.to_owned(),
        HttpResponse::build(status)
            .content_type("application/problem+json")
            .body(body.to_string()),
    )
}

/// What [`authorize`] answers.
pub type Authorized<B> =
    Pin<Box<dyn Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>>>;

/// For `wrap_fn`: a request that writes needs `Authorization: Bearer
/// TOKEN` with one of `tokens`; anything else is answered 401 without
/// reaching the handler.
pub fn authorize<S, B>(tokens: &[String], req: ServiceRequest, srv: &S) -> Authorized<B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    let writes = !matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if writes && !presented.is_some_and(|t| tokens.iter().any(|ok| ok == t)) {
        let res = HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .finish();
        return Box::pin(std::future::ready(Ok(req
            .into_response(res)
            .map_into_right_body())));
    }
    let answer = srv.call(req);
    Box::pin(async move { answer.await.map(ServiceResponse::map_into_left_body) })
}

async fn keys(store: web::Data<Store>) -> HttpResponse {
    let now = Instant::now();
    let entries = store.entries.read().unwrap_or_else(|e| e.into_inner());
    let mut keys: Vec<&String> = entries
        .iter()
        .filter(|(_, (_, at))| now.duration_since(*at) < store.ttl)
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    HttpResponse::Ok().json(serde_json::json!({ "keys": keys, "pid": std::process::id() }))
}

async fn get(store: web::Data<Store>, key: web::Path<String>) -> actix_web::Result<HttpResponse> {
    let entries = store.entries.read().unwrap_or_else(|e| e.into_inner());
    match entries.get(key.as_str()) {
        Some((value, at)) if at.elapsed() < store.ttl => Ok(HttpResponse::Ok().json(value)),
        _ => Err(problem(StatusCode::NOT_FOUND, &format!("no value for {key}")).into()),
    }
}

async fn put(
    store: web::Data<Store>,
    key: web::Path<String>,
    body: web::Json<Put>,
) -> actix_web::Result<HttpResponse> {
    let mut entries = store.entries.write().unwrap_or_else(|e| e.into_inner());
    let ttl = store.ttl;
    entries.retain(|_, (_, at)| at.elapsed() < ttl);
    if entries.len() >= store.max && !entries.contains_key(key.as_str()) {
        return Err(problem(StatusCode::INSUFFICIENT_STORAGE, "the cache is full").into());
    }
    entries.insert(key.into_inner(), (body.into_inner().value, Instant::now()));
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(store: web::Data<Store>, key: web::Path<String>) -> HttpResponse {
    let mut entries = store.entries.write().unwrap_or_else(|e| e.into_inner());
    entries.remove(key.as_str());
    HttpResponse::NoContent().finish()
}

/// The service's own 404.
pub async fn not_found(req: HttpRequest) -> actix_web::Result<HttpResponse> {
    Err(problem(
        StatusCode::NOT_FOUND,
        &format!("no route for {}", req.path()),
    )
    .into())
}
