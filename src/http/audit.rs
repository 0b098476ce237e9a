//! The verifiable audit over HTTP (§5, §7): signing keys, checkpoints, proofs, the audit trail of
//! accounts and transfers, the signed export, integrity checks.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::codes;
use super::context::{parse_json_body, BodyBytes, RequestContext};
use super::dto::{EmptyRequest, JournalEventBody, NormalSideBody, PageBody, TransferBody};
use super::openapi::IntegrityStatusSchema;
use super::paging::{decode_cursor, encode_cursor, page_size};
use super::problem::{ApiError, Problem};
use super::respond::{json_response, key_reused, path_uuid, send};
use super::state::AppState;
use super::IdempotencyKeyHeader;
use crate::audit::checkpoint::split_signed_note;
use crate::audit::cosignature::{
    append_cosignatures, find_cosignature, Cosignature, CosignatureError, WitnessKey,
};
use crate::audit::time::format_timestamp;
use crate::audit::Hash32;
use crate::audit_service::{AuditError, Auditor};
use crate::domain::*;
use crate::storage::audit::{Entry, IntegrityRun, StoredCheckpoint};
use crate::storage::cosignatures::{Recorded, StoredCosignature, MAX_COSIGNATURES_PER_CHECKPOINT};
use crate::storage::idempotency::Idempotent;

impl From<AuditError> for ApiError {
    fn from(error: AuditError) -> ApiError {
        match error {
            AuditError::Storage(error) => error.into(),
            AuditError::OutOfRange(detail) => ApiError::new(codes::OUT_OF_RANGE, detail),
            AuditError::Empty => ApiError::new(codes::NO_EVENTS, "the ledger has no event yet"),
            AuditError::ClientGone => ApiError::internal(),
        }
    }
}

fn auditor(state: &AppState) -> Auditor<'_> {
    Auditor {
        storage: &state.storage,
        signer: &state.signer,
    }
}

// ---------------------------------------------------------------- signing keys

#[derive(Serialize, ToSchema)]
pub struct SigningKeyBody {
    /// Hex of the first 8 bytes of SHA-256 of the public key: the `key_id` of exports.
    pub id: String,
    #[schema(example = "ed25519")]
    pub algorithm: String,
    /// The 32-byte Ed25519 public key, base64.
    pub public_key: String,
    /// The same key as PEM (SubjectPublicKeyInfo), for `ledger-verify --public-key`.
    pub public_key_pem: String,
    #[schema(format = DateTime)]
    pub valid_from: String,
    /// Set once the key was rotated away; what it signed stays verifiable with it.
    #[schema(format = DateTime)]
    pub retired_at: Option<String>,
    /// Whether this service signs with it now.
    pub current: bool,
    /// With `?ledger=`: the C2SP note verifier key of that ledger's checkpoints with this key.
    pub note_verifier_key: Option<String>,
}

#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeysQuery {
    /// Also give each key's note verifier key for this ledger's checkpoints.
    pub ledger: Option<String>,
}

/// The public keys that sign checkpoints and exports, current and retired.
#[utoipa::path(
    tag = "audit",
    params(KeysQuery),
    responses(
        (status = 200, body = Vec<SigningKeyBody>),
        (
            status = 403,
            description = "`ledger_forbidden`: the key does not cover the ledger named",
            body = Problem
        ),
        (status = 404, body = Problem)
    )
)]
#[get("/v1/keys")]
pub async fn signing_keys(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<KeysQuery>,
) -> Result<HttpResponse, ApiError> {
    let origin = match &query.ledger {
        Some(name) if !caller.key.covers(name) => return Err(super::auth::ledger_forbidden(name)),
        Some(name) => Some(
            state
                .signer
                .origin(state.ledgers.get(name).await?.name.as_str()),
        ),
        None => None,
    };
    let mut bodies = Vec::new();
    for key in state.storage.signing_keys().await? {
        let verifying = ed25519_dalek::VerifyingKey::from_bytes(&key.public_key)
            .map_err(|_| ApiError::internal())?;
        let note_verifier_key = origin.as_ref().and_then(|origin| {
            crate::audit::checkpoint::verifier_key_string(origin, &verifying).ok()
        });
        bodies.push(SigningKeyBody {
            current: key.id == state.signer.key_id(),
            public_key: base64_std(&key.public_key),
            public_key_pem: crate::signing::public_key_pem(&verifying),
            valid_from: format_timestamp(key.created_at),
            retired_at: key.retired_at.map(format_timestamp),
            algorithm: "ed25519".into(),
            id: key.id,
            note_verifier_key,
        });
    }
    Ok(HttpResponse::Ok().json(bodies))
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------- checkpoints and proofs

#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckpointQuery {
    /// Sign a checkpoint of the tree as it is now, if the latest does not cover it yet.
    pub fresh: Option<bool>,
    /// The checkpoint recorded for this tree size instead of the latest (not with `fresh`).
    pub tree_size: Option<u64>,
}

