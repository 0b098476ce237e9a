//! `/v1/ledgers/{ledger}/journal`: the hash-chained events, in seq order.

use actix_web::{get, web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::codes;
use super::dto::{JournalEventBody, JournalPageBody};
use super::paging::page_size;
use super::problem::{ApiError, Problem};
use super::state::AppState;

#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JournalQuery {
    /// Events with a greater seq (default 0: from the start).
    pub after_seq: Option<u64>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Page through the journal. Every event carries `prev_hash` and `hash`:
/// `hash = SHA-256(JCS(event without hash))`, genesis `prev_hash` is 64 zeros.
#[utoipa::path(
    tag = "journal",
    params(("ledger" = String, Path, description = "Ledger name"), JournalQuery),
    responses(
        (status = 200, body = JournalPageBody),
        (status = 400, body = Problem),
        (status = 404, body = Problem)
    )
)]
#[get("/v1/ledgers/{ledger}/journal")]
pub async fn journal(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<JournalQuery>,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let limit = page_size(query.limit, &state.limits)?;
    let after_seq = i64::try_from(query.after_seq.unwrap_or(0))
        .map_err(|_| ApiError::new(codes::INVALID_QUERY, "after_seq is too large"))?;
    let page = state
        .storage
        .journal_page(&ledger, after_seq, limit)
        .await?;
    Ok(HttpResponse::Ok().json(JournalPageBody {
        data: page.items.iter().map(JournalEventBody::from).collect(),
        next_after_seq: page.next_after.map(|seq| seq as u64),
    }))
}
