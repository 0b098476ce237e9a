//! Configuration: every setting is a command-line flag and an environment variable, with the
//! default documented in the README's configuration table.

use std::path::PathBuf;

use clap::Args;

use crate::http::state::Limits;
use std::num::NonZeroU32;

use crate::signing::SigningKeySource;
use crate::startup::{AuditSettings, Database, ReadDatabase, SecuritySettings, Settings};
use crate::storage::PoolSettings;
use crate::writer::WriterSettings;

/// Where the database is: `DATABASE_URL`, or the embedded cluster under `LEDGER_DATA_DIR`.
#[derive(Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL. Absent: start a private cluster under LEDGER_DATA_DIR.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A file holding the PostgreSQL URL (a secret mounted by compose or Kubernetes); one
    /// trailing newline is ignored. Not together with DATABASE_URL.
    #[arg(long, env = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    /// Folder of the embedded cluster (and of dev signing keys).
    #[arg(long, env = "LEDGER_DATA_DIR", default_value = "./.ledger")]
    pub data_dir: PathBuf,
    /// Most database connections this process opens.
    #[arg(
        long,
        env = "LEDGER_POOL_SIZE",
        default_value_t = 16,
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    pub pool_size: u16,
    /// Longest a single SQL statement may run.
    #[arg(long, env = "LEDGER_STATEMENT_TIMEOUT_MS", default_value_t = 5_000)]
    pub statement_timeout_ms: u64,
    /// Longest to wait for a connection.
    #[arg(long, env = "LEDGER_CONNECT_TIMEOUT_MS", default_value_t = 5_000)]
    pub connect_timeout_ms: u64,
}

