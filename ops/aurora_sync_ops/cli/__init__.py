"""``aurora-sync``: the operator CLI. ``main`` builds the parser from one module per command group
and runs the chosen command:

- ``local``: the embedded local stack (up/down/status) and its SQL shells (sql/psql);
- ``sql``: the generated SQL for Aurora and Snowflake;
- ``attach-export-role``: the one deploy step that calls AWS for Aurora (export_role);
- ``config``: validate/push/pull the table configs;
- ``inspect``: the read-only ``plan``, ``status`` and ``parity``;
- ``run``: ``sync`` and ``rerun`` of the state machine;
- ``demo``: the whole product on the local stack.

Every command resolves where it acts through ``options.environment(args)``. Errors are printed as
one or two lines naming what is wrong and what to do; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aurora_sync.errors import SyncError

from ..local.stack import StackError
from . import config, demo, export_role, inspect, local, run, sql

# In the order ``aurora-sync --help`` lists them.
GROUPS = (local, sql, export_role, run, config, inspect, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-sync",
        description="Aurora PostgreSQL → Snowflake sync: operate the workflow and the local stack.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return parser


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
