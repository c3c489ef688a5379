"""``aurora-sync plan``, ``status`` and ``parity``: read-only looks at a deployment.

``register(commands)`` adds the three commands to the CLI's subparsers. Exit status: ``plan`` 1
when the planner would fail a table; ``parity`` 1 when any table differs or cannot be compared;
``status`` 0 (it reports, it does not judge). Expected failures are raised as ``SyncError``/
``ValueError``/``OSError`` for the CLI's ``main()`` to print as one line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from aurora_sync.config import InvalidTable, LoadedTable
from aurora_sync.errors import ConfigError
from aurora_sync.planning.plan import parse_input

from ..dry_run import describe_window, dry_run
from ..environment import STATE_MACHINE_ARN_VARIABLE
from ..inspect_targets import exporter_session, find_state_machine, warehouse_names
from ..parity_report import check_parity, render
from ..sync_status import recent_executions, table_status
from ..workflow.execution_input import build_input
from ..workflow.report import drift_lines, lag_text
from .options import (
    config_source_options,
    environment,
    source_dsn_option,
    stack_options,
    table_names,
    warehouse_name_options,
)


def _columns(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [list(headers), *rows]
    ]


# --- plan ----------------------------------------------------------------------------------------
def cmd_plan(args: argparse.Namespace) -> int:
    env = environment(args)
    names = table_names(args.tables)
    env.chosen_configs(names)  # unknown names are refused; the dry run plans like the planner, from all
    configs = env.table_configs()
    request = parse_input(build_input(names, args.since, args.full))
    warehouse = env.connect_snowflake()
    try:
        source = env.connect_source()
        try:
            exporter_session(source)
            plans = dry_run(
                configs, request, warehouse=warehouse, names=warehouse_names(env, warehouse), source=source
            )
        finally:
            source.close()
    finally:
        warehouse.close()
    failed = any(p.state == "failed" for p in plans)
    if args.json:
        print(json.dumps({"tables": [p.as_dict() for p in plans], "failed": failed}, indent=2))
        return 1 if failed else 0
    rows = []
    for p in plans:
        if p.state == "planned":
            mode = p.mode + (" +deletes" if p.reconcile and p.mode != "full" else "")
            window = describe_window(p.window)
            if p.mode == "xmin" and p.window is not None and p.window.watermark is not None:
                window = f"xid {window}"
            rows.append([p.table, p.state, mode, window, str(p.waiting_rows), str(p.chunks)])
        else:
            rows.append([p.table, p.state, p.mode, "-", "-", "-"])
    for line in _columns(("table", "state", "mode", "window", "waiting rows", "chunks"), rows):
        print(line)
    for p in plans:
        if p.state != "planned":
            print(f"{p.table}: {p.state}: {f'{p.error}: ' if p.error else ''}{p.reason}")
    print("dry run: nothing was exported")
    return 1 if failed else 0


# --- status --------------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    env = environment(args)
    configs = env.chosen_configs(table_names(args.tables))
    machine, note = find_state_machine(env)
    executions = recent_executions(machine, args.executions) if machine is not None else []
    warehouse = env.connect_snowflake()
    try:
        rows = table_status(
            configs, warehouse=warehouse, names=warehouse_names(env, warehouse), executions=executions
        )
    finally:
        warehouse.close()
    if args.json:
        document = {
            "state_machine_arn": machine.arn if machine else None,
            "note": note,
            "tables": [r.as_dict() for r in rows],
            "executions": [e.as_dict() for e in executions],
        }
        print(json.dumps(document, indent=2))
        return 0
    lines = _columns(
        (
            "table",
            "enabled",
            "mode",
            "watermark",
            "lag",
            "next run",
            "last outcome",
            "in execution",
            "started",
        ),
        [
            [
                r.table,
                "-" if r.enabled is None else ("yes" if r.enabled else "no"),
                r.mode or "-",
                (r.watermark or "-") if r.synced else ("error" if r.error else "never"),
                lag_text(r.freshness_lag_seconds),
                "removes deletes" if r.reconciles_next else "-",
                r.last_outcome or "-",
                r.last_execution or "-",
                r.last_started or "-",
            ]
            for r in rows
        ],
    )
    for line in lines:
        print(line)
    for r in rows:
        if r.error:
            print(f"{r.table}: {r.error}")
    for r in rows:
        for line in drift_lines(r.table, r.new_columns, r.drift_statements, indent=""):
            print(line)
    if machine is None:
        print(f"executions: {note}")
    elif not executions:
        print(f"executions of {machine.arn}: none yet")
    else:
        print(f"last {len(executions)} execution(s) of {machine.arn}, newest first:")
        for e in executions:
            outcomes = ", ".join(f"{t} {o}" for t, o in sorted(e.tables.items())) or "no tables"
            print(f"  {e.status:<9} {e.name}  started {e.started}  ({outcomes})")
    return 0


# --- parity --------------------------------------------------------------------------------------
def cmd_parity(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ValueError("--limit must be at least 1 (the number of differing keys listed per kind)")
    env = environment(args)
    names = table_names(args.tables)
    chosen = env.chosen_configs(names)
    invalid = [c for c in chosen if isinstance(c, InvalidTable)]
    if invalid:
        raise ConfigError("; ".join(c.message for c in invalid))
    tables = [c for c in chosen if isinstance(c, LoadedTable) and (names is not None or c.config.enabled)]
    skipped = [c.name for c in chosen if isinstance(c, LoadedTable) and c not in tables]
    if not tables:
        raise ConfigError("every table is disabled.", fix="name the ones to compare with --tables")
    setup = env.snowflake_setup()
    warehouse = env.connect_snowflake()
    try:
        source = env.connect_source()
        try:
            exporter_session(source)
            reports = check_parity(tables, source=source, warehouse=warehouse, setup=setup, limit=args.limit)
        finally:
            source.close()
    finally:
        warehouse.close()
    equal = all(r.equal for r in reports)
    if args.json:
        print(
            json.dumps(
                {"equal": equal, "skipped_disabled": skipped, "tables": [r.as_dict() for r in reports]},
                indent=2,
            )
        )
        return 0 if equal else 1
    print(render(reports, args.limit))
    if skipped:
        print(f"not compared (disabled; name them with --tables): {', '.join(skipped)}")
    different = [r.table for r in reports if not r.equal]
    print(
        f"parity: {len(reports)} table(s) equal"
        if equal
        else f"parity: {len(different)} of {len(reports)} table(s) differ or could not be compared: "
        f"{', '.join(different)}"
    )
    return 0 if equal else 1


def register(commands: Any) -> None:
    """Add ``plan``, ``status`` and ``parity`` to the CLI's subparsers."""

    def common(sub: argparse.ArgumentParser, default_tables: str) -> None:
        sub.add_argument("--tables", help=f"comma-separated table names (default: {default_tables})")
        sub.add_argument("--json", action="store_true", help="print one JSON object")
        config_source_options(sub)
        warehouse_name_options(sub)
        stack_options(sub)

    plan = commands.add_parser(
        "plan",
        help="dry run of the planner: per table the watermark, the window and the rows waiting in it",
        description="Read the watermarks from FINAL and choose each table's window exactly as the planner "
        "does, then count the source rows in it (SELECT count(*) with the exporter's predicate). Nothing "
        "is exported. Exit status 1 when the planner would fail a table.",
    )
    common(plan, "every enabled table, as a scheduled run")
    plan.add_argument("--since", metavar="ISO|INT", help="with --tables: plan a rerun from this cursor value")
    plan.add_argument("--full", action="store_true", help="with --tables: plan a full resync")
    source_dsn_option(plan, "to count waiting rows in (env AURORA_SYNC_SOURCE_DSN; default: the local stack)")
    plan.set_defaults(func=cmd_plan)

    status = commands.add_parser(
        "status",
        help="per table the watermark, freshness lag and last outcome; the last executions",
        description="Watermark (MAX(cursor) of FINAL) and freshness lag per table, 'never' for tables "
        "FINAL has no rows of; the last executions of the sync state machine with each table's outcome.",
    )
    common(status, "every configured table")
    status.add_argument(
        "--executions",
        type=int,
        default=5,
        metavar="N",
        help="how many recent executions to read (default 5)",
    )
    status.add_argument(
        "--state-machine-arn",
        metavar="ARN",
        help=f"the sync state machine on AWS (env {STATE_MACHINE_ARN_VARIABLE})",
    )
    status.add_argument(
        "--local-stack-name",
        help="local stack only: the deployment's name (state machine <name>-sync; default aurora-sync-local)",
    )
    status.set_defaults(func=cmd_status)

    parity = commands.add_parser(
        "parity",
        help="compare source and FINAL row by row; lists differing keys, exit status 1 on any difference",
        description="For each enabled table (or those in --tables): row counts and a per-row comparison "
        "over the replicated columns, both sides streamed in primary-key order with bounded memory. "
        "Prints the first --limit keys missing from FINAL, extra in FINAL and different.",
    )
    common(parity, "every enabled table")
    parity.add_argument("--limit", type=int, default=20, help="differing keys listed per kind (default 20)")
    source_dsn_option(parity, "of the source (env AURORA_SYNC_SOURCE_DSN; default: the local stack)")
    names = parity.add_argument_group("data lake (for the Snowflake setup names; env or local stack)")
    names.add_argument("--bucket", help="data lake bucket (env AURORA_SYNC_BUCKET)")
    names.add_argument(
        "--storage-role-arn", help="Snowflake's storage role (env AURORA_SYNC_STORAGE_ROLE_ARN)"
    )
    parity.set_defaults(func=cmd_parity)
