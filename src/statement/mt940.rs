//! SWIFT MT940 (customer statement message) statements: a small, strict, streaming parser.
//!
//! The file is read one physical line at a time. A line starting with `:NN[a]:` opens a field;
//! any other line continues the open one. A field is handled when the next one opens, so at most
//! one field (bounded by `max_line_bytes`) and one entry are held at a time. An entry (`:61:`) is
//! yielded once it is known whether an `:86:` follows to describe it.
//!
//! The `mt940` crate is not used: it wants the whole message in memory. Several messages in one
//! file (a statement split over pages, `:60M:`/`:62M:`) are read as one statement: the first
//! opening balance, the last closing balance, and each opening must continue the closing before.
//! SWIFT block wrappers (`{1:…}{2:…}{4:` … `-}`) are skipped.

use std::io::BufRead;

use rust_decimal::Decimal;
use time::Date;

use super::bounded::{LineSource, Physical};
use super::fields::{
    excerpt, line_currency, non_zero, optional_text, swift_amount, swift_date, swift_entry_date,
    Check, Reason, TextKind,
};
use super::{
    LineError, LineResult, Outbox, ParseOptions, StatementLine, StatementReader, StatementSummary,
};

/// The customer reference that means "none".
const NO_REFERENCE: &str = "NONREF";

/// A streaming reader of one MT940 statement.
pub(super) struct Mt940Reader<'a> {
    lines: LineSource<Box<dyn BufRead + 'a>>,
    options: ParseOptions,
    /// The field being collected.
    field: Option<Field>,
    /// The last `:61:`, waiting to learn whether an `:86:` describes it.
    pending: Option<Pending>,
    /// How many `:61:` fields began so far.
    entries: u64,
    message: Message,
    /// The currency of the latest opening balance: the entries' currency.
    currency: Option<String>,
    /// The latest closing balance: the next message's opening must continue it.
    last_closing: Option<Decimal>,
    messages: u64,
    scratch: Vec<u8>,
    summary: StatementSummary,
    outbox: Outbox,
}

/// One field: its tag and its lines (the first after the tag, then continuations).
#[derive(Debug)]
struct Field {
    tag: String,
    lines: Vec<String>,
    bytes: usize,
    /// Why the field cannot be read (not UTF-8, too long); reported when it is handled.
    problem: Option<Reason>,
}

/// An entry waiting for its `:86:`.
#[derive(Debug)]
enum Pending {
    Line(StatementLine),
    /// Its errors were yielded already; its `:86:` is skipped.
    Refused,
}

/// Where the current message is: SWIFT's field order, `:20:` … `:60a:` … `:61:`* … `:62a:`.
#[derive(Debug, Default)]
struct Message {
    opened: bool,
    closed: bool,
}