/// The latest signed checkpoint: a C2SP `tlog-checkpoint` as a C2SP `signed-note` (Ed25519, key
/// name = the ledger's origin), followed by the witnesses' cosignatures of it (C2SP
/// `tlog-cosignature`, one signature line each, in the order received). Checkpoints are issued
/// every `LEDGER_CHECKPOINT_INTERVAL_MS` and on demand (`?fresh=true`); `?tree_size=N` gives the
/// one recorded for size N.
#[utoipa::path(
    get,
    path = "/v1/ledgers/{ledger}/checkpoint",
    tag = "audit",
    params(("ledger" = String, Path, description = "Ledger name"), CheckpointQuery),
    responses(
        (
            status = 200,
            description = "The signed note and its cosignatures; headers `Checkpoint-Tree-Size` \
                           and `Checkpoint-Cosignatures` (their number)",
            content_type = "text/plain",
            body = String
        ),
        (
            status = 400,
            description = "`invalid_query`: `fresh` and `tree_size` together",
            body = Problem
        ),
        (
            status = 404,
            description = "`ledger_not_found`, `no_events`, `checkpoint_not_found` (no checkpoint \
                           recorded for that size)",
            body = Problem
        )
    )
)]
#[get("/v1/ledgers/{ledger}/checkpoint")]
pub async fn get_checkpoint(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<CheckpointQuery>,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let checkpoint = match (query.fresh == Some(true), query.tree_size) {
        (true, Some(_)) => {
            return Err(ApiError::new(
                codes::INVALID_QUERY,
                "fresh=true signs a checkpoint of the tree as it is now: it takes no tree_size",
            ))
        }
        (false, Some(size)) => state
            .storage
            .recorded_checkpoint(ledger.id, size)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    codes::CHECKPOINT_NOT_FOUND,
                    format!("no checkpoint of tree size {size} was recorded for this ledger"),
                )
            })?,
        (true, None) => auditor(&state).issue_checkpoint(&ledger).await?,
        (false, None) => auditor(&state).latest_checkpoint(&ledger).await?,
    };
    let cosignatures: Vec<Cosignature> = state
        .storage
        .cosignatures(ledger.id, checkpoint.tree_size)
        .await?
        .into_iter()
        .map(|stored| Cosignature {
            name: stored.witness_name,
            key_id: stored.key_id,
            timestamp: stored.cosigned_at,
            signature: stored.signature,
        })
        .collect();
    let note = append_cosignatures(&checkpoint.note, &cosignatures).map_err(|error| {
        tracing::error!(
            ledger = %ledger.name,
            error = %error,
            "a stored checkpoint or cosignature is malformed"
        );
        ApiError::internal()
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("Checkpoint-Tree-Size", checkpoint.tree_size.to_string()))
        .insert_header(("Checkpoint-Cosignatures", cosignatures.len().to_string()))
        .body(note))
}

