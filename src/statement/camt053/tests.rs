//! camt.053 reader tests: entries, the statement header, and every way a file can be broken.

use std::io::{self, Read};

use rust_decimal::Decimal;
use time::macros::date;

use crate::domain::money::Currency;
use crate::statement::{
    check_balanced, reader, LineError, LineResult, ParseOptions, StatementFormat, StatementLine,
};

const EXAMPLE: &str = include_str!("../../../docs/examples/statement.camt053.xml");

fn options() -> ParseOptions {
    ParseOptions::new(Currency::iso("EUR").unwrap())
}

struct Outcome {
    results: Vec<LineResult>,
    stopped: bool,
    summary: crate::statement::StatementSummary,
}

fn read_all(text: &str) -> Outcome {
    let mut statement = reader(
        StatementFormat::Camt053,
        Box::new(text.as_bytes()),
        options(),
    );
    let results: Vec<LineResult> = statement.by_ref().collect();
    let stopped = statement.stopped();
    assert!(statement.next().is_none(), "nothing after the end");
    Outcome {
        results,
        stopped,
        summary: statement.summary().clone(),
    }
}

fn errors(read: &Outcome) -> Vec<&LineError> {
    read.results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .collect()
}

fn lines(read: &Outcome) -> Vec<&StatementLine> {
    read.results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .collect()
}

/// A statement with the given `<Ntry>` elements (and anything else inside `<Stmt>`).
fn statement(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>M</MsgId></GrpHdr>
    <Stmt>
      <Id>S-1</Id>
      <Acct><Id><Othr><Id>ACC-7</Id></Othr></Id></Acct>
      {body}
    </Stmt>
  </BkToCstmrStmt>
</Document>
"#
    )
}

/// One `<Ntry>` with the usual fields; `extra` goes inside it.
fn entry(amount: &str, currency: &str, sign: &str, booking: &str, extra: &str) -> String {
    format!(
        r#"<Ntry><Amt Ccy="{currency}">{amount}</Amt><CdtDbtInd>{sign}</CdtDbtInd>
           <BookgDt><Dt>{booking}</Dt></BookgDt>{extra}</Ntry>"#
    )
}

#[test]
fn entries_are_signed_by_their_credit_debit_indicator() {
    let body = [
        entry("10.5", "EUR", "CRDT", "2026-11-02", ""),
        entry("3", "EUR", "DBIT", "2026-11-03T10:00:00+01:00", ""),
    ]
    .concat();
    let read = read_all(&statement(&body));
    assert!(!read.stopped);
    let lines = lines(&read);
    assert_eq!(lines[0].amount.to_string(), "10.50");
    assert_eq!(lines[1].amount.to_string(), "-3.00");
    assert_eq!(lines[1].booking_date, date!(2026 - 11 - 03));
    assert_eq!((lines[0].number, lines[1].number), (1, 2));
    assert_eq!(read.summary.account_identifier.as_deref(), Some("ACC-7"));
    assert_eq!(read.summary.opening_balance, None);
}

#[test]
fn each_kind_of_bad_entry_is_refused_with_its_entry_number_and_reading_goes_on() {
    let body = [
        entry("10.501", "EUR", "CRDT", "2026-11-02", ""),
        entry("1e3", "EUR", "CRDT", "2026-11-02", ""),
        entry("-5.00", "EUR", "CRDT", "2026-11-02", ""),
        entry("1.00", "EUR", "CRDT", "2026-02-30", ""),
        entry("1.00", "EUR", "CRDT", "26/11/2026", ""),
        entry("1.00", "XXZ", "CRDT", "2026-11-02", ""),
        entry("1.00", "USD", "CRDT", "2026-11-02", ""),
        entry("1.00", "EUR", "BOTH", "2026-11-02", ""),
        entry("0.00", "EUR", "CRDT", "2026-11-02", ""),
        "<Ntry><Amt>1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd></Ntry>".to_owned(),
        entry("2.00", "EUR", "CRDT", "2026-11-02", ""),
    ]
    .concat();
    let read = read_all(&statement(&body));
    assert!(!read.stopped);
    let found: Vec<(u64, &str)> = errors(&read)
        .iter()
        .map(|e| (e.number, e.field.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (1, "Ntry/Amt"),
            (2, "Ntry/Amt"),
            (3, "Ntry/Amt"),
            (4, "Ntry/BookgDt"),
            (5, "Ntry/BookgDt"),
            (6, "Ntry/Amt@Ccy"),
            (7, "Ntry/Amt@Ccy"),
            (8, "Ntry/CdtDbtInd"),
            (9, "Ntry/Amt"),
            (10, "Ntry/Amt@Ccy"),
            (10, "Ntry/BookgDt"),
        ]
    );
    let reasons: Vec<&str> = errors(&read).iter().map(|e| e.reason.as_str()).collect();
    assert!(reasons[0].starts_with("wrong scale"), "{}", reasons[0]);
    assert!(reasons[1].contains("no exponent"));
    assert!(reasons[3].contains("not a calendar date"));
    assert_eq!(reasons[5], "unknown currency XXZ");
    assert_eq!(reasons[6], "currency USD is not the account's EUR");
    assert_eq!(lines(&read)[0].number, 11);
}

