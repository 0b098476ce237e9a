//! The signed export (§5), line by line: what the service writes and `ledger-verify` reads.
//!
//! An export is JSON Lines. Every line is the RFC 8785 (JCS) form of one JSON object with a
//! `kind`, in this order: `header`; when the range does not start at seq 1, `opening`, then the
//! `opening_account` and `opening_transfer` lines of the state before the range; one `event` per
//! journal event of the range; the `checkpoint` of the tree at the range's last seq; one
//! `balance` per account at that seq; the `manifest`; the `signature` of the manifest line.
//! docs/AUDIT_FORMAT.md specifies every byte; this module is its one implementation here.
//!
//! Reading is strict: unknown or missing keys, lines not in their canonical form, and lines out of
//! place are refused.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::chain::JournalEvent;
use super::codec::{CodecError, Fields};
use super::hash::Hash32;
use super::merkle::MerkleFrontier;
use super::time::{format_timestamp, parse_timestamp};
use crate::domain::*;

pub const FORMAT: &str = "ledger-export/1";

/// Why a line is not a line of an export.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not in RFC 8785 canonical form")]
    NotCanonical,
    #[error("{0}")]
    Malformed(String),
}

impl From<crate::domain::limits::Violation> for ExportError {
    fn from(violation: crate::domain::limits::Violation) -> ExportError {
        ExportError::Malformed(violation.to_string())
    }
}

impl From<CodecError> for ExportError {
    fn from(error: CodecError) -> ExportError {
        ExportError::Malformed(error.0)
    }
}

/// A signing key's id in exports and in `GET /v1/keys`: the first 8 bytes of SHA-256 of the
/// 32-byte Ed25519 public key, lowercase hex.
pub fn key_id(public_key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public_key.as_bytes())[..8])
}

#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub ledger: LedgerName,
    /// The checkpoint origin (and signed-note key name) of the ledger.
    pub origin: String,
    /// The ledger's custom assets (ISO 4217 currencies need none).
    pub assets: Vec<Currency>,
    pub from_seq: u64,
    pub to_seq: u64,
}

/// The journal just before the range: its last event and the Merkle tree of the events before.
#[derive(Clone, Debug, PartialEq)]
pub struct Opening {
    pub seq: u64,
    pub hash: Hash32,
    pub at: Timestamp,
    pub merkle: MerkleFrontier,
}

/// An account's balances at the end of the range.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountBalance {
    pub account_id: AccountId,
    pub code: AccountCode,
    pub currency: CurrencyCode,
    pub status: AccountStatus,
    pub balances: Balances,
}

