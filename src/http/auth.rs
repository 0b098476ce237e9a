//! Authentication and authorization (§9): bearer API keys, roles, ledger scopes, rate limits.
//!
//! One middleware decides every request from one table, [`POLICY`]: the route template and
//! method give a [`Permission`]; a route absent from the table is refused (fail closed). The
//! authorization matrix test checks that every documented route is in the table.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::codes;
use super::problem::ApiError;
use super::state::AppState;
use crate::audit::Hash32;
use crate::storage::keys::{ApiKey, Role};
use crate::storage::Storage;

/// What a route requires of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// No key needed: health, metrics, the OpenAPI document and its UI.
    Open,
    /// Read ledgers, accounts, transfers.
    Read,
    /// Create, post, void and reverse transfers.
    WriteTransfers,
    /// Open, freeze, unfreeze and close accounts.
    ManageAccounts,
    CreateLedgers,
    /// Create, list and revoke API keys (unrestricted admin keys only).
    ManageKeys,
    /// The journal, proofs, checkpoints, exports, integrity checks.
    Audit,
    /// Upload statements, run reconciliations, resolve their items (an `adjust` posts a
    /// transfer, so this belongs to the role that writes transfers).
    Reconcile,
}

/// Which roles hold which permissions: admin (ledgers, accounts, keys), writer (transfers),
/// auditor (journal, proofs, export); every role reads.
pub fn role_allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    match permission {
        Open | Read => true,
        WriteTransfers | Reconcile => role == Role::Writer,
        ManageAccounts | CreateLedgers | ManageKeys => role == Role::Admin,
        Audit => role == Role::Auditor,
    }
}

/// Every route, by method and actix route template, with what it requires.
#[rustfmt::skip]
pub const POLICY: &[(&str, &str, Permission)] = &[
    ("GET",    "/health/live",                                  Permission::Open),
    ("GET",    "/health/ready",                                 Permission::Open),
    ("GET",    "/metrics",                                      Permission::Open),
    ("GET",    "/openapi.json",                                 Permission::Open),
    ("GET",    "/docs/{_:.*}",                                  Permission::Open),
    ("GET",    "/docs",                                         Permission::Open),
    ("POST",   "/v1/ledgers",                                   Permission::CreateLedgers),
    ("GET",    "/v1/ledgers",                                   Permission::Read),
    ("GET",    "/v1/ledgers/{ledger}",                          Permission::Read),
    ("POST",   "/v1/ledgers/{ledger}/accounts",                 Permission::ManageAccounts),
    ("GET",    "/v1/ledgers/{ledger}/accounts",                 Permission::Read),
    ("GET",    "/v1/ledgers/{ledger}/accounts/{id}",            Permission::Read),
    ("POST",   "/v1/ledgers/{ledger}/accounts/{id}/freeze",     Permission::ManageAccounts),
    ("POST",   "/v1/ledgers/{ledger}/accounts/{id}/unfreeze",   Permission::ManageAccounts),
    ("POST",   "/v1/ledgers/{ledger}/accounts/{id}/close",      Permission::ManageAccounts),
    ("POST",   "/v1/ledgers/{ledger}/transfers",                Permission::WriteTransfers),
    ("POST",   "/v1/ledgers/{ledger}/transfers/batch",          Permission::WriteTransfers),
    ("GET",    "/v1/ledgers/{ledger}/transfers",                Permission::Read),
    ("GET",    "/v1/ledgers/{ledger}/transfers/{id}",           Permission::Read),
    ("POST",   "/v1/ledgers/{ledger}/transfers/{id}/post",      Permission::WriteTransfers),
    ("POST",   "/v1/ledgers/{ledger}/transfers/{id}/void",      Permission::WriteTransfers),
    ("POST",   "/v1/ledgers/{ledger}/transfers/{id}/reverse",   Permission::WriteTransfers),
    ("GET",    "/v1/ledgers/{ledger}/accounts/{id}/entries",    Permission::Read),
    ("GET",    "/v1/ledgers/{ledger}/accounts/{id}/balance",    Permission::Read),
    ("GET",    "/v1/ledgers/{ledger}/transfers/{id}/audit",     Permission::Audit),
    ("GET",    "/v1/ledgers/{ledger}/journal",                  Permission::Audit),
    ("GET",    "/v1/ledgers/{ledger}/checkpoint",               Permission::Audit),
    ("POST",   "/v1/ledgers/{ledger}/checkpoint/cosignatures",  Permission::Audit),
    ("GET",    "/v1/ledgers/{ledger}/proofs/inclusion",         Permission::Audit),
    ("GET",    "/v1/ledgers/{ledger}/proofs/consistency",       Permission::Audit),
    ("GET",    "/v1/ledgers/{ledger}/export",                   Permission::Audit),
    ("POST",   "/v1/ledgers/{ledger}/integrity-checks",         Permission::Audit),
    ("GET",    "/v1/ledgers/{ledger}/integrity-checks/latest",  Permission::Audit),
    ("POST",   "/v1/ledgers/{ledger}/statements",               Permission::Reconcile),
    ("GET",    "/v1/ledgers/{ledger}/statements/{id}",          Permission::Read),
    ("POST",   "/v1/ledgers/{ledger}/reconciliations",          Permission::Reconcile),
    ("GET",    "/v1/ledgers/{ledger}/reconciliations/{id}",     Permission::Read),
    ("GET",    "/v1/ledgers/{ledger}/reconciliations/{id}/items", Permission::Read),
    (
        "POST",
        "/v1/ledgers/{ledger}/reconciliations/{id}/items/{item}/resolve",
        Permission::Reconcile
    ),
    ("GET",    "/v1/keys",                                      Permission::Read),
    ("POST",   "/v1/api-keys",                                  Permission::ManageKeys),
    ("GET",    "/v1/api-keys",                                  Permission::ManageKeys),
    ("DELETE", "/v1/api-keys/{id}",                             Permission::ManageKeys),
];

