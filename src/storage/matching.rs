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
//! - the date-window rules never pair every line with every transfer: lines alike (same amount,
//!   date and reference) are looked up once, and a lookup asks an index of what remains for at
//!   most 2 (unique match) or 20 (ambiguous candidates) entries of its amount within the window.
//!   The reference condition ("not both references present and different") is split into index
//!   ranges that need no filtering: a key without a reference looks at every transfer; a key
//!   with reference `r` at the transfers without one — looked up once per amount and date,
//!   shared by every reference — and at those with `r` (see `candidate_lists`). Rule 2 asks
//!   the same of the transfers that are some line's only candidate, against the lines.
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

/// The pool's default timeout is sized for requests; a 100,000-line run needs seconds. JIT
/// compilation costs more than it saves on these statements (a second at 100,000 lines). No
/// nested loop but the index lookups the statements spell out (`LATERAL`, which can only be
/// nested loops): every other join is hashed, whatever the estimates of the temporary tables
/// say, so that no plan ever pairs every line with every transfer.
const SESSION_SETTINGS: &str =
    "SET LOCAL statement_timeout = '120s'; SET LOCAL work_mem = '64MB'; \
     SET LOCAL jit = off; SET LOCAL enable_nestloop = off";

/// The account's transfers as of the cut-off: the signed sum of each one's postings on the
/// account and its last posting that moved the posted balance (analysed before use, so that
/// what follows is planned on its real size).
/// $1 ledger, $2 account, $3 cutoff seq, $4 normal side.
const POSTED_AS_OF_CUTOFF: &str = "
CREATE TEMP TABLE rm_posted ON COMMIT DROP AS
SELECT p.transfer_id,
       sum(CASE WHEN p.side = $4::text THEN p.posted_delta ELSE -p.posted_delta END) AS amount,
       max(p.seq) FILTER (WHERE p.posted_delta <> 0) AS last_seq
FROM postings p
WHERE p.ledger_id = $1 AND p.account_id = $2 AND p.seq <= $3
GROUP BY p.transfer_id";

/// The ledger's side of the run: one row per transfer with a non-zero signed posted amount,
/// dated (UTC) within [period_start − W, period_end + W], numbered by the order key (date,
/// journal seq, id). The journal event and the transfer are looked up by key for each row
/// (`OFFSET 0` keeps the lookups from being flattened into joins the planner could reorder
/// on a misestimate, such as the whole ledger's journal against its transfers), and the date
/// filter stays outside them. $1 ledger, $2 scale, $3 first date, $4 last date.
const CANDIDATE_TRANSFERS: &str = "
CREATE TEMP TABLE rm_tx ON COMMIT DROP AS
WITH dated AS (
    SELECT pt.transfer_id AS id,
           pt.amount + round(0::numeric, $2::integer) AS amount,
           j.d, t.journal_seq, t.reference
    FROM rm_posted pt
    CROSS JOIN LATERAL (
        SELECT (j.at AT TIME ZONE 'UTC')::date AS d FROM journal j
        WHERE j.ledger_id = $1 AND j.seq = pt.last_seq OFFSET 0
    ) j
    CROSS JOIN LATERAL (
        SELECT t.journal_seq, t.reference FROM transfers t
        WHERE t.ledger_id = $1 AND t.id = pt.transfer_id OFFSET 0
    ) t
    WHERE pt.amount <> 0
)
SELECT row_number() OVER (ORDER BY d, journal_seq, id) AS ord, id, amount, d, reference
FROM dated
WHERE d BETWEEN $3::date AND $4::date";

/// The statement's lines, amounts at (at least) the account's scale.
/// $1 ledger, $2 statement, $3 scale.
const STATEMENT_LINES: &str = "
CREATE TEMP TABLE rm_line ON COMMIT DROP AS
SELECT l.line_no, l.booking_date AS d, l.amount + round(0::numeric, $3::integer) AS amount,
       l.reference
FROM statement_lines l
WHERE l.ledger_id = $1 AND l.statement_id = $2";

