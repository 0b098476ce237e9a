//! The example statements under docs/examples/ describe the same month in all four formats:
//! they must read to the same lines, so the documentation cannot drift from the code.

use rust_decimal::Decimal;
use time::macros::date;

use super::{
    check_balanced, reader, LineResult, ParseOptions, StatementFormat, StatementLine,
    StatementSummary,
};
use crate::domain::money::Currency;

const CSV: &str = include_str!("../../docs/examples/statement.csv");
const JSON_LINES: &str = include_str!("../../docs/examples/statement.jsonl");
const CAMT_08: &str = include_str!("../../docs/examples/statement.camt053.xml");
const CAMT_02: &str = include_str!("../../docs/examples/statement.camt053v02.xml");
const MT940: &str = include_str!("../../docs/examples/statement.mt940");

const EXAMPLES: [(&str, StatementFormat, &str); 5] = [
    ("statement.csv", StatementFormat::Csv, CSV),
    ("statement.jsonl", StatementFormat::JsonLines, JSON_LINES),
    ("statement.camt053.xml", StatementFormat::Camt053, CAMT_08),
    (
        "statement.camt053v02.xml",
        StatementFormat::Camt053,
        CAMT_02,
    ),
    ("statement.mt940", StatementFormat::Mt940, MT940),
];

fn options() -> ParseOptions {
    ParseOptions::new(Currency::iso("EUR").unwrap())
}

/// Every line of an example (numbers set to 0) and its summary; any error fails the test.
fn read_example(
    name: &str,
    format: StatementFormat,
    text: &str,
) -> (Vec<StatementLine>, StatementSummary) {
    let mut statement = reader(format, Box::new(text.as_bytes()), options());
    let results: Vec<LineResult> = statement.by_ref().collect();
    assert!(!statement.stopped(), "{name} stopped");
    let lines = results
        .into_iter()
        .map(|result| match result {
            Ok(line) => StatementLine { number: 0, ..line },
            Err(error) => panic!("{name}: {error}"),
        })
        .collect();
    (lines, statement.summary().clone())
}

#[test]
fn all_example_files_read_to_the_same_lines() {
    let (expected, _) = read_example(EXAMPLES[0].0, EXAMPLES[0].1, EXAMPLES[0].2);
    assert_eq!(expected.len(), 8);
    for (name, format, text) in EXAMPLES {
        let (lines, _) = read_example(name, format, text);
        assert_eq!(lines, expected, "{name}");
    }
}

#[test]
fn the_example_lines_are_what_the_documentation_says() {
    let (lines, _) = read_example("statement.csv", StatementFormat::Csv, CSV);
    let first = &lines[0];
    assert_eq!(first.external_id.as_deref(), Some("BANK-0001"));
    assert_eq!(first.reference.as_deref(), Some("INV-1001"));
    assert_eq!(
        first.description.as_deref(),
        Some("Payment invoice 1001\nACME GmbH")
    );
    assert_eq!(first.amount.to_string(), "250.00");
    assert_eq!(lines[1].amount.to_string(), "-120.50");
    assert_eq!(
        (lines[2].booking_date, lines[2].value_date),
        (date!(2026 - 11 - 05), Some(date!(2026 - 11 - 04)))
    );
    assert_eq!(lines[3].reference, None, "the fee has no reference");
    assert_eq!(
        lines[7].description, None,
        "the last line has no description"
    );
}

