//! An `App` whose handlers answer what they were given: the request as
//! they see it, the `AppConfig` and `ConnectionInfo`, the body as their
//! extractors read it. Served by actix-web's own `HttpServer`
//! (`mirror-actix`) and by handoff (`mirror`), the two answers to the same
//! request must be the same: tests/parity.rs compares them.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream;
use serde_json::json;

/// The routes; the same for both servers.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/seen")
            .name("seen")
            .route(web::get().to(seen))
            .route(web::post().to(seen_with_body)),
    )
    .service(
        web::resource("/upload")
            // A route that takes larger bodies than actix-web's default.
            .app_data(web::PayloadConfig::new(10 * 1024 * 1024))
            .route(web::post().to(upload)),
    )
    .route("/payload", web::post().to(payload))
    .route("/stream", web::get().to(streamed))
    .route("/stream-raw", web::get().to(streamed_raw))
    .route("/broken", web::get().to(broken))
    .route("/broken-at-once", web::get().to(broken_at_once));
}

/// What a handler sees of the request and its connection.
fn what_was_seen(req: &HttpRequest) -> serde_json::Value {
    let config = req.app_config();
    let info = req.connection_info();
    let mut headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    headers.sort();
    json!({
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "version": format!("{:?}", req.version()),
        "headers": headers,
        "app_config": {
            "host": config.host(),
            "secure": config.secure(),
            "local_addr": config.local_addr().to_string(),
        },
        "connection_info": {
            "scheme": info.scheme(),
            "host": info.host(),
            "realip_remote_addr": info.realip_remote_addr().map(|a| a.split(':').next().unwrap_or("").to_owned()),
        },
        "peer_ip": req.peer_addr().map(|a| a.ip().to_string()),
        "full_url": req.full_url().to_string(),
        "url_for": req.url_for_static("seen").map(|u| u.to_string()).map_err(|e| e.to_string()),
    })
}

async fn seen(req: HttpRequest) -> HttpResponse {
    HttpResponse::Ok().json(what_was_seen(&req))
}

async fn seen_with_body(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut seen = what_was_seen(&req);
    seen["body_len"] = body.len().into();
    HttpResponse::Ok().json(seen)
}

/// A body read whole under the route's own `PayloadConfig` (10 MiB).
async fn upload(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "len": body.len() }))
}

/// A body read as a stream, with no bound but the handler's.
async fn payload(mut body: web::Payload) -> actix_web::Result<HttpResponse> {
    use futures_util::StreamExt;
    let mut len = 0;
    while let Some(chunk) = body.next().await {
        len += chunk?.len();
    }
    Ok(HttpResponse::Ok().json(json!({ "len": len })))
}

/// A streamed body whose length the handler knows and says.
async fn streamed() -> HttpResponse {
    let chunks = ["one ", "two ", "three"];
    let len: usize = chunks.iter().map(|c| c.len()).sum();
    let body = stream::iter(
        chunks.map(|c| Ok::<_, actix_web::Error>(web::Bytes::from_static(c.as_bytes()))),
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_LENGTH, len))
        .content_type("text/plain")
        .streaming(body)
}

/// A stream of unknown size as the body, with a length the handler sets
/// itself in the headers.
async fn streamed_raw() -> HttpResponse {
    let body = stream::iter(
        ["one ", "two ", "three"]
            .map(|c| Ok::<_, actix_web::Error>(web::Bytes::from_static(c.as_bytes()))),
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_LENGTH, 13))
        .content_type("text/plain")
        .body(actix_web::body::BodyStream::new(body))
}

/// A streamed body that fails when first asked for a part.
async fn broken_at_once() -> HttpResponse {
    let body = stream::once(async {
        Err::<web::Bytes, _>(actix_web::error::ErrorInternalServerError("broken"))
    });
    HttpResponse::Ok()
        .content_type("text/plain")
        .streaming(body)
}

/// A streamed body that sends a part, then fails.
async fn broken() -> HttpResponse {
    let body = stream::unfold(0, |n| async move {
        match n {
            0 => Some((Ok(web::Bytes::from_static(b"part ")), 1)),
            1 => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((Err(actix_web::error::ErrorInternalServerError("broken")), 2))
            }
            _ => None,
        }
    });
    HttpResponse::Ok()
        .content_type("text/plain")
        .streaming(body)
}
