//! `spawn_app`: a fresh database cloned from a migrated template, on one throwaway PostgreSQL
//! cluster per test process, and the service on a random port. The fixtures: the usual ledger
//! (`world_and_wallet`), a request builder (`TestApp::request`), and `TEST_LOG=1` to see the
//! service's logs (`RUST_LOG` filters them, default `info`), e.g.
//! `TEST_LOG=1 cargo test --test api transfers::some_test -- --nocapture`.

use std::sync::{Mutex, OnceLock};

use ledger::embedded::{Durability, EmbeddedCluster};
use ledger::http::state::Limits;
use ledger::startup::{Application, Database, Settings};
use ledger::storage::{PoolSettings, Storage};
use ledger::writer::WriterSettings;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

const TEMPLATE_DATABASE: &str = "ledger_template";

struct TestCluster {
    cluster: EmbeddedCluster,
    /// Closing this pipe (at process exit) makes the watchdog stop the cluster and delete it.
    _watchdog: Mutex<std::process::ChildStdin>,
}

fn cluster() -> &'static EmbeddedCluster {
    static CLUSTER: OnceLock<TestCluster> = OnceLock::new();
    &CLUSTER
        .get_or_init(|| {
            let root =
                std::env::temp_dir().join(format!("ledger-test-{}", Uuid::new_v4().simple()));
            let cluster = EmbeddedCluster::start(&root, Durability::Throwaway)
                .expect("start the throwaway PostgreSQL cluster");
            let watchdog = cluster.remove_when_process_exits(&root).expect("watchdog");
            // Migrate the template on a runtime of its own: tests each run on theirs.
            let config = cluster.pg_config("postgres");
            let template = cluster.pg_config(TEMPLATE_DATABASE);
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    admin_execute(&config, &format!("CREATE DATABASE {TEMPLATE_DATABASE}")).await;
                    Storage::migrate_and_connect(template, pool_settings())
                        .await
                        .expect("migrate the template");
                });
            })
            .join()
            .expect("template migration");
            TestCluster {
                cluster,
                _watchdog: Mutex::new(watchdog),
            }
        })
        .cluster
}

fn pool_settings() -> PoolSettings {
    PoolSettings {
        custom_plans: true,
        max_connections: 4,
        statement_timeout_ms: 10_000,
        connect_timeout_ms: 10_000,
    }
}

async fn admin_execute(config: &tokio_postgres::Config, sql: &str) {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect as admin");
    let connection = tokio::spawn(connection);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    drop(client);
    let _ = connection.await;
}

/// A fresh database, migrated (cloned from the template).
pub async fn fresh_database() -> tokio_postgres::Config {
    let cluster = cluster();
    let name = format!("test_{}", Uuid::new_v4().simple());
    admin_execute(
        &cluster.pg_config("postgres"),
        &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE_DATABASE}"),
    )
    .await;
    cluster.pg_config(&name)
}

/// A connection as the database owner, for checks the API cannot make.
pub async fn owner_connection(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub database: tokio_postgres::Config,
    pub tokens: Tokens,
}

/// One API key per role (every ledger).
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    pub admin: String,
    pub writer: String,
    pub reader: String,
    pub auditor: String,
}

pub fn settings_for(database: tokio_postgres::Config) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        database: Database::Given(Box::new(database)),
        pool: pool_settings(),
        writer: WriterSettings::default(),
        limits: Limits::default(),
        http_workers: 2,
        shutdown_timeout_seconds: 1,
        audit: ledger::startup::AuditSettings::ephemeral(),
        security: ledger::startup::SecuritySettings {
            bootstrap_admin_key: Some(ADMIN_TOKEN.into()),
            ..Default::default()
        },
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(fresh_database().await).await
}

/// Another service instance on an existing database (several processes on one database).
pub async fn spawn_app_on(database: tokio_postgres::Config) -> TestApp {
    spawn_app_with(settings_for(database)).await
}

/// With `TEST_LOG` set (and not `0`), the service's logs go to the test's output, in the
/// human-readable format, filtered by `RUST_LOG` (default `info`; `tokio_postgres` capped at
/// `warn`, as the service does).
fn init_test_logging() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_none_or(|value| value == "0") {
            return;
        }
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
            .add_directive("tokio_postgres=warn".parse().expect("a valid directive"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    init_test_logging();
    let database = match &settings.database {
        Database::Given(config) => config.as_ref().clone(),
        Database::Embedded(_) => unreachable!("tests use the shared cluster"),
    };
    let application = Application::build(&settings)
        .await
        .expect("build the application");
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let mut app = TestApp {
        address,
        client,
        database,
        tokens: Tokens {
            admin: ADMIN_TOKEN.into(),
            ..Tokens::default()
        },
    };
    app.tokens.writer = app.create_key("writer", None).await;
    app.tokens.reader = app.create_key("reader", None).await;
    app.tokens.auditor = app.create_key("auditor", None).await;
    app
}

/// How [`TestApp::world_and_wallet`] opens `wallet`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wallet {
    /// No balance constraint.
    Plain,
    /// `debits_must_not_exceed_credits`: it cannot be overdrawn.
    NoOverdraft,
}

