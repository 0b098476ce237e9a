//! Every input a fuzzer found a fault with (`tests/fuzz/regressions/<target>/`) replayed through
//! the property it broke, in the ordinary test command: a fixed fault stays fixed without
//! anyone running `cargo fuzz`. (The fuzz targets themselves need a nightly toolchain; this
//! test does not.)

use std::path::{Path, PathBuf};

use actix_web::test::TestRequest;
use ledger::audit::jcs::canonical_json;
use ledger::http::context::{fingerprint, parse_json_body};
use serde_json::Value;

fn regressions_of(target: &str) -> Vec<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/regressions")
        .join(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    inputs.sort();
    inputs
}

/// `request_bodies`: byte 0 picks the DTO and the Content-Type, the rest is the body. The
/// property: the canonical form of a body the service reads is a fixed point, so a replayed
/// request has the fingerprint of the original.
#[test]
fn every_request_body_regression_reads_back_to_the_same_canonical_form_and_fingerprint() {
    let inputs = regressions_of("request_bodies");
    assert!(
        !inputs.is_empty(),
        "the float finding is kept as a regression"
    );
    let request = TestRequest::post()
        .uri("/v1/ledgers/main/transfers")
        .insert_header(("content-type", "application/json"))
        .to_http_request();
    let mut replayed = 0;
    for input in inputs {
        let data = std::fs::read(&input).expect("a regression input");
        let body = &data[1..];
        let Ok((_, canonical)) = parse_json_body::<Value>(&request, body, false) else {
            continue; // refused bodies have no canonical form to keep
        };
        let bytes = canonical_json(&canonical);
        let reread: Value = serde_json::from_slice(&bytes).expect("the canonical form reads back");
        assert_eq!(
            String::from_utf8_lossy(&canonical_json(&reread)),
            String::from_utf8_lossy(&bytes),
            "{}: the canonical form is not a fixed point",
            input.display()
        );
        assert_eq!(
            fingerprint("POST", request.path(), &reread),
            fingerprint("POST", request.path(), &canonical),
            "{}: a replay would not match its original",
            input.display()
        );
        replayed += 1;
    }
    assert!(
        replayed > 0,
        "at least the float finding is a body the service reads"
    );
}
