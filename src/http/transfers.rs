//! `/v1/ledgers/{ledger}/transfers`: create, get, list.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::codes;
use super::context::{parse_json_body, BodyBytes, RequestContext};
use super::dto::{
    partial_amount, EmptyRequest, PostTransferRequest, ReverseTransferRequest, TransferBatchBody,
    TransferBatchRequest,
};
use super::dto::{CreateTransferRequest, PageBody, TransferBody};
use super::openapi::TransferStateSchema;
use super::paging::{decode_cursor, encode_cursor, page_size};
use super::problem::{ApiError, Problem};
use super::respond::{self, path_uuid, Intent};
use super::state::AppState;
use super::write::{submit, submit_one};
use super::{IdempotencyKeyHeader, RequiredIdempotencyKeyHeader};
use crate::domain::{AccountId, Command, Rejection, TransferId, TransferState};
use crate::storage::TransferFilter;
use crate::writer::Outcome;

/// Create a transfer, posted at once or `pending`.
#[utoipa::path(
    tag = "transfers",
    params(("ledger" = String, Path, description = "Ledger name"), IdempotencyKeyHeader),
    request_body = CreateTransferRequest,
    responses(
        (status = 201, description = "Created", body = TransferBody),
        (
            status = 200,
            description = "The same transfer, created before with this id",
            body = TransferBody
        ),
        (
            status = 400,
            description = "Malformed request (`invalid_body`, `invalid_field`)",
            body = Problem
        ),
        (status = 401, description = "`unauthenticated`, `invalid_api_key`", body = Problem),
        (status = 403, description = "`forbidden`, `ledger_forbidden`", body = Problem),
        (status = 404, description = "`ledger_not_found`, `account_not_found`", body = Problem),
        (
            status = 409,
            description = "`transfer_exists_with_different_fields`, `account_frozen`, \
                           `account_closed`",
            body = Problem
        ),
        (
            status = 422,
            description = "`insufficient_funds`, `credits_exceed_debits`, `currency_mismatch`, \
                           `invalid_amount`, `same_debit_and_credit_account`, `unknown_currency`, \
                           `balance_overflow`, `idempotency_key_reused`",
            body = Problem
        ),
        (status = 429, description = "`rate_limited`", body = Problem),
        (
            status = 503,
            description = "`ledger_overloaded`, `not_committed`: nothing was applied, retry",
            body = Problem
        ),
    )
)]
#[post("/v1/ledgers/{ledger}/transfers")]
pub async fn create_transfer(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<String>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let (body, canonical): (CreateTransferRequest, _) = parse_json_body(&request, &body, false)?;
    let claim = context.claim(&canonical, body.id.is_some())?;
    let new_transfer = body.into_new_transfer(&ledger, uuid::Uuid::now_v7())?;
    submit_one(
        &state,
        &ledger,
        &context,
        claim,
        Command::CreateTransfer(new_transfer),
        Intent::Create,
    )
    .await
}

/// Get a transfer.
#[utoipa::path(
    tag = "transfers",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Transfer id")
    ),
    responses(
        (status = 200, body = TransferBody),
        (status = 400, body = Problem),
        (status = 404, description = "`ledger_not_found`, `transfer_not_found`", body = Problem)
    )
)]
#[get("/v1/ledgers/{ledger}/transfers/{id}")]
pub async fn get_transfer(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (ledger, id) = path.into_inner();
    let ledger = state.ledgers.get(&ledger).await?;
    let id = TransferId::new(path_uuid("id", &id)?);
    let transfer = state
        .storage
        .transfer(ledger.id, id)
        .await?
        .ok_or(Rejection::TransferNotFound(id))?;
    Ok(HttpResponse::Ok().json(TransferBody::new(&ledger.name, &transfer)))
}

#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransferListQuery {
    /// Only transfers debiting or crediting this account.
    pub account_id: Option<uuid::Uuid>,
    /// Only transfers in this state.
    #[param(value_type = Option<TransferStateSchema>)]
    pub state: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// List transfers in the order they were created.
