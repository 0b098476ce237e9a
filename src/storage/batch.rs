//! One batch of a ledger's commands = one database transaction (group commit).
//!
//! Locks are taken in a fixed order: the ledger's chain head row first (it serialises every
//! writer of the ledger, in any process), then the transfers, then the accounts the batch
//! touches, each set by id. The caller's `decide` runs the pure engine between loading and
//! writing. Writes are array `unnest` statements pipelined on one connection, then one commit.

use std::collections::BTreeSet;

use deadpool_postgres::GenericClient;
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::reads::head_from_row;
use super::rows::*;
use super::{Storage, StorageError, StoredHead};
use crate::audit::JournalEvent;
use crate::domain::*;

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
}

/// The locked state a batch starts from.
#[derive(Debug)]
pub struct Loaded {
    pub head: StoredHead,
    pub accounts: Vec<Account>,
    pub transfers: Vec<Transfer>,
    /// Pending transfers past their deadline, in expiry order (also in `transfers`).
    pub due_for_expiry: Vec<TransferId>,
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
}

impl Storage {
    /// Runs one batch: begin, lock and load, `decide`, write, commit. Any error rolls back
    /// everything; nothing of a failed batch is acknowledged.
    pub async fn run_batch<R>(
        &self,
        ledger_id: i32,
        needs: &BatchNeeds,
        decide: impl FnOnce(Loaded) -> (BatchWrites, R),
    ) -> Result<R, StorageError> {
        let client = self.client().await?;
        let outcome = run_in_transaction(&client, ledger_id, needs, decide).await;
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
    decide: impl FnOnce(Loaded) -> (BatchWrites, R),
) -> Result<R, StorageError> {
    let loaded = lock_and_load(client, ledger_id, needs).await?;
    let (writes, result) = decide(loaded);
    if writes.events.is_empty() {
        client.batch_execute("ROLLBACK").await?;
        return Ok(result);
    }
    write(client, ledger_id, &writes).await?;
    client.batch_execute("COMMIT").await?;
    Ok(result)
}

async fn lock_and_load(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    needs: &BatchNeeds,
) -> Result<Loaded, StorageError> {
    // Lookups join on unnest: whatever plan is cached, it is one index probe per id.
    let transfer_sql = format!(
        "SELECT {} FROM unnest($2::uuid[]) AS wanted(id) \
         JOIN transfers t ON t.ledger_id = $1 AND t.id = wanted.id ORDER BY t.id FOR UPDATE OF t",
        prefixed("t", TRANSFER_COLUMNS)
    );
    let due_sql = format!(
        "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE ledger_id = $1 AND state = 'pending' AND expires_at <= $2 \
         ORDER BY expires_at, id LIMIT $3 FOR UPDATE"
    );
    let (head_statement, transfer_statement, due_statement) = futures_util::try_join!(
        client.prepare_cached(
            "SELECT last_seq, last_hash, last_at FROM ledger_heads WHERE ledger_id = $1 FOR UPDATE"
        ),
        client.prepare_cached(&transfer_sql),
        client.prepare_cached(&due_sql),
    )?;
    let transfer_ids: Vec<Uuid> = needs.transfer_ids.iter().map(TransferId::as_uuid).collect();
    let due_at = needs.expire_due_at.map(to_sql_time);
    let max_expiries = i64::try_from(needs.max_expiries).unwrap_or(i64::MAX);
    let load_due = async {
        match due_at {
            Some(due_at) if max_expiries > 0 => {
                client
                    .query(&due_statement, &[&ledger_id, &due_at, &max_expiries])
                    .await
            }
            _ => Ok(Vec::new()),
        }
    };
    let head_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&ledger_id];
    let transfer_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
        [&ledger_id, &transfer_ids];
    // Pipelined: the server runs them in this order, the head lock first.
    let (_, head_row, transfer_rows, due_rows) = futures_util::try_join!(
        client.batch_execute("BEGIN"),
        client.query_one(&head_statement, &head_params),
        client.query(&transfer_statement, &transfer_params),
        load_due,
    )?;
    let head = head_from_row(&head_row)?;
    let mut transfers = transfer_rows
        .iter()
        .map(transfer_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let due = due_rows
        .iter()
        .map(transfer_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let due_for_expiry = due.iter().map(|transfer| transfer.id).collect();
    transfers.extend(
        due.into_iter()
            .filter(|transfer| !needs.transfer_ids.contains(&transfer.id)),
    );

    let mut account_ids: BTreeSet<AccountId> = needs.account_ids.clone();
    account_ids.extend(
        transfers
            .iter()
            .flat_map(|transfer| [transfer.debit_account_id, transfer.credit_account_id]),
    );
    account_ids.extend(account_ids_with_codes(client, ledger_id, &needs.account_codes).await?);
    let account_ids: Vec<Uuid> = account_ids.iter().map(AccountId::as_uuid).collect();
    let account_sql = format!(
        "SELECT {} FROM unnest($2::uuid[]) AS wanted(id) \
         JOIN accounts a ON a.ledger_id = $1 AND a.id = wanted.id ORDER BY a.id FOR UPDATE OF a",
        prefixed("a", ACCOUNT_COLUMNS)
    );
    let account_statement = client.prepare_cached(&account_sql).await?;
    let account_rows = client
        .query(&account_statement, &[&ledger_id, &account_ids])
        .await?;
    let accounts = account_rows
        .iter()
        .map(account_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Loaded {
        head,
        accounts,
        transfers,
        due_for_expiry,
    })
}

/// Ids of the accounts holding these codes (only account openings ask), so that they are locked
/// with the others, by id.
async fn account_ids_with_codes(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    codes: &BTreeSet<AccountCode>,
) -> Result<Vec<AccountId>, StorageError> {
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    let codes: Vec<&str> = codes.iter().map(AccountCode::as_str).collect();
    let statement = client
        .prepare_cached(
            "SELECT a.id FROM unnest($2::text[]) AS wanted(code) \
             JOIN accounts a ON a.ledger_id = $1 AND a.code = wanted.code",
        )
        .await?;
    let rows = client.query(&statement, &[&ledger_id, &codes]).await?;
    Ok(rows.iter().map(|row| AccountId::new(row.get(0))).collect())
}

async fn write(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    writes: &BatchWrites,
) -> Result<(), StorageError> {
    let head = writes.head.expect("a batch with events moves the head");
    let head_sql =
        "UPDATE ledger_heads SET last_seq = $2, last_hash = $3, last_at = $4 WHERE ledger_id = $1";
    let head_statement = client.prepare_cached(head_sql).await?;
    let last_seq = seq_to_sql(head.chain.seq);
    let last_hash = head.chain.hash.0.to_vec();
    let last_at = to_sql_time(head.last_at);
    futures_util::try_join!(
        insert_events(client, ledger_id, &writes.events),
        insert_postings(client, ledger_id, &writes.postings),
        insert_accounts(client, ledger_id, &writes.new_accounts),
        update_accounts(client, ledger_id, &writes.changed_accounts),
        insert_transfers(client, ledger_id, &writes.new_transfers),
        update_transfers(client, ledger_id, &writes.changed_transfers),
        async {
            client
                .execute(
                    &head_statement,
                    &[&ledger_id, &last_seq, &last_hash, &last_at],
                )
                .await
                .map_err(StorageError::from)
        },
    )?;
    Ok(())
}

/// Appends events to the journal. Also used for a ledger's genesis event.
pub(super) async fn insert_events(
    client: &impl GenericClient,
    ledger_id: i32,
    events: &[JournalEvent],
) -> Result<(), StorageError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO journal (ledger_id, seq, type, at, actor, request_id, idempotency_key, data, prev_hash, hash) \
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], \
                                      $8::jsonb[], $9::bytea[], $10::bytea[])",
        )
        .await?;
    let seqs: Vec<i64> = events.iter().map(|event| seq_to_sql(event.seq)).collect();
    let types: Vec<&str> = events
        .iter()
        .map(|event| event.event_type.as_str())
        .collect();
    let ats: Vec<_> = events.iter().map(|event| to_sql_time(event.at)).collect();
    let actors: Vec<&str> = events.iter().map(|event| event.actor.as_str()).collect();
    let request_ids: Vec<Option<&str>> = events
        .iter()
        .map(|event| event.request_id.as_deref())
        .collect();
    let keys: Vec<Option<&str>> = events
        .iter()
        .map(|event| event.idempotency_key.as_deref())
        .collect();
    let data: Vec<&Value> = events.iter().map(|event| &event.data).collect();
    let prev_hashes: Vec<&[u8]> = events
        .iter()
        .map(|event| event.prev_hash.0.as_slice())
        .collect();
    let hashes: Vec<&[u8]> = events.iter().map(|event| event.hash.0.as_slice()).collect();
    client
        .execute(
            &statement,
            &[
                &ledger_id,
                &seqs,
                &types,
                &ats,
                &actors,
                &request_ids,
                &keys,
                &data,
                &prev_hashes,
                &hashes,
            ],
        )
        .await?;
    Ok(())
}

