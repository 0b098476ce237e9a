-- API keys (§9) and idempotency records (§6).

-- An API key. The token itself is never stored: only its SHA-256, which the service compares in
-- constant time. Keys are revoked, never deleted, so every event's actor stays resolvable.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    role          text NOT NULL CHECK (role IN ('admin', 'writer', 'reader', 'auditor')),
    -- NULL: every ledger; otherwise only these.
    ledgers       text[] CHECK (ledgers IS NULL OR cardinality(ledgers) BETWEEN 1 AND 100),
    token_sha256  bytea NOT NULL UNIQUE CHECK (octet_length(token_sha256) = 32),
    created_at    timestamptz NOT NULL,
    created_by    text NOT NULL,
    revoked_at    timestamptz
);

-- What an Idempotency-Key decided, to replay it. Scoped by the API key that sent it; kept for the
-- configured retention, then purged (the journal keeps the key forever).
CREATE TABLE idempotency_keys (
    api_key_id    uuid NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- SHA-256 over method, path and the canonical body.
    fingerprint   bytea NOT NULL CHECK (octet_length(fingerprint) = 32),
    status        smallint NOT NULL,
    content_type  text NOT NULL,
    location      text,
    body          bytea NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (api_key_id, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger_service') THEN
        GRANT SELECT, INSERT, UPDATE ON api_keys TO ledger_service;
        -- DELETE only for the retention purge; nothing else of history may be deleted.
        GRANT SELECT, INSERT, DELETE ON idempotency_keys TO ledger_service;
    END IF;
END;
$$;
