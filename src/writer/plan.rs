//! The pure heart of a batch: the commands run through the engine on the loaded state, their
//! events sealed into the hash chain and the Merkle tree, and the rows to write listed. No I/O,
//! no clock: the batch's time and everything loaded come in as arguments.

use std::collections::{BTreeSet, HashMap};

use super::{Outcome, StateAfter};
use crate::audit::merkle::{self, MerkleFrontier, SubtreeId};
use crate::audit::{ChainHead, Hash32, JournalEvent, Provenance};
use crate::domain::*;
use crate::storage::batch::{BatchNeeds, BatchWrites, Loaded};
use crate::storage::reconciliation::{CompletedRun, ResolvedItem};
use crate::storage::{LedgerRecord, StoredHead};

/// The accounts and transfers a set of commands may touch, to lock and load.
pub fn needs_of<'a>(commands: impl Iterator<Item = &'a Command>) -> BatchNeeds {
    let mut needs = BatchNeeds::default();
    let add_transfer = |needs: &mut BatchNeeds, new: &NewTransfer| {
        needs
            .account_ids
            .extend([new.debit_account_id, new.credit_account_id]);
        needs.transfer_ids.insert(new.id);
    };
    for command in commands {
        match command {
            Command::OpenAccount(new) => {
                needs.account_ids.insert(new.id);
                needs.account_codes.insert(new.code.clone());
            }
            Command::CreateTransfer(new) => add_transfer(&mut needs, new),
            Command::CreateTransfersAtomically(transfers) => transfers
                .iter()
                .for_each(|new| add_transfer(&mut needs, new)),
            Command::PostTransfer { id, .. } | Command::VoidTransfer(id) => {
                needs.transfer_ids.insert(*id);
            }
            Command::ReverseTransfer { id, reversal } => {
                needs.transfer_ids.extend([*id, reversal.id]);
            }
            Command::FreezeAccount(id)
            | Command::UnfreezeAccount(id)
            | Command::CloseAccount(id) => {
                needs.account_ids.insert(*id);
            }
            Command::ExpireTransfers(ids) => needs.transfer_ids.extend(ids.iter().copied()),
            Command::CompleteReconciliation(completed) => {
                needs.account_ids.insert(completed.account_id);
                needs.reconciliation_runs.insert(completed.id);
            }
            Command::ResolveReconciliationItem {
                resolution,
                adjustment,
            } => {
                needs
                    .reconciliation_items
                    .insert((resolution.reconciliation_id, resolution.item_no));
                needs.transfer_ids.extend(resolution.transfer_id);
                if let Some(new) = adjustment {
                    add_transfer(&mut needs, new);
                }
            }
        }
    }
    needs
}

/// What a planned batch leaves besides its writes.
#[derive(Debug)]
pub struct Planned {
    /// One per command, in order.
    pub outcomes: Vec<Outcome>,
    /// Every account the batch used, as it will be once the batch commits.
    pub accounts_after: Vec<Account>,
    /// The chain head once the batch commits.
    pub head_after: ChainHead,
    pub held_accounts_were_current: bool,
}

/// The pure heart of a batch: runs the commands through the engine on the loaded state (plus the
/// held accounts, when still current), seals the events into the chain, and lists what to write.
/// Deterministic in its inputs.
pub fn plan_batch(
    ledger: &LedgerRecord,
    loaded: Loaded,
    commands: &[(Command, Provenance)],
    clock: Timestamp,
    held: &HashMap<AccountId, Account>,
) -> (BatchWrites, Planned) {
    // Time never runs backwards in a ledger, even across processes with skewed clocks.
    let at = clock.max(loaded.head.last_at);
    let head = loaded.head.clone();
    let held_accounts_were_current = loaded.held_accounts_are_current;
    let missing_leaf_hashes = loaded.missing_leaf_hashes.clone();
    let due_for_expiry = loaded.due_for_expiry.clone();
    let mut book = book_of(ledger, loaded, commands, held);
    let mut sealing = Sealing {
        chain: head.chain,
        applied: Vec::new(),
        sealed: Vec::new(),
    };
    let expired = book
        .execute(&Command::ExpireTransfers(due_for_expiry), at)
        .expect("expiry skips what it cannot expire");
    sealing.seal(&book, expired, &Provenance::system());
    let outcomes = commands
        .iter()
        .map(|(command, provenance)| execute_one(&mut book, &mut sealing, command, provenance, at))
        .collect();
    let writes = writes_of_batch(
        &book,
        sealing.applied,
        sealing.sealed,
        &head,
        &missing_leaf_hashes,
        at,
    );
    let planned = Planned {
        outcomes,
        accounts_after: book.into_accounts().collect(),
        head_after: sealing.chain,
        held_accounts_were_current,
    };
    (writes, planned)
}

