//! §7 the set-based matching of a reconciliation run (`Storage::compute_reconciliation_items`):
//! a ledger built over HTTP, a statement and a run inserted with SQL, the items checked exactly.

use ledger::storage::{PoolSettings, Storage};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{owner_connection, spawn_app, TestApp};

/// A bank account (normal side debit, EUR) and its counterpart, in the ledger `main`.
struct Bank {
    app: TestApp,
    bank: Uuid,
    counter: Uuid,
    ledger_id: i32,
    storage: Storage,
    owner: tokio_postgres::Client,
}

/// One statement line: signed amount (positive = money into the bank account), booking date in
/// days from the day the ledger's transfers were made, bank reference.
struct Line {
    amount: &'static str,
    days: i32,
    reference: Option<&'static str>,
}

fn line(amount: &'static str, days: i32, reference: Option<&'static str>) -> Line {
    Line {
        amount,
        days,
        reference,
    }
}

/// An item as stored, numbers as text so that their scale shows.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Item {
    item_no: i32,
    status: String,
    rule: String,
    line_no: Option<i32>,
    transfer_ids: Vec<Uuid>,
    candidates: Vec<Uuid>,
    statement_amount: Option<String>,
    ledger_amount: Option<String>,
    difference: Option<String>,
    reference: Option<String>,
}

impl Item {
    fn decided(&self) -> (&str, &str) {
        (self.status.as_str(), self.rule.as_str())
    }
}

fn text(value: &str) -> Option<String> {
    Some(value.to_owned())
}

impl Bank {
    async fn new() -> Bank {
        let app = spawn_app().await;
        app.create_ledger("main").await;
        let bank = app
            .open_account("main", "bank", json!({"normal_side": "debit"}))
            .await;
        let counter = app.open_account("main", "counter", json!({})).await;
        let owner = owner_connection(&app.database).await;
        let ledger_id: i32 = owner
            .query_one("SELECT id FROM ledgers WHERE name = 'main'", &[])
            .await
            .unwrap()
            .get(0);
        // A short default timeout, as the service's: the computation sets its own.
        let settings = PoolSettings {
            custom_plans: true,
            max_connections: 2,
            statement_timeout_ms: 2_000,
            connect_timeout_ms: 5_000,
        };
        let storage = Storage::migrate_and_connect(app.database.clone(), settings)
            .await
            .unwrap();
        assert_eq!(
            storage.current_user().await.unwrap(),
            "ledger_service",
            "the matching runs with the service's own rights"
        );
        Bank {
            app,
            bank,
            counter,
            ledger_id,
            storage,
            owner,
        }
    }

