//! The signed export verified offline (docs/AUDIT_FORMAT.md §6), without a database: journals
//! are built by the pure engine and sealed into a hash chain, exports are written line by line as
//! §5 says, then verified, tampered with, re-signed by a forger holding the key, and verified
//! again. The `ledger-verify` binary runs on files written from the same exports.

use std::path::PathBuf;
use std::process::{Command as Process, Output};
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use ledger::audit::checkpoint::{sign_checkpoint, sign_checkpoint_at};
use ledger::audit::export::{
    key_id, sign_manifest, AccountBalance, ContentHasher, ExportSignature, Header, Line, Manifest,
    Opening,
};
use ledger::audit::jcs::canonical_json;
use ledger::audit::merkle::{leaf_hash, InMemoryMerkleTree, MerkleFrontier};
use ledger::audit::replay::Replayer;
use ledger::audit::time::format_timestamp;
use ledger::audit::verify::{
    split_lines, verify_export, verify_export_with, Anchor, AnchorProof, ExportFault,
    ExportFaultKind, Report, TrustedKey, Verification,
};
use ledger::audit::{ChainHead, Hash32, JournalEvent, Provenance};
use ledger::domain::limits;
use ledger::domain::money::parse_amount;
use ledger::domain::*;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

const ORIGIN: &str = "ledger/main";
/// The API key id every client event of the journals below is caused by.
const KEY_ID: &str = "0190e7a4-0000-7000-8000-0000000000a1";

// ------------------------------------------------------------------ a journal, built purely

const WORLD: u128 = 1;
const WALLET: u128 = 2;
const SHOP: u128 = 3;
const TEMPORARY: u128 = 4;
const GOLD_MINE: u128 = 5;
const GOLD_VAULT: u128 = 6;

const FUNDING: u128 = 10;
const PARTLY_POSTED: u128 = 11;
const VOIDED: u128 = 12;
const EXPIRED: u128 = 13;
const REVERSED: u128 = 14;
const REVERSAL: u128 = 15;
const GOLD_DELIVERY: u128 = 16;
const OVERDRAFT: u128 = 17;

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn other_signing_key() -> SigningKey {
    SigningKey::from_bytes(&[43; 32])
}

fn public_key() -> VerifyingKey {
    signing_key().verifying_key()
}

#[path = "common/time.rs"]
mod time;
use time::at;

fn account_id(n: u128) -> AccountId {
    AccountId::new(Uuid::from_u128(n))
}

fn transfer_id(n: u128) -> TransferId {
    TransferId::new(Uuid::from_u128(1_000 + n))
}

fn ledger_name() -> LedgerName {
    LedgerName::parse("main").unwrap()
}

fn eur() -> Currency {
    Currency::iso("EUR").unwrap()
}

/// A custom asset, so the header's `assets` are not empty.
fn gold() -> Currency {
    Currency::new(CurrencyCode::parse("GOLD").unwrap(), 3).unwrap()
}

fn open(n: u128, code: &str, currency: Currency, constraint: BalanceConstraint) -> Command {
    Command::OpenAccount(NewAccount {
        id: account_id(n),
        code: AccountCode::parse(code).unwrap(),
        currency,
        normal_side: NormalSide::Credit,
        constraint,
        metadata: Metadata::parse(serde_json::json!({ "owner": code })).unwrap(),
    })
}

fn transfer(n: u128, debit: u128, credit: u128, amount: &str, currency: Currency) -> NewTransfer {
    NewTransfer {
        id: transfer_id(n),
        debit_account_id: account_id(debit),
        credit_account_id: account_id(credit),
        amount: parse_amount(amount, currency.scale()).unwrap(),
        currency: currency.code().clone(),
        code: None,
        reference: Some(Reference::parse(&format!("ref-{n}")).unwrap()),
        description: None,
        metadata: Metadata::default(),
        pending: false,
        timeout_seconds: None,
        reverses: None,
    }
}

fn pending(transfer: NewTransfer, timeout_seconds: u32) -> NewTransfer {
    NewTransfer {
        pending: true,
        timeout_seconds: Some(timeout_seconds),
        ..transfer
    }
}

/// What happens to the ledger, at which second: accounts with and without constraints, in two
/// currencies; transfers posted, pending then posted in part, voided, expired, reversed; one
/// refused (it would overdraw the wallet); an account frozen, unfrozen, and one closed.
fn history() -> Vec<(i64, Command)> {
    let eur_transfer = |n, debit, credit, amount| transfer(n, debit, credit, amount, eur());
    let reversal = ReversalRequest {
        id: transfer_id(REVERSAL),
        amount: Some("5.00".parse().unwrap()),
        code: None,
        reference: Some(Reference::parse("refund").unwrap()),
        description: None,
        metadata: Metadata::default(),
    };
    vec![
        (1, open(WORLD, "world", eur(), BalanceConstraint::None)),
        (
            1,
            open(
                WALLET,
                "wallet",
                eur(),
                BalanceConstraint::DebitsMustNotExceedCredits,
            ),
        ),
        (1, open(SHOP, "shop", eur(), BalanceConstraint::None)),
        (
            1,
            open(TEMPORARY, "temporary", eur(), BalanceConstraint::None),
        ),
        (
            1,
            open(GOLD_MINE, "gold:mine", gold(), BalanceConstraint::None),
        ),
        (
            1,
            open(
                GOLD_VAULT,
                "gold:vault",
                gold(),
                BalanceConstraint::CreditsMustNotExceedDebits,
            ),
        ),
        (
            2,
            Command::CreateTransfer(eur_transfer(FUNDING, WORLD, WALLET, "100.00")),
        ),
        (
            3,
            Command::CreateTransfer(pending(
                eur_transfer(PARTLY_POSTED, WALLET, SHOP, "30.00"),
                3600,
            )),
        ),
        (
            4,
            Command::CreateTransfer(pending(eur_transfer(VOIDED, WALLET, SHOP, "10.00"), 3600)),
        ),
        (
            5,
            Command::CreateTransfer(pending(eur_transfer(EXPIRED, WALLET, SHOP, "5.00"), 60)),
        ),
        (
            6,
            Command::CreateTransfer(eur_transfer(REVERSED, WALLET, SHOP, "15.00")),
        ),
        (
            7,
            Command::CreateTransfer(eur_transfer(OVERDRAFT, WALLET, SHOP, "1000.00")),
        ),
        (
            8,
            Command::CreateTransfer(transfer(
                GOLD_DELIVERY,
                GOLD_VAULT,
                GOLD_MINE,
                "2.500",
                gold(),
            )),
        ),
        (9, Command::FreezeAccount(account_id(WALLET))),
        (10, Command::UnfreezeAccount(account_id(WALLET))),
        (
            20,
            Command::PostTransfer {
                id: transfer_id(PARTLY_POSTED),
                amount: Some("20.00".parse().unwrap()),
            },
        ),
        (21, Command::VoidTransfer(transfer_id(VOIDED))),
        (70, Command::ExpireTransfers(vec![transfer_id(EXPIRED)])),
        (
            71,
            Command::ReverseTransfer {
                id: transfer_id(REVERSED),
                reversal,
            },
        ),
        (72, Command::CloseAccount(account_id(TEMPORARY))),
    ]
}

/// The provenance of a client's request: the API key's id, a request id.
fn client(index: usize) -> Provenance {
    Provenance {
        actor: KEY_ID.into(),
        request_id: Some(format!("request-{index}")),
        idempotency_key: None,
    }
}

/// The journal of [`history`]: each accepted command's events sealed onto the chain.
fn journal() -> Vec<JournalEvent> {
    let name = ledger_name();
    let new_ledger = NewLedger {
        name: name.clone(),
        assets: vec![gold()],
        metadata: Metadata::default(),
    };
    let (mut book, genesis) = Book::genesis(new_ledger, at(0)).unwrap();
    let mut head = ChainHead::GENESIS;
    let mut journal = vec![head.seal(&name, &genesis, &client(0))];
    for (index, (seconds, command)) in history().into_iter().enumerate() {
        let provenance = match command {
            Command::ExpireTransfers(_) => Provenance::system(),
            _ => Provenance {
                actor: KEY_ID.into(),
                request_id: Some(format!("request-{index}")),
                idempotency_key: None,
            },
        };
        match book.execute(&command, at(seconds)) {
            Ok(events) => journal.extend(
                events
                    .iter()
                    .map(|applied| head.seal(&name, applied, &provenance)),
            ),
            Err(rejection) => {
                assert_eq!(rejection, Rejection::InsufficientFunds(account_id(WALLET)))
            }
        }
    }
    journal
}

/// The seq of the event of this type about this transfer.
fn seq_of(journal: &[JournalEvent], event_type: &str, transfer: u128) -> u64 {
    let id = transfer_id(transfer).to_string();
    journal
        .iter()
        .find(|event| {
            event.event_type == event_type
                && (event.data["id"] == id.as_str() || event.data["transfer_id"] == id.as_str())
        })
        .map(|event| event.seq)
        .unwrap_or_else(|| panic!("no {event_type} of transfer {transfer}"))
}

fn replayed(events: &[JournalEvent]) -> Book {
    let mut replayer = Replayer::new();
    for event in events {
        replayer.push(event).unwrap();
    }
    replayer.book().unwrap().clone()
}

fn accounts_in_id_order(book: &Book) -> Vec<Account> {
    let mut accounts: Vec<Account> = book.accounts().cloned().collect();
    accounts.sort_by_key(|account| account.id);
    accounts
}

/// Transfers a later event may still change: pending, or posted with something to reverse.
fn open_transfers_in_id_order(book: &Book) -> Vec<Transfer> {
    let mut transfers: Vec<Transfer> = book
        .transfers()
        .filter(|transfer| match transfer.state {
            TransferState::Pending => true,
            TransferState::Posted => transfer.reversible_amount() > Decimal::ZERO,
            _ => false,
        })
        .cloned()
        .collect();
    transfers.sort_by_key(|transfer| transfer.id);
    transfers
}

// ------------------------------------------------------------------ exports, written as §5 says

