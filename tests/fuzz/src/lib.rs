//! What the fuzz targets share: a reader of fuzzer bytes, fixed keys and a fixed ledger, and a
//! valid signed export built purely by the library's own functions (the engine, the chain, the
//! Merkle tree, the checkpoint and manifest signers), as `tests/verify.rs` builds its exports.
//!
//! Nothing here touches a database, the network or the clock.

use std::sync::OnceLock;

use ed25519_dalek::{SigningKey, VerifyingKey};
use ledger::audit::checkpoint::{sign_checkpoint_at, NoteVerifier};
use ledger::audit::export::{
    key_id, sign_manifest, AccountBalance, ContentHasher, Header, Line, Manifest, Opening,
};
use ledger::audit::merkle::{leaf_hash, InMemoryMerkleTree, MerkleFrontier};
use ledger::audit::replay::Replayer;
use ledger::audit::{ChainHead, Hash32, JournalEvent, Provenance};
use ledger::domain::money::parse_amount;
use ledger::domain::*;
use ledger::storage::LedgerRecord;
use rust_decimal::Decimal;
use uuid::Uuid;

/// The origin (and checkpoint key name) of the fixed ledger `main`.
pub const ORIGIN: &str = "ledger/main";
/// The API key id every client event of the built journal is caused by.
pub const KEY_ID: &str = "0190e7a4-0000-7000-8000-0000000000a1";

// ------------------------------------------------------------------ fuzzer bytes

/// Reads fixed-size values off the front of the fuzzer's bytes; past the end, zeros.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        (u64::from(self.u32())) | (u64::from(self.u32()) << 32)
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        taken
    }

    pub fn hash(&mut self) -> Hash32 {
        let mut bytes = [0u8; 32];
        let taken = self.take(32);
        bytes[..taken.len()].copy_from_slice(taken);
        Hash32(bytes)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

// ------------------------------------------------------------------ fixed keys and ledger

/// The key that signs the built exports and checkpoints (the seed of `tests/verify.rs`).
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

pub fn public_key() -> VerifyingKey {
    signing_key().verifying_key()
}

/// The checkpoint verifier of [`signing_key`] under key name [`ORIGIN`].
pub fn note_verifier() -> NoteVerifier {
    NoteVerifier::new(ORIGIN, public_key()).expect("a valid key name")
}

pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_900_000_000_000_000 + seconds * 1_000_000)
}

pub fn ledger_name() -> LedgerName {
    LedgerName::parse("main").expect("a valid ledger name")
}

pub fn eur() -> Currency {
    Currency::iso("EUR").expect("EUR is ISO 4217")
}

/// The fixed ledger's custom asset, so `assets` is never empty.
pub fn gold() -> Currency {
    Currency::new(CurrencyCode::parse("GOLD").expect("a valid code"), 3).expect("a valid scale")
}

/// A custom asset at the largest scale.
pub fn dust() -> Currency {
    Currency::new(CurrencyCode::parse("DUST").expect("a valid code"), 18).expect("a valid scale")
}

/// The ledger a request body is converted against: `main`, with assets GOLD (3) and DUST (18).
pub fn ledger_record() -> LedgerRecord {
    LedgerRecord {
        id: 1,
        name: ledger_name(),
        assets: vec![gold(), dust()],
        metadata: Metadata::default(),
        created_at: at(0),
    }
}

/// The scale of a currency code in the fixed ledger: ISO 4217 or one of its assets.
pub fn scale_of(code: &CurrencyCode) -> Option<u32> {
    [gold(), dust()]
        .into_iter()
        .find(|asset| asset.code() == code)
        .or_else(|| Currency::iso(code.as_str()))
        .map(|currency| currency.scale())
}

// ------------------------------------------------------------------ a journal, built purely

fn account_id(n: u128) -> AccountId {
    AccountId::new(Uuid::from_u128(n))
}

fn transfer_id(n: u128) -> TransferId {
    TransferId::new(Uuid::from_u128(1_000 + n))
}

fn open(n: u128, code: &str, currency: Currency, constraint: BalanceConstraint) -> Command {
    Command::OpenAccount(NewAccount {
        id: account_id(n),
        code: AccountCode::parse(code).expect("a valid account code"),
        currency,
        normal_side: if n % 2 == 0 {
            NormalSide::Credit
        } else {
            NormalSide::Debit
        },
        constraint,
        metadata: Metadata::parse(serde_json::json!({ "owner": code, "n": n as u64 }))
            .expect("valid metadata"),
    })
}

