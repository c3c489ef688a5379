"""``aurora-sync``: the operator CLI (local stack, generated SQL; sync, config, parity later).

Errors are printed as one or two lines naming what is wrong and what to do; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from aurora_sync.errors import SyncError

from .local.stack import READY_FOR_TABLES, START_ORDER, Stack, StackError, settings_from_env


def _stack(args: argparse.Namespace, progress: bool = True) -> Stack:
    settings = settings_from_env(root=args.state_dir, port_base=args.port_base)
    return Stack(settings, progress=(lambda line: print(line, flush=True)) if progress else None)


def _print_endpoints(status: dict[str, Any]) -> None:
    pg, aws, sf, vault = (status.get(k, {}) for k in ("postgres", "aws", "snowflake", "vault"))
    lines = [
        ("PostgreSQL (Aurora)", pg.get("dsn_redacted") or pg.get("dsn", "-")),
        ("AWS (moto)", aws.get("endpoint_url", "-")),
        (
            "Snowflake (fakesnow)",
            f"{sf.get('protocol', 'http')}://{sf.get('host', '-')}:{sf.get('port', '-')}",
        ),
        ("Vault (IAM login gateway)", vault.get("addr", "-")),
    ]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"  {label:<{width}}  {value}")
    print(f"  state and logs under {status.get('state_dir')}; full details: aurora-sync local status --json")


def cmd_local_up(args: argparse.Namespace) -> int:
    stack = _stack(args)
    only = args.only.split(",") if args.only else None
    status = stack.up(only=only)
    print("local stack is up:")
    _print_endpoints(status)
    _print_readiness(status)
    return 0


def cmd_local_down(args: argparse.Namespace) -> int:
    stopped = _stack(args).down()
    print("stopped: " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def cmd_local_status(args: argparse.Namespace) -> int:
    status = _stack(args, progress=False).status()
    if args.json:
        print(json.dumps(status, sort_keys=True, default=str))
        return 0
    for name in START_ORDER:
        state = status["services"][name]
        mark = "up  " if state["alive"] else "down"
        pid = state["pid"] or "-"
        print(f"  {mark} {name:<10} port {state['port']:<6} pid {pid}")
    if status["running"]:
        _print_endpoints(status)
        _print_readiness(status)
    return 0 if status["running"] else 3


def _print_readiness(status: dict[str, Any]) -> None:
    ready = status.get(READY_FOR_TABLES)
    if not ready or not status["services"]["snowflake"]["alive"]:
        return
    print(
        f"  ready for your tables: Snowflake database {ready['database']} set up "
        f"(schemas {ready['staging_schema']}, {ready['final_schema']}; {ready['setup_statements']} "
        f"setup statements applied), bucket {ready['bucket']} notifies Snowpipe's queue "
        f"{ready['snowpipe_queue_arn']}"
    )
    print("  SQL shells: aurora-sync local sql (Snowflake), aurora-sync local psql (PostgreSQL)")


# --- sql ---------------------------------------------------------------------------------------
def _environment(args: argparse.Namespace) -> Any:
    from .environment import SETUP_FIELDS, CliOptions, Environment

    setup = {name: getattr(args, name, None) for name in SETUP_FIELDS}
    options = CliOptions(
        config=args.config,
        config_path=args.config_path,
        source_dsn=args.source_dsn,
        local=args.local,
        state_dir=args.state_dir,
        port_base=args.port_base,
        setup={k: v for k, v in setup.items() if v is not None},
    )
    return Environment(options)


def _table_names(args: argparse.Namespace) -> list[str] | None:
    if args.tables is None:
        return None
    names = [name.strip() for name in args.tables.split(",") if name.strip()]
    if not names:
        raise ValueError("--tables is empty: name at least one table, e.g. --tables orders,customers")
    return names


def cmd_sql_aurora(args: argparse.Namespace) -> int:
    from aurora_sync.source_db import source_errors

    from .aurora_sql import render_script

    env = _environment(args)
    tables = env.tables(_table_names(args))
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
    from .snowflake_plan import KEY_CHANGED, REKEY, apply_statements, plan_tables
    from .snowflake_sql import render_setup

    env = _environment(args)
    names = _table_names(args)
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
            apply_statements(warehouse, setup_statements + [s for plan in plans for s in plan.statements])
    finally:
        if warehouse is not None:
            warehouse.close()
    _print_snowflake(args, setup.database, setup_statements, plans)
    refused = [plan for plan in plans if plan.state == KEY_CHANGED]
    for plan in refused:
        print(f"aurora-sync: {_key_refusal(args, plan)}", file=sys.stderr)
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


def _key_refusal(args: argparse.Namespace, plan: Any) -> str:
    import shlex

    from .rekey import DOC, key_text

    source = f" --config {shlex.quote(args.config)}" if args.config else ""
    return (
        f"table {plan.name}: FINAL.{plan.target} is keyed on {key_text(plan.final_primary_key)}, the config "
        f"on {key_text(plan.primary_key)}: nothing was {'applied' if args.apply else 'generated'} for it "
        "(its rows were merged on FINAL's key, and the MERGE task would start merging on the new one). "
        f"Re-key it (FINAL is emptied and refilled): aurora-sync sql snowflake{source} --tables "
        f"{plan.name} --rekey --apply, then aurora-sync sync --tables {plan.name} --full; see {DOC}"
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


def _optional_tables(env: Any) -> list[Any]:
    """``--setup`` alone: every configured table, or none while no table is configured yet."""
    if not env.table_configs():
        return []
    tables: list[Any] = env.tables(None)
    return tables


def _describe_plan(plan: Any) -> str:
    from .rekey import key_text
    from .snowflake_plan import CURRENT, DRIFT, KEY_CHANGED, NEW, REKEY

    keys = f"FINAL is keyed on {key_text(plan.final_primary_key)}, the config on {key_text(plan.primary_key)}"
    text = {
        NEW: "new: STAGING and FINAL do not exist yet",
        DRIFT: f"schema drift: adds {', '.join(plan.added_columns)}, then replaces the pipe "
        "(a replaced pipe starts a new load history: apply between runs)",
        CURRENT: "STAGING and FINAL have every exported column; the definitions are idempotent",
        KEY_CHANGED: f"primary key changed: {keys}; nothing generated (re-key with --rekey)",
        REKEY: f"re-key: {keys}; FINAL is replaced by an EMPTY table with the config's key and the MERGE "
        "task re-created; a full resync refills it",
    }.get(plan.state, "not compared with Snowflake (no connection); full definition")
    if plan.extra_columns:
        text += f"; no longer exported, kept: {', '.join(plan.extra_columns)}"
    return str(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-sync",
        description="Aurora PostgreSQL → Snowflake sync: operate the workflow and the local stack.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    local = commands.add_parser("local", help="start, stop and inspect the embedded local stack")
    local_commands = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")

    def stack_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--state-dir", help="where state and logs live (env AURORA_SYNC_LOCAL_DIR; default ./.local)"
        )
        sub.add_argument(
            "--port-base",
            type=int,
            help="first of five consecutive loopback ports (env AURORA_SYNC_PORT_BASE; default 25432)",
        )

    up = local_commands.add_parser(
        "up", help="start every part in the background and wait until each answers"
    )
    stack_options(up)
    up.add_argument(
        "--only", help=f"comma-separated parts (with their dependencies): {','.join(START_ORDER)}"
    )
    up.set_defaults(func=cmd_local_up)

    down = local_commands.add_parser("down", help="stop every process the stack started (by pid)")
    stack_options(down)
    down.set_defaults(func=cmd_local_down)

    status = local_commands.add_parser("status", help="what runs where; --json for tools and tests")
    stack_options(status)
    status.add_argument("--json", action="store_true", help="print exactly one JSON object")
    status.set_defaults(func=cmd_local_status)
    from .cli_local import register as register_local

    register_local(local_commands, stack_options)

    _add_sql_commands(commands, stack_options)
    _add_workflow_commands(commands, stack_options)
    from .cli_config import register as register_config
    from .cli_inspect import register as register_inspect

    register_config(commands)
    register_inspect(commands)
    demo = commands.add_parser(
        "demo",
        help="the whole product on the embedded local stack: sample shop data, syncs, late commit, parity",
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.run import run_demo, summary

    result = run_demo(lambda line: print(line, flush=True))
    print(summary(result))
    return 0 if result.ok else 1


def _add_sql_commands(commands: Any, stack_options: Any) -> None:
    from .environment import SETUP_VARIABLES

    sql_group = commands.add_parser(
        "sql", help="print (or apply) the SQL generated from the table configs and the source catalog"
    )
    sql_commands = sql_group.add_subparsers(dest="sql_command", required=True, metavar="DATABASE")

    def environment_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--tables", help="comma-separated table names (default: every configured table)")
        sub.add_argument(
            "--config",
            metavar="FILE",
            help="table configs from a file: JSON object {name: config}, or YAML for .yaml/.yml "
            "(default: SSM parameters under --config-path)",
        )
        sub.add_argument(
            "--config-path",
            help="SSM path of the table configs (env AURORA_SYNC_CONFIG_PATH; default /aurora-sync/tables/)",
        )
        sub.add_argument(
            "--source-dsn",
            metavar="DSN",
            help="PostgreSQL connection string for the catalog (env AURORA_SYNC_SOURCE_DSN; default: the "
            "local stack's admin); put the password in PGPASSWORD or ~/.pgpass, not here",
        )
        sub.add_argument(
            "--local", action="store_true", help="ignore environment variables: use the running local stack"
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


# --- sync / rerun --------------------------------------------------------------------------------
def _target_options(args: argparse.Namespace) -> Any:
    from .workflow import TargetOptions

    return TargetOptions(
        state_machine_arn=getattr(args, "state_machine_arn", None),
        stack_name=getattr(args, "stack_name", None),
        local=args.local,
        state_dir=args.state_dir,
        port_base=args.port_base,
        config_path=getattr(args, "config_path", None),
        local_stack_name=getattr(args, "local_stack_name", None),
    )


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _finish(args: argparse.Namespace, result: Any) -> int:
    from .workflow import render

    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print(render(result))
    # Without --wait the execution has only started: success means "started".
    return int(result.exit_code) if args.wait else 0


def cmd_sync(args: argparse.Namespace) -> int:
    from . import workflow

    try:
        tables = workflow.table_names(args.tables)
        execution_input = workflow.build_input(tables, args.since, args.full)
        name = workflow.check_name(args.name) if args.name else workflow.execution_name("sync")
        target = workflow.sync_target(_target_options(args), os.environ, tables)
        result = workflow.run(
            target, execution_input, name, wait=args.wait, progress=_progress, timeout_s=args.timeout
        )
    except workflow.UsageError as exc:
        print(f"aurora-sync sync: error: {exc}", file=sys.stderr)
        return 2
    return _finish(args, result)


def cmd_rerun(args: argparse.Namespace) -> int:
    from . import workflow

    try:
        name = workflow.check_name(args.name) if args.name else workflow.execution_name("rerun")
        target = workflow.rerun_target(args.execution_arn, _target_options(args))
        execution_input = workflow.rerun_of(target, args.execution_arn)
        result = workflow.run(
            target,
            execution_input,
            name,
            wait=args.wait,
            progress=_progress,
            timeout_s=args.timeout,
        )
    except workflow.UsageError as exc:
        print(f"aurora-sync rerun: error: {exc}", file=sys.stderr)
        return 2
    return _finish(args, result)


def _add_workflow_commands(commands: Any, stack_options: Any) -> None:
    def run_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--wait",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="follow the execution until it ends (default); --no-wait prints its ARN and returns",
        )
        sub.add_argument(
            "--json", action="store_true", help="print one JSON object (progress stays on stderr)"
        )
        sub.add_argument(
            "--name", help="execution name (default: a time-based one); unique per state machine"
        )
        sub.add_argument(
            "--timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="stop following after this long (the execution goes on; exit status 1)",
        )
        sub.add_argument(
            "--local",
            action="store_true",
            help="ignore AURORA_SYNC_STATE_MACHINE_ARN and other variables: use the running local stack",
        )
        stack_options(sub)

    sync = commands.add_parser(
        "sync",
        help="start the sync state machine and follow it: per-table results, rerun hint on failure",
        description="Start a named execution of the sync state machine and follow it. On AWS with "
        "--state-machine-arn, AURORA_SYNC_STATE_MACHINE_ARN or --stack-name; otherwise on the local "
        "stack, after deploying template.yaml into it. Exit status: 0 succeeded (or skipped because "
        "another execution was in flight), 1 a table or the execution failed, 2 usage error.",
    )
    sync.add_argument("--tables", help="comma-separated table names (default: every enabled table)")
    sync.add_argument(
        "--since",
        metavar="ISO|INT",
        help="with --tables: export rows with cursor > this value instead of the watermark (this run only)",
    )
    sync.add_argument("--full", action="store_true", help="with --tables: export every row (this run only)")
    run_options(sync)
    where = sync.add_argument_group("where it runs")
    where.add_argument("--state-machine-arn", metavar="ARN", help="env AURORA_SYNC_STATE_MACHINE_ARN")
    where.add_argument("--stack-name", help="CloudFormation stack whose output StateMachineArn is started")
    where.add_argument(
        "--config-path",
        help="local stack only: SSM path of the table configs the deployment reads "
        "(its ConfigSsmPath; env AURORA_SYNC_CONFIG_PATH; default /aurora-sync/tables)",
    )
    where.add_argument(
        "--local-stack-name",
        help="local stack only: name of the deployment (functions <name>-planner..., state machine "
        "<name>-sync; default aurora-sync-local)",
    )
    sync.set_defaults(func=cmd_sync)

    rerun = commands.add_parser(
        "rerun",
        help="start a new execution with the input that reruns only an execution's failed tables",
        description="Read the execution's history (the verifier's rerun input, with the original "
        "--since/--full overrides of those tables), start a new execution of the same state machine "
        "with it, and follow it like sync.",
    )
    rerun.add_argument("execution_arn", metavar="EXECUTION_ARN", help="the execution `sync` printed")
    run_options(rerun)
    rerun.set_defaults(func=cmd_rerun)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except (StackError, SyncError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"aurora-sync: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