/// The export of events `from_seq..=to_seq` of `journal` (which starts at seq 1), line by line.
fn export(journal: &[JournalEvent], from_seq: u64, to_seq: u64) -> Vec<Line> {
    let key = signing_key();
    let before = &journal[..from_seq as usize - 1];
    let through = &journal[..to_seq as usize];
    let mut lines = vec![Line::Header(Header {
        ledger: ledger_name(),
        origin: ORIGIN.into(),
        assets: vec![gold()],
        from_seq,
        to_seq,
    })];
    if let Some(last) = before.last() {
        let mut merkle = MerkleFrontier::new();
        for event in before {
            merkle.append_event_hash(&event.hash).unwrap();
        }
        lines.push(Line::Opening(Opening {
            seq: last.seq,
            hash: last.hash,
            at: last.at,
            merkle,
        }));
        let book = replayed(before);
        lines.extend(
            accounts_in_id_order(&book)
                .into_iter()
                .map(Line::OpeningAccount),
        );
        lines.extend(
            open_transfers_in_id_order(&book)
                .into_iter()
                .map(Line::OpeningTransfer),
        );
    }
    lines.extend(
        journal[from_seq as usize - 1..to_seq as usize]
            .iter()
            .cloned()
            .map(Line::Event),
    );
    let leaves = through.iter().map(|event| leaf_hash(&event.hash)).collect();
    let root = InMemoryMerkleTree::from_leaf_hashes(leaves).root();
    lines.push(Line::Checkpoint {
        tree_size: to_seq,
        note: sign_checkpoint(ORIGIN, to_seq, &root, &key).unwrap(),
    });
    let book = replayed(through);
    lines.extend(
        accounts_in_id_order(&book)
            .iter()
            .map(|account| Line::Balance(AccountBalance::of(account))),
    );
    with_manifest_signed(lines, &key)
}

fn encoded(lines: &[Line]) -> Vec<Vec<u8>> {
    lines.iter().map(Line::encode).collect()
}

/// The lines of the export of `from_seq..=to_seq`, as bytes without their `\n`.
fn export_lines(journal: &[JournalEvent], from_seq: u64, to_seq: u64) -> Vec<Vec<u8>> {
    encoded(&export(journal, from_seq, to_seq))
}

fn full_export() -> Vec<Line> {
    let journal = journal();
    let to_seq = journal.len() as u64;
    export(&journal, 1, to_seq)
}

/// The lines without manifest and signature, then a new manifest over them signed by `key`.
fn with_manifest_signed(lines: Vec<Line>, key: &SigningKey) -> Vec<Line> {
    with_manifest_signed_at(lines, key, None)
}

/// The export re-signed by `key`, its manifest stating `signed_at`.
fn with_manifest_signed_at(
    lines: Vec<Line>,
    key: &SigningKey,
    signed_at: Option<Timestamp>,
) -> Vec<Line> {
    let mut lines: Vec<Line> = lines
        .into_iter()
        .filter(|line| !matches!(line, Line::Manifest(_) | Line::Signature(_)))
        .collect();
    let Line::Header(header) = lines[0].clone() else {
        panic!("the first line is the header")
    };
    let mut content = ContentHasher::new();
    for line in &lines {
        content.add_line(&line.encode());
    }
    let count = |kind: &str| lines.iter().filter(|line| line.kind() == kind).count() as u64;
    let manifest = Line::Manifest(Manifest {
        ledger: header.ledger,
        origin: header.origin,
        from_seq: header.from_seq,
        to_seq: header.to_seq,
        events: count("event"),
        balances: count("balance"),
        lines: content.lines(),
        content_sha256: content.finish(),
        key_id: key_id(&key.verifying_key()),
        signed_at,
    });
    let signature = sign_manifest(&manifest.encode(), key);
    lines.push(manifest);
    lines.push(Line::Signature(signature));
    lines
}

/// What a forger holding the signing key can do after changing lines: re-chain every event
/// (prev_hash and hash), re-sign the checkpoint over the new Merkle root, re-sign the manifest.
fn resealed(lines: Vec<Line>) -> Vec<Line> {
    let key = signing_key();
    let opening = lines.iter().find_map(|line| match line {
        Line::Opening(opening) => Some(opening.clone()),
        _ => None,
    });
    let (mut previous_hash, mut merkle) = match opening {
        Some(opening) => (opening.hash, opening.merkle),
        None => (Hash32::ZERO, MerkleFrontier::new()),
    };
    let lines = lines
        .into_iter()
        .map(|line| match line {
            Line::Event(mut event) => {
                event.prev_hash = previous_hash;
                event.hash = event.computed_hash();
                previous_hash = event.hash;
                merkle.append_event_hash(&event.hash).unwrap();
                Line::Event(event)
            }
            Line::Checkpoint { tree_size, .. } => Line::Checkpoint {
                tree_size,
                note: sign_checkpoint(ORIGIN, tree_size, &merkle.root(), &key).unwrap(),
            },
            other => other,
        })
        .collect();
    with_manifest_signed(lines, &key)
}

fn file_of(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut file = Vec::new();
    for line in lines {
        file.extend_from_slice(line);
        file.push(b'\n');
    }
    file
}

fn verify(lines: &[Vec<u8>]) -> Result<Report, ExportFault> {
    verify_export(lines.iter().cloned().map(Ok), &public_key(), &mut |_| {})
}

fn verify_lines(lines: &[Line]) -> Result<Report, ExportFault> {
    verify(&encoded(lines))
}

/// The 1-based line number of the first line matching `wanted`.
fn line_of(lines: &[Line], wanted: impl Fn(&Line) -> bool) -> u64 {
    lines.iter().position(wanted).expect("the line exists") as u64 + 1
}

fn event_seq(seq: u64) -> impl Fn(&Line) -> bool {
    move |line| matches!(line, Line::Event(event) if event.seq == seq)
}

fn balance_of(account: u128) -> impl Fn(&Line) -> bool {
    move |line| matches!(line, Line::Balance(balance) if balance.account_id == account_id(account))
}

fn event_mut(lines: &mut [Line], seq: u64) -> &mut JournalEvent {
    lines
        .iter_mut()
        .find_map(|line| match line {
            Line::Event(event) if event.seq == seq => Some(event),
            _ => None,
        })
        .expect("the event is in the export")
}

#[track_caller]
fn assert_fault(result: Result<Report, ExportFault>, code: &str, line: u64, seq: Option<u64>) {
    let fault = result.expect_err("the export must not verify");
    assert_eq!(
        (fault.code(), fault.line, fault.seq),
        (code, line, seq),
        "{fault}"
    );
}

// ------------------------------------------------------------------ valid exports

#[test]
fn a_full_export_verifies_and_its_report_names_the_range_the_root_and_the_key() {
    let journal = journal();
    let to_seq = journal.len() as u64;
    let lines = export_lines(&journal, 1, to_seq);
    let mut progress = Vec::new();
    let report = verify_export(lines.iter().cloned().map(Ok), &public_key(), &mut |bytes| {
        progress.push(bytes)
    })
    .unwrap();
    let leaves = journal.iter().map(|event| leaf_hash(&event.hash)).collect();
    assert_eq!(
        report,
        Report {
            ledger: "main".into(),
            origin: ORIGIN.into(),
            from_seq: 1,
            to_seq,
            events: to_seq,
            accounts: 6,
            merkle_root: InMemoryMerkleTree::from_leaf_hashes(leaves).root(),
            checkpoint_size: to_seq,
            key_id: key_id(&public_key()),
            lines: lines.len() as u64,
            anchors: vec![],
        }
    );
    assert_eq!(to_seq, 20, "one command of the history was refused");
    assert_eq!(progress.len(), lines.len(), "progress after every line");
    assert_eq!(progress.last(), Some(&(file_of(&lines).len() as u64)));
    assert!(report
        .to_string()
        .starts_with("ledger main events 1..=20 (20 events, 6 accounts), merkle root "));
}

#[test]
fn a_partial_export_verifies_from_its_signed_opening_state() {
    let journal = journal();
    let last = journal.len() as u64;
    // At the opening, transfers are pending (to be posted, voided, expired) and posted (to be
    // reversed): the replay continues them from the opening lines alone.
    let from_seq = seq_of(&journal, "transfer_posted", PARTLY_POSTED);
    for (from_seq, to_seq) in [(from_seq, last), (from_seq, last - 2), (2, 2), (last, last)] {
        let lines = export(&journal, from_seq, to_seq);
        assert_eq!(lines[1].kind(), "opening");
        let report = verify_lines(&lines).unwrap();
        assert_eq!(
            (report.from_seq, report.to_seq, report.events),
            (from_seq, to_seq, to_seq - from_seq + 1)
        );
    }
    let lines = export(&journal, from_seq, last);
    let open_transfers = lines
        .iter()
        .filter(|line| line.kind() == "opening_transfer")
        .count();
    assert_eq!(open_transfers, 6, "3 pending, 3 posted and reversible");
}

// ------------------------------------------------------------------ tampering

#[test]
fn an_event_with_a_changed_amount_fails_with_hash_mismatch_at_its_seq() {
    let journal = journal();
    let seq = seq_of(&journal, "transfer_created", FUNDING);
    let mut lines = full_export();
    event_mut(&mut lines, seq).data["amount"] = serde_json::json!("1000.00");
    assert_fault(verify_lines(&lines), "hash_mismatch", seq + 1, Some(seq));
}

#[test]
fn a_deleted_event_is_found_at_the_seq_that_follows_it() {
    let mut lines = full_export();
    let line = line_of(&lines, event_seq(9));
    lines.remove(line as usize - 1);
    assert_fault(verify_lines(&lines), "seq_out_of_order", line, Some(10));
}

#[test]
fn two_swapped_events_are_found_where_the_order_breaks() {
    let mut lines = full_export();
    let line = line_of(&lines, event_seq(9));
    lines.swap(line as usize - 1, line as usize);
    assert_fault(verify_lines(&lines), "seq_out_of_order", line, Some(10));
}

#[test]
fn a_rechained_and_re_signed_illegal_event_is_refused_by_the_replay() {
    let journal = journal();
    // The wallet is funded with 1.00 instead of 100.00: its later pending debit of 30.00 would
    // overdraw it. A forger with the key re-chains and re-signs everything after.
    let mut lines = full_export();
    let funding = seq_of(&journal, "transfer_created", FUNDING);
    event_mut(&mut lines, funding).data["amount"] = serde_json::json!("1.00");
    let forged = resealed(lines);
    let events: Vec<&JournalEvent> = forged
        .iter()
        .filter_map(|line| match line {
            Line::Event(event) => Some(event),
            _ => None,
        })
        .collect();
    for pair in events.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "the forged chain holds");
        assert_eq!(pair[1].hash, pair[1].computed_hash());
    }
    let overdraft = seq_of(&journal, "transfer_created", PARTLY_POSTED);
    let fault = verify_lines(&forged).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line, fault.seq),
        ("illegal_event", overdraft + 1, Some(overdraft)),
        "{fault}"
    );
    assert_eq!(
        fault.kind,
        ExportFaultKind::IllegalEvent(Rejection::InsufficientFunds(account_id(WALLET)))
    );
    assert!(fault.detail.starts_with("insufficient_funds: "), "{fault}");
}

