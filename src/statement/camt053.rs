//! ISO 20022 camt.053 (BankToCustomerStatement) statements, read as a stream of XML events.
//!
//! quick-xml's pull reader hands out one event at a time into a reused buffer, over an
//! [`XmlInput`] that refuses any text, tag or comment longer than `max_line_bytes`. This module
//! keeps only the path of open elements (at most [`MAX_DEPTH`]), the statement header and the
//! one `<Ntry>` being read; an entry is yielded when its `</Ntry>` arrives. Elements are matched
//! by local name (prefixes ignored), so every camt.053.001.xx version whose paths are those of
//! .02 and .08 reads the same. A DOCTYPE is refused, so no entity is ever expanded.
//!
//! A bad entry costs only itself. Malformed XML (mismatched or unclosed tags, a file cut in the
//! middle) stops the reader with one error naming the entry reached.

use std::io::BufRead;

use quick_xml::errors::SyntaxError;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesDecl, BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use rust_decimal::Decimal;
use time::Date;

use super::bounded::XmlInput;
use super::fields::{
    balance_amount, excerpt, iso_date_or_date_time, line_currency, unsigned_amount, Check, Reason,
    TextKind, MAX_DESCRIPTION_CHARS,
};
use super::{
    LineError, LineResult, Outbox, ParseOptions, StatementLine, StatementReader, StatementSummary,
};

/// camt.053 nests about 10 deep; 64 leaves room for any real file and none for a bomb.
pub(super) const MAX_DEPTH: usize = 64;
/// camt.053 names are short; a long one only costs memory in the reader's stack of open tags.
const MAX_NAME_BYTES: usize = 256;
/// Every version's namespace starts so; the version digits follow.
const NAMESPACE_PREFIX: &str = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.";
/// A joined description beyond this many bytes is refused anyway: stop collecting there.
const MAX_COLLECTED_BYTES: usize = 4 * (MAX_DESCRIPTION_CHARS + 1);
/// The one value of `EndToEndId` that means "none".
const NOT_PROVIDED: &str = "NOTPROVIDED";

type Input<'a> = XmlInput<Box<dyn BufRead + 'a>>;

/// A streaming reader of one camt.053 statement.
pub(super) struct Camt053Reader<'a> {
    xml: Reader<Input<'a>>,
    buffer: Vec<u8>,
    options: ParseOptions,
    /// Local names of the open elements, the root first.
    path: Vec<String>,
    /// The element whose text is being collected, and its text so far.
    leaf: Option<Leaf>,
    text: String,
    statement: StatementDraft,
    balance: Option<BalanceDraft>,
    entry: Option<EntryDraft>,
    entries_begun: u64,
    root_closed: bool,
    summary: StatementSummary,
    outbox: Outbox,
}

