//! Every limit the core enforces on what a journal may record: one definition each, with a
//! stable name, the rule in one sentence (docs/AUDIT_FORMAT.md §2.1 lists them from [`ALL`]),
//! and the check function that the HTTP layer (`http::dto`), the engine and the newtypes of
//! `domain::names` and `domain::money`, and the verifier (`audit::replay`, `audit::verify`)
//! all call. A limit added here without a forgery case in `tests/verify.rs` fails that test.
//!
//! Limits of the transport only (body size, batch size, page size) are not here: they leave no
//! trace in a journal, so no verifier could check them.
//!
//! A [`Violation`] names its limit. Its text ends with `(limit `name`)`, so a limit broken
//! inside a parse function (which reports a `String`) can still be named by [`named_in`] after
//! the message went through the journal codec.

use std::fmt;

use rust_decimal::Decimal;
use serde_json::Value;

use super::event::LedgerEvent;
use super::money::{AmountError, Currency, MAX_MANTISSA, MAX_SCALE};

/// One limit: its stable snake_case name and its rule.
#[derive(Debug, PartialEq, Eq)]
pub struct Limit {
    pub name: &'static str,
    pub rule: &'static str,
}

/// A value that breaks a limit, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub limit: &'static Limit,
    pub detail: String,
}

impl Violation {
    pub fn new(limit: &'static Limit, detail: impl Into<String>) -> Violation {
        Violation {
            limit,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (limit `{}`)", self.detail, self.limit.name)
    }
}

impl From<Violation> for String {
    fn from(violation: Violation) -> String {
        violation.to_string()
    }
}

/// The limit a message names with `(limit `name`)`, if any (the last one it names).
pub fn named_in(message: &str) -> Option<&'static Limit> {
    let start = message.rfind("(limit `")? + "(limit `".len();
    let name = message[start..].split('`').next()?;
    ALL.iter().copied().find(|limit| limit.name == name)
}

// ---------------------------------------------------------------------------------------------
// The limits.

