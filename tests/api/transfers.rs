use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, Wallet};

/// A ledger with an unconstrained `world` account and a wallet that cannot be overdrawn.

#[tokio::test]
async fn a_posted_transfer_moves_both_balances_at_once() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    let reply = app.transfer("main", world, wallet, "10.5").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["amount"], "10.50");
    assert_eq!(reply.body["state"], "posted");
    assert_eq!(reply.body["posted_amount"], "10.50");
    assert_eq!(reply.body["reversed_amount"], "0.00");
    assert_eq!(reply.body["journal_seq"], 4);

    let world = app.account("main", world).await;
    assert_eq!(
        (
            world["posted_debits"].as_str(),
            world["posted_balance"].as_str()
        ),
        (Some("10.50"), Some("10.50"))
    );
    let wallet = app.account("main", wallet).await;
    assert_eq!(
        (
            wallet["posted_credits"].as_str(),
            wallet["available_balance"].as_str()
        ),
        (Some("10.50"), Some("10.50"))
    );

    let id = reply.body["id"].as_str().unwrap();
    let fetched = app.get(&format!("/v1/ledgers/main/transfers/{id}")).await;
    assert_eq!(fetched.body, reply.body);
}

#[tokio::test]
async fn a_constrained_account_cannot_be_overdrawn_and_the_refusal_changes_nothing() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    app.transfer("main", world, wallet, "5.00").await;
    let reply = app.transfer("main", wallet, world, "5.01").await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_funds")
    );
    assert_eq!(reply.body["account_id"], wallet.to_string());
    assert_eq!(app.account("main", wallet).await["posted_balance"], "5.00");
    assert_eq!(
        app.transfer("main", wallet, world, "5.00").await.status,
        StatusCode::CREATED
    );
    assert_eq!(app.account("main", wallet).await["posted_balance"], "0.00");
    assert_eq!(
        app.journal("main").await.len(),
        5,
        "the refused transfer left no event"
    );
}

#[tokio::test]
async fn a_credit_limited_account_cannot_take_more_credits_than_debits() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let loan = app
        .open_account(
            "main",
            "loan",
            json!({"normal_side": "debit", "credits_must_not_exceed_debits": true}),
        )
        .await;
    let bank = app.open_account("main", "bank", json!({})).await;
    assert_eq!(
        app.transfer("main", loan, bank, "100").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.transfer("main", bank, loan, "100").await.status,
        StatusCode::CREATED
    );
    let reply = app.transfer("main", bank, loan, "0.01").await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "credits_exceed_debits")
    );
}

#[tokio::test]
async fn a_client_id_is_a_natural_key_for_transfers() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    let id = Uuid::new_v4();
    let body = json!({
        "id": id,
        "debit_account_id": world,
        "credit_account_id": wallet,
        "amount": "3.00",
        "currency": "EUR",
        "reference": "inv-1"
    });
    let first = app.post("/v1/ledgers/main/transfers", &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = app.post("/v1/ledgers/main/transfers", &body).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body);
    let mut changed = body.clone();
    changed["amount"] = json!("4.00");
    let conflict = app.post("/v1/ledgers/main/transfers", &changed).await;
    assert_eq!(
        (conflict.status, conflict.code()),
        (
            StatusCode::CONFLICT,
            "transfer_exists_with_different_fields"
        )
    );
    assert_eq!(
        app.account("main", wallet).await["posted_balance"],
        "3.00",
        "applied once"
    );
}

