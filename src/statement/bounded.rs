//! Bounded views of the caller's input: no line, record or XML event may cost more memory than
//! `max_line_bytes`, however long it is in the file.
//!
//! A 10 MB line is never buffered whole: each view reads through `fill_buf`/`consume` and either
//! skips the excess up to the next newline ([`LineSource`], for JSON lines and MT940) or refuses
//! to read further ([`CsvInput`], [`XmlInput`]) so that the parser on top fails cleanly with an
//! I/O error that the format module turns into a fatal [`super::LineError`].

use std::io::{self, BufRead, Read};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Retries `fill_buf` when interrupted, as `BufRead`'s own helpers do.
fn fill<R: BufRead>(input: &mut R) -> io::Result<&[u8]> {
    // The buffer is asked for once more after the loop because today's borrow checker refuses
    // to return the loop's borrow; the second call only returns what is already buffered.
    loop {
        match input.fill_buf() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
            Ok(_) => break,
        }
    }
    input.fill_buf()
}

/// Drops a UTF-8 byte order mark at the very start of the input: spreadsheets write one.
fn skip_bom<R: BufRead>(input: &mut R) -> io::Result<()> {
    let available = fill(input)?;
    if available.starts_with(UTF8_BOM) {
        input.consume(UTF8_BOM.len());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// One physical line as [`LineSource`] hands it out.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Physical<'b> {
    /// The line without its `\n` (and without a `\r` before it).
    Text(&'b [u8]),
    /// The line had more than `max_line_bytes` bytes; it was skipped up to its newline.
    TooLong,
}

/// Physical lines of at most `max` bytes each, numbered from 1, with `\n` or `\r\n` endings.
pub(super) struct LineSource<R> {
    input: R,
    max: usize,
    line: Vec<u8>,
    number: u64,
    started: bool,
}

impl<R: BufRead> LineSource<R> {
    pub(super) fn new(input: R, max: usize) -> LineSource<R> {
        LineSource {
            input,
            max,
            line: Vec::new(),
            number: 0,
            started: false,
        }
    }

    /// The next line and its number, or `None` at the end of the input.
    pub(super) fn next_line(&mut self) -> io::Result<Option<(u64, Physical<'_>)>> {
        if !self.started {
            self.started = true;
            skip_bom(&mut self.input)?;
        }
        self.line.clear();
        let mut too_long = false;
        let mut seen_any = false;
        loop {
            let available = fill(&mut self.input)?;
            if available.is_empty() {
                break;
            }
            seen_any = true;
            let (taken, ends_line) = match available.iter().position(|&b| b == b'\n') {
                Some(end) => (end, true),
                None => (available.len(), false),
            };
            // Keep at most `max` bytes (and a `\r` before the newline); the rest of an
            // over-long line is consumed unseen.
            if !too_long && self.line.len() + taken <= self.max.saturating_add(1) {
                self.line.extend_from_slice(&available[..taken]);
            } else {
                too_long = true;
                self.line.clear();
            }
            self.input.consume(taken + usize::from(ends_line));
            if ends_line {
                break;
            }
        }
        if !seen_any {
            return Ok(None);
        }
        self.number += 1;
        let text = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
        if too_long || text.len() > self.max {
            return Ok(Some((self.number, Physical::TooLong)));
        }
        Ok(Some((self.number, Physical::Text(text))))
    }

    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        self.line.capacity()
    }
}

// ---------------------------------------------------------------------------------------------

/// Which limit [`CsvInput`] hit, and on which physical line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Overflow {
    Line(u64),
    Record(u64),
}

/// The CSV crate's input: never hands out bytes past a newline in one `read`, so its record
/// buffer holds at most the current record, and fails once a physical line or a record (whose
/// quoted fields may span lines) exceeds `max` bytes.
///
/// It also turns `\r\n` into `\n`: the CSV crate ends a record at the `\r` and counts the
/// `\n` into the next record's position, which would number every CRLF row one line too low.
pub(super) struct CsvInput<R> {
    input: R,
    budget: CsvBudget,
    /// A `\r` ended the last chunk: it is dropped if a `\n` follows.
    pending_cr: bool,
    started: bool,
}

