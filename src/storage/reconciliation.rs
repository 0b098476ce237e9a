//! Statements, reconciliation runs and their items (§7): uploads streamed into a transaction,
//! runs found again by their Idempotency-Key, items paged in order, and the rows a writer batch
//! locks and changes when it completes a run or records a resolution.
//!
//! The matching itself is in [`super::matching`].

use std::collections::BTreeSet;

use deadpool_postgres::GenericClient;
use rust_decimal::Decimal;
use serde_json::Value;
use time::Date;
use uuid::Uuid;

use super::batch::BatchNeeds;
use super::rows::{from_sql_time, seq_from_sql, seq_to_sql, to_sql_time};
use super::{Storage, StorageError};
use crate::audit::reconciliation::day_from_date;
use crate::domain::reconciliation::{
    ItemResolved, ItemStatus, ReconciliationItem, ResolutionAction, RunRecord,
};
use crate::domain::{AccountId, ReconciliationId, StatementId, Timestamp, TransferId};
use crate::statement::StatementLine;

/// A run whose completion event a batch appends.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletedRun {
    pub id: ReconciliationId,
    pub seq: u64,
    pub at: Timestamp,
}

/// A resolution event a batch appends, with the actor the journal records.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedItem {
    pub resolution: ItemResolved,
    pub seq: u64,
    pub actor: String,
}

/// In a batch, after the head lock: the completed runs among those needed (locked), with the
/// current resolution of the needed items (locked).
pub(super) async fn lock_and_load_runs(
    client: &impl GenericClient,
    ledger_id: i32,
    needs: &BatchNeeds,
) -> Result<Vec<(ReconciliationId, RunRecord)>, StorageError> {
    let mut run_ids: BTreeSet<ReconciliationId> = needs.reconciliation_runs.clone();
    run_ids.extend(needs.reconciliation_items.iter().map(|(run, _)| *run));
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = run_ids.iter().map(ReconciliationId::as_uuid).collect();
    let rows = client
        .query(
            // One probe of the primary key per run, whatever the statistics (see `BEGIN_BATCH`).
            "SELECT r.id, r.account_id, r.item_count FROM unnest($2::uuid[]) AS wanted (id) \
             CROSS JOIN LATERAL (SELECT id, account_id, item_count FROM reconciliation_runs \
                 WHERE ledger_id = $1 AND id = wanted.id AND state = 'completed' OFFSET 0 FOR \
                 UPDATE) AS r",
            &[&ledger_id, &ids],
        )
        .await?;
    let mut runs = Vec::with_capacity(rows.len());
    for row in rows {
        let item_count: i32 = row.get(2);
        runs.push((
            ReconciliationId::new(row.get(0)),
            RunRecord {
                account_id: AccountId::new(row.get(1)),
                item_count: u64::try_from(item_count).map_err(|_| corrupt("item_count"))?,
                resolved_items: Default::default(),
            },
        ));
    }
    let (item_runs, item_nos): (Vec<Uuid>, Vec<i32>) = needs
        .reconciliation_items
        .iter()
        .filter_map(|(run, item)| Some((run.as_uuid(), i32::try_from(*item).ok()?)))
        .unzip();
    let rows = client
        .query(
            "SELECT i.run_id, i.item_no, i.resolution \
             FROM unnest($2::uuid[], $3::int[]) AS wanted (run_id, item_no) \
             CROSS JOIN LATERAL (SELECT run_id, item_no, resolution FROM reconciliation_items \
                 WHERE ledger_id = $1 AND run_id = wanted.run_id AND item_no = wanted.item_no \
                 OFFSET 0 FOR UPDATE) AS i",
            &[&ledger_id, &item_runs, &item_nos],
        )
        .await?;
    for row in rows {
        let run = ReconciliationId::new(row.get(0));
        let item_no: i32 = row.get(1);
        let resolution: Option<&str> = row.get(2);
        let action = resolution.and_then(ResolutionAction::parse);
        if let (Some((_, record)), Some(action)) =
            (runs.iter_mut().find(|(id, _)| *id == run), action)
        {
            record.resolved_items.insert(item_no as u64, action);
        }
    }
    Ok(runs)
}

