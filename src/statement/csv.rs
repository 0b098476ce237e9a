//! CSV statements: a header row, then one entry per record (§7).
//!
//! Read with the `csv` crate (quoted fields, line breaks inside quotes, strict field counts) over
//! a [`CsvInput`] that bounds every physical line and every record to `max_line_bytes`. Column
//! names are the caller's [`CsvColumns`]; extra columns are ignored. A row with a bad cell is an
//! error of that row only; a missing required column or an over-long line stops the reader,
//! since the rows after it cannot be trusted to be what they seem.

use std::io::BufRead;

use ::csv::{ByteRecord, ErrorKind, ReaderBuilder};

use super::bounded::{CsvInput, Overflow};
use super::fields::{check_line_texts, excerpt, Check, LineTexts};
use super::{
    CsvColumns, LineError, LineResult, Outbox, ParseOptions, StatementLine, StatementReader,
    StatementSummary,
};

/// How many header names an error about a missing column lists.
const LISTED_HEADER_NAMES: usize = 12;

type Input<'a> = CsvInput<Box<dyn BufRead + 'a>>;

/// A streaming reader of one CSV statement.
pub(super) struct CsvReader<'a> {
    csv: ::csv::Reader<Input<'a>>,
    options: ParseOptions,
    /// `None` until the header row was read.
    columns: Option<Columns>,
    record: ByteRecord,
    summary: StatementSummary,
    outbox: Outbox,
}

impl<'a> CsvReader<'a> {
    pub(super) fn new(input: Box<dyn BufRead + 'a>, options: ParseOptions) -> CsvReader<'a> {
        let csv = ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(CsvInput::new(input, options.max_line_bytes));
        CsvReader {
            csv,
            options,
            columns: None,
            record: ByteRecord::new(),
            summary: StatementSummary::default(),
            outbox: Outbox::default(),
        }
    }

    /// Reads the header row or one record, queueing what it yields.
    fn step(&mut self) {
        match &self.columns {
            None => self.read_header(),
            Some(_) => self.read_record(),
        }
    }

    fn read_header(&mut self) {
        let found = match self.csv.byte_headers() {
            Ok(header) => {
                let number = header.position().map_or(1, |position| position.line());
                Columns::find(header, &self.options.csv_columns)
                    .map_err(|reason| LineError::new(number, "header", reason))
            }
            Err(error) => return self.stop_on(error),
        };
        self.csv.get_mut().record_done();
        match found {
            Ok(columns) => self.columns = Some(columns),
            Err(error) => self.outbox.stop(error),
        }
    }

    fn read_record(&mut self) {
        match self.csv.read_byte_record(&mut self.record) {
            Ok(false) => self.outbox.finish(),
            Ok(true) => {
                self.csv.get_mut().record_done();
                if let Some(columns) = &self.columns {
                    let result = check_record(&self.record, columns, &self.options);
                    self.outbox.push_result(result);
                }
            }
            Err(error) => self.stop_on(error),
        }
    }

    /// A wrong field count costs one row; anything else ends the file.
    fn stop_on(&mut self, error: ::csv::Error) {
        if let ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } = error.kind()
        {
            self.csv.get_mut().record_done();
            let number = pos.as_ref().map_or(0, |position| position.line());
            let reason = format!("has {len} fields, the header row has {expected_len}");
            return self
                .outbox
                .push_error(LineError::new(number, "row", reason));
        }
        let max = self.options.max_line_bytes;
        let fatal = match self.csv.get_ref().overflow() {
            Some(Overflow::Line(number)) => {
                LineError::new(number, "line", format!("longer than {max} bytes"))
            }
            Some(Overflow::Record(number)) => LineError::new(
                number,
                "row",
                format!("longer than {max} bytes (counting the line breaks inside its quotes)"),
            ),
            None => LineError::new(
                self.csv.position().line(),
                "input",
                format!("unreadable CSV: {error}"),
            ),
        };
        self.outbox.stop(fatal);
    }
}

impl Iterator for CsvReader<'_> {
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

impl StatementReader for CsvReader<'_> {
    fn summary(&self) -> &StatementSummary {
        &self.summary
    }

    fn stopped(&self) -> bool {
        self.outbox.stopped
    }
}

/// Where each field is in a record; `None` for an optional column the header does not have.
#[derive(Debug, Default)]
struct Columns {
    external_id: Option<usize>,
    booking_date: Option<usize>,
    value_date: Option<usize>,
    amount: Option<usize>,
    currency: Option<usize>,
    reference: Option<usize>,
    description: Option<usize>,
}

