//! `ledger-verify` against what the service writes (issue 10): totals beyond 10^28 minor units,
//! the JSON of `GET /v1/keys` as the public key, and exports held to checkpoints the auditor
//! kept earlier, for a full and a range export.

use std::path::PathBuf;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::audit::export_lines;
use crate::helpers::{spawn_app, TestApp, Wallet};
use crate::tamper::{join, public_key_pem};

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ledger-anchor-{}-{name}", Uuid::new_v4()));
    std::fs::write(&path, contents).unwrap();
    path
}

/// `ledger-verify export FILE --public-key KEY --json` with more arguments: its exit code and
/// its JSON report or fault.
fn verify_with(export: &[u8], key: &PathBuf, more: &[&str]) -> (i32, Value) {
    let file = temp_file("export.ndjson", export);
    let output = Command::new(env!("CARGO_BIN_EXE_ledger-verify"))
        .arg("export")
        .arg(&file)
        .arg("--public-key")
        .arg(key)
        .args(more)
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

/// The body of `GET /v1/keys`, as a file for `--public-key`.
async fn keys_file(app: &TestApp) -> PathBuf {
    let reply = app.get("/v1/keys").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    temp_file("keys.json", reply.text.as_bytes())
}

#[tokio::test]
async fn two_legal_transfers_whose_euro_total_exceeds_10_to_the_28_cents_verify() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let debit = json!({"normal_side": "debit"});
    let a = app.open_account("main", "a", debit.clone()).await;
    let b = app.open_account("main", "b", json!({})).await;
    let c = app.open_account("main", "c", debit).await;
    let d = app.open_account("main", "d", json!({})).await;
    let largest = format!("{}.99", "9".repeat(26));
    for (debit, credit, amount) in [(a, b, largest.as_str()), (c, d, "0.01")] {
        let reply = app.transfer("main", debit, credit, amount).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    assert_eq!(integrity_findings(&app).await, Vec::<Value>::new());

    let export = join(&export_lines(&app, "").await);
    let (code, report) = verify_with(&export, &public_key_pem(&app).await, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["accounts"], 4);
    let (code, report) = verify_with(&export, &keys_file(&app).await, &[]);
    assert_eq!(code, 0, "with the keys of GET /v1/keys: {report}");
    let range = join(&export_lines(&app, "?from_seq=7").await);
    let (code, report) = verify_with(&range, &keys_file(&app).await, &[]);
    assert_eq!(code, 0, "{report}");
}

#[tokio::test]
async fn exports_are_held_to_the_checkpoints_an_auditor_kept() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::Plain).await;
    for amount in ["1.00", "2.00", "3.00"] {
        app.transfer("main", world, wallet, amount).await;
    }
    // The auditor keeps the checkpoint of the first 6 events (4 + 2 leaves).
    let kept = app.get("/v1/ledgers/main/checkpoint?fresh=true").await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);
    assert!(kept.text.starts_with("ledger/main\n6\n"), "{}", kept.text);
    assert!(kept.text.contains("\nsigned_at "), "{}", kept.text);
    let kept = temp_file("kept.txt", kept.text.as_bytes());
    let kept = kept.to_str().unwrap();
    for amount in ["4.00", "5.00", "6.00", "7.00", "8.00"] {
        app.transfer("main", world, wallet, amount).await;
    }
    let keys = keys_file(&app).await;

    let full = join(&export_lines(&app, "").await);
    let (code, report) = verify_with(&full, &keys, &["--checkpoint", kept]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["anchors"], json!([6]));

    // A range from seq 10 opens on the tree of 9 events (8 + 1): size 6 is not one of its
    // subtrees, so the export alone cannot prove it; the service's consistency proof can.
    let range = join(&export_lines(&app, "?from_seq=10").await);
    let (code, report) = verify_with(&range, &keys, &["--checkpoint", kept]);
    assert_eq!(
        (code, &report["code"]),
        (1, &json!("anchor_unprovable")),
        "{report}"
    );
    let proof = app
        .get("/v1/ledgers/main/proofs/consistency?from_size=6&to_size=11")
        .await;
    assert_eq!(proof.status, StatusCode::OK, "{}", proof.text);
    let proof = temp_file("proof.json", proof.text.as_bytes());
    let (code, report) = verify_with(
        &range,
        &keys,
        &[
            "--checkpoint",
            kept,
            "--consistency-proof",
            proof.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["anchors"], json!([6]));

    // A checkpoint of a tree the export does not reach cannot be checked by it.
    let short = join(&export_lines(&app, "?to_seq=5").await);
    let (code, report) = verify_with(&short, &keys, &["--checkpoint", kept]);
    assert_eq!(
        (code, &report["code"]),
        (1, &json!("anchor_beyond_export")),
        "{report}"
    );
}
