//! One batch of a ledger's commands = one database transaction (group commit).
//!
//! Locks are taken in a fixed order: the ledger's chain head row first (it serialises every
//! writer of the ledger, in any process), then the accounts the commands name, the transfers
//! they name, the transfers due to expire, the idempotency scopes (advisory locks, sorted); in a
//! second round trip the accounts reached through loaded transfers (all held ones when the head
//! moved), and last the reconciliation runs and items. The head lock excludes every other
//! writer, so the locks beneath it never wait. The caller's `decide` runs the pure engine
//! between loading and writing. Writes are array `unnest` statements pipelined on one
//! connection, then one commit.

use std::collections::BTreeSet;

use deadpool_postgres::GenericClient;
use futures_util::TryFutureExt;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::idempotency::{self, IdempotencyRecord, IdempotencyScope};
use super::reads::head_from_row;
use super::reconciliation::{self as reconciliation_rows, CompletedRun, ResolvedItem};
use super::rows::*;
use super::{Storage, StorageError, StoredHead};
use crate::audit::ChainHead;
use crate::audit::JournalEvent;
use crate::domain::reconciliation::RunRecord;
use crate::domain::*;

/// Opens a batch transaction. Every statement of a batch reads or writes rows by key, a few dozen
/// to a few thousand at a time. The keys come as an array, and each key probes its table through
/// a `LATERAL` subquery that the planner cannot flatten (`OFFSET 0`):
/// `unnest($2) AS wanted (id) CROSS JOIN LATERAL (SELECT … WHERE ledger_id = $1 AND id =
/// wanted.id OFFSET 0)`. The only plan for that is a nested loop probing the key's index on both
/// columns once per key; updates then reach the probed rows by `ctid` (a TID scan per row). A
/// plain `JOIN` on the same keys leaves the join order to the statistics: on a ledger of 39,000
/// never-analysed transfers the planner estimated 71 rows for `ledger_id = $1`, scanned the
/// whole ledger once, materialised it and compared every row with every key (39 million
/// comparisons, 3.6 s per batch, growing with the ledger). With sequential, bitmap, hash and
/// merge joins off as well, no statement of a batch can scan a whole ledger, whatever the
/// statistics claim. `tests/api/plans.rs` checks every batch statement's plan on unanalysed
/// ledgers of 40,000 and 200,000 rows.
///
/// The writers plan each statement with its actual parameters (custom plans): a generic plan
/// cached by a long-lived connection while the tables were empty could still be worse. Planning
/// costs about 0.5 ms per batch.
pub const BEGIN_BATCH: &str =
    "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; \
     SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

/// What a batch needs loaded, under lock, before the engine runs.
#[derive(Clone, Debug, Default)]
pub struct BatchNeeds {
    pub account_ids: BTreeSet<AccountId>,
    pub account_codes: BTreeSet<AccountCode>,
    pub transfer_ids: BTreeSet<TransferId>,
    /// Also load pending transfers whose deadline is at or before this time…
    pub expire_due_at: Option<Timestamp>,
    /// …at most this many of them.
    pub max_expiries: usize,
    /// Idempotency scopes to lock (after the head) and look up.
    pub idempotency_scopes: Vec<IdempotencyScope>,
    /// Reconciliation runs the commands complete or resolve items of…
    pub reconciliation_runs: BTreeSet<ReconciliationId>,
    /// …and the items they resolve.
    pub reconciliation_items: BTreeSet<(ReconciliationId, u64)>,
}

/// Accounts the caller already holds, as the journal left them at a given seq (the writer's
/// cache of what it committed). They are not loaded again while the chain head is still there.
pub trait HeldAccounts: Sync {
    /// The chain head at which the held accounts are current; `None` when none are held.
    fn current_at(&self) -> Option<ChainHead>;
    fn holds(&self, id: AccountId) -> bool;
}

/// Holds nothing: everything is loaded.
pub struct NoHeldAccounts;

impl HeldAccounts for NoHeldAccounts {
    fn current_at(&self) -> Option<ChainHead> {
        None
    }

    fn holds(&self, _: AccountId) -> bool {
        false
    }
}

/// The locked state a batch starts from.
#[derive(Debug)]
pub struct Loaded {
    pub head: StoredHead,
    /// The accounts loaded from the database: all those needed but the held ones, when
    /// `held_accounts_are_current`.
    pub accounts: Vec<Account>,
    /// Whether the held accounts are still current (the head has not moved since).
    pub held_accounts_are_current: bool,
    pub transfers: Vec<Transfer>,
    /// Pending transfers past their deadline, in expiry order (also in `transfers`).
    pub due_for_expiry: Vec<TransferId>,
    /// The records the locked idempotency scopes already have.
    pub idempotency_records: Vec<IdempotencyRecord>,
    /// Hashes of the events after the Merkle tree's size, up to the head (only in a database from
    /// before the tree existed: normally the tree has every event).
    pub missing_leaf_hashes: Vec<crate::audit::Hash32>,
    /// The completed runs among those needed, with the current resolution of the needed items.
    pub reconciliations: Vec<(ReconciliationId, RunRecord)>,
}

