//! Transfers: money moving from one account's debit side to another's credit side (§2).

use rust_decimal::Decimal;

use super::money::CurrencyCode;
use super::names::{
    AccountId, Description, Metadata, Reference, Timestamp, TransferCode, TransferId,
};
use super::state_machine::TransferState;

/// The fields a client chooses for a transfer; also the data of `transfer_created` and of
/// `transfer_reversed` (then with `reverses` set).
#[derive(Clone, Debug, PartialEq)]
pub struct NewTransfer {
    pub id: TransferId,
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    /// Positive, at the currency's scale.
    pub amount: Decimal,
    pub currency: CurrencyCode,
    pub code: Option<TransferCode>,
    pub reference: Option<Reference>,
    pub description: Option<Description>,
    pub metadata: Metadata,
    pub pending: bool,
    /// Only for pending transfers: expire this many seconds after creation.
    pub timeout_seconds: Option<u32>,
    /// The transfer this one reverses.
    pub reverses: Option<TransferId>,
}

impl NewTransfer {
    /// Longest timeout a pending transfer may ask for: 400 days (limit `timeout_seconds`).
    pub const MAX_TIMEOUT_SECONDS: u32 = super::limits::MAX_TIMEOUT_SECONDS;
}

#[derive(Clone, Debug, PartialEq)]
pub struct Transfer {
    pub id: TransferId,
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    pub amount: Decimal,
    pub currency: CurrencyCode,
    pub code: Option<TransferCode>,
    pub reference: Option<Reference>,
    pub description: Option<Description>,
    pub metadata: Metadata,
    pub pending: bool,
    pub timeout_seconds: Option<u32>,
    pub expires_at: Option<Timestamp>,
    pub state: TransferState,
    pub reverses: Option<TransferId>,
    /// Amount that reached the posted balances: `amount` when created posted, the posted part
    /// of a pending transfer once posted, zero otherwise.
    pub posted_amount: Decimal,
    /// Sum of the reversals of this transfer; never above `posted_amount`.
    pub reversed_amount: Decimal,
    pub created_at: Timestamp,
    /// The journal seq of the event that created it.
    pub journal_seq: u64,
}

impl Transfer {
    pub fn created(new: NewTransfer, at: Timestamp, seq: u64) -> Transfer {
        let zero = Decimal::new(0, new.amount.scale());
        let (state, posted_amount) = if new.pending {
            (TransferState::Pending, zero)
        } else {
            (TransferState::Posted, new.amount)
        };
        let expires_at = match (new.pending, new.timeout_seconds) {
            (true, Some(seconds)) if seconds > 0 => Some(at.plus_seconds(seconds)),
            _ => None,
        };
        Transfer {
            id: new.id,
            debit_account_id: new.debit_account_id,
            credit_account_id: new.credit_account_id,
            amount: new.amount,
            currency: new.currency,
            code: new.code,
            reference: new.reference,
            description: new.description,
            metadata: new.metadata,
            pending: new.pending,
            timeout_seconds: new.timeout_seconds,
            expires_at,
            state,
            reverses: new.reverses,
            posted_amount,
            reversed_amount: zero,
            created_at: at,
            journal_seq: seq,
        }
    }

    /// Whether creating `new` again would describe this very transfer (a natural-key retry).
    pub fn was_created_as(&self, new: &NewTransfer) -> bool {
        self.id == new.id
            && self.debit_account_id == new.debit_account_id
            && self.credit_account_id == new.credit_account_id
            && self.amount == new.amount
            && self.currency == new.currency
            && self.code == new.code
            && self.reference == new.reference
            && self.description == new.description
            && self.metadata == new.metadata
            && self.pending == new.pending
            && self.timeout_seconds == new.timeout_seconds
            && self.reverses == new.reverses
    }

    /// What may still be reversed.
    pub fn reversible_amount(&self) -> Decimal {
        self.posted_amount - self.reversed_amount
    }

    pub fn assert_invariants(&self) {
        assert!(self.amount > Decimal::ZERO, "transfer {} amount", self.id);
        assert_ne!(
            self.debit_account_id, self.credit_account_id,
            "transfer {}",
            self.id
        );
        assert!(
            self.posted_amount <= self.amount,
            "transfer {} posted",
            self.id
        );
        assert!(
            self.reversed_amount <= self.posted_amount,
            "transfer {} reversed",
            self.id
        );
        assert!(
            !self.reversed_amount.is_sign_negative(),
            "transfer {}",
            self.id
        );
    }
}
