//! The set-based matching of a reconciliation run (§7): statement lines against the account's
//! posted transfers as of the run's cut-off, computed entirely inside PostgreSQL.
//!
//! Nothing streams through the service: the lines, the candidates and every intermediate result
//! live in temporary tables of the computing transaction (`ON COMMIT DROP`), and the items are
//! written with one `INSERT … SELECT`. The cost stays near-linear in the size of the statement
//! and of the account's history, also for hostile input (100,000 lines of one amount on one day):
//!
//! - equality rules (reference + amount, the per-reference groups) are hash joins and
//!   aggregates;
//! - the date-window rules never pair every line with every transfer: each line asks an index of
//!   the remaining transfers for at most 2 (unique match) or 20 (ambiguous candidates) entries of
//!   its amount within the window, and each transfer asks an index of the remaining lines for at
//!   most 2. The reference condition ("not both references present and different") is split into
//!   index ranges that need no filtering: a line without a reference looks at every transfer, a
//!   line with reference `r` at the transfers without one and at those with `r`.
//!
//! The rules, in order; every line and every transfer is used at most once:
//!
//! 1. `reference_amount` → `matched`: within each (reference, amount) group, the k-th line by
//!    `line_no` pairs with the k-th transfer by the order key (date, journal seq, id).
//! 2. `amount_date` → `matched`: a candidate pair has equal amounts, dates at most
//!    `date_window_days` apart and no two different references; it matches when the line has
//!    exactly one candidate and that transfer exactly one candidate line.
//! 3. `reference_split` → `matched`: a reference with exactly one remaining line and two or more
//!    remaining transfers whose amounts sum exactly to the line's.
//! 4. `reference_mismatch`: a reference with exactly one remaining line and one remaining
//!    transfer → `mismatched` (with the difference); with remaining lines and transfers but not
//!    exactly one of each → each line `ambiguous`, listing the first 20 of those transfers, which
//!    stay unused.
//! 5. `amount_date` → `ambiguous`: a remaining line with remaining candidates (as in 2), listing
//!    the first 20 by the order key.
//! 6. `unmatched`: remaining lines → `missing_in_ledger`; remaining transfers dated within the
//!    statement's period and listed by no ambiguous item → `missing_in_statement`.
//!
//! A transfer, as of the cut-off, is the sum of its postings on the account with `seq <= cutoff`,
//! signed by the account's normal side (transfers summing to zero — pending, voided — drop out),
//! dated by the UTC day of its last posting that moved the posted balance.

use time::Date;
use uuid::Uuid;

use super::{Storage, StorageError};

/// How many candidates an ambiguous item lists at most.
pub const MAX_CANDIDATES: i64 = 20;

/// The ledger's view of the account as of the cut-off: one row per transfer with a non-zero
/// signed posted amount, dated within [period_start − W, period_end + W].
/// $1 ledger, $2 account, $3 cutoff seq, $4 normal side, $5 scale, $6 first date, $7 last date.
const CANDIDATE_TRANSFERS: &str = "
CREATE TEMP TABLE rm_tx ON COMMIT DROP AS
WITH per_transfer AS (
    SELECT p.transfer_id,
           sum(CASE WHEN p.side = $4::text THEN p.posted_delta ELSE -p.posted_delta END) AS amount,
           max(p.seq) FILTER (WHERE p.posted_delta <> 0) AS last_seq
    FROM postings p
    WHERE p.ledger_id = $1 AND p.account_id = $2 AND p.seq <= $3
    GROUP BY p.transfer_id
), dated AS (
    SELECT pt.transfer_id AS id,
           pt.amount + round(0::numeric, $5::integer) AS amount,
           (j.at AT TIME ZONE 'UTC')::date AS d,
           t.journal_seq,
           t.reference
    FROM per_transfer pt
    JOIN journal j ON j.ledger_id = $1 AND j.seq = pt.last_seq
    JOIN transfers t ON t.ledger_id = $1 AND t.id = pt.transfer_id
    WHERE pt.amount <> 0
)
SELECT row_number() OVER (ORDER BY d, journal_seq, id) AS ord,
       id, amount, d, reference, false AS used
FROM dated
WHERE d BETWEEN $6::date AND $7::date";