/// Everything a batch writes. Entities created in the batch are inserted in their final state
/// and must not appear among the changed ones.
#[derive(Debug, Default)]
pub struct BatchWrites {
    pub events: Vec<JournalEvent>,
    pub postings: Vec<(u64, Posting)>,
    pub new_accounts: Vec<Account>,
    pub changed_accounts: Vec<Account>,
    pub new_transfers: Vec<Transfer>,
    pub changed_transfers: Vec<Transfer>,
    pub head: Option<StoredHead>,
    /// Responses to record with the effects they describe (failures decided by the ledger too).
    pub idempotency_records: Vec<IdempotencyRecord>,
    /// Roots of the Merkle subtrees of stored levels the batch completed.
    pub merkle_nodes: Vec<(crate::audit::merkle::SubtreeId, crate::audit::Hash32)>,
    /// Runs whose completion event the batch appends.
    pub completed_reconciliations: Vec<CompletedRun>,
    /// Items whose resolution event the batch appends, in journal order.
    pub resolved_items: Vec<ResolvedItem>,
}

impl Storage {
    /// Runs one batch: begin, lock and load, `decide`, write, commit. Any error rolls back
    /// everything; nothing of a failed batch is acknowledged.
    pub async fn run_batch<R>(
        &self,
        ledger_id: i32,
        needs: &BatchNeeds,
        held: &dyn HeldAccounts,
        decide: impl FnOnce(Loaded) -> (BatchWrites, R),
    ) -> Result<R, StorageError> {
        let client = self.client().await?;
        let outcome = run_in_transaction(&client, ledger_id, needs, held, decide).await;
        if outcome.is_err() && client.batch_execute("ROLLBACK").await.is_err() {
            // The connection's state is unknown: keep it out of the pool.
            drop(deadpool_postgres::Object::take(client));
        }
        outcome
    }
}

async fn run_in_transaction<R>(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    needs: &BatchNeeds,
    held: &dyn HeldAccounts,
    decide: impl FnOnce(Loaded) -> (BatchWrites, R),
) -> Result<R, StorageError> {
    let mut phase = PhaseTimer::start();
    let loaded = lock_and_load(client, ledger_id, needs, held).await?;
    phase.record("lock_and_load");
    let (writes, result) = decide(loaded);
    phase.record("decide");
    if writes.events.is_empty() && writes.idempotency_records.is_empty() && writes.head.is_none() {
        client.batch_execute("ROLLBACK").await?;
        return Ok(result);
    }
    write(client, ledger_id, &writes).await?;
    phase.record("write");
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|error| match error.code() {
            // The server answered: it refused, nothing was committed.
            Some(_) => StorageError::Database(error),
            None => StorageError::CommitOutcomeUnknown(error.to_string()),
        })?;
    phase.record("commit");
    Ok(result)
}

/// Times the phases of a batch into the `ledger_batch_phase_seconds` histogram.
struct PhaseTimer(std::time::Instant);

impl PhaseTimer {
    fn start() -> PhaseTimer {
        PhaseTimer(std::time::Instant::now())
    }

    fn record(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        metrics::histogram!("ledger_batch_phase_seconds", "phase" => phase)
            .record((now - self.0).as_secs_f64());
        self.0 = now;
    }
}

async fn lock_and_load(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    needs: &BatchNeeds,
    held: &dyn HeldAccounts,
) -> Result<Loaded, StorageError> {
    let statements = LoadStatements::prepare(client).await?;
    let first = load_under_head_lock(client, &statements, ledger_id, needs, held).await?;
    let head = head_from_row(&first.head_row)?;
    let missing_leaf_hashes = leaves_after_tree(client, ledger_id, &head).await?;
    let mut accounts = rows_to(&first.account_rows, account_from_row)?;
    for account in rows_to(&first.coded_rows, account_from_row)? {
        if !accounts.iter().any(|known| known.id == account.id) {
            accounts.push(account);
        }
    }
    let (transfers, due_for_expiry) = transfers_and_due(&first, needs)?;
    let held_accounts_are_current = held.current_at() == Some(head.chain);
    let reached = reached_accounts(
        &accounts,
        &transfers,
        needs,
        held,
        held_accounts_are_current,
    );
    if !reached.is_empty() {
        let rows = client
            .query(&statements.accounts, &[&ledger_id, &reached])
            .await?;
        accounts.extend(rows_to(&rows, account_from_row)?);
    }
    let reconciliations = reconciliation_rows::lock_and_load_runs(client, ledger_id, needs).await?;
    Ok(Loaded {
        head,
        accounts,
        held_accounts_are_current,
        transfers,
        due_for_expiry,
        idempotency_records: first.idempotency_records,
        missing_leaf_hashes,
        reconciliations,
    })
}