    async fn post_transfer(&self, body: Value) -> Uuid {
        let reply = self.app.post("/v1/ledgers/main/transfers", &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Money into the bank account (a transfer that debits it).
    async fn pay_in(&self, amount: &str, reference: Option<&str>) -> Uuid {
        let mut body = json!({
            "debit_account_id": self.bank,
            "credit_account_id": self.counter,
            "amount": amount,
            "currency": "EUR"
        });
        if let Some(reference) = reference {
            body["reference"] = json!(reference);
        }
        self.post_transfer(body).await
    }

    /// Money out of the bank account (a transfer that credits it).
    async fn pay_out(&self, amount: &str, reference: Option<&str>) -> Uuid {
        let mut body = json!({
            "debit_account_id": self.counter,
            "credit_account_id": self.bank,
            "amount": amount,
            "currency": "EUR"
        });
        if let Some(reference) = reference {
            body["reference"] = json!(reference);
        }
        self.post_transfer(body).await
    }

    async fn pending_in(&self, amount: &str) -> Uuid {
        self.post_transfer(json!({
            "debit_account_id": self.bank,
            "credit_account_id": self.counter,
            "amount": amount,
            "currency": "EUR",
            "pending": true
        }))
        .await
    }

    async fn act(&self, id: Uuid, action: &str, body: Value) -> Value {
        let reply = self
            .app
            .post(&format!("/v1/ledgers/main/transfers/{id}/{action}"), &body)
            .await;
        assert!(reply.status.is_success(), "{action}: {}", reply.text);
        reply.body
    }

    async fn head_seq(&self) -> i64 {
        self.owner
            .query_one(
                "SELECT last_seq FROM ledger_heads WHERE ledger_id = $1",
                &[&self.ledger_id],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Inserts a statement of `lines` (its period from their dates, relative to the UTC day of
    /// the ledger's latest event) and returns its id.
    async fn statement(&self, lines: &[Line]) -> Uuid {
        let id = Uuid::new_v4();
        let digest = [id.as_bytes().as_slice(), id.as_bytes().as_slice()].concat();
        let first = lines.iter().map(|line| line.days).min().unwrap_or(0);
        let last = lines.iter().map(|line| line.days).max().unwrap_or(0);
        self.owner
            .execute(
                "INSERT INTO statements (ledger_id, id, account_id, sha256, format, byte_count, \
                   line_count, duplicate_line_count, currency, total_in, total_out, \
                   period_start, period_end, created_at, created_by) \
                 SELECT $1, $2, $3, $4, 'csv', 100, $5, 0, 'EUR', 0, 0, \
                   (h.last_at AT TIME ZONE 'UTC')::date + $6::integer, \
                   (h.last_at AT TIME ZONE 'UTC')::date + $7::integer, now(), $8 \
                 FROM ledger_heads h WHERE h.ledger_id = $1",
                &[
                    &self.ledger_id,
                    &id,
                    &self.bank,
                    &digest,
                    &(lines.len() as i32),
                    &first,
                    &last,
                    &Uuid::new_v4(),
                ],
            )
            .await
            .unwrap();
        for (index, line) in lines.iter().enumerate() {
            let line_no = index as i32 + 1;
            self.owner
                .execute(
                    "INSERT INTO statement_lines (ledger_id, statement_id, line_no, number, \
                       booking_date, amount, reference) \
                     SELECT $1, $2, $3, $3 + 1, (h.last_at AT TIME ZONE 'UTC')::date + \
                     $4::integer, \
                       $5::text::numeric, $6 \
                     FROM ledger_heads h WHERE h.ledger_id = $1",
                    &[
                        &self.ledger_id,
                        &id,
                        &line_no,
                        &line.days,
                        &line.amount,
                        &line.reference,
                    ],
                )
                .await
                .unwrap();
        }
        id
    }

    /// Inserts a running run of `statement` as of `cutoff_seq` and returns its id.
    async fn run(&self, statement: Uuid, cutoff_seq: i64, window_days: i32) -> Uuid {
        let id = Uuid::new_v4();
        self.owner
            .execute(
                "INSERT INTO reconciliation_runs (ledger_id, id, statement_id, account_id, state, \
                   cutoff_seq, date_window_days, period_start, period_end, api_key_id, \
                   idempotency_key, fingerprint, created_at) \
                 SELECT $1, $2, s.id, s.account_id, 'running', $4, $5, s.period_start, \
                   s.period_end, $6, $7, $8, now() \
                 FROM statements s WHERE s.ledger_id = $1 AND s.id = $3",
                &[
                    &self.ledger_id,
                    &id,
                    &statement,
                    &cutoff_seq,
                    &window_days,
                    &Uuid::new_v4(),
                    &id.to_string(),
                    &vec![7u8; 32],
                ],
            )
            .await
            .unwrap();
        id
    }

    /// A statement of `lines` reconciled as of now with a window of `window_days`: its items.
    async fn reconcile(&self, lines: &[Line], window_days: i32) -> Vec<Item> {
        let statement = self.statement(lines).await;
        let run = self
            .run(statement, self.head_seq().await, window_days)
            .await;
        assert!(self.compute(run).await, "a fresh run is computed");
        self.items(run).await
    }

    async fn compute(&self, run: Uuid) -> bool {
        self.storage
            .compute_reconciliation_items(self.ledger_id, run)
            .await
            .unwrap()
    }

    async fn items(&self, run: Uuid) -> Vec<Item> {
        let rows = self
            .owner
            .query(
                "SELECT item_no, status, rule, line_no, transfer_ids, candidate_transfer_ids, \
                   statement_amount::text, ledger_amount::text, difference::text, reference, \
                   resolution IS NULL AND resolution_transfer_id IS NULL \
                   AND resolution_note IS NULL AND resolution_actor IS NULL \
                   AND resolution_seq IS NULL \
                 FROM reconciliation_items WHERE ledger_id = $1 AND run_id = $2 \
                 ORDER BY item_no",
                &[&self.ledger_id, &run],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                assert!(row.get::<_, bool>(10), "resolutions start empty");
                Item {
                    item_no: row.get(0),
                    status: row.get(1),
                    rule: row.get(2),
                    line_no: row.get(3),
                    transfer_ids: row.get(4),
                    candidates: row.get(5),
                    statement_amount: row.get(6),
                    ledger_amount: row.get(7),
                    difference: row.get(8),
                    reference: row.get(9),
                }
            })
            .collect()
    }

    /// Every column of a run's items but the run id, one text per item, and the run's counters.
    async fn items_as_text(&self, run: Uuid) -> (Vec<String>, bool, Option<i32>) {
        let items = self
            .owner
            .query(
                "SELECT row(ledger_id, item_no, status, rule, line_no, transfer_ids, \
                   candidate_transfer_ids, statement_amount, ledger_amount, difference, \
                   booking_date, reference, resolution, resolution_transfer_id, \
                   resolution_note, resolution_actor, resolution_seq)::text \
                 FROM reconciliation_items WHERE ledger_id = $1 AND run_id = $2 \
                 ORDER BY item_no",
                &[&self.ledger_id, &run],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let run = self
            .owner
            .query_one(
                "SELECT items_ready, item_count FROM reconciliation_runs \
                 WHERE ledger_id = $1 AND id = $2",
                &[&self.ledger_id, &run],
            )
            .await
            .unwrap();
        (items, run.get(0), run.get(1))
    }
}

#[tokio::test]
async fn a_reference_and_an_equal_amount_match_the_kth_line_with_the_kth_transfer() {
    let bank = Bank::new().await;
    let first = bank.pay_in("10.00", Some("inv-1")).await;
    let second = bank.pay_in("10.00", Some("inv-1")).await;
    let other = bank.pay_in("7.5", Some("inv-2")).await;
    let items = bank
        .reconcile(
            &[
                line("10.00", 0, Some("inv-1")),
                // The reference decides, not the date: ten days off, a window of three.
                line("7.50", -10, Some("inv-2")),
                line("10.00", 0, Some("inv-1")),
            ],
            3,
        )
        .await;
    assert_eq!(
        items,
        vec![
            Item {
                item_no: 1,
                status: "matched".into(),
                rule: "reference_amount".into(),
                line_no: Some(1),
                transfer_ids: vec![first],
                candidates: vec![],
                statement_amount: text("10.00"),
                ledger_amount: text("10.00"),
                difference: text("0.00"),
                reference: text("inv-1"),
            },
            Item {
                item_no: 2,
                status: "matched".into(),
                rule: "reference_amount".into(),
                line_no: Some(2),
                transfer_ids: vec![other],
                candidates: vec![],
                statement_amount: text("7.50"),
                ledger_amount: text("7.50"),
                difference: text("0.00"),
                reference: text("inv-2"),
            },
            Item {
                item_no: 3,
                status: "matched".into(),
                rule: "reference_amount".into(),
                line_no: Some(3),
                transfer_ids: vec![second],
                candidates: vec![],
                statement_amount: text("10.00"),
                ledger_amount: text("10.00"),
                difference: text("0.00"),
                reference: text("inv-1"),
            },
        ]
    );
}

#[tokio::test]
async fn a_date_shifted_inside_the_window_matches_by_amount_and_outside_it_is_missing_on_both_sides(
) {
    let bank = Bank::new().await;
    let shifted = bank.pay_in("25.00", Some("pay-7")).await;
    let too_far = bank.pay_in("40.00", None).await;
    let other_reference = bank.pay_in("30.00", Some("ours")).await;
    let items = bank
        .reconcile(
            &[
                // No bank reference: any ledger reference will do.
                line("25.00", -3, None),
                line("40.00", 4, None),
                // Both references present and different: never a candidate.
                line("30.00", 0, Some("theirs")),
            ],
            3,
        )
        .await;
    let decided: Vec<_> = items.iter().map(Item::decided).collect();
    assert_eq!(
        decided,
        vec![
            ("matched", "amount_date"),
            ("missing_in_ledger", "unmatched"),
            ("missing_in_ledger", "unmatched"),
            ("missing_in_statement", "unmatched"),
            ("missing_in_statement", "unmatched"),
        ]
    );
    assert_eq!(items[0].transfer_ids, vec![shifted]);
    assert_eq!(
        (
            items[0].ledger_amount.as_deref(),
            items[0].difference.as_deref()
        ),
        (Some("25.00"), Some("0.00"))
    );
    assert_eq!(items[0].reference, None, "the line's reference");
    assert_eq!(
        (
            items[1].transfer_ids.len(),
            items[1].ledger_amount.as_deref()
        ),
        (0, None)
    );
    // Transfers missing from the statement follow the lines, in the order they were made.
    assert_eq!(
        items[3..]
            .iter()
            .map(|item| (item.item_no, item.line_no, item.transfer_ids.clone()))
            .collect::<Vec<_>>(),
        vec![(4, None, vec![too_far]), (5, None, vec![other_reference]),]
    );
    assert_eq!(
        (
            items[4].ledger_amount.as_deref(),
            items[4].statement_amount.as_deref(),
            items[4].difference.as_deref(),
            items[4].reference.as_deref()
        ),
        (Some("30.00"), None, None, Some("ours"))
    );
}

#[tokio::test]
async fn a_single_candidate_that_another_line_also_wants_is_not_matched_by_amount_and_date() {
    let bank = Bank::new().await;
    let wanted = bank.pay_in("9.99", None).await;
    let items = bank
        .reconcile(&[line("9.99", 0, None), line("9.99", 1, None)], 3)
        .await;
    let decided: Vec<_> = items.iter().map(Item::decided).collect();
    assert_eq!(
        decided,
        vec![("ambiguous", "amount_date"), ("ambiguous", "amount_date")],
        "the transfer has two candidate lines"
    );
    assert!(items.iter().all(|item| item.candidates == vec![wanted]));
}

#[tokio::test]
async fn transfers_of_a_reference_that_sum_to_its_line_are_matched_as_a_split() {
    let bank = Bank::new().await;
    let parts = [
        bank.pay_in("60.00", Some("payout-9")).await,
        bank.pay_in("30.00", Some("payout-9")).await,
        bank.pay_in("10.00", Some("payout-9")).await,
    ];
    let short = [
        bank.pay_in("20.00", Some("payout-10")).await,
        bank.pay_in("20.00", Some("payout-10")).await,
    ];
    let items = bank
        .reconcile(
            &[
                line("100.00", 0, Some("payout-9")),
                line("50.00", 0, Some("payout-10")),
            ],
            3,
        )
        .await;
    assert_eq!(
        items,
        vec![
            Item {
                item_no: 1,
                status: "matched".into(),
                rule: "reference_split".into(),
                line_no: Some(1),
                transfer_ids: parts.to_vec(),
                candidates: vec![],
                statement_amount: text("100.00"),
                ledger_amount: text("100.00"),
                difference: text("0.00"),
                reference: text("payout-9"),
            },
            // Parts that do not add up are no split: the line is left to a person.
            Item {
                item_no: 2,
                status: "ambiguous".into(),
                rule: "reference_mismatch".into(),
                line_no: Some(2),
                transfer_ids: vec![],
                candidates: short.to_vec(),
                statement_amount: text("50.00"),
                ledger_amount: None,
                difference: None,
                reference: text("payout-10"),
            },
        ]
    );
}

#[tokio::test]
async fn a_reference_with_a_changed_amount_is_mismatched_and_one_without_a_single_pair_is_ambiguous(
) {
    let bank = Bank::new().await;
    let changed = bank.pay_in("45.50", Some("inv-5")).await;
    let shared = bank.pay_in("19.00", Some("inv-6")).await;
    let items = bank
        .reconcile(
            &[
                line("50.00", 0, Some("inv-5")),
                line("20.00", 0, Some("inv-6")),
                line("21.00", 1, Some("inv-6")),
            ],
            3,
        )
        .await;
    assert_eq!(
        items[0],
        Item {
            item_no: 1,
            status: "mismatched".into(),
            rule: "reference_mismatch".into(),
            line_no: Some(1),
            transfer_ids: vec![changed],
            candidates: vec![],
            statement_amount: text("50.00"),
            ledger_amount: text("45.50"),
            difference: text("4.50"),
            reference: text("inv-5"),
        }
    );
    for item in &items[1..] {
        assert_eq!(item.decided(), ("ambiguous", "reference_mismatch"));
        assert_eq!(
            (
                item.transfer_ids.clone(),
                item.candidates.clone(),
                item.ledger_amount.clone()
            ),
            (vec![], vec![shared], None)
        );
    }
    assert_eq!(items.len(), 3, "a listed candidate is not missing");
}

#[tokio::test]
async fn two_equally_good_candidates_make_the_line_ambiguous_and_neither_missing() {
    let bank = Bank::new().await;
    let one = bank.pay_in("12.00", None).await;
    let other = bank.pay_in("12.00", Some("their-ref")).await;
    let items = bank.reconcile(&[line("12.00", 0, None)], 3).await;
    assert_eq!(
        items,
        vec![Item {
            item_no: 1,
            status: "ambiguous".into(),
            rule: "amount_date".into(),
            line_no: Some(1),
            transfer_ids: vec![],
            candidates: vec![one, other],
            statement_amount: text("12.00"),
            ledger_amount: None,
            difference: None,
            reference: None,
        }]
    );
}

#[tokio::test]
async fn a_line_missing_from_the_ledger_and_transfers_missing_from_the_statement_are_reported() {
    let bank = Bank::new().await;
    let matched = bank.pay_in("5.00", None).await;
    let first_missing = bank.pay_out("88.00", Some("rent")).await;
    let second_missing = bank.pay_in("1.23", None).await;
    let items = bank
        .reconcile(&[line("77.00", 0, None), line("5.00", 1, None)], 2)
        .await;
    assert_eq!(
        items,
        vec![
            Item {
                item_no: 1,
                status: "missing_in_ledger".into(),
                rule: "unmatched".into(),
                line_no: Some(1),
                transfer_ids: vec![],
                candidates: vec![],
                statement_amount: text("77.00"),
                ledger_amount: None,
                difference: None,
                reference: None,
            },
            Item {
                item_no: 2,
                status: "matched".into(),
                rule: "amount_date".into(),
                line_no: Some(2),
                transfer_ids: vec![matched],
                candidates: vec![],
                statement_amount: text("5.00"),
                ledger_amount: text("5.00"),
                difference: text("0.00"),
                reference: None,
            },
            Item {
                item_no: 3,
                status: "missing_in_statement".into(),
                rule: "unmatched".into(),
                line_no: None,
                transfer_ids: vec![first_missing],
                candidates: vec![],
                statement_amount: None,
                ledger_amount: text("-88.00"),
                difference: None,
                reference: text("rent"),
            },
            Item {
                item_no: 4,
                status: "missing_in_statement".into(),
                rule: "unmatched".into(),
                line_no: None,
                transfer_ids: vec![second_missing],
                candidates: vec![],
                statement_amount: None,
                ledger_amount: text("1.23"),
                difference: None,
                reference: None,
            },
        ]
    );
}

#[tokio::test]
async fn a_transfer_outside_the_period_that_matched_nothing_is_out_of_scope() {
    let bank = Bank::new().await;
    let matched = bank.pay_in("5.00", None).await;
    bank.pay_in("6.00", None).await;
    // The statement covers the two days after today; the window reaches back to today.
    let items = bank
        .reconcile(&[line("5.00", 2, None), line("3.00", 1, None)], 2)
        .await;
    let decided: Vec<_> = items.iter().map(Item::decided).collect();
    assert_eq!(
        decided,
        vec![
            ("matched", "amount_date"),
            ("missing_in_ledger", "unmatched")
        ]
    );
    assert_eq!(items[0].transfer_ids, vec![matched]);
}

#[tokio::test]
async fn a_pending_transfer_is_not_counted_and_a_voided_one_drops_out() {
    let bank = Bank::new().await;
    bank.pending_in("15.00").await;
    let voided = bank.pending_in("16.00").await;
    bank.act(voided, "void", json!({})).await;
    let posted_in_part = bank.pending_in("20.00").await;
    bank.act(posted_in_part, "post", json!({"amount": "17.00"}))
        .await;
    let items = bank
        .reconcile(
            &[
                line("15.00", 0, None),
                line("16.00", 0, None),
                line("17.00", 0, None),
            ],
            1,
        )
        .await;
    let decided: Vec<_> = items.iter().map(Item::decided).collect();
    assert_eq!(
        decided,
        vec![
            ("missing_in_ledger", "unmatched"),
            ("missing_in_ledger", "unmatched"),
            ("matched", "amount_date"),
        ],
        "only what was posted counts, at its posted amount"
    );
    assert_eq!(items[2].transfer_ids, vec![posted_in_part]);
}

#[tokio::test]
async fn a_transfer_is_dated_by_the_day_it_was_posted_not_the_day_it_was_made() {
    let bank = Bank::new().await;
    let held = bank.pending_in("15.00").await;
    // Its creation ten days ago (history rewritten by the owner, triggers off).
    bank.owner
        .batch_execute(&format!(
            "SET session_replication_role = replica; \
             UPDATE journal SET at = at - interval '10 days' \
             WHERE ledger_id = {ledger} AND seq = \
               (SELECT journal_seq FROM transfers WHERE ledger_id = {ledger} AND id = '{held}'); \
             SET session_replication_role = origin;",
            ledger = bank.ledger_id
        ))
        .await
        .unwrap();
    bank.act(held, "post", json!({})).await;
    let items = bank.reconcile(&[line("15.00", 0, None)], 1).await;
    assert_eq!(
        items
            .iter()
            .map(|item| (item.decided(), item.transfer_ids.clone()))
            .collect::<Vec<_>>(),
        vec![(("matched", "amount_date"), vec![held])]
    );
}

#[tokio::test]
async fn transfers_after_the_cut_off_are_not_seen() {
    let bank = Bank::new().await;
    let early = bank.pay_in("10.00", Some("a")).await;
    let held = bank.pending_in("44.00").await;
    let cutoff = bank.head_seq().await;
    let late = bank.pay_in("33.00", None).await;
    bank.act(held, "post", json!({})).await;
    let statement = bank
        .statement(&[
            line("10.00", 0, Some("a")),
            line("33.00", 0, None),
            line("44.00", 0, None),
        ])
        .await;
    let as_of_cutoff = bank.run(statement, cutoff, 1).await;
    assert!(bank.compute(as_of_cutoff).await);
    let items = bank.items(as_of_cutoff).await;
    let decided: Vec<_> = items.iter().map(Item::decided).collect();
    assert_eq!(
        decided,
        vec![
            ("matched", "reference_amount"),
            ("missing_in_ledger", "unmatched"),
            ("missing_in_ledger", "unmatched"),
        ],
        "neither the later transfer nor the later posting is seen"
    );
    assert_eq!(items[0].transfer_ids, vec![early]);

    let as_of_now = bank.run(statement, bank.head_seq().await, 1).await;
    assert!(bank.compute(as_of_now).await);
    let items = bank.items(as_of_now).await;
    assert_eq!(
        items
            .iter()
            .map(|item| (item.decided(), item.transfer_ids.clone()))
            .collect::<Vec<_>>(),
        vec![
            (("matched", "reference_amount"), vec![early]),
            (("matched", "amount_date"), vec![late]),
            (("matched", "amount_date"), vec![held]),
        ]
    );
}

#[tokio::test]
async fn a_reversal_and_a_payment_out_are_counted_with_their_sign() {
    let bank = Bank::new().await;
    let sale = bank.pay_in("80.00", Some("sale-1")).await;
    let reversal = bank
        .act(
            sale,
            "reverse",
            json!({"amount": "30.00", "reference": "refund-1"}),
        )
        .await;
    let reversal: Uuid = reversal["id"].as_str().unwrap().parse().unwrap();
    let fee = bank.pay_out("2.50", None).await;
    let items = bank
        .reconcile(
            &[
                line("80.00", 0, Some("sale-1")),
                line("-30.00", 0, Some("refund-1")),
                line("-2.50", 1, None),
            ],
            3,
        )
        .await;
    assert_eq!(
        items
            .iter()
            .map(|item| (
                item.decided(),
                item.transfer_ids.clone(),
                item.ledger_amount.clone(),
                item.difference.clone()
            ))
            .collect::<Vec<_>>(),
        vec![
            (
                ("matched", "reference_amount"),
                vec![sale],
                text("80.00"),
                text("0.00")
            ),
            (
                ("matched", "reference_amount"),
                vec![reversal],
                text("-30.00"),
                text("0.00")
            ),
            (
                ("matched", "amount_date"),
                vec![fee],
                text("-2.50"),
                text("0.00")
            ),
        ]
    );
}

/// A statement with something of every kind.
async fn mixed_statement(bank: &Bank) -> Uuid {
    bank.pay_in("10.00", Some("inv-1")).await;
    bank.pay_in("25.00", None).await;
    bank.pay_in("12.00", None).await;
    bank.pay_in("12.00", None).await;
    bank.pay_in("60.00", Some("split")).await;
    bank.pay_in("40.00", Some("split")).await;
    bank.pay_in("45.50", Some("inv-5")).await;
    bank.pay_out("88.00", Some("rent")).await;
    bank.statement(&[
        line("10.00", 0, Some("inv-1")),
        line("25.00", 1, None),
        line("12.00", 0, None),
        line("100.00", 0, Some("split")),
        line("50.00", 0, Some("inv-5")),
        line("77.00", 0, None),
    ])
    .await
}

#[tokio::test]
async fn the_same_statement_and_cut_off_give_identical_items() {
    let bank = Bank::new().await;
    let statement = mixed_statement(&bank).await;
    let cutoff = bank.head_seq().await;
    let first = bank.run(statement, cutoff, 3).await;
    let second = bank.run(statement, cutoff, 3).await;
    assert!(bank.compute(first).await);
    // Later transfers must not change a run as of the earlier cut-off.
    bank.pay_in("25.00", None).await;
    assert!(bank.compute(second).await);
    let (first_items, _, _) = bank.items_as_text(first).await;
    let (second_items, _, _) = bank.items_as_text(second).await;
    assert_eq!(first_items, second_items);
    let statuses: std::collections::BTreeSet<_> = bank
        .items(first)
        .await
        .into_iter()
        .map(|item| item.status)
        .collect();
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        vec![
            "ambiguous",
            "matched",
            "mismatched",
            "missing_in_ledger",
            "missing_in_statement"
        ],
        "the comparison covers every status"
    );
}

#[tokio::test]
async fn a_second_computation_returns_false_and_changes_nothing() {
    let bank = Bank::new().await;
    let statement = mixed_statement(&bank).await;
    let run = bank.run(statement, bank.head_seq().await, 3).await;
    assert!(bank.compute(run).await);
    let computed = bank.items_as_text(run).await;
    assert_eq!(
        (computed.1, computed.2),
        (true, Some(computed.0.len() as i32)),
        "items_ready and item_count are set"
    );
    assert_eq!(computed.0.len(), 7);
    bank.pay_in("77.00", None).await;
    assert!(!bank.compute(run).await, "already computed");
    assert_eq!(bank.items_as_text(run).await, computed);
    let unknown = bank
        .storage
        .compute_reconciliation_items(bank.ledger_id, Uuid::new_v4())
        .await;
    assert!(unknown.is_err(), "an unknown run is an error");
}

#[tokio::test]
async fn duplicate_computations_at_once_compute_a_run_once() {
    let bank = Bank::new().await;
    let statement = mixed_statement(&bank).await;
    let run = bank.run(statement, bank.head_seq().await, 3).await;
    let (one, other) = tokio::join!(
        bank.storage
            .compute_reconciliation_items(bank.ledger_id, run),
        bank.storage
            .compute_reconciliation_items(bank.ledger_id, run)
    );
    let mut outcomes = vec![one.unwrap(), other.unwrap()];
    outcomes.sort();
    assert_eq!(outcomes, vec![false, true]);
    assert_eq!(bank.items(run).await.len(), 7);
}

/// `n` posted transfers on `bank` and a statement of `n` lines, written straight into the
/// tables, then a run as of the head: its id. `mode`: `mixed` (references, dates over four
/// weeks, a tenth each mismatched or missing), `identical` (one amount on one day, no
/// references), `distinct_references` (one amount on one day, every line its own reference,
/// transfers without one).
async fn synthetic_run(bank: &Bank, n: i32, mode: &str) -> Uuid {
    let first_seq = bank.head_seq().await;
    let (ledger, account, counter) = (bank.ledger_id, bank.bank, bank.counter);
    let statement = Uuid::new_v4();
    let run = Uuid::new_v4();
    bank.owner
        .batch_execute(&format!(
            "BEGIN;
CREATE TEMP TABLE g_tx ON COMMIT DROP AS
SELECT i, {first_seq} + i AS seq, gen_random_uuid() AS id,
       CASE '{mode}' WHEN 'mixed'
            THEN round((((i * 7919) % 100000) + 1)::numeric / 100, 2)
                 * CASE WHEN i % 13 = 0 THEN -1 ELSE 1 END
            ELSE 10.00 END AS amount,
       CASE '{mode}' WHEN 'mixed' THEN i % 28 ELSE 0 END AS day,
       CASE WHEN '{mode}' = 'mixed' AND i % 2 = 0 THEN 'R' || i END AS ref
FROM generate_series(1, {n}) i;
INSERT INTO journal (ledger_id, seq, type, at, actor, data, prev_hash, hash)
SELECT {ledger}, seq, 'synthetic',
       date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '30 days'
         + day * interval '1 day' + i * interval '1 microsecond',
       'test', '{{}}', decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex')
FROM g_tx;
INSERT INTO transfers (ledger_id, id, debit_account_id, credit_account_id, amount, currency,
    reference, metadata, pending, state, posted_amount, reversed_amount, created_at, journal_seq)
SELECT {ledger}, id,
       CASE WHEN amount > 0 THEN '{account}'::uuid ELSE '{counter}'::uuid END,
       CASE WHEN amount > 0 THEN '{counter}'::uuid ELSE '{account}'::uuid END,
       abs(amount), 'EUR', ref, '{{}}', false, 'posted', abs(amount), 0, now(), seq
FROM g_tx;
INSERT INTO postings (ledger_id, account_id, seq, transfer_id, side, pending_delta,
    posted_delta, posted_debits_after, posted_credits_after, pending_debits_after,
    pending_credits_after)
SELECT {ledger}, '{account}'::uuid, seq, id, CASE WHEN amount > 0 THEN 'debit' ELSE 'credit' END,
       0, abs(amount), 0, 0, 0, 0 FROM g_tx
UNION ALL
SELECT {ledger}, '{counter}'::uuid, seq, id, CASE WHEN amount > 0 THEN 'credit' ELSE 'debit' END,
       0, abs(amount), 0, 0, 0, 0 FROM g_tx;
UPDATE ledger_heads SET last_seq = {first_seq} + {n} WHERE ledger_id = {ledger};
CREATE TEMP TABLE g_line ON COMMIT DROP AS
SELECT i AS line_no,
       CASE WHEN '{mode}' <> 'mixed' THEN amount
            WHEN i % 10 = 8 THEN amount + 1
            WHEN i % 10 = 9 THEN 123456.78
            ELSE amount END AS amount,
       (date_trunc('day', now() AT TIME ZONE 'UTC') - interval '30 days')::date + day
         + CASE WHEN '{mode}' = 'mixed' AND i % 10 BETWEEN 5 AND 7 THEN 1 ELSE 0 END AS d,
       CASE WHEN '{mode}' = 'distinct_references' THEN 'L' || i
            WHEN '{mode}' = 'mixed' AND i % 10 BETWEEN 5 AND 7 THEN NULL
            ELSE ref END AS ref
FROM g_tx;
INSERT INTO statements (ledger_id, id, account_id, sha256, format, byte_count, line_count,
    duplicate_line_count, currency, total_in, total_out, period_start, period_end, created_at,
    created_by)
SELECT {ledger}, '{statement}', '{account}', sha256('{statement}'::text::bytea), 'csv', 1,
       {n}, 0, 'EUR', 0, 0, min(d), max(d), now(), gen_random_uuid()
FROM g_line;
INSERT INTO statement_lines (ledger_id, statement_id, line_no, number, booking_date, amount,
    reference)
SELECT {ledger}, '{statement}', line_no, line_no + 1, d, amount, ref FROM g_line;
INSERT INTO reconciliation_runs (ledger_id, id, statement_id, account_id, state, cutoff_seq,
    date_window_days, period_start, period_end, api_key_id, idempotency_key, fingerprint,
    created_at)
SELECT {ledger}, '{run}', id, account_id, 'running', {first_seq} + {n}, 3, period_start,
       period_end, gen_random_uuid(), '{run}', sha256('{run}'::text::bytea), now()
FROM statements WHERE ledger_id = {ledger} AND id = '{statement}';
COMMIT;
ANALYZE;"
        ))
        .await
        .unwrap();
    run
}

/// Items per (status, rule).
type ExpectedCounts = &'static [(&'static str, &'static str, i64)];

#[tokio::test]
#[ignore = "timing: cargo test --test api matching -- --ignored --nocapture"]
async fn a_statement_of_100000_lines_against_100000_transfers_is_matched_in_seconds() {
    let n = 100_000;
    let expectations: [(&str, ExpectedCounts); 3] = [
        (
            "mixed",
            &[
                ("matched", "amount_date", 50_000),
                ("matched", "reference_amount", 30_000),
                ("mismatched", "reference_mismatch", 10_000),
                ("missing_in_ledger", "unmatched", 10_000),
                ("missing_in_statement", "unmatched", 10_000),
            ],
        ),
        (
            "identical",
            &[
                ("ambiguous", "amount_date", 100_000),
                ("missing_in_statement", "unmatched", 99_980),
            ],
        ),
        (
            "distinct_references",
            &[
                ("ambiguous", "amount_date", 100_000),
                ("missing_in_statement", "unmatched", 99_980),
            ],
        ),
    ];
    for (mode, expected) in expectations {
        let bank = Bank::new().await;
        let run = synthetic_run(&bank, n, mode).await;
        let started = std::time::Instant::now();
        assert!(bank.compute(run).await);
        let elapsed = started.elapsed();
        println!("{mode}: {n} lines against {n} transfers matched in {elapsed:?}");
        let counts: Vec<(String, String, i64)> = bank
            .owner
            .query(
                "SELECT status, rule, count(*) FROM reconciliation_items \
                 WHERE ledger_id = $1 AND run_id = $2 GROUP BY 1, 2 ORDER BY 1, 2",
                &[&bank.ledger_id, &run],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        let expected: Vec<(String, String, i64)> = expected
            .iter()
            .map(|(status, rule, count)| (status.to_string(), rule.to_string(), *count))
            .collect();
        assert_eq!(counts, expected, "{mode}");
        assert!(
            elapsed < std::time::Duration::from_secs(30),
            "{mode}: {elapsed:?}"
        );
    }
}
