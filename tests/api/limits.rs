//! Limits on everything (§8): each one, exceeded, answers its documented status and code as a
//! problem document, the value at the limit is accepted, and the service keeps serving.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger::startup::{Application, Database, Settings};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{
    fresh_database, owner_connection, settings_for, spawn_app, spawn_app_with, Reply, TestApp,
    Tokens, ADMIN_TOKEN,
};

/// Asserts an error answer: status, code, and a problem document.
#[track_caller]
fn assert_problem(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(
        (reply.status, reply.code()),
        (status, code),
        "{}",
        reply.text
    );
    assert_eq!(reply.content_type(), "application/problem+json");
    assert!(reply.body["request_id"].is_string(), "{}", reply.text);
}

/// The `Retry-After` of an answer, in seconds.
fn retry_after(reply: &Reply) -> u64 {
    reply
        .headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {}", reply.text))
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds")
}

/// The service still answers: readiness, and an authenticated read.
async fn assert_still_serving(app: &TestApp) {
    let ready = app.request("GET", "/health/ready").send().await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    let read = app
        .request("GET", "/v1/ledgers")
        .token(&app.tokens.admin)
        .send()
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
}

/// The service on its own database with only the bootstrap admin key: `spawn_app_with` creates
/// three keys with it at once, which a tight rate limit would refuse.
async fn spawn_app_without_keys(settings: Settings) -> TestApp {
    let Database::Given(database) = &settings.database else {
        unreachable!("tests use the shared cluster")
    };
    let database = database.as_ref().clone();
    let application = Application::build(&settings)
        .await
        .expect("build the application");
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        database,
        tokens: Tokens {
            admin: ADMIN_TOKEN.into(),
            ..Tokens::default()
        },
    }
}

