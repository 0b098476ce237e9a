//! MT940 reader tests: entries, descriptions, balances over several messages, and bad input.

use std::io::{self, Read};

use rust_decimal::Decimal;
use time::macros::date;

use super::{split_entry, Direction, EntryParts};
use crate::domain::money::Currency;
use crate::statement::{
    check_balanced, reader, LineError, LineResult, ParseOptions, StatementFormat, StatementLine,
    StatementSummary,
};

fn options() -> ParseOptions {
    ParseOptions::new(Currency::iso("EUR").unwrap())
}

struct Outcome {
    results: Vec<LineResult>,
    stopped: bool,
    summary: StatementSummary,
}

fn read_all(text: &str) -> Outcome {
    let mut statement = reader(StatementFormat::Mt940, Box::new(text.as_bytes()), options());
    let results: Vec<LineResult> = statement.by_ref().collect();
    Outcome {
        results,
        stopped: statement.stopped(),
        summary: statement.summary().clone(),
    }
}

fn errors(outcome: &Outcome) -> Vec<&LineError> {
    outcome
        .results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .collect()
}

/// The first error reading `text` gives.
fn first_error(text: &str) -> LineError {
    let outcome = read_all(text);
    errors(&outcome)
        .first()
        .map(|error| (*error).clone())
        .expect("an error")
}

fn lines(outcome: &Outcome) -> Vec<&StatementLine> {
    outcome
        .results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .collect()
}

/// One message around `fields` (the `:61:`/`:86:` lines), opening 100,00 EUR.
fn message(fields: &str, closing: &str) -> String {
    format!(":20:REF-1\n:25:DE00123\n:28C:1/1\n:60F:C261031EUR100,00\n{fields}:62F:{closing}\n-\n")
}

#[test]
fn entry_text_splits_into_its_subfields() {
    let parts = split_entry("2611021102CR250,00NTRFINV-1001//BANK-1").unwrap();
    assert_eq!(
        parts,
        EntryParts {
            value_date: "261102",
            entry_date: Some("1102"),
            direction: Direction::In,
            amount: "250,00",
            customer_reference: "INV-1001",
            bank_reference: Some("BANK-1"),
        }
    );
    let reversal = split_entry("261102RD5,S103NONREF").unwrap();
    assert_eq!(
        (reversal.direction, reversal.entry_date),
        (Direction::In, None)
    );
    assert_eq!((reversal.amount, reversal.bank_reference), ("5,", None));
    assert_eq!(
        split_entry("261102RC5,FCHGX").unwrap().direction,
        Direction::Out
    );
}

#[test]
fn entries_carry_sign_dates_references_and_multi_line_descriptions() {
    let fields = ":61:2611021103C250,00NTRFINV-1001//BANK-1\n\
                  SUPPLEMENTARY DETAILS\n\
                  :86:Payment invoice 1001\n\
                  ACME GmbH   \n\
                  Berlin\n\
                  :61:261231RC40,NTRFNONREF\n\
                  :61:2612310102D10,5NMSCX-9//B-3\n\
                  :86:Fee\n";
    let outcome = read_all(&message(fields, "C270102EUR299,50"));
    assert!(errors(&outcome).is_empty(), "{:?}", outcome.results);
    let lines = lines(&outcome);
    assert_eq!(lines.len(), 3);
    let first = lines[0];
    assert_eq!((first.number, first.amount), (1, Decimal::new(25_000, 2)));
    assert_eq!(
        (first.booking_date, first.value_date),
        (date!(2026 - 11 - 03), Some(date!(2026 - 11 - 02)))
    );
    assert_eq!(first.reference.as_deref(), Some("INV-1001"));
    assert_eq!(first.external_id.as_deref(), Some("BANK-1"));
    assert_eq!(
        first.description.as_deref(),
        Some("Payment invoice 1001\nACME GmbH\nBerlin")
    );
    assert_eq!(first.currency.as_str(), "EUR");
    let reversal = lines[1];
    assert_eq!(
        reversal.amount.to_string(),
        "-40.00",
        "RC reverses a credit"
    );
    assert_eq!(
        (reversal.reference.as_ref(), reversal.external_id.as_ref()),
        (None, None)
    );
    assert_eq!(reversal.description, None);
    let wrapped = lines[2];
    assert_eq!(
        wrapped.booking_date,
        date!(2027 - 01 - 02),
        "the entry date wraps the year"
    );
    assert_eq!(wrapped.amount.to_string(), "-10.50");
    let sum: Decimal = lines.iter().map(|line| line.amount).sum();
    assert_eq!(check_balanced(&outcome.summary, sum), Ok(()));
    assert_eq!(outcome.summary.period_end, Some(date!(2027 - 01 - 02)));
}