#[test]
fn example_numbers_follow_each_formats_rule() {
    let numbers = |format, text: &str| -> Vec<u64> {
        reader(format, Box::new(text.as_bytes()), options())
            .map(|line| line.unwrap().number)
            .collect()
    };
    assert_eq!(
        numbers(StatementFormat::Csv, CSV),
        vec![2, 4, 5, 6, 7, 8, 9, 10]
    );
    assert_eq!(
        numbers(StatementFormat::JsonLines, JSON_LINES),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(
        numbers(StatementFormat::Camt053, CAMT_08),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(
        numbers(StatementFormat::Mt940, MT940),
        (1..=8).collect::<Vec<_>>()
    );
}

#[test]
fn the_camt_and_mt940_examples_balance_and_carry_their_header() {
    for (name, format, text) in &EXAMPLES[2..] {
        let (lines, summary) = read_example(name, *format, text);
        let sum: Decimal = lines.iter().map(|line| line.amount).sum();
        assert_eq!(check_balanced(&summary, sum), Ok(()), "{name}");
        assert_eq!(
            summary.opening_balance,
            Some(Decimal::new(100_000, 2)),
            "{name}"
        );
        assert_eq!(
            summary.closing_balance,
            Some(Decimal::new(193_965, 2)),
            "{name}"
        );
        assert_eq!(
            summary.statement_id.as_deref(),
            Some("STMT-2026-11"),
            "{name}"
        );
        assert_eq!(
            summary.account_identifier.as_deref(),
            Some("DE89370400440532013000"),
            "{name}"
        );
        assert_eq!(summary.period_start, Some(date!(2026 - 11 - 01)), "{name}");
        assert_eq!(summary.period_end, Some(date!(2026 - 11 - 30)), "{name}");
    }
}

#[test]
fn the_csv_and_json_lines_examples_carry_no_balances() {
    for (name, format, text) in &EXAMPLES[..2] {
        let (_, summary) = read_example(name, *format, text);
        assert_eq!(summary, StatementSummary::default(), "{name}");
    }
}

#[test]
fn a_changed_closing_balance_is_detected_as_unbalanced() {
    let tampered = MT940.replace(":62F:C261130EUR1939,65", ":62F:C261130EUR1939,66");
    let (lines, summary) = read_example("tampered", StatementFormat::Mt940, &tampered);
    let sum: Decimal = lines.iter().map(|line| line.amount).sum();
    assert_eq!(
        check_balanced(&summary, sum),
        Err((Decimal::new(193_965, 2), Decimal::new(193_966, 2)))
    );
}

mod robustness {
    //! Nothing a file holds may panic a reader or keep it from ending: mutated examples (the
    //! closest a random test gets to real-looking hostile input) and raw bytes, in every format.

    use proptest::prelude::*;

    use super::*;

    /// Reads everything, checking the reader's promises on the way.
    fn read_to_end(format: StatementFormat, bytes: &[u8], max_line_bytes: usize) {
        let mut options = options();
        options.max_line_bytes = max_line_bytes;
        let mut statement = reader(format, Box::new(bytes), options);
        let mut results = 0usize;
        for _ in statement.by_ref() {
            results += 1;
            // Every result stands for at least one byte of input, so this bounds the loop.
            assert!(results <= 3 * bytes.len() + 10, "a reader that never ends");
        }
        assert!(statement.next().is_none());
        let _ = statement.summary();
    }

    fn mutated(example: &[u8], edits: &[(usize, u8, u8)], cut: usize) -> Vec<u8> {
        let mut bytes = example.to_vec();
        for &(position, byte, kind) in edits {
            let at = position % (bytes.len() + 1);
            match kind % 3 {
                0 if at < bytes.len() => bytes[at] = byte,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, byte),
            }
        }
        bytes.truncate(bytes.len().min(cut));
        bytes
    }

    /// Bytes that matter to the formats, so that mutations hit syntax rather than letters.
    fn interesting_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            prop::sample::select(b"<>/&;:\"',.-+\r\n{}0123456789CDRNe ".to_vec()),
            any::<u8>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn mutated_examples_never_panic_a_reader(
            example in 0..EXAMPLES.len(),
            edits in prop::collection::vec((any::<usize>(), interesting_byte(), any::<u8>()), 1..8),
            cut in any::<usize>(),
            max_line_bytes in prop_oneof![Just(ParseOptions::DEFAULT_MAX_LINE_BYTES), 1..200usize],
        ) {
            let (_, format, text) = EXAMPLES[example];
            let bytes = mutated(text.as_bytes(), &edits, cut);
            read_to_end(format, &bytes, max_line_bytes);
        }

        #[test]
        fn raw_bytes_never_panic_any_reader(
            bytes in prop::collection::vec(interesting_byte(), 0..400),
            max_line_bytes in 0..100usize,
        ) {
            for format in StatementFormat::ALL {
                read_to_end(format, &bytes, max_line_bytes);
                read_to_end(format, &bytes, ParseOptions::DEFAULT_MAX_LINE_BYTES);
            }
        }
    }
}