impl<'a> Mt940Reader<'a> {
    pub(super) fn new(input: Box<dyn BufRead + 'a>, options: ParseOptions) -> Mt940Reader<'a> {
        Mt940Reader {
            lines: LineSource::new(input, options.max_line_bytes),
            options,
            field: None,
            pending: None,
            entries: 0,
            message: Message::default(),
            currency: None,
            last_closing: None,
            messages: 0,
            scratch: Vec::new(),
            summary: StatementSummary::default(),
            outbox: Outbox::default(),
        }
    }

    /// Reads one physical line, queueing what it yields.
    fn step(&mut self) {
        let max = self.options.max_line_bytes;
        match self.lines.next_line() {
            Ok(None) => self.on_end_of_input(),
            Ok(Some((number, Physical::TooLong))) => {
                // Which field the line belonged to is unknown, so entry numbers after it
                // could be wrong: stop, naming the entry reached.
                self.flush_field();
                let reason = format!("physical line {number} is longer than {max} bytes");
                self.outbox
                    .stop(LineError::new(self.entries, "line", reason));
            }
            Ok(Some((number, Physical::Text(bytes)))) => {
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch.clear();
                scratch.extend_from_slice(bytes);
                self.on_line(number, &scratch);
                self.scratch = scratch;
            }
            Err(error) => {
                let reason = format!("read error: {error}");
                self.outbox
                    .stop(LineError::new(self.entries, "input", reason));
            }
        }
    }

    fn on_line(&mut self, number: u64, line: &[u8]) {
        let line = line.trim_ascii_end();
        match line {
            [] => {}
            [b'{', ..] => self.on_block_header(number, line),
            [b'-'] | [b'-', b'}', ..] => self.flush_field(),
            [b':', ..] => self.on_tag_line(number, line),
            _ => self.on_continuation(number, line),
        }
    }

    /// `{1:…}{2:…}{4:` may carry the first field after `{4:`; other blocks are skipped.
    fn on_block_header(&mut self, number: u64, line: &[u8]) {
        let Some(start) = line.windows(3).position(|window| window == b"{4:") else {
            return;
        };
        match line[start + 3..].trim_ascii_start() {
            [] => {}
            rest @ [b':', ..] => self.on_tag_line(number, rest),
            _ => self.line_error(number, "text after {4: must be a field such as :20:"),
        }
    }

    fn on_tag_line(&mut self, number: u64, line: &[u8]) {
        self.flush_field();
        let Some((tag, value)) = split_tag(line) else {
            self.line_error(
                number,
                "a line starting with ':' must start with a tag like :61:",
            );
            // Its continuation lines belong to nothing known: collect them into a field that
            // is dropped.
            self.field = Some(Field::new("?".to_owned(), b""));
            return;
        };
        self.field = Some(Field::new(tag, value));
    }

    fn on_continuation(&mut self, number: u64, line: &[u8]) {
        let max = self.options.max_line_bytes;
        match &mut self.field {
            Some(field) => field.add_line(line, max),
            None => self.line_error(number, "text before the first field (:20:)"),
        }
    }

    fn line_error(&mut self, number: u64, reason: &str) {
        let reason = format!("line {number}: {reason}");
        self.outbox
            .push_error(LineError::new(self.entries, "line", reason));
    }

    /// Handles the collected field, if any.
    fn flush_field(&mut self) {
        let Some(field) = self.field.take() else {
            return;
        };
        if field.tag != "86" {
            self.release_pending();
        }
        if field.tag == "?" {
            return;
        }
        match field.tag.as_str() {
            "20" => self.on_statement_reference(&field),
            "25" => self.on_account(&field),
            "60F" | "60M" => self.on_opening(&field),
            "61" => self.on_entry(&field),
            "86" => self.on_information(&field),
            "62F" | "62M" => self.on_closing(&field),
            // Related reference, sequence number, available balances: nothing to check.
            "21" | "28" | "28C" | "64" | "65" => {}
            tag => {
                let reason = "unknown tag: MT940 has :20:, :21:, :25:, :28C:, :60F:, :60M:, \
                              :61:, :86:, :62F:, :62M:, :64:, :65:";
                self.header_error(&format!(":{tag}:"), reason.to_owned());
            }
        }
    }

    fn header_error(&mut self, field: &str, reason: Reason) {
        self.outbox
            .push_error(LineError::new(self.entries, field, reason));
    }

    /// The text of a one-line field, or `None` with the reason yielded.
    fn single_line<'f>(&mut self, field: &'f Field) -> Option<&'f str> {
        let name = format!(":{}:", field.tag);
        if let Some(problem) = &field.problem {
            self.header_error(&name, problem.clone());
            return None;
        }
        match field.lines.as_slice() {
            [line] => Some(line),
            _ => {
                self.header_error(&name, "must be a single line".to_owned());
                None
            }
        }
    }

    fn on_statement_reference(&mut self, field: &Field) {
        if self.message.opened && !self.message.closed {
            self.header_error(
                ":62F:",
                "a message ends without its closing balance".to_owned(),
            );
        }
        self.message = Message::default();
        self.messages += 1;
        let Some(text) = self.single_line(field) else {
            return;
        };
        if self.summary.statement_id.is_none() {
            match optional_text(Some(text), TextKind::Identifier) {
                Ok(reference) => self.summary.statement_id = reference,
                Err(reason) => self.header_error(":20:", reason),
            }
        }
    }

    fn on_account(&mut self, field: &Field) {
        let Some(text) = self.single_line(field) else {
            return;
        };
        let account = match optional_text(Some(text), TextKind::Identifier) {
            Ok(account) => account,
            Err(reason) => return self.header_error(":25:", reason),
        };
        match (&self.summary.account_identifier, account) {
            (None, account) => self.summary.account_identifier = account,
            (Some(first), Some(account)) if *first != account => self.header_error(
                ":25:",
                format!(
                    "account {} differs from the first message's {}",
                    excerpt(&account),
                    { excerpt(first) }
                ),
            ),
            _ => {}
        }
    }

    fn on_opening(&mut self, field: &Field) {
        let name = format!(":{}:", field.tag);
        if self.message.opened {
            self.header_error(&name, "a second opening balance in one message".to_owned());
        }
        self.message.opened = true;
        let Some(text) = self.single_line(field) else {
            return;
        };
        let Some(balance) = self.balance(&name, text) else {
            return;
        };
        match (self.summary.opening_balance, self.last_closing) {
            (None, _) => {
                self.summary.opening_balance = Some(balance.amount);
                self.summary.period_start = Some(balance.date);
            }
            (Some(_), Some(closing)) if closing != balance.amount => self.header_error(
                &name,
                format!(
                    "opening balance {} does not continue the previous closing balance {closing}",
                    balance.amount
                ),
            ),
            _ => {}
        }
    }

    fn on_closing(&mut self, field: &Field) {
        let name = format!(":{}:", field.tag);
        if !self.message.opened {
            self.header_error(
                &name,
                "a closing balance without an opening balance".to_owned(),
            );
        }
        self.message.closed = true;
        let Some(text) = self.single_line(field) else {
            return;
        };
        if let Some(balance) = self.balance(&name, text) {
            self.summary.closing_balance = Some(balance.amount);
            self.summary.period_end = Some(balance.date);
            self.last_closing = Some(balance.amount);
        }
    }

    /// A balance field; its currency becomes the entries' currency even when it is refused,
    /// so that the entries are refused too rather than read in the wrong currency.
    fn balance(&mut self, name: &str, text: &str) -> Option<SwiftBalance> {
        let parts = match split_balance(text) {
            Ok(parts) => parts,
            Err(reason) => {
                self.header_error(name, reason);
                return None;
            }
        };
        self.currency = Some(parts.currency.to_owned());
        let account = &self.options.account_currency;
        let mut check = Check::new(self.entries);
        check.record(
            &format!("{name} currency"),
            line_currency(parts.currency, account),
        );
        let date = check.record(&format!("{name} date"), swift_date(parts.date));
        let amount = check.record(
            &format!("{name} amount"),
            swift_amount(parts.amount, account),
        );
        let balance = match (date, amount) {
            (Some(date), Some(amount)) if check.is_clean() => Some(SwiftBalance {
                date,
                amount: parts.direction.apply(amount),
            }),
            _ => None,
        };
        self.outbox.push_errors(check.into_errors());
        balance
    }

    fn on_entry(&mut self, field: &Field) {
        self.entries += 1;
        let mut check = Check::new(self.entries);
        if let Some(problem) = &field.problem {
            check.add(":61:", problem.clone());
        } else if field.lines.len() > 2 {
            check.add(
                ":61:",
                "at most one supplementary line may follow the entry",
            );
        }
        if !self.message.opened || self.message.closed {
            check.add(":61:", "an entry must come between :60F: and :62F:");
        }
        let first_line = field.lines.first().map_or("", String::as_str);
        let result = if check.is_clean() {
            check_entry(check, first_line, self.currency.as_deref(), &self.options)
        } else {
            check.finish(None)
        };
        self.pending = Some(match result {
            Ok(line) => Pending::Line(line),
            Err(errors) => {
                self.outbox.push_errors(errors);
                Pending::Refused
            }
        });
    }

    /// An `:86:` right after an entry describes it; elsewhere it describes the statement and
    /// is not needed.
    fn on_information(&mut self, field: &Field) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let Pending::Line(mut line) = pending else {
            return;
        };
        let description = match &field.problem {
            Some(problem) => Err(problem.clone()),
            None => optional_text(Some(&field.lines.join("\n")), TextKind::Description),
        };
        match description {
            Ok(description) => {
                line.description = description;
                self.outbox.push_line(line);
            }
            Err(reason) => self
                .outbox
                .push_error(LineError::new(line.number, ":86:", reason)),
        }
    }

    fn release_pending(&mut self) {
        if let Some(Pending::Line(line)) = self.pending.take() {
            self.outbox.push_line(line);
        }
    }

    fn on_end_of_input(&mut self) {
        self.flush_field();
        self.release_pending();
        if self.messages == 0 {
            return self
                .outbox
                .stop(LineError::new(0, ":20:", "no MT940 message in the file"));
        }
        if !self.message.closed {
            let reason = "the file ends without a closing balance: it is truncated";
            return self
                .outbox
                .stop(LineError::new(self.entries, ":62F:", reason));
        }
        if self.summary.account_identifier.is_none() {
            self.header_error(":25:", "required, but missing".to_owned());
        }
        self.outbox.finish();
    }
}

