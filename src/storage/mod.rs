//! The storage layer: the only code that knows SQL (tokio-postgres + deadpool-postgres).
//!
//! Reads go straight to the pool. Writes to a ledger go through [`batch`], one database
//! transaction per batch of commands, serialised on the ledger's chain head row.
//!
//! High availability (docs/OPERATIONS.md): the configuration may name several hosts with
//! `target_session_attrs=read-write`, so that new connections reach whichever node is the
//! primary. A connection that broke, or whose server turned out not to be the primary any more
//! (SQLSTATE 25006 `read_only_sql_transaction`, a shutdown, a connection exception), is an
//! outage, not a bug: it becomes [`StorageError::Pool`] (`503 database_unavailable` with
//! `Retry-After`), and every pooled connection opened before it is discarded instead of reused.
//! An optional read replica ([`Storage::with_replica`]) serves reads of history that is
//! immutable once written (journal pages, Merkle subtrees, events by seq, balances and accounts
//! as of a seq, postings) when it has replayed what they need, and the primary serves them
//! otherwise (see `reads::on_replica`).

pub mod audit;
pub mod batch;
pub mod cosignatures;
pub mod idempotency;
pub mod keys;
pub mod matching;
mod reads;
pub mod reconciliation;
mod rows;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::audit::merkle::MerkleFrontier;
use crate::audit::{ChainHead, Hash32, JournalEvent};
use crate::domain::{Currency, LedgerName, Metadata, Timestamp};

pub use reads::{Page, TransferFilter};

mod embedded_migrations {
    refinery::embed_migrations!("migrations");
}

/// How to reach a database: host(s), port(s), user, database and options, parsed from a
/// `postgresql://` URL or `key=value` pairs (`parse_database_url`), several hosts included.
pub type DatabaseConfig = tokio_postgres::Config;

/// Parses `DATABASE_URL` or `LEDGER_READ_DATABASE_URL` (a URL or `key=value` pairs; several
/// hosts with `target_session_attrs`).
pub fn parse_database_url(url: &str) -> Result<DatabaseConfig, tokio_postgres::Error> {
    url.parse()
}

/// Creates the database `name` unless it exists, connected as `admin` (the embedded cluster's
/// superuser).
pub async fn create_database_if_missing(
    admin: &DatabaseConfig,
    name: &str,
) -> Result<(), StorageError> {
    let (client, connection) = admin.connect(NoTls).await?;
    let connection = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
    }
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// The advisory lock migrations run under (`pg_advisory_lock(int, int)`: "ledg", 1).
const MIGRATION_LOCK: (i32, i32) = (0x6c65_6467, 1);

/// Longest a starting instance waits for another one's migrations.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(600);

/// The restricted role the service switches to when it can (see migrations/V1__core.sql).
const SERVICE_ROLE: &str = "ledger_service";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no database connection available: {0}")]
    Pool(String),
    #[error("database error: {0}")]
    Database(tokio_postgres::Error),
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

impl From<tokio_postgres::Error> for StorageError {
    /// A database error, unless it says that the connection is unusable (the server went away,
    /// is shutting down, or is a standby now): that is an outage, answered `503` with
    /// `Retry-After` like a pool that cannot connect, and the pools drop the connections opened
    /// before it.
    fn from(error: tokio_postgres::Error) -> StorageError {
        match unusable_connection(&error) {
            Some(reason) => {
                discard_connections_opened_until_now();
                StorageError::Pool(format!("{reason}: {error}"))
            }
            None => StorageError::Database(error),
        }
    }
}

/// Why a connection that failed with `error` must not be used again, if it must not: it broke
/// (closed, or an I/O error), its server is shutting down or restarting (SQLSTATE class 57P),
/// refused to continue (class 08), or is not the primary (25006: a write on a standby, after a
/// failover demoted the node this connection reached).
pub fn unusable_connection(error: &tokio_postgres::Error) -> Option<&'static str> {
    if let Some(code) = error.code() {
        let code = code.code();
        return if code == "25006" {
            Some("the database node is read-only (a standby, after a failover)")
        } else if code.starts_with("57P") {
            Some("the database node is shutting down or restarting")
        } else if code.starts_with("08") {
            Some("the database connection failed")
        } else {
            None
        };
    }
    let io = std::error::Error::source(error)
        .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some());
    (error.is_closed() || io).then_some("the database connection broke")
}

