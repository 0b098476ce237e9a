//! The worked example of docs/AUDIT_FORMAT.md, rebuilt from the code: the document may not drift
//! from what the service writes. `PRINT_AUDIT_EXAMPLE=1 cargo test --test audit_format --
//! --nocapture` prints the section to paste after a deliberate format change (and the lists of
//! limits and of ISO 4217 codes, which the document must state as the code does).

use ed25519_dalek::SigningKey;
use ledger::audit::checkpoint::{sign_checkpoint_at, split_signed_note};
use ledger::audit::cosignature::{
    cosign_note, require_cosignatures, signed_message, Cosignature, WitnessKey,
};
use ledger::audit::export::{self, AccountBalance, ContentHasher, Header, Line, Manifest};
use ledger::audit::merkle::{self, MerkleFrontier};
use ledger::audit::{ChainHead, JournalEvent, Provenance};
use ledger::domain::money::parse_amount;
use ledger::domain::*;
use uuid::Uuid;

const ORIGIN: &str = "ledger/demo";

/// `micros` after the worked example's origin (the example fixes it byte for byte).
fn at_micros(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_795_000_000_000_000 + micros)
}

fn account(n: u128, code: &str, side: NormalSide) -> Command {
    Command::OpenAccount(NewAccount {
        id: AccountId::new(Uuid::from_u128(0xa000 + n)),
        code: AccountCode::parse(code).unwrap(),
        currency: Currency::iso("EUR").unwrap(),
        normal_side: side,
        constraint: BalanceConstraint::None,
        metadata: Metadata::default(),
    })
}

/// A ledger `demo`: genesis, two accounts, one transfer of 10.50 EUR; and its signed export.
fn example() -> (SigningKey, Vec<JournalEvent>, Vec<Vec<u8>>) {
    let key = SigningKey::from_bytes(&[42; 32]);
    let name = LedgerName::parse("demo").unwrap();
    let provenance = Provenance {
        actor: "0190e7a4-0000-7000-8000-000000000001".into(),
        request_id: Some("req-1".into()),
        idempotency_key: Some("key-1".into()),
    };
    let (mut book, genesis) = Book::genesis(
        NewLedger {
            name: name.clone(),
            assets: vec![],
            metadata: Metadata::default(),
        },
        at_micros(0),
    )
    .unwrap();
    let mut chain = ChainHead::GENESIS;
    let mut events = vec![chain.seal(&name, &genesis, &provenance)];
    let transfer = Command::CreateTransfer(NewTransfer {
        id: TransferId::new(Uuid::from_u128(0xb001)),
        debit_account_id: AccountId::new(Uuid::from_u128(0xa001)),
        credit_account_id: AccountId::new(Uuid::from_u128(0xa002)),
        amount: parse_amount("10.5", 2).unwrap(),
        currency: CurrencyCode::parse("EUR").unwrap(),
        code: None,
        reference: Some(Reference::parse("inv-7").unwrap()),
        description: None,
        metadata: Metadata::default(),
        pending: false,
        timeout_seconds: None,
        reverses: None,
    });
    for (n, command) in [
        account(1, "world", NormalSide::Debit),
        account(2, "alice", NormalSide::Credit),
        transfer,
    ]
    .iter()
    .enumerate()
    {
        for applied in book
            .execute(command, at_micros(1_000 * (n as i64 + 1)))
            .unwrap()
        {
            events.push(chain.seal(&name, &applied, &provenance));
        }
    }
    let mut frontier = MerkleFrontier::new();
    events
        .iter()
        .for_each(|event| frontier.append_event_hash(&event.hash).unwrap());
    let to_seq = events.len() as u64;
    let mut lines = vec![Line::Header(Header {
        ledger: name.clone(),
        origin: ORIGIN.into(),
        assets: vec![],
        from_seq: 1,
        to_seq,
    })
    .encode()];
    lines.extend(
        events
            .iter()
            .map(|event| Line::Event(event.clone()).encode()),
    );
    lines.push(
        Line::Checkpoint {
            tree_size: to_seq,
            // Signed as the service signs it: with the time of signing (after the last event).
            note: sign_checkpoint_at(ORIGIN, to_seq, &frontier.root(), at_micros(4_000), &key)
                .unwrap(),
        }
        .encode(),
    );
    let mut accounts: Vec<&Account> = book.accounts().collect();
    accounts.sort_by_key(|account| account.id);
    lines.extend(
        accounts
            .iter()
            .map(|account| Line::Balance(AccountBalance::of(account)).encode()),
    );
    let mut content = ContentHasher::new();
    lines.iter().for_each(|line| content.add_line(line));
    let manifest = Line::Manifest(Manifest {
        ledger: name,
        origin: ORIGIN.into(),
        from_seq: 1,
        to_seq,
        events: events.len() as u64,
        balances: accounts.len() as u64,
        lines: content.lines(),
        content_sha256: content.finish(),
        key_id: export::key_id(&key.verifying_key()),
        signed_at: None,
    })
    .encode();
    let signature = Line::Signature(export::sign_manifest(&manifest, &key)).encode();
    lines.push(manifest);
    lines.push(signature);
    (key, events, lines)
}

