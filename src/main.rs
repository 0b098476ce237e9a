//! `ledger`: serve the API, migrate the database, print the OpenAPI document, manage keys, and
//! run a witness of another service's checkpoints (`ledger witness`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ledger::audit::Hash32;
use ledger::config::{DatabaseArgs, ServeArgs, WitnessArgs};
use ledger::domain::LedgerName;
use ledger::http::auth::generate_token;
use ledger::startup::{open_database, Application};
use ledger::storage::keys::{ApiKey, Role};
use ledger::storage::Storage;

/// mimalloc: the write path makes many small, short-lived allocations on several threads, where
/// it is markedly cheaper than glibc's allocator (measured: see docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ledger",
    version,
    about = "Audited double-entry ledger service"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Migrate the database and serve the HTTP API until SIGINT or SIGTERM.
    Serve(Box<ServeArgs>),
    /// Apply pending migrations and exit.
    Migrate(DatabaseArgs),
    /// Print the OpenAPI document (the source of openapi/openapi.json).
    Openapi,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Witness a ledger's checkpoints: verify that each extends the last one seen (consistency
    /// proofs), co-sign it (C2SP tlog-cosignature) and post the cosignature to the service.
    /// Exit codes: 0 ok, 1 error, 2 usage, 3 fork detected (both notes kept next to the state
    /// file).
    Witness(Box<WitnessArgs>),
    /// Ask a running service whether it is ready (GET URL): exit 0 on 200, 1 otherwise. The
    /// image's HEALTHCHECK (it has no curl).
    Health {
        /// The readiness URL (plain HTTP).
        #[arg(long, default_value = "http://127.0.0.1:8080/health/ready")]
        url: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key and print its token (shown once).
    Create(CreateKeyArgs),
    /// Generate an Ed25519 signing key into a new PKCS#8 PEM file (for LEDGER_SIGNING_KEY_FILE).
    Generate {
        /// The file to create (never overwritten).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Rotate the signing key: generate a new one into a new file, register it as current, retire
    /// the others (they stay listed in GET /v1/keys). Then point LEDGER_SIGNING_KEY_FILE at it.
    Rotate(RotateKeyArgs),
    /// Print the C2SP witness verifier key (vkey) of an Ed25519 key under a witness name: what
    /// clients give `ledger-verify checkpoint --witness` to count its cosignatures.
    WitnessVkey {
        /// The witness's PKCS#8 PEM private key (`ledger keys generate --out FILE`).
        #[arg(long)]
        witness_key: std::path::PathBuf,
        /// The witness's key name.
        #[arg(long)]
        name: String,
    },
}

#[derive(clap::Args)]
struct RotateKeyArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The file to create for the new key (never overwritten).
    #[arg(long)]
    out: std::path::PathBuf,
}

