//! The `data` of each journal event type, as JSON: the one mapping between domain events and
//! the journal format that docs/AUDIT_FORMAT.md specifies.
//!
//! Amounts are decimal strings at the currency's full scale; absent optional fields are `null`;
//! every key is always present, and decoding refuses missing or extra keys.

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::domain::money::amount_at_scale;
use crate::domain::{
    AccountCode, AccountId, BalanceConstraint, Currency, CurrencyCode, Description, LedgerEvent,
    LedgerName, Metadata, NewAccount, NewLedger, NewTransfer, NormalSide, Reference, TransferCode,
    TransferId,
};

/// Why a journal event's `type` and `data` do not describe a domain event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

impl From<crate::domain::limits::Violation> for CodecError {
    fn from(violation: crate::domain::limits::Violation) -> CodecError {
        CodecError(violation.to_string())
    }
}

pub fn encode_data(event: &LedgerEvent) -> Value {
    match event {
        LedgerEvent::LedgerCreated(ledger) => json!({
            "name": ledger.name.as_str(),
            "assets": ledger.assets.iter().map(|asset| json!({
                "code": asset.code().as_str(),
                "scale": asset.scale(),
            })).collect::<Vec<_>>(),
            "metadata": Value::Object(ledger.metadata.as_map().clone()),
        }),
        LedgerEvent::AccountOpened(account) => json!({
            "id": account.id.to_string(),
            "code": account.code.as_str(),
            "currency": account.currency.code().as_str(),
            "scale": account.currency.scale(),
            "normal_side": account.normal_side.as_str(),
            "debits_must_not_exceed_credits": account.constraint.debits_must_not_exceed_credits(),
            "credits_must_not_exceed_debits": account.constraint.credits_must_not_exceed_debits(),
            "metadata": Value::Object(account.metadata.as_map().clone()),
        }),
        LedgerEvent::AccountFrozen(id)
        | LedgerEvent::AccountUnfrozen(id)
        | LedgerEvent::AccountClosed(id) => json!({ "account_id": id.to_string() }),
        LedgerEvent::TransferCreated(transfer) => {
            let mut data = encode_transfer_fields(transfer);
            data.insert("pending".into(), Value::Bool(transfer.pending));
            data.insert("timeout_seconds".into(), json!(transfer.timeout_seconds));
            Value::Object(data)
        }
        LedgerEvent::TransferReversed(transfer) => {
            let mut data = encode_transfer_fields(transfer);
            data.insert(
                "reverses".into(),
                json!(transfer.reverses.map(|id| id.to_string())),
            );
            Value::Object(data)
        }
        LedgerEvent::TransferPosted { id, amount } => json!({
            "transfer_id": id.to_string(),
            "amount": amount.to_string(),
        }),
        LedgerEvent::TransferVoided(id) | LedgerEvent::TransferExpired(id) => {
            json!({ "transfer_id": id.to_string() })
        }
        LedgerEvent::ReconciliationCompleted(completed) => {
            super::reconciliation::encode_completed(completed)
        }
        LedgerEvent::ReconciliationItemResolved(resolution) => {
            super::reconciliation::encode_resolved(resolution)
        }
    }
}

fn encode_transfer_fields(transfer: &NewTransfer) -> Map<String, Value> {
    let text =
        |value: Option<&str>| value.map_or(Value::Null, |text| Value::String(text.to_owned()));
    let mut data = Map::new();
    data.insert("id".into(), Value::String(transfer.id.to_string()));
    data.insert(
        "debit_account_id".into(),
        Value::String(transfer.debit_account_id.to_string()),
    );
    data.insert(
        "credit_account_id".into(),
        Value::String(transfer.credit_account_id.to_string()),
    );
    data.insert("amount".into(), Value::String(transfer.amount.to_string()));
    data.insert(
        "currency".into(),
        Value::String(transfer.currency.as_str().to_owned()),
    );
    data.insert(
        "code".into(),
        text(transfer.code.as_ref().map(TransferCode::as_str)),
    );
    data.insert(
        "reference".into(),
        text(transfer.reference.as_ref().map(Reference::as_str)),
    );
    data.insert(
        "description".into(),
        text(transfer.description.as_ref().map(Description::as_str)),
    );
    data.insert(
        "metadata".into(),
        Value::Object(transfer.metadata.as_map().clone()),
    );
    data
}