#[utoipa::path(
    tag = "transfers",
    params(("ledger" = String, Path, description = "Ledger name"), TransferListQuery),
    responses(
        (status = 200, body = PageBody<TransferBody>),
        (status = 400, body = Problem),
        (status = 404, body = Problem)
    )
)]
#[get("/v1/ledgers/{ledger}/transfers")]
pub async fn list_transfers(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<TransferListQuery>,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let limit = page_size(query.limit, &state.limits)?;
    let transfer_state = query
        .state
        .as_deref()
        .map(|text| {
            TransferState::parse(text).ok_or_else(|| {
                ApiError::new(
                    codes::INVALID_QUERY,
                    format!("state must be pending, posted, voided or expired, got {text:?}"),
                )
            })
        })
        .transpose()?;
    let filter = TransferFilter {
        account_id: query.account_id.map(AccountId::new),
        state: transfer_state,
    };
    let page = state
        .storage
        .transfers_page(
            ledger.id,
            &filter,
            decode_cursor(query.cursor.as_deref())?,
            limit,
        )
        .await?;
    Ok(HttpResponse::Ok().json(PageBody {
        data: page
            .items
            .iter()
            .map(|transfer| TransferBody::new(&ledger.name, transfer))
            .collect(),
        next_cursor: page.next_after.map(encode_cursor),
    }))
}

fn transfer_path(path: web::Path<(String, String)>) -> Result<(String, TransferId), ApiError> {
    let (ledger, id) = path.into_inner();
    Ok((ledger, TransferId::new(path_uuid("id", &id)?)))
}

/// Post a pending transfer, in full or in part (the rest is released).
#[utoipa::path(
    tag = "transfers",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Transfer id"),
        RequiredIdempotencyKeyHeader
    ),
    request_body(
        content = Option<PostTransferRequest>,
        description = "Optional; an empty body posts the full amount"
    ),
    responses(
        (status = 200, description = "Posted", body = TransferBody),
        (status = 404, description = "`transfer_not_found`", body = Problem),
        (
            status = 409,
            description = "`invalid_state_transition` (from, to), `account_frozen`",
            body = Problem
        ),
        (
            status = 422,
            description = "`post_amount_exceeds_pending`, `invalid_amount`",
            body = Problem
        ),
    )
)]
#[post("/v1/ledgers/{ledger}/transfers/{id}/post")]
pub async fn post_transfer(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    let (ledger, id) = transfer_path(path)?;
    let ledger = state.ledgers.get(&ledger).await?;
    let (body, canonical): (PostTransferRequest, _) = parse_json_body(&request, &body, true)?;
    let claim = context.claim(&canonical, false)?;
    let amount = partial_amount(body.amount.as_deref())?;
    submit_one(
        &state,
        &ledger,
        &context,
        claim,
        Command::PostTransfer { id, amount },
        Intent::Act,
    )
    .await
}

/// Void a pending transfer: its reservation is released.
#[utoipa::path(
    tag = "transfers",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Transfer id"),
        RequiredIdempotencyKeyHeader
    ),
    request_body(content = Option<EmptyRequest>, description = "Empty, or `{}`"),
    responses(
        (status = 200, description = "Voided", body = TransferBody),
        (status = 404, description = "`transfer_not_found`", body = Problem),
        (status = 409, description = "`invalid_state_transition` (from, to)", body = Problem),
    )
)]
#[post("/v1/ledgers/{ledger}/transfers/{id}/void")]
pub async fn void_transfer(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    let (ledger, id) = transfer_path(path)?;
    let ledger = state.ledgers.get(&ledger).await?;
    let (_, canonical): (EmptyRequest, _) = parse_json_body(&request, &body, true)?;
    let claim = context.claim(&canonical, false)?;
    submit_one(
        &state,
        &ledger,
        &context,
        claim,
        Command::VoidTransfer(id),
        Intent::Act,
    )
    .await
}