/// The decisions, append-only: `rm_item` one row per decided line, `rm_used` one per transfer
/// a rule consumed. Their primary keys make the database itself refuse a line or a transfer
/// used twice.
const DECISION_TABLES: &str = "
ALTER TABLE rm_line ADD PRIMARY KEY (line_no);
ALTER TABLE rm_tx ADD PRIMARY KEY (id);
ANALYZE rm_line;
ANALYZE rm_tx;
CREATE TEMP TABLE rm_item (
    line_no       integer PRIMARY KEY,
    status        text NOT NULL,
    rule          text NOT NULL,
    transfer_ids  uuid[],
    candidates    uuid[],
    ledger_amount numeric
) ON COMMIT DROP;
CREATE TEMP TABLE rm_used (id uuid PRIMARY KEY) ON COMMIT DROP;";

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
), pairs AS MATERIALIZED (
    SELECT l.line_no, t.id, t.amount
    FROM l JOIN t ON t.reference = l.reference AND t.amount = l.amount AND t.k = l.k
), used AS (
    INSERT INTO rm_used (id) SELECT id FROM pairs
)
INSERT INTO rm_item (line_no, status, rule, transfer_ids, ledger_amount)
SELECT line_no, 'matched', 'reference_amount', ARRAY[id], amount FROM pairs";

/// What remains before rule 2, indexed for the date-window lookups by amount and date (then the
/// order key): all of them, those without a reference, and by amount, reference and date.
/// `key_no` numbers the distinct (amount, date, reference), `date_no` the distinct (amount,
/// date): rows alike have the same candidates, so each is looked up once (see
/// [`candidate_lists`]).
const REMAINING_BEFORE_RULE_2: &str = "
CREATE TEMP TABLE rm_rtx2 ON COMMIT DROP AS
    SELECT t.ord, t.id, t.amount, t.d, t.reference,
           dense_rank() OVER (ORDER BY t.amount, t.d, t.reference) AS key_no,
           dense_rank() OVER (ORDER BY t.amount, t.d) AS date_no
    FROM rm_tx t
    WHERE NOT EXISTS (SELECT FROM rm_used u WHERE u.id = t.id);
CREATE INDEX ON rm_rtx2 (amount, d, ord);
CREATE INDEX ON rm_rtx2 (amount, d, ord) WHERE reference IS NULL;
CREATE INDEX ON rm_rtx2 (amount, reference, d, ord);
ANALYZE rm_rtx2;
CREATE TEMP TABLE rm_rline2 ON COMMIT DROP AS
    SELECT l.line_no, l.amount, l.d, l.reference,
           dense_rank() OVER (ORDER BY l.amount, l.d, l.reference) AS key_no,
           dense_rank() OVER (ORDER BY l.amount, l.d) AS date_no
    FROM rm_line l
    WHERE NOT EXISTS (SELECT FROM rm_item i WHERE i.line_no = l.line_no);
CREATE INDEX ON rm_rline2 (amount, d, line_no);
CREATE INDEX ON rm_rline2 (amount, d, line_no) WHERE reference IS NULL;
CREATE INDEX ON rm_rline2 (amount, reference, d, line_no);
ANALYZE rm_rline2;";

/// What remains before rule 5, when rules 2 to 4 used transfers: the transfers, indexed as
/// before rule 2.
const TRANSFERS_BEFORE_RULE_5: &str = "
CREATE TEMP TABLE rm_rtx5 ON COMMIT DROP AS
    SELECT t.* FROM rm_rtx2 t
    WHERE NOT EXISTS (SELECT FROM rm_used u WHERE u.id = t.id);
CREATE INDEX ON rm_rtx5 (amount, d, ord);
CREATE INDEX ON rm_rtx5 (amount, d, ord) WHERE reference IS NULL;
CREATE INDEX ON rm_rtx5 (amount, reference, d, ord);
ANALYZE rm_rtx5;";

/// What remains before rule 5: the lines with their keys (rule 5 looks up transfers, never
/// lines, so no index).
const LINES_BEFORE_RULE_5: &str = "
CREATE TEMP TABLE rm_rline5 ON COMMIT DROP AS
    SELECT l.* FROM rm_rline2 l
    WHERE NOT EXISTS (SELECT FROM rm_item i WHERE i.line_no = l.line_no);
ANALYZE rm_rline5;";

const COUNT_USED: &str = "SELECT count(*) FROM rm_used";

