"""The planner Lambda against the local stack: SSM configs (moto), Vault, the Snowflake emulator's
FINAL tables, and Step Functions executions in moto for single flight."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import psycopg2
import pytest
import snowflake.connector
from plan_files import plan_failed, planned_items
from psycopg2 import sql

from aurora_sync.errors import ConfigError
from aurora_sync.exporting.rounds import manifest_key, plan_failed_key
from aurora_sync.settings import runtime_settings
from aurora_sync.snowflake_objects import table_spec
from aurora_sync.snowflake_tables import SnowflakeSetup, render_table
from aurora_sync.source_catalog import read_columns
from aurora_sync.typemap import PgType, map_column
from aurora_sync.vault import reset_vault_cache
from aurora_sync_ops.environment import local_external_id
from aurora_sync_ops.local.lambda_router import LambdaContext
from aurora_sync_ops.snowflake_sql import render_setup

EVENTS = Path(__file__).resolve().parents[2] / "events"
STORAGE_ROLE_ARN = "arn:aws:iam::123456789012:role/aurora-sync-snowflake"
FINAL = "FINAL"
TIMESTAMPTZ = PgType("timestamptz", "timestamp with time zone", "D")
TIMESTAMP = PgType("timestamp", "timestamp without time zone", "D")
DATE = PgType("date", "date", "D")
INT4 = PgType("int4", "integer", "N")
INT8 = PgType("int8", "bigint", "N")


def final_type(pg_type: PgType) -> str:
    return map_column("c", pg_type).final_type


@pytest.fixture(scope="module")
def warehouse(stack: dict[str, Any]) -> Iterator[Any]:
    """An operator session on the emulator, to create and fill FINAL tables."""
    facts = dict(stack["snowflake"])
    conn = snowflake.connector.connect(**facts, paramstyle="qmark")
    conn.cursor().execute(f'CREATE SCHEMA IF NOT EXISTS "{facts["database"]}"."{FINAL}"')
    # Database, schemas, stage and export ledger, as `aurora-sync sql snowflake --setup` creates them.
    setup = SnowflakeSetup(
        bucket=stack["aws"]["bucket"],
        storage_role_arn=STORAGE_ROLE_ARN,
        storage_external_id=local_external_id(stack["aws"]),
        database=facts["database"],
    )
    for statement in render_setup(setup):
        conn.cursor().execute(statement)
    yield conn
    conn.close()


@pytest.fixture
def env(lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The Lambda environment with a config path of its own, so tests never see each other's tables."""
    path = f"/aurora-sync-test/{uuid.uuid4().hex[:12]}/tables/"
    monkeypatch.setenv("CONFIG_SSM_PATH", path)
    runtime_settings.cache_clear()
    reset_vault_cache()
    return {**lambda_env, "CONFIG_SSM_PATH": path}


@pytest.fixture
def prefix() -> str:
    return f"T{uuid.uuid4().hex[:8].upper()}"