/// What the first round trip of a batch brings back, as rows.
struct FirstRoundTrip {
    head_row: tokio_postgres::Row,
    account_rows: Vec<tokio_postgres::Row>,
    coded_rows: Vec<tokio_postgres::Row>,
    transfer_rows: Vec<tokio_postgres::Row>,
    due_rows: Vec<tokio_postgres::Row>,
    idempotency_records: Vec<IdempotencyRecord>,
}

/// One round trip, run by the server in this order: `BEGIN`, the head lock first, then the
/// accounts the commands name (but the held ones), the accounts by code, the transfers the
/// commands name, the transfers due to expire, and last the idempotency scopes (locked, then
/// looked up).
async fn load_under_head_lock(
    client: &deadpool_postgres::Object,
    statements: &LoadStatements,
    ledger_id: i32,
    needs: &BatchNeeds,
    held: &dyn HeldAccounts,
) -> Result<FirstRoundTrip, StorageError> {
    let is_held = |id: &AccountId| held.current_at().is_some() && held.holds(*id);
    let named_ids: Vec<Uuid> = needs
        .account_ids
        .iter()
        .filter(|id| !is_held(id))
        .map(AccountId::as_uuid)
        .collect();
    let codes: Vec<&str> = needs
        .account_codes
        .iter()
        .map(AccountCode::as_str)
        .collect();
    let transfer_ids: Vec<Uuid> = needs.transfer_ids.iter().map(TransferId::as_uuid).collect();
    let due_at = needs.expire_due_at.map(to_sql_time);
    let max_expiries = i64::try_from(needs.max_expiries).unwrap_or(i64::MAX);
    let load_due = async {
        match due_at {
            Some(due_at) if max_expiries > 0 => {
                client
                    .query(&statements.due, &[&ledger_id, &due_at, &max_expiries])
                    .await
            }
            _ => Ok(Vec::new()),
        }
    };
    let load_by_codes = async {
        match codes.is_empty() {
            true => Ok(Vec::new()),
            false => {
                client
                    .query(&statements.accounts_by_code, &[&ledger_id, &codes])
                    .await
            }
        }
    };
    let head_params: [&(dyn ToSql + Sync); 1] = [&ledger_id];
    let account_params: [&(dyn ToSql + Sync); 2] = [&ledger_id, &named_ids];
    let transfer_params: [&(dyn ToSql + Sync); 2] = [&ledger_id, &transfer_ids];
    let answers = futures_util::try_join!(
        client
            .batch_execute(BEGIN_BATCH)
            .map_err(StorageError::from),
        client
            .query_one(&statements.head, &head_params)
            .map_err(StorageError::from),
        client
            .query(&statements.accounts, &account_params)
            .map_err(StorageError::from),
        load_by_codes.map_err(StorageError::from),
        client
            .query(&statements.transfers, &transfer_params)
            .map_err(StorageError::from),
        load_due.map_err(StorageError::from),
        idempotency::lock_and_find(client, &needs.idempotency_scopes),
    )?;
    let (_, head_row, account_rows, coded_rows, transfer_rows, due_rows, idempotency_records) =
        answers;
    Ok(FirstRoundTrip {
        head_row,
        account_rows,
        coded_rows,
        transfer_rows,
        due_rows,
        idempotency_records,
    })
}

/// The transfers the commands named and those due to expire (once each), and the due ones' ids
/// in expiry order.
fn transfers_and_due(
    first: &FirstRoundTrip,
    needs: &BatchNeeds,
) -> Result<(Vec<Transfer>, Vec<TransferId>), StorageError> {
    let mut transfers = rows_to(&first.transfer_rows, transfer_from_row)?;
    let due = rows_to(&first.due_rows, transfer_from_row)?;
    let due_for_expiry = due.iter().map(|transfer| transfer.id).collect();
    transfers.extend(
        due.into_iter()
            .filter(|transfer| !needs.transfer_ids.contains(&transfer.id)),
    );
    Ok((transfers, due_for_expiry))
}

