//! `/v1/ledgers/{ledger}/reconciliations`: runs of a statement against its account, their
//! items, and the resolutions people make (§7).
//!
//! A run: the request's Idempotency-Key finds or creates the run row (cut-off = the journal
//! head it read), the items are computed set-based in the database (`storage::matching`), the
//! items file is hashed page by page, and the completion event goes through the ledger's writer
//! with the idempotency record, so the run completes once and its response replays.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::codes;
use super::context::{parse_json_body, BodyBytes, IdempotencyClaim, RequestContext};
use super::dto::{currency_of, TransferBody};
use super::openapi::{ItemStatusSchema, ReconciliationStateSchema, ResolutionActionSchema};
use super::paging::{decode_cursor, encode_cursor, page_size};
use super::problem::{ApiError, Problem};
use super::respond::{self, json_response, path_uuid};
use super::state::AppState;
use super::statements::statement_not_found;
use super::write::submit;
use super::RequiredIdempotencyKeyHeader;
use crate::audit::reconciliation::{
    day_from_date, encode_completed, format_day, item_line, ItemsDigest,
};
use crate::audit::time::format_timestamp;
use crate::domain::reconciliation::{
    BalanceFinding, ItemResolved, ItemStatus, ReconciliationCompleted, ReconciliationItem,
    ResolutionAction, StatusTotal, MAX_DATE_WINDOW_DAYS, RULES,
};
use crate::domain::{
    Account, Command, Description, Metadata, NewTransfer, NormalSide, ReconciliationId, Reference,
    StatementId, TransferCode, TransferId,
};
use crate::storage::reconciliation::{start_of_day, ItemRow, NewRun, RunRow};
use crate::storage::LedgerRecord;
use crate::writer::{Outcome, StateAfter};

/// Items hashed per page while the items file's digest is computed.
const DIGEST_PAGE_ITEMS: usize = 5_000;
/// The date window when a request names none.
const DEFAULT_DATE_WINDOW_DAYS: u32 = 3;

#[derive(Deserialize, Serialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateReconciliationRequest {
    /// A statement of this ledger (`POST …/statements`).
    pub statement_id: uuid::Uuid,
    /// How many days a booking date may differ from a transfer's date for rule `amount_date`
    /// (0 to 366; default 3).
    #[schema(minimum = 0, maximum = 366)]
    pub date_window_days: Option<u32>,
}

/// Count and totals of the items of one status. Amounts are signed: positive is money into the
/// account.
#[derive(Serialize, ToSchema)]
pub struct StatusTotalBody {
    pub count: u64,
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub statement_amount: String,
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub ledger_amount: String,
}

/// A reconciliation run: `running → completed | failed`.
#[derive(Serialize, ToSchema)]
pub struct ReconciliationBody {
    pub id: uuid::Uuid,
    pub ledger: String,
    pub statement_id: uuid::Uuid,
    pub account_id: uuid::Uuid,
    #[schema(value_type = ReconciliationStateSchema)]
    pub state: String,
    /// The journal seq the run read: the same run at the same cut-off gives the same items.
    pub cutoff_seq: u64,
    pub date_window_days: u32,
    #[schema(format = Date)]
    pub period_start: String,
    #[schema(format = Date)]
    pub period_end: String,
    pub rules: Vec<String>,
    pub statement_sha256: Option<String>,
    pub item_count: Option<u64>,
    /// SHA-256 of the items file (`GET …/items` with `Accept: application/x-ndjson`).
    pub items_digest: Option<String>,
    /// Per status: `matched`, `mismatched`, `ambiguous`, `missing_in_ledger`,
    /// `missing_in_statement`.
    #[schema(value_type = Object)]
    pub totals: Option<Value>,
    /// Book vs bank: the statement's balances against the account's at the period's ends.
    #[schema(value_type = Object)]
    pub book_vs_bank: Option<Value>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Seq of the `reconciliation_completed` event.
    pub completed_seq: Option<u64>,
    /// When the run completed (RFC 3339 UTC): the `at` of its `reconciliation_completed` event.
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
    pub failure: Option<String>,
}

