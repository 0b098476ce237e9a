//! Turning a writer's outcome into a response.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::dto::{AccountBody, TransferBody};
use super::problem::ApiError;
use crate::domain::LedgerName;
use crate::writer::{Outcome, Snapshot};

/// Whether the request creates something (201 when it did, 200 for a natural-key retry) or acts
/// on something that exists (200).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    Create,
    Act,
}

pub fn respond(
    ledger: &LedgerName,
    outcome: Outcome,
    intent: Intent,
) -> Result<HttpResponse, ApiError> {
    let (snapshot, created) = match outcome {
        Outcome::Rejected(rejection) => return Err(rejection.into()),
        Outcome::Done {
            snapshot, created, ..
        } => (snapshot, created),
    };
    let status = if intent == Intent::Create && created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = HttpResponse::build(status);
    match snapshot {
        Snapshot::Account(account) => {
            if status == StatusCode::CREATED {
                response.insert_header((
                    "Location",
                    format!("/v1/ledgers/{ledger}/accounts/{}", account.id),
                ));
            }
            Ok(response.json(AccountBody::new(ledger, &account)))
        }
        Snapshot::Transfer(transfer) => {
            if status == StatusCode::CREATED {
                response.insert_header((
                    "Location",
                    format!("/v1/ledgers/{ledger}/transfers/{}", transfer.id),
                ));
            }
            Ok(response.json(TransferBody::new(ledger, &transfer)))
        }
        Snapshot::Transfers(transfers) => Ok(response.json(
            transfers
                .iter()
                .map(|transfer| TransferBody::new(ledger, transfer))
                .collect::<Vec<_>>(),
        )),
        Snapshot::Nothing => Err(ApiError::internal()),
    }
}

/// Parses an id in a path, or `400 invalid_id`.
pub fn path_uuid(name: &str, text: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(text).map_err(|_| {
        ApiError::bad_request("invalid_id", format!("{name} must be a UUID, got {text:?}"))
    })
}
