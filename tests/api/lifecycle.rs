//! §3 over HTTP: two-phase transfers, reversals, batches, the account lifecycle, expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{
    assert_balance_invariants_in_database, assert_journal_reproduces_the_ledger, fresh_database,
    settings_for, spawn_app, spawn_app_on, spawn_app_with, TestApp, Wallet,
};

async fn ledger_with_accounts(app: &TestApp) -> (Uuid, Uuid) {
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    assert_eq!(
        app.transfer("main", world, wallet, "100.00").await.status,
        StatusCode::CREATED
    );
    (world, wallet)
}

async fn pending(
    app: &TestApp,
    debit: Uuid,
    credit: Uuid,
    amount: &str,
    timeout_seconds: Option<u32>,
) -> String {
    let mut body = json!({
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "currency": "EUR",
        "pending": true
    });
    if let Some(seconds) = timeout_seconds {
        body["timeout_seconds"] = json!(seconds);
    }
    let reply = app.post("/v1/ledgers/main/transfers", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn action(app: &TestApp, path: &str, body: Value) -> crate::helpers::Reply {
    app.post(&format!("/v1/ledgers/main/{path}"), &body).await
}

/// Polls a condition until it holds or the deadline passes (a condition, not a fixed sleep).
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn fast_expiry_app_settings(
    database: tokio_postgres::Config,
    expiry_interval_ms: u64,
) -> ledger::startup::Settings {
    let mut settings = settings_for(database);
    settings.writer.expiry_interval_ms = expiry_interval_ms;
    settings
}

#[tokio::test]
async fn posting_part_of_a_pending_transfer_releases_the_rest() {
    let app = spawn_app().await;
    let (world, wallet) = ledger_with_accounts(&app).await;
    let id = pending(&app, wallet, world, "10.00", None).await;
    assert_eq!(
        app.account("main", wallet).await["available_balance"],
        "90.00"
    );
    let posted = action(
        &app,
        &format!("transfers/{id}/post"),
        json!({"amount": "7.5"}),
    )
    .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.text);
    assert_eq!(
        (
            posted.body["state"].as_str(),
            posted.body["posted_amount"].as_str()
        ),
        (Some("posted"), Some("7.50"))
    );
    let wallet_now = app.account("main", wallet).await;
    assert_eq!(
        (
            wallet_now["pending_debits"].as_str(),
            wallet_now["posted_balance"].as_str()
        ),
        (Some("0.00"), Some("92.50"))
    );
    let again = action(&app, &format!("transfers/{id}/post"), json!({})).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "invalid_state_transition")
    );
    assert_eq!(
        (again.body["from"].as_str(), again.body["to"].as_str()),
        (Some("posted"), Some("posted"))
    );
    let other = pending(&app, wallet, world, "5.00", None).await;
    let too_much = action(
        &app,
        &format!("transfers/{other}/post"),
        json!({"amount": "5.01"}),
    )
    .await;
    assert_eq!(
        (too_much.status, too_much.code()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "post_amount_exceeds_pending"
        )
    );
    let voided = action(&app, &format!("transfers/{other}/void"), json!({})).await;
    assert_eq!(voided.body["state"], "voided");
    let void_again = action(&app, &format!("transfers/{other}/void"), json!({})).await;
    assert_eq!(
        (
            void_again.body["from"].as_str(),
            void_again.body["to"].as_str()
        ),
        (Some("voided"), Some("voided"))
    );
    assert_journal_reproduces_the_ledger(&app, "main").await;
}