impl<'a> Camt053Reader<'a> {
    pub(super) fn new(input: Box<dyn BufRead + 'a>, options: ParseOptions) -> Camt053Reader<'a> {
        let mut xml = Reader::from_reader(XmlInput::new(input, options.max_line_bytes));
        let config = xml.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
        Camt053Reader {
            xml,
            buffer: Vec::new(),
            options,
            path: Vec::new(),
            leaf: None,
            text: String::new(),
            statement: StatementDraft::default(),
            balance: None,
            entry: None,
            entries_begun: 0,
            root_closed: false,
            summary: StatementSummary::default(),
            outbox: Outbox::default(),
        }
    }

    /// Reads one XML event, queueing what it yields.
    fn step(&mut self) {
        // The buffer is moved out for the call so the event may borrow it while `self` changes.
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        let event = self.xml.read_event_into(&mut buffer);
        self.xml.get_mut().mark();
        match event {
            Ok(event) => self.on_event(event),
            Err(error) => self.on_xml_error(&error),
        }
        self.buffer = buffer;
    }

    fn on_event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(start) => self.open(&start),
            Event::Empty(start) => {
                self.open(&start);
                if !self.outbox.finished {
                    self.close();
                }
            }
            Event::End(_) => self.close(),
            Event::Text(text) => match text.xml10_content() {
                Ok(text) => self.on_text(&text),
                Err(_) => self.fail("text is not valid UTF-8"),
            },
            Event::CData(data) => match data.xml10_content() {
                Ok(text) => self.on_text(&text),
                Err(_) => self.fail("CDATA is not valid UTF-8"),
            },
            Event::GeneralRef(reference) => self.on_reference(&reference),
            Event::Decl(declaration) => self.on_declaration(&declaration),
            Event::DocType(_) => self.fail("a DOCTYPE is refused: entities are never expanded"),
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => self.on_end_of_input(),
        }
    }

    fn on_xml_error(&mut self, error: &quick_xml::Error) {
        if self.xml.get_ref().overflowed() {
            let max = self.options.max_line_bytes;
            return self.fail(format!("an XML text or tag is longer than {max} bytes"));
        }
        if let quick_xml::Error::Syntax(syntax) = error {
            // Every unclosed-markup error is found at the end of the input: a cut file.
            if !matches!(syntax, SyntaxError::InvalidBangMarkup) {
                let reason =
                    format!("the XML ends inside markup ({syntax}): the file is truncated");
                return self.fail(reason);
            }
        }
        self.fail(format!("malformed XML: {}", shorten(&error.to_string())));
    }

    /// Yields one fatal error naming the entry reached, and stops.
    fn fail(&mut self, reason: impl Into<String>) {
        let position = self.xml.buffer_position();
        let reason = format!("{} (near byte {position})", reason.into());
        self.outbox
            .stop(LineError::new(self.entries_begun, "xml", reason));
    }

    fn on_declaration(&mut self, declaration: &BytesDecl<'_>) {
        if !self.path.is_empty() || self.root_closed {
            return self.fail("an XML declaration is only allowed at the start");
        }
        match declaration.encoding() {
            None => {}
            Some(Ok(name)) if is_utf8_name(&name) => {}
            Some(Ok(name)) => self.fail(format!(
                "encoding {} is refused: camt.053 files must be UTF-8",
                excerpt(&String::from_utf8_lossy(&name))
            )),
            Some(Err(_)) => self.fail("malformed XML declaration"),
        }
    }

    fn open(&mut self, start: &BytesStart<'_>) {
        let name = match self.element_name(start) {
            Ok(name) => name,
            Err(reason) => return self.fail(reason),
        };
        if let Err(reason) = self.check_frame(&name, start) {
            return self.fail(reason);
        }
        self.path.push(name);
        self.text.clear();
        let relative = self.relative_path();
        self.leaf = relative.as_deref().and_then(leaf_at);
        if let Some(relative) = relative {
            self.on_element_start(&relative, start);
        }
    }

    /// The local name of an element that may open here, or why it may not.
    fn element_name(&self, start: &BytesStart<'_>) -> Result<String, String> {
        if let (Some(_), Some(parent)) = (self.leaf, self.path.last()) {
            return Err(format!("<{parent}> must hold only text, not elements"));
        }
        if self.path.len() >= MAX_DEPTH {
            return Err(format!("elements are nested deeper than {MAX_DEPTH}"));
        }
        if self.root_closed {
            return Err("content after the root element".to_owned());
        }
        if start.name().as_ref().len() > MAX_NAME_BYTES {
            return Err(format!(
                "an element name is longer than {MAX_NAME_BYTES} bytes"
            ));
        }
        std::str::from_utf8(start.local_name().as_ref())
            .map(str::to_owned)
            .map_err(|_| "an element name is not valid UTF-8".to_owned())
    }

    /// The frame around the statement: `Document` (in a camt.053 namespace) →
    /// `BkToCstmrStmt` → exactly one `Stmt`.
    fn check_frame(&mut self, name: &str, start: &BytesStart<'_>) -> Result<(), String> {
        match self.path.len() {
            0 if name != "Document" => Err(format!(
                "the root element must be <Document>, found <{}>",
                shorten(name)
            )),
            0 => declares_camt053(start),
            1 if name != "BkToCstmrStmt" => Err(format!(
                "<Document> must hold <BkToCstmrStmt>, found <{}>: not a camt.053 statement",
                shorten(name)
            )),
            2 if name == "Stmt" && self.statement.seen => {
                Err("a second <Stmt>: one statement per file".to_owned())
            }
            2 if name == "Stmt" => {
                self.statement.seen = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The path below `Stmt` (e.g. `Ntry/Amt`), when inside the statement.
    fn relative_path(&self) -> Option<String> {
        match self.path.get(2) {
            Some(name) if name == "Stmt" && self.path.len() > 3 => Some(self.path[3..].join("/")),
            _ => None,
        }
    }

    fn on_element_start(&mut self, relative: &str, start: &BytesStart<'_>) {
        match relative {
            "Ntry" => {
                self.entries_begun += 1;
                self.entry = Some(EntryDraft::default());
            }
            "Bal" => self.balance = Some(BalanceDraft::default()),
            "Ntry/NtryDtls/TxDtls" => {
                if let Some(entry) = &mut self.entry {
                    entry.transactions += 1;
                }
            }
            "Ntry/Amt" | "Bal/Amt" => match currency_attribute(start) {
                Ok(currency) => self.set_amount_currency(relative, currency),
                Err(reason) => self.fail(reason),
            },
            _ => {}
        }
    }

    fn set_amount_currency(&mut self, relative: &str, currency: Option<String>) {
        if relative == "Bal/Amt" {
            if let Some(balance) = &mut self.balance {
                balance.currency = currency;
            }
        } else if let Some(entry) = &mut self.entry {
            entry.currency = currency;
        }
    }

    fn on_text(&mut self, text: &str) {
        if self.path.is_empty() {
            if !is_xml_whitespace(text) {
                self.fail("text outside the root element");
            }
        } else if self.leaf.is_some() {
            self.collect(text);
        }
    }

    fn on_reference(&mut self, reference: &BytesRef<'_>) {
        let resolved = match resolve_reference(reference) {
            Ok(resolved) => resolved,
            Err(reason) => return self.fail(reason),
        };
        if self.path.is_empty() {
            self.fail("a reference outside the root element");
        } else if self.leaf.is_some() {
            self.collect(&resolved);
        }
    }

    /// Appends to the current leaf's text, within `max_line_bytes`.
    fn collect(&mut self, text: &str) {
        if self.text.len() + text.len() > self.options.max_line_bytes {
            let max = self.options.max_line_bytes;
            return self.fail(format!("an XML text is longer than {max} bytes"));
        }
        self.text.push_str(text);
    }

    fn close(&mut self) {
        let relative = self.relative_path();
        if let Some(leaf) = self.leaf.take() {
            let text = std::mem::take(&mut self.text);
            self.on_leaf(leaf, text.trim_matches(is_xml_space_char));
        }
        match relative.as_deref() {
            Some("Ntry") => self.finish_entry(),
            Some("Bal") => self.finish_balance(),
            _ => {}
        }
        if self.path.len() == 3 && self.path[2] == "Stmt" {
            self.finish_statement();
        }
        self.path.pop();
        if self.path.is_empty() {
            self.root_closed = true;
        }
    }

    fn on_leaf(&mut self, leaf: Leaf, text: &str) {
        match leaf.owner() {
            Owner::Statement => self.on_statement_leaf(leaf, text),
            Owner::Balance => {
                if let Some(balance) = &mut self.balance {
                    balance.set(leaf, text);
                }
            }
            Owner::Entry => {
                if let Some(entry) = &mut self.entry {
                    entry.set(leaf, text);
                }
            }
        }
    }

    /// Header fields are checked as they come, so their errors precede the entries'.
    fn on_statement_leaf(&mut self, leaf: Leaf, text: &str) {
        let account = &self.options.account_currency;
        let mut check = Check::new(self.entries_begun);
        let field = leaf.field();
        match leaf {
            Leaf::StatementId => {
                self.summary.statement_id = check.text(field, Some(text), TextKind::Identifier);
            }
            Leaf::PeriodStart => {
                self.statement.period_start =
                    check.optional(field, Some(text), iso_date_or_date_time);
            }
            Leaf::PeriodEnd => {
                self.statement.period_end =
                    check.optional(field, Some(text), iso_date_or_date_time);
            }
            Leaf::Iban => self.statement.iban = check.text(field, Some(text), TextKind::Identifier),
            Leaf::OtherAccountId => {
                self.statement.other_id = check.text(field, Some(text), TextKind::Identifier);
            }
            Leaf::AccountCurrency => {
                check.required(field, Some(text), |code| line_currency(code, account));
            }
            _ => {}
        }
        self.outbox.push_errors(check.into_errors());
    }

    fn finish_entry(&mut self) {
        if let Some(draft) = self.entry.take() {
            let result = check_entry(self.entries_begun, &draft, &self.options);
            self.outbox.push_result(result);
        }
    }

    fn finish_balance(&mut self) {
        let Some(draft) = self.balance.take() else {
            return;
        };
        let Some(kind) = draft.kind() else {
            // Other balance types (CLAV, ITBD, …) say nothing the ledger checks.
            return;
        };
        let mut check = Check::new(self.entries_begun);
        let balance = draft.check(&mut check, &self.options);
        if let Some(balance) = balance {
            if let Err(reason) = self.statement.record_balance(kind, balance) {
                check.add("Bal/Tp/CdOrPrtry/Cd", reason);
            }
        }
        self.outbox.push_errors(check.into_errors());
    }

    fn finish_statement(&mut self) {
        let statement = &self.statement;
        let summary = &mut self.summary;
        summary.account_identifier = statement
            .iban
            .clone()
            .or_else(|| statement.other_id.clone());
        summary.opening_balance = statement.opening.map(|(_, balance)| balance.amount);
        summary.closing_balance = statement.closing.map(|balance| balance.amount);
        let opening_date = statement.opening.and_then(|(_, balance)| balance.date);
        summary.period_start = statement.period_start.or(opening_date);
        let closing_date = statement.closing.and_then(|balance| balance.date);
        summary.period_end = statement.period_end.or(closing_date);
    }

    fn on_end_of_input(&mut self) {
        if let Some(open) = self.path.last() {
            let reason = format!("the XML ends before </{open}>: the file is truncated");
            return self.fail(reason);
        }
        if !self.root_closed {
            return self.fail("no <Document> element: not a camt.053 statement");
        }
        if !self.statement.seen {
            return self.fail("<BkToCstmrStmt> holds no <Stmt>");
        }
        self.outbox.finish();
    }
}

impl Iterator for Camt053Reader<'_> {
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

impl StatementReader for Camt053Reader<'_> {
    fn summary(&self) -> &StatementSummary {
        &self.summary
    }

    fn stopped(&self) -> bool {
        self.outbox.stopped
    }
}

// ---------------------------------------------------------------------------------------------
// What is collected

/// The elements whose text this reader takes, by their path below `Stmt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leaf {
    StatementId,
    PeriodStart,
    PeriodEnd,
    Iban,
    OtherAccountId,
    AccountCurrency,
    BalanceCode,
    BalanceAmount,
    BalanceSign,
    BalanceDate,
    Amount,
    Sign,
    BookingDate,
    ValueDate,
    ServicerReference,
    EntryReference,
    EndToEndId,
    Remittance,
    AdditionalInfo,
}

