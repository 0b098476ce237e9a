//! Bank statements (§7): a pure, streaming reader of CSV, JSON lines, camt.053 and MT940 files.
//!
//! [`reader`] turns a caller-supplied `BufRead` into an iterator of [`StatementLine`]s, one entry
//! at a time, so a 100,000-line statement never sits in memory whole. The rules on amounts, dates,
//! currencies and text are shared by the four formats (`fields`); each format module only knows
//! where those fields sit in its file.
//!
//! Errors are data. A bad entry is yielded as a [`LineError`] and reading goes on with the next
//! entry, so a caller can list the first N errors of an upload. When the file's framing is broken
//! (truncated or malformed XML, a missing CSV header column, an over-long line that hides where
//! the next entry starts) the error is yielded once and the reader stops
//! ([`StatementReader::stopped`]).
//!
//! No async, no clock, no randomness, no file system: the caller owns the bytes. Every buffer is
//! bounded by [`ParseOptions::max_line_bytes`], and nothing here panics on any input. The formats
//! are described for bank engineers in docs/RECONCILIATION.md ("Statement formats").

mod bounded;
mod camt053;
mod csv;
mod fields;
mod mt940;
mod ndjson;

#[cfg(test)]
mod examples_test;

use std::fmt;
use std::io::BufRead;

use rust_decimal::Decimal;
use time::Date;

use crate::domain::money::{Currency, CurrencyCode};

/// The four statement formats of §7.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementFormat {
    Csv,
    JsonLines,
    Camt053,
    Mt940,
}

/// Media types (lower case) and the format each one selects.
const CONTENT_TYPES: &[(&str, StatementFormat)] = &[
    ("text/csv", StatementFormat::Csv),
    ("application/x-ndjson", StatementFormat::JsonLines),
    ("application/jsonl", StatementFormat::JsonLines),
    ("application/xml", StatementFormat::Camt053),
    ("text/xml", StatementFormat::Camt053),
    ("text/plain", StatementFormat::Mt940),
    ("application/vnd.swift.mt940", StatementFormat::Mt940),
];

impl StatementFormat {
    pub const ALL: [StatementFormat; 4] = [
        StatementFormat::Csv,
        StatementFormat::JsonLines,
        StatementFormat::Camt053,
        StatementFormat::Mt940,
    ];

    /// From a Content-Type header value (parameters like `; charset=utf-8` ignored,
    /// case-insensitive): text/csv → Csv; application/x-ndjson, application/jsonl → JsonLines;
    /// application/xml, text/xml → Camt053; text/plain, application/vnd.swift.mt940 → Mt940.
    pub fn from_content_type(value: &str) -> Option<StatementFormat> {
        let media_type = value.split(';').next().unwrap_or_default().trim();
        CONTENT_TYPES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(media_type))
            .map(|(_, format)| *format)
    }

    /// The media type a client should send for this format (the first of its list).
    pub fn content_type(self) -> &'static str {
        match self {
            StatementFormat::Csv => "text/csv",
            StatementFormat::JsonLines => "application/x-ndjson",
            StatementFormat::Camt053 => "application/xml",
            StatementFormat::Mt940 => "application/vnd.swift.mt940",
        }
    }

    /// "csv", "jsonl", "camt.053", "mt940"
    pub fn as_str(self) -> &'static str {
        match self {
            StatementFormat::Csv => "csv",
            StatementFormat::JsonLines => "jsonl",
            StatementFormat::Camt053 => "camt.053",
            StatementFormat::Mt940 => "mt940",
        }
    }

    /// The inverse of [`StatementFormat::as_str`] (exact, case-sensitive).
    pub fn parse(text: &str) -> Option<StatementFormat> {
        Self::ALL.into_iter().find(|format| format.as_str() == text)
    }
}

impl fmt::Display for StatementFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Column names of a CSV statement (SPEC §7 defaults), mappable by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvColumns {
    pub external_id: String,
    pub booking_date: String,
    pub value_date: String,
    pub amount: String,
    pub currency: String,
    pub reference: String,
    pub description: String,
}

impl Default for CsvColumns {
    fn default() -> CsvColumns {
        CsvColumns {
            external_id: "external_id".to_owned(),
            booking_date: "booking_date".to_owned(),
            value_date: "value_date".to_owned(),
            amount: "amount".to_owned(),
            currency: "currency".to_owned(),
            reference: "reference".to_owned(),
            description: "description".to_owned(),
        }
    }
}

/// How to read one statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    /// The currency of the statement's ledger account: every line must be in it.
    pub account_currency: Currency,
    pub csv_columns: CsvColumns,
    /// A physical line (CSV, JSON lines, MT940) or one XML text/tag longer than this is refused.
    pub max_line_bytes: usize,
}

impl ParseOptions {
    /// Generous for any real statement line, small enough that a hostile one costs nothing.
    pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;

