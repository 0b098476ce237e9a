//! Many concurrent clients against one ledger: group commit must keep every invariant, answer
//! each request with its own result, and never fork the chain, even across two service
//! instances on one database.

use std::sync::Arc;

use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    assert_balance_invariants_in_database, assert_journal_reproduces_the_ledger, spawn_app,
    spawn_app_on, TestApp, Wallet,
};

const CLIENTS: usize = 16;

#[derive(Clone, Debug)]
struct Workload {
    accounts: usize,
    /// Every transfer credits account 0.
    hot_account: bool,
    /// (debit index, credit index, amount in cents).
    transfers: Vec<(usize, usize, u32)>,
}

fn workload() -> impl Strategy<Value = Workload> {
    (4usize..10, any::<bool>()).prop_flat_map(|(accounts, hot_account)| {
        let transfer = (0..accounts, 0..accounts, 1u32..30_000);
        prop::collection::vec(transfer, 150..300).prop_map(move |transfers| Workload {
            accounts,
            hot_account,
            transfers: transfers
                .into_iter()
                .map(|(debit, credit, cents)| {
                    let credit = if hot_account { 0 } else { credit };
                    // Distinct accounts: shift the debit when both picks collide.
                    let debit = if debit == credit {
                        (debit + 1) % accounts
                    } else {
                        debit
                    };
                    (debit, credit, cents)
                })
                .collect(),
        })
    })
}

/// Opens `count` wallets that cannot be overdrawn plus an unconstrained `world` account, and
/// funds each wallet with 100.00 from `world`.
async fn funded_wallets(app: &TestApp, count: usize) -> (Uuid, Vec<Uuid>) {
    let world = app.ledger_with_world("main").await;
    let mut wallets = Vec::new();
    for index in 0..count {
        let wallet = app
            .open_account(
                "main",
                &format!("wallet-{index}"),
                json!({"debits_must_not_exceed_credits": true}),
            )
            .await;
        assert_eq!(
            app.transfer("main", world, wallet, "100.00").await.status,
            StatusCode::CREATED
        );
        wallets.push(wallet);
    }
    (world, wallets)
}

/// Sends the transfers from `CLIENTS` concurrent clients, spread over `apps`; returns how many
/// succeeded. Every answer must be a success or an `insufficient_funds` refusal.
async fn send_concurrently(
    apps: &[Arc<TestApp>],
    wallets: &[Uuid],
    transfers: &[(usize, usize, u32)],
) -> usize {
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let app = apps[client % apps.len()].clone();
        let wallets = wallets.to_vec();
        let mine: Vec<_> = transfers
            .iter()
            .skip(client)
            .step_by(CLIENTS)
            .copied()
            .collect();
        clients.push(tokio::spawn(async move {
            let mut successes = 0;
            for (debit, credit, cents) in mine {
                let amount = format!("{}.{:02}", cents / 100, cents % 100);
                let reply = app
                    .transfer("main", wallets[debit], wallets[credit], &amount)
                    .await;
                match reply.status {
                    StatusCode::CREATED => successes += 1,
                    StatusCode::UNPROCESSABLE_ENTITY => {
                        assert_eq!(reply.code(), "insufficient_funds", "{}", reply.text)
                    }
                    other => panic!("unexpected {other}: {}", reply.text),
                }
            }
            successes
        }));
    }
    let mut successes = 0;
    for client in clients {
        successes += client.await.expect("client task");
    }
    successes
}

async fn assert_constraints_hold(app: &TestApp, wallets: &[Uuid]) {
    for wallet in wallets {
        let account = app.account("main", *wallet).await;
        let amount = |field: &str| {
            account[field]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        };
        assert!(
            amount("pending_debits") + amount("posted_debits") <= amount("posted_credits"),
            "§4.4 on {wallet}"
        );
    }
}

async fn run_workload(workload: Workload) {
    let app = Arc::new(spawn_app().await);
    let (_world, wallets) = funded_wallets(&app, workload.accounts).await;
    let successes =
        send_concurrently(std::slice::from_ref(&app), &wallets, &workload.transfers).await;

    let committed = app.list_all("/v1/ledgers/main/transfers").await.len();
    assert_eq!(
        committed,
        successes + workload.accounts,
        "committed transfers = successes seen + funding"
    );
    assert_constraints_hold(&app, &wallets).await;
    assert_balance_invariants_in_database(&app.database).await;
    let events = assert_journal_reproduces_the_ledger(&app, "main").await;
    assert_eq!(events, 1 + (workload.accounts + 1) + committed);
    if !workload.hot_account {
        assert!(successes > 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn concurrent_random_transfers_keep_every_invariant(workload in workload()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run_workload(workload));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_account_credited_by_every_client_stays_exact() {
    let workload = Workload {
        accounts: 6,
        hot_account: true,
        transfers: (0..240)
            .map(|i| (1 + i % 5, 0, 1 + (i as u32 * 37) % 4000))
            .collect(),
    };
    run_workload(workload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_service_instances_on_one_database_share_one_chain_without_fork_or_gap() {
    let first = Arc::new(spawn_app().await);
    let second = Arc::new(spawn_app_on(first.database.clone()).await);
    let (_world, wallets) = funded_wallets(&first, 6).await;
    let transfers: Vec<_> = (0..300)
        .map(|i| (i % 6, (i + 1 + i / 6) % 6, 1 + (i as u32 * 131) % 9000))
        .filter(|(d, c, _)| d != c)
        .collect();
    let successes = send_concurrently(&[first.clone(), second.clone()], &wallets, &transfers).await;

    for app in [&first, &second] {
        assert_eq!(
            app.list_all("/v1/ledgers/main/transfers").await.len(),
            successes + 6
        );
        let events = assert_journal_reproduces_the_ledger(app, "main").await;
        assert_eq!(
            events,
            1 + 7 + 6 + successes,
            "seq is gapless and the chain unforked, seen from either instance"
        );
    }
    assert_balance_invariants_in_database(&first.database).await;
    assert_constraints_hold(&second, &wallets).await;
}

#[tokio::test]
async fn an_instance_never_decides_on_balances_another_instance_has_changed() {
    let first = spawn_app().await;
    let second = spawn_app_on(first.database.clone()).await;
    let (world, wallet) = first.world_and_wallet("main", Wallet::NoOverdraft).await;
    // The first instance now holds the wallet at 10.00 in its writer's cache...
    assert_eq!(
        first.transfer("main", world, wallet, "10.00").await.status,
        StatusCode::CREATED
    );
    // ...the second spends it all...
    assert_eq!(
        second.transfer("main", wallet, world, "10.00").await.status,
        StatusCode::CREATED
    );
    // ...so the first must see an empty wallet, not its cached 10.00.
    let overdraft = first.transfer("main", wallet, world, "1.00").await;
    assert_eq!(
        (overdraft.status, overdraft.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_funds")
    );
    assert_eq!(
        first.account("main", wallet).await["posted_balance"],
        "0.00"
    );
    assert_journal_reproduces_the_ledger(&first, "main").await;
}
