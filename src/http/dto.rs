//! The JSON of the API: request and response bodies, and their conversions to and from
//! domain values. Requests reject unknown fields; amounts are decimal strings, never numbers.
//!
//! Every limit on what a request may record is one of `domain::limits`, checked here by the
//! same functions the engine and `ledger-verify` run (mostly through the parsing newtypes);
//! this module only chooses the problem each broken limit answers with.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::openapi::{AccountStatusSchema, TransferStateSchema};
use super::problem::{ApiError, Problem};
use crate::audit::time::format_timestamp;
use crate::audit::JournalEvent;
use crate::domain::limits::{self, Violation};
use crate::domain::money::{parse_amount, parse_decimal_text};
use crate::domain::*;
use crate::storage::LedgerRecord;

pub const AMOUNT_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?$";

fn field<T, E: std::fmt::Display>(name: &str, result: Result<T, E>) -> Result<T, ApiError> {
    result.map_err(|reason| ApiError::invalid_field(name, reason))
}

pub fn optional_field<T, E: std::fmt::Display>(
    name: &str,
    text: Option<String>,
    parse: fn(&str) -> Result<T, E>,
) -> Result<Option<T>, ApiError> {
    text.map(|text| field(name, parse(&text))).transpose()
}

/// Metadata under the `metadata_*` limits: an object of at most 4 KiB of canonical JSON, 32
/// levels deep, without NUL (PostgreSQL's `jsonb` refuses it, and the whole batch's commit
/// would fail) and without numbers canonical JSON cannot tell apart (beyond ±(2^53 − 1)).
fn metadata(value: Option<Value>) -> Result<Metadata, ApiError> {
    let value = value.unwrap_or_else(|| Value::Object(Default::default()));
    field("metadata", Metadata::parse(value))
}

fn invalid(name: &str, violation: Violation) -> ApiError {
    ApiError::invalid_field(name, violation)
}

// ---------------------------------------------------------------- ledgers

#[derive(Deserialize, Serialize, ToSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AssetBody {
    /// `^[A-Z][A-Z0-9_]{1,15}$`, not an ISO 4217 code.
    #[schema(pattern = r"^[A-Z][A-Z0-9_]{1,15}$", example = "USDC")]
    pub code: String,
    /// Decimals of the asset's minor unit, 0 to 18.
    #[schema(minimum = 0, maximum = 18, example = 6)]
    pub scale: u32,
}

#[derive(Deserialize, Serialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateLedgerRequest {
    /// `^[a-z0-9][a-z0-9_-]{0,62}$`
    #[schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$", example = "main")]
    pub name: String,
    /// Custom assets besides the ISO 4217 currencies (at most 64).
    #[serde(default)]
    pub assets: Vec<AssetBody>,
    /// A JSON object of at most 4 KiB.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