impl ReconciliationBody {
    fn new(ledger: &str, run: &RunRow, completed: Option<(u64, String)>) -> ReconciliationBody {
        let summary = run.summary.as_ref();
        let field = |key: &str| summary.and_then(|summary| summary.get(key)).cloned();
        let text = |key: &str| field(key).and_then(|value| value.as_str().map(str::to_owned));
        let (completed_seq, completed_at) = match completed {
            Some((seq, at)) => (Some(seq), Some(at)),
            None => (run.completed_seq, run.completed_at.map(format_timestamp)),
        };
        ReconciliationBody {
            id: run.id.as_uuid(),
            ledger: ledger.to_owned(),
            statement_id: run.statement_id.as_uuid(),
            account_id: run.account_id.as_uuid(),
            state: if completed_seq.is_some() {
                "completed".into()
            } else {
                run.state.clone()
            },
            cutoff_seq: run.cutoff_seq,
            date_window_days: run.date_window_days,
            period_start: run.period_start.to_string(),
            period_end: run.period_end.to_string(),
            rules: RULES.iter().map(|rule| (*rule).to_owned()).collect(),
            statement_sha256: text("statement_sha256"),
            item_count: run.item_count,
            items_digest: text("items_digest"),
            totals: field("totals"),
            book_vs_bank: field("book_vs_bank"),
            created_at: format_timestamp(run.created_at),
            completed_seq,
            completed_at,
            failure: run.failure.clone(),
        }
    }
}

fn run_not_found(id: ReconciliationId) -> ApiError {
    ApiError::new(
        codes::RECONCILIATION_NOT_FOUND,
        format!("reconciliation {id} does not exist in this ledger"),
    )
}

/// Run a reconciliation of a statement against its account, as of the journal's head now.
#[utoipa::path(
    tag = "reconciliation",
    params(("ledger" = String, Path, description = "Ledger name"), RequiredIdempotencyKeyHeader),
    request_body = CreateReconciliationRequest,
    responses(
        (status = 201, description = "Completed", body = ReconciliationBody),
        (
            status = 200,
            description = "A run under this Idempotency-Key that failed",
            body = ReconciliationBody
        ),
        (
            status = 400,
            description = "`invalid_body`, `invalid_field` (`date_window_days`), \
                           `idempotency_key_required`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 404,
            description = "`ledger_not_found`, `statement_not_found`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 409,
            description = "`reconciliation_already_completed`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 422,
            description = "`idempotency_key_reused`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 503,
            description = "`reconciliation_failed`, `ledger_overloaded`, `not_committed`: retry \
                           with the same key",
            body = Problem,
            content_type = "application/problem+json"
        ),
    )
)]
#[post("/v1/ledgers/{ledger}/reconciliations")]
pub async fn create_reconciliation(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<String>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let (body, canonical): (CreateReconciliationRequest, _) =
        parse_json_body(&request, &body, false)?;
    let claim = context
        .claim(&canonical, false)?
        .expect("a claim without a natural key");
    let window = body.date_window_days.unwrap_or(DEFAULT_DATE_WINDOW_DAYS);
    if window > MAX_DATE_WINDOW_DAYS {
        return Err(ApiError::invalid_field(
            "date_window_days",
            format!("must be 0 to {MAX_DATE_WINDOW_DAYS}, got {window}"),
        ));
    }
    let statement_id = StatementId::new(body.statement_id);
    let statement = state
        .storage
        .statement(ledger.id, statement_id)
        .await?
        .ok_or_else(|| statement_not_found(statement_id))?;
    let head = state.storage.ledger_head(ledger.id).await?;
    let new_run = NewRun {
        id: ReconciliationId::new(uuid::Uuid::now_v7()),
        statement_id,
        account_id: statement.header.account_id,
        cutoff_seq: head.chain.seq,
        date_window_days: window,
        period_start: statement.header.period_start,
        period_end: statement.header.period_end,
        api_key_id: claim.scope.api_key_id,
        idempotency_key: claim.scope.key.clone(),
        fingerprint: claim.fingerprint.0,
        created_at: crate::writer::now(),
    };
    let run = state
        .storage
        .create_or_find_run(ledger.id, &new_run)
        .await?;
    if run.fingerprint != claim.fingerprint.0 {
        return Err(respond::key_reused());
    }
    if run.state == "failed" {
        return Ok(HttpResponse::Ok().json(ReconciliationBody::new(
            ledger.name.as_str(),
            &run,
            None,
        )));
    }
    let started = std::time::Instant::now();
    let answer = complete_run(
        &state,
        &ledger,
        &context,
        claim,
        run,
        &statement.header.sha256,
    )
    .await;
    record_run_metrics(&answer, started);
    answer
}

