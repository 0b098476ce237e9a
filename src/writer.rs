//! One writer per ledger, group commit.
//!
//! Requests for a ledger queue up in a bounded channel. The ledger's writer task takes whatever
//! has queued (up to a limit), and applies it as one batch in one database transaction
//! ([`Storage::run_batch`]): expiries due first, then each command in arrival order, each sealed
//! into the hash chain. After the commit every request gets its own outcome; a rejected command
//! only fails itself. Nothing is acknowledged before its batch committed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::audit::merkle::{self, MerkleFrontier, SubtreeId};
use crate::audit::{ChainHead, Provenance};
use crate::audit::{Hash32, JournalEvent};
use crate::domain::*;
use crate::storage::batch::{BatchNeeds, BatchWrites, HeldAccounts, Loaded};
use crate::storage::idempotency::{IdempotencyRecord, IdempotencyScope, StoredResponse};
use crate::storage::reconciliation::{CompletedRun, ResolvedItem};
use crate::storage::{LedgerRecord, Storage, StorageError, StoredHead};

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

/// The state a command left behind, for its response.
#[derive(Clone, Debug, PartialEq)]
pub enum Snapshot {
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
        snapshot: Snapshot,
        created: bool,
        last_seq: u64,
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
}

/// Renders the outcomes of a job's commands as the response to send and record.
pub type RenderResponse = Box<dyn Fn(&[Outcome]) -> StoredResponse + Send + Sync>;

/// What makes a write idempotent (§6): its scope, its fingerprint, and how to render its outcome
/// as the response recorded with the effect (the HTTP layer renders; the writer records).
pub struct IdempotentWrite {
    pub scope: IdempotencyScope,
    pub fingerprint: Hash32,
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

/// Reads the wall clock for the writer: the only clock of the write path.
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
        let refused = run_batch(&ledger, jobs, &storage, &settings, &mut cache).await;
        // One request the database refuses must not fail the others it was batched with.
        for job in refused.unwrap_or_default() {
            let unanswered = run_batch(&ledger, vec![job], &storage, &settings, &mut cache).await;
            assert!(unanswered.is_none(), "a batch of one job answers it");
        }
    }
}

