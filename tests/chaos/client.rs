//! Clients as the contract describes them (§1): many at once, each request with its own
//! Idempotency-Key (or a client-chosen transfer id), the same request sent again — same key, same
//! body — on a timeout, a broken connection or a 5xx, with capped exponential backoff; every
//! attempt and every final answer recorded.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use super::history::{Attempt, Final, Kind, Outcome, Probe, Request, XorShift};
use super::model::{format_minor, parse_minor};

/// A pending transfer's timeout: long enough that nothing expires during a run.
pub const PENDING_TIMEOUT_SECONDS: u64 = 3600;
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// What the clients and the fault controller share.
pub struct Shared {
    pub start: Instant,
    pub seed: u64,
    pub port: AtomicU16,
    /// Set when the run ends: no new operation starts (requests under way still finish).
    pub stop: AtomicBool,
    /// Past this (µs since start) a request still unanswered is given up, left unresolved.
    pub give_up_us: AtomicU64,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub writer_token: OnceLock<String>,
}

impl Shared {
    pub fn new(
        start: Instant,
        seed: u64,
        port: u16,
        admin_token: &str,
        attempt_timeout: Duration,
    ) -> Shared {
        Shared {
            start,
            seed,
            port: AtomicU16::new(port),
            stop: AtomicBool::new(false),
            give_up_us: AtomicU64::new(u64::MAX),
            http: reqwest::Client::builder()
                .timeout(attempt_timeout)
                .connect_timeout(Duration::from_secs(1))
                .pool_max_idle_per_host(64)
                .build()
                .expect("an HTTP client"),
            admin_token: admin_token.to_owned(),
            writer_token: OnceLock::new(),
        }
    }

    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}{path}",
            self.port.load(Ordering::SeqCst)
        )
    }

    pub fn key_for(&self, name: &str) -> String {
        format!("{:016x}-{name}", self.seed)
    }
}

/// Whether an answer is one a client should retry (the same request, later).
fn retryable(status: u16, code: Option<&str>) -> bool {
    status >= 500 || status == 429 || (status == 409 && code == Some("idempotency_key_in_flight"))
}

fn describe(error: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(200).collect()
}