#[test]
fn a_changed_balance_line_is_a_balance_mismatch_even_when_re_signed() {
    let mut lines = full_export();
    let line = line_of(&lines, balance_of(WALLET));
    let Line::Balance(balance) = &mut lines[line as usize - 1] else {
        unreachable!()
    };
    balance.balances.posted_credits = "1000.00".parse().unwrap();
    let fault = verify_lines(&resealed(lines)).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line, fault.seq),
        ("balance_mismatch", line, None)
    );
    assert!(
        fault
            .detail
            .contains("posted_credits is 1000.00 in the export, 105.00 by replay"),
        "{fault}"
    );
}

#[test]
fn a_balance_line_at_another_scale_is_a_balance_mismatch() {
    let mut lines = full_export();
    let line = line_of(&lines, balance_of(WALLET));
    let Line::Balance(balance) = &mut lines[line as usize - 1] else {
        unreachable!()
    };
    balance.balances.posted_credits = "100.0".parse().unwrap();
    assert_fault(
        verify_lines(&resealed(lines)),
        "balance_mismatch",
        line,
        None,
    );
}

#[test]
fn a_missing_or_an_extra_balance_line_is_found_even_when_re_signed() {
    let lines = full_export();
    let line = line_of(&lines, balance_of(WALLET));
    let mut without_wallet = lines.clone();
    without_wallet.remove(line as usize - 1);
    assert_fault(
        verify_lines(&resealed(without_wallet)),
        "missing_balance",
        line,
        None,
    );

    let mut with_a_stranger = lines.clone();
    let Line::Balance(mut stranger) = lines[line as usize - 1].clone() else {
        unreachable!()
    };
    stranger.account_id = account_id(WALLET + 100);
    let last_balance = line_of(&lines, |line| line.kind() == "manifest") - 1;
    with_a_stranger.insert(last_balance as usize, Line::Balance(stranger));
    assert_fault(
        verify_lines(&resealed(with_a_stranger)),
        "unexpected_balance",
        last_balance + 1,
        None,
    );

    let mut repeated = lines.clone();
    repeated.insert(line as usize, lines[line as usize - 1].clone());
    assert_fault(
        verify_lines(&resealed(repeated)),
        "unexpected_balance",
        line + 1,
        None,
    );
}

#[test]
fn a_manifest_signed_with_another_key_is_refused() {
    let lines = full_export();
    let manifest_line = lines.len() as u64 - 1;

    let resigned_manifest = with_manifest_signed(lines.clone(), &other_signing_key());
    assert_fault(
        verify_lines(&resigned_manifest),
        "unknown_key",
        manifest_line,
        None,
    );

    let mut resigned_signature = lines.clone();
    let manifest = resigned_signature[manifest_line as usize - 1].encode();
    *resigned_signature.last_mut().unwrap() =
        Line::Signature(sign_manifest(&manifest, &other_signing_key()));
    assert_fault(
        verify_lines(&resigned_signature),
        "unknown_key",
        manifest_line + 1,
        None,
    );

    let mut wrong_key_under_our_id = lines;
    *wrong_key_under_our_id.last_mut().unwrap() = Line::Signature(ExportSignature {
        key_id: key_id(&public_key()),
        signature: other_signing_key().sign(&manifest).to_bytes(),
    });
    assert_fault(
        verify_lines(&wrong_key_under_our_id),
        "bad_signature",
        manifest_line + 1,
        None,
    );
}

#[test]
fn a_truncated_export_is_reported_as_truncated() {
    let lines = export_lines(&journal(), 1, 20);
    let without_signature = &lines[..lines.len() - 1];
    assert_fault(
        verify(without_signature),
        "truncated",
        lines.len() as u64,
        None,
    );

    let file = file_of(&lines);
    let verify_file = |bytes: &[u8]| verify_export(split_lines(bytes), &public_key(), &mut |_| {});
    let without_final_newline = &file[..file.len() - 1];
    assert_fault(
        verify_file(without_final_newline),
        "truncated",
        lines.len() as u64,
        None,
    );
    let cut_in_an_event = &file[..file_of(&lines[..5]).len() + 30];
    assert_fault(verify_file(cut_in_an_event), "truncated", 6, None);
    assert_fault(verify_file(b""), "truncated", 1, None);
}

#[test]
fn a_line_with_an_extra_space_is_not_canonical() {
    let mut lines = export_lines(&journal(), 1, 20);
    lines[4].insert(1, b' ');
    assert_fault(verify(&lines), "not_canonical", 5, None);
}

#[test]
fn a_checkpoint_signed_over_a_wrong_root_is_a_merkle_root_mismatch() {
    let lines = full_export();
    let line = line_of(&lines, |line| line.kind() == "checkpoint");
    let wrong_root = Hash32::sha256(b"another tree");
    let resigned_with = |note: String| {
        let mut lines = lines.clone();
        lines[line as usize - 1] = Line::Checkpoint {
            tree_size: 20,
            note,
        };
        verify_lines(&with_manifest_signed(lines, &signing_key()))
    };
    let valid_signature = sign_checkpoint(ORIGIN, 20, &wrong_root, &signing_key()).unwrap();
    assert_fault(
        resigned_with(valid_signature),
        "merkle_root_mismatch",
        line,
        None,
    );
    let root = {
        let leaves = journal()
            .iter()
            .map(|event| leaf_hash(&event.hash))
            .collect();
        InMemoryMerkleTree::from_leaf_hashes(leaves).root()
    };
    let other_key = sign_checkpoint(ORIGIN, 20, &root, &other_signing_key()).unwrap();
    assert_fault(resigned_with(other_key), "checkpoint_invalid", line, None);
    let other_size = sign_checkpoint(ORIGIN, 19, &root, &signing_key()).unwrap();
    assert_fault(
        resigned_with(other_size),
        "checkpoint_size_mismatch",
        line,
        None,
    );
}

#[test]
fn lines_out_of_order_are_refused_at_the_first_misplaced_line() {
    let lines = full_export();
    let checkpoint = line_of(&lines, |line| line.kind() == "checkpoint");

    let mut balance_before_checkpoint = lines.clone();
    let balance = balance_before_checkpoint.remove(checkpoint as usize);
    balance_before_checkpoint.insert(checkpoint as usize - 1, balance);
    assert_fault(
        verify_lines(&balance_before_checkpoint),
        "out_of_order",
        checkpoint,
        None,
    );

    let mut event_first = lines.clone();
    event_first.swap(0, 1);
    assert_fault(verify_lines(&event_first), "out_of_order", 1, None);

    let mut after_the_signature = encoded(&lines);
    after_the_signature.push(lines[0].encode());
    assert_fault(
        verify(&after_the_signature),
        "out_of_order",
        lines.len() as u64 + 1,
        None,
    );

    let mut opening_in_a_full_export = lines.clone();
    let journal = journal();
    let Line::Opening(opening) = export(&journal, 5, 20)[1].clone() else {
        unreachable!()
    };
    opening_in_a_full_export.insert(1, Line::Opening(opening));
    assert_fault(
        verify_lines(&opening_in_a_full_export),
        "out_of_order",
        2,
        None,
    );
}

#[test]
fn an_opening_state_breaking_an_invariant_is_refused_not_trusted() {
    let journal = journal();
    let from_seq = seq_of(&journal, "transfer_posted", PARTLY_POSTED);
    let lines = export(&journal, from_seq, 20);
    let wallet = line_of(
        &lines,
        |line| matches!(line, Line::OpeningAccount(account) if account.id == account_id(WALLET)),
    );
    let transfer = line_of(&lines, |line| line.kind() == "opening_transfer");
    let tampered = |line: u64, change: &dyn Fn(&mut Line)| {
        let mut lines = lines.clone();
        change(&mut lines[line as usize - 1]);
        verify_lines(&with_manifest_signed(lines, &signing_key()))
    };

    let overdrawn = tampered(wallet, &|line| {
        if let Line::OpeningAccount(account) = line {
            account.balances.posted_debits = "500.00".parse().unwrap();
        }
    });
    assert_fault(overdrawn, "invalid_opening", wallet, None);

    let to_itself = tampered(transfer, &|line| {
        if let Line::OpeningTransfer(transfer) = line {
            transfer.credit_account_id = transfer.debit_account_id;
        }
    });
    assert_fault(to_itself, "invalid_opening", transfer, None);

    let over_reversed = tampered(transfer, &|line| {
        if let Line::OpeningTransfer(transfer) = line {
            transfer.reversed_amount = transfer.amount + transfer.amount;
        }
    });
    assert_fault(over_reversed, "invalid_opening", transfer, None);

    let wrong_seq = tampered(2, &|line| {
        if let Line::Opening(opening) = line {
            opening.seq -= 1;
        }
    });
    assert_fault(wrong_seq, "invalid_opening", 2, None);
}

#[test]
fn a_changed_opening_hash_breaks_the_chain_at_the_first_event() {
    let journal = journal();
    let mut lines = export(&journal, 10, 20);
    if let Line::Opening(opening) = &mut lines[1] {
        opening.hash = Hash32::sha256(b"another past");
    }
    let first_event = line_of(&lines, event_seq(10));
    assert_fault(
        verify_lines(&with_manifest_signed(lines, &signing_key())),
        "prev_hash_mismatch",
        first_event,
        Some(10),
    );
}

#[test]
fn events_that_stop_early_or_run_past_the_range_are_refused() {
    let mut lines = full_export();
    let last_event = line_of(&lines, event_seq(20));
    lines.remove(last_event as usize - 1);
    assert_fault(
        verify_lines(&resealed(lines)),
        "events_missing",
        last_event,
        Some(20),
    );

    let journal = journal();
    let mut lines = export(&journal, 1, 19);
    let checkpoint = line_of(&lines, |line| line.kind() == "checkpoint");
    lines.insert(checkpoint as usize - 1, Line::Event(journal[19].clone()));
    assert_fault(
        verify_lines(&resealed(lines)),
        "seq_out_of_order",
        checkpoint,
        Some(20),
    );
}

#[test]
fn an_opening_state_that_does_not_balance_is_caught_after_the_balances_even_when_re_signed() {
    // The shop gets 1.00 out of nowhere before the range, in its opening line and in its final
    // balance alike: each account agrees with the replay, but the euro no longer balances.
    let journal = journal();
    let mut lines = export(&journal, 10, 20);
    let one_euro = Decimal::new(100, 2);
    for line in &mut lines {
        match line {
            Line::OpeningAccount(account) if account.id == account_id(SHOP) => {
                account.balances.posted_credits += one_euro;
            }
            Line::Balance(balance) if balance.account_id == account_id(SHOP) => {
                balance.balances.posted_credits += one_euro;
            }
            _ => {}
        }
    }
    let manifest = line_of(&lines, |line| line.kind() == "manifest");
    let fault = verify_lines(&resealed(lines)).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line, fault.seq),
        ("unbalanced_currency", manifest, None)
    );
    assert!(fault.detail.starts_with("EUR: posted debits "), "{fault}");
}