/// In a batch: the runs whose completion event it appends become `completed`.
pub(super) async fn complete_runs(
    client: &impl GenericClient,
    ledger_id: i32,
    runs: &[CompletedRun],
) -> Result<(), StorageError> {
    for run in runs {
        let updated = client
            .execute(
                "UPDATE reconciliation_runs SET state = 'completed', completed_seq = $3, \
                 completed_at = $4 \
                 WHERE ledger_id = $1 AND id = $2 AND state = 'running' AND items_ready",
                &[
                    &ledger_id,
                    &run.id.as_uuid(),
                    &seq_to_sql(run.seq),
                    &to_sql_time(run.at),
                ],
            )
            .await?;
        if updated != 1 {
            return Err(StorageError::Corrupt(format!(
                "reconciliation {} was not a running run with its items ready",
                run.id
            )));
        }
    }
    Ok(())
}

/// In a batch: each resolved item's current resolution, in journal order (an undo clears it).
pub(super) async fn record_resolutions(
    client: &impl GenericClient,
    ledger_id: i32,
    items: &[ResolvedItem],
) -> Result<(), StorageError> {
    for item in items {
        let resolution = &item.resolution;
        let action =
            (resolution.action != ResolutionAction::Undo).then(|| resolution.action.as_str());
        let updated = client
            .execute(
                "UPDATE reconciliation_items SET resolution = $4, resolution_transfer_id = $5, \
                   resolution_note = $6, resolution_actor = $7, resolution_seq = $8 \
                 WHERE ledger_id = $1 AND run_id = $2 AND item_no = $3",
                &[
                    &ledger_id,
                    &resolution.reconciliation_id.as_uuid(),
                    &(resolution.item_no as i32),
                    &action,
                    &resolution.transfer_id.map(|id| id.as_uuid()),
                    &resolution.note,
                    &item.actor,
                    &seq_to_sql(item.seq),
                ],
            )
            .await?;
        if updated != 1 {
            return Err(StorageError::Corrupt(format!(
                "item {} of reconciliation {} does not exist",
                resolution.item_no, resolution.reconciliation_id
            )));
        }
    }
    Ok(())
}

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt(format!("reconciliation row with an invalid {what}"))
}

/// A stored statement: what its upload stated, and what storing its lines found.
#[derive(Clone, Debug, PartialEq)]
pub struct StatementRecord {
    pub header: StatementHeader,
    pub line_count: u64,
    pub duplicate_line_count: u64,
}

const STATEMENT_COLUMNS: &str = "id, account_id, sha256, format, byte_count, line_count, \
    duplicate_line_count, currency, statement_ref, account_identifier, opening_balance, \
    closing_balance, total_in, total_out, period_start, period_end, created_at, created_by";

fn statement_from_row(row: &tokio_postgres::Row) -> Result<StatementRecord, StorageError> {
    let sha256: Vec<u8> = row.get(2);
    let count = |index: usize| -> Result<u64, StorageError> {
        let value: i64 = match index {
            4 => row.get(4),
            _ => i64::from(row.get::<_, i32>(index)),
        };
        u64::try_from(value).map_err(|_| corrupt("count"))
    };
    Ok(StatementRecord {
        header: StatementHeader {
            id: StatementId::new(row.get(0)),
            account_id: AccountId::new(row.get(1)),
            sha256: sha256.try_into().map_err(|_| corrupt("sha256"))?,
            format: row.get(3),
            byte_count: count(4)?,
            currency: row.get(7),
            statement_ref: row.get(8),
            account_identifier: row.get(9),
            opening_balance: row.get(10),
            closing_balance: row.get(11),
            total_in: row.get(12),
            total_out: row.get(13),
            period_start: row.get(14),
            period_end: row.get(15),
            created_at: from_sql_time(row.get(16))?,
            created_by: row.get(17),
        },
        line_count: count(5)?,
        duplicate_line_count: count(6)?,
    })
}

/// What an upload knows once every line is read.
#[derive(Clone, Debug, PartialEq)]
pub struct StatementHeader {
    pub id: StatementId,
    pub account_id: AccountId,
    pub sha256: [u8; 32],
    /// `csv`, `jsonl`, `camt.053` or `mt940`.
    pub format: String,
    pub byte_count: u64,
    pub currency: String,
    pub statement_ref: Option<String>,
    pub account_identifier: Option<String>,
    pub opening_balance: Option<Decimal>,
    pub closing_balance: Option<Decimal>,
    pub total_in: Decimal,
    pub total_out: Decimal,
    pub period_start: Date,
    pub period_end: Date,
    pub created_at: Timestamp,
    pub created_by: Uuid,
}

/// An upload in progress: one transaction on its own connection, lines appended in chunks to a
/// temporary table. Nothing is visible until [`StatementUpload::finish`] commits; dropped
/// unfinished, the connection is closed (not returned to the pool mid-transaction), which rolls
/// everything back.
pub struct StatementUpload {
    client: Option<deadpool_postgres::Object>,
    lines: u64,
}

