//! `ledger-verify` on exports of a real database: a large untouched one verifies, and tampering
//! with the database or the export is caught and named (by the integrity check too, where it
//! applies).
//!
//! The attacker has the database owner's rights: `session_replication_role = replica` switches the
//! append-only triggers off for their session.

use std::path::PathBuf;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::audit::{export_lines, ledger_with_transfers};
use crate::helpers::{owner_connection, spawn_app, TestApp, Wallet};

/// A ledger of 3 accounts and about 20 events of every kind. Returns the wallet and the shop;
/// the last event is the reversal of a payment from the wallet to the shop, so the wallet's last
/// posting is a credit and the shop's a debit.
async fn busy_ledger(app: &TestApp) -> (Uuid, Uuid) {
    let (world, wallet) = app.world_and_wallet("main", Wallet::NoOverdraft).await;
    let shop = app.open_account("main", "shop", json!({})).await;
    for amount in ["50.00", "20.00", "5.25"] {
        assert_eq!(
            app.transfer("main", world, wallet, amount).await.status,
            StatusCode::CREATED
        );
    }
    for amount in ["3.00", "4.50", "1.00"] {
        app.transfer("main", wallet, shop, amount).await;
    }
    let hold = app
        .post(
            "/v1/ledgers/main/transfers",
            &json!({
                "debit_account_id": wallet,
                "credit_account_id": shop,
                "amount": "10.00",
                "currency": "EUR",
                "pending": true
            }),
        )
        .await;
    let hold = hold.body["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/ledgers/main/transfers/{hold}/post"),
        &json!({"amount": "8.00"}),
    )
    .await;
    app.post(
        &format!("/v1/ledgers/main/transfers/{hold}/reverse"),
        &json!({"amount": "2.00"}),
    )
    .await;
    (wallet, shop)
}

/// Runs the SQL as an attacker who switched the append-only triggers off.
pub(crate) async fn tamper(app: &TestApp, sql: &str) {
    let owner = owner_connection(&app.database).await;
    owner
        .batch_execute(&format!(
            "SET session_replication_role = replica; {sql}; SET session_replication_role = origin;"
        ))
        .await
        .unwrap();
}

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ledger-tamper-{}-{name}", Uuid::new_v4()));
    std::fs::write(&path, contents).unwrap();
    path
}

pub(crate) fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|line| line.iter().copied().chain([b'\n']))
        .collect()
}

pub(crate) async fn public_key_pem(app: &TestApp) -> PathBuf {
    let keys = app.get("/v1/keys").await.body;
    let current = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["current"] == true)
        .unwrap();
    temp_file(
        "key.pem",
        current["public_key_pem"].as_str().unwrap().as_bytes(),
    )
}

/// `ledger-verify export` on these bytes: its exit code and its JSON report or fault.
pub(crate) fn verify(export: &[u8], key: &PathBuf) -> (i32, Value) {
    let file = temp_file("export.ndjson", export);
    let output = Command::new(env!("CARGO_BIN_EXE_ledger-verify"))
        .arg("export")
        .arg(&file)
        .arg("--public-key")
        .arg(key)
        .arg("--json")
        .output()
        .unwrap();
    std::fs::remove_file(file).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(
        |_| json!({"raw": stdout, "stderr": String::from_utf8_lossy(&output.stderr)}),
    );
    (output.status.code().unwrap_or(-1), report)
}

async fn integrity_findings(app: &TestApp) -> Vec<Value> {
    let reply = app
        .request("POST", "/v1/ledgers/main/integrity-checks")
        .json(&json!({}))
        .token(&app.tokens.auditor)
        .idempotency_key(&Uuid::new_v4().to_string())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["findings"].as_array().unwrap().clone()
}

fn fault(report: &Value) -> (String, Option<u64>) {
    (
        report["code"].as_str().unwrap_or_default().to_owned(),
        report["seq"].as_u64(),
    )
}

#[tokio::test]
async fn an_untouched_ledger_exports_and_verifies() {
    let app = spawn_app().await;
    busy_ledger(&app).await;
    let key = public_key_pem(&app).await;
    let (code, report) = verify(&join(&export_lines(&app, "").await), &key);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["events"], 13);
    let (code, report) = verify(
        &join(&export_lines(&app, "?from_seq=6&to_seq=12").await),
        &key,
    );
    assert_eq!(
        code, 0,
        "a partial export verifies from its opening state: {report}"
    );
    assert!(integrity_findings(&app).await.is_empty());
}

#[tokio::test]
async fn an_export_of_a_hundred_thousand_events_verifies() {
    let app = spawn_app().await;
    ledger_with_transfers(&app, 100_000).await;
    let key = public_key_pem(&app).await;
    let (code, report) = verify(&join(&export_lines(&app, "").await), &key);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["events"], 100_003,
        "the ledger, two accounts and every transfer"
    );
}