#[test]
fn a_change_only_the_signature_covers_is_a_content_hash_mismatch() {
    // An opening account's metadata is in no event hash and no balance line: only the
    // manifest's content hash covers it.
    let mut lines = export(&journal(), 10, 20);
    let manifest = line_of(&lines, |line| line.kind() == "manifest");
    let Line::OpeningAccount(account) = &mut lines[2] else {
        unreachable!()
    };
    account.metadata = Metadata::parse(serde_json::json!({ "owner": "someone else" })).unwrap();
    assert_fault(
        verify_lines(&lines),
        "content_hash_mismatch",
        manifest,
        None,
    );
}

#[test]
fn a_manifest_count_that_is_not_the_file_s_is_a_count_mismatch() {
    let mut lines = full_export();
    let manifest = line_of(&lines, |line| line.kind() == "manifest");
    let Line::Manifest(counts) = &mut lines[manifest as usize - 1] else {
        unreachable!()
    };
    counts.lines += 1;
    let manifest_bytes = lines[manifest as usize - 1].encode();
    *lines.last_mut().unwrap() = Line::Signature(sign_manifest(&manifest_bytes, &signing_key()));
    assert_fault(verify_lines(&lines), "count_mismatch", manifest, None);
}

// ------------------------------------------------------------------ the binary

struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("ledger-verify-test-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run(args: &[&str]) -> (i32, String) {
    let output: Output = Process::new(env!("CARGO_BIN_EXE_ledger-verify"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    (output.status.code().unwrap(), format!("{stdout}{stderr}"))
}

fn public_key_pem() -> String {
    public_key().to_public_key_pem(LineEnding::LF).unwrap()
}

fn public_key_base64() -> String {
    BASE64.encode(public_key().as_bytes())
}

fn hex_list(hashes: &[Hash32]) -> String {
    hashes
        .iter()
        .map(Hash32::to_hex)
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn the_binary_verifies_an_export_with_the_key_as_pem_or_base64() {
    let export = TempFile::new("valid.ndjson", &file_of(&export_lines(&journal(), 1, 20)));
    let pem = TempFile::new("key.pem", public_key_pem().as_bytes());
    let base64 = public_key_base64();
    for args in [
        vec!["export", export.path(), "--public-key", pem.path()],
        vec!["export", export.path(), "--public-key", &base64],
        vec![export.path(), "--public-key", &base64],
    ] {
        let (code, output) = run(&args);
        assert_eq!(code, 0, "{args:?}: {output}");
        assert!(
            output.starts_with("VERIFIED ledger main events 1..=20 (20 events, 6 accounts)"),
            "{output}"
        );
        assert!(output.contains(&format!("signed by key {}", key_id(&public_key()))));
    }
    let (code, output) = run(&[export.path(), "--public-key", &base64, "--json"]);
    assert_eq!(code, 0, "{output}");
    let report: serde_json::Value = serde_json::from_str(&output).unwrap();
    assert_eq!(report["verified"], true);
    assert_eq!(report["events"], 20);
}

#[test]
fn the_binary_reports_the_first_fault_of_a_tampered_export_and_exits_with_1() {
    let mut lines = full_export();
    event_mut(&mut lines, 8).data["amount"] = serde_json::json!("1000.00");
    let export = TempFile::new("tampered.ndjson", &file_of(&encoded(&lines)));
    let base64 = public_key_base64();
    let (code, output) = run(&["export", export.path(), "--public-key", &base64]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.starts_with("FAILED at line 9 (event seq 8): hash_mismatch: "),
        "{output}"
    );
    let (code, output) = run(&["export", export.path(), "--public-key", &base64, "--json"]);
    assert_eq!(code, 1, "{output}");
    let fault: serde_json::Value = serde_json::from_str(&output).unwrap();
    assert_eq!(
        (
            &fault["verified"],
            &fault["code"],
            &fault["line"],
            &fault["seq"]
        ),
        (
            &serde_json::json!(false),
            &serde_json::json!("hash_mismatch"),
            &serde_json::json!(9),
            &serde_json::json!(8)
        )
    );

    let other_key = BASE64.encode(other_signing_key().verifying_key().as_bytes());
    let valid = TempFile::new("valid-other-key.ndjson", &file_of(&encoded(&full_export())));
    let (code, output) = run(&[valid.path(), "--public-key", &other_key]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("checkpoint_invalid"), "{output}");
}

#[test]
fn the_binary_exits_with_2_on_a_bad_key_or_a_missing_file() {
    let export = TempFile::new("for-usage.ndjson", &file_of(&encoded(&full_export())));
    let (code, output) = run(&[export.path(), "--public-key", "not-a-key"]);
    assert_eq!(code, 2, "{output}");
    let base64 = public_key_base64();
    let (code, output) = run(&["/nonexistent/export.ndjson", "--public-key", &base64]);
    assert_eq!(code, 2, "{output}");
    let (code, output) = run(&["export", export.path()]);
    assert_eq!(code, 2, "{output}");
}

fn journal_tree() -> InMemoryMerkleTree {
    let leaves = journal()
        .iter()
        .map(|event| leaf_hash(&event.hash))
        .collect();
    InMemoryMerkleTree::from_leaf_hashes(leaves)
}

#[test]
fn the_binary_checks_inclusion_proofs_from_flags_json_and_a_checkpoint() {
    let journal = journal();
    let tree = journal_tree();
    let (seq, tree_size) = (9u64, 20u64);
    let event_hash = journal[seq as usize - 1].hash.to_hex();
    let root = tree.root_at_size(tree_size).unwrap();
    let proof = tree.inclusion_proof(seq - 1, tree_size).unwrap();
    let mut flipped = proof.clone();
    flipped[0].0[0] ^= 1;
    let inclusion = |proof: &[Hash32]| {
        let (seq, tree_size, root, proof) = (
            seq.to_string(),
            tree_size.to_string(),
            root.to_hex(),
            hex_list(proof),
        );
        run(&[
            "inclusion",
            "--event-hash",
            &event_hash,
            "--seq",
            &seq,
            "--tree-size",
            &tree_size,
            "--root",
            &root,
            "--proof",
            &proof,
        ])
    };
    let (code, output) = inclusion(&proof);
    assert_eq!(code, 0, "{output}");
    assert!(output.starts_with("VALID inclusion"), "{output}");
    let (code, output) = inclusion(&flipped);
    assert_eq!(code, 1, "{output}");
    assert!(output.starts_with("INVALID root_mismatch"), "{output}");

    let answer = serde_json::json!({
        "seq": seq,
        "tree_size": tree_size,
        "event_hash": event_hash,
        "leaf_index": seq - 1,
        "root": root.to_hex(),
        "proof": proof.iter().map(Hash32::to_hex).collect::<Vec<_>>(),
    });
    let answer = TempFile::new("inclusion.json", answer.to_string().as_bytes());
    let (code, output) = run(&["inclusion", "--json", answer.path()]);
    assert_eq!(code, 0, "{output}");

    let note = sign_checkpoint(ORIGIN, tree_size, &root, &signing_key()).unwrap();
    let checkpoint = TempFile::new("inclusion-checkpoint.txt", note.as_bytes());
    let pem = TempFile::new("inclusion-key.pem", public_key_pem().as_bytes());
    let (code, output) = run(&[
        "inclusion",
        "--event-hash",
        &event_hash,
        "--seq",
        "9",
        "--proof",
        &hex_list(&proof),
        "--checkpoint",
        checkpoint.path(),
        "--public-key",
        pem.path(),
    ]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("signed for ledger/main"), "{output}");
    let forged = sign_checkpoint(ORIGIN, tree_size, &root, &other_signing_key()).unwrap();
    let forged = TempFile::new("inclusion-forged.txt", forged.as_bytes());
    let (code, output) = run(&[
        "inclusion",
        "--json",
        answer.path(),
        "--checkpoint",
        forged.path(),
        "--public-key",
        pem.path(),
    ]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("checkpoint_invalid"), "{output}");
}

#[test]
fn the_binary_checks_consistency_proofs_from_flags_json_and_checkpoints() {
    let tree = journal_tree();
    let (from_size, to_size) = (7u64, 20u64);
    let from_root = tree.root_at_size(from_size).unwrap();
    let to_root = tree.root_at_size(to_size).unwrap();
    let proof = tree.consistency_proof(from_size, to_size).unwrap();
    let mut flipped = proof.clone();
    flipped[1].0[31] ^= 0x80;
    let consistency = |proof: &[Hash32]| {
        run(&[
            "consistency",
            "--from-size",
            &from_size.to_string(),
            "--to-size",
            &to_size.to_string(),
            "--from-root",
            &from_root.to_hex(),
            "--to-root",
            &BASE64.encode(to_root.0),
            "--proof",
            &hex_list(proof),
        ])
    };
    let (code, output) = consistency(&proof);
    assert_eq!(code, 0, "{output}");
    assert!(output.starts_with("VALID consistency"), "{output}");
    let (code, output) = consistency(&flipped);
    assert_eq!(code, 1, "{output}");
    assert!(output.starts_with("INVALID "), "{output}");
    assert!(output.contains("RFC 9162 §2.1.4.2"), "{output}");

    let answer = serde_json::json!({
        "from_size": from_size,
        "to_size": to_size,
        "from_root": from_root.to_hex(),
        "to_root": to_root.to_hex(),
        "proof": proof.iter().map(Hash32::to_hex).collect::<Vec<_>>(),
    });
    let answer = TempFile::new("consistency.json", answer.to_string().as_bytes());
    let (code, output) = run(&["consistency", "--json", answer.path()]);
    assert_eq!(code, 0, "{output}");

    let old = sign_checkpoint(ORIGIN, from_size, &from_root, &signing_key()).unwrap();
    let new = sign_checkpoint(ORIGIN, to_size, &to_root, &signing_key()).unwrap();
    let old = TempFile::new("consistency-old.txt", old.as_bytes());
    let new = TempFile::new("consistency-new.txt", new.as_bytes());
    let base64 = public_key_base64();
    let (code, output) = run(&[
        "consistency",
        "--proof",
        &hex_list(&proof),
        "--from-checkpoint",
        old.path(),
        "--checkpoint",
        new.path(),
        "--public-key",
        &base64,
    ]);
    assert_eq!(code, 0, "{output}");
    let (code, output) = run(&[
        "consistency",
        "--proof",
        &hex_list(&flipped),
        "--from-checkpoint",
        old.path(),
        "--checkpoint",
        new.path(),
        "--public-key",
        &base64,
    ]);
    assert_eq!(code, 1, "{output}");
}

// ------------------------------------------------------------------ any single flipped byte

fn valid_export_files() -> &'static [Vec<u8>; 2] {
    static FILES: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    FILES.get_or_init(|| {
        let journal = journal();
        let from_seq = seq_of(&journal, "transfer_posted", PARTLY_POSTED);
        [
            file_of(&export_lines(&journal, 1, 20)),
            file_of(&export_lines(&journal, from_seq, 20)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn flipping_any_single_byte_of_a_valid_export_makes_it_fail_without_panicking(
        partial in any::<bool>(),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut file = valid_export_files()[usize::from(partial)].clone();
        let index = position.index(file.len());
        file[index] ^= flip;
        let result = verify_export(split_lines(&file), &public_key(), &mut |_| {});
        prop_assert!(result.is_err(), "flipping byte {} with {:#04x} went unnoticed", index, flip);
    }
}

// ------------------------------------------------------------------ hostile values, re-signed

/// Values a forger might put anywhere: wrong types, extremes of range and scale, names of states
/// and currencies, ids of existing accounts and transfers.
fn hostile_values() -> Vec<serde_json::Value> {
    use serde_json::json;
    vec![
        json!(null),
        json!(true),
        json!(0),
        json!(1),
        json!(2),
        json!(u64::MAX),
        json!(1u64 << 63),
        json!(-1),
        json!(1.5),
        json!(""),
        json!("0.00"),
        json!("-1.00"),
        json!("0.01"),
        json!("1.00"),
        json!("1000000.00"),
        json!("0.001"),
        json!("9999999999999999999999999999"),
        json!("99999999999999999999999999.99"),
        json!("79228162514264337593543950335"),
        json!("pending"),
        json!("posted"),
        json!("voided"),
        json!("expired"),
        json!("active"),
        json!("frozen"),
        json!("closed"),
        json!("EUR"),
        json!("GOLD"),
        json!("JPY"),
        json!("credits_must_not_exceed_debits"),
        json!("debits_must_not_exceed_credits"),
        json!(account_id(WALLET).to_string()),
        json!(account_id(SHOP).to_string()),
        json!(account_id(GOLD_VAULT).to_string()),
        json!(transfer_id(PARTLY_POSTED).to_string()),
        json!(transfer_id(REVERSED).to_string()),
        json!("2030-01-01T00:00:00.000000Z"),
        json!("1970-01-01T00:00:00.000000Z"),
        json!([]),
        json!({}),
    ]
}

/// The paths (object keys, from the line's top) of every value inside a JSON object.
fn value_paths(value: &serde_json::Value, prefix: &[String], paths: &mut Vec<Vec<String>>) {
    if let serde_json::Value::Object(object) = value {
        for (key, inner) in object {
            let mut path = prefix.to_vec();
            path.push(key.clone());
            paths.push(path.clone());
            value_paths(inner, &path, paths);
        }
    }
}

fn set_path(value: &mut serde_json::Value, path: &[String], replacement: serde_json::Value) {
    let mut target = value;
    for key in path {
        target = &mut target[key.as_str()];
    }
    *target = replacement;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn a_forger_with_the_key_putting_any_value_anywhere_never_makes_the_verifier_panic(
        partial in any::<bool>(),
        line in any::<prop::sample::Index>(),
        path in any::<prop::sample::Index>(),
        replacement in any::<prop::sample::Index>(),
    ) {
        let journal = journal();
        let from_seq = if partial { seq_of(&journal, "transfer_posted", PARTLY_POSTED) } else { 1 };
        let mut lines = export(&journal, from_seq, 20);
        let line = line.index(lines.len() - 2);
        let mut json = lines[line].to_json();
        let mut paths = Vec::new();
        value_paths(&json, &[], &mut paths);
        let path = &paths[path.index(paths.len())];
        let values = hostile_values();
        set_path(&mut json, path, values[replacement.index(values.len())].clone());
        let bytes = serde_json_canonicalizer::to_vec(&json).unwrap();
        if let Ok(changed) = Line::decode(&bytes) {
            lines[line] = changed;
            // Verdicts vary (some fields are free text); what must hold is an answer, no panic.
            let _ = verify_lines(&resealed(lines));
        }
    }
}

// ------------------------------------------------------------------ totals beyond 10^28

/// A journal of these commands after the genesis of `main` (with the asset GOLD), sealed.
fn journal_of(commands: Vec<(i64, Command)>) -> Vec<JournalEvent> {
    let name = ledger_name();
    let new_ledger = NewLedger {
        name: name.clone(),
        assets: vec![gold()],
        metadata: Metadata::default(),
    };
    let (mut book, genesis) = Book::genesis(new_ledger, at(0)).unwrap();
    let mut head = ChainHead::GENESIS;
    let mut journal = vec![head.seal(&name, &genesis, &client(0))];
    for (index, (seconds, command)) in commands.into_iter().enumerate() {
        let events = book.execute(&command, at(seconds)).unwrap();
        let provenance = client(index + 1);
        journal.extend(
            events
                .iter()
                .map(|applied| head.seal(&name, applied, &provenance)),
        );
    }
    journal
}

#[test]
fn currency_totals_beyond_10_to_the_28_minor_units_verify() {
    // Each amount is legal (below 10^28 minor units), their sum is 10^28 cents: the EUR totals
    // no longer fit a Decimal of 28 digits, and must still be summed exactly.
    let largest = format!("{}.99", "9".repeat(26));
    let journal = journal_of(vec![
        (1, open(1, "a", eur(), BalanceConstraint::None)),
        (1, open(2, "b", eur(), BalanceConstraint::None)),
        (1, open(3, "c", eur(), BalanceConstraint::None)),
        (1, open(4, "d", eur(), BalanceConstraint::None)),
        (
            2,
            Command::CreateTransfer(transfer(1, 1, 2, &largest, eur())),
        ),
        (3, Command::CreateTransfer(transfer(2, 3, 4, "0.01", eur()))),
    ]);
    let book = replayed(&journal);
    let totals = book.currency_totals().unwrap();
    let euro = &totals[&CurrencyCode::parse("EUR").unwrap()];
    assert_eq!(euro.posted_debits, 10i128.pow(28));
    assert!(euro.is_balanced());
    let lines = export_lines(&journal, 1, journal.len() as u64);
    let report = verify(&lines).expect("a ledger the service accepts verifies");
    assert_eq!(report.accounts, 4);

    // A range export opening after the first transfer verifies from its opening state, whose
    // totals are as large.
    let range = export_lines(&journal, 7, journal.len() as u64);
    assert!(verify(&range).is_ok());
    // And an unbalanced total that large is named in full: one more cent out of nowhere in the
    // opening state of account d, in its opening line and its final balance alike.
    let mut unbalanced = export(&journal, 7, journal.len() as u64);
    for line in &mut unbalanced {
        match line {
            Line::OpeningAccount(account) if account.id == account_id(4) => {
                account.balances.posted_credits += Decimal::new(1, 2);
            }
            Line::Balance(balance) if balance.account_id == account_id(4) => {
                balance.balances.posted_credits += Decimal::new(1, 2);
            }
            _ => {}
        }
    }
    let fault = verify_lines(&resealed(unbalanced)).unwrap_err();
    assert_eq!(fault.code(), "unbalanced_currency", "{fault}");
    assert_eq!(
        fault.detail,
        format!(
            "EUR: posted debits 1{zeros}.00 vs credits 1{zeros}.01, pending debits 0.00 vs \
             credits 0.00",
            zeros = "0".repeat(26)
        )
    );
}

/// Events re-chained after a change: prev_hash and hash recomputed from the first event on.
fn rechained(mut journal: Vec<JournalEvent>) -> Vec<JournalEvent> {
    let mut previous = Hash32::ZERO;
    for event in &mut journal {
        event.prev_hash = previous;
        event.hash = event.computed_hash();
        previous = event.hash;
    }
    journal
}

// ------------------------------------------------------------------ every limit, forged with the
// key

/// The lines of an export as JSON objects, without manifest and signature.
fn json_lines(lines: &[Line]) -> Vec<Value> {
    lines
        .iter()
        .filter(|line| !matches!(line, Line::Manifest(_) | Line::Signature(_)))
        .map(Line::to_json)
        .collect()
}

/// What a forger holding the key makes of changed JSON lines: every event re-chained, the
/// checkpoint re-signed over the new root under the header's origin, a new manifest signed.
fn resealed_json(mut lines: Vec<Value>) -> Vec<Vec<u8>> {
    let key = signing_key();
    let origin = lines[0]["origin"].as_str().unwrap_or_default().to_owned();
    let mut previous = Hash32::ZERO;
    let mut merkle = MerkleFrontier::new();
    for line in &mut lines {
        match line["kind"].as_str().unwrap() {
            "opening" => {
                previous = Hash32::from_hex(line["hash"].as_str().unwrap()).unwrap();
                let hashes = line["merkle_frontier"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|hash| Hash32::from_hex(hash.as_str().unwrap()).unwrap())
                    .collect();
                merkle = MerkleFrontier::from_parts(line["merkle_size"].as_u64().unwrap(), hashes)
                    .unwrap();
            }
            "event" => {
                let event = line["event"].as_object_mut().unwrap();
                event.insert("prev_hash".into(), json!(previous.to_hex()));
                event.remove("hash");
                let hash = Hash32::sha256(&canonical_json(&Value::Object(event.clone())));
                event.insert("hash".into(), json!(hash.to_hex()));
                previous = hash;
                merkle.append_event_hash(&hash).unwrap();
            }
            "checkpoint" => {
                let size = line["tree_size"].as_u64().unwrap();
                line["note"] = json!(sign_checkpoint(&origin, size, &merkle.root(), &key).unwrap());
            }
            _ => {}
        }
    }
    let mut bytes: Vec<Vec<u8>> = lines.iter().map(canonical_json).collect();
    let mut content = ContentHasher::new();
    bytes.iter().for_each(|line| content.add_line(line));
    let count = |kind: &str| lines.iter().filter(|line| line["kind"] == kind).count();
    let header = &lines[0];
    let manifest = canonical_json(&json!({
        "kind": "manifest",
        "format": "ledger-export/1",
        "ledger": header["ledger"],
        "origin": header["origin"],
        "from_seq": header["from_seq"],
        "to_seq": header["to_seq"],
        "events": count("event"),
        "balances": count("balance"),
        "lines": content.lines(),
        "content_sha256": content.finish().to_hex(),
        "key_id": key_id(&key.verifying_key()),
    }));
    let signature = Line::Signature(sign_manifest(&manifest, &key)).encode();
    bytes.push(manifest);
    bytes.push(signature);
    bytes
}

/// The index of the first JSON line that is the event of this seq.
fn event_index(lines: &[Value], seq: u64) -> usize {
    lines
        .iter()
        .position(|line| line["kind"] == "event" && line["event"]["seq"] == seq)
        .expect("the event is in the export")
}

/// A forgery: changes the JSON lines of the full export of [`journal`], returns the index of
/// the line where the broken limit must be reported.
type Forgery = Box<dyn Fn(&mut Vec<Value>) -> usize>;

/// Sets `data[key]` of the event of this seq.
fn forge_data(seq: u64, key: &'static str, value: Value) -> Forgery {
    Box::new(move |lines| {
        let index = event_index(lines, seq);
        lines[index]["event"]["data"][key] = value.clone();
        index
    })
}

/// Sets a key of the event itself (actor, request_id, ...).
fn forge_event(seq: u64, key: &'static str, value: Value) -> Forgery {
    Box::new(move |lines| {
        let index = event_index(lines, seq);
        lines[index]["event"][key] = value.clone();
        index
    })
}

/// Sets the header's (and the genesis event's, for assets) value.
fn forge_header(change: impl Fn(&mut Vec<Value>) + 'static) -> Forgery {
    Box::new(move |lines| {
        change(lines);
        0
    })
}

fn set_assets(lines: &mut [Value], assets: Value) {
    lines[0]["assets"] = assets.clone();
    lines[1]["event"]["data"]["assets"] = assets;
}

/// For every limit of the core, one or more exports that break it and nothing else, signed by
/// the key holder. A limit without an entry here fails `every_limit_has_a_forgery`.
fn forgeries() -> Vec<(&'static str, Forgery)> {
    let journal = journal();
    let opened = |account: u128| {
        let id = account_id(account).to_string();
        journal
            .iter()
            .find(|event| event.event_type == "account_opened" && event.data["id"] == id.as_str())
            .unwrap()
            .seq
    };
    let funding = seq_of(&journal, "transfer_created", FUNDING);
    let held = seq_of(&journal, "transfer_created", PARTLY_POSTED);
    let posted = seq_of(&journal, "transfer_posted", PARTLY_POSTED);
    let expired = seq_of(&journal, "transfer_expired", EXPIRED);
    let reversal = seq_of(&journal, "transfer_reversed", REVERSAL);
    let wallet = opened(WALLET);
    let deep = (0..limits::MAX_METADATA_DEPTH).fold(json!({}), |inner, _| json!({ "a": inner }));
    let many_assets: Vec<Value> = (0..=limits::MAX_ASSETS)
        .map(|n| json!({"code": format!("CUSTOM_{n}"), "scale": 2}))
        .collect();
    vec![
        (
            "ledger_name",
            forge_header(|lines| {
                lines[0]["ledger"] = json!("Main");
                for line in lines.iter_mut().filter(|line| line["kind"] == "event") {
                    line["event"]["ledger"] = json!("Main");
                }
            }),
        ),
        (
            "origin",
            forge_header(|lines| lines[0]["origin"] = json!("ledger/other")),
        ),
        (
            "account_code",
            forge_data(wallet, "code", json!("has space")),
        ),
        (
            "transfer_code",
            forge_data(funding, "code", json!("has space")),
        ),
        (
            "reference",
            forge_data(funding, "reference", json!("r".repeat(129))),
        ),
        (
            "description",
            forge_data(funding, "description", json!("bell\u{7}")),
        ),
        (
            "currency_code",
            forge_data(wallet, "currency", json!("eur")),
        ),
        (
            "asset_scale",
            forge_header(|lines| set_assets(lines, json!([{"code": "GOLD", "scale": 19}]))),
        ),
        (
            "asset_not_iso",
            forge_header(|lines| {
                set_assets(
                    lines,
                    json!([{"code": "GOLD", "scale": 3}, {"code": "USD", "scale": 2}]),
                )
            }),
        ),
        (
            "assets_distinct",
            forge_header(|lines| {
                set_assets(
                    lines,
                    json!([{"code": "GOLD", "scale": 3}, {"code": "GOLD", "scale": 3}]),
                )
            }),
        ),
        (
            "assets_count",
            forge_header(move |lines| {
                let mut assets = many_assets.clone();
                assets[0] = json!({"code": "GOLD", "scale": 3});
                set_assets(lines, Value::Array(assets))
            }),
        ),
        (
            "balance_constraint",
            forge_data(wallet, "credits_must_not_exceed_debits", json!(true)),
        ),
        (
            "timeout_seconds",
            forge_data(held, "timeout_seconds", json!(0)),
        ),
        (
            "timeout_seconds",
            forge_data(
                held,
                "timeout_seconds",
                json!(limits::MAX_TIMEOUT_SECONDS + 1),
            ),
        ),
        (
            "timeout_requires_pending",
            forge_data(funding, "timeout_seconds", json!(60)),
        ),
        ("amount_syntax", forge_data(funding, "amount", json!("1e2"))),
        (
            "amount_syntax",
            forge_data(posted, "amount", json!("-1.00")),
        ),
        (
            "amount_scale",
            forge_data(funding, "amount", json!("100.0")),
        ),
        (
            "amount_positive",
            forge_data(funding, "amount", json!("0.00")),
        ),
        (
            "amount_positive",
            forge_data(posted, "amount", json!("0.00")),
        ),
        (
            "amount_positive",
            forge_data(reversal, "amount", json!("0.00")),
        ),
        (
            "amount_max",
            forge_data(funding, "amount", json!(format!("1{}.00", "0".repeat(26)))),
        ),
        (
            "metadata_object",
            forge_data(wallet, "metadata", json!(["owner"])),
        ),
        (
            "metadata_size",
            forge_data(
                wallet,
                "metadata",
                json!({ "k": "x".repeat(limits::MAX_METADATA_BYTES) }),
            ),
        ),
        (
            "metadata_depth",
            forge_data(wallet, "metadata", json!({ "a": deep })),
        ),
        (
            "metadata_numbers",
            forge_data(
                wallet,
                "metadata",
                json!({ "n": limits::MAX_METADATA_NUMBER + 1 }),
            ),
        ),
        (
            "metadata_text",
            forge_data(wallet, "metadata", json!({ "s": "a\u{0}b" })),
        ),
        ("actor", forge_event(funding, "actor", json!("system"))),
        ("actor", forge_event(expired, "actor", json!(KEY_ID))),
        ("actor", forge_event(funding, "actor", json!("key-1"))),
        ("actor", forge_event(1, "actor", json!("system"))),
        (
            "actor",
            forge_event(wallet, "actor", json!(KEY_ID.to_uppercase())),
        ),
        (
            "request_id",
            forge_event(funding, "request_id", json!("has space")),
        ),
        (
            "idempotency_key",
            forge_event(funding, "idempotency_key", json!("tab\there")),
        ),
    ]
}

#[test]
fn every_limit_has_a_forgery() {
    let forged: Vec<&str> = forgeries().iter().map(|(name, _)| *name).collect();
    for limit in limits::ALL {
        assert!(
            forged.contains(&limit.name),
            "the limit {} has no forgery in tests/verify.rs",
            limit.name
        );
    }
    for name in forged {
        assert!(
            limits::ALL.iter().any(|limit| limit.name == name),
            "{name} is not a limit"
        );
    }
}

#[test]
fn an_export_breaking_any_limit_is_refused_by_ledger_verify_even_when_re_signed() {
    let base = json_lines(&full_export());
    assert!(
        verify(&resealed_json(base.clone())).is_ok(),
        "the base verifies"
    );
    let pem = TempFile::new("limits-key.pem", public_key_pem().as_bytes());
    for (index, (name, forge)) in forgeries().into_iter().enumerate() {
        let mut lines = base.clone();
        let broken_line = forge(&mut lines) as u64 + 1;
        let bytes = resealed_json(lines);
        let fault = verify(&bytes).expect_err(name);
        assert_eq!(
            (fault.code(), fault.line),
            ("limit_broken", broken_line),
            "{name}: {fault}"
        );
        assert_eq!(
            fault.kind,
            ExportFaultKind::LimitBroken(limits::ALL.iter().find(|l| l.name == name).unwrap()),
            "{name}: {fault}"
        );
        let file = TempFile::new(&format!("limit-{index}.ndjson"), &file_of(&bytes));
        let (code, output) = run(&[file.path(), "--public-key", pem.path(), "--json"]);
        assert_eq!(code, 1, "{name}: {output}");
        let report: Value = serde_json::from_str(&output).unwrap();
        assert_eq!(
            (&report["code"], &report["limit"]),
            (&json!("limit_broken"), &json!(name)),
            "{output}"
        );
    }
}

#[test]
fn the_cases_that_printed_verified_before_are_refused_by_the_binary() {
    let base = json_lines(&full_export());
    let journal = journal();
    let held = seq_of(&journal, "transfer_created", PARTLY_POSTED);
    let expired = seq_of(&journal, "transfer_expired", EXPIRED);
    let funding = seq_of(&journal, "transfer_created", FUNDING);
    let cases: Vec<(&str, Forgery)> = vec![
        (
            "a transfer by system",
            forge_event(funding, "actor", json!("system")),
        ),
        (
            "an expiry by an API key",
            forge_event(expired, "actor", json!(KEY_ID)),
        ),
        (
            "an actor that is no key id",
            forge_event(funding, "actor", json!("mallory")),
        ),
        (
            "another ledger's origin",
            forge_header(|lines| lines[0]["origin"] = json!("ledger/other")),
        ),
        (
            "a timeout of 0",
            forge_data(held, "timeout_seconds", json!(0)),
        ),
        (
            "a timeout over 400 days",
            forge_data(held, "timeout_seconds", json!(34_560_001)),
        ),
    ];
    let base64 = public_key_base64();
    for (index, (case, forge)) in cases.into_iter().enumerate() {
        let mut lines = base.clone();
        forge(&mut lines);
        let file = TempFile::new(
            &format!("verified-before-{index}.ndjson"),
            &file_of(&resealed_json(lines)),
        );
        let (code, output) = run(&[file.path(), "--public-key", &base64]);
        assert_eq!(code, 1, "{case}: {output}");
        assert!(output.starts_with("FAILED at line "), "{case}: {output}");
        assert!(output.contains("limit_broken"), "{case}: {output}");
    }
}

// ------------------------------------------------------------------ checkpoints kept by the
// auditor

/// The signed checkpoint of the first `size` events of `journal`, as the service issues it.
fn kept_checkpoint(journal: &[JournalEvent], size: u64) -> Anchor {
    let leaves = journal[..size as usize]
        .iter()
        .map(|event| leaf_hash(&event.hash))
        .collect();
    let root = InMemoryMerkleTree::from_leaf_hashes(leaves).root();
    let signed_at = journal[size as usize - 1].at;
    Anchor {
        name: format!("kept-{size}"),
        note: sign_checkpoint_at(ORIGIN, size, &root, signed_at, &signing_key()).unwrap(),
        consistency: None,
    }
}

fn verify_anchored(lines: &[Line], anchors: &[Anchor]) -> Result<Report, ExportFault> {
    let keys = [TrustedKey::new(public_key())];
    let verification = Verification {
        keys: &keys,
        anchors,
    };
    verify_export_with(
        encoded(lines).into_iter().map(Ok),
        &verification,
        &mut |_| {},
    )
}

/// The journal a key holder rewrites: the funding transfer's reference changed, every event
/// re-chained. Every rule still holds, so only a kept checkpoint can tell.
fn rewritten_journal() -> Vec<JournalEvent> {
    let mut journal = journal();
    let funding = seq_of(&journal, "transfer_created", FUNDING);
    journal[funding as usize - 1].data["reference"] = json!("ref-rewritten");
    rechained(journal)
}

#[test]
fn a_history_rewritten_and_re_signed_is_refused_against_a_checkpoint_kept_before() {
    let honest = journal();
    let kept = kept_checkpoint(&honest, 10);
    let rewritten = export(&rewritten_journal(), 1, 20);
    assert!(
        verify_lines(&rewritten).is_ok(),
        "without an anchor nothing tells"
    );
    let fault = verify_anchored(&rewritten, &[kept]).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line, fault.seq),
        (
            "anchor_mismatch",
            line_of(&rewritten, event_seq(10)),
            Some(10)
        ),
        "{fault}"
    );
    assert!(fault.detail.contains("kept-10"), "{fault}");
}

#[test]
fn an_honest_extension_contains_every_checkpoint_kept_before() {
    let journal = journal();
    let anchors: Vec<Anchor> = [1, 10, 13, 20]
        .iter()
        .map(|size| kept_checkpoint(&journal, *size))
        .collect();
    let report = verify_anchored(&export(&journal, 1, 20), &anchors).unwrap();
    assert_eq!(report.anchors, vec![1, 10, 13, 20]);
    assert!(report
        .to_string()
        .ends_with("containing the kept checkpoints of size 1, 10, 13, 20"));

    let beyond = verify_anchored(&export(&journal, 1, 12), &anchors[1..2]).unwrap();
    assert_eq!(beyond.anchors, vec![10]);
    let fault = verify_anchored(&export(&journal, 1, 12), &anchors[2..3]).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line),
        ("anchor_beyond_export", 1),
        "{fault}"
    );

    let mut foreign = kept_checkpoint(&journal, 10);
    let leaves = journal[..10]
        .iter()
        .map(|event| leaf_hash(&event.hash))
        .collect();
    let root = InMemoryMerkleTree::from_leaf_hashes(leaves).root();
    foreign.note = sign_checkpoint(ORIGIN, 10, &root, &other_signing_key()).unwrap();
    let fault = verify_anchored(&export(&journal, 1, 20), &[foreign]).unwrap_err();
    assert_eq!((fault.code(), fault.line), ("anchor_invalid", 1), "{fault}");
}

#[test]
fn a_range_export_checks_against_kept_checkpoints_from_its_frontier_or_a_consistency_proof() {
    let journal = journal();
    // The opening is the tree of 13 events: subtrees of 8, 4 and 1 leaves.
    let range = export(&journal, 14, 20);
    let direct: Vec<Anchor> = [8, 12, 13, 16, 20]
        .iter()
        .map(|size| kept_checkpoint(&journal, *size))
        .collect();
    let report = verify_anchored(&range, &direct).unwrap();
    assert_eq!(report.anchors, vec![8, 12, 13, 16, 20]);

    let fault = verify_anchored(&range, &[kept_checkpoint(&journal, 10)]).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line),
        ("anchor_unprovable", 2),
        "{fault}"
    );

    let tree = journal_tree();
    for to_size in [13, 17, 20] {
        let mut proven = kept_checkpoint(&journal, 10);
        proven.consistency = Some(AnchorProof {
            to_size,
            proof: tree.consistency_proof(10, to_size).unwrap(),
        });
        let report = verify_anchored(&range, &[proven]).unwrap();
        assert_eq!(report.anchors, vec![10], "to size {to_size}");
    }

    // The key holder rewrote seq 8 and exports the range 14..=20 of the rewritten journal: its
    // opening frontier no longer contains what the auditor kept.
    let rewritten = export(&rewritten_journal(), 14, 20);
    assert!(verify_lines(&rewritten).is_ok());
    let fault = verify_anchored(&rewritten, &[kept_checkpoint(&journal, 8)]).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line),
        ("anchor_mismatch", 2),
        "{fault}"
    );
    let mut proven = kept_checkpoint(&journal, 10);
    proven.consistency = Some(AnchorProof {
        to_size: 20,
        proof: tree.consistency_proof(10, 20).unwrap(),
    });
    let fault = verify_anchored(&rewritten, &[proven]).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line, fault.seq),
        (
            "anchor_mismatch",
            line_of(&rewritten, event_seq(20)),
            Some(20)
        ),
        "{fault}"
    );
}

