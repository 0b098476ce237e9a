//! Spans over OTLP: when `LEDGER_OTLP_ENDPOINT` names a collector (OTLP/HTTP, protobuf, e.g.
//! `http://collector:4318/v1/traces`), every request span (joined to the client's trace when it
//! sent a `traceparent`) and every batch span are exported in batches from a thread of their
//! own. Unset: no layer, no exporter, nothing on the hot path.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// The environment variable naming the collector's traces endpoint.
pub const ENDPOINT_VARIABLE: &str = "LEDGER_OTLP_ENDPOINT";

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The layer exporting spans, when an endpoint is configured and its exporter builds.
pub fn otlp_layer<S>(
) -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let endpoint = std::env::var(ENDPOINT_VARIABLE).ok()?;
    let exporter = match SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint.as_str())
        .build()
    {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("{ENDPOINT_VARIABLE}={endpoint}: no OTLP exporter: {error}");
            return None;
        }
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("ledger").build())
        .build();
    let tracer = provider.tracer("ledger");
    let _ = PROVIDER.set(provider);
    Some(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Sends what is still buffered (at shutdown).
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.force_flush();
        let _ = provider.shutdown();
    }
}
