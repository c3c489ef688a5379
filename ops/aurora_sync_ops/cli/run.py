"""``aurora-sync sync`` and ``aurora-sync rerun``: start the sync state machine and follow it
(the ``workflow`` package does the work; this module is the flags and the exit status)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ..errors import UsageError
from ..workflow.execution_input import build_input, check_name, execution_name
from ..workflow.executions import rerun_of, run
from ..workflow.history import RunResult
from ..workflow.report import render
from ..workflow.target import Target, rerun_target, sync_target
from .options import environment, stack_options, table_names


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_sync(args: argparse.Namespace) -> int:
    def started() -> RunResult:
        tables = table_names(args.tables)
        execution_input = build_input(tables, args.since, args.full)
        name = check_name(args.name) if args.name else execution_name("sync")
        return _run(args, sync_target(environment(args), tables), execution_input, name)

    return _finish("sync", args, started)


def cmd_rerun(args: argparse.Namespace) -> int:
    def started() -> RunResult:
        name = check_name(args.name) if args.name else execution_name("rerun")
        target = rerun_target(environment(args), args.execution_arn)
        return _run(args, target, rerun_of(target, args.execution_arn), name)

    return _finish("rerun", args, started)


def _run(args: argparse.Namespace, target: Target, execution_input: dict[str, Any], name: str) -> RunResult:
    return run(target, execution_input, name, wait=args.wait, progress=_progress, timeout_s=args.timeout)


def _finish(command: str, args: argparse.Namespace, started: Callable[[], RunResult]) -> int:
    """Print the result of ``started()``; a usage error is exit status 2, as argparse's own."""
    try:
        result = started()
    except UsageError as exc:
        print(f"aurora-sync {command}: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print(render(result))
    # Without --wait the execution has only started: success means "started".
    return result.exit_code if args.wait else 0


def register(commands: Any) -> None:
    """Add ``sync`` and ``rerun`` to the CLI's subparsers."""

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