/// A witness's cosignature of one of this ledger's checkpoints.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct CosignatureRequest {
    /// The witness's verifier key (C2SP vkey): `<name>+<key ID, 8 hex digits>+<base64(0x04 ‖
    /// 32-byte Ed25519 public key)>`.
    #[schema(example = "witness.example/w1+bde24ed8+BEtSlAPDJQ8a1T7Osk3ZNKVWdwmW4dl3mCDUm3qonuyA")]
    pub witness_key: String,
    /// The checkpoint as the witness co-signed it: the note served by `GET …/checkpoint` with the
    /// witness's cosignature line appended. Its body must be that of a checkpoint this service
    /// signed; lines of other keys are ignored.
    pub note: String,
}

/// A cosignature the service keeps (the first one a witness key posted for the checkpoint).
#[derive(Serialize, ToSchema)]
pub struct CosignatureBody {
    pub tree_size: u64,
    pub witness_name: String,
    /// The key ID of the signature line, 8 hex digits.
    pub witness_key_id: String,
    /// The witness's verifier key.
    pub witness_key: String,
    /// The cosignature's timestamp, seconds since the Unix epoch.
    pub timestamp: u64,
    /// The signature line, as `GET …/checkpoint` serves it (with its final newline).
    pub cosignature: String,
    #[schema(format = DateTime)]
    pub received_at: String,
}

impl CosignatureBody {
    fn new(stored: &StoredCosignature) -> Result<CosignatureBody, ApiError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&stored.public_key)
            .map_err(|_| ApiError::internal())?;
        let witness =
            WitnessKey::new(&stored.witness_name, key).map_err(|_| ApiError::internal())?;
        let cosignature = Cosignature {
            name: stored.witness_name.clone(),
            key_id: stored.key_id,
            timestamp: stored.cosigned_at,
            signature: stored.signature,
        };
        Ok(CosignatureBody {
            tree_size: stored.tree_size,
            witness_name: stored.witness_name.clone(),
            witness_key_id: hex::encode(stored.key_id),
            witness_key: witness.to_vkey(),
            timestamp: stored.cosigned_at,
            cosignature: cosignature.line(),
            received_at: format_timestamp(stored.received_at),
        })
    }
}

/// How far ahead of the service's clock a cosignature's timestamp may be.
const COSIGNATURE_CLOCK_SKEW_SECONDS: u64 = 300;

fn unknown_checkpoint(size: u64) -> ApiError {
    ApiError::new(
        codes::UNKNOWN_CHECKPOINT,
        format!(
            "this service signed no checkpoint of this ledger with this body at tree size {size}"
        ),
    )
    .with("tree_size", Value::from(size))
}