/// `405` with the route's methods in `Allow`, or `404` for a template no policy names.
fn method_not_allowed(method: &Method, template: &str) -> ApiError {
    let allowed: Vec<&str> = POLICY
        .iter()
        .filter(|(_, policy_template, _)| *policy_template == template)
        .map(|(policy_method, _, _)| *policy_method)
        .collect();
    if allowed.is_empty() {
        return ApiError::new(codes::ROUTE_NOT_FOUND, "no such route");
    }
    let mut error = ApiError::new(
        codes::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not a method of this route; it takes {}",
            allowed.join(", ")
        ),
    );
    error.allow = Some(allowed.join(", "));
    error
}

pub fn permission_for(method: &Method, template: &str) -> Option<Permission> {
    POLICY
        .iter()
        .find(|(policy_method, policy_template, _)| {
            *policy_method == method.as_str() && *policy_template == template
        })
        .map(|(_, _, permission)| *permission)
}

/// The authenticated caller of a request (in the request's extensions).
#[derive(Clone, Debug)]
pub struct Caller {
    pub key: Arc<ApiKey>,
}

impl Caller {
    /// The actor recorded in every event the request causes: the key's id.
    pub fn actor(&self) -> String {
        self.key.id.to_string()
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Caller, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            request
                .extensions()
                .get::<Caller>()
                .cloned()
                .ok_or_else(unauthenticated),
        )
    }
}

fn unauthenticated() -> ApiError {
    ApiError::new(
        codes::UNAUTHENTICATED,
        "this route needs an API key: Authorization: Bearer <key>",
    )
}