#[test]
fn references_and_descriptions_come_from_the_first_transaction() {
    let details = r#"
        <NtryRef>NR-1</NtryRef>
        <ValDt><DtTm>2026-11-04T00:00:00Z</DtTm></ValDt>
        <NtryDtls>
          <TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs></TxDtls>
          <TxDtls><Refs><EndToEndId>E2E-2</EndToEndId></Refs>
            <RmtInf><Ustrd> Smith &amp; Sons </Ustrd><Ustrd>&#x263A; thanks</Ustrd></RmtInf>
          </TxDtls>
          <TxDtls><Refs><EndToEndId>E2E-3</EndToEndId></Refs>
            <RmtInf><Ustrd>ignored</Ustrd></RmtInf>
            <AmtDtls><TxAmt><Amt Ccy="USD">99.999</Amt></TxAmt></AmtDtls>
          </TxDtls>
        </NtryDtls>
        <AddtlNtryInf>fallback only</AddtlNtryInf>"#;
    let body = [
        entry("7.00", "EUR", "CRDT", "2026-11-02", details),
        entry(
            "8.00",
            "EUR",
            "DBIT",
            "2026-11-02",
            "<AddtlNtryInf>Fee</AddtlNtryInf>",
        ),
    ]
    .concat();
    let read = read_all(&statement(&body));
    let lines = lines(&read);
    assert_eq!(lines.len(), 2, "{:?}", read.results);
    assert_eq!(lines[0].reference.as_deref(), Some("E2E-2"));
    assert_eq!(
        lines[0].external_id.as_deref(),
        Some("NR-1"),
        "NtryRef when no AcctSvcrRef"
    );
    assert_eq!(
        lines[0].description.as_deref(),
        Some("Smith & Sons\n☺ thanks")
    );
    assert_eq!(lines[0].value_date, Some(date!(2026 - 11 - 04)));
    assert_eq!(lines[1].description.as_deref(), Some("Fee"));
    assert_eq!(
        (lines[1].reference.as_ref(), lines[1].external_id.as_ref()),
        (None, None)
    );
}

#[test]
fn an_element_given_twice_in_an_entry_is_refused() {
    let body = entry(
        "1.00",
        "EUR",
        "CRDT",
        "2026-11-02",
        "<CdtDbtInd>DBIT</CdtDbtInd>",
    );
    let read = read_all(&statement(&body));
    let errors = errors(&read);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].number, errors[0].field.as_str()),
        (1, "Ntry/CdtDbtInd")
    );
}

#[test]
fn balances_give_the_summary_and_an_unbalanced_statement_is_detected() {
    let balance = |code: &str, amount: &str, sign: &str, day: &str| {
        format!(
            r#"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{amount}</Amt>
               <CdtDbtInd>{sign}</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>"#
        )
    };
    let body = [
        balance("PRCD", "50.00", "DBIT", "2026-10-31"),
        balance("CLAV", "999.00", "CRDT", "2026-11-30"),
        balance("CLBD", "0", "CRDT", "2026-11-30"),
        entry("40.00", "EUR", "CRDT", "2026-11-02", ""),
    ]
    .concat();
    let read = read_all(&statement(&body));
    assert!(errors(&read).is_empty(), "{:?}", read.results);
    let summary = &read.summary;
    assert_eq!(
        summary.opening_balance,
        Some(Decimal::new(-5000, 2)),
        "PRCD without OPBD"
    );
    assert_eq!(
        summary.closing_balance.map(|b| b.to_string()),
        Some("0.00".to_owned())
    );
    assert_eq!(summary.period_start, Some(date!(2026 - 10 - 31)));
    assert_eq!(summary.period_end, Some(date!(2026 - 11 - 30)));
    assert_eq!(
        check_balanced(summary, Decimal::new(4000, 2)),
        Err((Decimal::new(-1000, 2), Decimal::new(0, 2)))
    );
}

