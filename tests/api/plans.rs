//! The batch statements' plans do not depend on statistics or on the ledger's size: on 200,000
//! accounts and transfers that were never analysed, every keyed lookup and update of a batch
//! probes its table's primary (or unique) index on both key columns.

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

const ROWS: i64 = 200_000;

/// Every plan node that reads `table`, with its node type and index condition.
fn scans_of<'a>(node: &'a Value, table: &str, found: &mut Vec<&'a Value>) {
    if node["Relation Name"] == table && node["Node Type"] != "ModifyTable" {
        found.push(node);
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        scans_of(child, table, found);
    }
}

#[tokio::test]
async fn every_batch_statement_probes_both_key_columns_on_a_large_unanalysed_ledger() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let owner = owner_connection(&app.database).await;
    owner
        .batch_execute(&format!(
            "ALTER TABLE accounts SET (autovacuum_enabled = false); \
             ALTER TABLE transfers SET (autovacuum_enabled = false); \
             INSERT INTO accounts (ledger_id, id, code, currency, scale, normal_side, balance_constraint, \
                 status, metadata, posted_debits, posted_credits, pending_debits, pending_credits, \
                 created_at, opened_seq) \
               SELECT 1, md5(n::text)::uuid, 'a' || n, 'EUR', 2, 'credit', 'none', 'active', '{{}}', \
                 0, 0, 0, 0, now(), 1000 + n FROM generate_series(1, {ROWS}) AS n; \
             INSERT INTO transfers (ledger_id, id, debit_account_id, credit_account_id, amount, currency, \
                 metadata, pending, state, posted_amount, reversed_amount, created_at, journal_seq) \
               SELECT 1, md5('t' || n)::uuid, md5(n::text)::uuid, md5((n + 1)::text)::uuid, 1, 'EUR', \
                 '{{}}', false, 'posted', 1, 0, now(), 1000 + n FROM generate_series(1, {ROWS}) AS n"
        ))
        .await
        .unwrap();
    let analysed: i64 = owner
        .query_one(
            "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('accounts', 'transfers') \
             AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        analysed, 0,
        "the tables must be unanalysed for this test to mean anything"
    );

    let settings = ledger::storage::PoolSettings {
        custom_plans: true,
        max_connections: 1,
        statement_timeout_ms: 10_000,
        connect_timeout_ms: 5_000,
    };
    let storage = ledger::storage::Storage::new(app.database.clone(), settings, false).unwrap();
    let accounts: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
    let transfers: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
    let codes: Vec<String> = (0..1000).map(|n| format!("new-{n}")).collect();
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    let plans = storage
        .explain_batch_statements(1, &accounts, &codes, &transfers)
        .await
        .unwrap();
    assert_eq!(plans.len(), 5);
    for (name, plan) in plans {
        let root = &plan[0]["Plan"];
        let table = if name.contains("account") {
            "accounts"
        } else {
            "transfers"
        };
        let mut scans = Vec::new();
        scans_of(root, table, &mut scans);
        assert_eq!(scans.len(), 1, "{name}: one access to {table}: {plan}");
        let scan = scans[0];
        let condition = scan["Index Cond"].as_str().unwrap_or_default();
        let key = if name.contains("code") { "code" } else { "id" };
        assert!(
            scan["Node Type"].as_str().unwrap().starts_with("Index")
                && condition.contains("ledger_id")
                && condition.contains(&format!("{key} = ")),
            "{name}: {table} must be probed on (ledger_id, {key}), got {scan}"
        );
    }
}
