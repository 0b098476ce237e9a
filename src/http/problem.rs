//! Every error is `application/problem+json` (RFC 9457) with a stable `code`, a human `detail`
//! and the request id (§8). Each code's status is in the catalogue (`http::codes`), once: an
//! `ApiError` is made from a catalogue entry, and a refusal of the engine finds its entry by
//! its code.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::codes::{self, ErrorCode};
use super::openapi::{TransitionActionSchema, TransitionStateSchema};
use super::request_id::current_request_id;
use crate::domain::Rejection;
use crate::storage::StorageError;
use crate::writer::WriteError;

/// An error the API answers with.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Extension members (e.g. `from` and `to` of an invalid transition).
    pub extensions: Map<String, Value>,
    /// Seconds the client should wait before retrying (`Retry-After`).
    pub retry_after_seconds: Option<u64>,
    /// The methods a route takes, for a `405` (`Allow`).
    pub allow: Option<String>,
}

/// The problem document (RFC 9457) every error answers with: `type`, `title`, `status`,
/// `code`, `detail` and `request_id` always; an extension member only with the codes its
/// description names. Clients branch on `code`. (The schema of what `ApiError::body` writes: the
/// extension members are those `ApiError::with` and `add_rejection_details` add.)
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// `urn:ledger:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(
        pattern = "^urn:ledger:problem:[a-z0-9_]+$",
        example = "urn:ledger:problem:insufficient_funds"
    )]
    pub problem_type: String,
    /// The reason phrase of `status`.
    #[schema(example = "Unprocessable Entity")]
    pub title: String,
    /// The response's HTTP status.
    #[schema(minimum = 400, maximum = 599, example = 422)]
    pub status: u16,
    /// Stable, snake_case: what clients branch on.
    #[schema(pattern = "^[a-z0-9_]+$", example = "insufficient_funds")]
    pub code: String,
    /// For people; may change between versions.
    pub detail: String,
    /// The request's `X-Request-Id`.
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// `invalid_field`, `invalid_amount`: the request field at fault (e.g. `amount`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub field: Option<String>,
    /// A refusal of one item of a batch: the item's position in `transfers`, from 0 (`detail`
    /// starts with `item <index>:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u32, required = false)]
    pub index: Option<u32>,
    /// `invalid_state_transition`: the state machine, `account` or `transfer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = ProblemEntity, required = false)]
    pub entity: Option<String>,
    /// `invalid_state_transition`: the current state (an account status or a transfer state).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = TransitionStateSchema, required = false, example = "voided")]
    pub from: Option<String>,
    /// `invalid_state_transition`: the state the refused action leads to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = TransitionStateSchema, required = false, example = "posted")]
    pub to: Option<String>,
    /// `invalid_state_transition`: the refused action.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = TransitionActionSchema, required = false, example = "post")]
    pub action: Option<String>,
    /// `account_not_found`, `account_frozen`, `account_closed`, `insufficient_funds`,
    /// `credits_exceed_debits`, `balance_overflow`, `account_not_empty`,
    /// `account_exists_with_different_fields`, `currency_mismatch`: the account at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = uuid::Uuid, required = false)]
    pub account_id: Option<uuid::Uuid>,
    /// `transfer_not_found`, `transfer_exists_with_different_fields`: the transfer at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = uuid::Uuid, required = false)]
    pub transfer_id: Option<uuid::Uuid>,
    /// `statement_exists`: the statement these bytes are (of another account).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = uuid::Uuid, required = false)]
    pub statement_id: Option<uuid::Uuid>,
    /// `unknown_checkpoint`: the tree size of the note's body.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64, required = false)]
    pub tree_size: Option<u64>,
    /// `statement_invalid`: every line that could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<StatementLineError>, required = false)]
    pub errors: Option<Vec<StatementLineError>>,
    /// `statement_unbalanced`: opening balance plus the lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false, pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub expected_closing_balance: Option<String>,
    /// `statement_unbalanced`: the closing balance the statement states.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false, pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub closing_balance: Option<String>,
}

/// The state machine an `invalid_state_transition` is about.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ProblemEntity {
    Account,
    Transfer,
}

/// A statement line that could not be read (`statement_invalid`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct StatementLineError {
    /// The line's number in the file, from 1.
    pub line: u64,
    pub field: String,
    pub reason: String,
}

