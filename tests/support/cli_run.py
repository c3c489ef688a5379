"""Run the ``aurora-sync`` CLI in-process, as a user would from a shell, and capture what it prints."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from aurora_sync_ops import cli
from aurora_sync_ops.cli import run as cli_run


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``aurora-sync ARGS``."""
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def rerun_command_in(cause: str) -> argparse.Namespace:
    """The ``aurora-sync rerun ...`` command a failed execution's cause names, parsed by the CLI's
    own parser (so a command the CLI would refuse fails the test, as it would fail the operator)."""
    commands = re.findall(r"`(aurora-sync rerun [^`]*)`", cause)
    assert len(commands) == 1, f"expected one `aurora-sync rerun ...` command in the cause: {cause}"
    argv = shlex.split(commands[0])[1:]
    args = cli.build_parser().parse_args(argv)
    assert args.func is cli_run.cmd_rerun, argv
    return args
