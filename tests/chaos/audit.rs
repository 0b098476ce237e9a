//! The checks after the storm that need no history: the invariants of §4 in the database
//! itself, the service's integrity check, and `ledger-verify` on a full signed export.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// GET with a few tries (the service is healthy by now; a retry only covers a stray 503).
pub async fn get(http: &reqwest::Client, url: &str, token: &str) -> Result<Vec<u8>, String> {
    let mut last = String::new();
    for _ in 0..20 {
        match http.get(url).bearer_auth(token).send().await {
            Ok(response) if response.status() == 200 => {
                return response
                    .bytes()
                    .await
                    .map(|bytes| bytes.to_vec())
                    .map_err(|error| format!("GET {url}: {error}"));
            }
            Ok(response) => {
                last = format!(
                    "{} {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                )
            }
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("GET {url}: {last}"))
}

pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Result<Value, String> {
    let bytes = get(http, url, token).await?;
    serde_json::from_slice(&bytes).map_err(|error| format!("GET {url}: {error}"))
}

/// Every event of the journal, in seq order.
pub async fn journal(
    http: &reqwest::Client,
    base: &str,
    ledger: &str,
    token: &str,
) -> Result<Vec<Value>, String> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let url = format!("{base}/v1/ledgers/{ledger}/journal?after_seq={after}&limit=1000");
        let page = get_json(http, &url, token).await?;
        events.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_after_seq"].as_u64() {
            Some(next) => after = next,
            None => return Ok(events),
        }
    }
}

/// Every item of a paged list.
pub async fn list_all(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_url = match &cursor {
            Some(cursor) => format!("{url}?limit=1000&cursor={cursor}"),
            None => format!("{url}?limit=1000"),
        };
        let page = get_json(http, &page_url, token).await?;
        items.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(items),
        }
    }
}

