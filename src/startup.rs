//! Wiring: database (embedded or given), migrations, writers, HTTP server. Used by `ledger serve`
//! and by the integration tests' `spawn_app`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use actix_web::dev::Server;
use actix_web::{web, HttpServer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::embedded::{Durability, EmbeddedCluster, EmbeddedError};
use crate::http::state::{AppState, LedgerDirectory, Limits};
use crate::storage::{PoolSettings, Storage, StorageError};
use crate::writer::{WriterSettings, Writers};

/// Where the data lives.
#[derive(Clone, Debug)]
pub enum Database {
    /// A database the operator runs (`DATABASE_URL`).
    Given(Box<tokio_postgres::Config>),
    /// A private cluster under this folder (§10 embedded default).
    Embedded(PathBuf),
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
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("embedded PostgreSQL: {0}")]
    Embedded(#[from] EmbeddedError),
    #[error("database: {0}")]
    Storage(#[from] StorageError),
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
) -> Result<(tokio_postgres::Config, Option<EmbeddedCluster>), StartupError> {
    match database {
        Database::Given(config) => Ok((config.as_ref().clone(), None)),
        Database::Embedded(dir) => {
            let dir = dir.clone();
            let cluster =
                tokio::task::spawn_blocking(move || EmbeddedCluster::start(&dir, Durability::Full))
                    .await
                    .expect("startup task")?;
            create_database_if_missing(&cluster.pg_config("postgres"), "ledger").await?;
            Ok((cluster.pg_config("ledger"), Some(cluster)))
        }
    }
}

async fn create_database_if_missing(
    admin: &tokio_postgres::Config,
    name: &str,
) -> Result<(), StorageError> {
    let (client, connection) = admin.connect(tokio_postgres::NoTls).await?;
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

/// The process-wide Prometheus recorder (installed once, shared by every app in the process).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .clone()
}

impl Application {
    pub async fn build(settings: &Settings) -> Result<Application, StartupError> {
        let (config, embedded) = open_database(&settings.database).await?;
        let storage = Storage::migrate_and_connect(config, settings.pool.clone()).await?;
        let write_storage = storage.writers_pool(settings.writer.max_connections)?;
        let writers = Arc::new(Writers::new(write_storage, settings.writer.clone()));
        let state = web::Data::new(AppState {
            ledgers: LedgerDirectory::new(storage.clone()),
            storage,
            writers: writers.clone(),
            limits: settings.limits.clone(),
            metrics: metrics_handle(),
        });
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
