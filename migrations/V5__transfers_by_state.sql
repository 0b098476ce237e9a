-- Listing a ledger's transfers by a state other than `posted` (`GET …/transfers?state=pending`)
-- walks only the transfers in that state, not the whole ledger. Partial: posted transfers, the
-- bulk of every ledger, are not in it, so the write path of a posted transfer does not pay for it.
CREATE INDEX transfers_by_unposted_state ON transfers (ledger_id, state, journal_seq)
    WHERE state <> 'posted';