/// A secret given as a value (`NAME`) or as a file (`NAME_FILE`), not both. The file's content
/// is the value, less its trailing line break (`echo secret > file` writes one).
pub fn value_or_file(
    name: &str,
    value: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<String>, String> {
    match (value, file) {
        (Some(_), Some(_)) => Err(format!("set {name} or {name}_FILE, not both")),
        (Some(value), None) => Ok(Some(value.to_owned())),
        (None, Some(path)) => {
            let content = std::fs::read_to_string(path)
                .map_err(|error| format!("{name}_FILE {}: {error}", path.display()))?;
            let value = content
                .strip_suffix('\n')
                .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
                .unwrap_or(&content);
            if value.is_empty() {
                return Err(format!("{name}_FILE {} is empty", path.display()));
            }
            Ok(Some(value.to_owned()))
        }
        (None, None) => Ok(None),
    }
}

impl DatabaseArgs {
    /// `DATABASE_URL`, or the content of `DATABASE_URL_FILE`.
    pub fn url(&self) -> Result<Option<String>, String> {
        value_or_file(
            "DATABASE_URL",
            self.database_url.as_deref(),
            self.database_url_file.as_deref(),
        )
    }

    pub fn database(&self) -> Result<Database, String> {
        match &self.url()? {
            Some(url) => crate::storage::parse_database_url(url)
                .map(|config| Database::Given(Box::new(config)))
                .map_err(|error| format!("DATABASE_URL is not a PostgreSQL URL: {error}")),
            None => Ok(Database::Embedded(self.data_dir.clone())),
        }
    }

    pub fn pool(&self) -> PoolSettings {
        PoolSettings {
            custom_plans: true,
            max_connections: usize::from(self.pool_size),
            statement_timeout_ms: self.statement_timeout_ms,
            connect_timeout_ms: self.connect_timeout_ms,
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// A hot standby of DATABASE_URL's database (several hosts may be named, e.g. with
    /// target_session_attrs=read-only) serving journal pages, proofs, exports, entries and
    /// balances as of a seq once it has replayed what they need; the primary serves them
    /// otherwise. Absent: every read goes to DATABASE_URL.
    #[arg(long, env = "LEDGER_READ_DATABASE_URL", hide_env_values = true)]
    pub read_database_url: Option<String>,
    /// Most connections to the read replica.
    #[arg(
        long,
        env = "LEDGER_READ_POOL_SIZE",
        default_value_t = 8,
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    pub read_pool_size: u16,
    /// Address and port to serve HTTP on.
    #[arg(long, env = "LEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// HTTP worker threads; 0 means one per CPU core.
    #[arg(long, env = "LEDGER_HTTP_WORKERS", default_value_t = 0)]
    pub http_workers: usize,
    /// Largest request body.
    #[arg(long, env = "LEDGER_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Page size when a list request names none.
    #[arg(long, env = "LEDGER_DEFAULT_PAGE_SIZE", default_value_t = 100)]
    pub default_page_size: usize,
    /// Largest page a list request may ask for.
    #[arg(long, env = "LEDGER_MAX_PAGE_SIZE", default_value_t = 1000)]
    pub max_page_size: usize,
    /// Most transfers in one batch request (1 to 1000).
    #[arg(
        long,
        env = "LEDGER_MAX_BATCH_TRANSFERS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    pub max_batch_transfers: u16,
    /// Largest bank statement file accepted by POST …/statements (413 above it).
    #[arg(
        long,
        env = "LEDGER_MAX_STATEMENT_BYTES",
        default_value_t = 256 * 1024 * 1024,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_statement_bytes: u64,
    /// Most entries in one bank statement (413 above it).
    #[arg(
        long,
        env = "LEDGER_MAX_STATEMENT_LINES",
        default_value_t = 2_000_000,
        value_parser = clap::value_parser!(u64).range(1..=2_000_000_000)
    )]
    pub max_statement_lines: u64,
    /// Longest wait for the next bytes of a request body (408 body_timeout after it).
    #[arg(
        long,
        env = "LEDGER_BODY_READ_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..=3_600_000)
    )]
    pub body_read_timeout_ms: u64,
    /// Longest wait for a request's line and headers (408 after it).
    #[arg(
        long,
        env = "LEDGER_HEADER_READ_TIMEOUT_MS",
        default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(1..=3_600_000)
    )]
    pub header_read_timeout_ms: u64,
    /// Requests waiting per ledger before new ones get 503 ledger_overloaded.
    #[arg(long, env = "LEDGER_WRITER_QUEUE_CAPACITY", default_value_t = 10_000)]
    pub writer_queue_capacity: usize,
    /// Most commands applied in one database transaction.
    #[arg(long, env = "LEDGER_MAX_BATCH_COMMANDS", default_value_t = 1_000)]
    pub max_batch_commands: usize,
    /// How often idle ledgers are checked for pending transfers past their deadline.
    #[arg(
        long,
        env = "LEDGER_EXPIRY_INTERVAL_MS",
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(10..=3_600_000)
    )]
    pub expiry_interval_ms: u64,
    /// Database connections reserved for the ledgers' writers.
    #[arg(
        long,
        env = "LEDGER_WRITER_POOL_SIZE",
        default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    pub writer_pool_size: u16,
    /// If set and no admin key exists, this token becomes the first admin key.
    #[arg(long, env = "LEDGER_BOOTSTRAP_ADMIN_KEY", hide_env_values = true)]
    pub bootstrap_admin_key: Option<String>,
    /// A file holding the first admin key (one trailing newline ignored). Not together with
    /// LEDGER_BOOTSTRAP_ADMIN_KEY.
    #[arg(long, env = "LEDGER_BOOTSTRAP_ADMIN_KEY_FILE")]
    pub bootstrap_admin_key_file: Option<PathBuf>,
    /// Requests per second allowed per API key (429 above it).
    #[arg(
        long,
        env = "LEDGER_RATE_LIMIT_PER_SECOND",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub rate_limit_per_second: u32,
    /// Requests an API key may send at once above its rate.
    #[arg(
        long,
        env = "LEDGER_RATE_LIMIT_BURST",
        default_value_t = 20_000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub rate_limit_burst: u32,
    /// Hours idempotency records are kept for replays.
    #[arg(
        long,
        env = "LEDGER_IDEMPOTENCY_RETENTION_HOURS",
        default_value_t = 168,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub idempotency_retention_hours: u32,
    /// Ed25519 key (PKCS#8 PEM) that signs checkpoints and exports. Required with DATABASE_URL;
    /// in dev mode (embedded database) generated under LEDGER_DATA_DIR when absent.
    #[arg(long, env = "LEDGER_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// Generate a key into LEDGER_SIGNING_KEY_FILE when the file does not exist (compose, first
    /// start); otherwise a missing key file is an error.
    #[arg(long, env = "LEDGER_GENERATE_SIGNING_KEY", default_value_t = false)]
    pub generate_signing_key: bool,
    /// Checkpoint origins (and signed-note key names) are `<prefix>/<ledger>`.
    #[arg(long, env = "LEDGER_ORIGIN_PREFIX", default_value = "ledger")]
    pub origin_prefix: String,
    /// How often a checkpoint is signed for every ledger whose journal grew.
    #[arg(
        long,
        env = "LEDGER_CHECKPOINT_INTERVAL_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..)
    )]
    pub checkpoint_interval_ms: u64,
    /// How often every ledger's integrity check runs on its own; 0: only on demand.
    #[arg(
        long,
        env = "LEDGER_INTEGRITY_CHECK_INTERVAL_SECONDS",
        default_value_t = 86_400
    )]
    pub integrity_check_interval_seconds: u64,
    /// Seconds to finish accepted requests after a shutdown signal.
    #[arg(long, env = "LEDGER_SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 30)]
    pub shutdown_timeout_seconds: u64,
}