fn record_run_metrics(answer: &Result<HttpResponse, ApiError>, started: std::time::Instant) {
    let outcome = match answer {
        Ok(response) if response.status().is_success() => "completed",
        _ => "failed",
    };
    metrics::counter!("ledger_reconciliation_runs_total", "outcome" => outcome).increment(1);
    metrics::histogram!("ledger_reconciliation_run_seconds")
        .record(started.elapsed().as_secs_f64());
}

/// Computes the run's items (unless a previous attempt did), states its summary, and has the
/// ledger's writer record the completion with the request's idempotency record.
async fn complete_run(
    state: &AppState,
    ledger: &LedgerRecord,
    context: &RequestContext,
    claim: IdempotencyClaim,
    run: RunRow,
    statement_sha256: &[u8; 32],
) -> Result<HttpResponse, ApiError> {
    if let Err(error) = state
        .storage
        .compute_reconciliation_items(ledger.id, run.id.as_uuid())
        .await
    {
        tracing::error!(
            error = %error,
            run = %run.id,
            "reconciliation items could not be computed"
        );
        let reason = "the items could not be computed";
        state.storage.fail_run(ledger.id, run.id, reason).await?;
        return Err(ApiError::new(
            codes::RECONCILIATION_FAILED,
            format!("{reason}; the run is failed, start a new one with a new Idempotency-Key"),
        ));
    }
    let account = state
        .storage
        .account(ledger.id, run.account_id)
        .await?
        .ok_or(crate::domain::Rejection::AccountNotFound(run.account_id))?;
    let completed = summarize(state, ledger, &run, &account, statement_sha256).await?;
    let summary = encode_completed(&completed);
    state
        .storage
        .prepare_run_summary(ledger.id, run.id, &summary, &completed.items_digest)
        .await?;
    let mut prepared = run.clone();
    prepared.summary = Some(summary);
    prepared.item_count = Some(completed.item_count);
    let name = ledger.name.to_string();
    let request_id = context.request_id.clone();
    let render = move |outcomes: &[Outcome]| match &outcomes[0] {
        Outcome::Done { last_seq, at, .. } => json_response(
            StatusCode::CREATED,
            Some(format!(
                "/v1/ledgers/{name}/reconciliations/{}",
                prepared.id
            )),
            &ReconciliationBody::new(&name, &prepared, Some((*last_seq, format_timestamp(*at)))),
        ),
        Outcome::Rejected(rejection) => {
            ApiError::from(rejection.clone()).to_stored(Some(&request_id))
        }
    };
    let counts: Vec<(ItemStatus, u64)> = completed
        .totals
        .iter()
        .map(|total| (total.status, total.count))
        .collect();
    let command = Command::CompleteReconciliation(Box::new(completed));
    let response = submit(state, ledger, context, Some(claim), vec![command], render).await?;
    if response.status() == StatusCode::CREATED {
        for (status, count) in counts {
            metrics::counter!("ledger_reconciliation_items_total", "status" => status.as_str())
                .increment(count);
        }
    }
    Ok(response)
}