/// Records a witness's cosignature (C2SP `tlog-cosignature`, cosignature/v1, Ed25519) of a
/// checkpoint this service signed: the note's body must be that of a recorded checkpoint of
/// this ledger, and its cosignature line by the key given must verify. One cosignature is kept
/// per checkpoint and witness key, the first posted: posting it again (or another by the same
/// key for the same checkpoint) answers `200` with the one kept. The witness and the checkpoint
/// identify the request, so an `Idempotency-Key` is optional. The service does not vet witness
/// keys: a client trusts the cosignatures of the keys it knows and ignores the rest.
#[utoipa::path(
    post,
    path = "/v1/ledgers/{ledger}/checkpoint/cosignatures",
    tag = "audit",
    params(("ledger" = String, Path, description = "Ledger name"), IdempotencyKeyHeader),
    request_body = CosignatureRequest,
    responses(
        (status = 201, description = "Recorded", body = CosignatureBody),
        (
            status = 200,
            description = "This witness key had co-signed this checkpoint already: the cosignature \
                           kept",
            body = CosignatureBody
        ),
        (status = 404, description = "`ledger_not_found`", body = Problem),
        (
            status = 409,
            description = "`too_many_cosignatures`: the checkpoint has as many as it may keep (64)",
            body = Problem
        ),
        (
            status = 422,
            description = "`unknown_checkpoint` (the body is not a checkpoint this service signed \
                           for the ledger), `cosignature_missing` (no line by the witness key \
                           given), `cosignature_invalid` (its line does not verify, or is dated \
                           more than 5 minutes ahead)",
            body = Problem
        )
    )
)]
#[post("/v1/ledgers/{ledger}/checkpoint/cosignatures")]
pub async fn post_cosignature(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<String>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let (posted, canonical): (CosignatureRequest, _) = parse_json_body(&request, &body, false)?;
    let claim = context.claim(&canonical, true)?;
    let claimed_at = crate::writer::now();
    let witness = WitnessKey::from_vkey(&posted.witness_key)
        .map_err(|error| ApiError::invalid_field("witness_key", error))?;
    let (text, _) =
        split_signed_note(&posted.note).map_err(|error| ApiError::invalid_field("note", error))?;
    let checkpoint = crate::audit::checkpoint::Checkpoint::from_note_text(text)
        .map_err(|error| ApiError::invalid_field("note", error))?;
    let stored = state
        .storage
        .recorded_checkpoint(ledger.id, checkpoint.size)
        .await?
        .ok_or_else(|| unknown_checkpoint(checkpoint.size))?;
    let stored_text = split_signed_note(&stored.note)
        .map(|(text, _)| text.to_owned())
        .map_err(|_| ApiError::internal())?;
    if stored_text != text {
        return Err(unknown_checkpoint(checkpoint.size));
    }
    let now = crate::writer::now();
    let now_seconds = u64::try_from(now.unix_micros() / 1_000_000).unwrap_or(0);
    let cosignature = find_cosignature(
        &posted.note,
        &witness,
        Some(now_seconds + COSIGNATURE_CLOCK_SKEW_SECONDS),
    )
    .map_err(|error| {
        let code = match error {
            CosignatureError::Missing { .. } => codes::COSIGNATURE_MISSING,
            _ => codes::COSIGNATURE_INVALID,
        };
        ApiError::new(code, error.to_string())
    })?;
    let row = StoredCosignature {
        tree_size: checkpoint.size,
        key_id: witness.key_id(),
        public_key: witness.verifying_key().to_bytes(),
        witness_name: witness.name().to_owned(),
        cosigned_at: cosignature.timestamp,
        signature: cosignature.signature,
        received_at: now,
        received_by: context.caller.key.id,
    };
    let request_id = context.request_id.clone();
    let operation = || async {
        let response = match state.storage.record_cosignature(ledger.id, &row).await? {
            Recorded::Created(kept) => CosignatureBody::new(&kept)
                .map(|body| json_response(StatusCode::CREATED, None, &body)),
            Recorded::Existing(kept) => {
                CosignatureBody::new(&kept).map(|body| json_response(StatusCode::OK, None, &body))
            }
            Recorded::Full => Err(ApiError::new(
                codes::TOO_MANY_COSIGNATURES,
                format!(
                    "the checkpoint of tree size {} has {MAX_COSIGNATURES_PER_CHECKPOINT} \
                     cosignatures, as many as it may keep",
                    checkpoint.size
                ),
            )),
        };
        Ok(response.unwrap_or_else(|error| error.to_stored(Some(&request_id))))
    };
    match state
        .storage
        .run_claimed(claim.as_ref(), claimed_at, operation)
        .await?
    {
        Idempotent::Applied(response) => Ok(send(&response, false)),
        Idempotent::Replayed(response) => Ok(send(&response, true)),
        Idempotent::KeyReused => Err(key_reused()),
    }
}

#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The event's seq (leaf index = seq − 1).
    pub seq: u64,
    /// The tree's size; default: the latest checkpoint's.
    pub tree_size: Option<u64>,
}

/// An RFC 9162 inclusion proof (hashes hex).
#[derive(Serialize, ToSchema)]
pub struct InclusionProofBody {
    pub seq: u64,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub event_hash: String,
    pub leaf_hash: String,
    pub root: String,
    pub proof: Vec<String>,
}

fn hexes(hashes: &[Hash32]) -> Vec<String> {
    hashes.iter().map(Hash32::to_hex).collect()
}