async fn insert_postings(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    postings: &[(u64, Posting)],
) -> Result<(), StorageError> {
    if postings.is_empty() {
        return Ok(());
    }
    let statement = client
        .prepare_cached(
            "INSERT INTO postings (ledger_id, account_id, seq, transfer_id, side, pending_delta, posted_delta, \
                                   posted_debits_after, posted_credits_after, pending_debits_after, pending_credits_after) \
             SELECT $1, * FROM unnest($2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::numeric[], $7::numeric[], \
                                      $8::numeric[], $9::numeric[], $10::numeric[], $11::numeric[])",
        )
        .await?;
    let column = |field: fn(&Posting) -> Decimal| {
        postings
            .iter()
            .map(|(_, posting)| field(posting))
            .collect::<Vec<_>>()
    };
    let account_ids: Vec<Uuid> = postings
        .iter()
        .map(|(_, posting)| posting.account_id.as_uuid())
        .collect();
    let seqs: Vec<i64> = postings.iter().map(|(seq, _)| seq_to_sql(*seq)).collect();
    let transfer_ids: Vec<Uuid> = postings
        .iter()
        .map(|(_, posting)| posting.transfer_id.as_uuid())
        .collect();
    let sides: Vec<&str> = postings
        .iter()
        .map(|(_, posting)| posting.side.as_str())
        .collect();
    client
        .execute(
            &statement,
            &[
                &ledger_id,
                &account_ids,
                &seqs,
                &transfer_ids,
                &sides,
                &column(|posting| posting.pending_delta),
                &column(|posting| posting.posted_delta),
                &column(|posting| posting.balances_after.posted_debits),
                &column(|posting| posting.balances_after.posted_credits),
                &column(|posting| posting.balances_after.pending_debits),
                &column(|posting| posting.balances_after.pending_credits),
            ],
        )
        .await?;
    Ok(())
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
    let statement = client
        .prepare_cached(
            "INSERT INTO accounts (ledger_id, id, code, currency, scale, normal_side, balance_constraint, status, metadata, \
                                   posted_debits, posted_credits, pending_debits, pending_credits, created_at, opened_seq) \
             SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::smallint[], $6::text[], $7::text[], $8::text[], \
                                      $9::jsonb[], $10::numeric[], $11::numeric[], $12::numeric[], $13::numeric[], \
                                      $14::timestamptz[], $15::bigint[])",
        )
        .await?;
    let ids: Vec<Uuid> = accounts
        .iter()
        .map(|account| account.id.as_uuid())
        .collect();
    let codes: Vec<&str> = accounts
        .iter()
        .map(|account| account.code.as_str())
        .collect();
    let currencies: Vec<&str> = accounts
        .iter()
        .map(|account| account.currency.code().as_str())
        .collect();
    let scales: Vec<i16> = accounts
        .iter()
        .map(|account| account.currency.scale() as i16)
        .collect();
    let sides: Vec<&str> = accounts
        .iter()
        .map(|account| account.normal_side.as_str())
        .collect();
    let constraints: Vec<&str> = accounts
        .iter()
        .map(|account| constraint_to_sql(account.constraint))
        .collect();
    let statuses: Vec<&str> = accounts
        .iter()
        .map(|account| account.status.as_str())
        .collect();
    let metadata: Vec<Value> = accounts
        .iter()
        .map(|account| metadata_to_json(&account.metadata))
        .collect();
    let [posted_debits, posted_credits, pending_debits, pending_credits] =
        balance_columns(accounts);
    let created: Vec<_> = accounts
        .iter()
        .map(|account| to_sql_time(account.created_at))
        .collect();
    let seqs: Vec<i64> = accounts
        .iter()
        .map(|account| seq_to_sql(account.opened_seq))
        .collect();
    client
        .execute(
            &statement,
            &[
                &ledger_id,
                &ids,
                &codes,
                &currencies,
                &scales,
                &sides,
                &constraints,
                &statuses,
                &metadata,
                &posted_debits,
                &posted_credits,
                &pending_debits,
                &pending_credits,
                &created,
                &seqs,
            ],
        )
        .await?;
    Ok(())
}