fn transfer(n: u128, debit: u128, credit: u128, amount: &str, currency: Currency) -> NewTransfer {
    NewTransfer {
        id: transfer_id(n),
        debit_account_id: account_id(debit),
        credit_account_id: account_id(credit),
        amount: parse_amount(amount, currency.scale()).expect("a valid amount"),
        currency: currency.code().clone(),
        code: Some(TransferCode::parse("payment").expect("a valid code")),
        reference: Some(Reference::parse(&format!("ref-{n}")).expect("a valid reference")),
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

/// Accounts in two currencies with and without constraints; transfers posted, pending then
/// posted in part, voided, expired, reversed, an atomic batch; one refused; an account frozen,
/// unfrozen, and one closed.
fn history() -> Vec<(i64, Command)> {
    let e = |n, debit, credit, amount| transfer(n, debit, credit, amount, eur());
    vec![
        (1, open(1, "world", eur(), BalanceConstraint::None)),
        (
            1,
            open(
                2,
                "wallet",
                eur(),
                BalanceConstraint::DebitsMustNotExceedCredits,
            ),
        ),
        (1, open(3, "shop", eur(), BalanceConstraint::None)),
        (1, open(4, "temporary", eur(), BalanceConstraint::None)),
        (1, open(5, "gold:mine", gold(), BalanceConstraint::None)),
        (
            1,
            open(
                6,
                "gold:vault",
                gold(),
                BalanceConstraint::CreditsMustNotExceedDebits,
            ),
        ),
        (2, Command::CreateTransfer(e(10, 1, 2, "100.00"))),
        (
            3,
            Command::CreateTransfer(pending(e(11, 2, 3, "30.00"), 3600)),
        ),
        (
            4,
            Command::CreateTransfer(pending(e(12, 2, 3, "10.00"), 3600)),
        ),
        (5, Command::CreateTransfer(pending(e(13, 2, 3, "5.00"), 60))),
        (6, Command::CreateTransfer(e(14, 2, 3, "15.00"))),
        (7, Command::CreateTransfer(e(17, 2, 3, "1000.00"))),
        (
            8,
            Command::CreateTransfer(transfer(16, 6, 5, "2.500", gold())),
        ),
        (
            8,
            Command::CreateTransfersAtomically(vec![e(18, 3, 1, "1.50"), e(19, 3, 4, "0.50")]),
        ),
        (9, Command::FreezeAccount(account_id(2))),
        (10, Command::UnfreezeAccount(account_id(2))),
        (
            20,
            Command::PostTransfer {
                id: transfer_id(11),
                amount: Some(Decimal::new(2000, 2)),
            },
        ),
        (21, Command::VoidTransfer(transfer_id(12))),
        (70, Command::ExpireTransfers(vec![transfer_id(13)])),
        (
            71,
            Command::ReverseTransfer {
                id: transfer_id(14),
                reversal: ReversalRequest {
                    id: transfer_id(15),
                    amount: Some(Decimal::new(500, 2)),
                    code: None,
                    reference: Some(Reference::parse("refund").expect("a valid reference")),
                    description: Some(Description::parse("partial refund").expect("valid")),
                    metadata: Metadata::default(),
                },
            },
        ),
        (72, Command::CreateTransfer(e(20, 4, 1, "0.50"))),
        (73, Command::CloseAccount(account_id(4))),
    ]
}

/// The journal of [`history`]: each accepted command's events sealed onto the chain.
pub fn journal() -> Vec<JournalEvent> {
    let name = ledger_name();
    let new_ledger = NewLedger {
        name: name.clone(),
        assets: vec![gold()],
        metadata: Metadata::default(),
    };
    let (mut book, genesis) = Book::genesis(new_ledger, at(0)).expect("a valid ledger");
    let mut head = ChainHead::GENESIS;
    let client = |index: usize| Provenance {
        actor: KEY_ID.into(),
        request_id: Some(format!("request-{index}")),
        idempotency_key: Some(format!("key-{index}")),
    };
    let mut journal = vec![head.seal(&name, &genesis, &client(0))];
    for (index, (seconds, command)) in history().into_iter().enumerate() {
        let provenance = match command {
            Command::ExpireTransfers(_) => Provenance::system(),
            _ => client(index + 1),
        };
        // A refusal (the overdraft) records nothing.
        if let Ok(events) = book.execute(&command, at(seconds)) {
            journal.extend(
                events
                    .iter()
                    .map(|applied| head.seal(&name, applied, &provenance)),
            );
        }
    }
    journal
}

fn replayed(events: &[JournalEvent]) -> Book {
    let mut replayer = Replayer::new();
    for event in events {
        replayer.push(event).expect("the built journal replays");
    }
    replayer.book().expect("a ledger was created").clone()
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

/// The export of events `from_seq..=to_seq` of `journal` (which starts at seq 1), line by line,
/// signed with [`signing_key`].
pub fn export(journal: &[JournalEvent], from_seq: u64, to_seq: u64) -> Vec<Line> {
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
            merkle.append_event_hash(&event.hash).expect("a small tree");
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
    let signed_at = through.last().map_or(at(0), |event| event.at);
    lines.push(Line::Checkpoint {
        tree_size: to_seq,
        note: sign_checkpoint_at(ORIGIN, to_seq, &root, signed_at, &key).expect("signs"),
    });
    let book = replayed(through);
    lines.extend(
        accounts_in_id_order(&book)
            .iter()
            .map(|account| Line::Balance(AccountBalance::of(account))),
    );
    with_manifest_signed(lines, &key)
}

/// The lines without manifest and signature, then a new manifest over them signed by `key`.
pub fn with_manifest_signed(lines: Vec<Line>, key: &SigningKey) -> Vec<Line> {
    let mut lines: Vec<Line> = lines
        .into_iter()
        .filter(|line| !matches!(line, Line::Manifest(_) | Line::Signature(_)))
        .collect();
    let header = match lines.first() {
        Some(Line::Header(header)) => header.clone(),
        _ => return lines,
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
        signed_at: None,
    });
    let signature = sign_manifest(&manifest.encode(), key);
    lines.push(manifest);
    lines.push(Line::Signature(signature));
    lines
}

pub fn encoded(lines: &[Line]) -> Vec<Vec<u8>> {
    lines.iter().map(Line::encode).collect()
}

/// The file of these lines: each followed by `\n`.
pub fn file_of(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut file = Vec::new();
    for line in lines {
        file.extend_from_slice(line);
        file.push(b'\n');
    }
    file
}

/// The built journal (its events are the same on every call).
pub fn built_journal() -> &'static [JournalEvent] {
    static JOURNAL: OnceLock<Vec<JournalEvent>> = OnceLock::new();
    JOURNAL.get_or_init(journal)
}

/// A full export (from seq 1) and a partial one (with an opening), as lines.
pub fn built_exports() -> &'static [Vec<Line>; 2] {
    static EXPORTS: OnceLock<[Vec<Line>; 2]> = OnceLock::new();
    EXPORTS.get_or_init(|| {
        let journal = built_journal();
        let to_seq = journal.len() as u64;
        [export(journal, 1, to_seq), export(journal, 9, to_seq)]
    })
}

