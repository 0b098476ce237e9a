//! The engine: the one place where commands become events and events change state.
//!
//! A `Book` is a ledger's state, whole (replay, verification) or a working set the shell loaded
//! for one batch (the server). Both run the same `execute` and `apply`, so replaying the journal
//! reproduces every balance (§4.7). Everything here is pure: time and ids come in as arguments.
//!
//! `apply` validates an event completely before it mutates anything, so a rejected event leaves
//! the book as it was.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use rust_decimal::Decimal;

use super::account::{Account, NewAccount, Side};
use super::event::{AppliedEvent, Command, LedgerEvent, NewLedger, Posting, ReversalRequest};
use super::money::{amount_at_scale, format_minor_units, minor_units, Currency, CurrencyCode};
use super::names::{AccountCode, AccountId, LedgerName, Timestamp, TransferId};
use super::reconciliation::{
    ItemResolved, ReconciliationCompleted, ReconciliationFault, ReconciliationId, RunRecord,
};
use super::rejection::Rejection;
use super::state_machine::{
    next_account_status, next_transfer_state, AccountAction, AccountStatus, TransferAction,
    TransferState,
};
use super::transfer::{NewTransfer, Transfer};

#[derive(Clone, Debug)]
pub struct Book {
    name: LedgerName,
    custom_assets: HashMap<CurrencyCode, u32>,
    last_seq: u64,
    accounts: HashMap<AccountId, Account>,
    account_ids_by_code: HashMap<AccountCode, AccountId>,
    /// Boxed: a replay of a whole journal holds every transfer, and a table of 280-byte values
    /// doubles in place when it grows (1M transfers peaked at 0.9 GB unboxed, see
    /// docs/PERFORMANCE.md); boxed, only the 8-byte pointers double.
    transfers: HashMap<TransferId, Box<Transfer>>,
    /// Completed reconciliation runs (a working set: those the coming commands name).
    reconciliations: HashMap<ReconciliationId, RunRecord>,
}

/// Which rule an account must satisfy to take part in a balance movement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusRule {
    /// New transfers and posting a pending one: the account must be active.
    MustBeActive,
    /// Reversals: frozen accounts take them, closed ones do not.
    MustNotBeClosed,
    /// Voids and expiries release reservations whatever the status.
    Any,
}

impl Book {
    /// Starts a ledger: validates its first event and returns the book with it applied.
    pub fn genesis(
        new_ledger: NewLedger,
        at: Timestamp,
    ) -> Result<(Book, AppliedEvent), Rejection> {
        for asset in &new_ledger.assets {
            if Currency::iso(asset.code().as_str()).is_some() {
                return Err(Rejection::UnknownCurrency(asset.code().clone()));
            }
        }
        let mut book = Book::resume(new_ledger.name.clone(), &new_ledger.assets, 0);
        let applied = book.record(LedgerEvent::LedgerCreated(new_ledger), at, Vec::new());
        Ok((book, applied))
    }

    /// A working set of a stored ledger whose journal ends at `last_seq`. The shell then inserts
    /// every account and transfer the coming commands may touch.
    pub fn resume(name: LedgerName, custom_assets: &[Currency], last_seq: u64) -> Book {
        Book {
            name,
            custom_assets: custom_assets
                .iter()
                .map(|asset| (asset.code().clone(), asset.scale()))
                .collect(),
            last_seq,
            accounts: HashMap::new(),
            account_ids_by_code: HashMap::new(),
            transfers: HashMap::new(),
            reconciliations: HashMap::new(),
        }
    }

    pub fn insert_loaded_account(&mut self, account: Account) {
        self.account_ids_by_code
            .insert(account.code.clone(), account.id);
        self.accounts.insert(account.id, account);
    }

    pub fn insert_loaded_transfer(&mut self, transfer: Transfer) {
        self.transfers.insert(transfer.id, Box::new(transfer));
    }

