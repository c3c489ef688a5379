"""Generates every Snowflake statement of the product: the fixed setup and each table's objects.

Nothing is hand-written per table: a table's STAGING and FINAL tables, stream, pipe, MERGE task
and retention task are rendered from its config and the PostgreSQL catalog, with types from the
one type map (``aurora_sync.typemap``) and names from ``aurora_sync.naming``. The per-table SQL
(columns, the pipe's COPY, the MERGE) lives in ``aurora_sync.snowflake_objects``, shared with the
planner, which evolves these objects when the source's columns change; this module adds the
account setup and the operator's view (``SnowflakeSetup``).

Statements are idempotent: state-bearing objects (tables, stream, pipe) use IF NOT EXISTS;
tasks, which hold only a definition, are CREATE OR REPLACE so a changed config takes effect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aurora_sync.naming import LOADED_AT_COLUMN, SNAPSHOT_COLUMN, SnowflakeObjects, quote
from aurora_sync.snowflake_objects import (
    FILE_PATTERN,
    IDENTIFIER,
    PipeSource,
    SqlConfigError,
    TableSpec,
    columns_ddl,
    drift_additions,
    keys_columns_ddl,
    pipe_statement,
    staging_columns,
    table_spec,
)
from aurora_sync.snowflake_objects import render_merge as render_objects_merge

__all__ = [
    "FILE_PATTERN",
    "SETUP_DIR",
    "SnowflakeSetup",
    "SqlConfigError",
    "TableSpec",
    "render_drift",
    "render_merge",
    "render_pipe",
    "render_setup",
    "render_table",
    "split_statements",
    "staging_columns",
    "table_spec",
]

SETUP_DIR = Path(__file__).resolve().parents[2] / "sql" / "snowflake"
_IDENTIFIER = IDENTIFIER
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_TASK_SIZES = ("XSMALL", "SMALL", "MEDIUM", "LARGE")


@dataclass(frozen=True)
class SnowflakeSetup:
    """Account-level names and settings; defaults match docs/deploy.md."""

    bucket: str
    storage_role_arn: str
    database: str = "AURORA_SYNC"
    staging_schema: str = "STAGING"
    final_schema: str = "FINAL"
    integration: str = "AURORA_SYNC_S3"
    stage: str = "AURORA_SYNC_STAGE"
    file_format: str = "AURORA_SYNC_CSV"
    service_role: str = "AURORA_SYNC_SERVICE"
    reader_role: str = "AURORA_SYNC_READER"
    service_user: str = "AURORA_SYNC"
    staging_retention_days: int = 7
    task_size: str = "XSMALL"

    def __post_init__(self) -> None:
        for field in (
            "database",
            "staging_schema",
            "final_schema",
            "integration",
            "stage",
            "file_format",
            "service_role",
            "reader_role",
            "service_user",
        ):
            if not _IDENTIFIER.match(getattr(self, field)):
                raise SqlConfigError(f"{field} {getattr(self, field)!r} is not a plain Snowflake identifier")
        if not _BUCKET.match(self.bucket):
            raise SqlConfigError(f"bucket {self.bucket!r} is not a valid S3 bucket name")
        if not _ROLE_ARN.match(self.storage_role_arn):
            raise SqlConfigError(
                f"storage_role_arn {self.storage_role_arn!r} is not an IAM role ARN "
                "(the SnowflakeStorageRoleArn output of the SAM stack)"
            )
        if self.task_size not in _TASK_SIZES:
            raise SqlConfigError(f"task_size must be one of {', '.join(_TASK_SIZES)}")
        if not 1 <= self.staging_retention_days <= 90:
            raise SqlConfigError("staging_retention_days must be between 1 and 90")

    def objects(self, target: str) -> SnowflakeObjects:
        return SnowflakeObjects(self.database, self.staging_schema, self.final_schema, target)

    @property
    def stage_ref(self) -> str:
        return f"@{quote(self.database)}.{quote(self.staging_schema)}.{quote(self.stage)}"

    @property
    def file_format_ref(self) -> str:
        return f"{quote(self.database)}.{quote(self.staging_schema)}.{quote(self.file_format)}"


# --- setup ------------------------------------------------------------------------------------
def render_setup(setup: SnowflakeSetup) -> list[str]:
    """The fixed setup files of sql/snowflake/, with the deployment's names filled in."""
    identifiers = {
        key: quote(getattr(setup, key))
        for key in (
            "database",
            "staging_schema",
            "final_schema",
            "integration",
            "stage",
            "file_format",
            "service_role",
            "reader_role",
            "service_user",
        )
    }
    values = {**identifiers, "bucket": setup.bucket, "storage_role_arn": setup.storage_role_arn}
    statements = []
    for path in sorted(SETUP_DIR.glob("*.sql")):
        text = path.read_text()
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        statements.extend(split_statements(text))
    return statements