impl Drop for StatementUpload {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

impl Storage {
    pub async fn statement(
        &self,
        ledger_id: i32,
        id: StatementId,
    ) -> Result<Option<StatementRecord>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {STATEMENT_COLUMNS} FROM statements WHERE ledger_id = $1 AND id = $2"
                ),
                &[&ledger_id, &id.as_uuid()],
            )
            .await?;
        row.as_ref().map(statement_from_row).transpose()
    }

    /// The lines flagged as duplicates, `(line, the earlier line it repeats)`, at most `limit`.
    pub async fn duplicate_lines(
        &self,
        ledger_id: i32,
        id: StatementId,
        limit: i64,
    ) -> Result<Vec<(u64, u64)>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT line_no, duplicate_of FROM statement_lines \
                 WHERE ledger_id = $1 AND statement_id = $2 AND duplicate_of IS NOT NULL \
                 ORDER BY line_no LIMIT $3",
                &[&ledger_id, &id.as_uuid(), &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get::<_, i32>(0) as u64, row.get::<_, i32>(1) as u64))
            .collect())
    }

    pub async fn statement_by_hash(
        &self,
        ledger_id: i32,
        sha256: &[u8; 32],
    ) -> Result<Option<StatementRecord>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {STATEMENT_COLUMNS} FROM statements WHERE ledger_id = $1 AND sha256 = \
                     $2"
                ),
                &[&ledger_id, &sha256.as_slice()],
            )
            .await?;
        row.as_ref().map(statement_from_row).transpose()
    }

    pub async fn begin_statement_upload(&self) -> Result<StatementUpload, StorageError> {
        let client = self.client().await?;
        client
            .batch_execute(
                "BEGIN; SET LOCAL statement_timeout = '120s'; \
                 CREATE TEMP TABLE upload_lines (line_no integer, number bigint, external_id text, \
                   booking_date date, value_date date, amount numeric, reference text, \
                   description text) ON COMMIT DROP",
            )
            .await?;
        Ok(StatementUpload {
            client: Some(client),
            lines: 0,
        })
    }
}

impl StatementUpload {
    fn client(&self) -> &deadpool_postgres::Object {
        self.client
            .as_ref()
            .expect("an unfinished upload has its connection")
    }

    /// Appends lines, numbered on from the lines appended before.
    pub async fn append(&mut self, lines: &[StatementLine]) -> Result<(), StorageError> {
        if lines.is_empty() {
            return Ok(());
        }
        let first = self.lines;
        let line_nos: Vec<i32> = (0..lines.len())
            .map(|index| i32::try_from(first + index as u64 + 1).unwrap_or(i32::MAX))
            .collect();
        let numbers: Vec<i64> = lines
            .iter()
            .map(|line| i64::try_from(line.number).unwrap_or(i64::MAX))
            .collect();
        let external_ids: Vec<Option<&str>> = lines
            .iter()
            .map(|line| line.external_id.as_deref())
            .collect();
        let booking: Vec<Date> = lines.iter().map(|line| line.booking_date).collect();
        let value: Vec<Option<Date>> = lines.iter().map(|line| line.value_date).collect();
        let amounts: Vec<Decimal> = lines.iter().map(|line| line.amount).collect();
        let references: Vec<Option<&str>> =
            lines.iter().map(|line| line.reference.as_deref()).collect();
        let descriptions: Vec<Option<&str>> = lines
            .iter()
            .map(|line| line.description.as_deref())
            .collect();
        let client = self.client();
        let statement = client
            .prepare_cached(
                "INSERT INTO upload_lines SELECT * FROM unnest($1::int[], $2::bigint[], \
                 $3::text[], $4::date[], $5::date[], $6::numeric[], $7::text[], $8::text[])",
            )
            .await?;
        client
            .execute(
                &statement,
                &[
                    &line_nos,
                    &numbers,
                    &external_ids,
                    &booking,
                    &value,
                    &amounts,
                    &references,
                    &descriptions,
                ],
            )
            .await?;
        self.lines += lines.len() as u64;
        Ok(())
    }