impl CreateLedgerRequest {
    pub fn into_new_ledger(self) -> Result<NewLedger, ApiError> {
        let name = field("name", LedgerName::parse(&self.name))?;
        let mut assets: Vec<Currency> = Vec::with_capacity(self.assets.len());
        for asset in self.assets {
            let code = field("assets.code", CurrencyCode::parse(&asset.code))?;
            assets.push(field("assets.scale", Currency::new(code, asset.scale))?);
        }
        limits::check_assets(&assets).map_err(|violation| {
            let name = match violation.limit == &limits::ASSETS_COUNT {
                true => "assets",
                false => "assets.code",
            };
            invalid(name, violation)
        })?;
        Ok(NewLedger {
            name,
            assets,
            metadata: metadata(self.metadata)?,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct LedgerBody {
    pub name: String,
    pub assets: Vec<AssetBody>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&LedgerRecord> for LedgerBody {
    fn from(ledger: &LedgerRecord) -> LedgerBody {
        LedgerBody {
            name: ledger.name.to_string(),
            assets: ledger
                .assets
                .iter()
                .map(|asset| AssetBody {
                    code: asset.code().to_string(),
                    scale: asset.scale(),
                })
                .collect(),
            metadata: Value::Object(ledger.metadata.as_map().clone()),
            created_at: format_timestamp(ledger.created_at),
        }
    }
}

// ---------------------------------------------------------------- accounts

#[derive(Deserialize, Serialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NormalSideBody {
    Debit,
    Credit,
}

#[derive(Deserialize, Serialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountRequest {
    /// Client-chosen id; a retry with the same id and fields returns the account (200).
    pub id: Option<Uuid>,
    /// Unique in the ledger, `^[A-Za-z0-9:_.-]{1,128}$`.
    #[schema(pattern = r"^[A-Za-z0-9:_.-]{1,128}$", example = "customer:42:wallet")]
    pub code: String,
    /// ISO 4217 code or a custom asset of the ledger.
    #[schema(pattern = r"^[A-Z][A-Z0-9_]{1,15}$", example = "EUR")]
    pub currency: String,
    pub normal_side: NormalSideBody,
    #[serde(default)]
    pub debits_must_not_exceed_credits: bool,
    #[serde(default)]
    pub credits_must_not_exceed_debits: bool,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

impl OpenAccountRequest {
    pub fn into_new_account(
        self,
        ledger: &LedgerRecord,
        generated_id: Uuid,
    ) -> Result<NewAccount, ApiError> {
        let code = field("currency", CurrencyCode::parse(&self.currency))?;
        let currency = currency_of(ledger, &code)?;
        let (debits, credits) = (
            self.debits_must_not_exceed_credits,
            self.credits_must_not_exceed_debits,
        );
        let constraint = limits::check_balance_constraint(debits, credits)
            .and_then(|()| {
                BalanceConstraint::from_flags(debits, credits).ok_or_else(|| {
                    Violation::new(&limits::BALANCE_CONSTRAINT, "two balance constraints")
                })
            })
            .map_err(|violation| invalid("debits_must_not_exceed_credits", violation))?;
        Ok(NewAccount {
            id: AccountId::new(self.id.unwrap_or(generated_id)),
            code: field("code", AccountCode::parse(&self.code))?,
            currency,
            normal_side: match self.normal_side {
                NormalSideBody::Debit => NormalSide::Debit,
                NormalSideBody::Credit => NormalSide::Credit,
            },
            constraint,
            metadata: metadata(self.metadata)?,
        })
    }
}

/// The currency of a code in a ledger, or a 422 `unknown_currency`.
pub fn currency_of(ledger: &LedgerRecord, code: &CurrencyCode) -> Result<Currency, ApiError> {
    ledger
        .assets
        .iter()
        .find(|asset| asset.code() == code)
        .cloned()
        .or_else(|| Currency::iso(code.as_str()))
        .ok_or_else(|| Rejection::UnknownCurrency(code.clone()).into())
}

#[derive(Serialize, ToSchema)]
pub struct AccountBody {
    pub id: Uuid,
    pub ledger: String,
    pub code: String,
    pub currency: String,
    /// Decimals of the currency.
    pub scale: u32,
    pub normal_side: NormalSideBody,
    pub debits_must_not_exceed_credits: bool,
    pub credits_must_not_exceed_debits: bool,
    #[schema(value_type = AccountStatusSchema, example = "active")]
    pub status: String,
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "100.00")]
    pub posted_debits: String,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "0.00")]
    pub posted_credits: String,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "0.00")]
    pub pending_debits: String,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "0.00")]
    pub pending_credits: String,
    /// Posted balance on the normal side; may be negative.
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$", example = "100.00")]
    pub posted_balance: String,
    /// Posted balance minus pending amounts that would reduce it; may be negative.
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$", example = "100.00")]
    pub available_balance: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Seq of the `account_opened` event.
    pub journal_seq: u64,
}

impl AccountBody {
    pub fn new(ledger: &LedgerName, account: &Account) -> AccountBody {
        let balances = &account.balances;
        AccountBody {
            id: account.id.as_uuid(),
            ledger: ledger.to_string(),
            code: account.code.to_string(),
            currency: account.currency.code().to_string(),
            scale: account.currency.scale(),
            normal_side: match account.normal_side {
                NormalSide::Debit => NormalSideBody::Debit,
                NormalSide::Credit => NormalSideBody::Credit,
            },
            debits_must_not_exceed_credits: account.constraint.debits_must_not_exceed_credits(),
            credits_must_not_exceed_debits: account.constraint.credits_must_not_exceed_debits(),
            status: account.status.as_str().to_owned(),
            metadata: Value::Object(account.metadata.as_map().clone()),
            posted_debits: balances.posted_debits.to_string(),
            posted_credits: balances.posted_credits.to_string(),
            pending_debits: balances.pending_debits.to_string(),
            pending_credits: balances.pending_credits.to_string(),
            posted_balance: balances.posted_balance(account.normal_side).to_string(),
            available_balance: balances.available_balance(account.normal_side).to_string(),
            created_at: format_timestamp(account.created_at),
            journal_seq: account.opened_seq,
        }
    }
}

// ---------------------------------------------------------------- transfers

