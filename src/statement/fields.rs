//! The rules every statement format shares: amounts, dates, currencies and free text (§7).
//!
//! Each rule takes the text exactly as the file holds it and returns the value or a reason a
//! bank engineer can act on. The format modules only decide which text is which field, so the
//! four formats cannot drift apart on what counts as a valid amount or date.

use rust_decimal::Decimal;
use time::{Date, Month};

use crate::domain::money::{
    amount_at_scale, parse_decimal_text, AmountError, Currency, CurrencyCode,
};

use super::{CsvColumns, LineError, ParseOptions, StatementLine};

/// External ids and references (SPEC: ≤ 128 characters).
pub(super) const MAX_IDENTIFIER_CHARS: usize = 128;
pub(super) const MAX_DESCRIPTION_CHARS: usize = 1024;
/// `parse_decimal_text` refuses longer text; saying so beats calling it malformed.
const MAX_AMOUNT_CHARS: usize = 64;
/// How much of a bad value an error repeats: enough to find it, never a whole hostile line.
const EXCERPT_CHARS: usize = 40;

/// Why a value was refused, in words for the person who produced the file.
pub(super) type Reason = String;

/// `text` quoted for an error message, cut after [`EXCERPT_CHARS`] characters.
pub(super) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Amounts

/// A signed entry amount (CSV, JSON lines): optional `-` or `+`, then `digits[.digits]`.
pub(super) fn signed_amount(text: &str, currency: &Currency) -> Result<Decimal, Reason> {
    let (negative, magnitude) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let value = non_zero(decimal_at_scale(magnitude, text, currency)?)?;
    Ok(if negative { -value } else { value })
}

/// An unsigned entry amount (camt `Amt`, whose sign is `CdtDbtInd`): `digits[.digits]`, not 0.
pub(super) fn unsigned_amount(text: &str, currency: &Currency) -> Result<Decimal, Reason> {
    non_zero(decimal_at_scale(text, text, currency)?)
}

/// An unsigned balance (camt `Bal/Amt`): like [`unsigned_amount`] but zero is a fine balance.
pub(super) fn balance_amount(text: &str, currency: &Currency) -> Result<Decimal, Reason> {
    decimal_at_scale(text, text, currency)
}

/// A SWIFT amount (MT940): `digits,[digits]` with a mandatory decimal comma, e.g. `1234,56` or
/// `1234,`; zero allowed (balances), entries check [`non_zero`] themselves.
pub(super) fn swift_amount(text: &str, currency: &Currency) -> Result<Decimal, Reason> {
    let well_formed = |whole: &str, fraction: &str| {
        !whole.is_empty() && all_digits(whole) && all_digits(fraction)
    };
    match text.split_once(',') {
        Some((whole, fraction)) if well_formed(whole, fraction) => {
            let digits = match fraction {
                "" => whole.to_owned(),
                _ => format!("{whole}.{fraction}"),
            };
            decimal_at_scale(&digits, text, currency)
        }
        _ => Err(format!(
            "amount must be digits with a decimal comma, e.g. 1234,56 or 1234, — got {}",
            excerpt(text)
        )),
    }
}

/// Refuses zero: an entry moves money.
pub(super) fn non_zero(value: Decimal) -> Result<Decimal, Reason> {
    if value.is_zero() {
        Err("amount must not be zero: an entry moves money".to_owned())
    } else {
        Ok(value)
    }
}

/// `digits` (`digits[.digits]`) brought to the currency's scale without rounding; `shown` is
/// the text as the file had it, for the message.
fn decimal_at_scale(digits: &str, shown: &str, currency: &Currency) -> Result<Decimal, Reason> {
    if digits.len() > MAX_AMOUNT_CHARS {
        return Err(format!(
            "amount has more than {MAX_AMOUNT_CHARS} characters"
        ));
    }
    // Bank files pad: leading zeros and trailing fraction zeros are tolerated here (the API's
    // amounts have one spelling); significant decimals beyond the currency's are still refused.
    let unpadded = without_padding(digits);
    let value = parse_decimal_text(&unpadded).map_err(|e| amount_reason(e, shown, currency))?;
    if value.is_zero() {
        return Ok(currency.zero());
    }
    amount_at_scale(value.normalize(), currency.scale())
        .map_err(|e| amount_reason(e, shown, currency))
}