    /// Stores the lines with their duplicate flags and the statement, and commits.
    pub async fn finish(
        mut self,
        ledger_id: i32,
        header: &StatementHeader,
    ) -> Result<StatementRecord, StorageError> {
        let client = self.client();
        // A duplicate points at the first line of the file with the same external id, or with the
        // same reference, booking date and amount (LEAST ignores NULLs).
        let duplicates: i64 = client
            .query_one(
                "WITH stored AS ( \
                   INSERT INTO statement_lines (ledger_id, statement_id, line_no, number, \
                   external_id, \
                     booking_date, value_date, amount, reference, description, duplicate_of) \
                   SELECT $1, $2, line_no, number, external_id, booking_date, value_date, amount, \
                     reference, description, NULLIF(LEAST( \
                       CASE WHEN external_id IS NOT NULL THEN \
                         min(line_no) OVER (PARTITION BY external_id) END, \
                       CASE WHEN reference IS NOT NULL THEN \
                         min(line_no) OVER (PARTITION BY reference, booking_date, amount) END), \
                         line_no) \
                   FROM upload_lines RETURNING duplicate_of) \
                 SELECT count(*) FILTER (WHERE duplicate_of IS NOT NULL) FROM stored",
                &[&ledger_id, &header.id.as_uuid()],
            )
            .await?
            .get(0);
        let line_count = i32::try_from(self.lines).map_err(|_| corrupt("line count"))?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO statements (ledger_id, {STATEMENT_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                     $18, $19) \
                     RETURNING {STATEMENT_COLUMNS}"
                ),
                &[
                    &ledger_id,
                    &header.id.as_uuid(),
                    &header.account_id.as_uuid(),
                    &header.sha256.as_slice(),
                    &header.format,
                    &(header.byte_count as i64),
                    &line_count,
                    &(duplicates as i32),
                    &header.currency,
                    &header.statement_ref,
                    &header.account_identifier,
                    &header.opening_balance,
                    &header.closing_balance,
                    &header.total_in,
                    &header.total_out,
                    &header.period_start,
                    &header.period_end,
                    &to_sql_time(header.created_at),
                    &header.created_by,
                ],
            )
            .await?;
        let record = statement_from_row(&row)?;
        client.batch_execute("COMMIT").await?;
        // Committed: the connection may go back to the pool.
        drop(self.client.take());
        Ok(record)
    }
}

/// A reconciliation run as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    pub id: ReconciliationId,
    pub statement_id: StatementId,
    pub account_id: AccountId,
    pub state: String,
    pub cutoff_seq: u64,
    pub date_window_days: u32,
    pub period_start: Date,
    pub period_end: Date,
    pub api_key_id: Uuid,
    pub idempotency_key: String,
    pub fingerprint: [u8; 32],
    pub created_at: Timestamp,
    pub items_ready: bool,
    pub item_count: Option<u64>,
    /// The completion event's data (the journal format), once prepared.
    pub summary: Option<Value>,
    pub completed_seq: Option<u64>,
    pub completed_at: Option<Timestamp>,
    pub failure: Option<String>,
}

/// A run to create.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub id: ReconciliationId,
    pub statement_id: StatementId,
    pub account_id: AccountId,
    pub cutoff_seq: u64,
    pub date_window_days: u32,
    pub period_start: Date,
    pub period_end: Date,
    pub api_key_id: Uuid,
    pub idempotency_key: String,
    pub fingerprint: [u8; 32],
    pub created_at: Timestamp,
}

const RUN_COLUMNS: &str = "id, statement_id, account_id, state, cutoff_seq, date_window_days, \
    period_start, period_end, api_key_id, idempotency_key, fingerprint, created_at, items_ready, \
    item_count, summary, completed_seq, completed_at, failure";

fn run_from_row(row: &tokio_postgres::Row) -> Result<RunRow, StorageError> {
    let fingerprint: Vec<u8> = row.get(10);
    let window: i32 = row.get(5);
    let item_count: Option<i32> = row.get(13);
    let completed_seq: Option<i64> = row.get(15);
    let completed_at: Option<time::OffsetDateTime> = row.get(16);
    Ok(RunRow {
        id: ReconciliationId::new(row.get(0)),
        statement_id: StatementId::new(row.get(1)),
        account_id: AccountId::new(row.get(2)),
        state: row.get(3),
        cutoff_seq: seq_from_sql(row.get(4))?,
        date_window_days: u32::try_from(window).map_err(|_| corrupt("window"))?,
        period_start: row.get(6),
        period_end: row.get(7),
        api_key_id: row.get(8),
        idempotency_key: row.get(9),
        fingerprint: fingerprint.try_into().map_err(|_| corrupt("fingerprint"))?,
        created_at: from_sql_time(row.get(11))?,
        items_ready: row.get(12),
        item_count: item_count.map(|count| count as u64),
        summary: row.get(14),
        completed_seq: completed_seq.map(seq_from_sql).transpose()?,
        completed_at: completed_at.map(from_sql_time).transpose()?,
        failure: row.get(17),
    })
}

