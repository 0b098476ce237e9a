//! Replay: the journal, from genesis, through the same engine the server runs (§4.7).
//!
//! Each event is checked for its place in the chain (seq, prev_hash, hash), decoded, checked to
//! be written in its one canonical form and to keep every limit of `domain::limits`, and
//! applied; any refusal is a fault naming the seq. An auditing replay (the verifier's and the
//! integrity check's, [`Replayer::with_provenance_rules`]) also holds each event's actor,
//! request id and Idempotency-Key to their limits.

use std::fmt;

use super::chain::{ChainHead, JournalEvent};
use super::codec::{decode_data, encode_data};
use crate::domain::limits::{self, Violation};
use crate::domain::{AppliedEvent, Book, LedgerEvent, Rejection, Timestamp};

#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub seq: u64,
    pub kind: FaultKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    SeqOutOfOrder {
        expected: u64,
    },
    PrevHashMismatch,
    HashMismatch,
    OtherLedger {
        expected: String,
    },
    TimeWentBackwards,
    Undecodable(String),
    NotCanonical,
    GenesisMissing,
    /// The event breaks a limit of `domain::limits` (found by the types it decodes into, by
    /// `limits::check_event`, by the provenance rules, or by the engine's amount checks).
    LimitBroken(Violation),
    /// The engine refused the event: the state transition or a balance rule is broken.
    Rejected(Rejection),
}

impl FaultKind {
    /// A stable name for reports and tests.
    pub fn code(&self) -> &'static str {
        match self {
            FaultKind::SeqOutOfOrder { .. } => "seq_out_of_order",
            FaultKind::PrevHashMismatch => "prev_hash_mismatch",
            FaultKind::HashMismatch => "hash_mismatch",
            FaultKind::OtherLedger { .. } => "other_ledger",
            FaultKind::TimeWentBackwards => "time_went_backwards",
            FaultKind::Undecodable(_) => "undecodable_event",
            FaultKind::NotCanonical => "not_canonical",
            FaultKind::GenesisMissing => "genesis_missing",
            FaultKind::LimitBroken(_) => "limit_broken",
            FaultKind::Rejected(_) => "illegal_event",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event seq {}: ", self.seq)?;
        match &self.kind {
            FaultKind::SeqOutOfOrder { expected } => {
                write!(f, "out of order, expected seq {expected}")
            }
            FaultKind::PrevHashMismatch => {
                f.write_str("prev_hash is not the previous event's hash")
            }
            FaultKind::HashMismatch => f.write_str("hash is not SHA-256 of the canonical event"),
            FaultKind::OtherLedger { expected } => {
                write!(f, "belongs to another ledger than {expected}")
            }
            FaultKind::TimeWentBackwards => f.write_str("at is earlier than the previous event's"),
            FaultKind::Undecodable(reason) => write!(f, "data does not decode: {reason}"),
            FaultKind::NotCanonical => f.write_str("data is not in its canonical form"),
            FaultKind::GenesisMissing => f.write_str("the first event must be ledger_created"),
            FaultKind::LimitBroken(violation) => {
                write!(
                    f,
                    "breaks the limit {}: {}",
                    violation.limit.name, violation.detail
                )
            }
            FaultKind::Rejected(rejection) => {
                write!(f, "illegal ({}): {rejection}", rejection.code())
            }
        }
    }
}

#[derive(Default)]
pub struct Replayer {
    book: Option<Book>,
    head: Option<ChainHead>,
    last_at: Option<Timestamp>,
    provenance_rules: bool,
}

impl Replayer {
    pub fn new() -> Replayer {
        Replayer::default()
    }

    /// A replay that continues a journal from a known state: `book` as it was after the event
    /// `head` (seq and hash), which happened at `last_at`. For exports of a range after seq 1.
    pub fn from_opening(book: Book, head: ChainHead, last_at: Timestamp) -> Replayer {
        assert_eq!(
            book.last_seq(),
            head.seq,
            "the book and the chain agree on the last seq"
        );
        Replayer {
            book: Some(book),
            head: Some(head),
            last_at: Some(last_at),
            provenance_rules: false,
        }
    }

