//! Decimal amount text (`domain::money`): `parse_decimal_text`, `amount_at_scale` and
//! `parse_amount` on arbitrary UTF-8 at every scale 0..=18, and `amount_at_scale` on arbitrary
//! `Decimal`s. Properties: nothing panics (debug assertions are on); an accepted amount's
//! `to_string()` parses back to the same value at the same scale; its minor units format back
//! to the same text.
//!
//! Input: byte 0 chooses the scale (mod 19), the rest is the text. When the text is 16 bytes
//! or more, its first 16 bytes also make a raw `Decimal` (lo, mid, hi, flags).
#![no_main]

use ledger::domain::money::{
    amount_at_scale, checked_add, checked_sub, format_minor_units, minor_units, parse_amount,
    parse_decimal_text, MAX_SCALE,
};
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let scale = u32::from(first) % (MAX_SCALE + 1);

    if rest.len() >= 16 {
        let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let negative = rest[12] & 1 == 1;
        let raw = Decimal::from_parts(
            word(0),
            word(4),
            word(8),
            negative,
            u32::from(rest[13]) % 29,
        );
        check_accepted(amount_at_scale(raw, scale).ok(), scale);
    }

    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(value) = parse_decimal_text(text) {
        // The syntax-only parse round-trips through its own text, whatever its scale.
        let again = parse_decimal_text(&value.to_string());
        assert_eq!(
            again,
            Ok(value),
            "{text:?} parsed to {value}, which does not parse back"
        );
        check_accepted(amount_at_scale(value, scale).ok(), scale);
    }
    check_accepted(parse_amount(text, scale).ok(), scale);
});

/// An amount accepted at `scale` reads back from its own text, at that scale.
fn check_accepted(amount: Option<Decimal>, scale: u32) {
    let Some(amount) = amount else { return };
    let text = amount.to_string();
    let again = parse_amount(&text, scale).unwrap_or_else(|error| {
        panic!("{text:?} was accepted at scale {scale} but re-parses as {error:?}")
    });
    assert_eq!(again, amount, "{text:?}");
    assert_eq!(
        again.to_string(),
        text,
        "{text:?} re-parsed at another scale"
    );
    let units = minor_units(amount, scale)
        .unwrap_or_else(|| panic!("{text:?} accepted at scale {scale} has no minor units"));
    assert_eq!(format_minor_units(units, scale), text);
    // Arithmetic on accepted amounts never panics, rounding is refused.
    if let Some(sum) = checked_add(amount, amount) {
        assert_eq!(checked_sub(sum, amount), Some(amount), "{text:?}");
    }
}
