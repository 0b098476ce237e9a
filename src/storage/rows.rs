//! Conversions between rows and domain values. Stored values are re-validated on the way in:
//! a row that does not parse is reported as corrupt, never trusted.

use rust_decimal::Decimal;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::{hash_from_sql, StorageError};
use crate::audit::time::{from_offset_date_time, to_offset_date_time};
use crate::audit::JournalEvent;
use crate::domain::*;

pub const ACCOUNT_COLUMNS: &str =
    "id, code, currency, scale, normal_side, balance_constraint, status, metadata, \
     posted_debits, posted_credits, pending_debits, pending_credits, created_at, opened_seq";

pub const TRANSFER_COLUMNS: &str =
    "id, debit_account_id, credit_account_id, amount, currency, code, reference, \
     description, metadata, pending, timeout_seconds, expires_at, state, reverses, posted_amount, \
     reversed_amount, created_at, journal_seq";

/// The columns of a list, each qualified with a table alias.
pub fn prefixed(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|column| format!("{alias}.{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub const JOURNAL_COLUMNS: &str =
    "seq, type, at, actor, request_id, idempotency_key, data, prev_hash, hash";

fn corrupt(what: &str, reason: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{what}: {reason}"))
}

pub fn to_sql_time(at: Timestamp) -> OffsetDateTime {
    to_offset_date_time(at)
}

pub fn from_sql_time(value: OffsetDateTime) -> Result<Timestamp, StorageError> {
    from_offset_date_time(value).ok_or_else(|| corrupt("timestamp", "out of range"))
}

/// A seq as a `bigint`. Seqs the service writes are far below 2^63; a seq a client asks about
/// may not be (`?tree_size=2^63`): it becomes `i64::MAX`, which no row has, so the read finds
/// nothing (a 404 or an empty page) instead of the service failing.
pub fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub fn seq_from_sql(value: i64) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|_| corrupt("seq", value))
}

pub fn metadata_to_json(metadata: &Metadata) -> Value {
    Value::Object(metadata.as_map().clone())
}

pub fn metadata_from_json(value: Value) -> Result<Metadata, StorageError> {
    Metadata::parse(value).map_err(|reason| corrupt("metadata", reason))
}

pub fn assets_to_json(assets: &[Currency]) -> Value {
    Value::Array(
        assets
            .iter()
            .map(|asset| json!({"code": asset.code().as_str(), "scale": asset.scale()}))
            .collect(),
    )
}

pub fn assets_from_json(value: &Value) -> Result<Vec<Currency>, StorageError> {
    let items = value
        .as_array()
        .ok_or_else(|| corrupt("assets", "not an array"))?;
    items
        .iter()
        .map(|item| {
            let code = item["code"]
                .as_str()
                .and_then(|code| CurrencyCode::parse(code).ok());
            let scale = item["scale"]
                .as_u64()
                .and_then(|scale| u32::try_from(scale).ok());
            match (code, scale) {
                (Some(code), Some(scale)) => {
                    Currency::new(code, scale).map_err(|reason| corrupt("asset", reason))
                }
                _ => Err(corrupt("asset", item)),
            }
        })
        .collect()
}

/// A stored amount brought to the currency's scale (NUMERIC keeps the scale it was given, but
/// sums and manual edits may not).
fn at_scale(value: Decimal, scale: u32) -> Result<Decimal, StorageError> {
    let mut exact = value;
    exact.rescale(scale);
    if exact != value {
        return Err(corrupt(
            "amount",
            format!("{value} has more decimals than the scale {scale}"),
        ));
    }
    Ok(exact)
}

fn parsed<T, E: std::fmt::Display>(
    what: &str,
    text: &str,
    parse: fn(&str) -> Result<T, E>,
) -> Result<T, StorageError> {
    parse(text).map_err(|reason| corrupt(what, reason))
}

fn optional_parsed<T, E: std::fmt::Display>(
    what: &str,
    text: Option<String>,
    parse: fn(&str) -> Result<T, E>,
) -> Result<Option<T>, StorageError> {
    text.map(|text| parsed(what, &text, parse)).transpose()
}

