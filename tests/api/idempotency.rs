//! §6: an Idempotency-Key applies its effect at most once, and its retries get the original
//! response, byte for byte.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, Reply, TestApp, Wallet};

fn transfer_body(debit: Uuid, credit: Uuid, amount: &str) -> Value {
    json!({
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "currency": "EUR"
    })
}

async fn post_with_key(app: &TestApp, path: &str, body: &Value, key: &str) -> Reply {
    app.request("POST", path)
        .json(body)
        .token(&app.tokens.writer)
        .idempotency_key(key)
        .send()
        .await
}

async fn transfer_count(app: &TestApp) -> usize {
    app.list_all("/v1/ledgers/main/transfers").await.len()
}

fn replayed(reply: &Reply) -> bool {
    reply
        .headers
        .get("idempotent-replayed")
        .is_some_and(|value| value == "true")
}

#[tokio::test]
async fn a_retry_with_the_same_key_replays_the_original_response_byte_for_byte() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    let first = post_with_key(
        &app,
        "/v1/ledgers/main/transfers",
        &transfer_body(world, wallet, "5.00"),
        "payment-1",
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(!replayed(&first));
    // The same request, its keys in another order: the canonical body is the same.
    let reordered = json!({
        "currency": "EUR",
        "amount": "5.00",
        "credit_account_id": wallet,
        "debit_account_id": world
    });
    let retry = post_with_key(&app, "/v1/ledgers/main/transfers", &reordered, "payment-1").await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.text, first.text, "byte-identical body");
    assert_eq!(retry.headers["location"], first.headers["location"]);
    assert!(replayed(&retry));
    assert_eq!(transfer_count(&app).await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    post_with_key(
        &app,
        "/v1/ledgers/main/transfers",
        &transfer_body(world, wallet, "5.00"),
        "payment-1",
    )
    .await;
    let other_amount = post_with_key(
        &app,
        "/v1/ledgers/main/transfers",
        &transfer_body(world, wallet, "6.00"),
        "payment-1",
    )
    .await;
    assert_eq!(
        (other_amount.status, other_amount.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    app.create_ledger("other").await;
    let other_route = post_with_key(
        &app,
        "/v1/ledgers/other/transfers",
        &transfer_body(world, wallet, "5.00"),
        "payment-1",
    )
    .await;
    assert_eq!(
        other_route.code(),
        "idempotency_key_reused",
        "the route is part of the request"
    );
    assert_eq!(transfer_count(&app).await, 1);
    assert_eq!(app.account("main", wallet).await["posted_balance"], "5.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_identical_requests_have_exactly_one_effect() {
    let app = Arc::new(spawn_app().await);
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    let body = transfer_body(world, wallet, "1.00");
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let (app, body) = (app.clone(), body.clone());
            tokio::spawn(async move {
                post_with_key(&app, "/v1/ledgers/main/transfers", &body, "same-key").await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for request in requests {
        replies.push(request.await.unwrap());
    }
    assert!(
        replies
            .iter()
            .all(|reply| reply.status == StatusCode::CREATED),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        replies.iter().all(|reply| reply.text == replies[0].text),
        "every response is the same"
    );
    assert_eq!(
        replies.iter().filter(|reply| !replayed(reply)).count(),
        1,
        "one applied, 49 replayed"
    );
    assert_eq!(transfer_count(&app).await, 1);
    assert_eq!(app.account("main", wallet).await["posted_balance"], "1.00");
}

#[tokio::test]
async fn a_retry_after_a_lost_response_has_one_effect() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    let body = transfer_body(world, wallet, "2.00");
    // The response is lost: the client reads its status line and drops the rest.
    let lost = app
        .client
        .post(app.url("/v1/ledgers/main/transfers"))
        .bearer_auth(&app.tokens.writer)
        .header("Idempotency-Key", "lost-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    drop(lost);
    let retry = post_with_key(&app, "/v1/ledgers/main/transfers", &body, "lost-1").await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert!(replayed(&retry));
    let id = retry.body["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/ledgers/main/transfers/{id}"))
            .await
            .body,
        retry.body
    );

    // The client gives up before any answer (it may or may not have reached the service), then
    // retries: whatever happened to the first attempt, there is one effect.
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(1))
        .build()
        .unwrap();
    let _ = impatient
        .post(app.url("/v1/ledgers/main/transfers"))
        .bearer_auth(&app.tokens.writer)
        .header("Idempotency-Key", "timeout-1")
        .json(&transfer_body(world, wallet, "3.00"))
        .send()
        .await;
    let retry = post_with_key(
        &app,
        "/v1/ledgers/main/transfers",
        &transfer_body(world, wallet, "3.00"),
        "timeout-1",
    )
    .await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(transfer_count(&app).await, 2);
    assert_eq!(app.account("main", wallet).await["posted_balance"], "5.00");
}

#[tokio::test]
async fn a_replayed_failure_stays_a_failure_after_the_account_is_funded() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    let spend = transfer_body(wallet, world, "10.00");
    let refused = post_with_key(&app, "/v1/ledgers/main/transfers", &spend, "spend-1").await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_funds")
    );
    assert_eq!(
        app.transfer("main", world, wallet, "50.00").await.status,
        StatusCode::CREATED
    );
    let retry = post_with_key(&app, "/v1/ledgers/main/transfers", &spend, "spend-1").await;
    assert_eq!(retry.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        retry.text, refused.text,
        "the ledger's decision is replayed, request id and all"
    );
    assert!(replayed(&retry));
    assert_eq!(app.account("main", wallet).await["posted_balance"], "50.00");
    let fresh_key = post_with_key(&app, "/v1/ledgers/main/transfers", &spend, "spend-2").await;
    assert_eq!(
        fresh_key.status,
        StatusCode::CREATED,
        "a new key is a new request"
    );
}