#[tokio::test]
async fn an_altered_amount_is_caught_at_its_seq() {
    let app = spawn_app().await;
    busy_ledger(&app).await;
    tamper(
        &app,
        "UPDATE journal SET data = jsonb_set(data, '{amount}', '\"500.00\"') WHERE seq = 8",
    )
    .await;
    let (code, report) = verify(
        &join(&export_lines(&app, "").await),
        &public_key_pem(&app).await,
    );
    assert_eq!(
        (code, fault(&report)),
        (1, ("hash_mismatch".into(), Some(8))),
        "{report}"
    );
    let findings = integrity_findings(&app).await;
    assert!(
        findings
            .iter()
            .any(|finding| finding["check"] == "chain" && finding["seq"] == 8),
        "{findings:?}"
    );
}

#[tokio::test]
async fn a_deleted_event_is_caught_where_the_chain_breaks() {
    let app = spawn_app().await;
    busy_ledger(&app).await;
    tamper(&app, "DELETE FROM journal WHERE seq = 8").await;
    // The tree's stored hashes no longer match the journal, so the service cannot sign the
    // checkpoint and breaks off the download after the events; what arrived still names the gap.
    let (received, broken) = export_as_received(&app, "").await;
    assert!(broken, "the download must end broken");
    let (code, report) = verify(&received, &public_key_pem(&app).await);
    assert_eq!(
        (code, fault(&report)),
        (1, ("seq_out_of_order".into(), Some(9))),
        "{report}"
    );
    let findings = integrity_findings(&app).await;
    assert!(
        findings
            .iter()
            .any(|finding| finding["check"] == "chain" && finding["seq"] == 9),
        "{findings:?}"
    );
}

#[tokio::test]
async fn two_swapped_events_are_caught() {
    let app = spawn_app().await;
    busy_ledger(&app).await;
    tamper(
        &app,
        "UPDATE journal SET seq = 1000000 WHERE seq = 8; UPDATE journal SET seq = 8 WHERE seq = \
         9; UPDATE journal SET seq = 9 WHERE seq = 1000000",
    )
    .await;
    let (code, report) = verify(
        &join(&export_lines(&app, "").await),
        &public_key_pem(&app).await,
    );
    let (kind, seq) = fault(&report);
    assert_eq!(code, 1);
    assert!(
        matches!(
            kind.as_str(),
            "hash_mismatch" | "prev_hash_mismatch" | "seq_out_of_order"
        ),
        "{report}"
    );
    assert_eq!(seq, Some(8), "{report}");
    assert!(integrity_findings(&app)
        .await
        .iter()
        .any(|finding| finding["check"] == "chain" && finding["seq"] == 8));
}

/// The bytes of an export as they arrive, and whether the download broke off.
async fn export_as_received(app: &TestApp, query: &str) -> (Vec<u8>, bool) {
    let mut reply = app
        .client
        .get(app.url(&format!("/v1/ledgers/main/export{query}")))
        .bearer_auth(&app.tokens.auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let mut received = Vec::new();
    loop {
        match reply.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => return (received, false),
            Err(_) => return (received, true),
        }
    }
}

