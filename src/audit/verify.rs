//! Verification of a signed export (docs/AUDIT_FORMAT.md §6): what `ledger-verify` runs.
//!
//! The export is read once, line by line, in file order, and every check of §6 runs as soon as
//! the line it needs has arrived: the chain, the replay and the Merkle tree with each event; the
//! checkpoint at its line; each balance line against the replayed book; the counts, the content
//! hash and the signature at the end. The first fault in file order is the one reported (within
//! one line, in the order of §6), so a changed event is named at its own seq rather than by the
//! content hash at the end of the file. Memory holds the replayed ledger (the [`Book`]), the
//! Merkle frontier and one line; never the whole export.
//!
//! Beyond the export itself, a verification may be given several keys with the times they were
//! in service (`GET /v1/keys`, [`TrustedKey`]): the manifest's key id picks the key, and a
//! checkpoint's `signed_at` line is held against its key's `valid_from` / `retired_at`. And it
//! may be given checkpoints the auditor kept earlier ([`Anchor`]): the export's tree must have
//! each one's root at its size, which a key holder who rewrote history cannot fake.
//!
//! Pure and panic-free: the lines come from an iterator (the caller does the I/O), and any input,
//! however malformed or hostile, ends in a [`Report`] or an [`ExportFault`]. Untrusted parts of
//! a partial export's opening state are checked against the invariants the engine relies on
//! before they reach it.

use std::collections::HashSet;
use std::fmt;

use ed25519_dalek::VerifyingKey;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::chain::{ChainHead, JournalEvent};
use super::checkpoint::{
    open_checkpoint_with_signers, CheckpointError, NoteVerifier, SignedCheckpoint,
};
use super::export::{
    key_id, signature_is_valid, AccountBalance, ContentHasher, ExportError, ExportSignature,
    Header, Line, Manifest, Opening,
};
use super::hash::Hash32;
use super::merkle::{
    empty_tree_root, node_hash, verify_consistency, MerkleFrontier, MAX_TREE_SIZE,
};
use super::replay::{Fault, FaultKind, Replayer};
use super::time::format_timestamp;
use crate::domain::limits::{self, Limit, Violation};
use crate::domain::money::MAX_MANTISSA;
use crate::domain::{
    Account, AccountCode, AccountId, AppliedEvent, Book, Currency, LedgerEvent, Rejection, Side,
    Timestamp, Transfer, TransferState,
};

/// The longest line a reader should hand over. The longest legitimate line is a checkpoint note
/// (at most 1 MiB, its newlines escaped); anything far beyond is refused before it fills memory.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// What an export verified to: the facts `ledger-verify` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub ledger: String,
    pub origin: String,
    pub from_seq: u64,
    pub to_seq: u64,
    /// Number of events replayed (`to_seq - from_seq + 1`).
    pub events: u64,
    /// Number of accounts of the ledger at `to_seq` (= balance lines).
    pub accounts: u64,
    /// The Merkle root of the `to_seq` events, equal to the signed checkpoint's.
    pub merkle_root: Hash32,
    pub checkpoint_size: u64,
    /// The export key id (docs/AUDIT_FORMAT.md §4) of the key that signed the manifest.
    pub key_id: String,
    /// Number of lines of the export, the manifest and signature included.
    pub lines: u64,
    /// The sizes of the kept checkpoints ([`Anchor`]) the export's tree was found to contain.
    pub anchors: Vec<u64>,
}