/// Common table expressions ending in `{prefix}lists (key_no, ids)`: for every distinct key
/// (amount, date, reference) of `drivers` (rows with key_no, date_no, amount, d, reference),
/// candidates among `targets` (indexed as `rm_rtx2`), NULL when it has none. A candidate has
/// the same amount, a date at most `$1` days away and no reference different from the key's.
/// With `order` (a column of `targets` that sorts like (d, order), as the transfers' `ord`
/// does), `ids` are the first `limit` candidates in that order; without, `ids` holds at most
/// 2 × `limit` of them, in no particular order, and only its size below `limit` (and its one
/// element when it has one) means anything — what rule 2 needs.
///
/// Nothing walks over more than `limit` index entries per lookup, whatever the data: a key
/// without a reference takes the first candidates of its (amount, date) of any reference; a key
/// with one merges the first candidates without a reference — looked up once per (amount,
/// date), shared by all the references of that amount and day — with the first of its own
/// reference. So 100,000 lines of one amount and day, with or without 100,000 different
/// references, cost one shared lookup plus one cheap lookup per reference.
fn candidate_lists(
    prefix: &str,
    drivers: &str,
    targets: &str,
    id: &str,
    order: Option<&str>,
    limit: &str,
) -> String {
    let window = "t.amount = k.amount AND t.d BETWEEN k.d - $1::integer AND k.d + $1::integer";
    let first = |condition: &str| match order {
        Some(ord) => format!(
            "SELECT array_agg(c.x ORDER BY c.o) AS ids, array_agg(c.o ORDER BY c.o) AS ords
             FROM (SELECT t.{id} AS x, t.{ord} AS o FROM {targets} t
                   WHERE {condition} AND {window}
                   ORDER BY t.d, t.{ord} LIMIT {limit}) c"
        ),
        None => format!(
            "SELECT array_agg(c.x) AS ids, NULL::bigint[] AS ords
             FROM (SELECT t.{id} AS x FROM {targets} t
                   WHERE {condition} AND {window}
                   LIMIT {limit}) c"
        ),
    };
    let any_reference = first("k.for_null");
    let without_reference = first("k.for_ref AND t.reference IS NULL");
    let same_reference = first("t.reference = k.reference");
    let merged = match order {
        Some(_) => format!(
            "CASE WHEN r.ids IS NULL THEN b.null_ids
                  WHEN b.null_ids IS NULL THEN r.ids
                  ELSE (SELECT array_agg(m.x ORDER BY m.o)
                        FROM (SELECT u.x, u.o
                              FROM unnest(b.null_ids || r.ids, b.null_ords || r.ords) AS u(x, o)
                              ORDER BY u.o LIMIT {limit}) m)
             END"
        ),
        None => "b.null_ids || r.ids".to_owned(),
    };
    format!(
        "{prefix}keys AS MATERIALIZED (
    SELECT key_no, date_no, amount, d, reference FROM {drivers} drv
    GROUP BY key_no, date_no, amount, d, reference
), {prefix}by_date AS MATERIALIZED (
    SELECT k.date_no, a.ids AS all_ids, n.ids AS null_ids, n.ords AS null_ords
    FROM (SELECT date_no, amount, d, bool_or(reference IS NULL) AS for_null,
                 bool_or(reference IS NOT NULL) AS for_ref
          FROM {prefix}keys GROUP BY date_no, amount, d) k
    CROSS JOIN LATERAL ({any_reference}) a
    CROSS JOIN LATERAL ({without_reference}) n
), {prefix}by_reference AS MATERIALIZED (
    SELECT k.key_no, r.ids, r.ords
    FROM {prefix}keys k
    CROSS JOIN LATERAL ({same_reference}) r
    WHERE k.reference IS NOT NULL
), {prefix}lists AS MATERIALIZED (
    SELECT k.key_no,
           CASE WHEN k.reference IS NULL THEN b.all_ids ELSE {merged} END AS ids
    FROM {prefix}keys k
    JOIN {prefix}by_date b ON b.date_no = k.date_no
    LEFT JOIN {prefix}by_reference r ON r.key_no = k.key_no
)"
    )
}

