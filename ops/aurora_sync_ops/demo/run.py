"""`aurora-sync demo`: the whole product on the embedded local stack, narrated step by step.

1. start the local stack; 2. create the sample shop database (~100k rows); 3. push the table
configs to SSM; 4. apply the generated Snowflake SQL (clean objects each time, so the demo can
run again); 5. full sync through the real state machine; 6. a burst of changes, with a
transaction that stays open across the next sync and commits late with an old ``updated_at``;
7. two incremental syncs; 8. parity of every table, and a summary.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aurora_sync.config import LoadedTable, TableConfig
from aurora_sync.snowflake_objects import TableSpec, table_spec
from aurora_sync.snowflake_tables import SnowflakeSetup, render_drop_table, render_table
from aurora_sync.source_catalog import read_columns

from ..config_publish import apply_push, plan_push, read_parameters
from ..environment import CliOptions, Environment, local_aws_client, local_external_id
from ..local.component import StackSettings
from ..local.stack import Stack, settings_from_env
from ..local.wiring import connect_bucket_to_snowpipe
from ..parity import ParityResult, compare
from ..snowflake_sql import render_setup
from ..workflow.execution_input import execution_name
from ..workflow.executions import follow, progress_lines, results, start
from ..workflow.history import RunResult
from ..workflow.target import Target, local_target
from . import dataset

Say = Callable[[str], None]


@dataclass
class DemoResult:
    runs: list[tuple[str, RunResult, list[dict[str, Any]]]]
    parity: list[ParityResult]
    rows: int
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.status == "SUCCEEDED" for _, r, _ in self.runs) and all(p.equal for p in self.parity)


def _step(say: Say, number: int, text: str) -> None:
    say(f"\n[{number}/8] {text}")


def _specs(status: dict[str, Any], admin: Any) -> dict[str, TableSpec]:
    specs = {}
    with admin.cursor() as cur:
        for name, config in dataset.CONFIGS.items():
            catalog = read_columns(cur, config["schema"], config["table"])
            specs[name] = table_spec(
                name=name,
                target=name.upper(),
                catalog=catalog,
                schema=config["schema"],
                table=config["table"],
                columns=config.get("columns"),
                primary_key=config["primary_key"],
                cursor=config.get("cursor", "updated_at")
                if config.get("mode", "cursor") == "cursor"
                else None,
                mode=config.get("mode", "cursor"),
                soft_delete_column=config.get("soft_delete_column"),
                soft_delete_mode=config.get("soft_delete_mode", "delete"),
            )
    return specs


def path_through_states(events: list[dict[str, Any]]) -> str:
    """The execution's path, compressed: Plan → ExportRound x1 → Wait/Verify x3 → Synced (the
    chunks ran in the export rounds' child executions, whose histories are not the parent's)."""
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    counts = Counter(entered)
    order = ["Plan", "ExportRound", "Verify", "Report", "TablesFailed", "Synced", "Skipped"]
    parts = []
    for state in order:
        if state == "ExportRound" and counts[state]:
            parts.append(f"ExportRound x{counts[state]}")
        elif state == "Verify" and counts[state]:
            parts.append(f"Wait/Verify x{counts[state]}")
        elif counts[state]:
            parts.append(state)
    retries = sum(1 for e in events if "taskFailedEventDetails" in e)
    if retries:
        parts.append(f"({retries} retried attempt(s))")
    return " → ".join(parts)


def _push_configs(say: Say, aws: dict[str, Any]) -> None:

    ssm = local_aws_client("ssm", aws)
    # What `aurora-sync config push --prune` does: the demo's tables, and only them, are configured.
    path = aws["config_ssm_path"]
    wanted = [
        LoadedTable(name, f"{path}{name}", TableConfig.model_validate(config))
        for name, config in dataset.CONFIGS.items()
    ]
    entries = plan_push(wanted, read_parameters(path, ssm), path, prune=True)
    apply_push(entries, path, ssm)
    for entry in entries:
        say(f"      {entry.parameter}: {entry.action}")


def _apply_snowflake(say: Say, warehouse: Any, setup: SnowflakeSetup, specs: dict[str, TableSpec]) -> None:
    cursor = warehouse.cursor()
    statements = render_setup(setup)
    for spec in specs.values():
        # A fresh start each demo: the source was just recreated.
        for drop in render_drop_table(setup, spec.target):
            cursor.execute(drop)
        statements += render_table(setup, spec)
    for statement in statements:
        cursor.execute(statement)
    say(f"      {len(statements)} statements applied to database {setup.database}")


def _sync(say: Say, target: Target, label: str, step: int) -> tuple[str, RunResult, list[Any]]:
    _step(say, step, label)
    name = execution_name("demo")
    arn = start(target, {}, name)
    say(f"      execution {name}")
    description, events = follow(
        target, arn, on_event=progress_lines(target, lambda line: say(f"      {line}"))
    )
    result = results(target, description, events)
    say(f"      {result.status}: {path_through_states(events)}")
    return label, result, events


def _parity(
    say: Say, admin: Any, warehouse: Any, setup: SnowflakeSetup, specs: dict[str, TableSpec]
) -> list[Any]:
    _step(say, 8, "parity: every FINAL table equals its source, row by row")
    results = []
    for name, spec in specs.items():
        config = dataset.CONFIGS[name]
        result = compare(admin, warehouse, setup, spec, schema=config["schema"], table=config["table"])
        results.append(result)
        mark = "equal" if result.equal else f"DIFFERENT {result.counts}"
        say(
            f"      {name:<12} {result.source_rows:>7,} source rows, {result.final_rows:>7,} in FINAL: {mark}"
        )
    return results


def prepare_demo(say: Say, status: dict[str, Any]) -> tuple[int, SnowflakeSetup, dict[str, TableSpec]]:
    """Steps 2-4 on a running stack: the shop database, its configs in SSM, its Snowflake objects,
    and the bucket's notification to Snowpipe; what ``sam local invoke``'s events expect
    (docs/local-stack.md). Returns the source's rows, the setup and each table's spec."""
    import psycopg2
    import snowflake.connector

    aws, pg = status["aws"], status["postgres"]
    _step(say, 2, "creating the sample source database `shop` in PostgreSQL")
    rows = dataset.create(pg["admin_dsn"], pg["user"])
    say(f"      {rows:,} rows: " + ", ".join(f"{t} {n:,}" for t, n in dataset.ROWS.items()))

    _step(say, 3, f"pushing {len(dataset.CONFIGS)} table configs to SSM under {aws['config_ssm_path']}")
    _push_configs(say, aws)

    _step(
        say,
        4,
        "applying the generated Snowflake SQL (setup, then STAGING, FINAL, stream, pipe, tasks per table)",
    )
    admin = psycopg2.connect(pg["admin_dsn"])
    admin.autocommit = True
    warehouse = snowflake.connector.connect(**status["snowflake"])
    try:
        setup = SnowflakeSetup(
            bucket=aws["bucket"],
            storage_role_arn=f"arn:aws:iam::{aws['account_id']}:role/aurora-sync-snowflake-storage",
            storage_external_id=local_external_id(aws),
            database=status["snowflake"]["database"],
        )
        specs = _specs(status, admin)
        _apply_snowflake(say, warehouse, setup, specs)
        connect_bucket_to_snowpipe(status)
        say(f"      bucket {aws['bucket']} now notifies Snowpipe's queue (the template's SnowpipeSqsArn)")
    finally:
        warehouse.close()
        admin.close()
    return rows, setup, specs


def run_demo(say: Say, settings: StackSettings | None = None) -> DemoResult:
    """Run every step on the stack of ``settings`` (default: the developer's ``.local`` stack)."""
    import psycopg2
    import snowflake.connector

    started = time.monotonic()
    _step(say, 1, "starting the local stack (PostgreSQL as Aurora, moto, Snowflake emulator, Vault)")
    settings = settings or settings_from_env()
    status = Stack(settings, progress=lambda line: say(f"      {line}")).up()
    pg = status["postgres"]

    rows, setup, specs = prepare_demo(say, status)

    admin = psycopg2.connect(pg["admin_dsn"])
    admin.autocommit = True
    warehouse = snowflake.connector.connect(**status["snowflake"])
    try:
        # No environment variables: the demo always runs on the stack it started.
        options = CliOptions(state_dir=str(settings.root), port_base=settings.ports.postgres)
        target = local_target(Environment(options, environ={}), None)
        runs = [_sync(say, target, "full sync through the state machine (backfill)", 5)]

        _step(say, 6, "a burst of changes, and a transaction that stays open across the next sync")
        late = dataset.LateCommit(pg["admin_dsn"])
        late.begin()
        say("      BEGIN; UPDATE shop.orders ... updated_at = now() (orders 101-110) -- not committed yet")
        time.sleep(1.0)  # later changes get later timestamps than the open transaction's now()
        for what, count in dataset.burst(pg["admin_dsn"]).items():
            say(f"      {what}: {count}")
        runs.append(_sync(say, target, "incremental sync while that transaction is still open", 7))
        late.commit()
        say("      COMMIT -- its rows carry an updated_at older than the watermark this sync just set")
        title = "incremental sync: the window starts before that transaction did, so its late commit is read"
        runs.append(_sync(say, target, title, 7))
        parity = _parity(say, admin, warehouse, setup, specs)
    finally:
        warehouse.close()
        admin.close()
    return DemoResult(runs=runs, parity=parity, rows=rows, seconds=time.monotonic() - started)


def summary(result: DemoResult) -> str:
    lines = ["", "=" * 100, "Summary"]
    for label, run, events in result.runs:
        lines += [
            "",
            f"{label}: {run.status} in {_duration(events)}",
            f"  path: {path_through_states(events)}",
        ]
        lines.append(
            f"  {'table':<14}{'outcome':<15}{'exported':>10}{'loaded':>10}{'changed':>10}{'unchanged':>10}"
            f"{'freshness lag':>16}"
        )
        for table in run.tables:
            lag = "-" if table.freshness_lag_seconds is None else _lag(table.freshness_lag_seconds)
            counts = (
                f"{_n(table.rows_exported):>10}{_n(table.rows_loaded):>10}{_n(table.rows_changed):>10}"
                f"{_n(table.rows_unchanged):>10}"
            )
            lines.append(f"  {table.table:<14}{table.outcome:<15}{counts}{lag:>16}")
    lines += ["", "Parity (source = FINAL, row by row):"]
    for parity in result.parity:
        lines.append(
            f"  {parity.table:<14}{'equal' if parity.equal else 'DIFFERENT':<10} "
            f"{parity.source_rows:>8,} rows  sha256 {parity.source_digest[:16]}…"
        )
    verdict = "the demo passed" if result.ok else "the demo FAILED"
    lines += [
        "",
        f"{verdict}: {result.rows:,} source rows, {len(result.runs)} executions, {result.seconds:.0f} s",
    ]
    lines += [
        "Next: `aurora-sync local status` shows where everything runs; `aurora-sync parity` and "
        "`aurora-sync sync` work on this stack; `aurora-sync local down` stops it."
    ]
    return "\n".join(lines)


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _lag(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _duration(events: list[dict[str, Any]]) -> str:
    if len(events) < 2:
        return "-"
    return f"{(events[-1]['timestamp'] - events[0]['timestamp']).total_seconds():.1f} s"