#[tokio::test]
async fn a_posted_transfer_is_reversed_in_parts_until_nothing_remains() {
    let app = spawn_app().await;
    let (world, wallet) = ledger_with_accounts(&app).await;
    let original = app.transfer("main", wallet, world, "10.00").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = action(
        &app,
        &format!("transfers/{original}/reverse"),
        json!({"amount": "4.00", "reference": "refund-1"}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.body["reverses"], original.as_str());
    assert_eq!(
        (
            first.body["debit_account_id"].as_str(),
            first.body["credit_account_id"].as_str()
        ),
        (
            Some(world.to_string().as_str()),
            Some(wallet.to_string().as_str())
        )
    );
    let rest = action(&app, &format!("transfers/{original}/reverse"), json!({})).await;
    assert_eq!(
        rest.body["amount"], "6.00",
        "the remaining amount by default"
    );
    let more = action(
        &app,
        &format!("transfers/{original}/reverse"),
        json!({"amount": "0.01"}),
    )
    .await;
    assert_eq!(
        (more.status, more.code()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "reversal_exceeds_posted_amount"
        )
    );
    let original_now = app
        .get(&format!("/v1/ledgers/main/transfers/{original}"))
        .await
        .body;
    assert_eq!(
        (
            original_now["reversed_amount"].as_str(),
            original_now["state"].as_str()
        ),
        (Some("10.00"), Some("posted"))
    );
    assert_eq!(
        app.account("main", wallet).await["posted_balance"],
        "100.00"
    );
    let pending_id = pending(&app, wallet, world, "1.00", None).await;
    let of_pending = action(&app, &format!("transfers/{pending_id}/reverse"), json!({})).await;
    assert_eq!(
        (of_pending.code(), of_pending.body["from"].as_str()),
        ("invalid_state_transition", Some("pending"))
    );
}

#[tokio::test]
async fn a_frozen_account_takes_no_new_transfer_but_voids_and_reversals() {
    let app = spawn_app().await;
    let (world, wallet) = ledger_with_accounts(&app).await;
    let posted = app.transfer("main", wallet, world, "10.00").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let held = pending(&app, wallet, world, "5.00", None).await;
    let to_post = pending(&app, wallet, world, "5.00", None).await;
    let freeze = action(&app, &format!("accounts/{wallet}/freeze"), json!({})).await;
    assert_eq!(
        (freeze.status, freeze.body["status"].as_str()),
        (StatusCode::OK, Some("frozen"))
    );
    assert_eq!(
        app.transfer("main", world, wallet, "1.00").await.code(),
        "account_frozen"
    );
    assert_eq!(
        action(&app, &format!("transfers/{to_post}/post"), json!({}))
            .await
            .code(),
        "account_frozen"
    );
    assert_eq!(
        action(&app, &format!("transfers/{held}/void"), json!({}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        action(&app, &format!("transfers/{posted}/reverse"), json!({}))
            .await
            .status,
        StatusCode::CREATED
    );
    let refreeze = action(&app, &format!("accounts/{wallet}/freeze"), json!({})).await;
    assert_eq!(
        (
            refreeze.code(),
            refreeze.body["from"].as_str(),
            refreeze.body["to"].as_str()
        ),
        ("invalid_state_transition", Some("frozen"), Some("frozen"))
    );
    assert_eq!(
        action(&app, &format!("accounts/{wallet}/unfreeze"), json!({}))
            .await
            .body["status"],
        "active"
    );
    assert_eq!(
        action(&app, &format!("transfers/{to_post}/post"), json!({}))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_account_closes_only_empty_and_stays_closed() {
    let app = spawn_app().await;
    let (world, wallet) = ledger_with_accounts(&app).await;
    let not_empty = action(&app, &format!("accounts/{wallet}/close"), json!({})).await;
    assert_eq!(
        (not_empty.status, not_empty.code()),
        (StatusCode::CONFLICT, "account_not_empty")
    );
    let held = pending(&app, world, wallet, "1.00", None).await;
    assert_eq!(
        app.transfer("main", wallet, world, "100.00").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        action(&app, &format!("accounts/{wallet}/close"), json!({}))
            .await
            .code(),
        "account_not_empty",
        "something is pending"
    );
    action(&app, &format!("transfers/{held}/void"), json!({})).await;
    let closed = action(&app, &format!("accounts/{wallet}/close"), json!({})).await;
    assert_eq!(
        (closed.status, closed.body["status"].as_str()),
        (StatusCode::OK, Some("closed"))
    );
    assert_eq!(
        app.transfer("main", world, wallet, "1.00").await.code(),
        "account_closed"
    );
    for verb in ["freeze", "unfreeze", "close"] {
        let reply = action(&app, &format!("accounts/{wallet}/{verb}"), json!({})).await;
        assert_eq!(
            (reply.code(), reply.body["from"].as_str()),
            ("invalid_state_transition", Some("closed")),
            "{verb}"
        );
    }
    let events: Vec<String> = app
        .journal("main")
        .await
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(events.contains(&"account_closed".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_post_and_void_of_one_pending_transfer_resolve_it_once() {
    let app = Arc::new(spawn_app().await);
    let (world, wallet) = ledger_with_accounts(&app).await;
    for round in 0..10 {
        let id = pending(&app, wallet, world, "1.00", None).await;
        let (post_app, void_app) = (app.clone(), app.clone());
        let (post_path, void_path) = (
            format!("transfers/{id}/post"),
            format!("transfers/{id}/void"),
        );
        let post = tokio::spawn(async move { action(&post_app, &post_path, json!({})).await });
        let void = tokio::spawn(async move { action(&void_app, &void_path, json!({})).await });
        let (post, void) = (post.await.unwrap(), void.await.unwrap());
        let winners = [&post, &void]
            .iter()
            .filter(|reply| reply.status == StatusCode::OK)
            .count();
        assert_eq!(
            winners, 1,
            "round {round}: exactly one of post and void wins ({} / {})",
            post.text, void.text
        );
        let loser = if post.status == StatusCode::OK {
            &void
        } else {
            &post
        };
        assert_eq!(loser.code(), "invalid_state_transition");
    }
    assert_eq!(app.account("main", wallet).await["pending_debits"], "0.00");
    assert_journal_reproduces_the_ledger(&app, "main").await;
}

#[tokio::test]
async fn the_service_expires_a_pending_transfer_by_itself_and_releases_it() {
    let app = spawn_app_with(fast_expiry_app_settings(fresh_database().await, 50)).await;
    let (world, wallet) = ledger_with_accounts(&app).await;
    let id = pending(&app, wallet, world, "30.00", Some(1)).await;
    assert_eq!(
        app.account("main", wallet).await["available_balance"],
        "70.00"
    );
    let path = format!("/v1/ledgers/main/transfers/{id}");
    eventually("the transfer expires", async || {
        app.get(&path).await.body["state"] == "expired"
    })
    .await;
    assert_eq!(
        app.account("main", wallet).await["available_balance"],
        "100.00"
    );
    let expiry = app
        .journal("main")
        .await
        .into_iter()
        .find(|event| event["type"] == "transfer_expired")
        .unwrap();
    assert_eq!(
        (
            expiry["actor"].as_str(),
            expiry["data"]["transfer_id"].as_str()
        ),
        (Some("system"), Some(id.as_str()))
    );
    let late_post = action(&app, &format!("transfers/{id}/post"), json!({})).await;
    assert_eq!(
        (late_post.code(), late_post.body["from"].as_str()),
        ("invalid_state_transition", Some("expired"))
    );
    assert_journal_reproduces_the_ledger(&app, "main").await;
}

#[tokio::test]
async fn a_newly_started_instance_expires_what_an_earlier_one_left_pending() {
    let database = fresh_database().await;
    // This instance never looks for expiries on its own (an hour between looks).
    let first = spawn_app_with(fast_expiry_app_settings(database.clone(), 3_600_000)).await;
    let (world, wallet) = ledger_with_accounts(&first).await;
    let id = pending(&first, wallet, world, "5.00", Some(1)).await;
    let second = spawn_app_with(fast_expiry_app_settings(database, 50)).await;
    let path = format!("/v1/ledgers/main/transfers/{id}");
    eventually("the second instance expires it", async || {
        second.get(&path).await.body["state"] == "expired"
    })
    .await;
    let expiries = second
        .journal("main")
        .await
        .into_iter()
        .filter(|event| event["type"] == "transfer_expired")
        .count();
    assert_eq!(expiries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_racing_a_post_on_two_instances_has_exactly_one_outcome() {
    let database = fresh_database().await;
    let first = Arc::new(spawn_app_with(fast_expiry_app_settings(database.clone(), 20)).await);
    let second = Arc::new(spawn_app_with(fast_expiry_app_settings(database, 20)).await);
    let (world, wallet) = ledger_with_accounts(&first).await;
    let mut outcomes = (0, 0);
    for _ in 0..4 {
        let id = pending(&first, wallet, world, "1.00", Some(1)).await;
        let created = Instant::now();
        // Post from the second instance right around the deadline, while both instances expire.
        let path = format!("transfers/{id}/post");
        tokio::time::sleep_until((created + Duration::from_millis(990)).into()).await;
        let post = action(&second, &path, json!({})).await;
        let transfer_path = format!("/v1/ledgers/main/transfers/{id}");
        eventually("the transfer is resolved", async || {
            first.get(&transfer_path).await.body["state"] != "pending"
        })
        .await;
        let state = first.get(&transfer_path).await.body["state"]
            .as_str()
            .unwrap()
            .to_owned();
        match post.status {
            StatusCode::OK => {
                assert_eq!(state, "posted");
                outcomes.0 += 1;
            }
            _ => {
                assert_eq!(
                    (post.code(), state.as_str()),
                    ("invalid_state_transition", "expired"),
                    "{}",
                    post.text
                );
                outcomes.1 += 1;
            }
        }
        let resolutions = first
            .journal("main")
            .await
            .into_iter()
            .filter(|event| {
                event["data"]["transfer_id"] == id.as_str()
                    && matches!(
                        event["type"].as_str(),
                        Some("transfer_posted" | "transfer_expired")
                    )
            })
            .count();
        assert_eq!(resolutions, 1, "resolved exactly once");
    }
    assert_eq!(outcomes.0 + outcomes.1, 4);
    assert_journal_reproduces_the_ledger(&second, "main").await;
    assert_balance_invariants_in_database(&first.database).await;
}

fn batch_item(debit: Uuid, credit: Uuid, amount: &str, currency: &str) -> Value {
    json!({
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "currency": currency
    })
}

#[tokio::test]
async fn an_atomic_batch_whose_last_item_fails_leaves_no_trace_but_its_error() {
    let app = spawn_app().await;
    let (world, wallet) = ledger_with_accounts(&app).await;
    let events_before = app.journal("main").await.len();
    let items = vec![
        batch_item(wallet, world, "60.00", "EUR"),
        batch_item(wallet, world, "30.00", "EUR"),
        batch_item(wallet, world, "20.00", "EUR"),
    ];
    let reply = app
        .post(
            "/v1/ledgers/main/transfers/batch",
            &json!({"atomic": true, "transfers": items}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_funds"),
        "{}",
        reply.text
    );
    assert_eq!(
        reply.body["index"].as_u64(),
        Some(2),
        "the failing item is named"
    );
    assert_eq!(app.journal("main").await.len(), events_before, "no event");
    assert_eq!(
        app.account("main", wallet).await["posted_balance"],
        "100.00"
    );
    assert_eq!(
        app.list_all("/v1/ledgers/main/transfers").await.len(),
        1,
        "only the funding transfer"
    );
}

#[tokio::test]
async fn a_batch_that_is_not_atomic_commits_every_item_it_can() {
    let app = spawn_app().await;
    let (world, wallet) = ledger_with_accounts(&app).await;
    let items = vec![
        batch_item(wallet, world, "60.00", "EUR"),
        batch_item(wallet, world, "50.00", "EUR"),
        batch_item(wallet, world, "40.00", "EUR"),
    ];
    let reply = app
        .post(
            "/v1/ledgers/main/transfers/batch",
            &json!({"atomic": false, "transfers": items}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let statuses: Vec<u64> = reply.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 422, 201]);
    assert_eq!(
        reply.body["results"][1]["error"]["code"],
        "insufficient_funds"
    );
    assert_eq!(reply.body["results"][2]["transfer"]["amount"], "40.00");
    assert_eq!(app.account("main", wallet).await["posted_balance"], "0.00");
    assert_journal_reproduces_the_ledger(&app, "main").await;
}

#[tokio::test]
async fn a_split_payment_and_an_fx_pair_are_atomic_batches() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let customer = app
        .open_account("main", "customer", json!({"normal_side": "debit"}))
        .await;
    let merchant = app.open_account("main", "merchant", json!({})).await;
    let fees = app.open_account("main", "fees", json!({})).await;
    // Split: the customer pays 100.00, the merchant gets 97.00 and the platform 3.00.
    let split = app
        .post(
            "/v1/ledgers/main/transfers/batch",
            &json!({
                "atomic": true,
                "transfers": [
                    batch_item(customer, merchant, "97.00", "EUR"),
                    batch_item(customer, fees, "3.00", "EUR")
                ]
            }),
        )
        .await;
    assert_eq!(split.status, StatusCode::CREATED, "{}", split.text);
    assert_eq!(split.body["results"].as_array().unwrap().len(), 2);
    // FX: 50.00 EUR from the merchant into the EUR liquidity account, 54.00 USD out of the USD one.
    let eur_pool = app
        .open_account("main", "fx:eur", json!({"normal_side": "debit"}))
        .await;
    let usd_pool = app
        .open_account(
            "main",
            "fx:usd",
            json!({"normal_side": "debit", "currency": "USD"}),
        )
        .await;
    let merchant_usd = app
        .open_account("main", "merchant:usd", json!({"currency": "USD"}))
        .await;
    let fx = app
        .post(
            "/v1/ledgers/main/transfers/batch",
            &json!({
                "atomic": true,
                "transfers": [
                    batch_item(merchant, eur_pool, "50.00", "EUR"),
                    batch_item(usd_pool, merchant_usd, "54.00", "USD")
                ]
            }),
        )
        .await;
    assert_eq!(fx.status, StatusCode::CREATED, "{}", fx.text);
    assert_eq!(
        app.account("main", merchant_usd).await["posted_balance"],
        "54.00"
    );
    assert_eq!(
        app.account("main", merchant).await["posted_balance"],
        "47.00"
    );
    assert_balance_invariants_in_database(&app.database).await;
}

#[tokio::test]
async fn a_batch_has_one_to_a_thousand_transfers() {
    let app = spawn_app().await;
    let (world, wallet) = ledger_with_accounts(&app).await;
    let empty = app
        .post(
            "/v1/ledgers/main/transfers/batch",
            &json!({"atomic": true, "transfers": []}),
        )
        .await;
    assert_eq!(
        (empty.status, empty.code()),
        (StatusCode::BAD_REQUEST, "batch_too_large")
    );
    let items: Vec<Value> = (0..1001)
        .map(|_| batch_item(world, wallet, "0.01", "EUR"))
        .collect();
    let too_many = app
        .post(
            "/v1/ledgers/main/transfers/batch",
            &json!({"atomic": false, "transfers": items}),
        )
        .await;
    assert_eq!(
        (too_many.status, too_many.code()),
        (StatusCode::BAD_REQUEST, "batch_too_large")
    );
    let thousand: Vec<Value> = (0..1000)
        .map(|_| batch_item(world, wallet, "0.01", "EUR"))
        .collect();
    let full = app
        .post(
            "/v1/ledgers/main/transfers/batch",
            &json!({"atomic": true, "transfers": thousand}),
        )
        .await;
    assert_eq!(full.status, StatusCode::CREATED);
    assert_eq!(
        app.account("main", wallet).await["posted_balance"],
        "110.00"
    );
    let bad_item = app
        .post(
            "/v1/ledgers/main/transfers/batch",
            &json!({
                "atomic": true,
                "transfers": [
                    batch_item(world, wallet, "1", "EUR"),
                    batch_item(world, wallet, "1.001", "EUR")
                ]
            }),
        )
        .await;
    assert_eq!(
        (bad_item.code(), bad_item.body["index"].as_u64()),
        ("invalid_amount", Some(1))
    );
}

#[tokio::test]
async fn the_state_machines_are_published_in_the_docs_as_in_the_code() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/STATE_MACHINES.md"
    ))
    .expect("docs/STATE_MACHINES.md");
    for transition in ledger::domain::state_machine::TRANSFER_TRANSITIONS {
        let row = format!(
            "| {} | {} | {} |",
            transition.from.as_str(),
            transition.action.as_str(),
            transition.to.as_str()
        );
        assert!(
            doc.contains(&row),
            "docs/STATE_MACHINES.md lacks the transfer transition {row}"
        );
    }
    for transition in ledger::domain::state_machine::ACCOUNT_TRANSITIONS {
        let row = format!(
            "| {} | {} | {} |",
            transition.from.as_str(),
            transition.action.as_str(),
            transition.to.as_str()
        );
        assert!(
            doc.contains(&row),
            "docs/STATE_MACHINES.md lacks the account transition {row}"
        );
    }
    let rows = doc
        .lines()
        .filter(|line| {
            line.starts_with("| ") && !line.starts_with("| from") && !line.starts_with("|---")
        })
        .count();
    assert_eq!(
        rows,
        ledger::domain::state_machine::TRANSFER_TRANSITIONS.len()
            + ledger::domain::state_machine::ACCOUNT_TRANSITIONS.len(),
        "no transition the code lacks"
    );
    let _ = spawn_app_on;
}

#[tokio::test]
async fn a_transfer_past_its_deadline_in_ledger_time_is_expired_even_if_this_clock_lags() {
    let app = spawn_app().await;
    let (world, wallet) = ledger_with_accounts(&app).await;
    let id = pending(&app, wallet, world, "30.00", Some(3600)).await;
    // Another instance whose clock runs two hours ahead wrote last: the ledger's time (the head's
    // last_at, which `at` never goes below) is past the deadline, this process's clock is not.
    let owner = crate::helpers::owner_connection(&app.database).await;
    owner
        .batch_execute("UPDATE ledger_heads SET last_at = now() + interval '2 hours'")
        .await
        .unwrap();
    let post = action(&app, &format!("transfers/{id}/post"), json!({})).await;
    assert_eq!(
        (post.code(), post.body["from"].as_str()),
        ("invalid_state_transition", Some("expired")),
        "{}",
        post.text
    );
    let transfer = app.get(&format!("/v1/ledgers/main/transfers/{id}")).await;
    assert_eq!(
        transfer.body["state"], "expired",
        "expired by an event, not merely refused: {}",
        transfer.text
    );
    assert_eq!(
        app.account("main", wallet).await["available_balance"],
        "100.00"
    );
    assert_journal_reproduces_the_ledger(&app, "main").await;
}
