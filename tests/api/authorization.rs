//! Authorization (§9): every route × every kind of caller, against a matrix written here
//! independently of the service's own policy table, and the matrix checked against the routes
//! the running service documents, so that a new route cannot ship without a decision on who may
//! call it.

use std::collections::BTreeSet;
use std::fmt;

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, Reply, TestApp};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// No key needed: health, metrics, the OpenAPI document and its UI.
    Open,
    /// A valid key of any role.
    AnyRole,
    /// A valid key of this role only.
    Only(&'static str),
    /// An admin key for every ledger: managing API keys.
    UnrestrictedAdmin,
}

struct Route {
    method: &'static str,
    /// The OpenAPI path template.
    path: &'static str,
    access: Access,
    /// Whether the OpenAPI document describes it (the document and its UI do not).
    documented: bool,
}

const fn route(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
        documented: true,
    }
}

/// The expected permissions (§9): health, metrics and the OpenAPI document are open; every role
/// reads ledgers, accounts and transfers; only writers create transfers; only admins create
/// ledgers and open accounts; only admins for every ledger manage API keys; only auditors read
/// the journal. A route the service documents must appear here.
const MATRIX: &[Route] = &[
    route(
        "GET",
        "/v1/ledgers/{ledger}/accounts/{id}/entries",
        Access::AnyRole,
    ),
    route(
        "GET",
        "/v1/ledgers/{ledger}/accounts/{id}/balance",
        Access::AnyRole,
    ),
    route(
        "GET",
        "/v1/ledgers/{ledger}/transfers/{id}/audit",
        Access::Only("auditor"),
    ),
    route(
        "GET",
        "/v1/ledgers/{ledger}/checkpoint",
        Access::Only("auditor"),
    ),
    route(
        "POST",
        "/v1/ledgers/{ledger}/checkpoint/cosignatures",
        Access::Only("auditor"),
    ),
    route(
        "GET",
        "/v1/ledgers/{ledger}/proofs/inclusion",
        Access::Only("auditor"),
    ),
    route(
        "GET",
        "/v1/ledgers/{ledger}/proofs/consistency",
        Access::Only("auditor"),
    ),
    route(
        "GET",
        "/v1/ledgers/{ledger}/export",
        Access::Only("auditor"),
    ),
    route(
        "POST",
        "/v1/ledgers/{ledger}/integrity-checks",
        Access::Only("auditor"),
    ),
    route(
        "GET",
        "/v1/ledgers/{ledger}/integrity-checks/latest",
        Access::Only("auditor"),
    ),
    route(
        "POST",
        "/v1/ledgers/{ledger}/statements",
        Access::Only("writer"),
    ),
    route(
        "GET",
        "/v1/ledgers/{ledger}/statements/{id}",
        Access::AnyRole,
    ),
    route(
        "POST",
        "/v1/ledgers/{ledger}/reconciliations",
        Access::Only("writer"),
    ),
    route(
        "GET",
        "/v1/ledgers/{ledger}/reconciliations/{id}",
        Access::AnyRole,
    ),
    route(
        "GET",
        "/v1/ledgers/{ledger}/reconciliations/{id}/items",
        Access::AnyRole,
    ),
    route(
        "POST",
        "/v1/ledgers/{ledger}/reconciliations/{id}/items/{item}/resolve",
        Access::Only("writer"),
    ),
    route("GET", "/v1/keys", Access::AnyRole),
    route("GET", "/health/live", Access::Open),
    route("GET", "/health/ready", Access::Open),
    route("GET", "/metrics", Access::Open),
    Route {
        method: "GET",
        path: "/openapi.json",
        access: Access::Open,
        documented: false,
    },
    Route {
        method: "GET",
        path: "/docs/",
        access: Access::Open,
        documented: false,
    },
    Route {
        method: "GET",
        path: "/docs",
        access: Access::Open,
        documented: false,
    },
    route("POST", "/v1/ledgers", Access::Only("admin")),
    route("GET", "/v1/ledgers", Access::AnyRole),
    route("GET", "/v1/ledgers/{ledger}", Access::AnyRole),
    route(
        "POST",
        "/v1/ledgers/{ledger}/accounts",
        Access::Only("admin"),
    ),
    route("GET", "/v1/ledgers/{ledger}/accounts", Access::AnyRole),
    route("GET", "/v1/ledgers/{ledger}/accounts/{id}", Access::AnyRole),
    route(
        "POST",
        "/v1/ledgers/{ledger}/accounts/{id}/freeze",
        Access::Only("admin"),
    ),
    route(
        "POST",
        "/v1/ledgers/{ledger}/accounts/{id}/unfreeze",
        Access::Only("admin"),
    ),
    route(
        "POST",
        "/v1/ledgers/{ledger}/accounts/{id}/close",
        Access::Only("admin"),
    ),
    route(
        "POST",
        "/v1/ledgers/{ledger}/transfers/batch",
        Access::Only("writer"),
    ),
    route(
        "POST",
        "/v1/ledgers/{ledger}/transfers/{id}/post",
        Access::Only("writer"),
    ),
    route(
        "POST",
        "/v1/ledgers/{ledger}/transfers/{id}/void",
        Access::Only("writer"),
    ),
    route(
        "POST",
        "/v1/ledgers/{ledger}/transfers/{id}/reverse",
        Access::Only("writer"),
    ),
    route(
        "POST",
        "/v1/ledgers/{ledger}/transfers",
        Access::Only("writer"),
    ),
    route("GET", "/v1/ledgers/{ledger}/transfers", Access::AnyRole),
    route(
        "GET",
        "/v1/ledgers/{ledger}/transfers/{id}",
        Access::AnyRole,
    ),
    route(
        "GET",
        "/v1/ledgers/{ledger}/journal",
        Access::Only("auditor"),
    ),
    route("POST", "/v1/api-keys", Access::UnrestrictedAdmin),
    route("GET", "/v1/api-keys", Access::UnrestrictedAdmin),
    route("DELETE", "/v1/api-keys/{id}", Access::UnrestrictedAdmin),
];

