//! One writer per ledger, group commit.
//!
//! Requests for a ledger queue up in a bounded channel. The ledger's writer task takes whatever
//! has queued (up to a limit), and applies it as one batch in one database transaction
//! ([`Storage::run_batch`]): expiries due first, then each command in arrival order, each sealed
//! into the hash chain. After the commit every request gets its own outcome; a rejected command
//! only fails itself. Nothing is acknowledged before its batch committed.
//!
//! - `mod.rs`: the queue, the writer task, committing a batch of jobs and answering them;
//! - [`cache`]: the accounts a writer committed last, reused while its chain head stands;
//! - [`triage`]: what each job's Idempotency-Key decides (execute, replay, refuse) and the answers
//!   of a decided batch;
//! - [`plan`]: the pure heart — commands through the engine, events sealed into the chain, the rows
//!   to write.

mod cache;
mod plan;
mod triage;

pub use plan::{needs_of, plan_batch, Planned};

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::audit::{ChainHead, Provenance};
use crate::domain::*;
use crate::storage::idempotency::{IdempotencyClaim, StoredResponse};
use crate::storage::{LedgerRecord, Storage, StorageError};
use tracing::Instrument;

use cache::AccountCache;
use triage::decide_batch;

#[derive(Clone, Debug)]
pub struct WriterSettings {
    /// Requests waiting per ledger before new ones are refused with 503.
    pub queue_capacity: usize,
    /// Transfers (or other commands) per database transaction.
    pub max_batch_commands: usize,
    /// Expiries applied at the start of one batch.
    pub max_expiries_per_batch: usize,
    /// Database connections of the writers (their own pool: writes never wait behind reads).
    pub max_connections: usize,
    /// How often to look for pending transfers past their deadline in idle ledgers.
    pub expiry_interval_ms: u64,
}

impl Default for WriterSettings {
    fn default() -> WriterSettings {
        WriterSettings {
            queue_capacity: 10_000,
            max_batch_commands: 1_000,
            max_expiries_per_batch: 1_000,
            max_connections: 4,
            expiry_interval_ms: 1_000,
        }
    }
}

/// The state a command left behind (what its response shows).
#[derive(Clone, Debug, PartialEq)]
pub enum StateAfter {
    Account(Account),
    Transfer(Transfer),
    Transfers(Vec<Transfer>),
    Nothing,
}

/// What became of one command.
// Moved once per request from the writer to its handler; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Applied (`created`: it recorded events) or recognised as a retry of existing state.
    Done {
        state: StateAfter,
        created: bool,
        last_seq: u64,
        /// The batch's time: the `at` of the events the command appended.
        at: Timestamp,
    },
    Rejected(Rejection),
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the ledger's write queue is full")]
    Overloaded,
    #[error("the batch did not commit: {0}")]
    NotCommitted(String),
    #[error("the ledger's writer stopped")]
    Stopped,
    #[error("the connection broke during the commit and the outcome could not be read back")]
    OutcomeUnknown,
}

/// Renders the outcomes of a job's commands as the response to send and record.
pub type RenderResponse = Box<dyn Fn(&[Outcome]) -> StoredResponse + Send + Sync>;

/// What makes a write idempotent (§6): its scope, its fingerprint, and how to render its outcome
/// as the response recorded with the effect (the HTTP layer renders; the writer records).
pub struct IdempotentWrite {
    pub claim: IdempotencyClaim,
    pub render: RenderResponse,
}

/// What a submitted command gets back.
// Moved once per request from the writer to its handler; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Applied or refused, one outcome per command; the caller renders them (no Idempotency-Key).
    Decided(Vec<Outcome>),
    /// Applied or refused, and recorded under its Idempotency-Key in the same transaction.
    Recorded(StoredResponse),
    /// The key was used before for the same request: the original response.
    Replayed(StoredResponse),
    /// The key was used before for a different request.
    KeyReused,
}

/// A request's commands, applied in sequence in one batch, each with its own outcome.
struct Job {
    commands: Vec<Command>,
    provenance: Provenance,
    idempotency: Option<IdempotentWrite>,
    reply: oneshot::Sender<Result<Answer, WriteError>>,
}

/// The service's wall clock, in the journal's precision (µs). The writer reads it once per
/// batch (the batch's `at` is `max(now(), head.last_at)`); the shell also reads it wherever it
/// timestamps a row itself (ledger creation, API keys, checkpoints, statements, runs). The core
/// (`domain`, `audit`) never reads a clock: time is an argument there.
pub fn now() -> Timestamp {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    Timestamp::from_unix_micros(i64::try_from(nanos / 1000).expect("the clock is in range"))
}

pub struct Writers {
    storage: Storage,
    /// Where writer tasks run: the runtime that built the writers (the service's main runtime),
    /// not an HTTP worker's, where every database reply would wait behind queued requests.
    runtime: tokio::runtime::Handle,
    settings: WriterSettings,
    queues: Mutex<HashMap<i32, WriterHandle>>,
}

/// A ledger's running writer task and the sending end of its queue.
struct WriterHandle {
    sender: mpsc::Sender<Job>,
    task: JoinHandle<()>,
}