/// The statement's lines, with the decision columns the rules fill in.
/// $1 ledger, $2 statement, $3 scale.
const STATEMENT_LINES: &str = "
CREATE TEMP TABLE rm_line ON COMMIT DROP AS
SELECT l.line_no,
       l.booking_date AS d,
       l.amount + round(0::numeric, $3::integer) AS amount,
       l.reference,
       NULL::text AS status,
       NULL::text AS rule,
       NULL::uuid[] AS transfer_ids,
       NULL::uuid[] AS candidates,
       NULL::numeric AS ledger_amount
FROM statement_lines l
WHERE l.ledger_id = $1 AND l.statement_id = $2";

const INDEX_INPUTS: &str = "
CREATE UNIQUE INDEX ON rm_line (line_no);
CREATE UNIQUE INDEX ON rm_tx (id);
ANALYZE rm_line;
ANALYZE rm_tx;";

/// Rule 1: the k-th line of a (reference, amount) group with the k-th transfer of that group.
const RULE_REFERENCE_AMOUNT: &str = "
WITH l AS (
    SELECT line_no, reference, amount,
           row_number() OVER (PARTITION BY reference, amount ORDER BY line_no) AS k
    FROM rm_line
    WHERE reference IS NOT NULL
), t AS (
    SELECT id, reference, amount,
           row_number() OVER (PARTITION BY reference, amount ORDER BY ord) AS k
    FROM rm_tx
    WHERE reference IS NOT NULL
), pairs AS (
    SELECT l.line_no, t.id, t.amount
    FROM l JOIN t ON t.reference = l.reference AND t.amount = l.amount AND t.k = l.k
), used AS (
    UPDATE rm_tx x SET used = true FROM pairs p WHERE x.id = p.id
)
UPDATE rm_line x
SET status = 'matched', rule = 'reference_amount', transfer_ids = ARRAY[p.id],
    ledger_amount = p.amount
FROM pairs p
WHERE x.line_no = p.line_no";

/// Snapshots of what remains, indexed for the date-window lookups: by amount and date (then the
/// order key), all of them, those without a reference, and by amount, reference and date.
/// Built twice (`{stage}` = 2 before rule 2, 5 before rule 5) so a lookup never walks past
/// entries already used.
const REMAINING_SNAPSHOT: &str = "
CREATE TEMP TABLE rm_rtx{stage} ON COMMIT DROP AS
    SELECT ord, id, amount, d, reference FROM rm_tx WHERE NOT used;
CREATE INDEX ON rm_rtx{stage} (amount, d, ord);
CREATE INDEX ON rm_rtx{stage} (amount, d, ord) WHERE reference IS NULL;
CREATE INDEX ON rm_rtx{stage} (amount, reference, d, ord);
ANALYZE rm_rtx{stage};
CREATE TEMP TABLE rm_rline{stage} ON COMMIT DROP AS
    SELECT line_no, amount, d, reference FROM rm_line WHERE status IS NULL;
CREATE INDEX ON rm_rline{stage} (amount, d, line_no);
CREATE INDEX ON rm_rline{stage} (amount, d, line_no) WHERE reference IS NULL;
CREATE INDEX ON rm_rline{stage} (amount, reference, d, line_no);
ANALYZE rm_rline{stage};";

