//! The scheduled integrity check visits every ledger, page after page (the first run comes soon
//! after start: `startup::spawn_integrity_checks`), and records a passing check for each; the
//! times of the last passed check and of the last checkpoint are gauges per ledger.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn the_scheduled_integrity_check_records_a_check_for_every_ledger() {
    let app = spawn_app().await;
    let names = ["first", "second", "third"];
    for name in names {
        app.create_ledger(name).await;
    }
    let settings = ledger::storage::PoolSettings {
        custom_plans: true,
        max_connections: 2,
        statement_timeout_ms: 10_000,
        connect_timeout_ms: 5_000,
    };
    let storage = ledger::storage::Storage::new(app.database.clone(), settings, false).unwrap();
    let signer = ledger::signing::Signer::new(ledger::signing::generate(), "ledger.test");
    let auditor = ledger::audit_service::Auditor {
        storage: &storage,
        signer: &signer,
    };
    auditor.record_integrity_checks_of_every_ledger().await;
    for name in names {
        let latest = app
            .get(&format!("/v1/ledgers/{name}/integrity-checks/latest"))
            .await;
        assert_eq!(latest.status, StatusCode::OK, "{name}: {}", latest.text);
        assert_eq!(latest.body["status"], "passed", "{name}: {}", latest.text);
    }
    let checkpoint = app.get("/v1/ledgers/first/checkpoint").await;
    assert_eq!(checkpoint.status, StatusCode::OK, "{}", checkpoint.text);
    let metrics = app.get("/metrics").await.text;
    for series in [
        "ledger_last_passed_integrity_check_timestamp_seconds{ledger=\"third\"}",
        "ledger_last_checkpoint_timestamp_seconds{ledger=\"first\"}",
    ] {
        let at: Option<f64> = metrics
            .lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok());
        // 2026-01-01 and later: a Unix time in seconds, not micros, not zero.
        assert!(
            at.is_some_and(|at| (1.767e9..1.0e10).contains(&at)),
            "{series}: {at:?}"
        );
    }
}
