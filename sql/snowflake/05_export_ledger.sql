-- The export ledger: what each run accounted for, and which runs reached FINAL.
--
-- _AURORA_SYNC_FILES: one row per exported file the verifier reconciled with COPY_HISTORY. Every
-- MERGE task joins its stream to it: rows from a file no run accounted for (a stray object under
-- a table's prefix, a replayed copy of an old export) are never merged, and the versions of a row
-- are ordered by the source snapshot they were read in (SNAPSHOT_ORDER), never by the cursor.
-- _AURORA_SYNC_RUNS: one row per table and run; the planner derives the next export window from
-- the runs that reached FINAL (MERGED_AT set), so a failed run never moves it. LAYOUT is the
-- fingerprint of the file layout the run exported with. MODE is the table's sync mode (NULL on
-- runs recorded before modes: cursor); SNAPSHOT_XMIN/XMAX the source snapshot's 64-bit xids, where
-- an xmin-mode run starts; KEY_ROWS, ROWS_DELETED and RECONCILED_AT describe a reconciling run's
-- key snapshot and the FINAL rows removed because the source no longer had their key.
-- _AURORA_SYNC_LAYOUTS: the columns behind each layout fingerprint, written by the planner when a
-- table's layout changes: a column that no merged run exported gets its values by a re-export.
-- All are small (rows per file, per run, per layout change); the functions prune the first two.

CREATE TABLE IF NOT EXISTS {{database}}.{{staging_schema}}."_AURORA_SYNC_FILES" (
    TARGET VARCHAR NOT NULL,
    RUN_ID VARCHAR NOT NULL,
    FILE_NAME VARCHAR NOT NULL,
    SNAPSHOT_ORDER NUMBER(38,0) NOT NULL,
    ROWS_LOADED NUMBER(38,0) NOT NULL,
    ACCOUNTED_AT TIMESTAMP_TZ NOT NULL,
    MERGED_AT TIMESTAMP_TZ
) COMMENT = 'aurora-sync: exported files accounted for by the verifier, the only files MERGE tasks read';

CREATE TABLE IF NOT EXISTS {{database}}.{{staging_schema}}."_AURORA_SYNC_RUNS" (
    TARGET VARCHAR NOT NULL,
    RUN_ID VARCHAR NOT NULL,
    SNAPSHOT_ORDER NUMBER(38,0) NOT NULL,
    SOURCE_TIME TIMESTAMP_TZ NOT NULL,
    HORIZON TIMESTAMP_TZ NOT NULL,
    CURSOR_TYPE VARCHAR NOT NULL,
    CURSOR_COLUMN VARCHAR NOT NULL,
    MAX_CURSOR VARCHAR,
    SAMPLE_TIME TIMESTAMP_TZ,
    SAMPLE_MAX VARCHAR,
    WINDOW_START VARCHAR,
    PRIMARY_KEY VARCHAR NOT NULL,
    FILE_COUNT NUMBER(38,0) NOT NULL,
    ROWS_LOADED NUMBER(38,0) NOT NULL,
    ACCOUNTED_AT TIMESTAMP_TZ NOT NULL,
    MERGED_AT TIMESTAMP_TZ,
    LAYOUT VARCHAR,
    MODE VARCHAR,
    SNAPSHOT_XMIN VARCHAR,
    SNAPSHOT_XMAX VARCHAR,
    KEY_ROWS NUMBER(38,0),
    ROWS_DELETED NUMBER(38,0),
    RECONCILED_AT TIMESTAMP_TZ
) COMMENT = 'aurora-sync: one row per table and run, where the planner starts the next window from merged runs';

-- Ledgers created before runs recorded their layout.
ALTER TABLE {{database}}.{{staging_schema}}."_AURORA_SYNC_RUNS" ADD COLUMN IF NOT EXISTS LAYOUT VARCHAR;
-- Ledgers created before sync modes and hard-delete reconciliation (old rows: NULL, i.e. cursor).
ALTER TABLE {{database}}.{{staging_schema}}."_AURORA_SYNC_RUNS" ADD COLUMN IF NOT EXISTS MODE VARCHAR;
ALTER TABLE {{database}}.{{staging_schema}}."_AURORA_SYNC_RUNS" ADD COLUMN IF NOT EXISTS SNAPSHOT_XMIN VARCHAR;
ALTER TABLE {{database}}.{{staging_schema}}."_AURORA_SYNC_RUNS" ADD COLUMN IF NOT EXISTS SNAPSHOT_XMAX VARCHAR;
ALTER TABLE {{database}}.{{staging_schema}}."_AURORA_SYNC_RUNS" ADD COLUMN IF NOT EXISTS KEY_ROWS NUMBER(38,0);
ALTER TABLE {{database}}.{{staging_schema}}."_AURORA_SYNC_RUNS" ADD COLUMN IF NOT EXISTS ROWS_DELETED NUMBER(38,0);
ALTER TABLE {{database}}.{{staging_schema}}."_AURORA_SYNC_RUNS" ADD COLUMN IF NOT EXISTS RECONCILED_AT TIMESTAMP_TZ;

CREATE TABLE IF NOT EXISTS {{database}}.{{staging_schema}}."_AURORA_SYNC_LAYOUTS" (
    TARGET VARCHAR NOT NULL,
    LAYOUT VARCHAR NOT NULL,
    COLUMNS VARCHAR NOT NULL,
    RECORDED_AT TIMESTAMP_TZ NOT NULL
) COMMENT = 'aurora-sync: the columns of each file layout a table was exported with (RUNS.LAYOUT)';

-- The service role writes them (future grants on STAGING do not include UPDATE).
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{database}}.{{staging_schema}}."_AURORA_SYNC_FILES" TO ROLE {{service_role}};
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{database}}.{{staging_schema}}."_AURORA_SYNC_RUNS" TO ROLE {{service_role}};
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{database}}.{{staging_schema}}."_AURORA_SYNC_LAYOUTS" TO ROLE {{service_role}};