/// Rule 2: a line whose only candidate has that line as its only candidate. Lines look up at
/// most two candidates per key; only the transfers that are some line's only candidate look up
/// their candidate lines, likewise. (Two transfers of one key are both candidates of any line
/// of theirs, so a key's count speaks for each of its transfers.) $1 the date window in days.
fn rule_amount_date_unique() -> String {
    let lines = candidate_lists("l_", "rm_rline2", "rm_rtx2", "id", None, "2");
    let transfers = candidate_lists(
        "t_",
        "(SELECT * FROM rm_rtx2 WHERE id IN (SELECT id FROM line_unique))",
        "rm_rline2",
        "line_no",
        None,
        "2",
    );
    format!(
        "WITH {lines}, line_unique AS MATERIALIZED (
    SELECT l.line_no, k.ids[1] AS id
    FROM rm_rline2 l JOIN l_lists k ON k.key_no = l.key_no
    WHERE cardinality(k.ids) = 1
), {transfers}, pairs AS MATERIALIZED (
    SELECT lu.line_no, t.id, t.amount
    FROM line_unique lu
    JOIN rm_rtx2 t ON t.id = lu.id
    JOIN t_lists k ON k.key_no = t.key_no
    WHERE cardinality(k.ids) = 1 AND k.ids[1] = lu.line_no
), used AS (
    INSERT INTO rm_used (id) SELECT id FROM pairs
)
INSERT INTO rm_item (line_no, status, rule, transfer_ids, ledger_amount)
SELECT line_no, 'matched', 'amount_date', ARRAY[id], amount FROM pairs"
    )
}

/// Rule 5: a remaining line with remaining candidates lists the first ones by the order key,
/// among `transfers` (what remains of them). $1 the date window in days, $2 the most listed.
fn rule_amount_date_ambiguous(transfers: &str) -> String {
    let lists = candidate_lists("", "rm_rline5", transfers, "id", Some("ord"), "$2::bigint");
    format!(
        "WITH {lists}
INSERT INTO rm_item (line_no, status, rule, candidates)
SELECT l.line_no, 'ambiguous', 'amount_date', k.ids
FROM rm_rline5 l JOIN lists k ON k.key_no = l.key_no
WHERE k.ids IS NOT NULL"
    )
}

/// Rules 3 and 4 work per reference on what remains after rule 2: how many lines (and the
/// first), how many transfers, their sum, all their ids by the order key when there is one line
/// (a split or a mismatch uses them), else only the first ones (an ambiguous line lists them).
/// $1 the most candidates listed.
const REFERENCE_GROUPS: &str = "
CREATE TEMP TABLE rm_ref ON COMMIT DROP AS
WITH lg AS (
    SELECT l.reference, count(*) AS line_count, min(l.line_no) AS line_no
    FROM rm_line l
    WHERE l.reference IS NOT NULL
      AND NOT EXISTS (SELECT FROM rm_item i WHERE i.line_no = l.line_no)
    GROUP BY l.reference
), tg AS (
    SELECT t.reference, count(*) AS transfer_count, sum(t.amount) AS total,
           array_agg(t.id ORDER BY t.ord) AS ids
    FROM rm_tx t
    WHERE t.reference IS NOT NULL
      AND NOT EXISTS (SELECT FROM rm_used u WHERE u.id = t.id)
    GROUP BY t.reference
)
SELECT lg.reference, lg.line_count, lg.line_no, tg.transfer_count, tg.total,
       CASE WHEN lg.line_count = 1 THEN tg.ids ELSE tg.ids[1:$1::integer] END AS ids
FROM lg JOIN tg ON tg.reference = lg.reference";

/// Rules 3 and 4 in one pass: per reference with both lines and transfers left, a single line
/// whose transfers (two or more) sum to its amount is a split; a single line with a single
/// transfer a mismatch; otherwise every line is ambiguous and the transfers stay unused.
/// $1 the most candidates listed.
const RULES_BY_REFERENCE: &str = "
WITH g AS MATERIALIZED (
    SELECT l.line_no, r.total,
           CASE WHEN r.line_count = 1 AND r.transfer_count >= 2 AND r.total = l.amount
                    THEN 'split'
                WHEN r.line_count = 1 AND r.transfer_count = 1 THEN 'mismatch'
                ELSE 'ambiguous' END AS kind,
           CASE WHEN r.line_count = 1 THEN r.ids END AS all_ids,
           r.ids[1:$1::integer] AS first_ids
    FROM rm_ref r
    JOIN rm_line l ON l.reference = r.reference
    WHERE NOT EXISTS (SELECT FROM rm_item i WHERE i.line_no = l.line_no)
), used AS (
    INSERT INTO rm_used (id) SELECT unnest(all_ids) FROM g WHERE kind <> 'ambiguous'
)
INSERT INTO rm_item (line_no, status, rule, transfer_ids, candidates, ledger_amount)
SELECT line_no,
       CASE kind WHEN 'split' THEN 'matched' WHEN 'mismatch' THEN 'mismatched'
                 ELSE 'ambiguous' END,
       CASE kind WHEN 'split' THEN 'reference_split' ELSE 'reference_mismatch' END,
       CASE WHEN kind <> 'ambiguous' THEN all_ids END,
       CASE WHEN kind = 'ambiguous' THEN first_ids END,
       CASE WHEN kind <> 'ambiguous' THEN total END