    /// A completed run, with the current resolution of the items the coming commands name.
    pub fn insert_loaded_reconciliation(&mut self, id: ReconciliationId, run: RunRecord) {
        self.reconciliations.insert(id, run);
    }

    pub fn reconciliation(&self, id: ReconciliationId) -> Option<&RunRecord> {
        self.reconciliations.get(&id)
    }

    pub fn name(&self) -> &LedgerName {
        &self.name
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(&id)
    }

    pub fn transfer(&self, id: TransferId) -> Option<&Transfer> {
        self.transfers.get(&id).map(Box::as_ref)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// The accounts of this book, by value: for a caller that keeps them after the book is done.
    pub fn into_accounts(self) -> impl Iterator<Item = Account> {
        self.accounts.into_values()
    }

    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.values().map(Box::as_ref)
    }

    /// Per currency, the four balances summed over every account, in minor units (an `i128`:
    /// each balance is below 10^28 minor units, their sums need not be). Currencies in code
    /// order. `Err` names a currency whose accounts disagree on its scale (or, beyond any
    /// ledger that fits in memory, whose sums leave the `i128` range).
    pub fn currency_totals(&self) -> Result<BTreeMap<CurrencyCode, CurrencyTotals>, String> {
        let mut totals: BTreeMap<CurrencyCode, CurrencyTotals> = BTreeMap::new();
        for account in self.accounts.values() {
            let code = account.currency.code();
            let scale = account.currency.scale();
            let sums = totals.entry(code.clone()).or_insert(CurrencyTotals {
                scale,
                ..CurrencyTotals::default()
            });
            let inconsistent = || format!("the accounts in {code} do not agree on its scale");
            if sums.scale != scale {
                return Err(inconsistent());
            }
            let balances = &account.balances;
            let pairs = [
                (&mut sums.posted_debits, balances.posted_debits),
                (&mut sums.posted_credits, balances.posted_credits),
                (&mut sums.pending_debits, balances.pending_debits),
                (&mut sums.pending_credits, balances.pending_credits),
            ];
            for (sum, value) in pairs {
                let units = minor_units(value, scale).ok_or_else(inconsistent)?;
                *sum = sum
                    .checked_add(units)
                    .ok_or_else(|| format!("the {code} totals leave the i128 range"))?;
            }
        }
        Ok(totals)
    }

    /// The currency of this code in this ledger: a custom asset or an ISO 4217 currency.
    pub fn currency(&self, code: &CurrencyCode) -> Option<Currency> {
        match self.custom_assets.get(code) {
            Some(scale) => Currency::new(code.clone(), *scale).ok(),
            None => Currency::iso(code.as_str()),
        }
    }

    /// Decides what a command means and applies it. `Ok` with no events means the command
    /// repeated an existing account or transfer with identical fields (a natural-key retry).
    pub fn execute(
        &mut self,
        command: &Command,
        at: Timestamp,
    ) -> Result<Vec<AppliedEvent>, Rejection> {
        match command {
            Command::OpenAccount(new) => self.open_account(new, at),
            Command::CreateTransfer(new) => self.create_transfer(new, at),
            Command::CreateTransfersAtomically(transfers) => {
                self.create_transfers_atomically(transfers, at)
            }
            Command::PostTransfer { id, amount } => self.post_transfer(*id, *amount, at),
            Command::VoidTransfer(id) => self.resolve_pending(*id, TransferAction::Void, at),
            Command::ReverseTransfer { id, reversal } => self.reverse_transfer(*id, reversal, at),
            Command::FreezeAccount(id) => self.apply_one(LedgerEvent::AccountFrozen(*id), at),
            Command::UnfreezeAccount(id) => self.apply_one(LedgerEvent::AccountUnfrozen(*id), at),
            Command::CloseAccount(id) => self.apply_one(LedgerEvent::AccountClosed(*id), at),
            Command::ExpireTransfers(ids) => Ok(self.expire_transfers(ids, at)),
            Command::CompleteReconciliation(completed) => {
                self.apply_one(LedgerEvent::ReconciliationCompleted(completed.clone()), at)
            }
            Command::ResolveReconciliationItem {
                resolution,
                adjustment,
            } => self.resolve_reconciliation_item(resolution, adjustment.as_ref(), at),
        }
    }

