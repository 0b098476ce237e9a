//! What the audit reads and records: signing keys, checkpoints, the stored hashes proofs are
//! computed from, the audit trail of accounts and transfers, integrity check runs.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::rows::*;
use super::{hash_from_sql, LedgerRecord, Storage, StorageError};
use crate::audit::merkle::{self, StoredChildren, SubtreeId};
use crate::audit::{Hash32, JournalEvent};
use crate::domain::*;

#[derive(Clone, Debug, PartialEq)]
pub struct StoredSigningKey {
    pub id: String,
    pub public_key: [u8; 32],
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoredCheckpoint {
    pub tree_size: u64,
    pub root: Hash32,
    pub note: String,
    pub key_id: String,
    pub issued_at: Timestamp,
}

/// One posting of an account with the account's balances right after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub event_type: String,
    pub at: Timestamp,
    pub transfer_id: TransferId,
    pub side: Side,
    pub pending_delta: Decimal,
    pub posted_delta: Decimal,
    pub balances_after: Balances,
}

/// An integrity check run (§7).
#[derive(Clone, Debug, PartialEq)]
pub struct IntegrityRun {
    pub id: Uuid,
    pub status: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub checked_seq: Option<u64>,
    pub findings: Value,
}

fn checkpoint_from_row(row: &Row) -> Result<StoredCheckpoint, StorageError> {
    Ok(StoredCheckpoint {
        tree_size: seq_from_sql(row.get("tree_size"))?,
        root: hash_from_sql(row.get("root_hash"))?,
        note: row.get("note"),
        key_id: row.get("key_id"),
        issued_at: from_sql_time(row.get("issued_at"))?,
    })
}

fn run_from_row(row: &Row) -> Result<IntegrityRun, StorageError> {
    Ok(IntegrityRun {
        id: row.get("id"),
        status: row.get("status"),
        started_at: from_sql_time(row.get("started_at"))?,
        finished_at: row
            .get::<_, Option<OffsetDateTime>>("finished_at")
            .map(from_sql_time)
            .transpose()?,
        checked_seq: row
            .get::<_, Option<i64>>("checked_seq")
            .map(seq_from_sql)
            .transpose()?,
        findings: row.get("findings"),
    })
}

fn balances_from_row(row: &Row, scale: u32, prefix: &str) -> Result<Balances, StorageError> {
    let field = |name: &str| -> Result<Decimal, StorageError> {
        let mut value: Decimal = row.get(format!("{prefix}{name}").as_str());
        value.rescale(scale);
        Ok(value)
    };
    Ok(Balances {
        posted_debits: field("posted_debits")?,
        posted_credits: field("posted_credits")?,
        pending_debits: field("pending_debits")?,
        pending_credits: field("pending_credits")?,
    })
}

impl Storage {
    // ------------------------------------------------------------ signing keys

