//! Reconciliation in the journal format: the `data` of `reconciliation_completed` and
//! `reconciliation_item_resolved`, and the items file whose SHA-256 the completion records.
//!
//! The items file is one canonical JSON object (RFC 8785) per line, `\n`-terminated, in item
//! order: `sha256sum` of the file as served (`GET …/items` with `Accept: application/x-ndjson`)
//! equals the event's `items_digest`. docs/AUDIT_FORMAT.md specifies both byte by byte.

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::codec::{CodecError, Fields};
use super::hash::Hash32;
use super::jcs::canonical_json;
use crate::domain::reconciliation::{
    BalanceFinding, DayNumber, ItemResolved, ItemStatus, ReconciliationCompleted,
    ReconciliationItem, ResolutionAction, StatusTotal,
};
use crate::domain::{AccountId, ReconciliationId, StatementId, TransferId};

/// The Julian day number of 1970-01-01, to convert day numbers to calendar dates.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub fn format_day(day: DayNumber) -> String {
    match time::Date::from_julian_day(day.saturating_add(UNIX_EPOCH_JULIAN_DAY)) {
        Ok(date) => format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        ),
        Err(_) => "invalid-date".into(),
    }
}

/// The day number of `YYYY-MM-DD` (years 1000 to 9999 only: the canonical form has four digits).
pub fn parse_day(text: &str) -> Option<DayNumber> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(index, b)| index == 4 || index == 7 || b.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let year: i32 = text[0..4].parse().ok()?;
    let month: u8 = text[5..7].parse().ok()?;
    let day: u8 = text[8..10].parse().ok()?;
    let month = time::Month::try_from(month).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    (year >= 1000).then(|| date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY)
}

pub fn day_from_date(date: time::Date) -> DayNumber {
    date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY
}

fn amount(value: Decimal) -> Value {
    Value::String(value.to_string())
}

fn optional_amount(value: Option<Decimal>) -> Value {
    value.map_or(Value::Null, amount)
}

fn ids(ids: &[TransferId]) -> Value {
    Value::Array(ids.iter().map(|id| Value::String(id.to_string())).collect())
}

pub fn encode_completed(completed: &ReconciliationCompleted) -> Value {
    let mut totals = Map::new();
    for total in &completed.totals {
        totals.insert(
            total.status.as_str().into(),
            json!({
                "count": total.count,
                "statement_amount": amount(total.statement_amount),
                "ledger_amount": amount(total.ledger_amount),
            }),
        );
    }
    let balances = &completed.balances;
    json!({
        "id": completed.id.to_string(),
        "statement_id": completed.statement_id.to_string(),
        "statement_sha256": hex::encode(completed.statement_sha256),
        "account_id": completed.account_id.to_string(),
        "currency": completed.currency.as_str(),
        "cutoff_seq": completed.cutoff_seq,
        "date_window_days": completed.date_window_days,
        "period_start": format_day(completed.period_start),
        "period_end": format_day(completed.period_end),
        "rules": completed.rules,
        "item_count": completed.item_count,
        "items_digest": hex::encode(completed.items_digest),
        "totals": Value::Object(totals),
        "book_vs_bank": {
            "statement_opening": optional_amount(balances.statement_opening),
            "statement_closing": optional_amount(balances.statement_closing),
            "book_opening": amount(balances.book_opening),
            "book_closing": amount(balances.book_closing),
            "opening_agrees": balances.opening_agrees(),
            "closing_agrees": balances.closing_agrees(),
        },
    })
}

pub fn encode_resolved(resolution: &ItemResolved) -> Value {
    json!({
        "reconciliation_id": resolution.reconciliation_id.to_string(),
        "item": resolution.item_no,
        "action": resolution.action.as_str(),
        "transfer_id": resolution.transfer_id.map(|id| id.to_string()),
        "note": resolution.note,
    })
}

