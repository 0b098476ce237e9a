-- Reconciliation against the outside world (§7): bank statements, runs, and their items.
-- Every table carries the ledger as its leading key. Amounts are NUMERIC at the account's scale;
-- a statement amount is signed: positive = money into the account (raises its normal side).

-- A statement, identified by the SHA-256 of the uploaded bytes: immutable once stored.
CREATE TABLE statements (
    ledger_id            integer NOT NULL REFERENCES ledgers (id),
    id                   uuid NOT NULL,
    account_id           uuid NOT NULL,
    sha256               bytea NOT NULL CHECK (octet_length(sha256) = 32),
    format               text NOT NULL CHECK (format IN ('csv', 'jsonl', 'camt.053', 'mt940')),
    byte_count           bigint NOT NULL CHECK (byte_count > 0),
    line_count           integer NOT NULL CHECK (line_count >= 0),
    duplicate_line_count integer NOT NULL CHECK (duplicate_line_count >= 0),
    currency             text NOT NULL,
    statement_ref        text,
    account_identifier   text,
    opening_balance      numeric,
    closing_balance      numeric,
    total_in             numeric NOT NULL,
    total_out            numeric NOT NULL,
    -- The period the statement covers: stated by the file, else its first and last booking date.
    period_start         date NOT NULL,
    period_end           date NOT NULL CHECK (period_end >= period_start),
    created_at           timestamptz NOT NULL,
    created_by           uuid NOT NULL,
    PRIMARY KEY (ledger_id, id),
    UNIQUE (ledger_id, sha256),
    FOREIGN KEY (ledger_id, account_id) REFERENCES accounts (ledger_id, id)
);

-- The entries of a statement, in file order (`line_no` = 1, 2, …); `number` is where the entry
-- stands in the file (its physical line, or its XML entry / MT940 :61: ordinal).
CREATE TABLE statement_lines (
    ledger_id      integer NOT NULL,
    statement_id   uuid NOT NULL,
    line_no        integer NOT NULL CHECK (line_no >= 1),
    number         bigint NOT NULL,
    external_id    text,
    booking_date   date NOT NULL,
    value_date     date,
    amount         numeric NOT NULL CHECK (amount <> 0),
    reference      text,
    description    text,
    -- The first line of this file with the same external id, or the same reference, booking
    -- date and amount: duplicates are kept and flagged, never dropped.
    duplicate_of   integer,
    PRIMARY KEY (ledger_id, statement_id, line_no)
);

-- A reconciliation run of one statement against its account as of `cutoff_seq`.
CREATE TABLE reconciliation_runs (
    ledger_id          integer NOT NULL REFERENCES ledgers (id),
    id                 uuid NOT NULL,
    statement_id       uuid NOT NULL,
    account_id         uuid NOT NULL,
    state              text NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
    cutoff_seq         bigint NOT NULL CHECK (cutoff_seq >= 1),
    date_window_days   integer NOT NULL CHECK (date_window_days BETWEEN 0 AND 366),
    period_start       date NOT NULL,
    period_end         date NOT NULL,
    -- Who asked, under which Idempotency-Key and request fingerprint: a retry finds its run.
    api_key_id         uuid NOT NULL,
    idempotency_key    text NOT NULL,
    fingerprint        bytea NOT NULL CHECK (octet_length(fingerprint) = 32),
    created_at         timestamptz NOT NULL,
    -- Set once the items are computed (still `running` until the completion event commits).
    items_ready        boolean NOT NULL DEFAULT false,
    item_count         integer,
    items_digest       bytea CHECK (items_digest IS NULL OR octet_length(items_digest) = 32),
    -- Counts and totals per status, the book-vs-bank finding: as in the completion event.
    summary            jsonb,
    completed_seq      bigint,
    completed_at       timestamptz,
    failure            text,
    PRIMARY KEY (ledger_id, id),
    UNIQUE (ledger_id, api_key_id, idempotency_key),
    FOREIGN KEY (ledger_id, statement_id) REFERENCES statements (ledger_id, id),
    CHECK ((state = 'completed') = (completed_seq IS NOT NULL))
);

-- The items of a run, in a deterministic order: one per statement line (`item_no` = its
-- `line_no`), then one per ledger transfer missing from the statement.
CREATE TABLE reconciliation_items (
    ledger_id              integer NOT NULL,
    run_id                 uuid NOT NULL,
    item_no                integer NOT NULL CHECK (item_no >= 1),
    status                 text NOT NULL CHECK (status IN ('matched', 'mismatched', 'ambiguous',
                               'missing_in_ledger', 'missing_in_statement')),
    -- The rule that decided it: reference_amount, amount_date, reference_split,
    -- reference_mismatch, ambiguous, unmatched.
    rule                   text NOT NULL,
    line_no                integer,
    transfer_ids           uuid[] NOT NULL,
    candidate_transfer_ids uuid[] NOT NULL,
    statement_amount       numeric,
    ledger_amount          numeric,
    -- statement_amount - ledger_amount, where both exist.
    difference             numeric,
    booking_date           date,
    reference              text,
    -- The item's current resolution (the history is the journal's resolution events).
    resolution             text CHECK (resolution IN ('match', 'accept', 'adjust')),
    resolution_transfer_id uuid,
    resolution_note        text,
    resolution_actor       text,
    resolution_seq         bigint,
    PRIMARY KEY (ledger_id, run_id, item_no)
);
CREATE INDEX reconciliation_items_by_status ON reconciliation_items (ledger_id, run_id, status, item_no);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger_service') THEN
        -- Statements and their lines are immutable: no UPDATE, no DELETE.
        GRANT SELECT, INSERT ON statements, statement_lines TO ledger_service;
        -- A run's state and an item's current resolution change; nothing is deleted, except the
        -- items of a run whose computation is redone after a crash (before it completed).
        GRANT SELECT, INSERT, UPDATE ON reconciliation_runs TO ledger_service;
        GRANT SELECT, INSERT, UPDATE, DELETE ON reconciliation_items TO ledger_service;
    END IF;
END;
$$;