const ROLES: [&str; 4] = ["admin", "writer", "reader", "auditor"];

/// The ledger every `{ledger}` route is called on; keys restricted elsewhere name [`OTHER`].
const MAIN: &str = "main";
const OTHER: &str = "other";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Caller {
    NoKey,
    RevokedKey,
    Key {
        role: &'static str,
        /// `None`: every ledger.
        only: Option<&'static str>,
    },
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::NoKey => f.write_str("no key"),
            Caller::RevokedKey => f.write_str("revoked key"),
            Caller::Key { role, only: None } => write!(f, "{role} key (every ledger)"),
            Caller::Key {
                role,
                only: Some(ledger),
            } => write!(f, "{role} key (only {ledger})"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    /// Past authorization: neither 401 nor 403 (the handler may still refuse the dummy input).
    Passes,
    Refused(StatusCode, &'static str),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Passes => f.write_str("passes (not 401/403)"),
            Expected::Refused(status, code) => write!(f, "{} {code}", status.as_u16()),
        }
    }
}

fn expected(route: &Route, caller: &Caller) -> Expected {
    if route.access == Access::Open {
        return Expected::Passes;
    }
    let (role, only) = match caller {
        Caller::NoKey => return Expected::Refused(StatusCode::UNAUTHORIZED, "unauthenticated"),
        Caller::RevokedKey => {
            return Expected::Refused(StatusCode::UNAUTHORIZED, "invalid_api_key")
        }
        Caller::Key { role, only } => (*role, *only),
    };
    let role_allowed = match route.access {
        Access::Open | Access::AnyRole => true,
        Access::Only(allowed) => role == allowed,
        Access::UnrestrictedAdmin => role == "admin",
    };
    if !role_allowed || (route.access == Access::UnrestrictedAdmin && only.is_some()) {
        return Expected::Refused(StatusCode::FORBIDDEN, "forbidden");
    }
    let covers_main = only.is_none_or(|ledger| ledger == MAIN);
    if route.path.starts_with("/v1/ledgers/{ledger}") && !covers_main {
        return Expected::Refused(StatusCode::FORBIDDEN, "ledger_forbidden");
    }
    Expected::Passes
}

