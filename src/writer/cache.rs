//! The accounts a ledger's writer committed last: a batch loads only the accounts missing here,
//! as long as the ledger's chain head is still the one the writer left.

use std::collections::HashMap;

use super::plan::Planned;
use crate::audit::ChainHead;
use crate::domain::{Account, AccountId};
use crate::storage::batch::HeldAccounts;

/// The accounts the writer committed last, current while the ledger's chain head is still
/// `head` (seq and hash: a seq alone could be reached again by another history, after a failover
/// to a replica that lost the tail): a batch loads only the accounts missing here. Another process
/// writing the ledger moves the head, and the batch then loads everything (see
/// `storage::batch::HeldAccounts`).
#[derive(Default)]
pub(super) struct AccountCache {
    head: Option<ChainHead>,
    pub(super) accounts: HashMap<AccountId, Account>,
}

impl AccountCache {
    /// Bound on memory: past it the cache starts over (hot accounts come back at once).
    const MAX_ACCOUNTS: usize = 100_000;

    pub(super) fn refresh(&mut self, planned: Planned) {
        if !planned.held_accounts_were_current
            || self.accounts.len() + planned.accounts_after.len() > Self::MAX_ACCOUNTS
        {
            self.accounts.clear();
        }
        self.accounts.extend(
            planned
                .accounts_after
                .into_iter()
                .map(|account| (account.id, account)),
        );
        self.head = Some(planned.head_after);
    }

    pub(super) fn forget(&mut self) {
        self.head = None;
        self.accounts.clear();
    }
}

impl HeldAccounts for AccountCache {
    fn current_at(&self) -> Option<ChainHead> {
        self.head
    }

    fn holds(&self, id: AccountId) -> bool {
        self.accounts.contains_key(&id)
    }
}