class Tables:
    """Table configs in SSM, and on request each table's source table (in a PostgreSQL schema of
    the test's own) and its Snowflake objects as `aurora-sync sql snowflake --apply` creates
    them, with FINAL rows; the planner's schema step reads all three."""

    def __init__(
        self, env: dict[str, str], warehouse: Any, stack: dict[str, Any], prefix: str, admin: Any
    ) -> None:
        self.path = env["CONFIG_SSM_PATH"]
        self.ssm = boto3.client("ssm")
        self.cur = warehouse.cursor()
        self.database = stack["snowflake"]["database"]
        self.prefix = prefix
        self.schema = prefix.lower()
        self.admin = admin
        self.configs: dict[str, dict[str, Any]] = {}
        self.setup = SnowflakeSetup(
            bucket=stack["aws"]["bucket"], storage_role_arn=STORAGE_ROLE_ARN, database=self.database
        )
        schema, sync_role = sql.Identifier(self.schema), sql.Identifier(stack["postgres"]["user"])
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, sync_role))
            cur.execute(
                sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                    schema, sync_role
                )
            )

    def target(self, name: str) -> str:
        return f"{self.prefix}_{name.upper()}"

    def config(self, name: str, **config: Any) -> str:
        document = {
            "schema": self.schema,
            "table": name,
            "primary_key": ["id"],
            "target": self.target(name),
            **config,
        }
        self.configs[name] = document
        parameter = f"{self.path}{name}"
        self.ssm.put_parameter(Name=parameter, Value=json.dumps(document), Type="String", Overwrite=True)
        return parameter

    def raw_config(self, name: str, value: str) -> str:
        parameter = f"{self.path}{name}"
        self.ssm.put_parameter(Name=parameter, Value=value, Type="String", Overwrite=True)
        return parameter

    def source(self, name: str, cursor: str = "updated_at", pg_type: PgType = TIMESTAMPTZ) -> None:
        """The source table: a key, the cursor column typed ``pg_type``, and two more columns."""
        with self.admin.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "CREATE TABLE {}.{} (id integer NOT NULL, tenant integer NOT NULL DEFAULT 0, "
                    "{} {}, value numeric(12,2), PRIMARY KEY (id), UNIQUE (tenant, id))"
                ).format(
                    sql.Identifier(self.schema),
                    sql.Identifier(name),
                    sql.Identifier(cursor),
                    sql.SQL(pg_type.formatted),
                )
            )

    def objects(self, name: str, *, cursor: str | None = None) -> None:
        """STAGING, FINAL, stream, pipe and MERGE task of ``name``, rendered from its source table."""
        config = self.configs[name]
        with self.admin.cursor() as cur:
            catalog = read_columns(cur, self.schema, name)
        spec = table_spec(
            name=name,
            target=config["target"],
            catalog=catalog,
            schema=self.schema,
            table=name,
            columns=config.get("columns"),
            primary_key=config["primary_key"],
            cursor=cursor or config.get("cursor", "updated_at"),
        )
        for statement in render_table(self.setup, spec):
            self.cur.execute(statement)

    def merged_run(
        self,
        name: str,
        pg_type: PgType,
        *,
        max_cursor: str | None,
        horizon: str,
        source_time: str,
        order: int = 1,
        key: tuple[str, ...] = ("id",),
        cursor: str = "updated_at",
    ) -> None:
        """A run of ``name`` that reached FINAL, as the verifier records it in the export ledger."""
        self.cur.execute(
            f'INSERT INTO "{self.database}"."STAGING"."_AURORA_SYNC_RUNS" (TARGET, RUN_ID, SNAPSHOT_ORDER, '
            "SOURCE_TIME, HORIZON, CURSOR_TYPE, CURSOR_COLUMN, MAX_CURSOR, PRIMARY_KEY, FILE_COUNT, "
            "ROWS_LOADED, ACCOUNTED_AT, MERGED_AT) VALUES (?, ?, ?, CAST(? AS TIMESTAMP_TZ), "
            "CAST(? AS TIMESTAMP_TZ), ?, ?, ?, ?, 1, 1, CURRENT_TIMESTAMP(), CURRENT_TIMESTAMP())",
            (
                self.target(name),
                f"run-{order}",
                order,
                source_time,
                horizon,
                pg_type.name,
                cursor,
                max_cursor,
                json.dumps(list(key)),
            ),
        )

    def final(self, name: str, cursor: str, pg_type: PgType, values: list[Any]) -> None:
        """The source table and Snowflake objects of ``name``, and FINAL rows with these cursors."""
        self.source(name, cursor.lower(), pg_type)
        self.objects(name, cursor=cursor.lower())
        table = f'"{self.database}"."{FINAL}"."{self.target(name)}"'
        cursor_type = final_type(pg_type)
        for i, value in enumerate(values):
            self.cur.execute(
                f'INSERT INTO {table} ("ID", "TENANT", "{cursor}") VALUES (?, 0, CAST(? AS {cursor_type}))',
                (i, value),
            )


@pytest.fixture(scope="module")
def admin(stack: dict[str, Any]) -> Iterator[Any]:
    conn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def tables(
    env: dict[str, str], warehouse: Any, stack: dict[str, Any], prefix: str, admin: Any
) -> Iterator[Tables]:
    tables = Tables(env, warehouse, stack, prefix, admin)
    yield tables
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(tables.schema)))


