//! The pure domain core: accounts, transfers, their state machines and invariants (§2–§4).
//!
//! No I/O, no clock, no randomness, no async, no serde derives: time and ids are arguments.

pub mod account;
pub mod book;
pub mod event;
pub mod limits;
pub mod money;
pub mod names;
pub mod reconciliation;
pub mod rejection;
pub mod state_machine;
pub mod transfer;

pub use account::{Account, BalanceConstraint, Balances, NewAccount, NormalSide, Side};
pub use book::Book;
pub use event::{AppliedEvent, Command, LedgerEvent, NewLedger, Posting, ReversalRequest};
pub use money::{Currency, CurrencyCode};
pub use names::{
    AccountCode, AccountId, Description, LedgerName, Metadata, Reference, Timestamp, TransferCode,
    TransferId,
};
pub use reconciliation::{ItemResolved, ReconciliationCompleted, ReconciliationId, StatementId};
pub use rejection::Rejection;
pub use state_machine::{AccountAction, AccountStatus, TransferAction, TransferState};
pub use transfer::{NewTransfer, Transfer};