#[test]
fn the_binary_holds_an_export_to_kept_checkpoints() {
    let journal = journal();
    let honest = TempFile::new("anchored.ndjson", &file_of(&export_lines(&journal, 1, 20)));
    let rewritten = TempFile::new(
        "anchored-rewritten.ndjson",
        &file_of(&encoded(&export(&rewritten_journal(), 1, 20))),
    );
    let range = TempFile::new(
        "anchored-range.ndjson",
        &file_of(&export_lines(&journal, 14, 20)),
    );
    let kept_10 = TempFile::new("kept-10.txt", kept_checkpoint(&journal, 10).note.as_bytes());
    let kept_12 = TempFile::new("kept-12.txt", kept_checkpoint(&journal, 12).note.as_bytes());
    let pem = TempFile::new("anchored-key.pem", public_key_pem().as_bytes());

    let (code, output) = run(&[
        "export",
        honest.path(),
        "--public-key",
        pem.path(),
        "--checkpoint",
        kept_10.path(),
        kept_12.path(),
    ]);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("containing the kept checkpoints of size 10, 12"),
        "{output}"
    );

    let (code, output) = run(&[
        "export",
        rewritten.path(),
        "--public-key",
        pem.path(),
        "--checkpoint",
        kept_10.path(),
        "--json",
    ]);
    assert_eq!(code, 1, "{output}");
    let fault: Value = serde_json::from_str(&output).unwrap();
    assert_eq!(
        (&fault["code"], &fault["seq"]),
        (&json!("anchor_mismatch"), &json!(10))
    );

    let (code, output) = run(&[
        "export",
        range.path(),
        "--public-key",
        pem.path(),
        "--checkpoint",
        kept_10.path(),
        "--json",
    ]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("anchor_unprovable"), "{output}");
    let tree = journal_tree();
    let answer = json!({
        "from_size": 10,
        "to_size": 20,
        "from_root": tree.root_at_size(10).unwrap().to_hex(),
        "to_root": tree.root_at_size(20).unwrap().to_hex(),
        "proof": tree.consistency_proof(
            10,
            20
        ).unwrap().iter().map(Hash32::to_hex).collect::<Vec<_>>(),
    });
    let proof = TempFile::new("anchored-proof.json", answer.to_string().as_bytes());
    let (code, output) = run(&[
        "export",
        range.path(),
        "--public-key",
        pem.path(),
        "--checkpoint",
        kept_10.path(),
        kept_12.path(),
        "--consistency-proof",
        proof.path(),
    ]);
    assert_eq!(code, 0, "{output}");
    let (code, output) = run(&[
        "export",
        range.path(),
        "--public-key",
        pem.path(),
        "--consistency-proof",
        proof.path(),
    ]);
    assert_eq!(
        code, 2,
        "a proof for no kept checkpoint is a usage error: {output}"
    );
}

