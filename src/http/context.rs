//! Who is asking, under which request id and Idempotency-Key: what every write records as its
//! provenance, and what makes it idempotent (§6).

use std::future::{ready, Ready};

use actix_web::{FromRequest, HttpMessage, HttpRequest};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth::Caller;
use super::codes;
use super::problem::ApiError;
use super::request_id::RequestId;
use crate::audit::{Hash32, Provenance};
use crate::storage::idempotency::IdempotencyScope;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// The authenticated caller of a request, its request id, and its Idempotency-Key.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub caller: Caller,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    method: String,
    path: String,
}

pub use crate::storage::idempotency::IdempotencyClaim;

impl RequestContext {
    pub fn provenance(&self) -> Provenance {
        Provenance {
            actor: self.caller.actor(),
            request_id: Some(self.request_id.clone()),
            idempotency_key: self.idempotency_key.clone(),
        }
    }

    /// The claim of a state-changing request. Without an Idempotency-Key the request needs a
    /// client-supplied id (`has_natural_key`), which then serves as its key: `None`.
    pub fn claim(
        &self,
        canonical_body: &Value,
        has_natural_key: bool,
    ) -> Result<Option<IdempotencyClaim>, ApiError> {
        match &self.idempotency_key {
            Some(key) => Ok(Some(IdempotencyClaim {
                scope: IdempotencyScope {
                    api_key_id: self.caller.key.id,
                    key: key.clone(),
                },
                fingerprint: fingerprint(&self.method, &self.path, canonical_body),
            })),
            None if has_natural_key => Ok(None),
            None => Err(ApiError::new(
                codes::IDEMPOTENCY_KEY_REQUIRED,
                "a state-changing request needs an Idempotency-Key header (or a client-supplied \
                 id in its body)",
            )),
        }
    }
}

/// SHA-256 over the method, the path and the RFC 8785 form of the body: two requests are the
/// same request when these are equal, whatever the body's key order or spacing.
pub fn fingerprint(method: &str, path: &str, canonical_body: &Value) -> Hash32 {
    let body = crate::audit::jcs::canonical_json(canonical_body);
    let mut bytes = Vec::with_capacity(method.len() + path.len() + body.len() + 2);
    bytes.extend_from_slice(method.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(path.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(&body);
    Hash32::sha256(&bytes)
}

fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            codes::INVALID_IDEMPOTENCY_KEY,
            format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} printable ASCII \
                 characters"
            ),
        )
    };
    let text = value.to_str().map_err(|_| invalid())?;
    let printable = text.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY_BYTES || !printable {
        return Err(invalid());
    }
    Ok(Some(text.to_owned()))
}

impl FromRequest for RequestContext {
    type Error = ApiError;
    type Future = Ready<Result<RequestContext, ApiError>>;

    fn from_request(request: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        let context = || -> Result<RequestContext, ApiError> {
            Ok(RequestContext {
                caller: request
                    .extensions()
                    .get::<Caller>()
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::new(codes::UNAUTHENTICATED, "this route needs an API key")
                    })?,
                request_id: request
                    .extensions()
                    .get::<RequestId>()
                    .map(|id| id.0.clone())
                    .unwrap_or_default(),
                idempotency_key: idempotency_key(request)?,
                method: request.method().to_string(),
                path: request.path().to_owned(),
            })
        };
        ready(context())
    }
}

/// Parses a JSON body into `T`, keeping the parsed value for the fingerprint. An empty body reads
/// as `{}` where `empty_is_object`, for actions whose fields are all optional; any other body,
/// a JSON `null` included, must be a JSON object (as the OpenAPI document says).
pub fn parse_json_body<T: DeserializeOwned>(
    request: &HttpRequest,
    body: &[u8],
    empty_is_object: bool,
) -> Result<(T, Value), ApiError> {
    let value = if empty_is_object && body.trim_ascii().is_empty() {
        Value::Object(Default::default())
    } else {
        let is_json = request
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .split(';')
                    .next()
                    .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::new(
                codes::UNSUPPORTED_MEDIA_TYPE,
                "the body must be application/json",
            ));
        }
        let StrictValue(value) = serde_json::from_slice::<StrictValue>(body)
            .map_err(|error| ApiError::new(codes::INVALID_BODY, error.to_string()))?;
        value
    };
    // serde would also read a struct from an array, by position, bypassing field names.
    if !value.is_object() {
        return Err(ApiError::new(
            codes::INVALID_BODY,
            "the body must be a JSON object",
        ));
    }
    let parsed = T::deserialize(&value)
        .map_err(|error| ApiError::new(codes::INVALID_BODY, error.to_string()))?;
    Ok((parsed, value))
}

/// A JSON value read like `serde_json::Value`, except that an object naming a key twice is an
/// error: with "last one wins", `{"amount":"1.00","amount":"1000.00"}` would move 1000.00 and
/// two different bodies would share one fingerprint.
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    /// `142.0` is the integer 142 (JSON Schema says so, and RFC 8785 writes it `142`, so the
    /// fingerprint and the journal cannot tell them apart either): read as one, so that an
    /// integer field accepts it.
    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        const EXACT: f64 = 9_007_199_254_740_991.0;
        if value.fract() == 0.0 && value.abs() <= EXACT {
            return Ok(Value::from(value as i64));
        }
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut array = Vec::new();
        while let Some(StrictValue(item)) = items.next_element()? {
            array.push(item);
        }
        Ok(Value::Array(array))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            let StrictValue(value) = entries.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// How long a request's body may take to arrive (`LEDGER_BODY_READ_TIMEOUT_MS`).
pub fn body_read_timeout(request: &HttpRequest) -> std::time::Duration {
    let millis = request
        .app_data::<actix_web::web::Data<super::state::AppState>>()
        .map_or(10_000, |state| state.limits.body_read_timeout_ms);
    std::time::Duration::from_millis(millis)
}

pub fn body_timeout() -> ApiError {
    ApiError::new(
        codes::BODY_TIMEOUT,
        "the request body did not arrive in time; nothing was applied",
    )
}

/// A request body read whole, within `LEDGER_MAX_BODY_BYTES` (over it, `413 body_too_large`)
/// and within `LEDGER_BODY_READ_TIMEOUT_MS` (after it, `408 body_timeout`).
pub struct BodyBytes(pub actix_web::web::Bytes);

impl std::ops::Deref for BodyBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl FromRequest for BodyBytes {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<BodyBytes, ApiError>>>>;

    fn from_request(request: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let bytes = actix_web::web::Bytes::from_request(request, payload);
        let timeout = body_read_timeout(request);
        Box::pin(async move {
            let bytes = tokio::time::timeout(timeout, bytes)
                .await
                .map_err(|_| body_timeout())?;
            bytes.map(BodyBytes).map_err(|error| {
                match error.as_error::<actix_web::error::PayloadError>() {
                    Some(actix_web::error::PayloadError::Overflow) => ApiError::new(
                        codes::BODY_TOO_LARGE,
                        "the request body is larger than the service accepts",
                    ),
                    _ => ApiError::new(
                        codes::INVALID_BODY,
                        format!("the request body could not be read: {error}"),
                    ),
                }
            })
        })
    }
}
