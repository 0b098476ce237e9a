//! `/v1/ledgers/{ledger}/statements`: bank statements in, streamed (§7).
//!
//! The body is spooled to an anonymous temporary file while it is hashed and counted (bounded
//! by `LEDGER_MAX_STATEMENT_BYTES`), then parsed on a blocking thread by the pure parsers of
//! [`crate::statement`], whose lines flow in chunks over a bounded channel into one database
//! transaction. Memory stays bounded by a chunk, whatever the file's size. Any invalid line, or
//! unbalanced arithmetic, rolls the transaction back: nothing of a refused file is stored.

use std::io::{BufReader, Seek, Write};

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::codes;
use super::dto::currency_of;
use super::openapi::StatementFormatSchema;
use super::problem::{ApiError, Problem};
use super::respond::path_uuid;
use super::state::AppState;
use crate::audit::time::format_timestamp;
use crate::domain::{AccountId, Currency, Rejection, StatementId};
use crate::statement::{
    self, CsvColumns, LineError, ParseOptions, StatementFormat, StatementLine, StatementSummary,
};
use crate::storage::reconciliation::{StatementHeader, StatementRecord};
use crate::storage::StorageError;

/// Lines handed from the parser to the database per chunk.
const CHUNK_LINES: usize = 2_000;
/// Errors listed in a `statement_invalid` refusal.
const MAX_LISTED_ERRORS: usize = 20;
/// A physical line (or XML text) longer than this refuses the file.
const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// The ledger account the statement is of (its currency is the statement's).
    pub account_id: uuid::Uuid,
    /// CSV only: the header of the column holding `external_id` (default `external_id`).
    pub external_id_column: Option<String>,
    pub booking_date_column: Option<String>,
    pub value_date_column: Option<String>,
    pub amount_column: Option<String>,
    pub currency_column: Option<String>,
    pub reference_column: Option<String>,
    pub description_column: Option<String>,
}

impl StatementQuery {
    fn csv_columns(&self) -> CsvColumns {
        let pick = |given: &Option<String>, default: String| given.clone().unwrap_or(default);
        let defaults = CsvColumns::default();
        CsvColumns {
            external_id: pick(&self.external_id_column, defaults.external_id),
            booking_date: pick(&self.booking_date_column, defaults.booking_date),
            value_date: pick(&self.value_date_column, defaults.value_date),
            amount: pick(&self.amount_column, defaults.amount),
            currency: pick(&self.currency_column, defaults.currency),
            reference: pick(&self.reference_column, defaults.reference),
            description: pick(&self.description_column, defaults.description),
        }
    }
}

/// A line of a statement that repeats an earlier one.
#[derive(Serialize, ToSchema)]
pub struct DuplicateLineBody {
    pub line: u64,
    pub duplicate_of: u64,
}