    /// Also holds every event's `actor`, `request_id` and `idempotency_key` to their limits
    /// (`"system"` exactly for expiries, an API key id otherwise): what a journal the service
    /// wrote satisfies, and what the verifier and the integrity check demand.
    pub fn with_provenance_rules(mut self) -> Replayer {
        self.provenance_rules = true;
        self
    }

    pub fn book(&self) -> Option<&Book> {
        self.book.as_ref()
    }

    pub fn into_book(self) -> Option<Book> {
        self.book
    }

    pub fn head(&self) -> ChainHead {
        self.head.unwrap_or(ChainHead::GENESIS)
    }

    /// Checks and applies the next event of the journal.
    pub fn push(&mut self, event: &JournalEvent) -> Result<AppliedEvent, Fault> {
        let fault = |kind| Fault {
            seq: event.seq,
            kind,
        };
        let head = self.head();
        if event.seq != head.seq + 1 {
            return Err(fault(FaultKind::SeqOutOfOrder {
                expected: head.seq + 1,
            }));
        }
        if event.prev_hash != head.hash {
            return Err(fault(FaultKind::PrevHashMismatch));
        }
        if event.computed_hash() != event.hash {
            return Err(fault(FaultKind::HashMismatch));
        }
        if self.last_at.is_some_and(|last| event.at < last) {
            return Err(fault(FaultKind::TimeWentBackwards));
        }
        if let Some(book) = &self.book {
            if book.name().as_str() != event.ledger {
                return Err(fault(FaultKind::OtherLedger {
                    expected: book.name().to_string(),
                }));
            }
        }
        if self.provenance_rules {
            limits::check_provenance(
                &event.event_type,
                &event.actor,
                event.request_id.as_deref(),
                event.idempotency_key.as_deref(),
            )
            .map_err(|violation| fault(FaultKind::LimitBroken(violation)))?;
        }
        let decoded = self
            .decode(event)
            .map_err(|reason| fault(self.undecodable(event, reason)))?;
        if encode_data(&decoded) != event.data {
            return Err(fault(FaultKind::NotCanonical));
        }
        limits::check_event(&decoded)
            .map_err(|violation| fault(FaultKind::LimitBroken(violation)))?;
        let applied = match (&mut self.book, decoded) {
            (None, LedgerEvent::LedgerCreated(new_ledger)) => {
                let (book, applied) =
                    Book::genesis(new_ledger, event.at).map_err(|r| fault(rejected(r)))?;
                if book.name().as_str() != event.ledger {
                    return Err(fault(FaultKind::OtherLedger {
                        expected: book.name().to_string(),
                    }));
                }
                self.book = Some(book);
                applied
            }
            (None, _) => return Err(fault(FaultKind::GenesisMissing)),
            (Some(book), decoded) => book
                .apply(decoded, event.at)
                .map_err(|r| fault(rejected(r)))?,
        };
        assert_eq!(
            applied.seq, event.seq,
            "the book counts events as the chain does"
        );
        self.head = Some(ChainHead {
            seq: event.seq,
            hash: event.hash,
        });
        self.last_at = Some(event.at);
        Ok(applied)
    }