/// Rule 2: a line whose only candidate has that line as its only candidate. Each side looks up
/// at most two candidates per index range. $1 the date window in days.
const RULE_AMOUNT_DATE_UNIQUE: &str = "
WITH line_unique AS (
    SELECT l.line_no, c.id
    FROM rm_rline2 l
    CROSS JOIN LATERAL (
        SELECT (array_agg(u.id))[1] AS id, count(*) AS n
        FROM (
            (SELECT t.id FROM rm_rtx2 t
             WHERE l.reference IS NULL AND t.amount = l.amount
               AND t.d BETWEEN l.d - $1::integer AND l.d + $1::integer
             LIMIT 2)
            UNION ALL
            (SELECT t.id FROM rm_rtx2 t
             WHERE l.reference IS NOT NULL AND t.reference IS NULL AND t.amount = l.amount
               AND t.d BETWEEN l.d - $1::integer AND l.d + $1::integer
             LIMIT 2)
            UNION ALL
            (SELECT t.id FROM rm_rtx2 t
             WHERE l.reference IS NOT NULL AND t.reference = l.reference AND t.amount = l.amount
               AND t.d BETWEEN l.d - $1::integer AND l.d + $1::integer
             LIMIT 2)
        ) u
    ) c
    WHERE c.n = 1
), transfer_unique AS (
    SELECT t.id, t.amount, c.line_no
    FROM rm_rtx2 t
    CROSS JOIN LATERAL (
        SELECT (array_agg(u.line_no))[1] AS line_no, count(*) AS n
        FROM (
            (SELECT l.line_no FROM rm_rline2 l
             WHERE t.reference IS NULL AND l.amount = t.amount
               AND l.d BETWEEN t.d - $1::integer AND t.d + $1::integer
             LIMIT 2)
            UNION ALL
            (SELECT l.line_no FROM rm_rline2 l
             WHERE t.reference IS NOT NULL AND l.reference IS NULL AND l.amount = t.amount
               AND l.d BETWEEN t.d - $1::integer AND t.d + $1::integer
             LIMIT 2)
            UNION ALL
            (SELECT l.line_no FROM rm_rline2 l
             WHERE t.reference IS NOT NULL AND l.reference = t.reference AND l.amount = t.amount
               AND l.d BETWEEN t.d - $1::integer AND t.d + $1::integer
             LIMIT 2)
        ) u
    ) c
    WHERE c.n = 1
), pairs AS (
    SELECT lu.line_no, tu.id, tu.amount
    FROM line_unique lu
    JOIN transfer_unique tu ON tu.id = lu.id AND tu.line_no = lu.line_no
), used AS (
    UPDATE rm_tx x SET used = true FROM pairs p WHERE x.id = p.id
)
UPDATE rm_line x
SET status = 'matched', rule = 'amount_date', transfer_ids = ARRAY[p.id],
    ledger_amount = p.amount
FROM pairs p
WHERE x.line_no = p.line_no";

/// Rules 3 and 4 work per reference on what remains after rule 2: how many lines (and the
/// first), how many transfers, their sum and their ids by the order key.
const REFERENCE_GROUPS: &str = "
CREATE TEMP TABLE rm_ref ON COMMIT DROP AS
WITH lg AS (
    SELECT reference, count(*) AS line_count, min(line_no) AS line_no
    FROM rm_line
    WHERE status IS NULL AND reference IS NOT NULL
    GROUP BY reference
), tg AS (
    SELECT reference, count(*) AS transfer_count, sum(amount) AS total,
           array_agg(id ORDER BY ord) AS ids
    FROM rm_tx
    WHERE NOT used AND reference IS NOT NULL
    GROUP BY reference
)
SELECT lg.reference, lg.line_count, lg.line_no, tg.transfer_count, tg.total, tg.ids
FROM lg JOIN tg ON tg.reference = lg.reference";

/// Rule 3: one line, several transfers of its reference summing exactly to its amount.
const RULE_REFERENCE_SPLIT: &str = "
WITH split AS (
    SELECT r.line_no, r.ids, r.total
    FROM rm_ref r
    JOIN rm_line l ON l.line_no = r.line_no
    WHERE r.line_count = 1 AND r.transfer_count >= 2 AND r.total = l.amount
), used AS (
    UPDATE rm_tx x SET used = true
    FROM (SELECT unnest(ids) AS id FROM split) s
    WHERE x.id = s.id
)
UPDATE rm_line x
SET status = 'matched', rule = 'reference_split', transfer_ids = s.ids, ledger_amount = s.total
FROM split s
WHERE x.line_no = s.line_no";

/// Rule 4, first part: one line and one transfer of a reference, amounts different.
const RULE_REFERENCE_MISMATCH: &str = "
WITH mismatch AS (
    SELECT r.line_no, r.ids, r.total
    FROM rm_ref r
    WHERE r.line_count = 1 AND r.transfer_count = 1
), used AS (
    UPDATE rm_tx x SET used = true FROM mismatch m WHERE x.id = m.ids[1]
)
UPDATE rm_line x
SET status = 'mismatched', rule = 'reference_mismatch', transfer_ids = m.ids,
    ledger_amount = m.total
FROM mismatch m
WHERE x.line_no = m.line_no";

/// Rule 4, second part: the lines of every other reference with both lines and transfers left
/// (rules 3 and 4 decided all lines of theirs) are ambiguous; the transfers stay unused.
/// $1 the most candidates listed.
const RULE_REFERENCE_AMBIGUOUS: &str = "
UPDATE rm_line x
SET status = 'ambiguous', rule = 'reference_mismatch', candidates = r.ids[1:$1::integer]
FROM rm_ref r
WHERE x.status IS NULL AND x.reference = r.reference";