    fn apply_one(
        &mut self,
        event: LedgerEvent,
        at: Timestamp,
    ) -> Result<Vec<AppliedEvent>, Rejection> {
        self.apply(event, at).map(|applied| vec![applied])
    }

    fn open_account(
        &mut self,
        new: &NewAccount,
        at: Timestamp,
    ) -> Result<Vec<AppliedEvent>, Rejection> {
        match self.accounts.get(&new.id) {
            Some(existing) if existing.was_opened_as(new) => Ok(Vec::new()),
            Some(_) => Err(Rejection::AccountExistsWithDifferentFields(new.id)),
            None => self.apply_one(LedgerEvent::AccountOpened(new.clone()), at),
        }
    }

    fn create_transfer(
        &mut self,
        new: &NewTransfer,
        at: Timestamp,
    ) -> Result<Vec<AppliedEvent>, Rejection> {
        assert!(
            new.reverses.is_none(),
            "reversals go through Command::ReverseTransfer"
        );
        match self.transfers.get(&new.id) {
            Some(existing) if existing.was_created_as(new) => Ok(Vec::new()),
            Some(_) => Err(Rejection::TransferExistsWithDifferentFields(new.id)),
            None => self.apply_one(LedgerEvent::TransferCreated(new.clone()), at),
        }
    }

    fn create_transfers_atomically(
        &mut self,
        transfers: &[NewTransfer],
        at: Timestamp,
    ) -> Result<Vec<AppliedEvent>, Rejection> {
        assert!(transfers.len() <= Command::MAX_BATCH_TRANSFERS);
        let snapshot = self.snapshot_for(transfers);
        let mut applied = Vec::with_capacity(transfers.len());
        for (index, new) in transfers.iter().enumerate() {
            match self.create_transfer(new, at) {
                Ok(events) => applied.extend(events),
                Err(rejection) => {
                    self.restore(snapshot);
                    return Err(Rejection::BatchItemRejected {
                        index,
                        rejection: Box::new(rejection),
                    });
                }
            }
        }
        Ok(applied)
    }

    fn post_transfer(
        &mut self,
        id: TransferId,
        amount: Option<Decimal>,
        at: Timestamp,
    ) -> Result<Vec<AppliedEvent>, Rejection> {
        let transfer = self
            .transfers
            .get(&id)
            .ok_or(Rejection::TransferNotFound(id))?;
        self.check_transfer_transition(transfer, TransferAction::Post, at)?;
        let amount = match amount {
            None => transfer.amount,
            Some(requested) => amount_at_scale(requested, transfer.amount.scale())
                .map_err(Rejection::InvalidAmount)?,
        };
        self.apply_one(LedgerEvent::TransferPosted { id, amount }, at)
    }

    fn resolve_pending(
        &mut self,
        id: TransferId,
        action: TransferAction,
        at: Timestamp,
    ) -> Result<Vec<AppliedEvent>, Rejection> {
        let event = match action {
            TransferAction::Void => LedgerEvent::TransferVoided(id),
            TransferAction::Expire => LedgerEvent::TransferExpired(id),
            TransferAction::Post | TransferAction::Reverse => unreachable!("not a release"),
        };
        self.apply_one(event, at)
    }