    /// Why an event does not decode, naming the limit it breaks when there is one: the types
    /// of `domain::names` and `domain::money` name theirs in the message; the few checks the
    /// journal codec words itself (amounts, the two constraint flags) are named here.
    fn undecodable(&self, event: &JournalEvent, reason: String) -> FaultKind {
        if let Some(limit) = limits::named_in(&reason) {
            return FaultKind::LimitBroken(Violation::new(limit, reason));
        }
        let data = &event.data;
        let diagnosed = match event.event_type.as_str() {
            "account_opened" => limits::check_balance_constraint(
                data["debits_must_not_exceed_credits"] == true,
                data["credits_must_not_exceed_debits"] == true,
            )
            .err(),
            "transfer_created" | "transfer_reversed" => {
                let scale = data["currency"]
                    .as_str()
                    .and_then(|code| crate::domain::CurrencyCode::parse(code).ok())
                    .and_then(|code| self.book.as_ref()?.currency(&code))
                    .map(|currency| currency.scale());
                match (data["amount"].as_str(), scale) {
                    (Some(text), Some(scale)) => limits::check_journal_amount(text, scale).err(),
                    _ => None,
                }
            }
            "transfer_posted" => data["amount"]
                .as_str()
                .and_then(|text| crate::domain::money::parse_decimal_text(text).err())
                .map(|error| error.violation()),
            _ => None,
        };
        match diagnosed {
            Some(violation) => FaultKind::LimitBroken(violation),
            None => FaultKind::Undecodable(reason),
        }
    }

    fn decode(&self, event: &JournalEvent) -> Result<LedgerEvent, String> {
        let book = self.book.as_ref();
        let scale_of = |code: &crate::domain::CurrencyCode| {
            book.and_then(|book| book.currency(code)).map(|c| c.scale())
        };
        decode_data(&event.event_type, &event.data, &scale_of).map_err(|error| error.0)
    }
}