#[tokio::test]
async fn a_key_is_scoped_by_the_api_key_that_sent_it() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    let second_writer = app.create_key("writer", None).await;
    let body = transfer_body(world, wallet, "1.00");
    let first = app
        .request("POST", "/v1/ledgers/main/transfers")
        .json(&body)
        .token(&app.tokens.writer)
        .idempotency_key("shared")
        .send()
        .await;
    let second = app
        .request("POST", "/v1/ledgers/main/transfers")
        .json(&body)
        .token(&second_writer)
        .idempotency_key("shared")
        .send()
        .await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert!(!replayed(&second));
    assert_ne!(first.body["id"], second.body["id"]);
    assert_eq!(transfer_count(&app).await, 2);
}

#[tokio::test]
async fn the_journal_records_the_key_of_the_request_that_caused_each_event() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    post_with_key(
        &app,
        "/v1/ledgers/main/transfers",
        &transfer_body(world, wallet, "1.00"),
        "journal-key-7",
    )
    .await;
    let events = app.journal("main").await;
    assert_eq!(events.last().unwrap()["idempotency_key"], "journal-key-7");
    assert!(
        events
            .iter()
            .all(|event| event["idempotency_key"].is_string()),
        "every request had a key"
    );
}

#[tokio::test]
async fn a_write_needs_a_key_unless_its_body_names_its_own_id() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    let without_key = app
        .request("POST", "/v1/ledgers/main/transfers")
        .json(&transfer_body(world, wallet, "1.00"))
        .token(&app.tokens.writer)
        .send()
        .await;
    assert_eq!(
        (without_key.status, without_key.code()),
        (StatusCode::BAD_REQUEST, "idempotency_key_required")
    );
    let mut with_id = transfer_body(world, wallet, "1.00");
    with_id["id"] = json!(Uuid::new_v4());
    let first = app
        .request("POST", "/v1/ledgers/main/transfers")
        .json(&with_id)
        .token(&app.tokens.writer)
        .send()
        .await;
    let again = app
        .request("POST", "/v1/ledgers/main/transfers")
        .json(&with_id)
        .token(&app.tokens.writer)
        .send()
        .await;
    assert_eq!(
        (first.status, again.status),
        (StatusCode::CREATED, StatusCode::OK),
        "the id is the natural key"
    );
    assert_eq!(transfer_count(&app).await, 1);
    for bad_key in ["", &"k".repeat(256), "tab\there"] {
        let reply = app
            .request("POST", "/v1/ledgers/main/transfers")
            .json(&with_id)
            .token(&app.tokens.writer)
            .idempotency_key(bad_key)
            .send()
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "invalid_idempotency_key"),
            "{bad_key:?}"
        );
    }
}

#[tokio::test]
async fn creating_a_ledger_or_an_api_key_is_idempotent_too() {
    let app = spawn_app().await;
    let books = json!({"name": "books"});
    let create = |key: &'static str| {
        app.request("POST", "/v1/ledgers")
            .json(&books)
            .token(&app.tokens.admin)
            .idempotency_key(key)
            .send()
    };
    let first = create("ledger-1").await;
    let retry = create("ledger-1").await;
    assert_eq!(
        (first.status, retry.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(retry.text, first.text);
    assert!(replayed(&retry));
    let other_key = create("ledger-2").await;
    assert_eq!(
        other_key.code(),
        "ledger_exists",
        "a new key for the same name is a new request"
    );

    let key_body = json!({"name": "svc", "role": "reader"});
    let created = app
        .request("POST", "/v1/api-keys")
        .json(&key_body)
        .token(&app.tokens.admin)
        .idempotency_key("key-1")
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert!(created.body["token"].is_string());
    let replay = app
        .request("POST", "/v1/api-keys")
        .json(&key_body)
        .token(&app.tokens.admin)
        .idempotency_key("key-1")
        .send()
        .await;
    assert_eq!(
        (replay.status, replay.body["id"].clone()),
        (StatusCode::CREATED, created.body["id"].clone())
    );
    assert!(replayed(&replay));
    assert!(
        replay.body.get("token").is_none(),
        "a replay never repeats a secret"
    );
}

#[tokio::test]
async fn purging_expired_records_frees_the_key_and_never_touches_the_journal() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    let body = transfer_body(world, wallet, "1.00");
    post_with_key(&app, "/v1/ledgers/main/transfers", &body, "old-key").await;
    let journal_before = app.journal("main").await;
    let settings = ledger::storage::PoolSettings {
        custom_plans: true,
        max_connections: 1,
        statement_timeout_ms: 5_000,
        connect_timeout_ms: 5_000,
    };
    let storage = ledger::storage::Storage::new(app.database.clone(), settings, false).unwrap();
    let an_hour_from_now = ledger::domain::Timestamp::from_unix_micros(
        ledger::writer::now().unix_micros() + 3_600_000_000,
    );
    let purged = storage
        .purge_idempotency_records(an_hour_from_now, 2)
        .await
        .unwrap();
    assert!(purged >= 1, "the record is past the cutoff");
    assert_eq!(
        app.journal("main").await,
        journal_before,
        "the journal keeps every key"
    );
    let after_purge = post_with_key(&app, "/v1/ledgers/main/transfers", &body, "old-key").await;
    assert_eq!(after_purge.status, StatusCode::CREATED);
    assert!(
        !replayed(&after_purge),
        "past retention, a key is new again"
    );
    assert_eq!(transfer_count(&app).await, 2);
}
