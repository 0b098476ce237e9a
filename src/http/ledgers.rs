//! `/v1/ledgers`: create, list, get.

use std::sync::Arc;

use actix_web::{get, post, web, HttpResponse};

use super::context::RequestContext;
use super::dto::{CreateLedgerRequest, LedgerBody, PageBody};
use super::paging::{decode_cursor, encode_cursor, page_size, PageQuery};
use super::problem::{ApiError, Problem};
use super::state::AppState;
use crate::audit::ChainHead;
use crate::domain::Book;
use crate::storage::StorageError;

/// Create a ledger. Its first journal event, `ledger_created`, is seq 1.
#[utoipa::path(
    tag = "ledgers",
    request_body = CreateLedgerRequest,
    responses(
        (status = 201, description = "Created", body = LedgerBody),
        (status = 400, description = "Malformed request", body = Problem),
        (status = 409, description = "`ledger_exists`", body = Problem),
    )
)]
#[post("/v1/ledgers")]
pub async fn create_ledger(
    state: web::Data<AppState>,
    context: RequestContext,
    body: web::Json<CreateLedgerRequest>,
) -> Result<HttpResponse, ApiError> {
    let new_ledger = body.into_inner().into_new_ledger()?;
    let (name, assets, metadata) = (
        new_ledger.name.clone(),
        new_ledger.assets.clone(),
        new_ledger.metadata.clone(),
    );
    let (book, genesis) = Book::genesis(new_ledger, crate::writer::now())?;
    let mut chain = ChainHead::GENESIS;
    let event = chain.seal(book.name(), &genesis, &context.provenance(None));
    let ledger = match state
        .storage
        .create_ledger(&name, &assets, &metadata, &event)
        .await
    {
        Err(StorageError::LedgerExists(name)) => {
            return Err(ApiError::new(
                actix_web::http::StatusCode::CONFLICT,
                "ledger_exists",
                format!("a ledger named {name} already exists"),
            ));
        }
        other => Arc::new(other?),
    };
    state.ledgers.remember(ledger.clone());
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/ledgers/{}", ledger.name)))
        .json(LedgerBody::from(ledger.as_ref())))
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
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_size(query.limit, &state.limits)?;
    let page = state
        .storage
        .ledgers_page(decode_cursor(query.cursor.as_deref())?, limit)
        .await?;
    Ok(HttpResponse::Ok().json(PageBody {
        data: page.items.iter().map(LedgerBody::from).collect(),
        next_cursor: page.next_after.map(encode_cursor),
    }))
}

#[utoipa::path(
    tag = "ledgers",
    params(("ledger" = String, Path, description = "Ledger name")),
    responses((status = 200, body = LedgerBody), (status = 404, description = "`ledger_not_found`", body = Problem))
)]
#[get("/v1/ledgers/{ledger}")]
pub async fn get_ledger(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    Ok(HttpResponse::Ok().json(LedgerBody::from(ledger.as_ref())))
}
