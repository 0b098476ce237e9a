//! §5 and §7 against a real database: checkpoints, proofs, the audit trail, the signed export,
//! the integrity check.

use base64::Engine;
use ledger::audit::checkpoint::{open_checkpoint, NoteVerifier};
use ledger::audit::export::{self, Line};
use ledger::audit::merkle::{self, InMemoryMerkleTree};
use ledger::audit::Hash32;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{owner_connection, spawn_app, TestApp, Wallet};

fn hash(value: &Value) -> Hash32 {
    Hash32::from_hex(value.as_str().unwrap()).unwrap()
}

fn hashes(value: &Value) -> Vec<Hash32> {
    value.as_array().unwrap().iter().map(hash).collect()
}

/// The service's current signing key, as `GET /v1/keys` publishes it.
async fn published_key(app: &TestApp) -> ed25519_dalek::VerifyingKey {
    let keys = app.get("/v1/keys").await.body;
    let current = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["current"] == true)
        .expect("a current key");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(current["public_key"].as_str().unwrap())
        .unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&bytes.try_into().unwrap()).unwrap()
}

/// The tree of the journal, built independently from the events the API shows.
async fn journal_tree(app: &TestApp, ledger: &str) -> InMemoryMerkleTree {
    let leaves = app
        .journal(ledger)
        .await
        .iter()
        .map(|event| merkle::leaf_hash(&hash(&event["hash"])))
        .collect();
    InMemoryMerkleTree::from_leaf_hashes(leaves)
}

