//! Middleware around every request: counts it in the metrics, refuses bodies
//! announced larger than the limit, bounds the time to receive a body, and
//! closes the connection after the response when
//! - the instance is draining, so keep-alive clients move to the next process
//!   instead of being cut off when this one exits;
//! - the handler left part of the body unread: actix would otherwise read a
//!   chunked rest for as long as the client trickles it.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{ConnectionType, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};

use crate::conn::ConnState;
use crate::metrics::RequestLabels;
use crate::payload::Tracked;
use crate::routes::too_large;
use crate::state::{AppState, Instance};

/// Decrements the in-flight gauge however the request ends, even when the
/// client goes away and the handler future is dropped.
struct InFlight<'a>(&'a AppState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.dec();
    }
}

pub async fn observe(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .expect("AppState is registered on the App");
    let instance = req.app_data::<web::Data<Instance>>().cloned();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();

    state.metrics.in_flight.inc();
    let guard = InFlight(&state);

    let max = state.settings.limits.max_body_bytes;
    let announced = announced_length(&req);
    let conn = req.conn_data::<std::rc::Rc<ConnState>>().cloned();
    // A body is coming: bound the time to receive it, and learn whether the
    // handler read it to the end.
    let body = (has_body(&req, announced)).then(|| {
        // A backstop: a handler reading the body under the same timeout
        // (`/echo`) answers 408 first; the connection ends just after.
        let deadline = tokio::time::Instant::now()
            + state.settings.server.client_body_timeout
            + BODY_DEADLINE_GRACE;
        let (payload, finished) = Tracked::wrap(req.take_payload(), conn.clone(), deadline);
        req.set_payload(payload);
        finished
    });
    let mut res = match announced {
        Some(len) if len > max as u64 => {
            let (http_req, _) = req.into_parts();
            ServiceResponse::new(http_req, too_large(max).error_response())
        }
        _ => match next.call(req).await {
            Ok(res) => res.map_into_boxed_body(),
            Err(e) => {
                // actix-web answers the error outside this middleware: count
                // its response now (the flush after it still has to come
                // before the connection counts as idle).
                if let Some(conn) = &conn {
                    conn.response_done();
                }
                return Err(e);
            }
        },
    };
    drop(guard);
    if let Some(conn) = conn {
        res = res.map_body(|_, body| BoxBody::new(Counted { body, conn }));
    }

    let unread_body = body.is_some_and(|finished| !finished.get());
    if unread_body || instance.is_some_and(|i| i.is_draining()) {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    let status = res.status().as_u16();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method: method.clone(),
            status,
        })
        .inc();
    tracing::debug!(%method, %route, status, "request");
    Ok(res)
}

/// How long after `server.client_body_timeout` the connection itself ends an
/// incomplete body, so that a handler's own answer to it gets out first.
const BODY_DEADLINE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

fn announced_length(req: &ServiceRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A request has a body when it announces a length above zero or a transfer
/// coding (RFC 9112 §6.3); the parser has rejected anything ambiguous.
fn has_body(req: &ServiceRequest, announced: Option<u64>) -> bool {
    announced.is_some_and(|n| n > 0) || req.headers().contains_key(header::TRANSFER_ENCODING)
}

/// A response body that tells the connection when the dispatcher is done
/// with it (dropped after its last byte was encoded, or never polled when
/// empty): part of knowing that a connection is idle.
struct Counted {
    body: BoxBody,
    conn: std::rc::Rc<ConnState>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.conn.response_done();
    }
}

impl MessageBody for Counted {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<actix_web::web::Bytes, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}
