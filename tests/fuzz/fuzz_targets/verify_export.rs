//! `ledger-verify` over whole exports: `audit::verify::verify_export` on arbitrary bytes split
//! into lines by `split_lines`, against the fixed Ed25519 key that signs the seed exports
//! (`tests/fuzz/corpus/verify_export`, written by `examples/write_seeds.rs`), and the fault's
//! report. Property: nothing panics, every input ends in a `Report` or an `ExportFault`.
//!
//! Input: the export file.
#![no_main]

use ledger::audit::verify::{split_lines, verify_export};
use ledger_fuzz::public_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let result = verify_export(split_lines(data), &public_key(), &mut |_| {});
    match result {
        Ok(report) => {
            let _ = report.to_json();
        }
        Err(fault) => {
            let _ = fault.code();
            let _ = fault.to_json();
            let _ = fault.to_string();
        }
    }
});