    /// Registers a public key (once: registering it again changes nothing).
    pub async fn register_signing_key(
        &self,
        id: &str,
        public_key: &[u8; 32],
        at: Timestamp,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO signing_keys (id, algorithm, public_key, created_at) VALUES ($1, \
                 'ed25519', $2, $3) ON CONFLICT (id) DO NOTHING",
                &[&id, &public_key.as_slice(), &to_sql_time(at)],
            )
            .await?;
        Ok(())
    }

    /// Marks every key but `current` retired (rotation); retired keys stay listed.
    pub async fn retire_signing_keys_except(
        &self,
        current: &str,
        at: Timestamp,
    ) -> Result<u64, StorageError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE signing_keys SET retired_at = $2 WHERE id <> $1 AND retired_at IS NULL",
                &[&current, &to_sql_time(at)],
            )
            .await?)
    }

    pub async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, public_key, created_at, retired_at FROM signing_keys \
                 ORDER BY created_at, id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let bytes: Vec<u8> = row.get("public_key");
                Ok(StoredSigningKey {
                    id: row.get("id"),
                    public_key: bytes.try_into().map_err(|_| {
                        StorageError::Corrupt("a public key is not 32 bytes".into())
                    })?,
                    created_at: from_sql_time(row.get("created_at"))?,
                    retired_at: row
                        .get::<_, Option<OffsetDateTime>>("retired_at")
                        .map(from_sql_time)
                        .transpose()?,
                })
            })
            .collect()
    }

    // ------------------------------------------------------------ checkpoints

    /// Records a checkpoint; if one of that size exists already, that one stays (and is returned).
    pub async fn record_checkpoint(
        &self,
        ledger_id: i32,
        checkpoint: &StoredCheckpoint,
    ) -> Result<StoredCheckpoint, StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO checkpoints (ledger_id, tree_size, root_hash, note, key_id, \
                 issued_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (ledger_id, tree_size) DO NOTHING",
                &[
                    &ledger_id,
                    &seq_to_sql(checkpoint.tree_size),
                    &checkpoint.root.0.as_slice(),
                    &checkpoint.note,
                    &checkpoint.key_id,
                    &to_sql_time(checkpoint.issued_at),
                ],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT tree_size, root_hash, note, key_id, issued_at FROM checkpoints WHERE \
                 ledger_id = $1 AND tree_size = $2",
                &[&ledger_id, &seq_to_sql(checkpoint.tree_size)],
            )
            .await?;
        checkpoint_from_row(&row)
    }

    pub async fn latest_checkpoint(
        &self,
        ledger_id: i32,
    ) -> Result<Option<StoredCheckpoint>, StorageError> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT tree_size, root_hash, note, key_id, issued_at FROM checkpoints WHERE \
                 ledger_id = $1 ORDER BY tree_size DESC LIMIT 1",
                &[&ledger_id],
            )
            .await?
            .map(|row| checkpoint_from_row(&row))
            .transpose()
    }

    /// Ledgers whose tree has grown past their latest checkpoint.
    pub async fn ledgers_needing_checkpoint(&self) -> Result<Vec<String>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT l.name FROM ledgers l JOIN ledger_heads h ON h.ledger_id = l.id \
                 WHERE h.merkle_size > coalesce((SELECT max(tree_size) FROM checkpoints c WHERE \
                 c.ledger_id = l.id), 0)",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    // ------------------------------------------------------------ Merkle tree

    /// The roots of these complete subtrees, each computed from at most 128 stored hashes (event
    /// hashes, or stored subtree roots of levels 8, 16, …). From the read replica when it holds
    /// every child (a complete subtree never changes once its last leaf exists).
    pub async fn merkle_subtrees(
        &self,
        ledger_id: i32,
        ids: &[SubtreeId],
    ) -> Result<BTreeMap<SubtreeId, Hash32>, StorageError> {
        if let Some(replica) = self.replica_client().await {
            match merkle_subtrees_on(&replica, ledger_id, ids).await {
                Ok(Some(subtrees)) => {
                    super::reads::replica_read("replica");
                    return Ok(subtrees);
                }
                Ok(None) => super::reads::replica_read("behind"),
                Err(error) => self.replica_failed(&error),
            }
        }
        merkle_subtrees_on(&self.client().await?, ledger_id, ids)
            .await?
            .ok_or_else(|| {
                StorageError::Corrupt("merkle tree: a complete subtree lacks stored hashes".into())
            })
    }

    // ------------------------------------------------------------ audit trail

    /// An account's postings in seq order, after `after_seq`, with the balances after each.
    /// From the read replica when the page is followed by more, or the replica has replayed
    /// the primary's head.
    pub async fn entries_page(
        &self,
        ledger_id: i32,
        account: &Account,
        after_seq: i64,
        limit: usize,
    ) -> Result<(Vec<Entry>, bool), StorageError> {
        if let Some(replica) = self.replica_client().await {
            let read = async {
                let replayed = super::reads::head_seq_on(&replica, ledger_id).await?;
                let page = entries_page_on(&replica, ledger_id, account, after_seq, limit).await?;
                Ok::<_, StorageError>((replayed, page))
            }
            .await;
            drop(replica);
            match read {
                Ok((replayed, page)) => {
                    if page.1
                        || seq_to_sql(self.ledger_head(ledger_id).await?.chain.seq) <= replayed
                    {
                        super::reads::replica_read("replica");
                        return Ok(page);
                    }
                    super::reads::replica_read("behind");
                }
                Err(error) => self.replica_failed(&error),
            }
        }
        entries_page_on(&self.client().await?, ledger_id, account, after_seq, limit).await
    }

    /// An account's balances right after the event `seq` (zero before its first posting).
    pub async fn balances_as_of(
        &self,
        ledger_id: i32,
        account: &Account,
        seq: u64,
    ) -> Result<Balances, StorageError> {
        if let Some(replica) = self.replica_at(ledger_id, seq).await {
            match balances_as_of_on(&replica, ledger_id, account, seq).await {
                Ok(balances) => {
                    super::reads::replica_read("replica");
                    return Ok(balances);
                }
                Err(error) => self.replica_failed(&error),
            }
        }
        balances_as_of_on(&self.client().await?, ledger_id, account, seq).await
    }

    /// The seqs of every event of a transfer: its creation, its resolution (post, void, expiry)
    /// and its reversals, in order.
    pub async fn transfer_event_seqs(
        &self,
        ledger_id: i32,
        transfer: &Transfer,
    ) -> Result<Vec<u64>, StorageError> {
        let client = self.client().await?;
        let id = transfer.id.as_uuid();
        let rows = client
            .query(
                "SELECT seq FROM journal WHERE ledger_id = $1 AND data ->> 'transfer_id' = \
                 $2::text \
                   AND type IN ('transfer_posted', 'transfer_voided', 'transfer_expired') \
                 UNION SELECT journal_seq FROM transfers WHERE ledger_id = $1 AND reverses = $3",
                &[&ledger_id, &id.to_string(), &id],
            )
            .await?;
        let mut seqs = vec![transfer.journal_seq];
        for row in rows {
            seqs.push(seq_from_sql(row.get(0))?);
        }
        seqs.sort_unstable();
        seqs.dedup();
        Ok(seqs)
    }

    /// The events of these seqs, in order (the read replica's when it has them all).
    pub async fn events_by_seq(
        &self,
        ledger: &LedgerRecord,
        seqs: &[u64],
    ) -> Result<Vec<JournalEvent>, StorageError> {
        let mut wanted: Vec<i64> = seqs.iter().map(|seq| seq_to_sql(*seq)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        if let Some(replica) = self.replica_client().await {
            match events_by_seq_on(&replica, ledger, &wanted).await {
                Ok(events) if events.len() == wanted.len() => {
                    super::reads::replica_read("replica");
                    return Ok(events);
                }
                Ok(_) => super::reads::replica_read("behind"),
                Err(error) => self.replica_failed(&error),
            }
        }
        events_by_seq_on(&self.client().await?, ledger, &wanted).await
    }

    // ------------------------------------------------------------ export

    /// Accounts opened at or before `seq`, after `after_id` in id order, with their balances and
    /// status as of `seq` (the read replica's once it has replayed `seq`: the columns read here
    /// beside the as-of ones, id, code and currency, never change).
    pub async fn accounts_as_of(
        &self,
        ledger_id: i32,
        seq: u64,
        after_id: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Account>, StorageError> {
        if let Some(replica) = self.replica_at(ledger_id, seq).await {
            match accounts_as_of_on(&replica, ledger_id, seq, after_id, limit).await {
                Ok(accounts) => {
                    super::reads::replica_read("replica");
                    return Ok(accounts);
                }
                Err(error) => self.replica_failed(&error),
            }
        }
        accounts_as_of_on(&self.client().await?, ledger_id, seq, after_id, limit).await
    }

    // ------------------------------------------------------------ integrity checks

    pub async fn start_integrity_run(
        &self,
        ledger_id: i32,
        id: Uuid,
        at: Timestamp,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO integrity_checks (ledger_id, id, status, started_at) \
                 VALUES ($1, $2, 'running', $3)",
                &[&ledger_id, &id, &to_sql_time(at)],
            )
            .await?;
        Ok(())
    }

    pub async fn finish_integrity_run(
        &self,
        ledger_id: i32,
        id: Uuid,
        passed: bool,
        checked_seq: u64,
        findings: &Value,
        at: Timestamp,
    ) -> Result<IntegrityRun, StorageError> {
        let client = self.client().await?;
        let status = if passed { "passed" } else { "failed" };
        let row = client
            .query_one(
                "UPDATE integrity_checks SET status = $3, finished_at = $4, checked_seq = $5, \
                 findings = $6 \
                 WHERE ledger_id = $1 AND id = $2 RETURNING id, status, started_at, \
                 finished_at, checked_seq, findings",
                &[
                    &ledger_id,
                    &id,
                    &status,
                    &to_sql_time(at),
                    &seq_to_sql(checked_seq),
                    findings,
                ],
            )
            .await?;
        run_from_row(&row)
    }

    pub async fn latest_integrity_run(
        &self,
        ledger_id: i32,
    ) -> Result<Option<IntegrityRun>, StorageError> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT id, status, started_at, finished_at, checked_seq, findings FROM \
                 integrity_checks \
                 WHERE ledger_id = $1 ORDER BY started_at DESC LIMIT 1",
                &[&ledger_id],
            )
            .await?
            .map(|row| run_from_row(&row))
            .transpose()
    }

    /// §4.2: currencies whose posted or pending debits and credits differ, with the sums.
    pub async fn unbalanced_currencies(
        &self,
        ledger_id: i32,
    ) -> Result<Vec<(String, Decimal, Decimal, Decimal, Decimal)>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT currency, sum(posted_debits), sum(posted_credits), sum(pending_debits), \
                 sum(pending_credits) \
                 FROM accounts WHERE ledger_id = $1 GROUP BY currency \
                 HAVING sum(posted_debits) <> sum(posted_credits) OR sum(pending_debits) <> \
                 sum(pending_credits)",
                &[&ledger_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
            .collect())
    }

    /// Accounts whose four balance fields differ from the running balance of their last posting
    /// (what exports state as an account's balances).
    pub async fn accounts_differing_from_last_posting(
        &self,
        ledger_id: i32,
    ) -> Result<Vec<Uuid>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT a.id FROM accounts a JOIN LATERAL ( \
                   SELECT posted_debits_after, posted_credits_after, pending_debits_after, \
                   pending_credits_after \
                   FROM postings p WHERE p.ledger_id = a.ledger_id AND p.account_id = a.id \
                   ORDER BY p.seq DESC LIMIT 1) last ON true \
                 WHERE a.ledger_id = $1 AND (a.posted_debits <> last.posted_debits_after OR \
                 a.posted_credits <> last.posted_credits_after \
                    OR a.pending_debits <> last.pending_debits_after OR a.pending_credits <> \
                    last.pending_credits_after) ORDER BY a.id",
                &[&ledger_id],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// §4.3: accounts whose four balance fields differ from the sums of their postings.
    pub async fn accounts_differing_from_postings(
        &self,
        ledger_id: i32,
    ) -> Result<Vec<Uuid>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT a.id FROM accounts a LEFT JOIN ( \
                   SELECT account_id, \
                     sum(posted_delta) FILTER (WHERE side = 'debit') AS pd, sum(posted_delta) \
                     FILTER (WHERE side = 'credit') AS pc, \
                     sum(pending_delta) FILTER (WHERE side = 'debit') AS nd, sum(pending_delta) \
                     FILTER (WHERE side = 'credit') AS nc \
                   FROM postings WHERE ledger_id = $1 GROUP BY account_id) p ON p.account_id = \
                   a.id \
                 WHERE a.ledger_id = $1 AND (a.posted_debits <> coalesce(p.pd, 0) OR \
                 a.posted_credits <> coalesce(p.pc, 0) \
                    OR a.pending_debits <> coalesce(p.nd, 0) OR a.pending_credits <> \
                    coalesce(p.nc, 0)) ORDER BY a.id",
                &[&ledger_id],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