impl ApiError {
    /// An error of the catalogue's `code`, with its status.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status: code.status,
            code: code.code,
            detail: detail.into(),
            extensions: Map::new(),
            retry_after_seconds: None,
            allow: None,
        }
    }

    pub fn invalid_field(field: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError::new(codes::INVALID_FIELD, format!("{field}: {reason}"))
            .with("field", Value::String(field.to_owned()))
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            codes::INTERNAL_ERROR,
            "the service failed; the request id identifies it in the logs",
        )
    }

    /// The same error, naming the item of a batch request it is about.
    pub fn at_batch_index(self, index: usize) -> ApiError {
        let detail = format!("item {index}: {}", self.detail);
        ApiError { detail, ..self }.with("index", Value::from(index))
    }

    pub fn with(mut self, key: &str, value: Value) -> ApiError {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// The problem document, for a request id given explicitly (outside the request's task).
    pub fn to_stored(
        &self,
        request_id: Option<&str>,
    ) -> crate::storage::idempotency::StoredResponse {
        self.count();
        crate::storage::idempotency::StoredResponse {
            status: self.status.as_u16(),
            content_type: "application/problem+json".into(),
            location: None,
            body: self
                .body_for(request_id.map(str::to_owned))
                .to_string()
                .into_bytes(),
        }
    }

    pub fn body(&self) -> Value {
        self.body_for(current_request_id())
    }

    fn body_for(&self, request_id: Option<String>) -> Value {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            Value::String(format!("urn:ledger:problem:{}", self.code)),
        );
        body.insert(
            "title".into(),
            Value::String(self.status.canonical_reason().unwrap_or("Error").to_owned()),
        );
        body.insert("status".into(), Value::from(self.status.as_u16()));
        body.insert("code".into(), Value::String(self.code.to_owned()));
        body.insert("detail".into(), Value::String(self.detail.clone()));
        body.insert(
            "request_id".into(),
            request_id.map_or(Value::Null, Value::String),
        );
        for (key, value) in &self.extensions {
            body.insert(key.clone(), value.clone());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl ApiError {
    /// `ledger_refusals_total{code, status}`: every refusal once, when it is rendered (a replay
    /// sends the recorded bytes and is not counted again). `429 rate_limited` included.
    fn count(&self) {
        let status = self.status.as_u16().to_string();
        metrics::counter!("ledger_refusals_total", "code" => self.code, "status" => status)
            .increment(1);
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.count();
        let mut response = HttpResponse::build(self.status);
        response.content_type("application/problem+json");
        if let Some(seconds) = self.retry_after_seconds {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        if let Some(methods) = &self.allow {
            response.insert_header(("Allow", methods.as_str()));
        }
        response.body(self.body().to_string())
    }
}

/// The catalogue's entry of a rejection, found by its code (a unit test of `http::codes` holds
/// every code of `Rejection::ALL_CODES` to be in the catalogue).
fn catalogued(rejection: &Rejection) -> ErrorCode {
    codes::find(rejection.code()).copied().unwrap_or_else(|| {
        tracing::error!(
            code = rejection.code(),
            "a rejection code missing from the catalogue"
        );
        ErrorCode {
            code: rejection.code(),
            status: codes::REFUSAL_STATUS,
            meaning: "",
        }
    })
}

impl From<Rejection> for ApiError {
    /// The refusal of an item of an atomic batch answers with the item's own status and code,
    /// plus its `index`: a client handles `insufficient_funds` the same way, batch or not.
    fn from(rejection: Rejection) -> ApiError {
        if let Rejection::BatchItemRejected { index, rejection } = rejection {
            return ApiError::from(*rejection).at_batch_index(index);
        }
        let mut error = ApiError::new(catalogued(&rejection), rejection.to_string());
        add_rejection_details(&mut error, &rejection);
        error
    }
}

fn add_rejection_details(error: &mut ApiError, rejection: &Rejection) {
    let text = |value: &dyn std::fmt::Display| Value::String(value.to_string());
    match rejection {
        Rejection::InvalidStateTransition { entity, transition } => {
            error.extensions.insert("entity".into(), text(entity));
            error
                .extensions
                .insert("from".into(), text(&transition.from));
            error.extensions.insert("to".into(), text(&transition.to));
            error
                .extensions
                .insert("action".into(), text(&transition.action));
        }
        Rejection::AccountNotFound(id)
        | Rejection::AccountFrozen(id)
        | Rejection::AccountClosed(id)
        | Rejection::InsufficientFunds(id)
        | Rejection::CreditsExceedDebits(id)
        | Rejection::BalanceOverflow(id)
        | Rejection::AccountNotEmpty(id)
        | Rejection::AccountExistsWithDifferentFields(id) => {
            error.extensions.insert("account_id".into(), text(id));
        }
        Rejection::CurrencyMismatch { account_id, .. } => {
            error
                .extensions
                .insert("account_id".into(), text(account_id));
        }
        Rejection::TransferNotFound(id) | Rejection::TransferExistsWithDifferentFields(id) => {
            error.extensions.insert("transfer_id".into(), text(id));
        }
        _ => {}
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> ApiError {
        tracing::error!(error = %error, "storage error");
        match error {
            ref error if error.is_statement_timeout() => ApiError::new(
                codes::DATABASE_TIMEOUT,
                "the database did not answer within the statement timeout; retry",
            )
            .retry_after(1),
            StorageError::Pool(_) => ApiError::new(
                codes::DATABASE_UNAVAILABLE,
                "the database is not reachable right now; retry",
            )
            .retry_after(1),
            _ => ApiError::internal(),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> ApiError {
        match error {
            WriteError::Overloaded => ApiError::new(
                codes::LEDGER_OVERLOADED,
                "the ledger's write queue is full; retry shortly",
            )
            .retry_after(1),
            WriteError::NotCommitted(reason) => ApiError::new(
                codes::NOT_COMMITTED,
                format!(
                    "nothing of this request was committed ({reason}); retry with the same \
                     Idempotency-Key"
                ),
            )
            .retry_after(1),
            WriteError::OutcomeUnknown => ApiError::new(
                codes::COMMIT_OUTCOME_UNKNOWN,
                "the database connection broke during the commit and its outcome could not be \
                 read back; retry with the same Idempotency-Key (or the same id): it returns the \
                 committed result, or applies the request once",
            )
            .retry_after(1),
            WriteError::Stopped => ApiError::new(
                codes::SHUTTING_DOWN,
                "the service is shutting down; retry on another instance",
            )
            .retry_after(1),
        }
    }
}
