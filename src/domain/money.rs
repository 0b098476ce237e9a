//! Money: currencies with their minor-unit scale, and exact decimal amounts at that scale.
//!
//! Every amount and every balance is a `rust_decimal::Decimal` whose scale is exactly the
//! currency's scale and whose mantissa stays below 10^28 (rust_decimal's 28 significant digits).
//! Arithmetic goes through [`checked_add`] / [`checked_sub`], which refuse to round.

use std::fmt;

use rust_decimal::Decimal;

/// Largest scale a custom asset may declare (§2).
pub const MAX_SCALE: u32 = 18;
/// Largest mantissa (in minor units) of any amount or balance: 10^28 - 1.
pub const MAX_MANTISSA: i128 = 9_999_999_999_999_999_999_999_999_999;

/// An asset code: an ISO 4217 alpha code or a ledger's custom asset (`^[A-Z][A-Z0-9_]{1,15}$`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CurrencyCode(String);

impl CurrencyCode {
    pub const MAX_LENGTH: usize = 16;

    /// The code, or the limit it breaks (limit `currency_code`; the message names it).
    pub fn parse(text: &str) -> Result<CurrencyCode, super::limits::Violation> {
        super::limits::check_currency_code(text)?;
        Ok(CurrencyCode(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A currency together with its minor-unit scale (EUR = 2, JPY = 0, BHD = 3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Currency {
    code: CurrencyCode,
    scale: u32,
}

impl Currency {
    /// A currency of this scale, or the limit it breaks (limit `asset_scale`).
    pub fn new(code: CurrencyCode, scale: u32) -> Result<Currency, super::limits::Violation> {
        super::limits::check_asset_scale(scale)?;
        Ok(Currency { code, scale })
    }

    /// The ISO 4217 currency with this code, if there is one.
    pub fn iso(code: &str) -> Option<Currency> {
        let scale = iso_4217_scale(code)?;
        Some(Currency {
            code: CurrencyCode(code.to_owned()),
            scale,
        })
    }

    pub fn code(&self) -> &CurrencyCode {
        &self.code
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn zero(&self) -> Decimal {
        Decimal::new(0, self.scale)
    }
}

/// The edition of the ISO 4217 table of [`ISO_4217_TABLE`] (docs/AUDIT_FORMAT.md §2.2).
pub const ISO_4217_EDITION: &str = "ISO 4217 List One as published by SIX, amendment 177 (2024)";

/// Minor-unit scale of active ISO 4217 alpha codes (list of 2024, amendment 177), by scale.
/// Codes whose minor unit is "N.A." in the table (XAG, XAU, XBA, XBB, XBC, XBD, XDR, XPD, XPT,
/// XSU, XTS, XUA, XXX) are not here: a ledger that needs one declares it as a custom asset with
/// its own scale. docs/AUDIT_FORMAT.md §2.2 lists this table (a test keeps the two equal).
pub static ISO_4217_TABLE: [(u32, &[&str]); 4] = [
    (
        0,
        &[
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
            "VND", "VUV", "XAF", "XOF", "XPF",
        ],
    ),
    (
        2,
        &[
            "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD",
            "BDT", "BGN", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
            "CAD", "CDF", "CHE", "CHF", "CHW", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK",
            "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
            "GIP", "GMD", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR",
            "JMD", "KES", "KGS", "KHR", "KPW", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
            "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN",
            "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PGK",
            "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD", "SCR", "SDG", "SEK",
            "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS",
            "TMT", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UYU", "UZS", "VED",
            "VES", "WST", "XCD", "XCG", "YER", "ZAR", "ZMW", "ZWG",
        ],
    ),
    (3, &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]),
    (4, &["CLF", "UYW"]),
];

fn iso_4217_scale(code: &str) -> Option<u32> {
    ISO_4217_TABLE
        .iter()
        .find(|(_, codes)| codes.contains(&code))
        .map(|(scale, _)| *scale)
}

/// Why a decimal text is not an acceptable amount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmountError {
    /// Not of the form `digits[.digits]`.
    Malformed,
    /// More decimals than the currency has.
    TooManyDecimals { scale: u32 },
    /// Zero or negative.
    NotPositive,
    /// 10^28 minor units or more.
    TooLarge,
}

impl fmt::Display for AmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AmountError::Malformed => f.write_str(
                "amount must be a decimal string of digits with an optional fraction, e.g. \
                 \"10.50\"",
            ),
            AmountError::TooManyDecimals { scale } => {
                write!(f, "amount has more than {scale} decimals for its currency")
            }
            AmountError::NotPositive => f.write_str("amount must be greater than zero"),
            AmountError::TooLarge => f.write_str("amount must be below 10^28 minor units"),
        }
    }
}

/// Parses decimal text without a scale check: `digits[.digits]`, no sign, no exponent, no
/// leading zero (`"0.50"`, never `"00.50"` or `"01.00"`). The decimals written are kept
/// (`"1.000"` has scale 3), so [`amount_at_scale`] refuses more decimals than a currency has even
/// when they are zeros: one amount has one spelling.
///
/// Keeping syntax separate from the scale lets a request carry an amount whose currency is only
/// known once the transfer it refers to is loaded (posting or reversing a part of it).
pub fn parse_decimal_text(text: &str) -> Result<Decimal, AmountError> {
    const MAX_TEXT_LENGTH: usize = 64;
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let digits_only = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = whole.len() > 1 && whole.starts_with('0');
    if text.len() > MAX_TEXT_LENGTH
        || !digits_only(whole)
        || leading_zero
        || fraction.is_some_and(|part| !digits_only(part))
    {
        return Err(AmountError::Malformed);
    }
    let fraction = fraction.unwrap_or("");
    if fraction.len() > MAX_SCALE as usize {
        return Err(AmountError::TooManyDecimals { scale: MAX_SCALE });
    }
    // rust_decimal rounds text beyond 28 significant digits; count them first and refuse.
    let significant_whole = whole.trim_start_matches('0');
    if significant_whole.len() + fraction.len() > 28 {
        return Err(AmountError::TooLarge);
    }
    text.parse::<Decimal>().map_err(|_| AmountError::TooLarge)
}

/// Brings a positive decimal to exactly `scale` decimals, refusing to round and refusing more
/// decimals than `scale`, zeros included.
pub fn amount_at_scale(value: Decimal, scale: u32) -> Result<Decimal, AmountError> {
    if value <= Decimal::ZERO {
        return Err(AmountError::NotPositive);
    }
    if value.scale() > scale {
        return Err(AmountError::TooManyDecimals { scale });
    }
    let mut rescaled = value;
    rescaled.rescale(scale);
    if rescaled.scale() != scale || rescaled.mantissa() > MAX_MANTISSA {
        return Err(AmountError::TooLarge);
    }
    debug_assert_eq!(rescaled, value);
    Ok(rescaled)
}

/// Parses an amount for a currency: syntax, positivity, scale and size in one step.
pub fn parse_amount(text: &str, scale: u32) -> Result<Decimal, AmountError> {
    amount_at_scale(parse_decimal_text(text)?, scale)
}

/// `left + right`, or `None` when the result would leave the representable range.
/// Both operands must carry the same scale (else `None`); the result keeps it where
/// rust_decimal would otherwise round.
pub fn checked_add(left: Decimal, right: Decimal) -> Option<Decimal> {
    if left.scale() != right.scale() {
        return None;
    }
    let sum = left.checked_add(right)?;
    (sum.scale() == left.scale() && sum.mantissa().abs() <= MAX_MANTISSA).then_some(sum)
}

/// A signed number of minor units at `scale` as decimal text: `(-1050, 2)` is `"-10.50"`.
/// For totals, which may exceed what a `Decimal` holds.
pub fn format_minor_units(minor_units: i128, scale: u32) -> String {
    let digits = minor_units.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    let sign = if minor_units < 0 { "-" } else { "" };
    match fraction {
        "" => format!("{sign}{whole}"),
        _ => format!("{sign}{whole}.{fraction}"),
    }
}

/// The minor units of an amount or balance held at `scale`: its mantissa brought to that
/// scale. `None` when it cannot be (more decimals than `scale`).
pub fn minor_units(value: Decimal, scale: u32) -> Option<i128> {
    let mut rescaled = value;
    rescaled.rescale(scale);
    (rescaled == value && rescaled.scale() == scale).then(|| rescaled.mantissa())
}

/// `left - right`, with the same guarantees as [`checked_add`].
pub fn checked_sub(left: Decimal, right: Decimal) -> Option<Decimal> {
    checked_add(left, -right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amount_is_brought_to_the_currency_scale() {
        assert_eq!(parse_amount("10.5", 2).unwrap().to_string(), "10.50");
        assert_eq!(parse_amount("7", 3).unwrap().to_string(), "7.000");
        assert_eq!(parse_amount("0.10", 2).unwrap().to_string(), "0.10");
    }

    #[test]
    fn an_amount_with_too_many_decimals_is_refused_not_rounded() {
        assert_eq!(
            parse_amount("1.005", 2),
            Err(AmountError::TooManyDecimals { scale: 2 })
        );
        assert_eq!(
            parse_amount("1.5", 0),
            Err(AmountError::TooManyDecimals { scale: 0 })
        );
        assert_eq!(
            parse_amount("1.000", 2),
            Err(AmountError::TooManyDecimals { scale: 2 }),
            "one amount has one spelling: no more decimals than the currency's, zeros included"
        );
        assert_eq!(parse_amount("1.0", 2).unwrap().to_string(), "1.00");
    }

    #[test]
    fn an_amount_with_a_leading_zero_is_malformed() {
        for text in ["01.00", "00.50", "007"] {
            assert_eq!(parse_amount(text, 2), Err(AmountError::Malformed), "{text}");
        }
        assert_eq!(parse_amount("0.50", 2).unwrap().to_string(), "0.50");
    }

    #[test]
    fn zero_negative_signed_and_exotic_forms_are_refused() {
        assert_eq!(parse_amount("0", 2), Err(AmountError::NotPositive));
        assert_eq!(parse_amount("0.00", 2), Err(AmountError::NotPositive));
        for text in [
            "-1", "+1", "1e3", "1.", ".5", "", " 1", "1,00", "0x10", "NaN", "1.2.3",
        ] {
            assert_eq!(parse_amount(text, 2), Err(AmountError::Malformed), "{text}");
        }
    }

    #[test]
    fn amounts_of_28_digits_and_more_are_refused() {
        let largest = "9".repeat(28);
        assert!(parse_amount(&largest, 0).is_ok());
        assert_eq!(
            parse_amount(&format!("{largest}9"), 0),
            Err(AmountError::TooLarge)
        );
        assert_eq!(
            parse_amount(&"9".repeat(27), 2),
            Err(AmountError::TooLarge),
            "27 digits plus 2 decimals is 29 significant digits"
        );
        assert_eq!(parse_amount(&"9".repeat(60), 0), Err(AmountError::TooLarge));
        assert_eq!(
            parse_amount(&"9".repeat(65), 0),
            Err(AmountError::Malformed)
        );
        assert_eq!(
            parse_amount(&format!("1.{}", "0".repeat(40)), 2),
            Err(AmountError::TooManyDecimals { scale: 18 }),
            "zeros past the currency's decimals are decimals too"
        );
        assert_eq!(
            parse_amount(&format!("0.{}1", "0".repeat(20)), 2),
            Err(AmountError::TooManyDecimals { scale: MAX_SCALE })
        );
    }

    #[test]
    fn checked_addition_refuses_to_round_past_the_mantissa_limit() {
        let big = parse_amount(&format!("{}.99", "9".repeat(26)), 2).unwrap();
        let one_cent = parse_amount("0.01", 2).unwrap();
        assert_eq!(checked_add(big, one_cent), None);
        let sum = checked_add(one_cent, one_cent).unwrap();
        assert_eq!(sum.to_string(), "0.02");
        assert_eq!(checked_sub(one_cent, sum).unwrap().to_string(), "-0.01");
    }

    #[test]
    fn minor_units_format_as_decimals_at_their_scale() {
        assert_eq!(format_minor_units(-1050, 2), "-10.50");
        assert_eq!(format_minor_units(7, 3), "0.007");
        assert_eq!(format_minor_units(7, 0), "7");
        assert_eq!(format_minor_units(0, 2), "0.00");
        let above_decimal = 10i128.pow(28) * 3;
        assert_eq!(
            format_minor_units(above_decimal, 2),
            format!("3{}.00", "0".repeat(26))
        );
        assert_eq!(
            minor_units(parse_amount("10.50", 2).unwrap(), 2),
            Some(1050)
        );
        assert_eq!(
            minor_units(parse_amount("10.5", 2).unwrap(), 3),
            Some(10500)
        );
        assert_eq!(minor_units(parse_amount("10.505", 3).unwrap(), 2), None);
    }

    #[test]
    fn iso_currencies_carry_their_minor_units() {
        assert_eq!(Currency::iso("EUR").unwrap().scale(), 2);
        assert_eq!(Currency::iso("JPY").unwrap().scale(), 0);
        assert_eq!(Currency::iso("BHD").unwrap().scale(), 3);
        assert_eq!(Currency::iso("XYZ"), None);
    }

    #[test]
    fn currency_codes_are_upper_case_and_bounded() {
        assert!(CurrencyCode::parse("USDC").is_ok());
        assert!(CurrencyCode::parse("POINTS_2").is_ok());
        for text in ["eur", "E", "1EUR", "EUR-X", "ABCDEFGHIJKLMNOPQ"] {
            assert!(CurrencyCode::parse(text).is_err(), "{text}");
        }
    }
}