/// Prove that the event `seq` is in the tree of `tree_size` events.
#[utoipa::path(
    tag = "audit",
    params(("ledger" = String, Path, description = "Ledger name"), InclusionQuery),
    responses(
        (status = 200, body = InclusionProofBody),
        (status = 400, description = "`out_of_range`", body = Problem),
        (status = 404, body = Problem)
    )
)]
#[get("/v1/ledgers/{ledger}/proofs/inclusion")]
pub async fn inclusion_proof(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<InclusionQuery>,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let auditor = auditor(&state);
    let tree_size = match query.tree_size {
        Some(size) => size,
        None => auditor.latest_checkpoint(&ledger).await?.tree_size,
    };
    let proof = auditor
        .inclusion_proof(&ledger, query.seq, tree_size)
        .await?;
    Ok(HttpResponse::Ok().json(InclusionProofBody {
        seq: proof.seq,
        leaf_index: proof.seq - 1,
        tree_size: proof.tree_size,
        event_hash: proof.event_hash.to_hex(),
        leaf_hash: crate::audit::merkle::leaf_hash(&proof.event_hash).to_hex(),
        root: proof.root.to_hex(),
        proof: hexes(&proof.proof),
    }))
}

#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    pub from_size: u64,
    /// Default: the latest checkpoint's size.
    pub to_size: Option<u64>,
}

/// An RFC 9162 consistency proof (hashes hex).
#[derive(Serialize, ToSchema)]
pub struct ConsistencyProofBody {
    pub from_size: u64,
    pub to_size: u64,
    pub from_root: String,
    pub to_root: String,
    pub proof: Vec<String>,
}

/// Prove that the tree of `from_size` events is a prefix of the tree of `to_size` events.
#[utoipa::path(
    tag = "audit",
    params(("ledger" = String, Path, description = "Ledger name"), ConsistencyQuery),
    responses(
        (status = 200, body = ConsistencyProofBody),
        (status = 400, description = "`out_of_range`", body = Problem),
        (status = 404, body = Problem)
    )
)]
#[get("/v1/ledgers/{ledger}/proofs/consistency")]
pub async fn consistency_proof(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ConsistencyQuery>,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let auditor = auditor(&state);
    let to_size = match query.to_size {
        Some(size) => size,
        None => auditor.latest_checkpoint(&ledger).await?.tree_size,
    };
    let proof = auditor
        .consistency_proof(&ledger, query.from_size, to_size)
        .await?;
    Ok(HttpResponse::Ok().json(ConsistencyProofBody {
        from_size: proof.from_size,
        to_size: proof.to_size,
        from_root: proof.from_root.to_hex(),
        to_root: proof.to_root.to_hex(),
        proof: hexes(&proof.proof),
    }))
}

// ---------------------------------------------------------------- audit trail

/// One posting of an account, with the account's balances right after it.
#[derive(Serialize, ToSchema)]
pub struct EntryBody {
    /// The event that made the posting.
    pub seq: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    #[schema(format = DateTime)]
    pub at: String,
    pub transfer_id: uuid::Uuid,
    #[schema(value_type = NormalSideBody)]
    pub side: String,
    /// Change of the pending balance of that side (negative when a reservation is released).
    pub pending_delta: String,
    /// Change of the posted balance of that side.
    pub posted_delta: String,
    pub posted_debits: String,
    pub posted_credits: String,
    pub pending_debits: String,
    pub pending_credits: String,
    /// The running posted balance on the account's normal side.
    pub posted_balance: String,
    pub available_balance: String,
}

impl EntryBody {
    fn new(entry: &Entry, normal_side: NormalSide) -> EntryBody {
        let balances = &entry.balances_after;
        EntryBody {
            seq: entry.seq,
            event_type: entry.event_type.clone(),
            at: format_timestamp(entry.at),
            transfer_id: entry.transfer_id.as_uuid(),
            side: entry.side.as_str().to_owned(),
            pending_delta: entry.pending_delta.to_string(),
            posted_delta: entry.posted_delta.to_string(),
            posted_debits: balances.posted_debits.to_string(),
            posted_credits: balances.posted_credits.to_string(),
            pending_debits: balances.pending_debits.to_string(),
            pending_credits: balances.pending_credits.to_string(),
            posted_balance: balances.posted_balance(normal_side).to_string(),
            available_balance: balances.available_balance(normal_side).to_string(),
        }
    }
}