/// A stored statement. Amounts are signed: positive is money into the account.
#[derive(Serialize, ToSchema)]
pub struct StatementBody {
    pub id: uuid::Uuid,
    pub ledger: String,
    pub account_id: uuid::Uuid,
    #[schema(value_type = StatementFormatSchema)]
    pub format: String,
    /// SHA-256 of the uploaded bytes, hex: the statement's identity.
    pub sha256: String,
    pub byte_count: u64,
    pub line_count: u64,
    /// Lines with the same external id, or the same reference, date and amount, as an earlier
    /// line of the file: kept, and flagged here.
    pub duplicate_line_count: u64,
    /// The flagged lines (at most the first 1,000), each with the earlier line it repeats;
    /// only in `GET …/statements/{id}`.
    pub duplicate_lines: Option<Vec<DuplicateLineBody>>,
    pub currency: String,
    pub statement_ref: Option<String>,
    pub account_identifier: Option<String>,
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub opening_balance: Option<String>,
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub closing_balance: Option<String>,
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub total_in: String,
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    pub total_out: String,
    #[schema(format = Date)]
    pub period_start: String,
    #[schema(format = Date)]
    pub period_end: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl StatementBody {
    pub fn new(ledger: &str, record: &StatementRecord) -> StatementBody {
        let header = &record.header;
        StatementBody {
            id: header.id.as_uuid(),
            ledger: ledger.to_owned(),
            account_id: header.account_id.as_uuid(),
            format: header.format.clone(),
            sha256: hex::encode(header.sha256),
            byte_count: header.byte_count,
            line_count: record.line_count,
            duplicate_line_count: record.duplicate_line_count,
            duplicate_lines: None,
            currency: header.currency.clone(),
            statement_ref: header.statement_ref.clone(),
            account_identifier: header.account_identifier.clone(),
            opening_balance: header.opening_balance.map(|value| value.to_string()),
            closing_balance: header.closing_balance.map(|value| value.to_string()),
            total_in: header.total_in.to_string(),
            total_out: header.total_out.to_string(),
            period_start: header.period_start.to_string(),
            period_end: header.period_end.to_string(),
            created_at: format_timestamp(header.created_at),
        }
    }
}

/// Upload a bank statement. The parser is chosen by `Content-Type`: `text/csv`,
/// `application/x-ndjson`, `application/xml` (camt.053) or `text/plain` /
/// `application/vnd.swift.mt940`. The same bytes again return the same statement (`200`);
/// the SHA-256 of the bytes is its natural key, so no Idempotency-Key is needed.
#[utoipa::path(
    tag = "reconciliation",
    params(("ledger" = String, Path, description = "Ledger name"), StatementQuery),
    request_body(
        description = "The statement file, its format named by `Content-Type`",
        content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
            (String = "application/xml"),
            (String = "application/vnd.swift.mt940"),
        )
    ),
    responses(
        (status = 201, description = "Stored", body = StatementBody),
        (
            status = 200,
            description = "The same bytes were stored before: that statement",
            body = StatementBody
        ),
        (
            status = 400,
            description = "`invalid_query`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 404,
            description = "`ledger_not_found`, `account_not_found`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 409,
            description = "`statement_exists`: these bytes are a statement of another account",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 413,
            description = "`statement_too_large`: over the byte or line limit",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 415,
            description = "`unsupported_media_type`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 422,
            description = "`statement_invalid` (with `errors`: line, field, reason), \
                           `statement_unbalanced`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 503,
            description = "`not_committed`: nothing was stored, retry",
            body = Problem,
            content_type = "application/problem+json"
        ),
    )
)]
#[post("/v1/ledgers/{ledger}/statements")]
pub async fn upload_statement(
    caller: Caller,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<StatementQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let format = format_of(&request)?;
    let account_id = AccountId::new(query.account_id);
    let account = state
        .storage
        .account(ledger.id, account_id)
        .await?
        .ok_or(Rejection::AccountNotFound(account_id))?;
    let currency = currency_of(&ledger, account.currency.code())?;
    let timeout = super::context::body_read_timeout(&request);
    let spooled = spool(payload, state.limits.max_statement_bytes, timeout).await?;
    if let Some(existing) = state
        .storage
        .statement_by_hash(ledger.id, &spooled.sha256)
        .await?
    {
        return same_statement_again(ledger.name.as_str(), &existing, account_id);
    }
    let options = ParseOptions {
        account_currency: currency.clone(),
        csv_columns: query.csv_columns(),
        max_line_bytes: MAX_LINE_BYTES,
    };
    let upload = Upload {
        ledger_id: ledger.id,
        account_id,
        currency,
        format,
        created_by: caller.key.id,
        max_lines: state.limits.max_statement_lines,
    };
    let sha256 = spooled.sha256;
    match store(&state, upload, spooled, options).await {
        Ok(record) => Ok(HttpResponse::Created()
            .insert_header((
                "Location",
                format!(
                    "/v1/ledgers/{}/statements/{}",
                    ledger.name, record.header.id
                ),
            ))
            .json(StatementBody::new(ledger.name.as_str(), &record))),
        Err(UploadError::Api(error)) => Err(error),
        Err(UploadError::Storage(error)) if error.is_unique_violation() => {
            // The same bytes were stored concurrently: that statement is the answer.
            let existing = state.storage.statement_by_hash(ledger.id, &sha256).await?;
            match existing {
                Some(existing) => same_statement_again(ledger.name.as_str(), &existing, account_id),
                None => Err(ApiError::from(error)),
            }
        }
        Err(UploadError::Storage(error)) => Err(ApiError::from(error)),
    }
}

