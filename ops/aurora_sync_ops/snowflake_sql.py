"""Generates every Snowflake statement of the product: the fixed setup and each table's objects.

Nothing is hand-written per table: a table's STAGING and FINAL tables, stream, pipe, MERGE task
and retention task are rendered from its config and the PostgreSQL catalog, with types from the
one type map (``aurora_sync.typemap``) and names from ``aurora_sync.naming``. The CSV column order
is ``aurora_sync.export_query.export_columns``: the same function the exporter uses, so the
pipe's ``$1..$n`` and the export SELECT cannot drift apart.

Statements are idempotent: state-bearing objects (tables, stream, pipe) use IF NOT EXISTS;
tasks, which hold only a definition, are CREATE OR REPLACE so a changed config takes effect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aurora_sync.export_query import build_plan
from aurora_sync.ledger import Ledger
from aurora_sync.naming import (
    DELETED_COLUMN,
    FILE_COLUMN,
    LOADED_AT_COLUMN,
    ROW_COLUMN,
    SNAPSHOT_COLUMN,
    SYNCED_AT_COLUMN,
    SnowflakeObjects,
    quote,
    snowflake_columns,
)
from aurora_sync.source_catalog import SourceColumn
from aurora_sync.typemap import UNREPRESENTABLE_COLUMN, ColumnMapping, map_column

SETUP_DIR = Path(__file__).resolve().parents[2] / "sql" / "snowflake"
# Matches `<uuid>.csv` and the `_part2`, `_part3`, ... that aws_s3 adds to split exports.
FILE_PATTERN = ".*[.]csv(_part[0-9]+)?"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_TASK_SIZES = ("XSMALL", "SMALL", "MEDIUM", "LARGE")


class SqlConfigError(ValueError):
    """A setup value that cannot be rendered safely; the message names it and the rule."""


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


@dataclass(frozen=True)
class TableSpec:
    """One table as the Snowflake side needs it: exported columns, in CSV order, with types."""

    name: str
    target: str
    columns: list[ColumnMapping]
    snowflake_names: list[str]
    primary_key: list[str]  # Snowflake names
    cursor: str  # Snowflake name
    soft_delete: str | None  # Snowflake name
    soft_delete_is_boolean: bool
    soft_delete_mode: str

    def name_of(self, source_column: str) -> str:
        return self.snowflake_names[[m.column for m in self.columns].index(source_column)]


def table_spec(
    *,
    name: str,
    target: str,
    catalog: Sequence[SourceColumn],
    schema: str,
    table: str,
    columns: Sequence[str] | None,
    primary_key: Sequence[str],
    cursor: str,
    soft_delete_column: str | None = None,
    soft_delete_mode: str = "delete",
) -> TableSpec:
    """Validates the config against the catalog exactly as the exporter does."""
    plan = build_plan(
        catalog,
        schema=schema,
        table=table,
        name=name,
        configured_columns=columns,
        cursor=cursor,
        primary_key=primary_key,
    )
    source_names = [c.name for c in plan.columns]
    snowflake_names = snowflake_columns(source_names, table=name)
    by_source = dict(zip(source_names, snowflake_names, strict=True))
    mappings = [map_column(c.name, c.pg_type) for c in plan.columns]
    soft_delete_boolean = False
    if soft_delete_column:
        if soft_delete_column not in by_source:
            raise SqlConfigError(f"table {name!r}: soft_delete_column {soft_delete_column!r} is not exported")
        soft_delete_boolean = (
            next(c for c in plan.columns if c.name == soft_delete_column).pg_type.name == "bool"
        )
    return TableSpec(
        name=name,
        target=target,
        columns=mappings,
        snowflake_names=snowflake_names,
        primary_key=[by_source[c] for c in primary_key],
        cursor=by_source[cursor],
        soft_delete=by_source[soft_delete_column] if soft_delete_column else None,
        soft_delete_is_boolean=soft_delete_boolean,
        soft_delete_mode=soft_delete_mode,
    )


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
def _columns_ddl(spec: TableSpec, *, final: bool) -> list[str]:
    lines = []
    for mapping, name in zip(spec.columns, spec.snowflake_names, strict=True):
        kind = mapping.final_type if final else mapping.staging_type
        not_null = " NOT NULL" if final and name in spec.primary_key else ""
        lines.append(f"{quote(name)} {kind}{not_null}")
    lines.append(f"{quote(UNREPRESENTABLE_COLUMN)} {'VARIANT' if final else 'VARCHAR'}")
    if final:
        lines.append(f"{quote(SYNCED_AT_COLUMN)} TIMESTAMP_TZ")
        lines.append(f"{quote(SNAPSHOT_COLUMN)} NUMBER(38,0)")
        if spec.soft_delete and spec.soft_delete_mode == "flag":
            lines.append(f"{quote(DELETED_COLUMN)} BOOLEAN")
        lines.append(f"PRIMARY KEY ({', '.join(quote(k) for k in spec.primary_key)})")
    else:
        lines += [
            f"{quote(FILE_COLUMN)} VARCHAR",
            f"{quote(ROW_COLUMN)} NUMBER",
            f"{quote(LOADED_AT_COLUMN)} TIMESTAMP_TZ",
        ]
    return lines


def _table(name: str, columns: Iterable[str], comment: str) -> str:
    body = ",\n    ".join(columns)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {body}\n) COMMENT = '{comment}'"


def staging_columns(spec: TableSpec) -> list[str]:
    """STAGING's columns in CSV order, then the load metadata: the pipe's COPY column list."""
    return [*spec.snowflake_names, UNREPRESENTABLE_COLUMN, FILE_COLUMN, ROW_COLUMN, LOADED_AT_COLUMN]


def render_pipe(setup: SnowflakeSetup, spec: TableSpec, *, replace: bool = False) -> str:
    objects = setup.objects(spec.target)
    csv_fields = [f"${n}" for n in range(1, len(spec.columns) + 2)]
    select = ", ".join(
        [*csv_fields, "METADATA$FILENAME", "METADATA$FILE_ROW_NUMBER", "METADATA$START_SCAN_TIME"]
    )
    create = "CREATE OR REPLACE PIPE" if replace else "CREATE PIPE IF NOT EXISTS"
    return (
        f"{create} {objects.pipe}\n"
        "    AUTO_INGEST = TRUE\n"
        f"    COMMENT = 'aurora-sync: loads s3://{setup.bucket}/{spec.name}/ into STAGING'\n"
        f"AS COPY INTO {objects.staging_table} ({', '.join(quote(c) for c in staging_columns(spec))})\n"
        f"FROM (SELECT {select} FROM {setup.stage_ref}/{spec.name}/)\n"
        f"FILE_FORMAT = (FORMAT_NAME = '{setup.file_format_ref}')\n"
        f"PATTERN = '{FILE_PATTERN}'"
    )


def _deleted(spec: TableSpec, alias: str) -> str:
    assert spec.soft_delete is not None
    column = f"{alias}.{quote(spec.soft_delete)}"
    return f"COALESCE({column}, FALSE)" if spec.soft_delete_is_boolean else f"{column} IS NOT NULL"


def render_merge(setup: SnowflakeSetup, spec: TableSpec) -> str:
    """STAGING stream → FINAL, applying only files a run accounted for, newest snapshot first.

    * The stream is joined to the export ledger (``aurora_sync.ledger``): a row whose file no
      verifier accounted for (a stray object, a replayed copy of an old export) is consumed
      with the stream but never merged, nor is a row of a file whose rows were merged before.
    * A row's versions are ordered by the source snapshot they were read in (the ledger's
      SNAPSHOT_ORDER), then by row: never by the cursor, which inverts when transactions commit
      in the opposite order to their ``now()`` stamps. FINAL keeps the snapshot of the version
      it holds and takes a version only from the same or a later snapshot, so an older file can
      never overwrite a newer version.
    * A row whose key is NULL after the type map (a NULL source key, or a key value Snowflake
      cannot hold) is left out: FINAL's key is NOT NULL, and one such row would fail the whole
      MERGE and wedge the stream. The exporter counts those rows and the verifier fails the
      table, naming one.
    """
    if not _IDENTIFIER.match(spec.target):
        raise SqlConfigError(f"target {spec.target!r} is not a plain Snowflake identifier")
    objects = setup.objects(spec.target)
    ledger = Ledger(setup.database, setup.staging_schema)
    names = spec.snowflake_names
    by_name = dict(zip(names, spec.columns, strict=True))

    def converted(name: str) -> str:
        return by_name[name].final_expression(f"st.{quote(name)}")

    select = [f"{converted(n)} AS {quote(n)}" for n in names] + [
        f"PARSE_JSON(st.{quote(UNREPRESENTABLE_COLUMN)}) AS {quote(UNREPRESENTABLE_COLUMN)}",
        f"l.SNAPSHOT_ORDER AS {quote(SNAPSHOT_COLUMN)}",
    ]
    keys = [converted(k) for k in spec.primary_key]
    order = f"l.SNAPSHOT_ORDER DESC, st.{quote(ROW_COLUMN)} DESC"
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in spec.primary_key)
    snapshot = quote(SNAPSHOT_COLUMN)
    newer = f"(s.{snapshot} >= t.{snapshot} OR t.{snapshot} IS NULL)"
    copied = [*names, UNREPRESENTABLE_COLUMN, SNAPSHOT_COLUMN]
    sets = [f"{quote(c)} = s.{quote(c)}" for c in copied if c not in spec.primary_key]
    sets.append(f"{quote(SYNCED_AT_COLUMN)} = CURRENT_TIMESTAMP()")
    insert_columns = [*copied, SYNCED_AT_COLUMN]
    insert_values = [f"s.{quote(c)}" for c in copied] + ["CURRENT_TIMESTAMP()"]
    clauses = []
    insert_condition = ""
    if spec.soft_delete and spec.soft_delete_mode == "delete":
        clauses.append(f"WHEN MATCHED AND {newer} AND {_deleted(spec, 's')} THEN DELETE")
        insert_condition = f" AND NOT ({_deleted(spec, 's')})"
    elif spec.soft_delete:
        sets.append(f"{quote(DELETED_COLUMN)} = {_deleted(spec, 's')}")
        insert_columns.append(DELETED_COLUMN)
        insert_values.append(_deleted(spec, "s"))
    clauses.append(f"WHEN MATCHED AND {newer} THEN UPDATE SET {', '.join(sets)}")
    clauses.append(
        f"WHEN NOT MATCHED{insert_condition} THEN INSERT ({', '.join(quote(c) for c in insert_columns)}) "
        f"VALUES ({', '.join(insert_values)})"
    )
    # The target is a plain Snowflake identifier (config validation): safe as a literal.
    return (
        f"MERGE INTO {objects.final_table} AS t\n"
        f"USING (\n    SELECT {', '.join(select)}\n    FROM {objects.stream} AS st\n"
        f"    JOIN {ledger.files} AS l ON l.FILE_NAME = st.{quote(FILE_COLUMN)} "
        f"AND l.TARGET = '{spec.target}' AND l.MERGED_AT IS NULL\n"
        f"    WHERE {' AND '.join(f'{k} IS NOT NULL' for k in keys)}\n"
        f"    QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(keys)} "
        f"ORDER BY {order}) = 1\n) AS s\nON {on}\n" + "\n".join(clauses)
    )


def render_table(setup: SnowflakeSetup, spec: TableSpec) -> list[str]:
    """Every per-table object, in dependency order."""
    objects = setup.objects(spec.target)
    return [
        _table(
            objects.staging_table,
            _columns_ddl(spec, final=False),
            f"aurora-sync STAGING for {spec.name}: what Snowpipe loaded",
        ),
        _table(objects.final_table, _columns_ddl(spec, final=True), f"aurora-sync FINAL for {spec.name}"),
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


def render_drift(
    setup: SnowflakeSetup, spec: TableSpec, *, staging_existing: Iterable[str], final_existing: Iterable[str]
) -> list[str]:
    """ALTERs that add new exported columns to an existing table, then the pipe and task again.

    The pipe must be replaced because its column list changes; a replaced pipe starts a new load
    history, so apply this between runs (files it might load again merge harmlessly).
    """
    staging_have, final_have = set(staging_existing), set(final_existing)
    objects = setup.objects(spec.target)
    statements = []
    for mapping, name in zip(spec.columns, spec.snowflake_names, strict=True):
        if name not in staging_have:
            statements.append(
                f"ALTER TABLE {objects.staging_table} ADD COLUMN {quote(name)} {mapping.staging_type}"
            )
        if name not in final_have:
            statements.append(
                f"ALTER TABLE {objects.final_table} ADD COLUMN {quote(name)} {mapping.final_type}"
            )
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
