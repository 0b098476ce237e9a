//! JSON lines statements: one JSON object per line, keyed like the default CSV columns (§7).
//!
//! Each line is parsed on its own (`serde_json` into a list of key/value pairs, so that a key
//! given twice is caught rather than silently overwritten), then checked by the shared rules.
//! Values are strings or `null`; an amount given as a JSON number is refused, because a float
//! has already lost the exact decimal the bank wrote. Blank lines are skipped but counted, and
//! an over-long line costs only itself: the next newline is a reliable frame.

use std::fmt;
use std::io::BufRead;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::bounded::{LineSource, Physical};
use super::fields::{check_line_texts, excerpt, Check, LineTexts};
use super::{
    CsvColumns, LineError, LineResult, Outbox, ParseOptions, StatementLine, StatementReader,
    StatementSummary,
};

/// A streaming reader of one JSON lines statement.
pub(super) struct JsonLinesReader<'a> {
    lines: LineSource<Box<dyn BufRead + 'a>>,
    options: ParseOptions,
    keys: CsvColumns,
    summary: StatementSummary,
    outbox: Outbox,
}

impl<'a> JsonLinesReader<'a> {
    pub(super) fn new(input: Box<dyn BufRead + 'a>, options: ParseOptions) -> JsonLinesReader<'a> {
        JsonLinesReader {
            lines: LineSource::new(input, options.max_line_bytes),
            options,
            // The keys are fixed; only CSV columns are mappable.
            keys: CsvColumns::default(),
            summary: StatementSummary::default(),
            outbox: Outbox::default(),
        }
    }

    /// Reads one physical line, queueing what it yields.
    fn step(&mut self) {
        let max = self.options.max_line_bytes;
        match self.lines.next_line() {
            Ok(None) => self.outbox.finish(),
            Ok(Some((number, Physical::TooLong))) => {
                let reason = format!("longer than {max} bytes");
                self.outbox
                    .push_error(LineError::new(number, "line", reason));
            }
            Ok(Some((number, Physical::Text(bytes)))) => {
                if !bytes.iter().all(u8::is_ascii_whitespace) {
                    let result = check_json_line(number, bytes, &self.keys, &self.options);
                    self.outbox.push_result(result);
                }
            }
            Err(error) => {
                let reason = format!("read error: {error}");
                self.outbox.stop(LineError::new(0, "input", reason));
            }
        }
    }
}

impl Iterator for JsonLinesReader<'_> {
    type Item = LineResult;

    fn next(&mut self) -> Option<LineResult> {
        loop {
            if let Some(result) = self.outbox.pop() {
                return Some(result);
            }
            if self.outbox.drained() {
                return None;
            }
            self.step();
        }
    }
}

impl StatementReader for JsonLinesReader<'_> {
    fn summary(&self) -> &StatementSummary {
        &self.summary
    }

    fn stopped(&self) -> bool {
        self.outbox.stopped
    }
}

/// One line: a JSON object with known keys and string (or null) values, then the shared rules.
fn check_json_line(
    number: u64,
    bytes: &[u8],
    keys: &CsvColumns,
    options: &ParseOptions,
) -> Result<StatementLine, Vec<LineError>> {
    let object = match serde_json::from_slice::<JsonObject>(bytes) {
        Ok(object) => object,
        Err(error) => return Err(vec![LineError::new(number, "line", json_reason(&error))]),
    };
    let mut check = Check::new(number);
    let mut values: [Option<&str>; 7] = [None; 7];
    let mut seen = [false; 7];
    let mut unknown: Vec<&str> = Vec::new();
    for (key, value) in &object.0 {
        let Some(index) = key_index(keys, key) else {
            unknown.push(key);
            continue;
        };
        if std::mem::replace(&mut seen[index], true) {
            check.add(key, "key appears more than once in the object");
            continue;
        }
        values[index] = string_value(&mut check, key, value, &keys.amount);
    }
    if let Some(first) = unknown.first() {
        // One error for all of them: a hostile line of 10,000 keys must not become 10,000 errors.
        check.add(&excerpt(first), unknown_key_reason(keys, unknown.len()));
    }
    if !check.is_clean() {
        // The object's shape is wrong: its values would only add "missing" noise.
        return check.finish(None);
    }
    let [external_id, booking_date, value_date, amount, currency, reference, description] = values;
    let texts = LineTexts {
        external_id,
        booking_date,
        value_date,
        amount,
        currency,
        reference,
        description,
    };
    check_line_texts(check, &texts, keys, options)
}