pub static LEDGER_NAME: Limit = Limit {
    name: "ledger_name",
    rule: "a ledger's name matches `^[a-z0-9][a-z0-9_-]{0,62}$`",
};
pub static ORIGIN: Limit = Limit {
    name: "origin",
    rule: "the origin of a ledger's checkpoints (and the signed-note key name) is \
           `<prefix>/<ledger name>`: it ends with `/` and the export's ledger name, the prefix \
           before that `/` is not empty, and the whole has no whitespace, no control character \
           and no `+`",
};
pub static ACCOUNT_CODE: Limit = Limit {
    name: "account_code",
    rule: "an account's code matches `^[A-Za-z0-9:_.-]{1,128}$`",
};
pub static TRANSFER_CODE: Limit = Limit {
    name: "transfer_code",
    rule: "a transfer's `code` is `null` or matches `^[A-Za-z0-9:_.-]{1,64}$`",
};
pub static REFERENCE: Limit = Limit {
    name: "reference",
    rule: "a transfer's `reference` is `null` or 1 to 128 characters (Unicode scalar values), \
           none of them a control character (Unicode category Cc)",
};
pub static DESCRIPTION: Limit = Limit {
    name: "description",
    rule: "a transfer's `description` is `null` or 1 to 512 characters, none of them a control \
           character",
};
pub static CURRENCY_CODE: Limit = Limit {
    name: "currency_code",
    rule: "a currency or asset code matches `^[A-Z][A-Z0-9_]{1,15}$`",
};
pub static ASSET_SCALE: Limit = Limit {
    name: "asset_scale",
    rule: "a custom asset's scale (number of decimals) is 0 to 18",
};
pub static ASSET_NOT_ISO: Limit = Limit {
    name: "asset_not_iso",
    rule: "a custom asset's code is not an ISO 4217 code of the table in force (§2.2)",
};
pub static ASSETS_DISTINCT: Limit = Limit {
    name: "assets_distinct",
    rule: "a ledger declares each custom asset code once",
};
pub static ASSETS_COUNT: Limit = Limit {
    name: "assets_count",
    rule: "a ledger declares at most 64 custom assets",
};
pub static BALANCE_CONSTRAINT: Limit = Limit {
    name: "balance_constraint",
    rule: "an account has at most one balance constraint: `debits_must_not_exceed_credits` and \
           `credits_must_not_exceed_debits` are not both `true`",
};
pub static TIMEOUT_SECONDS: Limit = Limit {
    name: "timeout_seconds",
    rule: "a transfer's `timeout_seconds` is `null` or 1 to 34,560,000 (400 days)",
};
pub static TIMEOUT_REQUIRES_PENDING: Limit = Limit {
    name: "timeout_requires_pending",
    rule: "only a pending transfer has a `timeout_seconds`",
};
pub static AMOUNT_SYNTAX: Limit = Limit {
    name: "amount_syntax",
    rule: "an amount is a JSON string of ASCII digits with an optional `.` and more digits: no \
           sign, no exponent, no spaces, at most 64 characters",
};
pub static AMOUNT_SCALE: Limit = Limit {
    name: "amount_scale",
    rule: "an amount in the journal has exactly its currency's number of decimals (`\"10.50\"` \
           for EUR, `\"7\"` for JPY); a request may write fewer, never more (zeros included), and \
           no leading zero",
};
pub static AMOUNT_POSITIVE: Limit = Limit {
    name: "amount_positive",
    rule: "the amount of a transfer, of a reversal and of a post is greater than zero",
};
pub static AMOUNT_MAX: Limit = Limit {
    name: "amount_max",
    rule: "an amount is below 10^28 minor units (at most 28 significant digits at the currency's \
           scale); sums and totals have no such bound",
};
pub static METADATA_OBJECT: Limit = Limit {
    name: "metadata_object",
    rule: "`metadata` is a JSON object",
};
pub static METADATA_SIZE: Limit = Limit {
    name: "metadata_size",
    rule: "`metadata` is at most 4,096 bytes: the UTF-8 bytes of its RFC 8785 (JCS) form, which \
           is compact JSON",
};
pub static METADATA_DEPTH: Limit = Limit {
    name: "metadata_depth",
    rule: "`metadata` nests at most 32 levels: the object itself is level 1, each array or object \
           inside another adds one",
};
pub static METADATA_NUMBERS: Limit = Limit {
    name: "metadata_numbers",
    rule: "every number in `metadata` has a magnitude of at most 2^53 − 1 \
           (9,007,199,254,740,991), integer or not: canonical JSON writes numbers as IEEE \
           doubles; larger values go in strings",
};
pub static METADATA_TEXT: Limit = Limit {
    name: "metadata_text",
    rule: "no string and no key in `metadata` contains U+0000 (NUL)",
};
pub static ACTOR: Limit = Limit {
    name: "actor",
    rule: "an event's `actor` is exactly `\"system\"` for `transfer_expired` and only there; \
           every other event's actor is the id of the API key that caused it: a UUID, lowercase \
           and hyphenated",
};
pub static REQUEST_ID: Limit = Limit {
    name: "request_id",
    rule: "an event's `request_id` is `null` or 1 to 128 ASCII characters from `!` to `~` \
           (0x21–0x7E)",
};
pub static IDEMPOTENCY_KEY: Limit = Limit {
    name: "idempotency_key",
    rule: "an event's `idempotency_key` is `null` or 1 to 255 ASCII characters from space to `~` \
           (0x20–0x7E)",
};

/// Every limit, in the order docs/AUDIT_FORMAT.md lists them.
pub static ALL: &[&Limit] = &[
    &LEDGER_NAME,
    &ORIGIN,
    &ACCOUNT_CODE,
    &TRANSFER_CODE,
    &REFERENCE,
    &DESCRIPTION,
    &CURRENCY_CODE,
    &ASSET_SCALE,
    &ASSET_NOT_ISO,
    &ASSETS_DISTINCT,
    &ASSETS_COUNT,
    &BALANCE_CONSTRAINT,
    &TIMEOUT_SECONDS,
    &TIMEOUT_REQUIRES_PENDING,
    &AMOUNT_SYNTAX,
    &AMOUNT_SCALE,
    &AMOUNT_POSITIVE,
    &AMOUNT_MAX,
    &METADATA_OBJECT,
    &METADATA_SIZE,
    &METADATA_DEPTH,
    &METADATA_NUMBERS,
    &METADATA_TEXT,
    &ACTOR,
    &REQUEST_ID,
    &IDEMPOTENCY_KEY,
];

// ---------------------------------------------------------------------------------------------
// Values.