/// Which draft a leaf belongs to.
enum Owner {
    Statement,
    Balance,
    Entry,
}

fn leaf_at(relative: &str) -> Option<Leaf> {
    let leaf = match relative {
        "Id" => Leaf::StatementId,
        "FrToDt/FrDtTm" => Leaf::PeriodStart,
        "FrToDt/ToDtTm" => Leaf::PeriodEnd,
        "Acct/Id/IBAN" => Leaf::Iban,
        "Acct/Id/Othr/Id" => Leaf::OtherAccountId,
        "Acct/Ccy" => Leaf::AccountCurrency,
        "Bal/Tp/CdOrPrtry/Cd" => Leaf::BalanceCode,
        "Bal/Amt" => Leaf::BalanceAmount,
        "Bal/CdtDbtInd" => Leaf::BalanceSign,
        "Bal/Dt/Dt" | "Bal/Dt/DtTm" => Leaf::BalanceDate,
        "Ntry/Amt" => Leaf::Amount,
        "Ntry/CdtDbtInd" => Leaf::Sign,
        "Ntry/BookgDt/Dt" | "Ntry/BookgDt/DtTm" => Leaf::BookingDate,
        "Ntry/ValDt/Dt" | "Ntry/ValDt/DtTm" => Leaf::ValueDate,
        "Ntry/AcctSvcrRef" => Leaf::ServicerReference,
        "Ntry/NtryRef" => Leaf::EntryReference,
        "Ntry/NtryDtls/TxDtls/Refs/EndToEndId" => Leaf::EndToEndId,
        "Ntry/NtryDtls/TxDtls/RmtInf/Ustrd" => Leaf::Remittance,
        "Ntry/AddtlNtryInf" => Leaf::AdditionalInfo,
        _ => return None,
    };
    Some(leaf)
}