impl Iterator for Mt940Reader<'_> {
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

impl StatementReader for Mt940Reader<'_> {
    fn summary(&self) -> &StatementSummary {
        &self.summary
    }

    fn stopped(&self) -> bool {
        self.outbox.stopped
    }
}

impl Field {
    fn new(tag: String, first_line: &[u8]) -> Field {
        let mut field = Field {
            tag,
            lines: Vec::new(),
            bytes: 0,
            problem: None,
        };
        field.push(first_line);
        field
    }

    /// A continuation line, within `max` bytes for the whole field.
    fn add_line(&mut self, line: &[u8], max: usize) {
        if self.problem.is_some() {
            return;
        }
        self.bytes += line.len();
        if self.bytes > max {
            self.problem = Some(format!("the field is longer than {max} bytes"));
            self.lines.clear();
            return;
        }
        self.push(line);
    }

    fn push(&mut self, line: &[u8]) {
        match std::str::from_utf8(line) {
            Ok(text) => self.lines.push(text.to_owned()),
            Err(_) => self.problem = Some("not valid UTF-8".to_owned()),
        }
    }
}

/// `:NN:` or `:NNa:` at the start of `line`, and the rest of the line.
fn split_tag(line: &[u8]) -> Option<(String, &[u8])> {
    let rest = line.strip_prefix(b":")?;
    let end = rest.iter().take(4).position(|&b| b == b':')?;
    let tag = &rest[..end];
    let well_formed = match tag {
        [a, b] => a.is_ascii_digit() && b.is_ascii_digit(),
        [a, b, letter] => a.is_ascii_digit() && b.is_ascii_digit() && letter.is_ascii_uppercase(),
        _ => false,
    };
    // The tag is ASCII, so it is valid UTF-8.
    well_formed.then(|| (String::from_utf8_lossy(tag).into_owned(), &rest[end + 1..]))
}