#[derive(clap::Args)]
struct CreateKeyArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// admin, writer, reader or auditor.
    #[arg(long)]
    role: String,
    /// A label for people.
    #[arg(long, default_value = "created with ledger keys create")]
    name: String,
    /// Restrict the key to this ledger (repeatable); none: every ledger.
    #[arg(long = "ledger")]
    ledgers: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Commands::Witness(args) = &cli.command {
        return ExitCode::from(runtime.block_on(witness(args)));
    }
    let result = runtime.block_on(async {
        match cli.command {
            Commands::Witness(_) => unreachable!("handled above"),
            Commands::Health { url } => health(&url).await,
            Commands::Keys(KeysCommand::WitnessVkey { witness_key, name }) => {
                print_witness_vkey(&witness_key, &name)
            }
            Commands::Serve(args) => {
                let served = serve(&args).await;
                ledger::telemetry::flush();
                served
            }
            Commands::Migrate(args) => migrate(&args).await,
            Commands::Keys(KeysCommand::Create(args)) => create_key(&args).await,
            Commands::Keys(KeysCommand::Generate { out }) => generate_signing_key(&out),
            Commands::Keys(KeysCommand::Rotate(args)) => rotate_signing_key(&args).await,
            Commands::Openapi => {
                let document = ledger::http::openapi()
                    .to_pretty_json()
                    .map_err(|error| error.to_string())?;
                println!("{document}");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("ledger: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `ledger health`: Ok when the URL answers 200 within five seconds.
async fn health(url: &str) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|error| error.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    match response.status().as_u16() {
        200 => Ok(()),
        status => Err(format!("{url}: {status}")),
    }
}

/// `ledger witness`: its exit code (`ledger::witness::EXIT_*`).
async fn witness(args: &WitnessArgs) -> u8 {
    let config = match args.config() {
        Ok(config) => config,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("ledger witness: {message}");
            return ledger::witness::EXIT_USAGE;
        }
    };
    let interval = std::time::Duration::from_millis(args.interval_ms);
    ledger::witness::run(&config, interval, args.once).await
}

fn print_witness_vkey(path: &std::path::Path, name: &str) -> Result<(), String> {
    let key = ledger::signing::load(&ledger::signing::SigningKeySource::File(path.to_owned()))
        .map_err(|error| error.to_string())?;
    let vkey = ledger::audit::cosignature::WitnessKey::new(name, key.verifying_key())
        .map_err(|error| error.to_string())?;
    println!("{}", vkey.to_vkey());
    Ok(())
}

async fn serve(args: &ServeArgs) -> Result<(), String> {
    let settings = args.settings()?;
    let application = Application::build_with_reads(&settings, args.read_database()?)
        .await
        .map_err(|error| error.to_string())?;
    tracing::info!(listen = %settings.listen, port = application.port(), "serving");
    application
        .run_until_stopped()
        .await
        .map_err(|error| error.to_string())
}

async fn create_key(args: &CreateKeyArgs) -> Result<(), String> {
    let role = Role::parse(&args.role).ok_or_else(|| {
        format!(
            "--role must be admin, writer, reader or auditor, got {:?}",
            args.role
        )
    })?;
    let ledgers = if args.ledgers.is_empty() {
        None
    } else {
        Some(
            args.ledgers
                .iter()
                .map(|name| LedgerName::parse(name))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let (config, embedded) = open_database(&args.database.database()?)
        .await
        .map_err(|error| error.to_string())?;
    let result = async {
        let storage = Storage::migrate_and_connect(config, args.database.pool())
            .await
            .map_err(|error| error.to_string())?;
        let token = generate_token();
        let key = ApiKey {
            id: uuid::Uuid::now_v7(),
            name: args.name.clone(),
            role,
            ledgers,
            token_sha256: Hash32::sha256(token.as_bytes()),
            created_at: ledger::writer::now(),
            created_by: "cli".into(),
            revoked_at: None,
        };
        storage
            .insert_api_key(&key)
            .await
            .map_err(|error| error.to_string())?;
        println!("{token}");
        eprintln!(
            "created {} key {} (the token above is shown once)",
            role.as_str(),
            key.id
        );
        Ok(())
    }
    .await;
    if let Some(cluster) = embedded {
        cluster.stop().map_err(|error| error.to_string())?;
    }
    result
}

fn generate_signing_key(out: &std::path::Path) -> Result<(), String> {
    let key = ledger::signing::generate();
    ledger::signing::write_pem(out, &key).map_err(|error| error.to_string())?;
    let id = ledger::audit::export::key_id(&key.verifying_key());
    println!("{id}");
    eprintln!("wrote signing key {id} to {} (mode 0600)", out.display());
    Ok(())
}

async fn rotate_signing_key(args: &RotateKeyArgs) -> Result<(), String> {
    let key = ledger::signing::generate();
    ledger::signing::write_pem(&args.out, &key).map_err(|error| error.to_string())?;
    let id = ledger::audit::export::key_id(&key.verifying_key());
    let (config, embedded) = open_database(&args.database.database()?)
        .await
        .map_err(|error| error.to_string())?;
    let result = async {
        let storage = Storage::migrate_and_connect(config, args.database.pool())
            .await
            .map_err(|error| error.to_string())?;
        let now = ledger::writer::now();
        storage
            .register_signing_key(&id, key.verifying_key().as_bytes(), now)
            .await
            .map_err(|error| error.to_string())?;
        let retired = storage
            .retire_signing_keys_except(&id, now)
            .await
            .map_err(|error| error.to_string())?;
        println!("{id}");
        eprintln!(
            "new signing key {id} in {}; {retired} older key(s) retired (still listed for \
             verification). Point LEDGER_SIGNING_KEY_FILE at the new file and restart the service.",
            args.out.display()
        );
        Ok(())
    }
    .await;
    if let Some(cluster) = embedded {
        cluster.stop().map_err(|error| error.to_string())?;
    }
    result
}

async fn migrate(args: &DatabaseArgs) -> Result<(), String> {
    let (config, embedded) = open_database(&args.database()?)
        .await
        .map_err(|error| error.to_string())?;
    let result = Storage::migrate_and_connect(config, args.pool())
        .await
        .map(|_| ())
        .map_err(|error| error.to_string());
    if let Some(cluster) = embedded {
        cluster.stop().map_err(|error| error.to_string())?;
    }
    tracing::info!("migrations applied");
    result
}

/// Structured JSON logs on stderr (stdout carries only a command's result, e.g. the token of
/// `ledger keys create`, so `ADMIN=$(ledger keys create …)` captures the token alone);
/// `RUST_LOG` filters (default `info`), `LEDGER_LOG_FORMAT=text` for humans. Whatever `RUST_LOG`
/// says, two sources stay capped:
/// - tokio-postgres at `warn`: at info it logs every server NOTICE, at debug every SQL parameter
///   (metadata, references: client data that does not belong in logs);
/// - actix's HTTP/1 dispatcher off: it logs a malformed request line or header at ERROR, so any
///   client could write error lines; the client gets its 400 and the service has nothing to fix.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let base = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let filter = base
        .add_directive("tokio_postgres=warn".parse().expect("a valid directive"))
        .add_directive(
            "actix_http::h1::dispatcher=off"
                .parse()
                .expect("a valid directive"),
        );
    let text = std::env::var("LEDGER_LOG_FORMAT").as_deref() == Ok("text");
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let fmt = if text {
        fmt.boxed()
    } else {
        fmt.json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    };
    let otlp = ledger::telemetry::otlp_layer();
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otlp)
        .init();
}
