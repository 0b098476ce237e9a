//! Request bodies, from client bytes to domain values: `http::context::parse_json_body` (the
//! strict JSON reader that refuses duplicate keys, then the DTO) for every request DTO of the
//! API, then the DTO's conversion into a domain value against a fixed ledger (`main`, custom
//! assets GOLD at scale 3 and DUST at 18), the request's fingerprint (RFC 8785 of the body), and
//! the problem document of any refusal.
//!
//! Properties: nothing panics; the canonical JSON of an accepted body is a fixed point (it
//! reads back to a value with the same canonical form, hence the same fingerprint).
//! `LEDGER_FUZZ_SKIP_FLOAT_DRIFT=1` lifts the second for bodies with fractional numbers, a
//! known finding (see `skip_float_drift`).
//!
//! Input: byte 0 chooses the DTO (mod 10) and the Content-Type (bits 4..6), the rest is the
//! body.
#![no_main]

use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::TestRequest;
use actix_web::{HttpRequest, ResponseError};
use ledger::audit::jcs::canonical_json;
use ledger::domain::money::parse_amount;
use ledger::domain::reconciliation::ResolutionAction;
use ledger::http::context::{fingerprint, parse_json_body};
use ledger::http::dto::{
    partial_amount, CreateLedgerRequest, CreateTransferRequest, EmptyRequest, OpenAccountRequest,
    PostTransferRequest, ReverseTransferRequest, TransferBatchRequest,
};
use ledger::http::keys::CreateApiKeyRequest;
use ledger::http::problem::ApiError;
use ledger::http::reconciliations::{CreateReconciliationRequest, ResolveItemRequest};
use ledger::storage::LedgerRecord;
use ledger_fuzz::ledger_record;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
    None,
];

thread_local! {
    /// One request per Content-Type; an actix `HttpRequest` is not `Send`, so one per thread.
    static REQUESTS: Vec<HttpRequest> = CONTENT_TYPES
        .iter()
        .map(|content_type| {
            let request = TestRequest::post().uri("/v1/ledgers/main/transfers");
            match content_type {
                Some(value) => request.insert_header((CONTENT_TYPE, *value)),
                None => request,
            }
            .to_http_request()
        })
        .collect();
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let content_type = usize::from(first >> 4) % CONTENT_TYPES.len();
    let ledger = ledger_record();
    REQUESTS.with(|requests| {
        let request = &requests[content_type];
        match first % 10 {
            0 => decode::<CreateTransferRequest>(request, body, false, |body| {
                body.into_new_transfer(&ledger, generated_id()).map(drop)
            }),
            1 => decode::<TransferBatchRequest>(request, body, false, |body| {
                for item in body.transfers {
                    item.into_new_transfer(&ledger, generated_id())?;
                }
                Ok(())
            }),
            2 => decode::<PostTransferRequest>(request, body, true, |body| {
                partial_amount(body.amount.as_deref()).map(drop)
            }),
            3 => decode::<ReverseTransferRequest>(request, body, true, |body| {
                body.into_reversal(generated_id()).map(drop)
            }),
            4 => decode::<EmptyRequest>(request, body, true, |_| Ok(())),
            5 => decode::<OpenAccountRequest>(request, body, false, |body| {
                body.into_new_account(&ledger, generated_id()).map(drop)
            }),
            6 => decode::<CreateLedgerRequest>(request, body, false, |body| {
                body.into_new_ledger().map(drop)
            }),
            7 => decode::<CreateApiKeyRequest>(request, body, false, |_| Ok(())),
            8 => decode::<CreateReconciliationRequest>(request, body, false, |_| Ok(())),
            _ => decode::<ResolveItemRequest>(request, body, false, |body| {
                resolve_item(&ledger, body)
            }),
        }
    });
});

fn generated_id() -> Uuid {
    Uuid::from_u128(0x0190_e7a4_0000_7000_8000_0000_0000_00ff)
}

/// What a handler does first with a body: parse it, fingerprint it, convert it; render the
/// problem of any refusal.
fn decode<T: DeserializeOwned>(
    request: &HttpRequest,
    body: &[u8],
    empty_is_object: bool,
    convert: impl FnOnce(T) -> Result<(), ApiError>,
) {
    let (parsed, canonical) = match parse_json_body::<T>(request, body, empty_is_object) {
        Ok(parsed) => parsed,
        Err(error) => return render(&error),
    };
    let bytes = canonical_json(&canonical);
    let reread: Value = serde_json::from_slice(&bytes).unwrap_or_else(|error| {
        panic!(
            "canonical form {:?} does not read back: {error}",
            String::from_utf8_lossy(&bytes)
        )
    });
    if !(skip_float_drift() && has_fraction(&canonical)) {
        assert_eq!(
            String::from_utf8_lossy(&canonical_json(&reread)),
            String::from_utf8_lossy(&bytes),
            "the canonical form of an accepted body is not a fixed point"
        );
        assert_eq!(
            fingerprint("POST", request.path(), &reread),
            fingerprint("POST", request.path(), &canonical)
        );
    }
    if let Err(error) = convert(parsed) {
        render(&error);
    }
}

/// `LEDGER_FUZZ_SKIP_FLOAT_DRIFT=1` skips the fixed-point check for bodies holding a number
/// with a fraction or an exponent: the known finding of
/// `regressions/request_bodies/float-canonical-form-not-a-fixed-point` (serde_json without its
/// `float_roundtrip` feature reads some decimals to a neighbouring double), so that a run can
/// look for other faults until it is fixed. Off by default.
fn skip_float_drift() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("LEDGER_FUZZ_SKIP_FLOAT_DRIFT").is_some_and(|v| v == "1"))
}

fn has_fraction(value: &Value) -> bool {
    match value {
        Value::Number(number) => number.is_f64(),
        Value::Array(items) => items.iter().any(has_fraction),
        Value::Object(object) => object.values().any(has_fraction),
        _ => false,
    }
}

/// The problem+json document and response of a refusal.
fn render(error: &ApiError) {
    let _ = error.body();
    let _ = error.to_string();
    let _ = error.error_response();
}

/// The parts of `resolve` that need no database: the action and the signed amount at a scale.
fn resolve_item(ledger: &LedgerRecord, body: ResolveItemRequest) -> Result<(), ApiError> {
    let _ = ResolutionAction::parse(&body.action);
    if let Some(text) = &body.amount {
        let digits = text.strip_prefix('-').unwrap_or(text);
        for asset in &ledger.assets {
            let _ = parse_amount(digits, asset.scale());
        }
        let _ = parse_amount(digits, 2);
    }
    Ok(())
}
