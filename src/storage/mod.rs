//! The storage layer: the only code that knows SQL (tokio-postgres + deadpool-postgres).
//!
//! Reads go straight to the pool. Writes to a ledger go through [`batch`], one database
//! transaction per batch of commands, serialised on the ledger's chain head row.

pub mod audit;
pub mod batch;
pub mod cosignatures;
pub mod idempotency;
pub mod keys;
pub mod matching;
mod reads;
pub mod reconciliation;
mod rows;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::audit::merkle::MerkleFrontier;
use crate::audit::{ChainHead, Hash32, JournalEvent};
use crate::domain::{Currency, LedgerName, Metadata, Timestamp};

pub use reads::{Page, TransferFilter};

mod embedded_migrations {
    refinery::embed_migrations!("migrations");
}

/// The restricted role the service switches to when it can (see migrations/V1__core.sql).
const SERVICE_ROLE: &str = "ledger_service";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no database connection available: {0}")]
    Pool(String),
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("a ledger named {0} already exists")]
    LedgerExists(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// The connection broke while `COMMIT` was on its way: the database may or may not have
    /// committed. Only reading the chain head again can tell.
    #[error("the connection broke during COMMIT: {0}")]
    CommitOutcomeUnknown(String),
}

impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(error: deadpool_postgres::PoolError) -> StorageError {
        StorageError::Pool(error.to_string())
    }
}

/// Connection settings that bound what one statement or one wait may cost (§8).
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_connections: usize,
    /// Plan every execution with its actual parameters (array sizes, statistics of the day)
    /// rather than reuse a generic plan made once, possibly when a table was empty.
    pub custom_plans: bool,
    pub statement_timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

/// A ledger as the service knows it once created: immutable but for its journal.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerRecord {
    pub id: i32,
    pub name: LedgerName,
    /// Custom assets declared at creation.
    pub assets: Vec<Currency>,
    pub metadata: Metadata,
    pub created_at: Timestamp,
}

/// The fields of a new ledger row.
pub struct NewLedgerRow<'a> {
    pub name: &'a LedgerName,
    pub assets: &'a [Currency],
    pub metadata: &'a Metadata,
}

/// The chain head as stored: last seq, last hash, the time of the last event, and the frontier
/// of the journal's Merkle tree (normally of `chain.seq` leaves; fewer only in a database from
/// before the tree existed, until the next batch catches up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredHead {
    pub chain: ChainHead,
    pub last_at: Timestamp,
    pub merkle: MerkleFrontier,
}

#[derive(Clone)]
pub struct Storage {
    pool: Pool,
    settings: PoolSettings,
    /// What the pool was built from, to open sibling pools alike.
    base_config: tokio_postgres::Config,
    use_service_role: bool,
}

