//! `/v1/ledgers/{ledger}/accounts`: open, get, list.

use actix_web::{get, post, web, HttpRequest, HttpResponse};

use super::auth::Caller;
use super::context::{parse_json_body, BodyBytes, RequestContext};
use super::dto::EmptyRequest;
use super::dto::{AccountBody, OpenAccountRequest, PageBody};
use super::paging::{decode_cursor, encode_cursor, page_size, PageQuery};
use super::problem::{ApiError, Problem};
use super::respond::{path_uuid, Intent};
use super::state::AppState;
use super::write::submit_one;
use super::{IdempotencyKeyHeader, RequiredIdempotencyKeyHeader};
use crate::domain::{AccountId, Command};

/// Open an account. With a client-chosen `id`, a retry with the same fields returns it (200).
#[utoipa::path(
    tag = "accounts",
    params(("ledger" = String, Path, description = "Ledger name"), IdempotencyKeyHeader),
    request_body = OpenAccountRequest,
    responses(
        (status = 201, description = "Opened", body = AccountBody),
        (
            status = 200,
            description = "The same account, opened before with this id",
            body = AccountBody
        ),
        (status = 400, description = "Malformed request", body = Problem),
        (status = 404, description = "`ledger_not_found`", body = Problem),
        (status = 401, description = "`unauthenticated`, `invalid_api_key`", body = Problem),
        (status = 403, description = "`forbidden`, `ledger_forbidden`", body = Problem),
        (
            status = 409,
            description = "`account_code_taken`, `account_exists_with_different_fields`",
            body = Problem
        ),
        (status = 422, description = "`unknown_currency`", body = Problem),
    )
)]
#[post("/v1/ledgers/{ledger}/accounts")]
pub async fn open_account(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<String>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let (body, canonical): (OpenAccountRequest, _) = parse_json_body(&request, &body, false)?;
    let claim = context.claim(&canonical, body.id.is_some())?;
    let new_account = body.into_new_account(&ledger, uuid::Uuid::now_v7())?;
    submit_one(
        &state,
        &ledger,
        &context,
        claim,
        Command::OpenAccount(new_account),
        Intent::Create,
    )
    .await
}

/// Get an account, with its balances.
#[utoipa::path(
    tag = "accounts",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Account id")
    ),
    responses(
        (status = 200, body = AccountBody),
        (status = 400, description = "`invalid_id`", body = Problem),
        (status = 404, description = "`ledger_not_found`, `account_not_found`", body = Problem),
    )
)]
#[get("/v1/ledgers/{ledger}/accounts/{id}")]
pub async fn get_account(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (ledger, id) = path.into_inner();
    let ledger = state.ledgers.get(&ledger).await?;
    let id = AccountId::new(path_uuid("id", &id)?);
    let account = state
        .storage
        .account(ledger.id, id)
        .await?
        .ok_or(crate::domain::Rejection::AccountNotFound(id))?;
    Ok(HttpResponse::Ok().json(AccountBody::new(&ledger.name, &account)))
}

/// List accounts in the order they were opened.
#[utoipa::path(
    tag = "accounts",
    params(("ledger" = String, Path, description = "Ledger name"), PageQuery),
    responses(
        (status = 200, body = PageBody<AccountBody>),
        (status = 400, body = Problem),
        (status = 404, body = Problem)
    )
)]
#[get("/v1/ledgers/{ledger}/accounts")]
pub async fn list_accounts(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let limit = page_size(query.limit, &state.limits)?;
    let page = state
        .storage
        .accounts_page(ledger.id, decode_cursor(query.cursor.as_deref())?, limit)
        .await?;
    Ok(HttpResponse::Ok().json(PageBody {
        data: page
            .items
            .iter()
            .map(|account| AccountBody::new(&ledger.name, account))
            .collect(),
        next_cursor: page.next_after.map(encode_cursor),
    }))
}

/// Freeze, unfreeze or close an account (§3); every transition is a journal event.
async fn account_action(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: BodyBytes,
    command: fn(AccountId) -> Command,
) -> Result<HttpResponse, ApiError> {
    let (ledger, id) = path.into_inner();
    let ledger = state.ledgers.get(&ledger).await?;
    let id = AccountId::new(path_uuid("id", &id)?);
    let (_, canonical): (EmptyRequest, _) = parse_json_body(&request, &body, true)?;
    let claim = context.claim(&canonical, false)?;
    submit_one(&state, &ledger, &context, claim, command(id), Intent::Act).await
}

/// Freeze an account: it takes no new transfer (voids and reversals excepted).
#[utoipa::path(
    tag = "accounts",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Account id"),
        RequiredIdempotencyKeyHeader
    ),
    request_body(content = Option<EmptyRequest>, description = "Empty, or `{}`"),
    responses(
        (status = 200, body = AccountBody),
        (status = 404, body = Problem),
        (status = 409, description = "`invalid_state_transition` (from, to)", body = Problem)
    )
)]
#[post("/v1/ledgers/{ledger}/accounts/{id}/freeze")]
pub async fn freeze_account(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    account_action(state, context, request, path, body, Command::FreezeAccount).await
}

/// Unfreeze a frozen account.
#[utoipa::path(
    tag = "accounts",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Account id"),
        RequiredIdempotencyKeyHeader
    ),
    request_body(content = Option<EmptyRequest>, description = "Empty, or `{}`"),
    responses(
        (status = 200, body = AccountBody),
        (status = 404, body = Problem),
        (status = 409, description = "`invalid_state_transition` (from, to)", body = Problem)
    )
)]
#[post("/v1/ledgers/{ledger}/accounts/{id}/unfreeze")]
pub async fn unfreeze_account(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    account_action(
        state,
        context,
        request,
        path,
        body,
        Command::UnfreezeAccount,
    )
    .await
}

/// Close an account, final: only when its balances net to zero and nothing is pending.
#[utoipa::path(
    tag = "accounts",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Account id"),
        RequiredIdempotencyKeyHeader
    ),
    request_body(content = Option<EmptyRequest>, description = "Empty, or `{}`"),
    responses(
        (status = 200, body = AccountBody),
        (status = 404, body = Problem),
        (
            status = 409,
            description = "`invalid_state_transition` (from, to), `account_not_empty`",
            body = Problem
        )
    )
)]
#[post("/v1/ledgers/{ledger}/accounts/{id}/close")]
pub async fn close_account(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    account_action(state, context, request, path, body, Command::CloseAccount).await
}