/// `"007.50"` as `"7.50"`: the zeros a bank pads amounts with.
fn without_padding(digits: &str) -> String {
    if !digits.starts_with('0') {
        return digits.to_owned();
    }
    let rest = digits.trim_start_matches('0');
    if rest.is_empty() || rest.starts_with('.') {
        format!("0{rest}")
    } else {
        rest.to_owned()
    }
}

fn amount_reason(error: AmountError, shown: &str, currency: &Currency) -> Reason {
    match error {
        AmountError::TooManyDecimals { .. } => format!(
            "wrong scale: {} has more decimals than the {} of {}",
            excerpt(shown),
            currency.scale(),
            currency.code()
        ),
        AmountError::TooLarge => "amount must be below 10^28 minor units".to_owned(),
        // Zero is handled before scaling, and the sign is split off before parsing.
        AmountError::Malformed | AmountError::NotPositive => format!(
            "amount must be digits with an optional '.' and fraction digits \
             (no exponent, thousands separator or space), got {}",
            excerpt(shown)
        ),
    }
}

fn all_digits(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit())
}

// ---------------------------------------------------------------------------------------------
// Dates

/// `YYYY-MM-DD`, a real calendar date.
pub(super) fn iso_date(text: &str) -> Result<Date, Reason> {
    let shape_error = || format!("date must be YYYY-MM-DD, got {}", excerpt(text));
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(shape_error());
    }
    match (
        number(&bytes[0..4]),
        number(&bytes[5..7]),
        number(&bytes[8..10]),
    ) {
        (Some(year), Some(month), Some(day)) => calendar_date(year as i32, month, day, text),
        _ => Err(shape_error()),
    }
}

/// `YYYY-MM-DD`, or an ISO 8601 / RFC 3339 date-time (`YYYY-MM-DDThh:mm:ss[.f][Z|±hh:mm]`)
/// whose date part, as written, is taken: camt's `DtTm` and `FrDtTm` carry the bank's local day.
pub(super) fn iso_date_or_date_time(text: &str) -> Result<Date, Reason> {
    let (Some(date), Some(time)) = (text.get(..10), text.get(10..)) else {
        return iso_date(text);
    };
    if time.is_empty() {
        return iso_date(date);
    }
    match time.strip_prefix(['T', 't']) {
        Some(clock) if is_time_of_day(clock) => iso_date(date),
        _ => Err(format!(
            "date-time must be YYYY-MM-DDThh:mm:ss with an optional fraction and offset, got {}",
            excerpt(text)
        )),
    }
}

/// `hh:mm:ss[.fraction][Z|±hh:mm]`.
fn is_time_of_day(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() < 8 || bytes[2] != b':' || bytes[5] != b':' {
        return false;
    }
    let clock_ok = matches!(
        (number(&bytes[0..2]), number(&bytes[3..5]), number(&bytes[6..8])),
        (Some(hour), Some(minute), Some(second)) if hour < 24 && minute < 60 && second <= 60
    );
    clock_ok && is_fraction_and_offset(&bytes[8..])
}

fn is_fraction_and_offset(mut rest: &[u8]) -> bool {
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = &fraction[digits..];
    }
    match rest {
        [] | [b'Z' | b'z'] => true,
        [b'+' | b'-', hour @ .., b':', m1, m2] if hour.len() == 2 => matches!(
            (number(hour), number(&[*m1, *m2])),
            (Some(hours), Some(minutes)) if hours < 24 && minutes < 60
        ),
        _ => false,
    }
}

