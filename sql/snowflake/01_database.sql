-- Snowflake: the database and the two schemas of the sync. Run as a role that may create
-- databases (e.g. SYSADMIN). Rendered with your names by `aurora-sync sql snowflake --setup`;
-- this file shows the defaults. Safe to re-run.
--
-- STAGING holds what Snowpipe loads (typed columns + load metadata), the streams, pipes and
-- tasks; FINAL holds one table per source table, deduplicated by primary key.

CREATE DATABASE IF NOT EXISTS {{database}};
CREATE SCHEMA IF NOT EXISTS {{database}}.{{staging_schema}};
CREATE SCHEMA IF NOT EXISTS {{database}}.{{final_schema}};