impl Leaf {
    /// The name errors give the field: its path below `Stmt`.
    fn field(self) -> &'static str {
        match self {
            Leaf::StatementId => "Stmt/Id",
            Leaf::PeriodStart => "FrToDt/FrDtTm",
            Leaf::PeriodEnd => "FrToDt/ToDtTm",
            Leaf::Iban => "Acct/Id/IBAN",
            Leaf::OtherAccountId => "Acct/Id/Othr/Id",
            Leaf::AccountCurrency => "Acct/Ccy",
            Leaf::BalanceCode => "Bal/Tp/CdOrPrtry/Cd",
            Leaf::BalanceAmount => "Bal/Amt",
            Leaf::BalanceSign => "Bal/CdtDbtInd",
            Leaf::BalanceDate => "Bal/Dt",
            Leaf::Amount => "Ntry/Amt",
            Leaf::Sign => "Ntry/CdtDbtInd",
            Leaf::BookingDate => "Ntry/BookgDt",
            Leaf::ValueDate => "Ntry/ValDt",
            Leaf::ServicerReference => "Ntry/AcctSvcrRef",
            Leaf::EntryReference => "Ntry/NtryRef",
            Leaf::EndToEndId => "Ntry/NtryDtls/TxDtls/Refs/EndToEndId",
            Leaf::Remittance => "Ntry/NtryDtls/TxDtls/RmtInf/Ustrd",
            Leaf::AdditionalInfo => "Ntry/AddtlNtryInf",
        }
    }

    fn owner(self) -> Owner {
        match self {
            Leaf::StatementId
            | Leaf::PeriodStart
            | Leaf::PeriodEnd
            | Leaf::Iban
            | Leaf::OtherAccountId
            | Leaf::AccountCurrency => Owner::Statement,
            Leaf::BalanceCode | Leaf::BalanceAmount | Leaf::BalanceSign | Leaf::BalanceDate => {
                Owner::Balance
            }
            _ => Owner::Entry,
        }
    }
}