async fn account_of(
    state: &AppState,
    path: web::Path<(String, String)>,
) -> Result<(std::sync::Arc<crate::storage::LedgerRecord>, Account), ApiError> {
    let (ledger, id) = path.into_inner();
    let ledger = state.ledgers.get(&ledger).await?;
    let id = AccountId::new(path_uuid("id", &id)?);
    let account = state
        .storage
        .account(ledger.id, id)
        .await?
        .ok_or(Rejection::AccountNotFound(id))?;
    Ok((ledger, account))
}

/// Every posting of an account, oldest first, with the running balance and the event's seq.
#[utoipa::path(
    tag = "audit",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Account id"),
        super::paging::PageQuery
    ),
    responses((status = 200, body = PageBody<EntryBody>), (status = 404, body = Problem))
)]
#[get("/v1/ledgers/{ledger}/accounts/{id}/entries")]
pub async fn entries(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<super::paging::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (ledger, account) = account_of(&state, path).await?;
    let limit = page_size(query.limit, &state.limits)?;
    let (entries, more) = state
        .storage
        .entries_page(
            ledger.id,
            &account,
            decode_cursor(query.cursor.as_deref())?,
            limit,
        )
        .await?;
    let next_cursor = if more {
        entries.last().map(|entry| encode_cursor(entry.seq as i64))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(PageBody {
        data: entries
            .iter()
            .map(|entry| EntryBody::new(entry, account.normal_side))
            .collect(),
        next_cursor,
    }))
}

#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BalanceQuery {
    /// The balances right after this event; default: now.
    pub as_of_seq: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct BalanceBody {
    pub account_id: uuid::Uuid,
    pub as_of_seq: u64,
    pub posted_debits: String,
    pub posted_credits: String,
    pub pending_debits: String,
    pub pending_credits: String,
    pub posted_balance: String,
    pub available_balance: String,
}

