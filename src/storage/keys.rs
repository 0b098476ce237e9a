//! API keys: stored as the SHA-256 of their token, revoked but never deleted.

use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::rows::{from_sql_time, to_sql_time};
use super::{hash_from_sql, Storage, StorageError};
use crate::audit::Hash32;
use crate::domain::{LedgerName, Timestamp};

/// The role of an API key (§9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Writer,
    Reader,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Writer, Role::Reader, Role::Auditor];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Writer => "writer",
            Role::Reader => "reader",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// `None`: every ledger.
    pub ledgers: Option<Vec<LedgerName>>,
    pub token_sha256: Hash32,
    pub created_at: Timestamp,
    pub created_by: String,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// Whether this key may act on the named ledger.
    pub fn covers(&self, ledger: &str) -> bool {
        self.ledgers
            .as_ref()
            .is_none_or(|names| names.iter().any(|name| name.as_str() == ledger))
    }
}

const COLUMNS: &str = "id, name, role, ledgers, token_sha256, created_at, created_by, revoked_at";

fn key_from_row(row: &Row) -> Result<ApiKey, StorageError> {
    let ledgers: Option<Vec<String>> = row.get("ledgers");
    let ledgers = ledgers
        .map(|names| {
            names
                .iter()
                .map(|name| LedgerName::parse(name).map_err(StorageError::from))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(ApiKey {
        id: row.get("id"),
        name: row.get("name"),
        role: Role::parse(row.get("role"))
            .ok_or_else(|| StorageError::Corrupt("unknown role".into()))?,
        ledgers,
        token_sha256: hash_from_sql(row.get("token_sha256"))?,
        created_at: from_sql_time(row.get("created_at"))?,
        created_by: row.get("created_by"),
        revoked_at: row
            .get::<_, Option<OffsetDateTime>>("revoked_at")
            .map(from_sql_time)
            .transpose()?,
    })
}

impl Storage {
    pub async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StorageError> {
        let client = self.client().await?;
        insert_api_key(&client, key).await
    }

    pub async fn api_key_by_token_sha256(
        &self,
        digest: &Hash32,
    ) -> Result<Option<ApiKey>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_keys WHERE token_sha256 = $1"
            ))
            .await?;
        client
            .query_opt(&statement, &[&digest.0.as_slice()])
            .await?
            .map(|row| key_from_row(&row))
            .transpose()
    }

    pub async fn api_key(&self, id: Uuid) -> Result<Option<ApiKey>, StorageError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"),
                &[&id],
            )
            .await?
            .map(|row| key_from_row(&row))
            .transpose()
    }

    /// Keys in creation order (their ids are UUIDv7), after `after`.
    pub async fn api_keys_page(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<ApiKey>, bool), StorageError> {
        let client = self.client().await?;
        let limit_plus_one = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM api_keys WHERE $1::uuid IS NULL OR id > $1 ORDER BY id \
                     LIMIT $2"
                ),
                &[&after, &limit_plus_one],
            )
            .await?;
        let more = rows.len() > limit;
        let keys = rows
            .iter()
            .take(limit)
            .map(key_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((keys, more))
    }

    /// Revokes a key; revoking a revoked key keeps its first revocation time.
    pub async fn revoke_api_key(
        &self,
        id: Uuid,
        at: Timestamp,
    ) -> Result<Option<ApiKey>, StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1",
                &[&id, &to_sql_time(at)],
            )
            .await?;
        drop(client);
        self.api_key(id).await
    }

    /// Whether an unrevoked, unrestricted admin key exists.
    pub async fn has_admin_key(&self) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT FROM api_keys WHERE role = 'admin' AND ledgers IS NULL AND \
                 revoked_at IS NULL)",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }
}

pub(super) async fn insert_api_key(
    client: &impl deadpool_postgres::GenericClient,
    key: &ApiKey,
) -> Result<(), StorageError> {
    let ledgers: Option<Vec<&str>> = key
        .ledgers
        .as_ref()
        .map(|names| names.iter().map(LedgerName::as_str).collect());
    client
        .execute(
            "INSERT INTO api_keys (id, name, role, ledgers, token_sha256, created_at, created_by, \
             revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
            &[
                &key.id,
                &key.name,
                &key.role.as_str(),
                &ledgers,
                &key.token_sha256.0.as_slice(),
                &to_sql_time(key.created_at),
                &key.created_by,
            ],
        )
        .await?;
    Ok(())
}