/// A refusal of the engine; those that are limits of `domain::limits` (an amount's, a timeout's)
/// are named as such.
fn rejected(rejection: Rejection) -> FaultKind {
    match rejection {
        Rejection::InvalidAmount(error) => FaultKind::LimitBroken(error.violation()),
        Rejection::TimeoutWithoutPending => FaultKind::LimitBroken(Violation::new(
            &limits::TIMEOUT_REQUIRES_PENDING,
            rejection.to_string(),
        )),
        other => FaultKind::Rejected(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::Provenance;
    use crate::domain::money::parse_amount;
    use crate::domain::*;
    use uuid::Uuid;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_800_000_000_000_000 + seconds * 1_000_000)
    }

    fn account(n: u128, code: &str, constraint: BalanceConstraint) -> NewAccount {
        NewAccount {
            id: AccountId::new(Uuid::from_u128(n)),
            code: AccountCode::parse(code).unwrap(),
            currency: Currency::iso("EUR").unwrap(),
            normal_side: NormalSide::Credit,
            constraint,
            metadata: Metadata::default(),
        }
    }

    fn transfer(n: u128, debit: u128, credit: u128, amount: &str, pending: bool) -> NewTransfer {
        NewTransfer {
            id: TransferId::new(Uuid::from_u128(n)),
            debit_account_id: AccountId::new(Uuid::from_u128(debit)),
            credit_account_id: AccountId::new(Uuid::from_u128(credit)),
            amount: parse_amount(amount, 2).unwrap(),
            currency: CurrencyCode::parse("EUR").unwrap(),
            code: None,
            reference: Some(Reference::parse("ref-1").unwrap()),
            description: None,
            metadata: Metadata::parse(serde_json::json!({"n": 1.5, "tags": ["a"]})).unwrap(),
            pending,
            timeout_seconds: pending.then_some(60),
            reverses: None,
        }
    }

    /// Runs commands through a book, seals their events, and returns the book and the journal.
    fn run(commands: &[Command]) -> (Book, Vec<JournalEvent>) {
        let name = LedgerName::parse("main").unwrap();
        let new_ledger = NewLedger {
            name: name.clone(),
            assets: vec![],
            metadata: Metadata::default(),
        };
        let (mut book, genesis) = Book::genesis(new_ledger, at(0)).unwrap();
        let mut head = ChainHead::GENESIS;
        let mut journal = vec![head.seal(&name, &genesis, &Provenance::system())];
        for (index, command) in commands.iter().enumerate() {
            let provenance = Provenance {
                actor: "key-1".into(),
                request_id: Some(format!("r{index}")),
                idempotency_key: None,
            };
            if let Ok(events) = book.execute(command, at(index as i64 + 1)) {
                journal.extend(
                    events
                        .iter()
                        .map(|applied| head.seal(&name, applied, &provenance)),
                );
            }
        }
        (book, journal)
    }

    fn sample_commands() -> Vec<Command> {
        let reversal = ReversalRequest {
            id: TransferId::new(Uuid::from_u128(30)),
            amount: Some("4".parse().unwrap()),
            code: None,
            reference: None,
            description: None,
            metadata: Metadata::default(),
        };
        vec![
            Command::OpenAccount(account(1, "world", BalanceConstraint::None)),
            Command::OpenAccount(account(
                2,
                "wallet",
                BalanceConstraint::DebitsMustNotExceedCredits,
            )),
            Command::CreateTransfer(transfer(10, 1, 2, "100.00", false)),
            Command::CreateTransfer(transfer(11, 2, 1, "500", false)),
            Command::CreateTransfer(transfer(12, 2, 1, "30.5", true)),
            Command::PostTransfer {
                id: TransferId::new(Uuid::from_u128(12)),
                amount: Some("20".parse().unwrap()),
            },
            Command::ReverseTransfer {
                id: TransferId::new(Uuid::from_u128(10)),
                reversal,
            },
            Command::FreezeAccount(AccountId::new(Uuid::from_u128(2))),
        ]
    }

    #[test]
    fn replaying_the_journal_reproduces_every_balance_and_state() {
        let (book, journal) = run(&sample_commands());
        assert_eq!(
            journal.len(),
            8,
            "one command was refused for insufficient funds"
        );
        let mut replayer = Replayer::new();
        for event in &journal {
            let round_tripped = JournalEvent::from_json(&event.to_json()).unwrap();
            replayer.push(&round_tripped).unwrap();
        }
        let replayed = replayer.book().unwrap();
        for account in book.accounts() {
            assert_eq!(replayed.account(account.id), Some(account));
        }
        for transfer in book.transfers() {
            assert_eq!(replayed.transfer(transfer.id), Some(transfer));
        }
        let wallet = replayed
            .account(AccountId::new(Uuid::from_u128(2)))
            .unwrap();
        assert_eq!(wallet.balances.posted_credits.to_string(), "100.00");
        assert_eq!(wallet.balances.posted_debits.to_string(), "24.00");
        assert_eq!(wallet.status, AccountStatus::Frozen);
    }

    #[test]
    fn a_changed_amount_breaks_the_hash_at_its_seq() {
        let (_, mut journal) = run(&sample_commands());
        journal[3].data["amount"] = serde_json::json!("1000.00");
        let mut replayer = Replayer::new();
        let fault = journal
            .iter()
            .find_map(|event| replayer.push(event).err())
            .unwrap();
        assert_eq!((fault.seq, fault.kind.code()), (4, "hash_mismatch"));
    }

    #[test]
    fn a_rehashed_illegal_event_is_caught_by_the_engine() {
        let (_, journal) = run(&sample_commands());
        // Re-chain a journal where the wallet's first credit is gone: its later debits overdraw it.
        let mut forged = journal.clone();
        forged.remove(3);
        let mut head = ChainHead::GENESIS;
        for (index, event) in forged.iter_mut().enumerate() {
            event.seq = index as u64 + 1;
            event.prev_hash = head.hash;
            event.hash = event.computed_hash();
            head = ChainHead {
                seq: event.seq,
                hash: event.hash,
            };
        }
        let mut replayer = Replayer::new();
        let fault = forged
            .iter()
            .find_map(|event| replayer.push(event).err())
            .unwrap();
        assert_eq!(fault.seq, 4);
        assert_eq!(
            fault.kind,
            FaultKind::Rejected(Rejection::InsufficientFunds(AccountId::new(
                Uuid::from_u128(2)
            )))
        );
    }
}