#[derive(Deserialize, Serialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct CreateTransferRequest {
    /// Client-chosen id: a natural key. Same id and fields returns the transfer (200); same id
    /// with other fields is `409 transfer_exists_with_different_fields`.
    pub id: Option<Uuid>,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    /// Decimal string, > 0, at most the currency's decimals.
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "10.50")]
    pub amount: String,
    #[schema(pattern = r"^[A-Z][A-Z0-9_]{1,15}$", example = "EUR")]
    pub currency: String,
    /// Client-defined type, `^[A-Za-z0-9:_.-]{1,64}$`.
    #[schema(pattern = r"^[A-Za-z0-9:_.-]{1,64}$", example = "card_settlement")]
    pub code: Option<String>,
    /// External reference (≤ 128 characters), used by reconciliation.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub reference: Option<String>,
    /// At most 512 characters.
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Reserve the amount (pending) instead of posting it at once.
    #[serde(default)]
    pub pending: bool,
    /// Pending only: expire after this many seconds (1 to 34,560,000).
    #[schema(minimum = 1, maximum = 34_560_000)]
    pub timeout_seconds: Option<u32>,
}

impl CreateTransferRequest {
    pub fn into_new_transfer(
        self,
        ledger: &LedgerRecord,
        generated_id: Uuid,
    ) -> Result<NewTransfer, ApiError> {
        let currency = field("currency", CurrencyCode::parse(&self.currency))?;
        let scale = currency_of(ledger, &currency)?.scale();
        let amount = parse_amount(&self.amount, scale).map_err(|error| {
            ApiError::from(Rejection::InvalidAmount(error)).with("field", "amount".into())
        })?;
        if self.debit_account_id == self.credit_account_id {
            return Err(Rejection::SameAccount.into());
        }
        limits::check_timeout(self.pending, self.timeout_seconds).map_err(|violation| {
            match violation.limit == &limits::TIMEOUT_REQUIRES_PENDING {
                true => Rejection::TimeoutWithoutPending.into(),
                false => invalid("timeout_seconds", violation),
            }
        })?;
        Ok(NewTransfer {
            id: TransferId::new(self.id.unwrap_or(generated_id)),
            debit_account_id: AccountId::new(self.debit_account_id),
            credit_account_id: AccountId::new(self.credit_account_id),
            amount,
            currency,
            code: optional_field("code", self.code, TransferCode::parse)?,
            reference: optional_field("reference", self.reference, Reference::parse)?,
            description: optional_field("description", self.description, Description::parse)?,
            metadata: metadata(self.metadata)?,
            pending: self.pending,
            timeout_seconds: self.timeout_seconds,
            reverses: None,
        })
    }
}

/// Parses an optional partial amount whose scale is checked later, against the transfer.
pub fn partial_amount(text: Option<&str>) -> Result<Option<rust_decimal::Decimal>, ApiError> {
    text.map(|text| {
        parse_decimal_text(text).map_err(|error| {
            ApiError::from(Rejection::InvalidAmount(error)).with("field", "amount".into())
        })
    })
    .transpose()
}

#[derive(Serialize, ToSchema)]
pub struct TransferBody {
    pub id: Uuid,
    pub ledger: String,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "10.50")]
    pub amount: String,
    pub currency: String,
    pub code: Option<String>,
    pub reference: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub pending: bool,
    pub timeout_seconds: Option<u32>,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[schema(value_type = TransferStateSchema, example = "posted")]
    pub state: String,
    /// The transfer this one reverses.
    pub reverses: Option<Uuid>,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub posted_amount: String,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub reversed_amount: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Seq of the event that created it.
    pub journal_seq: u64,
}

impl TransferBody {
    pub fn new(ledger: &LedgerName, transfer: &Transfer) -> TransferBody {
        TransferBody {
            id: transfer.id.as_uuid(),
            ledger: ledger.to_string(),
            debit_account_id: transfer.debit_account_id.as_uuid(),
            credit_account_id: transfer.credit_account_id.as_uuid(),
            amount: transfer.amount.to_string(),
            currency: transfer.currency.to_string(),
            code: transfer.code.as_ref().map(ToString::to_string),
            reference: transfer.reference.as_ref().map(ToString::to_string),
            description: transfer.description.as_ref().map(ToString::to_string),
            metadata: Value::Object(transfer.metadata.as_map().clone()),
            pending: transfer.pending,
            timeout_seconds: transfer.timeout_seconds,
            expires_at: transfer.expires_at.map(format_timestamp),
            state: transfer.state.as_str().to_owned(),
            reverses: transfer.reverses.map(|id| id.as_uuid()),
            posted_amount: transfer.posted_amount.to_string(),
            reversed_amount: transfer.reversed_amount.to_string(),
            created_at: format_timestamp(transfer.created_at),
            journal_seq: transfer.journal_seq,
        }
    }
}

// ---------------------------------------------------------------- journal and pages

