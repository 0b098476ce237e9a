//! `X-Request-Id`: accepted from the client when well-formed, generated otherwise, echoed on
//! every response, carried by the request's tracing span and by every problem document.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";
const MAX_LENGTH: usize = 128;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The request id, for handlers (it is stored in the request's extensions).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn accepted(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let well_formed =
        !text.is_empty() && text.len() <= MAX_LENGTH && text.bytes().all(|b| b.is_ascii_graphic());
    well_formed.then(|| text.to_owned())
}

pub async fn middleware(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(accepted)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.path()
    );
    let started = std::time::Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), next.call(request))
        .instrument(span.clone())
        .await?;
    let status = response.status().as_u16();
    let elapsed_s = started.elapsed().as_secs_f64();
    let handled = response.request();
    // The route's template, not the path: bounded label values, no ids or names in metrics.
    let route = handled
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let ledger = handled.match_info().get("ledger").map(str::to_owned);
    let key_id = handled
        .extensions()
        .get::<super::auth::Caller>()
        .map(|caller| caller.key.id.to_string());
    let client = handled.peer_addr().map(|address| address.ip().to_string());
    span.in_scope(|| {
        tracing::info!(
            status,
            route = %route,
            ledger = ledger.as_deref(),
            key_id = key_id.as_deref(),
            client = client.as_deref(),
            elapsed_ms = elapsed_s * 1000.0,
            "request handled"
        )
    });
    let status_label = status.to_string();
    metrics::counter!("ledger_http_responses_total", "status" => status_label.clone()).increment(1);
    metrics::histogram!("ledger_http_request_seconds", "route" => route, "status" => status_label)
        .record(elapsed_s);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(response)
}