/// The process's clock for connection ages (µs since the first use).
fn process_micros(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    at.saturating_duration_since(epoch).as_micros() as u64 + 1
}

/// Pooled connections opened at or before this instant (µs, `process_micros`) are discarded at
/// their next checkout: they reach a node that failed or is no longer the primary.
static DISCARD_OPENED_UNTIL: AtomicU64 = AtomicU64::new(0);

fn discard_connections_opened_until_now() {
    DISCARD_OPENED_UNTIL.fetch_max(process_micros(Instant::now()), Ordering::SeqCst);
}

/// The pools' check at checkout: a connection opened before the last unusable one is dropped
/// (and another taken or opened), so that after a failover no request is handed a connection
/// to the old primary.
fn discard_stale_connections() -> Hook {
    Hook::sync_fn(|_client, metrics| {
        if process_micros(metrics.created) <= DISCARD_OPENED_UNTIL.load(Ordering::SeqCst) {
            Err(HookError::message(
                "opened before a connection to the same database became unusable",
            ))
        } else {
            Ok(())
        }
    })
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

/// How a pool's connections stand at one moment.
#[derive(Clone, Copy, Debug)]
pub struct PoolConnections {
    pub in_use: usize,
    pub idle: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
    pub max: usize,
}

#[derive(Clone)]
pub struct Storage {
    pool: Pool,
    settings: PoolSettings,
    /// What the pool was built from, to open sibling pools alike.
    base_config: tokio_postgres::Config,
    use_service_role: bool,
    /// A hot standby for reads of immutable history, when configured.
    replica: Option<Arc<Replica>>,
}

/// The read replica's pool, and how long it rests after a failure (reads go to the primary
/// meanwhile, so a replica that is down costs no request more than one failed attempt).
pub(crate) struct Replica {
    pub(crate) pool: Pool,
    resting_until: Mutex<Option<Instant>>,
}

/// How long the replica is left alone after it failed a read.
const REPLICA_REST: Duration = Duration::from_secs(5);

impl Replica {
    pub(crate) fn usable(&self) -> bool {
        let resting = self.resting_until.lock().expect("never poisoned");
        resting.is_none_or(|until| Instant::now() >= until)
    }

    pub(crate) fn failed(&self, error: &StorageError) {
        let mut resting = self.resting_until.lock().expect("never poisoned");
        if resting.is_none_or(|until| Instant::now() >= until) {
            tracing::warn!(
                error = %error,
                "the read replica failed a read; reading from the primary for {} s",
                REPLICA_REST.as_secs()
            );
        }
        *resting = Some(Instant::now() + REPLICA_REST);
    }
}

/// Keepalives and a TCP user timeout for TCP hosts, unless the URL set them: a connection to a
/// machine that vanished (no reset, no answer) fails within seconds instead of waiting on
/// the kernel's defaults (hours for an idle connection, ~15 minutes for unacknowledged data).
fn bound_dead_peer_detection(config: &mut tokio_postgres::Config) {
    if !config.get_keepalives() {
        return;
    }
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(Duration::from_secs(5));
        config.keepalives_interval(Duration::from_secs(1));
        config.keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(10));
    }
}

/// Gives each host's connection attempt an equal share of `wait` (the pool's wait for a new
/// connection), unless the URL sets `connect_timeout`: hosts are tried in order, and a first
/// host that neither answers nor resets (a machine that vanished) must leave time to try the
/// next ones.
fn share_connect_timeout(config: &mut tokio_postgres::Config, wait: Duration) {
    if config.get_connect_timeout().is_some() {
        return;
    }
    let hosts = u32::try_from(config.get_hosts().len().max(1)).unwrap_or(u32::MAX);
    config.connect_timeout((wait / hosts).max(Duration::from_millis(100)));
}

