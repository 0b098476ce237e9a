//! Witness cosignatures of checkpoints (migrations/V7__checkpoint_cosignatures.sql): one per
//! checkpoint and witness key, append-only, the first one posted kept.

use uuid::Uuid;

use super::audit::StoredCheckpoint;
use super::rows::*;
use super::{hash_from_sql, Storage, StorageError};
use crate::domain::Timestamp;

/// The most cosignatures kept (and served) per checkpoint: a note holds at most 100 signature
/// lines, the log's own among them, and witness keys are not vetted, so a caller with an
/// auditor key must not be able to push a note past what clients accept.
pub const MAX_COSIGNATURES_PER_CHECKPOINT: i64 = 64;

/// A cosignature as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCosignature {
    pub tree_size: u64,
    pub key_id: [u8; 4],
    pub public_key: [u8; 32],
    pub witness_name: String,
    /// The cosignature's timestamp, seconds since the Unix epoch.
    pub cosigned_at: u64,
    pub signature: [u8; 64],
    pub received_at: Timestamp,
    pub received_by: Uuid,
}

/// What recording a cosignature did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Stored now.
    Created(StoredCosignature),
    /// This witness key had co-signed this checkpoint already: the one kept.
    Existing(StoredCosignature),
    /// The checkpoint has [`MAX_COSIGNATURES_PER_CHECKPOINT`] cosignatures already.
    Full,
}

const COLUMNS: &str =
    "tree_size, key_id, public_key, witness_name, cosigned_at, signature, received_at, received_by";

fn fixed<const N: usize>(bytes: Vec<u8>, what: &str) -> Result<[u8; N], StorageError> {
    bytes
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("a cosignature's {what} is not {N} bytes")))
}

fn cosignature_from_row(row: &tokio_postgres::Row) -> Result<StoredCosignature, StorageError> {
    let cosigned_at: i64 = row.get("cosigned_at");
    Ok(StoredCosignature {
        tree_size: seq_from_sql(row.get("tree_size"))?,
        key_id: fixed(row.get("key_id"), "key id")?,
        public_key: fixed(row.get("public_key"), "public key")?,
        witness_name: row.get("witness_name"),
        cosigned_at: u64::try_from(cosigned_at)
            .map_err(|_| StorageError::Corrupt("a negative cosignature time".into()))?,
        signature: fixed(row.get("signature"), "signature")?,
        received_at: from_sql_time(row.get("received_at"))?,
        received_by: row.get("received_by"),
    })
}

impl Storage {
    /// The checkpoint recorded for this tree size, if any.
    pub async fn recorded_checkpoint(
        &self,
        ledger_id: i32,
        tree_size: u64,
    ) -> Result<Option<StoredCheckpoint>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT tree_size, root_hash, note, key_id, issued_at FROM checkpoints WHERE \
                 ledger_id = $1 AND tree_size = $2",
                &[&ledger_id, &seq_to_sql(tree_size)],
            )
            .await?;
        row.map(|row| {
            Ok(StoredCheckpoint {
                tree_size: seq_from_sql(row.get("tree_size"))?,
                root: hash_from_sql(row.get("root_hash"))?,
                note: row.get("note"),
                key_id: row.get("key_id"),
                issued_at: from_sql_time(row.get("issued_at"))?,
            })
        })
        .transpose()
    }

    /// Records a cosignature of the checkpoint of `tree_size` (which must be recorded), unless
    /// this witness key (key ID and public key) co-signed it already, or the checkpoint has as
    /// many cosignatures as it may.
    pub async fn record_cosignature(
        &self,
        ledger_id: i32,
        cosignature: &StoredCosignature,
    ) -> Result<Recorded, StorageError> {
        let client = self.client().await?;
        let cosigned_at = i64::try_from(cosignature.cosigned_at)
            .map_err(|_| StorageError::Corrupt("a cosignature time beyond 2^63 - 1".into()))?;
        let size = seq_to_sql(cosignature.tree_size);
        let inserted = client
            .query_opt(
                &format!(
                    "INSERT INTO checkpoint_cosignatures (ledger_id, {COLUMNS}) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
                     WHERE (SELECT count(*) FROM checkpoint_cosignatures WHERE ledger_id = $1 AND \
                     tree_size = $2) < $10 \
                     ON CONFLICT (ledger_id, tree_size, key_id, public_key) DO NOTHING \
                     RETURNING {COLUMNS}"
                ),
                &[
                    &ledger_id,
                    &size,
                    &cosignature.key_id.as_slice(),
                    &cosignature.public_key.as_slice(),
                    &cosignature.witness_name,
                    &cosigned_at,
                    &cosignature.signature.as_slice(),
                    &to_sql_time(cosignature.received_at),
                    &cosignature.received_by,
                    &MAX_COSIGNATURES_PER_CHECKPOINT,
                ],
            )
            .await?;
        if let Some(row) = inserted {
            return Ok(Recorded::Created(cosignature_from_row(&row)?));
        }
        let existing = client
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM checkpoint_cosignatures \
                     WHERE ledger_id = $1 AND tree_size = $2 AND key_id = $3 AND public_key = $4"
                ),
                &[
                    &ledger_id,
                    &size,
                    &cosignature.key_id.as_slice(),
                    &cosignature.public_key.as_slice(),
                ],
            )
            .await?;
        match existing {
            Some(row) => Ok(Recorded::Existing(cosignature_from_row(&row)?)),
            None => Ok(Recorded::Full),
        }
    }

    /// The cosignatures of the checkpoint of `tree_size`, in the order they were received (at
    /// most [`MAX_COSIGNATURES_PER_CHECKPOINT`]).
    pub async fn cosignatures(
        &self,
        ledger_id: i32,
        tree_size: u64,
    ) -> Result<Vec<StoredCosignature>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM checkpoint_cosignatures WHERE ledger_id = $1 AND \
                     tree_size = $2 \
                     ORDER BY received_at, key_id, public_key LIMIT $3"
                ),
                &[
                    &ledger_id,
                    &seq_to_sql(tree_size),
                    &MAX_COSIGNATURES_PER_CHECKPOINT,
                ],
            )
            .await?;
        rows.iter().map(cosignature_from_row).collect()
    }
}