impl ServeArgs {
    /// The read replica, when LEDGER_READ_DATABASE_URL names one (only with DATABASE_URL).
    pub fn read_database(&self) -> Result<Option<ReadDatabase>, String> {
        let Some(url) = &self.read_database_url else {
            return Ok(None);
        };
        if self.database.url()?.is_none() {
            return Err(
                "LEDGER_READ_DATABASE_URL needs DATABASE_URL (the embedded cluster has no standby)"
                    .into(),
            );
        }
        let config = crate::storage::parse_database_url(url).map_err(|error| {
            format!("LEDGER_READ_DATABASE_URL is not a PostgreSQL URL: {error}")
        })?;
        Ok(Some(ReadDatabase {
            config: Box::new(config),
            max_connections: usize::from(self.read_pool_size),
        }))
    }

    fn signing_key_source(&self) -> Result<SigningKeySource, String> {
        if !crate::audit::checkpoint::is_valid_key_name(&format!("{}/x", self.origin_prefix)) {
            return Err(
                "LEDGER_ORIGIN_PREFIX must be a signed-note key name: no spaces, no '+'".into(),
            );
        }
        match (&self.signing_key_file, &self.database.url()?) {
            (Some(path), _) if self.generate_signing_key => {
                Ok(SigningKeySource::GenerateIfMissing(path.clone()))
            }
            (Some(path), _) => Ok(SigningKeySource::File(path.clone())),
            (None, None) => Ok(SigningKeySource::GenerateIfMissing(
                self.database.data_dir.join("signing-key.pem"),
            )),
            (None, Some(_)) => Err("LEDGER_SIGNING_KEY_FILE is required with DATABASE_URL \
                 (create one with `ledger keys generate --out FILE`)"
                .into()),
        }
    }