// ---------------------------------------------------------------------------------------------
// Balances and entries

/// The debit/credit mark: `C` and `RD` (reversal of a debit) are money in; `D` and `RC` out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    In,
    Out,
}

impl Direction {
    fn apply(self, magnitude: Decimal) -> Decimal {
        match self {
            Direction::Out if !magnitude.is_zero() => -magnitude,
            _ => magnitude,
        }
    }
}

#[derive(Debug)]
struct SwiftBalance {
    date: Date,
    amount: Decimal,
}

/// `:60F:`/`:62F:` text: `C|D YYMMDD CCY amount`, e.g. `C261031EUR1000,00`.
#[derive(Debug)]
struct BalanceParts<'t> {
    direction: Direction,
    date: &'t str,
    currency: &'t str,
    amount: &'t str,
}

fn split_balance(text: &str) -> Result<BalanceParts<'_>, Reason> {
    let shape = || {
        format!(
            "a balance is C or D, YYMMDD, currency and amount, e.g. C261031EUR1000,00; got {}",
            excerpt(text)
        )
    };
    let direction = match text.as_bytes().first() {
        Some(b'C') => Direction::In,
        Some(b'D') => Direction::Out,
        _ => return Err(shape()),
    };
    match (text.get(1..7), text.get(7..10), text.get(10..)) {
        (Some(date), Some(currency), Some(amount)) if !amount.is_empty() => Ok(BalanceParts {
            direction,
            date,
            currency,
            amount,
        }),
        _ => Err(shape()),
    }
}

/// `:61:` text: `YYMMDD[MMDD](C|D|RC|RD)[funds code]amount(S|N|F)XXX customer-ref[//bank-ref]`.
#[derive(Debug, PartialEq, Eq)]
struct EntryParts<'t> {
    value_date: &'t str,
    entry_date: Option<&'t str>,
    direction: Direction,
    amount: &'t str,
    customer_reference: &'t str,
    bank_reference: Option<&'t str>,
}

fn split_entry(text: &str) -> Result<EntryParts<'_>, Reason> {
    let digits = |part: &str, count: usize| {
        part.len() >= count && part.as_bytes()[..count].iter().all(u8::is_ascii_digit)
    };
    if !digits(text, 6) {
        return Err(format!(
            "must start with the value date YYMMDD, got {}",
            excerpt(text)
        ));
    }
    // Every slice below cuts after ASCII bytes just checked, so it is on a char boundary.
    let (value_date, mut rest) = text.split_at(6);
    let mut entry_date = None;
    if digits(rest, 4) {
        entry_date = Some(&rest[..4]);
        rest = &rest[4..];
    }
    let (direction, rest) = split_direction(rest)?;
    let rest = match rest.as_bytes().first() {
        Some(code) if code.is_ascii_alphabetic() => &rest[1..],
        _ => rest,
    };
    let (amount, rest) = split_amount(rest)?;
    let references = split_transaction_type(rest)?;
    let (customer_reference, bank_reference) = match references.split_once("//") {
        Some((customer, bank)) => (customer, Some(bank)),
        None => (references, None),
    };
    if customer_reference.trim().is_empty() {
        return Err("the customer reference is missing (NONREF when there is none)".to_owned());
    }
    Ok(EntryParts {
        value_date,
        entry_date,
        direction,
        amount,
        customer_reference,
        bank_reference,
    })
}