impl Report {
    pub fn to_json(&self) -> Value {
        json!({
            "ledger": self.ledger,
            "origin": self.origin,
            "from_seq": self.from_seq,
            "to_seq": self.to_seq,
            "events": self.events,
            "accounts": self.accounts,
            "merkle_root": self.merkle_root.to_hex(),
            "checkpoint_size": self.checkpoint_size,
            "key_id": self.key_id,
            "lines": self.lines,
            "anchors": self.anchors,
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ledger {} events {}..={} ({} events, {} accounts), merkle root {} = checkpoint of \
             size {}, signed by key {}",
            self.ledger,
            self.from_seq,
            self.to_seq,
            self.events,
            self.accounts,
            self.merkle_root,
            self.checkpoint_size,
            self.key_id
        )?;
        if !self.anchors.is_empty() {
            let sizes: Vec<String> = self.anchors.iter().map(u64::to_string).collect();
            write!(
                f,
                ", containing the kept checkpoints of size {}",
                sizes.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The first problem found in an export: what, where (line, and event seq when there is one),
/// and a sentence for people.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportFault {
    pub kind: ExportFaultKind,
    /// 1-based line of the export where the problem shows.
    pub line: u64,
    /// The seq of the event concerned, when there is one.
    pub seq: Option<u64>,
    pub detail: String,
}

impl ExportFault {
    /// The stable snake_case code of [`ExportFaultKind::code`].
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    pub fn to_json(&self) -> Value {
        let mut object = json!({
            "code": self.code(),
            "line": self.line,
            "seq": self.seq,
            "detail": self.detail,
        });
        match &self.kind {
            ExportFaultKind::IllegalEvent(rejection) => {
                object["rejection"] = Value::String(rejection.code().to_owned());
            }
            ExportFaultKind::LimitBroken(limit) => {
                object["limit"] = Value::String(limit.name.to_owned());
            }
            _ => {}
        }
        object
    }
}

impl fmt::Display for ExportFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (event seq {seq})")?;
        }
        write!(f, ": {}: {}", self.code(), self.detail)
    }
}

/// Every fault an export can have. The doc comment of each variant starts with its code.
#[derive(Clone, Debug, PartialEq)]
pub enum ExportFaultKind {
    /// `unreadable`: the export could not be read (an I/O error in the middle of the file).
    Unreadable,
    /// `line_too_long`: a line is longer than [`MAX_LINE_BYTES`].
    LineTooLong,
    /// `truncated`: the export ends before its signature line, or its last line has no final
    /// newline.
    Truncated,
    /// `not_json`: a line is not a JSON value.
    NotJson,
    /// `not_canonical`: a line is JSON but not the RFC 8785 (JCS) form of its object.
    NotCanonical,
    /// `malformed_line`: a line is not a line of an export: unknown `kind`, missing or extra
    /// keys, values of the wrong form.
    MalformedLine,
    /// `out_of_order`: a line's `kind` is not allowed where it is (§5 order), or a line follows
    /// the signature.
    OutOfOrder,
    /// `invalid_header`: the header's range or assets are impossible (`from_seq` 0 or above
    /// `to_seq`, a tree too large, an asset declared twice or with an ISO 4217 code).
    InvalidHeader,
    /// `invalid_opening`: the opening state of a partial export is inconsistent: wrong seq or
    /// Merkle size, an account or transfer twice, or one breaking the ledger's invariants.
    InvalidOpening,
    /// `manifest_mismatch`: the manifest and the header disagree on ledger, origin or range.
    ManifestMismatch,
    /// `count_mismatch`: the manifest's `lines`, `events` or `balances` is not what the file
    /// holds.
    CountMismatch,
    /// `content_hash_mismatch`: the manifest's `content_sha256` is not the SHA-256 of the lines
    /// before it.
    ContentHashMismatch,
    /// `unknown_key`: the manifest or the signature names another key than the public key given
    /// (or than any of the keys given).
    UnknownKey,
    /// `key_not_valid`: the key that signed was not in service then: a checkpoint's `signed_at`
    /// lies outside its key's `valid_from`..`retired_at`, or the manifest's key was retired
    /// before the export's last event (only with keys that state those times).
    KeyNotValid,
    /// `bad_signature`: the signature does not verify over the manifest line with the key.
    BadSignature,
    /// `seq_out_of_order`: an event's seq is not the next one (a gap, a repeat, a swap) or lies
    /// beyond the header's `to_seq`.
    SeqOutOfOrder,
    /// `prev_hash_mismatch`: an event's `prev_hash` is not the previous event's `hash` (64 zeros
    /// for seq 1, the opening hash for the first event of a partial export).
    PrevHashMismatch,
    /// `hash_mismatch`: an event's `hash` is not SHA-256 of its canonical form without `hash`.
    HashMismatch,
    /// `other_ledger`: an event belongs to another ledger than the header's.
    OtherLedger,
    /// `time_went_backwards`: an event's `at` is earlier than the previous event's.
    TimeWentBackwards,
    /// `undecodable_event`: an event's type or data is not one of §2.
    UndecodableEvent,
    /// `data_not_canonical`: an event's data decodes but is not written in its one canonical
    /// form.
    DataNotCanonical,
    /// `genesis_missing`: a full export does not start with `ledger_created`.
    GenesisMissing,
    /// `assets_mismatch`: the header's assets are not those of the `ledger_created` event.
    AssetsMismatch,
    /// `limit_broken`: a line breaks one of the limits of `domain::limits` (a name's pattern,
    /// a length, an amount's form, a timeout's range, metadata, an actor, the origin); the
    /// limit's name is in the variant, in the JSON report (`limit`) and in the detail.
    LimitBroken(&'static Limit),
    /// `illegal_event`: the engine refuses the event (a state transition or balance rule is
    /// broken); the rejection's own code is in the variant and in the detail.
    IllegalEvent(Rejection),
    /// `unbalanced_postings`: an event's postings are not one debit and one credit of equal
    /// amounts (for a transfer movement) or not none (for any other event).
    UnbalancedPostings,
    /// `events_missing`: the events stop before the header's `to_seq`.
    EventsMissing,
    /// `checkpoint_invalid`: the checkpoint note does not open: malformed, another origin, or
    /// not signed by the public key under the origin's key name.
    CheckpointInvalid,
    /// `checkpoint_size_mismatch`: the checkpoint's tree size is not the header's `to_seq`.
    CheckpointSizeMismatch,
    /// `merkle_root_mismatch`: the Merkle root of the events is not the checkpoint's root.
    MerkleRootMismatch,
    /// `balance_mismatch`: a balance line differs from the replayed account (code, currency,
    /// status or one of the four balances).
    BalanceMismatch,
    /// `missing_balance`: an account of the replayed ledger has no balance line.
    MissingBalance,
    /// `unexpected_balance`: a balance line for an account the ledger does not have, a second
    /// line for one account, or lines out of account id order.
    UnexpectedBalance,
    /// `unbalanced_currency`: summed over all accounts of one currency, posted debits differ
    /// from posted credits or pending debits from pending credits.
    UnbalancedCurrency,
    /// `anchor_invalid`: a kept checkpoint does not open: malformed, another origin, or not
    /// signed by a key given.
    AnchorInvalid,
    /// `anchor_beyond_export`: a kept checkpoint is of a larger tree than the export's.
    AnchorBeyondExport,
    /// `anchor_mismatch`: the export's tree at a kept checkpoint's size has another root, or
    /// the consistency proof given for it does not verify: the history was rewritten.
    AnchorMismatch,
    /// `anchor_unprovable`: a kept checkpoint lies before a range export's opening and is not
    /// one of the subtrees of its frontier, and no consistency proof for it was given.
    AnchorUnprovable,
}

impl ExportFaultKind {
    /// Every code a fault can carry, in the order of the variants: for the documentation.
    pub const ALL_CODES: &'static [&'static str] = &[
        "unreadable",
        "line_too_long",
        "truncated",
        "not_json",
        "not_canonical",
        "malformed_line",
        "out_of_order",
        "invalid_header",
        "invalid_opening",
        "manifest_mismatch",
        "count_mismatch",
        "content_hash_mismatch",
        "unknown_key",
        "key_not_valid",
        "bad_signature",
        "seq_out_of_order",
        "prev_hash_mismatch",
        "hash_mismatch",
        "other_ledger",
        "time_went_backwards",
        "undecodable_event",
        "data_not_canonical",
        "genesis_missing",
        "assets_mismatch",
        "limit_broken",
        "illegal_event",
        "unbalanced_postings",
        "events_missing",
        "checkpoint_invalid",
        "checkpoint_size_mismatch",
        "merkle_root_mismatch",
        "balance_mismatch",
        "missing_balance",
        "unexpected_balance",
        "unbalanced_currency",
        "anchor_invalid",
        "anchor_beyond_export",
        "anchor_mismatch",
        "anchor_unprovable",
    ];

    /// A stable snake_case name for reports, scripts and tests.
    pub fn code(&self) -> &'static str {
        match self {
            ExportFaultKind::Unreadable => "unreadable",
            ExportFaultKind::LineTooLong => "line_too_long",
            ExportFaultKind::Truncated => "truncated",
            ExportFaultKind::NotJson => "not_json",
            ExportFaultKind::NotCanonical => "not_canonical",
            ExportFaultKind::MalformedLine => "malformed_line",
            ExportFaultKind::OutOfOrder => "out_of_order",
            ExportFaultKind::InvalidHeader => "invalid_header",
            ExportFaultKind::InvalidOpening => "invalid_opening",
            ExportFaultKind::ManifestMismatch => "manifest_mismatch",
            ExportFaultKind::CountMismatch => "count_mismatch",
            ExportFaultKind::ContentHashMismatch => "content_hash_mismatch",
            ExportFaultKind::UnknownKey => "unknown_key",
            ExportFaultKind::KeyNotValid => "key_not_valid",
            ExportFaultKind::BadSignature => "bad_signature",
            ExportFaultKind::SeqOutOfOrder => "seq_out_of_order",
            ExportFaultKind::PrevHashMismatch => "prev_hash_mismatch",
            ExportFaultKind::HashMismatch => "hash_mismatch",
            ExportFaultKind::OtherLedger => "other_ledger",
            ExportFaultKind::TimeWentBackwards => "time_went_backwards",
            ExportFaultKind::UndecodableEvent => "undecodable_event",
            ExportFaultKind::DataNotCanonical => "data_not_canonical",
            ExportFaultKind::GenesisMissing => "genesis_missing",
            ExportFaultKind::AssetsMismatch => "assets_mismatch",
            ExportFaultKind::LimitBroken(_) => "limit_broken",
            ExportFaultKind::IllegalEvent(_) => "illegal_event",
            ExportFaultKind::UnbalancedPostings => "unbalanced_postings",
            ExportFaultKind::EventsMissing => "events_missing",
            ExportFaultKind::CheckpointInvalid => "checkpoint_invalid",
            ExportFaultKind::CheckpointSizeMismatch => "checkpoint_size_mismatch",
            ExportFaultKind::MerkleRootMismatch => "merkle_root_mismatch",
            ExportFaultKind::BalanceMismatch => "balance_mismatch",
            ExportFaultKind::MissingBalance => "missing_balance",
            ExportFaultKind::UnexpectedBalance => "unexpected_balance",
            ExportFaultKind::UnbalancedCurrency => "unbalanced_currency",
            ExportFaultKind::AnchorInvalid => "anchor_invalid",
            ExportFaultKind::AnchorBeyondExport => "anchor_beyond_export",
            ExportFaultKind::AnchorMismatch => "anchor_mismatch",
            ExportFaultKind::AnchorUnprovable => "anchor_unprovable",
        }
    }
}

/// Why a reader could not hand over the next line. The verifier reports it at that line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnreadableLine {
    /// The input ends inside a line: the final `\n` is missing.
    Unterminated,
    /// The line is longer than [`MAX_LINE_BYTES`].
    TooLong,
    /// The input failed (an I/O error), with its message.
    Io(String),
}