/// What [`CsvInput`] handed out so far, against its limits.
struct CsvBudget {
    max: usize,
    /// 1-based number of the physical line being read.
    line: u64,
    line_bytes: usize,
    /// Where the record being read starts, and how many bytes it has so far.
    record_line: u64,
    record_bytes: usize,
    overflow: Option<Overflow>,
}

impl CsvBudget {
    fn refuse(&mut self, overflow: Overflow) -> io::Error {
        self.overflow = Some(overflow);
        io::Error::other("statement line longer than max_line_bytes")
    }

    /// Copies `content` (and a `\n` when `ends_line`) to `out`, within the limits.
    fn deliver(&mut self, out: &mut [u8], content: &[u8], ends_line: bool) -> io::Result<usize> {
        if self.line_bytes + content.len() > self.max {
            return Err(self.refuse(Overflow::Line(self.line)));
        }
        let count = content.len() + usize::from(ends_line);
        // The record budget also counts line ends: a quoted field of a million empty lines is
        // as expensive as one long line.
        if self.record_bytes + count > self.max.saturating_add(2) {
            return Err(self.refuse(Overflow::Record(self.record_line)));
        }
        out[..content.len()].copy_from_slice(content);
        if ends_line {
            out[content.len()] = b'\n';
            self.line += 1;
            self.line_bytes = 0;
        } else {
            self.line_bytes += content.len();
        }
        self.record_bytes += count;
        Ok(count)
    }
}

impl<R: BufRead> CsvInput<R> {
    pub(super) fn new(input: R, max: usize) -> CsvInput<R> {
        let budget = CsvBudget {
            max,
            line: 1,
            line_bytes: 0,
            record_line: 1,
            record_bytes: 0,
            overflow: None,
        };
        CsvInput {
            input,
            budget,
            pending_cr: false,
            started: false,
        }
    }

    /// The limit hit, if any: the CSV reader then failed with an I/O error.
    pub(super) fn overflow(&self) -> Option<Overflow> {
        self.budget.overflow
    }

    /// A record was read completely: the next one starts with a full budget.
    pub(super) fn record_done(&mut self) {
        self.budget.record_line = self.budget.line;
        self.budget.record_bytes = 0;
    }

    /// One chunk of at most `out.len()` bytes, ending at the first newline; `Some(0)` at the
    /// end of the input, `None` when only a held-back `\r` was read.
    fn read_chunk(&mut self, out: &mut [u8]) -> io::Result<Option<usize>> {
        let available = fill(&mut self.input)?;
        if std::mem::take(&mut self.pending_cr) && available.first() != Some(&b'\n') {
            // A lone `\r` is data (or the CSV crate's own line end): pass it on.
            return self.budget.deliver(out, b"\r", false).map(Some);
        }
        let window = &available[..available.len().min(out.len())];
        let Some(&last) = window.last() else {
            return Ok(Some(0));
        };
        if let Some(end) = window.iter().position(|&b| b == b'\n') {
            let content = window[..end].strip_suffix(b"\r").unwrap_or(&window[..end]);
            let count = self.budget.deliver(out, content, true)?;
            self.input.consume(end + 1);
            return Ok(Some(count));
        }
        let held_back = last == b'\r';
        let content = &window[..window.len() - usize::from(held_back)];
        let count = self.budget.deliver(out, content, false)?;
        let taken = window.len();
        self.input.consume(taken);
        self.pending_cr = held_back;
        // Only a `\r` was there: nothing to hand out yet, and 0 would mean the end.
        Ok((count > 0).then_some(count))
    }
}

