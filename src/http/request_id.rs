//! `X-Request-Id`: accepted from the client when well-formed, generated otherwise, echoed on
//! every response, carried by the request's tracing span and by every problem document. A W3C
//! `traceparent` from a client or gateway is accepted too: its trace id joins the span (so every
//! log line of the request carries it, next to the request id), and the response's
//! `traceparent` continues the trace with this request's own span id.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";
pub const TRACEPARENT: &str = "traceparent";
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

/// A `traceparent` (W3C Trace Context, version 00): `00-<32 hex trace id>-<16 hex parent
/// id>-<2 hex flags>`, lower case, ids not all zeros. Returns the trace id and the flags.
pub fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |text: &str, length: usize| {
        text.len() == length
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |text: &str| text.bytes().any(|b| b != b'0');
    let well_formed = parts.next().is_none()
        && version == "00"
        && hex(trace_id, 32)
        && nonzero(trace_id)
        && hex(parent_id, 16)
        && nonzero(parent_id)
        && hex(flags, 2);
    well_formed.then_some((trace_id, flags))
}

/// Makes the request's span a child of the client's span, for the spans exported over OTLP
/// (`crate::telemetry`; without an exporter this changes nothing).
fn join_the_client_trace(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    struct Headers<'a>(&'a actix_web::http::header::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|value| value.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|name| name.as_str()).collect()
        }
    }
    let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let _ = span.set_parent(propagator.extract(&Headers(headers)));
}

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
    let trace = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_traceparent)
        .map(|(trace_id, flags)| (trace_id.to_owned(), flags.to_owned()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        trace_id = trace.as_ref().map(|(trace_id, _)| trace_id.as_str()),
        method = %request.method(),
        path = %request.path()
    );
    if trace.is_some() {
        join_the_client_trace(&span, request.headers());
    }
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
    if let Some((trace_id, flags)) = trace {
        let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
        if let Ok(value) = HeaderValue::from_str(&format!("00-{trace_id}-{span_id}-{flags}")) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(TRACEPARENT), value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::parse_traceparent;

    #[test]
    fn a_well_formed_traceparent_gives_its_trace_id_and_flags_and_anything_else_nothing() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(valid),
            Some(("4bf92f3577b34da6a3ce929d0e0e4736", "01"))
        );
        for invalid in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(parse_traceparent(invalid), None, "{invalid:?}");
        }
    }
}