/// Stores `text` in an empty slot; a second value is remembered as an error of the draft.
fn put(slot: &mut Option<String>, text: &str, leaf: Leaf, repeated: &mut Vec<Leaf>) {
    if slot.is_some() {
        if !repeated.contains(&leaf) {
            repeated.push(leaf);
        }
    } else {
        *slot = Some(text.to_owned());
    }
}

/// The texts of one `<Ntry>`, checked when it closes.
#[derive(Debug, Default)]
struct EntryDraft {
    amount: Option<String>,
    currency: Option<String>,
    sign: Option<String>,
    booking_date: Option<String>,
    value_date: Option<String>,
    servicer_reference: Option<String>,
    entry_reference: Option<String>,
    end_to_end_id: Option<String>,
    remittance: Option<String>,
    /// Which `TxDtls` the remittance lines come from: only the first that has any.
    remittance_transaction: Option<u32>,
    additional_info: Option<String>,
    /// How many `TxDtls` began so far.
    transactions: u32,
    repeated: Vec<Leaf>,
}

impl EntryDraft {
    fn set(&mut self, leaf: Leaf, text: &str) {
        let repeated = &mut self.repeated;
        match leaf {
            Leaf::Amount => put(&mut self.amount, text, leaf, repeated),
            Leaf::Sign => put(&mut self.sign, text, leaf, repeated),
            Leaf::BookingDate => put(&mut self.booking_date, text, leaf, repeated),
            Leaf::ValueDate => put(&mut self.value_date, text, leaf, repeated),
            Leaf::ServicerReference => put(&mut self.servicer_reference, text, leaf, repeated),
            Leaf::EntryReference => put(&mut self.entry_reference, text, leaf, repeated),
            Leaf::AdditionalInfo => put(&mut self.additional_info, text, leaf, repeated),
            // Several transactions: the first real end-to-end id is the entry's reference.
            Leaf::EndToEndId if self.end_to_end_id.is_none() && text != NOT_PROVIDED => {
                self.end_to_end_id = Some(text.to_owned());
            }
            Leaf::Remittance => self.add_remittance(text),
            _ => {}
        }
    }

    /// Unstructured remittance lines of one transaction, joined by line breaks.
    fn add_remittance(&mut self, text: &str) {
        let transaction = self.transactions;
        if self
            .remittance_transaction
            .is_some_and(|first| first != transaction)
        {
            return;
        }
        self.remittance_transaction = Some(transaction);
        let joined = self.remittance.get_or_insert_with(String::new);
        if joined.len() > MAX_COLLECTED_BYTES {
            return;
        }
        if !joined.is_empty() {
            joined.push('\n');
        }
        joined.push_str(text);
    }
}

