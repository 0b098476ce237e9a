//! The schema follows the distribution plan of docs/SCALING.md: every table holding a ledger's
//! data carries `ledger_id`, and every key, unique index and foreign key between such tables
//! includes it, so that each could be a table distributed by `ledger_id` (Citus requires the
//! distribution column in every unique constraint and in foreign keys between distributed
//! tables) and every batch stays on one shard. The few tables without `ledger_id` are listed
//! here with their role; a new table must be placed in the plan to pass.

use std::collections::BTreeSet;

use crate::helpers::*;

/// Small tables every node would hold a copy of.
const REFERENCE_TABLES: [&str; 3] = ["api_keys", "ledgers", "signing_keys"];
/// Not distributable as is: keyed by API key, not ledger (docs/SCALING.md says what changes).
const NOT_YET_DISTRIBUTABLE: [&str; 1] = ["idempotency_keys"];

#[tokio::test]
async fn every_table_of_ledger_data_is_keyed_by_ledger_first_so_it_could_be_distributed_by_ledger()
{
    let app = spawn_app().await;
    let owner = owner_connection(&app.database).await;
    let tables: BTreeSet<String> = owner
        .query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> \
             'refinery_schema_history'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let distributed: BTreeSet<String> = owner
        .query(
            "SELECT table_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND column_name = 'ledger_id'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let unplaced: Vec<&String> = tables
        .iter()
        .filter(|table| {
            !distributed.contains(*table)
                && !REFERENCE_TABLES.contains(&table.as_str())
                && !NOT_YET_DISTRIBUTABLE.contains(&table.as_str())
        })
        .collect();
    assert!(
        unplaced.is_empty(),
        "tables without a place in docs/SCALING.md: {unplaced:?}"
    );
    assert!(
        distributed.len() >= 12,
        "the ledger's data tables: {distributed:?}"
    );

    // Every primary key, unique constraint and unique index of a distributed table names
    // ledger_id; every foreign key between distributed tables names it on both sides.
    let violations: Vec<String> = owner
        .query(
            "WITH ledger_column AS ( \
                 SELECT attrelid, attnum FROM pg_attribute WHERE attname = 'ledger_id' AND NOT \
                 attisdropped) \
             SELECT format('%s: unique index %s lacks ledger_id', i.indrelid::regclass, \
             i.indexrelid::regclass) \
             FROM pg_index i JOIN ledger_column l ON l.attrelid = i.indrelid \
             WHERE i.indisunique AND NOT (l.attnum = ANY (i.indkey::int2[])) \
             UNION ALL \
             SELECT format('%s: foreign key %s to %s lacks ledger_id', c.conrelid::regclass, \
             c.conname, c.confrelid::regclass) \
             FROM pg_constraint c \
             JOIN ledger_column l ON l.attrelid = c.conrelid \
             JOIN ledger_column r ON r.attrelid = c.confrelid \
             WHERE c.contype = 'f' AND c.confrelid <> 'ledgers'::regclass \
               AND NOT (l.attnum = ANY (c.conkey) AND r.attnum = ANY (c.confkey))",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(violations.is_empty(), "{violations:#?}");
}