/// An account's balances at any point of the journal.
#[utoipa::path(
    tag = "audit",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Account id"),
        BalanceQuery
    ),
    responses(
        (status = 200, body = BalanceBody),
        (status = 400, description = "`out_of_range`", body = Problem),
        (status = 404, body = Problem)
    )
)]
#[get("/v1/ledgers/{ledger}/accounts/{id}/balance")]
pub async fn balance(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<BalanceQuery>,
) -> Result<HttpResponse, ApiError> {
    let (ledger, account) = account_of(&state, path).await?;
    let head = state.storage.ledger_head(ledger.id).await?.chain.seq;
    let seq = query.as_of_seq.unwrap_or(head);
    if seq > head || seq < account.opened_seq {
        return Err(ApiError::new(
            codes::OUT_OF_RANGE,
            format!(
                "as_of_seq must be {} (the account's opening) to {head} (the last event)",
                account.opened_seq
            ),
        ));
    }
    let balances = state
        .storage
        .balances_as_of(ledger.id, &account, seq)
        .await?;
    Ok(HttpResponse::Ok().json(BalanceBody {
        account_id: account.id.as_uuid(),
        as_of_seq: seq,
        posted_balance: balances.posted_balance(account.normal_side).to_string(),
        available_balance: balances.available_balance(account.normal_side).to_string(),
        posted_debits: balances.posted_debits.to_string(),
        posted_credits: balances.posted_credits.to_string(),
        pending_debits: balances.pending_debits.to_string(),
        pending_credits: balances.pending_credits.to_string(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AuditedEventBody {
    pub event: JournalEventBody,
    pub leaf_index: u64,
    /// Inclusion proof in the tree of the checkpoint (hex hashes).
    pub proof: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckpointBody {
    pub tree_size: u64,
    pub root: String,
    /// The signed note.
    pub note: String,
}

impl From<&StoredCheckpoint> for CheckpointBody {
    fn from(checkpoint: &StoredCheckpoint) -> CheckpointBody {
        CheckpointBody {
            tree_size: checkpoint.tree_size,
            root: checkpoint.root.to_hex(),
            note: checkpoint.note.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TransferAuditBody {
    pub transfer: TransferBody,
    /// The checkpoint the proofs are against: the latest, covering every event below.
    pub checkpoint: CheckpointBody,
    /// Its creation, its post, void or expiry, and its reversals, in order.
    pub events: Vec<AuditedEventBody>,
}

/// Every event of a transfer, each with its inclusion proof against the latest checkpoint.
#[utoipa::path(
    tag = "audit",
    params(
        ("ledger" = String, Path, description = "Ledger name"),
        ("id" = uuid::Uuid, Path, description = "Transfer id")
    ),
    responses((status = 200, body = TransferAuditBody), (status = 404, body = Problem))
)]
#[get("/v1/ledgers/{ledger}/transfers/{id}/audit")]
pub async fn transfer_audit(
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
    let seqs = state
        .storage
        .transfer_event_seqs(ledger.id, &transfer)
        .await?;
    let auditor = auditor(&state);
    let mut checkpoint = auditor.latest_checkpoint(&ledger).await?;
    if seqs.last().is_some_and(|last| *last > checkpoint.tree_size) {
        checkpoint = auditor.issue_checkpoint(&ledger).await?;
    }
    let mut events = Vec::new();
    for event in state.storage.events_by_seq(&ledger, &seqs).await? {
        let proof = auditor
            .inclusion_proof(&ledger, event.seq, checkpoint.tree_size)
            .await?;
        events.push(AuditedEventBody {
            leaf_index: event.seq - 1,
            proof: hexes(&proof.proof),
            event: JournalEventBody::from(&event),
        });
    }
    Ok(HttpResponse::Ok().json(TransferAuditBody {
        transfer: TransferBody::new(&ledger.name, &transfer),
        checkpoint: CheckpointBody::from(&checkpoint),
        events,
    }))
}

// ---------------------------------------------------------------- export

#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Default 1.
    pub from_seq: Option<u64>,
    /// Default: the last event.
    pub to_seq: Option<u64>,
}

/// The signed export of a range of the journal (docs/AUDIT_FORMAT.md), streamed as JSON lines:
/// the events, the checkpoint of the range's end, the balances there, a manifest and its
/// Ed25519 signature. Verify it offline with `ledger-verify`.
#[utoipa::path(
    tag = "audit",
    params(("ledger" = String, Path, description = "Ledger name"), ExportQuery),
    responses(
        (
            status = 200,
            description = "JSON lines",
            content_type = "application/x-ndjson",
            body = String
        ),
        (status = 400, description = "`out_of_range`", body = Problem),
        (status = 404, body = Problem)
    )
)]
#[get("/v1/ledgers/{ledger}/export")]
pub async fn export(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let size = auditor(&state).tree_size(&ledger).await?;
    let (from_seq, to_seq) = (query.from_seq.unwrap_or(1), query.to_seq.unwrap_or(size));
    if from_seq == 0 || from_seq > to_seq || to_seq > size {
        return Err(ApiError::new(
            codes::OUT_OF_RANGE,
            format!(
                "need 1 <= from_seq <= to_seq <= {size} (the last event), got {from_seq} and \
                 {to_seq}"
            ),
        ));
    }
    let (sender, receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    // Told when the export fails midway: the status is sent already, so the body must end
    // as a broken transfer (no final chunk), not as a complete download.
    let (failed, failure) = tokio::sync::oneshot::channel::<()>();
    let (storage, signer, task_ledger) =
        (state.storage.clone(), state.signer.clone(), ledger.clone());
    tokio::spawn(async move {
        let auditor = Auditor {
            storage: &storage,
            signer: &signer,
        };
        match auditor.export(&task_ledger, from_seq, to_seq, sender).await {
            Ok(()) | Err(AuditError::ClientGone) => {}
            Err(error) => {
                tracing::error!(ledger = %task_ledger.name, error = %error, "export failed midway");
                let _ = failed.send(());
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"{}-{from_seq}-{to_seq}.ndjson\"",
                ledger.name
            ),
        ))
        .streaming(export_body(receiver, failure)))
}

/// The export's chunks, then an error if the export failed midway: actix then closes the
/// connection without the chunked body's terminator, and clients (curl, reqwest, proxies) see
/// an incomplete transfer. The lines sent before the failure still reach the client.
fn export_body(
    chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
    failure: tokio::sync::oneshot::Receiver<()>,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    futures_util::stream::unfold(
        (chunks, Some(failure)),
        |(mut chunks, mut failure)| async move {
            if let Some(chunk) = chunks.recv().await {
                return Some((Ok(web::Bytes::from(chunk)), (chunks, failure)));
            }
            // The export has returned; its task reports a failure right after, or drops
            // the sender.
            failure.take()?.await.ok()?;
            // One pending poll first: actix writes out what it holds before polling the body
            // again, so the lines sent before the failure reach the client.
            tokio::task::yield_now().await;
            let error = actix_web::error::ErrorInternalServerError("the export failed midway");
            Some((Err(error), (chunks, None)))
        },
    )
}

// ---------------------------------------------------------------- integrity checks

#[derive(Serialize, ToSchema)]
pub struct IntegrityRunBody {
    pub id: uuid::Uuid,
    #[schema(value_type = IntegrityStatusSchema)]
    pub status: String,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// The last event checked.
    pub checked_seq: Option<u64>,
    /// What failed: `check` (`chain`, `merkle`, `replay`, `balanced_currencies`,
    /// `account_postings`, `running_balance`), `detail`, and `seq` or `account_id`.
    #[schema(value_type = Vec<Object>)]
    pub findings: Value,
}

impl From<&IntegrityRun> for IntegrityRunBody {
    fn from(run: &IntegrityRun) -> IntegrityRunBody {
        IntegrityRunBody {
            id: run.id,
            status: run.status.clone(),
            started_at: format_timestamp(run.started_at),
            finished_at: run.finished_at.map(format_timestamp),
            checked_seq: run.checked_seq,
            findings: run.findings.clone(),
        }
    }
}

/// Runs the integrity check now (§7): the chain (every hash, every link, no gap), the Merkle tree
/// against the stored frontier and the latest checkpoint, the journal replayed against the
/// stored balances, §4.2 and §4.3. Recorded as a run.
#[utoipa::path(
    tag = "audit",
    params(("ledger" = String, Path, description = "Ledger name"), IdempotencyKeyHeader),
    request_body(content = Option<EmptyRequest>, description = "Empty, or `{}`"),
    responses(
        (status = 201, description = "The run, passed or failed", body = IntegrityRunBody),
        (status = 404, body = Problem)
    )
)]
#[post("/v1/ledgers/{ledger}/integrity-checks")]
pub async fn run_integrity_check(
    state: web::Data<AppState>,
    context: RequestContext,
    request: HttpRequest,
    path: web::Path<String>,
    body: BodyBytes,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let (_, canonical): (EmptyRequest, _) = parse_json_body(&request, &body, true)?;
    let claim = context.claim(&canonical, false)?;
    let claimed_at = crate::writer::now();
    let operation = || async {
        let run = auditor(&state).record_integrity_check(&ledger).await?;
        Ok(json_response(
            StatusCode::CREATED,
            None,
            &IntegrityRunBody::from(&run),
        ))
    };
    match state
        .storage
        .run_claimed(claim.as_ref(), claimed_at, operation)
        .await?
    {
        Idempotent::Applied(response) => Ok(send(&response, false)),
        Idempotent::Replayed(response) => Ok(send(&response, true)),
        Idempotent::KeyReused => Err(key_reused()),
    }
}

/// The latest integrity check run.
#[utoipa::path(
    tag = "audit",
    params(("ledger" = String, Path, description = "Ledger name")),
    responses(
        (status = 200, body = IntegrityRunBody),
        (status = 404, description = "`no_integrity_check`", body = Problem)
    )
)]
#[get("/v1/ledgers/{ledger}/integrity-checks/latest")]
pub async fn latest_integrity_check(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ledger = state.ledgers.get(&path).await?;
    let run = state
        .storage
        .latest_integrity_run(ledger.id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                codes::NO_INTEGRITY_CHECK,
                "no integrity check has run on this ledger yet",
            )
        })?;
    Ok(HttpResponse::Ok().json(IntegrityRunBody::from(&run)))
}
