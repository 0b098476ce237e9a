//! Wiring: database (embedded or given), migrations, writers, HTTP server. Used by `ledger serve`
//! and by the integration tests' `spawn_app`.

use std::io::IsTerminal as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use actix_web::dev::Server;
use actix_web::{web, HttpServer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of every `*_seconds` histogram: from a fast single request (1 ms) to a slow export or
/// reconciliation (a minute). Histograms, unlike summaries, add up across instances.
const SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];
/// Buckets of the commands per batch: one request alone up to the largest batch.
const BATCH_COMMANDS_BUCKETS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0];

use crate::audit::Hash32;
use crate::embedded::{Durability, EmbeddedCluster, EmbeddedError};
use crate::http::auth::{generate_token, token_is_well_formed, KeyDirectory, RateLimits};
use crate::http::state::{AppState, LedgerDirectory, Limits};
use crate::storage::keys::{ApiKey, Role};
use crate::storage::{DatabaseConfig, PoolSettings, Storage, StorageError};
use crate::writer::{WriterSettings, Writers};

/// Where the data lives.
#[derive(Clone, Debug)]
pub enum Database {
    /// A database the operator runs (`DATABASE_URL`).
    Given(Box<DatabaseConfig>),
    /// A private cluster under this folder (§10 embedded default).
    Embedded(PathBuf),
}

/// A hot standby serving reads of immutable history (`LEDGER_READ_DATABASE_URL`; see
/// `storage::Storage::with_replica` and docs/OPERATIONS.md).
#[derive(Clone, Debug)]
pub struct ReadDatabase {
    pub config: Box<DatabaseConfig>,
    pub max_connections: usize,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: String,
    pub database: Database,
    pub pool: PoolSettings,
    pub writer: WriterSettings,
    pub limits: Limits,
    /// HTTP worker threads; 0 means one per core.
    pub http_workers: usize,
    /// Seconds to finish accepted requests on shutdown.
    pub shutdown_timeout_seconds: u64,
    pub security: SecuritySettings,
    pub audit: AuditSettings,
}

/// Signing and the cadence of checkpoints and integrity checks (§5, §7).
#[derive(Clone, Debug)]
pub struct AuditSettings {
    pub signing_key: crate::signing::SigningKeySource,
    /// Checkpoint origins are `<prefix>/<ledger>`.
    pub origin_prefix: String,
    pub checkpoint_interval_ms: u64,
    /// 0: integrity checks run only on demand.
    pub integrity_check_interval_seconds: u64,
}

impl AuditSettings {
    /// A fresh in-memory key (tests).
    pub fn ephemeral() -> AuditSettings {
        AuditSettings {
            signing_key: crate::signing::SigningKeySource::InMemory(Box::new(
                crate::signing::generate(),
            )),
            origin_prefix: "ledger".into(),
            checkpoint_interval_ms: 10_000,
            integrity_check_interval_seconds: 0,
        }
    }
}

/// API keys, rate limits and idempotency retention (§6, §9).
#[derive(Clone, Debug)]
pub struct SecuritySettings {
    /// If set and no admin key exists, this token becomes the first admin key.
    pub bootstrap_admin_key: Option<String>,
    /// Requests per second per API key, and the burst allowed above it.
    pub rate_limit_per_second: std::num::NonZeroU32,
    pub rate_limit_burst: std::num::NonZeroU32,
    /// How long idempotency records are kept (the journal keeps keys forever).
    pub idempotency_retention_hours: u32,
}