/// A new API key token: `lk_` and 32 random bytes, base64url. Shown once; stored as SHA-256.
pub fn generate_token() -> String {
    use rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("lk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Tokens are 32 to 256 visible ASCII characters (generated ones, or a bootstrap key).
pub fn token_is_well_formed(token: &str) -> bool {
    (32..=256).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_graphic())
}

/// A directory answer and when it was fetched (`None`: no such key, cached too).
type CachedKey = (Option<Arc<ApiKey>>, Instant);

/// API keys by token digest, cached briefly: a revocation is seen at once by the instance that
/// revoked and within [`KeyDirectory::CACHE_TTL`] by the others.
pub struct KeyDirectory {
    storage: Storage,
    cache: RwLock<HashMap<Hash32, CachedKey>>,
}

impl KeyDirectory {
    pub const CACHE_TTL: Duration = Duration::from_secs(2);
    const MAX_CACHED: usize = 10_000;

    pub fn new(storage: Storage) -> KeyDirectory {
        KeyDirectory {
            storage,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The unrevoked key with this token, if any.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Arc<ApiKey>>, ApiError> {
        let digest = Hash32::sha256(token.as_bytes());
        let cached = self.cache.read().expect("key cache").get(&digest).cloned();
        let key = match cached {
            Some((key, fetched)) if fetched.elapsed() < Self::CACHE_TTL => key,
            _ => {
                let key = self
                    .storage
                    .api_key_by_token_sha256(&digest)
                    .await?
                    .map(Arc::new);
                let mut cache = self.cache.write().expect("key cache");
                if cache.len() >= Self::MAX_CACHED {
                    cache.clear();
                }
                cache.insert(digest, (key.clone(), Instant::now()));
                key
            }
        };
        // The map found the key by digest; compare the digests once more in constant time.
        Ok(key.filter(|key| {
            bool::from(key.token_sha256.0.ct_eq(&digest.0)) && key.revoked_at.is_none()
        }))
    }

    /// Drops a key from the cache (after revoking it).
    pub fn forget(&self, id: Uuid) {
        self.cache
            .write()
            .expect("key cache")
            .retain(|_, (key, _)| key.as_ref().is_none_or(|key| key.id != id));
    }
}

/// Per-key request rate limits.
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<Uuid>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> RateLimits {
        RateLimits {
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            ),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(seconds to wait)` when the key is over its rate.
    fn check(&self, key: Uuid) -> Result<(), u64> {
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()).as_secs().max(1))
    }
}

/// The ledger a route names, if it names one (`/v1/ledgers/{ledger}/…`).
fn ledger_in(template: &str, path: &str) -> Option<String> {
    template
        .starts_with("/v1/ledgers/{ledger}")
        .then(|| path.split('/').nth(3).unwrap_or("").to_owned())
}

pub async fn middleware(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match authorize(&request).await {
        Ok(caller) => {
            if let Some(caller) = caller {
                request.extensions_mut().insert(caller);
            }
            next.call(request)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(error) => {
            let (request, _) = request.into_parts();
            Ok(
                ServiceResponse::new(request, actix_web::ResponseError::error_response(&error))
                    .map_into_right_body(),
            )
        }
    }
}

/// `Ok(None)` for open routes and routes that do not exist (they answer 404 themselves).
///
/// Routes are matched on the percent-decoded path, the one the router dispatches on: matching
/// the raw path would let `/v1/api-key%73` reach the keys handler as an unknown route, without
/// a key. Handlers of keyed routes also take a `Caller`, so a route this misses answers 401.
async fn authorize(request: &ServiceRequest) -> Result<Option<Caller>, ApiError> {
    let path = request.match_info().as_str();
    let Some(template) = request.resource_map().match_pattern(path) else {
        return Ok(None);
    };
    let permission = permission_for(request.method(), &template)
        .ok_or_else(|| method_not_allowed(request.method(), &template))?;
    if permission == Permission::Open {
        return Ok(None);
    }
    let state = request
        .app_data::<web::Data<AppState>>()
        .expect("app state");
    if !request.headers().contains_key("authorization") {
        return Err(unauthenticated());
    }
    let token = bearer_token(request).ok_or_else(|| {
        ApiError::new(
            codes::INVALID_API_KEY,
            "the Authorization header must be `Bearer <key>` with a key this service issued",
        )
    })?;
    let key = state.keys.authenticate(token).await?.ok_or_else(|| {
        ApiError::new(codes::INVALID_API_KEY, "the API key is unknown or revoked")
    })?;
    if let Err(seconds) = state.rate_limits.check(key.id) {
        return Err(ApiError::new(
            codes::RATE_LIMITED,
            "this API key is over its request rate; retry later",
        )
        .retry_after(seconds));
    }
    if !role_allows(key.role, permission) {
        return Err(forbidden(format!(
            "a {} key may not call {} {template}",
            key.role.as_str(),
            request.method()
        )));
    }
    if permission == Permission::ManageKeys && key.ledgers.is_some() {
        return Err(forbidden(
            "only an admin key for every ledger manages API keys".into(),
        ));
    }
    if let Some(ledger) = ledger_in(&template, path) {
        if !key.covers(&ledger) {
            return Err(ledger_forbidden(&ledger));
        }
    }
    Ok(Some(Caller { key }))
}

pub fn ledger_forbidden(ledger: &str) -> ApiError {
    ApiError::new(
        codes::LEDGER_FORBIDDEN,
        format!("this API key does not cover ledger {ledger:?}"),
    )
}

fn forbidden(detail: String) -> ApiError {
    ApiError::new(codes::FORBIDDEN, detail)
}

fn bearer_token(request: &ServiceRequest) -> Option<&str> {
    let header = request.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = header.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && token_is_well_formed(token.trim()))
        .then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_reads_and_each_writes_only_its_own_resources() {
        for role in Role::ALL {
            assert!(role_allows(role, Permission::Read));
        }
        assert!(role_allows(Role::Writer, Permission::WriteTransfers));
        assert!(!role_allows(Role::Admin, Permission::WriteTransfers));
        assert!(!role_allows(Role::Reader, Permission::ManageAccounts));
        assert!(role_allows(Role::Auditor, Permission::Audit));
        assert!(!role_allows(Role::Writer, Permission::Audit));
    }

    #[test]
    fn generated_tokens_are_well_formed_and_distinct() {
        let (first, second) = (generate_token(), generate_token());
        assert!(token_is_well_formed(&first) && token_is_well_formed(&second));
        assert_ne!(first, second);
        assert!(!token_is_well_formed("short"));
        assert!(!token_is_well_formed(&format!(
            "{} with space",
            "x".repeat(40)
        )));
    }

    #[test]
    fn a_route_template_names_its_ledger() {
        assert_eq!(
            ledger_in("/v1/ledgers/{ledger}/accounts", "/v1/ledgers/main/accounts"),
            Some("main".into())
        );
        assert_eq!(ledger_in("/v1/ledgers", "/v1/ledgers"), None);
        assert_eq!(
            permission_for(&Method::DELETE, "/v1/ledgers"),
            None,
            "absent from the policy: refused"
        );
    }
}
