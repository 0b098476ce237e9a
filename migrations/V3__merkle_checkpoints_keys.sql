-- Verifiable audit (§5): the Merkle tree over each ledger's journal, signed checkpoints, the
-- signing keys that sign them, and integrity check runs (§7).

-- The tree's frontier (RFC 6962 compact range: the roots of the complete subtrees making up the
-- tree, largest first) moves with the chain head, in the same transaction as the events.
ALTER TABLE ledger_heads
    ADD COLUMN merkle_size bigint NOT NULL DEFAULT 0 CHECK (merkle_size >= 0),
    ADD COLUMN merkle_frontier bytea[] NOT NULL DEFAULT '{}';

-- The root of every complete subtree at levels 8, 16, 24, … (256, 65,536, … leaves): with the
-- event hashes, enough to compute any proof without rebuilding the tree. Append-only.
CREATE TABLE merkle_nodes (
    ledger_id  integer NOT NULL,
    level      smallint NOT NULL CHECK (level > 0 AND level % 8 = 0),
    index      bigint NOT NULL CHECK (index >= 0),
    hash       bytea NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (ledger_id, level, index)
);

-- Ed25519 public keys that sign checkpoints and exports. Never deleted: a retired key stays
-- listed so that what it signed stays verifiable.
CREATE TABLE signing_keys (
    id          text PRIMARY KEY,
    algorithm   text NOT NULL CHECK (algorithm = 'ed25519'),
    public_key  bytea NOT NULL UNIQUE CHECK (octet_length(public_key) = 32),
    created_at  timestamptz NOT NULL,
    retired_at  timestamptz
);

-- Signed checkpoints (C2SP tlog-checkpoint as a C2SP signed-note). Append-only.
CREATE TABLE checkpoints (
    ledger_id    integer NOT NULL,
    tree_size    bigint NOT NULL CHECK (tree_size >= 1),
    root_hash    bytea NOT NULL CHECK (octet_length(root_hash) = 32),
    note         text NOT NULL,
    key_id       text NOT NULL,
    issued_at    timestamptz NOT NULL,
    PRIMARY KEY (ledger_id, tree_size)
);

-- Integrity check runs (§7) and what they found.
CREATE TABLE integrity_checks (
    ledger_id    integer NOT NULL,
    id           uuid NOT NULL,
    status       text NOT NULL CHECK (status IN ('running', 'passed', 'failed')),
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    checked_seq  bigint,
    findings     jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (ledger_id, id)
);
CREATE INDEX integrity_checks_latest ON integrity_checks (ledger_id, started_at DESC);

CREATE TRIGGER merkle_nodes_are_append_only BEFORE UPDATE OR DELETE ON merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER merkle_nodes_are_not_truncated BEFORE TRUNCATE ON merkle_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER checkpoints_are_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER checkpoints_are_not_truncated BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger_service') THEN
        GRANT SELECT, INSERT ON merkle_nodes, checkpoints TO ledger_service;
        GRANT SELECT, INSERT, UPDATE ON signing_keys, integrity_checks TO ledger_service;
    END IF;
END;
$$;