/// The accounts still to load, in id order (locked last, in a second round trip): those neither
/// loaded nor held that loaded transfers reach (post, void, reverse, expiry), and all held ones
/// when the head moved (another process wrote this ledger).
fn reached_accounts(
    loaded: &[Account],
    transfers: &[Transfer],
    needs: &BatchNeeds,
    held: &dyn HeldAccounts,
    held_accounts_are_current: bool,
) -> Vec<Uuid> {
    let loaded: BTreeSet<AccountId> = loaded.iter().map(|account| account.id).collect();
    let mut wanted: BTreeSet<AccountId> = transfers
        .iter()
        .flat_map(|transfer| [transfer.debit_account_id, transfer.credit_account_id])
        .collect();
    wanted.extend(needs.account_ids.iter().copied());
    wanted
        .iter()
        .filter(|id| !(loaded.contains(id) || held_accounts_are_current && held.holds(**id)))
        .map(AccountId::as_uuid)
        .collect()
}

/// The event hashes the Merkle tree lacks, in seq order (none in a database created with it).
async fn leaves_after_tree(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    head: &StoredHead,
) -> Result<Vec<crate::audit::Hash32>, StorageError> {
    if head.merkle.size() >= head.chain.seq {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT hash FROM journal WHERE ledger_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
            &[
                &ledger_id,
                &seq_to_sql(head.merkle.size()),
                &seq_to_sql(head.chain.seq),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| super::hash_from_sql(row.get(0)))
        .collect()
}

fn rows_to<T>(
    rows: &[tokio_postgres::Row],
    convert: fn(&tokio_postgres::Row) -> Result<T, StorageError>,
) -> Result<Vec<T>, StorageError> {
    rows.iter().map(convert).collect()
}

/// The texts of the statements that load a batch's state: accounts by id (locked), accounts by
/// code, transfers by id (locked), transfers due to expire (locked). The id arrays are sorted
/// (they come from ordered sets), and the probes run in array order: rows are locked by id.
pub fn load_statement_texts() -> [String; 4] {
    let accounts = format!(
        "SELECT {} FROM unnest($2::uuid[]) AS wanted (id) \
         CROSS JOIN LATERAL (SELECT * FROM accounts \
             WHERE ledger_id = $1 AND id = wanted.id OFFSET 0 FOR UPDATE) AS a",
        prefixed("a", ACCOUNT_COLUMNS)
    );
    // Codes are only looked up to refuse a duplicate: the head lock already excludes every
    // other writer of the ledger, so these rows need no lock of their own.
    let accounts_by_code = format!(
        "SELECT {} FROM unnest($2::text[]) AS wanted (code) \
         CROSS JOIN LATERAL (SELECT * FROM accounts \
             WHERE ledger_id = $1 AND code = wanted.code OFFSET 0) AS a",
        prefixed("a", ACCOUNT_COLUMNS)
    );
    let transfers = format!(
        "SELECT {} FROM unnest($2::uuid[]) AS wanted (id) \
         CROSS JOIN LATERAL (SELECT * FROM transfers \
             WHERE ledger_id = $1 AND id = wanted.id OFFSET 0 FOR UPDATE) AS t",
        prefixed("t", TRANSFER_COLUMNS)
    );
    // Due by the batch's time, `max(clock, head's last_at)`: the engine treats a transfer
    // past that as expired, so it must be loaded to be expired, even when another
    // process's clock moved the head ahead of this one's.
    let due = format!(
        "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE ledger_id = $1 AND state = 'pending' \
           AND expires_at <= GREATEST($2, (SELECT last_at FROM ledger_heads WHERE ledger_id = $1)) \
         ORDER BY expires_at, id LIMIT $3 FOR UPDATE"
    );
    [accounts, accounts_by_code, transfers, due]
}

/// The statements that update rows a batch changed, keyed by the batch's ids: each key probes
/// the primary key (see `BEGIN_BATCH`), then the row is updated through its `ctid`.
pub const UPDATE_ACCOUNTS: &str = "WITH targets AS ( \
         SELECT found.row_id, u.* \
         FROM unnest($2::uuid[], $3::text[], $4::numeric[], $5::numeric[], $6::numeric[], \
         $7::numeric[]) \
              AS u (id, status, posted_debits, posted_credits, pending_debits, pending_credits) \
         CROSS JOIN LATERAL (SELECT ctid AS row_id FROM accounts \
             WHERE ledger_id = $1 AND id = u.id OFFSET 0) AS found) \
     UPDATE accounts AS a SET status = t.status, \
        posted_debits = t.posted_debits, posted_credits = t.posted_credits, \
        pending_debits = t.pending_debits, pending_credits = t.pending_credits \
     FROM targets AS t WHERE a.ctid = t.row_id";

pub const UPDATE_TRANSFERS: &str = "WITH targets AS ( \
         SELECT found.row_id, u.* \
         FROM unnest($2::uuid[], $3::text[], $4::numeric[], $5::numeric[]) \
              AS u (id, state, posted_amount, reversed_amount) \
         CROSS JOIN LATERAL (SELECT ctid AS row_id FROM transfers \
             WHERE ledger_id = $1 AND id = u.id OFFSET 0) AS found) \
     UPDATE transfers AS tr SET state = t.state, \
        posted_amount = t.posted_amount, reversed_amount = t.reversed_amount \
     FROM targets AS t WHERE tr.ctid = t.row_id";

/// The statements that lock and load a batch's state. Every lookup probes a unique index once per
/// key, whatever the table statistics claim (see `BEGIN_BATCH`); rows are locked in id order.
struct LoadStatements {
    head: tokio_postgres::Statement,
    accounts: tokio_postgres::Statement,
    accounts_by_code: tokio_postgres::Statement,
    transfers: tokio_postgres::Statement,
    due: tokio_postgres::Statement,
}

impl LoadStatements {
    async fn prepare(client: &deadpool_postgres::Object) -> Result<LoadStatements, StorageError> {
        let [accounts, accounts_by_code, transfers, due] = load_statement_texts();
        let (head, accounts, accounts_by_code, transfers, due) = futures_util::try_join!(
            client.prepare_cached(
                "SELECT last_seq, last_hash, last_at, merkle_size, merkle_frontier FROM \
                 ledger_heads WHERE ledger_id = $1 FOR UPDATE",
            ),
            client.prepare_cached(&accounts),
            client.prepare_cached(&accounts_by_code),
            client.prepare_cached(&transfers),
            client.prepare_cached(&due),
        )?;
        Ok(LoadStatements {
            head,
            accounts,
            accounts_by_code,
            transfers,
            due,
        })
    }
}

async fn write(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    writes: &BatchWrites,
) -> Result<(), StorageError> {
    assert!(
        writes.head.is_some() || writes.events.is_empty(),
        "events move the head"
    );
    let move_head = async {
        let Some(head) = &writes.head else {
            return Ok(());
        };
        let statement = client
            .prepare_cached(
                "UPDATE ledger_heads SET last_seq = $2, last_hash = $3, last_at = $4, \
                 merkle_size = $5, merkle_frontier = $6 \
                 WHERE ledger_id = $1",
            )
            .await?;
        let (last_seq, last_hash, last_at) = (
            seq_to_sql(head.chain.seq),
            head.chain.hash.0.to_vec(),
            to_sql_time(head.last_at),
        );
        let (merkle_size, frontier) = (
            seq_to_sql(head.merkle.size()),
            super::frontier_to_sql(&head.merkle),
        );
        client
            .execute(
                &statement,
                &[
                    &ledger_id,
                    &last_seq,
                    &last_hash,
                    &last_at,
                    &merkle_size,
                    &frontier,
                ],
            )
            .await?;
        Ok::<(), StorageError>(())
    };
    futures_util::try_join!(
        insert_events(client, ledger_id, &writes.events),
        insert_postings(client, ledger_id, &writes.postings),
        insert_accounts(client, ledger_id, &writes.new_accounts),
        update_accounts(client, ledger_id, &writes.changed_accounts),
        insert_transfers(client, ledger_id, &writes.new_transfers),
        update_transfers(client, ledger_id, &writes.changed_transfers),
        idempotency::insert_records(client, &writes.idempotency_records),
        insert_merkle_nodes(client, ledger_id, &writes.merkle_nodes),
        reconciliation_rows::complete_runs(client, ledger_id, &writes.completed_reconciliations),
        reconciliation_rows::record_resolutions(client, ledger_id, &writes.resolved_items),
        move_head,
    )?;
    Ok(())
}

/// One column of a batch insert: its name, its SQL type, and the batch's values for it. One
/// list of columns drives both the statement's text and its parameters, so the two cannot
/// drift apart.
struct Column<'a> {
    name: &'static str,
    sql_type: &'static str,
    values: &'a (dyn ToSql + Sync),
}

