-- pgbench script: the SQL-only ceiling of one 1,000-transfer batch (issue 12).
--
--   pgbench -n -M prepared -c 1 -j 1 -T 10 -D ledger=<ledger id> -D n=1000 -D accounts=1000 \
--           -f load/sql/batch_ceiling.sql ledger
--
-- One transaction writes what the service's batch writes for N posted transfers between random
-- accounts of one ledger, with the rows generated inside the server (no client binding cost):
-- the chain head locked first and moved by N, the accounts locked in id order and updated once
-- each, N transfers, N journal events (jsonb data shaped like `transfer_created`), 2N postings,
-- and one idempotency record holding the batch's JSON response. What it leaves out, so the
-- ceiling is a ceiling: no lookup of the new ids, no hashing (constant hashes), no Merkle nodes,
-- no running balances (zeros in the *_after columns). `load/bench.sh` needs the helper table
-- `ceiling_accounts (n, id)` numbering the ledger's accounts 1..accounts.
BEGIN;
SELECT last_seq FROM ledger_heads WHERE ledger_id = :ledger::int FOR UPDATE;
WITH head AS (
    SELECT last_seq FROM ledger_heads WHERE ledger_id = :ledger::int
), drawn AS MATERIALIZED (
    SELECT g, gen_random_uuid() AS id, (1 + floor(random() * 9998))::numeric / 100 AS amount,
           1 + floor(random() * :accounts::int)::int AS d, 1 + floor(random() * (:accounts::int - 1))::int AS k
    FROM generate_series(1, :n::int) AS g
), picks AS MATERIALIZED (
    SELECT drawn.g, drawn.id, drawn.amount, da.id AS debit, ca.id AS credit, head.last_seq + drawn.g AS seq
    FROM drawn
    JOIN ceiling_accounts da ON da.n = drawn.d
    JOIN ceiling_accounts ca ON ca.n = 1 + (drawn.d - 1 + drawn.k) % :accounts::int
    CROSS JOIN head
), locked AS (
    SELECT a.id FROM accounts a
    WHERE a.ledger_id = :ledger::int AND a.id IN (SELECT debit FROM picks UNION SELECT credit FROM picks)
    ORDER BY a.id FOR UPDATE
), new_transfers AS (
    INSERT INTO transfers (ledger_id, id, debit_account_id, credit_account_id, amount, currency,
                           metadata, pending, state, posted_amount, reversed_amount, created_at, journal_seq)
    SELECT :ledger::int, id, debit, credit, amount, 'EUR', '{}', false, 'posted', amount, 0, now(), seq
    FROM picks
), new_events AS (
    INSERT INTO journal (ledger_id, seq, type, at, actor, request_id, idempotency_key, data, prev_hash, hash)
    SELECT :ledger::int, seq, 'transfer_created', now(), 'api-key-ceiling', 'req-ceiling', 'ceiling-batch',
           jsonb_build_object('id', id, 'debit_account_id', debit, 'credit_account_id', credit,
                              'amount', amount::text, 'currency', 'EUR', 'code', NULL, 'reference', NULL,
                              'description', NULL, 'metadata', '{}'::jsonb, 'pending', false,
                              'timeout_seconds', NULL),
           '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea,
           '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
    FROM picks
), new_postings AS (
    INSERT INTO postings (ledger_id, account_id, seq, transfer_id, side, pending_delta, posted_delta,
                          posted_debits_after, posted_credits_after, pending_debits_after, pending_credits_after)
    SELECT :ledger::int, debit, seq, id, 'debit', 0, amount, 0, 0, 0, 0 FROM picks
    UNION ALL
    SELECT :ledger::int, credit, seq, id, 'credit', 0, amount, 0, 0, 0, 0 FROM picks
), moved AS (
    UPDATE accounts a SET posted_debits = a.posted_debits + m.debits,
                          posted_credits = a.posted_credits + m.credits
    FROM (SELECT id, sum(debit) AS debits, sum(credit) AS credits
          FROM (SELECT debit AS id, amount AS debit, 0 AS credit FROM picks
                UNION ALL SELECT credit, 0, amount FROM picks) AS sides
          GROUP BY id) AS m
    WHERE a.ledger_id = :ledger::int AND a.id = m.id AND a.id IN (SELECT id FROM locked)
)
INSERT INTO idempotency_keys (api_key_id, key, fingerprint, status, content_type, location, body, created_at)
SELECT gen_random_uuid(), 'ceiling', sha256(''::bytea), 201, 'application/json', NULL,
       convert_to(json_build_object('transfers', json_agg(json_build_object(
           'id', id, 'debit_account_id', debit, 'credit_account_id', credit, 'amount', amount::text,
           'currency', 'EUR', 'state', 'posted', 'pending', false, 'posted_amount', amount::text,
           'reversed_amount', '0.00', 'metadata', '{}'::json, 'journal_seq', seq,
           'code', NULL, 'reference', NULL, 'description', NULL, 'timeout_seconds', NULL,
           'expires_at', NULL, 'reverses', NULL, 'created_at', now()) ORDER BY g))::text, 'UTF8'),
       now()
FROM picks;
UPDATE ledger_heads SET last_seq = last_seq + :n::int, last_at = now() WHERE ledger_id = :ledger::int;
COMMIT;