impl<R: BufRead> Read for CsvInput<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(overflow) = self.budget.overflow {
            return Err(self.budget.refuse(overflow));
        }
        if out.is_empty() {
            return Ok(0);
        }
        if !self.started {
            self.started = true;
            skip_bom(&mut self.input)?;
        }
        loop {
            if let Some(count) = self.read_chunk(out)? {
                return Ok(count);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// The XML reader's input: fails once more than `max` bytes were consumed since the last
/// [`XmlInput::mark`], which the camt reader calls after every event, so one text, tag, comment
/// or CDATA section cannot grow the event buffer beyond `max` (plus one `fill_buf` chunk).
pub(super) struct XmlInput<R> {
    input: R,
    max: usize,
    consumed: usize,
    overflowed: bool,
}

impl<R: BufRead> XmlInput<R> {
    pub(super) fn new(input: R, max: usize) -> XmlInput<R> {
        XmlInput {
            input,
            max,
            consumed: 0,
            overflowed: false,
        }
    }

    /// An event ended: the next one starts with a full budget.
    pub(super) fn mark(&mut self) {
        self.consumed = 0;
    }

    pub(super) fn overflowed(&self) -> bool {
        self.overflowed
    }
}

impl<R: BufRead> Read for XmlInput<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(out.len());
        out[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl<R: BufRead> BufRead for XmlInput<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.consumed > self.max {
            self.overflowed = true;
            return Err(io::Error::other(
                "XML text or tag longer than max_line_bytes",
            ));
        }
        // Offer no more than the remaining budget (+1, to detect the excess), so the reader's
        // buffer never grows past it.
        let budget = (self.max - self.consumed).saturating_add(1);
        let available = self.input.fill_buf()?;
        Ok(&available[..available.len().min(budget)])
    }

    fn consume(&mut self, amount: usize) {
        self.consumed = self.consumed.saturating_add(amount);
        self.input.consume(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &[u8], max: usize) -> Vec<(u64, Option<String>)> {
        let mut source = LineSource::new(input, max);
        let mut lines = Vec::new();
        while let Some((number, line)) = source.next_line().unwrap() {
            let text = match line {
                Physical::Text(bytes) => Some(String::from_utf8(bytes.to_vec()).unwrap()),
                Physical::TooLong => None,
            };
            lines.push((number, text));
        }
        lines
    }

    #[test]
    fn lines_are_numbered_and_lose_their_line_ends() {
        let lines = lines_of(b"\xEF\xBB\xBFa\r\n\nbb\nlast", 10);
        assert_eq!(
            lines,
            vec![
                (1, Some("a".into())),
                (2, Some(String::new())),
                (3, Some("bb".into())),
                (4, Some("last".into()))
            ]
        );
        assert!(lines_of(b"", 10).is_empty());
        assert_eq!(lines_of(b"x\n", 10), vec![(1, Some("x".into()))]);
    }

    #[test]
    fn an_over_long_line_is_skipped_to_its_newline_and_named() {
        let lines = lines_of(b"ok\n0123456789A\nnext\n0123456789\r\n0123456789A\r", 10);
        assert_eq!(
            lines,
            vec![
                (1, Some("ok".into())),
                (2, None),
                (3, Some("next".into())),
                (4, Some("0123456789".into())),
                (5, None)
            ]
        );
    }

    #[test]
    fn csv_input_stops_at_newlines_and_refuses_long_lines() {
        let mut input = CsvInput::new(&b"ab\ncdefgh\n"[..], 4);
        let mut out = [0u8; 64];
        assert_eq!(input.read(&mut out).unwrap(), 3);
        input.record_done();
        assert!(input.read(&mut out).is_err());
        assert_eq!(input.overflow(), Some(Overflow::Line(2)));
    }

    #[test]
    fn csv_input_turns_crlf_into_lf_even_across_chunks() {
        let text = b"a\r\nb\rc\r\n\r";
        // A one-byte buffer makes every `\r` end a chunk.
        let mut input = CsvInput::new(io::BufReader::with_capacity(1, &text[..]), 100);
        let mut delivered = Vec::new();
        input.read_to_end(&mut delivered).unwrap();
        assert_eq!(delivered, b"a\nb\rc\n\r");
        let mut input = CsvInput::new(&text[..], 100);
        let mut delivered = Vec::new();
        input.read_to_end(&mut delivered).unwrap();
        assert_eq!(delivered, b"a\nb\rc\n\r");
    }

    #[test]
    fn xml_input_refuses_an_event_beyond_its_budget() {
        let text = [b'x'; 100];
        let mut input = XmlInput::new(&text[..], 10);
        let first = input.fill_buf().unwrap().len();
        assert_eq!(first, 11);
        input.consume(first);
        assert!(input.fill_buf().is_err());
        assert!(input.overflowed());
        input.mark();
        assert!(input.fill_buf().is_ok(), "a new event has a new budget");
    }
}