impl<'a> Column<'a> {
    fn new(name: &'static str, sql_type: &'static str, values: &'a (dyn ToSql + Sync)) -> Self {
        Column {
            name,
            sql_type,
            values,
        }
    }
}

/// `INSERT INTO table (ledger_id, c2, c3…) SELECT $1, * FROM unnest($2::t2[], $3::t3[], …)`.
fn insert_rows_text(table: &str, columns: &[Column<'_>]) -> String {
    let names: Vec<&str> = columns.iter().map(|column| column.name).collect();
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| format!("${}::{}[]", index + 2, column.sql_type))
        .collect();
    format!(
        "INSERT INTO {table} (ledger_id, {}) SELECT $1, * FROM unnest({})",
        names.join(", "),
        arrays.join(", ")
    )
}

/// Inserts one row per element of the columns' arrays (all of one length), in one statement.
async fn insert_rows(
    client: &impl GenericClient,
    table: &str,
    ledger_id: i32,
    columns: &[Column<'_>],
) -> Result<(), StorageError> {
    let statement = client
        .prepare_cached(&insert_rows_text(table, columns))
        .await?;
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(columns.len() + 1);
    params.push(&ledger_id);
    params.extend(columns.iter().map(|column| column.values));
    client.execute(&statement, &params).await?;
    Ok(())
}

/// One column's values: `field` of every row.
fn each<'a, T, V>(rows: &'a [T], field: impl Fn(&'a T) -> V) -> Vec<V> {
    rows.iter().map(field).collect()
}

async fn insert_merkle_nodes(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    nodes: &[(crate::audit::merkle::SubtreeId, crate::audit::Hash32)],
) -> Result<(), StorageError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let statement = client
        .prepare_cached(
            "INSERT INTO merkle_nodes (ledger_id, level, index, hash) \
             SELECT $1, * FROM unnest($2::smallint[], $3::bigint[], $4::bytea[])",
        )
        .await?;
    let levels: Vec<i16> = nodes.iter().map(|(id, _)| id.level() as i16).collect();
    let indexes: Vec<i64> = nodes
        .iter()
        .map(|(id, _)| i64::try_from(id.index()).expect("index fits"))
        .collect();
    let hashes: Vec<&[u8]> = nodes.iter().map(|(_, hash)| hash.0.as_slice()).collect();
    client
        .execute(&statement, &[&ledger_id, &levels, &indexes, &hashes])
        .await?;
    Ok(())
}