pub fn account_from_row(row: &Row) -> Result<Account, StorageError> {
    let scale =
        u32::try_from(row.get::<_, i16>("scale")).map_err(|_| corrupt("scale", "negative"))?;
    let currency = Currency::new(
        parsed("currency", row.get("currency"), CurrencyCode::parse)?,
        scale,
    )
    .map_err(|r| corrupt("currency", r))?;
    let constraint = match row.get::<_, &str>("balance_constraint") {
        "none" => BalanceConstraint::None,
        "debits_must_not_exceed_credits" => BalanceConstraint::DebitsMustNotExceedCredits,
        "credits_must_not_exceed_debits" => BalanceConstraint::CreditsMustNotExceedDebits,
        other => return Err(corrupt("balance_constraint", other)),
    };
    let balance = |column: &str| at_scale(row.get(column), scale);
    Ok(Account {
        id: AccountId::new(row.get("id")),
        code: parsed("code", row.get("code"), AccountCode::parse)?,
        normal_side: NormalSide::parse(row.get("normal_side"))
            .ok_or_else(|| corrupt("normal_side", "unknown"))?,
        constraint,
        status: AccountStatus::parse(row.get("status"))
            .ok_or_else(|| corrupt("status", "unknown"))?,
        metadata: metadata_from_json(row.get("metadata"))?,
        balances: Balances {
            posted_debits: balance("posted_debits")?,
            posted_credits: balance("posted_credits")?,
            pending_debits: balance("pending_debits")?,
            pending_credits: balance("pending_credits")?,
        },
        created_at: from_sql_time(row.get("created_at"))?,
        opened_seq: seq_from_sql(row.get("opened_seq"))?,
        currency,
    })
}

pub fn constraint_to_sql(constraint: BalanceConstraint) -> &'static str {
    match constraint {
        BalanceConstraint::None => "none",
        BalanceConstraint::DebitsMustNotExceedCredits => "debits_must_not_exceed_credits",
        BalanceConstraint::CreditsMustNotExceedDebits => "credits_must_not_exceed_debits",
    }
}

pub fn transfer_from_row(row: &Row) -> Result<Transfer, StorageError> {
    let amount: Decimal = row.get("amount");
    let scale = amount.scale();
    let timeout_seconds = row
        .get::<_, Option<i32>>("timeout_seconds")
        .map(|seconds| u32::try_from(seconds).map_err(|_| corrupt("timeout_seconds", seconds)))
        .transpose()?;
    Ok(Transfer {
        id: TransferId::new(row.get("id")),
        debit_account_id: AccountId::new(row.get("debit_account_id")),
        credit_account_id: AccountId::new(row.get("credit_account_id")),
        amount,
        currency: parsed("currency", row.get("currency"), CurrencyCode::parse)?,
        code: optional_parsed("code", row.get("code"), TransferCode::parse)?,
        reference: optional_parsed("reference", row.get("reference"), Reference::parse)?,
        description: optional_parsed("description", row.get("description"), Description::parse)?,
        metadata: metadata_from_json(row.get("metadata"))?,
        pending: row.get("pending"),
        timeout_seconds,
        expires_at: row
            .get::<_, Option<OffsetDateTime>>("expires_at")
            .map(from_sql_time)
            .transpose()?,
        state: TransferState::parse(row.get("state")).ok_or_else(|| corrupt("state", "unknown"))?,
        reverses: row
            .get::<_, Option<uuid::Uuid>>("reverses")
            .map(TransferId::new),
        posted_amount: at_scale(row.get("posted_amount"), scale)?,
        reversed_amount: at_scale(row.get("reversed_amount"), scale)?,
        created_at: from_sql_time(row.get("created_at"))?,
        journal_seq: seq_from_sql(row.get("journal_seq"))?,
    })
}

pub fn journal_event_from_row(
    ledger: &LedgerName,
    row: &Row,
) -> Result<JournalEvent, StorageError> {
    Ok(JournalEvent {
        ledger: ledger.as_str().to_owned(),
        seq: seq_from_sql(row.get("seq"))?,
        event_type: row.get("type"),
        at: from_sql_time(row.get("at"))?,
        actor: row.get("actor"),
        request_id: row.get("request_id"),
        idempotency_key: row.get("idempotency_key"),
        data: row.get("data"),
        prev_hash: hash_from_sql(row.get("prev_hash"))?,
        hash: hash_from_sql(row.get("hash"))?,
    })
}

/// What a database error means to the layers above, so that they never look at SQLSTATE codes
/// themselves. (These belong next to `StorageError` in `storage/mod.rs`; they live here until
/// that file is free to edit.)
impl StorageError {
    /// The statement ran out of its `statement_timeout` (SQLSTATE 57014).
    pub fn is_statement_timeout(&self) -> bool {
        self.sqlstate() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
    }

    /// A unique constraint refused the row (SQLSTATE 23505).
    pub fn is_unique_violation(&self) -> bool {
        self.sqlstate() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    }

    /// The database refused the data (SQLSTATE classes 22 data exception, 23 constraint
    /// violation, 54 program limit), as opposed to failing to run the statement (connection,
    /// timeout).
    pub fn is_refused_data(&self) -> bool {
        self.sqlstate()
            .is_some_and(|code| matches!(code.code().get(..2), Some("22" | "23" | "54")))
    }

    fn sqlstate(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            StorageError::Database(error) => error.code(),
            _ => None,
        }
    }
}

/// A stored value that breaks a limit of the domain: the database holds what the service would
/// never have written.
impl From<crate::domain::limits::Violation> for StorageError {
    fn from(violation: crate::domain::limits::Violation) -> StorageError {
        StorageError::Corrupt(violation.to_string())
    }
}
