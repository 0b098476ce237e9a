//! What each job's Idempotency-Key decides before anything executes — run it, replay the
//! recorded response, or refuse a reused key — and the answers of a decided batch, with the
//! responses to record in its transaction.

use std::collections::HashMap;

use super::plan::{plan_batch, Planned};
use super::{Answer, Job, Outcome};
use crate::audit::Provenance;
use crate::domain::{Account, AccountId, Command, Timestamp};
use crate::storage::batch::{BatchWrites, Loaded};
use crate::storage::idempotency::{IdempotencyRecord, IdempotencyScope, StoredResponse};
use crate::storage::LedgerRecord;

/// How a job is handled in its batch, once its idempotency scope is known.
enum Triage {
    Execute,
    Replay(StoredResponse),
    KeyReused,
    /// Same scope as an earlier job of this batch: answered like it, if the request is the same.
    SameScopeAs {
        earlier: usize,
    },
}

fn triage(jobs: &[Job], records: &[IdempotencyRecord]) -> Vec<Triage> {
    let mut first_with_scope: HashMap<&IdempotencyScope, usize> = HashMap::new();
    jobs.iter()
        .enumerate()
        .map(|(index, job)| {
            let Some(write) = &job.idempotency else {
                return Triage::Execute;
            };
            if let Some(record) = records
                .iter()
                .find(|record| record.scope == write.claim.scope)
            {
                return if record.fingerprint == write.claim.fingerprint {
                    Triage::Replay(record.response.clone())
                } else {
                    Triage::KeyReused
                };
            }
            match first_with_scope.get(&write.claim.scope) {
                Some(earlier) => Triage::SameScopeAs { earlier: *earlier },
                None => {
                    first_with_scope.insert(&write.claim.scope, index);
                    Triage::Execute
                }
            }
        })
        .collect()
}

/// Decides a batch: replays what was decided before, plans the rest, renders and records the
/// responses of idempotent jobs. Runs inside the batch's transaction, scopes locked.
pub(super) fn decide_batch(
    ledger: &LedgerRecord,
    mut loaded: Loaded,
    jobs: &[Job],
    clock: Timestamp,
    held: &HashMap<AccountId, Account>,
) -> (BatchWrites, (Vec<Answer>, Planned)) {
    let records = std::mem::take(&mut loaded.idempotency_records);
    let triage = triage(jobs, &records);
    let executed: Vec<usize> = (0..jobs.len())
        .filter(|index| matches!(triage[*index], Triage::Execute))
        .collect();
    let commands = commands_of(jobs, &executed);
    let (mut writes, mut planned) = plan_batch(ledger, loaded, &commands, clock, held);
    let mut answers: Vec<Option<Answer>> = vec![None; jobs.len()];
    let mut outcomes = std::mem::take(&mut planned.outcomes).into_iter();
    for index in executed {
        let job_outcomes: Vec<Outcome> =
            outcomes.by_ref().take(jobs[index].commands.len()).collect();
        let (answer, record) = answer_executed(&jobs[index], job_outcomes, clock);
        answers[index] = Some(answer);
        writes.idempotency_records.extend(record);
    }
    for (index, decision) in triage.into_iter().enumerate() {
        if !matches!(decision, Triage::Execute) {
            answers[index] = Some(answer_not_executed(decision, jobs, index, &answers));
        }
    }
    let answers = answers
        .into_iter()
        .map(|answer| answer.expect("every job answered"))
        .collect();
    (writes, (answers, planned))
}

/// The commands of the executed jobs, in arrival order, each with its job's provenance.
fn commands_of(jobs: &[Job], executed: &[usize]) -> Vec<(Command, Provenance)> {
    executed
        .iter()
        .flat_map(|index| {
            jobs[*index]
                .commands
                .iter()
                .map(|command| (command.clone(), jobs[*index].provenance.clone()))
        })
        .collect()
}

/// The answer of an executed job, and the record of its response when it has a key.
fn answer_executed(
    job: &Job,
    outcomes: Vec<Outcome>,
    clock: Timestamp,
) -> (Answer, Option<IdempotencyRecord>) {
    let Some(write) = &job.idempotency else {
        return (Answer::Decided(outcomes), None);
    };
    let response = (write.render)(&outcomes);
    let record = IdempotencyRecord {
        scope: write.claim.scope.clone(),
        fingerprint: write.claim.fingerprint,
        response: response.clone(),
        created_at: clock,
    };
    (Answer::Recorded(response), Some(record))
}

/// The answer of a job its key decided: a replay, a reused key, or the answer of the earlier
/// job of this batch with the same key (a replay of it when the request is the same).
fn answer_not_executed(
    decision: Triage,
    jobs: &[Job],
    index: usize,
    answers: &[Option<Answer>],
) -> Answer {
    match decision {
        Triage::Execute => unreachable!("executed jobs are answered by answer_executed"),
        Triage::Replay(response) => Answer::Replayed(response),
        Triage::KeyReused => Answer::KeyReused,
        Triage::SameScopeAs { earlier } => match (
            &answers[earlier],
            &jobs[earlier].idempotency,
            &jobs[index].idempotency,
        ) {
            (Some(Answer::Recorded(response)), Some(first), Some(this))
                if first.claim.fingerprint == this.claim.fingerprint =>
            {
                Answer::Replayed(response.clone())
            }
            _ => Answer::KeyReused,
        },
    }
}
