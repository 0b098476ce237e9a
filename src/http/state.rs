//! What every handler shares: storage, the writers, the ledger directory and the limits.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::codes;
use super::problem::ApiError;
use crate::storage::{LedgerRecord, Storage};
use crate::writer::Writers;

/// Limits on what one request may ask for (§8).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub default_page_size: usize,
    pub max_page_size: usize,
    /// Most transfers in one batch request (at most `Command::MAX_BATCH_TRANSFERS`).
    pub max_batch_transfers: usize,
    /// Largest statement file (413 above it).
    pub max_statement_bytes: u64,
    /// Most entries in one statement (413 above it).
    pub max_statement_lines: u64,
    /// Longest wait for the next bytes of a request body (408 after it): a client that
    /// announces more than it sends holds no worker for long.
    pub body_read_timeout_ms: u64,
    /// Longest wait for a request's head (actix answers 408 after it).
    pub header_read_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 1024 * 1024,
            default_page_size: 100,
            max_page_size: 1000,
            max_batch_transfers: 1000,
            max_statement_bytes: 256 * 1024 * 1024,
            max_statement_lines: 2_000_000,
            body_read_timeout_ms: 10_000,
            header_read_timeout_ms: 5_000,
        }
    }
}

pub struct AppState {
    pub storage: Storage,
    /// One connection of its own for readiness: a busy service is still ready.
    pub health: Storage,
    pub keys: super::auth::KeyDirectory,
    /// Signs checkpoints and exports.
    pub signer: crate::signing::Signer,
    pub rate_limits: super::auth::RateLimits,
    pub writers: Arc<Writers>,
    pub ledgers: LedgerDirectory,
    pub limits: Limits,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Ledgers by name. A ledger never changes after creation (its journal lives elsewhere), so a
/// found ledger is cached for the life of the process.
pub struct LedgerDirectory {
    storage: Storage,
    cache: RwLock<HashMap<String, Arc<LedgerRecord>>>,
}

impl LedgerDirectory {
    pub fn new(storage: Storage) -> LedgerDirectory {
        LedgerDirectory {
            storage,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The ledger of this name, or `404 ledger_not_found`.
    pub async fn get(&self, name: &str) -> Result<Arc<LedgerRecord>, ApiError> {
        if let Some(ledger) = self.cache.read().expect("ledger cache").get(name) {
            return Ok(ledger.clone());
        }
        let not_found =
            || ApiError::new(codes::LEDGER_NOT_FOUND, format!("no ledger named {name:?}"));
        if crate::domain::LedgerName::parse(name).is_err() {
            return Err(not_found());
        }
        let ledger = Arc::new(
            self.storage
                .find_ledger(name)
                .await?
                .ok_or_else(not_found)?,
        );
        self.remember(ledger.clone());
        Ok(ledger)
    }

    pub fn remember(&self, ledger: Arc<LedgerRecord>) {
        self.cache
            .write()
            .expect("ledger cache")
            .insert(ledger.name.to_string(), ledger);
    }
}
