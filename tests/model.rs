//! The state machines of §3 checked in the pure core: every (state, action) pair against the
//! transition tables, and random command sequences against an independent reference model, with
//! the journal replayed at the end (§4.7).

use ledger::audit::replay::Replayer;
use ledger::audit::{ChainHead, JournalEvent, Provenance};
use ledger::domain::state_machine::{next_account_status, next_transfer_state, InvalidTransition};
use ledger::domain::*;
use proptest::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

const TIMEOUT_SECONDS: u32 = 60;

#[path = "common/time.rs"]
mod time;
use time::at;

fn cents(value: i64) -> Decimal {
    Decimal::new(value, 2)
}

fn account_id(n: usize) -> AccountId {
    AccountId::new(Uuid::from_u128(1_000 + n as u128))
}

fn transfer_id(n: usize) -> TransferId {
    TransferId::new(Uuid::from_u128(1_000_000 + n as u128))
}

fn new_account(n: usize, constraint: BalanceConstraint) -> NewAccount {
    NewAccount {
        id: account_id(n),
        code: AccountCode::parse(&format!("account-{n}")).unwrap(),
        currency: Currency::iso("EUR").unwrap(),
        normal_side: NormalSide::Credit,
        constraint,
        metadata: Metadata::default(),
    }
}

fn new_transfer(
    n: usize,
    debit: usize,
    credit: usize,
    amount_cents: i64,
    pending: bool,
) -> NewTransfer {
    NewTransfer {
        id: transfer_id(n),
        debit_account_id: account_id(debit),
        credit_account_id: account_id(credit),
        amount: cents(amount_cents),
        currency: CurrencyCode::parse("EUR").unwrap(),
        code: None,
        reference: None,
        description: None,
        metadata: Metadata::default(),
        pending,
        timeout_seconds: pending.then_some(TIMEOUT_SECONDS),
        reverses: None,
    }
}

fn reversal(n: usize, amount_cents: Option<i64>) -> ReversalRequest {
    ReversalRequest {
        id: transfer_id(n),
        amount: amount_cents.map(cents),
        code: None,
        reference: None,
        description: None,
        metadata: Metadata::default(),
    }
}

/// A book with a funding account (0) and two unconstrained accounts (1, 2), 1 funded with 100.00.
fn funded_book() -> Book {
    let new_ledger = NewLedger {
        name: LedgerName::parse("main").unwrap(),
        assets: vec![],
        metadata: Metadata::default(),
    };
    let (mut book, _) = Book::genesis(new_ledger, at(0)).unwrap();
    for n in 0..3 {
        book.execute(
            &Command::OpenAccount(new_account(n, BalanceConstraint::None)),
            at(0),
        )
        .unwrap();
    }
    book.execute(
        &Command::CreateTransfer(new_transfer(900, 0, 1, 10_000, false)),
        at(0),
    )
    .unwrap();
    book
}

/// A book holding transfer 1 (1 → 2, 10.00) in the given state.
fn book_with_transfer_in(state: TransferState) -> Book {
    let mut book = funded_book();
    let pending = state != TransferState::Posted;
    book.execute(
        &Command::CreateTransfer(new_transfer(1, 1, 2, 1_000, pending)),
        at(1),
    )
    .unwrap();
    match state {
        TransferState::Pending | TransferState::Posted => {}
        TransferState::Voided => {
            book.execute(&Command::VoidTransfer(transfer_id(1)), at(2))
                .unwrap();
        }
        TransferState::Expired => {
            book.apply(
                LedgerEvent::TransferExpired(transfer_id(1)),
                at(1 + i64::from(TIMEOUT_SECONDS)),
            )
            .unwrap();
        }
    }
    assert_eq!(book.transfer(transfer_id(1)).unwrap().state, state);
    book
}

fn attempt_transfer_action(book: &mut Book, action: TransferAction) -> Result<(), Rejection> {
    let id = transfer_id(1);
    let result = match action {
        TransferAction::Post => book.execute(&Command::PostTransfer { id, amount: None }, at(3)),
        TransferAction::Void => book.execute(&Command::VoidTransfer(id), at(3)),
        TransferAction::Reverse => book.execute(
            &Command::ReverseTransfer {
                id,
                reversal: reversal(2, None),
            },
            at(3),
        ),
        TransferAction::Expire => book
            .apply(
                LedgerEvent::TransferExpired(id),
                at(100 + i64::from(TIMEOUT_SECONDS)),
            )
            .map(|applied| vec![applied]),
    };
    result.map(drop)
}

