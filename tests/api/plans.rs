//! The batch statements' plans do not depend on statistics or on the ledger's size: on accounts,
//! transfers and idempotency records that were never analysed, at 40,000 rows (where a plain
//! join once scanned the whole ledger per batch: the planner guessed 71 rows for the ledger)
//! and again at 200,000, every keyed lookup and update of a batch probes its table's primary
//! (or unique) index on every key column.

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

/// Every plan node that reads `table`, with its node type and index condition.
fn scans_of<'a>(node: &'a Value, table: &str, found: &mut Vec<&'a Value>) {
    if node["Relation Name"] == table && node["Node Type"] != "ModifyTable" {
        found.push(node);
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        scans_of(child, table, found);
    }
}

/// Adds rows `from..to` to the ledger's accounts, transfers and idempotency records, bypassing
/// the service (and the statistics: autovacuum is off for these tables).
async fn grow(owner: &tokio_postgres::Client, from: i64, to: i64) {
    owner
        .batch_execute(&format!(
            "INSERT INTO accounts (ledger_id, id, code, currency, scale, normal_side, \
             balance_constraint, \
                 status, metadata, posted_debits, posted_credits, pending_debits, pending_credits, \
                 created_at, opened_seq) \
               SELECT 1, md5(n::text)::uuid, 'a' || n, 'EUR', 2, 'credit', 'none', 'active', \
               '{{}}', \
                 0, 0, 0, 0, now(), 1000 + n FROM generate_series({from}, {to} - 1) AS n; \
             INSERT INTO transfers (ledger_id, id, debit_account_id, credit_account_id, amount, \
             currency, \
                 metadata, pending, state, posted_amount, reversed_amount, created_at, \
                 journal_seq) \
               SELECT 1, md5('t' || n)::uuid, md5(n::text)::uuid, md5((n + 1)::text)::uuid, 1, \
               'EUR', \
                 '{{}}', false, 'posted', 1, 0, now(), 1000 + n FROM generate_series({from}, {to} \
                 - 1) AS n; \
             INSERT INTO idempotency_keys (api_key_id, key, fingerprint, status, content_type, \
             body, created_at) \
               SELECT md5('k' || (n % 7))::uuid, 'key-' || n, sha256(n::text::bytea), 201, \
                 'application/json', '{{}}', now() FROM generate_series({from}, {to} - 1) AS n"
        ))
        .await
        .unwrap();
}

/// The table each batch statement reads, and the key columns its index condition must name.
fn table_and_keys(statement: &str) -> (&'static str, &'static [&'static str]) {
    if statement.contains("idempotency") {
        ("idempotency_keys", &["api_key_id", "key"])
    } else if statement.contains("code") {
        ("accounts", &["ledger_id", "code"])
    } else if statement.contains("account") {
        ("accounts", &["ledger_id", "id"])
    } else {
        ("transfers", &["ledger_id", "id"])
    }
}

async fn assert_every_batch_statement_probes_its_keys(
    storage: &ledger::storage::Storage,
    rows: i64,
) {
    let accounts: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
    let transfers: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
    let codes: Vec<String> = (0..1000).map(|n| format!("new-{n}")).collect();
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    let keys: Vec<String> = (0..1000).map(|n| format!("new-key-{n}")).collect();
    let idempotency: Vec<(Uuid, &str)> = keys
        .iter()
        .map(|key| (Uuid::now_v7(), key.as_str()))
        .collect();
    let plans = storage
        .explain_batch_statements(1, &accounts, &codes, &transfers, &idempotency)
        .await
        .unwrap();
    assert_eq!(plans.len(), 6);
    for (name, plan) in plans {
        let root = &plan[0]["Plan"];
        let (table, key_columns) = table_and_keys(name);
        let mut scans = Vec::new();
        scans_of(root, table, &mut scans);
        let probes: Vec<&&Value> = scans
            .iter()
            .filter(|scan| scan["Node Type"].as_str().unwrap().starts_with("Index"))
            .collect();
        assert_eq!(
            probes.len(),
            1,
            "at {rows} rows, {name}: one index probe of {table}: {plan}"
        );
        let condition = probes[0]["Index Cond"].as_str().unwrap_or_default();
        for column in key_columns {
            assert!(
                condition.contains(&format!("({column} = ")),
                "at {rows} rows, {name}: {table} must be probed on {key_columns:?}, got \
                 {condition}: {plan}"
            );
        }
        for scan in &scans {
            let node = scan["Node Type"].as_str().unwrap();
            assert!(
                node.starts_with("Index") || node == "Tid Scan",
                "at {rows} rows, {name}: {table} is only probed by key or reached by ctid, got \
                 {node}: {plan}"
            );
        }
        assert!(
            !plan.to_string().contains("\"Materialize\""),
            "at {rows} rows, {name}: nothing is materialised to be compared with every key: {plan}"
        );
    }
}

#[tokio::test]
async fn every_batch_statement_probes_its_keys_on_large_unanalysed_ledgers() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let owner = owner_connection(&app.database).await;
    owner
        .batch_execute(
            "ALTER TABLE accounts SET (autovacuum_enabled = false); \
             ALTER TABLE transfers SET (autovacuum_enabled = false); \
             ALTER TABLE idempotency_keys SET (autovacuum_enabled = false)",
        )
        .await
        .unwrap();
    let settings = ledger::storage::PoolSettings {
        custom_plans: true,
        max_connections: 1,
        statement_timeout_ms: 10_000,
        connect_timeout_ms: 5_000,
    };
    let storage = ledger::storage::Storage::new(app.database.clone(), settings, false).unwrap();
    let mut rows = 0;
    for size in [40_000, 200_000] {
        grow(&owner, rows, size).await;
        rows = size;
        let analysed: i64 = owner
            .query_one(
                "SELECT count(*) FROM pg_stat_user_tables \
                 WHERE relname IN ('accounts', 'transfers', 'idempotency_keys') \
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
        assert_every_batch_statement_probes_its_keys(&storage, rows).await;
    }
}