class CountingConnection:
    """The handler's real Snowflake connection, recording every statement it sends."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.statements: list[str] = []

    def cursor(self) -> Any:
        real = self._conn.cursor()
        statements = self.statements

        class Cursor:
            def execute(self, command: str, params: Any = None) -> Any:
                statements.append(command)
                return real.execute(command, params)

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

        return Cursor()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[CountingConnection]:
    import planner.app
    from aurora_sync.connections import warehouse_connection

    opened: list[CountingConnection] = []

    def counting(**kwargs: Any) -> CountingConnection:
        conn = CountingConnection(warehouse_connection(**kwargs))
        opened.append(conn)
        return conn

    monkeypatch.setattr(planner.app, "warehouse_connection", counting)
    return opened


def context() -> LambdaContext:
    return LambdaContext(
        {
            "function_name": "aurora-sync-planner",
            "function_version": "$LATEST",
            "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:aurora-sync-planner",
            "memory_limit_in_mb": 256,
            "aws_request_id": str(uuid.uuid4()),
            "log_group_name": "/aws/lambda/aurora-sync-planner",
            "log_stream_name": "test",
            "timeout_seconds": 60,
        }
    )


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    from planner.app import lambda_handler

    result: dict[str, Any] = lambda_handler(event, context())
    # What the Lambda runtime would send to Step Functions.
    decoded: dict[str, Any] = json.loads(json.dumps(result))
    return decoded


def sample(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return document


def items_of(output: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's work items, from round 0's manifest in the bucket (the output names its key)."""
    return planned_items(boto3.client("s3"), output)


def failed_of(output: dict[str, Any]) -> list[dict[str, Any]]:
    """The tables that failed in the plan, from the run's plan-failed.json."""
    return plan_failed(boto3.client("s3"), output)


def by_table(output: dict[str, Any]) -> dict[str, Any]:
    return {item["table"]: item for item in items_of(output)}


# --- scheduled runs -------------------------------------------------------------------------


def test_scheduled_run_plans_each_enabled_table_from_the_export_ledger(
    tables: Tables, counted: list[CountingConnection], stack: dict[str, Any]
) -> None:
    later = "2024-05-06T07:08:10+00:00"
    tables.config("orders", lookback_seconds=600)
    tables.final("orders", "UPDATED_AT", TIMESTAMPTZ, ["2024-05-06T07:08:09.123456+00:00"])
    tables.merged_run(
        "orders", TIMESTAMPTZ, max_cursor="2024-05-06 07:08:09.123456+00", horizon=later, source_time=later
    )
    # An integer cursor starts at a MAX(cursor) sampled before the newest run's horizon: values
    # taken after it (9_007_199_254_740_999, perhaps by a transaction still open) may hide others.
    tables.config("events", cursor="version")
    tables.final("events", "VERSION", INT8, [17])
    tables.merged_run(
        "events",
        INT8,
        max_cursor="9007199254740993",
        horizon="2024-05-06T07:00:00+00:00",
        source_time="2024-05-06T07:00:01+00:00",
        order=1,
        cursor="version",
    )
    tables.merged_run(
        "events",
        INT8,
        max_cursor="9007199254740999",
        horizon="2024-05-06T07:05:00+00:00",
        source_time="2024-05-06T07:10:00+00:00",
        order=2,
        cursor="version",
    )
    tables.config("readings", cursor="taken_at", columns=["id", "tenant", "taken_at", "value"])
    tables.final("readings", "TAKEN_AT", TIMESTAMP, ["2024-05-06T07:08:09.000001"])
    tables.merged_run(
        "readings",
        TIMESTAMP,
        max_cursor="2024-05-06 07:08:09.000001",
        horizon=later,
        source_time=later,
        cursor="taken_at",
    )
    tables.config("daily", cursor="day")
    tables.final("daily", "DAY", DATE, ["2024-05-06"])
    tables.merged_run("daily", DATE, max_cursor="2024-05-06", horizon=later, source_time=later, cursor="day")
    tables.config("legacy", enabled=False)

    output = invoke(sample("planner-scheduled.json"))

    assert output["skip"] is False
    assert output["skip_reason"] is None
    assert (output["failed"], output["failed_file"]) == (0, None)  # no file without failures
    assert output["tables_planned"] == 4
    assert len(output["run_id"]) == 32  # no execution context: a uuid4 hex
    run_id = output["run_id"]
    items = by_table(output)
    assert sorted(items) == ["daily", "events", "orders", "readings"]
    assert items["orders"] == {
        "run_id": run_id,
        "table": "orders",
        "source": {"schema": tables.schema, "table": "orders"},
        # The config's custom target, carried to the exporter and the verifier.
        "target": tables.target("orders"),
        "primary_key": ["id"],
        "cursor": "updated_at",
        "window": {"watermark": "2024-05-06T07:08:09.123456+00:00", "lookback_seconds": 600},
        # The fingerprint of the column layout the pipe loads, which the exporter checks.
        "layout": items["orders"]["layout"],
    }
    assert re.fullmatch("[0-9a-f]{12}", items["orders"]["layout"])
    # Round 0's manifest, for the export Distributed Map's ItemReader: the same items, in S3
    # under the run's prefix, encrypted with the bucket's key like the exports.
    assert output["manifest"] == manifest_key(run_id, 0)
    written = boto3.client("s3").get_object(Bucket=stack["aws"]["bucket"], Key=output["manifest"])
    # One batch per export child; at most 4 children at once (MaxConcurrency), so 4 batches of 1.
    assert json.loads(written["Body"].read()) == [{"Items": [item]} for item in items_of(output)]
    assert written["ServerSideEncryption"] == "aws:kms"
    # Decimal digits beyond 2**53, no lookback.
    assert items["events"]["window"] == {"watermark": "9007199254740993"}
    # TIMESTAMP_NTZ stays naive (no offset), microseconds kept.
    assert items["readings"]["window"] == {"watermark": "2024-05-06T07:08:09.000001", "lookback_seconds": 900}
    assert items["readings"]["columns"] == ["id", "tenant", "taken_at", "value"]
    assert items["daily"]["window"] == {"watermark": "2024-05-06", "lookback_seconds": 900}
    # For the four tables together: one column read (existence and schema step), one SHOW PIPES,
    # one row count statement, one ledger read, and the new layouts (a DELETE, then one batch INSERT).
    assert len(counted) == 1
    statements = counted[0].statements
    assert len(statements) == 5, statements
    assert "INFORMATION_SCHEMA" in statements[0]
    assert statements[1].startswith("SHOW PIPES IN SCHEMA")
    assert statements[2].count("COUNT(*)") == 4
    assert "_AURORA_SYNC_RUNS" in statements[3]
    assert "_AURORA_SYNC_LAYOUTS" in statements[4]