/// §4.1–§4.5 (and §6's "the key and the effect commit together") asked of the database, as
/// its owner. Each entry names what is broken.
pub async fn database_invariants(config: &tokio_postgres::Config, ledger: &str) -> Vec<String> {
    let (client, connection) = match config.connect(tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(error) => return vec![format!("cannot connect to check invariants: {error}")],
    };
    tokio::spawn(connection);
    let ledger_id: i32 = match client
        .query_one("SELECT id FROM ledgers WHERE name = $1", &[&ledger])
        .await
    {
        Ok(row) => row.get(0),
        Err(error) => return vec![format!("no ledger {ledger}: {error}")],
    };
    let checks: &[(&str, &str)] = &[
        (
            "§4.2 Σ debits = Σ credits per currency",
            "SELECT currency FROM accounts WHERE ledger_id = $1 GROUP BY currency \
             HAVING sum(posted_debits) <> sum(posted_credits) OR sum(pending_debits) <> \
             sum(pending_credits)",
        ),
        (
            "§4.3 balances = Σ postings",
            "SELECT a.id::text FROM accounts a LEFT JOIN ( \
                 SELECT account_id, \
                   sum(posted_delta) FILTER (WHERE side = 'debit') AS pd, sum(posted_delta) \
                   FILTER (WHERE side = 'credit') AS pc, \
                   sum(pending_delta) FILTER (WHERE side = 'debit') AS nd, sum(pending_delta) \
                   FILTER (WHERE side = 'credit') AS nc \
                 FROM postings WHERE ledger_id = $1 GROUP BY account_id) p ON p.account_id = a.id \
             WHERE a.ledger_id = $1 AND (a.posted_debits <> coalesce(p.pd, 0) OR \
             a.posted_credits <> coalesce(p.pc, 0) \
                OR a.pending_debits <> coalesce(p.nd, 0) OR a.pending_credits <> coalesce(p.nc, \
                0))",
        ),
        (
            "§4.3 running balances = Σ deltas so far",
            "SELECT account_id::text || ' at seq ' || seq FROM ( \
                 SELECT account_id, seq, posted_debits_after, posted_credits_after, \
                 pending_debits_after, pending_credits_after, \
                   sum(CASE WHEN side = 'debit' THEN posted_delta ELSE 0 END) OVER w AS pd, \
                   sum(CASE WHEN side = 'credit' THEN posted_delta ELSE 0 END) OVER w AS pc, \
                   sum(CASE WHEN side = 'debit' THEN pending_delta ELSE 0 END) OVER w AS nd, \
                   sum(CASE WHEN side = 'credit' THEN pending_delta ELSE 0 END) OVER w AS nc \
                 FROM postings WHERE ledger_id = $1 \
                 WINDOW w AS (PARTITION BY account_id ORDER BY seq ROWS BETWEEN UNBOUNDED \
                 PRECEDING AND CURRENT ROW)) r \
             WHERE posted_debits_after <> pd OR posted_credits_after <> pc OR \
             pending_debits_after <> nd OR pending_credits_after <> nc \
             LIMIT 10",
        ),
        (
            "§4.4 constraints hold now",
            "SELECT id::text FROM accounts WHERE ledger_id = $1 AND ( \
               (balance_constraint = 'debits_must_not_exceed_credits' AND pending_debits + \
               posted_debits > posted_credits) \
            OR (balance_constraint = 'credits_must_not_exceed_debits' AND pending_credits + \
            posted_credits > posted_debits))",
        ),
        (
            "§4.4 constraints held after every event",
            "SELECT p.account_id::text || ' at seq ' || p.seq FROM postings p \
             JOIN accounts a ON a.ledger_id = p.ledger_id AND a.id = p.account_id WHERE \
             p.ledger_id = $1 AND ( \
               (a.balance_constraint = 'debits_must_not_exceed_credits' AND \
               p.pending_debits_after + p.posted_debits_after > p.posted_credits_after) \
            OR (a.balance_constraint = 'credits_must_not_exceed_debits' AND \
            p.pending_credits_after + p.posted_credits_after > p.posted_debits_after)) \
             LIMIT 10",
        ),
        (
            "§4.1 one debit and one credit posting, equal",
            "SELECT seq::text FROM postings WHERE ledger_id = $1 GROUP BY seq \
             HAVING count(*) FILTER (WHERE side = 'debit') <> 1 OR count(*) FILTER (WHERE side \
             = 'credit') <> 1 \
                OR sum(posted_delta) FILTER (WHERE side = 'debit') <> sum(posted_delta) FILTER \
                (WHERE side = 'credit') \
                OR sum(pending_delta) FILTER (WHERE side = 'debit') <> sum(pending_delta) \
                FILTER (WHERE side = 'credit') \
             LIMIT 10",
        ),
        (
            "§4.1 every money event has its postings",
            "SELECT j.seq::text FROM journal j WHERE j.ledger_id = $1 \
               AND j.type IN ('transfer_created', 'transfer_posted', 'transfer_voided', \
               'transfer_expired', 'transfer_reversed') \
               AND NOT EXISTS (SELECT 1 FROM postings p WHERE p.ledger_id = j.ledger_id AND \
               p.seq = j.seq) LIMIT 10",
        ),
        (
            "§4.1 no posting without its event",
            "SELECT p.seq::text FROM postings p LEFT JOIN journal j ON j.ledger_id = \
             p.ledger_id AND j.seq = p.seq \
             WHERE p.ledger_id = $1 AND j.seq IS NULL LIMIT 10",
        ),
        (
            "§4.1 transfers in their accounts' currency",
            "SELECT t.id::text FROM transfers t \
             JOIN accounts d ON d.ledger_id = t.ledger_id AND d.id = t.debit_account_id \
             JOIN accounts c ON c.ledger_id = t.ledger_id AND c.id = t.credit_account_id \
             WHERE t.ledger_id = $1 AND (t.currency <> d.currency OR t.currency <> c.currency \
             OR t.amount <= 0) LIMIT 10",
        ),
        (
            "every transfer row is created by its event",
            "SELECT t.id::text FROM transfers t LEFT JOIN journal j ON j.ledger_id = \
             t.ledger_id AND j.seq = t.journal_seq \
             WHERE t.ledger_id = $1 AND (j.seq IS NULL OR j.data->>'id' <> t.id::text) LIMIT 10",
        ),
        (
            "§4.5 seq gapless from 1, prev_hash = the previous hash",
            "SELECT seq::text FROM ( \
                 SELECT seq, prev_hash, lag(hash) OVER (ORDER BY seq) AS previous, row_number() \
                 OVER (ORDER BY seq) AS n \
                 FROM journal WHERE ledger_id = $1) j \
             WHERE seq <> n OR (seq = 1 AND prev_hash <> decode(repeat('00', 32), 'hex')) \
                OR (seq > 1 AND prev_hash IS DISTINCT FROM previous) LIMIT 10",
        ),
        (
            "§4.5 the chain head is the last event",
            "SELECT 'head at ' || h.last_seq FROM ledger_heads h WHERE h.ledger_id = $1 AND ( \
                 h.last_seq <> (SELECT max(seq) FROM journal WHERE ledger_id = $1) \
              OR h.last_hash <> (SELECT hash FROM journal WHERE ledger_id = $1 ORDER BY seq \
              DESC LIMIT 1) \
              OR h.merkle_size <> h.last_seq)",
        ),
        (
            "§6 every keyed effect has its idempotency record",
            "SELECT DISTINCT j.idempotency_key FROM journal j WHERE j.ledger_id = $1 \
               AND j.idempotency_key IS NOT NULL AND j.actor <> 'system' \
               AND NOT EXISTS (SELECT 1 FROM idempotency_keys k \
                               WHERE k.api_key_id::text = j.actor AND k.key = \
                               j.idempotency_key) LIMIT 10",
        ),
    ];
    let mut broken = Vec::new();
    for (name, sql) in checks {
        match client.query(*sql, &[&ledger_id]).await {
            Ok(rows) if rows.is_empty() => {}
            Ok(rows) => {
                let examples: Vec<String> = rows
                    .iter()
                    .map(|row| row.get::<_, Option<String>>(0).unwrap_or_default())
                    .collect();
                broken.push(format!("{name}: {}", examples.join(", ")));
            }
            Err(error) => broken.push(format!("{name}: the query failed: {error}")),
        }
    }
    broken
}

