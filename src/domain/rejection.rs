//! Why the ledger refuses a command. Each rejection has a stable snake_case code (§8); the HTTP
//! layer maps codes to statuses in one place.

use std::fmt;

use rust_decimal::Decimal;

use super::money::{AmountError, CurrencyCode};
use super::names::{AccountCode, AccountId, TransferId};
use super::reconciliation::ReconciliationFault;
use super::state_machine::InvalidTransition;

#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    AccountNotFound(AccountId),
    TransferNotFound(TransferId),
    SameAccount,
    UnknownCurrency(CurrencyCode),
    CurrencyMismatch {
        account_id: AccountId,
        account_currency: CurrencyCode,
        transfer_currency: CurrencyCode,
    },
    InvalidAmount(AmountError),
    AccountFrozen(AccountId),
    AccountClosed(AccountId),
    /// A `debits_must_not_exceed_credits` account would be overdrawn.
    InsufficientFunds(AccountId),
    /// A `credits_must_not_exceed_debits` account would be over-credited.
    CreditsExceedDebits(AccountId),
    BalanceOverflow(AccountId),
    InvalidStateTransition {
        entity: &'static str,
        transition: InvalidTransition,
    },
    /// Posting more than the pending amount.
    PostAmountExceedsPending {
        pending: Decimal,
        requested: Decimal,
    },
    ReversalExceedsPostedAmount {
        reversible: Decimal,
        requested: Decimal,
    },
    TimeoutWithoutPending,
    TransferExistsWithDifferentFields(TransferId),
    AccountExistsWithDifferentFields(AccountId),
    AccountCodeTaken(AccountCode),
    /// Closing an account whose balances do not net to zero, or with something pending.
    AccountNotEmpty(AccountId),
    /// An expiry recorded before the transfer's deadline (only a corrupted journal has one).
    ExpiryBeforeDeadline(TransferId),
    /// A reversal whose accounts or currency do not mirror the original's (only a corrupted
    /// journal has one).
    ReversalDoesNotMirror(TransferId),
    /// A `ledger_created` event anywhere but at seq 1 (only a corrupted journal has one).
    GenesisOutOfPlace,
    /// An item of an atomic batch failed; nothing of the batch applied.
    BatchItemRejected {
        index: usize,
        rejection: Box<Rejection>,
    },
    /// A reconciliation event that its run's state or its own structure refuses.
    Reconciliation(ReconciliationFault),
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::AccountNotFound(_) => "account_not_found",
            Rejection::TransferNotFound(_) => "transfer_not_found",
            Rejection::SameAccount => "same_debit_and_credit_account",
            Rejection::UnknownCurrency(_) => "unknown_currency",
            Rejection::CurrencyMismatch { .. } => "currency_mismatch",
            Rejection::InvalidAmount(_) => "invalid_amount",
            Rejection::AccountFrozen(_) => "account_frozen",
            Rejection::AccountClosed(_) => "account_closed",
            Rejection::InsufficientFunds(_) => "insufficient_funds",
            Rejection::CreditsExceedDebits(_) => "credits_exceed_debits",
            Rejection::BalanceOverflow(_) => "balance_overflow",
            Rejection::InvalidStateTransition { .. } => "invalid_state_transition",
            Rejection::PostAmountExceedsPending { .. } => "post_amount_exceeds_pending",
            Rejection::ReversalExceedsPostedAmount { .. } => "reversal_exceeds_posted_amount",
            Rejection::TimeoutWithoutPending => "timeout_requires_pending",
            Rejection::TransferExistsWithDifferentFields(_) => {
                "transfer_exists_with_different_fields"
            }
            Rejection::AccountExistsWithDifferentFields(_) => {
                "account_exists_with_different_fields"
            }
            Rejection::AccountCodeTaken(_) => "account_code_taken",
            Rejection::AccountNotEmpty(_) => "account_not_empty",
            Rejection::ExpiryBeforeDeadline(_) => "expiry_before_deadline",
            Rejection::ReversalDoesNotMirror(_) => "reversal_does_not_mirror_original",
            Rejection::GenesisOutOfPlace => "genesis_out_of_place",
            Rejection::BatchItemRejected { .. } => "batch_item_rejected",
            Rejection::Reconciliation(fault) => fault.code(),
        }
    }

    /// Every code a rejection can carry (the test of `http::codes` holds each to have its
    /// entry, hence its status, in the catalogue of error codes).
    pub const ALL_CODES: &'static [&'static str] = &[
        "account_not_found",
        "transfer_not_found",
        "same_debit_and_credit_account",
        "unknown_currency",
        "currency_mismatch",
        "invalid_amount",
        "account_frozen",
        "account_closed",
        "insufficient_funds",
        "credits_exceed_debits",
        "balance_overflow",
        "invalid_state_transition",
        "post_amount_exceeds_pending",
        "reversal_exceeds_posted_amount",
        "timeout_requires_pending",
        "transfer_exists_with_different_fields",
        "account_exists_with_different_fields",
        "account_code_taken",
        "account_not_empty",
        "expiry_before_deadline",
        "reversal_does_not_mirror_original",
        "genesis_out_of_place",
        "batch_item_rejected",
        "reconciliation_not_found",
        "reconciliation_already_completed",
        "reconciliation_item_not_found",
        "item_already_resolved",
        "item_not_resolved",
        "invalid_resolution",
        "invalid_reconciliation",
    ];
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::AccountNotFound(id) => {
                write!(f, "account {id} does not exist in this ledger")
            }
            Rejection::TransferNotFound(id) => {
                write!(f, "transfer {id} does not exist in this ledger")
            }
            Rejection::SameAccount => f.write_str("debit and credit account must differ"),
            Rejection::UnknownCurrency(code) => write!(
                f,
                "currency {code} is neither ISO 4217 nor an asset of this ledger"
            ),
            Rejection::CurrencyMismatch {
                account_id,
                account_currency,
                transfer_currency,
            } => write!(
                f,
                "account {account_id} holds {account_currency}, the transfer is in \
                 {transfer_currency}"
            ),
            Rejection::InvalidAmount(error) => error.fmt(f),
            Rejection::AccountFrozen(id) => write!(f, "account {id} is frozen"),
            Rejection::AccountClosed(id) => write!(f, "account {id} is closed"),
            Rejection::InsufficientFunds(id) => write!(
                f,
                "account {id} may not have debits exceed credits; this transfer would overdraw it"
            ),
            Rejection::CreditsExceedDebits(id) => write!(
                f,
                "account {id} may not have credits exceed debits; this transfer would break that"
            ),
            Rejection::BalanceOverflow(id) => write!(
                f,
                "a balance of account {id} would exceed 10^28 minor units"
            ),
            Rejection::InvalidStateTransition { entity, transition } => write!(
                f,
                "cannot {} a {entity} that is {}: {} -> {} is not a transition of the {entity} \
                 state machine",
                transition.action, transition.from, transition.from, transition.to
            ),
            Rejection::PostAmountExceedsPending { pending, requested } => {
                write!(f, "cannot post {requested}: only {pending} is pending")
            }
            Rejection::ReversalExceedsPostedAmount {
                reversible,
                requested,
            } => {
                write!(
                    f,
                    "cannot reverse {requested}: only {reversible} of the posted amount is not \
                     yet reversed"
                )
            }
            Rejection::TimeoutWithoutPending => {
                f.write_str("timeout_seconds applies only to pending transfers")
            }
            Rejection::TransferExistsWithDifferentFields(id) => {
                write!(f, "transfer {id} already exists with different fields")
            }
            Rejection::AccountExistsWithDifferentFields(id) => {
                write!(f, "account {id} already exists with different fields")
            }
            Rejection::AccountCodeTaken(code) => {
                write!(f, "account code {code} is already used in this ledger")
            }
            Rejection::AccountNotEmpty(id) => write!(
                f,
                "account {id} can close only when its balances net to zero and nothing is pending"
            ),
            Rejection::ExpiryBeforeDeadline(id) => {
                write!(f, "transfer {id} expired before its deadline")
            }
            Rejection::ReversalDoesNotMirror(id) => {
                write!(
                    f,
                    "reversal of {id} does not swap the original's accounts in its currency"
                )
            }
            Rejection::GenesisOutOfPlace => {
                f.write_str("ledger_created may only be the first event")
            }
            Rejection::BatchItemRejected { index, rejection } => {
                write!(
                    f,
                    "item {index} of the atomic batch was rejected ({}): {rejection}",
                    rejection.code()
                )
            }
            Rejection::Reconciliation(fault) => fault.fmt(f),
        }
    }
}