/// The lines of an export held in memory, without their `\n`, as [`verify_export`] takes them.
/// Bytes after the last `\n` are an unterminated line.
pub fn split_lines(export: &[u8]) -> impl Iterator<Item = Result<Vec<u8>, UnreadableLine>> + '_ {
    let mut rest = export;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(end) = rest.iter().position(|byte| *byte == b'\n') else {
            rest = &[];
            return Some(Err(UnreadableLine::Unterminated));
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if line.len() > MAX_LINE_BYTES {
            return Some(Err(UnreadableLine::TooLong));
        }
        Some(Ok(line.to_vec()))
    })
}

/// A key that may have signed exports and checkpoints, with the times it was in service when
/// they are known (`GET /v1/keys`: `valid_from`, `retired_at`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    pub key: VerifyingKey,
    /// The export key id (docs/AUDIT_FORMAT.md §4) of `key`.
    pub key_id: String,
    pub valid_from: Option<Timestamp>,
    pub retired_at: Option<Timestamp>,
}

impl TrustedKey {
    /// A key with no stated time of service: valid whenever.
    pub fn new(key: VerifyingKey) -> TrustedKey {
        TrustedKey {
            key_id: key_id(&key),
            key,
            valid_from: None,
            retired_at: None,
        }
    }

    /// Whether the key was in service at `at`: `valid_from <= at <= retired_at` (both ends
    /// included: at a rotation the old and the new key are both valid).
    pub fn was_valid_at(&self, at: Timestamp) -> bool {
        self.valid_from.is_none_or(|from| from <= at)
            && self.retired_at.is_none_or(|retired| at <= retired)
    }

    fn window_text(&self) -> String {
        let time = |at: Option<Timestamp>| at.map_or("-".to_owned(), format_timestamp);
        format!(
            "key {} is valid from {} to {}",
            self.key_id,
            time(self.valid_from),
            time(self.retired_at)
        )
    }
}

/// A signed checkpoint an auditor kept earlier: the export's tree must contain it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// What to call it in reports (e.g. its file name).
    pub name: String,
    /// The signed note (C2SP signed-note of a tlog-checkpoint).
    pub note: String,
    /// A consistency proof from the kept tree to a tree of the export, for a range export whose
    /// opening comes after the kept checkpoint (`GET .../proofs/consistency?from_size=&to_size=`).
    pub consistency: Option<AnchorProof>,
}

/// An RFC 9162 consistency proof from an anchor's tree to the export's tree of `to_size`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnchorProof {
    pub to_size: u64,
    pub proof: Vec<Hash32>,
}

/// What an export is verified against: the keys that may have signed it, and the checkpoints
/// kept before.
#[derive(Clone, Copy, Debug)]
pub struct Verification<'a> {
    pub keys: &'a [TrustedKey],
    pub anchors: &'a [Anchor],
}

/// Verifies a signed export against the service's Ed25519 public key, reading `lines` (each
/// without its `\n`) once, in order. `progress` receives the number of bytes verified so far
/// (each line counted with its `\n`) after every line.
pub fn verify_export<I>(
    lines: I,
    public_key: &VerifyingKey,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, ExportFault>
where
    I: IntoIterator<Item = Result<Vec<u8>, UnreadableLine>>,
{
    let keys = [TrustedKey::new(*public_key)];
    let verification = Verification {
        keys: &keys,
        anchors: &[],
    };
    verify_export_with(lines, &verification, progress)
}

/// [`verify_export`] with several keys (the manifest's key id chooses) and kept checkpoints.
pub fn verify_export_with<I>(
    lines: I,
    verification: &Verification<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, ExportFault>
where
    I: IntoIterator<Item = Result<Vec<u8>, UnreadableLine>>,
{
    let mut lines = lines.into_iter();
    let first = match lines.next() {
        None => return Err(truncated(1, "the export is empty: it has no header")),
        Some(first) => first.map_err(|reason| unreadable_line_fault(reason, 1))?,
    };
    let mut verifier = ExportVerifier::start(&first, verification)?;
    let mut bytes_verified = first.len() as u64 + 1;
    progress(bytes_verified);
    for line in lines {
        let line = line.map_err(|reason| unreadable_line_fault(reason, verifier.line + 1))?;
        verifier.verify_line(&line)?;
        bytes_verified += line.len() as u64 + 1;
        progress(bytes_verified);
    }
    verifier.finish()
}

/// The sections of an export in the order of §5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Header,
    Opening,
    OpeningAccounts,
    OpeningTransfers,
    Events,
    Checkpoint,
    Balances,
    Manifest,
    Signature,
}

impl Section {
    fn of(line: &Line) -> Section {
        match line {
            Line::Header(_) => Section::Header,
            Line::Opening(_) => Section::Opening,
            Line::OpeningAccount(_) => Section::OpeningAccounts,
            Line::OpeningTransfer(_) => Section::OpeningTransfers,
            Line::Event(_) => Section::Events,
            Line::Checkpoint { .. } => Section::Checkpoint,
            Line::Balance(_) => Section::Balances,
            Line::Manifest(_) => Section::Manifest,
            Line::Signature(_) => Section::Signature,
        }
    }

    /// Whether a line of section `next` may come right after one of `self`. The opening is
    /// there exactly when the range starts after seq 1.
    fn may_be_followed_by(self, next: Section, starts_after_genesis: bool) -> bool {
        use Section::*;
        match (self, next) {
            (Header, Opening) => starts_after_genesis,
            (Header, Events) => !starts_after_genesis,
            (Opening | OpeningAccounts, OpeningAccounts) => true,
            (Opening | OpeningAccounts | OpeningTransfers, OpeningTransfers | Events) => true,
            (Events, Events | Checkpoint) => true,
            (Checkpoint | Balances, Balances | Manifest) => true,
            (Manifest, Signature) => true,
            _ => false,
        }
    }
}

/// The state before the first event of a partial export, assembled from its opening lines.
struct OpeningState {
    book: Book,
    head: ChainHead,
    at: Timestamp,
    /// Account codes seen, to refuse a code used twice (the book does not index them publicly).
    codes: HashSet<AccountCode>,
}

/// The balance lines walked against the replayed accounts, both in account id order.
#[derive(Default)]
struct BalanceWalk {
    account_ids: Vec<AccountId>,
    next: usize,
    lines: u64,
}

/// A kept checkpoint, opened, waiting for the export's tree to reach the size it is checked at.
struct PendingAnchor {
    name: String,
    size: u64,
    root: Hash32,
    consistency: Option<AnchorProof>,
    /// The export's tree size at which it is checked: its own size, or the proof's `to_size`.
    check_at: Option<u64>,
    done: bool,
}

struct ExportVerifier<'k> {
    keys: &'k [TrustedKey],
    /// The key the manifest names, once the manifest is read.
    signing_key: Option<&'k TrustedKey>,
    header: Header,
    /// The number of the line being verified (1-based).
    line: u64,
    section: Section,
    content: ContentHasher,
    opening: Option<OpeningState>,
    replayer: Replayer,
    frontier: MerkleFrontier,
    event_lines: u64,
    balances: BalanceWalk,
    manifest_line: Option<Vec<u8>>,
    signed: bool,
    last_event_at: Option<Timestamp>,
    anchors: Vec<PendingAnchor>,
}