/// A request being built by [`TestApp::request`].
#[must_use = "a request does nothing until sent"]
pub struct Request<'a> {
    app: &'a TestApp,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
    token: Option<String>,
    idempotency_key: Option<String>,
}

impl Request<'_> {
    /// A JSON body.
    pub fn json(self, body: &Value) -> Self {
        self.maybe_json(Some(body))
    }

    /// A JSON body, or none.
    pub fn maybe_json(mut self, body: Option<&Value>) -> Self {
        self.body = body.cloned();
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn token(self, token: &str) -> Self {
        self.maybe_token(Some(token))
    }

    /// `Authorization: Bearer <token>`, or no Authorization header.
    pub fn maybe_token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    pub fn idempotency_key(self, key: &str) -> Self {
        self.maybe_idempotency_key(Some(key))
    }

    /// An `Idempotency-Key`, or none.
    pub fn maybe_idempotency_key(mut self, key: Option<&str>) -> Self {
        self.idempotency_key = key.map(str::to_owned);
        self
    }

    pub async fn send(self) -> Reply {
        let app = self.app;
        let mut request = app.client.request(self.method, app.url(&self.path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = &self.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        Reply::read(request.send().await.expect("request")).await
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// The problem code of an error reply.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// The key a client of this route would use: writers post transfers, admins manage ledgers,
    /// accounts and keys, auditors read everything.
    fn token_for(&self, method: &str, path: &str) -> &str {
        match method {
            "GET" => &self.tokens.auditor,
            _ if path.contains("/transfers")
                || path.contains("/statements")
                || path.contains("/reconciliations") =>
            {
                &self.tokens.writer
            }
            _ => &self.tokens.admin,
        }
    }

    /// Any request, built step by step: nothing but the method and the path unless added (no
    /// Authorization, no Idempotency-Key, no body), e.g.
    /// `app.request("POST", path).json(&body).token(&app.tokens.writer).idempotency_key("k")
    /// .send().await`.
    pub fn request<'a>(&'a self, method: &str, path: &str) -> Request<'a> {
        Request {
            app: self,
            method: method.parse().expect("an HTTP method"),
            path: path.to_owned(),
            body: None,
            token: None,
            idempotency_key: None,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path)
            .token(self.token_for("GET", path))
            .send()
            .await
    }

    /// POST with the route's usual key and a fresh Idempotency-Key.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.request("POST", path)
            .json(body)
            .token(self.token_for("POST", path))
            .idempotency_key(&Uuid::new_v4().to_string())
            .send()
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let request = self
            .client
            .post(self.url(path))
            .bearer_auth(self.token_for("POST", path))
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .header("content-type", content_type)
            .body(body);
        Reply::read(request.send().await.expect("POST")).await
    }

    /// Creates an API key with the admin key and returns its token.
    pub async fn create_key(&self, role: &str, ledgers: Option<Vec<&str>>) -> String {
        let mut body = json!({ "name": format!("{role} key"), "role": role });
        if let Some(ledgers) = ledgers {
            body["ledgers"] = json!(ledgers);
        }
        let reply = self.post("/v1/api-keys", &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body["token"].as_str().unwrap().to_owned()
    }

    pub async fn create_ledger(&self, name: &str) -> Reply {
        let reply = self.post("/v1/ledgers", &json!({ "name": name })).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply
    }

    /// Opens an EUR account and returns its id.
    pub async fn open_account(&self, ledger: &str, code: &str, body: Value) -> Uuid {
        let mut request = json!({ "code": code, "currency": "EUR", "normal_side": "credit" });
        request
            .as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let reply = self
            .post(&format!("/v1/ledgers/{ledger}/accounts"), &request)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Ledger `ledger` with the account `world` (EUR, normal side debit: where money comes
    /// from); returns its id.
    pub async fn ledger_with_world(&self, ledger: &str) -> Uuid {
        self.create_ledger(ledger).await;
        self.open_account(ledger, "world", json!({"normal_side": "debit"}))
            .await
    }

    /// The usual test ledger: `ledger` with `world` (EUR, normal side debit) and `wallet` (EUR,
    /// normal side credit, opened as `wallet` says); returns (world, wallet).
    pub async fn world_and_wallet(&self, ledger: &str, wallet: Wallet) -> (Uuid, Uuid) {
        let world = self.ledger_with_world(ledger).await;
        let options = match wallet {
            Wallet::Plain => json!({}),
            Wallet::NoOverdraft => json!({"debits_must_not_exceed_credits": true}),
        };
        let wallet = self.open_account(ledger, "wallet", options).await;
        (world, wallet)
    }

    pub async fn transfer(&self, ledger: &str, debit: Uuid, credit: Uuid, amount: &str) -> Reply {
        let body = json!({
            "debit_account_id": debit,
            "credit_account_id": credit,
            "amount": amount,
            "currency": "EUR"
        });
        self.post(&format!("/v1/ledgers/{ledger}/transfers"), &body)
            .await
    }

    pub async fn account(&self, ledger: &str, id: Uuid) -> Value {
        let reply = self
            .get(&format!("/v1/ledgers/{ledger}/accounts/{id}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body
    }

    /// Every event of a ledger's journal, paging through it.
    pub async fn journal(&self, ledger: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let reply = self
                .get(&format!(
                    "/v1/ledgers/{ledger}/journal?after_seq={after}&limit=1000"
                ))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            events.extend(reply.body["data"].as_array().unwrap().iter().cloned());
            match reply.body["next_after_seq"].as_u64() {
                Some(next) => after = next,
                None => return events,
            }
        }
    }

    /// Every item of a paged list.
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_path = match &cursor {
                Some(cursor) => format!("{path}{separator}limit=1000&cursor={cursor}"),
                None => format!("{path}{separator}limit=1000"),
            };
            let reply = self.get(&page_path).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            items.extend(reply.body["data"].as_array().unwrap().iter().cloned());
            match reply.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
        }
    }
}

/// Replays the ledger's journal through the pure core (§4.7) and checks that it reproduces
/// every account and every transfer the API shows. Returns the number of events.
pub async fn assert_journal_reproduces_the_ledger(app: &TestApp, ledger: &str) -> usize {
    use ledger::audit::replay::Replayer;
    use ledger::audit::JournalEvent;

    let events = app.journal(ledger).await;
    let mut replayer = Replayer::new();
    for event in &events {
        let event = JournalEvent::from_json(event).expect("journal events parse");
        replayer
            .push(&event)
            .unwrap_or_else(|fault| panic!("replay fault: {fault}"));
    }
    let book = replayer.book().expect("a genesis event");
    let accounts = app
        .list_all(&format!("/v1/ledgers/{ledger}/accounts"))
        .await;
    assert_eq!(accounts.len(), book.accounts().count(), "accounts");
    for account in &accounts {
        let id = ledger::domain::AccountId::new(account["id"].as_str().unwrap().parse().unwrap());
        let replayed = book.account(id).expect("replay has the account");
        let balances = &replayed.balances;
        let replayed_fields = [
            &balances.posted_debits,
            &balances.posted_credits,
            &balances.pending_debits,
            &balances.pending_credits,
        ]
        .map(|value| value.to_string());
        let api_fields = [
            "posted_debits",
            "posted_credits",
            "pending_debits",
            "pending_credits",
        ]
        .map(|field| account[field].as_str().unwrap().to_owned());
        assert_eq!(replayed_fields, api_fields, "balances of {id}");
        assert_eq!(
            replayed.status.as_str(),
            account["status"],
            "status of {id}"
        );
    }
    let transfers = app
        .list_all(&format!("/v1/ledgers/{ledger}/transfers"))
        .await;
    assert_eq!(transfers.len(), book.transfers().count(), "transfers");
    for transfer in &transfers {
        let id = ledger::domain::TransferId::new(transfer["id"].as_str().unwrap().parse().unwrap());
        let replayed = book.transfer(id).expect("replay has the transfer");
        assert_eq!(replayed.state.as_str(), transfer["state"], "state of {id}");
        assert_eq!(
            replayed.posted_amount.to_string(),
            transfer["posted_amount"].as_str().unwrap()
        );
        assert_eq!(
            replayed.reversed_amount.to_string(),
            transfer["reversed_amount"].as_str().unwrap()
        );
    }
    events.len()
}

/// §4.2 and §4.3 checked in the database itself: per currency Σ debits = Σ credits (posted and
/// pending), and every account's four fields equal the sums of its postings' deltas.
pub async fn assert_balance_invariants_in_database(database: &tokio_postgres::Config) {
    let client = owner_connection(database).await;
    let unbalanced = client
        .query(
            "SELECT ledger_id, currency FROM accounts GROUP BY ledger_id, currency \
             HAVING sum(posted_debits) <> sum(posted_credits) OR sum(pending_debits) <> \
             sum(pending_credits)",
            &[],
        )
        .await
        .unwrap();
    assert!(
        unbalanced.is_empty(),
        "§4.2 broken in {} currencies",
        unbalanced.len()
    );
    let drifted = client
        .query(
            "SELECT a.id FROM accounts a LEFT JOIN ( \
                 SELECT ledger_id, account_id, \
                   sum(posted_delta) FILTER (WHERE side = 'debit') AS pd, sum(posted_delta) FILTER \
                   (WHERE side = 'credit') AS pc, \
                   sum(pending_delta) FILTER (WHERE side = 'debit') AS nd, sum(pending_delta) \
                   FILTER (WHERE side = 'credit') AS nc \
                 FROM postings GROUP BY ledger_id, account_id) p ON p.ledger_id = a.ledger_id AND \
                 p.account_id = a.id \
             WHERE a.posted_debits <> coalesce(p.pd, 0) OR a.posted_credits <> coalesce(p.pc, 0) \
                OR a.pending_debits <> coalesce(p.nd, 0) OR a.pending_credits <> coalesce(p.nc, 0)",
            &[],
        )
        .await
        .unwrap();
    assert!(
        drifted.is_empty(),
        "§4.3 broken on {} accounts",
        drifted.len()
    );
}