/// Whether the database refused the batch's data (SQLSTATE classes 22 data exception, 23
/// constraint violation, 54 program limit), as opposed to failing to run it (connection, timeout).
fn database_refused_data(error: &StorageError) -> bool {
    match error {
        StorageError::Database(error) => error
            .code()
            .is_some_and(|code| matches!(code.code().get(..2), Some("22" | "23" | "54"))),
        _ => false,
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

/// The accounts the writer committed last, current while the ledger's chain head is still
/// `head` (seq and hash: a seq alone could be reached again by another history, after a failover
/// to a replica that lost the tail): a batch loads only the accounts missing here. Another process writing the ledger
/// moves the head, and the batch then loads everything (see `storage::batch::HeldAccounts`).
#[derive(Default)]
struct AccountCache {
    head: Option<ChainHead>,
    accounts: HashMap<AccountId, Account>,
}

impl AccountCache {
    /// Bound on memory: past it the cache starts over (hot accounts come back at once).
    const MAX_ACCOUNTS: usize = 100_000;

    fn refresh(&mut self, planned: Planned) {
        if !planned.held_accounts_were_current
            || self.accounts.len() + planned.accounts_after.len() > Self::MAX_ACCOUNTS
        {
            self.accounts.clear();
        }
        self.accounts.extend(
            planned
                .accounts_after
                .into_iter()
                .map(|account| (account.id, account)),
        );
        self.head = Some(planned.head_after);
    }

    fn forget(&mut self) {
        self.head = None;
        self.accounts.clear();
    }
}

impl HeldAccounts for AccountCache {
    fn current_at(&self) -> Option<ChainHead> {
        self.head
    }

    fn holds(&self, id: AccountId) -> bool {
        self.accounts.contains_key(&id)
    }
}

/// Runs the jobs as one batch and answers each, except when the database refused the batch's
/// data and it held several jobs: then nothing is answered and the jobs are returned, to be run
/// one by one so that only the offending one fails.
async fn run_batch(
    ledger: &LedgerRecord,
    jobs: Vec<Job>,
    storage: &Storage,
    settings: &WriterSettings,
    cache: &mut AccountCache,
) -> Option<Vec<Job>> {
    let started = std::time::Instant::now();
    let clock = now();
    let mut needs = needs_of(jobs.iter().flat_map(|job| &job.commands));
    needs.expire_due_at = Some(clock);
    needs.max_expiries = settings.max_expiries_per_batch;
    needs.idempotency_scopes = jobs
        .iter()
        .filter_map(|job| job.idempotency.as_ref().map(|write| write.scope.clone()))
        .collect();
    let held: &AccountCache = cache;
    let result = storage
        .run_batch(ledger.id, &needs, held, |loaded| {
            decide_batch(ledger, loaded, &jobs, clock, &held.accounts)
        })
        .await;
    metrics::histogram!("ledger_batch_commands")
        .record(jobs.iter().map(|job| job.commands.len()).sum::<usize>() as f64);
    metrics::histogram!("ledger_batch_seconds").record(started.elapsed().as_secs_f64());
    match result {
        Ok((answers, planned)) => {
            cache.refresh(planned);
            for (job, answer) in jobs.into_iter().zip(answers) {
                let _ = job.reply.send(Ok(answer));
            }
        }
        Err(error) if jobs.len() > 1 && database_refused_data(&error) => {
            tracing::warn!(ledger = %ledger.name, error = %error, jobs = jobs.len(), "the database refused a batch; running its jobs one by one");
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
            if let Some(record) = records.iter().find(|record| record.scope == write.scope) {
                return if record.fingerprint == write.fingerprint {
                    Triage::Replay(record.response.clone())
                } else {
                    Triage::KeyReused
                };
            }
            match first_with_scope.get(&write.scope) {
                Some(earlier) => Triage::SameScopeAs { earlier: *earlier },
                None => {
                    first_with_scope.insert(&write.scope, index);
                    Triage::Execute
                }
            }
        })
        .collect()
}

/// Decides a batch: replays what was decided before, plans the rest, renders and records the
/// responses of idempotent jobs. Runs inside the batch's transaction, scopes locked.
fn decide_batch(
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
    let commands: Vec<(Command, Provenance)> = executed
        .iter()
        .flat_map(|index| {
            jobs[*index]
                .commands
                .iter()
                .map(|command| (command.clone(), jobs[*index].provenance.clone()))
        })
        .collect();
    let (mut writes, mut planned) = plan_batch(ledger, loaded, &commands, clock, held);

    let mut answers: Vec<Option<Answer>> = vec![None; jobs.len()];
    let mut outcomes = std::mem::take(&mut planned.outcomes).into_iter();
    for index in executed {
        let job_outcomes: Vec<Outcome> =
            outcomes.by_ref().take(jobs[index].commands.len()).collect();
        answers[index] = Some(match &jobs[index].idempotency {
            None => Answer::Decided(job_outcomes),
            Some(write) => {
                let response = (write.render)(&job_outcomes);
                writes.idempotency_records.push(IdempotencyRecord {
                    scope: write.scope.clone(),
                    fingerprint: write.fingerprint,
                    response: response.clone(),
                    created_at: clock,
                });
                Answer::Recorded(response)
            }
        });
    }
    for (index, decision) in triage.into_iter().enumerate() {
        let answer = match decision {
            Triage::Execute => continue,
            Triage::Replay(response) => Answer::Replayed(response),
            Triage::KeyReused => Answer::KeyReused,
            Triage::SameScopeAs { earlier } => match (
                &answers[earlier],
                &jobs[earlier].idempotency,
                &jobs[index].idempotency,
            ) {
                (Some(Answer::Recorded(response)), Some(first), Some(this))
                    if first.fingerprint == this.fingerprint =>
                {
                    Answer::Replayed(response.clone())
                }
                _ => Answer::KeyReused,
            },
        };
        answers[index] = Some(answer);
    }
    let answers = answers
        .into_iter()
        .map(|answer| answer.expect("every job answered"))
        .collect();
    (writes, (answers, planned))
}

fn describe(error: &StorageError) -> String {
    match error {
        StorageError::Database(_) | StorageError::Pool(_) => {
            "the database could not commit the batch".into()
        }
        other => other.to_string(),
    }
}

/// The accounts and transfers a set of commands may touch, to lock and load.
pub fn needs_of<'a>(commands: impl Iterator<Item = &'a Command>) -> BatchNeeds {
    let mut needs = BatchNeeds::default();
    let add_transfer = |needs: &mut BatchNeeds, new: &NewTransfer| {
        needs
            .account_ids
            .extend([new.debit_account_id, new.credit_account_id]);
        needs.transfer_ids.insert(new.id);
    };
    for command in commands {
        match command {
            Command::OpenAccount(new) => {
                needs.account_ids.insert(new.id);
                needs.account_codes.insert(new.code.clone());
            }
            Command::CreateTransfer(new) => add_transfer(&mut needs, new),
            Command::CreateTransfersAtomically(transfers) => transfers
                .iter()
                .for_each(|new| add_transfer(&mut needs, new)),
            Command::PostTransfer { id, .. } | Command::VoidTransfer(id) => {
                needs.transfer_ids.insert(*id);
            }
            Command::ReverseTransfer { id, reversal } => {
                needs.transfer_ids.extend([*id, reversal.id]);
            }
            Command::FreezeAccount(id)
            | Command::UnfreezeAccount(id)
            | Command::CloseAccount(id) => {
                needs.account_ids.insert(*id);
            }
            Command::ExpireTransfers(ids) => needs.transfer_ids.extend(ids.iter().copied()),
            Command::CompleteReconciliation(completed) => {
                needs.account_ids.insert(completed.account_id);
                needs.reconciliation_runs.insert(completed.id);
            }
            Command::ResolveReconciliationItem {
                resolution,
                adjustment,
            } => {
                needs
                    .reconciliation_items
                    .insert((resolution.reconciliation_id, resolution.item_no));
                needs.transfer_ids.extend(resolution.transfer_id);
                if let Some(new) = adjustment {
                    add_transfer(&mut needs, new);
                }
            }
        }
    }
    needs
}

/// What a planned batch leaves besides its writes.
#[derive(Debug)]
pub struct Planned {
    /// One per command, in order.
    pub outcomes: Vec<Outcome>,
    /// Every account the batch used, as it will be once the batch commits.
    pub accounts_after: Vec<Account>,
    /// The chain head once the batch commits.
    pub head_after: ChainHead,
    pub held_accounts_were_current: bool,
}

/// The pure heart of a batch: runs the commands through the engine on the loaded state (plus the
/// held accounts, when still current), seals the events into the chain, and lists what to write.
/// Deterministic in its inputs.
pub fn plan_batch(
    ledger: &LedgerRecord,
    loaded: Loaded,
    commands: &[(Command, Provenance)],
    clock: Timestamp,
    held: &HashMap<AccountId, Account>,
) -> (BatchWrites, Planned) {
    // Time never runs backwards in a ledger, even across processes with skewed clocks.
    let at = clock.max(loaded.head.last_at);
    let loaded_held_current = loaded.held_accounts_are_current;
    let (loaded_merkle, loaded_last_at) = (loaded.head.merkle.clone(), loaded.head.last_at);
    let missing_leaf_hashes = loaded.missing_leaf_hashes.clone();
    let mut book = Book::resume(ledger.name.clone(), &ledger.assets, loaded.head.chain.seq);
    loaded
        .accounts
        .into_iter()
        .for_each(|account| book.insert_loaded_account(account));
    if loaded.held_accounts_are_current {
        let mut wanted = needs_of(commands.iter().map(|(command, _)| command)).account_ids;
        wanted.extend(
            loaded
                .transfers
                .iter()
                .flat_map(|transfer| [transfer.debit_account_id, transfer.credit_account_id]),
        );
        for id in wanted {
            if book.account(id).is_none() {
                if let Some(account) = held.get(&id) {
                    book.insert_loaded_account(account.clone());
                }
            }
        }
    }
    loaded
        .transfers
        .into_iter()
        .for_each(|transfer| book.insert_loaded_transfer(transfer));
    loaded
        .reconciliations
        .into_iter()
        .for_each(|(id, run)| book.insert_loaded_reconciliation(id, run));
    let mut chain = loaded.head.chain;
    let mut applied_all = Vec::new();
    let mut sealed = Vec::new();

    let expiry = Command::ExpireTransfers(loaded.due_for_expiry);
    let expired = book
        .execute(&expiry, at)
        .expect("expiry skips what it cannot expire");
    seal_all(
        &mut chain,
        &book,
        &expired,
        &Provenance::system(),
        &mut sealed,
    );
    applied_all.extend(expired);

    let mut outcomes = Vec::with_capacity(commands.len());
    for (command, provenance) in commands {
        let outcome = match book.execute(command, at) {
            Ok(applied) => {
                seal_all(&mut chain, &book, &applied, provenance, &mut sealed);
                let created = !applied.is_empty();
                applied_all.extend(applied);
                Outcome::Done {
                    snapshot: snapshot_after(&book, command),
                    created,
                    last_seq: chain.seq,
                }
            }
            Err(rejection) => Outcome::Rejected(rejection),
        };
        outcomes.push(outcome);
    }
    let (merkle, merkle_nodes) = extend_tree(&loaded_merkle, &missing_leaf_hashes, &sealed);
    let mut writes = writes_for(
        &book,
        applied_all,
        sealed,
        StoredHead {
            chain,
            last_at: at,
            merkle,
        },
    );
    if writes.head.is_none() && !missing_leaf_hashes.is_empty() {
        // No event, but the tree caught up with the journal: store its frontier.
        writes.head = Some(StoredHead {
            chain,
            last_at: loaded_last_at,
            merkle: extend_tree(&loaded_merkle, &missing_leaf_hashes, &[]).0,
        });
    }
    writes.merkle_nodes = merkle_nodes;
    let planned = Planned {
        outcomes,
        accounts_after: book.into_accounts().collect(),
        head_after: chain,
        held_accounts_were_current: loaded_held_current,
    };
    (writes, planned)
}

fn seal_all(
    chain: &mut ChainHead,
    book: &Book,
    applied: &[AppliedEvent],
    provenance: &Provenance,
    sealed: &mut Vec<crate::audit::JournalEvent>,
) {
    sealed.extend(
        applied
            .iter()
            .map(|event| chain.seal(book.name(), event, provenance)),
    );
}

fn snapshot_after(book: &Book, command: &Command) -> Snapshot {
    let transfer = |id: &TransferId| {
        book.transfer(*id)
            .cloned()
            .map_or(Snapshot::Nothing, Snapshot::Transfer)
    };
    let account = |id: &AccountId| {
        book.account(*id)
            .cloned()
            .map_or(Snapshot::Nothing, Snapshot::Account)
    };
    match command {
        Command::OpenAccount(new) => account(&new.id),
        Command::CreateTransfer(new) => transfer(&new.id),
        Command::CreateTransfersAtomically(transfers) => Snapshot::Transfers(
            transfers
                .iter()
                .filter_map(|new| book.transfer(new.id).cloned())
                .collect(),
        ),
        Command::PostTransfer { id, .. } | Command::VoidTransfer(id) => transfer(id),
        Command::ReverseTransfer { reversal, .. } => transfer(&reversal.id),
        Command::FreezeAccount(id) | Command::UnfreezeAccount(id) | Command::CloseAccount(id) => {
            account(id)
        }
        Command::ResolveReconciliationItem {
            adjustment: Some(new),
            ..
        } => transfer(&new.id),
        Command::ExpireTransfers(_)
        | Command::CompleteReconciliation(_)
        | Command::ResolveReconciliationItem { .. } => Snapshot::Nothing,
    }
}

/// Lists the rows a batch writes: entities created in it are inserted in their final state,
/// the others touched are updated.
/// The journal's Merkle tree after this batch: the frontier extended with the leaves it lacked
/// (a database from before the tree) and the batch's events, and the roots of the subtrees of
/// stored levels (256, 65,536, … leaves) these completed.
fn extend_tree(
    frontier: &MerkleFrontier,
    missing: &[Hash32],
    events: &[JournalEvent],
) -> (MerkleFrontier, Vec<(SubtreeId, Hash32)>) {
    let mut frontier = frontier.clone();
    let mut stored = Vec::new();
    for event_hash in missing.iter().chain(events.iter().map(|event| &event.hash)) {
        frontier
            .append_leaf_hash_reporting_subtrees(merkle::leaf_hash(event_hash), |id, hash| {
                if id.is_stored_level() {
                    stored.push((id, hash));
                }
            })
            .expect("a ledger never reaches 2^63 events");
    }
    (frontier, stored)
}

fn writes_for(
    book: &Book,
    applied: Vec<AppliedEvent>,
    events: Vec<crate::audit::JournalEvent>,
    head: StoredHead,
) -> BatchWrites {
    let mut new_accounts = BTreeSet::new();
    let mut touched_accounts = BTreeSet::new();
    let mut new_transfers = BTreeSet::new();
    let mut touched_transfers = BTreeSet::new();
    let mut postings = Vec::new();
    let mut completed_reconciliations = Vec::new();
    let mut resolved_items = Vec::new();
    for (event, sealed) in applied.into_iter().zip(&events) {
        match &event.event {
            LedgerEvent::AccountOpened(new) => {
                new_accounts.insert(new.id);
            }
            LedgerEvent::AccountFrozen(id)
            | LedgerEvent::AccountUnfrozen(id)
            | LedgerEvent::AccountClosed(id) => {
                touched_accounts.insert(*id);
            }
            LedgerEvent::TransferCreated(new) => {
                new_transfers.insert(new.id);
            }
            LedgerEvent::TransferReversed(new) => {
                new_transfers.insert(new.id);
                touched_transfers.extend(new.reverses);
            }
            LedgerEvent::TransferPosted { id, .. }
            | LedgerEvent::TransferVoided(id)
            | LedgerEvent::TransferExpired(id) => {
                touched_transfers.insert(*id);
            }
            LedgerEvent::ReconciliationCompleted(completed) => {
                completed_reconciliations.push(CompletedRun {
                    id: completed.id,
                    seq: event.seq,
                    at: event.at,
                });
            }
            LedgerEvent::ReconciliationItemResolved(resolution) => {
                resolved_items.push(ResolvedItem {
                    resolution: resolution.clone(),
                    seq: event.seq,
                    actor: sealed.actor.clone(),
                });
            }
            LedgerEvent::LedgerCreated(_) => unreachable!("genesis is not written by a batch"),
        }
        touched_accounts.extend(event.postings.iter().map(|posting| posting.account_id));
        postings.extend(
            event
                .postings
                .into_iter()
                .map(|posting| (event.seq, posting)),
        );
    }
    let accounts = |ids: &BTreeSet<AccountId>| {
        ids.iter()
            .map(|id| {
                book.account(*id)
                    .expect("touched accounts are loaded")
                    .clone()
            })
            .collect()
    };
    let transfers = |ids: &BTreeSet<TransferId>| {
        ids.iter()
            .map(|id| {
                book.transfer(*id)
                    .expect("touched transfers are loaded")
                    .clone()
            })
            .collect()
    };
    BatchWrites {
        new_accounts: accounts(&new_accounts),
        changed_accounts: accounts(
            &touched_accounts
                .difference(&new_accounts)
                .copied()
                .collect(),
        ),
        new_transfers: transfers(&new_transfers),
        changed_transfers: transfers(
            &touched_transfers
                .difference(&new_transfers)
                .copied()
                .collect(),
        ),
        postings,
        head: (!events.is_empty()).then_some(head),
        events,
        idempotency_records: Vec::new(),
        merkle_nodes: Vec::new(),
        completed_reconciliations,
        resolved_items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Hash32;
    use crate::domain::money::parse_amount;
    use uuid::Uuid;

    fn ledger() -> LedgerRecord {
        LedgerRecord {
            id: 1,
            name: LedgerName::parse("main").unwrap(),
            assets: vec![],
            metadata: Metadata::default(),
            created_at: Timestamp::from_unix_micros(0),
        }
    }

    fn wallet(n: u128, constraint: BalanceConstraint, credits: &str) -> Account {
        let new = NewAccount {
            id: AccountId::new(Uuid::from_u128(n)),
            code: AccountCode::parse(&format!("a{n}")).unwrap(),
            currency: Currency::iso("EUR").unwrap(),
            normal_side: NormalSide::Credit,
            constraint,
            metadata: Metadata::default(),
        };
        let mut account = Account::opened(new, Timestamp::from_unix_micros(0), n as u64);
        let mut posted_credits: rust_decimal::Decimal = credits.parse().unwrap();
        posted_credits.rescale(2);
        account.balances.posted_credits = posted_credits;
        account
    }

    fn transfer(n: u128, debit: u128, credit: u128, amount: &str) -> (Command, Provenance) {
        let new = NewTransfer {
            id: TransferId::new(Uuid::from_u128(n)),
            debit_account_id: AccountId::new(Uuid::from_u128(debit)),
            credit_account_id: AccountId::new(Uuid::from_u128(credit)),
            amount: parse_amount(amount, 2).unwrap(),
            currency: CurrencyCode::parse("EUR").unwrap(),
            code: None,
            reference: None,
            description: None,
            metadata: Metadata::default(),
            pending: false,
            timeout_seconds: None,
            reverses: None,
        };
        let provenance = Provenance {
            actor: "key".into(),
            request_id: Some(format!("r{n}")),
            idempotency_key: None,
        };
        (Command::CreateTransfer(new), provenance)
    }

    /// A head at `seq` whose tree holds `seq` leaves (stand-in event hashes).
    fn head_at(seq: u64, last_at: i64) -> StoredHead {
        let mut merkle = MerkleFrontier::new();
        for n in 0..seq {
            merkle
                .append_event_hash(&Hash32::sha256(&n.to_be_bytes()))
                .unwrap();
        }
        StoredHead {
            chain: ChainHead {
                seq,
                hash: Hash32::sha256(&seq.to_be_bytes()),
            },
            last_at: Timestamp::from_unix_micros(last_at),
            merkle,
        }
    }

    fn loaded(head: StoredHead, accounts: Vec<Account>, held_accounts_are_current: bool) -> Loaded {
        Loaded {
            head,
            accounts,
            held_accounts_are_current,
            transfers: vec![],
            due_for_expiry: vec![],
            idempotency_records: vec![],
            missing_leaf_hashes: vec![],
            reconciliations: vec![],
        }
    }

    #[test]
    fn a_rejected_command_fails_alone_and_the_others_chain_in_order() {
        let head = head_at(10, 5_000);
        let accounts = vec![
            wallet(1, BalanceConstraint::DebitsMustNotExceedCredits, "10"),
            wallet(2, BalanceConstraint::None, "0"),
        ];
        let commands = vec![
            transfer(100, 1, 2, "6"),
            transfer(101, 1, 2, "6"),
            transfer(102, 1, 2, "4"),
        ];
        let (writes, planned) = plan_batch(
            &ledger(),
            loaded(head.clone(), accounts, false),
            &commands,
            Timestamp::from_unix_micros(1_000),
            &HashMap::new(),
        );
        let outcomes = &planned.outcomes;

        assert!(matches!(
            outcomes[0],
            Outcome::Done {
                created: true,
                last_seq: 11,
                ..
            }
        ));
        assert_eq!(
            outcomes[1],
            Outcome::Rejected(Rejection::InsufficientFunds(AccountId::new(
                Uuid::from_u128(1)
            )))
        );
        assert!(matches!(
            outcomes[2],
            Outcome::Done {
                created: true,
                last_seq: 12,
                ..
            }
        ));

        assert_eq!(
            writes
                .events
                .iter()
                .map(|event| event.seq)
                .collect::<Vec<_>>(),
            [11, 12]
        );
        assert_eq!(writes.events[0].prev_hash, head.chain.hash);
        assert_eq!(writes.events[1].prev_hash, writes.events[0].hash);
        assert_eq!(
            writes.events[1].request_id.as_deref(),
            Some("r102"),
            "each event keeps its own request"
        );
        let stored_head = writes.head.unwrap();
        assert_eq!(
            stored_head.chain,
            ChainHead {
                seq: 12,
                hash: writes.events[1].hash
            }
        );
        assert_eq!(
            stored_head.last_at, head.last_at,
            "time never runs backwards: the head's later time wins"
        );
        assert_eq!(writes.new_transfers.len(), 2);
        assert_eq!(writes.postings.len(), 4);
        assert_eq!(writes.changed_accounts.len(), 2);
        assert_eq!(
            writes.changed_accounts[0]
                .balances
                .posted_debits
                .to_string(),
            "10.00"
        );
        assert!(writes.new_accounts.is_empty() && writes.changed_transfers.is_empty());
        assert_eq!(planned.head_after.seq, 12);
        assert_eq!(
            stored_head.merkle.size(),
            12,
            "the tree grows with the chain, in the same batch"
        );
        let mut expected = head.merkle.clone();
        writes
            .events
            .iter()
            .for_each(|event| expected.append_event_hash(&event.hash).unwrap());
        assert_eq!(stored_head.merkle.root(), expected.root());
        assert_eq!(
            planned.accounts_after.len(),
            2,
            "the cache learns the committed balances"
        );
    }

    #[test]
    fn a_batch_of_only_rejections_writes_nothing() {
        let (writes, planned) = plan_batch(
            &ledger(),
            loaded(head_at(3, 0), vec![], false),
            &[transfer(1, 1, 2, "1")],
            Timestamp::from_unix_micros(9),
            &HashMap::new(),
        );
        assert!(matches!(
            planned.outcomes[0],
            Outcome::Rejected(Rejection::AccountNotFound(_))
        ));
        assert!(writes.events.is_empty() && writes.head.is_none());
        assert_eq!(planned.head_after.seq, 3);
    }

    #[test]
    fn held_accounts_are_used_only_while_the_head_has_not_moved() {
        let held: HashMap<AccountId, Account> = [
            wallet(1, BalanceConstraint::DebitsMustNotExceedCredits, "10"),
            wallet(2, BalanceConstraint::None, "0"),
        ]
        .into_iter()
        .map(|account| (account.id, account))
        .collect();
        let commands = [transfer(100, 1, 2, "6")];
        let (current, planned) = plan_batch(
            &ledger(),
            loaded(head_at(5, 0), vec![], true),
            &commands,
            Timestamp::from_unix_micros(9),
            &held,
        );
        assert!(matches!(
            planned.outcomes[0],
            Outcome::Done { created: true, .. }
        ));
        assert_eq!(current.changed_accounts.len(), 2);

        // The head moved: the storage loaded what it needed, and stale held copies are ignored.
        let (_, planned) = plan_batch(
            &ledger(),
            loaded(head_at(6, 0), vec![], false),
            &commands,
            Timestamp::from_unix_micros(9),
            &held,
        );
        assert!(matches!(
            planned.outcomes[0],
            Outcome::Rejected(Rejection::AccountNotFound(_))
        ));
        assert!(!planned.held_accounts_were_current);
    }

    #[test]
    fn a_batch_that_completes_256_leaves_stores_their_subtree_root_and_a_lagging_tree_catches_up() {
        // The tree lags the chain by 3 events (a database from before the tree), at 250 leaves.
        let mut head = head_at(253, 0);
        let leaves: Vec<Hash32> = (0..253u64)
            .map(|n| Hash32::sha256(&n.to_be_bytes()))
            .collect();
        head.merkle = MerkleFrontier::new();
        leaves[..250]
            .iter()
            .for_each(|hash| head.merkle.append_event_hash(hash).unwrap());
        let mut loaded = loaded(
            head,
            vec![
                wallet(1, BalanceConstraint::None, "100"),
                wallet(2, BalanceConstraint::None, "0"),
            ],
            false,
        );
        loaded.missing_leaf_hashes = leaves[250..].to_vec();
        let commands: Vec<_> = (0..5).map(|n| transfer(100 + n, 1, 2, "1")).collect();
        let (writes, _) = plan_batch(
            &ledger(),
            loaded,
            &commands,
            Timestamp::from_unix_micros(9),
            &HashMap::new(),
        );

        let mut all_leaves: Vec<Hash32> = leaves.iter().map(merkle::leaf_hash).collect();
        all_leaves.extend(
            writes
                .events
                .iter()
                .map(|event| merkle::leaf_hash(&event.hash)),
        );
        let tree = merkle::InMemoryMerkleTree::from_leaf_hashes(all_leaves);
        let frontier = &writes.head.as_ref().unwrap().merkle;
        assert_eq!((frontier.size(), frontier.root()), (258, tree.root()));
        assert_eq!(
            writes.merkle_nodes.len(),
            1,
            "one subtree of 256 leaves completed"
        );
        let (id, hash) = writes.merkle_nodes[0];
        assert_eq!((id.level(), id.index()), (8, 0));
        assert_eq!(hash, tree.root_at_size(256).unwrap());
    }
}