impl Storage {
    /// Builds the pool. Connections are opened lazily.
    pub fn new(
        base_config: tokio_postgres::Config,
        settings: PoolSettings,
        use_service_role: bool,
    ) -> Result<Storage, StorageError> {
        let mut config = base_config.clone();
        // Custom plans for reads: a statement's plan then never depends on the statistics of the
        // moment a pooled connection first prepared it (an empty table plans a sequential scan,
        // kept long after the table grew).
        let plan_cache_mode = if settings.custom_plans {
            "force_custom_plan"
        } else {
            "auto"
        };
        let mut options = format!(
            "-c statement_timeout={} -c plan_cache_mode={plan_cache_mode}",
            settings.statement_timeout_ms
        );
        if use_service_role {
            options.push_str(&format!(" -c role={SERVICE_ROLE}"));
        }
        config.options(&options);
        config.connect_timeout(Duration::from_millis(settings.connect_timeout_ms));
        config.application_name("ledger");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections)
            .wait_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
            .create_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            // The most recently used connection first: warm caches, and a ledger's writer keeps
            // reusing one backend.
            .queue_mode(deadpool_postgres::QueueMode::Lifo)
            .build()
            .map_err(|error| StorageError::Pool(error.to_string()))?;
        Ok(Storage {
            pool,
            settings,
            base_config,
            use_service_role,
        })
    }

    /// Applies the forward-only migrations of `migrations/` with the login user's rights, then
    /// returns a storage that uses the restricted service role when the database has it.
    pub async fn migrate_and_connect(
        config: tokio_postgres::Config,
        settings: PoolSettings,
    ) -> Result<Storage, StorageError> {
        let owner = Storage::new(config.clone(), settings.clone(), false)?;
        owner.migrate().await?;
        let use_role = owner.can_use_service_role().await?;
        drop(owner);
        Storage::new(config, settings, use_role)
    }

    /// Another pool on the same database, with the same role and timeouts, for a part of the
    /// service that must not wait behind the others for a connection: the writers, readiness.
    pub fn sibling(&self, max_connections: usize) -> Result<Storage, StorageError> {
        let settings = PoolSettings {
            max_connections,
            custom_plans: true,
            ..self.settings.clone()
        };
        Storage::new(self.base_config.clone(), settings, self.use_service_role)
    }

    pub async fn migrate(&self) -> Result<(), StorageError> {
        let mut client = self.pool.get().await?;
        embedded_migrations::migrations::runner()
            .run_async(&mut **client)
            .await
            .map_err(|error| StorageError::Migration(error.to_string()))?;
        Ok(())
    }

    async fn can_use_service_role(&self) -> Result<bool, StorageError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1) \
                 AND pg_has_role(current_user, (SELECT oid FROM pg_roles WHERE rolname = $1), 'MEMBER')",
                &[&SERVICE_ROLE],
            )
            .await?;
        Ok(row.get::<_, Option<bool>>(0).unwrap_or(false))
    }

    /// Ready: the database answers and every migration this build knows is applied.
    pub async fn is_ready(&self) -> bool {
        let Ok(client) = self.pool.get().await else {
            return false;
        };
        let expected = embedded_migrations::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0);
        match client
            .query_one(
                "SELECT coalesce(max(version), 0)::bigint FROM refinery_schema_history",
                &[],
            )
            .await
        {
            Ok(row) => row.get::<_, i64>(0) >= expected,
            Err(_) => false,
        }
    }

    /// The role the service's statements run as.
    pub async fn current_user(&self) -> Result<String, StorageError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_one("SELECT current_user::text", &[])
            .await?
            .get(0))
    }

    pub fn pool_settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Creates a ledger with its genesis event in one transaction, at most once per claim: the
    /// response `render` gives is recorded with it.
    pub async fn create_ledger(
        &self,
        new: &NewLedgerRow<'_>,
        genesis: &JournalEvent,
        claim: Option<&idempotency::Claim>,
        render: impl FnOnce(&LedgerRecord) -> idempotency::StoredResponse,
    ) -> Result<idempotency::Idempotent<(LedgerRecord, idempotency::StoredResponse)>, StorageError>
    {
        assert_eq!(genesis.seq, 1);
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        if let Some(answer) = idempotency::settle_before_applying(&transaction, claim).await? {
            return Ok(match answer {
                idempotency::Idempotent::Replayed(response) => {
                    idempotency::Idempotent::Replayed(response)
                }
                _ => idempotency::Idempotent::KeyReused,
            });
        }
        let created_at = rows::to_sql_time(genesis.at);
        let inserted = transaction
            .query_opt(
                "INSERT INTO ledgers (name, assets, metadata, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO NOTHING RETURNING id",
                &[
                    &new.name.as_str(),
                    &rows::assets_to_json(new.assets),
                    &rows::metadata_to_json(new.metadata),
                    &created_at,
                ],
            )
            .await?;
        let Some(row) = inserted else {
            return Err(StorageError::LedgerExists(new.name.to_string()));
        };
        let id: i32 = row.get(0);
        transaction
            .execute(
                "INSERT INTO ledger_heads (ledger_id, last_seq, last_hash, last_at, merkle_size, merkle_frontier) \
                 VALUES ($1, 1, $2, $3, 1, $4)",
                &[&id, &genesis.hash.0.as_slice(), &created_at, &frontier_to_sql(&genesis_frontier(genesis))],
            )
            .await?;
        batch::insert_events(&transaction, id, std::slice::from_ref(genesis)).await?;
        let ledger = LedgerRecord {
            id,
            name: new.name.clone(),
            assets: new.assets.to_vec(),
            metadata: new.metadata.clone(),
            created_at: genesis.at,
        };
        let response = render(&ledger);
        idempotency::record(&transaction, claim, response.clone()).await?;
        transaction.commit().await?;
        Ok(idempotency::Idempotent::Applied((ledger, response)))
    }

    /// Creates an API key at most once per claim. The recorded response is `recorded` (which
    /// must not contain the token: a replay never repeats a secret).
    pub async fn create_api_key(
        &self,
        key: &keys::ApiKey,
        claim: Option<&idempotency::Claim>,
        recorded: idempotency::StoredResponse,
    ) -> Result<idempotency::Idempotent<()>, StorageError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        if let Some(answer) = idempotency::settle_before_applying(&transaction, claim).await? {
            return Ok(answer);
        }
        keys::insert_api_key(&transaction, key).await?;
        idempotency::record(&transaction, claim, recorded).await?;
        transaction.commit().await?;
        Ok(idempotency::Idempotent::Applied(()))
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        Ok(self.pool.get().await?)
    }
}

/// The tree of a journal holding only its genesis event.
fn genesis_frontier(genesis: &JournalEvent) -> MerkleFrontier {
    let mut frontier = MerkleFrontier::new();
    frontier
        .append_event_hash(&genesis.hash)
        .expect("one leaf fits");
    frontier
}

pub(crate) fn frontier_to_sql(frontier: &MerkleFrontier) -> Vec<Vec<u8>> {
    frontier
        .hashes()
        .iter()
        .map(|hash| hash.0.to_vec())
        .collect()
}

pub(crate) fn hash_from_sql(bytes: &[u8]) -> Result<Hash32, StorageError> {
    Hash32::from_slice(bytes)
        .ok_or_else(|| StorageError::Corrupt("a stored hash is not 32 bytes".into()))
}