/// An item as stored: the run's decision and its current resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemRow {
    pub item: ReconciliationItem,
    pub resolution: Option<ResolutionAction>,
    pub resolution_transfer_id: Option<TransferId>,
    pub resolution_note: Option<String>,
    pub resolution_actor: Option<String>,
    pub resolution_seq: Option<u64>,
}

const ITEM_COLUMNS: &str = "item_no, status, rule, line_no, booking_date, reference, \
    statement_amount, ledger_amount, difference, transfer_ids, candidate_transfer_ids, \
    resolution, resolution_transfer_id, resolution_note, resolution_actor, resolution_seq";

fn item_from_row(row: &tokio_postgres::Row) -> Result<ItemRow, StorageError> {
    let item_no: i32 = row.get(0);
    let status: &str = row.get(1);
    let line_no: Option<i32> = row.get(3);
    let booking_date: Option<Date> = row.get(4);
    let transfers = |index: usize| -> Vec<TransferId> {
        row.get::<_, Vec<Uuid>>(index)
            .into_iter()
            .map(TransferId::new)
            .collect()
    };
    let resolution: Option<&str> = row.get(11);
    let resolution_transfer: Option<Uuid> = row.get(12);
    let resolution_seq: Option<i64> = row.get(15);
    Ok(ItemRow {
        item: ReconciliationItem {
            item_no: u64::try_from(item_no).map_err(|_| corrupt("item_no"))?,
            status: ItemStatus::parse(status).ok_or_else(|| corrupt("status"))?,
            rule: row.get(2),
            line_no: line_no.map(|line| line as u64),
            booking_date: booking_date.map(day_from_date),
            reference: row.get(5),
            statement_amount: row.get(6),
            ledger_amount: row.get(7),
            difference: row.get(8),
            transfer_ids: transfers(9),
            candidate_transfer_ids: transfers(10),
        },
        resolution: resolution.and_then(ResolutionAction::parse),
        resolution_transfer_id: resolution_transfer.map(TransferId::new),
        resolution_note: row.get(13),
        resolution_actor: row.get(14),
        resolution_seq: resolution_seq.map(seq_from_sql).transpose()?,
    })
}

/// Count and totals of a run's items of one status.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusSums {
    pub status: ItemStatus,
    pub count: u64,
    pub statement_amount: Decimal,
    pub ledger_amount: Decimal,
}