/// SWIFT `YYMMDD`: years 00–79 are 20xx, 80–99 are 19xx.
pub(super) fn swift_date(text: &str) -> Result<Date, Reason> {
    let bytes = text.as_bytes();
    let parts = match bytes {
        [y1, y2, m1, m2, d1, d2] => (
            number(&[*y1, *y2]),
            number(&[*m1, *m2]),
            number(&[*d1, *d2]),
        ),
        _ => (None, None, None),
    };
    match parts {
        (Some(yy), Some(month), Some(day)) => {
            let year = if yy < 80 { 2000 + yy } else { 1900 + yy };
            calendar_date(year as i32, month, day, text)
        }
        _ => Err(format!("date must be YYMMDD, got {}", excerpt(text))),
    }
}

/// SWIFT entry date `MMDD`: in the value date's year, or the adjacent one when the month wraps
/// (value date 31 December, entry 2 January: the entry is in the next year, and vice versa).
pub(super) fn swift_entry_date(text: &str, value_date: Date) -> Result<Date, Reason> {
    let (month, day) = match text.as_bytes() {
        [m1, m2, d1, d2] => (number(&[*m1, *m2]), number(&[*d1, *d2])),
        _ => (None, None),
    };
    let (Some(month), Some(day)) = (month, day) else {
        return Err(format!("entry date must be MMDD, got {}", excerpt(text)));
    };
    let year = match (u8::from(value_date.month()), month) {
        (12, 1) => value_date.year().saturating_add(1),
        (1, 12) => value_date.year().saturating_sub(1),
        _ => value_date.year(),
    };
    calendar_date(year, month, day, text)
}

/// The value of 1 to 4 ASCII digits.
fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0, |value, b| value * 10 + u32::from(b - b'0')),
    )
}

/// `year` is at most 4 digits (or a neighbour of a `Date`'s year), so it fits `i32` either way.
fn calendar_date(year: i32, month: u32, day: u32, shown: &str) -> Result<Date, Reason> {
    let impossible = || format!("{} is not a calendar date", excerpt(shown));
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok());
    let (Some(month), Ok(day)) = (month, u8::try_from(day)) else {
        return Err(impossible());
    };
    Date::from_calendar_date(year, month, day).map_err(|_| impossible())
}

// ---------------------------------------------------------------------------------------------
// Currencies and text

/// A line's currency: well-formed, and the account's. A code that is neither ISO 4217 nor the
/// account's own (custom) asset is "unknown"; a known one that differs is "not the account's".
pub(super) fn line_currency(text: &str, account: &Currency) -> Result<CurrencyCode, Reason> {
    let Ok(code) = CurrencyCode::parse(text) else {
        return Err(format!(
            "unknown currency {}: a code is upper case, e.g. EUR",
            excerpt(text)
        ));
    };
    if code == *account.code() {
        Ok(code)
    } else if Currency::iso(code.as_str()).is_none() {
        Err(format!("unknown currency {code}"))
    } else {
        Err(format!(
            "currency {code} is not the account's {}",
            account.code()
        ))
    }
}

/// Which limits a free-text field has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TextKind {
    /// External ids and references: ≤ 128 characters, no control characters (they are matched
    /// against the ledger's references, which allow none).
    Identifier,
    /// Descriptions: ≤ 1024 characters, line breaks allowed, no NUL.
    Description,
}

