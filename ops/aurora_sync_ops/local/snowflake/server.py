"""The local Snowflake process: fakesnow's HTTP API with the control-plane emulation in front.

Run as ``python -m aurora_sync_ops.local.snowflake.server --port N --db-path DIR --aws-endpoint URL``
with the stack's admin AWS credentials in the environment. Data persists as one DuckDB file per
database under ``--db-path``; the control-plane registry as one file an object under
``control_plane.objects/`` and ``control_plane.pending/`` beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any, NoReturn

import boto3
import fakesnow.server as fakesnow_server
import s3fs
import uvicorn
from fakesnow import info_schema, macros
from fakesnow.instance import FakeSnow

from ..component import ACCOUNT_ID, REGION
from .catalog import Registry
from .history import dq
from .pipes import Pipes
from .router import ControlPlane
from .tasks import Streams

log = logging.getLogger("aurora_sync.snowflake")

STORAGE_IAM_USER = "snowflake-storage-integration"


class MotoS3FileSystem(s3fs.S3FileSystem):
    """s3fs 0.4 lacks ``modified()``, which DuckDB calls before reading a registered file."""

    def modified(self, path: str) -> Any:
        return self.info(path)["LastModified"]


def keep_null_timestamps() -> None:
    """fakesnow 0.12.1 builds Snowflake's timestamp structs without a null mask, so a NULL
    TIMESTAMP_TZ/NTZ (e.g. MAX() of an empty FINAL table) reaches the client as 1970-01-01,
    where Snowflake returns NULL. The planner would take that for a watermark."""
    import fakesnow.arrow as fakesnow_arrow
    import pyarrow as pa
    import pyarrow.compute as pc

    original = fakesnow_arrow.timestamp_to_sf_struct

    def with_nulls(ts: Any) -> Any:
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        out = original(ts)
        return pa.StructArray.from_arrays(out.flatten(), fields=list(out.type), mask=pc.is_null(ts))

    fakesnow_arrow.timestamp_to_sf_struct = with_nulls


_METADATA_RETRIES = 5


def constraint_errors_as_snowflake_errors() -> None:
    """fakesnow leaves DuckDB's ConstraintException unhandled, so its server answers HTTP 500 and
    the Snowflake connector retries the statement for minutes instead of raising. Snowflake
    enforces NOT NULL only, answering 100072 "NULL result in a non-nullable column"; that is the
    error here. DuckDB also enforces PRIMARY KEY and UNIQUE, which Snowflake accepts silently: the
    emulator keeps that stricter check (a duplicate key in FINAL is a product defect either way)
    but reports it as a statement error, never as a hang."""
    import duckdb
    import snowflake.connector.errors as sf_errors
    from fakesnow.cursor import FakeSnowflakeCursor

    original = FakeSnowflakeCursor._execute

    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(_METADATA_RETRIES + 1):
            try:
                return original(self, *args, **kwargs)
            except duckdb.ConstraintException as exc:
                text = str(exc.args[0]) if exc.args else str(exc)
                # fakesnow upserts a row of its own table metadata for every CREATE TABLE (MERGE
                # creates a temporary one); two sessions doing so at once conflict in DuckDB's
                # optimistic concurrency. That is the emulator's bookkeeping, not the statement's
                # data, and Snowflake has no such conflict: run the statement again.
                if "ext_table_catalog" in text and attempt < _METADATA_RETRIES:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                _raise_constraint(text, exc)
        raise AssertionError("unreachable")

    def _raise_constraint(text: str, exc: Exception) -> NoReturn:
        if "NOT NULL constraint failed" in text:
            raise sf_errors.ProgrammingError(
                msg="NULL result in a non-nullable column", errno=100072, sqlstate="22000"
            ) from exc
        raise sf_errors.ProgrammingError(
            msg=f"{text.splitlines()[0]} (the local emulator enforces keys; Snowflake does not)",
            errno=100072,
            sqlstate="23505",
        ) from exc

    FakeSnowflakeCursor._execute = execute  # type: ignore[method-assign]


def temporary_tables_from_the_temp_catalog() -> None:
    """fakesnow 0.12.1 finds the temporary table a CREATE TEMP TABLE made (every MERGE makes one)
    with ``duckdb_tables() WHERE temporary``, which builds a row for every table of every database
    before filtering: 116 ms a MERGE beside 6,000 tables. DuckDB keeps temporary tables in its
    ``temp`` catalog only, and a filter on ``database_name`` reaches the table function (1 ms):
    the same rows, so the same registration of the table's stage."""
    from fakesnow.transforms.stage import TableStages
    from sqlglot import exp

    def record_temporary_table(self: Any, expression: Any, catalog: str | None, schema: str | None) -> None:
        if not (
            isinstance(expression, exp.Create)
            and expression.args.get("kind") == "TABLE"
            and expression.find(exp.TemporaryProperty)
            and (table := expression.find(exp.Table))
        ):
            return
        sql = "SELECT table_name, table_oid FROM duckdb_tables() WHERE database_name = 'temp'"
        live = dict(self._duck_conn.execute(sql).fetchall())
        live_oids = set(live.values())
        self._temporary = {oid: owner for oid, owner in self._temporary.items() if oid in live_oids}
        self._temporary.setdefault(live[table.name], (table.catalog or catalog, table.db or schema))

    TableStages.record_temporary_table = record_temporary_table  # type: ignore[method-assign]