/// Decodes `data` of an event of type `type_name`. `scales` resolves a currency code to its
/// scale in this ledger, so amounts are checked to carry exactly that scale.
pub fn decode_data(
    type_name: &str,
    data: &Value,
    scale_of: &dyn Fn(&CurrencyCode) -> Option<u32>,
) -> Result<LedgerEvent, CodecError> {
    let fields = Fields::of(data)?;
    let event = match type_name {
        "ledger_created" => {
            fields.expect_keys(&["name", "assets", "metadata"])?;
            let assets = fields
                .array("assets")?
                .iter()
                .map(decode_asset)
                .collect::<Result<Vec<_>, _>>()?;
            LedgerEvent::LedgerCreated(NewLedger {
                name: fields.parsed("name", LedgerName::parse)?,
                assets,
                metadata: fields.metadata()?,
            })
        }
        "account_opened" => {
            fields.expect_keys(&[
                "id",
                "code",
                "currency",
                "scale",
                "normal_side",
                "debits_must_not_exceed_credits",
                "credits_must_not_exceed_debits",
                "metadata",
            ])?;
            let code = fields.parsed("currency", CurrencyCode::parse)?;
            let scale = u32::try_from(fields.integer("scale")?).map_err(|_| fields.bad("scale"))?;
            let constraint = BalanceConstraint::from_flags(
                fields.boolean("debits_must_not_exceed_credits")?,
                fields.boolean("credits_must_not_exceed_debits")?,
            )
            .ok_or_else(|| CodecError("an account has at most one balance constraint".into()))?;
            LedgerEvent::AccountOpened(NewAccount {
                id: AccountId::new(fields.uuid("id")?),
                code: fields.parsed("code", AccountCode::parse)?,
                currency: Currency::new(code, scale).map_err(CodecError::from)?,
                normal_side: NormalSide::parse(fields.string("normal_side")?)
                    .ok_or_else(|| fields.bad("normal_side"))?,
                constraint,
                metadata: fields.metadata()?,
            })
        }
        "account_frozen" | "account_unfrozen" | "account_closed" => {
            fields.expect_keys(&["account_id"])?;
            let id = AccountId::new(fields.uuid("account_id")?);
            match type_name {
                "account_frozen" => LedgerEvent::AccountFrozen(id),
                "account_unfrozen" => LedgerEvent::AccountUnfrozen(id),
                _ => LedgerEvent::AccountClosed(id),
            }
        }
        "transfer_created" => {
            fields.expect_keys(&transfer_keys_with(&["pending", "timeout_seconds"]))?;
            let mut transfer = decode_transfer_fields(&fields, scale_of)?;
            transfer.pending = fields.boolean("pending")?;
            transfer.timeout_seconds = match fields.get("timeout_seconds")? {
                Value::Null => None,
                _ => Some(
                    u32::try_from(fields.integer("timeout_seconds")?)
                        .map_err(|_| fields.bad("timeout_seconds"))?,
                ),
            };
            LedgerEvent::TransferCreated(transfer)
        }
        "transfer_reversed" => {
            fields.expect_keys(&transfer_keys_with(&["reverses"]))?;
            let mut transfer = decode_transfer_fields(&fields, scale_of)?;
            transfer.reverses = Some(TransferId::new(fields.uuid("reverses")?));
            LedgerEvent::TransferReversed(transfer)
        }
        "transfer_posted" => {
            fields.expect_keys(&["transfer_id", "amount"])?;
            LedgerEvent::TransferPosted {
                id: TransferId::new(fields.uuid("transfer_id")?),
                amount: fields.decimal("amount")?,
            }
        }
        "transfer_voided" | "transfer_expired" => {
            fields.expect_keys(&["transfer_id"])?;
            let id = TransferId::new(fields.uuid("transfer_id")?);
            if type_name == "transfer_voided" {
                LedgerEvent::TransferVoided(id)
            } else {
                LedgerEvent::TransferExpired(id)
            }
        }
        "reconciliation_completed" => LedgerEvent::ReconciliationCompleted(Box::new(
            super::reconciliation::decode_completed(&fields, scale_of)?,
        )),
        "reconciliation_item_resolved" => LedgerEvent::ReconciliationItemResolved(
            super::reconciliation::decode_resolved(&fields)?,
        ),
        other => return Err(CodecError(format!("unknown event type {other:?}"))),
    };
    Ok(event)
}