FROM g";

/// Every item, rule 6 included: one per line (item_no = line_no; undecided lines are missing
/// in the ledger), then the transfers missing from the statement (unused, dated within the
/// period, listed by no ambiguous item) numbered after the last line by the order key.
/// $1 ledger, $2 run, $3 period start, $4 period end.
const INSERT_ITEMS: &str = "
WITH base AS (
    SELECT coalesce(max(line_no), 0)::bigint AS last_line_no FROM rm_line
), listed AS (
    SELECT DISTINCT unnest(candidates) AS id FROM rm_item WHERE candidates IS NOT NULL
), missing AS (
    SELECT t.ord, t.id, t.amount, t.d, t.reference
    FROM rm_tx t
    WHERE t.d BETWEEN $3::date AND $4::date
      AND NOT EXISTS (SELECT FROM rm_used u WHERE u.id = t.id)
      AND NOT EXISTS (SELECT FROM listed WHERE listed.id = t.id)
)
INSERT INTO reconciliation_items (
    ledger_id, run_id, item_no, status, rule, line_no, transfer_ids, candidate_transfer_ids,
    statement_amount, ledger_amount, difference, booking_date, reference)
SELECT $1::integer, $2::uuid, l.line_no,
       coalesce(i.status, 'missing_in_ledger'), coalesce(i.rule, 'unmatched'), l.line_no,
       coalesce(i.transfer_ids, '{}'), coalesce(i.candidates, '{}'),
       l.amount, i.ledger_amount, l.amount - i.ledger_amount, l.d, l.reference
FROM rm_line l
LEFT JOIN rm_item i ON i.line_no = l.line_no
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
        transaction.batch_execute(SESSION_SETTINGS).await?;
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
                POSTED_AS_OF_CUTOFF,
                &[&ledger_id, &account_id, &cutoff_seq, &normal_side],
            )
            .await?;
        transaction.batch_execute("ANALYZE rm_posted").await?;
        transaction
            .execute(
                CANDIDATE_TRANSFERS,
                &[&ledger_id, &scale, &first_date, &last_date],
            )
            .await?;
        transaction
            .execute(STATEMENT_LINES, &[&ledger_id, &statement_id, &scale])
            .await?;
        transaction.batch_execute(DECISION_TABLES).await?;
        transaction.execute(RULE_REFERENCE_AMOUNT, &[]).await?;
        transaction.batch_execute(REMAINING_BEFORE_RULE_2).await?;
        let used_before_rule_2: i64 = transaction.query_one(COUNT_USED, &[]).await?.get(0);
        transaction
            .execute(&rule_amount_date_unique(), &[&window_days])
            .await?;
        let max_candidates = MAX_CANDIDATES as i32;
        transaction
            .execute(REFERENCE_GROUPS, &[&max_candidates])
            .await?;
        transaction
            .execute(RULES_BY_REFERENCE, &[&max_candidates])
            .await?;
        let used_before_rule_5: i64 = transaction.query_one(COUNT_USED, &[]).await?.get(0);
        // The snapshot of rule 2 still holds exactly the remaining transfers if nothing was used
        // since (a statement none of whose lines matched in rules 2 to 4).
        let transfers_before_rule_5 = if used_before_rule_5 == used_before_rule_2 {
            "rm_rtx2"
        } else {
            transaction.batch_execute(TRANSFERS_BEFORE_RULE_5).await?;
            "rm_rtx5"
        };
        transaction.batch_execute(LINES_BEFORE_RULE_5).await?;
        transaction
            .execute(
                &rule_amount_date_ambiguous(transfers_before_rule_5),
                &[&window_days, &MAX_CANDIDATES],
            )
            .await?;
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
