//! Reads: single rows and pages. Pages are ordered by an ever-growing key (journal seq, ledger
//! id) so that a cursor stays valid under concurrent writes; newest last.

use tokio_postgres::Row;

use super::rows::*;
use super::{LedgerRecord, Storage, StorageError, StoredHead};
use crate::audit::{ChainHead, JournalEvent};
use crate::domain::*;

/// One page of a list and the key to continue after, when more rows exist.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct TransferFilter {
    pub account_id: Option<AccountId>,
    pub state: Option<TransferState>,
}

/// Builds a page from `limit + 1` rows: the extra row only says that more exist.
fn page<T>(
    rows: Vec<Row>,
    limit: usize,
    key: impl Fn(&T) -> i64,
    convert: impl Fn(&Row) -> Result<T, StorageError>,
) -> Result<Page<T>, StorageError> {
    let more = rows.len() > limit;
    let items = rows
        .iter()
        .take(limit)
        .map(convert)
        .collect::<Result<Vec<T>, _>>()?;
    let next_after = if more { items.last().map(key) } else { None };
    Ok(Page { items, next_after })
}

fn limit_plus_one(limit: usize) -> i64 {
    i64::try_from(limit).expect("page limits are small") + 1
}

impl Storage {
    pub async fn find_ledger(&self, name: &str) -> Result<Option<LedgerRecord>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, name, assets, metadata, created_at FROM ledgers WHERE name = $1",
            )
            .await?;
        client
            .query_opt(&statement, &[&name])
            .await?
            .map(|row| ledger_from_row(&row))
            .transpose()
    }

    pub async fn ledgers_page(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Page<LedgerRecord>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, name, assets, metadata, created_at FROM ledgers \
                 WHERE id > $1::bigint ORDER BY id LIMIT $2",
                &[&after_id, &limit_plus_one(limit)],
            )
            .await?;
        page(
            rows,
            limit,
            |ledger: &LedgerRecord| i64::from(ledger.id),
            ledger_from_row,
        )
    }

    pub async fn ledger_head(&self, ledger_id: i32) -> Result<StoredHead, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT last_seq, last_hash, last_at, merkle_size, merkle_frontier \
                 FROM ledger_heads WHERE ledger_id = $1",
                &[&ledger_id],
            )
            .await?;
        head_from_row(&row)
    }

    /// The chain head as it is once every transaction that held its row has ended: for a
    /// writer whose `COMMIT` broke off. A plain read can see the head from before a commit
    /// whose WAL is already flushed — the backend that made it was killed before other backends
    /// could see it — and crash recovery then replays the commit. Locking the row (`FOR
    /// UPDATE`, rolled back at once) waits for that transaction: it ended (its outcome is
    /// read), or the server restarts and this read fails (the outcome stays unknown). On a
    /// connection opened for it, not one that may share the failed connection's fate.
    pub async fn ledger_head_settled(&self, ledger_id: i32) -> Result<StoredHead, StorageError> {
        let (client, connection) = self
            .connection_config()
            .connect(tokio_postgres::NoTls)
            .await?;
        let connection = tokio::spawn(connection);
        let read = async {
            client.batch_execute("BEGIN").await?;
            let row = client
                .query_one(
                    "SELECT last_seq, last_hash, last_at, merkle_size, merkle_frontier \
                     FROM ledger_heads WHERE ledger_id = $1 FOR UPDATE",
                    &[&ledger_id],
                )
                .await?;
            client.batch_execute("ROLLBACK").await?;
            head_from_row(&row)
        }
        .await;
        drop(client);
        let _ = connection.await;
        read
    }

    pub async fn account(
        &self,
        ledger_id: i32,
        id: AccountId,
    ) -> Result<Option<Account>, StorageError> {
        let client = self.client().await?;
        let sql =
            format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE ledger_id = $1 AND id = $2");
        let statement = client.prepare_cached(&sql).await?;
        client
            .query_opt(&statement, &[&ledger_id, &id.as_uuid()])
            .await?
            .map(|row| account_from_row(&row))
            .transpose()
    }

    pub async fn accounts_page(
        &self,
        ledger_id: i32,
        after_seq: i64,
        limit: usize,
    ) -> Result<Page<Account>, StorageError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts \
             WHERE ledger_id = $1 AND opened_seq > $2 ORDER BY opened_seq LIMIT $3"
        );
        let rows = client
            .query(&sql, &[&ledger_id, &after_seq, &limit_plus_one(limit)])
            .await?;
        page(
            rows,
            limit,
            |account: &Account| seq_to_sql(account.opened_seq),
            account_from_row,
        )
    }

    pub async fn transfer(
        &self,
        ledger_id: i32,
        id: TransferId,
    ) -> Result<Option<Transfer>, StorageError> {
        let client = self.client().await?;
        let sql =
            format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE ledger_id = $1 AND id = $2");
        let statement = client.prepare_cached(&sql).await?;
        client
            .query_opt(&statement, &[&ledger_id, &id.as_uuid()])
            .await?
            .map(|row| transfer_from_row(&row))
            .transpose()
    }

    /// Transfers in creation order. With an account, through that account's postings: the
    /// posting of a transfer's creation event has the transfer's `journal_seq`.
    pub async fn transfers_page(
        &self,
        ledger_id: i32,
        filter: &TransferFilter,
        after_seq: i64,
        limit: usize,
    ) -> Result<Page<Transfer>, StorageError> {
        let client = self.client().await?;
        let state = filter.state.map(|state| state.as_str());
        let rows = match filter.account_id {
            Some(account_id) => {
                let columns = prefixed("t", TRANSFER_COLUMNS);
                let sql = format!(
                    "SELECT {columns} FROM postings p \
                     JOIN transfers t ON t.ledger_id = p.ledger_id AND t.id = p.transfer_id \
                     WHERE p.ledger_id = $1 AND p.account_id = $2 AND p.seq > $3 \
                       AND t.journal_seq = p.seq \
                       AND ($4::text IS NULL OR t.state = $4) \
                     ORDER BY p.seq LIMIT $5"
                );
                client
                    .query(
                        &sql,
                        &[
                            &ledger_id,
                            &account_id.as_uuid(),
                            &after_seq,
                            &state,
                            &limit_plus_one(limit),
                        ],
                    )
                    .await?
            }
            None => {
                // Spelled out for states other than `posted`, so that the planner may use the
                // partial index `transfers_by_unposted_state` whatever the parameter.
                let unposted = match filter.state {
                    Some(state) if state != TransferState::Posted => "AND state <> 'posted'",
                    _ => "",
                };
                let sql = format!(
                    "SELECT {TRANSFER_COLUMNS} FROM transfers \
                     WHERE ledger_id = $1 AND journal_seq > $2 \
                       AND ($3::text IS NULL OR state = $3) {unposted} \
                     ORDER BY journal_seq LIMIT $4"
                );
                client
                    .query(
                        &sql,
                        &[&ledger_id, &after_seq, &state, &limit_plus_one(limit)],
                    )
                    .await?
            }
        };
        page(
            rows,
            limit,
            |transfer: &Transfer| seq_to_sql(transfer.journal_seq),
            transfer_from_row,
        )
    }

    /// Up to `limit` events after `after_seq`. From the read replica when it has them: a page
    /// followed by more events is complete (the journal is append-only and has no gaps), a
    /// shorter one only when the primary's head is not beyond it.
    pub async fn journal_page(
        &self,
        ledger: &LedgerRecord,
        after_seq: i64,
        limit: usize,
    ) -> Result<Page<JournalEvent>, StorageError> {
        if let Some(replica) = self.replica_client().await {
            let read = journal_page_on(&replica, ledger, after_seq, limit).await;
            drop(replica);
            match read {
                Ok(page) => {
                    let covered = page
                        .items
                        .last()
                        .map_or(after_seq, |event| seq_to_sql(event.seq));
                    if page.next_after.is_some()
                        || seq_to_sql(self.ledger_head(ledger.id).await?.chain.seq) <= covered
                    {
                        replica_read("replica");
                        return Ok(page);
                    }
                    replica_read("behind");
                }
                Err(error) => self.replica_failed(&error),
            }
        }
        journal_page_on(&self.client().await?, ledger, after_seq, limit).await
    }
}

