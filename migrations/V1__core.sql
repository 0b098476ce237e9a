-- Core schema: ledgers, accounts, transfers, postings and the hash-chained journal.
-- Every table carries the ledger as its leading key: a ledger is the unit of distribution.
-- Money is NUMERIC, never a float (§4.9); amounts carry their currency's scale.

CREATE TABLE ledgers (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    assets      jsonb NOT NULL,
    metadata    jsonb NOT NULL,
    created_at  timestamptz NOT NULL
);

-- The chain head: the serialisation point of all writers of a ledger, in any process.
CREATE TABLE ledger_heads (
    ledger_id   integer PRIMARY KEY REFERENCES ledgers (id),
    last_seq    bigint NOT NULL CHECK (last_seq >= 1),
    last_hash   bytea NOT NULL CHECK (octet_length(last_hash) = 32),
    last_at     timestamptz NOT NULL
) WITH (fillfactor = 20);

CREATE TABLE accounts (
    ledger_id        integer NOT NULL REFERENCES ledgers (id),
    id               uuid NOT NULL,
    code             text NOT NULL,
    currency         text NOT NULL,
    scale            smallint NOT NULL CHECK (scale BETWEEN 0 AND 18),
    normal_side      text NOT NULL CHECK (normal_side IN ('debit', 'credit')),
    balance_constraint text NOT NULL CHECK (balance_constraint IN
                         ('none', 'debits_must_not_exceed_credits', 'credits_must_not_exceed_debits')),
    status           text NOT NULL CHECK (status IN ('active', 'frozen', 'closed')),
    metadata         jsonb NOT NULL,
    posted_debits    numeric NOT NULL CHECK (posted_debits >= 0),
    posted_credits   numeric NOT NULL CHECK (posted_credits >= 0),
    pending_debits   numeric NOT NULL CHECK (pending_debits >= 0),
    pending_credits  numeric NOT NULL CHECK (pending_credits >= 0),
    created_at       timestamptz NOT NULL,
    opened_seq       bigint NOT NULL,
    PRIMARY KEY (ledger_id, id),
    UNIQUE (ledger_id, code),
    UNIQUE (ledger_id, opened_seq),
    -- §4.4 enforced by the database as well as by the engine.
    CHECK (balance_constraint <> 'debits_must_not_exceed_credits'
           OR pending_debits + posted_debits <= posted_credits),
    CHECK (balance_constraint <> 'credits_must_not_exceed_debits'
           OR pending_credits + posted_credits <= posted_debits)
) WITH (fillfactor = 70);

CREATE TABLE transfers (
    ledger_id          integer NOT NULL,
    id                 uuid NOT NULL,
    debit_account_id   uuid NOT NULL,
    credit_account_id  uuid NOT NULL,
    amount             numeric NOT NULL CHECK (amount > 0),
    currency           text NOT NULL,
    code               text,
    reference          text,
    description        text,
    metadata           jsonb NOT NULL,
    pending            boolean NOT NULL,
    timeout_seconds    integer CHECK (timeout_seconds >= 0),
    expires_at         timestamptz,
    state              text NOT NULL CHECK (state IN ('pending', 'posted', 'voided', 'expired')),
    reverses           uuid,
    posted_amount      numeric NOT NULL CHECK (posted_amount >= 0 AND posted_amount <= amount),
    reversed_amount    numeric NOT NULL CHECK (reversed_amount >= 0 AND reversed_amount <= posted_amount),
    created_at         timestamptz NOT NULL,
    journal_seq        bigint NOT NULL,
    PRIMARY KEY (ledger_id, id),
    UNIQUE (ledger_id, journal_seq),
    CHECK (debit_account_id <> credit_account_id)
) WITH (fillfactor = 90);

-- Pending transfers with a deadline, in the order they expire.
CREATE INDEX transfers_pending_expiry ON transfers (ledger_id, expires_at, id)
    WHERE state = 'pending' AND expires_at IS NOT NULL;

-- One row per account per event that moved its balances. Append-only. The account's four
-- balance fields are the sums of the deltas (§4.3); the *_after columns are the running balance.
CREATE TABLE postings (
    ledger_id              integer NOT NULL,
    account_id             uuid NOT NULL,
    seq                    bigint NOT NULL,
    transfer_id            uuid NOT NULL,
    side                   text NOT NULL CHECK (side IN ('debit', 'credit')),
    pending_delta          numeric NOT NULL,
    posted_delta           numeric NOT NULL,
    posted_debits_after    numeric NOT NULL,
    posted_credits_after   numeric NOT NULL,
    pending_debits_after   numeric NOT NULL,
    pending_credits_after  numeric NOT NULL,
    PRIMARY KEY (ledger_id, account_id, seq)
);

-- The journal (§5). Append-only; `hash` = SHA-256 of the RFC 8785 form of the other columns.
CREATE TABLE journal (
    ledger_id        integer NOT NULL,
    seq              bigint NOT NULL CHECK (seq >= 1),
    type             text NOT NULL,
    at               timestamptz NOT NULL,
    actor            text NOT NULL,
    request_id       text,
    idempotency_key  text,
    data             jsonb NOT NULL,
    prev_hash        bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash             bytea NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (ledger_id, seq)
);

-- §4.6: the database itself refuses to change history.
CREATE FUNCTION refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER journal_is_append_only BEFORE UPDATE OR DELETE ON journal
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER journal_is_not_truncated BEFORE TRUNCATE ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER postings_are_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER postings_are_not_truncated BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();

-- The service's own role: it may append to history but never change it, and it cannot disable
-- triggers because it owns nothing. Created when the migrating user may create roles; the
-- service switches to it with SET ROLE when its login user is a member.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger_service') THEN
        IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            CREATE ROLE ledger_service NOLOGIN;
        END IF;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger_service') THEN
        GRANT SELECT, INSERT ON journal, postings TO ledger_service;
        GRANT SELECT, INSERT, UPDATE ON ledgers, ledger_heads, accounts, transfers TO ledger_service;
        -- Readiness compares the applied migrations with the service's own.
        GRANT SELECT ON refinery_schema_history TO ledger_service;
        EXECUTE format('GRANT ledger_service TO %I', current_user);
    END IF;
END;
$$;