/// The engine's working set for a batch: the loaded rows, and the held accounts the commands
/// need when they are still current.
fn book_of(
    ledger: &LedgerRecord,
    loaded: Loaded,
    commands: &[(Command, Provenance)],
    held: &HashMap<AccountId, Account>,
) -> Book {
    let mut book = Book::resume(ledger.name.clone(), &ledger.assets, loaded.head.chain.seq);
    if loaded.held_accounts_are_current {
        let mut wanted = needs_of(commands.iter().map(|(command, _)| command)).account_ids;
        wanted.extend(
            loaded
                .transfers
                .iter()
                .flat_map(|transfer| [transfer.debit_account_id, transfer.credit_account_id]),
        );
        let loaded_ids: BTreeSet<AccountId> = loaded.accounts.iter().map(|a| a.id).collect();
        wanted
            .iter()
            .filter(|id| !loaded_ids.contains(id))
            .filter_map(|id| held.get(id))
            .for_each(|account| book.insert_loaded_account(account.clone()));
    }
    loaded
        .accounts
        .into_iter()
        .for_each(|account| book.insert_loaded_account(account));
    loaded
        .transfers
        .into_iter()
        .for_each(|transfer| book.insert_loaded_transfer(transfer));
    loaded
        .reconciliations
        .into_iter()
        .for_each(|(id, run)| book.insert_loaded_reconciliation(id, run));
    book
}

/// The chain as a batch extends it: every event applied, and its sealed journal form.
struct Sealing {
    chain: ChainHead,
    applied: Vec<AppliedEvent>,
    sealed: Vec<JournalEvent>,
}

impl Sealing {
    fn seal(&mut self, book: &Book, applied: Vec<AppliedEvent>, provenance: &Provenance) {
        self.sealed.extend(
            applied
                .iter()
                .map(|event| self.chain.seal(book.name(), event, provenance)),
        );
        self.applied.extend(applied);
    }
}

/// One command through the engine: its events sealed, or its refusal, which changes nothing.
fn execute_one(
    book: &mut Book,
    sealing: &mut Sealing,
    command: &Command,
    provenance: &Provenance,
    at: Timestamp,
) -> Outcome {
    match book.execute(command, at) {
        Ok(applied) => {
            let created = !applied.is_empty();
            sealing.seal(book, applied, provenance);
            Outcome::Done {
                state: state_after(book, command),
                created,
                last_seq: sealing.chain.seq,
                at,
            }
        }
        Err(rejection) => Outcome::Rejected(rejection),
    }
}

/// The rows of the batch, with the chain head and the Merkle tree after it.
fn writes_of_batch(
    book: &Book,
    applied: Vec<AppliedEvent>,
    sealed: Vec<JournalEvent>,
    head: &StoredHead,
    missing_leaf_hashes: &[Hash32],
    at: Timestamp,
) -> BatchWrites {
    let chain = sealing_end(&head.chain, &sealed);
    let (merkle, merkle_nodes) = extend_tree(&head.merkle, missing_leaf_hashes, &sealed);
    let mut writes = writes_for(
        book,
        applied,
        sealed,
        StoredHead {
            chain,
            last_at: at,
            merkle,
        },
    );
    if writes.head.is_none() && !missing_leaf_hashes.is_empty() {
        // No event, but the tree caught up with the journal: store its frontier.
        writes.head = Some(StoredHead {
            chain,
            last_at: head.last_at,
            merkle: extend_tree(&head.merkle, missing_leaf_hashes, &[]).0,
        });
    }
    writes.merkle_nodes = merkle_nodes;
    writes
}

