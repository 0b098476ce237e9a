//! `/v1/ledgers`: create, list, get.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};

use super::auth::Caller;
use super::codes;
use super::context::{parse_json_body, BodyBytes, RequestContext};
use super::dto::{CreateLedgerRequest, LedgerBody, PageBody};
use super::paging::{decode_cursor, encode_cursor, page_size, PageQuery};
use super::problem::{ApiError, Problem};
use super::respond::{json_response, key_reused, send};
use super::state::AppState;
use super::RequiredIdempotencyKeyHeader;
use crate::audit::ChainHead;
use crate::domain::Book;
use crate::storage::idempotency::Idempotent;
use crate::storage::{LedgerRecord, NewLedgerRow, StorageError};

/// Create a ledger. Its first journal event, `ledger_created`, is seq 1.
#[utoipa::path(
    tag = "ledgers",
    params(RequiredIdempotencyKeyHeader),
    request_body = CreateLedgerRequest,
    responses(
        (status = 201, description = "Created", body = LedgerBody),
        (
            status = 400,
            description = "Malformed request, `idempotency_key_required`",
            body = Problem
        ),
        (status = 401, description = "`unauthenticated`, `invalid_api_key`", body = Problem),
        (status = 403, description = "`forbidden`, `ledger_forbidden`", body = Problem),
        (status = 409, description = "`ledger_exists`", body = Problem),
        (status = 422, description = "`idempotency_key_reused`", body = Problem),
    )
)]
#[post("/v1/ledgers")]
pub async fn create_ledger(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    let (body, canonical): (CreateLedgerRequest, _) = parse_json_body(&request, &body, false)?;
    let claim = context.claim(&canonical, false)?;
    let new_ledger = body.into_new_ledger()?;
    if !context.caller.key.covers(new_ledger.name.as_str()) {
        return Err(super::auth::ledger_forbidden(new_ledger.name.as_str()));
    }
    let (name, assets, metadata) = (
        new_ledger.name.clone(),
        new_ledger.assets.clone(),
        new_ledger.metadata.clone(),
    );
    let at = crate::writer::now();
    let (book, genesis) = Book::genesis(new_ledger, at)?;
    let mut chain = ChainHead::GENESIS;
    let event = chain.seal(book.name(), &genesis, &context.provenance());
    let row = NewLedgerRow {
        name: &name,
        assets: &assets,
        metadata: &metadata,
    };
    let render = |ledger: &LedgerRecord| {
        json_response(
            StatusCode::CREATED,
            Some(format!("/v1/ledgers/{}", ledger.name)),
            &LedgerBody::from(ledger),
        )
    };
    match state
        .storage
        .create_ledger(&row, &event, claim.as_ref(), render)
        .await
    {
        Ok(Idempotent::Applied((ledger, response))) => {
            state.ledgers.remember(Arc::new(ledger));
            Ok(send(&response, false))
        }
        Ok(Idempotent::Replayed(response)) => Ok(send(&response, true)),
        Ok(Idempotent::KeyReused) => Err(key_reused()),
        Err(StorageError::LedgerExists(name)) => Err(ApiError::new(
            codes::LEDGER_EXISTS,
            format!("a ledger named {name} already exists"),
        )),
        Err(other) => Err(other.into()),
    }
}

/// List ledgers, oldest first.
#[utoipa::path(
    tag = "ledgers",
    params(PageQuery),
    responses((status = 200, body = PageBody<LedgerBody>), (status = 400, body = Problem))
)]
#[get("/v1/ledgers")]
pub async fn list_ledgers(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_size(query.limit, &state.limits)?;
    let page = state
        .storage
        .ledgers_page(decode_cursor(query.cursor.as_deref())?, limit)
        .await?;
    // A key scoped to some ledgers sees only those (pages may then hold fewer items).
    let visible = page
        .items
        .iter()
        .filter(|ledger| caller.key.covers(ledger.name.as_str()));
    Ok(HttpResponse::Ok().json(PageBody {
        data: visible.map(LedgerBody::from).collect(),
        next_cursor: page.next_after.map(encode_cursor),
    }))
}

/// Get a ledger.
#[utoipa::path(
    tag = "ledgers",
    params(("ledger" = String, Path, description = "Ledger name")),
    responses(
        (status = 200, body = LedgerBody),
        (status = 404, description = "`ledger_not_found`", body = Problem)
    )
)]
#[get("/v1/ledgers/{ledger}")]
pub async fn get_ledger(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    Ok(HttpResponse::Ok().json(LedgerBody::from(ledger.as_ref())))
}