/// Longest timeout a pending transfer may ask for: 400 days.
pub const MAX_TIMEOUT_SECONDS: u32 = 400 * 24 * 3600;
/// Most custom assets of one ledger.
pub const MAX_ASSETS: usize = 64;
/// Largest size of metadata, in bytes of its canonical JSON.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Deepest nesting of metadata (the object itself is level 1).
pub const MAX_METADATA_DEPTH: usize = 32;
/// Largest magnitude of a number in metadata: 2^53 − 1.
pub const MAX_METADATA_NUMBER: u64 = (1 << 53) - 1;
pub const MAX_REQUEST_ID_BYTES: usize = 128;
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;
/// The actor of the events the service causes by itself: expiries.
pub const SYSTEM_ACTOR: &str = "system";

// ---------------------------------------------------------------------------------------------
// Checks.

/// Characters that may not appear in free text (references, descriptions).
fn has_control_character(text: &str) -> bool {
    text.chars().any(char::is_control)
}

fn is_code_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b':' | b'_' | b'.' | b'-')
}

fn check_text(
    limit: &'static Limit,
    text: &str,
    max_chars: usize,
    allowed: impl Fn(&str) -> bool,
) -> Result<(), Violation> {
    let length = text.chars().count();
    if length == 0 || length > max_chars || !allowed(text) {
        let shown: String = text.chars().take(80).collect();
        return Err(Violation::new(
            limit,
            format!("{shown:?} breaks: {}", limit.rule),
        ));
    }
    Ok(())
}

pub fn check_ledger_name(text: &str) -> Result<(), Violation> {
    check_text(&LEDGER_NAME, text, 63, |text| {
        let bytes = text.as_bytes();
        (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
    })
}

pub fn check_account_code(text: &str) -> Result<(), Violation> {
    check_text(&ACCOUNT_CODE, text, 128, |text| {
        text.bytes().all(is_code_byte)
    })
}

pub fn check_transfer_code(text: &str) -> Result<(), Violation> {
    check_text(&TRANSFER_CODE, text, 64, |text| {
        text.bytes().all(is_code_byte)
    })
}

pub fn check_reference(text: &str) -> Result<(), Violation> {
    check_text(&REFERENCE, text, 128, |text| !has_control_character(text))
}

pub fn check_description(text: &str) -> Result<(), Violation> {
    check_text(&DESCRIPTION, text, 512, |text| !has_control_character(text))
}

pub fn check_currency_code(text: &str) -> Result<(), Violation> {
    check_text(&CURRENCY_CODE, text, 16, |text| {
        let bytes = text.as_bytes();
        bytes.len() >= 2
            && bytes[0].is_ascii_uppercase()
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
    })
}

pub fn check_asset_scale(scale: u32) -> Result<(), Violation> {
    if scale > MAX_SCALE {
        return Err(Violation::new(
            &ASSET_SCALE,
            format!("scale must be 0..={MAX_SCALE}, got {scale}"),
        ));
    }
    Ok(())
}

/// A ledger's custom assets: at most 64, none an ISO 4217 code, each code once.
pub fn check_assets(assets: &[Currency]) -> Result<(), Violation> {
    if assets.len() > MAX_ASSETS {
        return Err(Violation::new(
            &ASSETS_COUNT,
            format!("at most {MAX_ASSETS} assets, got {}", assets.len()),
        ));
    }
    for (index, asset) in assets.iter().enumerate() {
        let code = asset.code();
        if Currency::iso(code.as_str()).is_some() {
            return Err(Violation::new(
                &ASSET_NOT_ISO,
                format!("{code} is an ISO 4217 currency already"),
            ));
        }
        if assets[..index].iter().any(|known| known.code() == code) {
            return Err(Violation::new(
                &ASSETS_DISTINCT,
                format!("{code} is declared twice"),
            ));
        }
    }
    Ok(())
}

/// The two constraint flags of an account: at most one set.
pub fn check_balance_constraint(
    debits_must_not_exceed_credits: bool,
    credits_must_not_exceed_debits: bool,
) -> Result<(), Violation> {
    if debits_must_not_exceed_credits && credits_must_not_exceed_debits {
        return Err(Violation::new(
            &BALANCE_CONSTRAINT,
            "an account takes at most one balance constraint",
        ));
    }
    Ok(())
}

/// `timeout_seconds` of a transfer: only when pending, and then 1 to 400 days.
pub fn check_timeout(pending: bool, timeout_seconds: Option<u32>) -> Result<(), Violation> {
    let Some(seconds) = timeout_seconds else {
        return Ok(());
    };
    if !pending {
        return Err(Violation::new(
            &TIMEOUT_REQUIRES_PENDING,
            "timeout_seconds applies only to pending transfers",
        ));
    }
    if seconds == 0 || seconds > MAX_TIMEOUT_SECONDS {
        return Err(Violation::new(
            &TIMEOUT_SECONDS,
            format!("must be 1 to {MAX_TIMEOUT_SECONDS}, got {seconds}"),
        ));
    }
    Ok(())
}

impl AmountError {
    /// The limit this error breaks.
    pub fn limit(&self) -> &'static Limit {
        match self {
            AmountError::Malformed => &AMOUNT_SYNTAX,
            AmountError::TooManyDecimals { .. } => &AMOUNT_SCALE,
            AmountError::NotPositive => &AMOUNT_POSITIVE,
            AmountError::TooLarge => &AMOUNT_MAX,
        }
    }

    pub fn violation(&self) -> Violation {
        Violation::new(self.limit(), self.to_string())
    }
}

