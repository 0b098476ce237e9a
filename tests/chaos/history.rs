//! What the clients did: every request, every attempt, every final answer. Times are
//! microseconds since the run started, all read from one monotonic clock.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Kind {
    CreateKey,
    CreateLedger,
    OpenAccount,
    /// One transfer (pending or posted). Without an Idempotency-Key its body carries an `id`.
    Transfer,
    /// An atomic batch of transfers.
    Batch,
    Post {
        target: Uuid,
    },
    Void {
        target: Uuid,
    },
    Reverse {
        target: Uuid,
    },
}

impl Kind {
    /// The journal events one application of this request writes.
    pub fn expected_events(&self, body: &Value) -> (usize, &'static str) {
        match self {
            Kind::CreateKey => (0, ""),
            Kind::CreateLedger => (1, "ledger_created"),
            Kind::OpenAccount => (1, "account_opened"),
            Kind::Transfer => (1, "transfer_created"),
            Kind::Batch => (
                body["transfers"].as_array().map_or(0, Vec::len),
                "transfer_created",
            ),
            Kind::Post { .. } => (1, "transfer_posted"),
            Kind::Void { .. } => (1, "transfer_voided"),
            Kind::Reverse { .. } => (1, "transfer_reversed"),
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Kind::CreateKey => "create_key",
            Kind::CreateLedger => "create_ledger",
            Kind::OpenAccount => "open_account",
            Kind::Transfer => "transfer",
            Kind::Batch => "atomic_batch",
            Kind::Post { .. } => "post",
            Kind::Void { .. } => "void",
            Kind::Reverse { .. } => "reverse",
        }
    }

    pub fn is_write(&self) -> bool {
        !matches!(self, Kind::CreateKey)
    }
}

/// A request sent again on purpose, after the original had its final answer (§6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Probe {
    /// Same Idempotency-Key, same body: the original response, byte for byte, replayed.
    SameKeySameBody,
    /// Same Idempotency-Key, another body: `422 idempotency_key_reused`.
    SameKeyOtherBody,
    /// Same transfer `id` and fields, no key: `200` with the existing transfer.
    SameIdSameFields,
    /// Same transfer `id`, other fields, no key: `409 transfer_exists_with_different_fields`.
    SameIdOtherFields,
    /// The same request (same key, same body) sent at the same moment as the original: one of
    /// the two applies it, both get the same answer.
    ConcurrentDuplicate,
}

#[derive(Clone, Debug, Serialize)]
pub enum Outcome {
    Response { status: u16, code: Option<String> },
    Timeout,
    Connection(String),
}

#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// Its `X-Request-Id`, which the journal records with every event it caused.
    pub request_id: String,
    pub sent_us: u64,
    pub took_us: u64,
    pub outcome: Outcome,
}

/// The answer a client acts upon: any status but a retryable one.
#[derive(Clone, Debug, Serialize)]
pub struct Final {
    pub status: u16,
    pub replayed: bool,
    pub at_us: u64,
    /// The body exactly as received.
    pub body: String,
    #[serde(skip)]
    pub json: Value,
}

impl Final {
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Request {
    /// Unique in the run; `X-Request-Id` is `<name>.<attempt>`.
    pub name: String,
    pub kind: Kind,
    /// For a probe: what it probes and the name of the original request.
    pub probe: Option<(Probe, String)>,
    pub path: String,
    pub admin: bool,
    pub key: Option<String>,
    pub body: Value,
    pub invoked_us: u64,
    pub attempts: Vec<Attempt>,
    pub fin: Option<Final>,
}

impl Request {
    /// The attempt number of an `X-Request-Id` of this request.
    pub fn attempt_of(request_id: &str) -> Option<(&str, usize)> {
        let (name, attempt) = request_id.rsplit_once('.')?;
        Some((name, attempt.parse().ok()?))
    }
}

/// xorshift64*: a small deterministic generator, seeded once per run (printed, so the run's
/// choices can be made again with `CHAOS_SEED`).
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        // SplitMix64 of the seed: nearby seeds give unrelated streams, and never zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    pub fn percent(&mut self, chance: u64) -> bool {
        self.next_u64() % 100 < chance
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }

    /// A version 4 UUID made of this generator's bits.
    pub fn uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// A number a run's profile takes from the environment (`CHAOS_*`, `FAILOVER_*`), if set.
pub fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|value| {
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {value:?}"))
    })
}