#[test]
fn each_kind_of_bad_entry_is_refused_with_its_number_and_reading_goes_on() {
    let fields = ":61:261302C1,00NTRFA\n\
                  :61:261102X1,00NTRFA\n\
                  :61:261102C1.00NTRFA\n\
                  :61:261102C1,234NTRFA\n\
                  :61:261102C1e3,NTRFA\n\
                  :61:261102C0,NTRFA\n\
                  :61:261102CNTRFA\n\
                  :61:261102C1,00XTRFA\n\
                  :61:261102C1,00NTRF\n\
                  :61:2611020230C1,00NTRFA\n\
                  :86:skipped with its refused entry\n\
                  :61:261102C1,00NTRFGOOD\n";
    let outcome = read_all(&message(fields, "C261130EUR101,00"));
    assert!(!outcome.stopped);
    let found: Vec<(u64, &str)> = errors(&outcome)
        .iter()
        .map(|e| (e.number, e.field.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (1, ":61: value date"),
            (2, ":61:"),
            (3, ":61: amount"),
            (4, ":61: amount"),
            (5, ":61:"),
            (6, ":61: amount"),
            (7, ":61:"),
            (8, ":61:"),
            (9, ":61:"),
            (10, ":61: entry date"),
        ]
    );
    let reasons: Vec<&str> = errors(&outcome).iter().map(|e| e.reason.as_str()).collect();
    assert!(reasons[0].contains("not a calendar date"), "{}", reasons[0]);
    assert!(reasons[1].contains("C, D, RC or RD"), "{}", reasons[1]);
    assert!(reasons[2].contains("decimal comma"), "{}", reasons[2]);
    assert!(reasons[3].starts_with("wrong scale"), "{}", reasons[3]);
    assert!(reasons[5].contains("zero"), "{}", reasons[5]);
    assert!(reasons[8].contains("customer reference"), "{}", reasons[8]);
    let lines = lines(&outcome);
    assert_eq!((lines.len(), lines[0].number), (1, 11));
    assert_eq!(lines[0].reference.as_deref(), Some("GOOD"));
}

#[test]
fn an_opening_balance_in_another_currency_refuses_it_and_its_entries() {
    let text = message(":61:261102C1,00NTRFA\n", "C261130EUR101,00")
        .replace(":60F:C261031EUR", ":60F:C261031USD");
    let outcome = read_all(&text);
    let found: Vec<(u64, &str)> = errors(&outcome)
        .iter()
        .map(|e| (e.number, e.field.as_str()))
        .collect();
    assert_eq!(found, vec![(0, ":60F: currency"), (1, ":60F: currency")]);
    assert_eq!(
        errors(&outcome)[0].reason,
        "currency USD is not the account's EUR"
    );
    let unknown = message(":61:261102C1,00NTRFA\n", "C261130EUR101,00").replace("EUR100", "XXZ100");
    assert_eq!(
        errors(&read_all(&unknown))[0].reason,
        "unknown currency XXZ"
    );
}

#[test]
fn an_unbalanced_statement_is_detected() {
    let outcome = read_all(&message(":61:261102D1,00NTRFA\n", "C261130EUR100,00"));
    let sum: Decimal = lines(&outcome).iter().map(|line| line.amount).sum();
    assert_eq!(
        check_balanced(&outcome.summary, sum),
        Err((Decimal::new(9_900, 2), Decimal::new(10_000, 2)))
    );
}