    /// Default CSV columns and [`ParseOptions::DEFAULT_MAX_LINE_BYTES`].
    pub fn new(account_currency: Currency) -> ParseOptions {
        ParseOptions {
            account_currency,
            csv_columns: CsvColumns::default(),
            max_line_bytes: Self::DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// One entry of a statement. `amount` is signed: positive = money INTO the statement's account
/// (a credit on the bank statement), negative = money out; always at exactly the account
/// currency's scale (e.g. "10.50" for EUR; "10.5" in the file is accepted and rescaled, "10.501"
/// refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementLine {
    /// 1-based position of the entry in the file: for CSV and JSON lines the physical line number
    /// in the file (CSV header is line 1, so the first data row is 2); for camt.053 the ordinal of
    /// the `<Ntry>` (1-based); for MT940 the ordinal of the `:61:` field (1-based).
    pub number: u64,
    pub external_id: Option<String>,
    pub booking_date: Date,
    pub value_date: Option<Date>,
    pub amount: Decimal,
    pub currency: CurrencyCode,
    pub reference: Option<String>,
    pub description: Option<String>,
}

/// What the file says about itself beyond its lines; complete once the iterator returned None.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatementSummary {
    /// camt `Stmt/Id`, MT940 `:20:`.
    pub statement_id: Option<String>,
    /// camt `Acct/Id/IBAN` (or `Othr/Id`), MT940 `:25:`.
    pub account_identifier: Option<String>,
    /// Signed, at scale; camt `Bal` OPBD (or PRCD), MT940 `:60F:`/`:60M:` (the first one).
    pub opening_balance: Option<Decimal>,
    /// camt `Bal` CLBD, MT940 `:62F:`/`:62M:` (the last one).
    pub closing_balance: Option<Decimal>,
    /// camt `FrToDt/FrDtTm` date, or the opening balance's date; MT940 `:60F:` date.
    pub period_start: Option<Date>,
    /// camt `FrToDt/ToDtTm` date, or the closing balance's date; MT940 `:62F:` date.
    pub period_end: Option<Date>,
}

/// Why one entry (or the file, when the reader stopped) was refused.
///
/// `number` is the entry's [`StatementLine::number`]. An error outside any entry (a camt or
/// MT940 header or balance) carries the number of the last entry begun, 0 before the first.
/// `field` names the field as the file spells it: the CSV column, the JSON key, the camt path
/// (`Ntry/Amt`), the MT940 tag (`:61: amount`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub number: u64,
    pub field: String,
    pub reason: String,
}

impl LineError {
    pub fn new(number: u64, field: impl Into<String>, reason: impl Into<String>) -> LineError {
        LineError {
            number,
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number {
            0 => write!(f, "statement header, {}: {}", self.field, self.reason),
            number => write!(f, "entry {number}, {}: {}", self.field, self.reason),
        }
    }
}

impl std::error::Error for LineError {}

/// What a statement reader yields.
pub type LineResult = Result<StatementLine, LineError>;

/// A streaming reader of one statement file.
pub trait StatementReader: Iterator<Item = LineResult> {
    /// Valid once `next()` returned `None`.
    fn summary(&self) -> &StatementSummary;
    /// True when the last error was fatal (the file cannot be read further: truncated XML,
    /// broken framing); after a fatal error `next()` returns None.
    fn stopped(&self) -> bool;
}

/// A reader of `input` in `format`. Nothing is read before the first `next()`.
pub fn reader<'a>(
    format: StatementFormat,
    input: Box<dyn BufRead + 'a>,
    options: ParseOptions,
) -> Box<dyn StatementReader + 'a> {
    match format {
        StatementFormat::Csv => Box::new(csv::CsvReader::new(input, options)),
        StatementFormat::JsonLines => Box::new(ndjson::JsonLinesReader::new(input, options)),
        StatementFormat::Camt053 => Box::new(camt053::Camt053Reader::new(input, options)),
        StatementFormat::Mt940 => Box::new(mt940::Mt940Reader::new(input, options)),
    }
}

/// opening + Σ amounts = closing, where the summary has both balances.
/// `Err((expected_closing, stated_closing))`. An expected closing beyond `Decimal`'s range is
/// always unbalanced (reported saturated), never a panic.
pub fn check_balanced(
    summary: &StatementSummary,
    sum_of_amounts: Decimal,
) -> Result<(), (Decimal, Decimal)> {
    let (Some(opening), Some(closing)) = (summary.opening_balance, summary.closing_balance) else {
        return Ok(());
    };
    match opening.checked_add(sum_of_amounts) {
        Some(expected) if expected == closing => Ok(()),
        Some(expected) => Err((expected, closing)),
        None => Err((opening.saturating_add(sum_of_amounts), closing)),
    }
}