/// The amount's characters at the start of `text`, and the rest.
fn split_amount(text: &str) -> Result<(&str, &str), Reason> {
    // A '.' is taken into the amount so that `1.00` is refused for its separator.
    let length = text
        .bytes()
        .take_while(|b| b.is_ascii_digit() || matches!(b, b',' | b'.'))
        .count();
    match length {
        0 => Err("the amount must follow the debit/credit mark".to_owned()),
        // The run is ASCII, so the cut is on a char boundary.
        _ => Ok(text.split_at(length)),
    }
}

fn split_direction(text: &str) -> Result<(Direction, &str), Reason> {
    let marks = [
        ("RC", Direction::Out),
        ("RD", Direction::In),
        ("C", Direction::In),
        ("D", Direction::Out),
    ];
    marks
        .iter()
        .find_map(|(mark, direction)| text.strip_prefix(mark).map(|rest| (*direction, rest)))
        .ok_or_else(|| {
            format!(
                "the debit/credit mark must be C, D, RC or RD, got {}",
                excerpt(text.get(..2).unwrap_or(text))
            )
        })
}

/// Skips the transaction type (`S`, `N` or `F` and three letters or digits, e.g. `NTRF`).
fn split_transaction_type(text: &str) -> Result<&str, Reason> {
    let bytes = text.as_bytes();
    let well_formed = bytes.len() >= 4
        && matches!(bytes[0], b'S' | b'N' | b'F')
        && bytes[1..4].iter().all(u8::is_ascii_alphanumeric);
    if well_formed {
        Ok(&text[4..])
    } else {
        Err(format!(
            "the transaction type must be S, N or F and three characters (e.g. NTRF), got {}",
            excerpt(text.get(..4).unwrap_or(text))
        ))
    }
}

/// One `:61:` checked: its parts, the shared rules, the statement's currency.
fn check_entry(
    mut check: Check,
    text: &str,
    currency: Option<&str>,
    options: &ParseOptions,
) -> Result<StatementLine, Vec<LineError>> {
    let parts = match split_entry(text) {
        Ok(parts) => parts,
        Err(reason) => {
            check.add(":61:", reason);
            return check.finish(None);
        }
    };
    let account = &options.account_currency;
    let (booking_date, value_date) = entry_dates(&mut check, &parts);
    let amount = swift_amount(parts.amount, account).and_then(non_zero);
    let amount = check.record(":61: amount", amount);
    let line_currency = match currency {
        Some(code) => check.record(":60F: currency", line_currency(code, account)),
        None => {
            check.add(
                ":61:",
                "no opening balance (:60F:) gives the entry's currency",
            );
            None
        }
    };
    let (reference, external_id) = entry_references(&mut check, &parts);
    let number = check.number();
    let line = match (booking_date, amount, line_currency) {
        (Some(booking_date), Some(amount), Some(currency)) => Some(StatementLine {
            number,
            external_id,
            booking_date,
            value_date,
            amount: parts.direction.apply(amount),
            currency,
            reference,
            description: None,
        }),
        _ => None,
    };
    check.finish(line)
}

/// The booking date (the entry date `MMDD`, else the value date) and the value date.
fn entry_dates(check: &mut Check, parts: &EntryParts<'_>) -> (Option<Date>, Option<Date>) {
    let value_date = check.record(":61: value date", swift_date(parts.value_date));
    let booking_date = match (parts.entry_date, value_date) {
        (Some(entry_date), Some(value_date)) => {
            check.record(":61: entry date", swift_entry_date(entry_date, value_date))
        }
        (_, value_date) => value_date,
    };
    (booking_date, value_date)
}

/// The customer reference (`NONREF` is none) and the bank's reference after `//`.
fn entry_references(check: &mut Check, parts: &EntryParts<'_>) -> (Option<String>, Option<String>) {
    let customer = Some(parts.customer_reference).filter(|r| r.trim() != NO_REFERENCE);
    let reference = check.text(":61: customer reference", customer, TextKind::Identifier);
    let bank = parts.bank_reference;
    let external_id = check.text(":61: bank reference", bank, TextKind::Identifier);
    (reference, external_id)
}

#[cfg(test)]
mod tests;