#[test]
fn pages_of_one_statement_continue_each_other() {
    let pages = ":20:REF-1\n:25:DE00123\n:28C:1/1\n:60F:C261031EUR100,00\n\
                 :61:261102C5,00NTRFA\n:62M:C261102EUR105,00\n-\n\
                 :20:REF-1\n:25:DE00123\n:28C:1/2\n:60M:C261102EUR105,00\n\
                 :61:261103D1,00NTRFB\n:62F:C261103EUR104,00\n-\n";
    let outcome = read_all(pages);
    assert!(errors(&outcome).is_empty(), "{:?}", outcome.results);
    assert_eq!(
        outcome.summary.opening_balance,
        Some(Decimal::new(10_000, 2))
    );
    assert_eq!(
        outcome.summary.closing_balance,
        Some(Decimal::new(10_400, 2))
    );
    assert_eq!(outcome.summary.period_start, Some(date!(2026 - 10 - 31)));
    assert_eq!(
        lines(&outcome).iter().map(|l| l.number).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let broken = pages.replace(":60M:C261102EUR105,00", ":60M:C261102EUR106,00");
    let error = first_error(&broken);
    assert_eq!((error.number, error.field.as_str()), (1, ":60M:"));
    assert!(
        error.reason.contains("does not continue"),
        "{}",
        error.reason
    );
    let other_account =
        pages
            .replacen(":25:DE00123", ":25:DE00999", 2)
            .replacen(":25:DE00999", ":25:DE00123", 1);
    assert_eq!(errors(&read_all(&other_account))[0].field, ":25:");
}

#[test]
fn swift_blocks_crlf_and_a_field_on_the_block_line_are_accepted() {
    let text = "{1:F01BANK}{2:O940}{4::20:REF-1\r\n:25:DE00123\r\n:60F:D261031EUR0,\r\n\
                :61:261102C1,NTRFA\r\n:62F:C261130EUR1,\r\n-}{5:{CHK:ABC}}\r\n";
    let outcome = read_all(text);
    assert!(errors(&outcome).is_empty(), "{:?}", outcome.results);
    assert_eq!(outcome.summary.statement_id.as_deref(), Some("REF-1"));
    assert_eq!(
        outcome.summary.opening_balance.map(|b| b.to_string()),
        Some("0.00".into())
    );
    assert_eq!(lines(&outcome)[0].amount.to_string(), "1.00");
}

#[test]
fn structural_mistakes_are_named() {
    let stray = format!("stray text\n{}", message("", "C261130EUR100,00"));
    assert!(errors(&read_all(&stray))[0]
        .reason
        .contains("before the first field"));
    let unknown = message(":34F:EUR0,\n", "C261130EUR100,00");
    assert_eq!(errors(&read_all(&unknown))[0].field, ":34F:");
    let bad_tag = message(":6X:whatever\n", "C261130EUR100,00");
    assert!(errors(&read_all(&bad_tag))[0]
        .reason
        .contains("tag like :61:"));
    let outside = ":20:R\n:25:A\n:61:261102C1,NTRFA\n:60F:C261031EUR0,\n:62F:C261031EUR0,\n";
    let error = first_error(outside);
    assert_eq!((error.number, error.field.as_str()), (1, ":61:"));
    let no_account = message("", "C261130EUR100,00").replace(":25:DE00123\n", "");
    assert_eq!(errors(&read_all(&no_account))[0].field, ":25:");
}

#[test]
fn a_file_without_its_closing_balance_is_truncated() {
    let cut = ":20:R\n:25:A\n:60F:C261031EUR0,\n:61:261102C1,NTRFA\n:86:text\n";
    let outcome = read_all(cut);
    assert!(outcome.stopped);
    assert_eq!(
        lines(&outcome).len(),
        1,
        "the complete entry is still yielded"
    );
    let error = &errors(&outcome)[0];
    assert_eq!((error.number, error.field.as_str()), (1, ":62F:"));
    assert!(error.reason.contains("truncated"));
    let empty = read_all("");
    assert!(empty.stopped);
    assert_eq!(errors(&empty)[0].field, ":20:");
}

#[test]
fn a_too_long_description_and_nul_are_refused() {
    let long = format!(":61:261102C1,NTRFA\n:86:{}\n", "d".repeat(1025));
    let outcome = read_all(&message(&long, "C261130EUR101,00"));
    let error = &errors(&outcome)[0];
    assert_eq!((error.number, error.field.as_str()), (1, ":86:"));
    let nul = message(":61:261102C1,NTRFA\n:86:a\0b\n", "C261130EUR101,00");
    assert!(errors(&read_all(&nul))[0].reason.contains("NUL"));
}

/// A message whose `:86:` has a 10 MB line, made on the fly.
struct EndlessDescription {
    head: &'static [u8],
    left: usize,
}

impl Read for EndlessDescription {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !self.head.is_empty() {
            let count = out.len().min(self.head.len());
            out[..count].copy_from_slice(&self.head[..count]);
            self.head = &self.head[count..];
            return Ok(count);
        }
        let count = out.len().min(self.left);
        out[..count].fill(b'x');
        self.left -= count;
        Ok(count)
    }
}

#[test]
fn a_ten_megabyte_line_stops_the_reader_with_bounded_memory() {
    let input = EndlessDescription {
        head: b":20:R\n:25:A\n:60F:C261031EUR0,\n:61:261102C1,NTRFA\n:86:",
        left: 10 * 1024 * 1024,
    };
    let mut statement = reader(
        StatementFormat::Mt940,
        Box::new(io::BufReader::new(input)),
        options(),
    );
    let results: Vec<LineResult> = statement.by_ref().collect();
    assert!(statement.stopped());
    let error = results.last().unwrap().as_ref().unwrap_err();
    assert_eq!((error.number, error.field.as_str()), (1, "line"));
    assert!(
        error
            .reason
            .contains("physical line 5 is longer than 65536 bytes"),
        "{}",
        error.reason
    );
}

#[test]
fn the_example_reads_without_errors() {
    let outcome = read_all(include_str!("../../../docs/examples/statement.mt940"));
    assert!(!outcome.stopped);
    assert!(errors(&outcome).is_empty(), "{:?}", errors(&outcome));
    assert_eq!(lines(&outcome).len(), 8);
}