impl<'k> ExportVerifier<'k> {
    /// Starts from the first line, which must be the header.
    fn start(
        bytes: &[u8],
        verification: &Verification<'k>,
    ) -> Result<ExportVerifier<'k>, ExportFault> {
        let line = Line::decode(bytes).map_err(|error| decode_fault(error, 1))?;
        let Line::Header(header) = line else {
            let detail = format!("the first line must be the header, not a {}", line.kind());
            return Err(fault(ExportFaultKind::OutOfOrder, 1, None, detail));
        };
        check_header(&header).map_err(|(kind, detail)| fault(kind, 1, None, detail))?;
        let mut content = ContentHasher::new();
        content.add_line(bytes);
        let mut verifier = ExportVerifier {
            keys: verification.keys,
            signing_key: None,
            header,
            line: 1,
            section: Section::Header,
            content,
            opening: None,
            replayer: Replayer::new().with_provenance_rules(),
            frontier: MerkleFrontier::new(),
            event_lines: 0,
            balances: BalanceWalk::default(),
            manifest_line: None,
            signed: false,
            last_event_at: None,
            anchors: Vec::new(),
        };
        verifier.open_anchors(verification.anchors)?;
        if verifier.header.from_seq == 1 {
            verifier.schedule_anchors()?;
        }
        Ok(verifier)
    }

    fn verify_line(&mut self, bytes: &[u8]) -> Result<(), ExportFault> {
        self.line += 1;
        let line = Line::decode(bytes).map_err(|error| decode_fault(error, self.line))?;
        self.check_order(&line)?;
        if !matches!(line, Line::Manifest(_) | Line::Signature(_)) {
            self.content.add_line(bytes);
        }
        match line {
            Line::Header(_) => Ok(()),
            Line::Opening(opening) => self.verify_opening(opening),
            Line::OpeningAccount(account) => self.verify_opening_account(account),
            Line::OpeningTransfer(transfer) => self.verify_opening_transfer(transfer),
            Line::Event(event) => self.verify_event(&event),
            Line::Checkpoint { tree_size, note } => self.verify_checkpoint(tree_size, &note),
            Line::Balance(balance) => self.verify_balance(&balance),
            Line::Manifest(manifest) => self.verify_manifest(&manifest, bytes),
            Line::Signature(signature) => self.verify_signature(&signature),
        }
    }

    fn finish(self) -> Result<Report, ExportFault> {
        if !self.signed {
            let detail = format!(
                "the export ends after line {} ({}), before its signature line",
                self.line,
                section_name(self.section)
            );
            return Err(truncated(self.line + 1, &detail));
        }
        Ok(Report {
            ledger: self.header.ledger.to_string(),
            origin: self.header.origin.clone(),
            from_seq: self.header.from_seq,
            to_seq: self.header.to_seq,
            events: self.event_lines,
            accounts: self.balances.account_ids.len() as u64,
            merkle_root: self.frontier.root(),
            checkpoint_size: self.frontier.size(),
            key_id: self
                .signing_key
                .map(|key| key.key_id.clone())
                .unwrap_or_default(),
            lines: self.line,
            anchors: self.anchors.iter().map(|anchor| anchor.size).collect(),
        })
    }

    fn fault(&self, kind: ExportFaultKind, seq: Option<u64>, detail: String) -> ExportFault {
        fault(kind, self.line, seq, detail)
    }

    fn check_order(&mut self, line: &Line) -> Result<(), ExportFault> {
        let next = Section::of(line);
        let starts_after_genesis = self.header.from_seq > 1;
        if !self.section.may_be_followed_by(next, starts_after_genesis) {
            let detail = match self.section {
                Section::Signature => format!("a {} line after the signature", line.kind()),
                _ => format!(
                    "a {} line cannot follow {}",
                    line.kind(),
                    section_name(self.section)
                ),
            };
            return Err(self.fault(ExportFaultKind::OutOfOrder, None, detail));
        }
        self.section = next;
        Ok(())
    }

    fn verify_opening(&mut self, opening: Opening) -> Result<(), ExportFault> {
        let invalid = |detail: String| self.fault(ExportFaultKind::InvalidOpening, None, detail);
        if opening.seq.checked_add(1) != Some(self.header.from_seq) {
            return Err(invalid(format!(
                "the opening is at seq {}, but the range starts at seq {}",
                opening.seq, self.header.from_seq
            )));
        }
        if opening.merkle.size() != opening.seq {
            return Err(invalid(format!(
                "the opening Merkle frontier is of size {}, not {}",
                opening.merkle.size(),
                opening.seq
            )));
        }
        self.frontier = opening.merkle;
        self.opening = Some(OpeningState {
            book: Book::resume(self.header.ledger.clone(), &self.header.assets, opening.seq),
            head: ChainHead {
                seq: opening.seq,
                hash: opening.hash,
            },
            at: opening.at,
            codes: HashSet::new(),
        });
        self.last_event_at = Some(opening.at);
        self.schedule_anchors()
    }

    fn verify_opening_account(&mut self, account: Account) -> Result<(), ExportFault> {
        let line = self.line;
        let Some(opening) = self.opening.as_mut() else {
            return Err(opening_missing(line));
        };
        check_opening_account(opening, &account)
            .map_err(|detail| fault(ExportFaultKind::InvalidOpening, line, None, detail))?;
        opening.codes.insert(account.code.clone());
        opening.book.insert_loaded_account(account);
        Ok(())
    }

    fn verify_opening_transfer(&mut self, transfer: Transfer) -> Result<(), ExportFault> {
        let line = self.line;
        let Some(opening) = self.opening.as_mut() else {
            return Err(opening_missing(line));
        };
        limits::check_timeout(transfer.pending, transfer.timeout_seconds).map_err(|violation| {
            let detail = format!("transfer {}: {}", transfer.id, limit_detail(&violation));
            fault(
                ExportFaultKind::LimitBroken(violation.limit),
                line,
                None,
                detail,
            )
        })?;
        check_opening_transfer(opening, &transfer)
            .map_err(|detail| fault(ExportFaultKind::InvalidOpening, line, None, detail))?;
        opening.book.insert_loaded_transfer(transfer);
        Ok(())
    }

    fn verify_event(&mut self, event: &JournalEvent) -> Result<(), ExportFault> {
        if let Some(opening) = self.opening.take() {
            self.replayer = Replayer::from_opening(opening.book, opening.head, opening.at)
                .with_provenance_rules();
        }
        let seq = Some(event.seq);
        let next_seq = self.replayer.head().seq + 1;
        if event.seq == next_seq && event.seq > self.header.to_seq {
            let detail = format!("the range ends at seq {}", self.header.to_seq);
            return Err(self.fault(ExportFaultKind::SeqOutOfOrder, seq, detail));
        }
        let applied = self
            .replayer
            .push(event)
            .map_err(|replay_fault| fault_of_replay(replay_fault, self.line))?;
        self.check_event_is_of_the_header_ledger(event, &applied)?;
        check_double_entry(&applied)
            .map_err(|detail| self.fault(ExportFaultKind::UnbalancedPostings, seq, detail))?;
        // Cannot fail: the header bounds to_seq by the largest tree.
        self.frontier
            .append_event_hash(&event.hash)
            .map_err(|error| {
                self.fault(ExportFaultKind::MerkleRootMismatch, seq, error.to_string())
            })?;
        self.event_lines += 1;
        self.last_event_at = Some(event.at);
        self.check_anchors_at_tree_size(seq)
    }

    /// The replay holds every event to the ledger of the first one (or of the opening, which is
    /// the header's); this holds that ledger, its name and assets, to the header.
    fn check_event_is_of_the_header_ledger(
        &self,
        event: &JournalEvent,
        applied: &AppliedEvent,
    ) -> Result<(), ExportFault> {
        let seq = Some(event.seq);
        if event.ledger != self.header.ledger.as_str() {
            let detail = format!(
                "the event is of ledger {:?}, the header's is {:?}",
                event.ledger,
                self.header.ledger.as_str()
            );
            return Err(self.fault(ExportFaultKind::OtherLedger, seq, detail));
        }
        match &applied.event {
            LedgerEvent::LedgerCreated(new_ledger) if new_ledger.assets != self.header.assets => {
                let detail = format!(
                    "ledger_created declares the assets {}, the header {}",
                    assets_text(&new_ledger.assets),
                    assets_text(&self.header.assets)
                );
                Err(self.fault(ExportFaultKind::AssetsMismatch, seq, detail))
            }
            _ => Ok(()),
        }
    }

    fn verify_checkpoint(&mut self, tree_size: u64, note: &str) -> Result<(), ExportFault> {
        self.check_every_event_arrived()?;
        let to_seq = self.header.to_seq;
        let size_mismatch = |size: u64| {
            let detail = format!("the checkpoint is of a tree of size {size}, not {to_seq}");
            self.fault(ExportFaultKind::CheckpointSizeMismatch, None, detail)
        };
        if tree_size != to_seq {
            return Err(size_mismatch(tree_size));
        }
        let invalid = |error: CheckpointError| {
            self.fault(ExportFaultKind::CheckpointInvalid, None, error.to_string())
        };
        let signed = self.open_note(note).map_err(invalid)?;
        self.check_signing_time(&signed, "the checkpoint")
            .map_err(|(kind, detail)| self.fault(kind, None, detail))?;
        let checkpoint = signed.checkpoint;
        if checkpoint.size != to_seq {
            return Err(size_mismatch(checkpoint.size));
        }
        let root = self.frontier.root();
        if checkpoint.root != root {
            let detail = format!(
                "the events give the root {root}, the signed checkpoint says {}",
                checkpoint.root
            );
            return Err(self.fault(ExportFaultKind::MerkleRootMismatch, None, detail));
        }
        if let Some(anchor) = self.anchors.iter().find(|anchor| !anchor.done) {
            let detail = format!(
                "the kept checkpoint {} (size {}) was not reached by the export's tree",
                anchor.name, anchor.size
            );
            return Err(self.fault(ExportFaultKind::AnchorUnprovable, None, detail));
        }
        self.balances.account_ids = self.sorted_account_ids();
        Ok(())
    }

    /// The note opened with every key given, under the header's origin.
    fn open_note(&self, note: &str) -> Result<SignedCheckpoint, CheckpointError> {
        let origin = self.header.origin.as_str();
        let verifiers = self
            .keys
            .iter()
            .map(|key| NoteVerifier::new(origin, key.key))
            .collect::<Result<Vec<_>, _>>()?;
        open_checkpoint_with_signers(note, origin, &verifiers)
    }

    /// A note with a `signed_at` line must have a signature by a key in service at that time.
    fn check_signing_time(
        &self,
        signed: &SignedCheckpoint,
        what: &str,
    ) -> Result<(), (ExportFaultKind, String)> {
        let signed_at = signed
            .checkpoint
            .signed_at()
            .map_err(|error| (ExportFaultKind::CheckpointInvalid, error.to_string()))?;
        let Some(at) = signed_at else {
            return Ok(());
        };
        let origin = self.header.origin.as_str();
        let signers: Vec<&TrustedKey> = self
            .keys
            .iter()
            .filter(|key| {
                signed
                    .signed_by
                    .iter()
                    .any(|signer| signer.key_id == super::checkpoint::key_id(origin, &key.key))
            })
            .collect();
        if signers.iter().any(|key| key.was_valid_at(at)) {
            return Ok(());
        }
        let windows: Vec<String> = signers.iter().map(|key| key.window_text()).collect();
        Err((
            ExportFaultKind::KeyNotValid,
            format!(
                "{what} was signed at {}, when no key that signed it was in service ({})",
                format_timestamp(at),
                windows.join("; ")
            ),
        ))
    }

    // -----------------------------------------------------------------------------------------
    // Kept checkpoints (anchors).

    /// Opens every kept checkpoint under the header's origin with the keys given: each must
    /// verify and be of a tree no larger than the export's.
    fn open_anchors(&mut self, anchors: &[Anchor]) -> Result<(), ExportFault> {
        for anchor in anchors {
            let invalid = |detail: String| {
                let detail = format!("the kept checkpoint {}: {detail}", anchor.name);
                fault(ExportFaultKind::AnchorInvalid, 1, None, detail)
            };
            let signed = self
                .open_note(&anchor.note)
                .map_err(|error| invalid(error.to_string()))?;
            self.check_signing_time(&signed, &format!("the kept checkpoint {}", anchor.name))
                .map_err(|(kind, detail)| match kind {
                    ExportFaultKind::CheckpointInvalid => invalid(detail),
                    _ => fault(kind, 1, None, detail),
                })?;
            let checkpoint = signed.checkpoint;
            if checkpoint.size > self.header.to_seq {
                let detail = format!(
                    "the kept checkpoint {} is of a tree of size {}, the export ends at seq {}: \
                     verify a newer export",
                    anchor.name, checkpoint.size, self.header.to_seq
                );
                return Err(fault(ExportFaultKind::AnchorBeyondExport, 1, None, detail));
            }
            self.anchors.push(PendingAnchor {
                name: anchor.name.clone(),
                size: checkpoint.size,
                root: checkpoint.root,
                consistency: anchor.consistency.clone(),
                check_at: None,
                done: false,
            });
        }
        Ok(())
    }

    /// Decides, once the tree the export starts from is known (empty, or the opening
    /// frontier), where each anchor is checked: anchors within the export's own leaves at
    /// their size; older ones at once if they are a prefix of the frontier's subtrees, else at
    /// the size their consistency proof leads to.
    fn schedule_anchors(&mut self) -> Result<(), ExportFault> {
        let start = self.frontier.size();
        let to_seq = self.header.to_seq;
        let prefix_roots = frontier_prefix_roots(&self.frontier);
        let line = self.line;
        for anchor in &mut self.anchors {
            let unprovable = |detail: String| {
                let detail = format!("the kept checkpoint {}: {detail}", anchor.name);
                fault(ExportFaultKind::AnchorUnprovable, line, None, detail)
            };
            if anchor.size >= start {
                anchor.check_at = Some(anchor.size);
            } else if let Some(root) = prefix_root(&prefix_roots, anchor.size) {
                if root != anchor.root {
                    let detail = format!(
                        "the opening's tree at size {} has the root {root}, the kept checkpoint \
                         {} says {}: the history before the range was rewritten",
                        anchor.size, anchor.name, anchor.root
                    );
                    return Err(fault(ExportFaultKind::AnchorMismatch, line, None, detail));
                }
                anchor.done = true;
            } else {
                match &anchor.consistency {
                    Some(proof) if (start..=to_seq).contains(&proof.to_size) => {
                        anchor.check_at = Some(proof.to_size);
                    }
                    Some(proof) => {
                        return Err(unprovable(format!(
                            "its consistency proof leads to size {}, outside the export's \
                             trees {start}..={to_seq}",
                            proof.to_size
                        )))
                    }
                    None => {
                        return Err(unprovable(format!(
                            "size {} lies before the range's opening (size {start}) and is \
                             not a prefix of its frontier: give a consistency proof from size \
                             {} to a size in {start}..={to_seq}",
                            anchor.size, anchor.size
                        )))
                    }
                }
            }
        }
        self.check_anchors_at_tree_size(None)
    }

    /// Checks the anchors due at the tree's current size.
    fn check_anchors_at_tree_size(&mut self, seq: Option<u64>) -> Result<(), ExportFault> {
        let size = self.frontier.size();
        if !self
            .anchors
            .iter()
            .any(|anchor| !anchor.done && anchor.check_at == Some(size))
        {
            return Ok(());
        }
        let root = match size {
            0 => empty_tree_root(),
            _ => self.frontier.root(),
        };
        let line = self.line;
        for anchor in &mut self.anchors {
            if anchor.done || anchor.check_at != Some(size) {
                continue;
            }
            let consistent = match &anchor.consistency {
                Some(proof) if anchor.size != size => {
                    verify_consistency(anchor.size, size, &anchor.root, &root, &proof.proof)
                        .map_err(|error| format!("its consistency proof fails: {error}"))
                }
                _ if anchor.root == root => Ok(()),
                _ => Err(format!(
                    "the export's tree of size {size} has the root {root}, the kept checkpoint \
                     says {}",
                    anchor.root
                )),
            };
            if let Err(reason) = consistent {
                let detail = format!(
                    "the kept checkpoint {} (size {}): {reason}: the history up to seq {} was \
                     rewritten",
                    anchor.name, anchor.size, anchor.size
                );
                return Err(fault(ExportFaultKind::AnchorMismatch, line, seq, detail));
            }
            anchor.done = true;
        }
        Ok(())
    }

    /// At the checkpoint, the events must have reached the end of the range.
    fn check_every_event_arrived(&self) -> Result<(), ExportFault> {
        let last_seq = self.replayer.head().seq;
        if self.event_lines > 0 && last_seq == self.header.to_seq {
            return Ok(());
        }
        let missing = match self.event_lines {
            0 => self.header.from_seq,
            _ => last_seq + 1,
        };
        let detail = format!(
            "the events stop before seq {missing}, the range ends at seq {}",
            self.header.to_seq
        );
        Err(self.fault(ExportFaultKind::EventsMissing, Some(missing), detail))
    }

    fn sorted_account_ids(&self) -> Vec<AccountId> {
        let mut ids: Vec<AccountId> = self
            .replayer
            .book()
            .map(|book| book.accounts().map(|account| account.id).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    fn account(&self, id: AccountId) -> Option<&Account> {
        self.replayer.book().and_then(|book| book.account(id))
    }

    /// Walks the balance lines and the replayed accounts together, both in account id order, so
    /// a missing, extra or repeated line shows at the first line where the two part.
    fn verify_balance(&mut self, balance: &AccountBalance) -> Result<(), ExportFault> {
        self.balances.lines += 1;
        let id = balance.account_id;
        match self.balances.account_ids.get(self.balances.next).copied() {
            Some(expected) if expected < id => Err(self.missing_balance(expected, Some(id))),
            Some(expected) if expected == id => {
                let account = self.account(id);
                if let Some(difference) = account.and_then(|a| balance_difference(balance, a)) {
                    let detail = format!("account {id}: {difference}");
                    return Err(self.fault(ExportFaultKind::BalanceMismatch, None, detail));
                }
                self.balances.next += 1;
                Ok(())
            }
            _ => {
                let detail = match self.account(id) {
                    Some(_) => format!(
                        "the balance line of account {id} repeats or is out of account id order"
                    ),
                    None => format!("account {id} does not exist in the replayed ledger"),
                };
                Err(self.fault(ExportFaultKind::UnexpectedBalance, None, detail))
            }
        }
    }

    fn missing_balance(&self, missing: AccountId, before: Option<AccountId>) -> ExportFault {
        let detail = match before {
            Some(next) => format!(
                "no balance line for account {missing} (expected before account {next}, in \
                 account id order)"
            ),
            None => format!("no balance line for account {missing}"),
        };
        self.fault(ExportFaultKind::MissingBalance, None, detail)
    }

    /// What the end of the balance lines must satisfy: every account had its line, and each
    /// currency's debits equal its credits.
    fn verify_end_of_balances(&self) -> Result<(), ExportFault> {
        if let Some(missing) = self.balances.account_ids.get(self.balances.next) {
            return Err(self.missing_balance(*missing, None));
        }
        match self.replayer.book() {
            Some(book) => check_currencies_balance(book)
                .map_err(|detail| self.fault(ExportFaultKind::UnbalancedCurrency, None, detail)),
            None => Ok(()),
        }
    }

    /// The key a manifest or signature names, among those given.
    fn named_key(&self, what: &str, stated: &str) -> Result<&'k TrustedKey, ExportFault> {
        self.keys
            .iter()
            .find(|key| key.key_id == stated)
            .ok_or_else(|| self.unknown_key(what, stated))
    }

    fn verify_manifest(&mut self, manifest: &Manifest, bytes: &[u8]) -> Result<(), ExportFault> {
        self.verify_end_of_balances()?;
        check_manifest_agrees(&self.header, manifest)
            .map_err(|detail| self.fault(ExportFaultKind::ManifestMismatch, None, detail))?;
        let content = std::mem::take(&mut self.content);
        let counts = [
            ("lines", manifest.lines, content.lines()),
            ("events", manifest.events, self.event_lines),
            ("balances", manifest.balances, self.balances.lines),
        ];
        if let Some((name, stated, actual)) =
            counts.iter().find(|(_, stated, actual)| stated != actual)
        {
            let detail = format!("the manifest counts {stated} {name}, the export has {actual}");
            return Err(self.fault(ExportFaultKind::CountMismatch, None, detail));
        }
        let content_sha256 = content.finish();
        if manifest.content_sha256 != content_sha256 {
            let detail = format!(
                "the manifest states {}, the lines before it hash to {content_sha256}",
                manifest.content_sha256
            );
            return Err(self.fault(ExportFaultKind::ContentHashMismatch, None, detail));
        }
        let key = self.named_key("the manifest", &manifest.key_id)?;
        if let (Some(retired), Some(last)) = (key.retired_at, self.last_event_at) {
            if retired < last {
                let detail = format!(
                    "the manifest names key {}, retired at {}, before the export's last event at \
                     {}: it cannot have signed this export",
                    key.key_id,
                    format_timestamp(retired),
                    format_timestamp(last)
                );
                return Err(self.fault(ExportFaultKind::KeyNotValid, None, detail));
            }
        }
        if let Some(at) = manifest.signed_at {
            self.check_manifest_signing_time(key, at)?;
        }
        self.signing_key = Some(key);
        self.manifest_line = Some(bytes.to_vec());
        Ok(())
    }

    /// A manifest's `signed_at`: not before the last event it covers, and within its key's
    /// time of service (when the keys given state one).
    fn check_manifest_signing_time(
        &self,
        key: &TrustedKey,
        at: Timestamp,
    ) -> Result<(), ExportFault> {
        if let Some(last) = self.last_event_at.filter(|last| at < *last) {
            let detail = format!(
                "the manifest was signed at {}, before the export's last event at {}",
                format_timestamp(at),
                format_timestamp(last)
            );
            return Err(self.fault(ExportFaultKind::KeyNotValid, None, detail));
        }
        if !key.was_valid_at(at) {
            let detail = format!(
                "the manifest was signed at {}, but {}",
                format_timestamp(at),
                key.window_text()
            );
            return Err(self.fault(ExportFaultKind::KeyNotValid, None, detail));
        }
        Ok(())
    }

    fn unknown_key(&self, what: &str, stated: &str) -> ExportFault {
        let detail = match self.keys {
            [only] => format!(
                "{what} names key {stated:?}, the public key given has id {}",
                only.key_id
            ),
            keys => format!(
                "{what} names key {stated:?}, which none of the {} keys given has",
                keys.len()
            ),
        };
        self.fault(ExportFaultKind::UnknownKey, None, detail)
    }

    fn verify_signature(&mut self, signature: &ExportSignature) -> Result<(), ExportFault> {
        let manifest_key = self.signing_key.map(|key| key.key_id.as_str());
        let Some(key) = self
            .signing_key
            .filter(|_| manifest_key == Some(&signature.key_id))
        else {
            return Err(self.unknown_key("the signature", &signature.key_id));
        };
        let manifest_line = self.manifest_line.as_deref().unwrap_or_default();
        if !signature_is_valid(manifest_line, signature, &key.key) {
            let detail = "the Ed25519 signature does not verify over the manifest line".into();
            return Err(self.fault(ExportFaultKind::BadSignature, None, detail));
        }
        self.signed = true;
        Ok(())
    }
}

