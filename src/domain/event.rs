//! Commands the ledger executes and the events it records (§5).

use rust_decimal::Decimal;

use super::account::{Balances, NewAccount, Side};
use super::money::Currency;
use super::names::{
    AccountId, Description, LedgerName, Metadata, Reference, Timestamp, TransferCode, TransferId,
};
use super::reconciliation::{ItemResolved, ReconciliationCompleted};
use super::transfer::NewTransfer;

/// The data of a ledger's first event.
#[derive(Clone, Debug, PartialEq)]
pub struct NewLedger {
    pub name: LedgerName,
    /// Custom assets; ISO 4217 currencies need no declaration.
    pub assets: Vec<Currency>,
    pub metadata: Metadata,
}

impl NewLedger {
    /// Most custom assets of a ledger (limit `assets_count`).
    pub const MAX_ASSETS: usize = super::limits::MAX_ASSETS;
}

/// Every state change of a ledger: the `type` and `data` of a journal event.
#[derive(Clone, Debug, PartialEq)]
pub enum LedgerEvent {
    LedgerCreated(NewLedger),
    AccountOpened(NewAccount),
    AccountFrozen(AccountId),
    AccountUnfrozen(AccountId),
    AccountClosed(AccountId),
    TransferCreated(NewTransfer),
    /// A pending transfer posted for `amount` (at most its amount; the rest is released).
    TransferPosted {
        id: TransferId,
        amount: Decimal,
    },
    TransferVoided(TransferId),
    TransferExpired(TransferId),
    /// A new transfer (with `reverses` set) undoing part or all of a posted one.
    TransferReversed(NewTransfer),
    /// A reconciliation run completed: what it compared and what it found (§7).
    ReconciliationCompleted(Box<ReconciliationCompleted>),
    /// A person resolved (or took back the resolution of) an item of a completed run.
    ReconciliationItemResolved(ItemResolved),
}

impl LedgerEvent {
    /// The journal `type` of this event.
    pub fn type_name(&self) -> &'static str {
        match self {
            LedgerEvent::LedgerCreated(_) => "ledger_created",
            LedgerEvent::AccountOpened(_) => "account_opened",
            LedgerEvent::AccountFrozen(_) => "account_frozen",
            LedgerEvent::AccountUnfrozen(_) => "account_unfrozen",
            LedgerEvent::AccountClosed(_) => "account_closed",
            LedgerEvent::TransferCreated(_) => "transfer_created",
            LedgerEvent::TransferPosted { .. } => "transfer_posted",
            LedgerEvent::TransferVoided(_) => "transfer_voided",
            LedgerEvent::TransferExpired(_) => "transfer_expired",
            LedgerEvent::TransferReversed(_) => "transfer_reversed",
            LedgerEvent::ReconciliationCompleted(_) => "reconciliation_completed",
            LedgerEvent::ReconciliationItemResolved(_) => "reconciliation_item_resolved",
        }
    }
}

/// A change of one account's balances caused by one event. Postings are append-only; the
/// account's four fields are the sums of its postings' deltas (§4.3).
#[derive(Clone, Debug, PartialEq)]
pub struct Posting {
    pub account_id: AccountId,
    pub transfer_id: TransferId,
    pub side: Side,
    pub pending_delta: Decimal,
    pub posted_delta: Decimal,
    /// The account's balances right after this posting: the running balance of the audit trail.
    pub balances_after: Balances,
}

/// An event the book accepted, with its place in the journal and its postings.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedEvent {
    pub seq: u64,
    pub at: Timestamp,
    pub event: LedgerEvent,
    /// Empty, or one debit and one credit posting of equal and opposite effect.
    pub postings: Vec<Posting>,
}

/// Fields of a reversal the client chooses; accounts and currency come from the original.
#[derive(Clone, Debug, PartialEq)]
pub struct ReversalRequest {
    pub id: TransferId,
    /// `None` reverses what remains of the posted amount. Syntax checked, scale not yet.
    pub amount: Option<Decimal>,
    pub code: Option<TransferCode>,
    pub reference: Option<Reference>,
    pub description: Option<Description>,
    pub metadata: Metadata,
}

/// What a client (or the service itself, for expiry) asks the ledger to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    OpenAccount(NewAccount),
    CreateTransfer(NewTransfer),
    /// All transfers apply, or none do.
    CreateTransfersAtomically(Vec<NewTransfer>),
    /// `amount: None` posts the full pending amount. Syntax checked, scale not yet.
    PostTransfer {
        id: TransferId,
        amount: Option<Decimal>,
    },
    VoidTransfer(TransferId),
    ReverseTransfer {
        id: TransferId,
        reversal: ReversalRequest,
    },
    FreezeAccount(AccountId),
    UnfreezeAccount(AccountId),
    CloseAccount(AccountId),
    /// Expire these pending transfers, whose deadline has passed, in this order.
    ExpireTransfers(Vec<TransferId>),
    /// Record the completion of a reconciliation run whose items are computed.
    CompleteReconciliation(Box<ReconciliationCompleted>),
    /// Resolve an item; an `adjust` first creates its correcting transfer, atomically.
    ResolveReconciliationItem {
        resolution: ItemResolved,
        adjustment: Option<NewTransfer>,
    },
}

impl Command {
    /// Largest number of transfers in one atomic batch (§8).
    pub const MAX_BATCH_TRANSFERS: usize = 1000;
}