    fn reverse_transfer(
        &mut self,
        id: TransferId,
        reversal: &ReversalRequest,
        at: Timestamp,
    ) -> Result<Vec<AppliedEvent>, Rejection> {
        let original = self
            .transfers
            .get(&id)
            .ok_or(Rejection::TransferNotFound(id))?;
        if let Some(existing) = self.transfers.get(&reversal.id) {
            return if is_retry_of_reversal(existing, id, reversal) {
                Ok(Vec::new())
            } else {
                Err(Rejection::TransferExistsWithDifferentFields(reversal.id))
            };
        }
        self.check_transfer_transition(original, TransferAction::Reverse, at)?;
        let reversible = original.reversible_amount();
        let amount = match reversal.amount {
            None => reversible,
            Some(requested) => amount_at_scale(requested, original.amount.scale())
                .map_err(Rejection::InvalidAmount)?,
        };
        if amount > reversible || amount.is_zero() {
            return Err(Rejection::ReversalExceedsPostedAmount {
                reversible,
                requested: amount,
            });
        }
        let new = NewTransfer {
            id: reversal.id,
            debit_account_id: original.credit_account_id,
            credit_account_id: original.debit_account_id,
            amount,
            currency: original.currency.clone(),
            code: reversal.code.clone(),
            reference: reversal.reference.clone(),
            description: reversal.description.clone(),
            metadata: reversal.metadata.clone(),
            pending: false,
            timeout_seconds: None,
            reverses: Some(id),
        };
        self.apply_one(LedgerEvent::TransferReversed(new), at)
    }

    /// A resolution, after its correcting transfer for an `adjust`: both apply, or neither.
    fn resolve_reconciliation_item(
        &mut self,
        resolution: &ItemResolved,
        adjustment: Option<&NewTransfer>,
        at: Timestamp,
    ) -> Result<Vec<AppliedEvent>, Rejection> {
        let event = LedgerEvent::ReconciliationItemResolved(resolution.clone());
        let Some(adjustment) = adjustment else {
            return self.apply_one(event, at);
        };
        assert_eq!(
            resolution.transfer_id,
            Some(adjustment.id),
            "an adjustment links its own correcting transfer"
        );
        let snapshot = self.snapshot_for(std::slice::from_ref(adjustment));
        let mut applied = self.apply_one(LedgerEvent::TransferCreated(adjustment.clone()), at)?;
        match self.apply(event, at) {
            Ok(resolved) => {
                applied.push(resolved);
                Ok(applied)
            }
            Err(rejection) => {
                self.restore(snapshot);
                Err(rejection)
            }
        }
    }

    /// Expires what can be expired; the shell chose these ids by their deadline, so a refusal
    /// means another command resolved the transfer first, and it is skipped.
    fn expire_transfers(&mut self, ids: &[TransferId], at: Timestamp) -> Vec<AppliedEvent> {
        ids.iter()
            .filter_map(|id| self.apply(LedgerEvent::TransferExpired(*id), at).ok())
            .collect()
    }

    /// Validates one event against the current state and applies it.
    pub fn apply(&mut self, event: LedgerEvent, at: Timestamp) -> Result<AppliedEvent, Rejection> {
        let postings = match &event {
            LedgerEvent::LedgerCreated(_) => return Err(Rejection::GenesisOutOfPlace),
            LedgerEvent::AccountOpened(new) => {
                self.apply_account_opened(new, at)?;
                Vec::new()
            }
            LedgerEvent::AccountFrozen(id) => {
                self.apply_account_action(*id, AccountAction::Freeze)?
            }
            LedgerEvent::AccountUnfrozen(id) => {
                self.apply_account_action(*id, AccountAction::Unfreeze)?
            }
            LedgerEvent::AccountClosed(id) => {
                self.apply_account_action(*id, AccountAction::Close)?
            }
            LedgerEvent::TransferCreated(new) => self.apply_transfer_created(new, at)?,
            LedgerEvent::TransferPosted { id, amount } => {
                self.apply_transfer_posted(*id, *amount, at)?
            }
            LedgerEvent::TransferVoided(id) => self.apply_release(*id, TransferAction::Void, at)?,
            LedgerEvent::TransferExpired(id) => {
                self.apply_release(*id, TransferAction::Expire, at)?
            }
            LedgerEvent::TransferReversed(new) => self.apply_transfer_reversed(new, at)?,
            LedgerEvent::ReconciliationCompleted(completed) => {
                self.apply_reconciliation_completed(completed)?;
                Vec::new()
            }
            LedgerEvent::ReconciliationItemResolved(resolution) => {
                self.apply_item_resolved(resolution)?;
                Vec::new()
            }
        };
        Ok(self.record(event, at, postings))
    }