def attach_databases(fs: FakeSnow, db_path: Path) -> None:
    """fakesnow attaches a database file only on CREATE DATABASE or login; a restart needs all."""
    for file in sorted(db_path.glob("*.db")):
        name = file.stem
        fs.duck_conn.execute(f"ATTACH IF NOT EXISTS '{file.as_posix()}' AS {dq(name)}")
        fs.duck_conn.execute(info_schema.per_db_creation_sql(name))
        fs.duck_conn.execute(macros.creation_sql(name))


def provision_aws(aws: Any, db_path: Path) -> tuple[str, str, str]:
    """The account's notification queue and the IAM user storage integrations name."""
    # Snowflake gives each account one SQS queue for all its auto-ingest pipes.
    account_tag = hashlib.sha256(str(db_path).encode()).hexdigest()[:12]
    sqs = aws("sqs")
    queue_url = sqs.create_queue(QueueName=f"sf-snowpipe-AIDA{account_tag.upper()}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    iam = aws("iam")
    try:
        user_arn = iam.get_user(UserName=STORAGE_IAM_USER)["User"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        user_arn = iam.create_user(UserName=STORAGE_IAM_USER)["User"]["Arn"]
    if f":{ACCOUNT_ID}:" not in user_arn:
        log.warning("storage integration IAM user %s is outside account %s", user_arn, ACCOUNT_ID)
    return str(queue_url), str(queue_arn), str(user_arn)


def restore_stages(fs: FakeSnow, registry: Registry) -> None:
    """fakesnow keeps stages and file formats in memory only; replay them after a restart."""
    replay = fs.connect()
    try:
        cur = replay.cursor()
        for kind in ("file_formats", "stages"):
            for fq, record in registry.items(kind):
                try:
                    cur.execute(record["ddl"])
                except Exception:
                    log.exception("could not restore %s %s", kind, fq)
    finally:
        replay.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-path", type=Path, required=True)
    parser.add_argument("--aws-endpoint", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Stream subqueries use EXCEPT ALL, which DuckDB runs; sqlglot warns that Snowflake lacks it.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)

    keep_null_timestamps()
    constraint_errors_as_snowflake_errors()
    temporary_tables_from_the_temp_catalog()
    db_path: Path = args.db_path.resolve()
    work_dir = db_path / "loading"
    work_dir.mkdir(parents=True, exist_ok=True)
    for leftover in work_dir.iterdir():
        leftover.unlink()

    session = boto3.session.Session(region_name=REGION)

    def aws(service: str) -> Any:
        return session.client(service, endpoint_url=args.aws_endpoint)

    fs = FakeSnow(db_path=db_path)
    fakesnow_server.shared_fs = fs  # every login shares the persistent instance
    attach_databases(fs, db_path)
    fs.duck_conn.register_filesystem(
        MotoS3FileSystem(
            key=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            client_kwargs={"endpoint_url": args.aws_endpoint, "region_name": REGION},
        )
    )

    queue_url, queue_arn, user_arn = provision_aws(aws, db_path)
    registry = Registry(db_path / "control_plane.json")
    restore_stages(fs, registry)

    pipes = Pipes(
        registry=registry,
        duck=fs.duck_conn,
        aws=aws,
        queue_arn=queue_arn,
        queue_url=queue_url,
        work_dir=work_dir,
        iam_user_arn=user_arn,
    )
    plane = ControlPlane(fs, registry, pipes, Streams(registry, fs.duck_conn))
    pipes.start()
    plane.tasks.start()
    log.info("snowflake emulator on http://%s:%d (notification channel %s)", args.host, args.port, queue_arn)
    try:
        uvicorn.run(plane.app(), host=args.host, port=args.port, log_level="warning")
    finally:
        pipes.stop.set()
        plane.tasks.stop.set()
        fs.duck_conn.close()


if __name__ == "__main__":
    main()