def test_windows_never_pass_the_source_clock_and_a_changed_key_stops_its_table(tables: Tables) -> None:
    # A far-future cursor value in FINAL (2099) must not become the window start: every row
    # written later would be hidden behind it.
    tables.config("future")
    tables.final("future", "UPDATED_AT", TIMESTAMPTZ, ["2099-01-01T00:00:00+00:00"])
    tables.merged_run(
        "future",
        TIMESTAMPTZ,
        max_cursor="2099-01-01 00:00:00+00",
        horizon="2024-05-06T07:08:10+00:00",
        source_time="2024-05-06T07:08:11+00:00",
    )
    # FINAL merged with key [id]; the config now says [tenant, id].
    tables.config("rekeyed", primary_key=["tenant", "id"])
    tables.final("rekeyed", "UPDATED_AT", TIMESTAMPTZ, ["2024-05-06T07:08:09+00:00"])
    tables.merged_run(
        "rekeyed",
        TIMESTAMPTZ,
        max_cursor="2024-05-06 07:08:09+00",
        horizon="2024-05-06T07:08:10+00:00",
        source_time="2024-05-06T07:08:11+00:00",
    )
    # FINAL with rows but no merged run (objects of an older version): read in full once.
    tables.config("unledgered")
    tables.final("unledgered", "UPDATED_AT", TIMESTAMPTZ, ["2024-05-06T07:08:09+00:00"])

    output = invoke(sample("planner-scheduled.json"))

    items = by_table(output)
    assert items["future"]["window"] == {
        "watermark": "2024-05-06T07:08:10.000000+00:00",
        "lookback_seconds": 900,
    }
    assert items["unledgered"]["window"] == {"source": "full"}
    (failed,) = failed_of(output)
    assert (failed["table"], failed["error"]) == ("rekeyed", "KeyChanged")
    assert '["tenant", "id"]' in failed["cause"] and '["id"]' in failed["cause"]
    assert "aurora-sync sql snowflake --tables rekeyed --rekey --apply" in failed["cause"]


def test_empty_final_exports_everything_or_from_the_initial_watermark(tables: Tables) -> None:
    tables.config("orders")
    tables.final("orders", "UPDATED_AT", TIMESTAMPTZ, [])
    tables.config("customers", initial_watermark="2024-01-01T00:00:00+00:00", lookback_seconds=60)
    tables.final("customers", "UPDATED_AT", TIMESTAMPTZ, [])

    items = by_table(invoke(sample("planner-scheduled.json")))

    assert items["orders"]["window"] == {"source": "full"}
    assert items["customers"]["window"] == {
        "watermark": "2024-01-01T00:00:00+00:00",
        "lookback_seconds": 60,
        "source": "initial_watermark",
    }