/// Trimmed; empty → `None`; no NUL (PostgreSQL cannot store it); bounded length.
pub(super) fn optional_text(text: Option<&str>, kind: TextKind) -> Result<Option<String>, Reason> {
    let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    let max = match kind {
        TextKind::Identifier => MAX_IDENTIFIER_CHARS,
        TextKind::Description => MAX_DESCRIPTION_CHARS,
    };
    if text.contains('\0') {
        return Err("must not contain NUL characters".to_owned());
    }
    if kind == TextKind::Identifier && text.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    let length = text.chars().count();
    if length > max {
        return Err(format!("longer than {max} characters ({length})"));
    }
    Ok(Some(text.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Checking one entry

/// Collects every error of one entry, so a row with three bad cells reports all three.
#[derive(Debug)]
pub(super) struct Check {
    number: u64,
    errors: Vec<LineError>,
}

impl Check {
    pub(super) fn new(number: u64) -> Check {
        Check {
            number,
            errors: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, field: &str, reason: impl Into<String>) {
        self.errors
            .push(LineError::new(self.number, field, reason.into()));
    }

    pub(super) fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// The entry (or header field) these errors belong to.
    pub(super) fn number(&self) -> u64 {
        self.number
    }

    /// The errors recorded, for checks that produce no line (headers, balances).
    pub(super) fn into_errors(self) -> Vec<LineError> {
        self.errors
    }

    /// The value of `result`, or `None` with its reason recorded against `field`.
    pub(super) fn record<T>(&mut self, field: &str, result: Result<T, Reason>) -> Option<T> {
        result.map_err(|reason| self.add(field, reason)).ok()
    }

    /// A field that must be there and not blank, parsed from its untrimmed text.
    pub(super) fn required<T>(
        &mut self,
        field: &str,
        text: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, Reason>,
    ) -> Option<T> {
        match text.filter(|text| !text.trim().is_empty()) {
            Some(text) => self.record(field, parse(text)),
            None => {
                self.add(field, "required, but missing or empty");
                None
            }
        }
    }

    /// A field that may be absent or blank (then `None`), parsed from its untrimmed text.
    pub(super) fn optional<T>(
        &mut self,
        field: &str,
        text: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, Reason>,
    ) -> Option<T> {
        let text = text.filter(|text| !text.trim().is_empty())?;
        self.record(field, parse(text))
    }

    pub(super) fn text(
        &mut self,
        field: &str,
        text: Option<&str>,
        kind: TextKind,
    ) -> Option<String> {
        self.record(field, optional_text(text, kind)).flatten()
    }

    /// `line` when no error was recorded, else every error in field order.
    pub(super) fn finish(
        self,
        line: Option<StatementLine>,
    ) -> Result<StatementLine, Vec<LineError>> {
        match line {
            Some(line) if self.errors.is_empty() => Ok(line),
            _ if self.errors.is_empty() => {
                // Unreachable by construction (a missing value always records why), but an
                // entry must never pass unchecked, so say so rather than panic.
                Err(vec![LineError::new(
                    self.number,
                    "entry",
                    "incomplete entry",
                )])
            }
            _ => Err(self.errors),
        }
    }
}

/// The texts of one CSV row or JSON line by field; `None` where the column or key is absent.
#[derive(Clone, Debug, Default)]
pub(super) struct LineTexts<'t> {
    pub external_id: Option<&'t str>,
    pub booking_date: Option<&'t str>,
    pub value_date: Option<&'t str>,
    pub amount: Option<&'t str>,
    pub currency: Option<&'t str>,
    pub reference: Option<&'t str>,
    pub description: Option<&'t str>,
}

/// Checks a CSV row or JSON line, naming fields as the file does (`names`), after whatever the
/// format already found wrong (`check`).
pub(super) fn check_line_texts(
    mut check: Check,
    texts: &LineTexts<'_>,
    names: &CsvColumns,
    options: &ParseOptions,
) -> Result<StatementLine, Vec<LineError>> {
    let currency = &options.account_currency;
    let external_id = check.text(&names.external_id, texts.external_id, TextKind::Identifier);
    let booking_date = check.required(&names.booking_date, texts.booking_date, iso_date);
    let value_date = check.optional(&names.value_date, texts.value_date, iso_date);
    let amount = check.required(&names.amount, texts.amount, |t| signed_amount(t, currency));
    let line_currency = check.required(&names.currency, texts.currency, |t| {
        line_currency(t, currency)
    });
    let reference = check.text(&names.reference, texts.reference, TextKind::Identifier);
    let description = check.text(&names.description, texts.description, TextKind::Description);
    let number = check.number;
    let line = match (booking_date, amount, line_currency) {
        (Some(booking_date), Some(amount), Some(currency)) => Some(StatementLine {
            number,
            external_id,
            booking_date,
            value_date,
            amount,
            currency,
            reference,
            description,
        }),
        _ => None,
    };
    check.finish(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn eur() -> Currency {
        Currency::iso("EUR").unwrap()
    }

    #[test]
    fn signed_amounts_are_rescaled_to_the_currency_and_keep_their_sign() {
        assert_eq!(signed_amount("10.5", &eur()).unwrap().to_string(), "10.50");
        assert_eq!(signed_amount("-7", &eur()).unwrap().to_string(), "-7.00");
        assert_eq!(signed_amount("+0.01", &eur()).unwrap().to_string(), "0.01");
        assert_eq!(
            signed_amount("3", &Currency::iso("JPY").unwrap())
                .unwrap()
                .to_string(),
            "3"
        );
    }

    #[test]
    fn amounts_with_exponents_separators_spaces_or_nan_are_refused() {
        for text in [
            "1e3", "1E3", "1,000.00", "1 000", " 1", "1 ", "", "NaN", "-", "+-1", "1.", ".5",
        ] {
            let reason = signed_amount(text, &eur()).unwrap_err();
            assert!(
                reason.starts_with("amount must be digits"),
                "{text}: {reason}"
            );
        }
    }

    #[test]
    fn an_amount_with_more_decimals_than_the_currency_is_a_wrong_scale() {
        let reason = signed_amount("10.501", &eur()).unwrap_err();
        assert_eq!(
            reason,
            "wrong scale: \"10.501\" has more decimals than the 2 of EUR"
        );
        assert!(
            signed_amount("10.500", &eur()).is_ok(),
            "trailing zeros are not decimals"
        );
    }

    #[test]
    fn zero_and_huge_amounts_are_refused() {
        for text in ["0", "-0.00", "+0"] {
            assert!(
                signed_amount(text, &eur()).unwrap_err().contains("zero"),
                "{text}"
            );
        }
        let huge = "9".repeat(27);
        assert_eq!(
            signed_amount(&huge, &eur()).unwrap_err(),
            "amount must be below 10^28 minor units"
        );
        assert!(signed_amount(&"9".repeat(100), &eur())
            .unwrap_err()
            .contains("64"));
    }

    #[test]
    fn swift_amounts_need_the_decimal_comma() {
        assert_eq!(
            swift_amount("1234,56", &eur()).unwrap().to_string(),
            "1234.56"
        );
        assert_eq!(
            swift_amount("1234,", &eur()).unwrap().to_string(),
            "1234.00"
        );
        assert_eq!(swift_amount("0,", &eur()).unwrap().to_string(), "0.00");
        for text in ["1234.56", "1234", ",50", "1,2,3", "-1,00", "1e3,0", ""] {
            assert!(swift_amount(text, &eur()).is_err(), "{text}");
        }
        assert!(swift_amount("1,234", &eur())
            .unwrap_err()
            .starts_with("wrong scale"));
    }

    #[test]
    fn dates_must_be_real_calendar_days_in_iso_form() {
        assert_eq!(iso_date("2026-11-02"), Ok(date!(2026 - 11 - 02)));
        assert_eq!(
            iso_date("2026-02-30").unwrap_err(),
            "\"2026-02-30\" is not a calendar date"
        );
        for text in [
            "26/11/2026",
            "2026-1-02",
            "2026-11-02T",
            "20261102",
            "",
            "2026-11-0é",
        ] {
            assert!(
                iso_date(text).unwrap_err().starts_with("date must be"),
                "{text}"
            );
        }
    }

    #[test]
    fn date_times_give_their_date_part_as_written() {
        for text in [
            "2026-11-02T23:30:00+01:00",
            "2026-11-02T23:30:00.123Z",
            "2026-11-02T23:30:00",
            "2026-11-02t00:00:00z",
            "2026-11-02",
        ] {
            assert_eq!(
                iso_date_or_date_time(text),
                Ok(date!(2026 - 11 - 02)),
                "{text}"
            );
        }
        for text in [
            "2026-11-02T25:00:00",
            "2026-11-02 10:00:00",
            "2026-11-02T10:00",
            "2026-11-02T10:00:00+1",
        ] {
            assert!(iso_date_or_date_time(text).is_err(), "{text}");
        }
        assert!(iso_date_or_date_time("2026-02-30T10:00:00Z").is_err());
        assert!(
            iso_date_or_date_time("ééééééééééé").is_err(),
            "no panic on char boundaries"
        );
    }

    #[test]
    fn swift_dates_pivot_at_1980_and_entry_dates_wrap_the_year() {
        assert_eq!(swift_date("261102"), Ok(date!(2026 - 11 - 02)));
        assert_eq!(swift_date("991231"), Ok(date!(1999 - 12 - 31)));
        assert!(swift_date("260230").is_err());
        assert!(swift_date("2611").is_err());
        let new_year_eve = date!(2026 - 12 - 31);
        assert_eq!(
            swift_entry_date("0102", new_year_eve),
            Ok(date!(2027 - 01 - 02))
        );
        assert_eq!(
            swift_entry_date("1231", date!(2027 - 01 - 01)),
            Ok(date!(2026 - 12 - 31))
        );
        assert_eq!(
            swift_entry_date("1103", date!(2026 - 11 - 02)),
            Ok(date!(2026 - 11 - 03))
        );
        assert!(swift_entry_date("0229", date!(2026 - 02 - 27)).is_err());
        assert!(swift_entry_date("11", date!(2026 - 02 - 27)).is_err());
    }

    #[test]
    fn currencies_must_be_known_and_the_accounts() {
        assert_eq!(line_currency("EUR", &eur()).unwrap().as_str(), "EUR");
        assert_eq!(
            line_currency("XXZ", &eur()).unwrap_err(),
            "unknown currency XXZ"
        );
        assert_eq!(
            line_currency("USD", &eur()).unwrap_err(),
            "currency USD is not the account's EUR"
        );
        assert!(line_currency("eur", &eur())
            .unwrap_err()
            .starts_with("unknown currency"));
        let points = Currency::new(CurrencyCode::parse("POINTS").unwrap(), 0).unwrap();
        assert!(
            line_currency("POINTS", &points).is_ok(),
            "a custom asset is its own currency"
        );
    }

    #[test]
    fn text_is_trimmed_bounded_and_free_of_nul() {
        assert_eq!(
            optional_text(Some("  INV-1 "), TextKind::Identifier),
            Ok(Some("INV-1".into()))
        );
        assert_eq!(optional_text(Some("   "), TextKind::Identifier), Ok(None));
        assert_eq!(optional_text(None, TextKind::Description), Ok(None));
        assert!(optional_text(Some("a\0b"), TextKind::Description).is_err());
        assert!(optional_text(Some("a\tb"), TextKind::Identifier).is_err());
        assert!(optional_text(Some("a\nb"), TextKind::Description).is_ok());
        assert!(optional_text(Some(&"é".repeat(128)), TextKind::Identifier).is_ok());
        assert!(optional_text(Some(&"r".repeat(129)), TextKind::Identifier).is_err());
        assert!(optional_text(Some(&"d".repeat(1024)), TextKind::Description).is_ok());
        assert!(optional_text(Some(&"d".repeat(1025)), TextKind::Description).is_err());
    }

    #[test]
    fn excerpts_never_repeat_a_whole_hostile_value() {
        let long = "x".repeat(10_000);
        assert!(excerpt(&long).chars().count() < 50);
        assert_eq!(excerpt("a\"b"), "\"a\\\"b\"");
    }
}
