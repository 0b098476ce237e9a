//! RFC 8785 (JCS) canonical JSON of a `serde_json::Value`, written straight into a buffer.
//!
//! Every event is hashed over its canonical form when it is sealed, exported and verified, so
//! this is on the hot path of every write. `serde_json_canonicalizer` (the reference we test
//! against, byte for byte) allocates a writer per token and re-parses every object key; this
//! writes each token once. The rules:
//! - objects: members sorted by their keys' UTF-16 code units, no whitespace;
//! - strings: `"` `\` and control characters escaped (`\b \f \n \r \t`, else `\u00xx` in lower
//!   case), everything else as is; exactly what serde_json writes;
//! - numbers: the shortest ECMAScript form of the IEEE double (`ryu_js`), integers included;
//! - `null`, `true`, `false` as such.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// The canonical bytes of `value`.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical_json(value, &mut out);
    out
}

/// Appends the canonical bytes of `value` to `out`.
pub fn write_canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(number, out),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical_json(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|left, right| utf16_order(left.0, right.0));
            out.push(b'{');
            for (index, (key, member)) in members.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_canonical_json(member, out);
            }
            out.push(b'}');
        }
    }
}

/// Appends `"key":` (after a comma unless `first`): for callers that write an object whose keys
/// they know to be in canonical order.
pub fn write_key(key: &str, first: bool, out: &mut Vec<u8>) {
    if !first {
        out.push(b',');
    }
    write_string(key, out);
    out.push(b':');
}

/// Appends a JSON string (serde_json's escaping is the one RFC 8785 prescribes).
pub fn write_string(text: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, text).expect("writing a string to a Vec cannot fail");
}

/// Appends a string, or `null`.
pub fn write_optional_string(text: Option<&str>, out: &mut Vec<u8>) {
    match text {
        Some(text) => write_string(text, out),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_number(number: &Number, out: &mut Vec<u8>) {
    // JSON numbers are IEEE doubles to RFC 8785, integers too.
    let double = number.as_f64().unwrap_or(f64::NAN);
    assert!(
        double.is_finite(),
        "JSON numbers parsed by serde_json are finite"
    );
    let mut buffer = ryu_js::Buffer::new();
    out.extend_from_slice(buffer.format_finite(double).as_bytes());
}

/// RFC 8785 §3.2.3: keys compare by UTF-16 code units. For ASCII (nearly every key) that is the
/// byte order.
fn utf16_order(left: &str, right: &str) -> Ordering {
    if left.is_ascii() && right.is_ascii() {
        left.cmp(right)
    } else {
        left.encode_utf16().cmp(right.encode_utf16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn reference(value: &Value) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(value).unwrap()
    }

    #[test]
    fn the_rfc_8785_examples_come_out_as_the_rfc_prints_them() {
        // RFC 8785 §3.2.2.3, as the RFC writes the input.
        let numbers: Value = serde_json::from_str(
            "[333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001]",
        )
        .unwrap();
        assert_eq!(
            canonical_json(&numbers),
            b"[333333333.3333333,1e+30,4.5,0.002,1e-27]"
        );
        let sorted = json!({
            "\u{20ac}": "Euro Sign",
            "\r": "Carriage Return",
            "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\u{1f600}": "Emoji: Grinning Face",
            "\u{80}": "Control",
            "\u{f6}": "Latin Small Letter O With Diaeresis"
        });
        let text = String::from_utf8(canonical_json(&sorted)).unwrap();
        let positions: Vec<usize> = [
            "\\r",
            "1",
            "\u{80}",
            "\u{f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ]
        .iter()
        .map(|key| text.find(&format!("\"{key}\"")).unwrap())
        .collect();
        assert!(
            positions.windows(2).all(|pair| pair[0] < pair[1]),
            "keys in UTF-16 order, the emoji before U+FB33: {text}"
        );
    }

    #[test]
    fn integers_beyond_two_to_the_53_are_written_as_the_double_they_round_to() {
        for value in [
            json!(9_007_199_254_740_993_u64),
            json!(-12_345_678_901_234_567_i64),
            json!(u64::MAX),
        ] {
            assert_eq!(canonical_json(&value), reference(&value), "{value}");
        }
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |double| double.is_finite())
                .prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
            "[\\x00-\\x1f\"\\\\/a\u{7f}\u{80}\u{2028}\u{fb33}\u{1f600}]{0,6}"
                .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    "\\PC{0,6}|[\u{e000}-\u{ffff}\u{10000}-\u{10ffff}]{1,2}",
                    inner,
                    0..6
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_value_is_written_exactly_as_the_reference_canonicalizer_writes_it(
            value in any_json()
        ) {
            prop_assert_eq!(
                String::from_utf8(canonical_json(&value)).unwrap(),
                String::from_utf8(reference(&value)).unwrap()
            );
        }
    }
}
