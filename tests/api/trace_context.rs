//! W3C Trace Context: a client's or gateway's `traceparent` is continued, not dropped.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn a_traceparent_is_continued_with_the_same_trace_id_and_a_span_of_the_service() {
    let app = spawn_app().await;
    let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = app
        .client
        .get(app.url("/health/live"))
        .header("traceparent", sent)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let answered = reply.headers()["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = answered.split('-').collect();
    assert_eq!(parts.len(), 4, "{answered}");
    assert_eq!(parts[0], "00");
    assert_eq!(
        parts[1], "4bf92f3577b34da6a3ce929d0e0e4736",
        "the same trace"
    );
    assert_eq!(parts[2].len(), 16);
    assert_ne!(parts[2], "00f067aa0ba902b7", "the service's own span");
    assert_eq!(parts[3], "01", "the sampling decision kept");

    let without = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert!(without.headers().get("traceparent").is_none());
    let malformed = app
        .client
        .get(app.url("/health/live"))
        .header("traceparent", "00-not-a-trace-01")
        .send()
        .await
        .unwrap();
    assert_eq!(
        malformed.status(),
        StatusCode::OK,
        "a bad traceparent is ignored"
    );
    assert!(malformed.headers().get("traceparent").is_none());
}
