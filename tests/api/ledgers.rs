use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn creating_a_ledger_returns_it_and_records_its_genesis_event() {
    let app = spawn_app().await;
    let reply = app
        .post(
            "/v1/ledgers",
            &json!({"name": "main", "metadata": {"region": "eu"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.headers["location"], "/v1/ledgers/main");
    assert_eq!(reply.body["name"], "main");
    assert_eq!(reply.body["metadata"], json!({"region": "eu"}));

    let journal = app.journal("main").await;
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0]["type"], "ledger_created");
    assert_eq!(journal[0]["seq"], 1);
    assert_eq!(journal[0]["prev_hash"], "0".repeat(64));
}

#[tokio::test]
async fn a_second_ledger_with_the_same_name_is_a_conflict() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let reply = app.post("/v1/ledgers", &json!({"name": "main"})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.code(), "ledger_exists");
    assert_eq!(reply.content_type(), "application/problem+json");
}

#[tokio::test]
async fn malformed_ledger_requests_are_refused_with_a_clear_code() {
    let app = spawn_app().await;
    let cases = [
        (json!({"name": "Main"}), "invalid_field"),
        (json!({"name": ""}), "invalid_field"),
        (json!({"name": "x".repeat(64)}), "invalid_field"),
        (json!({"name": "ok", "colour": "red"}), "invalid_body"),
        (json!({"name": 7}), "invalid_body"),
        (json!({"name": "ok", "metadata": [1]}), "invalid_field"),
        (
            json!({"name": "ok", "assets": [{"code": "EUR", "scale": 2}]}),
            "invalid_field",
        ),
        (
            json!({"name": "ok", "assets": [{"code": "PTS", "scale": 19}]}),
            "invalid_field",
        ),
        (
            json!({
                "name": "ok",
                "assets": [{"code": "PTS", "scale": 0}, {"code": "PTS", "scale": 1}]
            }),
            "invalid_field",
        ),
    ];
    for (body, code) in cases {
        let reply = app.post("/v1/ledgers", &body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
        assert_eq!(reply.code(), code, "{body}");
    }
    assert!(
        app.list_all("/v1/ledgers").await.is_empty(),
        "nothing was created"
    );
}

#[tokio::test]
async fn a_ledger_may_declare_custom_assets_with_their_scale() {
    let app = spawn_app().await;
    let reply = app
        .post(
            "/v1/ledgers",
            &json!({"name": "crypto", "assets": [{"code": "USDC", "scale": 6}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let account = app
        .post(
            "/v1/ledgers/crypto/accounts",
            &json!({"code": "hot", "currency": "USDC", "normal_side": "debit"}),
        )
        .await;
    assert_eq!(account.status, StatusCode::CREATED, "{}", account.text);
    assert_eq!(account.body["posted_debits"], "0.000000");
    assert_eq!(account.body["scale"], 6);
}

#[tokio::test]
async fn ledgers_are_listed_in_creation_order_across_pages() {
    let app = spawn_app().await;
    for name in ["a", "b", "c"] {
        app.create_ledger(name).await;
    }
    let first = app.get("/v1/ledgers?limit=2").await;
    assert_eq!(first.status, StatusCode::OK);
    let names: Vec<_> = first.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("a"), json!("b")]);
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a next page exists");
    let second = app
        .get(&format!("/v1/ledgers?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second.body["data"][0]["name"], "c");
    assert!(second.body["next_cursor"].is_null());
}

#[tokio::test]
async fn getting_an_unknown_ledger_is_not_found() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    assert_eq!(app.get("/v1/ledgers/main").await.body["name"], "main");
    for name in ["other", "NOT-A-NAME"] {
        let reply = app.get(&format!("/v1/ledgers/{name}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.code(), "ledger_not_found");
    }
}

#[tokio::test]
async fn bad_cursors_and_limits_are_refused() {
    let app = spawn_app().await;
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("cursor=zzz", "invalid_cursor"),
        ("limit=x", "invalid_query"),
        ("colour=red", "invalid_query"),
    ] {
        let reply = app.get(&format!("/v1/ledgers?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.code(), code, "{query}");
    }
}
