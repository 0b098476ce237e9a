use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn liveness_and_readiness_answer_ok_on_a_migrated_database() {
    let app = spawn_app().await;
    for path in ["/health/live", "/health/ready"] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.body["status"], "ok");
    }
}

#[tokio::test]
async fn readiness_fails_when_migrations_are_missing() {
    let database = crate::helpers::fresh_database().await;
    let app = crate::helpers::spawn_app_on(database.clone()).await;
    let owner = crate::helpers::owner_connection(&database).await;
    owner
        .batch_execute("DELETE FROM refinery_schema_history")
        .await
        .unwrap();
    let reply = app.get("/health/ready").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_are_exposed_in_the_prometheus_format() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let a = app.open_account("main", "a", json!({})).await;
    let b = app.open_account("main", "b", json!({})).await;
    app.transfer("main", a, b, "1").await;
    let reply = app.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.text.contains("ledger_batch_commands"),
        "{}",
        reply.text
    );
    assert!(reply.text.contains("ledger_http_responses_total"));
}

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let app = spawn_app().await;
    let served = app.get("/openapi.json").await;
    assert_eq!(served.status, StatusCode::OK);
    let committed: Value = serde_json::from_str(include_str!("../../openapi/openapi.json"))
        .expect("openapi/openapi.json parses");
    assert!(
        served.body == committed,
        "openapi/openapi.json is stale: regenerate it with `cargo run -- openapi > \
         openapi/openapi.json`"
    );
    assert_eq!(served.body["openapi"], "3.1.0");
    let description = served.body["info"]["description"].as_str().unwrap();
    assert!(
        description.contains("| pending | post | posted |"),
        "the state machines are published"
    );
}

#[tokio::test]
async fn the_documentation_page_is_served_offline() {
    let app = spawn_app().await;
    let reply = app.get("/docs/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text.contains("swagger"), "Swagger UI");
    let reply = app.get("/docs").await;
    assert_eq!(reply.status, StatusCode::OK, "/docs leads to the UI too");
    assert!(reply.text.contains("swagger"), "Swagger UI");
}

#[tokio::test]
async fn every_error_is_a_problem_document_with_the_request_id() {
    let app = spawn_app().await;
    let reply = app
        .client
        .get(app.url("/no/such/route"))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::NOT_FOUND);
    assert_eq!(reply.headers()["content-type"], "application/problem+json");
    assert_eq!(reply.headers()["x-request-id"], "req-42");
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["code"], "route_not_found");
    assert_eq!(body["request_id"], "req-42");
    assert_eq!(body["status"], 404);
    assert_eq!(body["type"], "urn:ledger:problem:route_not_found");
}

#[tokio::test]
async fn a_malformed_request_id_is_replaced_by_a_generated_one() {
    let app = spawn_app().await;
    let reply = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "x".repeat(200))
        .send()
        .await
        .unwrap();
    let echoed = reply.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(echoed.len(), 36, "a generated UUID");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_the_service_keeps_serving() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let reply = app.post_raw("/v1/ledgers", "application/json", huge).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    assert_eq!(app.get("/v1/ledgers/main").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_known_route_with_another_method_is_405_naming_the_methods_it_takes() {
    let app = spawn_app().await;
    for (method, path, allowed) in [
        ("DELETE", "/v1/ledgers", "POST, GET"),
        ("PUT", "/v1/ledgers/main/transfers", "POST, GET"),
        ("POST", "/health/live", "GET"),
    ] {
        let reply = app
            .request(method, path)
            .token(&app.tokens.admin)
            .send()
            .await;
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(reply.code(), "method_not_allowed");
        assert_eq!(reply.content_type(), "application/problem+json");
        assert_eq!(reply.headers["allow"], allowed, "{method} {path}");
    }
    let unknown = app.request("DELETE", "/no/such/route").send().await;
    assert_eq!(unknown.code(), "route_not_found");
}