#[tokio::test]
async fn every_kind_of_bad_transfer_is_a_clear_client_error_and_moves_nothing() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    let usd = app
        .open_account("main", "usd", json!({"currency": "USD"}))
        .await;
    let base = json!({
        "debit_account_id": world,
        "credit_account_id": wallet,
        "amount": "1.00",
        "currency": "EUR"
    });
    let with = |changes: Value| {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(changes.as_object().unwrap().clone());
        body
    };
    let bad = StatusCode::BAD_REQUEST;
    let rule = StatusCode::UNPROCESSABLE_ENTITY;
    let cases = [
        (with(json!({"amount": 10})), bad, "invalid_body"),
        (with(json!({"amount": 1.5})), bad, "invalid_body"),
        (with(json!({"amount": "1.001"})), rule, "invalid_amount"),
        (with(json!({"amount": "0"})), rule, "invalid_amount"),
        (with(json!({"amount": "0.00"})), rule, "invalid_amount"),
        (with(json!({"amount": "-1.00"})), rule, "invalid_amount"),
        (with(json!({"amount": "1e3"})), rule, "invalid_amount"),
        (
            with(json!({"amount": "1".repeat(29)})),
            rule,
            "invalid_amount",
        ),
        (with(json!({"amount": ""})), rule, "invalid_amount"),
        (
            with(json!({"credit_account_id": world})),
            rule,
            "same_debit_and_credit_account",
        ),
        (
            with(json!({"credit_account_id": usd})),
            rule,
            "currency_mismatch",
        ),
        (with(json!({"currency": "USD"})), rule, "currency_mismatch"),
        (with(json!({"currency": "XYZ"})), rule, "unknown_currency"),
        (
            with(json!({"credit_account_id": Uuid::new_v4()})),
            StatusCode::NOT_FOUND,
            "account_not_found",
        ),
        (
            with(json!({"timeout_seconds": 60})),
            rule,
            "timeout_requires_pending",
        ),
        (
            with(json!({"pending": true, "timeout_seconds": 0})),
            bad,
            "invalid_field",
        ),
        (with(json!({"code": "has space"})), bad, "invalid_field"),
        (
            with(json!({"reference": "r".repeat(129)})),
            bad,
            "invalid_field",
        ),
        (
            with(json!({"description": "line\u{0007}bell"})),
            bad,
            "invalid_field",
        ),
        (with(json!({"debit": "x"})), bad, "invalid_body"),
        (json!({"amount": "1.00"}), bad, "invalid_body"),
        // PostgreSQL's jsonb refuses NUL; canonical JSON cannot hold integers past 2^53 exactly.
        (
            with(json!({"metadata": {"note": "a\u{0}b"}})),
            bad,
            "invalid_field",
        ),
        (
            with(json!({"metadata": {"n": 9_007_199_254_740_993_u64}})),
            bad,
            "invalid_field",
        ),
        (json!([]), bad, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let reply = app.post("/v1/ledgers/main/transfers", &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{body}: {}",
            reply.text
        );
        assert_eq!(reply.content_type(), "application/problem+json");
    }
    let not_json = app
        .post_raw(
            "/v1/ledgers/main/transfers",
            "application/json",
            "{not json",
        )
        .await;
    assert_eq!((not_json.status, not_json.code()), (bad, "invalid_body"));
    let twice = format!(
        concat!(
            r#"{{"debit_account_id":"{world}","credit_account_id":"{wallet}","#,
            r#""currency":"EUR","amount":"1.00","amount":"1000.00"}}"#
        ),
        world = world,
        wallet = wallet
    );
    let twice = app
        .post_raw("/v1/ledgers/main/transfers", "application/json", twice)
        .await;
    assert_eq!(
        (twice.status, twice.code()),
        (bad, "invalid_body"),
        "a key named twice: {}",
        twice.text
    );
    let by_position = app
        .post_raw(
            "/v1/ledgers/main/transfers",
            "application/json",
            format!(r#"["{world}","{wallet}","1.00","EUR"]"#),
        )
        .await;
    assert_eq!(
        (by_position.status, by_position.code()),
        (bad, "invalid_body"),
        "{}",
        by_position.text
    );
    let wrong_type = app
        .post_raw("/v1/ledgers/main/transfers", "text/plain", base.to_string())
        .await;
    assert_eq!(
        (wrong_type.status, wrong_type.code()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    assert!(app.list_all("/v1/ledgers/main/transfers").await.is_empty());
    assert_eq!(app.account("main", wallet).await["posted_credits"], "0.00");
}

#[tokio::test]
async fn a_pending_transfer_reserves_without_posting() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    app.transfer("main", world, wallet, "10").await;
    let body = json!({
        "debit_account_id": wallet,
        "credit_account_id": world,
        "amount": "4",
        "currency": "EUR",
        "pending": true,
        "timeout_seconds": 3600
    });
    let reply = app.post("/v1/ledgers/main/transfers", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["state"], "pending");
    assert_eq!(reply.body["posted_amount"], "0.00");
    assert!(reply.body["expires_at"].is_string());
    let wallet_now = app.account("main", wallet).await;
    assert_eq!(wallet_now["pending_debits"], "4.00");
    assert_eq!(wallet_now["posted_balance"], "10.00");
    assert_eq!(wallet_now["available_balance"], "6.00");
    let over = app.transfer("main", wallet, world, "6.01").await;
    assert_eq!(
        over.code(),
        "insufficient_funds",
        "pending debits count against the constraint"
    );
}

#[tokio::test]
async fn transfers_are_listed_by_account_and_by_state() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    let other = app.open_account("main", "other", json!({})).await;
    for amount in ["1", "2", "3"] {
        app.transfer("main", world, wallet, amount).await;
    }
    app.transfer("main", world, other, "9").await;
    let pending = json!({
        "debit_account_id": wallet,
        "credit_account_id": world,
        "amount": "1",
        "currency": "EUR",
        "pending": true
    });
    app.post("/v1/ledgers/main/transfers", &pending).await;

    let amounts = |items: Vec<Value>| {
        items
            .iter()
            .map(|t| t["amount"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        amounts(
            app.list_all(&format!("/v1/ledgers/main/transfers?account_id={wallet}"))
                .await
        ),
        ["1.00", "2.00", "3.00", "1.00"]
    );
    assert_eq!(
        amounts(
            app.list_all(&format!("/v1/ledgers/main/transfers?account_id={other}"))
                .await
        ),
        ["9.00"]
    );
    assert_eq!(
        amounts(
            app.list_all("/v1/ledgers/main/transfers?state=pending")
                .await
        ),
        ["1.00"]
    );
    assert_eq!(
        amounts(
            app.list_all(&format!(
                "/v1/ledgers/main/transfers?account_id={wallet}&state=posted"
            ))
            .await
        ),
        ["1.00", "2.00", "3.00"]
    );
    assert_eq!(app.list_all("/v1/ledgers/main/transfers").await.len(), 5);

    let page = app
        .get(&format!(
            "/v1/ledgers/main/transfers?account_id={wallet}&limit=3"
        ))
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!(
            "/v1/ledgers/main/transfers?account_id={wallet}&limit=3&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest.body["data"].as_array().unwrap().len(), 1);

    let bad_state = app.get("/v1/ledgers/main/transfers?state=lost").await;
    assert_eq!(
        (bad_state.status, bad_state.code()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
    let unknown = app
        .get(&format!("/v1/ledgers/main/transfers/{}", Uuid::new_v4()))
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "transfer_not_found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_database_refuses_fails_alone_not_with_its_batch() {
    let app = std::sync::Arc::new(spawn_app().await);
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    // A rule the database enforces and the service does not know: it stands for any data a
    // future bug would let through to PostgreSQL.
    crate::helpers::owner_connection(&app.database)
        .await
        .batch_execute(
            "ALTER TABLE transfers ADD CONSTRAINT test_no_poison CHECK (reference IS DISTINCT \
             FROM 'poison') NOT VALID",
        )
        .await
        .unwrap();
    for round in 0..3 {
        let requests: Vec<_> = (0..20)
            .map(|index| {
                let app = app.clone();
                let reference = if index == 10 { "poison" } else { "fine" };
                let body = json!({
                    "debit_account_id": world,
                    "credit_account_id": wallet,
                    "amount": "1.00",
                    "currency": "EUR",
                    "reference": reference
                });
                tokio::spawn(async move {
                    let reply = app.post("/v1/ledgers/main/transfers", &body).await;
                    (reference, reply)
                })
            })
            .collect();
        for request in requests {
            let (reference, reply) = request.await.unwrap();
            let expected = match reference {
                "poison" => (StatusCode::SERVICE_UNAVAILABLE, "not_committed"),
                _ => (StatusCode::CREATED, ""),
            };
            let code = if reply.status == StatusCode::CREATED {
                ""
            } else {
                reply.code()
            };
            assert_eq!(
                (reply.status, code),
                expected,
                "round {round}, {reference}: {}",
                reply.text
            );
        }
    }
    assert_eq!(app.account("main", wallet).await["posted_credits"], "57.00");
}
