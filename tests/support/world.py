"""A small replicated world on the local stack, shared by the end-to-end tests.

``open_world(stack, tag, tables)`` creates a source schema in PostgreSQL (the sync role may read
it), the tables' configs in SSM under their own path, the generated Snowflake objects (unique
targets), the bucket wired to Snowpipe, and the real state machine deployed by the local engine
with that config path. ``World.run`` executes the state machine; ``World.assert_parity`` proves
FINAL equals the source row by row. Retry and Wait sleeps run on a scaled clock.

Config names must be unique across the whole suite: a table's S3 prefix is its config name, and
every world shares the stack's one bucket and its pipes (two worlds with an ``accounts`` table
would load each other's files).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import plan_files
import psycopg2
import requests
import snowflake.connector
from history_scan import map_run_children
from psycopg2 import sql

from aurora_sync.config import TableConfig, put_table_config
from aurora_sync.snowflake_objects import TableSpec, table_spec
from aurora_sync.snowflake_tables import SnowflakeSetup, render_table
from aurora_sync.source_catalog import read_columns
from aurora_sync_ops.environment import local_aws_client, local_external_id
from aurora_sync_ops.local.engine import Deployment, LocalEngine
from aurora_sync_ops.local.wiring import connect_bucket_to_snowpipe
from aurora_sync_ops.parity import ParityResult, compare
from aurora_sync_ops.snowflake_sql import render_setup

CLOCK_SCALE = 0.05  # Retry/Wait sleeps run 20x faster; the moto host records what was asked


@dataclass
class World:
    status: dict[str, Any]
    schema: str
    config_path: str
    setup: SnowflakeSetup
    engine: LocalEngine
    deployment: Deployment
    admin: Any
    warehouse: Any
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply(self) -> None:
        """Configs to SSM, the Snowflake objects, and the bucket notification (idempotent)."""
        ssm = admin_client(self.status, "ssm")
        cursor = self.warehouse.cursor()
        for statement in render_setup(self.setup):
            cursor.execute(statement)
        for name, config in self.configs.items():
            put_table_config(name, TableConfig.model_validate(config), self.config_path, ssm_client=ssm)
            for statement in render_table(self.setup, self.spec(name)):
                cursor.execute(statement)
        connect_bucket_to_snowpipe(self.status)

    def spec(self, name: str) -> TableSpec:
        config = self.configs[name]
        with self.admin.cursor() as cur:
            catalog = read_columns(cur, self.schema, config["table"])
        return table_spec(
            name=name,
            target=config["target"],
            catalog=catalog,
            schema=self.schema,
            table=config["table"],
            columns=config.get("columns"),
            primary_key=config["primary_key"],
            cursor=config.get("cursor", "updated_at") if config.get("mode", "cursor") == "cursor" else None,
            mode=config.get("mode", "cursor"),
            soft_delete_column=config.get("soft_delete_column"),
            soft_delete_mode=config.get("soft_delete_mode", "delete"),
        )

    def execute(self, statement: str, params: Any = None) -> None:
        with self.admin.cursor() as cur:
            cur.execute(statement.replace("{schema}", f'"{self.schema}"'), params)

    def run(
        self, execution_input: dict[str, Any] | None = None, *, timeout_s: float = 240
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        arn = self.engine.start(self.deployment, execution_input or {})
        description = self.engine.wait(arn, timeout_s=timeout_s, poll_s=0.3)
        return description, self.events(arn)

    def events(self, arn: str) -> list[dict[str, Any]]:
        """The execution's history with each export round's children's histories placed after
        the round's MapRunStarted event (the Distributed Map's children run the chunk loops; the
        local engine keeps their histories, AWS only logs an Express one)."""
        return merged(*self.histories(arn))

    def histories(self, arn: str) -> tuple[list[dict[str, Any]], dict[int, dict[str, list[dict[str, Any]]]]]:
        """The execution's history, and each Map Run's children's histories (by child ARN) under
        the id of the run's MapRunStarted event."""
        parent = self.engine.events(arn)
        runs = {
            event["id"]: {
                child: self.engine.events(child) for child in map_run_children(self.engine.sfn, [event])
            }
            for event in parent
            if "mapRunStartedEventDetails" in event
        }
        return parent, runs

    def planned_items(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The run's work items in plan order, from round 0's manifest in S3 (as JSON)."""
        return plan_files.planned_items(admin_client(self.status, "s3"), plan_output(events))

    def plan_failed(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The tables that failed in the run's plan, from its plan-failed.json in S3 (as JSON)."""
        return plan_files.plan_failed(admin_client(self.status, "s3"), plan_output(events))

    def verify_output(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """The verifier's report of the run (every table's verdict): the run file the last Verify
        state names (issue 15: the state carries counts only), checked against the state's counts."""
        state = verify_progress(events)
        bucket, _, key = state["report"].removeprefix("s3://").partition("/")
        body = admin_client(self.status, "s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        report: dict[str, Any] = json.loads(body)
        assert (report["done"], report["pending"], report["failed"]) == (
            state["done"],
            state["pending"],
            state["failed"],
        ), "the report is not the last Verify state's"
        return report

    def parity(self, name: str) -> ParityResult:
        """The config ``name``'s source table against its FINAL, row by row."""
        return compare(
            self.admin,
            self.warehouse,
            self.setup,
            self.spec(name),
            schema=self.schema,
            table=self.configs[name]["table"],
        )

    def assert_parity(self, *names: str) -> None:
        for name in names or tuple(self.configs):
            result = self.parity(name)
            assert result.equal, f"{name} differs from FINAL: {result.as_dict()}"


def merged(
    parent: list[dict[str, Any]], runs: dict[int, dict[str, list[dict[str, Any]]]]
) -> list[dict[str, Any]]:
    """One history: each Map Run's children's events after the run's MapRunStarted event."""
    events: list[dict[str, Any]] = []
    for event in parent:
        events.append(event)
        for child_events in runs.get(event["id"], {}).values():
            events.extend(child_events)
    return events


def run_reacting(
    world: World, execution_input: dict[str, Any], react: Callable[[dict[str, Any]], None]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the state machine, calling ``react`` with each history event as it appears."""
    arn = world.engine.start(world.deployment, execution_input)
    description: dict[str, Any] = {}
    for event in follow_with_children(world, arn, timeout_s=240, poll_s=0.05):
        if event.get("type") == "ExecutionDescription":
            description = event["description"]
        else:
            react(event)
    return description, world.events(arn)


def follow_with_children(
    world: World, arn: str, *, timeout_s: float, poll_s: float
) -> Iterator[dict[str, Any]]:
    """The execution's events and its export children's as they appear (the chunk loops run in
    the children), then ``{"type": "ExecutionDescription", "description": ...}``."""
    sfn = world.engine.sfn
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s

    def new_events(execution: str) -> list[dict[str, Any]]:
        events = world.engine.events(execution)
        start, seen[execution] = seen.get(execution, 0), len(events)
        return events[start:]

    while True:
        description = sfn.describe_execution(executionArn=arn)
        yield from new_events(arn)
        for child in map_run_children(sfn, world.engine.events(arn)):
            yield from new_events(child)
        if description["status"] != "RUNNING":
            yield {"type": "ExecutionDescription", "description": description}
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {arn} still RUNNING after {timeout_s:.0f}s")
        time.sleep(poll_s)


def entered(events: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def plan_output(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The Plan state's output: counts and the keys of the plan's files (``planned_items``)."""
    details = next(
        e["stateExitedEventDetails"]
        for e in events
        if e.get("stateExitedEventDetails", {}).get("name") == "Plan"
    )
    output: dict[str, Any] = json.loads(details["output"])
    return output


def verify_progress(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The last Verify state's output: the verifier's counts and where its report is."""
    for event in reversed(events):
        details = event.get("stateExitedEventDetails")
        if details and details["name"] == "Verify":
            output: dict[str, Any] = json.loads(details["output"])["verification"]["output"]
            return output
    raise AssertionError("no Verify state in the history")


def admin_client(stack: dict[str, Any], service: str) -> Any:
    aws = stack["aws"]
    return local_aws_client(service, aws)


def set_clock(stack: dict[str, Any], scale: float) -> None:
    url = f"{stack['aws']['endpoint_url']}/moto-api/aurora-sync/clock"
    requests.post(url, json={"scale": scale}, timeout=5).raise_for_status()


def read_clock(stack: dict[str, Any]) -> dict[str, Any]:
    """The clock's scale and the Retry/Wait sleeps requested since it was last set."""
    url = f"{stack['aws']['endpoint_url']}/moto-api/aurora-sync/clock"
    response = requests.get(url, timeout=5)
    response.raise_for_status()
    clock: dict[str, Any] = response.json()
    return clock


@contextmanager
def open_world(
    stack: dict[str, Any],
    tables: Mapping[str, tuple[str, dict[str, Any]]],
    *,
    prefix: str = "e2e",
    parameters: Mapping[str, Any] | None = None,
    clock_scale: float = CLOCK_SCALE,
) -> Iterator[World]:
    """``tables``: config name -> (CREATE TABLE with ``{schema}`` for the schema, its config without
    ``schema``/``target``). Load rows with ``World.execute`` afterwards, then ``World.apply``.
    ``clock_scale``: the engine's clock (``set_clock``) while the world is open."""
    tag = uuid.uuid4().hex[:6]
    schema, config_path = f"{prefix}_{tag}", f"/aurora-sync/{prefix}-{tag}/"
    aws = stack["aws"]
    set_clock(stack, clock_scale)
    admin = psycopg2.connect(stack["postgres"]["admin_dsn"])
    admin.autocommit = True
    sync_role = sql.Identifier(stack["postgres"]["user"])
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sync_role))
        cur.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                sql.Identifier(schema), sync_role
            )
        )
    setup = SnowflakeSetup(
        bucket=aws["bucket"],
        storage_role_arn=f"arn:aws:iam::{aws['account_id']}:role/aurora-sync-snowflake-storage",
        storage_external_id=local_external_id(aws),
        database=stack["snowflake"]["database"],
    )
    warehouse = snowflake.connector.connect(**stack["snowflake"])
    engine = LocalEngine(
        stack,
        parameters={
            "ConfigSsmPath": config_path.rstrip("/"),
            "LoadRefreshAfterSeconds": 5,
            **(parameters or {}),
        },
        stack_name=f"{prefix}-{tag}",
    )
    world = World(stack, schema, config_path, setup, engine, engine.deploy(), admin, warehouse)
    for name, (ddl, config) in tables.items():
        world.execute(ddl)
        world.configs[name] = {
            **config,
            "schema": schema,
            "target": f"{prefix.upper()}{tag.upper()}_{name.upper()}",
        }
    try:
        yield world
    finally:
        # Its pipes would load every later world's files under the same prefixes (tests/conftest.py).
        cursor = warehouse.cursor()
        for config in world.configs.values():
            cursor.execute(f"DROP PIPE IF EXISTS {setup.objects(config['target']).pipe}")
        warehouse.close()
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        admin.close()
        set_clock(stack, 1)
