"""``aurora-sync sql aurora`` and ``aurora-sync sql snowflake``: print (or apply) the SQL generated
from the table configs and the source catalog: the sync role's grants, and each table's
STAGING/FINAL/stream/pipe/tasks (with ``--setup``, the account setup too)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..environment import SETUP_VARIABLES
from .options import config_source_options, environment, source_dsn_option, stack_options, table_names


def cmd_sql_aurora(args: argparse.Namespace) -> int:
    from aurora_sync.source_db import source_errors

    from ..aurora_sql import render_script

    env = environment(args)
    tables = env.tables(table_names(args.tables))
    conn = env.connect_source()
    try:
        relations = [(t.config.schema_name, t.config.table) for t in tables]
        with source_errors("reading the source catalog", conn=conn, relations=relations):
            script = render_script(conn, tables, setup=args.setup)
    finally:
        conn.close()
    print(script, end="")
    return 0


def cmd_sql_snowflake(args: argparse.Namespace) -> int:
    from ..snowflake_plan import KEY_CHANGED, PIPE_BUSY, REKEY, apply_statements, plan_tables
    from ..snowflake_sql import render_setup

    env = environment(args)
    names = table_names(args.tables)
    if args.rekey and names is None:
        raise ValueError(
            "--rekey needs --tables: it empties FINAL of each named table whose primary key changed; "
            "name them, e.g. --tables orders"
        )
    setup = env.snowflake_setup()
    tables = env.tables(names) if names is not None or not args.setup else _optional_tables(env)
    # A drift check needs Snowflake; printing alone works offline (e.g. before the account exists).
    connect = args.apply or args.rekey or env.snowflake_secret() is not None
    warehouse = env.connect_snowflake() if connect else None
    try:
        plans = []
        if tables:
            source = env.connect_source()
            try:
                plans = plan_tables(source, warehouse, setup, tables, rekey=args.rekey)
            finally:
                source.close()
        setup_statements = render_setup(setup) if args.setup else []
        if warehouse is None:
            print(
                "aurora-sync: not connected to Snowflake, so existing tables were not compared "
                "(drift and primary keys not checked); set SNOWFLAKE_* or start the local stack",
                file=sys.stderr,
            )
        elif args.apply:
            apply_statements(warehouse, setup_statements)
            _apply_tables(env, warehouse, plans, args.parallel)
    finally:
        if warehouse is not None:
            warehouse.close()
    _print_snowflake(args, setup.database, setup_statements, plans)
    refused = [plan for plan in plans if plan.state in (KEY_CHANGED, PIPE_BUSY)]
    for plan in refused:
        reason = _key_refusal(args, plan) if plan.state == KEY_CHANGED else _pipe_refusal(args, plan)
        print(f"aurora-sync: {reason}", file=sys.stderr)
    rekeyed = [plan.name for plan in plans if plan.state == REKEY]
    if rekeyed and args.apply:
        tables_flag = ",".join(rekeyed)
        print(
            f"aurora-sync: re-keyed {', '.join(rekeyed)}: FINAL is empty, keyed on the config's primary "
            "key, and the MERGE task merges on it. Next: push the config if SSM still has the old key "
            f"(aurora-sync config push FILE --rekey), then export every row: aurora-sync sync --tables "
            f"{tables_flag} --full, and check: aurora-sync parity --tables {tables_flag}",
            file=sys.stderr,
        )
    return 1 if refused else 0


def _apply_tables(env: Any, warehouse: Any, plans: list[Any], parallel: int) -> None:
    from ..snowflake_plan import apply_plans

    outcome = apply_plans(plans, warehouse, env.connect_snowflake, parallel=parallel)
    if not outcome.failed:
        return
    name, error = outcome.failed[0]
    failed = (
        f"table {name} failed (its statements before the failing one took effect)"
        if name
        else ("a connection could not be opened")
    )
    waiting = f": {', '.join(outcome.not_started)}" if len(outcome.not_started) <= 10 else ""
    print(
        f"aurora-sync: {failed}; {len(outcome.applied)} table(s) were applied completely, "
        f"{len(outcome.not_started)} not started{waiting}. Fix the cause below and run the same "
        "command again: every statement is idempotent, and the tables already applied get none",
        file=sys.stderr,
    )
    raise error


def _key_refusal(args: argparse.Namespace, plan: Any) -> str:
    import shlex

    from ..rekey import DOC, key_text

    source = f" --config {shlex.quote(args.config)}" if args.config else ""
    return (
        f"table {plan.name}: FINAL.{plan.target} is keyed on {key_text(plan.final_primary_key)}, the config "
        f"on {key_text(plan.primary_key)}: nothing was {'applied' if args.apply else 'generated'} for it "
        "(its rows were merged on FINAL's key, and the MERGE task would start merging on the new one). "
        f"Re-key it (FINAL is emptied and refilled): aurora-sync sql snowflake{source} --tables "
        f"{plan.name} --rekey --apply, then aurora-sync sync --tables {plan.name} --full; see {DOC}"
    )


def _pipe_refusal(args: argparse.Namespace, plan: Any) -> str:
    return (
        f"table {plan.name}: its pipe's COPY must change, but the pipe still has {plan.pending_files} "
        f"file(s) to load; a replaced pipe would never load them (a new pipe has neither the old one's "
        f"queue nor its load history): nothing was {'applied' if args.apply else 'generated'} for it. "
        "Run this again between runs, once SYSTEM$PIPE_STATUS shows pendingFileCount 0"
    )


def _print_snowflake(args: argparse.Namespace, database: str, setup: list[str], plans: list[Any]) -> None:
    if args.json:
        document = {
            "database": database,
            "setup": setup,
            "tables": [plan.as_dict() for plan in plans],
            "applied": bool(args.apply),
        }
        print(json.dumps(document, indent=2))
        return
    blocks = []
    if setup:
        blocks.append(f"-- ===== setup: sql/snowflake/ for database {database}")
        blocks += [f"{s};" for s in setup]
    for plan in plans:
        blocks.append(f"-- ===== table {plan.name} -> {plan.target}: {_describe_plan(plan)}")
        blocks += [f"{s};" for s in plan.statements]
    if args.apply:
        total = len(setup) + sum(len(p.statements) for p in plans)
        blocks.append(f"-- applied {total} statement(s) in order")
    print("\n\n".join(blocks))


# Tables applied at once by default: each statement is a round trip to Snowflake (100-300 ms over
# the internet), so a few connections divide the wait; more would add logins and queue on the
# account's cloud services for DDL.
DEFAULT_PARALLEL = 4
MAX_PARALLEL = 32


def _parallel(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_PARALLEL:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_PARALLEL}, e.g. 4")
    return int(value)


def _optional_tables(env: Any) -> list[Any]:
    """``--setup`` alone: every configured table, or none while no table is configured yet."""
    if not env.table_configs():
        return []
    tables: list[Any] = env.tables(None)
    return tables


def _describe_plan(plan: Any) -> str:
    from ..rekey import key_text
    from ..snowflake_plan import CURRENT, DRIFT, KEY_CHANGED, NEW, PIPE_BUSY, PIPE_CHANGED, REKEY

    keys = f"FINAL is keyed on {key_text(plan.final_primary_key)}, the config on {key_text(plan.primary_key)}"
    text = {
        NEW: "new: STAGING and FINAL do not exist yet",
        DRIFT: f"schema drift: adds {', '.join(plan.added_columns)}, then replaces the pipe "
        "(a replaced pipe starts a new load history: apply between runs)",
        CURRENT: "STAGING and FINAL have every exported column; "
        + ("creates or replaces only what is missing or differs" if plan.statements else "nothing differs"),
        PIPE_CHANGED: "the pipe's COPY differs from the config's (a column no longer exported): replaces "
        "the pipe, which had no file pending (its new load history starts empty: never REFRESH it)",
        PIPE_BUSY: f"the pipe's COPY must change but {plan.pending_files} file(s) are pending; nothing "
        "generated (run again between runs)",
        KEY_CHANGED: f"primary key changed: {keys}; nothing generated (re-key with --rekey)",
        REKEY: f"re-key: {keys}; FINAL is replaced by an EMPTY table with the config's key and the MERGE "
        "task re-created; a full resync refills it",
    }.get(plan.state, "not compared with Snowflake (no connection); full definition")
    if plan.extra_columns:
        text += f"; no longer exported, kept: {', '.join(plan.extra_columns)}"
    return str(text)


def register(commands: Any) -> None:
    """Add the ``sql`` group to the CLI's subparsers."""
    sql_group = commands.add_parser(
        "sql", help="print (or apply) the SQL generated from the table configs and the source catalog"
    )
    sql_commands = sql_group.add_subparsers(dest="sql_command", required=True, metavar="DATABASE")

    def environment_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--tables", help="comma-separated table names (default: every configured table)")
        config_source_options(sub)
        source_dsn_option(
            sub, "for the catalog (env AURORA_SYNC_SOURCE_DSN; default: the local stack's admin)"
        )
        stack_options(sub)

    aurora = sql_commands.add_parser(
        "aurora", help="the sync role's grants per table (and, with --setup, the sql/aurora/ files)"
    )
    environment_options(aurora)
    aurora.add_argument("--setup", action="store_true", help="print the fixed sql/aurora/ files first")
    aurora.set_defaults(func=cmd_sql_aurora)

    snowflake = sql_commands.add_parser(
        "snowflake",
        help="each table's STAGING/FINAL/stream/pipe/tasks (ALTERs when columns drifted); --setup adds "
        "the database, roles, integration, stage",
    )
    environment_options(snowflake)
    snowflake.add_argument("--setup", action="store_true", help="include the account setup (sql/snowflake/)")
    snowflake.add_argument(
        "--apply",
        action="store_true",
        help="execute the statements in order (idempotent: safe to repeat) instead of only printing them",
    )
    snowflake.add_argument(
        "--parallel",
        type=_parallel,
        default=DEFAULT_PARALLEL,
        metavar="N",
        help=f"with --apply: apply up to N tables at once, each on its own Snowflake connection "
        f"(1-{MAX_PARALLEL}, default {DEFAULT_PARALLEL}); a table's statements always run in order",
    )
    snowflake.add_argument(
        "--rekey",
        action="store_true",
        help="with --tables: for a table whose FINAL has another primary key than its config, replace "
        "FINAL by an EMPTY table with the config's key and re-create the MERGE task (then run "
        "`aurora-sync sync --tables ... --full`); without it such a table is refused",
    )
    snowflake.add_argument("--json", action="store_true", help="print one JSON object")
    names = snowflake.add_argument_group("names of the Snowflake objects")
    for option, kind, helptext in (
        ("bucket", str, "data lake bucket (SAM output DataLakeBucket)"),
        (
            "storage-role-arn",
            str,
            "IAM role Snowflake reads the bucket with (SAM output SnowflakeStorageRoleArn)",
        ),
        (
            "storage-external-id",
            str,
            "STORAGE_AWS_EXTERNAL_ID of the integration (SAM output SnowflakeExternalId), which the "
            "storage role's trust policy requires",
        ),
        ("warehouse", str, "warehouse the setup creates for the service role (default AURORA_SYNC_WH)"),
        ("database", str, "database (default AURORA_SYNC)"),
        ("staging-schema", str, "schema of STAGING, streams, pipes, tasks (default STAGING)"),
        ("final-schema", str, "schema of the FINAL tables (default FINAL)"),
        ("integration", str, "storage integration (default AURORA_SYNC_S3)"),
        ("stage", str, "external stage (default AURORA_SYNC_STAGE)"),
        ("file-format", str, "file format (default AURORA_SYNC_CSV)"),
        ("service-role", str, "role of the Lambdas' user (default AURORA_SYNC_SERVICE)"),
        ("reader-role", str, "role for analysts (default AURORA_SYNC_READER)"),
        ("service-user", str, "the Lambdas' key-pair user (default AURORA_SYNC)"),
        ("staging-retention-days", int, "days STAGING rows are kept (default 7)"),
        ("task-size", str, "serverless task size (default XSMALL)"),
    ):
        variable = SETUP_VARIABLES.get(option.replace("-", "_"))
        names.add_argument(
            f"--{option}",
            dest=option.replace("-", "_"),
            type=kind,
            help=f"{helptext}{f'; env {variable}' if variable else ''}",
        )
    snowflake.set_defaults(func=cmd_sql_snowflake)
