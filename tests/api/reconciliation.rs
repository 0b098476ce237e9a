//! Statements and reconciliation runs over HTTP (§7): a statement with planted differences in
//! four formats, bad files refused whole, idempotent runs at a cut-off, resolutions, and the
//! reconciliation events in a verified export.

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

/// One statement entry: signed amount (positive = into the bank account), day offset from
/// today, reference, bank reference.
struct Entry {
    amount: &'static str,
    day: i64,
    reference: Option<&'static str>,
    bank_ref: &'static str,
}

/// The ledger of the planted-differences scenario, and what its statement must classify.
struct Scenario {
    app: TestApp,
    bank: Uuid,
    customers: Uuid,
    today: time::Date,
    transfers: Vec<Uuid>,
}

const ENTRIES: &[Entry] = &[
    // 1: reference + amount
    Entry {
        amount: "100.00",
        day: 0,
        reference: Some("INV-1"),
        bank_ref: "B1",
    },
    // 2: reference equal, amount different
    Entry {
        amount: "55.00",
        day: 0,
        reference: Some("INV-2"),
        bank_ref: "B2",
    },
    // 3: amount + date inside the window (money out)
    Entry {
        amount: "-70.00",
        day: 1,
        reference: None,
        bank_ref: "B3",
    },
    // 4: amount + date outside the window
    Entry {
        amount: "33.00",
        day: 10,
        reference: None,
        bank_ref: "B4",
    },
    // 5: two equally good candidates
    Entry {
        amount: "20.00",
        day: 0,
        reference: None,
        bank_ref: "B5",
    },
    // 6: one line for two transfers
    Entry {
        amount: "75.00",
        day: 0,
        reference: Some("PAYOUT-9"),
        bank_ref: "B6",
    },
    // 7: not in the ledger at all
    Entry {
        amount: "12.00",
        day: 2,
        reference: Some("INV-404"),
        bank_ref: "B7",
    },
    // 8: a duplicate of line 1 (same bank reference)
    Entry {
        amount: "100.00",
        day: 0,
        reference: Some("INV-1"),
        bank_ref: "B1",
    },
];

