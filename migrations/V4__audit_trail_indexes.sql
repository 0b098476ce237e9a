-- The events of one transfer (GET …/transfers/{id}/audit) without scanning the journal: its
-- resolution (post, void, expiry) and its reversals. Both partial: a transfer posted at once, the
-- common case, adds nothing to either.
CREATE INDEX journal_transfer_resolutions ON journal (ledger_id, (data ->> 'transfer_id'))
    WHERE type IN ('transfer_posted', 'transfer_voided', 'transfer_expired');
CREATE INDEX transfers_reversals ON transfers (ledger_id, reverses) WHERE reverses IS NOT NULL;

-- The status of an account at any seq (exports): its latest lifecycle event up to that seq.
CREATE INDEX journal_account_lifecycle ON journal (ledger_id, (data ->> 'account_id'), seq)
    WHERE type IN ('account_frozen', 'account_unfrozen', 'account_closed');