impl AccountBalance {
    pub fn of(account: &Account) -> AccountBalance {
        AccountBalance {
            account_id: account.id,
            code: account.code.clone(),
            currency: account.currency.code().clone(),
            status: account.status,
            balances: account.balances.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub ledger: LedgerName,
    pub origin: String,
    pub from_seq: u64,
    pub to_seq: u64,
    /// Number of `event` lines.
    pub events: u64,
    /// Number of `balance` lines.
    pub balances: u64,
    /// Number of lines before the manifest.
    pub lines: u64,
    /// SHA-256 over the lines before the manifest, each followed by `\n`.
    pub content_sha256: Hash32,
    /// The [`key_id`] of the key that signs the manifest.
    pub key_id: String,
    /// When the service signed the export; absent in exports from before it was recorded (the
    /// key `signed_at` is then absent from the line too).
    pub signed_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExportSignature {
    pub key_id: String,
    /// Ed25519 over the exact bytes of the manifest line (without its newline).
    pub signature: [u8; 64],
}

#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Header(Header),
    Opening(Opening),
    OpeningAccount(Account),
    OpeningTransfer(Transfer),
    Event(JournalEvent),
    Checkpoint { tree_size: u64, note: String },
    Balance(AccountBalance),
    Manifest(Manifest),
    Signature(ExportSignature),
}

impl Line {
    pub fn kind(&self) -> &'static str {
        match self {
            Line::Header(_) => "header",
            Line::Opening(_) => "opening",
            Line::OpeningAccount(_) => "opening_account",
            Line::OpeningTransfer(_) => "opening_transfer",
            Line::Event(_) => "event",
            Line::Checkpoint { .. } => "checkpoint",
            Line::Balance(_) => "balance",
            Line::Manifest(_) => "manifest",
            Line::Signature(_) => "signature",
        }
    }

    /// The line's bytes: RFC 8785 JSON, no newline.
    pub fn encode(&self) -> Vec<u8> {
        super::jcs::canonical_json(&self.to_json())
    }

    pub fn to_json(&self) -> Value {
        let mut object = match self {
            Line::Header(header) => json!({
                "format": FORMAT,
                "ledger": header.ledger.as_str(),
                "origin": header.origin,
                "assets": header.assets.iter().map(|asset| json!({
                    "code": asset.code().as_str(),
                    "scale": asset.scale()
                })).collect::<Vec<_>>(),
                "from_seq": header.from_seq,
                "to_seq": header.to_seq,
            }),
            Line::Opening(opening) => json!({
                "seq": opening.seq,
                "hash": opening.hash.to_hex(),
                "at": format_timestamp(opening.at),
                "merkle_size": opening.merkle.size(),
                "merkle_frontier": opening.merkle.hashes().iter().map(
                    Hash32::to_hex
                ).collect::<Vec<_>>(),
            }),
            Line::OpeningAccount(account) => account_json(account),
            Line::OpeningTransfer(transfer) => transfer_json(transfer),
            Line::Event(event) => json!({ "event": event.to_json() }),
            Line::Checkpoint { tree_size, note } => json!({ "tree_size": tree_size, "note": note }),
            Line::Balance(balance) => {
                let mut object = balances_json(&balance.balances);
                object.insert(
                    "account_id".into(),
                    Value::String(balance.account_id.to_string()),
                );
                object.insert("code".into(), Value::String(balance.code.to_string()));
                object.insert(
                    "currency".into(),
                    Value::String(balance.currency.to_string()),
                );
                object.insert(
                    "status".into(),
                    Value::String(balance.status.as_str().to_owned()),
                );
                Value::Object(object)
            }
            Line::Manifest(manifest) => {
                let mut value = json!({
                    "format": FORMAT,
                    "ledger": manifest.ledger.as_str(),
                    "origin": manifest.origin,
                    "from_seq": manifest.from_seq,
                    "to_seq": manifest.to_seq,
                    "events": manifest.events,
                    "balances": manifest.balances,
                    "lines": manifest.lines,
                    "content_sha256": manifest.content_sha256.to_hex(),
                    "key_id": manifest.key_id,
                });
                if let Some(at) = manifest.signed_at {
                    value["signed_at"] = Value::String(super::time::format_timestamp(at));
                }
                value
            }
            Line::Signature(signature) => json!({
                "algorithm": "ed25519",
                "key_id": signature.key_id,
                "signature": base64_encode(&signature.signature),
            }),
        };
        object
            .as_object_mut()
            .expect("lines are objects")
            .insert("kind".into(), Value::String(self.kind().into()));
        object
    }

    /// Reads one line. It must be in its canonical form: the bytes a verifier hashes are then the
    /// bytes any other implementation would write.
    pub fn decode(bytes: &[u8]) -> Result<Line, ExportError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|error| ExportError::NotJson(error.to_string()))?;
        let line = Line::from_json(&value)?;
        if line.encode() != bytes {
            return Err(ExportError::NotCanonical);
        }
        Ok(line)
    }

    fn from_json(value: &Value) -> Result<Line, ExportError> {
        let fields = Fields::of(value)?;
        let kind = fields.string("kind")?;
        let keys = |keys: &[&str]| -> Result<(), ExportError> {
            let mut all = keys.to_vec();
            all.push("kind");
            Ok(fields.expect_keys(&all)?)
        };
        let line = match kind {
            "header" => {
                keys(&["format", "ledger", "origin", "assets", "from_seq", "to_seq"])?;
                expect_format(&fields)?;
                let assets = fields
                    .array("assets")?
                    .iter()
                    .map(decode_asset)
                    .collect::<Result<Vec<_>, _>>()?;
                Line::Header(Header {
                    ledger: fields.parsed("ledger", LedgerName::parse)?,
                    origin: fields.string("origin")?.to_owned(),
                    assets,
                    from_seq: fields.integer("from_seq")?,
                    to_seq: fields.integer("to_seq")?,
                })
            }
            "opening" => {
                keys(&["seq", "hash", "at", "merkle_size", "merkle_frontier"])?;
                let hashes = fields
                    .array("merkle_frontier")?
                    .iter()
                    .map(|hash| {
                        hash.as_str()
                            .and_then(Hash32::from_hex)
                            .ok_or_else(|| fields.bad("merkle_frontier"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let merkle = MerkleFrontier::from_parts(fields.integer("merkle_size")?, hashes)
                    .map_err(|error| ExportError::Malformed(error.to_string()))?;
                Line::Opening(Opening {
                    seq: fields.integer("seq")?,
                    hash: hash(&fields, "hash")?,
                    at: timestamp(&fields, "at")?,
                    merkle,
                })
            }
            "opening_account" => Line::OpeningAccount(decode_account(value)?),
            "opening_transfer" => Line::OpeningTransfer(decode_transfer(value)?),
            "event" => {
                keys(&["event"])?;
                Line::Event(
                    JournalEvent::from_json(fields.get("event")?)
                        .map_err(ExportError::Malformed)?,
                )
            }
            "checkpoint" => {
                keys(&["tree_size", "note"])?;
                Line::Checkpoint {
                    tree_size: fields.integer("tree_size")?,
                    note: fields.string("note")?.to_owned(),
                }
            }
            "balance" => {
                keys(&[
                    "account_id",
                    "code",
                    "currency",
                    "status",
                    "posted_debits",
                    "posted_credits",
                    "pending_debits",
                    "pending_credits",
                ])?;
                Line::Balance(AccountBalance {
                    account_id: AccountId::new(fields.uuid("account_id")?),
                    code: fields.parsed("code", AccountCode::parse)?,
                    currency: fields.parsed("currency", CurrencyCode::parse)?,
                    status: AccountStatus::parse(fields.string("status")?)
                        .ok_or_else(|| fields.bad("status"))?,
                    balances: decode_balances(&fields)?,
                })
            }
            "manifest" => {
                let mut expected = vec![
                    "format",
                    "ledger",
                    "origin",
                    "from_seq",
                    "to_seq",
                    "events",
                    "balances",
                    "lines",
                    "content_sha256",
                    "key_id",
                ];
                let signed_at = match fields.0.get("signed_at") {
                    None => None,
                    Some(_) => {
                        expected.push("signed_at");
                        let text = fields.string("signed_at")?;
                        Some(super::time::parse_timestamp(text).ok_or_else(|| {
                            ExportError::Malformed(format!(
                                "signed_at must be an RFC 3339 UTC time with microseconds, got \
                                 {text:?}"
                            ))
                        })?)
                    }
                };
                keys(&expected)?;
                expect_format(&fields)?;
                Line::Manifest(Manifest {
                    ledger: fields.parsed("ledger", LedgerName::parse)?,
                    origin: fields.string("origin")?.to_owned(),
                    from_seq: fields.integer("from_seq")?,
                    to_seq: fields.integer("to_seq")?,
                    events: fields.integer("events")?,
                    balances: fields.integer("balances")?,
                    lines: fields.integer("lines")?,
                    content_sha256: hash(&fields, "content_sha256")?,
                    key_id: fields.string("key_id")?.to_owned(),
                    signed_at,
                })
            }
            "signature" => {
                keys(&["algorithm", "key_id", "signature"])?;
                if fields.string("algorithm")? != "ed25519" {
                    return Err(ExportError::Malformed(
                        "the signature algorithm must be ed25519".into(),
                    ));
                }
                let bytes = base64_decode(fields.string("signature")?)
                    .ok_or_else(|| fields.bad("signature"))?;
                let signature: [u8; 64] = bytes.try_into().map_err(|_| fields.bad("signature"))?;
                Line::Signature(ExportSignature {
                    key_id: fields.string("key_id")?.to_owned(),
                    signature,
                })
            }
            other => {
                return Err(ExportError::Malformed(format!(
                    "unknown line kind {other:?}"
                )))
            }
        };
        Ok(line)
    }
}

fn expect_format(fields: &Fields<'_>) -> Result<(), ExportError> {
    match fields.string("format")? {
        FORMAT => Ok(()),
        other => Err(ExportError::Malformed(format!(
            "format {other:?} is not {FORMAT}"
        ))),
    }
}

fn hash(fields: &Fields<'_>, key: &str) -> Result<Hash32, ExportError> {
    Hash32::from_hex(fields.string(key)?).ok_or_else(|| fields.bad(key).into())
}

fn timestamp(fields: &Fields<'_>, key: &str) -> Result<Timestamp, ExportError> {
    parse_timestamp(fields.string(key)?).ok_or_else(|| fields.bad(key).into())
}

fn optional_timestamp(fields: &Fields<'_>, key: &str) -> Result<Option<Timestamp>, ExportError> {
    match fields.get(key)? {
        Value::Null => Ok(None),
        _ => timestamp(fields, key).map(Some),
    }
}

fn decode_asset(value: &Value) -> Result<Currency, ExportError> {
    let fields = Fields::of(value)?;
    fields.expect_keys(&["code", "scale"])?;
    let scale = u32::try_from(fields.integer("scale")?).map_err(|_| fields.bad("scale"))?;
    Currency::new(fields.parsed("code", CurrencyCode::parse)?, scale).map_err(ExportError::from)
}

fn balances_json(balances: &Balances) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert(
        "posted_debits".into(),
        Value::String(balances.posted_debits.to_string()),
    );
    object.insert(
        "posted_credits".into(),
        Value::String(balances.posted_credits.to_string()),
    );
    object.insert(
        "pending_debits".into(),
        Value::String(balances.pending_debits.to_string()),
    );
    object.insert(
        "pending_credits".into(),
        Value::String(balances.pending_credits.to_string()),
    );
    object
}

fn decode_balances(fields: &Fields<'_>) -> Result<Balances, ExportError> {
    Ok(Balances {
        posted_debits: fields.decimal("posted_debits")?,
        posted_credits: fields.decimal("posted_credits")?,
        pending_debits: fields.decimal("pending_debits")?,
        pending_credits: fields.decimal("pending_credits")?,
    })
}

const ACCOUNT_KEYS: &[&str] = &[
    "kind",
    "id",
    "code",
    "currency",
    "scale",
    "normal_side",
    "balance_constraint",
    "status",
    "metadata",
    "posted_debits",
    "posted_credits",
    "pending_debits",
    "pending_credits",
    "created_at",
    "opened_seq",
];

fn constraint_name(constraint: BalanceConstraint) -> &'static str {
    match constraint {
        BalanceConstraint::None => "none",
        BalanceConstraint::DebitsMustNotExceedCredits => "debits_must_not_exceed_credits",
        BalanceConstraint::CreditsMustNotExceedDebits => "credits_must_not_exceed_debits",
    }
}

fn account_json(account: &Account) -> Value {
    let mut object = balances_json(&account.balances);
    object.insert("id".into(), Value::String(account.id.to_string()));
    object.insert("code".into(), Value::String(account.code.to_string()));
    object.insert(
        "currency".into(),
        Value::String(account.currency.code().to_string()),
    );
    object.insert("scale".into(), Value::from(account.currency.scale()));
    object.insert(
        "normal_side".into(),
        Value::String(account.normal_side.as_str().into()),
    );
    object.insert(
        "balance_constraint".into(),
        Value::String(constraint_name(account.constraint).into()),
    );
    object.insert(
        "status".into(),
        Value::String(account.status.as_str().into()),
    );
    object.insert(
        "metadata".into(),
        Value::Object(account.metadata.as_map().clone()),
    );
    object.insert(
        "created_at".into(),
        Value::String(format_timestamp(account.created_at)),
    );
    object.insert("opened_seq".into(), Value::from(account.opened_seq));
    Value::Object(object)
}

fn decode_account(value: &Value) -> Result<Account, ExportError> {
    let fields = Fields::of(value)?;
    fields.expect_keys(ACCOUNT_KEYS)?;
    let scale = u32::try_from(fields.integer("scale")?).map_err(|_| fields.bad("scale"))?;
    let currency = Currency::new(fields.parsed("currency", CurrencyCode::parse)?, scale)
        .map_err(ExportError::from)?;
    let constraint = match fields.string("balance_constraint")? {
        "none" => BalanceConstraint::None,
        "debits_must_not_exceed_credits" => BalanceConstraint::DebitsMustNotExceedCredits,
        "credits_must_not_exceed_debits" => BalanceConstraint::CreditsMustNotExceedDebits,
        _ => return Err(fields.bad("balance_constraint").into()),
    };
    Ok(Account {
        id: AccountId::new(fields.uuid("id")?),
        code: fields.parsed("code", AccountCode::parse)?,
        currency,
        normal_side: NormalSide::parse(fields.string("normal_side")?)
            .ok_or_else(|| fields.bad("normal_side"))?,
        constraint,
        status: AccountStatus::parse(fields.string("status")?)
            .ok_or_else(|| fields.bad("status"))?,
        metadata: fields.metadata()?,
        balances: decode_balances(&fields)?,
        created_at: timestamp(&fields, "created_at")?,
        opened_seq: fields.integer("opened_seq")?,
    })
}

const TRANSFER_KEYS: &[&str] = &[
    "kind",
    "id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "currency",
    "code",
    "reference",
    "description",
    "metadata",
    "pending",
    "timeout_seconds",
    "expires_at",
    "state",
    "reverses",
    "posted_amount",
    "reversed_amount",
    "created_at",
    "journal_seq",
];

fn transfer_json(transfer: &Transfer) -> Value {
    let text = |value: Option<String>| value.map_or(Value::Null, Value::String);
    json!({
        "id": transfer.id.to_string(),
        "debit_account_id": transfer.debit_account_id.to_string(),
        "credit_account_id": transfer.credit_account_id.to_string(),
        "amount": transfer.amount.to_string(),
        "currency": transfer.currency.as_str(),
        "code": text(transfer.code.as_ref().map(ToString::to_string)),
        "reference": text(transfer.reference.as_ref().map(ToString::to_string)),
        "description": text(transfer.description.as_ref().map(ToString::to_string)),
        "metadata": Value::Object(transfer.metadata.as_map().clone()),
        "pending": transfer.pending,
        "timeout_seconds": transfer.timeout_seconds,
        "expires_at": text(transfer.expires_at.map(format_timestamp)),
        "state": transfer.state.as_str(),
        "reverses": text(transfer.reverses.map(|id| id.to_string())),
        "posted_amount": transfer.posted_amount.to_string(),
        "reversed_amount": transfer.reversed_amount.to_string(),
        "created_at": format_timestamp(transfer.created_at),
        "journal_seq": transfer.journal_seq,
    })
}

fn decode_transfer(value: &Value) -> Result<Transfer, ExportError> {
    let fields = Fields::of(value)?;
    fields.expect_keys(TRANSFER_KEYS)?;
    let timeout_seconds = match fields.get("timeout_seconds")? {
        Value::Null => None,
        _ => Some(
            u32::try_from(fields.integer("timeout_seconds")?)
                .map_err(|_| fields.bad("timeout_seconds"))?,
        ),
    };
    let reverses = match fields.get("reverses")? {
        Value::Null => None,
        _ => Some(TransferId::new(fields.uuid("reverses")?)),
    };
    Ok(Transfer {
        id: TransferId::new(fields.uuid("id")?),
        debit_account_id: AccountId::new(fields.uuid("debit_account_id")?),
        credit_account_id: AccountId::new(fields.uuid("credit_account_id")?),
        amount: fields.decimal("amount")?,
        currency: fields.parsed("currency", CurrencyCode::parse)?,
        code: fields.optional("code", TransferCode::parse)?,
        reference: fields.optional("reference", Reference::parse)?,
        description: fields.optional("description", Description::parse)?,
        metadata: fields.metadata()?,
        pending: fields.boolean("pending")?,
        timeout_seconds,
        expires_at: optional_timestamp(&fields, "expires_at")?,
        state: TransferState::parse(fields.string("state")?).ok_or_else(|| fields.bad("state"))?,
        reverses,
        posted_amount: fields.decimal("posted_amount")?,
        reversed_amount: fields.decimal("reversed_amount")?,
        created_at: timestamp(&fields, "created_at")?,
        journal_seq: fields.integer("journal_seq")?,
    })
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    (base64_encode(&bytes) == text).then_some(bytes)
}

/// The running SHA-256 of the lines before the manifest, each line followed by `\n`.
#[derive(Clone, Default)]
pub struct ContentHasher {
    sha256: Sha256,
    lines: u64,
}

impl ContentHasher {
    pub fn new() -> ContentHasher {
        ContentHasher::default()
    }

    pub fn add_line(&mut self, line: &[u8]) {
        self.sha256.update(line);
        self.sha256.update(b"\n");
        self.lines += 1;
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn finish(self) -> Hash32 {
        Hash32(self.sha256.finalize().into())
    }
}

/// Signs the exact bytes of a manifest line.
pub fn sign_manifest(manifest_line: &[u8], key: &SigningKey) -> ExportSignature {
    ExportSignature {
        key_id: key_id(&key.verifying_key()),
        signature: key.sign(manifest_line).to_bytes(),
    }
}

/// Whether `signature` is `key`'s Ed25519 signature of these manifest bytes.
pub fn signature_is_valid(
    manifest_line: &[u8],
    signature: &ExportSignature,
    key: &VerifyingKey,
) -> bool {
    signature.key_id == key_id(key)
        && key
            .verify(
                manifest_line,
                &ed25519_dalek::Signature::from_bytes(&signature.signature),
            )
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_line_reads_back_as_written_and_only_in_canonical_form() {
        let signing = SigningKey::from_bytes(&[7; 32]);
        let manifest = Manifest {
            ledger: LedgerName::parse("main").unwrap(),
            origin: "ledger/main".into(),
            from_seq: 1,
            to_seq: 2,
            events: 2,
            balances: 0,
            lines: 4,
            content_sha256: Hash32::sha256(b"x"),
            key_id: key_id(&signing.verifying_key()),
            signed_at: Some(Timestamp::from_unix_micros(1_764_000_000_000_001)),
        };
        let lines = [
            Line::Header(Header {
                ledger: manifest.ledger.clone(),
                origin: manifest.origin.clone(),
                assets: vec![],
                from_seq: 1,
                to_seq: 2,
            }),
            Line::Checkpoint {
                tree_size: 2,
                note: "ledger/main\n2\nAAAA\n".into(),
            },
            Line::Manifest(manifest.clone()),
            Line::Signature(sign_manifest(&Line::Manifest(manifest).encode(), &signing)),
        ];
        for line in lines {
            let bytes = line.encode();
            assert_eq!(Line::decode(&bytes).unwrap(), line);
            let mut spaced = String::from_utf8(bytes).unwrap();
            spaced.insert(1, ' ');
            assert_eq!(
                Line::decode(spaced.as_bytes()),
                Err(ExportError::NotCanonical),
                "{spaced}"
            );
        }
    }

    #[test]
    fn a_signature_holds_only_for_its_manifest_bytes_and_key() {
        let (key, other) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        let signature = sign_manifest(b"manifest", &key);
        assert!(signature_is_valid(
            b"manifest",
            &signature,
            &key.verifying_key()
        ));
        assert!(!signature_is_valid(
            b"manifest!",
            &signature,
            &key.verifying_key()
        ));
        assert!(!signature_is_valid(
            b"manifest",
            &signature,
            &other.verifying_key()
        ));
    }
}
