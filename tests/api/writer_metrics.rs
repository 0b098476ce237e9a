//! What the service tells an operator through `/metrics`: the journal head and the writer's
//! queue depth per ledger, the requests an Idempotency-Key answered without executing, and
//! request latency by route template (never by path) as histograms, refusals by code, and the
//! pools' connections.
//! (The recorder is shared by every test of this binary: this one uses its own ledger name and
//! checks only its own series, and counters only for having moved.)

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

fn series_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn the_writer_reports_its_journal_head_queue_depth_and_replays_per_ledger() {
    let app = spawn_app().await;
    app.create_ledger("metered").await;
    let a = app.open_account("metered", "a", json!({})).await;
    let b = app.open_account("metered", "b", json!({})).await;
    let body = json!({"debit_account_id": a, "credit_account_id": b, "amount": "1.00",
        "currency": "EUR"});
    let path = "/v1/ledgers/metered/transfers";
    let token = app.tokens.writer.clone();
    let first = app
        .request("POST", path)
        .json(&body)
        .token(&token)
        .idempotency_key("metered-key")
        .send()
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let replay = app
        .request("POST", path)
        .json(&body)
        .token(&token)
        .idempotency_key("metered-key")
        .send()
        .await;
    assert_eq!(replay.status, StatusCode::CREATED, "{}", replay.text);

    let refused = app.get("/v1/ledgers/metered/no-such-thing").await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text);

    let metrics = app.get("/metrics").await.text;
    let head = series_value(&metrics, "ledger_journal_head_seq{ledger=\"metered\"}");
    let journal = app.get("/v1/ledgers/metered/journal").await;
    let last_seq = journal.body["data"]
        .as_array()
        .and_then(|events| events.last())
        .and_then(|event| event["seq"].as_f64());
    assert_eq!(
        head, last_seq,
        "the gauge is the journal's last seq: {metrics}"
    );
    assert!(
        series_value(&metrics, "ledger_writer_queue_depth{ledger=\"metered\"}").is_some(),
        "{metrics}"
    );
    let replays = series_value(
        &metrics,
        "ledger_idempotency_outcomes_total{outcome=\"replayed\"}",
    );
    assert!(replays.is_some_and(|count| count >= 1.0), "{metrics}");
    let by_route = metrics.lines().any(|line| {
        line.starts_with("ledger_http_request_seconds")
            && line.contains("route=\"/v1/ledgers/{ledger}/transfers\"")
            && line.contains("status=\"201\"")
    });
    assert!(
        by_route,
        "request latency by route template and status: {metrics}"
    );
    assert!(
        metrics.contains("ledger_http_request_seconds_bucket{")
            && metrics.contains("ledger_batch_seconds_bucket{"),
        "latencies are histograms with buckets (they add up across instances): {metrics}"
    );
    let refusals = series_value(
        &metrics,
        "ledger_refusals_total{code=\"route_not_found\",status=\"404\"}",
    );
    assert!(
        refusals.is_some_and(|count| count >= 1.0),
        "refusals by code: {metrics}"
    );
    for pool in ["requests", "writers"] {
        let most = series_value(
            &metrics,
            &format!("ledger_db_pool_connections{{pool=\"{pool}\",state=\"max\"}}"),
        );
        assert!(
            most.is_some_and(|most| most >= 1.0),
            "{pool} pool: {metrics}"
        );
    }
    assert!(
        !metrics.contains("/v1/ledgers/metered/"),
        "no path with a ledger's name in a label: {metrics}"
    );
}