fn same_statement_again(
    ledger: &str,
    existing: &StatementRecord,
    account_id: AccountId,
) -> Result<HttpResponse, ApiError> {
    if existing.header.account_id != account_id {
        return Err(ApiError::new(
            codes::STATEMENT_EXISTS,
            format!(
                "these bytes are statement {} of account {}",
                existing.header.id, existing.header.account_id
            ),
        )
        .with(
            "statement_id",
            Value::String(existing.header.id.to_string()),
        ));
    }
    Ok(HttpResponse::Ok().json(StatementBody::new(ledger, existing)))
}

fn format_of(request: &HttpRequest) -> Result<StatementFormat, ApiError> {
    let content_type = request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    StatementFormat::from_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            codes::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type must be text/csv, application/x-ndjson, application/xml, text/plain \
                 or application/vnd.swift.mt940, got {content_type:?}"
            ),
        )
    })
}

fn too_large(detail: String) -> ApiError {
    ApiError::new(codes::STATEMENT_TOO_LARGE, detail)
}

/// The body written to an anonymous temporary file, with its SHA-256 and size.
struct Spooled {
    file: std::fs::File,
    sha256: [u8; 32],
    byte_count: u64,
}

/// Spools the body; each chunk must arrive within `timeout` of the previous one.
async fn spool(
    mut payload: web::Payload,
    max_bytes: u64,
    timeout: std::time::Duration,
) -> Result<Spooled, ApiError> {
    let file = tempfile::tempfile().map_err(spool_failed)?;
    let mut writer = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut hasher = Sha256::new();
    let mut byte_count: u64 = 0;
    while let Some(chunk) = tokio::time::timeout(timeout, payload.next())
        .await
        .map_err(|_| super::context::body_timeout())?
    {
        let chunk = chunk.map_err(|error| {
            ApiError::new(
                codes::INVALID_BODY,
                format!("the statement could not be read: {error}"),
            )
        })?;
        byte_count += chunk.len() as u64;
        if byte_count > max_bytes {
            return Err(too_large(format!(
                "a statement has at most {max_bytes} bytes"
            )));
        }
        hasher.update(&chunk);
        // A local temporary file: writes land in the page cache, a blocking pool would cost more.
        writer.write_all(&chunk).map_err(spool_failed)?;
    }
    if byte_count == 0 {
        return Err(invalid(vec![LineError {
            number: 0,
            field: "body".into(),
            reason: "the statement is empty".into(),
        }]));
    }
    let mut file = writer
        .into_inner()
        .map_err(|error| spool_failed(error.into_error()))?;
    file.rewind().map_err(spool_failed)?;
    Ok(Spooled {
        file,
        sha256: hasher.finalize().into(),
        byte_count,
    })
}

fn spool_failed(error: std::io::Error) -> ApiError {
    tracing::error!(error = %error, "could not spool a statement to a temporary file");
    ApiError::new(
        codes::NOT_COMMITTED,
        "the statement could not be buffered; nothing was stored, retry",
    )
    .retry_after(1)
}

fn invalid(errors: Vec<LineError>) -> ApiError {
    let first = errors
        .first()
        .map_or_else(String::new, |error| format!(": {error}"));
    let listed: Vec<Value> = errors
        .iter()
        .map(|error| json!({"line": error.number, "field": error.field, "reason": error.reason}))
        .collect();
    ApiError::new(
        codes::STATEMENT_INVALID,
        format!(
            "the statement was refused whole, nothing was stored ({} error(s) listed){first}",
            listed.len()
        ),
    )
    .with("errors", Value::Array(listed))
}

