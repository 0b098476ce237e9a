//! Witnesses (docs/AUDIT_FORMAT.md §3.1): `ledger witness` rounds (the library function behind
//! `--once`, and the command itself) against a real service, the cosignatures the service keeps
//! and serves, forks made by a key holder rewriting history, and the client's "at least k
//! cosignatures from these keys".

use std::path::{Path, PathBuf};
use std::process::Command;

use ed25519_dalek::SigningKey;
use ledger::audit::checkpoint::{sign_checkpoint_at, split_signed_note, Checkpoint};
use ledger::audit::cosignature::{cosign_note, require_cosignatures, CosignatureError, WitnessKey};
use ledger::audit::Hash32;
use ledger::domain::Timestamp;
use ledger::signing::SigningKeySource;
use ledger::witness::{
    load_state, read_log_keys, witness_once, RoundOutcome, WitnessConfig, WitnessError,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{fresh_database, settings_for, spawn_app_with, TestApp};
use crate::tamper::tamper;

/// The service's signing key, known to the test so that it can play the key holder who forges.
fn log_key() -> SigningKey {
    SigningKey::from_bytes(&Hash32::sha256(b"the service's signing key").0)
}

/// A service that signs checkpoints only when asked (`?fresh=true`), with [`log_key`].
async fn service() -> TestApp {
    let mut settings = settings_for(fresh_database().await);
    settings.audit.signing_key = SigningKeySource::InMemory(Box::new(log_key()));
    settings.audit.checkpoint_interval_ms = 24 * 3_600_000;
    spawn_app_with(settings).await
}

/// The ledger `main` with two accounts; returns them.
async fn ledger(app: &TestApp) -> (Uuid, Uuid) {
    let world = app.ledger_with_world("main").await;
    let alice = app.open_account("main", "alice", json!({})).await;
    (world, alice)
}

async fn transfers(app: &TestApp, (debit, credit): (Uuid, Uuid), count: usize) {
    for _ in 0..count {
        let reply = app.transfer("main", debit, credit, "1.00").await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
}

struct Witness {
    config: WitnessConfig,
    key: WitnessKey,
    folder: tempfile::TempDir,
}

impl Witness {
    async fn round(&self) -> Result<RoundOutcome, WitnessError> {
        let client = ledger::witness::http_client().unwrap();
        witness_once(&self.config, &client, ledger::witness::unix_now()).await
    }

    fn state_path(&self) -> &Path {
        &self.config.state_path
    }
}

/// `GET /v1/keys?ledger=main` saved as a file, as an auditor would give it to `--log-key`.
async fn log_keys_file(app: &TestApp, folder: &Path) -> PathBuf {
    let keys = app.get("/v1/keys?ledger=main").await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.text);
    let path = folder.join("log-keys.json");
    std::fs::write(&path, keys.text.as_bytes()).unwrap();
    path
}

async fn witness(app: &TestApp, name: &str) -> Witness {
    let folder = tempfile::tempdir().unwrap();
    let signing_key = SigningKey::from_bytes(&Hash32::sha256(name.as_bytes()).0);
    let log_keys =
        read_log_keys(log_keys_file(app, folder.path()).await.to_str().unwrap()).unwrap();
    assert_eq!(log_keys.origin.as_deref(), Some("ledger/main"));
    Witness {
        key: WitnessKey::new(name, signing_key.verifying_key()).unwrap(),
        config: WitnessConfig {
            base_url: app.address.clone(),
            ledger: "main".into(),
            api_key: app.tokens.auditor.clone(),
            log_keys,
            origin: None,
            witness_key: signing_key,
            name: name.into(),
            state_path: folder.path().join("state.json"),
            fresh: true,
        },
        folder,
    }
}

/// The served checkpoint: its note, size and the number of cosignatures it says it carries.
async fn served_checkpoint(app: &TestApp, query: &str) -> (String, u64, usize) {
    let reply = app
        .get(&format!("/v1/ledgers/main/checkpoint{query}"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let header = |name: &str| -> u64 { reply.headers[name].to_str().unwrap().parse().unwrap() };
    (
        reply.text.clone(),
        header("Checkpoint-Tree-Size"),
        header("Checkpoint-Cosignatures") as usize,
    )
}

fn cosigned(outcome: Result<RoundOutcome, WitnessError>) -> (u64, &'static str, u16) {
    match outcome {
        Ok(RoundOutcome::Cosigned {
            tree_size,
            verified_by,
            status,
            ..
        }) => (tree_size, verified_by, status),
        other => panic!("expected a cosignature, got {other:?}"),
    }
}

#[tokio::test]
async fn two_witnesses_co_sign_a_growing_ledger_round_after_round() {
    let app = service().await;
    let accounts = ledger(&app).await;
    let (first, second) = (
        witness(&app, "witness.example/one").await,
        witness(&app, "witness.example/two").await,
    );
    let mut sizes = Vec::new();
    for round in 0..4 {
        transfers(&app, accounts, round + 1).await;
        let (size, how, status) = cosigned(first.round().await);
        let expected_how = if round == 0 {
            "first_use"
        } else {
            "consistency_proof"
        };
        assert_eq!((how, status), (expected_how, 201), "round {round}");
        assert_eq!(cosigned(second.round().await), (size, expected_how, 201));
        let (note, served_size, cosignatures) = served_checkpoint(&app, "").await;
        assert_eq!((served_size, cosignatures), (size, 2), "round {round}");
        let check =
            require_cosignatures(&note, &[first.key.clone(), second.key.clone()], 2, None).unwrap();
        assert_eq!(check.cosigned_by.len(), 2);
        sizes.push(size);
        // Nothing new: the next round has nothing to co-sign.
        assert_eq!(
            first.round().await,
            Ok(RoundOutcome::Unchanged { tree_size: size })
        );
    }
    assert!(sizes.windows(2).all(|pair| pair[0] < pair[1]), "{sizes:?}");
    let state = load_state(first.state_path()).unwrap().unwrap();
    assert_eq!(
        state.first_use.tree_size, sizes[0],
        "trusted on first use, and only then"
    );
    assert_eq!(state.tree_size, *sizes.last().unwrap());
    assert_eq!(state.verified_by, "consistency_proof");
    assert_eq!(state.cosigned.as_ref().unwrap().tree_size, state.tree_size);
    assert!(state.fork.is_none());
    // Every checkpoint co-signed keeps its cosignatures.
    for size in sizes {
        let (note, _, cosignatures) = served_checkpoint(&app, &format!("?tree_size={size}")).await;
        assert_eq!(cosignatures, 2);
        assert!(
            require_cosignatures(&note, &[first.key.clone(), second.key.clone()], 2, None).is_ok()
        );
    }
}

/// The note without its signature lines' block: its body.
fn body(note: &str) -> String {
    split_signed_note(note).unwrap().0.to_owned()
}

/// `ledger witness --once` for this witness: its exit code and what it printed. Run as a child
/// the test's runtime awaits, so the service in this process goes on answering it.
async fn witness_command(app: &TestApp, witness: &Witness) -> (i32, String) {
    let key_file = witness.folder.path().join("witness-key.pem");
    if !key_file.exists() {
        ledger::signing::write_pem(&key_file, &witness.config.witness_key).unwrap();
    }
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["witness", "--once", "--fresh", "--ledger", "main"])
        .arg("--url")
        .arg(&app.address)
        .arg("--api-key")
        .arg(&app.tokens.auditor)
        .arg("--log-key")
        .arg(witness.folder.path().join("log-keys.json"))
        .arg("--witness-key")
        .arg(&key_file)
        .arg("--name")
        .arg(&witness.config.name)
        .arg("--state")
        .arg(witness.state_path())
        .env("LEDGER_LOG_FORMAT", "text")
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), printed)
}