/// The chain head after the sealed events (the loaded one when there are none).
fn sealing_end(loaded: &ChainHead, sealed: &[JournalEvent]) -> ChainHead {
    sealed.last().map_or(*loaded, |event| ChainHead {
        seq: event.seq,
        hash: event.hash,
    })
}

fn state_after(book: &Book, command: &Command) -> StateAfter {
    let transfer = |id: &TransferId| {
        book.transfer(*id)
            .cloned()
            .map_or(StateAfter::Nothing, StateAfter::Transfer)
    };
    let account = |id: &AccountId| {
        book.account(*id)
            .cloned()
            .map_or(StateAfter::Nothing, StateAfter::Account)
    };
    match command {
        Command::OpenAccount(new) => account(&new.id),
        Command::CreateTransfer(new) => transfer(&new.id),
        Command::CreateTransfersAtomically(transfers) => StateAfter::Transfers(
            transfers
                .iter()
                .filter_map(|new| book.transfer(new.id).cloned())
                .collect(),
        ),
        Command::PostTransfer { id, .. } | Command::VoidTransfer(id) => transfer(id),
        Command::ReverseTransfer { reversal, .. } => transfer(&reversal.id),
        Command::FreezeAccount(id) | Command::UnfreezeAccount(id) | Command::CloseAccount(id) => {
            account(id)
        }
        Command::ResolveReconciliationItem {
            adjustment: Some(new),
            ..
        } => transfer(&new.id),
        Command::ExpireTransfers(_)
        | Command::CompleteReconciliation(_)
        | Command::ResolveReconciliationItem { .. } => StateAfter::Nothing,
    }
}

/// The journal's Merkle tree after this batch: the frontier extended with the leaves it lacked
/// (a database from before the tree) and the batch's events, and the roots of the subtrees of
/// stored levels (256, 65,536, … leaves) these completed.
fn extend_tree(
    frontier: &MerkleFrontier,
    missing: &[Hash32],
    events: &[JournalEvent],
) -> (MerkleFrontier, Vec<(SubtreeId, Hash32)>) {
    let mut frontier = frontier.clone();
    let mut stored = Vec::new();
    for event_hash in missing.iter().chain(events.iter().map(|event| &event.hash)) {
        frontier
            .append_leaf_hash_reporting_subtrees(merkle::leaf_hash(event_hash), |id, hash| {
                if id.is_stored_level() {
                    stored.push((id, hash));
                }
            })
            .expect("a ledger never reaches 2^63 events");
    }
    (frontier, stored)
}

/// Lists the rows a batch writes: entities created in it are inserted in their final state,
/// the others touched are updated.
fn writes_for(
    book: &Book,
    applied: Vec<AppliedEvent>,
    events: Vec<crate::audit::JournalEvent>,
    head: StoredHead,
) -> BatchWrites {
    let mut touched = Touched::default();
    for (event, sealed) in applied.into_iter().zip(&events) {
        touched.record(event, sealed);
    }
    touched.into_writes(book, events, head)
}

/// What a batch's events created and changed, by id, and the rows they add.
#[derive(Default)]
struct Touched {
    new_accounts: BTreeSet<AccountId>,
    accounts: BTreeSet<AccountId>,
    new_transfers: BTreeSet<TransferId>,
    transfers: BTreeSet<TransferId>,
    postings: Vec<(u64, Posting)>,
    completed_reconciliations: Vec<CompletedRun>,
    resolved_items: Vec<ResolvedItem>,
}