def test_missing_final_table_and_invalid_config_fail_only_their_table(
    tables: Tables, stack: dict[str, Any]
) -> None:
    tables.config("orders")
    tables.final("orders", "UPDATED_AT", TIMESTAMPTZ, ["2024-05-06T07:08:09.5+00:00"])
    later = "2024-05-06T07:08:10+00:00"
    tables.merged_run(
        "orders", TIMESTAMPTZ, max_cursor="2024-05-06 07:08:09.5+00", horizon=later, source_time=later
    )
    tables.config("customers")
    tables.source("customers")  # no Snowflake objects
    tables.config("items", cursor="changed_at")
    tables.final("items", "UPDATED_AT", TIMESTAMPTZ, ["2024-05-06T07:08:09+00:00"])  # no such cursor column
    broken = tables.raw_config("payments", '{"table": "payments", "primary_key": ["id"], "lookback": 5}')

    output = invoke(sample("planner-scheduled.json"))

    assert [item["table"] for item in items_of(output)] == ["orders"]
    assert items_of(output)[0]["window"]["watermark"] == "2024-05-06T07:08:09.500000+00:00"
    # The failed tables are a run file beside the manifest; the output says where and how many.
    assert output["failed"] == 3 and output["failed_file"] == plan_failed_key(output["run_id"])
    assert output["bucket"] == stack["aws"]["bucket"]
    failed = {entry["table"]: entry for entry in failed_of(output)}
    assert sorted(failed) == ["customers", "items", "payments"]
    database = tables.database
    assert failed["customers"] == {
        "table": "customers",
        "error": "WarehouseObjectMissing",
        "cause": f'table \'customers\': FINAL table "{database}"."FINAL"."{tables.target("customers")}" '
        "does not exist. Fix: create the table's Snowflake objects: "
        "aurora-sync sql snowflake --tables customers --apply",
    }
    assert failed["items"] == {
        "table": "items",
        "error": "SourceObjectMissing",
        "cause": f"table 'items': cursor column(s) 'changed_at' do not exist in {tables.schema}.items. "
        "Fix: fix `cursor` in the table config (exact, case-sensitive column names); a table without a "
        "column every write advances syncs with mode 'xmin' or 'full', which need no cursor column (see "
        "docs/operations.md#tables-without-a-cursor-and-hard-deletes)",
    }
    assert failed["payments"]["error"] == "ConfigError"
    assert failed["payments"]["cause"].startswith(f"{broken}: ")
    assert "'lookback': unknown key; did you mean 'lookback_seconds'?" in failed["payments"]["cause"]
    assert output["skip"] is False
    assert output["tables_planned"] == 1


@pytest.mark.parametrize("count", [3, 30])
def test_one_watermark_statement_whatever_the_table_count(
    tables: Tables, counted: list[CountingConnection], count: int
) -> None:
    base = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    for i in range(count):
        name = f"t{i:02d}"
        tables.config(name)
        newest = (base + timedelta(microseconds=i)).isoformat()
        tables.final(name, "UPDATED_AT", TIMESTAMPTZ, [newest])
        later = (base + timedelta(seconds=1)).isoformat()
        tables.merged_run(name, TIMESTAMPTZ, max_cursor=newest, horizon=later, source_time=later)

    output = invoke(sample("planner-scheduled.json"))

    assert output["tables_planned"] == count
    for i, item in enumerate(items_of(output)):
        assert item["window"]["watermark"] == f"2024-05-06T07:08:09.{i:06d}+00:00"
    assert [len(conn.statements) for conn in counted] == [5]


def test_no_enabled_tables_skips_the_run(tables: Tables, counted: list[CountingConnection]) -> None:
    tables.config("legacy", enabled=False)

    output = invoke(sample("planner-scheduled.json"))

    assert output["skip"] is True
    assert output["skip_reason"] == f"no enabled tables under {tables.path}"
    assert (output["work_items"], output["failed"], output["tables_planned"]) == (0, 0, 0)
    assert output["manifest"] is None and output["failed_file"] is None  # no run files either
    assert counted == []  # Snowflake is not even contacted


# --- reruns ---------------------------------------------------------------------------------


def test_rerun_with_since_and_full_resync(tables: Tables) -> None:
    for name in ("orders", "customers", "items"):
        tables.config(name, lookback_seconds=900)
        tables.final(name, "UPDATED_AT", TIMESTAMPTZ, ["2024-05-06T07:08:09+00:00"])

    output = invoke(sample("planner-rerun.json"))

    items = by_table(output)
    assert sorted(items) == ["customers", "orders"]
    assert items["orders"]["window"] == {"watermark": "2024-05-01T00:00:00.000000+00:00", "source": "since"}
    assert items["customers"]["window"] == {"source": "full"}