fn transfer_keys_with(extra: &[&'static str]) -> Vec<&'static str> {
    let mut keys = vec![
        "id",
        "debit_account_id",
        "credit_account_id",
        "amount",
        "currency",
        "code",
        "reference",
        "description",
        "metadata",
    ];
    keys.extend_from_slice(extra);
    keys
}

fn decode_asset(value: &Value) -> Result<Currency, CodecError> {
    let fields = Fields::of(value)?;
    fields.expect_keys(&["code", "scale"])?;
    let code = fields.parsed("code", CurrencyCode::parse)?;
    let scale = u32::try_from(fields.integer("scale")?).map_err(|_| fields.bad("scale"))?;
    Currency::new(code, scale).map_err(CodecError::from)
}

fn decode_transfer_fields(
    fields: &Fields<'_>,
    scale_of: &dyn Fn(&CurrencyCode) -> Option<u32>,
) -> Result<NewTransfer, CodecError> {
    let currency = fields.parsed("currency", CurrencyCode::parse)?;
    let scale = scale_of(&currency)
        .ok_or_else(|| CodecError(format!("currency {currency} is unknown in this ledger")))?;
    let amount = fields.decimal("amount")?;
    if amount.scale() != scale || amount_at_scale(amount, scale).is_err() {
        return Err(CodecError(format!(
            "amount {amount} is not a positive amount at {currency}'s scale {scale}"
        )));
    }
    Ok(NewTransfer {
        id: TransferId::new(fields.uuid("id")?),
        debit_account_id: AccountId::new(fields.uuid("debit_account_id")?),
        credit_account_id: AccountId::new(fields.uuid("credit_account_id")?),
        amount,
        currency,
        code: fields.optional("code", TransferCode::parse)?,
        reference: fields.optional("reference", Reference::parse)?,
        description: fields.optional("description", Description::parse)?,
        metadata: fields.metadata()?,
        pending: false,
        timeout_seconds: None,
        reverses: None,
    })
}

/// Typed access to the keys of a JSON object, with errors that name the key.
pub(crate) struct Fields<'a>(pub(crate) &'a Map<String, Value>);

impl<'a> Fields<'a> {
    pub(crate) fn of(value: &'a Value) -> Result<Fields<'a>, CodecError> {
        value
            .as_object()
            .map(Fields)
            .ok_or_else(|| CodecError("data must be a JSON object".into()))
    }

    pub(crate) fn expect_keys(&self, keys: &[&str]) -> Result<(), CodecError> {
        let mut present: Vec<&str> = self.0.keys().map(String::as_str).collect();
        let mut expected = keys.to_vec();
        present.sort_unstable();
        expected.sort_unstable();
        if present == expected {
            Ok(())
        } else {
            Err(CodecError(format!(
                "expected exactly the keys {expected:?}, found {present:?}"
            )))
        }
    }

    pub(crate) fn bad(&self, key: &str) -> CodecError {
        CodecError(format!("key {key:?} has an invalid value"))
    }

    pub(crate) fn get(&self, key: &str) -> Result<&'a Value, CodecError> {
        self.0
            .get(key)
            .ok_or_else(|| CodecError(format!("missing key {key:?}")))
    }

    pub(crate) fn string(&self, key: &str) -> Result<&'a str, CodecError> {
        self.get(key)?.as_str().ok_or_else(|| self.bad(key))
    }

    pub(crate) fn boolean(&self, key: &str) -> Result<bool, CodecError> {
        self.get(key)?.as_bool().ok_or_else(|| self.bad(key))
    }

    pub(crate) fn integer(&self, key: &str) -> Result<u64, CodecError> {
        self.get(key)?.as_u64().ok_or_else(|| self.bad(key))
    }

    pub(crate) fn array(&self, key: &str) -> Result<&'a Vec<Value>, CodecError> {
        self.get(key)?.as_array().ok_or_else(|| self.bad(key))
    }

    pub(crate) fn uuid(&self, key: &str) -> Result<Uuid, CodecError> {
        let text = self.string(key)?;
        let id = Uuid::parse_str(text).map_err(|_| self.bad(key))?;
        // Only the hyphenated lowercase form the service writes.
        (id.to_string() == text)
            .then_some(id)
            .ok_or_else(|| self.bad(key))
    }

    pub(crate) fn decimal(&self, key: &str) -> Result<Decimal, CodecError> {
        let text = self.string(key)?;
        let value = crate::domain::money::parse_decimal_text(text).map_err(|_| self.bad(key))?;
        // Keep the written scale: `"10.50"` stays at scale 2.
        let mut exact = value;
        let written_scale = text
            .split_once('.')
            .map_or(0, |(_, fraction)| fraction.len() as u32);
        exact.rescale(written_scale);
        (exact.to_string() == text)
            .then_some(exact)
            .ok_or_else(|| self.bad(key))
    }

    pub(crate) fn parsed<T, E: std::fmt::Display>(
        &self,
        key: &str,
        parse: fn(&str) -> Result<T, E>,
    ) -> Result<T, CodecError> {
        parse(self.string(key)?).map_err(|reason| CodecError(format!("key {key:?}: {reason}")))
    }

    pub(crate) fn optional<T, E: std::fmt::Display>(
        &self,
        key: &str,
        parse: fn(&str) -> Result<T, E>,
    ) -> Result<Option<T>, CodecError> {
        match self.get(key)? {
            Value::Null => Ok(None),
            _ => self.parsed(key, parse).map(Some),
        }
    }

    pub(crate) fn metadata(&self) -> Result<Metadata, CodecError> {
        Metadata::parse(self.get("metadata")?.clone()).map_err(CodecError::from)
    }
}