    fn apply_reconciliation_completed(
        &mut self,
        completed: &ReconciliationCompleted,
    ) -> Result<(), Rejection> {
        let fault = Rejection::Reconciliation;
        completed.check_structure().map_err(fault)?;
        let account = self
            .accounts
            .get(&completed.account_id)
            .ok_or(Rejection::AccountNotFound(completed.account_id))?;
        if completed.cutoff_seq >= self.next_seq() {
            return Err(fault(ReconciliationFault::CutoffNotInThePast {
                cutoff_seq: completed.cutoff_seq,
                event_seq: self.next_seq(),
            }));
        }
        if account.currency.code() != &completed.currency {
            return Err(Rejection::CurrencyMismatch {
                account_id: account.id,
                account_currency: account.currency.code().clone(),
                transfer_currency: completed.currency.clone(),
            });
        }
        let scale = account.currency.scale();
        let balances = &completed.balances;
        let amounts = completed
            .totals
            .iter()
            .flat_map(|total| [total.statement_amount, total.ledger_amount])
            .chain([balances.book_opening, balances.book_closing])
            .chain(balances.statement_opening)
            .chain(balances.statement_closing);
        for amount in amounts {
            if amount.scale() != scale {
                return Err(Rejection::InvalidAmount(
                    super::money::AmountError::TooManyDecimals { scale },
                ));
            }
        }
        if self.reconciliations.contains_key(&completed.id) {
            return Err(fault(ReconciliationFault::RunAlreadyCompleted(
                completed.id,
            )));
        }
        self.reconciliations
            .insert(completed.id, RunRecord::completed(completed));
        Ok(())
    }

    fn apply_item_resolved(&mut self, resolution: &ItemResolved) -> Result<(), Rejection> {
        let fault = Rejection::Reconciliation;
        resolution.check_structure().map_err(fault)?;
        let run = self
            .reconciliations
            .get(&resolution.reconciliation_id)
            .ok_or(fault(ReconciliationFault::RunNotFound(
                resolution.reconciliation_id,
            )))?;
        resolution.check_against(run).map_err(fault)?;
        if let Some(id) = resolution.transfer_id {
            let transfer = self
                .transfers
                .get(&id)
                .ok_or(Rejection::TransferNotFound(id))?;
            let accounts = [transfer.debit_account_id, transfer.credit_account_id];
            if !accounts.contains(&run.account_id) {
                return Err(fault(ReconciliationFault::TransferNotOnAccount(id)));
            }
        }
        self.reconciliations
            .get_mut(&resolution.reconciliation_id)
            .expect("checked above")
            .record(resolution);
        Ok(())
    }

    fn record(
        &mut self,
        event: LedgerEvent,
        at: Timestamp,
        postings: Vec<Posting>,
    ) -> AppliedEvent {
        self.last_seq += 1;
        AppliedEvent {
            seq: self.last_seq,
            at,
            event,
            postings,
        }
    }

    fn next_seq(&self) -> u64 {
        self.last_seq + 1
    }

    fn apply_account_opened(&mut self, new: &NewAccount, at: Timestamp) -> Result<(), Rejection> {
        if self.accounts.contains_key(&new.id) {
            return Err(Rejection::AccountExistsWithDifferentFields(new.id));
        }
        if self.account_ids_by_code.contains_key(&new.code) {
            return Err(Rejection::AccountCodeTaken(new.code.clone()));
        }
        if self.currency(new.currency.code()).as_ref() != Some(&new.currency) {
            return Err(Rejection::UnknownCurrency(new.currency.code().clone()));
        }
        let account = Account::opened(new.clone(), at, self.next_seq());
        self.insert_loaded_account(account);
        Ok(())
    }