impl Touched {
    /// One applied event, in journal order (`sealed` is its journal form).
    fn record(&mut self, event: AppliedEvent, sealed: &crate::audit::JournalEvent) {
        match &event.event {
            LedgerEvent::AccountOpened(new) => {
                self.new_accounts.insert(new.id);
            }
            LedgerEvent::AccountFrozen(id)
            | LedgerEvent::AccountUnfrozen(id)
            | LedgerEvent::AccountClosed(id) => {
                self.accounts.insert(*id);
            }
            LedgerEvent::TransferCreated(new) => {
                self.new_transfers.insert(new.id);
            }
            LedgerEvent::TransferReversed(new) => {
                self.new_transfers.insert(new.id);
                self.transfers.extend(new.reverses);
            }
            LedgerEvent::TransferPosted { id, .. }
            | LedgerEvent::TransferVoided(id)
            | LedgerEvent::TransferExpired(id) => {
                self.transfers.insert(*id);
            }
            LedgerEvent::ReconciliationCompleted(completed) => {
                self.completed_reconciliations.push(CompletedRun {
                    id: completed.id,
                    seq: event.seq,
                    at: event.at,
                });
            }
            LedgerEvent::ReconciliationItemResolved(resolution) => {
                self.resolved_items.push(ResolvedItem {
                    resolution: resolution.clone(),
                    seq: event.seq,
                    actor: sealed.actor.clone(),
                });
            }
            LedgerEvent::LedgerCreated(_) => unreachable!("genesis is not written by a batch"),
        }
        self.accounts
            .extend(event.postings.iter().map(|posting| posting.account_id));
        let seq = event.seq;
        self.postings
            .extend(event.postings.into_iter().map(|posting| (seq, posting)));
    }