#[test]
fn a_balance_or_account_in_another_currency_is_a_header_error() {
    let body = r#"<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="USD">1.00</Amt>
                  <CdtDbtInd>CRDT</CdtDbtInd></Bal>"#;
    let text = statement(body).replace("</Othr></Id>", "</Othr></Id><Ccy>GBP</Ccy>");
    let read = read_all(&text);
    assert!(!read.stopped);
    let found: Vec<(u64, &str)> = errors(&read)
        .iter()
        .map(|e| (e.number, e.field.as_str()))
        .collect();
    assert_eq!(found, vec![(0, "Acct/Ccy"), (0, "Bal/Amt@Ccy")]);
    assert_eq!(read.summary.opening_balance, None);
}

#[test]
fn a_file_cut_inside_an_entry_stops_with_that_entry_number() {
    let third_entry = EXAMPLE.match_indices("<Ntry>").nth(2).unwrap().0;
    let cut = &EXAMPLE[..third_entry + 120];
    let read = read_all(cut);
    assert!(read.stopped);
    assert_eq!(
        lines(&read).len(),
        2,
        "the two complete entries are still yielded"
    );
    let errors = errors(&read);
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].number, errors[0].field.as_str()), (3, "xml"));
    assert!(
        errors[0].reason.contains("truncated"),
        "{}",
        errors[0].reason
    );
}

#[test]
fn a_file_cut_inside_a_tag_stops_too() {
    let cut = &EXAMPLE[..EXAMPLE.find("<BookgDt>").unwrap() + 4];
    let read = read_all(cut);
    assert!(read.stopped);
    assert_eq!(errors(&read)[0].number, 1);
}

#[test]
fn a_mismatched_end_tag_is_malformed_xml() {
    let text = EXAMPLE.replacen("</BookgDt>", "</BkgDt>", 2);
    let read = read_all(&text);
    assert!(read.stopped);
    assert_eq!(lines(&read).len(), 0);
    let error = errors(&read)[0];
    assert_eq!((error.number, error.field.as_str()), (1, "xml"));
    assert!(
        error.reason.starts_with("malformed XML"),
        "{}",
        error.reason
    );
}

#[test]
fn a_doctype_is_refused_before_any_entity_is_seen() {
    let text = EXAMPLE.replacen(
        "<Document",
        "<!DOCTYPE Document [<!ENTITY boom \"boom\">]>\n<Document",
        1,
    );
    let read = read_all(&text);
    assert!(read.stopped);
    assert!(errors(&read)[0].reason.contains("DOCTYPE"));
}

#[test]
fn an_unknown_entity_is_refused() {
    let body = entry(
        "1.00",
        "EUR",
        "CRDT",
        "2026-11-02",
        "<AddtlNtryInf>&boom;</AddtlNtryInf>",
    );
    let read = read_all(&statement(&body));
    assert!(read.stopped);
    assert!(errors(&read)[0].reason.contains("unknown entity &boom;"));
}

#[test]
fn files_that_are_not_one_camt053_statement_are_refused() {
    let document = |inside: &str| {
        let namespace = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02";
        format!("<Document xmlns=\"{namespace}\">{inside}</Document>")
    };
    let cases = [
        ("".to_owned(), "no <Document>"),
        (document("").replace("camt.053", "camt.052"), "namespace"),
        ("<Report/>".to_owned(), "must be <Document>"),
        (document("<BkToCstmrAcctRpt/>"), "not a camt.053"),
        (document("<BkToCstmrStmt/>"), "no <Stmt>"),
    ];
    for (text, expected) in cases {
        let read = read_all(&text);
        assert!(read.stopped, "{text}");
        let reason = &errors(&read)[0].reason;
        assert!(reason.contains(expected), "{text}: {reason}");
    }
    let two = statement("").replace("</Stmt>", "</Stmt><Stmt><Id>S-2</Id></Stmt>");
    let read = read_all(&two);
    assert!(read.stopped);
    assert!(errors(&read)[0].reason.contains("second <Stmt>"));
    let after = format!("{}<Document/>", statement(""));
    assert!(read_all(&after).stopped);
    let text_after = format!("{}trailing", statement(""));
    assert!(errors(&read_all(&text_after))[0]
        .reason
        .contains("outside the root"));
}