/// The keys in the order of [`LineTexts`]' fields.
fn key_names(keys: &CsvColumns) -> [&str; 7] {
    [
        &keys.external_id,
        &keys.booking_date,
        &keys.value_date,
        &keys.amount,
        &keys.currency,
        &keys.reference,
        &keys.description,
    ]
}

fn key_index(keys: &CsvColumns, key: &str) -> Option<usize> {
    key_names(keys).iter().position(|name| *name == key)
}

/// A string value as text, `null` as absent; anything else is recorded as an error.
fn string_value<'v>(
    check: &mut Check,
    key: &str,
    value: &'v Value,
    amount_key: &str,
) -> Option<&'v str> {
    match value {
        Value::String(text) => Some(text),
        Value::Null => None,
        Value::Number(_) if key == amount_key => {
            check.add(
                key,
                "amount must be a decimal string, e.g. \"10.50\", not a JSON number",
            );
            None
        }
        _ => {
            check.add(key, "must be a string or null");
            None
        }
    }
}

fn unknown_key_reason(keys: &CsvColumns, count: usize) -> String {
    let others = match count {
        1 => String::new(),
        _ => format!(" (and {} more unknown keys)", count - 1),
    };
    format!(
        "unknown key{others}; the keys are {}",
        key_names(keys).join(", ")
    )
}

/// serde_json's message without its "line 1": the line number is already the entry's.
fn json_reason(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = message.strip_suffix(&suffix).unwrap_or(&message);
    format!("not a JSON object ({message}) at column {}", error.column())
}