    /// The rows to write: entities created in the batch in their final state, the others that
    /// changed as the book holds them now.
    fn into_writes(
        self,
        book: &Book,
        events: Vec<crate::audit::JournalEvent>,
        head: StoredHead,
    ) -> BatchWrites {
        let accounts = |ids: &mut dyn Iterator<Item = &AccountId>| -> Vec<Account> {
            ids.map(|id| {
                book.account(*id)
                    .expect("touched accounts are loaded")
                    .clone()
            })
            .collect()
        };
        let transfers = |ids: &mut dyn Iterator<Item = &TransferId>| -> Vec<Transfer> {
            ids.map(|id| {
                book.transfer(*id)
                    .expect("touched transfers are loaded")
                    .clone()
            })
            .collect()
        };
        BatchWrites {
            new_accounts: accounts(&mut self.new_accounts.iter()),
            changed_accounts: accounts(&mut self.accounts.difference(&self.new_accounts)),
            new_transfers: transfers(&mut self.new_transfers.iter()),
            changed_transfers: transfers(&mut self.transfers.difference(&self.new_transfers)),
            postings: self.postings,
            head: (!events.is_empty()).then_some(head),
            events,
            idempotency_records: Vec::new(),
            merkle_nodes: Vec::new(),
            completed_reconciliations: self.completed_reconciliations,
            resolved_items: self.resolved_items,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Hash32;
    use crate::domain::money::parse_amount;
    use uuid::Uuid;

    fn ledger() -> LedgerRecord {
        LedgerRecord {
            id: 1,
            name: LedgerName::parse("main").unwrap(),
            assets: vec![],
            metadata: Metadata::default(),
            created_at: Timestamp::from_unix_micros(0),
        }
    }

    fn wallet(n: u128, constraint: BalanceConstraint, credits: &str) -> Account {
        let new = NewAccount {
            id: AccountId::new(Uuid::from_u128(n)),
            code: AccountCode::parse(&format!("a{n}")).unwrap(),
            currency: Currency::iso("EUR").unwrap(),
            normal_side: NormalSide::Credit,
            constraint,
            metadata: Metadata::default(),
        };
        let mut account = Account::opened(new, Timestamp::from_unix_micros(0), n as u64);
        let mut posted_credits: rust_decimal::Decimal = credits.parse().unwrap();
        posted_credits.rescale(2);
        account.balances.posted_credits = posted_credits;
        account
    }

    fn transfer(n: u128, debit: u128, credit: u128, amount: &str) -> (Command, Provenance) {
        let new = NewTransfer {
            id: TransferId::new(Uuid::from_u128(n)),
            debit_account_id: AccountId::new(Uuid::from_u128(debit)),
            credit_account_id: AccountId::new(Uuid::from_u128(credit)),
            amount: parse_amount(amount, 2).unwrap(),
            currency: CurrencyCode::parse("EUR").unwrap(),
            code: None,
            reference: None,
            description: None,
            metadata: Metadata::default(),
            pending: false,
            timeout_seconds: None,
            reverses: None,
        };
        let provenance = Provenance {
            actor: "key".into(),
            request_id: Some(format!("r{n}")),
            idempotency_key: None,
        };
        (Command::CreateTransfer(new), provenance)
    }

    /// A head at `seq` whose tree holds `seq` leaves (stand-in event hashes).
    fn head_at(seq: u64, last_at: i64) -> StoredHead {
        let mut merkle = MerkleFrontier::new();
        for n in 0..seq {
            merkle
                .append_event_hash(&Hash32::sha256(&n.to_be_bytes()))
                .unwrap();
        }
        StoredHead {
            chain: ChainHead {
                seq,
                hash: Hash32::sha256(&seq.to_be_bytes()),
            },
            last_at: Timestamp::from_unix_micros(last_at),
            merkle,
        }
    }

    fn loaded(head: StoredHead, accounts: Vec<Account>, held_accounts_are_current: bool) -> Loaded {
        Loaded {
            head,
            accounts,
            held_accounts_are_current,
            transfers: vec![],
            due_for_expiry: vec![],
            idempotency_records: vec![],
            missing_leaf_hashes: vec![],
            reconciliations: vec![],
        }
    }

    #[test]
    fn a_rejected_command_fails_alone_and_the_others_chain_in_order() {
        let head = head_at(10, 5_000);
        let accounts = vec![
            wallet(1, BalanceConstraint::DebitsMustNotExceedCredits, "10"),
            wallet(2, BalanceConstraint::None, "0"),
        ];
        let commands = vec![
            transfer(100, 1, 2, "6"),
            transfer(101, 1, 2, "6"),
            transfer(102, 1, 2, "4"),
        ];
        let (writes, planned) = plan_batch(
            &ledger(),
            loaded(head.clone(), accounts, false),
            &commands,
            Timestamp::from_unix_micros(1_000),
            &HashMap::new(),
        );
        let outcomes = &planned.outcomes;

        assert!(matches!(
            outcomes[0],
            Outcome::Done {
                created: true,
                last_seq: 11,
                ..
            }
        ));
        assert_eq!(
            outcomes[1],
            Outcome::Rejected(Rejection::InsufficientFunds(AccountId::new(
                Uuid::from_u128(1)
            )))
        );
        assert!(matches!(
            outcomes[2],
            Outcome::Done {
                created: true,
                last_seq: 12,
                ..
            }
        ));

        assert_eq!(
            writes
                .events
                .iter()
                .map(|event| event.seq)
                .collect::<Vec<_>>(),
            [11, 12]
        );
        assert_eq!(writes.events[0].prev_hash, head.chain.hash);
        assert_eq!(writes.events[1].prev_hash, writes.events[0].hash);
        assert_eq!(
            writes.events[1].request_id.as_deref(),
            Some("r102"),
            "each event keeps its own request"
        );
        let stored_head = writes.head.unwrap();
        assert_eq!(
            stored_head.chain,
            ChainHead {
                seq: 12,
                hash: writes.events[1].hash
            }
        );
        assert_eq!(
            stored_head.last_at, head.last_at,
            "time never runs backwards: the head's later time wins"
        );
        assert_eq!(writes.new_transfers.len(), 2);
        assert_eq!(writes.postings.len(), 4);
        assert_eq!(writes.changed_accounts.len(), 2);
        assert_eq!(
            writes.changed_accounts[0]
                .balances
                .posted_debits
                .to_string(),
            "10.00"
        );
        assert!(writes.new_accounts.is_empty() && writes.changed_transfers.is_empty());
        assert_eq!(planned.head_after.seq, 12);
        assert_eq!(
            stored_head.merkle.size(),
            12,
            "the tree grows with the chain, in the same batch"
        );
        let mut expected = head.merkle.clone();
        writes
            .events
            .iter()
            .for_each(|event| expected.append_event_hash(&event.hash).unwrap());
        assert_eq!(stored_head.merkle.root(), expected.root());
        assert_eq!(
            planned.accounts_after.len(),
            2,
            "the cache learns the committed balances"
        );
    }

    #[test]
    fn a_batch_of_only_rejections_writes_nothing() {
        let (writes, planned) = plan_batch(
            &ledger(),
            loaded(head_at(3, 0), vec![], false),
            &[transfer(1, 1, 2, "1")],
            Timestamp::from_unix_micros(9),
            &HashMap::new(),
        );
        assert!(matches!(
            planned.outcomes[0],
            Outcome::Rejected(Rejection::AccountNotFound(_))
        ));
        assert!(writes.events.is_empty() && writes.head.is_none());
        assert_eq!(planned.head_after.seq, 3);
    }

    #[test]
    fn held_accounts_are_used_only_while_the_head_has_not_moved() {
        let held: HashMap<AccountId, Account> = [
            wallet(1, BalanceConstraint::DebitsMustNotExceedCredits, "10"),
            wallet(2, BalanceConstraint::None, "0"),
        ]
        .into_iter()
        .map(|account| (account.id, account))
        .collect();
        let commands = [transfer(100, 1, 2, "6")];
        let (current, planned) = plan_batch(
            &ledger(),
            loaded(head_at(5, 0), vec![], true),
            &commands,
            Timestamp::from_unix_micros(9),
            &held,
        );
        assert!(matches!(
            planned.outcomes[0],
            Outcome::Done { created: true, .. }
        ));
        assert_eq!(current.changed_accounts.len(), 2);

        // The head moved: the storage loaded what it needed, and stale held copies are ignored.
        let (_, planned) = plan_batch(
            &ledger(),
            loaded(head_at(6, 0), vec![], false),
            &commands,
            Timestamp::from_unix_micros(9),
            &held,
        );
        assert!(matches!(
            planned.outcomes[0],
            Outcome::Rejected(Rejection::AccountNotFound(_))
        ));
        assert!(!planned.held_accounts_were_current);
    }

    #[test]
    fn a_batch_that_completes_256_leaves_stores_their_subtree_root_and_a_lagging_tree_catches_up() {
        // The tree lags the chain by 3 events (a database from before the tree), at 250 leaves.
        let mut head = head_at(253, 0);
        let leaves: Vec<Hash32> = (0..253u64)
            .map(|n| Hash32::sha256(&n.to_be_bytes()))
            .collect();
        head.merkle = MerkleFrontier::new();
        leaves[..250]
            .iter()
            .for_each(|hash| head.merkle.append_event_hash(hash).unwrap());
        let mut loaded = loaded(
            head,
            vec![
                wallet(1, BalanceConstraint::None, "100"),
                wallet(2, BalanceConstraint::None, "0"),
            ],
            false,
        );
        loaded.missing_leaf_hashes = leaves[250..].to_vec();
        let commands: Vec<_> = (0..5).map(|n| transfer(100 + n, 1, 2, "1")).collect();
        let (writes, _) = plan_batch(
            &ledger(),
            loaded,
            &commands,
            Timestamp::from_unix_micros(9),
            &HashMap::new(),
        );

        let mut all_leaves: Vec<Hash32> = leaves.iter().map(merkle::leaf_hash).collect();
        all_leaves.extend(
            writes
                .events
                .iter()
                .map(|event| merkle::leaf_hash(&event.hash)),
        );
        let tree = merkle::InMemoryMerkleTree::from_leaf_hashes(all_leaves);
        let frontier = &writes.head.as_ref().unwrap().merkle;
        assert_eq!((frontier.size(), frontier.root()), (258, tree.root()));
        assert_eq!(
            writes.merkle_nodes.len(),
            1,
            "one subtree of 256 leaves completed"
        );
        let (id, hash) = writes.merkle_nodes[0];
        assert_eq!((id.level(), id.index()), (8, 0));
        assert_eq!(hash, tree.root_at_size(256).unwrap());
    }
}