#[tokio::test]
async fn a_checkpoint_re_signed_with_another_root_for_a_size_seen_is_a_fork_refused_with_evidence()
{
    let app = service().await;
    let accounts = ledger(&app).await;
    transfers(&app, accounts, 3).await;
    let library = witness(&app, "witness.example/library").await;
    let command = witness(&app, "witness.example/command").await;
    let (size, _, _) = cosigned(library.round().await);
    let (code, printed) = witness_command(&app, &command).await;
    assert_eq!(code, 0, "{printed}");
    let honest = load_state(library.state_path()).unwrap().unwrap().note;

    // The key holder rewrites history: the checkpoint of that size, re-signed over another root.
    let forged = sign_checkpoint_at(
        "ledger/main",
        size,
        &Hash32::sha256(b"another history"),
        Timestamp::from_unix_micros(ledger::writer::now().unix_micros()),
        &log_key(),
    )
    .unwrap();
    tamper(
        &app,
        &format!(
            "DELETE FROM checkpoints WHERE tree_size = {size}; INSERT INTO checkpoints \
             (ledger_id, tree_size, root_hash, note, key_id, issued_at) SELECT id, {size}, \
             sha256('another history'), '{forged}', '{}', now() FROM ledgers WHERE name = 'main'",
            ledger::audit::export::key_id(&log_key().verifying_key())
        ),
    )
    .await;

    let Err(WitnessError::Fork { reason, evidence }) = library.round().await else {
        panic!("the witness must see the fork");
    };
    assert!(
        reason.contains(&format!("two roots for tree size {size}")),
        "{reason}"
    );
    assert_eq!(evidence.len(), 2, "{evidence:?}");
    let kept = std::fs::read_to_string(&evidence[0]).unwrap();
    let served = std::fs::read_to_string(&evidence[1]).unwrap();
    assert_eq!(kept, honest, "the note it had co-signed");
    assert_eq!(body(&served), body(&forged), "the note served now");
    for note in [&kept, &served] {
        assert_eq!(Checkpoint::from_note_text(&body(note)).unwrap().size, size);
        assert!(
            ledger::witness::open_log_checkpoint(
                note,
                "ledger/main",
                &library.config.log_keys.keys
            )
            .is_ok(),
            "both are signed by the log's key: the evidence proves the fork"
        );
    }
    // Nothing was co-signed, and the witness keeps refusing until an operator looks.
    let state = load_state(library.state_path()).unwrap().unwrap();
    assert!(state.fork.is_some());
    assert_eq!((state.tree_size, state.note), (size, honest));
    assert!(matches!(
        library.round().await,
        Err(WitnessError::Fork { .. })
    ));
    let (_, _, cosignatures) = served_checkpoint(&app, "").await;
    assert_eq!(
        cosignatures, 2,
        "the honest cosignatures, which do not verify over the forged body"
    );
    let (note, _, _) = served_checkpoint(&app, "").await;
    assert!(require_cosignatures(&note, std::slice::from_ref(&library.key), 1, None).is_err());

    // The command exits with the fork's own code and keeps the evidence too.
    let (code, printed) = witness_command(&app, &command).await;
    assert_eq!(code, 3, "{printed}");
    assert!(printed.contains("FORK"), "{printed}");
    let evidence_files = std::fs::read_dir(command.folder.path())
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".fork-")
        })
        .count();
    assert_eq!(evidence_files, 2);
}

