-- Witness cosignatures of signed checkpoints (C2SP tlog-cosignature, cosignature/v1, Ed25519).
-- A witness (any auditor, with its own key) checks that each new checkpoint extends the last
-- one it saw and co-signs it; the service keeps the cosignature and serves it with the
-- checkpoint. One cosignature per checkpoint and witness key, the first one posted. Witness
-- keys are not vetted here: clients count only the keys they trust. Append-only.
CREATE TABLE checkpoint_cosignatures (
    ledger_id     integer NOT NULL,
    tree_size     bigint NOT NULL CHECK (tree_size >= 1),
    -- SHA-256(witness_name || 0x0A || 0x04 || public_key)[0..4], as in the signature line.
    key_id        bytea NOT NULL CHECK (octet_length(key_id) = 4),
    -- The witness's Ed25519 public key (from the vkey it posted with the cosignature). Part of
    -- the key: a 4-byte key ID can be matched by another key on purpose, and that must not
    -- keep the real witness's cosignature out.
    public_key    bytea NOT NULL CHECK (octet_length(public_key) = 32),
    witness_name  text NOT NULL CHECK (witness_name <> ''),
    -- The cosignature's own timestamp: seconds since the Unix epoch, as the witness signed it.
    cosigned_at   bigint NOT NULL CHECK (cosigned_at >= 0),
    signature     bytea NOT NULL CHECK (octet_length(signature) = 64),
    received_at   timestamptz NOT NULL,
    -- The API key that posted it.
    received_by   uuid NOT NULL,
    PRIMARY KEY (ledger_id, tree_size, key_id, public_key),
    FOREIGN KEY (ledger_id, tree_size) REFERENCES checkpoints (ledger_id, tree_size)
);

CREATE TRIGGER checkpoint_cosignatures_are_append_only BEFORE UPDATE OR DELETE ON checkpoint_cosignatures
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER checkpoint_cosignatures_are_not_truncated BEFORE TRUNCATE ON checkpoint_cosignatures
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger_service') THEN
        GRANT SELECT, INSERT ON checkpoint_cosignatures TO ledger_service;
    END IF;
END;
$$;