// ------------------------------------------------------------ reads on a given server

/// The subtrees' roots as this server has them; `None` when a child is missing (a replica
/// that has not replayed the subtree's last leaf yet).
async fn merkle_subtrees_on(
    client: &deadpool_postgres::Client,
    ledger_id: i32,
    ids: &[SubtreeId],
) -> Result<Option<BTreeMap<SubtreeId, Hash32>>, StorageError> {
    let leaves = client
        .prepare_cached(
            "SELECT hash FROM journal WHERE ledger_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
        )
        .await?;
    let nodes = client
        .prepare_cached(
            "SELECT hash FROM merkle_nodes \
             WHERE ledger_id = $1 AND level = $2 AND index >= $3 AND index < $4 ORDER BY index",
        )
        .await?;
    let mut subtrees = BTreeMap::new();
    for id in ids {
        let (children, expected): (Vec<Hash32>, u64) = match merkle::stored_children(*id) {
            StoredChildren::LeafHashes { first_leaf, count } => {
                let (from, to) = (seq_to_sql(first_leaf), seq_to_sql(first_leaf + count));
                let rows = client.query(&leaves, &[&ledger_id, &from, &to]).await?;
                let hashes = rows
                    .iter()
                    .map(|row| hash_from_sql(row.get(0)).map(|hash| merkle::leaf_hash(&hash)))
                    .collect::<Result<_, _>>()?;
                (hashes, count)
            }
            StoredChildren::StoredNodes {
                level,
                first_index,
                count,
            } => {
                let (from, to) = (seq_to_sql(first_index), seq_to_sql(first_index + count));
                let rows = client
                    .query(&nodes, &[&ledger_id, &(level as i16), &from, &to])
                    .await?;
                let hashes = rows
                    .iter()
                    .map(|row| hash_from_sql(row.get(0)))
                    .collect::<Result<_, _>>()?;
                (hashes, count)
            }
        };
        if children.len() as u64 != expected {
            return Ok(None);
        }
        let hash = merkle::subtree_from_children(*id, &children)
            .map_err(|error| StorageError::Corrupt(format!("merkle tree: {error}")))?;
        subtrees.insert(*id, hash);
    }
    Ok(Some(subtrees))
}