impl Storage {
    /// Creates the run, or finds the one this API key created before under the same
    /// Idempotency-Key (whatever its request was: the caller compares fingerprints).
    pub async fn create_or_find_run(
        &self,
        ledger_id: i32,
        run: &NewRun,
    ) -> Result<RunRow, StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO reconciliation_runs (ledger_id, id, statement_id, account_id, state, \
                   cutoff_seq, date_window_days, period_start, period_end, api_key_id, \
                   idempotency_key, fingerprint, created_at) \
                 VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (ledger_id, api_key_id, idempotency_key) DO NOTHING",
                &[
                    &ledger_id,
                    &run.id.as_uuid(),
                    &run.statement_id.as_uuid(),
                    &run.account_id.as_uuid(),
                    &seq_to_sql(run.cutoff_seq),
                    &(run.date_window_days as i32),
                    &run.period_start,
                    &run.period_end,
                    &run.api_key_id,
                    &run.idempotency_key,
                    &run.fingerprint.as_slice(),
                    &to_sql_time(run.created_at),
                ],
            )
            .await?;
        let row = client
            .query_one(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM reconciliation_runs \
                     WHERE ledger_id = $1 AND api_key_id = $2 AND idempotency_key = $3"
                ),
                &[&ledger_id, &run.api_key_id, &run.idempotency_key],
            )
            .await?;
        run_from_row(&row)
    }

    pub async fn run(
        &self,
        ledger_id: i32,
        id: ReconciliationId,
    ) -> Result<Option<RunRow>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM reconciliation_runs WHERE ledger_id = $1 AND id = $2"
                ),
                &[&ledger_id, &id.as_uuid()],
            )
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Records the completion event's data a run's items produced (before it is submitted).
    pub async fn prepare_run_summary(
        &self,
        ledger_id: i32,
        id: ReconciliationId,
        summary: &Value,
        items_digest: &[u8; 32],
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE reconciliation_runs SET summary = $3, items_digest = $4 \
                 WHERE ledger_id = $1 AND id = $2 AND state = 'running'",
                &[&ledger_id, &id.as_uuid(), summary, &items_digest.as_slice()],
            )
            .await?;
        Ok(())
    }

    /// A run that cannot complete ends `failed`, with the reason.
    pub async fn fail_run(
        &self,
        ledger_id: i32,
        id: ReconciliationId,
        reason: &str,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE reconciliation_runs SET state = 'failed', failure = $3 \
                 WHERE ledger_id = $1 AND id = $2 AND state = 'running'",
                &[&ledger_id, &id.as_uuid(), &reason],
            )
            .await?;
        Ok(())
    }

    /// A page of a run's items in item order, after `after_item`, optionally of one status.
    pub async fn items_page(
        &self,
        ledger_id: i32,
        run_id: ReconciliationId,
        status: Option<ItemStatus>,
        after_item: u64,
        limit: usize,
    ) -> Result<Vec<ItemRow>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM reconciliation_items \
                     WHERE ledger_id = $1 AND run_id = $2 AND ($3::text IS NULL OR status = $3) \
                       AND item_no > $4 ORDER BY item_no LIMIT $5"
                ),
                &[
                    &ledger_id,
                    &run_id.as_uuid(),
                    &status.map(ItemStatus::as_str),
                    &i32::try_from(after_item).unwrap_or(i32::MAX),
                    &(limit as i64),
                ],
            )
            .await?;
        rows.iter().map(item_from_row).collect()
    }

    pub async fn item(
        &self,
        ledger_id: i32,
        run_id: ReconciliationId,
        item_no: u64,
    ) -> Result<Option<ItemRow>, StorageError> {
        let Ok(item_no) = i32::try_from(item_no) else {
            return Ok(None);
        };
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM reconciliation_items \
                     WHERE ledger_id = $1 AND run_id = $2 AND item_no = $3"
                ),
                &[&ledger_id, &run_id.as_uuid(), &item_no],
            )
            .await?;
        row.as_ref().map(item_from_row).transpose()
    }

    /// Count and totals per status, for every status (zero where none), in status order.
    pub async fn item_sums(
        &self,
        ledger_id: i32,
        run_id: ReconciliationId,
        zero: Decimal,
    ) -> Result<Vec<StatusSums>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT status, count(*), sum(statement_amount), sum(ledger_amount) \
                 FROM reconciliation_items WHERE ledger_id = $1 AND run_id = $2 GROUP BY status",
                &[&ledger_id, &run_id.as_uuid()],
            )
            .await?;
        let mut sums = Vec::with_capacity(ItemStatus::ALL.len());
        for status in ItemStatus::ALL {
            let row = rows
                .iter()
                .find(|row| row.get::<_, &str>(0) == status.as_str());
            let at_scale = |value: Option<Decimal>| {
                let mut value = value.unwrap_or(zero);
                value.rescale(zero.scale());
                value
            };
            sums.push(StatusSums {
                status,
                count: row.map_or(0, |row| row.get::<_, i64>(1) as u64),
                statement_amount: at_scale(row.and_then(|row| row.get(2))),
                ledger_amount: at_scale(row.and_then(|row| row.get(3))),
            });
        }
        Ok(sums)
    }

    /// The account's posted balance on its normal side after the last event at or before
    /// `cutoff_seq` that happened before `before` (zero when none did).
    pub async fn posted_balance_before(
        &self,
        ledger_id: i32,
        account_id: AccountId,
        cutoff_seq: u64,
        before: Timestamp,
    ) -> Result<Option<(Decimal, Decimal)>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT p.posted_debits_after, p.posted_credits_after FROM postings p \
                 JOIN journal j ON j.ledger_id = p.ledger_id AND j.seq = p.seq \
                 WHERE p.ledger_id = $1 AND p.account_id = $2 AND p.seq <= $3 AND j.at < $4 \
                 ORDER BY p.seq DESC LIMIT 1",
                &[
                    &ledger_id,
                    &account_id.as_uuid(),
                    &seq_to_sql(cutoff_seq),
                    &to_sql_time(before),
                ],
            )
            .await?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }
}

/// The first day after `date`, as the instant it starts (UTC).
pub fn start_of_day(date: Date) -> Timestamp {
    let at = date.midnight().assume_utc();
    Timestamp::from_unix_micros((at.unix_timestamp_nanos() / 1000) as i64)
}