/// `POST …/integrity-checks` with an auditor key: the run, which must have passed.
pub async fn integrity_check(
    http: &reqwest::Client,
    base: &str,
    ledger: &str,
    token: &str,
    key: &str,
) -> Result<Value, String> {
    let url = format!("{base}/v1/ledgers/{ledger}/integrity-checks");
    let mut last = String::new();
    for _ in 0..20 {
        let response = http
            .post(&url)
            .bearer_auth(token)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await;
        match response {
            Ok(response) if response.status() == 201 => {
                return response.json().await.map_err(|error| error.to_string())
            }
            Ok(response) => {
                last = format!(
                    "{} {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                )
            }
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("the integrity check did not run: {last}"))
}

/// A full export (from seq 1) and `ledger-verify export` on it with the current public key.
/// Returns the verifier's report; `Err` when it did not exit 0.
pub async fn export_and_verify(
    http: &reqwest::Client,
    base: &str,
    ledger: &str,
    token: &str,
    folder: &Path,
) -> Result<(usize, String), String> {
    let export = get(http, &format!("{base}/v1/ledgers/{ledger}/export"), token).await?;
    let keys = get_json(http, &format!("{base}/v1/keys"), token).await?;
    let pem = keys
        .as_array()
        .and_then(|keys| keys.iter().find(|key| key["current"] == true))
        .and_then(|key| key["public_key_pem"].as_str())
        .ok_or("GET /v1/keys has no current key")?
        .to_owned();
    let export_file = folder.join("export.ndjson");
    let key_file = folder.join("public-key.pem");
    std::fs::write(&export_file, &export).map_err(|error| error.to_string())?;
    std::fs::write(&key_file, pem).map_err(|error| error.to_string())?;
    let output = Command::new(env!("CARGO_BIN_EXE_ledger-verify"))
        .arg("export")
        .arg(&export_file)
        .arg("--public-key")
        .arg(&key_file)
        .output()
        .map_err(|error| format!("run ledger-verify: {error}"))?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|line| !line.contains('\r'))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let lines = export.iter().filter(|byte| **byte == b'\n').count();
    if output.status.success() {
        Ok((lines, report))
    } else {
        Err(format!("ledger-verify exited {}: {report}", output.status))
    }
}