/// A ledger with two accounts and `count` transfers between them (in batches of up to 1,000).
/// A ledger `main` with `count` transfers from `world` to `wallet`, sent in atomic batches of 1000.
pub async fn ledger_with_transfers(app: &TestApp, count: usize) -> (Uuid, Uuid) {
    let (world, wallet) = app.world_and_wallet("main", Wallet::Plain).await;
    let mut left = count;
    while left > 0 {
        let size = left.min(1000);
        let items: Vec<Value> = (0..size)
            .map(|_| {
                json!({
                    "debit_account_id": world,
                    "credit_account_id": wallet,
                    "amount": "0.01",
                    "currency": "EUR"
                })
            })
            .collect();
        let reply = app
            .post(
                "/v1/ledgers/main/transfers/batch",
                &json!({"atomic": true, "transfers": items}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        left -= size;
    }
    (world, wallet)
}

#[tokio::test]
async fn a_checkpoint_is_signed_by_the_published_key_over_the_journals_tree() {
    let app = spawn_app().await;
    ledger_with_transfers(&app, 5).await;
    let reply = app.get("/v1/ledgers/main/checkpoint?fresh=true").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.content_type().starts_with("text/plain"));
    let key = published_key(&app).await;
    let checkpoint = open_checkpoint(
        &reply.text,
        "ledger/main",
        &[NoteVerifier::new("ledger/main", key).unwrap()],
    )
    .expect("the note verifies");
    let tree = journal_tree(&app, "main").await;
    assert_eq!(
        (checkpoint.size, checkpoint.root),
        (tree.size(), tree.root())
    );
    let keys = app.get("/v1/keys?ledger=main").await.body;
    let verifier = keys[0]["note_verifier_key"].as_str().unwrap();
    let parsed = NoteVerifier::from_verifier_key_string(verifier).unwrap();
    assert!(
        open_checkpoint(&reply.text, "ledger/main", &[parsed]).is_ok(),
        "the published verifier key opens it"
    );
}

#[tokio::test]
async fn every_inclusion_and_consistency_proof_verifies_past_the_stored_subtree_levels() {
    let app = spawn_app().await;
    ledger_with_transfers(&app, 600).await; // 603 events: two complete subtrees of 256 are stored
    let tree = journal_tree(&app, "main").await;
    assert_eq!(tree.size(), 603);
    let owner = owner_connection(&app.database).await;
    let stored: i64 = owner
        .query_one("SELECT count(*) FROM merkle_nodes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 2, "the roots of leaves 0..256 and 256..512");
    for seq in [1u64, 2, 255, 256, 257, 300, 512, 513, 603] {
        for tree_size in [seq, 511, 512, 603] {
            if tree_size < seq {
                continue;
            }
            let reply = app
                .get(&format!(
                    "/v1/ledgers/main/proofs/inclusion?seq={seq}&tree_size={tree_size}"
                ))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            let root = tree.root_at_size(tree_size).unwrap();
            assert_eq!(hash(&reply.body["root"]), root);
            let leaf = hash(&reply.body["leaf_hash"]);
            merkle::verify_inclusion(
                seq - 1,
                tree_size,
                &leaf,
                &hashes(&reply.body["proof"]),
                &root,
            )
            .unwrap_or_else(|error| panic!("seq {seq} in {tree_size}: {error:?}"));
        }
    }
    for (from, to) in [
        (1u64, 603u64),
        (256, 512),
        (255, 603),
        (300, 301),
        (512, 603),
        (603, 603),
    ] {
        let reply = app
            .get(&format!(
                "/v1/ledgers/main/proofs/consistency?from_size={from}&to_size={to}"
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let (from_root, to_root) = (hash(&reply.body["from_root"]), hash(&reply.body["to_root"]));
        assert_eq!(
            (from_root, to_root),
            (
                tree.root_at_size(from).unwrap(),
                tree.root_at_size(to).unwrap()
            )
        );
        merkle::verify_consistency(
            from,
            to,
            &from_root,
            &to_root,
            &hashes(&reply.body["proof"]),
        )
        .unwrap_or_else(|error| panic!("{from} -> {to}: {error:?}"));
    }
    for query in [
        "seq=0&tree_size=5",
        "seq=6&tree_size=5",
        "seq=1&tree_size=604",
    ] {
        let reply = app
            .get(&format!("/v1/ledgers/main/proofs/inclusion?{query}"))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "out_of_range"),
            "{query}"
        );
    }
}

#[tokio::test]
async fn an_account_shows_every_posting_with_its_running_balance_and_its_balance_at_any_seq() {
    let app = spawn_app().await;
    let (world, wallet) = app.world_and_wallet("main", Wallet::Plain).await;
    app.transfer("main", world, wallet, "10.00").await;
    let hold = app
        .post(
            "/v1/ledgers/main/transfers",
            &json!({
                "debit_account_id": wallet,
                "credit_account_id": world,
                "amount": "4.00",
                "currency": "EUR",
                "pending": true
            }),
        )
        .await;
    let hold = hold.body["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/ledgers/main/transfers/{hold}/post"),
        &json!({"amount": "3.00"}),
    )
    .await;
    let entries = app
        .get(&format!("/v1/ledgers/main/accounts/{wallet}/entries"))
        .await
        .body["data"]
        .clone();
    let summary: Vec<(u64, String, String, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["seq"].as_u64().unwrap(),
                entry["type"].as_str().unwrap().into(),
                entry["posted_balance"].as_str().unwrap().into(),
                entry["available_balance"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (4, "transfer_created".into(), "10.00".into(), "10.00".into()),
            (5, "transfer_created".into(), "10.00".into(), "6.00".into()),
            (6, "transfer_posted".into(), "7.00".into(), "7.00".into())
        ]
    );
    assert_eq!(
        entries[2]["pending_delta"], "-4.00",
        "the reservation is released"
    );
    for (seq, posted) in [(3, "0.00"), (4, "10.00"), (5, "10.00"), (6, "7.00")] {
        let balance = app
            .get(&format!(
                "/v1/ledgers/main/accounts/{wallet}/balance?as_of_seq={seq}"
            ))
            .await;
        assert_eq!(
            balance.body["posted_balance"], posted,
            "as of {seq}: {}",
            balance.text
        );
    }
    let too_early = app
        .get(&format!(
            "/v1/ledgers/main/accounts/{wallet}/balance?as_of_seq=1"
        ))
        .await;
    assert_eq!(
        (too_early.status, too_early.code()),
        (StatusCode::BAD_REQUEST, "out_of_range")
    );
}

#[tokio::test]
async fn a_transfers_audit_lists_its_events_each_proven_in_the_latest_checkpoint() {
    let app = spawn_app().await;
    let (world, wallet) = ledger_with_transfers(&app, 3).await;
    let hold = app
        .post(
            "/v1/ledgers/main/transfers",
            &json!({
                "debit_account_id": world,
                "credit_account_id": wallet,
                "amount": "5.00",
                "currency": "EUR",
                "pending": true
            }),
        )
        .await;
    let id = hold.body["id"].as_str().unwrap().to_owned();
    app.post(&format!("/v1/ledgers/main/transfers/{id}/post"), &json!({}))
        .await;
    app.post(
        &format!("/v1/ledgers/main/transfers/{id}/reverse"),
        &json!({"amount": "1.00"}),
    )
    .await;
    let audit = app
        .get(&format!("/v1/ledgers/main/transfers/{id}/audit"))
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    let types: Vec<&str> = audit.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["transfer_created", "transfer_posted", "transfer_reversed"]
    );
    let key = published_key(&app).await;
    let checkpoint = open_checkpoint(
        audit.body["checkpoint"]["note"].as_str().unwrap(),
        "ledger/main",
        &[NoteVerifier::new("ledger/main", key).unwrap()],
    )
    .unwrap();
    for item in audit.body["events"].as_array().unwrap() {
        let leaf = merkle::leaf_hash(&hash(&item["event"]["hash"]));
        merkle::verify_inclusion(
            item["leaf_index"].as_u64().unwrap(),
            checkpoint.size,
            &leaf,
            &hashes(&item["proof"]),
            &checkpoint.root,
        )
        .unwrap();
    }
}