/// The witness of the example: Ed25519 seed 7 repeated, its name, and when it co-signed.
fn witness() -> (SigningKey, &'static str, u64) {
    (
        SigningKey::from_bytes(&[7; 32]),
        "witness.example/w1",
        1_795_000_010,
    )
}

/// The example's checkpoint as the service serves it once the witness co-signed it.
fn cosigned_checkpoint(lines: &[Vec<u8>]) -> (String, Cosignature) {
    let checkpoint: serde_json::Value = serde_json::from_slice(&lines[5]).unwrap();
    let note = checkpoint["note"].as_str().unwrap();
    let (key, name, time) = witness();
    cosign_note(note, name, &key, time).unwrap()
}

fn section() -> String {
    use base64::Engine;
    let (key, events, lines) = example();
    let (witness_key, witness_name, witness_time) = witness();
    let witness = WitnessKey::new(witness_name, witness_key.verifying_key()).unwrap();
    let (cosigned, cosignature) = cosigned_checkpoint(&lines);
    let (note_text, _) = split_signed_note(&cosigned).unwrap();
    let message = String::from_utf8(signed_message(note_text, witness_time)).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(cosignature.payload_base64())
        .unwrap();
    let transfer = &events[3];
    let body = String::from_utf8(transfer.canonical_body()).unwrap();
    let text = |line: &Vec<u8>| String::from_utf8(line.clone()).unwrap();
    format!(
        "### The example\n\n\
         The signing key is the Ed25519 key whose 32-byte seed is 42 repeated (`0x2a…2a`); its \
         public key is `{public}` (base64), so its key id is `{key_id}`.\n\n\
         The transfer event (seq 4) without its `hash`, in JCS form:\n\n```\n{body}\n```\n\n\
         Its SHA-256, the event's `hash`: `{hash}`. Its leaf hash: `{leaf}`. The tree of the four \
         events has the root `{root}`; the checkpoint's note verifier key is `{vkey}`.\n\n\
         The whole export, one line each:\n\n```\n{export}\n```\n\n\
         The witness `{witness_name}` (§3.1) has the Ed25519 key whose seed is 7 repeated \
         (`0x07…07`); its verifier key is `{witness_vkey}` (key ID `{witness_key_id}`). At \
         {witness_time} seconds since the epoch it co-signs the checkpoint above, signing these \
         bytes (the header line, the time line, the checkpoint's body):\n\n```\n{message}```\n\n\
         Its signature line's payload (key ID ‖ timestamp ‖ signature), in hex: \
         `{payload}`. The checkpoint as `GET /v1/ledgers/demo/checkpoint` then serves it:\n\n\
         ```\n{cosigned}```\n",
        public = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes()),
        key_id = export::key_id(&key.verifying_key()),
        hash = transfer.hash.to_hex(),
        leaf = merkle::leaf_hash(&transfer.hash).to_hex(),
        root = {
            let mut frontier = MerkleFrontier::new();
            events
                .iter()
                .for_each(|event| frontier.append_event_hash(&event.hash).unwrap());
            frontier.root().to_hex()
        },
        vkey =
            ledger::audit::checkpoint::verifier_key_string(ORIGIN, &key.verifying_key()).unwrap(),
        export = lines.iter().map(text).collect::<Vec<_>>().join("\n"),
        witness_vkey = witness.to_vkey(),
        witness_key_id = hex::encode(witness.key_id()),
        payload = hex::encode(payload),
    )
}

#[test]
fn the_worked_example_in_audit_format_is_what_the_code_writes() {
    let section = section();
    if std::env::var("PRINT_AUDIT_EXAMPLE").is_ok() {
        println!("{section}");
        return;
    }
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/AUDIT_FORMAT.md"))
        .unwrap();
    assert!(
        doc.contains(&section),
        "docs/AUDIT_FORMAT.md's example is stale: PRINT_AUDIT_EXAMPLE=1 cargo test --test \
         audit_format -- --nocapture"
    );
}

#[test]
fn the_worked_example_verifies() {
    let (key, _, lines) = example();
    let report = ledger::audit::verify::verify_export(
        lines.into_iter().map(Ok),
        &key.verifying_key(),
        &mut |_| {},
    )
    .expect("the example verifies");
    assert_eq!(
        (report.events, report.accounts, report.checkpoint_size),
        (4, 2, 4)
    );
}