async fn entries_page_on(
    client: &deadpool_postgres::Client,
    ledger_id: i32,
    account: &Account,
    after_seq: i64,
    limit: usize,
) -> Result<(Vec<Entry>, bool), StorageError> {
    let rows = client
        .query(
            "SELECT p.seq, j.type, j.at, p.transfer_id, p.side, p.pending_delta, p.posted_delta, \
                    p.posted_debits_after AS posted_debits, p.posted_credits_after AS \
                    posted_credits, \
                    p.pending_debits_after AS pending_debits, p.pending_credits_after AS \
                    pending_credits \
             FROM postings p JOIN journal j ON j.ledger_id = p.ledger_id AND j.seq = p.seq \
             WHERE p.ledger_id = $1 AND p.account_id = $2 AND p.seq > $3 ORDER BY p.seq LIMIT $4",
            &[
                &ledger_id,
                &account.id.as_uuid(),
                &after_seq,
                &(i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1),
            ],
        )
        .await?;
    let scale = account.currency.scale();
    let more = rows.len() > limit;
    let entries = rows
        .iter()
        .take(limit)
        .map(|row| {
            let delta = |column: &str| {
                let mut value: Decimal = row.get(column);
                value.rescale(scale);
                value
            };
            Ok(Entry {
                seq: seq_from_sql(row.get("seq"))?,
                event_type: row.get("type"),
                at: from_sql_time(row.get("at"))?,
                transfer_id: TransferId::new(row.get("transfer_id")),
                side: if row.get::<_, &str>("side") == "debit" {
                    Side::Debit
                } else {
                    Side::Credit
                },
                pending_delta: delta("pending_delta"),
                posted_delta: delta("posted_delta"),
                balances_after: balances_from_row(row, scale, "")?,
            })
        })
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok((entries, more))
}