impl Writers {
    /// Must be called on the runtime the writer tasks should run on.
    /// The writers' own pool's connections (for `/metrics`).
    pub fn pool_connections(&self) -> crate::storage::PoolConnections {
        self.storage.pool_connections()
    }

    pub fn new(storage: Storage, settings: WriterSettings) -> Writers {
        Writers {
            storage,
            settings,
            runtime: tokio::runtime::Handle::current(),
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// Queues a command for the ledger's writer and waits for its batch to commit.
    pub async fn submit(
        &self,
        ledger: &LedgerRecord,
        commands: Vec<Command>,
        provenance: Provenance,
        idempotency: Option<IdempotentWrite>,
    ) -> Result<Answer, WriteError> {
        let (reply, answer) = oneshot::channel();
        let mut job = Job {
            commands,
            provenance,
            idempotency,
            reply,
        };
        for _attempt in 0..2 {
            let sender = self.sender_for(ledger);
            match sender.try_send(job) {
                Ok(()) => return answer.await.map_err(|_| WriteError::Stopped)?,
                Err(mpsc::error::TrySendError::Full(_)) => return Err(WriteError::Overloaded),
                Err(mpsc::error::TrySendError::Closed(returned)) => {
                    // The writer task ended (it panicked): start a new one.
                    self.queues.lock().expect("writer map").remove(&ledger.id);
                    job = returned;
                }
            }
        }
        Err(WriteError::Stopped)
    }

    fn sender_for(&self, ledger: &LedgerRecord) -> mpsc::Sender<Job> {
        let mut queues = self.queues.lock().expect("writer map");
        let handle = queues.entry(ledger.id).or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(self.settings.queue_capacity);
            let task = self.runtime.spawn(run_writer(
                ledger.clone(),
                receiver,
                self.storage.clone(),
                self.settings.clone(),
            ));
            WriterHandle { sender, task }
        });
        handle.sender.clone()
    }

    /// Has the ledger's writer apply the expiries that are due (an empty job: every batch starts
    /// with them). Several instances may ask at once: the head lock lets one expire each transfer.
    pub async fn expire_due(&self, ledger: &LedgerRecord) -> Result<(), WriteError> {
        self.submit(ledger, Vec::new(), Provenance::system(), None)
            .await
            .map(drop)
    }

    /// Stops taking work and waits until every queued command has been answered.
    pub async fn shutdown(&self) {
        let queues: Vec<_> = self.queues.lock().expect("writer map").drain().collect();
        for (_, handle) in queues {
            drop(handle.sender);
            let _ = handle.task.await;
        }
    }
}

async fn run_writer(
    ledger: LedgerRecord,
    mut receiver: mpsc::Receiver<Job>,
    storage: Storage,
    settings: WriterSettings,
) {
    let mut cache = AccountCache::default();
    while let Some(first) = receiver.recv().await {
        let mut jobs = vec![first];
        let mut weight = job_weight(&jobs[0]);
        while weight < settings.max_batch_commands {
            let Ok(job) = receiver.try_recv() else { break };
            weight += job_weight(&job);
            jobs.push(job);
        }
        metrics::gauge!("ledger_writer_queue_depth", "ledger" => ledger.name.to_string())
            .set(receiver.len() as f64);
        // One span per batch: in the logs of what it does, and exported over OTLP when set.
        let span = tracing::info_span!("batch", ledger = %ledger.name, jobs = jobs.len());
        let refused = commit_jobs(&ledger, jobs, &storage, &settings, &mut cache)
            .instrument(span)
            .await;
        // One request the database refuses must not fail the others it was batched with.
        for job in refused.unwrap_or_default() {
            let unanswered = commit_jobs(&ledger, vec![job], &storage, &settings, &mut cache).await;
            assert!(unanswered.is_none(), "a batch of one job answers it");
        }
    }
}

/// How many commands a job counts for against the batch limit (at least one).
fn job_weight(job: &Job) -> usize {
    job.commands
        .iter()
        .map(command_weight)
        .sum::<usize>()
        .max(1)
}

fn command_weight(command: &Command) -> usize {
    match command {
        Command::CreateTransfersAtomically(transfers) => transfers.len().max(1),
        Command::ExpireTransfers(ids) => ids.len().max(1),
        _ => 1,
    }
}