#[test]
fn the_worked_example_s_cosignature_verifies_for_the_log_and_the_witness() {
    let (key, _, lines) = example();
    let (cosigned, cosignature) = cosigned_checkpoint(&lines);
    let log = ledger::audit::checkpoint::NoteVerifier::new(ORIGIN, key.verifying_key()).unwrap();
    assert!(ledger::audit::checkpoint::open_checkpoint(&cosigned, ORIGIN, &[log]).is_ok());
    let (witness_key, name, time) = witness();
    let witness = WitnessKey::new(name, witness_key.verifying_key()).unwrap();
    let check = require_cosignatures(&cosigned, &[witness], 1, None).unwrap();
    assert_eq!(check.cosigned_by[0].timestamp, time);
    assert_eq!(cosignature.timestamp, time);
    // The bytes by hand: the signature is over the header, the time line and the body.
    let (text, _) = split_signed_note(&cosigned).unwrap();
    let message = format!("cosignature/v1\ntime {time}\n{text}");
    let signature = ed25519_dalek::Signature::from_bytes(&cosignature.signature);
    assert!(witness_key
        .verifying_key()
        .verify_strict(message.as_bytes(), &signature)
        .is_ok());
}

#[test]
fn the_worked_example_hashes_as_the_document_says() {
    let (_, events, _) = example();
    for event in &events {
        let mut body = event.to_json();
        body.as_object_mut().unwrap().remove("hash");
        let bytes = serde_json_canonicalizer::to_vec(&body).unwrap();
        assert_eq!(
            ledger::audit::Hash32::sha256(&bytes),
            event.hash,
            "seq {}",
            event.seq
        );
    }
}

fn audit_format() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/AUDIT_FORMAT.md")).unwrap()
}

/// The line of docs/AUDIT_FORMAT.md §2.1 for a limit.
fn limit_line(limit: &ledger::domain::limits::Limit) -> String {
    format!("- `{}`: {}.", limit.name, limit.rule)
}

#[test]
fn the_format_lists_every_limit_of_the_core_as_the_code_states_it() {
    if std::env::var("PRINT_AUDIT_EXAMPLE").is_ok() {
        for limit in ledger::domain::limits::ALL {
            println!("{}", limit_line(limit));
        }
        return;
    }
    let doc = audit_format();
    let missing: Vec<String> = ledger::domain::limits::ALL
        .iter()
        .map(|limit| limit_line(limit))
        .filter(|line| !doc.contains(line.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/AUDIT_FORMAT.md §2.1 must list these limits, one line each:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_format_lists_the_iso_4217_table_of_the_code() {
    if std::env::var("PRINT_AUDIT_EXAMPLE").is_ok() {
        for (scale, codes) in &ledger::domain::money::ISO_4217_TABLE {
            println!("- {scale} decimals: {}.", codes.join(", "));
        }
        return;
    }
    let doc = audit_format();
    assert!(doc.contains(ledger::domain::money::ISO_4217_EDITION));
    for (scale, codes) in &ledger::domain::money::ISO_4217_TABLE {
        let line = format!("- {scale} decimals: {}.", codes.join(", "));
        assert!(
            doc.contains(&line),
            "docs/AUDIT_FORMAT.md §2.2 must list\n{line}"
        );
    }
}

#[test]
fn the_format_names_every_fault_code_of_ledger_verify() {
    let doc = audit_format();
    for code in ledger::audit::verify::ExportFaultKind::ALL_CODES {
        assert!(
            doc.contains(&format!("`{code}`")),
            "{code} is not documented"
        );
    }
}

/// Found by fuzzing: without serde_json's `float_roundtrip`, a metadata number such as
/// `123456789.123456789` was read back one ulp off, its canonical form changed, and
/// `ledger-verify` refused an honest export (`not_canonical`). The test build cannot show it
/// (a dev-dependency turns the feature on), so the feature itself is held in place here.
#[test]
fn the_service_s_json_reads_floats_back_exactly_in_every_build() {
    let manifest = include_str!("../Cargo.toml");
    let line = manifest
        .lines()
        .find(|line| line.starts_with("serde_json ="))
        .expect("serde_json is a dependency");
    assert!(line.contains("float_roundtrip"), "{line}");
    for text in ["99999999999999.529", "123456789.123456789"] {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let canonical = ledger::audit::jcs::canonical_json(&value);
        let again: serde_json::Value = serde_json::from_slice(&canonical).unwrap();
        assert_eq!(
            ledger::audit::jcs::canonical_json(&again),
            canonical,
            "{text}"
        );
    }
}