/// Reverse a posted transfer in full or in part: a new transfer with debit and credit swapped,
/// `reverses` set; the original's `reversed_amount` grows. Repeatable while something remains.
#[utoipa::path(
    tag = "transfers",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Transfer id"),
        IdempotencyKeyHeader
    ),
    request_body(
        content = Option<ReverseTransferRequest>,
        description = "Optional; an empty body reverses what remains"
    ),
    responses(
        (status = 201, description = "The reversal", body = TransferBody),
        (
            status = 200,
            description = "The same reversal, created before with this id",
            body = TransferBody
        ),
        (status = 404, description = "`transfer_not_found`", body = Problem),
        (
            status = 409,
            description = "`invalid_state_transition`, `account_closed`, \
                           `transfer_exists_with_different_fields`",
            body = Problem
        ),
        (
            status = 422,
            description = "`reversal_exceeds_posted_amount`, `insufficient_funds`, \
                           `invalid_amount`",
            body = Problem
        ),
    )
)]
#[post("/v1/ledgers/{ledger}/transfers/{id}/reverse")]
pub async fn reverse_transfer(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    let (ledger, id) = transfer_path(path)?;
    let ledger = state.ledgers.get(&ledger).await?;
    let (body, canonical): (ReverseTransferRequest, _) = parse_json_body(&request, &body, true)?;
    let claim = context.claim(&canonical, body.id.is_some())?;
    let reversal = body.into_reversal(uuid::Uuid::now_v7())?;
    submit_one(
        &state,
        &ledger,
        &context,
        claim,
        Command::ReverseTransfer { id, reversal },
        Intent::Create,
    )
    .await
}

/// Create up to 1,000 transfers: `atomic` (all or none; a multi-leg split, an FX pair through two
/// currency accounts) or each on its own. Without an Idempotency-Key every item needs an `id`.
#[utoipa::path(
    tag = "transfers",
    params(("ledger" = String, Path, description = "Ledger name"), IdempotencyKeyHeader),
    request_body = TransferBatchRequest,
    responses(
        (status = 201, description = "Atomic: all applied", body = TransferBatchBody),
        (
            status = 200,
            description = "Not atomic: each item with its own status; atomic: all existed already",
            body = TransferBatchBody
        ),
        (
            status = 400,
            description = "`batch_too_large`, `invalid_body`, `invalid_field`",
            body = Problem
        ),
        (
            status = 404,
            description = "Atomic: an item's `account_not_found` (`index`, `item_code`)",
            body = Problem
        ),
        (
            status = 409,
            description = "Atomic: an item's conflict (`index`, `item_code`)",
            body = Problem
        ),
        (
            status = 422,
            description = "Atomic: an item's refusal, e.g. `insufficient_funds` (`index`, \
                           `item_code`)",
            body = Problem
        ),
    )
)]
#[post("/v1/ledgers/{ledger}/transfers/batch")]
pub async fn create_transfer_batch(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<String>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let (body, canonical): (TransferBatchRequest, _) = parse_json_body(&request, &body, false)?;
    let max = state.limits.max_batch_transfers;
    if body.transfers.is_empty() || body.transfers.len() > max {
        return Err(ApiError::new(
            codes::BATCH_TOO_LARGE,
            format!(
                "a batch has 1 to {max} transfers, got {}",
                body.transfers.len()
            ),
        ));
    }
    let all_have_ids = body.transfers.iter().all(|transfer| transfer.id.is_some());
    let claim = context.claim(&canonical, all_have_ids)?;
    let mut transfers = Vec::with_capacity(body.transfers.len());
    for (index, item) in body.transfers.into_iter().enumerate() {
        let transfer = item
            .into_new_transfer(&ledger, uuid::Uuid::now_v7())
            .map_err(|error| error.at_batch_index(index))?;
        transfers.push(transfer);
    }
    let atomic = body.atomic;
    let commands = if atomic {
        vec![Command::CreateTransfersAtomically(transfers)]
    } else {
        transfers.into_iter().map(Command::CreateTransfer).collect()
    };
    let (name, request_id) = (ledger.name.clone(), context.request_id.clone());
    let render =
        move |outcomes: &[Outcome]| respond::render_batch(&name, atomic, outcomes, &request_id);
    submit(&state, &ledger, &context, claim, commands, render).await
}