/// One `<Ntry>` checked: the shared rules, the sign from `CdtDbtInd`.
fn check_entry(
    number: u64,
    draft: &EntryDraft,
    options: &ParseOptions,
) -> Result<StatementLine, Vec<LineError>> {
    let account = &options.account_currency;
    let mut check = Check::new(number);
    for leaf in &draft.repeated {
        check.add(leaf.field(), "appears more than once in the entry");
    }
    let amount = check.required("Ntry/Amt", draft.amount.as_deref(), |text| {
        unsigned_amount(text, account)
    });
    let currency = check.required("Ntry/Amt@Ccy", draft.currency.as_deref(), |code| {
        line_currency(code, account)
    });
    let sign = check.required("Ntry/CdtDbtInd", draft.sign.as_deref(), credit_or_debit);
    let booking = draft.booking_date.as_deref();
    let booking_date = check.required("Ntry/BookgDt", booking, iso_date_or_date_time);
    let value = draft.value_date.as_deref();
    let value_date = check.optional("Ntry/ValDt", value, iso_date_or_date_time);
    let (external_id, reference, description) = entry_texts(&mut check, draft);
    let line = match (amount, currency, sign, booking_date) {
        (Some(amount), Some(currency), Some(sign), Some(booking_date)) => Some(StatementLine {
            number,
            external_id,
            booking_date,
            value_date,
            amount: sign.apply(amount),
            currency,
            reference,
            description,
        }),
        _ => None,
    };
    check.finish(line)
}

/// External id (`AcctSvcrRef`, else `NtryRef`), reference (`EndToEndId`) and description
/// (`Ustrd` lines, else `AddtlNtryInf`) of an entry.
fn entry_texts(
    check: &mut Check,
    draft: &EntryDraft,
) -> (Option<String>, Option<String>, Option<String>) {
    let identifier = TextKind::Identifier;
    let external_id = match &draft.servicer_reference {
        Some(text) => check.text("Ntry/AcctSvcrRef", Some(text), identifier),
        None => check.text("Ntry/NtryRef", draft.entry_reference.as_deref(), identifier),
    };
    let end_to_end_id = draft.end_to_end_id.as_deref();
    let reference = check.text(Leaf::EndToEndId.field(), end_to_end_id, identifier);
    let description = match &draft.remittance {
        Some(text) => check.text(Leaf::Remittance.field(), Some(text), TextKind::Description),
        None => {
            let information = draft.additional_info.as_deref();
            check.text("Ntry/AddtlNtryInf", information, TextKind::Description)
        }
    };
    (external_id, reference, description)
}

/// `CdtDbtInd`: money into the account (CRDT) or out of it (DBIT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Credit,
    Debit,
}

impl Direction {
    /// The signed amount; zero stays unsigned (a zero balance has no direction).
    fn apply(self, magnitude: Decimal) -> Decimal {
        match self {
            Direction::Debit if !magnitude.is_zero() => -magnitude,
            _ => magnitude,
        }
    }
}

fn credit_or_debit(text: &str) -> Result<Direction, Reason> {
    match text {
        "CRDT" => Ok(Direction::Credit),
        "DBIT" => Ok(Direction::Debit),
        _ => Err(format!("must be CRDT or DBIT, got {}", excerpt(text))),
    }
}