/// An amount as the journal writes it, for a currency of this scale: its syntax, exactly
/// `scale` decimals, positive, below 10^28 minor units.
pub fn check_journal_amount(text: &str, scale: u32) -> Result<Decimal, Violation> {
    let value = super::money::parse_decimal_text(text).map_err(|error| error.violation())?;
    let written_scale = text
        .split_once('.')
        .map_or(0, |(_, fraction)| fraction.len());
    if written_scale != scale as usize {
        return Err(Violation::new(
            &AMOUNT_SCALE,
            format!("{text:?} has {written_scale} decimals, its currency {scale}"),
        ));
    }
    super::money::amount_at_scale(value, scale).map_err(|error| error.violation())
}

/// A decoded amount that must be positive (a post's).
pub fn check_positive(amount: Decimal) -> Result<(), Violation> {
    if amount <= Decimal::ZERO {
        return Err(AmountError::NotPositive.violation());
    }
    if amount.mantissa() > MAX_MANTISSA {
        return Err(AmountError::TooLarge.violation());
    }
    Ok(())
}

/// Metadata: an object, at most 32 levels deep, numbers within ±(2^53 − 1), no NUL, and at
/// most 4,096 bytes of canonical JSON. Checked in that order.
pub fn check_metadata(value: &Value) -> Result<(), Violation> {
    if !value.is_object() {
        return Err(Violation::new(
            &METADATA_OBJECT,
            "metadata must be a JSON object",
        ));
    }
    check_metadata_value(value, 1)?;
    let size = crate::audit::jcs::canonical_json(value).len();
    if size > MAX_METADATA_BYTES {
        return Err(Violation::new(
            &METADATA_SIZE,
            format!(
                "metadata must be at most {MAX_METADATA_BYTES} bytes of canonical JSON, got {size}"
            ),
        ));
    }
    Ok(())
}

fn check_metadata_value(value: &Value, depth: usize) -> Result<(), Violation> {
    let text = |text: &str| match text.contains('\0') {
        true => Err(Violation::new(
            &METADATA_TEXT,
            "metadata must not contain the NUL character (\\u0000)",
        )),
        false => Ok(()),
    };
    let nested = |depth: usize| match depth > MAX_METADATA_DEPTH {
        true => Err(Violation::new(
            &METADATA_DEPTH,
            format!("metadata nests more than {MAX_METADATA_DEPTH} levels"),
        )),
        false => Ok(()),
    };
    match value {
        Value::Null | Value::Bool(_) => Ok(()),
        Value::String(string) => text(string),
        Value::Number(number) => {
            let within = match (number.as_u64(), number.as_i64(), number.as_f64()) {
                (Some(magnitude), _, _) => magnitude <= MAX_METADATA_NUMBER,
                (None, Some(negative), _) => negative.unsigned_abs() <= MAX_METADATA_NUMBER,
                (None, None, Some(float)) => float.abs() <= MAX_METADATA_NUMBER as f64,
                (None, None, None) => false,
            };
            match within {
                true => Ok(()),
                false => Err(Violation::new(
                    &METADATA_NUMBERS,
                    format!(
                        "metadata numbers must be within ±(2^53 − 1), got {number}; send larger \
                         ones as strings"
                    ),
                )),
            }
        }
        Value::Array(items) => {
            nested(depth)?;
            items
                .iter()
                .try_for_each(|item| check_metadata_value(item, depth + 1))
        }
        Value::Object(map) => {
            nested(depth)?;
            map.iter().try_for_each(|(key, member)| {
                text(key)?;
                check_metadata_value(member, depth + 1)
            })
        }
    }
}