/// The completion event of a run whose items are computed: totals per status, the items
/// file's digest (streamed page by page), and book vs bank.
async fn summarize(
    state: &AppState,
    ledger: &LedgerRecord,
    run: &RunRow,
    account: &Account,
    statement_sha256: &[u8; 32],
) -> Result<ReconciliationCompleted, ApiError> {
    let zero = account.currency.zero();
    let sums = state.storage.item_sums(ledger.id, run.id, zero).await?;
    let mut digest = ItemsDigest::default();
    let mut after = 0;
    loop {
        let page = state
            .storage
            .items_page(ledger.id, run.id, None, after, DIGEST_PAGE_ITEMS)
            .await?;
        page.iter()
            .for_each(|row| digest.push(&item_line(&row.item)));
        match page.last() {
            Some(last) if page.len() == DIGEST_PAGE_ITEMS => after = last.item.item_no,
            _ => break,
        }
    }
    let statement = state
        .storage
        .statement(ledger.id, run.statement_id)
        .await?
        .ok_or_else(|| statement_not_found(run.statement_id))?;
    let balance_before = |date: time::Date| {
        let storage = state.storage.clone();
        async move {
            let balances = storage
                .posted_balance_before(
                    ledger.id,
                    run.account_id,
                    run.cutoff_seq,
                    start_of_day(date),
                )
                .await?;
            Ok::<Decimal, ApiError>(normal_side_balance(account, balances, zero))
        }
    };
    let day_after_end = run.period_end.next_day().unwrap_or(run.period_end);
    let balances = BalanceFinding {
        statement_opening: statement.header.opening_balance,
        statement_closing: statement.header.closing_balance,
        book_opening: balance_before(run.period_start).await?,
        book_closing: balance_before(day_after_end).await?,
    };
    Ok(ReconciliationCompleted {
        id: run.id,
        statement_id: run.statement_id,
        statement_sha256: *statement_sha256,
        account_id: run.account_id,
        currency: account.currency.code().clone(),
        cutoff_seq: run.cutoff_seq,
        date_window_days: run.date_window_days,
        period_start: day_from_date(run.period_start),
        period_end: day_from_date(run.period_end),
        rules: RULES.iter().map(|rule| (*rule).to_owned()).collect(),
        item_count: digest.items(),
        items_digest: digest.finish(),
        totals: sums
            .into_iter()
            .map(|sum| StatusTotal {
                status: sum.status,
                count: sum.count,
                statement_amount: sum.statement_amount,
                ledger_amount: sum.ledger_amount,
            })
            .collect(),
        balances,
    })
}

/// The posted balance on the account's normal side, at the account's scale.
fn normal_side_balance(
    account: &Account,
    balances: Option<(Decimal, Decimal)>,
    zero: Decimal,
) -> Decimal {
    let Some((debits, credits)) = balances else {
        return zero;
    };
    let mut balance = match account.normal_side {
        NormalSide::Debit => debits - credits,
        NormalSide::Credit => credits - debits,
    };
    balance.rescale(zero.scale());
    balance
}

/// A reconciliation run.
#[utoipa::path(
    tag = "reconciliation",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Run id")
    ),
    responses(
        (status = 200, body = ReconciliationBody),
        (
            status = 400,
            description = "`invalid_id`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 404,
            description = "`ledger_not_found`, `reconciliation_not_found`",
            body = Problem,
            content_type = "application/problem+json"
        ),
    )
)]
#[get("/v1/ledgers/{ledger}/reconciliations/{id}")]
pub async fn get_reconciliation(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (ledger, id) = path.into_inner();
    let ledger = state.ledgers.get(&ledger).await?;
    let id = ReconciliationId::new(path_uuid("id", &id)?);
    let run = state
        .storage
        .run(ledger.id, id)
        .await?
        .ok_or_else(|| run_not_found(id))?;
    Ok(HttpResponse::Ok().json(ReconciliationBody::new(ledger.name.as_str(), &run, None)))
}

#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ItemsQuery {
    /// Only items of this status.
    pub status: Option<String>,
    /// `next_cursor` of the previous page (JSON only).
    pub cursor: Option<String>,
    /// Items per page, 1 to 1000 (default 100; JSON only).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// The current resolution of an item.
#[derive(Serialize, ToSchema)]
pub struct ResolutionBody {
    #[schema(value_type = ResolutionActionSchema)]
    pub action: String,
    pub transfer_id: Option<uuid::Uuid>,
    pub note: Option<String>,
    /// The API key that resolved it.
    pub actor: Option<String>,
    /// Seq of the `reconciliation_item_resolved` event.
    pub seq: Option<u64>,
}

/// One item of a run. Amounts are signed: positive is money into the account.
#[derive(Serialize, ToSchema)]
pub struct ItemBody {
    pub item: u64,
    #[schema(value_type = ItemStatusSchema)]
    pub status: String,
    /// The rule that decided it.
    pub rule: String,
    /// The statement line (its position in the statement, 1-based).
    pub line: Option<u64>,
    #[schema(format = Date)]
    pub booking_date: Option<String>,
    pub reference: Option<String>,
    pub statement_amount: Option<String>,
    pub ledger_amount: Option<String>,
    /// statement_amount − ledger_amount.
    pub difference: Option<String>,
    pub transfer_ids: Vec<uuid::Uuid>,
    /// For `ambiguous`: the equally good candidates.
    pub candidate_transfer_ids: Vec<uuid::Uuid>,
    pub resolution: Option<ResolutionBody>,
}