/// Appends events to the journal. Also used for a ledger's genesis event.
pub(super) async fn insert_events(
    client: &impl GenericClient,
    ledger_id: i32,
    events: &[JournalEvent],
) -> Result<(), StorageError> {
    if events.is_empty() {
        return Ok(());
    }
    let seqs = each(events, |e| seq_to_sql(e.seq));
    let types = each(events, |e| e.event_type.as_str());
    let ats = each(events, |e| to_sql_time(e.at));
    let actors = each(events, |e| e.actor.as_str());
    let request_ids = each(events, |e| e.request_id.as_deref());
    let keys = each(events, |e| e.idempotency_key.as_deref());
    let data = each(events, |e| &e.data);
    let prev_hashes = each(events, |e| e.prev_hash.0.as_slice());
    let hashes = each(events, |e| e.hash.0.as_slice());
    let columns = [
        Column::new("seq", "bigint", &seqs),
        Column::new("type", "text", &types),
        Column::new("at", "timestamptz", &ats),
        Column::new("actor", "text", &actors),
        Column::new("request_id", "text", &request_ids),
        Column::new("idempotency_key", "text", &keys),
        Column::new("data", "jsonb", &data),
        Column::new("prev_hash", "bytea", &prev_hashes),
        Column::new("hash", "bytea", &hashes),
    ];
    insert_rows(client, "journal", ledger_id, &columns).await
}

async fn insert_postings(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    postings: &[(u64, Posting)],
) -> Result<(), StorageError> {
    if postings.is_empty() {
        return Ok(());
    }
    let account_ids = each(postings, |(_, p)| p.account_id.as_uuid());
    let seqs = each(postings, |(seq, _)| seq_to_sql(*seq));
    let transfer_ids = each(postings, |(_, p)| p.transfer_id.as_uuid());
    let sides = each(postings, |(_, p)| p.side.as_str());
    let pending_deltas = each(postings, |(_, p)| p.pending_delta);
    let posted_deltas = each(postings, |(_, p)| p.posted_delta);
    let posted_debits = each(postings, |(_, p)| p.balances_after.posted_debits);
    let posted_credits = each(postings, |(_, p)| p.balances_after.posted_credits);
    let pending_debits = each(postings, |(_, p)| p.balances_after.pending_debits);
    let pending_credits = each(postings, |(_, p)| p.balances_after.pending_credits);
    let columns = [
        Column::new("account_id", "uuid", &account_ids),
        Column::new("seq", "bigint", &seqs),
        Column::new("transfer_id", "uuid", &transfer_ids),
        Column::new("side", "text", &sides),
        Column::new("pending_delta", "numeric", &pending_deltas),
        Column::new("posted_delta", "numeric", &posted_deltas),
        Column::new("posted_debits_after", "numeric", &posted_debits),
        Column::new("posted_credits_after", "numeric", &posted_credits),
        Column::new("pending_debits_after", "numeric", &pending_debits),
        Column::new("pending_credits_after", "numeric", &pending_credits),
    ];
    insert_rows(client, "postings", ledger_id, &columns).await
}

