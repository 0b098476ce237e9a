//! Bank statement readers (`statement::reader`) for each `StatementFormat` (CSV, JSON lines,
//! camt.053, MT940) over arbitrary bytes from a `std::io::Cursor`, with a small
//! `max_line_bytes`: the iterator is drained, then `summary()`, `stopped()` and the balance
//! check the upload runs (`check_balanced` over the sum of the amounts).
//!
//! Properties: nothing panics; the reader terminates (it yields a bounded number of results
//! for its input and, once drained, stays drained).
//!
//! Input: byte 0 chooses the format (bits 0..2) and the account currency (bits 2..4: EUR,
//! JPY, BHD, or DUST at scale 18); byte 1 chooses `max_line_bytes` (32 to 1,052); the rest is
//! the file.
#![no_main]

use std::io::Cursor;

use ledger::domain::Currency;
use ledger::statement::{check_balanced, reader, ParseOptions, StatementFormat};
use ledger_fuzz::dust;
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;

fuzz_target!(|data: &[u8]| {
    let [first, second, file @ ..] = data else {
        return;
    };
    let format = StatementFormat::ALL[usize::from(first & 3)];
    let currency = match (first >> 2) & 3 {
        0 => Currency::iso("EUR"),
        1 => Currency::iso("JPY"),
        2 => Currency::iso("BHD"),
        _ => Some(dust()),
    }
    .expect("a known currency");
    let mut options = ParseOptions::new(currency);
    options.max_line_bytes = 32 + usize::from(*second) * 4;

    let mut statement = reader(format, Box::new(Cursor::new(file)), options);
    // Each result needs some input; far more results than bytes is a reader that runs away.
    let bound = 16 + 4 * file.len();
    let mut results = 0usize;
    let mut sum = Decimal::ZERO;
    for result in statement.by_ref() {
        results += 1;
        assert!(
            results <= bound,
            "{results} results from {} bytes: no end",
            file.len()
        );
        match result {
            Ok(line) => sum = sum.checked_add(line.amount).unwrap_or(sum),
            Err(error) => drop(error.to_string()),
        }
    }
    assert!(statement.next().is_none(), "a drained reader yielded again");
    let _ = statement.stopped();
    let _ = check_balanced(statement.summary(), sum);
});