impl Storage {
    /// The pool's connections now: in use, idle, waited for, and the most it opens.
    pub fn pool_connections(&self) -> PoolConnections {
        let status = self.pool.status();
        PoolConnections {
            in_use: status.size.saturating_sub(status.available),
            idle: status.available,
            waiting: status.waiting,
            max: status.max_size,
        }
    }

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
        share_connect_timeout(
            &mut config,
            Duration::from_millis(settings.connect_timeout_ms),
        );
        config.application_name("ledger");
        bound_dead_peer_detection(&mut config);
        let pool = build_pool(
            config,
            settings.max_connections,
            Duration::from_millis(settings.connect_timeout_ms),
        )?;
        Ok(Storage {
            pool,
            settings,
            base_config,
            use_service_role,
            replica: None,
        })
    }

    /// This storage with a read replica (`LEDGER_READ_DATABASE_URL`): a hot standby of the same
    /// database, reached with the same role and statement timeout, but waited for at most one
    /// second (a replica that does not answer costs a read that much, once per
    /// `REPLICA_REST`, and the primary answers).
    pub fn with_replica(
        &self,
        replica: tokio_postgres::Config,
        max_connections: usize,
    ) -> Result<Storage, StorageError> {
        let mut config = replica;
        let mut options = format!(
            "-c statement_timeout={} -c plan_cache_mode=force_custom_plan",
            self.settings.statement_timeout_ms
        );
        if self.use_service_role {
            options.push_str(&format!(" -c role={SERVICE_ROLE}"));
        }
        config.options(&options);
        let wait = Duration::from_millis(self.settings.connect_timeout_ms.min(1_000));
        share_connect_timeout(&mut config, wait);
        config.application_name("ledger-reads");
        bound_dead_peer_detection(&mut config);
        let pool = build_pool(config, max_connections, wait)?;
        Ok(Storage {
            replica: Some(Arc::new(Replica {
                pool,
                resting_until: Mutex::new(None),
            })),
            ..self.clone()
        })
    }

    /// The configuration the pool's connections are made with (role, timeouts, keepalives).
    pub(crate) fn connection_config(&self) -> tokio_postgres::Config {
        let mut config = self.base_config.clone();
        let mut options = format!(
            "-c statement_timeout={} -c plan_cache_mode=force_custom_plan",
            self.settings.statement_timeout_ms
        );
        if self.use_service_role {
            options.push_str(&format!(" -c role={SERVICE_ROLE}"));
        }
        config.options(&options);
        share_connect_timeout(
            &mut config,
            Duration::from_millis(self.settings.connect_timeout_ms),
        );
        config.application_name("ledger");
        bound_dead_peer_detection(&mut config);
        config
    }

    pub(crate) fn replica(&self) -> Option<&Replica> {
        self.replica.as_deref()
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

    /// Applies the pending migrations under a session advisory lock, so that replicas starting
    /// together migrate one after the other (refinery itself does not serialise runs: two at
    /// once on an empty database both try to create its history table, and one fails). The
    /// lock uses the two-key space, apart from the idempotency scopes' single keys; the wait
    /// for it is bounded by `MIGRATION_LOCK_WAIT`, not by the statement timeout.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        let mut client = self.pool.get().await?;
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}; SELECT pg_advisory_lock({}, {}); \
                 RESET statement_timeout",
                MIGRATION_LOCK_WAIT.as_millis(),
                MIGRATION_LOCK.0,
                MIGRATION_LOCK.1
            ))
            .await?;
        let applied = embedded_migrations::migrations::runner()
            .run_async(&mut **client)
            .await
            .map_err(|error| StorageError::Migration(error.to_string()));
        let unlocked = client
            .batch_execute(&format!(
                "SELECT pg_advisory_unlock({}, {})",
                MIGRATION_LOCK.0, MIGRATION_LOCK.1
            ))
            .await;
        if unlocked.is_err() {
            // Never hand a connection that may still hold the lock back to the pool.
            drop(deadpool_postgres::Object::take(client));
        }
        applied?;
        unlocked?;
        Ok(())
    }

    async fn can_use_service_role(&self) -> Result<bool, StorageError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1) \
                 AND pg_has_role(current_user, \
                                 (SELECT oid FROM pg_roles WHERE rolname = $1), 'MEMBER')",
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
        claim: Option<&idempotency::IdempotencyClaim>,
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
                "INSERT INTO ledger_heads \
                 (ledger_id, last_seq, last_hash, last_at, merkle_size, merkle_frontier) \
                 VALUES ($1, 1, $2, $3, 1, $4)",
                &[
                    &id,
                    &genesis.hash.0.as_slice(),
                    &created_at,
                    &frontier_to_sql(&genesis_frontier(genesis)),
                ],
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
        idempotency::record(&transaction, claim, response.clone(), genesis.at).await?;
        transaction.commit().await?;
        Ok(idempotency::Idempotent::Applied((ledger, response)))
    }

    /// Creates an API key at most once per claim. The recorded response is `recorded` (which
    /// must not contain the token: a replay never repeats a secret).
    pub async fn create_api_key(
        &self,
        key: &keys::ApiKey,
        claim: Option<&idempotency::IdempotencyClaim>,
        recorded: idempotency::StoredResponse,
    ) -> Result<idempotency::Idempotent<()>, StorageError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        if let Some(answer) = idempotency::settle_before_applying(&transaction, claim).await? {
            return Ok(answer);
        }
        keys::insert_api_key(&transaction, key).await?;
        idempotency::record(&transaction, claim, recorded, key.created_at).await?;
        transaction.commit().await?;
        Ok(idempotency::Idempotent::Applied(()))
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        Ok(self.pool.get().await?)
    }
}