fn fault(kind: ExportFaultKind, line: u64, seq: Option<u64>, detail: String) -> ExportFault {
    ExportFault {
        kind,
        line,
        seq,
        detail,
    }
}

fn truncated(line: u64, detail: &str) -> ExportFault {
    fault(ExportFaultKind::Truncated, line, None, detail.to_owned())
}

fn unreadable_line_fault(reason: UnreadableLine, line: u64) -> ExportFault {
    match reason {
        UnreadableLine::Unterminated => truncated(line, "the last line has no final newline"),
        UnreadableLine::TooLong => fault(
            ExportFaultKind::LineTooLong,
            line,
            None,
            format!("the line is longer than {MAX_LINE_BYTES} bytes"),
        ),
        UnreadableLine::Io(error) => fault(ExportFaultKind::Unreadable, line, None, error),
    }
}

fn opening_missing(line: u64) -> ExportFault {
    let detail = "an opening_account or opening_transfer line without an opening line".into();
    fault(ExportFaultKind::OutOfOrder, line, None, detail)
}

fn decode_fault(error: ExportError, line: u64) -> ExportFault {
    let (kind, detail) = match error {
        ExportError::NotJson(reason) => (ExportFaultKind::NotJson, format!("not JSON: {reason}")),
        ExportError::NotCanonical => (
            ExportFaultKind::NotCanonical,
            "the line is not the RFC 8785 (JCS) form of its object".to_owned(),
        ),
        ExportError::Malformed(reason) => match limits::named_in(&reason) {
            Some(limit) => (ExportFaultKind::LimitBroken(limit), reason),
            None => (ExportFaultKind::MalformedLine, reason),
        },
    };
    fault(kind, line, None, detail)
}

