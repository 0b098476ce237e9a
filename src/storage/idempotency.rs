//! Idempotency records (§6): what a request decided, to replay it to a retry.
//!
//! Every idempotent write takes a transaction-scoped advisory lock on its (API key, key) pair
//! before it looks the pair up, and records its response in the same transaction as its
//! effect. A concurrent duplicate therefore waits for the first to commit, then finds its
//! record: never two effects, whatever the ledger or process.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::rows::{from_sql_time, to_sql_time};
use super::{hash_from_sql, Storage, StorageError};
use crate::audit::Hash32;
use crate::domain::Timestamp;

/// The response a request got, exactly as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// (API key, Idempotency-Key): the scope of a key is the API key that sent it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyScope {
    pub api_key_id: Uuid,
    pub key: String,
}

impl IdempotencyScope {
    /// The advisory lock serialising requests with this scope. A collision of two scopes only
    /// serialises two unrelated requests.
    pub fn lock_id(&self) -> i64 {
        let mut bytes = self.api_key_id.as_bytes().to_vec();
        bytes.extend_from_slice(self.key.as_bytes());
        let digest = Hash32::sha256(&bytes);
        i64::from_be_bytes(digest.0[..8].try_into().expect("8 bytes"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub scope: IdempotencyScope,
    /// SHA-256 over method, path and canonical body.
    pub fingerprint: Hash32,
    pub response: StoredResponse,
    pub created_at: Timestamp,
}

const COLUMNS: &str =
    "api_key_id, key, fingerprint, status, content_type, location, body, created_at";

fn record_from_row(row: &Row) -> Result<IdempotencyRecord, StorageError> {
    let status: i16 = row.get("status");
    Ok(IdempotencyRecord {
        scope: IdempotencyScope {
            api_key_id: row.get("api_key_id"),
            key: row.get("key"),
        },
        fingerprint: hash_from_sql(row.get("fingerprint"))?,
        response: StoredResponse {
            status: u16::try_from(status)
                .map_err(|_| StorageError::Corrupt("negative status".into()))?,
            content_type: row.get("content_type"),
            location: row.get("location"),
            body: row.get("body"),
        },
        created_at: from_sql_time(row.get("created_at"))?,
    })
}

/// Locks the scopes (in a fixed order) for the rest of the transaction and returns the records
/// they already have.
pub(super) async fn lock_and_find(
    client: &impl GenericClient,
    scopes: &[IdempotencyScope],
) -> Result<Vec<IdempotencyRecord>, StorageError> {
    if scopes.is_empty() {
        return Ok(Vec::new());
    }
    let mut lock_ids: Vec<i64> = scopes.iter().map(IdempotencyScope::lock_id).collect();
    lock_ids.sort_unstable();
    lock_ids.dedup();
    let api_key_ids: Vec<Uuid> = scopes.iter().map(|scope| scope.api_key_id).collect();
    let keys: Vec<&str> = scopes.iter().map(|scope| scope.key.as_str()).collect();
    let lock = client
        .prepare_cached(
            "SELECT pg_advisory_xact_lock(id) FROM unnest($1::bigint[]) AS locks(id) ORDER BY id",
        )
        .await?;
    let find = client.prepare_cached(&find_records_text()).await?;
    client.execute(&lock, &[&lock_ids]).await?;
    let rows = client.query(&find, &[&api_key_ids, &keys]).await?;
    rows.iter().map(record_from_row).collect()
}

/// Looks up the records of `(api_key_id, key)` pairs given as two arrays ($1, $2), one probe of
/// the primary key per pair, whatever the statistics (see `BEGIN_BATCH`).
pub(super) fn find_records_text() -> String {
    format!(
        "SELECT found.* FROM unnest($1::uuid[], $2::text[]) AS wanted (api_key_id, key) \
         CROSS JOIN LATERAL (SELECT {COLUMNS} FROM idempotency_keys \
             WHERE api_key_id = wanted.api_key_id AND key = wanted.key OFFSET 0) AS found"
    )
}

pub(super) async fn insert_records(
    client: &impl GenericClient,
    records: &[IdempotencyRecord],
) -> Result<(), StorageError> {
    if records.is_empty() {
        return Ok(());
    }
    let statement = client
        .prepare_cached(
            "INSERT INTO idempotency_keys (api_key_id, key, fingerprint, status, content_type, \
             location, body, created_at) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::smallint[], \
             $5::text[], $6::text[], $7::bytea[], $8::timestamptz[])",
        )
        .await?;
    let api_key_ids: Vec<Uuid> = records
        .iter()
        .map(|record| record.scope.api_key_id)
        .collect();
    let keys: Vec<&str> = records
        .iter()
        .map(|record| record.scope.key.as_str())
        .collect();
    let fingerprints: Vec<&[u8]> = records
        .iter()
        .map(|record| record.fingerprint.0.as_slice())
        .collect();
    let statuses: Vec<i16> = records
        .iter()
        .map(|record| record.response.status as i16)
        .collect();
    let content_types: Vec<&str> = records
        .iter()
        .map(|record| record.response.content_type.as_str())
        .collect();
    let locations: Vec<Option<&str>> = records
        .iter()
        .map(|record| record.response.location.as_deref())
        .collect();
    let bodies: Vec<&[u8]> = records
        .iter()
        .map(|record| record.response.body.as_slice())
        .collect();
    let created: Vec<_> = records
        .iter()
        .map(|record| to_sql_time(record.created_at))
        .collect();
    client
        .execute(
            &statement,
            &[
                &api_key_ids,
                &keys,
                &fingerprints,
                &statuses,
                &content_types,
                &locations,
                &bodies,
                &created,
            ],
        )
        .await?;
    Ok(())
}

/// A state change made at most once under an Idempotency-Key.
#[derive(Debug)]
pub enum Idempotent<T> {
    /// Applied now (and recorded, when there was a key).
    Applied(T),
    /// The key was used before for the same request: its response.
    Replayed(StoredResponse),
    /// The key was used before for a different request.
    KeyReused,
}

/// What identifies an idempotent request (§6): the scope of its key and the fingerprint of
/// the request. The one type for it, from the HTTP layer through the writer to the records.
#[derive(Clone, Debug)]
pub struct IdempotencyClaim {
    pub scope: IdempotencyScope,
    pub fingerprint: Hash32,
}

/// In an open transaction: locks the claim's scope and, when it has a record already, returns
/// the answer to give instead of applying anything.
pub(super) async fn settle_before_applying(
    client: &impl GenericClient,
    claim: Option<&IdempotencyClaim>,
) -> Result<Option<Idempotent<()>>, StorageError> {
    let Some(claim) = claim else { return Ok(None) };
    let records = lock_and_find(client, std::slice::from_ref(&claim.scope)).await?;
    Ok(records.into_iter().next().map(|record| {
        if record.fingerprint == claim.fingerprint {
            Idempotent::Replayed(record.response)
        } else {
            Idempotent::KeyReused
        }
    }))
}

/// Records the response of a claim, made at `at`, in the transaction of its effect.
pub(super) async fn record(
    client: &impl GenericClient,
    claim: Option<&IdempotencyClaim>,
    response: StoredResponse,
    at: Timestamp,
) -> Result<(), StorageError> {
    let Some(claim) = claim else { return Ok(()) };
    let record = IdempotencyRecord {
        scope: claim.scope.clone(),
        fingerprint: claim.fingerprint,
        response,
        created_at: at,
    };
    insert_records(client, std::slice::from_ref(&record)).await
}

impl Storage {
    /// Deletes records created before `cutoff`, at most `batch` rows per statement, and returns
    /// how many were deleted. Never touches the journal, which keeps every key forever.
    pub async fn purge_idempotency_records(
        &self,
        cutoff: Timestamp,
        batch: i64,
    ) -> Result<u64, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "DELETE FROM idempotency_keys WHERE (api_key_id, key) IN \
                 (SELECT api_key_id, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
            )
            .await?;
        let mut deleted = 0;
        loop {
            let count = client
                .execute(&statement, &[&to_sql_time(cutoff), &batch])
                .await?;
            deleted += count;
            if count < batch as u64 {
                return Ok(deleted);
            }
        }
    }
}

impl Storage {
    /// Runs `operation` at most once per claim: its scope is locked for the duration (a
    /// concurrent duplicate waits, then replays), and its response is recorded when it ends.
    /// For operations that are not writer batches (integrity checks); `at` is when it was made.
    pub async fn run_claimed<F, Fut>(
        &self,
        claim: Option<&IdempotencyClaim>,
        at: Timestamp,
        operation: F,
    ) -> Result<Idempotent<StoredResponse>, StorageError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<StoredResponse, StorageError>>,
    {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        if let Some(answer) = settle_before_applying(&transaction, claim).await? {
            return Ok(match answer {
                Idempotent::Replayed(response) => Idempotent::Replayed(response),
                _ => Idempotent::KeyReused,
            });
        }
        let response = operation().await?;
        record(&transaction, claim, response.clone(), at).await?;
        transaction.commit().await?;
        Ok(Idempotent::Applied(response))
    }
}