    pub fn settings(&self) -> Result<Settings, String> {
        if self.default_page_size == 0 || self.default_page_size > self.max_page_size {
            return Err("LEDGER_DEFAULT_PAGE_SIZE must be 1 to LEDGER_MAX_PAGE_SIZE".into());
        }
        if self.writer_queue_capacity == 0 || self.max_batch_commands == 0 {
            return Err(
                "LEDGER_WRITER_QUEUE_CAPACITY and LEDGER_MAX_BATCH_COMMANDS must be positive"
                    .into(),
            );
        }
        Ok(Settings {
            listen: self.listen.clone(),
            database: self.database.database()?,
            pool: self.database.pool(),
            writer: WriterSettings {
                queue_capacity: self.writer_queue_capacity,
                max_batch_commands: self.max_batch_commands,
                max_connections: usize::from(self.writer_pool_size),
                expiry_interval_ms: self.expiry_interval_ms,
                ..WriterSettings::default()
            },
            limits: Limits {
                max_body_bytes: self.max_body_bytes,
                default_page_size: self.default_page_size,
                max_page_size: self.max_page_size,
                max_batch_transfers: usize::from(self.max_batch_transfers),
                max_statement_bytes: self.max_statement_bytes,
                max_statement_lines: self.max_statement_lines,
                body_read_timeout_ms: self.body_read_timeout_ms,
                header_read_timeout_ms: self.header_read_timeout_ms,
            },
            http_workers: self.http_workers,
            shutdown_timeout_seconds: self.shutdown_timeout_seconds,
            audit: AuditSettings {
                signing_key: self.signing_key_source()?,
                origin_prefix: self.origin_prefix.clone(),
                checkpoint_interval_ms: self.checkpoint_interval_ms,
                integrity_check_interval_seconds: self.integrity_check_interval_seconds,
            },
            security: SecuritySettings {
                bootstrap_admin_key: value_or_file(
                    "LEDGER_BOOTSTRAP_ADMIN_KEY",
                    self.bootstrap_admin_key.as_deref(),
                    self.bootstrap_admin_key_file.as_deref(),
                )?,
                rate_limit_per_second: NonZeroU32::new(self.rate_limit_per_second)
                    .ok_or("LEDGER_RATE_LIMIT_PER_SECOND must be positive")?,
                rate_limit_burst: NonZeroU32::new(self.rate_limit_burst)
                    .ok_or("LEDGER_RATE_LIMIT_BURST must be positive")?,
                idempotency_retention_hours: self.idempotency_retention_hours,
            },
        })
    }
}

/// `ledger witness`: what an auditor's witness needs (docs/AUDIT_FORMAT.md §3.1).
#[derive(Args, Clone, Debug)]
pub struct WitnessArgs {
    /// The service's base URL, e.g. http://127.0.0.1:8080 (plain HTTP: this build has no TLS).
    #[arg(long, env = "LEDGER_WITNESS_URL")]
    pub url: String,
    /// The ledger to witness.
    #[arg(long, env = "LEDGER_WITNESS_LEDGER")]
    pub ledger: String,
    /// An API key of the auditor role covering the ledger.
    #[arg(long, env = "LEDGER_WITNESS_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// The log's public key: a PEM file, the base64 of the 32-byte key, a file with the JSON of
    /// GET /v1/keys (with ?ledger= it names the origin), or the C2SP vkey of the checkpoints.
    #[arg(long, env = "LEDGER_WITNESS_LOG_KEY")]
    pub log_key: String,
    /// The origin checkpoints must have (default: the vkey's, else the first seen, which must
    /// end with /<ledger>; then kept in the state file).
    #[arg(long, env = "LEDGER_WITNESS_ORIGIN")]
    pub origin: Option<String>,
    /// The witness's own Ed25519 private key, PKCS#8 PEM (`ledger keys generate --out FILE`).
    #[arg(long, env = "LEDGER_WITNESS_KEY_FILE")]
    pub witness_key: PathBuf,
    /// The witness's key name, e.g. witness.example.com/w1 (no spaces, no '+').
    #[arg(long, env = "LEDGER_WITNESS_NAME")]
    pub name: String,
    /// The state file (JSON: the last checkpoint verified, how, and what was co-signed).
    #[arg(long, env = "LEDGER_WITNESS_STATE_FILE")]
    pub state: PathBuf,
    /// Time between rounds.
    #[arg(
        long,
        env = "LEDGER_WITNESS_INTERVAL_MS",
        default_value_t = 60_000,
        value_parser = clap::value_parser!(u64).range(100..=86_400_000)
    )]
    pub interval_ms: u64,
    /// One round, then exit: 0 co-signed or nothing new, 1 error, 3 fork.
    #[arg(long)]
    pub once: bool,
    /// Ask the service to sign a checkpoint of the tree as it is now (?fresh=true) instead of
    /// taking the latest it issued.
    #[arg(long, env = "LEDGER_WITNESS_FRESH")]
    pub fresh: bool,
}

