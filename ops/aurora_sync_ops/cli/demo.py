"""``aurora-sync demo``: the whole product on the embedded local stack (``aurora_sync_ops.demo``)."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo.run import run_demo, summary

    result = run_demo(lambda line: print(line, flush=True))
    print(summary(result))
    return 0 if result.ok else 1


def register(commands: Any) -> None:
    """Add ``demo`` to the CLI's subparsers."""
    demo = commands.add_parser(
        "demo",
        help="the whole product on the embedded local stack: sample shop data, syncs, late commit, parity",
    )
    demo.set_defaults(func=cmd_demo)