/// Sends `request` until it gets an answer that is not retryable, or until the run gives up.
pub async fn execute(shared: &Shared, mut request: Request) -> Request {
    let bytes = serde_json::to_vec(&request.body).expect("bodies serialise");
    let token = if request.admin {
        shared.admin_token.clone()
    } else {
        shared.writer_token.get().expect("the writer key").clone()
    };
    request.invoked_us = shared.now_us();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let request_id = format!("{}.{}", request.name, request.attempts.len() + 1);
        let mut builder = shared
            .http
            .post(shared.url(&request.path))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("x-request-id", &request_id)
            .body(bytes.clone());
        if let Some(key) = &request.key {
            builder = builder.header("idempotency-key", key);
        }
        let sent_us = shared.now_us();
        let result = async {
            let response = builder.send().await?;
            let status = response.status().as_u16();
            let replayed = response
                .headers()
                .get("idempotent-replayed")
                .is_some_and(|value| value == "true");
            let text = response.text().await?;
            Ok::<_, reqwest::Error>((status, replayed, text))
        }
        .await;
        let now = shared.now_us();
        let took_us = now - sent_us;
        match result {
            Ok((status, replayed, text)) => {
                let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let code = json["code"].as_str().map(str::to_owned);
                let again = retryable(status, code.as_deref());
                request.attempts.push(Attempt {
                    request_id,
                    sent_us,
                    took_us,
                    outcome: Outcome::Response { status, code },
                });
                if !again {
                    request.fin = Some(Final {
                        status,
                        replayed,
                        at_us: now,
                        body: text,
                        json,
                    });
                    return request;
                }
            }
            Err(error) => request.attempts.push(Attempt {
                request_id,
                sent_us,
                took_us,
                outcome: if error.is_timeout() {
                    Outcome::Timeout
                } else {
                    Outcome::Connection(describe(&error))
                },
            }),
        }
        if now > shared.give_up_us.load(Ordering::SeqCst) {
            return request;
        }
        // Jitter from the clock's low bits: clients that failed together do not retry together.
        let jitter = Duration::from_micros(now % (backoff.as_micros() as u64 / 2 + 1));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The accounts the clients move money between.
#[derive(Clone, Debug)]
pub struct Workload {
    pub ledger: String,
    /// A debit-normal account without constraint: where money comes from.
    pub world: Uuid,
    /// Credit-normal wallets that may not be overdrawn: transfers from them can be refused.
    pub wallets: Vec<Uuid>,
    pub batch_size: usize,
    /// Mean pause between one client's operations (ms); 0: none.
    pub think_ms: u64,
}

pub fn new_request(
    shared: &Shared,
    name: String,
    kind: Kind,
    path: String,
    body: Value,
    keyed: bool,
) -> Request {
    Request {
        key: keyed.then(|| shared.key_for(&name)),
        name,
        kind,
        probe: None,
        path,
        admin: false,
        body,
        invoked_us: 0,
        attempts: Vec::new(),
        fin: None,
    }
}

struct Client {
    shared: Arc<Shared>,
    workload: Arc<Workload>,
    index: usize,
    counter: u64,
    rng: XorShift,
    done: Vec<Request>,
    /// Posted transfers of this client and what of them may still be reversed.
    reversible: Vec<(Uuid, i128)>,
}

/// One client: operations until the run stops; returns every request it sent.
pub async fn run_client(
    shared: Arc<Shared>,
    workload: Arc<Workload>,
    index: usize,
) -> Vec<Request> {
    let seed = shared.seed ^ (index as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F);
    let mut client = Client {
        shared,
        workload,
        index,
        counter: 0,
        rng: XorShift::new(seed),
        done: Vec::new(),
        reversible: Vec::new(),
    };
    while !client.shared.stop.load(Ordering::SeqCst) {
        client.one_operation().await;
        let think = client.workload.think_ms;
        if think > 0 {
            let pause = client.rng.between(0, 2 * think);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
    client.done
}

impl Client {
    fn name(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("c{}-{}-{what}", self.index, self.counter)
    }

    fn path(&self, tail: &str) -> String {
        format!("/v1/ledgers/{}/{tail}", self.workload.ledger)
    }

    fn amount(&mut self, low_cents: u64, high_cents: u64) -> i128 {
        self.rng.between(low_cents, high_cents) as i128
    }

    /// A pair of accounts and an amount: top-ups from the world, payments between wallets,
    /// withdrawals back to the world.
    fn leg(&mut self) -> (Uuid, Uuid, i128) {
        let wallets = self.workload.wallets.clone();
        let world = self.workload.world;
        // Money flows in about as fast as it flows out, so that wallets often run short and
        // refusals (insufficient funds) depend on the order the ledger chose.
        match self.rng.between(0, 19) {
            0..=6 => (world, *self.rng.pick(&wallets), self.amount(100, 10_000)),
            7..=14 => {
                let from = *self.rng.pick(&wallets);
                let mut to = *self.rng.pick(&wallets);
                while to == from {
                    to = *self.rng.pick(&wallets);
                }
                (from, to, self.amount(100, 15_000))
            }
            _ => (*self.rng.pick(&wallets), world, self.amount(100, 12_000)),
        }
    }

    fn transfer_body(&mut self, reference: &str, pending: bool) -> Value {
        let (debit, credit, amount) = self.leg();
        let mut body = json!({
            "debit_account_id": debit,
            "credit_account_id": credit,
            "amount": format_minor(amount, 2),
            "currency": "EUR",
            "reference": reference,
        });
        if pending {
            body["pending"] = json!(true);
            body["timeout_seconds"] = json!(PENDING_TIMEOUT_SECONDS);
        }
        body
    }

    async fn send(&mut self, request: Request) -> usize {
        let request = execute(&self.shared, request).await;
        self.done.push(request);
        self.maybe_probe(self.done.len() - 1).await;
        self.done.len() - 1
    }

    async fn one_operation(&mut self) {
        match self.rng.between(0, 99) {
            0..=34 => self.single_transfer().await,
            35..=49 => self.atomic_batch().await,
            50..=84 => self.pending_then_resolve().await,
            85..=94 => self.reverse_some().await,
            _ => self.concurrent_duplicates().await,
        }
    }

    async fn single_transfer(&mut self) {
        let natural = self.rng.percent(20);
        let name = self.name(if natural { "natural" } else { "transfer" });
        let mut body = self.transfer_body(&name, false);
        if natural {
            body["id"] = json!(self.rng.uuid());
        }
        let path = self.path("transfers");
        let request = new_request(&self.shared, name, Kind::Transfer, path, body, !natural);
        let index = self.send(request).await;
        self.remember_posted(index);
    }

    fn remember_posted(&mut self, index: usize) {
        let request = &self.done[index];
        let Some(fin) = &request.fin else { return };
        if fin.is_success() && fin.json["state"] == "posted" {
            let id = fin.json["id"].as_str().and_then(|id| id.parse().ok());
            let amount = fin.json["posted_amount"]
                .as_str()
                .and_then(|amount| parse_minor(amount, 2).ok());
            if let (Some(id), Some(amount)) = (id, amount) {
                self.reversible.push((id, amount));
            }
        }
    }

    async fn atomic_batch(&mut self) {
        let name = self.name("batch");
        let items: Vec<Value> = (0..self.workload.batch_size)
            .map(|leg| {
                let reference = format!("{name}-{leg}");
                self.transfer_body(&reference, false)
            })
            .collect();
        let body = json!({"atomic": true, "transfers": items});
        let path = self.path("transfers/batch");
        let request = new_request(&self.shared, name, Kind::Batch, path, body, true);
        self.send(request).await;
    }

    async fn pending_then_resolve(&mut self) {
        let name = self.name("pending");
        let body = self.transfer_body(&name, true);
        let path = self.path("transfers");
        let request = new_request(&self.shared, name, Kind::Transfer, path, body, true);
        let index = self.send(request).await;
        let Some(fin) = self.done[index].fin.clone() else {
            return;
        };
        if fin.status != 201 {
            return;
        }
        let (Some(id), Some(amount)) = (
            fin.json["id"]
                .as_str()
                .and_then(|id| id.parse::<Uuid>().ok()),
            fin.json["amount"]
                .as_str()
                .and_then(|amount| parse_minor(amount, 2).ok()),
        ) else {
            return;
        };
        match self.rng.between(0, 99) {
            0..=39 => {
                let request = self.post_request(id, None);
                let index = self.send(request).await;
                self.remember_posted(index);
            }
            40..=59 => {
                let part = self.amount(1, amount as u64);
                let request = self.post_request(id, Some(part));
                let index = self.send(request).await;
                self.remember_posted(index);
            }
            60..=84 => {
                let request = self.void_request(id);
                self.send(request).await;
            }
            _ => {
                // A post and a void of the same pending transfer race: one wins, the other is
                // `409 invalid_state_transition`, and the reservation is resolved once.
                let post = self.post_request(id, None);
                let void = self.void_request(id);
                let shared = self.shared.clone();
                let (post, void) = tokio::join!(execute(&shared, post), execute(&shared, void));
                self.done.push(post);
                self.remember_posted(self.done.len() - 1);
                self.done.push(void);
            }
        }
    }

    fn post_request(&mut self, id: Uuid, amount: Option<i128>) -> Request {
        let name = self.name("post");
        let body = match amount {
            Some(amount) => json!({"amount": format_minor(amount, 2)}),
            None => json!({}),
        };
        let path = self.path(&format!("transfers/{id}/post"));
        new_request(
            &self.shared,
            name,
            Kind::Post { target: id },
            path,
            body,
            true,
        )
    }

    fn void_request(&mut self, id: Uuid) -> Request {
        let name = self.name("void");
        let path = self.path(&format!("transfers/{id}/void"));
        new_request(
            &self.shared,
            name,
            Kind::Void { target: id },
            path,
            json!({}),
            true,
        )
    }

    fn reverse_request(&mut self, id: Uuid, amount: Option<i128>) -> Request {
        let name = self.name("reverse");
        let body = match amount {
            Some(amount) => json!({"amount": format_minor(amount, 2), "reference": name}),
            None => json!({"reference": name}),
        };
        let path = self.path(&format!("transfers/{id}/reverse"));
        new_request(
            &self.shared,
            name,
            Kind::Reverse { target: id },
            path,
            body,
            true,
        )
    }

    async fn reverse_some(&mut self) {
        if self.reversible.is_empty() {
            return self.single_transfer().await;
        }
        let slot = (self.rng.next_u64() % self.reversible.len() as u64) as usize;
        let (id, remaining) = self.reversible.swap_remove(slot);
        if self.rng.percent(20) {
            // Two reversals race for what remains of one transfer.
            let half = (remaining / 2 + 1).min(remaining);
            let first = self.reverse_request(id, Some(half));
            let second = self.reverse_request(id, Some(half));
            let shared = self.shared.clone();
            let (first, second) = tokio::join!(execute(&shared, first), execute(&shared, second));
            self.done.push(first);
            self.done.push(second);
            return;
        }
        let amount = if self.rng.percent(30) {
            None
        } else {
            Some(self.amount(1, remaining as u64))
        };
        let request = self.reverse_request(id, amount);
        let index = self.send(request).await;
        let reversed = self.done[index]
            .fin
            .as_ref()
            .filter(|fin| fin.status == 201)
            .and_then(|fin| fin.json["amount"].as_str())
            .and_then(|amount| parse_minor(amount, 2).ok());
        if let Some(reversed) = reversed {
            if reversed < remaining {
                self.reversible.push((id, remaining - reversed));
            }
        }
    }

    /// The same request (same key, same body) twice at once: applied once, both answered alike.
    async fn concurrent_duplicates(&mut self) {
        let name = self.name("twin");
        let body = self.transfer_body(&name, false);
        let path = self.path("transfers");
        let first = new_request(&self.shared, name, Kind::Transfer, path, body, true);
        let mut second = first.clone();
        second.name = self.name("twin-dup");
        second.probe = Some((Probe::ConcurrentDuplicate, first.name.clone()));
        let shared = self.shared.clone();
        let (first, second) = tokio::join!(execute(&shared, first), execute(&shared, second));
        self.done.push(first);
        self.done.push(second);
    }

    /// Sends the request at `index` again on purpose, with the same or another body.
    async fn maybe_probe(&mut self, index: usize) {
        let original = &self.done[index];
        let Some(fin) = &original.fin else { return };
        if original.probe.is_some() {
            return;
        }
        let probe = match (&original.key, self.rng.between(0, 99)) {
            (Some(_), 0..=7) => Probe::SameKeySameBody,
            (Some(_), 8..=11) if !matches!(original.kind, Kind::Void { .. }) => {
                Probe::SameKeyOtherBody
            }
            (None, 0..=29) if fin.is_success() => Probe::SameIdSameFields,
            (None, 30..=59) if fin.is_success() => Probe::SameIdOtherFields,
            _ => return,
        };
        let mut body = original.body.clone();
        if matches!(probe, Probe::SameKeyOtherBody | Probe::SameIdOtherFields) {
            alter(&mut body, &original.kind);
        }
        let mut request = original.clone();
        request.probe = Some((probe, original.name.clone()));
        request.name = self.name("probe");
        request.body = body;
        request.attempts.clear();
        request.fin = None;
        let request = execute(&self.shared, request).await;
        self.done.push(request);
    }
}

/// Another body for the same request: one cent more, or the full amount instead of a part.
fn alter(body: &mut Value, kind: &Kind) {
    let bump = |amount: &mut Value| {
        let cents = parse_minor(amount.as_str().unwrap_or("0.00"), 2).unwrap_or(0);
        *amount = json!(format_minor(cents + 1, 2));
    };
    match kind {
        Kind::Batch => bump(&mut body["transfers"][0]["amount"]),
        Kind::Post { .. } | Kind::Reverse { .. } => {
            if body.get("amount").is_some() {
                body.as_object_mut().expect("an object").remove("amount");
            } else {
                body["amount"] = json!("0.01");
            }
        }
        _ => bump(&mut body["amount"]),
    }
}

/// A request the admin key sends (setup: keys, the ledger, its accounts).
pub fn admin_request(shared: &Shared, name: &str, kind: Kind, path: &str, body: Value) -> Request {
    let mut request = new_request(shared, name.into(), kind, path.into(), body, true);
    request.admin = true;
    request
}

/// What a run sets up: who it says it is (in the keys' names), its ledger, how many wallets,
/// and the workload's pace.
pub struct SetUp<'a> {
    pub label: &'a str,
    pub ledger: &'a str,
    pub wallets: usize,
    pub batch_size: usize,
    pub think_ms: u64,
}

/// API keys (writer, auditor), the ledger and its accounts, through the same retrying client.
/// Returns the requests made, the workload over those accounts, and the auditor's token.
pub async fn set_up(
    shared: &Shared,
    plan: &SetUp<'_>,
    rng: &mut XorShift,
) -> (Vec<Request>, Workload, String) {
    let mut done = Vec::new();
    let send = |request: Request| async {
        let request = execute(shared, request).await;
        let fin = request.fin.clone().unwrap_or_else(|| {
            panic!(
                "setup request {} got no answer: {:?}",
                request.name, request.attempts
            )
        });
        assert_eq!(fin.status, 201, "setup {}: {}", request.name, fin.body);
        (request, fin.json)
    };
    let mut tokens = Vec::new();
    for role in ["writer", "auditor"] {
        let name = format!("setup-key-{role}");
        let body = json!({"name": format!("{} {role}", plan.label), "role": role});
        let request = admin_request(shared, &name, Kind::CreateKey, "/v1/api-keys", body);
        let (request, answer) = send(request).await;
        done.push(request);
        tokens.push(answer["token"].as_str().expect("a token").to_owned());
    }
    shared
        .writer_token
        .set(tokens[0].clone())
        .expect("set once");
    let body = json!({"name": plan.ledger});
    let request = admin_request(
        shared,
        "setup-ledger",
        Kind::CreateLedger,
        "/v1/ledgers",
        body,
    );
    done.push(send(request).await.0);
    let accounts_path = format!("/v1/ledgers/{}/accounts", plan.ledger);
    let world = rng.uuid();
    let body = json!({"id": world, "code": "world", "currency": "EUR", "normal_side": "debit"});
    let request = admin_request(
        shared,
        "setup-world",
        Kind::OpenAccount,
        &accounts_path,
        body,
    );
    done.push(send(request).await.0);
    let mut wallets = Vec::new();
    for index in 0..plan.wallets {
        let id = rng.uuid();
        let body = json!({"id": id, "code": format!("wallet:{index}"), "currency": "EUR",
                          "normal_side": "credit", "debits_must_not_exceed_credits": true});
        let name = format!("setup-wallet-{index}");
        let request = admin_request(shared, &name, Kind::OpenAccount, &accounts_path, body);
        done.push(send(request).await.0);
        wallets.push(id);
    }
    let workload = Workload {
        ledger: plan.ledger.into(),
        world,
        wallets,
        batch_size: plan.batch_size,
        think_ms: plan.think_ms,
    };
    (done, workload, tokens[1].clone())
}
