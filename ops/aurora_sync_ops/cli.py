"""``aurora-sync``: the operator CLI (local stack now; sync, config, sql, parity later).

Errors are printed as one or two lines naming what is wrong and what to do; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .local.stack import START_ORDER, Stack, StackError, settings_from_env


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
    return 0 if status["running"] else 3


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except (StackError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"aurora-sync: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
