-- A 1,000-transfer batch's recorded response is about 530 KB of JSON. pglz, PostgreSQL's default
-- TOAST compression, took a median 3.8 ms of the writer's backend per batch to compress it; lz4
-- 0.7 ms, to a similar size (docs/PERFORMANCE.md, issue 12). Replays read back the same bytes:
-- compression is invisible to the service. Rows stored before keep their pglz values.
--
-- lz4 exists only in servers built with it (Debian's and the official images are); elsewhere
-- the column keeps pglz and nothing else changes.
DO $$
BEGIN
    ALTER TABLE idempotency_keys ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available in this server: idempotency bodies stay pglz-compressed';
END;
$$;
