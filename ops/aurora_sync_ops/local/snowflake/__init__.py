"""Local Snowflake: fakesnow in server mode plus an emulation of Snowflake's control plane.

fakesnow answers tables, MERGE and queries; this package adds what only a real account has:
storage integrations, pipes fed by S3 event notifications through a real (moto) SQS queue,
append-only streams, tasks, and the COPY_HISTORY / TASK_HISTORY table functions. Production
SQL runs unchanged; every rewrite needed to run it on DuckDB lives here.
"""
