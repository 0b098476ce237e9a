//! The one path of every command that goes through a ledger's writer.

use actix_web::HttpResponse;

use super::context::{IdempotencyClaim, RequestContext};
use super::problem::ApiError;
use super::respond::{self, Intent};
use super::state::AppState;
use crate::domain::Command;
use crate::storage::LedgerRecord;
use crate::writer::{IdempotentWrite, Outcome};

/// Submits a command to the ledger's writer on behalf of a request, and answers it. With a claim,
/// the response is recorded with the effect (or replayed, or refused as a reused key).
pub async fn submit(
    state: &AppState,
    ledger: &LedgerRecord,
    context: &RequestContext,
    claim: Option<IdempotencyClaim>,
    command: Command,
    intent: Intent,
) -> Result<HttpResponse, ApiError> {
    let name = ledger.name.clone();
    let request_id = context.request_id.clone();
    let render = move |outcome: &Outcome| respond::render(&name, outcome, intent, &request_id);
    let idempotency = claim.map(|claim| IdempotentWrite {
        scope: claim.scope,
        fingerprint: claim.fingerprint,
        render: Box::new(render.clone()),
    });
    let answer = state
        .writers
        .submit(ledger, command, context.provenance(), idempotency)
        .await?;
    respond::answer(answer, render)
}