async fn balances_as_of_on(
    client: &deadpool_postgres::Client,
    ledger_id: i32,
    account: &Account,
    seq: u64,
) -> Result<Balances, StorageError> {
    let row = client
        .query_opt(
            "SELECT posted_debits_after AS posted_debits, posted_credits_after AS posted_credits, \
                    pending_debits_after AS pending_debits, pending_credits_after AS \
                    pending_credits \
             FROM postings WHERE ledger_id = $1 AND account_id = $2 AND seq <= $3 ORDER BY seq \
             DESC LIMIT 1",
            &[&ledger_id, &account.id.as_uuid(), &seq_to_sql(seq)],
        )
        .await?;
    match row {
        Some(row) => balances_from_row(&row, account.currency.scale(), ""),
        None => Ok(Balances::zero(&account.currency)),
    }
}

async fn events_by_seq_on(
    client: &deadpool_postgres::Client,
    ledger: &LedgerRecord,
    seqs: &[i64],
) -> Result<Vec<JournalEvent>, StorageError> {
    let sql = format!(
        "SELECT {JOURNAL_COLUMNS} FROM journal WHERE ledger_id = $1 AND seq = ANY($2) ORDER BY seq"
    );
    let rows = client.query(&sql, &[&ledger.id, &seqs]).await?;
    rows.iter()
        .map(|row| journal_event_from_row(&ledger.name, row))
        .collect()
}