// ------------------------------------------------------------------ keys with their time of
// service

/// The JSON of `GET /v1/keys` for these keys: (key, valid_from, retired_at).
fn keys_json(keys: &[(&SigningKey, Timestamp, Option<Timestamp>)]) -> String {
    let entries: Vec<Value> = keys
        .iter()
        .map(|(key, valid_from, retired_at)| {
            let public = key.verifying_key();
            json!({
                "id": key_id(&public),
                "algorithm": "ed25519",
                "public_key": BASE64.encode(public.as_bytes()),
                "public_key_pem": public.to_public_key_pem(LineEnding::LF).unwrap(),
                "valid_from": format_timestamp(*valid_from),
                "retired_at": retired_at.map(format_timestamp),
                "current": retired_at.is_none(),
                "note_verifier_key": null,
            })
        })
        .collect();
    Value::Array(entries).to_string()
}

fn trusted(key: &SigningKey, valid_from: Timestamp, retired_at: Option<Timestamp>) -> TrustedKey {
    TrustedKey {
        valid_from: Some(valid_from),
        retired_at,
        ..TrustedKey::new(key.verifying_key())
    }
}

/// The full export with its checkpoint signed at `signed_at` by `checkpoint_key`, and its
/// manifest by `manifest_key`.
fn export_signed(
    checkpoint_key: &SigningKey,
    signed_at: Timestamp,
    manifest_key: &SigningKey,
) -> Vec<Line> {
    let journal = journal();
    let lines = export(&journal, 1, 20);
    let root = journal_tree().root();
    let lines = lines
        .into_iter()
        .map(|line| match line {
            Line::Checkpoint { tree_size, .. } => Line::Checkpoint {
                tree_size,
                note: sign_checkpoint_at(ORIGIN, tree_size, &root, signed_at, checkpoint_key)
                    .unwrap(),
            },
            other => other,
        })
        .collect();
    with_manifest_signed(lines, manifest_key)
}

fn verify_with_keys(lines: &[Line], keys: &[TrustedKey]) -> Result<Report, ExportFault> {
    let verification = Verification { keys, anchors: &[] };
    verify_export_with(
        encoded(lines).into_iter().map(Ok),
        &verification,
        &mut |_| {},
    )
}