    fn apply_account_action(
        &mut self,
        id: AccountId,
        action: AccountAction,
    ) -> Result<Vec<Posting>, Rejection> {
        let account = self
            .accounts
            .get_mut(&id)
            .ok_or(Rejection::AccountNotFound(id))?;
        let next = next_account_status(account.status, action).map_err(|transition| {
            Rejection::InvalidStateTransition {
                entity: "account",
                transition,
            }
        })?;
        if action == AccountAction::Close && !account.balances.is_zero_net() {
            return Err(Rejection::AccountNotEmpty(id));
        }
        account.status = next;
        Ok(Vec::new())
    }

    fn apply_transfer_created(
        &mut self,
        new: &NewTransfer,
        at: Timestamp,
    ) -> Result<Vec<Posting>, Rejection> {
        if new.reverses.is_some() {
            return Err(Rejection::ReversalDoesNotMirror(new.id));
        }
        if new.timeout_seconds.is_some() && !new.pending {
            return Err(Rejection::TimeoutWithoutPending);
        }
        self.check_new_transfer(new, StatusRule::MustBeActive)?;
        let (pending_delta, posted_delta) = if new.pending {
            (new.amount, Decimal::new(0, new.amount.scale()))
        } else {
            (Decimal::new(0, new.amount.scale()), new.amount)
        };
        let postings = self.move_balances(
            new.debit_account_id,
            new.credit_account_id,
            new.id,
            pending_delta,
            posted_delta,
            StatusRule::MustBeActive,
        )?;
        self.insert_loaded_transfer(Transfer::created(new.clone(), at, self.next_seq()));
        Ok(postings)
    }

    fn apply_transfer_posted(
        &mut self,
        id: TransferId,
        amount: Decimal,
        at: Timestamp,
    ) -> Result<Vec<Posting>, Rejection> {
        let transfer = self
            .transfers
            .get(&id)
            .ok_or(Rejection::TransferNotFound(id))?;
        self.check_transfer_transition(transfer, TransferAction::Post, at)?;
        if amount.scale() != transfer.amount.scale() || amount <= Decimal::ZERO {
            return Err(Rejection::InvalidAmount(
                super::money::AmountError::NotPositive,
            ));
        }
        if amount > transfer.amount {
            return Err(Rejection::PostAmountExceedsPending {
                pending: transfer.amount,
                requested: amount,
            });
        }
        let (debit, credit, reserved) = (
            transfer.debit_account_id,
            transfer.credit_account_id,
            transfer.amount,
        );
        let postings = self.move_balances(
            debit,
            credit,
            id,
            -reserved,
            amount,
            StatusRule::MustBeActive,
        )?;
        let transfer = self.transfers.get_mut(&id).expect("checked above");
        transfer.state = TransferState::Posted;
        transfer.posted_amount = amount;
        Ok(postings)
    }

    /// Voids or expires a pending transfer: its reservation is released whole.
    fn apply_release(
        &mut self,
        id: TransferId,
        action: TransferAction,
        at: Timestamp,
    ) -> Result<Vec<Posting>, Rejection> {
        let transfer = self
            .transfers
            .get(&id)
            .ok_or(Rejection::TransferNotFound(id))?;
        let next = self.check_transfer_transition(transfer, action, at)?;
        if action == TransferAction::Expire
            && transfer.expires_at.is_none_or(|deadline| at < deadline)
        {
            return Err(Rejection::ExpiryBeforeDeadline(id));
        }
        let (debit, credit, reserved) = (
            transfer.debit_account_id,
            transfer.credit_account_id,
            transfer.amount,
        );
        let zero = Decimal::new(0, reserved.scale());
        let postings = self.move_balances(debit, credit, id, -reserved, zero, StatusRule::Any)?;
        self.transfers.get_mut(&id).expect("checked above").state = next;
        Ok(postings)
    }