impl WitnessArgs {
    pub fn config(&self) -> Result<crate::witness::WitnessConfig, String> {
        if !self.url.starts_with("http://") {
            return Err(format!(
                "--url {}: only http:// URLs are supported (this build has no TLS)",
                self.url
            ));
        }
        crate::domain::LedgerName::parse(&self.ledger)
            .map_err(|error| format!("--ledger: {error}"))?;
        let witness_key = crate::signing::load(&SigningKeySource::File(self.witness_key.clone()))
            .map_err(|error| format!("--witness-key: {error}"))?;
        let config = crate::witness::WitnessConfig {
            base_url: self.url.trim_end_matches('/').to_owned(),
            ledger: self.ledger.clone(),
            api_key: self.api_key.clone(),
            log_keys: crate::witness::read_log_keys(&self.log_key)?,
            origin: self.origin.clone(),
            witness_key,
            name: self.name.clone(),
            state_path: self.state.clone(),
            fresh: self.fresh,
        };
        config.witness_vkey()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn serve(args: &[&str]) -> ServeArgs {
        Serve::try_parse_from(std::iter::once("ledger").chain(args.iter().copied()))
            .expect("valid flags")
            .args
    }

    fn secret_file(content: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
        std::io::Write::write_all(&mut file, content.as_bytes()).expect("write");
        file
    }

    #[test]
    fn a_secret_is_its_value_or_its_file_less_one_trailing_newline() {
        assert_eq!(value_or_file("X", Some("v"), None), Ok(Some("v".into())));
        assert_eq!(value_or_file("X", None, None), Ok(None));
        let unix = secret_file("s3cret\n");
        assert_eq!(
            value_or_file("X", None, Some(unix.path())),
            Ok(Some("s3cret".into()))
        );
        let windows = secret_file("s3cret\r\n");
        assert_eq!(
            value_or_file("X", None, Some(windows.path())),
            Ok(Some("s3cret".into()))
        );
        let bare = secret_file("s3cret");
        assert_eq!(
            value_or_file("X", None, Some(bare.path())),
            Ok(Some("s3cret".into()))
        );
        let inner = secret_file(" a b \n\n");
        assert_eq!(
            value_or_file("X", None, Some(inner.path())),
            Ok(Some(" a b \n".into())),
            "only one line break goes"
        );
    }

    #[test]
    fn a_secret_given_both_ways_or_from_an_empty_or_missing_file_is_an_error() {
        let file = secret_file("x\n");
        let both = value_or_file("DATABASE_URL", Some("x"), Some(file.path()));
        assert_eq!(
            both,
            Err("set DATABASE_URL or DATABASE_URL_FILE, not both".into())
        );
        let empty = secret_file("\n");
        assert!(value_or_file("X", None, Some(empty.path()))
            .unwrap_err()
            .contains("is empty"));
        let missing = std::path::Path::new("/nonexistent/secret");
        assert!(value_or_file("X", None, Some(missing))
            .unwrap_err()
            .starts_with("X_FILE /nonexistent/secret"));
    }

    #[test]
    fn the_database_url_and_the_first_admin_key_may_come_from_files() {
        let url = secret_file("postgresql://ledger:pw@db:5432/ledger\n");
        let admin = secret_file(&format!("{}\n", "k".repeat(40)));
        let key = secret_file("");
        let args = serve(&[
            "--database-url-file",
            url.path().to_str().unwrap(),
            "--bootstrap-admin-key-file",
            admin.path().to_str().unwrap(),
            "--signing-key-file",
            key.path().to_str().unwrap(),
        ]);
        let settings = args.settings().expect("settings");
        let Database::Given(config) = settings.database else {
            panic!("DATABASE_URL_FILE names a given database");
        };
        assert_eq!(config.get_user(), Some("ledger"));
        assert_eq!(config.get_password(), Some(&b"pw"[..]));
        assert_eq!(settings.security.bootstrap_admin_key, Some("k".repeat(40)));
        let both = serve(&[
            "--database-url",
            "postgresql://db/ledger",
            "--database-url-file",
            url.path().to_str().unwrap(),
            "--signing-key-file",
            key.path().to_str().unwrap(),
        ]);
        assert!(both.settings().unwrap_err().contains("not both"));
        let both = serve(&[
            "--bootstrap-admin-key",
            &"k".repeat(40),
            "--bootstrap-admin-key-file",
            admin.path().to_str().unwrap(),
        ]);
        assert_eq!(
            both.settings().unwrap_err(),
            "set LEDGER_BOOTSTRAP_ADMIN_KEY or LEDGER_BOOTSTRAP_ADMIN_KEY_FILE, not both"
        );
    }
}