fn fault_of_replay(replay_fault: Fault, line: u64) -> ExportFault {
    let (kind, detail) = match replay_fault.kind {
        FaultKind::SeqOutOfOrder { expected } => (
            ExportFaultKind::SeqOutOfOrder,
            format!("expected seq {expected}"),
        ),
        FaultKind::PrevHashMismatch => (
            ExportFaultKind::PrevHashMismatch,
            "prev_hash is not the previous event's hash".to_owned(),
        ),
        FaultKind::HashMismatch => (
            ExportFaultKind::HashMismatch,
            "hash is not SHA-256 of the canonical event without its hash".to_owned(),
        ),
        FaultKind::OtherLedger { expected } => (
            ExportFaultKind::OtherLedger,
            format!("the event belongs to another ledger than {expected}"),
        ),
        FaultKind::TimeWentBackwards => (
            ExportFaultKind::TimeWentBackwards,
            "at is earlier than the previous event's".to_owned(),
        ),
        FaultKind::Undecodable(reason) => (
            ExportFaultKind::UndecodableEvent,
            format!("the data does not decode: {reason}"),
        ),
        FaultKind::NotCanonical => (
            ExportFaultKind::DataNotCanonical,
            "the data is not written in its canonical form".to_owned(),
        ),
        FaultKind::GenesisMissing => (
            ExportFaultKind::GenesisMissing,
            "the first event of a ledger must be ledger_created".to_owned(),
        ),
        FaultKind::LimitBroken(violation) => (
            ExportFaultKind::LimitBroken(violation.limit),
            limit_detail(&violation),
        ),
        FaultKind::Rejected(rejection) => {
            let detail = format!("{}: {rejection}", rejection.code());
            (ExportFaultKind::IllegalEvent(rejection), detail)
        }
    };
    fault(kind, line, Some(replay_fault.seq), detail)
}

