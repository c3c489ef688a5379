"""Run the ``aurora-sync`` CLI in-process, as a user would from a shell, and capture what it prints."""

from __future__ import annotations

import pytest

from aurora_sync_ops import cli


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``aurora-sync ARGS``."""
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