impl Default for SecuritySettings {
    fn default() -> SecuritySettings {
        SecuritySettings {
            bootstrap_admin_key: None,
            rate_limit_per_second: std::num::NonZeroU32::new(10_000).expect("positive"),
            rate_limit_burst: std::num::NonZeroU32::new(20_000).expect("positive"),
            idempotency_retention_hours: 7 * 24,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("embedded PostgreSQL: {0}")]
    Embedded(#[from] EmbeddedError),
    #[error("database: {0}")]
    Storage(#[from] StorageError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
}

pub struct Application {
    server: Server,
    port: u16,
    writers: Arc<Writers>,
    embedded: Option<EmbeddedCluster>,
}

/// The database configuration for a setting: a given one, or the embedded cluster started
/// (and its `ledger` database created) on demand.
pub async fn open_database(
    database: &Database,
) -> Result<(DatabaseConfig, Option<EmbeddedCluster>), StartupError> {
    match database {
        Database::Given(config) => Ok((config.as_ref().clone(), None)),
        Database::Embedded(dir) => {
            let dir = dir.clone();
            let cluster =
                tokio::task::spawn_blocking(move || EmbeddedCluster::start(&dir, Durability::Full))
                    .await
                    .expect("startup task")?;
            crate::storage::create_database_if_missing(&cluster.pg_config("postgres"), "ledger")
                .await?;
            Ok((cluster.pg_config("ledger"), Some(cluster)))
        }
    }
}

/// The process-wide Prometheus recorder (installed once, shared by every app in the process).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("ledger_batch_commands".into()),
                        &BATCH_COMMANDS_BUCKETS,
                    )
                })
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

/// The first admin key (§9): `LEDGER_BOOTSTRAP_ADMIN_KEY` when set, or, in dev mode (the embedded
/// database under `dev_data_dir`), a new key written once to `<data dir>/admin-key` (mode 0600,
/// its path logged, never the token) and printed on standard output only when that is a
/// terminal. Nothing when an admin key exists.
pub async fn bootstrap_admin_key(
    storage: &Storage,
    security: &SecuritySettings,
    dev_data_dir: Option<&std::path::Path>,
) -> Result<(), StartupError> {
    if storage.has_admin_key().await? {
        return Ok(());
    }
    let (token, created_by) = match &security.bootstrap_admin_key {
        Some(token) if token_is_well_formed(token) => (token.clone(), "bootstrap"),
        Some(_) => {
            return Err(StartupError::Config(
                "LEDGER_BOOTSTRAP_ADMIN_KEY must be 32 to 256 visible ASCII characters".into(),
            ))
        }
        None if dev_data_dir.is_some() => (generate_token(), "dev-mode"),
        None => {
            tracing::warn!(
                "no admin API key exists: create one with `ledger keys create --role admin`"
            );
            return Ok(());
        }
    };
    let key = ApiKey {
        id: uuid::Uuid::now_v7(),
        name: "first admin".into(),
        role: Role::Admin,
        ledgers: None,
        token_sha256: Hash32::sha256(token.as_bytes()),
        created_at: crate::writer::now(),
        created_by: created_by.into(),
        revoked_at: None,
    };
    let file = match dev_data_dir {
        Some(dir) if created_by == "dev-mode" => Some(
            write_admin_key_file(dir, &token)
                .map_err(|error| StartupError::Config(format!("the first admin key: {error}")))?,
        ),
        _ => None,
    };
    storage.insert_api_key(&key).await?;
    match file {
        Some(path) => {
            tracing::info!(
                key_id = %key.id,
                path = %path.display(),
                "created the first admin API key (dev mode); its token is in the file"
            );
            if std::io::stdout().is_terminal() {
                println!(
                    "Admin API key (dev mode, also in {}): {token}",
                    path.display()
                );
            }
        }
        None => tracing::info!(key_id = %key.id, "created the first admin API key ({created_by})"),
    }
    Ok(())
}

/// The file the dev-mode admin key is written to, under the data folder.
pub fn admin_key_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("admin-key")
}

/// Writes `token` and a newline to `<data dir>/admin-key`, readable by its owner only (0600),
/// through a temporary file renamed into place: a reader never sees half a token, and a stale
/// file of an earlier cluster is replaced.
fn write_admin_key_file(data_dir: &std::path::Path, token: &str) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = admin_key_path(data_dir);
    let partial = data_dir.join("admin-key.partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// Purges idempotency records past their retention, every ten minutes, for as long as the
/// process runs. The journal keeps every key; only the replay records go.
fn spawn_idempotency_purge(storage: Storage, retention_hours: u32) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            interval.tick().await;
            let retention_micros = i64::from(retention_hours) * 3_600_000_000;
            let cutoff = crate::domain::Timestamp::from_unix_micros(
                crate::writer::now().unix_micros() - retention_micros,
            );
            match storage.purge_idempotency_records(cutoff, 10_000).await {
                Ok(0) => {}
                Ok(count) => {
                    tracing::info!(count, "purged idempotency records past their retention")
                }
                Err(error) => {
                    tracing::warn!(error = %error, "idempotency purge failed; will retry")
                }
            }
        }
    });
}