/// Whether `text` is a UUID in the form the service writes: lowercase, hyphenated.
pub fn is_key_id(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok_and(|id| id.to_string() == text)
}

/// The provenance of an event of type `event_type`: its actor, request id and Idempotency-Key.
pub fn check_provenance(
    event_type: &str,
    actor: &str,
    request_id: Option<&str>,
    idempotency_key: Option<&str>,
) -> Result<(), Violation> {
    let is_expiry = event_type == "transfer_expired";
    if is_expiry && actor != SYSTEM_ACTOR {
        return Err(Violation::new(
            &ACTOR,
            format!("an expiry's actor must be {SYSTEM_ACTOR:?}, not {actor:?}"),
        ));
    }
    if !is_expiry && !is_key_id(actor) {
        let shown: String = actor.chars().take(80).collect();
        return Err(Violation::new(
            &ACTOR,
            format!(
                "the actor of a {event_type} event must be an API key id (a lowercase UUID), not \
                 {shown:?}"
            ),
        ));
    }
    check_request_id(request_id)?;
    check_idempotency_key(idempotency_key)
}

pub fn check_request_id(request_id: Option<&str>) -> Result<(), Violation> {
    match request_id {
        Some(text)
            if text.is_empty()
                || text.len() > MAX_REQUEST_ID_BYTES
                || !text.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Err(Violation::new(
                &REQUEST_ID,
                format!("request id must be 1 to {MAX_REQUEST_ID_BYTES} visible ASCII characters"),
            ))
        }
        _ => Ok(()),
    }
}