def split_statements(text: str) -> list[str]:
    """Statements of a setup file, comments dropped (the files hold no ';' inside literals)."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in body.split(";") if statement.strip()]


# --- per table --------------------------------------------------------------------------------
def _table(name: str, columns: Iterable[str], comment: str) -> str:
    body = ",\n    ".join(columns)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {body}\n) COMMENT = '{comment}'"


def pipe_source(setup: SnowflakeSetup, spec: TableSpec) -> PipeSource:
    """The stage path and options of a table's pipe, as this setup creates it."""
    return PipeSource(
        location=f"{setup.stage_ref}/{spec.name}/",
        options=f"FILE_FORMAT = (FORMAT_NAME = '{setup.file_format_ref}')\nPATTERN = '{FILE_PATTERN}'",
    )


def render_pipe(setup: SnowflakeSetup, spec: TableSpec, *, replace: bool = False) -> str:
    return pipe_statement(
        setup.objects(spec.target),
        spec.snowflake_names,
        pipe_source(setup, spec),
        comment=f"aurora-sync: loads s3://{setup.bucket}/{spec.name}/ into STAGING",
        replace=replace,
    )


def render_merge(setup: SnowflakeSetup, spec: TableSpec) -> str:
    """The MERGE task's statement (``aurora_sync.snowflake_objects.render_merge``)."""
    return render_objects_merge(setup.objects(spec.target), spec)


def render_table(setup: SnowflakeSetup, spec: TableSpec) -> list[str]:
    """Every per-table object, in dependency order."""
    objects = setup.objects(spec.target)
    return [
        _table(
            objects.staging_table,
            columns_ddl(spec, final=False),
            f"aurora-sync STAGING for {spec.name}: what Snowpipe loaded",
        ),
        _table(objects.final_table, columns_ddl(spec, final=True), f"aurora-sync FINAL for {spec.name}"),
        # Written only by the verifier (a COPY of a run's key snapshot, then deleted again); the
        # STAGING future grants give the service role SELECT, INSERT and DELETE on it.
        _table(
            objects.keys_table,
            keys_columns_ddl(spec),
            f"aurora-sync key snapshots of {spec.name}: what the source holds, for hard deletes",
        ),
        f"CREATE STREAM IF NOT EXISTS {objects.stream} ON TABLE {objects.staging_table} APPEND_ONLY = TRUE",
        render_pipe(setup, spec),
        f"CREATE OR REPLACE TASK {objects.merge_task}\n"
        f"    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = '{setup.task_size}'\n"
        f"    COMMENT = 'aurora-sync: merges {spec.name} into FINAL; run by the verifier with EXECUTE TASK'\n"
        f"    WHEN SYSTEM$STREAM_HAS_DATA('{objects.stream}')\n"
        f"AS {render_merge(setup, spec)}",
        f"CREATE OR REPLACE TASK {objects.retention_task}\n"
        f"    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = '{setup.task_size}'\n"
        "    SCHEDULE = 'USING CRON 17 3 * * * UTC'\n"
        f"    COMMENT = 'aurora-sync: keeps {setup.staging_retention_days} days of STAGING for {spec.name}'\n"
        f"AS DELETE FROM {objects.staging_table} "
        f"WHERE {quote(LOADED_AT_COLUMN)} < "
        f"DATEADD(day, -{setup.staging_retention_days}, CURRENT_TIMESTAMP())",
        f"ALTER TASK {objects.retention_task} RESUME",
    ]


def render_drop_table(setup: SnowflakeSetup, target: str) -> list[str]:
    """Drop every per-table object ``render_table`` creates (a fresh start; FINAL's rows go too).

    The export ledger's rows of the target are kept: drop them too, or the next run starts
    from the window the last merged run proved.
    """
    objects = setup.objects(target)
    return [
        f"DROP PIPE IF EXISTS {objects.pipe}",
        f"DROP TASK IF EXISTS {objects.merge_task}",
        f"DROP TASK IF EXISTS {objects.retention_task}",
        f"DROP STREAM IF EXISTS {objects.stream}",
        f"DROP TABLE IF EXISTS {objects.keys_table}",
        f"DROP TABLE IF EXISTS {objects.staging_table}",
        f"DROP TABLE IF EXISTS {objects.final_table}",
    ]


def render_drift(
    setup: SnowflakeSetup, spec: TableSpec, *, staging_existing: Iterable[str], final_existing: Iterable[str]
) -> list[str]:
    """ALTERs that add new exported columns to an existing table, then the pipe and task again.

    The pipe must be replaced because its column list changes; a replaced pipe starts a new load
    history, so apply this between runs (files it might load again merge harmlessly).
    """
    final_have = set(final_existing)
    objects = setup.objects(spec.target)
    statements = drift_additions(objects, spec, staging_existing=staging_existing, final_existing=final_have)
    staging_changed = bool(statements)
    if SNAPSHOT_COLUMN not in final_have:
        # FINAL tables created before the MERGE ordered versions by source snapshot.
        statements.append(
            f"ALTER TABLE {objects.final_table} ADD COLUMN {quote(SNAPSHOT_COLUMN)} NUMBER(38,0)"
        )
    if staging_changed:
        statements.append(render_pipe(setup, spec, replace=True))
    if statements:
        # The tasks again (their MERGE lists the columns), and the retention task resumed again:
        # CREATE OR REPLACE leaves a task suspended.
        statements.extend(
            s for s in render_table(setup, spec) if s.startswith(("CREATE OR REPLACE TASK", "ALTER TASK"))
        )
    return statements