impl ItemBody {
    fn new(row: &ItemRow) -> ItemBody {
        let item = &row.item;
        let ids = |ids: &[TransferId]| ids.iter().map(TransferId::as_uuid).collect();
        let amount = |value: Option<Decimal>| value.map(|value| value.to_string());
        ItemBody {
            item: item.item_no,
            status: item.status.as_str().to_owned(),
            rule: item.rule.clone(),
            line: item.line_no,
            booking_date: item.booking_date.map(format_day),
            reference: item.reference.clone(),
            statement_amount: amount(item.statement_amount),
            ledger_amount: amount(item.ledger_amount),
            difference: amount(item.difference),
            transfer_ids: ids(&item.transfer_ids),
            candidate_transfer_ids: ids(&item.candidate_transfer_ids),
            resolution: row.resolution.map(|action| ResolutionBody {
                action: action.as_str().to_owned(),
                transfer_id: row.resolution_transfer_id.map(|id| id.as_uuid()),
                note: row.resolution_note.clone(),
                actor: row.resolution_actor.clone(),
                seq: row.resolution_seq,
            }),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ItemPageBody {
    pub data: Vec<ItemBody>,
    pub next_cursor: Option<String>,
}

/// The items of a run, in item order. `Accept: text/csv` gives every item (of the status) as
/// CSV; `Accept: application/x-ndjson` gives the items file whose SHA-256 is the run's
/// `items_digest` (every item, the run's own decisions, without resolutions).
#[utoipa::path(
    tag = "reconciliation",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Run id"),
        ItemsQuery
    ),
    responses(
        (status = 200, body = ItemPageBody, content(
            (ItemPageBody = "application/json"),
            (String = "text/csv"),
            (String = "application/x-ndjson"),
        )),
        (
            status = 400,
            description = "`invalid_id`, `invalid_query`, `invalid_cursor`, `invalid_limit`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 404,
            description = "`ledger_not_found`, `reconciliation_not_found`",
            body = Problem,
            content_type = "application/problem+json"
        ),
    )
)]
#[get("/v1/ledgers/{ledger}/reconciliations/{id}/items")]
pub async fn list_items(
    _caller: Caller,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<ItemsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (ledger, id) = path.into_inner();
    let ledger = state.ledgers.get(&ledger).await?;
    let id = ReconciliationId::new(path_uuid("id", &id)?);
    state
        .storage
        .run(ledger.id, id)
        .await?
        .ok_or_else(|| run_not_found(id))?;
    let status = query
        .status
        .as_deref()
        .map(|text| {
            ItemStatus::parse(text).ok_or_else(|| {
                ApiError::new(
                    codes::INVALID_QUERY,
                    format!(
                        "status must be one of matched, mismatched, ambiguous, missing_in_ledger, \
                         missing_in_statement; got {text:?}"
                    ),
                )
            })
        })
        .transpose()?;
    let accept = request
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if accept.contains("text/csv") {
        return Ok(stream_items(state, ledger.id, id, status, ItemsFormat::Csv));
    }
    if accept.contains("application/x-ndjson") {
        return Ok(stream_items(
            state,
            ledger.id,
            id,
            status,
            ItemsFormat::Lines,
        ));
    }
    let limit = page_size(query.limit, &state.limits)?;
    let after = decode_cursor(query.cursor.as_deref())?;
    let rows = state
        .storage
        .items_page(ledger.id, id, status, after as u64, limit + 1)
        .await?;
    let more = rows.len() > limit;
    let rows = &rows[..rows.len().min(limit)];
    let next_cursor = more
        .then(|| {
            rows.last()
                .map(|row| encode_cursor(row.item.item_no as i64))
        })
        .flatten();
    Ok(HttpResponse::Ok().json(ItemPageBody {
        data: rows.iter().map(ItemBody::new).collect(),
        next_cursor,
    }))
}

#[derive(Clone, Copy)]
enum ItemsFormat {
    Csv,
    Lines,
}