impl Columns {
    /// The configured columns in `header` (names compared exactly after trimming).
    fn find(header: &ByteRecord, names: &CsvColumns) -> Result<Columns, String> {
        let in_file: Vec<String> = header
            .iter()
            .map(|name| String::from_utf8_lossy(name).trim().to_owned())
            .collect();
        let position = |wanted: &str| -> Result<Option<usize>, String> {
            let mut found = in_file
                .iter()
                .enumerate()
                .filter(|(_, name)| *name == wanted);
            let first = found.next().map(|(index, _)| index);
            match found.next() {
                Some(_) => Err(format!(
                    "column {} appears more than once in the header row",
                    excerpt(wanted)
                )),
                None => Ok(first),
            }
        };
        let columns = Columns {
            external_id: position(&names.external_id)?,
            booking_date: position(&names.booking_date)?,
            value_date: position(&names.value_date)?,
            amount: position(&names.amount)?,
            currency: position(&names.currency)?,
            reference: position(&names.reference)?,
            description: position(&names.description)?,
        };
        match missing_required(&columns, names) {
            None => Ok(columns),
            Some(missing) => Err(missing_columns_reason(&missing, &in_file)),
        }
    }
}

/// The names of the required columns the header lacks, if any.
fn missing_required(columns: &Columns, names: &CsvColumns) -> Option<Vec<String>> {
    let required = [
        (&names.booking_date, columns.booking_date),
        (&names.amount, columns.amount),
        (&names.currency, columns.currency),
    ];
    let missing: Vec<String> = required
        .iter()
        .filter(|(_, index)| index.is_none())
        .map(|(name, _)| excerpt(name))
        .collect();
    (!missing.is_empty()).then_some(missing)
}

fn missing_columns_reason(missing: &[String], in_file: &[String]) -> String {
    let listed: Vec<String> = in_file
        .iter()
        .take(LISTED_HEADER_NAMES)
        .map(|name| excerpt(name))
        .collect();
    let found = if listed.is_empty() {
        "no columns".to_owned()
    } else {
        listed.join(", ")
    };
    format!(
        "missing required column(s) {} (the header row has {found})",
        missing.join(", ")
    )
}

/// One record checked: its cells by column, then the shared rules.
fn check_record(
    record: &ByteRecord,
    columns: &Columns,
    options: &ParseOptions,
) -> Result<StatementLine, Vec<LineError>> {
    let number = record.position().map_or(0, |position| position.line());
    let names = &options.csv_columns;
    let mut check = Check::new(number);
    let texts = LineTexts {
        external_id: cell(record, columns.external_id, &names.external_id, &mut check),
        booking_date: cell(
            record,
            columns.booking_date,
            &names.booking_date,
            &mut check,
        ),
        value_date: cell(record, columns.value_date, &names.value_date, &mut check),
        amount: cell(record, columns.amount, &names.amount, &mut check),
        currency: cell(record, columns.currency, &names.currency, &mut check),
        reference: cell(record, columns.reference, &names.reference, &mut check),
        description: cell(record, columns.description, &names.description, &mut check),
    };
    if !check.is_clean() {
        // A cell that is not text says nothing reliable about the others.
        return check.finish(None);
    }
    check_line_texts(check, &texts, names, options)
}