#[test]
fn every_transfer_state_and_action_pair_follows_the_transition_table() {
    for from in TransferState::ALL {
        for action in TransferAction::ALL {
            let mut book = book_with_transfer_in(*from);
            let result = attempt_transfer_action(&mut book, *action);
            match next_transfer_state(*from, *action) {
                Ok(to) => {
                    assert_eq!(result, Ok(()), "{from:?} --{action:?}--> {to:?} is allowed");
                    assert_eq!(book.transfer(transfer_id(1)).unwrap().state, to);
                }
                Err(transition) => {
                    assert_eq!(
                        result,
                        Err(Rejection::InvalidStateTransition {
                            entity: "transfer",
                            transition
                        }),
                        "{from:?} {action:?}"
                    );
                    assert_eq!(
                        book.transfer(transfer_id(1)).unwrap().state,
                        *from,
                        "a refused action changes nothing"
                    );
                }
            }
        }
    }
}

#[test]
fn every_account_status_and_action_pair_follows_the_transition_table() {
    let reach = |status: AccountStatus| {
        let mut book = funded_book();
        let id = account_id(2);
        match status {
            AccountStatus::Active => {}
            AccountStatus::Frozen => {
                drop(book.execute(&Command::FreezeAccount(id), at(1)).unwrap())
            }
            AccountStatus::Closed => drop(book.execute(&Command::CloseAccount(id), at(1)).unwrap()),
        }
        book
    };
    for from in AccountStatus::ALL {
        for action in AccountAction::ALL {
            let mut book = reach(*from);
            let id = account_id(2);
            let command = match action {
                AccountAction::Freeze => Command::FreezeAccount(id),
                AccountAction::Unfreeze => Command::UnfreezeAccount(id),
                AccountAction::Close => Command::CloseAccount(id),
            };
            let result = book.execute(&command, at(2)).map(drop);
            match next_account_status(*from, *action) {
                Ok(to) => {
                    assert_eq!(result, Ok(()), "{from:?} {action:?}");
                    assert_eq!(book.account(id).unwrap().status, to);
                }
                Err(transition) => {
                    assert_eq!(
                        result,
                        Err(Rejection::InvalidStateTransition {
                            entity: "account",
                            transition
                        })
                    );
                    assert_eq!(book.account(id).unwrap().status, *from);
                }
            }
        }
    }
}

#[test]
fn an_illegal_transition_names_its_from_and_to() {
    let mut book = book_with_transfer_in(TransferState::Voided);
    let refusal = attempt_transfer_action(&mut book, TransferAction::Post).unwrap_err();
    assert_eq!(
        refusal,
        Rejection::InvalidStateTransition {
            entity: "transfer",
            transition: InvalidTransition {
                from: "voided",
                action: "post",
                to: "posted"
            }
        }
    );
}

// ------------------------------------------------------------------ the reference model

const ACCOUNTS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModelStatus {
    Active,
    Frozen,
    Closed,
}

#[derive(Clone, Debug, Default)]
struct ModelAccount {
    overdraft_protected: bool,
    status: Option<ModelStatus>,
    posted_debits: i64,
    posted_credits: i64,
    pending_debits: i64,
    pending_credits: i64,
}

#[derive(Clone, Debug)]
struct ModelTransfer {
    debit: usize,
    credit: usize,
    amount: i64,
    state: TransferState,
    posted: i64,
    reversed: i64,
    deadline: Option<i64>,
}

/// The rules of §2–§4 written once more, plainly, in integer cents.
#[derive(Clone, Debug, Default)]
struct Model {
    accounts: Vec<ModelAccount>,
    transfers: Vec<ModelTransfer>,
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        debit: usize,
        credit: usize,
        amount: i64,
        pending: bool,
    },
    Post {
        transfer: usize,
        amount: Option<i64>,
    },
    Void {
        transfer: usize,
    },
    Reverse {
        transfer: usize,
        amount: Option<i64>,
    },
    /// Let time pass by this many seconds, then expire what is due.
    Wait {
        seconds: i64,
    },
    Freeze {
        account: usize,
    },
    Unfreeze {
        account: usize,
    },
    Close {
        account: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let account = 0..ACCOUNTS;
    let transfer = 0..40usize;
    prop_oneof![
        4 => (
            account.clone(),
            account.clone(),
            1i64..5_000,
            any::<bool>()
        ).prop_map(|(
            debit,
            credit,
            amount,
            pending
        )| Op::Create { debit, credit, amount, pending }),
        2 => (
            transfer.clone(),
            prop::option::of(1i64..5_000)
        ).prop_map(|(transfer, amount)| Op::Post { transfer, amount }),
        1 => transfer.clone().prop_map(|transfer| Op::Void { transfer }),
        2 => (
            transfer,
            prop::option::of(1i64..5_000)
        ).prop_map(|(transfer, amount)| Op::Reverse { transfer, amount }),
        1 => (1i64..40).prop_map(|seconds| Op::Wait { seconds }),
        1 => account.clone().prop_map(|account| Op::Freeze { account }),
        1 => account.clone().prop_map(|account| Op::Unfreeze { account }),
        1 => account.prop_map(|account| Op::Close { account }),
    ]
}

