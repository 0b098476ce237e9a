//! The scheduled integrity check visits every ledger, page after page (the first run comes soon
//! after start: `startup::spawn_integrity_checks`), and records a passing check for each.

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
}