// ---------------------------------------------------------------------------------------------
// Statement header and balances

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BalanceKind {
    /// OPBD: the opening booked balance.
    Opening,
    /// PRCD: the previous closing balance, the opening when there is no OPBD.
    PreviousClosing,
    /// CLBD: the closing booked balance.
    Closing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Balance {
    amount: Decimal,
    date: Option<Date>,
}

#[derive(Debug, Default)]
struct StatementDraft {
    seen: bool,
    iban: Option<String>,
    other_id: Option<String>,
    period_start: Option<Date>,
    period_end: Option<Date>,
    opening: Option<(BalanceKind, Balance)>,
    closing: Option<Balance>,
}

impl StatementDraft {
    /// OPBD wins over PRCD; the same kind twice is an error.
    fn record_balance(&mut self, kind: BalanceKind, balance: Balance) -> Result<(), Reason> {
        let twice = || Err("the statement has two balances of this type".to_owned());
        match (kind, self.opening) {
            (BalanceKind::Closing, _) if self.closing.is_some() => twice(),
            (BalanceKind::Closing, _) => {
                self.closing = Some(balance);
                Ok(())
            }
            (_, Some((earlier, _))) if earlier == kind => twice(),
            (BalanceKind::PreviousClosing, Some((BalanceKind::Opening, _))) => Ok(()),
            _ => {
                self.opening = Some((kind, balance));
                Ok(())
            }
        }
    }
}

/// The texts of one `<Bal>`.
#[derive(Debug, Default)]
struct BalanceDraft {
    code: Option<String>,
    amount: Option<String>,
    currency: Option<String>,
    sign: Option<String>,
    date: Option<String>,
    repeated: Vec<Leaf>,
}

impl BalanceDraft {
    fn set(&mut self, leaf: Leaf, text: &str) {
        let repeated = &mut self.repeated;
        match leaf {
            Leaf::BalanceCode => put(&mut self.code, text, leaf, repeated),
            Leaf::BalanceAmount => put(&mut self.amount, text, leaf, repeated),
            Leaf::BalanceSign => put(&mut self.sign, text, leaf, repeated),
            Leaf::BalanceDate => put(&mut self.date, text, leaf, repeated),
            _ => {}
        }
    }

    fn kind(&self) -> Option<BalanceKind> {
        match self.code.as_deref()? {
            "OPBD" => Some(BalanceKind::Opening),
            "PRCD" => Some(BalanceKind::PreviousClosing),
            "CLBD" => Some(BalanceKind::Closing),
            _ => None,
        }
    }

    fn check(&self, check: &mut Check, options: &ParseOptions) -> Option<Balance> {
        let account = &options.account_currency;
        for leaf in &self.repeated {
            check.add(leaf.field(), "appears more than once in the balance");
        }
        let amount = check.required("Bal/Amt", self.amount.as_deref(), |text| {
            balance_amount(text, account)
        });
        check.required("Bal/Amt@Ccy", self.currency.as_deref(), |code| {
            line_currency(code, account)
        });
        let sign = check.required("Bal/CdtDbtInd", self.sign.as_deref(), credit_or_debit);
        let date = check.optional("Bal/Dt", self.date.as_deref(), iso_date_or_date_time);
        match (amount, sign) {
            (Some(amount), Some(sign)) if check.is_clean() => Some(Balance {
                amount: sign.apply(amount),
                date,
            }),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small XML helpers

/// `Document` must declare a camt.053.001.xx namespace (default or prefixed).
fn declares_camt053(start: &BytesStart<'_>) -> Result<(), String> {
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| format!("malformed attribute: {e}"))?;
        let key = attribute.key.as_ref();
        if key != b"xmlns" && !key.starts_with(b"xmlns:") {
            continue;
        }
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| format!("malformed namespace: {e}"))?;
        let version = value.strip_prefix(NAMESPACE_PREFIX);
        if version.is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())) {
            return Ok(());
        }
    }
    Err(format!(
        "<Document> declares no camt.053 namespace ({NAMESPACE_PREFIX}xx, e.g. .02 or .08)"
    ))
}

/// The `Ccy` attribute of an `Amt`, if it has one.
fn currency_attribute(start: &BytesStart<'_>) -> Result<Option<String>, String> {
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| format!("malformed attribute: {e}"))?;
        if attribute.key.local_name().as_ref() == b"Ccy" {
            let value = attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| format!("malformed Ccy attribute: {e}"))?;
            return Ok(Some(value.trim_matches(is_xml_space_char).to_owned()));
        }
    }
    Ok(None)
}

/// A character reference or one of the five predefined entities; anything else is refused
/// (no DTD may define more).
fn resolve_reference(reference: &BytesRef<'_>) -> Result<String, String> {
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(character)) => Ok(character.to_string()),
            _ => Err("invalid character reference".to_owned()),
        };
    }
    let name = reference
        .decode()
        .map_err(|_| "invalid entity reference".to_owned())?;
    resolve_predefined_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| format!("unknown entity &{};", shorten(&name)))
}

fn is_utf8_name(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"UTF-8") || name.eq_ignore_ascii_case(b"UTF8")
}

fn is_xml_space_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_xml_whitespace(text: &str) -> bool {
    text.chars().all(is_xml_space_char)
}

/// At most 120 characters of a message that may quote the file.
fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 120;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