const CSV_HEADER: &str = "item,status,rule,line,booking_date,reference,statement_amount,\
                          ledger_amount,difference,transfer_ids,candidate_transfer_ids,resolution,\
                          resolution_transfer_id\n";

fn csv_field(text: &str) -> String {
    let needs_quotes = text.contains([',', '"', '\n', '\r']);
    // A leading =, +, - or @ would be a formula to a spreadsheet: quote-prefix it.
    let guarded = match text.chars().next() {
        Some('=' | '+' | '@') => format!("'{text}"),
        _ => text.to_owned(),
    };
    if needs_quotes {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

fn csv_line(row: &ItemRow) -> String {
    let item = &row.item;
    let amount = |value: Option<Decimal>| value.map(|value| value.to_string()).unwrap_or_default();
    let ids = |ids: &[TransferId]| {
        ids.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let fields = [
        item.item_no.to_string(),
        item.status.as_str().to_owned(),
        item.rule.clone(),
        item.line_no
            .map(|line| line.to_string())
            .unwrap_or_default(),
        item.booking_date.map(format_day).unwrap_or_default(),
        csv_field(item.reference.as_deref().unwrap_or("")),
        amount(item.statement_amount),
        amount(item.ledger_amount),
        amount(item.difference),
        ids(&item.transfer_ids),
        ids(&item.candidate_transfer_ids),
        row.resolution
            .map(|action| action.as_str().to_owned())
            .unwrap_or_default(),
        row.resolution_transfer_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    ];
    let mut line = fields.join(",");
    line.push('\n');
    line
}

/// Streams every item (of the status) page by page: memory stays one page.
fn stream_items(
    state: web::Data<AppState>,
    ledger_id: i32,
    run_id: ReconciliationId,
    status: Option<ItemStatus>,
    format: ItemsFormat,
) -> HttpResponse {
    let first = match format {
        ItemsFormat::Csv => Some(actix_web::web::Bytes::from_static(CSV_HEADER.as_bytes())),
        ItemsFormat::Lines => None,
    };
    let pages = futures_util::stream::unfold(Some(0u64), move |after| {
        let state = state.clone();
        async move {
            let after = after?;
            let page = state
                .storage
                .items_page(ledger_id, run_id, status, after, DIGEST_PAGE_ITEMS)
                .await;
            let rows = match page {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::error!(error = %error, "an items download failed midway");
                    return Some((
                        Err(actix_web::error::ErrorServiceUnavailable("items")),
                        None,
                    ));
                }
            };
            let next = (rows.len() == DIGEST_PAGE_ITEMS)
                .then(|| rows.last().map(|row| row.item.item_no))
                .flatten();
            if rows.is_empty() {
                return None;
            }
            let mut bytes = Vec::with_capacity(rows.len() * 256);
            for row in &rows {
                match format {
                    ItemsFormat::Csv => bytes.extend_from_slice(csv_line(row).as_bytes()),
                    ItemsFormat::Lines => bytes.extend_from_slice(&item_line(&row.item)),
                }
            }
            Some((Ok(actix_web::web::Bytes::from(bytes)), next))
        }
    });
    let header = futures_util::stream::iter(first.map(Ok));
    let content_type = match format {
        ItemsFormat::Csv => "text/csv; charset=utf-8",
        ItemsFormat::Lines => "application/x-ndjson",
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .streaming(futures_util::StreamExt::chain(header, pages))
}

#[derive(Deserialize, Serialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct ResolveItemRequest {
    /// `match` (to `transfer_id`), `accept` (with a `note`), `adjust` (posts a correcting
    /// transfer against `counter_account_id`), or `undo` (takes back the current resolution).
    #[schema(value_type = ResolutionActionSchema, example = "accept")]
    pub action: String,
    /// For `match`: the transfer the item corresponds to.
    pub transfer_id: Option<uuid::Uuid>,
    /// Why; required for `accept` (at most 1024 characters).
    pub note: Option<String>,
    /// For `adjust`: the account on the other side of the correcting transfer.
    pub counter_account_id: Option<uuid::Uuid>,
    /// For `adjust`: the signed amount to correct by (positive: money into the reconciled
    /// account); default: what the item leaves open (its difference, or the missing amount).
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub amount: Option<String>,
}

/// The item after a resolution, and the correcting transfer of an `adjust`.
#[derive(Serialize, ToSchema)]
pub struct ResolvedItemBody {
    pub item: ItemBody,
    pub adjustment: Option<TransferBody>,
}

/// Resolve an item of a completed run, or undo its resolution. Recorded as a
/// `reconciliation_item_resolved` event with the key as its actor.
#[utoipa::path(
    tag = "reconciliation",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Run id"),
        ("item" = u64, Path, description = "Item number"),
        RequiredIdempotencyKeyHeader
    ),
    request_body = ResolveItemRequest,
    responses(
        (status = 200, description = "Resolved", body = ResolvedItemBody),
        (
            status = 400,
            description = "`invalid_body`, `invalid_field`, `idempotency_key_required`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 404,
            description = "`reconciliation_not_found`, `reconciliation_item_not_found`, \
                           `transfer_not_found`, `account_not_found`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 409,
            description = "`item_already_resolved`, `item_not_resolved`, \
                           `reconciliation_not_completed`, `account_frozen`, `account_closed`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 422,
            description = "`invalid_resolution`, `insufficient_funds`, `invalid_amount`, \
                           `idempotency_key_reused`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 503,
            description = "`ledger_overloaded`, `not_committed`: nothing was applied, retry",
            body = Problem,
            content_type = "application/problem+json"
        ),
    )
)]
#[post("/v1/ledgers/{ledger}/reconciliations/{id}/items/{item}/resolve")]
pub async fn resolve_item(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    let (ledger, id, item_no) = path.into_inner();
    let ledger = state.ledgers.get(&ledger).await?;
    let id = ReconciliationId::new(path_uuid("id", &id)?);
    let item_no: u64 = item_no.parse().map_err(|_| {
        ApiError::new(
            codes::INVALID_ID,
            format!("item must be a positive integer, got {item_no:?}"),
        )
    })?;
    let (body, canonical): (ResolveItemRequest, _) = parse_json_body(&request, &body, false)?;
    let claim = context.claim(&canonical, false)?;
    let run = state
        .storage
        .run(ledger.id, id)
        .await?
        .ok_or_else(|| run_not_found(id))?;
    if run.completed_seq.is_none() {
        return Err(ApiError::new(
            codes::RECONCILIATION_NOT_COMPLETED,
            format!(
                "reconciliation {id} is {}; only a completed run's items are resolved",
                run.state
            ),
        ));
    }
    let row = state
        .storage
        .item(ledger.id, id, item_no)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                codes::RECONCILIATION_ITEM_NOT_FOUND,
                format!("item {item_no} is not an item of reconciliation {id}"),
            )
        })?;
    let action = ResolutionAction::parse(&body.action).ok_or_else(|| {
        ApiError::invalid_field(
            "action",
            format!(
                "must be match, accept, adjust or undo, got {:?}",
                body.action
            ),
        )
    })?;
    let adjustment = match action {
        ResolutionAction::Adjust => Some(adjustment_for(&state, &ledger, &run, &row, &body).await?),
        _ => None,
    };
    let transfer_id = match action {
        ResolutionAction::Adjust => adjustment.as_ref().map(|new| new.id),
        _ => body.transfer_id.map(TransferId::new),
    };
    let resolution = ItemResolved {
        reconciliation_id: id,
        item_no,
        action,
        transfer_id,
        note: body.note.clone(),
    };
    let name = ledger.name.clone();
    let request_id = context.request_id.clone();
    let actor = context.caller.actor();
    let recorded = resolution.clone();
    let render = move |outcomes: &[Outcome]| {
        render_resolution(&name, &row, &recorded, &actor, &outcomes[0], &request_id)
    };
    let command = Command::ResolveReconciliationItem {
        resolution,
        adjustment,
    };
    submit(&state, &ledger, &context, claim, vec![command], render).await
}

