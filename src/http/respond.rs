//! Turning outcomes into responses. Every write response is first rendered to a
//! [`StoredResponse`]: the same bytes are sent, recorded under the request's Idempotency-Key,
//! and replayed to its retries.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

use super::codes;
use super::context::REPLAYED_HEADER;
use super::dto::{AccountBody, BatchItemBody, TransferBatchBody, TransferBody};
use super::problem::ApiError;
use crate::domain::LedgerName;
use crate::storage::idempotency::StoredResponse;
use crate::writer::{Answer, Outcome, StateAfter};

/// Whether the request creates something (201 when it did, 200 for a natural-key retry) or acts
/// on something that exists (200).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    Create,
    Act,
}

pub fn json_response(
    status: StatusCode,
    location: Option<String>,
    body: &impl Serialize,
) -> StoredResponse {
    StoredResponse {
        status: status.as_u16(),
        content_type: "application/json".into(),
        location,
        body: serde_json::to_vec(body).expect("response bodies serialise"),
    }
}

/// Renders a writer's outcome. `request_id` goes into problem documents (the writer's thread
/// does not know the request).
pub fn render(
    ledger: &LedgerName,
    outcome: &Outcome,
    intent: Intent,
    request_id: &str,
) -> StoredResponse {
    let (state, created) = match outcome {
        Outcome::Rejected(rejection) => {
            return ApiError::from(rejection.clone()).to_stored(Some(request_id))
        }
        Outcome::Done { state, created, .. } => (state, *created),
    };
    let status = if intent == Intent::Create && created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = |kind: &str, id: &dyn std::fmt::Display| {
        (status == StatusCode::CREATED).then(|| format!("/v1/ledgers/{ledger}/{kind}/{id}"))
    };
    match state {
        StateAfter::Account(account) => json_response(
            status,
            location("accounts", &account.id),
            &AccountBody::new(ledger, account),
        ),
        StateAfter::Transfer(transfer) => json_response(
            status,
            location("transfers", &transfer.id),
            &TransferBody::new(ledger, transfer),
        ),
        StateAfter::Transfers(transfers) => {
            let bodies: Vec<TransferBody> = transfers
                .iter()
                .map(|transfer| TransferBody::new(ledger, transfer))
                .collect();
            json_response(status, None, &bodies)
        }
        StateAfter::Nothing => ApiError::internal().to_stored(Some(request_id)),
    }
}

/// Renders the outcomes of a batch request: one outcome for an atomic batch (all its transfers,
/// or the refusal of one item, with its `index`), one per item otherwise.
pub fn render_batch(
    ledger: &LedgerName,
    atomic: bool,
    outcomes: &[Outcome],
    request_id: &str,
) -> StoredResponse {
    let item = |index: usize, outcome: &Outcome| -> BatchItemBody {
        let stored = render(ledger, outcome, Intent::Create, request_id);
        match outcome {
            Outcome::Done {
                state: StateAfter::Transfer(transfer),
                ..
            } => BatchItemBody {
                index,
                status: stored.status,
                transfer: Some(TransferBody::new(ledger, transfer)),
                error: None,
            },
            _ => BatchItemBody {
                index,
                status: stored.status,
                transfer: None,
                error: serde_json::from_slice(&stored.body).ok(),
            },
        }
    };
    if atomic {
        let outcome = outcomes.first().expect("an atomic batch is one command");
        return match outcome {
            Outcome::Done {
                state: StateAfter::Transfers(transfers),
                created,
                ..
            } => {
                let status = if *created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                let results = transfers
                    .iter()
                    .enumerate()
                    .map(|(index, transfer)| BatchItemBody {
                        index,
                        status: status.as_u16(),
                        transfer: Some(TransferBody::new(ledger, transfer)),
                        error: None,
                    })
                    .collect();
                json_response(status, None, &TransferBatchBody { atomic, results })
            }
            other => render(ledger, other, Intent::Create, request_id),
        };
    }
    let results = outcomes
        .iter()
        .enumerate()
        .map(|(index, outcome)| item(index, outcome))
        .collect();
    json_response(StatusCode::OK, None, &TransferBatchBody { atomic, results })
}

/// The HTTP response for a stored response; `replayed` adds `Idempotent-Replayed: true`.
pub fn send(stored: &StoredResponse, replayed: bool) -> HttpResponse {
    let mut response = HttpResponse::build(
        StatusCode::from_u16(stored.status).unwrap_or(codes::INTERNAL_ERROR.status),
    );
    response.content_type(stored.content_type.as_str());
    if let Some(location) = &stored.location {
        response.insert_header(("Location", location.as_str()));
    }
    if replayed {
        response.insert_header((REPLAYED_HEADER, "true"));
    }
    response.body(stored.body.clone())
}

/// The response to a writer's answer.
pub fn answer(
    answer: Answer,
    render: impl Fn(&[Outcome]) -> StoredResponse,
) -> Result<HttpResponse, ApiError> {
    match answer {
        Answer::Decided(outcomes) => Ok(send(&render(&outcomes), false)),
        Answer::Recorded(stored) => Ok(send(&stored, false)),
        Answer::Replayed(stored) => Ok(send(&stored, true)),
        Answer::KeyReused => Err(key_reused()),
    }
}

pub fn key_reused() -> ApiError {
    ApiError::new(
        codes::IDEMPOTENCY_KEY_REUSED,
        "this Idempotency-Key was used for a different request",
    )
}

/// Parses an id in a path, or `400 invalid_id`.
pub fn path_uuid(name: &str, text: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(text).map_err(|_| {
        ApiError::new(
            codes::INVALID_ID,
            format!("{name} must be a UUID, got {text:?}"),
        )
    })
}