/// Downloads an export as lines (without their newlines).
pub async fn export_lines(app: &TestApp, query: &str) -> Vec<Vec<u8>> {
    let reply = app
        .client
        .get(app.url(&format!("/v1/ledgers/main/export{query}")))
        .bearer_auth(&app.tokens.auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.headers()["content-type"], "application/x-ndjson");
    let bytes = reply.bytes().await.unwrap();
    assert_eq!(bytes.last(), Some(&b'\n'));
    bytes[..bytes.len() - 1]
        .split(|byte| *byte == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

#[tokio::test]
async fn an_export_is_canonical_lines_whose_manifest_is_signed_by_the_published_key() {
    let app = spawn_app().await;
    ledger_with_transfers(&app, 10).await;
    let lines = export_lines(&app, "").await;
    let decoded: Vec<Line> = lines
        .iter()
        .map(|line| Line::decode(line).expect("canonical"))
        .collect();
    let kinds: Vec<&str> = decoded.iter().map(Line::kind).collect();
    assert_eq!(kinds.first(), Some(&"header"));
    assert_eq!(kinds.iter().filter(|kind| **kind == "event").count(), 13);
    assert_eq!(
        &kinds[kinds.len() - 5..],
        ["checkpoint", "balance", "balance", "manifest", "signature"]
    );
    let Line::Manifest(manifest) = &decoded[decoded.len() - 2] else {
        panic!()
    };
    let mut content = export::ContentHasher::new();
    lines[..lines.len() - 2]
        .iter()
        .for_each(|line| content.add_line(line));
    assert_eq!(
        (manifest.content_sha256, manifest.lines),
        (content.clone().finish(), content.lines())
    );
    let Line::Signature(signature) = &decoded[decoded.len() - 1] else {
        panic!()
    };
    assert!(export::signature_is_valid(
        &lines[lines.len() - 2],
        signature,
        &published_key(&app).await
    ));
    let Line::Checkpoint { tree_size, note } = &decoded[kinds.len() - 5] else {
        panic!()
    };
    let checkpoint = open_checkpoint(
        note,
        "ledger/main",
        &[NoteVerifier::new("ledger/main", published_key(&app).await).unwrap()],
    )
    .unwrap();
    assert_eq!((checkpoint.size, *tree_size), (13, 13));
    assert_eq!(checkpoint.root, journal_tree(&app, "main").await.root());

    let partial = export_lines(&app, "?from_seq=5&to_seq=9").await;
    let kinds: Vec<String> = partial
        .iter()
        .map(|line| Line::decode(line).unwrap().kind().to_owned())
        .collect();
    assert_eq!(kinds[1], "opening");
    assert_eq!(kinds.iter().filter(|kind| *kind == "event").count(), 5);
    for query in ["?from_seq=0", "?from_seq=5&to_seq=4", "?to_seq=14"] {
        let reply = app.get(&format!("/v1/ledgers/main/export{query}")).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "out_of_range"),
            "{query}"
        );
    }
}

async fn integrity_check(app: &TestApp) -> Value {
    let reply = app
        .request("POST", "/v1/ledgers/main/integrity-checks")
        .json(&json!({}))
        .token(&app.tokens.auditor)
        .idempotency_key(&Uuid::new_v4().to_string())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body
}

