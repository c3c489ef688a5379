-- Aurora PostgreSQL: the sync role and its least-privilege grants. Run in the source database
-- as a member of rds_superuser, after 01_extension.sql. Safe to re-run.
--
-- The password is deliberately not here. Set it out of band (ALTER ROLE aurora_sync PASSWORD
-- ... from a session whose statement logging is off), or better let Vault's database secrets
-- engine manage it (rotate-root / static role) so it only ever lives in Vault.
--
-- Table access is NOT granted here. `aurora-sync sql aurora` generates, from the table
-- configs, one block per synced table:
--     GRANT USAGE ON SCHEMA <schema> TO aurora_sync;
--     GRANT SELECT ON <schema>.<table> TO aurora_sync;   -- or SELECT (<columns>) when the
--                                                         -- config lists columns
-- so adding a table to the sync is a reviewed grant, and the role can read nothing else.

DO $role$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'aurora_sync') THEN
        CREATE ROLE aurora_sync LOGIN;
    END IF;
END
$role$;

-- The export functions run with the caller's privileges; these grants only allow calling them.
GRANT USAGE ON SCHEMA aws_s3 TO aurora_sync;
GRANT USAGE ON SCHEMA aws_commons TO aurora_sync;
GRANT EXECUTE ON FUNCTION aws_s3.query_export_to_s3(text, aws_commons._s3_uri_1, text, text) TO aurora_sync;
GRANT EXECUTE ON FUNCTION aws_s3.query_export_to_s3(text, text, text, text, text, text) TO aurora_sync;
GRANT EXECUTE ON FUNCTION aws_commons.create_s3_uri(text, text, text) TO aurora_sync;

-- Lets the exporter see other sessions' transactions in pg_stat_activity (xact_start, state;
-- query texts too), so it can warn about open write transactions older than the lookback
-- window: their rows may commit with cursor values the export window has already passed.
GRANT pg_read_all_stats TO aurora_sync;

-- The export is a SELECT; a read-only default turns any accidental write into an error. The
-- exporter relies on the role reading only: it leaves this role's sessions named
-- 'aurora-sync-exporter' out of the oldest open transaction it waits for (docs/operations.md,
-- "Where each window starts"), so never grant it writes or sequence usage.
ALTER ROLE aurora_sync SET default_transaction_read_only = on;
