use ledger::audit::{Hash32, JournalEvent};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_journal_reproduces_the_ledger, spawn_app};

#[tokio::test]
async fn every_event_is_chained_to_the_previous_by_its_hash() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let a = app.open_account("main", "a", json!({})).await;
    let b = app.open_account("main", "b", json!({})).await;
    app.transfer("main", a, b, "1.00").await;
    let events = app.journal("main").await;
    assert_eq!(events.len(), 4);
    let mut previous = Hash32::ZERO;
    for (index, value) in events.iter().enumerate() {
        let event = JournalEvent::from_json(value).unwrap();
        assert_eq!(event.seq, index as u64 + 1, "gapless from 1");
        assert_eq!(event.prev_hash, previous);
        // hash = SHA-256 of the RFC 8785 form of the event without its hash.
        let mut body = value.clone();
        body.as_object_mut().unwrap().remove("hash");
        let canonical = serde_json_canonicalizer::to_vec(&body).unwrap();
        assert_eq!(Hash32::sha256(&canonical), event.hash);
        assert!(value["at"].as_str().unwrap().ends_with('Z'));
        previous = event.hash;
    }
    assert_eq!(
        events[3]["data"]["amount"], "1.00",
        "amounts at the currency's full scale"
    );
    assert_eq!(events[3]["request_id"].as_str().map(str::len), Some(36));
}

#[tokio::test]
async fn the_journal_pages_by_seq() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    for index in 0..4 {
        app.open_account("main", &format!("a{index}"), json!({}))
            .await;
    }
    let first = app.get("/v1/ledgers/main/journal?limit=2").await;
    assert_eq!(first.body["next_after_seq"], 2);
    let rest = app
        .get("/v1/ledgers/main/journal?after_seq=2&limit=10")
        .await;
    let seqs: Vec<_> = rest.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert!(rest.body["next_after_seq"].is_null());
    let bad = app.get("/v1/ledgers/main/journal?after_seq=-1").await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
}

#[tokio::test]
async fn a_request_id_given_by_the_client_is_recorded_in_the_event() {
    let app = spawn_app().await;
    let reply = app
        .client
        .post(app.url("/v1/ledgers"))
        .bearer_auth(&app.tokens.admin)
        .header("Idempotency-Key", "k-1")
        .header("x-request-id", "trace-abc-123")
        .json(&json!({"name": "main"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.headers()["x-request-id"], "trace-abc-123");
    assert_eq!(
        reply.status(),
        reqwest::StatusCode::CREATED,
        "{}",
        reply.text().await.unwrap()
    );
    assert_eq!(app.journal("main").await[0]["request_id"], "trace-abc-123");
}

#[tokio::test]
async fn replaying_the_journal_reproduces_the_ledger() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let a = app
        .open_account("main", "a", json!({"normal_side": "debit"}))
        .await;
    let b = app
        .open_account("main", "b", json!({"debits_must_not_exceed_credits": true}))
        .await;
    app.transfer("main", a, b, "7.25").await;
    app.transfer("main", b, a, "2.00").await;
    app.transfer("main", b, a, "20.00").await;
    assert_eq!(assert_journal_reproduces_the_ledger(&app, "main").await, 5);
}