#[tokio::test]
async fn an_export_that_fails_midway_ends_as_a_broken_download_not_a_complete_one() {
    let app = spawn_app().await;
    busy_ledger(&app).await;
    // The opening of a range is replayed from genesis: an altered event before the range stops
    // the export after its status was sent.
    tamper(
        &app,
        "UPDATE journal SET data = jsonb_set(data, '{amount}', '\"500.00\"') WHERE seq = 8",
    )
    .await;
    let (received, broken) = export_as_received(&app, "?from_seq=10").await;
    let received = String::from_utf8_lossy(&received);
    assert!(
        broken,
        "the body must not end like a complete download: {received}"
    );
    assert!(
        received.contains(r#""kind":"header""#),
        "what was written before the failure still arrives: {received}"
    );
}

#[tokio::test]
async fn a_changed_balance_is_caught_by_the_replay_and_by_the_integrity_check() {
    let app = spawn_app().await;
    let (wallet, _) = busy_ledger(&app).await;
    // A careful forger changes the account and its running balance, leaving the journal alone.
    tamper(
        &app,
        &format!(
            "UPDATE accounts SET posted_credits = posted_credits + 100 WHERE id = '{wallet}'; \
             UPDATE postings SET posted_credits_after = posted_credits_after + 100 WHERE \
             account_id = '{wallet}' AND seq = (SELECT max(seq) FROM postings WHERE account_id = \
             '{wallet}')"
        ),
    )
    .await;
    let (code, report) = verify(
        &join(&export_lines(&app, "").await),
        &public_key_pem(&app).await,
    );
    assert_eq!(
        (code, fault(&report).0.as_str()),
        (1, "balance_mismatch"),
        "{report}"
    );
    let findings = integrity_findings(&app).await;
    assert!(
        findings
            .iter()
            .any(|finding| finding["check"] == "account_postings"
                && finding["account_id"] == wallet.to_string()),
        "{findings:?}"
    );
}

/// Moves 100 into the wallet's posted credits and the shop's posted debits, in the accounts and
/// in their last postings: `delta` adds it to the postings' deltas, `after` to their running
/// balances.
async fn move_one_hundred(app: &TestApp, wallet: Uuid, shop: Uuid, delta: bool, after: bool) {
    let last_posting = |account: Uuid, side: &str, column: &str| {
        let mut set = Vec::new();
        if delta {
            set.push("posted_delta = posted_delta + 100".to_owned());
        }
        if after {
            set.push(format!("{column} = {column} + 100"));
        }
        format!(
            "UPDATE postings SET {} WHERE account_id = '{account}' AND side = '{side}' AND seq = \
             (SELECT max(seq) FROM postings WHERE account_id = '{account}')",
            set.join(", ")
        )
    };
    tamper(
        app,
        &format!(
            "UPDATE accounts SET posted_credits = posted_credits + 100 WHERE id = '{wallet}'; \
             UPDATE accounts SET posted_debits = posted_debits + 100 WHERE id = '{shop}'; {}; {}",
            last_posting(wallet, "credit", "posted_credits_after"),
            last_posting(shop, "debit", "posted_debits_after"),
        ),
    )
    .await;
}

fn checks_named(findings: &[Value]) -> Vec<(String, String)> {
    let mut named: Vec<(String, String)> = findings
        .iter()
        .map(|finding| {
            (
                finding["check"].as_str().unwrap_or_default().to_owned(),
                finding["account_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    named.sort();
    named
}

#[tokio::test]
async fn postings_and_balances_rewritten_together_are_caught_only_by_replaying_the_journal() {
    let app = spawn_app().await;
    let (wallet, shop) = busy_ledger(&app).await;
    // The sums of postings, the running balances and §4.2 all still agree after this.
    move_one_hundred(&app, wallet, shop, true, true).await;
    let mut expected = vec![
        ("replay".to_owned(), wallet.to_string()),
        ("replay".to_owned(), shop.to_string()),
    ];
    expected.sort();
    assert_eq!(checks_named(&integrity_findings(&app).await), expected);
    let (code, report) = verify(
        &join(&export_lines(&app, "").await),
        &public_key_pem(&app).await,
    );
    assert_eq!(
        (code, fault(&report).0.as_str()),
        (1, "balance_mismatch"),
        "{report}"
    );
}

#[tokio::test]
async fn a_balance_that_is_not_its_last_running_balance_is_named() {
    let app = spawn_app().await;
    let (wallet, shop) = busy_ledger(&app).await;
    // The sums of postings still agree; the running balances do not.
    move_one_hundred(&app, wallet, shop, true, false).await;
    let mut expected = vec![
        ("running_balance".to_owned(), wallet.to_string()),
        ("running_balance".to_owned(), shop.to_string()),
    ];
    expected.sort();
    assert_eq!(checks_named(&integrity_findings(&app).await), expected);
}

#[tokio::test]
async fn an_export_signed_by_another_key_is_refused() {
    let app = spawn_app().await;
    busy_ledger(&app).await;
    let key = public_key_pem(&app).await;
    let mut lines = export_lines(&app, "").await;
    let attacker = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let manifest = lines[lines.len() - 2].clone();
    // Signed by another key and saying so.
    lines.pop();
    lines.push(
        ledger::audit::export::Line::Signature(ledger::audit::export::sign_manifest(
            &manifest, &attacker,
        ))
        .encode(),
    );
    let (code, report) = verify(&join(&lines), &key);
    assert_eq!(
        (code, fault(&report).0.as_str()),
        (1, "unknown_key"),
        "{report}"
    );
    // Signed by another key, claiming the service's key id.
    let mut forged = ledger::audit::export::sign_manifest(&manifest, &attacker);
    let ledger::audit::export::Line::Signature(genuine) =
        ledger::audit::export::Line::decode(&export_lines(&app, "").await.pop().unwrap()).unwrap()
    else {
        panic!()
    };
    forged.key_id = genuine.key_id;
    lines.pop();
    lines.push(ledger::audit::export::Line::Signature(forged).encode());
    let (code, report) = verify(&join(&lines), &key);
    assert_eq!(
        (code, fault(&report).0.as_str()),
        (1, "bad_signature"),
        "{report}"
    );
}

#[tokio::test]
async fn a_truncated_export_is_refused() {
    let app = spawn_app().await;
    busy_ledger(&app).await;
    let key = public_key_pem(&app).await;
    let whole = join(&export_lines(&app, "").await);
    for cut in [whole.len() - 1, whole.len() / 2, whole.len() - 200] {
        let (code, report) = verify(&whole[..cut], &key);
        assert_eq!(code, 1, "cut at {cut}: {report}");
        assert_eq!(fault(&report).0, "truncated", "cut at {cut}: {report}");
    }
    let without_signature: Vec<Vec<u8>> = export_lines(&app, "")
        .await
        .into_iter()
        .rev()
        .skip(1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let (code, report) = verify(&join(&without_signature), &key);
    assert_eq!(
        (code, fault(&report).0.as_str()),
        (1, "truncated"),
        "{report}"
    );
}