/// Rule 5: a remaining line with remaining candidates lists the first ones by the order key.
/// $1 the date window in days, $2 the most candidates listed.
const RULE_AMOUNT_DATE_AMBIGUOUS: &str = "
WITH listed AS (
    SELECT l.line_no, c.ids
    FROM rm_rline5 l
    CROSS JOIN LATERAL (
        SELECT array_agg(v.id ORDER BY v.ord) AS ids
        FROM (
            SELECT u.id, u.ord
            FROM (
                (SELECT t.id, t.ord FROM rm_rtx5 t
                 WHERE l.reference IS NULL AND t.amount = l.amount
                   AND t.d BETWEEN l.d - $1::integer AND l.d + $1::integer
                 ORDER BY t.d, t.ord LIMIT $2::bigint)
                UNION ALL
                (SELECT t.id, t.ord FROM rm_rtx5 t
                 WHERE l.reference IS NOT NULL AND t.reference IS NULL AND t.amount = l.amount
                   AND t.d BETWEEN l.d - $1::integer AND l.d + $1::integer
                 ORDER BY t.d, t.ord LIMIT $2::bigint)
                UNION ALL
                (SELECT t.id, t.ord FROM rm_rtx5 t
                 WHERE l.reference IS NOT NULL AND t.reference = l.reference
                   AND t.amount = l.amount
                   AND t.d BETWEEN l.d - $1::integer AND l.d + $1::integer
                 ORDER BY t.d, t.ord LIMIT $2::bigint)
            ) u
            ORDER BY u.ord
            LIMIT $2::bigint
        ) v
    ) c
    WHERE c.ids IS NOT NULL
)
UPDATE rm_line x
SET status = 'ambiguous', rule = 'amount_date', candidates = c.ids
FROM listed c
WHERE x.line_no = c.line_no";

/// Rule 6 for lines.
const RULE_MISSING_IN_LEDGER: &str = "
UPDATE rm_line SET status = 'missing_in_ledger', rule = 'unmatched' WHERE status IS NULL";

/// Every item: one per line (item_no = line_no), then the transfers missing from the statement
/// (rule 6: unused, dated within the period, listed by no ambiguous item) numbered after the
/// last line in the order key. $1 ledger, $2 run, $3 period start, $4 period end.
const INSERT_ITEMS: &str = "
WITH base AS (
    SELECT coalesce(max(line_no), 0)::bigint AS last_line_no FROM rm_line
), listed AS (
    SELECT DISTINCT unnest(candidates) AS id FROM rm_line WHERE status = 'ambiguous'
), missing AS (
    SELECT t.ord, t.id, t.amount, t.d, t.reference
    FROM rm_tx t
    WHERE NOT t.used AND t.d BETWEEN $3::date AND $4::date
      AND NOT EXISTS (SELECT FROM listed WHERE listed.id = t.id)
)
INSERT INTO reconciliation_items (
    ledger_id, run_id, item_no, status, rule, line_no, transfer_ids, candidate_transfer_ids,
    statement_amount, ledger_amount, difference, booking_date, reference)
SELECT $1::integer, $2::uuid, l.line_no, l.status, l.rule, l.line_no,
       coalesce(l.transfer_ids, '{}'), coalesce(l.candidates, '{}'),
       l.amount, l.ledger_amount, l.amount - l.ledger_amount, l.d, l.reference
FROM rm_line l
UNION ALL
SELECT $1::integer, $2::uuid, (b.last_line_no + row_number() OVER (ORDER BY m.ord))::integer,
       'missing_in_statement', 'unmatched', NULL, ARRAY[m.id], '{}',
       NULL, m.amount, NULL, m.d, m.reference
FROM missing m CROSS JOIN base b";