/// The text of a column, recording an error when it is not UTF-8.
fn cell<'r>(
    record: &'r ByteRecord,
    index: Option<usize>,
    name: &str,
    check: &mut Check,
) -> Option<&'r str> {
    let bytes = record.get(index?)?;
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(_) => {
            check.add(name, "not valid UTF-8");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read};

    use rust_decimal::Decimal;

    use super::*;
    use crate::domain::money::Currency;
    use crate::statement::{reader, StatementFormat};

    const HEADER: &str =
        "external_id,booking_date,value_date,amount,currency,reference,description\n";

    fn options() -> ParseOptions {
        ParseOptions::new(Currency::iso("EUR").unwrap())
    }

    fn read_all(text: &str, options: ParseOptions) -> (Vec<LineResult>, bool) {
        let mut lines = reader(StatementFormat::Csv, Box::new(text.as_bytes()), options);
        let results: Vec<LineResult> = lines.by_ref().collect();
        (results, lines.stopped())
    }

    fn errors_of(text: &str) -> Vec<LineError> {
        read_all(text, options())
            .0
            .into_iter()
            .filter_map(Result::err)
            .collect()
    }

    #[test]
    fn rows_become_lines_numbered_by_their_physical_line() {
        let text = format!(
            "{HEADER}B-1,2026-11-02,,10.5,EUR,INV-1,\"two\nlines\"\n\
             B-2,2026-11-03,2026-11-04,-3,EUR,,\n"
        );
        let (results, stopped) = read_all(&text, options());
        assert!(!stopped);
        let lines: Vec<StatementLine> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].number, 2);
        assert_eq!(lines[0].amount.to_string(), "10.50");
        assert_eq!(lines[0].value_date, None);
        assert_eq!(lines[0].description.as_deref(), Some("two\nlines"));
        assert_eq!(
            lines[1].number, 4,
            "the quoted line break moves the next row down"
        );
        assert_eq!(lines[1].amount, Decimal::new(-300, 2));
        assert_eq!(lines[1].reference, None);
    }

    #[test]
    fn each_kind_of_bad_cell_is_refused_with_its_line_and_column() {
        let text = format!(
            "{HEADER}\
             ,2026-11-02,,10.501,EUR,,\n\
             ,2026-11-02,,1e3,EUR,,\n\
             ,2026-02-30,,1.00,EUR,,\n\
             ,26/11/2026,,1.00,EUR,,\n\
             ,2026-11-02,,1.00,XXZ,,\n\
             ,2026-11-02,,1.00,USD,,\n\
             ,2026-11-02,,,EUR,,\n\
             ,2026-11-02,,0.00,EUR,,\n"
        );
        let errors = errors_of(&text);
        let summary: Vec<(u64, &str)> = errors
            .iter()
            .map(|e| (e.number, e.field.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (2, "amount"),
                (3, "amount"),
                (4, "booking_date"),
                (5, "booking_date"),
                (6, "currency"),
                (7, "currency"),
                (8, "amount"),
                (9, "amount")
            ]
        );
        assert!(
            errors[0].reason.starts_with("wrong scale"),
            "{}",
            errors[0].reason
        );
        assert!(
            errors[1].reason.contains("no exponent"),
            "{}",
            errors[1].reason
        );
        assert!(errors[2].reason.contains("not a calendar date"));
        assert!(errors[3].reason.contains("YYYY-MM-DD"));
        assert_eq!(errors[4].reason, "unknown currency XXZ");
        assert_eq!(errors[5].reason, "currency USD is not the account's EUR");
        assert!(errors[6].reason.contains("required"));
        assert!(errors[7].reason.contains("zero"));
    }

    #[test]
    fn all_bad_cells_of_one_row_are_reported_and_reading_goes_on() {
        let text = format!("{HEADER},2026-02-30,,1e3,EUR,,\n,2026-11-02,,1.00,EUR,,\n");
        let (results, stopped) = read_all(&text, options());
        assert!(!stopped);
        assert_eq!(results.len(), 3);
        assert!(results[0].is_err() && results[1].is_err());
        assert_eq!(results[2].as_ref().unwrap().number, 3);
    }

    #[test]
    fn a_row_with_the_wrong_field_count_is_an_error_of_that_row() {
        let text = format!("{HEADER},2026-11-02,,1.00,EUR\n,2026-11-02,,2.00,EUR,,\n");
        let (results, stopped) = read_all(&text, options());
        assert!(!stopped);
        let error = results[0].as_ref().unwrap_err();
        assert_eq!((error.number, error.field.as_str()), (2, "row"));
        assert_eq!(error.reason, "has 5 fields, the header row has 7");
        assert_eq!(results[1].as_ref().unwrap().number, 3);
    }

    #[test]
    fn a_missing_required_column_stops_the_reader_at_the_header() {
        let (results, stopped) = read_all(
            "external_id,booking_date,amount\nB,2026-11-02,1.00\n",
            options(),
        );
        assert!(stopped);
        assert_eq!(results.len(), 1);
        let error = results[0].as_ref().unwrap_err();
        assert_eq!((error.number, error.field.as_str()), (1, "header"));
        assert!(error.reason.contains("\"currency\""), "{}", error.reason);
        let (results, stopped) = read_all("", options());
        assert!(stopped && results.len() == 1);
    }

    #[test]
    fn mapped_column_names_are_read_and_named_in_errors() {
        let mut options = ParseOptions::new(Currency::iso("EUR").unwrap());
        options.csv_columns.booking_date = "Buchungstag".into();
        options.csv_columns.amount = "Betrag".into();
        options.csv_columns.currency = "Waehrung".into();
        options.csv_columns.reference = "Verwendungszweck".into();
        let text = "Extra, Buchungstag ,Betrag,Waehrung,Verwendungszweck\n\
                    e,2026-11-02,12.00,EUR,INV-9\n\
                    e,2026-11-03,1.234,EUR,\n";
        let (results, stopped) = read_all(text, options);
        assert!(!stopped);
        let line = results[0].as_ref().unwrap();
        assert_eq!(line.reference.as_deref(), Some("INV-9"));
        assert_eq!(line.external_id, None, "an absent optional column is None");
        let error = results[1].as_ref().unwrap_err();
        assert_eq!((error.number, error.field.as_str()), (3, "Betrag"));
    }

    #[test]
    fn a_column_named_twice_is_refused() {
        let (results, stopped) = read_all("amount,booking_date,currency,amount\n", options());
        assert!(stopped);
        assert!(results[0]
            .as_ref()
            .unwrap_err()
            .reason
            .contains("more than once"));
    }

    #[test]
    fn a_byte_order_mark_and_crlf_line_ends_are_accepted() {
        let text = "\u{feff}booking_date,amount,currency\r\n2026-11-02,1.00,EUR\r\n";
        let (results, stopped) = read_all(text, options());
        assert!(!stopped);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].as_ref().unwrap().number, 2);
    }

    #[test]
    fn invalid_utf8_and_nul_are_refused() {
        let mut bytes =
            b"booking_date,amount,currency,description\n2026-11-02,1.00,EUR,\xff\n".to_vec();
        bytes.extend_from_slice(b"2026-11-02,1.00,EUR,a\0b\n");
        let mut lines = reader(StatementFormat::Csv, Box::new(&bytes[..]), options());
        let errors: Vec<LineError> = lines.by_ref().filter_map(Result::err).collect();
        assert_eq!(errors.len(), 2);
        assert_eq!(
            (errors[0].number, errors[0].reason.as_str()),
            (2, "not valid UTF-8")
        );
        assert!(errors[1].reason.contains("NUL"));
    }

    /// Bytes made on the fly: a header, then `rows` data rows or one endless line.
    struct Generated {
        header: &'static [u8],
        row: Vec<u8>,
        rows_left: usize,
        offset: usize,
        produced: std::rc::Rc<std::cell::Cell<usize>>,
    }

    impl Read for Generated {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let count = if self.offset < self.header.len() {
                let count = out.len().min(self.header.len() - self.offset);
                out[..count].copy_from_slice(&self.header[self.offset..self.offset + count]);
                self.offset += count;
                count
            } else if self.rows_left > 0 {
                self.rows_left -= 1;
                let count = out.len().min(self.row.len());
                out[..count].copy_from_slice(&self.row[..count]);
                count
            } else {
                0
            };
            self.produced.set(self.produced.get() + count);
            Ok(count)
        }
    }

    #[test]
    fn one_hundred_thousand_rows_stream_through_the_iterator() {
        let produced = std::rc::Rc::new(std::cell::Cell::new(0));
        let input = Generated {
            header: HEADER.as_bytes(),
            row: b"B-1,2026-11-02,2026-11-02,10.25,EUR,INV-1,Payment\n".to_vec(),
            rows_left: 100_000,
            offset: 0,
            produced: produced.clone(),
        };
        let lines = reader(
            StatementFormat::Csv,
            Box::new(io::BufReader::new(input)),
            options(),
        );
        let (mut count, mut sum, mut last) = (0u64, Decimal::ZERO, 0);
        for line in lines {
            let line = line.unwrap();
            count += 1;
            sum += line.amount;
            last = line.number;
        }
        assert_eq!(count, 100_000);
        assert_eq!(sum, Decimal::new(102_500_000, 2));
        assert_eq!(last, 100_001);
    }

    #[test]
    fn a_ten_megabyte_line_is_refused_after_reading_only_a_bounded_prefix() {
        let produced = std::rc::Rc::new(std::cell::Cell::new(0));
        let input = Generated {
            header: HEADER.as_bytes(),
            row: vec![b'x'; 8 * 1024],
            rows_left: 10 * 1024 * 1024 / (8 * 1024),
            offset: 0,
            produced: produced.clone(),
        };
        let mut lines = reader(
            StatementFormat::Csv,
            Box::new(io::BufReader::new(input)),
            options(),
        );
        let results: Vec<LineResult> = lines.by_ref().collect();
        assert!(lines.stopped());
        assert_eq!(results.len(), 1);
        let error = results[0].as_ref().unwrap_err();
        assert_eq!((error.number, error.field.as_str()), (2, "line"));
        assert!(error.reason.contains("65536"), "{}", error.reason);
        assert!(produced.get() < 256 * 1024, "read {} bytes", produced.get());
    }

    #[test]
    fn a_record_of_endless_quoted_line_breaks_is_refused() {
        let mut options = options();
        options.max_line_bytes = 100;
        let text = format!(
            "{HEADER}B,2026-11-02,,1.00,EUR,,\"{}\"\n",
            "a\n".repeat(200)
        );
        let (results, stopped) = read_all(&text, options);
        assert!(stopped);
        let error = results.last().unwrap().as_ref().unwrap_err();
        assert_eq!((error.number, error.field.as_str()), (2, "row"));
    }

    #[test]
    fn a_record_just_under_the_budget_is_accepted() {
        let mut options = options();
        options.max_line_bytes = 100;
        let rows = format!(
            "booking_date,amount,currency,description\n\
             2026-11-02,1.00,EUR,\"{}\"\n2026-11-03,2.00,EUR,\"{}\"\n",
            "a\n".repeat(30),
            "b".repeat(70)
        );
        let (results, stopped) = read_all(&rows, options);
        assert!(!stopped, "{results:?}");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
}