/// What a forger holding the signing key does after changing lines: re-chain every event from
/// the opening (prev_hash and hash), re-sign the checkpoint over the new Merkle root with the
/// new last event's time, re-sign the manifest. Lines that are not where §5 puts them are kept.
pub fn resealed(lines: Vec<Line>) -> Vec<Line> {
    let key = signing_key();
    let opening = lines.iter().find_map(|line| match line {
        Line::Opening(opening) => Some(opening.clone()),
        _ => None,
    });
    let (mut previous_hash, mut merkle) = match opening {
        Some(opening) => (opening.hash, opening.merkle),
        None => (Hash32::ZERO, MerkleFrontier::new()),
    };
    let mut last_at = at(0);
    let lines = lines
        .into_iter()
        .map(|line| match line {
            Line::Event(mut event) => {
                event.prev_hash = previous_hash;
                event.hash = event.computed_hash();
                previous_hash = event.hash;
                last_at = event.at;
                // A tree beyond 2^63 leaves cannot be built; the checkpoint then stays stale.
                let _ = merkle.append_event_hash(&event.hash);
                Line::Event(event)
            }
            Line::Checkpoint { tree_size, note } => Line::Checkpoint {
                tree_size,
                note: sign_checkpoint_at(ORIGIN, tree_size, &merkle.root(), last_at, &key)
                    .unwrap_or(note),
            },
            other => other,
        })
        .collect();
    with_manifest_signed(lines, &key)
}