/// The item as the resolution left it, with the correcting transfer of an `adjust`.
fn render_resolution(
    ledger: &crate::domain::LedgerName,
    before: &ItemRow,
    resolution: &ItemResolved,
    actor: &str,
    outcome: &Outcome,
    request_id: &str,
) -> crate::storage::idempotency::StoredResponse {
    let (state, seq) = match outcome {
        Outcome::Rejected(rejection) => {
            return ApiError::from(rejection.clone()).to_stored(Some(request_id))
        }
        Outcome::Done {
            state, last_seq, ..
        } => (state, *last_seq),
    };
    let adjustment = match state {
        StateAfter::Transfer(transfer) => Some(TransferBody::new(ledger, transfer)),
        _ => None,
    };
    let mut item = ItemBody::new(before);
    item.resolution = (resolution.action != ResolutionAction::Undo).then(|| ResolutionBody {
        action: resolution.action.as_str().to_owned(),
        transfer_id: resolution.transfer_id.map(|id| id.as_uuid()),
        note: resolution.note.clone(),
        actor: Some(actor.to_owned()),
        seq: Some(seq),
    });
    json_response(StatusCode::OK, None, &ResolvedItemBody { item, adjustment })
}

/// The correcting transfer of an `adjust`: the amount the item leaves open (or the one asked
/// for), between the reconciled account and the counter-account, on the side that moves the
/// reconciled account's balance by that signed amount.
async fn adjustment_for(
    state: &AppState,
    ledger: &LedgerRecord,
    run: &RunRow,
    row: &ItemRow,
    body: &ResolveItemRequest,
) -> Result<NewTransfer, ApiError> {
    let counter = body.counter_account_id.ok_or_else(|| {
        ApiError::invalid_field(
            "counter_account_id",
            "adjust needs the account on the other side",
        )
    })?;
    let account = state
        .storage
        .account(ledger.id, run.account_id)
        .await?
        .ok_or(crate::domain::Rejection::AccountNotFound(run.account_id))?;
    let currency = currency_of(ledger, account.currency.code())?;
    let signed = match &body.amount {
        Some(text) => parse_signed_amount(text, currency.scale())?,
        None => open_amount(&row.item).ok_or_else(|| {
            ApiError::invalid_field("amount", "this item leaves no amount open; name the amount")
        })?,
    };
    if signed.is_zero() {
        return Err(ApiError::invalid_field(
            "amount",
            "an adjustment moves money: not zero",
        ));
    }
    let raises = signed.is_sign_positive();
    let reconciled = account.id;
    let counter = crate::domain::AccountId::new(counter);
    // Raising a debit-normal account's balance debits it; raising a credit-normal one credits it.
    let debits_reconciled = raises == (account.normal_side == NormalSide::Debit);
    let (debit, credit) = if debits_reconciled {
        (reconciled, counter)
    } else {
        (counter, reconciled)
    };
    let metadata = serde_json::json!({
        "reconciliation_id": run.id.to_string(),
        "item": row.item.item_no,
    });
    Ok(NewTransfer {
        id: TransferId::new(uuid::Uuid::now_v7()),
        debit_account_id: debit,
        credit_account_id: credit,
        amount: signed.abs(),
        currency: currency.code().clone(),
        code: Some(TransferCode::parse("reconciliation_adjustment").expect("a valid code")),
        reference: row
            .item
            .reference
            .as_deref()
            .and_then(|text| Reference::parse(text).ok()),
        description: body
            .note
            .as_deref()
            .map(Description::parse)
            .transpose()
            .map_err(|reason| ApiError::invalid_field("note", reason))?,
        metadata: Metadata::parse(metadata).expect("small metadata"),
        pending: false,
        timeout_seconds: None,
        reverses: None,
    })
}

/// What an item leaves open, signed as money into the account: the difference of a mismatch,
/// the amount of a line missing in the ledger, minus the amount of a transfer the bank lacks.
fn open_amount(item: &ReconciliationItem) -> Option<Decimal> {
    match item.status {
        ItemStatus::Mismatched => item.difference,
        ItemStatus::MissingInLedger => item.statement_amount,
        ItemStatus::MissingInStatement => item.ledger_amount.map(|amount| -amount),
        ItemStatus::Matched | ItemStatus::Ambiguous => None,
    }
}

fn parse_signed_amount(text: &str, scale: u32) -> Result<Decimal, ApiError> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut amount = crate::domain::money::parse_amount(digits, scale).map_err(|error| {
        ApiError::from(crate::domain::Rejection::InvalidAmount(error))
            .with("field", "amount".into())
    })?;
    if negative {
        amount.set_sign_negative(true);
    }
    Ok(amount)
}