/// The members of a JSON object in file order, duplicates kept so they can be refused.
struct JsonObject(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JsonObject, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = JsonObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            members.push((key, map.next_value::<Value>()?));
        }
        Ok(JsonObject(members))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read};

    use super::*;
    use crate::domain::money::Currency;
    use crate::statement::{reader, StatementFormat};

    fn options() -> ParseOptions {
        ParseOptions::new(Currency::iso("EUR").unwrap())
    }

    fn read_all(text: &str) -> (Vec<LineResult>, bool) {
        let mut lines = reader(
            StatementFormat::JsonLines,
            Box::new(text.as_bytes()),
            options(),
        );
        let results: Vec<LineResult> = lines.by_ref().collect();
        (results, lines.stopped())
    }

    fn only_error(text: &str) -> LineError {
        let (results, _) = read_all(text);
        assert_eq!(results.len(), 1, "{results:?}");
        results.into_iter().next().unwrap().unwrap_err()
    }

    const GOOD: &str = r#"{"booking_date":"2026-11-02","amount":"-10.5","currency":"EUR"}"#;

    #[test]
    fn blank_lines_are_skipped_but_counted() {
        let text = format!("\n{GOOD}\n   \n\r\n{GOOD}\n\n");
        let (results, stopped) = read_all(&text);
        assert!(!stopped);
        let numbers: Vec<u64> = results.iter().map(|r| r.as_ref().unwrap().number).collect();
        assert_eq!(numbers, vec![2, 5]);
        let line = results[0].as_ref().unwrap();
        assert_eq!(line.amount.to_string(), "-10.50");
        assert_eq!((line.reference.as_ref(), line.value_date), (None, None));
    }

    #[test]
    fn a_json_number_amount_is_refused() {
        let error = only_error(r#"{"booking_date":"2026-11-02","amount":10.5,"currency":"EUR"}"#);
        assert_eq!((error.number, error.field.as_str()), (1, "amount"));
        assert!(error.reason.contains("decimal string"), "{}", error.reason);
    }

    #[test]
    fn wrong_scale_exponent_date_and_currency_errors_name_their_key() {
        let cases = [
            (
                r#""amount":"10.501","currency":"EUR","booking_date":"2026-11-02""#,
                "amount",
            ),
            (
                r#""amount":"1e3","currency":"EUR","booking_date":"2026-11-02""#,
                "amount",
            ),
            (
                r#""amount":"1.00","currency":"EUR","booking_date":"2026-02-30""#,
                "booking_date",
            ),
            (
                r#""amount":"1.00","currency":"EUR","booking_date":"26/11/2026""#,
                "booking_date",
            ),
            (
                r#""amount":"1.00","currency":"XXZ","booking_date":"2026-11-02""#,
                "currency",
            ),
            (
                r#""amount":"1.00","currency":"GBP","booking_date":"2026-11-02""#,
                "currency",
            ),
            (r#""amount":"1.00","booking_date":"2026-11-02""#, "currency"),
            (
                r#""amount":"1.00","currency":"EUR","booking_date":null"#,
                "booking_date",
            ),
        ];
        for (members, field) in cases {
            let error = only_error(&format!("{{{members}}}"));
            assert_eq!(
                (error.number, error.field.as_str()),
                (1, field),
                "{members}"
            );
        }
    }

    #[test]
    fn unknown_keys_duplicate_keys_and_non_strings_are_refused() {
        let text = concat!(
            r#"{"amount":"1.00","amount":"2.00","currency":"EUR","booking_date":"2026-11-02","#,
            r#""memo":"x","reference":7}"#,
            "\n"
        );
        let (results, _) = read_all(text);
        let fields: Vec<String> = results.into_iter().map(|r| r.unwrap_err().field).collect();
        assert_eq!(fields, vec!["amount", "reference", "\"memo\""]);
    }

    #[test]
    fn a_line_that_is_not_an_object_is_an_error_of_that_line_only() {
        let text = format!("[1,2]\n{{\"amount\":\n{GOOD} trailing\n{GOOD}\n");
        let (results, stopped) = read_all(&text);
        assert!(!stopped);
        assert_eq!(results.len(), 4);
        for (index, result) in results[..3].iter().enumerate() {
            let error = result.as_ref().unwrap_err();
            assert_eq!(
                (error.number, error.field.as_str()),
                (index as u64 + 1, "line")
            );
            assert!(
                error.reason.starts_with("not a JSON object"),
                "{}",
                error.reason
            );
            assert!(!error.reason.contains("line 1"), "{}", error.reason);
        }
        assert_eq!(results[3].as_ref().unwrap().number, 4);
    }

    #[test]
    fn optional_keys_may_be_missing_or_null_and_text_is_trimmed() {
        let text = concat!(
            r#"{"external_id":null,"booking_date":"2026-11-02","value_date":"2026-11-03","#,
            r#""amount":"5","currency":"EUR","reference":"  INV-7 ","description":""}"#
        );
        let (results, _) = read_all(text);
        let line = results[0].as_ref().unwrap();
        assert_eq!(line.external_id, None);
        assert_eq!(line.reference.as_deref(), Some("INV-7"));
        assert_eq!(line.description, None);
        assert_eq!(line.value_date.unwrap().to_string(), "2026-11-03");
    }

    #[test]
    fn nul_in_text_is_refused() {
        let error = only_error(concat!(
            r#"{"booking_date":"2026-11-02","amount":"5","currency":"EUR","#,
            r#""description":"a\u0000b"}"#
        ));
        assert_eq!(error.field, "description");
        assert!(error.reason.contains("NUL"));
    }

    /// `count` bytes of `x` without a newline, then one good line.
    struct EndlessLine {
        left: usize,
        tail: &'static [u8],
    }

    impl Read for EndlessLine {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.left > 0 {
                let count = out.len().min(self.left);
                out[..count].fill(b'x');
                self.left -= count;
                return Ok(count);
            }
            let count = out.len().min(self.tail.len());
            out[..count].copy_from_slice(&self.tail[..count]);
            self.tail = &self.tail[count..];
            Ok(count)
        }
    }

    #[test]
    fn a_ten_megabyte_line_is_skipped_with_bounded_memory_and_reading_goes_on() {
        let tail = b"\n{\"booking_date\":\"2026-11-02\",\"amount\":\"1\",\"currency\":\"EUR\"}\n";
        let input = EndlessLine {
            left: 10 * 1024 * 1024,
            tail,
        };
        let mut lines = JsonLinesReader::new(Box::new(io::BufReader::new(input)), options());
        let first = lines.next().unwrap().unwrap_err();
        assert_eq!((first.number, first.field.as_str()), (1, "line"));
        assert_eq!(first.reason, "longer than 65536 bytes");
        assert!(lines.lines.buffer_capacity() <= 2 * ParseOptions::DEFAULT_MAX_LINE_BYTES);
        assert_eq!(lines.next().unwrap().unwrap().number, 2);
        assert!(lines.next().is_none());
        assert!(!lines.stopped());
    }
}
