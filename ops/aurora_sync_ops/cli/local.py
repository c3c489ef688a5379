"""``aurora-sync local``: start, stop and inspect the embedded local stack (``up``, ``down``,
``status``), a shell on each of its databases (``sql``, ``psql``), and the functions' environment
for ``sam local invoke`` (``env``).

``local sql`` runs Snowflake SQL on the local emulator with the connection ``local status
--json`` reports (``-c``, ``--file``, piped input, or a small interactive shell) and prints each
result as a table. ``local psql`` runs the stack's own psql on the source database, with the
password in the environment rather than on the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..local.stack import READY_FOR_TABLES, START_ORDER, Stack, StackError
from .options import environment, state_dir_options

PROMPT = "snowflake> "
CONTINUATION = "       ...> "


# --- local up / down / status ----------------------------------------------------------------
def _stack(args: argparse.Namespace, progress: bool = True) -> Stack:
    return Stack(
        environment(args).stack_settings(),
        progress=(lambda line: print(line, flush=True)) if progress else None,
    )


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


# --- local env -----------------------------------------------------------------------------------
def cmd_local_env(args: argparse.Namespace) -> int:
    from ..local.sam_env import credential_exports, env_vars_file

    env = environment(args)
    env.running_part("aws")
    status = env.stack_status()
    if args.sam:
        print(json.dumps(env_vars_file(status), indent=2, sort_keys=True))
    else:
        sys.stdout.write(credential_exports(status))
    return 0


# --- local sql -----------------------------------------------------------------------------------
def format_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A psql-like table: header, rule, one line per row, and the row count."""
    cells = [["NULL" if value is None else str(value) for value in row] for row in rows]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(columns)]
    lines = [
        " | ".join(name.ljust(width) for name, width in zip(columns, widths, strict=True)).rstrip(),
        "-+-".join("-" * width for width in widths),
    ]
    lines += [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.append(f"({len(cells)} row{'' if len(cells) == 1 else 's'})")
    return "\n".join(lines)


def statements_of(text: str) -> list[str]:
    """Statements of a script, split by the connector's own splitter (quotes and comments kept)."""
    from io import StringIO

    from snowflake.connector.util_text import split_statements

    return [s for s, _ in split_statements(StringIO(text), remove_comments=True) if s.strip(" ;\n\t")]


def run_statements(cursor: Any, statements: Sequence[str], out: TextIO) -> None:
    """Execute in order and print each result; the first error stops with the statement named."""
    from snowflake.connector.errors import Error as SnowflakeError

    for number, statement in enumerate(statements, 1):
        try:
            cursor.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
        except SnowflakeError as exc:
            first_line = statement.strip().splitlines()[0][:100]
            raise SqlStatementError(
                f"statement {number} of {len(statements)} ({first_line}) failed: "
                f"{getattr(exc, 'msg', None) or exc}"
            ) from None
        if cursor.description:
            print(format_table([column.name for column in cursor.description], rows), file=out)
        else:
            print("OK", file=out)


class SqlStatementError(ValueError):
    """A statement the user typed failed; its message is Snowflake's."""


def interactive(cursor: Any, read: Callable[[str], str], out: TextIO) -> None:
    """Read lines until one ends with ``;``, run what was read, repeat until end of input."""
    buffer: list[str] = []
    while True:
        try:
            line = read(CONTINUATION if buffer else PROMPT)
        except EOFError:
            print(file=out)
            return
        if not buffer and line.strip().lower() in ("quit", "exit", "\\q"):
            return
        buffer.append(line)
        if line.rstrip().endswith(";"):
            text, buffer = "\n".join(buffer), []
            try:
                run_statements(cursor, statements_of(text), out)
            except SqlStatementError as exc:
                print(f"error: {exc}", file=out)


def cmd_local_sql(args: argparse.Namespace) -> int:
    import snowflake.connector

    from aurora_sync.warehouse_db import warehouse_errors

    if args.command and args.file:
        raise ValueError("-c and --file both give the statements: pass one of them")
    connect_kwargs = environment(args).running_part("snowflake")
    script: str | None = args.command
    if args.file:
        try:
            script = Path(args.file).read_text()
        except OSError as exc:
            raise ValueError(f"--file {args.file}: cannot read it ({exc.strerror})") from None
    elif script is None and not sys.stdin.isatty():
        script = sys.stdin.read()
    where = f"the local Snowflake on port {connect_kwargs.get('port')}"
    with warehouse_errors(f"connecting to {where}"):
        conn = snowflake.connector.connect(**connect_kwargs)
    try:
        cursor = conn.cursor()
        if script is None:
            print(
                f"connected to {where}, database {connect_kwargs.get('database')}; end statements "
                "with ';', quit with Ctrl-D",
                flush=True,
            )
            interactive(cursor, input, sys.stdout)
            return 0
        statements = statements_of(script)
        if not statements:
            raise ValueError("no SQL statement given: pass -c 'SELECT ...;' or --file FILE")
        run_statements(cursor, statements, sys.stdout)
    finally:
        conn.close()
    return 0


# --- local psql ----------------------------------------------------------------------------------
def psql_command(postgres: dict[str, Any], args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """argv and environment for psql on the stack's source database; the password only in the env."""
    from psycopg2.extensions import make_dsn, parse_dsn

    binary = None
    if postgres.get("bin_dir") and (Path(postgres["bin_dir"]) / "psql").is_file():
        binary = str(Path(postgres["bin_dir"]) / "psql")
    binary = binary or shutil.which("psql")
    parts = parse_dsn(postgres["dsn" if args.sync_role else "admin_dsn"])
    password = parts.pop("password", "")
    if binary is None:
        raise StackError(
            f"psql is not in {postgres.get('bin_dir')} nor on PATH: install it (apt-get install "
            f"postgresql-client), or connect any client to {make_dsn(**parts)} with the password "
            "from `aurora-sync local status --json` (postgres.admin_dsn)"
        )
    # Scripts stop at their first error and psql exits non-zero, so `bash -e` sees it.
    argv = [binary, "--no-psqlrc", "--set=ON_ERROR_STOP=1", make_dsn(**parts)]
    for command in args.command or []:
        argv += ["-c", command]
    if args.file:
        argv += ["-f", args.file]
    return argv, {**os.environ, "PGPASSWORD": password}


def cmd_local_psql(args: argparse.Namespace) -> int:
    argv, environ = psql_command(environment(args).running_part("postgres"), args)
    sys.stdout.flush()
    os.execve(argv[0], argv, environ)  # noqa: S606 - the stack's own psql, argv built above


def register(commands: Any) -> None:
    """Add the ``local`` group to the CLI's subparsers."""
    local = commands.add_parser("local", help="start, stop and inspect the embedded local stack")
    local_commands = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")

    up = local_commands.add_parser(
        "up", help="start every part in the background and wait until each answers"
    )
    state_dir_options(up)
    up.add_argument(
        "--only", help=f"comma-separated parts (with their dependencies): {','.join(START_ORDER)}"
    )
    up.set_defaults(func=cmd_local_up)

    down = local_commands.add_parser("down", help="stop every process the stack started (by pid)")
    state_dir_options(down)
    down.set_defaults(func=cmd_local_down)

    status = local_commands.add_parser("status", help="what runs where; --json for tools and tests")
    state_dir_options(status)
    status.add_argument("--json", action="store_true", help="print exactly one JSON object")
    status.set_defaults(func=cmd_local_status)

    env = local_commands.add_parser(
        "env",
        help="the functions' environment on this stack, for sam local invoke (--sam or --credentials)",
        description="--sam prints the --env-vars JSON of sam local invoke: per function, every variable "
        "template.yaml declares, with this stack's values (what the local engine deploys). --credentials "
        "prints shell exports of the Lambda role's credentials and region, which SAM reads from the "
        "shell (Lambda reserves those names, so no template can declare them). See docs/local-stack.md.",
    )
    state_dir_options(env)
    what = env.add_mutually_exclusive_group(required=True)
    what.add_argument("--sam", action="store_true", help="print the env-vars JSON (redirect it to a file)")
    what.add_argument(
        "--credentials", action="store_true", help="print export lines of the role's credentials, for eval"
    )
    env.set_defaults(func=cmd_local_env)

    sql = local_commands.add_parser(
        "sql",
        help="run SQL on the local Snowflake: -c, --file, piped input, or an interactive shell",
        description="Connects with the credentials `aurora-sync local status --json` reports (database "
        "AURORA_SYNC; name tables as FINAL.<TARGET> or STAGING.<TARGET>) and prints each result as a "
        "table. Without -c/--file and on a terminal it reads statements ending with ';'.",
    )
    state_dir_options(sql)
    sql.add_argument("-c", "--command", metavar="SQL", help="statements to run, separated by ';'")
    sql.add_argument("-f", "--file", metavar="FILE", help="a file of statements separated by ';'")
    sql.set_defaults(func=cmd_local_sql)

    psql = local_commands.add_parser(
        "psql",
        help="psql on the local PostgreSQL (the source database), as its admin by default",
        description="Runs the stack's psql (or the one on PATH) on the source database, where your "
        "tables go; psql reads piped input too, e.g. `aurora-sync sql aurora | aurora-sync local psql`. "
        "Stops at the first error (ON_ERROR_STOP).",
    )
    state_dir_options(psql)
    psql.add_argument(
        "-c", "--command", action="append", metavar="SQL", help="run this and exit (repeatable)"
    )
    psql.add_argument("-f", "--file", metavar="FILE", help="run this file and exit")
    psql.add_argument(
        "--sync-role", action="store_true", help="connect as the sync role the exporter uses, not the admin"
    )
    psql.set_defaults(func=cmd_local_psql)
