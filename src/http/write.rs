//! The one path of every command that goes through a ledger's writer.

use actix_web::HttpResponse;

use super::context::{IdempotencyClaim, RequestContext};
use super::problem::ApiError;
use super::respond::{self, Intent};
use super::state::AppState;
use crate::domain::Command;
use crate::storage::idempotency::StoredResponse;
use crate::storage::LedgerRecord;
use crate::writer::{IdempotentWrite, Outcome};

/// Submits a request's commands to the ledger's writer (applied in sequence, in one batch) and
/// answers with `render` of their outcomes. With a claim, the rendered response is recorded with
/// the effect (or the original is replayed, or the reused key refused).
pub async fn submit<R>(
    state: &AppState,
    ledger: &LedgerRecord,
    context: &RequestContext,
    claim: Option<IdempotencyClaim>,
    commands: Vec<Command>,
    render: R,
) -> Result<HttpResponse, ApiError>
where
    R: Fn(&[Outcome]) -> StoredResponse + Clone + Send + Sync + 'static,
{
    let idempotency = claim.map(|claim| IdempotentWrite {
        claim,
        render: Box::new(render.clone()),
    });
    let answer = state
        .writers
        .submit(ledger, commands, context.provenance(), idempotency)
        .await?;
    respond::answer(answer, render)
}

/// Submits one command and answers with its outcome.
pub async fn submit_one(
    state: &AppState,
    ledger: &LedgerRecord,
    context: &RequestContext,
    claim: Option<IdempotencyClaim>,
    command: Command,
    intent: Intent,
) -> Result<HttpResponse, ApiError> {
    let name = ledger.name.clone();
    let request_id = context.request_id.clone();
    let render = move |outcomes: &[Outcome]| {
        assert_eq!(outcomes.len(), 1, "one command, one outcome");
        respond::render(&name, &outcomes[0], intent, &request_id)
    };
    submit(state, ledger, context, claim, vec![command], render).await
}
