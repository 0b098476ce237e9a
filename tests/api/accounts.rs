use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn an_opened_account_starts_active_with_zero_balances() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let body = json!({
        "code": "customer:42:wallet",
        "currency": "EUR",
        "normal_side": "credit",
        "debits_must_not_exceed_credits": true,
        "metadata": {"customer": 42}
    });
    let reply = app.post("/v1/ledgers/main/accounts", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let account = &reply.body;
    assert_eq!(
        reply.headers["location"],
        format!(
            "/v1/ledgers/main/accounts/{}",
            account["id"].as_str().unwrap()
        )
    );
    assert_eq!(account["status"], "active");
    assert_eq!(account["code"], "customer:42:wallet");
    assert_eq!(account["debits_must_not_exceed_credits"], true);
    assert_eq!(account["credits_must_not_exceed_debits"], false);
    for field in [
        "posted_debits",
        "posted_credits",
        "pending_debits",
        "pending_credits",
        "posted_balance",
        "available_balance",
    ] {
        assert_eq!(account[field], "0.00", "{field}");
    }
    assert_eq!(account["journal_seq"], 2);
    let fetched = app
        .get(&format!(
            "/v1/ledgers/main/accounts/{}",
            account["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(&fetched.body, account);
}

#[tokio::test]
async fn reopening_with_the_same_client_id_and_fields_returns_the_account() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let id = Uuid::new_v4();
    let body = json!({"id": id, "code": "a", "currency": "EUR", "normal_side": "debit"});
    let first = app.post("/v1/ledgers/main/accounts", &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = app.post("/v1/ledgers/main/accounts", &body).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body);
    let different = app
        .post(
            "/v1/ledgers/main/accounts",
            &json!({"id": id, "code": "a", "currency": "EUR", "normal_side": "credit"}),
        )
        .await;
    assert_eq!(different.status, StatusCode::CONFLICT);
    assert_eq!(different.code(), "account_exists_with_different_fields");
    assert_eq!(
        app.journal("main").await.len(),
        2,
        "one account_opened event only"
    );
}

#[tokio::test]
async fn an_account_code_is_unique_in_its_ledger_only() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    app.create_ledger("other").await;
    app.open_account("main", "cash", json!({})).await;
    let reply = app
        .post(
            "/v1/ledgers/main/accounts",
            &json!({"code": "cash", "currency": "EUR", "normal_side": "debit"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.code(), "account_code_taken");
    app.open_account("other", "cash", json!({})).await;
}

#[tokio::test]
async fn malformed_account_requests_are_refused() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let cases = [
        (
            json!({"code": "a b", "currency": "EUR", "normal_side": "debit"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"code": "a", "currency": "eur", "normal_side": "debit"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"code": "a", "currency": "XYZ", "normal_side": "debit"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_currency",
        ),
        (
            json!({"code": "a", "currency": "EUR", "normal_side": "sideways"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"code": "a", "currency": "EUR"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({
                "code": "a",
                "currency": "EUR",
                "normal_side": "debit",
                "debits_must_not_exceed_credits": true,
                "credits_must_not_exceed_debits": true
            }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({
                "code": "a",
                "currency": "EUR",
                "normal_side": "debit",
                "metadata": {"x": "y".repeat(5000)}
            }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"code": "a", "currency": "EUR", "normal_side": "debit", "id": "not-a-uuid"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"code": "a", "currency": "EUR", "normal_side": "debit", "balance": "10"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let reply = app.post("/v1/ledgers/main/accounts", &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{body}: {}",
            reply.text
        );
    }
    let missing = app
        .post(
            "/v1/ledgers/nope/accounts",
            &json!({"code": "a", "currency": "EUR", "normal_side": "debit"}),
        )
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "ledger_not_found")
    );
    assert!(app.list_all("/v1/ledgers/main/accounts").await.is_empty());
}

#[tokio::test]
async fn getting_an_unknown_or_malformed_account_id_fails_clearly() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let unknown = app
        .get(&format!("/v1/ledgers/main/accounts/{}", Uuid::new_v4()))
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "account_not_found")
    );
    let malformed = app.get("/v1/ledgers/main/accounts/42").await;
    assert_eq!(
        (malformed.status, malformed.code()),
        (StatusCode::BAD_REQUEST, "invalid_id")
    );
}

#[tokio::test]
async fn accounts_are_listed_in_opening_order_with_a_stable_cursor() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    for index in 0..5 {
        app.open_account("main", &format!("acct-{index}"), json!({}))
            .await;
    }
    let first = app.get("/v1/ledgers/main/accounts?limit=2").await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    // An account opened between two pages appears at the end, never shifts the pages.
    app.open_account("main", "late", json!({})).await;
    let second = app
        .get(&format!(
            "/v1/ledgers/main/accounts?limit=2&cursor={cursor}"
        ))
        .await;
    let codes: Vec<_> = second.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, ["acct-2", "acct-3"]);
    let all: Vec<_> = app
        .list_all("/v1/ledgers/main/accounts")
        .await
        .iter()
        .map(|a| a["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        all,
        ["acct-0", "acct-1", "acct-2", "acct-3", "acct-4", "late"]
    );
}