fn section_name(section: Section) -> &'static str {
    match section {
        Section::Header => "the header",
        Section::Opening => "the opening",
        Section::OpeningAccounts => "an opening_account line",
        Section::OpeningTransfers => "an opening_transfer line",
        Section::Events => "an event",
        Section::Checkpoint => "the checkpoint",
        Section::Balances => "a balance line",
        Section::Manifest => "the manifest",
        Section::Signature => "the signature",
    }
}

fn limit_detail(violation: &Violation) -> String {
    format!("{}: {}", violation.limit.name, violation.detail)
}

/// The range must be non-empty and fit a Merkle tree; the origin must name the ledger, and the
/// custom assets keep their limits (at most 64, declared once, never an ISO 4217 code).
fn check_header(header: &Header) -> Result<(), (ExportFaultKind, String)> {
    let invalid = |detail| Err((ExportFaultKind::InvalidHeader, detail));
    if header.from_seq == 0 || header.from_seq > header.to_seq {
        return invalid(format!(
            "the range {}..={} is empty or starts before seq 1",
            header.from_seq, header.to_seq
        ));
    }
    if header.to_seq > MAX_TREE_SIZE {
        return invalid(format!(
            "to_seq {} is beyond any Merkle tree",
            header.to_seq
        ));
    }
    let broken = |violation: Violation| {
        (
            ExportFaultKind::LimitBroken(violation.limit),
            limit_detail(&violation),
        )
    };
    limits::check_origin(&header.origin, header.ledger.as_str()).map_err(broken)?;
    limits::check_assets(&header.assets).map_err(broken)
}

/// The roots of the trees whose sizes are the prefix sums of a frontier's subtrees, largest
/// first: `(size, root)`. For a frontier of 13 leaves (8 + 4 + 1): sizes 8, 12 and 13.
fn frontier_prefix_roots(frontier: &MerkleFrontier) -> Vec<(u64, Hash32)> {
    let hashes = frontier.hashes();
    let size = frontier.size();
    let sizes: Vec<u64> = (0..64)
        .rev()
        .map(|bit| 1u64 << bit)
        .filter(|power| size & power != 0)
        .collect();
    (1..=hashes.len().min(sizes.len()))
        .map(|count| {
            let prefix_size = sizes[..count].iter().sum();
            let root = hashes[..count - 1]
                .iter()
                .rev()
                .fold(hashes[count - 1], |right, left| node_hash(left, &right));
            (prefix_size, root)
        })
        .collect()
}

fn prefix_root(prefix_roots: &[(u64, Hash32)], size: u64) -> Option<Hash32> {
    match size {
        0 => Some(empty_tree_root()),
        _ => prefix_roots
            .iter()
            .find(|(prefix_size, _)| *prefix_size == size)
            .map(|(_, root)| *root),
    }
}

fn check_manifest_agrees(header: &Header, manifest: &Manifest) -> Result<(), String> {
    let pairs = [
        (
            "ledger",
            header.ledger.to_string(),
            manifest.ledger.to_string(),
        ),
        ("origin", header.origin.clone(), manifest.origin.clone()),
        (
            "from_seq",
            header.from_seq.to_string(),
            manifest.from_seq.to_string(),
        ),
        (
            "to_seq",
            header.to_seq.to_string(),
            manifest.to_seq.to_string(),
        ),
    ];
    match pairs
        .iter()
        .find(|(_, in_header, in_manifest)| in_header != in_manifest)
    {
        Some((key, in_header, in_manifest)) => Err(format!(
            "{key} is {in_header:?} in the header, {in_manifest:?} in the manifest"
        )),
        None => Ok(()),
    }
}