async fn scenario() -> Scenario {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let bank = app
        .open_account("main", "bank", json!({"normal_side": "debit"}))
        .await;
    let customers = app.open_account("main", "customers", json!({})).await;
    let mut transfers = Vec::new();
    let mut today = None;
    // Money into the bank account debits it.
    let planted: &[(&str, Option<&str>, bool)] = &[
        ("100.00", Some("INV-1"), true),
        ("50.00", Some("INV-2"), true),
        ("70.00", None, false),
        ("33.00", None, true),
        ("20.00", None, true),
        ("20.00", None, true),
        ("30.00", Some("PAYOUT-9"), true),
        ("45.00", Some("PAYOUT-9"), true),
        ("9.00", Some("INV-9"), true),
    ];
    for (amount, reference, into_bank) in planted {
        let (debit, credit) = if *into_bank {
            (bank, customers)
        } else {
            (customers, bank)
        };
        let mut body = json!({"debit_account_id": debit, "credit_account_id": credit,
            "amount": amount, "currency": "EUR"});
        if let Some(reference) = reference {
            body["reference"] = json!(reference);
        }
        let reply = app.post("/v1/ledgers/main/transfers", &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        transfers.push(reply.body["id"].as_str().unwrap().parse().unwrap());
        let created = reply.body["created_at"].as_str().unwrap();
        today = Some(time::Date::parse(&created[..10], &DATE).unwrap());
    }
    // A pending transfer is not posted: no statement line should ever match it.
    let pending = json!({"debit_account_id": bank, "credit_account_id": customers,
        "amount": "12.00", "currency": "EUR", "reference": "INV-404", "pending": true});
    assert_eq!(
        app.post("/v1/ledgers/main/transfers", &pending)
            .await
            .status,
        StatusCode::CREATED
    );
    Scenario {
        app,
        bank,
        customers,
        today: today.unwrap(),
        transfers,
    }
}

const DATE: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

fn date(scenario: &Scenario, day: i64) -> time::Date {
    scenario.today + time::Duration::days(day)
}

fn iso(date: time::Date) -> String {
    date.format(&DATE).unwrap()
}

fn csv(scenario: &Scenario) -> String {
    let mut text =
        String::from("external_id,booking_date,value_date,amount,currency,reference,description\n");
    for entry in ENTRIES {
        let day = iso(date(scenario, entry.day));
        let reference = entry.reference.unwrap_or("");
        text.push_str(&format!(
            "{},{day},{day},{},EUR,{reference},entry {}\n",
            entry.bank_ref, entry.amount, entry.bank_ref
        ));
    }
    text
}

fn jsonl(scenario: &Scenario) -> String {
    ENTRIES
        .iter()
        .map(|entry| {
            let day = iso(date(scenario, entry.day));
            json!({"external_id": entry.bank_ref, "booking_date": day, "value_date": day,
                "amount": entry.amount, "currency": "EUR", "reference": entry.reference,
                "description": format!("entry {}", entry.bank_ref)})
            .to_string()
                + "\n"
        })
        .collect()
}

fn total() -> rust_decimal::Decimal {
    ENTRIES
        .iter()
        .map(|entry| entry.amount.parse::<rust_decimal::Decimal>().unwrap())
        .sum()
}

fn camt(scenario: &Scenario, closing_delta: &str) -> String {
    let (first, last) = (date(scenario, 0), date(scenario, 10));
    let closing = rust_decimal::Decimal::new(100000, 2)
        + total()
        + closing_delta.parse::<rust_decimal::Decimal>().unwrap();
    let mut entries = String::new();
    for entry in ENTRIES {
        let (indicator, amount) = match entry.amount.strip_prefix('-') {
            Some(amount) => ("DBIT", amount),
            None => ("CRDT", entry.amount),
        };
        let day = iso(date(scenario, entry.day));
        let refs = entry
            .reference
            .map(|reference| format!("<Refs><EndToEndId>{reference}</EndToEndId></Refs>"))
            .unwrap_or_default();
        entries.push_str(&format!(
            "<Ntry><Amt \
             Ccy=\"EUR\">{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>\
             <BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt><AcctSvcrRef>{}\
             </AcctSvcrRef>\
             <NtryDtls><TxDtls>{refs}<RmtInf><Ustrd>entry \
             {}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n",
            entry.bank_ref, entry.bank_ref
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt>\
         <GrpHdr><MsgId>M1</MsgId><CreDtTm>{last}T18:00:00Z</CreDtTm></GrpHdr>\
         <Stmt><Id>STMT-1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy>\
         </Acct>\
         <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt \
         Ccy=\"EUR\">1000.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{}</Dt></Dt></Bal>\
         <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt \
         Ccy=\"EUR\">{closing}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{}</Dt></Dt></Bal>\n\
         {entries}</Stmt></BkToCstmrStmt></Document>\n",
        iso(first),
        iso(last)
    )
}

fn mt940_date(date: time::Date) -> String {
    format!(
        "{:02}{:02}{:02}",
        date.year() % 100,
        u8::from(date.month()),
        date.day()
    )
}

fn mt940(scenario: &Scenario) -> String {
    let (first, last) = (date(scenario, 0), date(scenario, 10));
    let closing = rust_decimal::Decimal::new(100000, 2) + total();
    let comma = |amount: &str| amount.replace('.', ",");
    let mut text = format!(
        ":20:STMT-1\r\n:25:DE89370400440532013000\r\n:28C:1/1\r\n:60F:C{}EUR1000,00\r\n",
        mt940_date(first)
    );
    for entry in ENTRIES {
        let (mark, amount) = match entry.amount.strip_prefix('-') {
            Some(amount) => ("D", amount),
            None => ("C", entry.amount),
        };
        let day = date(scenario, entry.day);
        text.push_str(&format!(
            ":61:{}{}{mark}{}NTRF{}//{}\r\n:86:entry {}\r\n",
            mt940_date(day),
            &mt940_date(day)[2..],
            comma(amount),
            entry.reference.unwrap_or("NONREF"),
            entry.bank_ref,
            entry.bank_ref
        ));
    }
    text.push_str(&format!(
        ":62F:C{}EUR{}\r\n",
        mt940_date(last),
        comma(&closing.to_string())
    ));
    text
}

async fn upload(
    app: &TestApp,
    account: Uuid,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> Reply {
    app.post_raw(
        &format!("/v1/ledgers/main/statements?account_id={account}"),
        content_type,
        body,
    )
    .await
}

async fn run(app: &TestApp, statement: &str, key: &str) -> Reply {
    app.request("POST", "/v1/ledgers/main/reconciliations")
        .json(&json!({"statement_id": statement, "date_window_days": 3}))
        .token(&app.tokens.writer)
        .idempotency_key(key)
        .send()
        .await
}

async fn items_file(app: &TestApp, run_id: &str) -> String {
    let reply = app
        .client
        .get(app.url(&format!("/v1/ledgers/main/reconciliations/{run_id}/items")))
        .bearer_auth(&app.tokens.reader)
        .header("Accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    reply.text().await.unwrap()
}

/// Status, rule and linked transfers (as indexes into the planted transfers) of every item.
fn classification(
    scenario: &Scenario,
    items: &str,
) -> Vec<(String, String, Vec<usize>, Vec<usize>)> {
    let index = |id: &Value| {
        let id: Uuid = id.as_str().unwrap().parse().unwrap();
        scenario
            .transfers
            .iter()
            .position(|known| *known == id)
            .expect("a planted transfer")
    };
    items
        .lines()
        .map(|line| {
            let item: Value = serde_json::from_str(line).unwrap();
            (
                item["status"].as_str().unwrap().to_owned(),
                item["rule"].as_str().unwrap().to_owned(),
                item["transfer_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(index)
                    .collect(),
                item["candidate_transfer_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(index)
                    .collect(),
            )
        })
        .collect()
}

fn expected() -> Vec<(String, String, Vec<usize>, Vec<usize>)> {
    let item = |status: &str, rule: &str, transfers: &[usize], candidates: &[usize]| {
        (
            status.to_owned(),
            rule.to_owned(),
            transfers.to_vec(),
            candidates.to_vec(),
        )
    };
    vec![
        item("matched", "reference_amount", &[0], &[]),
        item("mismatched", "reference_mismatch", &[1], &[]),
        item("matched", "amount_date", &[2], &[]),
        item("missing_in_ledger", "unmatched", &[], &[]),
        item("ambiguous", "amount_date", &[], &[4, 5]),
        item("matched", "reference_split", &[6, 7], &[]),
        item("missing_in_ledger", "unmatched", &[], &[]),
        item("missing_in_ledger", "unmatched", &[], &[]),
        item("missing_in_statement", "unmatched", &[3], &[]),
        item("missing_in_statement", "unmatched", &[8], &[]),
    ]
}

#[tokio::test]
async fn a_statement_with_planted_differences_is_classified_alike_in_all_four_formats() {
    let scenario = scenario().await;
    let app = &scenario.app;
    let files: [(&str, String); 4] = [
        ("text/csv", csv(&scenario)),
        ("application/x-ndjson", jsonl(&scenario)),
        ("application/xml", camt(&scenario, "0")),
        ("application/vnd.swift.mt940", mt940(&scenario)),
    ];
    let mut item_files = Vec::new();
    for (content_type, file) in files {
        let stored = upload(app, scenario.bank, content_type, file.clone()).await;
        assert_eq!(
            stored.status,
            StatusCode::CREATED,
            "{content_type}: {}",
            stored.text
        );
        assert_eq!(stored.body["line_count"], 8, "{content_type}");
        assert_eq!(
            stored.body["duplicate_line_count"], 1,
            "{content_type}: line 8 repeats line 1"
        );
        let fetched = app
            .get(&format!(
                "/v1/ledgers/main/statements/{}",
                stored.body["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(
            fetched.body["duplicate_lines"],
            json!([{"line": 8, "duplicate_of": 1}])
        );
        assert_eq!(fetched.body["sha256"], stored.body["sha256"]);
        let again = upload(app, scenario.bank, content_type, file).await;
        assert_eq!(
            again.status,
            StatusCode::OK,
            "the same bytes are the same statement"
        );
        assert_eq!(again.body["id"], stored.body["id"]);

        let completed = run(
            app,
            stored.body["id"].as_str().unwrap(),
            &Uuid::new_v4().to_string(),
        )
        .await;
        assert_eq!(
            completed.status,
            StatusCode::CREATED,
            "{content_type}: {}",
            completed.text
        );
        assert_eq!(completed.body["state"], "completed");
        let run_id = completed.body["id"].as_str().unwrap();
        let read = app
            .get(&format!("/v1/ledgers/main/reconciliations/{run_id}"))
            .await;
        assert!(
            completed.body["completed_at"]
                .as_str()
                .unwrap()
                .ends_with('Z'),
            "the completing response carries the completion time: {}",
            completed.text
        );
        assert_eq!(
            completed.body["completed_at"], read.body["completed_at"],
            "the completing response and the run agree on the completion time"
        );
        let items = items_file(app, run_id).await;
        assert_eq!(
            classification(&scenario, &items),
            expected(),
            "{content_type}: {items}"
        );
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(items.as_bytes()));
        assert_eq!(
            completed.body["items_digest"],
            digest.as_str(),
            "the digest is the items file's SHA-256"
        );
        assert_eq!(completed.body["totals"]["missing_in_ledger"]["count"], 3);
        assert_eq!(
            completed.body["totals"]["mismatched"]["statement_amount"],
            "55.00"
        );
        item_files.push(items);
    }
    assert!(
        item_files.windows(2).all(|pair| pair[0] == pair[1]),
        "identical items, byte for byte"
    );

    let mismatch = app
        .get(&format!(
            "/v1/ledgers/main/reconciliations/{}/items?status=mismatched",
            run_of_last(app).await
        ))
        .await;
    assert_eq!(mismatch.body["data"][0]["difference"], "5.00");
    assert_eq!(mismatch.body["data"].as_array().unwrap().len(), 1);
}

/// The id of the last completed run in the journal.
async fn run_of_last(app: &TestApp) -> String {
    let journal = app.journal("main").await;
    let event = journal
        .iter()
        .rev()
        .find(|event| event["type"] == "reconciliation_completed")
        .expect("a completed run");
    event["data"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_run_names_its_book_versus_bank_finding_where_the_statement_has_balances() {
    let scenario = scenario().await;
    let app = &scenario.app;
    let stored = upload(app, scenario.bank, "application/xml", camt(&scenario, "0")).await;
    let completed = run(app, stored.body["id"].as_str().unwrap(), "book-vs-bank").await;
    let finding = &completed.body["book_vs_bank"];
    assert_eq!(finding["statement_opening"], "1000.00");
    assert_eq!(
        finding["book_opening"], "0.00",
        "nothing was booked before the period"
    );
    assert_eq!(finding["opening_agrees"], false);
    // 100 + 50 − 70 + 33 + 20 + 20 + 30 + 45 + 9 = 237
    assert_eq!(finding["book_closing"], "237.00");
}

/// The camt.053 file cut off in the middle of its third entry.
fn truncated_in_third_entry(file: &str) -> String {
    let third = file.match_indices("<Ntry>").nth(2).unwrap().0;
    file[..third + 60].to_owned()
}

#[tokio::test]
async fn every_kind_of_bad_file_is_refused_whole_with_its_line_and_nothing_is_stored() {
    let scenario = scenario().await;
    let app = &scenario.app;
    let header = "external_id,booking_date,value_date,amount,currency,reference,description\n";
    let day = iso(scenario.today);
    let good = format!("A1,{day},,10.00,EUR,R1,ok\n");
    let cases: Vec<(&str, String, &str, u64)> = vec![
        (
            "text/csv",
            format!("{header}{good}A2,{day},,10.001,EUR,R2,x\n"),
            "statement_invalid",
            3,
        ),
        (
            "text/csv",
            format!("{header}{good}A2,{day},,1e3,EUR,R2,x\n"),
            "statement_invalid",
            3,
        ),
        (
            "text/csv",
            format!("{header}{good}A2,2026-02-30,,10.00,EUR,R2,x\n"),
            "statement_invalid",
            3,
        ),
        (
            "text/csv",
            format!("{header}{good}A2,{day},,10.00,XXZ,R2,x\n"),
            "statement_invalid",
            3,
        ),
        (
            "application/x-ndjson",
            format!("{{\"booking_date\":\"{day}\",\"amount\":10.5,\"currency\":\"EUR\"}}\n"),
            "statement_invalid",
            1,
        ),
        (
            "application/xml",
            camt(&scenario, "0.01"),
            "statement_unbalanced",
            0,
        ),
        (
            "application/xml",
            truncated_in_third_entry(&camt(&scenario, "0")),
            "statement_invalid",
            3,
        ),
        (
            "text/csv",
            format!(
                "{header}{good}A2,{day},,10.00,EUR,R2,{}\n",
                "x".repeat(10 * 1024 * 1024)
            ),
            "statement_invalid",
            3,
        ),
    ];
    for (content_type, file, code, line) in cases {
        let reply = upload(app, scenario.bank, content_type, file).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{content_type}: {}",
            &reply.text[..reply.text.len().min(400)]
        );
        assert_eq!(reply.code(), code, "{}", reply.text);
        assert_eq!(reply.content_type(), "application/problem+json");
        if line > 0 {
            assert_eq!(reply.body["errors"][0]["line"], line, "{}", reply.text);
        }
    }
    let owner = owner_connection(&app.database).await;
    let stored: i64 = owner
        .query_one(
            "SELECT (SELECT count(*) FROM statements) + (SELECT count(*) FROM statement_lines)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "a refused file leaves nothing behind");
    let unsupported = upload(app, scenario.bank, "application/pdf", good).await;
    assert_eq!(unsupported.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn a_run_repeated_with_its_key_is_that_run_and_a_new_run_sees_only_what_precedes_its_cut_off()
{
    let scenario = scenario().await;
    let app = &scenario.app;
    let stored = upload(app, scenario.bank, "text/csv", csv(&scenario)).await;
    let statement = stored.body["id"].as_str().unwrap();
    let first = run(app, statement, "run-1").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = run(app, statement, "run-1").await;
    assert_eq!(again.text, first.text, "the same key replays the same run");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let other_body = app
        .request("POST", "/v1/ledgers/main/reconciliations")
        .json(&json!({"statement_id": statement, "date_window_days": 5}))
        .token(&app.tokens.writer)
        .idempotency_key("run-1")
        .send()
        .await;
    assert_eq!(other_body.code(), "idempotency_key_reused");

    // The transfer the bank booked as INV-404 arrives after the first run's cut-off.
    let late = json!({"debit_account_id": scenario.bank, "credit_account_id": scenario.customers,
        "amount": "12.00", "currency": "EUR", "reference": "INV-404"});
    assert_eq!(
        app.post("/v1/ledgers/main/transfers", &late).await.status,
        StatusCode::CREATED
    );
    let first_id = first.body["id"].as_str().unwrap();
    let second = run(app, statement, "run-2").await;
    let second_id = second.body["id"].as_str().unwrap();
    assert!(second.body["cutoff_seq"].as_u64() > first.body["cutoff_seq"].as_u64());
    let line_7 = |items: &str| -> String {
        let item: Value = serde_json::from_str(items.lines().nth(6).unwrap()).unwrap();
        item["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        line_7(&items_file(app, first_id).await),
        "missing_in_ledger",
        "before its cut-off"
    );
    assert_eq!(line_7(&items_file(app, second_id).await), "matched");
    let fetched = app
        .get(&format!("/v1/ledgers/main/reconciliations/{first_id}"))
        .await;
    assert_eq!(fetched.body["items_digest"], first.body["items_digest"]);
    assert_eq!(fetched.body["state"], "completed");
}

async fn resolve(app: &TestApp, run_id: &str, item: u64, body: Value, token: &str) -> Reply {
    app.request(
        "POST",
        &format!("/v1/ledgers/main/reconciliations/{run_id}/items/{item}/resolve"),
    )
    .json(&body)
    .token(token)
    .idempotency_key(&Uuid::new_v4().to_string())
    .send()
    .await
}

#[tokio::test]
async fn an_adjustment_posts_a_balanced_transfer_and_resolutions_can_be_undone() {
    let scenario = scenario().await;
    let app = &scenario.app;
    let stored = upload(app, scenario.bank, "text/csv", csv(&scenario)).await;
    let completed = run(app, stored.body["id"].as_str().unwrap(), "run").await;
    let run_id = completed.body["id"].as_str().unwrap();
    let writer = app.tokens.writer.clone();
    let before = app.account("main", scenario.bank).await;

    // Item 4: 33.00 the bank booked and the ledger lacks.
    let adjusted = resolve(
        app,
        run_id,
        4,
        json!({
            "action": "adjust",
            "counter_account_id": scenario.customers,
            "note": "late booking"
        }),
        &writer,
    )
    .await;
    assert_eq!(adjusted.status, StatusCode::OK, "{}", adjusted.text);
    let transfer = &adjusted.body["adjustment"];
    assert_eq!(transfer["amount"], "33.00");
    assert_eq!(
        transfer["debit_account_id"],
        scenario.bank.to_string(),
        "money into a debit-normal account debits it"
    );
    assert_eq!(adjusted.body["item"]["resolution"]["action"], "adjust");
    let after = app.account("main", scenario.bank).await;
    assert_ne!(after["posted_debits"], before["posted_debits"]);
    assert_balance_invariants_in_database(&app.database).await;

    let twice = resolve(
        app,
        run_id,
        4,
        json!({"action": "accept", "note": "x"}),
        &writer,
    )
    .await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::CONFLICT, "item_already_resolved")
    );
    let undone = resolve(
        app,
        run_id,
        4,
        json!({"action": "undo", "note": "wrong account"}),
        &writer,
    )
    .await;
    assert_eq!(undone.status, StatusCode::OK, "{}", undone.text);
    assert!(undone.body["item"]["resolution"].is_null());
    let again = resolve(app, run_id, 4, json!({"action": "undo"}), &writer).await;
    assert_eq!(again.code(), "item_not_resolved");

    let matched = resolve(
        app,
        run_id,
        5,
        json!({"action": "match", "transfer_id": scenario.transfers[4]}),
        &writer,
    )
    .await;
    assert_eq!(matched.status, StatusCode::OK, "{}", matched.text);
    let item = app
        .get(&format!(
            "/v1/ledgers/main/reconciliations/{run_id}/items?status=ambiguous"
        ))
        .await;
    assert_eq!(
        item.body["data"][0]["resolution"]["transfer_id"],
        scenario.transfers[4].to_string()
    );

    let no_note = resolve(app, run_id, 7, json!({"action": "accept"}), &writer).await;
    assert_eq!(
        (no_note.status, no_note.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_resolution")
    );
    let reader = resolve(
        app,
        run_id,
        7,
        json!({"action": "accept", "note": "fee"}),
        &app.tokens.reader,
    )
    .await;
    assert_eq!(
        reader.status,
        StatusCode::FORBIDDEN,
        "a reader key cannot resolve"
    );
    let missing = resolve(
        app,
        run_id,
        99,
        json!({"action": "accept", "note": "fee"}),
        &writer,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let journal = app.journal("main").await;
    let resolutions: Vec<&Value> = journal
        .iter()
        .filter(|event| event["type"] == "reconciliation_item_resolved")
        .collect();
    assert_eq!(resolutions.len(), 3, "adjust, undo, match");
    assert_eq!(resolutions[1]["data"]["action"], "undo");
    assert_eq!(resolutions[1]["data"]["note"], "wrong account");
    assert_journal_reproduces_the_ledger(app, "main").await;
}

#[tokio::test]
async fn an_export_with_reconciliation_events_verifies_and_a_tampered_one_is_caught() {
    let scenario = scenario().await;
    let app = &scenario.app;
    let stored = upload(app, scenario.bank, "text/csv", csv(&scenario)).await;
    let completed = run(app, stored.body["id"].as_str().unwrap(), "run").await;
    let run_id = completed.body["id"].as_str().unwrap();
    let resolved = resolve(
        app,
        run_id,
        7,
        json!({"action": "accept", "note": "bank fee"}),
        &app.tokens.writer,
    )
    .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.text);
    let key = crate::tamper::public_key_pem(app).await;
    let export = crate::tamper::join(&crate::audit::export_lines(app, "").await);
    let (code, report) = crate::tamper::verify(&export, &key);
    assert_eq!(code, 0, "{report}");

    crate::tamper::tamper(
        app,
        "UPDATE journal SET data = jsonb_set(data, '{item_count}', '99') WHERE type = \
         'reconciliation_completed'",
    )
    .await;
    let export = crate::tamper::join(&crate::audit::export_lines(app, "").await);
    let (code, report) = crate::tamper::verify(&export, &key);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["code"], "hash_mismatch", "{report}");
}

#[tokio::test]
async fn a_hundred_thousand_line_statement_is_stored_and_reconciled() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let bank = app
        .open_account("main", "bank", json!({"normal_side": "debit"}))
        .await;
    let today = iso(time::OffsetDateTime::now_utc().date());
    let mut file =
        String::from("external_id,booking_date,value_date,amount,currency,reference,description\n");
    for n in 0..100_000u32 {
        file.push_str(&format!(
            "E{n},{today},,{}.{:02},EUR,R{n},\n",
            1 + n / 100,
            n % 100
        ));
    }
    let stored = upload(&app, bank, "text/csv", file).await;
    assert_eq!(
        stored.status,
        StatusCode::CREATED,
        "{}",
        &stored.text[..stored.text.len().min(400)]
    );
    assert_eq!(stored.body["line_count"], 100_000);
    let completed = run(&app, stored.body["id"].as_str().unwrap(), "big").await;
    assert_eq!(completed.status, StatusCode::CREATED, "{}", completed.text);
    assert_eq!(
        completed.body["totals"]["missing_in_ledger"]["count"],
        100_000
    );
}

/// The ledger side of the worked example in docs/RECONCILIATION.md: (amount, reference, into
/// the bank, the day of November 2026 it is dated).
const EXAMPLE_LEDGER: &[(&str, Option<&str>, bool, u8)] = &[
    ("250.00", Some("INV-1001"), true, 2),
    ("120.50", Some("SUP-7781"), false, 3),
    ("1200.00", Some("INV-1003"), true, 4),
    ("35.00", None, false, 10),
    ("89.00", Some("INV-1004"), true, 12),
    ("250.00", Some("RENT-2026-11"), false, 16),
    ("150.00", Some("RENT-2026-11"), false, 16),
    ("60.00", None, false, 27),
    ("60.00", None, false, 28),
    ("500.00", Some("INV-1006"), true, 25),
];

/// Builds the example's ledger, its transfers dated in November 2026 as the statement is (the
/// test rewrites the journal's `at` of each transfer: the matching reads the date from there).
async fn example_ledger() -> (TestApp, Uuid) {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let bank = app
        .open_account("main", "bank", json!({"normal_side": "debit"}))
        .await;
    let customers = app.open_account("main", "customers", json!({})).await;
    let owner = owner_connection(&app.database).await;
    for (amount, reference, into_bank, day) in EXAMPLE_LEDGER {
        let (debit, credit) = if *into_bank {
            (bank, customers)
        } else {
            (customers, bank)
        };
        let body = json!({"debit_account_id": debit, "credit_account_id": credit,
            "amount": amount, "currency": "EUR", "reference": reference});
        let reply = app.post("/v1/ledgers/main/transfers", &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let seq = reply.body["journal_seq"].as_i64().unwrap();
        owner
            .batch_execute(&format!(
                "SET session_replication_role = replica; \
                 UPDATE journal SET at = '2026-11-{day:02} 12:00:00+00' WHERE seq = {seq}; \
                 SET session_replication_role = origin"
            ))
            .await
            .unwrap();
    }
    (app, bank)
}

/// The items of a run as the markdown table of the worked example.
fn example_table(items: &str) -> String {
    let mut table = String::from(
        "| item | line | reference | statement | ledger | difference | status | rule |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for line in items.lines() {
        let item: Value = serde_json::from_str(line).unwrap();
        let text = |key: &str| item[key].as_str().unwrap_or("").to_owned();
        let line_no = item["line"]
            .as_u64()
            .map(|n| n.to_string())
            .unwrap_or_default();
        table.push_str(&format!(
            "| {} | {line_no} | {} | {} | {} | {} | {} | {} |\n",
            item["item"],
            text("reference"),
            text("statement_amount"),
            text("ledger_amount"),
            text("difference"),
            text("status"),
            text("rule"),
        ));
    }
    table
}

#[tokio::test]
async fn the_worked_example_of_the_reconciliation_doc_is_what_the_example_files_give() {
    let (app, bank) = example_ledger().await;
    let examples: [(&str, &str); 5] = [
        (
            "text/csv",
            include_str!("../../docs/examples/statement.csv"),
        ),
        (
            "application/x-ndjson",
            include_str!("../../docs/examples/statement.jsonl"),
        ),
        (
            "application/xml",
            include_str!("../../docs/examples/statement.camt053.xml"),
        ),
        (
            "application/xml",
            include_str!("../../docs/examples/statement.camt053v02.xml"),
        ),
        (
            "text/plain",
            include_str!("../../docs/examples/statement.mt940"),
        ),
    ];
    let mut tables = Vec::new();
    for (content_type, file) in examples {
        let stored = upload(&app, bank, content_type, file).await;
        assert_eq!(
            stored.status,
            StatusCode::CREATED,
            "{content_type}: {}",
            stored.text
        );
        let completed = run(
            &app,
            stored.body["id"].as_str().unwrap(),
            &Uuid::new_v4().to_string(),
        )
        .await;
        assert_eq!(completed.status, StatusCode::CREATED, "{}", completed.text);
        tables.push(example_table(
            &items_file(&app, completed.body["id"].as_str().unwrap()).await,
        ));
    }
    assert!(
        tables.windows(2).all(|pair| pair[0] == pair[1]),
        "{tables:#?}"
    );
    let doc = include_str!("../../docs/RECONCILIATION.md");
    assert!(
        doc.contains(&tables[0]),
        "docs/RECONCILIATION.md must show the example's result; it is now:\n{}",
        tables[0]
    );
}

#[tokio::test]
async fn a_statement_over_the_byte_or_line_limit_is_refused_with_413() {
    let mut settings = settings_for(fresh_database().await);
    settings.limits.max_statement_bytes = 200;
    settings.limits.max_statement_lines = 2;
    let app = spawn_app_with(settings).await;
    app.create_ledger("main").await;
    let bank = app
        .open_account("main", "bank", json!({"normal_side": "debit"}))
        .await;
    let header = "external_id,booking_date,value_date,amount,currency,reference,description\n";
    let line = |n: u32| format!("E{n},2026-11-02,,1.00,EUR,,\n");
    let three_lines = format!("{header}{}{}{}", line(1), line(2), line(3));
    let too_many = upload(&app, bank, "text/csv", three_lines).await;
    assert_eq!(
        (too_many.status, too_many.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "statement_too_large")
    );
    let too_big = upload(
        &app,
        bank,
        "text/csv",
        format!("{header}{}", "x".repeat(300)),
    )
    .await;
    assert_eq!(
        (too_big.status, too_big.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "statement_too_large")
    );
    let two_lines = upload(
        &app,
        bank,
        "text/csv",
        format!("{header}{}{}", line(1), line(2)),
    )
    .await;
    assert_eq!(two_lines.status, StatusCode::CREATED, "{}", two_lines.text);
}