    fn apply_transfer_reversed(
        &mut self,
        new: &NewTransfer,
        at: Timestamp,
    ) -> Result<Vec<Posting>, Rejection> {
        let original_id = new
            .reverses
            .ok_or(Rejection::ReversalDoesNotMirror(new.id))?;
        let original = self
            .transfers
            .get(&original_id)
            .ok_or(Rejection::TransferNotFound(original_id))?;
        self.check_transfer_transition(original, TransferAction::Reverse, at)?;
        let mirrors = new.debit_account_id == original.credit_account_id
            && new.credit_account_id == original.debit_account_id
            && new.currency == original.currency
            && !new.pending
            && new.timeout_seconds.is_none();
        if !mirrors {
            return Err(Rejection::ReversalDoesNotMirror(original_id));
        }
        let reversible = original.reversible_amount();
        if new.amount > reversible {
            return Err(Rejection::ReversalExceedsPostedAmount {
                reversible,
                requested: new.amount,
            });
        }
        self.check_new_transfer(new, StatusRule::MustNotBeClosed)?;
        let zero = Decimal::new(0, new.amount.scale());
        let postings = self.move_balances(
            new.debit_account_id,
            new.credit_account_id,
            new.id,
            zero,
            new.amount,
            StatusRule::MustNotBeClosed,
        )?;
        self.insert_loaded_transfer(Transfer::created(new.clone(), at, self.next_seq()));
        let original = self.transfers.get_mut(&original_id).expect("checked above");
        original.reversed_amount += new.amount;
        original.assert_invariants();
        Ok(postings)
    }

    /// Checks an action against the transfer state machine. A pending transfer whose deadline
    /// has passed counts as expired for every action but expiry itself.
    fn check_transfer_transition(
        &self,
        transfer: &Transfer,
        action: TransferAction,
        at: Timestamp,
    ) -> Result<TransferState, Rejection> {
        let past_deadline = transfer.expires_at.is_some_and(|deadline| at >= deadline);
        let effective = if transfer.state == TransferState::Pending
            && past_deadline
            && action != TransferAction::Expire
        {
            TransferState::Expired
        } else {
            transfer.state
        };
        next_transfer_state(effective, action).map_err(|transition| {
            Rejection::InvalidStateTransition {
                entity: "transfer",
                transition,
            }
        })
    }

    /// The checks every new transfer passes, in the order a client would want to hear them.
    fn check_new_transfer(&self, new: &NewTransfer, rule: StatusRule) -> Result<(), Rejection> {
        if new.debit_account_id == new.credit_account_id {
            return Err(Rejection::SameAccount);
        }
        if self.transfers.contains_key(&new.id) {
            return Err(Rejection::TransferExistsWithDifferentFields(new.id));
        }
        for account_id in [new.debit_account_id, new.credit_account_id] {
            let account = self
                .accounts
                .get(&account_id)
                .ok_or(Rejection::AccountNotFound(account_id))?;
            if account.currency.code() != &new.currency {
                return Err(Rejection::CurrencyMismatch {
                    account_id,
                    account_currency: account.currency.code().clone(),
                    transfer_currency: new.currency.clone(),
                });
            }
            if new.amount.scale() != account.currency.scale() || new.amount <= Decimal::ZERO {
                let scale = account.currency.scale();
                return Err(Rejection::InvalidAmount(
                    amount_at_scale(new.amount, scale)
                        .err()
                        .unwrap_or(super::money::AmountError::TooManyDecimals { scale }),
                ));
            }
        }
        for account_id in [new.debit_account_id, new.credit_account_id] {
            check_status(&self.accounts[&account_id], rule)?;
        }
        Ok(())
    }