impl Model {
    fn new() -> Model {
        let accounts = (0..ACCOUNTS)
            .map(|n| ModelAccount {
                overdraft_protected: n % 2 == 1,
                status: Some(ModelStatus::Active),
                ..ModelAccount::default()
            })
            .collect();
        Model {
            accounts,
            transfers: Vec::new(),
        }
    }

    fn fits(account: &ModelAccount) -> bool {
        !account.overdraft_protected
            || account.pending_debits + account.posted_debits <= account.posted_credits
    }

    /// Moves balances on both accounts if both stay within their constraint; whether it did.
    fn move_money(&mut self, debit: usize, credit: usize, pending: i64, posted: i64) -> bool {
        let mut after = self.accounts.clone();
        after[debit].pending_debits += pending;
        after[debit].posted_debits += posted;
        after[credit].pending_credits += pending;
        after[credit].posted_credits += posted;
        if !Self::fits(&after[debit]) || !Self::fits(&after[credit]) {
            return false;
        }
        self.accounts = after;
        true
    }

    fn status(&self, account: usize) -> ModelStatus {
        self.accounts[account].status.expect("opened")
    }

    fn live_pending(&self, transfer: usize, now: i64) -> bool {
        let t = &self.transfers[transfer];
        t.state == TransferState::Pending && t.deadline.is_none_or(|deadline| now < deadline)
    }

    /// Applies an operation at `now`; whether the ledger accepted it.
    fn apply(&mut self, op: &Op, now: i64) -> bool {
        match *op {
            Op::Create {
                debit,
                credit,
                amount,
                pending,
            } => {
                if debit == credit
                    || self.status(debit) != ModelStatus::Active
                    || self.status(credit) != ModelStatus::Active
                {
                    return false;
                }
                let (pending_amount, posted_amount) =
                    if pending { (amount, 0) } else { (0, amount) };
                if !self.move_money(debit, credit, pending_amount, posted_amount) {
                    return false;
                }
                let deadline = pending.then_some(now + i64::from(TIMEOUT_SECONDS));
                let state = if pending {
                    TransferState::Pending
                } else {
                    TransferState::Posted
                };
                self.transfers.push(ModelTransfer {
                    debit,
                    credit,
                    amount,
                    state,
                    posted: posted_amount,
                    reversed: 0,
                    deadline,
                });
                true
            }
            Op::Post { transfer, amount } => {
                let Some(t) = self.transfers.get(transfer).cloned() else {
                    return false;
                };
                let amount = amount.unwrap_or(t.amount);
                let active = self.status(t.debit) == ModelStatus::Active
                    && self.status(t.credit) == ModelStatus::Active;
                if !self.live_pending(transfer, now) || amount > t.amount || !active {
                    return false;
                }
                assert!(
                    self.move_money(t.debit, t.credit, -t.amount, amount),
                    "posting never breaks a constraint"
                );
                let t = &mut self.transfers[transfer];
                t.state = TransferState::Posted;
                t.posted = amount;
                true
            }
            Op::Void { transfer } => {
                if transfer >= self.transfers.len() || !self.live_pending(transfer, now) {
                    return false;
                }
                let t = self.transfers[transfer].clone();
                assert!(self.move_money(t.debit, t.credit, -t.amount, 0));
                self.transfers[transfer].state = TransferState::Voided;
                true
            }
            Op::Reverse { transfer, amount } => {
                let Some(t) = self.transfers.get(transfer).cloned() else {
                    return false;
                };
                let remaining = t.posted - t.reversed;
                let amount = amount.unwrap_or(remaining);
                let open = self.status(t.debit) != ModelStatus::Closed
                    && self.status(t.credit) != ModelStatus::Closed;
                if t.state != TransferState::Posted || amount == 0 || amount > remaining || !open {
                    return false;
                }
                if !self.move_money(t.credit, t.debit, 0, amount) {
                    return false;
                }
                self.transfers[transfer].reversed += amount;
                self.transfers.push(ModelTransfer {
                    debit: t.credit,
                    credit: t.debit,
                    amount,
                    state: TransferState::Posted,
                    posted: amount,
                    reversed: 0,
                    deadline: None,
                });
                true
            }
            Op::Wait { .. } => {
                for transfer in 0..self.transfers.len() {
                    let t = self.transfers[transfer].clone();
                    if t.state == TransferState::Pending
                        && t.deadline.is_some_and(|deadline| deadline <= now)
                    {
                        assert!(self.move_money(t.debit, t.credit, -t.amount, 0));
                        self.transfers[transfer].state = TransferState::Expired;
                    }
                }
                true
            }
            Op::Freeze { account } => {
                self.set_status(account, ModelStatus::Active, ModelStatus::Frozen)
            }
            Op::Unfreeze { account } => {
                self.set_status(account, ModelStatus::Frozen, ModelStatus::Active)
            }
            Op::Close { account } => {
                let a = &self.accounts[account];
                let empty = a.posted_debits == a.posted_credits
                    && a.pending_debits == 0
                    && a.pending_credits == 0;
                if self.status(account) == ModelStatus::Closed || !empty {
                    return false;
                }
                self.accounts[account].status = Some(ModelStatus::Closed);
                true
            }
        }
    }