async fn accounts_as_of_on(
    client: &deadpool_postgres::Client,
    ledger_id: i32,
    seq: u64,
    after_id: Option<Uuid>,
    limit: usize,
) -> Result<Vec<Account>, StorageError> {
    let sql = format!(
        "SELECT {}, coalesce(b.posted_debits, 0) AS as_of_posted_debits, \
         coalesce(b.posted_credits, 0) AS as_of_posted_credits, \
                coalesce(b.pending_debits, 0) AS as_of_pending_debits, \
                coalesce(b.pending_credits, 0) AS as_of_pending_credits, \
                coalesce(s.status, 'active') AS as_of_status \
         FROM accounts a \
         LEFT JOIN LATERAL (SELECT posted_debits_after AS posted_debits, posted_credits_after \
         AS posted_credits, \
                                   pending_debits_after AS pending_debits, \
                                   pending_credits_after AS pending_credits \
                            FROM postings p WHERE p.ledger_id = a.ledger_id AND p.account_id = \
                            a.id AND p.seq <= $2 \
                            ORDER BY p.seq DESC LIMIT 1) b ON true \
         LEFT JOIN LATERAL (SELECT CASE j.type WHEN 'account_frozen' THEN 'frozen' WHEN \
         'account_closed' THEN 'closed' ELSE 'active' END AS status \
                            FROM journal j WHERE j.ledger_id = a.ledger_id AND j.seq <= $2 \
                              AND j.type IN ('account_frozen', 'account_unfrozen', \
                              'account_closed') \
                              AND j.data ->> 'account_id' = a.id::text \
                            ORDER BY j.seq DESC LIMIT 1) s ON true \
         WHERE a.ledger_id = $1 AND a.opened_seq <= $2 AND ($3::uuid IS NULL OR a.id > $3) \
         ORDER BY a.id LIMIT $4",
        prefixed("a", ACCOUNT_COLUMNS)
    );
    let rows = client
        .query(
            &sql,
            &[
                &ledger_id,
                &seq_to_sql(seq),
                &after_id,
                &(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let mut account = account_from_row(row)?;
            account.balances = balances_from_row(row, account.currency.scale(), "as_of_")?;
            account.status = AccountStatus::parse(row.get("as_of_status"))
                .ok_or_else(|| StorageError::Corrupt("status".into()))?;
            Ok(account)
        })
        .collect()
}
