//! Who is asking, under which request id: what every write records as its provenance.

use std::future::{ready, Ready};

use actix_web::{FromRequest, HttpMessage, HttpRequest};

use super::problem::ApiError;
use super::request_id::RequestId;
use crate::audit::Provenance;

/// The caller of a request and its request id.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub actor: String,
    pub request_id: String,
}

impl RequestContext {
    pub fn provenance(&self, idempotency_key: Option<String>) -> Provenance {
        Provenance {
            actor: self.actor.clone(),
            request_id: Some(self.request_id.clone()),
            idempotency_key,
        }
    }
}

impl FromRequest for RequestContext {
    type Error = ApiError;
    type Future = Ready<Result<RequestContext, ApiError>>;

    fn from_request(request: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        ready(Ok(RequestContext {
            actor: "anonymous".to_owned(),
            request_id,
        }))
    }
}