/// What was wrong with one answer, or `None` when it is as expected.
fn mismatch(expected: Expected, reply: &Reply) -> Option<String> {
    let refusal = matches!(
        reply.status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    );
    if refusal && !reply.content_type().starts_with("application/problem+json") {
        return Some(format!(
            "a {} with content type {:?} instead of application/problem+json",
            reply.status.as_u16(),
            reply.content_type()
        ));
    }
    if refusal && !reply.body["request_id"].is_string() {
        return Some(format!(
            "a {} problem without its request id: {}",
            reply.status.as_u16(),
            reply.text
        ));
    }
    let as_expected = match expected {
        // A route missing from the service's policy answers 404 route_not_found to everyone.
        Expected::Passes => {
            !refusal
                && reply.status != StatusCode::INTERNAL_SERVER_ERROR
                && reply.code() != "route_not_found"
                && reply.code() != "method_not_allowed"
        }
        Expected::Refused(status, code) => reply.status == status && reply.code() == code,
    };
    (!as_expected).then(|| {
        format!(
            "got {} {}",
            reply.status.as_u16(),
            if reply.code().is_empty() {
                "(no problem code)"
            } else {
                reply.code()
            }
        )
    })
}

/// Creates an API key with the bootstrap admin key; returns its id and token.
async fn create_key(app: &TestApp, role: &str, ledgers: Option<&[&str]>) -> (Uuid, String) {
    let mut body = json!({ "name": format!("{role} key"), "role": role });
    if let Some(ledgers) = ledgers {
        body["ledgers"] = json!(ledgers);
    }
    let reply = app.post("/v1/api-keys", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    (
        reply.body["id"].as_str().unwrap().parse().unwrap(),
        reply.body["token"].as_str().unwrap().to_owned(),
    )
}

/// Every (method, path) operation the served OpenAPI document describes.
async fn documented_operations(app: &TestApp) -> BTreeSet<(String, String)> {
    let reply = app.request("GET", "/openapi.json").send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let paths = reply.body["paths"]
        .as_object()
        .expect("the OpenAPI document has paths");
    let methods = [
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];
    paths
        .iter()
        .flat_map(|(path, item)| {
            methods
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(|method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// The concrete path of a route: `{ledger}` is [`MAIN`], any other parameter a random UUID.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{ledger}" => MAIN.to_owned(),
            _ if segment.starts_with('{') => Uuid::new_v4().to_string(),
            _ => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_route_answers_every_caller_as_the_authorization_matrix_says() {
    let app = spawn_app().await;
    app.create_ledger(MAIN).await;
    app.create_ledger(OTHER).await;

    // Coverage: the matrix names exactly the operations the service documents.
    let mut uncovered = Vec::new();
    let documented = documented_operations(&app).await;
    let in_matrix: BTreeSet<(String, String)> = MATRIX
        .iter()
        .filter(|route| route.documented)
        .map(|route| (route.method.to_owned(), route.path.to_owned()))
        .collect();
    for (method, path) in documented.difference(&in_matrix) {
        uncovered.push(format!(
            "{method} {path}: documented by the service but absent from MATRIX in \
             tests/api/authorization.rs; add it with the roles that may call it"
        ));
    }
    for (method, path) in in_matrix.difference(&documented) {
        uncovered.push(format!(
            "{method} {path}: in MATRIX but not documented by the service (removed or renamed?)"
        ));
    }

    // The callers: no key, a revoked key, each role for every ledger, each role restricted to
    // another ledger, and an admin restricted to the ledger the routes name.
    let mut callers: Vec<(Caller, Option<String>)> = vec![(Caller::NoKey, None)];
    let (revoked_id, revoked_token) = create_key(&app, "reader", None).await;
    let before = app
        .request("GET", "/v1/ledgers")
        .token(&revoked_token)
        .send()
        .await;
    assert_eq!(
        before.status,
        StatusCode::OK,
        "before revocation (and now cached)"
    );
    let revoked = app
        .request("DELETE", &format!("/v1/api-keys/{revoked_id}"))
        .token(&app.tokens.admin)
        .send()
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert!(revoked.body["revoked_at"].is_string(), "{}", revoked.text);
    callers.push((Caller::RevokedKey, Some(revoked_token)));
    for (role, token) in [
        ("admin", &app.tokens.admin),
        ("writer", &app.tokens.writer),
        ("reader", &app.tokens.reader),
        ("auditor", &app.tokens.auditor),
    ] {
        callers.push((Caller::Key { role, only: None }, Some(token.clone())));
    }
    for role in ROLES {
        let (_, token) = create_key(&app, role, Some(&[OTHER])).await;
        callers.push((
            Caller::Key {
                role,
                only: Some(OTHER),
            },
            Some(token),
        ));
    }
    let (_, main_admin) = create_key(&app, "admin", Some(&[MAIN])).await;
    callers.push((
        Caller::Key {
            role: "admin",
            only: Some(MAIN),
        },
        Some(main_admin),
    ));

    let mut failures = Vec::new();
    let mut checked = 0;
    for route in MATRIX {
        for (caller, token) in &callers {
            let path = concrete(route.path);
            // Authorization is decided before the body is read: `{}` is enough.
            let body = (route.method == "POST").then(|| json!({}));
            let idempotency_key = Uuid::new_v4().to_string();
            let reply = app
                .request(route.method, &path)
                .maybe_json(body.as_ref())
                .maybe_token(token.as_deref())
                .maybe_idempotency_key(body.as_ref().map(|_| idempotency_key.as_str()))
                .send()
                .await;
            let expected = expected(route, caller);
            if let Some(got) = mismatch(expected, &reply) {
                failures.push(format!(
                    "{} {} as {caller}: expected {expected}, {got}",
                    route.method, route.path
                ));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, MATRIX.len() * callers.len());
    assert!(
        uncovered.is_empty() && failures.is_empty(),
        "the authorization matrix does not hold.\nRoutes documented and in the matrix differ \
         ({}):\n  {}\nAnswers that differ from the matrix ({} of {checked} route × caller \
         checks):\n  {}",
        uncovered.len(),
        uncovered.join("\n  "),
        failures.len(),
        failures.join("\n  ")
    );
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_by_the_instance_that_revoked_it() {
    let app = spawn_app().await;
    app.create_ledger(MAIN).await;
    let (id, token) = create_key(&app, "writer", None).await;
    // Used once, so that the key is in the instance's cache when it is revoked.
    let used = app
        .request("GET", "/v1/ledgers/main")
        .token(&token)
        .send()
        .await;
    assert_eq!(used.status, StatusCode::OK, "{}", used.text);

    let revoked = app
        .request("DELETE", &format!("/v1/api-keys/{id}"))
        .token(&app.tokens.admin)
        .send()
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    for (method, path) in [
        ("GET", "/v1/ledgers/main"),
        ("GET", "/v1/ledgers"),
        ("POST", "/v1/ledgers/main/transfers"),
    ] {
        let body = (method == "POST").then(|| json!({}));
        let idempotency_key = body.as_ref().map(|_| "after-revocation");
        let reply = app
            .request(method, path)
            .maybe_json(body.as_ref())
            .token(&token)
            .maybe_idempotency_key(idempotency_key)
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(reply.code(), "invalid_api_key", "{method} {path}");
        assert_eq!(reply.content_type(), "application/problem+json");
    }
    // The listing shows it revoked; revoking twice is harmless.
    let keys = app
        .request("GET", "/v1/api-keys")
        .token(&app.tokens.admin)
        .send()
        .await;
    let listed = keys.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["id"] == id.to_string())
        .expect("the revoked key is still listed")
        .clone();
    assert!(listed["revoked_at"].is_string(), "{listed}");
    assert!(listed.get("token").is_none(), "tokens are never listed");
    let again = app
        .request("DELETE", &format!("/v1/api-keys/{id}"))
        .token(&app.tokens.admin)
        .send()
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
}

#[tokio::test]
async fn a_key_restricted_to_some_ledgers_lists_only_those() {
    let app = spawn_app().await;
    for name in [MAIN, OTHER, "third"] {
        app.create_ledger(name).await;
    }
    let names = |reply: &Reply| -> Vec<String> {
        reply.body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", reply.text))
            .iter()
            .map(|ledger| ledger["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, only_other) = create_key(&app, "reader", Some(&[OTHER])).await;
    let reply = app
        .request("GET", "/v1/ledgers")
        .token(&only_other)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(names(&reply), [OTHER]);

    let (_, two) = create_key(&app, "auditor", Some(&[OTHER, "third"])).await;
    let reply = app.request("GET", "/v1/ledgers").token(&two).send().await;
    assert_eq!(names(&reply), [OTHER, "third"]);

    let reply = app
        .request("GET", "/v1/ledgers")
        .token(&app.tokens.reader)
        .send()
        .await;
    assert_eq!(names(&reply), [MAIN, OTHER, "third"], "an unrestricted key");
}

#[tokio::test]
async fn an_admin_restricted_to_other_ledgers_cannot_create_a_ledger_outside_them() {
    let app = spawn_app().await;
    let (_, only_other) = create_key(&app, "admin", Some(&[OTHER])).await;
    let reply = app
        .request("POST", "/v1/ledgers")
        .json(&json!({"name": "third"}))
        .token(&only_other)
        .idempotency_key("create-third")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.code(), "ledger_forbidden");
    assert_eq!(reply.content_type(), "application/problem+json");
    let missing = app.get("/v1/ledgers/third").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "nothing was created");

    // The ledger it covers, it may create.
    let reply = app
        .request("POST", "/v1/ledgers")
        .json(&json!({"name": OTHER}))
        .token(&only_other)
        .idempotency_key("create-other")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

#[tokio::test]
async fn the_actor_of_every_event_is_the_id_of_the_key_that_caused_it() {
    let app = spawn_app().await;
    let (admin_id, admin) = create_key(&app, "admin", None).await;
    let (writer_id, writer) = create_key(&app, "writer", None).await;

    let send = |path: &'static str, body: Value, token: String| {
        let app = &app;
        async move {
            let key = Uuid::new_v4().to_string();
            app.request("POST", path)
                .json(&body)
                .token(&token)
                .idempotency_key(&key)
                .send()
                .await
        }
    };
    let ledger = send("/v1/ledgers", json!({"name": "main"}), admin.clone()).await;
    assert_eq!(ledger.status, StatusCode::CREATED, "{}", ledger.text);
    let mut accounts = Vec::new();
    for code in ["a", "b"] {
        let reply = send(
            "/v1/ledgers/main/accounts",
            json!({"code": code, "currency": "EUR", "normal_side": "credit"}),
            admin.clone(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        accounts.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let transfer = send(
        "/v1/ledgers/main/transfers",
        json!({
            "debit_account_id": accounts[0],
            "credit_account_id": accounts[1],
            "amount": "1.00",
            "currency": "EUR"
        }),
        writer,
    )
    .await;
    assert_eq!(transfer.status, StatusCode::CREATED, "{}", transfer.text);

    let events = app.journal("main").await; // read with the auditor key
    let actors: Vec<(&str, &str)> = events
        .iter()
        .map(|event| {
            (
                event["type"].as_str().unwrap(),
                event["actor"].as_str().unwrap(),
            )
        })
        .collect();
    let (admin_id, writer_id) = (admin_id.to_string(), writer_id.to_string());
    assert_eq!(
        actors,
        [
            ("ledger_created", admin_id.as_str()),
            ("account_opened", admin_id.as_str()),
            ("account_opened", admin_id.as_str()),
            ("transfer_created", writer_id.as_str()),
        ]
    );

    // The keys themselves record the key that created them: the bootstrap admin's id.
    let keys = app
        .request("GET", "/v1/api-keys")
        .token(&app.tokens.admin)
        .send()
        .await;
    let keys = keys.body["data"].as_array().unwrap();
    let bootstrap = keys
        .iter()
        .find(|key| key["created_by"] == "bootstrap")
        .expect("the bootstrap admin key is listed");
    let created = keys.iter().find(|key| key["id"] == admin_id).unwrap();
    assert_eq!(created["created_by"], bootstrap["id"]);
}

#[tokio::test]
async fn a_client_cannot_set_the_actor_of_an_event() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let a = app.open_account("main", "a", json!({})).await;
    let b = app.open_account("main", "b", json!({})).await;
    let events_before = app.journal("main").await.len();
    let cases = [
        (
            "/v1/ledgers/main/transfers",
            json!({
                "debit_account_id": a,
                "credit_account_id": b,
                "amount": "1.00",
                "currency": "EUR",
                "actor": "someone-else"
            }),
        ),
        (
            "/v1/ledgers/main/accounts",
            json!({
                "code": "c",
                "currency": "EUR",
                "normal_side": "credit",
                "actor": "someone-else"
            }),
        ),
        (
            "/v1/ledgers",
            json!({"name": "second", "actor": "someone-else"}),
        ),
    ];
    for (path, body) in cases {
        let reply = app.post(path, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "invalid_body", "{path}");
        assert!(reply.body["detail"].as_str().unwrap().contains("actor"));
    }
    assert_eq!(app.journal("main").await.len(), events_before);
}

/// A libpq connection URL for a unix-socket configuration of the test cluster.
fn database_url(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match &config.get_hosts()[0] {
        Host::Unix(path) => path.to_str().expect("a UTF-8 socket path").to_owned(),
        Host::Tcp(name) => name.clone(),
    };
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                    char::from(byte).to_string()
                }
                _ => format!("%{byte:02X}"),
            })
            .collect()
    };
    format!(
        "postgresql:///{}?host={}&port={}&user={}",
        encode(config.get_dbname().expect("a database name")),
        encode(&host),
        config.get_ports().first().copied().unwrap_or(5432),
        encode(config.get_user().expect("a user")),
    )
}

#[tokio::test]
async fn the_cli_creates_an_admin_key_whose_token_works() {
    let app = spawn_app().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["keys", "create", "--role", "admin", "--name", "cli admin"])
        .env("DATABASE_URL", database_url(&app.database))
        .env("RUST_LOG", "warn")
        .env("LEDGER_LOG_FORMAT", "text")
        .output()
        .await
        .expect("run the ledger binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ledger keys create failed: {stdout}{stderr}"
    );
    let token = stdout
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("lk_"))
        .unwrap_or_else(|| panic!("no token printed: {stdout}{stderr}"))
        .to_owned();

    let reply = app
        .request("POST", "/v1/ledgers")
        .json(&json!({"name": "main"}))
        .token(&token)
        .idempotency_key("cli-ledger")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    // The key is an unrestricted admin created by the CLI, and the event's actor.
    let keys = app
        .request("GET", "/v1/api-keys")
        .token(&token)
        .send()
        .await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.text);
    let key = keys.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["name"] == "cli admin")
        .expect("the CLI's key is listed")
        .clone();
    assert_eq!(key["role"], "admin");
    assert_eq!(key["created_by"], "cli");
    assert!(key["ledgers"].is_null(), "{key}");
    let journal = app.journal("main").await;
    assert_eq!(journal[0]["actor"], key["id"]);
}

/// Whether an OpenAPI security requirement list demands a key: a non-empty list none of whose
/// alternatives is the empty requirement `{}` (which makes authentication optional).
fn demands_a_key(security: &Value) -> bool {
    security.as_array().is_some_and(|alternatives| {
        !alternatives.is_empty()
            && alternatives
                .iter()
                .all(|requirement| requirement.as_object().is_some_and(|r| !r.is_empty()))
    })
}

#[tokio::test]
async fn the_openapi_document_says_which_routes_need_a_key() {
    let app = spawn_app().await;
    let document = app.request("GET", "/openapi.json").send().await;
    assert_eq!(document.status, StatusCode::OK);
    let global = &document.body["security"];
    let mut wrong = Vec::new();
    for route in MATRIX.iter().filter(|route| route.documented) {
        let Some(operation) = document.body["paths"][route.path].get(route.method.to_lowercase())
        else {
            continue; // the matrix test reports routes that are not documented
        };
        let security = operation.get("security").unwrap_or(global);
        let needs_key = route.access != Access::Open;
        if demands_a_key(security) != needs_key {
            wrong.push(format!(
                "{} {}: documented security {security}, yet it {}",
                route.method,
                route.path,
                if needs_key {
                    "needs a key"
                } else {
                    "needs no key"
                }
            ));
        }
    }
    // The document requires `api_key` globally; the open operations must override it with
    // `security: []` (utoipa: `security(())`), or the document claims they need a key (§9).
    assert!(
        wrong.is_empty(),
        "the OpenAPI document misstates who needs a key:\n  {}",
        wrong.join("\n  ")
    );
}

#[tokio::test]
async fn a_percent_encoded_path_is_authorized_like_the_route_it_reaches() {
    let app = spawn_app().await;
    app.create_ledger(MAIN).await;
    let (writer_id, writer) = create_key(&app, "writer", None).await;
    let (_, other_auditor) = create_key(&app, "auditor", Some(&[OTHER])).await;
    let no_key = [
        ("GET", format!("/v1/ledgers/{MAIN}/expor%74")),
        ("GET", format!("/v1/ledgers/{MAIN}/journa%6C")),
        ("GET", "/v1/api-key%73".to_owned()),
        ("DELETE", format!("/v1/api-key%73/{writer_id}")),
    ];
    for (method, path) in &no_key {
        let reply = app.request(method, path).send().await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{method} {path}: {}",
            reply.text
        );
    }
    let reply = app
        .request("GET", &format!("/v1/ledgers/{MAIN}/journa%6C"))
        .token(&app.tokens.reader)
        .send()
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "forbidden"),
        "a reader may not read the journal: {}",
        reply.text
    );
    assert_eq!(MAIN, "main");
    let encoded_main = "/v1/ledgers/m%61in/journal";
    let (_, main_auditor) = create_key(&app, "auditor", Some(&[MAIN])).await;
    let reply = app
        .request("GET", encoded_main)
        .token(&main_auditor)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app
        .request("GET", encoded_main)
        .token(&other_auditor)
        .send()
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "ledger_forbidden"),
        "{}",
        reply.text
    );
    let reply = app
        .request("GET", "/v1/ledgers")
        .token(&writer)
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the writer key was not revoked: {}",
        reply.text
    );
}

#[tokio::test]
async fn signing_keys_for_a_ledger_are_refused_to_a_key_that_does_not_cover_it() {
    let app = spawn_app().await;
    app.create_ledger(MAIN).await;
    let (_, other_reader) = create_key(&app, "reader", Some(&[OTHER])).await;
    let path = format!("/v1/keys?ledger={MAIN}");
    let reply = app.request("GET", &path).token(&other_reader).send().await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "ledger_forbidden"),
        "{}",
        reply.text
    );
    let reply = app
        .request("GET", &path)
        .token(&app.tokens.reader)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn a_malformed_authorization_header_is_named_as_such() {
    let app = spawn_app().await;
    for header in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer short", "token"] {
        let reply = app
            .client
            .get(app.url("/v1/ledgers"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        let reply = Reply::read(reply).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNAUTHORIZED, "invalid_api_key"),
            "{header}: {}",
            reply.text
        );
    }
    let reply = app.request("GET", "/v1/ledgers").send().await;
    assert_eq!(reply.code(), "unauthenticated", "no header at all");
}
