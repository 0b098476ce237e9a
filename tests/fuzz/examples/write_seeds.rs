//! Writes the seed corpora of the fuzz targets under `tests/fuzz/corpus/<target>/`, from the
//! repository's fixtures (docs/examples/statement.*), the decimal strings of the tests, and a
//! valid signed export built by the library (`ledger_fuzz::built_exports`). The real exports
//! of the service (`corpus/verify_export/seed-real-*.ndjson`, `corpus/export_lines/seed-real-*`)
//! are not written here: tests/fuzz/README.md says how they were made.
//!
//! Run from the repository's top level:
//! `CARGO_TARGET_DIR=/work/fuzz-target cargo +nightly run --manifest-path tests/fuzz/Cargo.toml
//! --example write_seeds` Files are named `seed-` and the first 10 bytes of their content's SHA-256
//! (hex), so re-running rewrites the same files.

use std::fs;
use std::path::{Path, PathBuf};

use ledger::audit::checkpoint::sign_checkpoint_at;
use ledger::audit::merkle::{leaf_hash, InMemoryMerkleTree};
use ledger::audit::Hash32;
use ledger_fuzz::{at, built_exports, built_journal, encoded, file_of, signing_key, ORIGIN};

fn main() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, bytes: &[u8]| {
        let dir: PathBuf = corpus.join(target);
        fs::create_dir_all(&dir).expect("corpus folder");
        let name = format!("seed-{}", hex(&Hash32::sha256(bytes).0[..10]));
        fs::write(dir.join(name), bytes).expect("seed written");
    };
    let prefixed = |prefix: &[u8], rest: &[u8]| [prefix, rest].concat();

    // amount_parsing: byte 0 is the scale.
    for (scale, text) in [
        (2, "10.50"),
        (2, "10.5"),
        (3, "7"),
        (2, "0.10"),
        (2, "1.005"),
        (0, "1.5"),
        (2, "1.000"),
        (2, "01.00"),
        (2, "0"),
        (2, "0.00"),
        (2, "-1"),
        (2, "+1"),
        (2, "1e3"),
        (2, "1."),
        (2, ".5"),
        (2, " 1"),
        (2, "1,00"),
        (2, "0x10"),
        (2, "NaN"),
        (2, "1.2.3"),
        (18, "0.000000000000000001"),
        (0, "9999999999999999999999999999"),
        (0, "99999999999999999999999999999"),
        (2, "999999999999999999999999999"),
        (2, "1.0000000000000000000000000000000000000000"),
        (2, "0.0000000000000000000001"),
        (2, "99999999999999999999999999.99"),
        (4, "12.3456"),
    ] {
        write("amount_parsing", &prefixed(&[scale], text.as_bytes()));
    }

    // request_bodies: byte 0 is the DTO (mod 10), Content-Type application/json.
    let account = "0190e7a4-0000-7000-8000-000000000001";
    let other = "0190e7a4-0000-7000-8000-000000000002";
    let transfer = format!(
        concat!(
            r#"{{"debit_account_id": "{account}", "credit_account_id": "{other}", "#,
            r#""amount": "25.00", "currency": "EUR", "reference": "top-up-1", "#,
            r#""code": "card_settlement", "description": "d", "#,
            r#""metadata": {{"k": [1, 2.5, null, true]}}}}"#
        ),
        account = account,
        other = other
    );
    let pending = format!(
        concat!(
            r#"{{"id": "{other}", "debit_account_id": "{account}", "#,
            r#""credit_account_id": "{other}", "amount": "20.000", "currency": "GOLD", "#,
            r#""pending": true, "timeout_seconds": 3600}}"#
        ),
        account = account,
        other = other
    );
    for (dto, body) in [
        (0, transfer.clone()),
        (0, pending.clone()),
        (0, r#"{"amount":"1.00","amount":"1000.00"}"#.to_owned()),
        (
            1,
            format!(r#"{{"atomic": true, "transfers": [{transfer}, {pending}]}}"#),
        ),
        (2, r#"{"amount": "15.00"}"#.to_owned()),
        (2, String::new()),
        (
            3,
            format!(r#"{{"id": "{account}", "amount": "5.00", "reference": "refund"}}"#),
        ),
        (4, "{}".to_owned()),
        (
            5,
            concat!(
                r#"{"code": "customer:alice:wallet", "currency": "EUR", "#,
                r#""normal_side": "credit", "debits_must_not_exceed_credits": true}"#
            )
            .to_owned(),
        ),
        (
            5,
            r#"{"code": "dust", "currency": "DUST", "normal_side": "debit", "metadata": null}"#
                .to_owned(),
        ),
        (
            6,
            concat!(
                r#"{"name": "main", "assets": [{"code": "USDC", "scale": 6}], "#,
                r#""metadata": {"a": "b"}}"#
            )
            .to_owned(),
        ),
        (
            7,
            r#"{"name": "payments", "role": "writer", "ledgers": ["main"]}"#.to_owned(),
        ),
        (
            8,
            format!(r#"{{"statement_id": "{account}", "date_window_days": 3}}"#),
        ),
        (
            9,
            format!(
                concat!(
                    r#"{{"action": "adjust", "counter_account_id": "{other}", "#,
                    r#""amount": "-12.50", "note": "fee"}}"#
                ),
                other = other
            ),
        ),
        (
            9,
            format!(r#"{{"action": "match", "transfer_id": "{other}"}}"#),
        ),
    ] {
        write("request_bodies", &prefixed(&[dto], body.as_bytes()));
    }

    // export_lines, verify_export: the built exports (full and partial), line by line and whole.
    for lines in built_exports() {
        let lines = encoded(lines);
        for line in &lines {
            write("export_lines", line);
        }
        write("verify_export", &file_of(&lines));
    }

    // verify_export_mutated: base (0 full, 1 partial, 2 real), mode, line index, payload.
    for seed in [
        &[0u8, 0, 3, 0, b'{', b'}'][..],
        &[1, 1, 5, 0, b'x'],
        &[0, 2, 7, 0],
        &[1, 3, 9, 0, 40, 0, 1, 44, 0, 2],
        &[0, 4, 0, 0, 0, 16, 0, 0],
        &[0, 5, 8, 0, 1, 3, 1, 4, 6, 1, 1, 1, 1, 1, 1, 1, 1, 20, 9, 9],
        &[
            1, 5, 12, 0, 1, 0, 1, 2, 7, 255, 255, 255, 255, 255, 255, 255, 255, 19, 2,
        ],
        &[0, 6, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        &[
            1, 6, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0, 0, 0, 1, 3,
        ],
        &[2, 0, 25, 0, b'{', b'}'],
        &[2, 5, 21, 0, 1, 1, 1, 1, 1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1],
        &[2, 5, 25, 0, 1, 2, 1, 9, 9],
    ] {
        write("verify_export_mutated", seed);
    }

    // statement_parsers: byte 0 the format (EUR), byte 1 max_line_bytes (255: 1,052 bytes).
    for (format, file) in [
        (0u8, "statement.csv"),
        (1, "statement.jsonl"),
        (2, "statement.camt053.xml"),
        (2, "statement.camt053v02.xml"),
        (3, "statement.mt940"),
    ] {
        let bytes = fs::read(top.join("docs/examples").join(file)).expect("an example statement");
        write("statement_parsers", &prefixed(&[format, 255], &bytes));
        write("statement_parsers", &prefixed(&[format, 8], &bytes));
    }

    // proof_verifiers: mode byte, then the mode's input.
    let journal = built_journal();
    let tree = InMemoryMerkleTree::from_leaf_hashes(
        journal.iter().map(|event| leaf_hash(&event.hash)).collect(),
    );
    let note = sign_checkpoint_at(ORIGIN, tree.size(), &tree.root(), at(73), &signing_key())
        .expect("signs");
    for seed in [
        prefixed(&[0, 0, 7, 0, 8], &[1; 64]),
        prefixed(&[1, 200, 0, 7, 5, 0, 0, 0, 0, 0, 0, 0, 3], &[0; 8]),
        prefixed(
            &[
                1, 7, 0, 1, 6, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 2, 2, 1, 0, 0, 9,
            ],
            &[],
        ),
        prefixed(
            &[
                2, 100, 0, 3, 90, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0,
            ],
            &[],
        ),
        prefixed(
            &[
                2, 16, 0, 3, 16, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0,
            ],
            &[],
        ),
        prefixed(&[3], note.as_bytes()),
        prefixed(
            &[3],
            note[..note.find("\n\n").expect("a note") + 1].as_bytes(),
        ),
        prefixed(
            &[3],
            b"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ),
        prefixed(&[4, 0, 30, 0, 0], &[0; 40]),
        prefixed(&[4, 1, 9], &[7; 40]),
        prefixed(&[4, 0, 9], b"ledger/main\n1\nAAAA\n"),
    ] {
        write("proof_verifiers", &seed);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