async fn create_key(app: &TestApp, role: &str) -> String {
    let reply = app
        .post("/v1/api-keys", &json!({"name": role, "role": role}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_key_over_its_rate_is_refused_with_retry_after_and_other_keys_are_not() {
    let mut settings = settings_for(fresh_database().await);
    settings.security.rate_limit_per_second = NonZeroU32::new(1).unwrap();
    settings.security.rate_limit_burst = NonZeroU32::new(2).unwrap();
    let app = spawn_app_without_keys(settings).await;
    // Two requests of the admin key: within its burst.
    let limited = create_key(&app, "reader").await;
    let other = create_key(&app, "reader").await;

    let read = |token: &str| {
        let token = token.to_owned();
        let app = &app;
        async move { app.request("GET", "/v1/ledgers").token(&token).send().await }
    };
    // A fresh key has its burst of two; within one second a third request is refused. (On a
    // machine so slow that a request takes a second, a cell comes back; keep going until
    // refused, asserting that no request was admitted that the rate forbids.)
    let started = Instant::now();
    assert_eq!(read(&limited).await.status, StatusCode::OK, "first");
    assert_eq!(read(&limited).await.status, StatusCode::OK, "second");
    let mut refused = None;
    for attempt in 3..=20 {
        let reply = read(&limited).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "request {attempt} admitted within the first second: burst 2 at 1/s exceeded"
        );
    }
    let refused = refused.expect("the key was never rate limited");
    assert_problem(&refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait = retry_after(&refused);
    assert!(wait >= 1, "Retry-After {wait}");

    // Another key is not limited, and open routes are not limited, even with the limited key.
    assert_eq!(read(&other).await.status, StatusCode::OK);
    for _ in 0..5 {
        for path in ["/health/live", "/metrics"] {
            let reply = app.request("GET", path).token(&limited).send().await;
            assert_eq!(reply.status, StatusCode::OK, "{path}");
        }
    }
    assert_eq!(
        app.request("GET", "/health/ready").send().await.status,
        StatusCode::OK
    );
    // Honouring Retry-After (the behaviour under test, not a synchronisation) is enough.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let again = read(&limited).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
}

#[tokio::test]
async fn a_body_over_the_configured_size_is_refused_with_413() {
    let mut settings = settings_for(fresh_database().await);
    settings.limits.max_body_bytes = 1024;
    let app = spawn_app_with(settings).await;
    app.create_ledger("main").await;

    // Exactly at the limit: accepted.
    let mut body = json!({"name": "exact", "metadata": {"pad": ""}});
    let padding = 1024 - serde_json::to_vec(&body).unwrap().len();
    body["metadata"]["pad"] = json!("x".repeat(padding));
    assert_eq!(serde_json::to_vec(&body).unwrap().len(), 1024);
    let reply = app.post("/v1/ledgers", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    let pad = "x".repeat(2048);
    for path in [
        "/v1/ledgers",
        "/v1/ledgers/main/accounts",
        "/v1/ledgers/main/transfers",
        "/v1/api-keys",
    ] {
        let reply = app.post(path, &json!({ "name": pad })).await;
        assert_problem(&reply, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    }
    assert_still_serving(&app).await;
    app.open_account("main", "after", json!({})).await;
}

/// A page of a list, read with a key that may read it.
async fn list_page(app: &TestApp, list: &str, query: &str) -> Reply {
    // The journal is the auditor's; the admin key reads everything else.
    let token = if list.ends_with("/journal") {
        &app.tokens.auditor
    } else {
        &app.tokens.admin
    };
    app.request("GET", &format!("{list}?{query}"))
        .token(token)
        .send()
        .await
}

#[tokio::test]
async fn a_page_size_outside_one_to_the_maximum_is_refused() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let lists = [
        "/v1/ledgers",
        "/v1/ledgers/main/accounts",
        "/v1/ledgers/main/transfers",
        "/v1/ledgers/main/journal",
        "/v1/api-keys",
    ];
    for list in lists {
        let get = |query: &'static str| list_page(&app, list, query);
        for query in ["limit=0", "limit=1001"] {
            assert_problem(&get(query).await, StatusCode::BAD_REQUEST, "invalid_limit");
        }
        for query in ["limit=-1", "limit=ten"] {
            assert_problem(&get(query).await, StatusCode::BAD_REQUEST, "invalid_query");
        }
        for query in ["limit=1", "limit=1000"] {
            let reply = get(query).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{list}?{query}: {}",
                reply.text
            );
        }
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_smaller_configured_page_maximum_is_honoured() {
    let mut settings = settings_for(fresh_database().await);
    settings.limits.default_page_size = 2;
    settings.limits.max_page_size = 3;
    let app = spawn_app_with(settings).await;
    app.create_ledger("main").await;
    for index in 0..5 {
        app.open_account("main", &format!("a{index}"), json!({}))
            .await;
    }
    let page = app.get("/v1/ledgers/main/accounts").await;
    assert_eq!(page.body["data"].as_array().unwrap().len(), 2, "default");
    assert!(page.body["next_cursor"].is_string());
    let page = app.get("/v1/ledgers/main/accounts?limit=3").await;
    assert_eq!(page.body["data"].as_array().unwrap().len(), 3, "maximum");
    let reply = app.get("/v1/ledgers/main/accounts?limit=4").await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_limit");
    assert!(
        reply.body["detail"].as_str().unwrap().contains("1 to 3"),
        "{}",
        reply.text
    );
    assert_still_serving(&app).await;
}

/// A metadata object whose JSON is exactly `bytes` long.
fn metadata_of(bytes: usize) -> Value {
    let empty = serde_json::to_vec(&json!({"k": ""})).unwrap().len();
    let metadata = json!({ "k": "m".repeat(bytes - empty) });
    assert_eq!(serde_json::to_vec(&metadata).unwrap().len(), bytes);
    metadata
}

#[tokio::test]
async fn field_sizes_over_their_limits_are_refused_and_those_at_the_limit_accepted() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let a = app.open_account("main", "a", json!({})).await;
    let b = app.open_account("main", "b", json!({})).await;

    // Accounts: code ≤ 128 characters, metadata ≤ 4 KiB.
    let account = |code: String, metadata: Value| {
        json!({
            "code": code,
            "currency": "EUR",
            "normal_side": "credit",
            "metadata": metadata
        })
    };
    let accounts = "/v1/ledgers/main/accounts";
    let reply = app
        .post(accounts, &account("c".repeat(128), metadata_of(4096)))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    for (body, field) in [
        (account("d".repeat(129), json!({})), "code"),
        (account("e".into(), metadata_of(4097)), "metadata"),
    ] {
        let reply = app.post(accounts, &body).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(reply.body["field"], field);
    }

    // Ledgers: metadata ≤ 4 KiB.
    let reply = app
        .post(
            "/v1/ledgers",
            &json!({"name": "big", "metadata": metadata_of(4097)}),
        )
        .await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(reply.body["field"], "metadata");

    // Transfers: reference ≤ 128 characters, description ≤ 512, code ≤ 64, metadata ≤ 4 KiB.
    let transfers = "/v1/ledgers/main/transfers";
    let transfer = |extra: Value| {
        let mut body = json!({
            "debit_account_id": a,
            "credit_account_id": b,
            "amount": "1.00",
            "currency": "EUR"
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let at_limits = transfer(json!({
        // Characters, not bytes: 128 two-byte characters.
        "reference": "é".repeat(128),
        "description": "d".repeat(512),
        "code": "c".repeat(64),
        "metadata": metadata_of(4096),
    }));
    let reply = app.post(transfers, &at_limits).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    for (extra, field) in [
        (json!({"reference": "r".repeat(129)}), "reference"),
        (json!({"description": "d".repeat(513)}), "description"),
        (json!({"code": "c".repeat(65)}), "code"),
        (json!({"metadata": metadata_of(4097)}), "metadata"),
    ] {
        let reply = app.post(transfers, &transfer(extra)).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(reply.body["field"], field);
    }

    // Amounts: below 10^28 minor units (28 digits) accepted, beyond refused.
    let c = app.open_account("main", "c", json!({})).await;
    let d = app.open_account("main", "d", json!({})).await;
    let amount = |amount: String| {
        json!({
            "debit_account_id": c,
            "credit_account_id": d,
            "amount": amount,
            "currency": "EUR"
        })
    };
    let largest = format!("{}.99", "9".repeat(26));
    let reply = app.post(transfers, &amount(largest.clone())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["amount"], largest);
    for too_large in [
        format!("1{}", "0".repeat(26)),
        format!("1{}", "0".repeat(28)),
        format!("1{}.00", "0".repeat(40)),
    ] {
        let reply = app.post(transfers, &amount(too_large.clone())).await;
        assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid_amount");
    }
    assert_eq!(
        app.list_all(transfers).await.len(),
        2,
        "only the transfers at the limits"
    );
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_malformed_or_missing_idempotency_key_is_refused() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let a = app.open_account("main", "a", json!({})).await;
    let b = app.open_account("main", "b", json!({})).await;
    let transfer =
        json!({"debit_account_id": a, "credit_account_id": b, "amount": "1.00", "currency": "EUR"});
    let send = |path: &'static str, body: Value, key: Option<String>| {
        let app = &app;
        async move {
            let token = if path.contains("/transfers") {
                &app.tokens.writer
            } else {
                &app.tokens.admin
            };
            app.request("POST", path)
                .json(&body)
                .token(token)
                .maybe_idempotency_key(key.as_deref())
                .send()
                .await
        }
    };

    // 255 printable characters: accepted.
    let reply = send(
        "/v1/ledgers",
        json!({"name": "k255"}),
        Some("k".repeat(255)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    for key in ["k".repeat(256), "tab\there".into(), String::new()] {
        for (path, body) in [
            ("/v1/ledgers", json!({"name": "refused"})),
            ("/v1/ledgers/main/transfers", transfer.clone()),
        ] {
            let reply = send(path, body, Some(key.clone())).await;
            assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_idempotency_key");
        }
    }
    // Bytes outside ASCII (reqwest lets them through as opaque bytes).
    let reply = app
        .client
        .post(app.url("/v1/ledgers/main/transfers"))
        .bearer_auth(&app.tokens.writer)
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes("clé".as_bytes()).unwrap(),
        )
        .json(&transfer)
        .send()
        .await
        .unwrap();
    let reply = Reply {
        status: reply.status(),
        headers: reply.headers().clone(),
        text: reply.text().await.unwrap(),
        body: Value::Null,
    };
    let reply = Reply {
        body: serde_json::from_str(&reply.text).unwrap_or(Value::Null),
        ..reply
    };
    assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_idempotency_key");

    // No key and no client-supplied id: refused; a body id serves as the key.
    for (path, body) in [
        ("/v1/ledgers", json!({"name": "refused"})),
        ("/v1/ledgers/main/transfers", transfer.clone()),
        (
            "/v1/ledgers/main/accounts",
            json!({"code": "c", "currency": "EUR", "normal_side": "credit"}),
        ),
        ("/v1/api-keys", json!({"name": "k", "role": "reader"})),
    ] {
        let reply = send(path, body, None).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "idempotency_key_required");
    }
    let mut with_id = transfer.clone();
    with_id["id"] = json!(Uuid::new_v4());
    let reply = send("/v1/ledgers/main/transfers", with_id, None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    let refused = app.get("/v1/ledgers/refused").await;
    assert_eq!(
        refused.status,
        StatusCode::NOT_FOUND,
        "nothing refused was applied"
    );
    assert_eq!(
        app.list_all("/v1/ledgers/main/transfers").await.len(),
        1,
        "only the transfer with its own id"
    );
    assert_still_serving(&app).await;
}

/// Takes the row lock on the ledger's chain head from a connection of the test's own, in an
/// open transaction: every batch of the ledger's writer waits on it until it is released.
async fn hold_the_chain_head(app: &TestApp, ledger: &str) -> tokio_postgres::Client {
    let holder = owner_connection(&app.database).await;
    holder.batch_execute("BEGIN").await.unwrap();
    let locked = holder
        .query(
            "SELECT h.ledger_id FROM ledger_heads h JOIN ledgers l ON l.id = h.ledger_id WHERE \
             l.name = $1 FOR UPDATE OF h",
            &[&ledger],
        )
        .await
        .unwrap();
    assert_eq!(locked.len(), 1, "the ledger's head row");
    holder
}

/// Waits until a connection of the service waits on a lock (the writer's batch has reached the
/// held chain head, or a read the locked table). Polls a condition, bounded by a deadline.
async fn until_the_service_waits_on_a_lock(observer: &tokio_postgres::Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND \
                 application_name = 'ledger' AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no connection of the service ever waited on the held lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn count_transfers(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM transfers", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_full_writer_queue_is_refused_with_503_and_the_accepted_requests_commit() {
    let mut settings = settings_for(fresh_database().await);
    settings.writer.queue_capacity = 1;
    settings.writer.max_batch_commands = 1;
    // The blocked batch must outlast the test's waiting, however slow the machine.
    settings.pool.statement_timeout_ms = 120_000;
    let app = Arc::new(spawn_app_with(settings).await);
    app.create_ledger("main").await;
    let a = app.open_account("main", "a", json!({})).await;
    let b = app.open_account("main", "b", json!({})).await;
    let observer = owner_connection(&app.database).await;
    let holder = hold_the_chain_head(&app, "main").await;

    // The first request: taken by the writer into a batch, which blocks on the head.
    let first = tokio::spawn({
        let app = app.clone();
        async move { app.transfer("main", a, b, "1.00").await }
    });
    until_the_service_waits_on_a_lock(&observer).await;

    // Then many at once: exactly one finds room in the queue (capacity 1); every other is
    // refused at once, whatever the order in which they arrive.
    const CONCURRENT: usize = 8;
    let (sender, mut replies) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..CONCURRENT {
        let (app, sender) = (app.clone(), sender.clone());
        tokio::spawn(async move {
            let _ = sender.send(app.transfer("main", a, b, "1.00").await);
        });
    }
    drop(sender);
    for _ in 0..CONCURRENT - 1 {
        let reply = tokio::time::timeout(Duration::from_secs(60), replies.recv())
            .await
            .expect("the refusals come at once")
            .expect("a reply");
        assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "ledger_overloaded");
        assert!(retry_after(&reply) >= 1);
    }
    // Nothing else can have been answered while the head is held.
    assert!(
        replies.try_recv().is_err(),
        "the queued request is answered"
    );
    assert!(!first.is_finished(), "the blocked batch is answered");
    assert_eq!(count_transfers(&observer).await, 0);

    holder.batch_execute("ROLLBACK").await.unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let queued = replies.recv().await.expect("the queued request's reply");
    assert_eq!(queued.status, StatusCode::CREATED, "{}", queued.text);
    assert_eq!(count_transfers(&observer).await, 2, "one per 201");
    assert_eq!(app.account("main", b).await["posted_credits"], "2.00");

    assert_eq!(
        app.transfer("main", a, b, "1.00").await.status,
        StatusCode::CREATED
    );
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_statement_timeout_commits_nothing_and_the_retry_with_the_same_key_succeeds() {
    let mut settings = settings_for(fresh_database().await);
    settings.pool.statement_timeout_ms = 300;
    let app = spawn_app_with(settings).await;
    app.create_ledger("main").await;
    let a = app.open_account("main", "a", json!({})).await;
    let b = app.open_account("main", "b", json!({})).await;
    let observer = owner_connection(&app.database).await;
    let holder = hold_the_chain_head(&app, "main").await;

    let body =
        json!({"debit_account_id": a, "credit_account_id": b, "amount": "1.00", "currency": "EUR"});
    let send = || {
        app.request("POST", "/v1/ledgers/main/transfers")
            .json(&body)
            .token(&app.tokens.writer)
            .idempotency_key("timeout-retry")
            .send()
    };
    // The batch waits on the head past the statement timeout: nothing commits.
    let reply = send().await;
    assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE, "not_committed");
    assert!(retry_after(&reply) >= 1);
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        !detail.contains("statement") && !detail.contains("ledger_heads"),
        "no SQL or server text in a problem: {detail}"
    );
    assert_eq!(count_transfers(&observer).await, 0);
    // Reads do not need the head.
    assert_eq!(app.account("main", b).await["posted_credits"], "0.00");

    holder.batch_execute("ROLLBACK").await.unwrap();
    let retry = send().await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text);
    assert!(retry.headers.get("idempotent-replayed").is_none());
    assert_eq!(count_transfers(&observer).await, 1);
    // And the key now replays that one transfer.
    let replay = send().await;
    assert_eq!(replay.status, StatusCode::CREATED, "{}", replay.text);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body["id"], retry.body["id"]);
    assert_eq!(count_transfers(&observer).await, 1);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_read_past_the_statement_timeout_is_refused_as_retryable_and_the_service_recovers() {
    let mut settings = settings_for(fresh_database().await);
    settings.pool.statement_timeout_ms = 300;
    let app = spawn_app_with(settings).await;
    app.create_ledger("main").await;
    let a = app.open_account("main", "a", json!({})).await;
    // A lock no read can pass: the reads of accounts wait past the statement timeout.
    let holder = owner_connection(&app.database).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    for path in [
        format!("/v1/ledgers/main/accounts/{a}"),
        "/v1/ledgers/main/accounts".to_owned(),
    ] {
        let reply = app.get(&path).await;
        // A statement timeout on a read is a transient refusal, like a full pool
        // (`503 database_unavailable`, Retry-After), not a failure of the service (it was once
        // answered `500 internal_error`).
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            reply.text
        );
        assert_ne!(reply.code(), "internal_error", "{path}");
        assert_eq!(reply.content_type(), "application/problem+json");
        assert!(retry_after(&reply) >= 1, "{path}");
    }
    holder.batch_execute("ROLLBACK").await.unwrap();
    let reply = app.get(&format!("/v1/ledgers/main/accounts/{a}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_request_that_finds_no_free_database_connection_is_refused_with_503() {
    let mut settings = settings_for(fresh_database().await);
    settings.pool.max_connections = 1;
    settings.pool.connect_timeout_ms = 300;
    // The blocked read must outlast the test's waiting, however slow the machine.
    settings.pool.statement_timeout_ms = 120_000;
    let app = Arc::new(spawn_app_with(settings).await);
    app.create_ledger("main").await;
    let a = app.open_account("main", "a", json!({})).await;
    let observer = owner_connection(&app.database).await;
    let holder = owner_connection(&app.database).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    // The first read takes the pool's only connection and waits on the lock with it.
    let path = format!("/v1/ledgers/main/accounts/{a}");
    let first = tokio::spawn({
        let (app, path) = (app.clone(), path.clone());
        async move { app.get(&path).await }
    });
    until_the_service_waits_on_a_lock(&observer).await;
    // The next finds no connection within the wait and is refused, retryable.
    let reply = app.get(&path).await;
    assert_problem(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
    );
    assert!(retry_after(&reply) >= 1);
    assert!(!first.is_finished());

    holder.batch_execute("ROLLBACK").await.unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(app.get(&path).await.status, StatusCode::OK);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_a_408_problem_instead_of_holding_a_worker() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut settings = settings_for(fresh_database().await);
    settings.limits.body_read_timeout_ms = 300;
    let app = spawn_app_with(settings).await;
    app.create_ledger("main").await;
    let bank = app.open_account("main", "bank", json!({})).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let requests = [
        (
            "/v1/ledgers".to_owned(),
            "application/json",
            app.tokens.admin.clone(),
        ),
        (
            format!("/v1/ledgers/main/statements?account_id={bank}"),
            "text/csv",
            app.tokens.writer.clone(),
        ),
    ];
    for (path, content_type, token) in requests {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nContent-Type: \
             {content_type}\r\nIdempotency-Key: slow\r\nContent-Length: 100\r\n\r\n{{\"na"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut response = vec![0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut response))
            .await
            .expect("the service answers a stalled body by itself")
            .unwrap();
        let text = String::from_utf8_lossy(&response[..read]).to_lowercase();
        assert!(text.starts_with("http/1.1 408"), "{path}: {text}");
        assert!(
            text.contains("application/problem+json") && text.contains("body_timeout"),
            "{path}: {text}"
        );
    }
}