/// The bookkeeping every reader shares: what is waiting to be yielded and whether it is over.
///
/// Parsing one piece of a file can produce several results (a CSV row with three bad cells, an
/// MT940 entry that completes when the closing balance arrives), so readers queue them and the
/// iterator hands them out one by one.
#[derive(Debug, Default)]
struct Outbox {
    queue: std::collections::VecDeque<LineResult>,
    finished: bool,
    stopped: bool,
}

impl Outbox {
    fn push_line(&mut self, line: StatementLine) {
        self.queue.push_back(Ok(line));
    }

    fn push_error(&mut self, error: LineError) {
        self.queue.push_back(Err(error));
    }

    fn push_errors(&mut self, errors: Vec<LineError>) {
        self.queue.extend(errors.into_iter().map(Err));
    }

    fn push_result(&mut self, result: Result<StatementLine, Vec<LineError>>) {
        match result {
            Ok(line) => self.push_line(line),
            Err(errors) => self.push_errors(errors),
        }
    }

    /// Yields `error` and then nothing more: the file cannot be read further. Only the first
    /// fatal error is yielded.
    fn stop(&mut self, error: LineError) {
        if self.stopped {
            return;
        }
        self.push_error(error);
        self.stopped = true;
        self.finished = true;
    }

    fn finish(&mut self) {
        self.finished = true;
    }

    /// The next queued result; `None` with an empty queue when more input must be read.
    fn pop(&mut self) -> Option<LineResult> {
        self.queue.pop_front()
    }

    /// True when the queue is empty and nothing more will be read.
    fn drained(&self) -> bool {
        self.finished && self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_select_their_format_ignoring_case_and_parameters() {
        let cases = [
            ("text/csv", StatementFormat::Csv),
            ("Text/CSV; charset=utf-8", StatementFormat::Csv),
            ("application/x-ndjson", StatementFormat::JsonLines),
            (
                "application/jsonl ; charset=UTF-8",
                StatementFormat::JsonLines,
            ),
            ("application/xml", StatementFormat::Camt053),
            ("text/xml;charset=utf-8", StatementFormat::Camt053),
            ("text/plain", StatementFormat::Mt940),
            ("application/vnd.swift.mt940", StatementFormat::Mt940),
        ];
        for (value, format) in cases {
            assert_eq!(
                StatementFormat::from_content_type(value),
                Some(format),
                "{value}"
            );
        }
        for value in ["application/json", "", "text/csvx", "csv"] {
            assert_eq!(StatementFormat::from_content_type(value), None, "{value}");
        }
    }

    #[test]
    fn format_names_round_trip_through_parse() {
        for format in StatementFormat::ALL {
            assert_eq!(StatementFormat::parse(format.as_str()), Some(format));
            assert_eq!(
                StatementFormat::from_content_type(format.content_type()),
                Some(format)
            );
        }
        assert_eq!(StatementFormat::parse("CSV"), None);
        assert_eq!(StatementFormat::Camt053.as_str(), "camt.053");
    }

    #[test]
    fn an_unbalanced_summary_reports_expected_and_stated_closing() {
        let summary = StatementSummary {
            opening_balance: Some(Decimal::new(100_000, 2)),
            closing_balance: Some(Decimal::new(150_000, 2)),
            ..StatementSummary::default()
        };
        assert_eq!(check_balanced(&summary, Decimal::new(50_000, 2)), Ok(()));
        assert_eq!(
            check_balanced(&summary, Decimal::new(49_999, 2)),
            Err((Decimal::new(149_999, 2), Decimal::new(150_000, 2)))
        );
    }

    #[test]
    fn a_summary_without_both_balances_is_never_unbalanced() {
        let summary = StatementSummary {
            opening_balance: Some(Decimal::new(100, 2)),
            ..StatementSummary::default()
        };
        assert_eq!(check_balanced(&summary, Decimal::new(7, 2)), Ok(()));
        assert_eq!(
            check_balanced(&StatementSummary::default(), Decimal::ONE),
            Ok(())
        );
    }

    #[test]
    fn a_balance_sum_beyond_the_decimal_range_is_unbalanced_not_a_panic() {
        let summary = StatementSummary {
            opening_balance: Some(Decimal::MAX),
            closing_balance: Some(Decimal::MAX),
            ..StatementSummary::default()
        };
        assert_eq!(
            check_balanced(&summary, Decimal::ONE),
            Err((Decimal::MAX, Decimal::MAX)),
            "an overflow must not pass for balanced"
        );
        assert!(check_balanced(&summary, -Decimal::ONE).is_err());
        assert_eq!(check_balanced(&summary, Decimal::ZERO), Ok(()));
    }

    #[test]
    fn errors_display_their_entry_field_and_reason() {
        let error = LineError::new(12, "amount", "wrong scale");
        assert_eq!(error.to_string(), "entry 12, amount: wrong scale");
        let header = LineError::new(0, ":25:", "missing");
        assert_eq!(header.to_string(), "statement header, :25:: missing");
    }
}