/// What an upload is for.
struct Upload {
    ledger_id: i32,
    account_id: AccountId,
    currency: Currency,
    format: StatementFormat,
    created_by: uuid::Uuid,
    max_lines: u64,
}

enum UploadError {
    Api(ApiError),
    Storage(StorageError),
}

impl From<StorageError> for UploadError {
    fn from(error: StorageError) -> UploadError {
        UploadError::Storage(error)
    }
}

impl From<ApiError> for UploadError {
    fn from(error: ApiError) -> UploadError {
        UploadError::Api(error)
    }
}

/// What the parser thread sends: chunks of valid lines, then how the file ended.
enum Parsed {
    Lines(Vec<StatementLine>),
    End(Box<ParseEnd>),
}

/// The end of a parse: the file's own summary and what the lines added up to.
struct ParseEnd {
    summary: StatementSummary,
    errors: Vec<LineError>,
    too_many_lines: bool,
    lines: u64,
    total_in: Decimal,
    total_out: Decimal,
    first_date: Option<time::Date>,
    last_date: Option<time::Date>,
}

async fn store(
    state: &AppState,
    upload: Upload,
    spooled: Spooled,
    options: ParseOptions,
) -> Result<StatementRecord, UploadError> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Parsed>(2);
    let format = upload.format;
    let max_lines = upload.max_lines;
    let zero = upload.currency.zero();
    let file = spooled.file;
    let parser = tokio::task::spawn_blocking(move || {
        parse_into(format, file, options, max_lines, zero, sender)
    });
    let mut transaction = state.storage.begin_statement_upload().await?;
    let mut end = None;
    while let Some(message) = receiver.recv().await {
        match message {
            Parsed::Lines(lines) => transaction.append(&lines).await?,
            Parsed::End(parsed) => end = Some(parsed),
        }
    }
    parser.await.map_err(|_| ApiError::internal())?;
    let end = end.ok_or_else(ApiError::internal)?;
    let header = header_of(&upload, &spooled.sha256, spooled.byte_count, &end)?;
    Ok(transaction.finish(upload.ledger_id, &header).await?)
}

/// Checks what a complete parse found and names the statement's period.
fn header_of(
    upload: &Upload,
    sha256: &[u8; 32],
    byte_count: u64,
    end: &ParseEnd,
) -> Result<StatementHeader, ApiError> {
    if end.too_many_lines {
        return Err(too_large(format!(
            "a statement has at most {} entries",
            upload.max_lines
        )));
    }
    if !end.errors.is_empty() {
        return Err(invalid(end.errors.clone()));
    }
    let (Some(first), Some(last)) = (end.first_date, end.last_date) else {
        return Err(invalid(vec![LineError {
            number: 0,
            field: "entries".into(),
            reason: "the statement has no entries".into(),
        }]));
    };
    let summary = &end.summary;
    if let Err((expected, stated)) =
        statement::check_balanced(summary, end.total_in + end.total_out)
    {
        return Err(ApiError::new(
            codes::STATEMENT_UNBALANCED,
            format!(
                "opening balance + entries = {expected}, but the statement's closing balance is \
                 {stated}"
            ),
        )
        .with(
            "expected_closing_balance",
            Value::String(expected.to_string()),
        )
        .with("closing_balance", Value::String(stated.to_string())));
    }
    let period_start = summary.period_start.unwrap_or(first).min(first);
    let period_end = summary.period_end.unwrap_or(last).max(last);
    Ok(StatementHeader {
        id: StatementId::new(uuid::Uuid::now_v7()),
        account_id: upload.account_id,
        sha256: *sha256,
        format: upload.format.as_str().to_owned(),
        byte_count,
        currency: upload.currency.code().to_string(),
        statement_ref: summary.statement_id.clone(),
        account_identifier: summary.account_identifier.clone(),
        opening_balance: summary.opening_balance,
        closing_balance: summary.closing_balance,
        total_in: end.total_in,
        total_out: end.total_out,
        period_start,
        period_end,
        created_at: crate::writer::now(),
        created_by: upload.created_by,
    })
}

