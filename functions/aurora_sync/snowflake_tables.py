"""Each table's Snowflake objects as one deployment creates them: STAGING and FINAL tables,
KEYS table, stream, pipe, MERGE task and retention task, plus their drop and drift statements.

The columns, the pipe's COPY and the MERGE come from ``aurora_sync.snowflake_objects`` (types
from the one type map, ``aurora_sync.typemap``; names from ``aurora_sync.naming``), which the
planner also uses when it evolves these objects; this module adds the deployment's names
(``SnowflakeSetup``) and the CREATE statements around them. Only the CLI and the tests render
these: no handler imports this module, so a cold start does not pay for it. The account setup
(the files of sql/snowflake/) stays in ``aurora_sync_ops.snowflake_sql``.

Statements are idempotent: state-bearing objects (tables, stream, pipe) use IF NOT EXISTS;
tasks, which hold only a definition, are CREATE OR REPLACE so a changed config takes effect.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .naming import LOADED_AT_COLUMN, SNAPSHOT_COLUMN, SnowflakeObjects, quote
from .snowflake_objects import (
    FILE_PATTERN,
    IDENTIFIER,
    PipeSource,
    SqlConfigError,
    TableSpec,
    columns_ddl,
    drift_additions,
    keys_columns_ddl,
    pipe_statement,
)
from .snowflake_objects import render_merge as render_objects_merge

_IDENTIFIER = IDENTIFIER
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_TASK_SIZES = ("XSMALL", "SMALL", "MEDIUM", "LARGE")
# What IAM accepts as sts:ExternalId (2-1224 characters of this set), so a value the role's trust
# policy can hold; it has no quote, so the rendered literal cannot be broken out of.
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$", re.ASCII)
# A serverless *triggered* task (WHEN, no SCHEDULE, no WAREHOUSE) must name the time Snowflake
# sizes its compute to finish within (docs.snowflake.com/user-guide/tasks-triggered). The
# verifier waits MERGE_TIMEOUT_SECONDS (default 900 s = 15 min) for a MERGE run, so the target
# is 10 minutes: a run Snowflake sizes to finish by then ends well before the verifier gives up.
MERGE_TARGET_COMPLETION_INTERVAL = "10 MINUTES"


# The names a deployment chooses; each is a plain identifier, checked once here and quoted where the
# setup SQL is rendered.
IDENTIFIER_FIELDS = (
    "database",
    "staging_schema",
    "final_schema",
    "integration",
    "stage",
    "file_format",
    "service_role",
    "reader_role",
    "service_user",
    "warehouse",
)


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
    # The warehouse of the service role's own statements (watermarks, COPY_HISTORY, TASK_HISTORY);
    # the tasks are serverless and need none.
    warehouse: str = "AURORA_SYNC_WH"
    # STORAGE_AWS_EXTERNAL_ID of the storage integration: the stack's output SnowflakeExternalId,
    # which its storage role's trust policy requires. Only the account setup needs it.
    storage_external_id: str | None = None

    def __post_init__(self) -> None:
        for field in IDENTIFIER_FIELDS:
            if not _IDENTIFIER.match(getattr(self, field)):
                raise SqlConfigError(f"{field} {getattr(self, field)!r} is not a plain Snowflake identifier")
        if not _BUCKET.match(self.bucket):
            raise SqlConfigError(f"bucket {self.bucket!r} is not a valid S3 bucket name")
        if not _ROLE_ARN.match(self.storage_role_arn):
            raise SqlConfigError(
                f"storage_role_arn {self.storage_role_arn!r} is not an IAM role ARN "
                "(the SnowflakeStorageRoleArn output of the SAM stack)"
            )
        if self.storage_external_id is not None and not _EXTERNAL_ID.match(self.storage_external_id):
            raise SqlConfigError(
                f"storage_external_id {self.storage_external_id!r} is not an external id IAM accepts "
                "(2-1224 characters: letters, digits, _+=,.@:/-); use the stack output SnowflakeExternalId"
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


@dataclass(frozen=True)
class TaskDefinition:
    """One of a table's tasks as ``render_table`` creates it, in the parts ``SHOW TASKS`` shows.

    ``settings`` are its properties (the serverless size, the target completion interval or the
    schedule), which SHOW TASKS shows only in part; the comment ends with a fingerprint of them
    and the WHEN condition, so comparing the comment and the definition with SHOW TASKS tells
    whether the task is the one this setup and config would create (``aurora-sync sql snowflake``
    re-creates it only when not)."""

    name: str  # fully qualified, quoted
    settings: tuple[str, ...]
    condition: str | None  # WHEN: a triggered task
    description: str
    definition: str
    # A scheduled task runs only once resumed (CREATE OR REPLACE leaves it suspended); the MERGE
    # task has none: only the verifier's EXECUTE TASK may run it.
    resume: str | None

    @property
    def comment(self) -> str:
        hidden = "\n".join((*self.settings, self.condition or ""))
        fingerprint = hashlib.sha256(hidden.encode()).hexdigest()[:12]
        return f"{self.description}; settings {fingerprint}"

    @property
    def statements(self) -> list[str]:
        # Snowflake's grammar: properties, then COMMENT, then WHEN, then AS.
        escaped = self.comment.replace("'", "''")
        lines = [*self.settings, f"COMMENT = '{escaped}'"]
        if self.condition:
            lines.append(f"WHEN {self.condition}")
        head = "".join(f"\n    {line}" for line in lines)
        create = f"CREATE OR REPLACE TASK {self.name}{head}\nAS {self.definition}"
        return [create, self.resume] if self.resume else [create]


def task_definitions(setup: SnowflakeSetup, spec: TableSpec) -> list[TaskDefinition]:
    """The MERGE task (triggered, run only by the verifier's EXECUTE TASK: never resumed) and the
    retention task (scheduled, resumed)."""
    objects = setup.objects(spec.target)
    size = f"USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = '{setup.task_size}'"
    return [
        TaskDefinition(
            objects.merge_task,
            (
                size,
                f"TARGET_COMPLETION_INTERVAL = '{MERGE_TARGET_COMPLETION_INTERVAL}'",
            ),
            f"SYSTEM$STREAM_HAS_DATA('{objects.stream}')",
            f"aurora-sync: merges {spec.name} into FINAL; run by the verifier with EXECUTE TASK",
            render_merge(setup, spec),
            resume=None,
        ),
        TaskDefinition(
            objects.retention_task,
            (size, "SCHEDULE = 'USING CRON 17 3 * * * UTC'"),
            None,
            f"aurora-sync: keeps {setup.staging_retention_days} days of STAGING for {spec.name}",
            f"DELETE FROM {objects.staging_table} WHERE {quote(LOADED_AT_COLUMN)} < "
            f"DATEADD(day, -{setup.staging_retention_days}, CURRENT_TIMESTAMP())",
            resume=f"ALTER TASK {objects.retention_task} RESUME",
        ),
    ]


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
        *(statement for task in task_definitions(setup, spec) for statement in task.statements),
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