#[test]
fn with_the_keys_of_the_service_each_signature_is_held_to_its_key_s_time_of_service() {
    let (old, new) = (other_signing_key(), signing_key());
    let rotation = at(50);
    let keys = [
        trusted(&old, at(-100), Some(rotation)),
        trusted(&new, rotation, None),
    ];

    // The checkpoint was signed before the rotation with the old key, the manifest after it
    // with the new one: both verify, each under its own key.
    let rotated = export_signed(&old, at(40), &new);
    let report = verify_with_keys(&rotated, &keys).unwrap();
    assert_eq!(report.key_id, key_id(&new.verifying_key()));
    assert_eq!(
        verify_lines(&rotated).unwrap_err().code(),
        "checkpoint_invalid",
        "one PEM key cannot"
    );

    let checkpoint = line_of(&rotated, |line| line.kind() == "checkpoint");
    let signed_after_retirement = export_signed(&old, at(60), &new);
    let fault = verify_with_keys(&signed_after_retirement, &keys).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line),
        ("key_not_valid", checkpoint),
        "{fault}"
    );
    let signed_before_valid = export_signed(&new, at(40), &new);
    let fault = verify_with_keys(&signed_before_valid, &keys).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line),
        ("key_not_valid", checkpoint),
        "{fault}"
    );

    let manifest = line_of(&rotated, |line| line.kind() == "manifest");
    let manifest_by_retired_key = export_signed(&old, at(40), &old);
    let fault = verify_with_keys(&manifest_by_retired_key, &keys).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line),
        ("key_not_valid", manifest),
        "{fault}"
    );
    let unknown = export_signed(&new, at(60), &SigningKey::from_bytes(&[44; 32]));
    let fault = verify_with_keys(&unknown, &keys).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line),
        ("unknown_key", manifest),
        "{fault}"
    );
    assert!(fault.detail.contains("none of the 2 keys given"), "{fault}");
}

#[test]
fn the_binary_takes_the_json_of_get_v1_keys_as_public_key() {
    let (old, new) = (other_signing_key(), signing_key());
    let rotation = at(50);
    let keys = TempFile::new(
        "keys.json",
        keys_json(&[(&old, at(-100), Some(rotation)), (&new, rotation, None)]).as_bytes(),
    );
    let rotated = TempFile::new(
        "rotated.ndjson",
        &file_of(&encoded(&export_signed(&old, at(40), &new))),
    );
    let (code, output) = run(&[rotated.path(), "--public-key", keys.path()]);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains(&format!("signed by key {}", key_id(&new.verifying_key()))),
        "{output}"
    );
    let late = TempFile::new(
        "late.ndjson",
        &file_of(&encoded(&export_signed(&old, at(60), &new))),
    );
    let (code, output) = run(&[late.path(), "--public-key", keys.path(), "--json"]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("\"code\":\"key_not_valid\""), "{output}");
    // An export signed before signed_at existed (no signed_at line) verifies with the keys too.
    let plain = TempFile::new("plain.ndjson", &file_of(&export_lines(&journal(), 1, 20)));
    let (code, output) = run(&[plain.path(), "--public-key", keys.path()]);
    assert_eq!(code, 0, "{output}");

    let mut lying: Value = serde_json::from_str(&keys_json(&[(&new, rotation, None)])).unwrap();
    lying[0]["id"] = json!(key_id(&old.verifying_key()));
    let lying = TempFile::new("lying-keys.json", lying.to_string().as_bytes());
    let (code, output) = run(&[plain.path(), "--public-key", lying.path()]);
    assert_eq!(code, 2, "a key listed under another key's id: {output}");
}

// ------------------------------------------------------------------ checkpoints and witnesses

fn witness_signing_key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&Hash32::sha256(&[b'w', n]).0)
}

fn witness_key(n: u8) -> ledger::audit::cosignature::WitnessKey {
    ledger::audit::cosignature::WitnessKey::new(
        &format!("witness.example/{n}"),
        witness_signing_key(n).verifying_key(),
    )
    .unwrap()
}

/// The checkpoint of the journal's tree, signed at `at(100)`, co-signed by witnesses `cosigners`.
fn cosigned_checkpoint(cosigners: &[u8]) -> String {
    let tree = journal_tree();
    let mut note =
        sign_checkpoint_at(ORIGIN, tree.size(), &tree.root(), at(100), &signing_key()).unwrap();
    for n in cosigners {
        let timestamp = 1_900_000_200 + u64::from(*n);
        note = ledger::audit::cosignature::cosign_note(
            &note,
            &format!("witness.example/{n}"),
            &witness_signing_key(*n),
            timestamp,
        )
        .unwrap()
        .0;
    }
    note
}

#[test]
fn the_binary_requires_k_cosignatures_by_the_witness_keys_given() {
    let base64 = public_key_base64();
    let (one, two, three) = (witness_key(1), witness_key(2), witness_key(3));
    let both = TempFile::new(
        "cosigned-by-two.txt",
        cosigned_checkpoint(&[1, 2]).as_bytes(),
    );
    let check = |note: &TempFile, witnesses: &[&str], extra: &[&str]| {
        let mut args = vec!["checkpoint", note.path(), "--public-key", base64.as_str()];
        for witness in witnesses {
            args.extend(["--witness", witness]);
        }
        args.extend(extra);
        run(&args)
    };
    let (vkey1, vkey2, vkey3) = (one.to_vkey(), two.to_vkey(), three.to_vkey());
    let (code, output) = check(&both, &[&vkey1, &vkey2], &["--min-cosignatures", "2"]);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.starts_with("VALID checkpoint ledger/main tree size 20 root "),
        "{output}"
    );
    assert!(
        output.contains("2 of 2 witness key(s) co-signed, 2 required: witness.example/1 at "),
        "{output}"
    );
    // A file of vkeys, and the default: all of them.
    let list = TempFile::new(
        "witnesses.txt",
        format!("# trusted witnesses\n{vkey1}\n\n{vkey2}\n").as_bytes(),
    );
    assert_eq!(check(&both, &[list.path()], &[]).0, 0);
    let (code, output) = check(&both, &[&vkey1, &vkey3], &[]);
    assert_eq!(code, 1, "witness 3 did not co-sign: {output}");
    assert!(
        output.starts_with("INVALID too_few_cosignatures: "),
        "{output}"
    );
    assert_eq!(
        check(&both, &[&vkey1, &vkey3], &["--min-cosignatures", "1"]).0,
        0
    );
    let only_one = TempFile::new("cosigned-by-one.txt", cosigned_checkpoint(&[1]).as_bytes());
    assert_eq!(
        check(&only_one, &[&vkey1, &vkey2], &["--min-cosignatures", "2"]).0,
        1
    );
    // A cosignature line altered after the fact is named and counts for nothing.
    let note = cosigned_checkpoint(&[1, 2]);
    let last_line = note.trim_end().rsplit('\n').next().unwrap().to_owned();
    let mut altered_line = last_line.clone().into_bytes();
    let position = altered_line.len() - 10;
    altered_line[position] = if altered_line[position] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let altered = TempFile::new(
        "cosigned-altered.txt",
        note.replace(&last_line, std::str::from_utf8(&altered_line).unwrap())
            .as_bytes(),
    );
    let (code, output) = check(
        &altered,
        &[&vkey1, &vkey2],
        &["--min-cosignatures", "2", "--json"],
    );
    assert_eq!(code, 1, "{output}");
    let report: Value = serde_json::from_str(&output).unwrap();
    assert_eq!(report["verified"], false);
    assert_eq!(report["code"], "too_few_cosignatures");
    assert_eq!(report["cosigned_by"].as_array().unwrap().len(), 1);
    assert_eq!(report["invalid"][0]["name"], "witness.example/2");
    // Not signed by the log's key: refused whatever the witnesses say.
    let other = BASE64.encode(other_signing_key().verifying_key().as_bytes());
    let (code, output) = run(&[
        "checkpoint",
        both.path(),
        "--public-key",
        &other,
        "--witness",
        &vkey1,
    ]);
    assert_eq!(code, 1, "{output}");
    assert!(output.starts_with("INVALID checkpoint_invalid"), "{output}");
    // Usage errors: a malformed vkey, more cosignatures required than keys given.
    assert_eq!(check(&both, &["not-a-vkey"], &[]).0, 2);
    assert_eq!(
        check(&both, &[&vkey1, &vkey1], &["--min-cosignatures", "2"]).0,
        2
    );
}

#[test]
fn the_binary_holds_a_co_signed_checkpoint_to_its_signing_key_s_time_of_service() {
    let note = TempFile::new("cosigned-dated.txt", cosigned_checkpoint(&[1]).as_bytes());
    let vkey = witness_key(1).to_vkey();
    let in_service = TempFile::new(
        "keys-in-service.json",
        keys_json(&[(&signing_key(), at(0), None)]).as_bytes(),
    );
    let retired = TempFile::new(
        "keys-retired.json",
        keys_json(&[(&signing_key(), at(0), Some(at(50)))]).as_bytes(),
    );
    let (code, output) = run(&[
        "checkpoint",
        note.path(),
        "--public-key",
        in_service.path(),
        "--witness",
        &vkey,
    ]);
    assert_eq!(code, 0, "{output}");
    let (code, output) = run(&[
        "checkpoint",
        note.path(),
        "--public-key",
        retired.path(),
        "--witness",
        &vkey,
    ]);
    assert_eq!(code, 1, "{output}");
    assert!(output.starts_with("INVALID key_not_valid"), "{output}");
}

#[test]
fn a_manifest_s_signing_time_is_held_to_its_key_and_follows_the_last_event() {
    let (old, new) = (other_signing_key(), signing_key());
    let rotation = at(50);
    let keys = [
        trusted(&old, at(-100), Some(rotation)),
        trusted(&new, rotation, None),
    ];
    let rotated = export_signed(&old, at(40), &new);
    let manifest = line_of(&rotated, |line| line.kind() == "manifest");
    let in_service = with_manifest_signed_at(rotated.clone(), &new, Some(at(3_600)));
    verify_with_keys(&in_service, &keys).expect("signed by a key in service, after every event");

    let before_the_key = with_manifest_signed_at(rotated.clone(), &new, Some(at(45)));
    let fault = verify_with_keys(&before_the_key, &keys).unwrap_err();
    assert_eq!(
        (fault.code(), fault.line),
        ("key_not_valid", manifest),
        "{fault}"
    );

    let before_its_events = with_manifest_signed_at(rotated, &new, Some(at(-10_000)));
    let fault = verify_with_keys(&before_its_events, &keys).unwrap_err();
    assert_eq!(fault.code(), "key_not_valid", "{fault}");
    assert!(
        fault.to_string().contains("before the export's last event"),
        "{fault}"
    );
}