/// Runs the jobs as one batch and answers each, except when the database refused the batch's
/// data and it held several jobs: then nothing is answered and the jobs are returned, to be run
/// one by one so that only the offending one fails.
async fn commit_jobs(
    ledger: &LedgerRecord,
    jobs: Vec<Job>,
    storage: &Storage,
    settings: &WriterSettings,
    cache: &mut AccountCache,
) -> Option<Vec<Job>> {
    let started = std::time::Instant::now();
    let clock = now();
    let needs = batch_needs(&jobs, clock, settings);
    let held: &AccountCache = cache;
    // What the batch decided, handed out of the transaction here rather than in its result, so
    // that a COMMIT whose outcome is unknown can still be answered: the chain heads it started
    // from and would leave, and its answers.
    let decided: Mutex<Option<(ChainHead, ChainHead, Vec<Answer>)>> = Mutex::new(None);
    let result = storage
        .run_batch(ledger.id, &needs, held, |loaded| {
            let before = loaded.head.chain;
            let (writes, (answers, planned)) =
                decide_batch(ledger, loaded, &jobs, clock, &held.accounts);
            *decided.lock().expect("decided") = Some((before, planned.head_after, answers));
            (writes, planned)
        })
        .await;
    metrics::histogram!("ledger_batch_commands")
        .record(jobs.iter().map(|job| job.commands.len()).sum::<usize>() as f64);
    metrics::histogram!("ledger_batch_seconds").record(started.elapsed().as_secs_f64());
    match result {
        Ok(planned) => {
            metrics::gauge!("ledger_journal_head_seq", "ledger" => ledger.name.to_string())
                .set(planned.head_after.seq as f64);
            cache.refresh(planned);
            let (_, _, answers) = decided
                .lock()
                .expect("decided")
                .take()
                .expect("a committed batch was decided");
            for (job, answer) in jobs.into_iter().zip(answers) {
                count_idempotency_outcome(&answer);
                let _ = job.reply.send(Ok(answer));
            }
        }
        Err(StorageError::CommitOutcomeUnknown(reason)) => {
            cache.forget();
            let decided = decided.lock().expect("decided").take();
            let answers = settle_unknown_commit(ledger, storage, decided, &reason).await;
            for (job, answer) in jobs.into_iter().zip(answers) {
                let _ = job.reply.send(answer);
            }
        }
        Err(error) if jobs.len() > 1 && error.is_refused_data() => {
            tracing::warn!(
                ledger = %ledger.name,
                error = %error,
                jobs = jobs.len(),
                "the database refused a batch; running its jobs one by one"
            );
            cache.forget();
            return Some(jobs);
        }
        Err(error) => {
            tracing::error!(ledger = %ledger.name, error = %error, "batch did not commit");
            cache.forget();
            let error = WriteError::NotCommitted(describe(&error));
            for job in jobs {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
    }
    None
}

/// What the batch of these jobs must lock and load: what their commands touch, the expiries
/// due by `clock` (at most the settings' number), and their Idempotency-Keys' scopes.
fn batch_needs(
    jobs: &[Job],
    clock: Timestamp,
    settings: &WriterSettings,
) -> crate::storage::batch::BatchNeeds {
    let mut needs = needs_of(jobs.iter().flat_map(|job| &job.commands));
    needs.expire_due_at = Some(clock);
    needs.max_expiries = settings.max_expiries_per_batch;
    needs.idempotency_scopes = jobs
        .iter()
        .filter_map(|job| {
            job.idempotency
                .as_ref()
                .map(|write| write.claim.scope.clone())
        })
        .collect();
    needs
}

/// Counts the answers an Idempotency-Key decided without executing anything.
fn count_idempotency_outcome(answer: &Answer) {
    let outcome = match answer {
        Answer::Replayed(_) => "replayed",
        Answer::KeyReused => "key_reused",
        Answer::Decided(_) | Answer::Recorded(_) => return,
    };
    metrics::counter!("ledger_idempotency_outcomes_total", "outcome" => outcome).increment(1);
}

/// A batch whose COMMIT broke off: the chain head, read again on another connection, tells
/// whether it committed (the head the batch would leave: answer what it decided), or not (the
/// head it started from: nothing happened). A batch that appends no event leaves the head where
/// it was; answering what it decided is still right then, since it applied nothing either way.
/// When the head cannot be read, or moved elsewhere, the outcome stays unknown, and says so.
async fn settle_unknown_commit(
    ledger: &LedgerRecord,
    storage: &Storage,
    decided: Option<(ChainHead, ChainHead, Vec<Answer>)>,
    reason: &str,
) -> Vec<Result<Answer, WriteError>> {
    let Some((before, after, answers)) = decided else {
        return Vec::new();
    };
    // Settled: once every transaction holding the head row has ended, so a COMMIT still being
    // recovered or finished by the server is seen as what it became.
    let head = storage
        .ledger_head_settled(ledger.id)
        .await
        .map(|head| head.chain);
    let committed = head.as_ref().ok() == Some(&after);
    let not_committed = !committed && head.as_ref().ok() == Some(&before);
    tracing::warn!(
        ledger = %ledger.name,
        reason,
        committed,
        not_committed,
        "a batch's COMMIT broke off; the chain head tells its outcome"
    );
    answers
        .into_iter()
        .map(|answer| {
            if committed {
                Ok(answer)
            } else if not_committed {
                Err(WriteError::NotCommitted(
                    "the connection broke before the commit".into(),
                ))
            } else {
                Err(WriteError::OutcomeUnknown)
            }
        })
        .collect()
}

fn describe(error: &StorageError) -> String {
    match error {
        StorageError::Database(_) | StorageError::Pool(_) => {
            "the database could not commit the batch".into()
        }
        other => other.to_string(),
    }
}