fn balance_columns(accounts: &[Account]) -> [Vec<Decimal>; 4] {
    [
        accounts
            .iter()
            .map(|account| account.balances.posted_debits)
            .collect(),
        accounts
            .iter()
            .map(|account| account.balances.posted_credits)
            .collect(),
        accounts
            .iter()
            .map(|account| account.balances.pending_debits)
            .collect(),
        accounts
            .iter()
            .map(|account| account.balances.pending_credits)
            .collect(),
    ]
}

async fn insert_accounts(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    accounts: &[Account],
) -> Result<(), StorageError> {
    if accounts.is_empty() {
        return Ok(());
    }
    let ids = each(accounts, |a| a.id.as_uuid());
    let codes = each(accounts, |a| a.code.as_str());
    let currencies = each(accounts, |a| a.currency.code().as_str());
    let scales = each(accounts, |a| a.currency.scale() as i16);
    let sides = each(accounts, |a| a.normal_side.as_str());
    let constraints = each(accounts, |a| constraint_to_sql(a.constraint));
    let statuses = each(accounts, |a| a.status.as_str());
    let metadata = each(accounts, |a| metadata_to_json(&a.metadata));
    let [posted_debits, posted_credits, pending_debits, pending_credits] =
        balance_columns(accounts);
    let created = each(accounts, |a| to_sql_time(a.created_at));
    let seqs = each(accounts, |a| seq_to_sql(a.opened_seq));
    let columns = [
        Column::new("id", "uuid", &ids),
        Column::new("code", "text", &codes),
        Column::new("currency", "text", &currencies),
        Column::new("scale", "smallint", &scales),
        Column::new("normal_side", "text", &sides),
        Column::new("balance_constraint", "text", &constraints),
        Column::new("status", "text", &statuses),
        Column::new("metadata", "jsonb", &metadata),
        Column::new("posted_debits", "numeric", &posted_debits),
        Column::new("posted_credits", "numeric", &posted_credits),
        Column::new("pending_debits", "numeric", &pending_debits),
        Column::new("pending_credits", "numeric", &pending_credits),
        Column::new("created_at", "timestamptz", &created),
        Column::new("opened_seq", "bigint", &seqs),
    ];
    insert_rows(client, "accounts", ledger_id, &columns).await
}

async fn update_accounts(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    accounts: &[Account],
) -> Result<(), StorageError> {
    if accounts.is_empty() {
        return Ok(());
    }
    let statement = client.prepare_cached(UPDATE_ACCOUNTS).await?;
    let ids: Vec<Uuid> = accounts
        .iter()
        .map(|account| account.id.as_uuid())
        .collect();
    let statuses: Vec<&str> = accounts
        .iter()
        .map(|account| account.status.as_str())
        .collect();
    let [posted_debits, posted_credits, pending_debits, pending_credits] =
        balance_columns(accounts);
    let updated = client
        .execute(
            &statement,
            &[
                &ledger_id,
                &ids,
                &statuses,
                &posted_debits,
                &posted_credits,
                &pending_debits,
                &pending_credits,
            ],
        )
        .await?;
    if updated != accounts.len() as u64 {
        return Err(StorageError::Corrupt(format!(
            "updated {updated} of {} accounts",
            accounts.len()
        )));
    }
    Ok(())
}