/// On a blocking thread: parses the file, sending valid lines in chunks until the first error
/// (nothing will be stored after one, but the parse goes on to list the first few).
fn parse_into(
    format: StatementFormat,
    file: std::fs::File,
    options: ParseOptions,
    max_lines: u64,
    zero: Decimal,
    sender: tokio::sync::mpsc::Sender<Parsed>,
) {
    let input = Box::new(BufReader::with_capacity(256 * 1024, file));
    let mut reader = statement::reader(format, input, options);
    let mut end = ParseEnd {
        summary: StatementSummary::default(),
        errors: Vec::new(),
        too_many_lines: false,
        lines: 0,
        total_in: zero,
        total_out: zero,
        first_date: None,
        last_date: None,
    };
    let mut chunk = Vec::with_capacity(CHUNK_LINES);
    for parsed in reader.by_ref() {
        match parsed {
            Ok(line) => {
                end.lines += 1;
                if end.lines > max_lines {
                    end.too_many_lines = true;
                    break;
                }
                add_to_totals(&mut end, &line);
                if end.errors.is_empty() {
                    chunk.push(line);
                }
            }
            Err(error) => {
                end.errors.push(error);
                chunk.clear();
                if end.errors.len() >= MAX_LISTED_ERRORS {
                    break;
                }
            }
        }
        if chunk.len() == CHUNK_LINES {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_LINES));
            if sender.blocking_send(Parsed::Lines(full)).is_err() {
                return;
            }
        }
    }
    if !chunk.is_empty() && end.errors.is_empty() {
        let _ = sender.blocking_send(Parsed::Lines(chunk));
    }
    end.summary = reader.summary().clone();
    let _ = sender.blocking_send(Parsed::End(Box::new(end)));
}

fn add_to_totals(end: &mut ParseEnd, line: &StatementLine) {
    // Bounded: each amount is below 10^28 minor units and there are at most 2·10^9 lines, but a
    // hostile file could still overflow a Decimal's 96 bits; saturate into an error instead.
    let total = if line.amount.is_sign_positive() {
        &mut end.total_in
    } else {
        &mut end.total_out
    };
    match total.checked_add(line.amount) {
        Some(sum) => *total = sum,
        None => end.errors.push(LineError {
            number: line.number,
            field: "amount".into(),
            reason: "the statement's total exceeds what a decimal holds".into(),
        }),
    }
    end.first_date = Some(
        end.first_date
            .map_or(line.booking_date, |d| d.min(line.booking_date)),
    );
    end.last_date = Some(
        end.last_date
            .map_or(line.booking_date, |d| d.max(line.booking_date)),
    );
}

/// A stored statement.
#[utoipa::path(
    tag = "reconciliation",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Statement id")
    ),
    responses(
        (status = 200, body = StatementBody),
        (
            status = 400,
            description = "`invalid_id`",
            body = Problem,
            content_type = "application/problem+json"
        ),
        (
            status = 404,
            description = "`ledger_not_found`, `statement_not_found`",
            body = Problem,
            content_type = "application/problem+json"
        ),
    )
)]
#[get("/v1/ledgers/{ledger}/statements/{id}")]
pub async fn get_statement(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (ledger, id) = path.into_inner();
    let ledger = state.ledgers.get(&ledger).await?;
    let id = StatementId::new(path_uuid("id", &id)?);
    let record = state
        .storage
        .statement(ledger.id, id)
        .await?
        .ok_or_else(|| statement_not_found(id))?;
    let duplicates = state.storage.duplicate_lines(ledger.id, id, 1_000).await?;
    let mut body = StatementBody::new(ledger.name.as_str(), &record);
    body.duplicate_lines = Some(
        duplicates
            .into_iter()
            .map(|(line, duplicate_of)| DuplicateLineBody { line, duplicate_of })
            .collect(),
    );
    Ok(HttpResponse::Ok().json(body))
}

pub fn statement_not_found(id: StatementId) -> ApiError {
    ApiError::new(
        codes::STATEMENT_NOT_FOUND,
        format!("statement {id} does not exist in this ledger"),
    )
}