#[tokio::test]
async fn a_consistency_proof_that_fails_is_a_fork_refused_with_evidence() {
    let app = service().await;
    let accounts = ledger(&app).await;
    transfers(&app, accounts, 2).await;
    let witness = witness(&app, "witness.example/w").await;
    let (size, _, _) = cosigned(witness.round().await);
    transfers(&app, accounts, 3).await;
    // The stored history after the size the witness saw is rewritten: the proofs the service
    // computes from it no longer join the root the witness kept to the root signed now.
    tamper(
        &app,
        &format!(
            "UPDATE journal SET hash = sha256('rewritten') WHERE seq = {}",
            size + 1
        ),
    )
    .await;
    let Err(WitnessError::Fork { reason, evidence }) = witness.round().await else {
        panic!("the witness must refuse");
    };
    assert!(reason.contains("consistency proof"), "{reason}");
    assert_eq!(evidence.len(), 3, "both notes and the proof: {evidence:?}");
    let proof: Value =
        serde_json::from_str(&std::fs::read_to_string(&evidence[2]).unwrap()).unwrap();
    assert_eq!(proof["from_size"], size);
    let state = load_state(witness.state_path()).unwrap().unwrap();
    assert_eq!(
        state.tree_size, size,
        "the kept checkpoint stays the last one verified"
    );
    assert!(state.fork.is_some());
}