fn build_pool(
    config: tokio_postgres::Config,
    max_connections: usize,
    wait: Duration,
) -> Result<Pool, StorageError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // Checks that the connection is open; connections to a node that failed or was
            // demoted are dropped by `discard_stale_connections` (no query per checkout).
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_connections)
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        // The most recently used connection first: warm caches, and a ledger's writer keeps
        // reusing one backend.
        .queue_mode(deadpool_postgres::QueueMode::Lifo)
        .pre_recycle(discard_stale_connections())
        .build()
        .map_err(|error| StorageError::Pool(error.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_of_a_formation_gets_a_share_of_the_connection_wait_unless_the_url_sets_one() {
        let mut three: tokio_postgres::Config =
            "host=a,b,c user=ledger target_session_attrs=read-write"
                .parse()
                .expect("a URL");
        share_connect_timeout(&mut three, Duration::from_millis(6_000));
        assert_eq!(
            three.get_connect_timeout(),
            Some(&Duration::from_millis(2_000))
        );
        assert_eq!(three.get_hosts().len(), 3);
        assert_eq!(
            three.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        let mut given: tokio_postgres::Config = "postgresql://ledger@a:5432,b:5433/ledger\
             ?target_session_attrs=read-write&connect_timeout=1"
            .parse()
            .expect("a URL");
        share_connect_timeout(&mut given, Duration::from_millis(6_000));
        assert_eq!(given.get_connect_timeout(), Some(&Duration::from_secs(1)));
        assert_eq!(given.get_ports(), &[5432, 5433]);
    }

    #[test]
    fn tcp_connections_get_keepalives_and_a_user_timeout_unless_the_url_sets_them() {
        let mut plain: tokio_postgres::Config = "host=a user=ledger".parse().expect("a URL");
        bound_dead_peer_detection(&mut plain);
        assert_eq!(plain.get_keepalives_idle(), Duration::from_secs(5));
        assert_eq!(plain.get_tcp_user_timeout(), Some(&Duration::from_secs(10)));
        let mut chosen: tokio_postgres::Config =
            "host=a user=ledger keepalives_idle=30 tcp_user_timeout=60"
                .parse()
                .expect("a URL");
        bound_dead_peer_detection(&mut chosen);
        assert_eq!(chosen.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(
            chosen.get_tcp_user_timeout(),
            Some(&Duration::from_secs(60))
        );
    }
}
