//! `/v1/api-keys`: create, list and revoke API keys (unrestricted admin keys only).
//!
//! The token is in the creation response only. It is stored as its SHA-256, so a replay of the
//! creation (same Idempotency-Key) answers the key without its token.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::generate_token;
use super::auth::Caller;
use super::codes;
use super::context::{parse_json_body, BodyBytes, RequestContext};
use super::dto::PageBody;
use super::paging::{page_size, PageQuery};
use super::problem::{ApiError, Problem};
use super::respond::{json_response, key_reused, path_uuid, send};
use super::state::AppState;
use super::RequiredIdempotencyKeyHeader;
use crate::audit::time::format_timestamp;
use crate::audit::Hash32;
use crate::domain::LedgerName;
use crate::storage::idempotency::Idempotent;
use crate::storage::keys::{ApiKey, Role};

#[derive(Deserialize, Serialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RoleBody {
    Admin,
    Writer,
    Reader,
    Auditor,
}

impl RoleBody {
    fn role(self) -> Role {
        match self {
            RoleBody::Admin => Role::Admin,
            RoleBody::Writer => Role::Writer,
            RoleBody::Reader => Role::Reader,
            RoleBody::Auditor => Role::Auditor,
        }
    }
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A label for people, 1 to 128 characters.
    #[schema(min_length = 1, max_length = 128, example = "payments-service")]
    pub name: String,
    pub role: RoleBody,
    /// Restrict the key to these ledgers (1 to 100); absent: every ledger.
    #[schema(min_items = 1, max_items = 100)]
    pub ledgers: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyBody {
    /// The key's id: the `actor` of every event it causes.
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = RoleBody, example = "writer")]
    pub role: String,
    pub ledgers: Option<Vec<String>>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The actor that created it.
    pub created_by: String,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// The secret, in the creation response only: `Authorization: Bearer <token>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl ApiKeyBody {
    pub fn new(key: &ApiKey, token: Option<String>) -> ApiKeyBody {
        ApiKeyBody {
            id: key.id,
            name: key.name.clone(),
            role: key.role.as_str().to_owned(),
            ledgers: key
                .ledgers
                .as_ref()
                .map(|names| names.iter().map(ToString::to_string).collect()),
            created_at: format_timestamp(key.created_at),
            created_by: key.created_by.clone(),
            revoked_at: key.revoked_at.map(format_timestamp),
            token,
        }
    }
}

fn parse_ledgers(names: Option<Vec<String>>) -> Result<Option<Vec<LedgerName>>, ApiError> {
    let Some(names) = names else { return Ok(None) };
    if names.is_empty() || names.len() > 100 {
        return Err(ApiError::invalid_field(
            "ledgers",
            "give 1 to 100 ledger names, or leave it out for every ledger",
        ));
    }
    names
        .iter()
        .map(|name| {
            LedgerName::parse(name).map_err(|reason| ApiError::invalid_field("ledgers", reason))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Create an API key. The response carries its token, once.
#[utoipa::path(
    tag = "api-keys",
    params(RequiredIdempotencyKeyHeader),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; `token` is shown only here", body = ApiKeyBody),
        (
            status = 400,
            body = Problem
        ), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, description = "`idempotency_key_reused`", body = Problem),
    )
)]
#[post("/v1/api-keys")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    let (body, canonical): (CreateApiKeyRequest, _) = parse_json_body(&request, &body, false)?;
    let claim = context.claim(&canonical, false)?;
    let name_length = body.name.chars().count();
    if !(1..=128).contains(&name_length) || body.name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "1 to 128 characters without control characters",
        ));
    }
    let token = generate_token();
    let at = crate::writer::now();
    let key = ApiKey {
        id: Uuid::now_v7(),
        name: body.name,
        role: body.role.role(),
        ledgers: parse_ledgers(body.ledgers)?,
        token_sha256: Hash32::sha256(token.as_bytes()),
        created_at: at,
        created_by: context.caller.actor(),
        revoked_at: None,
    };
    let location = Some(format!("/v1/api-keys/{}", key.id));
    let recorded = json_response(
        StatusCode::CREATED,
        location.clone(),
        &ApiKeyBody::new(&key, None),
    );
    match state
        .storage
        .create_api_key(&key, claim.as_ref(), recorded)
        .await?
    {
        Idempotent::Applied(()) => Ok(send(
            &json_response(
                StatusCode::CREATED,
                location,
                &ApiKeyBody::new(&key, Some(token)),
            ),
            false,
        )),
        Idempotent::Replayed(response) => Ok(send(&response, true)),
        Idempotent::KeyReused => Err(key_reused()),
    }
}

/// List API keys, oldest first (never their tokens).
#[utoipa::path(
    tag = "api-keys",
    params(PageQuery),
    responses(
        (status = 200, body = PageBody<ApiKeyBody>),
        (status = 401, body = Problem),
        (status = 403, body = Problem)
    )
)]
#[get("/v1/api-keys")]
pub async fn list_api_keys(
    _caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_size(query.limit, &state.limits)?;
    let after = query
        .cursor
        .as_deref()
        .map(|cursor| {
            Uuid::parse_str(cursor).map_err(|_| {
                ApiError::new(
                    codes::INVALID_CURSOR,
                    "cursor is not one this service issued",
                )
            })
        })
        .transpose()?;
    let (keys, more) = state.storage.api_keys_page(after, limit).await?;
    let next_cursor = if more {
        keys.last().map(|key| key.id.to_string())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(PageBody {
        data: keys.iter().map(|key| ApiKeyBody::new(key, None)).collect(),
        next_cursor,
    }))
}

/// Revoke an API key. Revoking twice is harmless; a revoked key is refused at once here and
/// within seconds on other instances.
#[utoipa::path(
    tag = "api-keys",
    params(("id" = Uuid, Path, description = "API key id")),
    responses(
        (status = 200, body = ApiKeyBody),
        (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 404, description = "`api_key_not_found`", body = Problem)
    )
)]
#[delete("/v1/api-keys/{id}")]
pub async fn revoke_api_key(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_uuid("id", &path)?;
    let key = state
        .storage
        .revoke_api_key(id, crate::writer::now())
        .await?
        .ok_or_else(|| ApiError::new(codes::API_KEY_NOT_FOUND, format!("no API key {id}")))?;
    state.keys.forget(id);
    Ok(HttpResponse::Ok().json(ApiKeyBody::new(Arc::new(key).as_ref(), None)))
}