#[tokio::test]
async fn the_service_serves_the_co_signed_note_and_clients_count_only_the_witnesses_they_trust() {
    let app = service().await;
    let accounts = ledger(&app).await;
    transfers(&app, accounts, 2).await;
    let (first, second) = (
        witness(&app, "witness.example/one").await,
        witness(&app, "witness.example/two").await,
    );
    cosigned(first.round().await);
    cosigned(second.round().await);
    let (note, _, cosignatures) = served_checkpoint(&app, "").await;
    assert_eq!(cosignatures, 2);
    let (one, two) = (first.key.clone(), second.key.clone());
    let unknown = WitnessKey::new(
        "witness.example/unknown",
        SigningKey::from_bytes(&[9; 32]).verifying_key(),
    )
    .unwrap();
    assert!(require_cosignatures(&note, &[one.clone(), two.clone()], 2, None).is_ok());
    assert_eq!(
        require_cosignatures(&note, std::slice::from_ref(&one), 2, None),
        Err(CosignatureError::TooFew {
            valid: 1,
            required: 2
        })
    );
    assert_eq!(
        require_cosignatures(&note, &[one.clone(), unknown.clone()], 2, None),
        Err(CosignatureError::TooFew {
            valid: 1,
            required: 2
        })
    );

    // The same check with ledger-verify, offline, from files.
    let folder = tempfile::tempdir().unwrap();
    let note_file = folder.path().join("checkpoint.txt");
    std::fs::write(&note_file, &note).unwrap();
    let keys = log_keys_file(&app, folder.path()).await;
    let verify = |witnesses: &[&WitnessKey], extra: &[&str]| -> (i32, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ledger-verify"));
        command
            .arg("checkpoint")
            .arg(&note_file)
            .arg("--public-key")
            .arg(&keys);
        for witness in witnesses {
            command.arg("--witness").arg(witness.to_vkey());
        }
        let output = command.args(extra).output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let (code, printed) = verify(&[&one, &two], &["--min-cosignatures", "2"]);
    assert_eq!(code, 0, "{printed}");
    assert!(
        printed.starts_with("VALID checkpoint ledger/main"),
        "{printed}"
    );
    assert!(
        printed.contains("2 of 2 witness key(s) co-signed"),
        "{printed}"
    );
    let (code, printed) = verify(&[&one, &unknown], &["--min-cosignatures", "2"]);
    assert_eq!(code, 1, "{printed}");
    assert!(
        printed.starts_with("INVALID too_few_cosignatures"),
        "{printed}"
    );
    assert_eq!(verify(&[&one, &unknown], &["--min-cosignatures", "1"]).0, 0);
    let (code, printed) = verify(&[&one], &["--min-cosignatures", "2"]);
    assert_eq!(code, 2, "one key can never make two: {printed}");
    let (code, printed) = verify(&[&one, &two], &["--json"]);
    assert_eq!(code, 0, "{printed}");
    let report: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(
        (report["verified"].clone(), report["required"].clone()),
        (json!(true), json!(2))
    );
    // Signed by another log key: refused whatever the witnesses say.
    let other_log = folder.path().join("other.pem");
    std::fs::write(
        &other_log,
        ledger::signing::public_key_pem(&SigningKey::from_bytes(&[1; 32]).verifying_key()),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ledger-verify"))
        .arg("checkpoint")
        .arg(&note_file)
        .arg("--public-key")
        .arg(&other_log)
        .arg("--witness")
        .arg(one.to_vkey())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("checkpoint_invalid"));
}

async fn post_cosignature(app: &TestApp, witness_key: &str, note: &str) -> crate::helpers::Reply {
    app.request("POST", "/v1/ledgers/main/checkpoint/cosignatures")
        .json(&json!({ "witness_key": witness_key, "note": note }))
        .token(&app.tokens.auditor)
        .send()
        .await
}

#[tokio::test]
async fn a_cosignature_is_kept_once_and_only_over_a_checkpoint_the_service_signed() {
    let app = service().await;
    let accounts = ledger(&app).await;
    transfers(&app, accounts, 1).await;
    let reply = app.get("/v1/ledgers/main/checkpoint?fresh=true").await;
    let note = reply.text;
    let key = SigningKey::from_bytes(&[7; 32]);
    let witness = WitnessKey::new("witness.example/direct", key.verifying_key()).unwrap();
    let now = ledger::witness::unix_now();
    let (cosigned, cosignature) = cosign_note(&note, witness.name(), &key, now).unwrap();

    let first = post_cosignature(&app, &witness.to_vkey(), &cosigned).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.body["cosignature"], cosignature.line());
    assert_eq!(first.body["witness_key"], witness.to_vkey());
    let again = post_cosignature(&app, &witness.to_vkey(), &cosigned).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body, first.body);
    // A later cosignature by the same key of the same checkpoint: the first one stays.
    let (later, _) = cosign_note(&note, witness.name(), &key, now + 1).unwrap();
    let kept = post_cosignature(&app, &witness.to_vkey(), &later).await;
    assert_eq!((kept.status, &kept.body), (StatusCode::OK, &first.body));
    let (served, _, count) = served_checkpoint(&app, "").await;
    assert_eq!(count, 1);
    assert_eq!(served, cosigned, "the note, then the one cosignature kept");
    // With an Idempotency-Key, a retry replays.
    for _ in 0..2 {
        let reply = app
            .request("POST", "/v1/ledgers/main/checkpoint/cosignatures")
            .json(&json!({ "witness_key": witness.to_vkey(), "note": cosigned }))
            .token(&app.tokens.auditor)
            .idempotency_key("cosign-once")
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }

    // Over a body the service never signed (same size, another root), by the same witness.
    let forged = sign_checkpoint_at(
        "ledger/main",
        Checkpoint::from_note_text(&body(&note)).unwrap().size,
        &Hash32::sha256(b"elsewhere"),
        Timestamp::from_unix_micros(0),
        &log_key(),
    )
    .unwrap();
    let (forged_cosigned, _) = cosign_note(&forged, witness.name(), &key, now).unwrap();
    let reply = post_cosignature(&app, &witness.to_vkey(), &forged_cosigned).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_checkpoint"),
        "{}",
        reply.text
    );
    // A line that does not verify, a witness key without a line, a cosignature from the future.
    let other = WitnessKey::new(
        "witness.example/other",
        SigningKey::from_bytes(&[8; 32]).verifying_key(),
    )
    .unwrap();
    let reply = post_cosignature(&app, &other.to_vkey(), &cosigned).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "cosignature_missing"),
        "{}",
        reply.text
    );
    let mut flipped = cosignature.clone();
    flipped.signature[0] ^= 1;
    let tampered = cosigned.replacen(&cosignature.line(), &flipped.line(), 1);
    assert_ne!(tampered, cosigned);
    let reply = post_cosignature(&app, &witness.to_vkey(), &tampered).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "cosignature_invalid"),
        "{}",
        reply.text
    );
    let (future, _) = cosign_note(
        &note,
        other.name(),
        &SigningKey::from_bytes(&[8; 32]),
        now + 3_600,
    )
    .unwrap();
    let reply = post_cosignature(&app, &other.to_vkey(), &future).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "cosignature_invalid"),
        "{}",
        reply.text
    );
    // Malformed input is a 400.
    for (vkey, note) in [
        ("not a vkey", cosigned.as_str()),
        (witness.to_vkey().as_str(), "not a note"),
    ] {
        let reply = post_cosignature(&app, vkey, note).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "invalid_field"),
            "{}",
            reply.text
        );
    }
    let (_, _, count) = served_checkpoint(&app, "").await;
    assert_eq!(count, 1, "nothing refused was kept");
    let reply = app.get("/v1/ledgers/main/checkpoint?tree_size=999").await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "checkpoint_not_found")
    );
}