fn assets_text(assets: &[Currency]) -> String {
    let names: Vec<String> = assets
        .iter()
        .map(|asset| format!("{}/{}", asset.code(), asset.scale()))
        .collect();
    format!("[{}]", names.join(", "))
}

/// An amount or balance as the engine keeps them: at the currency's scale, not negative, within
/// the representable range. Anything else could make its arithmetic refuse or misbehave.
fn is_well_formed_amount(value: Decimal, scale: u32) -> bool {
    value.scale() == scale && !value.is_sign_negative() && value.mantissa() <= MAX_MANTISSA
}

fn check_opening_account(opening: &OpeningState, account: &Account) -> Result<(), String> {
    let id = account.id;
    if opening.book.account(id).is_some() || opening.codes.contains(&account.code) {
        return Err(format!(
            "account {id} or its code {} appears twice",
            account.code
        ));
    }
    if opening.book.currency(account.currency.code()).as_ref() != Some(&account.currency) {
        return Err(format!(
            "account {id}: {} with scale {} is not a currency of this ledger",
            account.currency.code(),
            account.currency.scale()
        ));
    }
    let balances = &account.balances;
    let scale = account.currency.scale();
    let well_formed = [
        balances.posted_debits,
        balances.posted_credits,
        balances.pending_debits,
        balances.pending_credits,
    ]
    .into_iter()
    .all(|value| is_well_formed_amount(value, scale));
    if !well_formed || !account.constraint.holds_for(balances) {
        return Err(format!(
            "account {id}: balances not at scale {scale}, negative, too large, or breaking its \
             balance constraint"
        ));
    }
    if account.opened_seq == 0 || account.opened_seq > opening.head.seq {
        return Err(format!(
            "account {id}: opened at seq {}, not before the range",
            account.opened_seq
        ));
    }
    Ok(())
}

fn check_opening_transfer(opening: &OpeningState, transfer: &Transfer) -> Result<(), String> {
    let id = transfer.id;
    if opening.book.transfer(id).is_some() {
        return Err(format!("transfer {id} appears twice"));
    }
    if transfer.debit_account_id == transfer.credit_account_id {
        return Err(format!(
            "transfer {id}: debit and credit account are the same"
        ));
    }
    let scale_of = |account_id: AccountId| {
        let account = opening.book.account(account_id);
        account
            .filter(|account| account.currency.code() == &transfer.currency)
            .map(|account| account.currency.scale())
            .ok_or_else(|| {
                format!(
                    "transfer {id}: account {account_id} is not an opening account in {}",
                    transfer.currency
                )
            })
    };
    let scale = scale_of(transfer.debit_account_id)?;
    scale_of(transfer.credit_account_id)?;
    let amounts_hold = [
        transfer.amount,
        transfer.posted_amount,
        transfer.reversed_amount,
    ]
    .into_iter()
    .all(|value| is_well_formed_amount(value, scale))
        && transfer.amount > Decimal::ZERO
        && transfer.posted_amount <= transfer.amount
        && transfer.reversed_amount <= transfer.posted_amount;
    if !amounts_hold {
        return Err(format!(
            "transfer {id}: amounts not at scale {scale}, not positive, or posted above the \
             amount or reversed above the posted amount"
        ));
    }
    let pending_state_holds = transfer.state != TransferState::Pending
        || (transfer.pending && transfer.posted_amount.is_zero());
    if !pending_state_holds {
        return Err(format!(
            "transfer {id}: pending but not created pending, or with a posted amount"
        ));
    }
    if transfer.journal_seq == 0 || transfer.journal_seq > opening.head.seq {
        return Err(format!(
            "transfer {id}: created at seq {}, not before the range",
            transfer.journal_seq
        ));
    }
    Ok(())
}

/// Double entry per movement: a transfer event moves one debit and one credit posting of the
/// same deltas, on two accounts, for one transfer; any other event moves nothing.
fn check_double_entry(applied: &AppliedEvent) -> Result<(), String> {
    let moves_money = matches!(
        applied.event,
        LedgerEvent::TransferCreated(_)
            | LedgerEvent::TransferPosted { .. }
            | LedgerEvent::TransferVoided(_)
            | LedgerEvent::TransferExpired(_)
            | LedgerEvent::TransferReversed(_)
    );
    let balanced = match applied.postings.as_slice() {
        [] => !moves_money,
        [debit, credit] => {
            moves_money
                && debit.side == Side::Debit
                && credit.side == Side::Credit
                && debit.account_id != credit.account_id
                && debit.transfer_id == credit.transfer_id
                && debit.pending_delta == credit.pending_delta
                && debit.posted_delta == credit.posted_delta
        }
        _ => false,
    };
    if balanced {
        return Ok(());
    }
    Err(format!(
        "{} postings for a {} event, not one debit and one credit of equal amounts",
        applied.postings.len(),
        applied.event.type_name()
    ))
}

/// The first difference between a balance line and the replayed account, if any. Amounts must
/// be equal and written at the same scale (`"10.5"` is not `"10.50"`).
fn balance_difference(line: &AccountBalance, account: &Account) -> Option<String> {
    let replayed = AccountBalance::of(account);
    let texts = |balance: &AccountBalance| {
        [
            ("code", balance.code.to_string()),
            ("currency", balance.currency.to_string()),
            ("status", balance.status.as_str().to_owned()),
            ("posted_debits", balance.balances.posted_debits.to_string()),
            (
                "posted_credits",
                balance.balances.posted_credits.to_string(),
            ),
            (
                "pending_debits",
                balance.balances.pending_debits.to_string(),
            ),
            (
                "pending_credits",
                balance.balances.pending_credits.to_string(),
            ),
        ]
    };
    texts(line)
        .into_iter()
        .zip(texts(&replayed))
        .find(|((_, exported), (_, computed))| exported != computed)
        .map(|((field, exported), (_, computed))| {
            format!("{field} is {exported} in the export, {computed} by replay")
        })
}

/// Per currency, over all accounts: Σ posted debits = Σ posted credits and Σ pending debits =
/// Σ pending credits (SPEC §4.2), summed in minor units without a bound (each amount is below
/// 10^28 minor units, their sums need not be). Currencies are checked in code order, so the
/// report is stable.
fn check_currencies_balance(book: &Book) -> Result<(), String> {
    for (currency, totals) in book.currency_totals()? {
        if !totals.is_balanced() {
            return Err(format!("{currency}: {totals}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_code_is_listed_once() {
        let mut codes = ExportFaultKind::ALL_CODES.to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ExportFaultKind::ALL_CODES.len());
        assert!(ExportFaultKind::ALL_CODES.contains(&ExportFaultKind::UnbalancedCurrency.code()));
        assert!(ExportFaultKind::ALL_CODES
            .contains(&ExportFaultKind::IllegalEvent(Rejection::SameAccount).code()));
    }

    #[test]
    fn split_lines_hands_over_lines_and_flags_an_unterminated_end() {
        let lines: Vec<_> = split_lines(b"a\n\nbc\nd").collect();
        assert_eq!(
            lines,
            vec![
                Ok(b"a".to_vec()),
                Ok(Vec::new()),
                Ok(b"bc".to_vec()),
                Err(UnreadableLine::Unterminated)
            ]
        );
        assert_eq!(split_lines(b"").count(), 0);
    }

    #[test]
    fn an_empty_export_is_truncated_at_line_one() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
        let fault = verify_export(split_lines(b""), &key, &mut |_| {}).unwrap_err();
        assert_eq!((fault.code(), fault.line), ("truncated", 1));
    }
}