impl Storage {
    /// Computes the items of a run that is `running` and not `items_ready`, in one transaction:
    /// locks the run row (FOR UPDATE), returns Ok(false) at once if items_ready is already true
    /// (a concurrent duplicate did it) or the run is no longer `running`, deletes any items left
    /// by an interrupted computation, applies the rules (see the module documentation), inserts
    /// every item, sets items_ready = true and item_count, commits, returns Ok(true).
    ///
    /// All the work happens in PostgreSQL (temporary tables, `INSERT … SELECT`): the service's
    /// memory does not grow with the statement. A run that does not exist is an error.
    pub async fn compute_reconciliation_items(
        &self,
        ledger_id: i32,
        run_id: Uuid,
    ) -> Result<bool, StorageError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        // The pool's default timeout is sized for requests; a 100,000-line run needs seconds.
        transaction
            .batch_execute("SET LOCAL statement_timeout = '120s'; SET LOCAL work_mem = '64MB'")
            .await?;
        let Some(run) = transaction
            .query_opt(
                "SELECT r.state, r.items_ready, r.statement_id, r.account_id, r.cutoff_seq, \
                        r.date_window_days, r.period_start, r.period_end, a.normal_side, a.scale \
                 FROM reconciliation_runs r \
                 JOIN accounts a ON a.ledger_id = r.ledger_id AND a.id = r.account_id \
                 WHERE r.ledger_id = $1 AND r.id = $2 \
                 FOR UPDATE OF r",
                &[&ledger_id, &run_id],
            )
            .await?
        else {
            return Err(StorageError::Corrupt(format!(
                "reconciliation run {run_id} of ledger {ledger_id} does not exist"
            )));
        };
        let state: String = run.get(0);
        let items_ready: bool = run.get(1);
        if items_ready || state != "running" {
            return Ok(false);
        }
        let statement_id: Uuid = run.get(2);
        let account_id: Uuid = run.get(3);
        let cutoff_seq: i64 = run.get(4);
        let window_days: i32 = run.get(5);
        let period_start: Date = run.get(6);
        let period_end: Date = run.get(7);
        let normal_side: String = run.get(8);
        let scale = i32::from(run.get::<_, i16>(9));
        let window = time::Duration::days(i64::from(window_days));
        let (Some(first_date), Some(last_date)) = (
            period_start.checked_sub(window),
            period_end.checked_add(window),
        ) else {
            return Err(StorageError::Corrupt(format!(
                "reconciliation run {run_id}: the period and window leave the calendar"
            )));
        };

        transaction
            .execute(
                "DELETE FROM reconciliation_items WHERE ledger_id = $1 AND run_id = $2",
                &[&ledger_id, &run_id],
            )
            .await?;
        transaction
            .execute(
                CANDIDATE_TRANSFERS,
                &[
                    &ledger_id,
                    &account_id,
                    &cutoff_seq,
                    &normal_side,
                    &scale,
                    &first_date,
                    &last_date,
                ],
            )
            .await?;
        transaction
            .execute(STATEMENT_LINES, &[&ledger_id, &statement_id, &scale])
            .await?;
        transaction.batch_execute(INDEX_INPUTS).await?;
        transaction.execute(RULE_REFERENCE_AMOUNT, &[]).await?;
        transaction
            .batch_execute(&REMAINING_SNAPSHOT.replace("{stage}", "2"))
            .await?;
        transaction
            .execute(RULE_AMOUNT_DATE_UNIQUE, &[&window_days])
            .await?;
        transaction.execute(REFERENCE_GROUPS, &[]).await?;
        transaction.execute(RULE_REFERENCE_SPLIT, &[]).await?;
        transaction.execute(RULE_REFERENCE_MISMATCH, &[]).await?;
        let max_candidates = MAX_CANDIDATES as i32;
        transaction
            .execute(RULE_REFERENCE_AMBIGUOUS, &[&max_candidates])
            .await?;
        transaction
            .batch_execute(&REMAINING_SNAPSHOT.replace("{stage}", "5"))
            .await?;
        transaction
            .execute(RULE_AMOUNT_DATE_AMBIGUOUS, &[&window_days, &MAX_CANDIDATES])
            .await?;
        transaction.execute(RULE_MISSING_IN_LEDGER, &[]).await?;
        let item_count = transaction
            .execute(
                INSERT_ITEMS,
                &[&ledger_id, &run_id, &period_start, &period_end],
            )
            .await?;
        let item_count = i32::try_from(item_count).map_err(|_| {
            StorageError::Corrupt(format!("reconciliation run {run_id}: too many items"))
        })?;
        transaction
            .execute(
                "UPDATE reconciliation_runs SET items_ready = true, item_count = $3 \
                 WHERE ledger_id = $1 AND id = $2",
                &[&ledger_id, &run_id, &item_count],
            )
            .await?;
        transaction.commit().await?;
        Ok(true)
    }
}