/// Loads the signing key and registers its public key, so `GET /v1/keys` lists it for as long as
/// anything it signed may be verified.
async fn start_signing(
    storage: &Storage,
    audit: &AuditSettings,
) -> Result<crate::signing::Signer, StartupError> {
    let key = crate::signing::load(&audit.signing_key)
        .map_err(|error| StartupError::Config(error.to_string()))?;
    let signer = crate::signing::Signer::new(key, &audit.origin_prefix);
    storage
        .register_signing_key(
            signer.key_id(),
            signer.verifying_key().as_bytes(),
            crate::writer::now(),
        )
        .await?;
    tracing::info!(key_id = signer.key_id(), "signing checkpoints and exports");
    Ok(signer)
}

/// Signs a checkpoint of every ledger whose tree grew, every `interval_ms`.
fn spawn_checkpoint_issuer(state: web::Data<AppState>, interval_ms: u64) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_millis(interval_ms));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Ok(names) = state.storage.ledgers_needing_checkpoint().await else {
                continue;
            };
            for name in names {
                let Ok(ledger) = state.ledgers.get(&name).await else {
                    continue;
                };
                let auditor = crate::audit_service::Auditor {
                    storage: &state.storage,
                    signer: &state.signer,
                };
                if let Err(error) = auditor.issue_checkpoint(&ledger).await {
                    tracing::warn!(
                        ledger = %name,
                        error = %error,
                        "could not issue a checkpoint; will retry"
                    );
                }
            }
        }
    });
}

/// Runs the integrity check of every ledger soon after start, then every `interval_seconds`
/// (0: never on its own). Soon after start, not one interval later: a service restarted daily
/// with the default interval of a day would otherwise never run it.
fn spawn_integrity_checks(state: web::Data<AppState>, interval_seconds: u64) {
    if interval_seconds == 0 {
        return;
    }
    tokio::spawn(async move {
        let first = std::time::Duration::from_secs(INTEGRITY_CHECK_DELAY_AFTER_START_S);
        let every = std::time::Duration::from_secs(interval_seconds);
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
        loop {
            interval.tick().await;
            let auditor = crate::audit_service::Auditor {
                storage: &state.storage,
                signer: &state.signer,
            };
            auditor.record_integrity_checks_of_every_ledger().await;
        }
    });
}

/// How long after start the first scheduled integrity checks run: long enough for a restarted
/// service to take its first requests before the checks read whole journals.
const INTEGRITY_CHECK_DELAY_AFTER_START_S: u64 = 60;

/// Applies due expiries of ledgers nobody writes to: every `interval_ms`, each ledger with a
/// pending transfer past its deadline gets an empty batch, which expires it (§3: at a
/// deterministic point, the start of a batch, never lost across restarts: deadlines are stored).
/// Each ledger's batch runs on its own task, at most one per ledger at a time, so a ledger with a
/// long queue delays no other ledger's expiries.
fn spawn_expiry_ticker(state: web::Data<AppState>, interval_ms: u64) {
    let in_flight = Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<String>::new(),
    ));
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_millis(interval_ms));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let names = match state
                .storage
                .ledgers_with_due_expiries(crate::writer::now())
                .await
            {
                Ok(names) => names,
                Err(error) => {
                    tracing::warn!(error = %error, "could not look for due expiries; will retry");
                    continue;
                }
            };
            for name in names {
                let newly_in_flight = in_flight
                    .lock()
                    .expect("the set is never left poisoned")
                    .insert(name.clone());
                if newly_in_flight {
                    tokio::spawn(expire_due_on(state.clone(), name, in_flight.clone()));
                }
            }
        }
    });
}