    fn set_status(&mut self, account: usize, from: ModelStatus, to: ModelStatus) -> bool {
        if self.status(account) != from {
            return false;
        }
        self.accounts[account].status = Some(to);
        true
    }
}

/// The engine's command for an operation, given the ids the model has handed out so far.
fn command_for(
    op: &Op,
    created: &[TransferId],
    next_transfer: usize,
    book: &Book,
    now: i64,
) -> Command {
    let transfer = |index: usize| created.get(index).copied().unwrap_or(transfer_id(999_999));
    match *op {
        Op::Create {
            debit,
            credit,
            amount,
            pending,
        } => Command::CreateTransfer(new_transfer(next_transfer, debit, credit, amount, pending)),
        Op::Post {
            transfer: index,
            amount,
        } => Command::PostTransfer {
            id: transfer(index),
            amount: amount.map(cents),
        },
        Op::Void { transfer: index } => Command::VoidTransfer(transfer(index)),
        Op::Reverse {
            transfer: index,
            amount,
        } => Command::ReverseTransfer {
            id: transfer(index),
            reversal: reversal(next_transfer, amount),
        },
        Op::Wait { .. } => {
            let due = created
                .iter()
                .filter(|id| {
                    book.transfer(**id).is_some_and(|t| {
                        t.state == TransferState::Pending
                            && t.expires_at.is_some_and(|deadline| deadline <= at(now))
                    })
                })
                .copied()
                .collect();
            Command::ExpireTransfers(due)
        }
        Op::Freeze { account } => Command::FreezeAccount(account_id(account)),
        Op::Unfreeze { account } => Command::UnfreezeAccount(account_id(account)),
        Op::Close { account } => Command::CloseAccount(account_id(account)),
    }
}

fn assert_book_matches_model(book: &Book, model: &Model, created: &[TransferId], step: usize) {
    for (n, expected) in model.accounts.iter().enumerate() {
        let account = book.account(account_id(n)).unwrap();
        let balances = &account.balances;
        let actual = (
            balances.posted_debits,
            balances.posted_credits,
            balances.pending_debits,
            balances.pending_credits,
        );
        let wanted = (
            cents(expected.posted_debits),
            cents(expected.posted_credits),
            cents(expected.pending_debits),
            cents(expected.pending_credits),
        );
        assert_eq!(actual, wanted, "step {step}: balances of account {n}");
        let status = match expected.status.unwrap() {
            ModelStatus::Active => AccountStatus::Active,
            ModelStatus::Frozen => AccountStatus::Frozen,
            ModelStatus::Closed => AccountStatus::Closed,
        };
        assert_eq!(account.status, status, "step {step}: status of account {n}");
    }
    assert_eq!(
        created.len(),
        model.transfers.len(),
        "step {step}: transfer count"
    );
    for (index, expected) in model.transfers.iter().enumerate() {
        let transfer = book.transfer(created[index]).unwrap();
        assert_eq!(
            (
                transfer.state,
                transfer.posted_amount,
                transfer.reversed_amount
            ),
            (
                expected.state,
                cents(expected.posted),
                cents(expected.reversed)
            ),
            "step {step}: transfer {index}"
        );
    }
}