/// One journal event exactly as hashed: `hash = SHA-256(JCS(event without hash))`.
#[derive(Serialize, ToSchema)]
pub struct JournalEventBody {
    pub ledger: String,
    pub seq: u64,
    #[serde(rename = "type")]
    #[schema(example = "transfer_created")]
    pub event_type: String,
    /// RFC 3339 UTC with microseconds.
    #[schema(format = DateTime)]
    pub at: String,
    /// The API key id that caused the event, or `system`.
    pub actor: String,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    #[schema(value_type = Object)]
    pub data: Value,
    /// Lowercase hex SHA-256.
    pub prev_hash: String,
    pub hash: String,
}

impl From<&JournalEvent> for JournalEventBody {
    fn from(event: &JournalEvent) -> JournalEventBody {
        JournalEventBody {
            ledger: event.ledger.clone(),
            seq: event.seq,
            event_type: event.event_type.clone(),
            at: format_timestamp(event.at),
            actor: event.actor.clone(),
            request_id: event.request_id.clone(),
            idempotency_key: event.idempotency_key.clone(),
            data: event.data.clone(),
            prev_hash: event.prev_hash.to_hex(),
            hash: event.hash.to_hex(),
        }
    }
}

/// A page of a list, oldest first. `next_cursor` is set when more items follow.
#[derive(Serialize, ToSchema)]
pub struct PageBody<T: ToSchema> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct JournalPageBody {
    pub data: Vec<JournalEventBody>,
    /// Pass as `after_seq` for the next page; `null` at the end of the journal.
    pub next_after_seq: Option<u64>,
}

// ---------------------------------------------------------------- transfer actions and batches

/// Post a pending transfer: all of it, or `amount` of it (the rest is released).
#[derive(Deserialize, Serialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct PostTransferRequest {
    /// At most the pending amount; absent: all of it.
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "7.50")]
    pub amount: Option<String>,
}

/// An action without fields (void, freeze, unfreeze, close): an empty body or `{}`.
#[derive(Deserialize, Serialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// Reverse a posted transfer, in full or in part: a new transfer with debit and credit swapped.
#[derive(Deserialize, Serialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ReverseTransferRequest {
    /// The reversal's id (a natural key, like a transfer's).
    pub id: Option<Uuid>,
    /// At most what is not yet reversed; absent: all of that.
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "2.00")]
    pub amount: Option<String>,
    #[schema(pattern = r"^[A-Za-z0-9:_.-]{1,64}$", example = "card_settlement")]
    pub code: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub reference: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

impl ReverseTransferRequest {
    pub fn into_reversal(self, generated_id: Uuid) -> Result<ReversalRequest, ApiError> {
        Ok(ReversalRequest {
            id: TransferId::new(self.id.unwrap_or(generated_id)),
            amount: partial_amount(self.amount.as_deref())?,
            code: optional_field("code", self.code, TransferCode::parse)?,
            reference: optional_field("reference", self.reference, Reference::parse)?,
            description: optional_field("description", self.description, Description::parse)?,
            metadata: metadata(self.metadata)?,
        })
    }
}

/// Several transfers in one request: all or none (`atomic`), or each on its own.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct TransferBatchRequest {
    /// `true`: all apply or none does (a multi-leg operation); `false`: each item its own result.
    pub atomic: bool,
    /// 1 to 1,000 transfers.
    #[schema(min_items = 1, max_items = 1000)]
    pub transfers: Vec<CreateTransferRequest>,
}

/// The result of one item of a batch.
#[derive(Serialize, ToSchema)]
pub struct BatchItemBody {
    pub index: usize,
    /// The status the item would have had on its own.
    pub status: u16,
    pub transfer: Option<TransferBody>,
    /// The problem document of a refused item.
    #[schema(value_type = Option<Problem>)]
    pub error: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct TransferBatchBody {
    pub atomic: bool,
    pub results: Vec<BatchItemBody>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_refuses_what_postgres_or_canonical_json_would_not_keep_exactly() {
        let safe = limits::MAX_METADATA_NUMBER;
        assert!(metadata(Some(json!({"n": safe, "m": -(safe as i64), "x": 0.1}))).is_ok());
        for unsafe_value in [
            json!({"n": safe + 1}),
            json!({"n": -(safe as i64) - 1}),
            json!({"deep": [{"n": u64::MAX}]}),
            json!({"s": "a\u{0}b"}),
            json!({"a\u{0}": 1}),
            json!({"deep": {"list": ["\u{0}"]}}),
        ] {
            assert!(
                metadata(Some(unsafe_value.clone())).is_err(),
                "{unsafe_value}"
            );
        }
    }
}
