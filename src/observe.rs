//! Middleware around every request: counts it in the metrics, refuses bodies
//! announced larger than the limit, and closes the connection after the
//! response once the process is draining, so keep-alive clients move to the
//! next process instead of being cut off when this one exits.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{ConnectionType, header};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};

use crate::metrics::RequestLabels;
use crate::routes::too_large;
use crate::state::AppState;

/// Decrements the in-flight gauge however the request ends, even when the
/// client goes away and the handler future is dropped.
struct InFlight<'a>(&'a AppState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.dec();
    }
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .expect("AppState is registered on the App");
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();

    state.metrics.in_flight.inc();
    let guard = InFlight(&state);

    let max = state.settings.limits.max_body_bytes;
    let mut res = match announced_length(&req) {
        Some(len) if len > max as u64 => {
            let (http_req, _) = req.into_parts();
            ServiceResponse::new(http_req, too_large(max).error_response())
        }
        _ => next.call(req).await?.map_into_boxed_body(),
    };
    drop(guard);

    if state.is_draining() {
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

fn announced_length(req: &ServiceRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
