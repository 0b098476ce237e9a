//! What the database itself guarantees, whatever the code does (§4.6).

use serde_json::json;

use crate::helpers::{owner_connection, spawn_app};

#[tokio::test]
async fn the_database_refuses_to_update_or_delete_journal_events_and_postings() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let a = app.open_account("main", "a", json!({})).await;
    let b = app.open_account("main", "b", json!({})).await;
    app.transfer("main", a, b, "1.00").await;
    let owner = owner_connection(&app.database).await;
    for statement in [
        "UPDATE journal SET actor = 'mallory'",
        "DELETE FROM journal WHERE seq = 4",
        "TRUNCATE journal",
        "UPDATE postings SET posted_delta = 100",
        "DELETE FROM postings",
        "TRUNCATE postings",
    ] {
        let error = owner.batch_execute(statement).await.expect_err(statement);
        assert!(
            error.to_string().contains("append-only")
                || format!("{error:?}").contains("append-only"),
            "{statement}: {error:?}"
        );
    }
    let events: i64 = owner
        .query_one("SELECT count(*) FROM journal", &[])
        .await
        .unwrap()
        .get(0);
    let postings: i64 = owner
        .query_one("SELECT count(*) FROM postings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((events, postings), (4, 2));
}

#[tokio::test]
async fn the_service_role_may_append_history_but_neither_change_it_nor_disable_the_guard() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let owner = owner_connection(&app.database).await;
    owner
        .batch_execute("SET ROLE ledger_service")
        .await
        .unwrap();
    for statement in [
        "ALTER TABLE journal DISABLE TRIGGER ALL",
        "UPDATE journal SET actor = 'x'",
        "DELETE FROM journal",
        "TRUNCATE postings",
        "DROP TABLE journal",
    ] {
        assert!(
            owner.batch_execute(statement).await.is_err(),
            "{statement} must fail as ledger_service"
        );
    }
    let role: String = owner
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "ledger_service");
}

#[tokio::test]
async fn the_service_connects_as_the_restricted_role_when_the_database_has_it() {
    let app = spawn_app().await;
    let settings = ledger::storage::PoolSettings {
        custom_plans: true,
        max_connections: 1,
        statement_timeout_ms: 1000,
        connect_timeout_ms: 1000,
    };
    let storage = ledger::storage::Storage::migrate_and_connect(app.database.clone(), settings)
        .await
        .unwrap();
    assert_eq!(storage.current_user().await.unwrap(), "ledger_service");
    assert!(
        storage.is_ready().await,
        "the service role can read what readiness needs"
    );
}