#[test]
fn prefixed_elements_and_other_camt053_versions_read_the_same() {
    let prefixed = r#"<c:Document xmlns:c="urn:iso:std:iso:20022:tech:xsd:camt.053.001.13">
      <c:BkToCstmrStmt><c:Stmt><c:Id>S</c:Id>
        <c:Ntry><c:Amt Ccy="EUR">1.00</c:Amt><c:CdtDbtInd>DBIT</c:CdtDbtInd>
          <c:BookgDt><c:Dt>2026-11-02</c:Dt></c:BookgDt></c:Ntry>
      </c:Stmt></c:BkToCstmrStmt></c:Document>"#;
    let read = read_all(prefixed);
    assert!(!read.stopped, "{:?}", read.results);
    assert_eq!(lines(&read)[0].amount.to_string(), "-1.00");
    assert_eq!(read.summary.statement_id.as_deref(), Some("S"));
}

#[test]
fn deep_nesting_and_elements_inside_text_fields_are_refused() {
    let deep = format!("{}{}", "<X>".repeat(100), "</X>".repeat(100));
    let read = read_all(&statement(&deep));
    assert!(read.stopped);
    assert!(errors(&read)[0].reason.contains("deeper than 64"));
    let body = entry("1.<b/>00", "EUR", "CRDT", "2026-11-02", "");
    let read = read_all(&statement(&body));
    assert!(read.stopped);
    assert!(errors(&read)[0].reason.contains("only text"));
}

#[test]
fn a_declared_encoding_other_than_utf8_is_refused() {
    let text = EXAMPLE.replacen("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"", 1);
    let read = read_all(&text);
    assert!(read.stopped);
    assert!(errors(&read)[0].reason.contains("must be UTF-8"));
}

/// `prefix`, then `size` bytes of `filler`, then `suffix`, made on the fly.
struct Generated {
    parts: Vec<(Vec<u8>, usize)>,
    offset: usize,
    produced: std::rc::Rc<std::cell::Cell<usize>>,
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some((bytes, repeat)) = self.parts.first_mut() else {
            return Ok(0);
        };
        let total = bytes.len() * *repeat;
        let count = out.len().min(total - self.offset);
        for (index, byte) in out[..count].iter_mut().enumerate() {
            *byte = bytes[(self.offset + index) % bytes.len()];
        }
        self.offset += count;
        if self.offset == total {
            self.parts.remove(0);
            self.offset = 0;
        }
        self.produced.set(self.produced.get() + count);
        Ok(count)
    }
}

#[test]
fn a_ten_megabyte_text_is_refused_after_reading_a_bounded_prefix() {
    let open = statement("<Ntry><AddtlNtryInf>");
    let open = &open[..open.find("</Stmt>").unwrap()];
    for filler in [&b"x"[..], b" "] {
        let produced = std::rc::Rc::new(std::cell::Cell::new(0));
        let input = Generated {
            parts: vec![
                (open.as_bytes().to_vec(), 1),
                (filler.to_vec(), 10 * 1024 * 1024),
                (
                    b"</AddtlNtryInf></Ntry></Stmt></BkToCstmrStmt></Document>".to_vec(),
                    1,
                ),
            ],
            offset: 0,
            produced: produced.clone(),
        };
        let mut statement = reader(
            StatementFormat::Camt053,
            Box::new(io::BufReader::new(input)),
            options(),
        );
        let error = statement.next().unwrap().unwrap_err();
        assert!(statement.stopped());
        assert_eq!(error.number, 1);
        assert!(
            error.reason.contains("longer than 65536 bytes"),
            "{}",
            error.reason
        );
        assert!(produced.get() < 512 * 1024, "read {} bytes", produced.get());
    }
}

#[test]
fn a_huge_comment_between_entries_is_refused_too() {
    let mut options = options();
    options.max_line_bytes = 1000;
    let comment = format!("<!--{}-->", "<a>".repeat(1000));
    let text = statement(&comment);
    let mut statement = reader(StatementFormat::Camt053, Box::new(text.as_bytes()), options);
    assert!(statement.next().unwrap().is_err());
    assert!(statement.stopped());
}

#[test]
fn the_example_reads_without_errors_in_both_versions() {
    for text in [
        EXAMPLE,
        include_str!("../../../docs/examples/statement.camt053v02.xml"),
    ] {
        let read = read_all(text);
        assert!(!read.stopped);
        assert!(errors(&read).is_empty(), "{:?}", errors(&read));
        assert_eq!(lines(&read).len(), 8);
    }
}