#[tokio::test]
async fn the_integrity_check_passes_a_sound_ledger_and_names_what_was_tampered_with() {
    let app = spawn_app().await;
    let (_, wallet) = ledger_with_transfers(&app, 20).await;
    app.get("/v1/ledgers/main/checkpoint?fresh=true").await;
    let sound = integrity_check(&app).await;
    assert_eq!(
        (sound["status"].as_str(), sound["checked_seq"].as_u64()),
        (Some("passed"), Some(23)),
        "{sound}"
    );
    assert_eq!(
        app.get("/v1/ledgers/main/integrity-checks/latest")
            .await
            .body["id"],
        sound["id"]
    );

    // Someone with the database's owner rights bypasses the append-only guard.
    let owner = owner_connection(&app.database).await;
    owner
        .batch_execute(
            "SET session_replication_role = replica; \
             UPDATE journal SET data = jsonb_set(data, '{amount}', '\"9.99\"') WHERE seq = 10; \
             UPDATE accounts SET posted_credits = posted_credits + 1 WHERE code = 'wallet'; \
             SET session_replication_role = origin;",
        )
        .await
        .unwrap();
    let tampered = integrity_check(&app).await;
    assert_eq!(tampered["status"], "failed");
    let findings = tampered["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|finding| finding["check"] == "chain" && finding["seq"] == 10),
        "{tampered}"
    );
    assert!(findings
        .iter()
        .any(|finding| finding["check"] == "account_postings"
            && finding["account_id"] == wallet.to_string()));
    assert!(findings
        .iter()
        .any(|finding| finding["check"] == "balanced_currencies"));
}

/// On a ledger of its own name: the metrics recorder is shared by every test of the process, and
/// other tests' ledgers called `main` pass their checks concurrently.
#[tokio::test]
async fn a_failed_integrity_check_is_exposed_as_a_metric_of_its_ledger() {
    let app = spawn_app().await;
    let ledger = format!("gauge-{}", Uuid::new_v4().simple());
    let (world, wallet) = app.world_and_wallet(&ledger, Wallet::Plain).await;
    let reply = app.transfer(&ledger, world, wallet, "1.00").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let owner = owner_connection(&app.database).await;
    owner
        .batch_execute(
            "SET session_replication_role = replica; \
             UPDATE accounts SET posted_credits = posted_credits + 1 WHERE code = 'wallet'; \
             SET session_replication_role = origin;",
        )
        .await
        .unwrap();
    let reply = app
        .request("POST", &format!("/v1/ledgers/{ledger}/integrity-checks"))
        .json(&json!({}))
        .token(&app.tokens.auditor)
        .idempotency_key(&Uuid::new_v4().to_string())
        .send()
        .await;
    assert_eq!(reply.body["status"], "failed", "{}", reply.text);
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains(&format!(
            "ledger_integrity_check_passed{{ledger=\"{ledger}\"}} 0"
        )),
        "exposed as a metric"
    );
}

#[tokio::test]
async fn integrity_checks_that_run_while_transfers_commit_find_nothing_wrong() {
    let app = spawn_app().await;
    let (world, wallet) = ledger_with_transfers(&app, 20).await;
    let writes = async {
        for _ in 0..150 {
            let reply = app.transfer("main", world, wallet, "0.01").await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        }
    };
    let checks = async {
        let mut checked_seqs = Vec::new();
        for _ in 0..8 {
            let run = integrity_check(&app).await;
            assert_eq!(run["status"], "passed", "{run}");
            checked_seqs.push(run["checked_seq"].as_u64().unwrap());
        }
        checked_seqs
    };
    let ((), checked_seqs) = tokio::join!(writes, checks);
    assert!(
        checked_seqs.windows(2).all(|pair| pair[0] <= pair[1]),
        "{checked_seqs:?}"
    );
    let last = integrity_check(&app).await;
    assert_eq!(
        (last["status"].as_str(), last["checked_seq"].as_u64()),
        (Some("passed"), Some(173)),
        "{last}"
    );
}

/// Found by schemathesis: a size beyond 2^63 − 1 crashed the worker instead of finding nothing.
#[tokio::test]
async fn sizes_and_seqs_beyond_a_bigint_find_nothing_instead_of_failing() {
    let app = spawn_app().await;
    ledger_with_transfers(&app, 2).await;
    app.get("/v1/ledgers/main/checkpoint?fresh=true").await;
    let beyond = "9223372036854775808";
    let checkpoint = app
        .get(&format!("/v1/ledgers/main/checkpoint?tree_size={beyond}"))
        .await;
    assert_eq!(
        checkpoint.status,
        StatusCode::NOT_FOUND,
        "{}",
        checkpoint.text
    );
    assert_eq!(checkpoint.content_type(), "application/problem+json");
    let journal = app
        .get(&format!("/v1/ledgers/main/journal?after_seq={beyond}"))
        .await;
    assert_eq!(
        (journal.status, journal.code()),
        (StatusCode::BAD_REQUEST, "invalid_query"),
        "{}",
        journal.text
    );
}