    /// Moves the same deltas onto the debit side of one account and the credit side of the
    /// other, after checking status, range and constraints of both.
    fn move_balances(
        &mut self,
        debit_account_id: AccountId,
        credit_account_id: AccountId,
        transfer_id: TransferId,
        pending_delta: Decimal,
        posted_delta: Decimal,
        rule: StatusRule,
    ) -> Result<Vec<Posting>, Rejection> {
        assert_ne!(debit_account_id, credit_account_id);
        let mut postings = Vec::with_capacity(2);
        for (account_id, side) in [
            (debit_account_id, Side::Debit),
            (credit_account_id, Side::Credit),
        ] {
            let account = self
                .accounts
                .get(&account_id)
                .ok_or(Rejection::AccountNotFound(account_id))?;
            check_status(account, rule)?;
            let balances_after = account
                .balances
                .moved(side, pending_delta, posted_delta)
                .ok_or(Rejection::BalanceOverflow(account_id))?;
            if !account.constraint.holds_for(&balances_after) {
                return Err(match side {
                    Side::Debit => Rejection::InsufficientFunds(account_id),
                    Side::Credit => Rejection::CreditsExceedDebits(account_id),
                });
            }
            postings.push(Posting {
                account_id,
                transfer_id,
                side,
                pending_delta,
                posted_delta,
                balances_after,
            });
        }
        for posting in &postings {
            let account = self
                .accounts
                .get_mut(&posting.account_id)
                .expect("checked above");
            account.balances = posting.balances_after.clone();
            account.assert_invariants();
        }
        Ok(postings)
    }

    /// What an atomic batch may change, to put back if one of its items fails.
    fn snapshot_for(&self, transfers: &[NewTransfer]) -> Snapshot {
        let accounts = transfers
            .iter()
            .flat_map(|new| [new.debit_account_id, new.credit_account_id])
            .filter_map(|id| self.accounts.get(&id).cloned())
            .collect();
        Snapshot {
            last_seq: self.last_seq,
            accounts,
            created_transfers: transfers
                .iter()
                .map(|new| new.id)
                .filter(|id| !self.transfers.contains_key(id))
                .collect(),
        }
    }

    fn restore(&mut self, snapshot: Snapshot) {
        self.last_seq = snapshot.last_seq;
        for account in snapshot.accounts {
            self.accounts.insert(account.id, account);
        }
        for id in snapshot.created_transfers {
            self.transfers.remove(&id);
        }
    }
}

/// The four balances of one currency summed over all its accounts, in minor units (§4.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CurrencyTotals {
    pub scale: u32,
    pub posted_debits: i128,
    pub posted_credits: i128,
    pub pending_debits: i128,
    pub pending_credits: i128,
}

impl CurrencyTotals {
    /// §4.2: Σ posted debits = Σ posted credits and Σ pending debits = Σ pending credits.
    pub fn is_balanced(&self) -> bool {
        self.posted_debits == self.posted_credits && self.pending_debits == self.pending_credits
    }
}

impl fmt::Display for CurrencyTotals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |units| format_minor_units(units, self.scale);
        write!(
            f,
            "posted debits {} vs credits {}, pending debits {} vs credits {}",
            text(self.posted_debits),
            text(self.posted_credits),
            text(self.pending_debits),
            text(self.pending_credits)
        )
    }
}

struct Snapshot {
    last_seq: u64,
    accounts: Vec<Account>,
    created_transfers: Vec<TransferId>,
}

fn check_status(account: &Account, rule: StatusRule) -> Result<(), Rejection> {
    match (account.status, rule) {
        (_, StatusRule::Any) | (AccountStatus::Active, _) => Ok(()),
        (AccountStatus::Frozen, StatusRule::MustNotBeClosed) => Ok(()),
        (AccountStatus::Frozen, StatusRule::MustBeActive) => {
            Err(Rejection::AccountFrozen(account.id))
        }
        (AccountStatus::Closed, _) => Err(Rejection::AccountClosed(account.id)),
    }
}

/// Whether a reversal request repeats the reversal `existing` (same original, same chosen
/// fields; an omitted amount matches whatever was reversed).
fn is_retry_of_reversal(
    existing: &Transfer,
    original: TransferId,
    reversal: &ReversalRequest,
) -> bool {
    existing.reverses == Some(original)
        && reversal
            .amount
            .is_none_or(|amount| amount == existing.amount)
        && existing.code == reversal.code
        && existing.reference == reversal.reference
        && existing.description == reversal.description
        && existing.metadata == reversal.metadata
}
