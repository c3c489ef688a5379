-- Local emulation of Aurora PostgreSQL's aws_s3 / aws_commons export functions.
--
-- Same schemas, type, signatures and result columns as the real extension, so production
-- SQL (sql/aurora/02_sync_role.sql grants, the exporter's calls) runs unchanged. Installed by
-- aurora_sync_ops.local.postgres as plain objects (not CREATE EXTENSION: that would need files
-- in the system's PostgreSQL share directory). Idempotent.
--
-- @UPLOADER@ and @STATE_DIR@ are replaced by SQL literals at install time (the uploader's
-- shell command prefix, already shell-quoted, and its state directory).
--
-- How an export runs (see uploader.py for the S3 side):
--   1. COPY (<query>) TO PROGRAM '<uploader> upload <token>' [WITH (<options>)]
--      The caller's privileges apply (these functions are not SECURITY DEFINER), exactly as
--      with the real extension. Locally the caller therefore needs pg_execute_server_program.
--   2. COPY (SELECT WHERE false) TO PROGRAM '<uploader> complete <token>'
--      Completes the multipart uploads only now that the query is known to have succeeded.
--   On any error: '<uploader> abort <token>', then the original error is re-raised.
--   Outcomes come back through files read by aws_s3._emulation_outcome (see below).

CREATE SCHEMA IF NOT EXISTS aws_commons;
CREATE SCHEMA IF NOT EXISTS aws_s3;

DO $install$
BEGIN
    IF pg_catalog.to_regtype('aws_commons._s3_uri_1') IS NULL THEN
        CREATE TYPE aws_commons._s3_uri_1 AS (bucket text, file_path text, region text);
    END IF;
END
$install$;

CREATE OR REPLACE FUNCTION aws_commons.create_s3_uri(bucket text, file_path text, region text)
RETURNS aws_commons._s3_uri_1
LANGUAGE sql IMMUTABLE
AS $fn$ SELECT ROW($1, $2, $3)::aws_commons._s3_uri_1 $fn$;

-- The one privileged piece: reads the outcome file the uploader wrote for one export id.
-- SECURITY DEFINER because pg_read_file is superuser-only and a read-only transaction (the
-- sync role's default) cannot COPY a program's output into a table. It can read nothing but
-- <state dir>/<uuid>.outcome.json. EXECUTE stays granted to PUBLIC so that the export works
-- with exactly the production grants (USAGE on aws_s3 + EXECUTE on the real functions).
CREATE OR REPLACE FUNCTION aws_s3._emulation_outcome(export_id uuid)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT pg_catalog.pg_read_file(@STATE_DIR@ || '/' || export_id::text || '.outcome.json', 0, 1048576, true)::jsonb
$fn$;

CREATE OR REPLACE FUNCTION aws_s3.query_export_to_s3(
    query text,
    bucket text,
    file_path text,
    region text DEFAULT NULL,
    options text DEFAULT NULL,
    kms_key text DEFAULT NULL,
    OUT rows_uploaded bigint,
    OUT files_uploaded bigint,
    OUT bytes_uploaded bigint
)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
-- No SET search_path: the query must resolve names with the caller's search_path.
AS $fn$
DECLARE
    uploader constant text := @UPLOADER@;
    export_id uuid := pg_catalog.gen_random_uuid();
    token text;
    copy_sql text;
    outcome jsonb;
    failed_state text;
BEGIN
    IF query IS NULL OR bucket IS NULL OR file_path IS NULL THEN
        RAISE EXCEPTION 'query, bucket and file_path must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;

    -- Hex, not the raw strings: bucket/key/kms come from callers and COPY TO PROGRAM runs
    -- its command through sh -c. Hex digits need no quoting at all.
    token := pg_catalog.encode(pg_catalog.convert_to(pg_catalog.jsonb_build_object(
        'id', export_id,
        'bucket', bucket,
        'key', file_path,
        'region', region,
        'kms_key', kms_key,
        'options', options,
        -- The real extension cuts files at about 6 GB; tests lower it to exercise _partN.
        'max_file_size', pg_catalog.pg_size_bytes(
            COALESCE(NULLIF(pg_catalog.current_setting('aws_s3_emulation.max_file_size', true), ''), '6GB')),
        -- How long an export may wait for its complete/abort step before the uploader's
        -- watchdog aborts it (only matters when the backend died in between).
        'abandon_after', pg_catalog.date_part('epoch', COALESCE(NULLIF(
            pg_catalog.current_setting('aws_s3_emulation.abandon_after', true), ''), '10min')::interval)
    )::text, 'UTF8'), 'hex');

    -- The newlines keep a trailing "-- comment" in the query from swallowing the rest.
    copy_sql := pg_catalog.format(E'COPY (\n%s\n) TO PROGRAM %L', query, uploader || ' upload ' || token);
    IF options IS NOT NULL AND pg_catalog.btrim(options) <> '' THEN
        -- The options string goes to COPY unchanged, in the parenthesised option list that
        -- the documented examples need ('format csv, delimiter $$:$$').
        copy_sql := copy_sql || pg_catalog.format(' WITH (%s)', options);
    END IF;

    BEGIN
        EXECUTE copy_sql;
        GET DIAGNOSTICS rows_uploaded = ROW_COUNT;
        EXECUTE pg_catalog.format('COPY (SELECT WHERE false) TO PROGRAM %L', uploader || ' complete ' || token);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        failed_state := SQLSTATE;
        BEGIN
            EXECUTE pg_catalog.format('COPY (SELECT WHERE false) TO PROGRAM %L', uploader || ' abort ' || token);
            outcome := aws_s3._emulation_outcome(export_id);
        EXCEPTION WHEN OTHERS THEN
            -- Cleanup must not mask the caller's error; the watchdog aborts what is left.
            outcome := NULL;
        END;
        -- 38000 is COPY's "program failed": the uploader stopped because S3 refused or was
        -- unreachable. Any other error is the query's own and is re-raised untouched.
        IF failed_state = '38000' AND outcome ->> 'error' IS NOT NULL THEN
            RAISE EXCEPTION 'could not upload to Amazon S3'
                USING ERRCODE = 'system_error',
                      DETAIL = pg_catalog.format('Amazon S3 client returned ''%s''. (bucket "%s", key "%s")',
                                                 outcome ->> 'error', bucket, file_path);
        END IF;
        RAISE;
    END;

    outcome := aws_s3._emulation_outcome(export_id);
    IF outcome IS NULL OR outcome ->> 'status' <> 'completed' THEN
        RAISE EXCEPTION 'could not upload to Amazon S3'
            USING ERRCODE = 'system_error',
                  DETAIL = pg_catalog.format('Amazon S3 client returned ''%s''. (bucket "%s", key "%s")',
                                             COALESCE(outcome ->> 'error', 'no outcome recorded'), bucket, file_path);
    END IF;
    files_uploaded := (outcome ->> 'files')::bigint;
    bytes_uploaded := (outcome ->> 'bytes')::bigint;
    RETURN NEXT;
END
$fn$;

CREATE OR REPLACE FUNCTION aws_s3.query_export_to_s3(
    query text,
    s3_info aws_commons._s3_uri_1,
    options text DEFAULT NULL,
    kms_key text DEFAULT NULL,
    OUT rows_uploaded bigint,
    OUT files_uploaded bigint,
    OUT bytes_uploaded bigint
)
RETURNS SETOF record
LANGUAGE sql VOLATILE
AS $fn$
    SELECT * FROM aws_s3.query_export_to_s3($1, ($2).bucket, ($2).file_path, ($2).region, $3, $4)
$fn$;

-- Like the real extension: only roles that were granted EXECUTE may export.
REVOKE ALL ON FUNCTION aws_s3.query_export_to_s3(text, text, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION aws_s3.query_export_to_s3(text, aws_commons._s3_uri_1, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION aws_commons.create_s3_uri(text, text, text) FROM PUBLIC;