def test_rerun_of_an_unknown_table_fails_the_run_listing_known_tables(tables: Tables) -> None:
    tables.config("orders")
    event = {"input": {"tables": ["ordres"]}}

    with pytest.raises(ConfigError) as excinfo:
        invoke(event)

    assert str(excinfo.value) == (
        'rerun names unknown table(s) "ordres"; known tables: "orders". Fix: use names of parameters '
        'under the config path in the execution input\'s "tables"'
    )


# --- single flight --------------------------------------------------------------------------


@pytest.fixture
def state_machine(stack: dict[str, Any], env: dict[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A real moto state machine with one execution held RUNNING by a Wait state."""
    sfn = boto3.client("stepfunctions")
    name = f"planner-single-flight-{uuid.uuid4().hex[:8]}"
    definition = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 300, "End": True}}}
    arn = sfn.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=stack["aws"]["lambda_role_arn"]
    )["stateMachineArn"]
    started = sfn.start_execution(stateMachineArn=arn, name="scheduled-first", input="{}")
    running = sfn.describe_execution(executionArn=started["executionArn"])
    assert running["status"] == "RUNNING"
    yield arn, running
    sfn.stop_execution(executionArn=started["executionArn"])
    sfn.delete_state_machine(stateMachineArn=arn)


def _event(arn: str, name: str, start: datetime) -> dict[str, Any]:
    return {
        "input": {},
        "execution": {
            "id": f"{arn.replace(':stateMachine:', ':execution:')}:{name}",
            "name": name,
            "start_time": start.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "state_machine_arn": arn,
        },
    }


def test_a_later_execution_skips_behind_the_running_one(
    state_machine: tuple[str, dict[str, Any]], tables: Tables, counted: list[CountingConnection]
) -> None:
    arn, running = state_machine
    tables.config("orders")
    later = running["startDate"] + timedelta(seconds=1)

    output = invoke(_event(arn, "scheduled-second", later))

    assert output["skip"] is True
    assert output["skip_reason"].startswith("execution scheduled-first of the same state machine, started ")
    assert output["skip_reason"].endswith("is still running (single flight)")
    assert output["run_id"] == "scheduled-second"
    assert (output["work_items"], output["manifest"]) == (0, None)
    assert counted == []


def test_an_earlier_execution_is_not_blocked_by_a_later_running_one(
    state_machine: tuple[str, dict[str, Any]], tables: Tables
) -> None:
    arn, running = state_machine
    tables.config("orders")
    tables.final("orders", "UPDATED_AT", TIMESTAMPTZ, ["2024-05-06T07:08:09.000001+00:00"])
    earlier = running["startDate"] - timedelta(seconds=1)

    output = invoke(_event(arn, "scheduled-zero", earlier))

    assert output["skip"] is False
    assert output["run_id"] == "scheduled-zero"
    assert output["started_at"] == earlier.astimezone(UTC).isoformat(timespec="milliseconds")
    assert [item["run_id"] for item in items_of(output)] == ["scheduled-zero"]


def test_the_running_execution_itself_is_never_its_own_blocker(
    state_machine: tuple[str, dict[str, Any]], tables: Tables
) -> None:
    arn, running = state_machine
    tables.config("orders")
    tables.final("orders", "UPDATED_AT", TIMESTAMPTZ, ["2024-05-06T07:08:09+00:00"])
    event = _event(arn, running["name"], running["startDate"])
    event["execution"]["id"] = running["executionArn"]

    output = invoke(event)

    assert output["skip"] is False
    assert output["tables_planned"] == 1


def test_an_unknown_state_machine_is_a_config_error(env: dict[str, str], stack: dict[str, Any]) -> None:
    arn = f"arn:aws:states:{stack['aws']['region']}:{stack['aws']['account_id']}:stateMachine:no-such-machine"

    with pytest.raises(ConfigError) as excinfo:
        invoke(_event(arn, "scheduled-x", datetime(2024, 5, 6, tzinfo=UTC)))

    assert str(excinfo.value) == (
        f"states:ListExecutions on {arn} failed (StateMachineDoesNotExist). "
        "Fix: pass $$.StateMachine.Id as execution.state_machine_arn in the Plan state"
    )