async fn expire_due_on(
    state: web::Data<AppState>,
    name: String,
    in_flight: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
) {
    if let Ok(ledger) = state.ledgers.get(&name).await {
        if let Err(error) = state.writers.expire_due(&ledger).await {
            tracing::warn!(ledger = %name, error = %error, "expiry batch failed; will retry");
        }
    }
    in_flight
        .lock()
        .expect("the set is never left poisoned")
        .remove(&name);
}

impl Application {
    pub async fn build(settings: &Settings) -> Result<Application, StartupError> {
        Application::build_with_reads(settings, None).await
    }

    /// `build`, with reads of immutable history offered to a hot standby first.
    pub async fn build_with_reads(
        settings: &Settings,
        reads: Option<ReadDatabase>,
    ) -> Result<Application, StartupError> {
        let (config, embedded) = open_database(&settings.database).await?;
        let storage = Storage::migrate_and_connect(config, settings.pool.clone()).await?;
        let storage = match reads {
            Some(reads) => {
                if embedded.is_some() {
                    return Err(StartupError::Config(
                        "a read replica needs DATABASE_URL (the embedded cluster has no standby)"
                            .into(),
                    ));
                }
                storage.with_replica(*reads.config, reads.max_connections)?
            }
            None => storage,
        };
        let write_storage = storage.sibling(settings.writer.max_connections)?;
        let health_storage = storage.sibling(1)?;
        let writers = Arc::new(Writers::new(write_storage, settings.writer.clone()));
        let dev_data_dir = match (&settings.database, &embedded) {
            (Database::Embedded(dir), Some(_)) => Some(dir.as_path()),
            _ => None,
        };
        bootstrap_admin_key(&storage, &settings.security, dev_data_dir).await?;
        spawn_idempotency_purge(
            storage.clone(),
            settings.security.idempotency_retention_hours,
        );
        let signer = start_signing(&storage, &settings.audit).await?;
        let state = web::Data::new(AppState {
            keys: KeyDirectory::new(storage.clone()),
            health: health_storage,
            signer,
            rate_limits: RateLimits::new(
                settings.security.rate_limit_per_second,
                settings.security.rate_limit_burst,
            ),
            ledgers: LedgerDirectory::new(storage.clone()),
            storage,
            writers: writers.clone(),
            limits: settings.limits.clone(),
            metrics: metrics_handle(),
        });
        spawn_expiry_ticker(state.clone(), settings.writer.expiry_interval_ms);
        spawn_checkpoint_issuer(state.clone(), settings.audit.checkpoint_interval_ms);
        spawn_integrity_checks(
            state.clone(),
            settings.audit.integrity_check_interval_seconds,
        );
        let listener =
            TcpListener::bind(&settings.listen).map_err(|source| StartupError::Listen {
                address: settings.listen.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                address: settings.listen.clone(),
                source,
            })?
            .port();
        let mut server = HttpServer::new(move || crate::http::build_app(state.clone()))
            .shutdown_timeout(settings.shutdown_timeout_seconds)
            .client_request_timeout(std::time::Duration::from_millis(
                settings.limits.header_read_timeout_ms,
            ))
            .listen(listener)
            .map_err(|source| StartupError::Listen {
                address: settings.listen.clone(),
                source,
            })?;
        if settings.http_workers > 0 {
            server = server.workers(settings.http_workers);
        }
        Ok(Application {
            server: server.run(),
            port,
            writers,
            embedded,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until a shutdown signal (SIGINT, SIGTERM); then stops accepting, finishes what was
    /// accepted, lets the writers answer every queued command, and stops the embedded cluster.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.writers.shutdown().await;
        if let Some(cluster) = self.embedded {
            if let Err(error) = tokio::task::spawn_blocking(move || cluster.stop())
                .await
                .expect("shutdown task")
            {
                tracing::error!(error = %error, "could not stop the embedded cluster");
            }
        }
        result
    }
}