pub fn check_idempotency_key(idempotency_key: Option<&str>) -> Result<(), Violation> {
    match idempotency_key {
        Some(text)
            if text.is_empty()
                || text.len() > MAX_IDEMPOTENCY_KEY_BYTES
                || !text.bytes().all(|b| (0x20..=0x7e).contains(&b)) =>
        {
            Err(Violation::new(
                &IDEMPOTENCY_KEY,
                format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} printable ASCII \
                     characters"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// A ledger's checkpoint origin: `<prefix>/<ledger>`, a valid signed-note key name.
pub fn check_origin(origin: &str, ledger: &str) -> Result<(), Violation> {
    let prefix = origin
        .strip_suffix(ledger)
        .and_then(|rest| rest.strip_suffix('/'));
    let valid_name = !origin
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '+');
    match prefix {
        Some(prefix) if !prefix.is_empty() && valid_name => Ok(()),
        _ => {
            let shown: String = origin.chars().take(80).collect();
            Err(Violation::new(
                &ORIGIN,
                format!("the origin {shown:?} is not <prefix>/{ledger}"),
            ))
        }
    }
}

/// The limits of a decoded event that no type enforces: a ledger's assets, a transfer's timeout,
/// a post's positive amount. (Names, codes, amounts of transfers and metadata are enforced by
/// the types they decode into.)
pub fn check_event(event: &LedgerEvent) -> Result<(), Violation> {
    match event {
        LedgerEvent::LedgerCreated(new_ledger) => check_assets(&new_ledger.assets),
        LedgerEvent::TransferCreated(new) | LedgerEvent::TransferReversed(new) => {
            check_timeout(new.pending, new.timeout_seconds)?;
            check_positive(new.amount)
        }
        LedgerEvent::TransferPosted { amount, .. } => check_positive(*amount),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_limit_is_listed_once_and_named_in_its_violations() {
        let mut names: Vec<&str> = ALL.iter().map(|limit| limit.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for limit in ALL {
            let violation = Violation::new(limit, "x (limit `nothing`) y");
            assert_eq!(named_in(&violation.to_string()), Some(*limit));
            assert_eq!(
                named_in(&format!("key \"code\": {violation}")),
                Some(*limit)
            );
        }
        assert_eq!(named_in("no limit here"), None);
        assert_eq!(named_in("(limit `unknown`)"), None);
    }

    #[test]
    fn timeouts_are_for_pending_transfers_and_between_one_second_and_400_days() {
        assert!(check_timeout(true, Some(1)).is_ok());
        assert!(check_timeout(true, Some(MAX_TIMEOUT_SECONDS)).is_ok());
        assert!(check_timeout(false, None).is_ok());
        for (pending, seconds, limit) in [
            (true, 0, &TIMEOUT_SECONDS),
            (true, MAX_TIMEOUT_SECONDS + 1, &TIMEOUT_SECONDS),
            (false, 60, &TIMEOUT_REQUIRES_PENDING),
        ] {
            assert_eq!(
                check_timeout(pending, Some(seconds)).unwrap_err().limit,
                limit
            );
        }
    }

    #[test]
    fn metadata_limits_are_checked_on_the_json_value() {
        let safe = MAX_METADATA_NUMBER;
        assert!(check_metadata(&json!({"n": safe, "m": -(safe as i64), "x": 0.1})).is_ok());
        let deep = (1..MAX_METADATA_DEPTH).fold(json!({}), |inner, _| json!({ "a": inner }));
        assert!(check_metadata(&deep).is_ok());
        let cases = [
            (json!([1]), &METADATA_OBJECT),
            (json!({"n": safe + 1}), &METADATA_NUMBERS),
            (json!({"n": -(safe as i64) - 1}), &METADATA_NUMBERS),
            (json!({"n": 1e300}), &METADATA_NUMBERS),
            (json!({"deep": [{"n": u64::MAX}]}), &METADATA_NUMBERS),
            (json!({"s": "a\u{0}b"}), &METADATA_TEXT),
            (json!({"a\u{0}": 1}), &METADATA_TEXT),
            (json!({ "a": deep }), &METADATA_DEPTH),
            (
                json!({ "k": "x".repeat(MAX_METADATA_BYTES) }),
                &METADATA_SIZE,
            ),
        ];
        for (value, limit) in cases {
            assert_eq!(check_metadata(&value).unwrap_err().limit, limit, "{value}");
        }
        let exact = json!({ "k": "x".repeat(MAX_METADATA_BYTES - 8) });
        assert_eq!(crate::audit::jcs::canonical_json(&exact).len(), 4096);
        assert!(check_metadata(&exact).is_ok());
    }

    #[test]
    fn actors_are_system_exactly_for_expiries_and_key_ids_otherwise() {
        let key = "0190e7a4-0000-7000-8000-000000000001";
        assert!(check_provenance("transfer_created", key, Some("r"), None).is_ok());
        assert!(check_provenance("transfer_expired", "system", None, None).is_ok());
        for (event_type, actor) in [
            ("transfer_created", "system"),
            ("transfer_expired", key),
            ("account_opened", "key-1"),
            ("account_opened", "0190E7A4-0000-7000-8000-000000000001"),
            ("ledger_created", "01900e7a400007000800000000000001"),
        ] {
            assert_eq!(
                check_provenance(event_type, actor, None, None)
                    .unwrap_err()
                    .limit,
                &ACTOR,
                "{event_type} by {actor}"
            );
        }
        assert_eq!(
            check_provenance("account_opened", key, Some("a b"), None)
                .unwrap_err()
                .limit,
            &REQUEST_ID
        );
        assert_eq!(
            check_provenance("account_opened", key, None, Some("tab\there"))
                .unwrap_err()
                .limit,
            &IDEMPOTENCY_KEY
        );
    }

    #[test]
    fn an_origin_is_a_prefix_and_the_ledger_name() {
        assert!(check_origin("ledger/main", "main").is_ok());
        assert!(check_origin("ledger.example.com/books/main", "main").is_ok());
        for origin in [
            "ledger/other",
            "/main",
            "main",
            "ledger/xmain",
            "led ger/main",
            "a+b/main",
        ] {
            assert!(check_origin(origin, "main").is_err(), "{origin}");
        }
    }

    #[test]
    fn journal_amounts_carry_exactly_their_currency_s_scale() {
        assert_eq!(
            check_journal_amount("10.50", 2).unwrap().to_string(),
            "10.50"
        );
        for (text, limit) in [
            ("10.5", &AMOUNT_SCALE),
            ("10.500", &AMOUNT_SCALE),
            ("0.00", &AMOUNT_POSITIVE),
            ("-1.00", &AMOUNT_SYNTAX),
            ("1e3", &AMOUNT_SYNTAX),
            ("100000000000000000000000000.00", &AMOUNT_MAX),
        ] {
            assert_eq!(
                check_journal_amount(text, 2).unwrap_err().limit,
                limit,
                "{text}"
            );
        }
    }
}