pub(crate) fn decode_completed(
    fields: &Fields<'_>,
    scale_of: &dyn Fn(&crate::domain::CurrencyCode) -> Option<u32>,
) -> Result<ReconciliationCompleted, CodecError> {
    fields.expect_keys(&[
        "id",
        "statement_id",
        "statement_sha256",
        "account_id",
        "currency",
        "cutoff_seq",
        "date_window_days",
        "period_start",
        "period_end",
        "rules",
        "item_count",
        "items_digest",
        "totals",
        "book_vs_bank",
    ])?;
    let currency = fields.parsed("currency", crate::domain::CurrencyCode::parse)?;
    let scale = scale_of(&currency)
        .ok_or_else(|| CodecError(format!("currency {currency} is unknown in this ledger")))?;
    let rules = fields
        .array("rules")?
        .iter()
        .map(|rule| {
            rule.as_str()
                .map(str::to_owned)
                .ok_or_else(|| fields.bad("rules"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let completed = ReconciliationCompleted {
        id: ReconciliationId::new(fields.uuid("id")?),
        statement_id: StatementId::new(fields.uuid("statement_id")?),
        statement_sha256: digest(fields, "statement_sha256")?,
        account_id: AccountId::new(fields.uuid("account_id")?),
        currency,
        cutoff_seq: fields.integer("cutoff_seq")?,
        date_window_days: u32::try_from(fields.integer("date_window_days")?)
            .map_err(|_| fields.bad("date_window_days"))?,
        period_start: day(fields, "period_start")?,
        period_end: day(fields, "period_end")?,
        rules,
        item_count: fields.integer("item_count")?,
        items_digest: digest(fields, "items_digest")?,
        totals: decode_totals(fields.get("totals")?, scale)?,
        balances: decode_balances(fields.get("book_vs_bank")?, scale)?,
    };
    Ok(completed)
}

pub(crate) fn decode_resolved(fields: &Fields<'_>) -> Result<ItemResolved, CodecError> {
    fields.expect_keys(&["reconciliation_id", "item", "action", "transfer_id", "note"])?;
    let transfer_id = match fields.get("transfer_id")? {
        Value::Null => None,
        _ => Some(TransferId::new(fields.uuid("transfer_id")?)),
    };
    let note = match fields.get("note")? {
        Value::Null => None,
        _ => Some(fields.string("note")?.to_owned()),
    };
    Ok(ItemResolved {
        reconciliation_id: ReconciliationId::new(fields.uuid("reconciliation_id")?),
        item_no: fields.integer("item")?,
        action: ResolutionAction::parse(fields.string("action")?)
            .ok_or_else(|| fields.bad("action"))?,
        transfer_id,
        note,
    })
}

fn digest(fields: &Fields<'_>, key: &str) -> Result<[u8; 32], CodecError> {
    let text = fields.string(key)?;
    Hash32::from_hex(text)
        .filter(|hash| hash.to_hex() == text)
        .map(|hash| hash.0)
        .ok_or_else(|| fields.bad(key))
}

fn day(fields: &Fields<'_>, key: &str) -> Result<DayNumber, CodecError> {
    parse_day(fields.string(key)?).ok_or_else(|| fields.bad(key))
}

/// A signed decimal at exactly `scale`, in the form `Decimal::to_string` writes.
fn signed_amount_at(fields: &Fields<'_>, key: &str, scale: u32) -> Result<Decimal, CodecError> {
    let text = fields.string(key)?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut value =
        crate::domain::money::parse_decimal_text(digits).map_err(|_| fields.bad(key))?;
    value.rescale(scale);
    if negative {
        value.set_sign_negative(true);
    }
    let canonical = value.to_string() == text && value.scale() == scale;
    let in_range = value.mantissa().abs() <= crate::domain::money::MAX_MANTISSA;
    (canonical && in_range)
        .then_some(value)
        .ok_or_else(|| CodecError(format!("key {key:?} must be a decimal at scale {scale}")))
}

fn optional_signed_amount_at(
    fields: &Fields<'_>,
    key: &str,
    scale: u32,
) -> Result<Option<Decimal>, CodecError> {
    match fields.get(key)? {
        Value::Null => Ok(None),
        _ => signed_amount_at(fields, key, scale).map(Some),
    }
}

fn decode_totals(value: &Value, scale: u32) -> Result<Vec<StatusTotal>, CodecError> {
    let totals = Fields::of(value)?;
    let names: Vec<&str> = ItemStatus::ALL
        .iter()
        .map(|status| status.as_str())
        .collect();
    totals.expect_keys(&names)?;
    ItemStatus::ALL
        .iter()
        .map(|status| {
            let total = Fields::of(totals.get(status.as_str())?)?;
            total.expect_keys(&["count", "statement_amount", "ledger_amount"])?;
            Ok(StatusTotal {
                status: *status,
                count: total.integer("count")?,
                statement_amount: signed_amount_at(&total, "statement_amount", scale)?,
                ledger_amount: signed_amount_at(&total, "ledger_amount", scale)?,
            })
        })
        .collect()
}

fn decode_balances(value: &Value, scale: u32) -> Result<BalanceFinding, CodecError> {
    let fields = Fields::of(value)?;
    fields.expect_keys(&[
        "statement_opening",
        "statement_closing",
        "book_opening",
        "book_closing",
        "opening_agrees",
        "closing_agrees",
    ])?;
    let finding = BalanceFinding {
        statement_opening: optional_signed_amount_at(&fields, "statement_opening", scale)?,
        statement_closing: optional_signed_amount_at(&fields, "statement_closing", scale)?,
        book_opening: signed_amount_at(&fields, "book_opening", scale)?,
        book_closing: signed_amount_at(&fields, "book_closing", scale)?,
    };
    // The agreement flags are derived: they must say what the amounts say.
    let flag = |key: &str| -> Result<Option<bool>, CodecError> {
        match fields.get(key)? {
            Value::Null => Ok(None),
            other => other.as_bool().map(Some).ok_or_else(|| fields.bad(key)),
        }
    };
    if flag("opening_agrees")? != finding.opening_agrees()
        || flag("closing_agrees")? != finding.closing_agrees()
    {
        return Err(CodecError(
            "book_vs_bank: the agreement flags contradict the balances".into(),
        ));
    }
    Ok(finding)
}

/// One line of the items file: the canonical JSON of the item, `\n`-terminated.
pub fn item_line(item: &ReconciliationItem) -> Vec<u8> {
    let text = |value: &Option<String>| value.clone().map_or(Value::Null, Value::String);
    let value = json!({
        "item": item.item_no,
        "status": item.status.as_str(),
        "rule": item.rule,
        "line": item.line_no,
        "booking_date": item.booking_date.map(format_day),
        "reference": text(&item.reference),
        "statement_amount": optional_amount(item.statement_amount),
        "ledger_amount": optional_amount(item.ledger_amount),
        "difference": optional_amount(item.difference),
        "transfer_ids": ids(&item.transfer_ids),
        "candidate_transfer_ids": ids(&item.candidate_transfer_ids),
    });
    let mut line = canonical_json(&value);
    line.push(b'\n');
    line
}

/// SHA-256 of an items file, fed line by line (a run's items are streamed, never held whole).
#[derive(Default)]
pub struct ItemsDigest {
    hasher: Sha256,
    items: u64,
}

impl ItemsDigest {
    pub fn push(&mut self, line: &[u8]) {
        self.hasher.update(line);
        self.items += 1;
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    pub fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_day_number_round_trips_through_its_calendar_date() {
        for text in [
            "1970-01-01",
            "2026-11-30",
            "2024-02-29",
            "9999-12-31",
            "1000-01-01",
        ] {
            let day = parse_day(text).unwrap();
            assert_eq!(format_day(day), text);
        }
        assert_eq!(parse_day("1970-01-02"), Some(1));
        for bad in [
            "2026-02-30",
            "26-11-30",
            "2026-1-30",
            "0999-12-31",
            "2026-11-30T",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_item_line_is_canonical_json_ending_in_a_newline() {
        let item = ReconciliationItem {
            item_no: 3,
            status: ItemStatus::Mismatched,
            rule: "reference_mismatch".into(),
            line_no: Some(3),
            booking_date: parse_day("2026-11-02"),
            reference: Some("INV-1".into()),
            statement_amount: Some(Decimal::new(1050, 2)),
            ledger_amount: Some(Decimal::new(1000, 2)),
            difference: Some(Decimal::new(50, 2)),
            transfer_ids: vec![TransferId::new(Uuid::from_u128(1))],
            candidate_transfer_ids: vec![],
        };
        let line = String::from_utf8(item_line(&item)).unwrap();
        assert_eq!(
            line,
            "{\"booking_date\":\"2026-11-02\",\"candidate_transfer_ids\":[],\
             \"difference\":\"0.50\",\"item\":3,\"ledger_amount\":\"10.00\",\"line\":3,\
             \"reference\":\"INV-1\",\"rule\":\"reference_mismatch\",\
             \"statement_amount\":\"10.50\",\"status\":\"mismatched\",\
             \"transfer_ids\":[\"00000000-0000-0000-0000-000000000001\"]}\n"
        );
    }
}