fn run_against_model(ops: &[Op]) {
    let name = LedgerName::parse("main").unwrap();
    let new_ledger = NewLedger {
        name: name.clone(),
        assets: vec![],
        metadata: Metadata::default(),
    };
    let (mut book, genesis) = Book::genesis(new_ledger, at(0)).unwrap();
    let mut chain = ChainHead::GENESIS;
    let mut journal: Vec<JournalEvent> = vec![chain.seal(&name, &genesis, &Provenance::system())];
    let mut model = Model::new();
    for n in 0..ACCOUNTS {
        let constraint = if n % 2 == 1 {
            BalanceConstraint::DebitsMustNotExceedCredits
        } else {
            BalanceConstraint::None
        };
        let applied = book
            .execute(&Command::OpenAccount(new_account(n, constraint)), at(0))
            .unwrap();
        journal.extend(
            applied
                .iter()
                .map(|event| chain.seal(&name, event, &Provenance::system())),
        );
    }
    let mut created: Vec<TransferId> = Vec::new();
    let mut now = 1;
    for (step, op) in ops.iter().enumerate() {
        if let Op::Wait { seconds } = op {
            now += seconds;
        }
        let next_transfer = 2_000 + step;
        let command = command_for(op, &created, next_transfer, &book, now);
        let accepted_by_model = model.apply(op, now);
        let result = book.execute(&command, at(now));
        let accepted_by_book = match (&result, op) {
            (Ok(_), _) => true,
            (Err(_), _) => false,
        };
        assert_eq!(
            accepted_by_book, accepted_by_model,
            "step {step}: {op:?} -> {result:?}"
        );
        if let Ok(applied) = result {
            journal.extend(
                applied
                    .iter()
                    .map(|event| chain.seal(&name, event, &Provenance::system())),
            );
            if matches!(op, Op::Create { .. } | Op::Reverse { .. }) {
                created.push(transfer_id(next_transfer));
            }
        }
        assert_book_matches_model(&book, &model, &created, step);
    }
    // §4.7: the journal alone, replayed, reproduces every account and transfer.
    let mut replayer = Replayer::new();
    for event in &journal {
        replayer
            .push(&JournalEvent::from_json(&event.to_json()).unwrap())
            .unwrap_or_else(|fault| panic!("{fault}"));
    }
    let replayed = replayer.book().unwrap();
    for account in book.accounts() {
        assert_eq!(replayed.account(account.id), Some(account));
    }
    for transfer in book.transfers() {
        assert_eq!(replayed.transfer(transfer.id), Some(transfer));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_agree_with_the_reference_model_and_the_journal_replays(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        run_against_model(&ops);
    }
}

#[test]
fn a_funded_sequence_exercises_every_kind_of_operation() {
    let ops = vec![
        Op::Create {
            debit: 0,
            credit: 1,
            amount: 10_000,
            pending: false,
        },
        Op::Create {
            debit: 1,
            credit: 2,
            amount: 3_000,
            pending: true,
        },
        Op::Post {
            transfer: 1,
            amount: Some(2_000),
        },
        Op::Create {
            debit: 1,
            credit: 2,
            amount: 1_000,
            pending: true,
        },
        Op::Void { transfer: 2 },
        Op::Create {
            debit: 1,
            credit: 0,
            amount: 500,
            pending: true,
        },
        Op::Wait { seconds: 61 },
        Op::Reverse {
            transfer: 0,
            amount: Some(4_000),
        },
        Op::Reverse {
            transfer: 0,
            amount: None,
        },
        Op::Reverse {
            transfer: 0,
            amount: Some(1),
        },
        Op::Freeze { account: 2 },
        Op::Create {
            debit: 0,
            credit: 2,
            amount: 100,
            pending: false,
        },
        Op::Reverse {
            transfer: 1,
            amount: None,
        },
        Op::Unfreeze { account: 2 },
        Op::Close { account: 3 },
        Op::Create {
            debit: 0,
            credit: 3,
            amount: 100,
            pending: false,
        },
    ];
    run_against_model(&ops);
}