async fn insert_transfers(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    transfers: &[Transfer],
) -> Result<(), StorageError> {
    if transfers.is_empty() {
        return Ok(());
    }
    let ids = each(transfers, |t| t.id.as_uuid());
    let debits = each(transfers, |t| t.debit_account_id.as_uuid());
    let credits = each(transfers, |t| t.credit_account_id.as_uuid());
    let amounts = each(transfers, |t| t.amount);
    let currencies = each(transfers, |t| t.currency.as_str());
    let codes = each(transfers, |t| t.code.as_ref().map(TransferCode::as_str));
    let references = each(transfers, |t| t.reference.as_ref().map(Reference::as_str));
    let descriptions = each(transfers, |t| {
        t.description.as_ref().map(Description::as_str)
    });
    let metadata = each(transfers, |t| metadata_to_json(&t.metadata));
    let pending = each(transfers, |t| t.pending);
    let timeouts = each(transfers, |t| t.timeout_seconds.map(|s| s as i32));
    let expires = each(transfers, |t| t.expires_at.map(to_sql_time));
    let states = each(transfers, |t| t.state.as_str());
    let reverses = each(transfers, |t| t.reverses.map(|id| id.as_uuid()));
    let posted = each(transfers, |t| t.posted_amount);
    let reversed = each(transfers, |t| t.reversed_amount);
    let created = each(transfers, |t| to_sql_time(t.created_at));
    let seqs = each(transfers, |t| seq_to_sql(t.journal_seq));
    let columns = [
        Column::new("id", "uuid", &ids),
        Column::new("debit_account_id", "uuid", &debits),
        Column::new("credit_account_id", "uuid", &credits),
        Column::new("amount", "numeric", &amounts),
        Column::new("currency", "text", &currencies),
        Column::new("code", "text", &codes),
        Column::new("reference", "text", &references),
        Column::new("description", "text", &descriptions),
        Column::new("metadata", "jsonb", &metadata),
        Column::new("pending", "boolean", &pending),
        Column::new("timeout_seconds", "integer", &timeouts),
        Column::new("expires_at", "timestamptz", &expires),
        Column::new("state", "text", &states),
        Column::new("reverses", "uuid", &reverses),
        Column::new("posted_amount", "numeric", &posted),
        Column::new("reversed_amount", "numeric", &reversed),
        Column::new("created_at", "timestamptz", &created),
        Column::new("journal_seq", "bigint", &seqs),
    ];
    insert_rows(client, "transfers", ledger_id, &columns).await
}

async fn update_transfers(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    transfers: &[Transfer],
) -> Result<(), StorageError> {
    if transfers.is_empty() {
        return Ok(());
    }
    let statement = client.prepare_cached(UPDATE_TRANSFERS).await?;
    let ids: Vec<Uuid> = transfers.iter().map(|t| t.id.as_uuid()).collect();
    let states: Vec<&str> = transfers.iter().map(|t| t.state.as_str()).collect();
    let posted: Vec<Decimal> = transfers.iter().map(|t| t.posted_amount).collect();
    let reversed: Vec<Decimal> = transfers.iter().map(|t| t.reversed_amount).collect();
    let updated = client
        .execute(&statement, &[&ledger_id, &ids, &states, &posted, &reversed])
        .await?;
    if updated != transfers.len() as u64 {
        return Err(StorageError::Corrupt(format!(
            "updated {updated} of {} transfers",
            transfers.len()
        )));
    }
    Ok(())
}

impl Storage {
    /// `EXPLAIN (FORMAT JSON)` of every keyed batch statement, planned as a batch plans it (in a
    /// batch transaction, with these keys), by name. For the test that holds the batch plans to
    /// their keys (`tests/api/plans.rs`).
    pub async fn explain_batch_statements(
        &self,
        ledger_id: i32,
        account_ids: &[Uuid],
        account_codes: &[&str],
        transfer_ids: &[Uuid],
        idempotency_keys: &[(Uuid, &str)],
    ) -> Result<Vec<(&'static str, Value)>, StorageError> {
        let client = self.client().await?;
        client.batch_execute(BEGIN_BATCH).await?;
        let [accounts, accounts_by_code, transfers, _] = load_statement_texts();
        let zeros = vec![Decimal::ZERO; account_ids.len()];
        let statuses = vec!["active"; account_ids.len()];
        let states = vec!["posted"; transfer_ids.len()];
        let amounts = vec![Decimal::ZERO; transfer_ids.len()];
        let (api_key_ids, keys): (Vec<Uuid>, Vec<&str>) = idempotency_keys.iter().copied().unzip();
        let statements: [(&'static str, String, Vec<&(dyn ToSql + Sync)>); 6] = [
            ("accounts by id", accounts, vec![&ledger_id, &account_ids]),
            (
                "accounts by code",
                accounts_by_code,
                vec![&ledger_id, &account_codes],
            ),
            (
                "transfers by id",
                transfers,
                vec![&ledger_id, &transfer_ids],
            ),
            (
                "update accounts",
                UPDATE_ACCOUNTS.to_owned(),
                vec![
                    &ledger_id,
                    &account_ids,
                    &statuses,
                    &zeros,
                    &zeros,
                    &zeros,
                    &zeros,
                ],
            ),
            (
                "update transfers",
                UPDATE_TRANSFERS.to_owned(),
                vec![&ledger_id, &transfer_ids, &states, &amounts, &amounts],
            ),
            (
                "idempotency records",
                idempotency::find_records_text(),
                vec![&api_key_ids, &keys],
            ),
        ];
        let mut plans = Vec::new();
        for (name, text, params) in statements {
            let row = client
                .query_one(&format!("EXPLAIN (FORMAT JSON) {text}"), &params)
                .await?;
            plans.push((name, row.get::<_, Value>(0)));
        }
        client.batch_execute("ROLLBACK").await?;
        Ok(plans)
    }
}