async fn journal_page_on(
    client: &deadpool_postgres::Client,
    ledger: &LedgerRecord,
    after_seq: i64,
    limit: usize,
) -> Result<Page<JournalEvent>, StorageError> {
    let sql = format!(
        "SELECT {JOURNAL_COLUMNS} FROM journal \
         WHERE ledger_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    );
    let statement = client.prepare_cached(&sql).await?;
    let rows = client
        .query(
            &statement,
            &[&ledger.id, &after_seq, &limit_plus_one(limit)],
        )
        .await?;
    page(
        rows,
        limit,
        |event: &JournalEvent| seq_to_sql(event.seq),
        |row| journal_event_from_row(&ledger.name, row),
    )
}

/// Counts the reads offered to the replica: served there, or by the primary because the
/// replica had not replayed what they need yet (`ledger_replica_reads_total{outcome}`; failed
/// ones are logged and counted as `failed`).
pub(super) fn replica_read(outcome: &'static str) {
    metrics::counter!("ledger_replica_reads_total", "outcome" => outcome).increment(1);
}

/// The last seq of a ledger's journal as this connection's server has it (0 without a head).
pub(super) async fn head_seq_on(
    client: &deadpool_postgres::Client,
    ledger_id: i32,
) -> Result<i64, StorageError> {
    let statement = client
        .prepare_cached("SELECT last_seq FROM ledger_heads WHERE ledger_id = $1")
        .await?;
    Ok(client
        .query_opt(&statement, &[&ledger_id])
        .await?
        .map_or(0, |row| row.get(0)))
}

impl Storage {
    /// A connection to the read replica, when one is configured and not resting after a
    /// failure.
    pub(super) async fn replica_client(&self) -> Option<deadpool_postgres::Object> {
        let replica = self.replica()?;
        if !replica.usable() {
            return None;
        }
        match replica.pool.get().await {
            Ok(client) => Some(client),
            Err(error) => {
                self.replica_failed(&error.into());
                None
            }
        }
    }

    pub(super) fn replica_failed(&self, error: &StorageError) {
        if let Some(replica) = self.replica() {
            replica_read("failed");
            replica.failed(error);
        }
    }

    /// A connection to the replica that has replayed the ledger's journal up to `seq` at least
    /// (every later statement on it sees at least as much), if there is one.
    pub(super) async fn replica_at(
        &self,
        ledger_id: i32,
        seq: u64,
    ) -> Option<deadpool_postgres::Object> {
        let replica = self.replica_client().await?;
        match head_seq_on(&replica, ledger_id).await {
            Ok(head) if head >= seq_to_sql(seq) => Some(replica),
            Ok(_) => {
                replica_read("behind");
                None
            }
            Err(error) => {
                self.replica_failed(&error);
                None
            }
        }
    }
}

fn ledger_from_row(row: &Row) -> Result<LedgerRecord, StorageError> {
    Ok(LedgerRecord {
        id: row.get("id"),
        name: LedgerName::parse(row.get("name")).map_err(StorageError::from)?,
        assets: assets_from_json(&row.get("assets"))?,
        metadata: metadata_from_json(row.get("metadata"))?,
        created_at: from_sql_time(row.get("created_at"))?,
    })
}

pub(super) fn head_from_row(row: &Row) -> Result<StoredHead, StorageError> {
    Ok(StoredHead {
        chain: ChainHead {
            seq: seq_from_sql(row.get("last_seq"))?,
            hash: super::hash_from_sql(row.get("last_hash"))?,
        },
        last_at: from_sql_time(row.get("last_at"))?,
        merkle: frontier_from_row(row)?,
    })
}

fn frontier_from_row(row: &Row) -> Result<crate::audit::merkle::MerkleFrontier, StorageError> {
    let size = seq_from_sql(row.get("merkle_size"))?;
    let hashes = row
        .get::<_, Vec<Vec<u8>>>("merkle_frontier")
        .iter()
        .map(|bytes| super::hash_from_sql(bytes))
        .collect::<Result<Vec<_>, _>>()?;
    crate::audit::merkle::MerkleFrontier::from_parts(size, hashes)
        .map_err(|error| StorageError::Corrupt(format!("merkle frontier: {error}")))
}

impl Storage {
    /// Names of the ledgers with a pending transfer whose deadline is at or before `at` or the
    /// ledger's own time (its head's `last_at`, which another process's clock may have set ahead).
    pub async fn ledgers_with_due_expiries(
        &self,
        at: Timestamp,
    ) -> Result<Vec<String>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT l.name FROM ledgers l WHERE EXISTS \
                 (SELECT FROM transfers t WHERE t.ledger_id = l.id AND t.state = 'pending' \
                   AND t.expires_at <= GREATEST($1, \
                         (SELECT h.last_at FROM ledger_heads h WHERE h.ledger_id = l.id)))",
            )
            .await?;
        let rows = client.query(&statement, &[&to_sql_time(at)]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}