async fn update_accounts(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    accounts: &[Account],
) -> Result<(), StorageError> {
    if accounts.is_empty() {
        return Ok(());
    }
    let statement = client
        .prepare_cached(
            "UPDATE accounts AS a SET status = u.status, posted_debits = u.posted_debits, posted_credits = u.posted_credits, \
                    pending_debits = u.pending_debits, pending_credits = u.pending_credits \
             FROM unnest($2::uuid[], $3::text[], $4::numeric[], $5::numeric[], $6::numeric[], $7::numeric[]) \
                  AS u(id, status, posted_debits, posted_credits, pending_debits, pending_credits) \
             WHERE a.ledger_id = $1 AND a.id = u.id",
        )
        .await?;
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
    let statement = client
        .prepare_cached(
            "INSERT INTO transfers (ledger_id, id, debit_account_id, credit_account_id, amount, currency, code, reference, \
                                    description, metadata, pending, timeout_seconds, expires_at, state, reverses, \
                                    posted_amount, reversed_amount, created_at, journal_seq) \
             SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::numeric[], $6::text[], $7::text[], $8::text[], \
                                      $9::text[], $10::jsonb[], $11::boolean[], $12::integer[], $13::timestamptz[], \
                                      $14::text[], $15::uuid[], $16::numeric[], $17::numeric[], $18::timestamptz[], $19::bigint[])",
        )
        .await?;
    let ids: Vec<Uuid> = transfers.iter().map(|t| t.id.as_uuid()).collect();
    let debits: Vec<Uuid> = transfers
        .iter()
        .map(|t| t.debit_account_id.as_uuid())
        .collect();
    let credits: Vec<Uuid> = transfers
        .iter()
        .map(|t| t.credit_account_id.as_uuid())
        .collect();
    let amounts: Vec<Decimal> = transfers.iter().map(|t| t.amount).collect();
    let currencies: Vec<&str> = transfers.iter().map(|t| t.currency.as_str()).collect();
    let codes: Vec<Option<&str>> = transfers
        .iter()
        .map(|t| t.code.as_ref().map(TransferCode::as_str))
        .collect();
    let references: Vec<Option<&str>> = transfers
        .iter()
        .map(|t| t.reference.as_ref().map(Reference::as_str))
        .collect();
    let descriptions: Vec<Option<&str>> = transfers
        .iter()
        .map(|t| t.description.as_ref().map(Description::as_str))
        .collect();
    let metadata: Vec<Value> = transfers
        .iter()
        .map(|t| metadata_to_json(&t.metadata))
        .collect();
    let pending: Vec<bool> = transfers.iter().map(|t| t.pending).collect();
    let timeouts: Vec<Option<i32>> = transfers
        .iter()
        .map(|t| t.timeout_seconds.map(|s| s as i32))
        .collect();
    let expires: Vec<Option<_>> = transfers
        .iter()
        .map(|t| t.expires_at.map(to_sql_time))
        .collect();
    let states: Vec<&str> = transfers.iter().map(|t| t.state.as_str()).collect();
    let reverses: Vec<Option<Uuid>> = transfers
        .iter()
        .map(|t| t.reverses.map(|id| id.as_uuid()))
        .collect();
    let posted: Vec<Decimal> = transfers.iter().map(|t| t.posted_amount).collect();
    let reversed: Vec<Decimal> = transfers.iter().map(|t| t.reversed_amount).collect();
    let created: Vec<_> = transfers
        .iter()
        .map(|t| to_sql_time(t.created_at))
        .collect();
    let seqs: Vec<i64> = transfers
        .iter()
        .map(|t| seq_to_sql(t.journal_seq))
        .collect();
    client
        .execute(
            &statement,
            &[
                &ledger_id,
                &ids,
                &debits,
                &credits,
                &amounts,
                &currencies,
                &codes,
                &references,
                &descriptions,
                &metadata,
                &pending,
                &timeouts,
                &expires,
                &states,
                &reverses,
                &posted,
                &reversed,
                &created,
                &seqs,
            ],
        )
        .await?;
    Ok(())
}

async fn update_transfers(
    client: &deadpool_postgres::Object,
    ledger_id: i32,
    transfers: &[Transfer],
) -> Result<(), StorageError> {
    if transfers.is_empty() {
        return Ok(());
    }
    let statement = client
        .prepare_cached(
            "UPDATE transfers AS t SET state = u.state, posted_amount = u.posted_amount, reversed_amount = u.reversed_amount \
             FROM unnest($2::uuid[], $3::text[], $4::numeric[], $5::numeric[]) AS u(id, state, posted_amount, reversed_amount) \
             WHERE t.ledger_id = $1 AND t.id = u.id",
        )
        .await?;
    let ids: Vec<Uuid> = transfers.iter().map(|t| t.id.as_uuid()).collect();
    let states: Vec<&str> = transfers.iter().map(|t| t.state.as_str()).collect();
    let posted: Vec<Decimal> = transfers.iter().map(|t| t.posted_amount).collect();
    let reversed: Vec<Decimal> = transfers.iter().map(|t| t.reversed_amount).collect();
    client
        .execute(&statement, &[&ledger_id, &ids, &states, &posted, &reversed])
        .await?;
    Ok(())
}
