//! Accounts and their four balance fields (§2).

use rust_decimal::Decimal;

use super::money::{checked_add, Currency};
use super::names::{AccountCode, AccountId, Metadata, Timestamp};
use super::state_machine::AccountStatus;

/// The side on which an account's balance grows: `debit` for assets and expenses, `credit`
/// for liabilities, equity and revenue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NormalSide {
    Debit,
    Credit,
}

impl NormalSide {
    pub const ALL: [NormalSide; 2] = [NormalSide::Debit, NormalSide::Credit];

    pub fn as_str(&self) -> &'static str {
        match self {
            NormalSide::Debit => "debit",
            NormalSide::Credit => "credit",
        }
    }

    pub fn parse(text: &str) -> Option<NormalSide> {
        NormalSide::ALL
            .into_iter()
            .find(|side| side.as_str() == text)
    }
}

/// At most one balance constraint per account (§2). Pending amounts count (§4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BalanceConstraint {
    None,
    /// `pending_debits + posted_debits <= posted_credits`: a wallet cannot be overdrawn.
    DebitsMustNotExceedCredits,
    /// `pending_credits + posted_credits <= posted_debits`.
    CreditsMustNotExceedDebits,
}

impl BalanceConstraint {
    /// From the two flags of the API; `None` when both are set.
    pub fn from_flags(
        debits_must_not_exceed_credits: bool,
        credits_must_not_exceed_debits: bool,
    ) -> Option<BalanceConstraint> {
        match (
            debits_must_not_exceed_credits,
            credits_must_not_exceed_debits,
        ) {
            (false, false) => Some(BalanceConstraint::None),
            (true, false) => Some(BalanceConstraint::DebitsMustNotExceedCredits),
            (false, true) => Some(BalanceConstraint::CreditsMustNotExceedDebits),
            (true, true) => None,
        }
    }

    pub fn debits_must_not_exceed_credits(&self) -> bool {
        *self == BalanceConstraint::DebitsMustNotExceedCredits
    }

    pub fn credits_must_not_exceed_debits(&self) -> bool {
        *self == BalanceConstraint::CreditsMustNotExceedDebits
    }

    /// Whether these balances respect the constraint, pending amounts counted.
    pub fn holds_for(&self, balances: &Balances) -> bool {
        match self {
            BalanceConstraint::None => true,
            BalanceConstraint::DebitsMustNotExceedCredits => {
                balances.pending_debits + balances.posted_debits <= balances.posted_credits
            }
            BalanceConstraint::CreditsMustNotExceedDebits => {
                balances.pending_credits + balances.posted_credits <= balances.posted_debits
            }
        }
    }
}

/// Which side of an account a posting touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    pub fn as_str(&self) -> &'static str {
        match self {
            Side::Debit => "debit",
            Side::Credit => "credit",
        }
    }
}

/// The four balance fields, each at the account currency's scale and never negative.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balances {
    pub posted_debits: Decimal,
    pub posted_credits: Decimal,
    pub pending_debits: Decimal,
    pub pending_credits: Decimal,
}

impl Balances {
    pub fn zero(currency: &Currency) -> Balances {
        Balances {
            posted_debits: currency.zero(),
            posted_credits: currency.zero(),
            pending_debits: currency.zero(),
            pending_credits: currency.zero(),
        }
    }

    /// These balances with `pending_delta` and `posted_delta` added on `side`; `None` when a
    /// field would leave the representable range or go negative.
    pub fn moved(
        &self,
        side: Side,
        pending_delta: Decimal,
        posted_delta: Decimal,
    ) -> Option<Balances> {
        let mut next = self.clone();
        let (pending, posted) = match side {
            Side::Debit => (&mut next.pending_debits, &mut next.posted_debits),
            Side::Credit => (&mut next.pending_credits, &mut next.posted_credits),
        };
        *pending = checked_add(*pending, pending_delta)?;
        *posted = checked_add(*posted, posted_delta)?;
        (!pending.is_sign_negative() && !posted.is_sign_negative()).then_some(next)
    }

    pub fn is_zero_net(&self) -> bool {
        self.posted_debits == self.posted_credits
            && self.pending_debits.is_zero()
            && self.pending_credits.is_zero()
    }

    /// The posted balance on the account's normal side.
    pub fn posted_balance(&self, normal_side: NormalSide) -> Decimal {
        match normal_side {
            NormalSide::Debit => self.posted_debits - self.posted_credits,
            NormalSide::Credit => self.posted_credits - self.posted_debits,
        }
    }

    /// The posted balance minus pending amounts that would reduce it.
    pub fn available_balance(&self, normal_side: NormalSide) -> Decimal {
        match normal_side {
            NormalSide::Debit => self.posted_balance(normal_side) - self.pending_credits,
            NormalSide::Credit => self.posted_balance(normal_side) - self.pending_debits,
        }
    }
}

/// What a client asks for when opening an account; also the data of `account_opened`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAccount {
    pub id: AccountId,
    pub code: AccountCode,
    pub currency: Currency,
    pub normal_side: NormalSide,
    pub constraint: BalanceConstraint,
    pub metadata: Metadata,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub id: AccountId,
    pub code: AccountCode,
    pub currency: Currency,
    pub normal_side: NormalSide,
    pub constraint: BalanceConstraint,
    pub status: AccountStatus,
    pub metadata: Metadata,
    pub balances: Balances,
    pub created_at: Timestamp,
    /// The journal seq of its `account_opened` event.
    pub opened_seq: u64,
}

impl Account {
    pub fn opened(new: NewAccount, at: Timestamp, seq: u64) -> Account {
        Account {
            balances: Balances::zero(&new.currency),
            id: new.id,
            code: new.code,
            currency: new.currency,
            normal_side: new.normal_side,
            constraint: new.constraint,
            status: AccountStatus::Active,
            metadata: new.metadata,
            created_at: at,
            opened_seq: seq,
        }
    }

    /// Whether opening `new` again would describe this very account (a natural-key retry).
    pub fn was_opened_as(&self, new: &NewAccount) -> bool {
        self.id == new.id
            && self.code == new.code
            && self.currency == new.currency
            && self.normal_side == new.normal_side
            && self.constraint == new.constraint
            && self.metadata == new.metadata
    }

    /// The invariants every stored account satisfies (§4.4, scale of every field).
    pub fn assert_invariants(&self) {
        let scale = self.currency.scale();
        for field in [
            self.balances.posted_debits,
            self.balances.posted_credits,
            self.balances.pending_debits,
            self.balances.pending_credits,
        ] {
            assert_eq!(field.scale(), scale, "balance scale of account {}", self.id);
            assert!(
                !field.is_sign_negative(),
                "negative balance on account {}",
                self.id
            );
        }
        assert!(
            self.constraint.holds_for(&self.balances),
            "constraint broken on account {}",
            self.id
        );
    }
}
