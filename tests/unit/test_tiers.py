"""The test tiers: ``make test-fast`` is ruff, mypy and tests/unit on a .venv installed without
PostgreSQL; ``make test`` (what CI runs) is the full install and the whole suite, the unit tier
included. Read from make's dry run, so the commands checked are the ones make would run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = Path(__file__).resolve().parent
SERVER_FIXTURES = {"local_stack", "stack", "lambda_env"}


def planned_commands(target: str) -> list[str]:
    # -B: as on a fresh clone, where every install step is still to do.
    result = subprocess.run(
        ["make", "--dry-run", "--always-make", "--no-print-directory", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return [line.strip() for line in result.stdout.splitlines() if not line.startswith("touch ")]


def test_test_fast_is_lint_types_and_the_unit_tier_without_postgresql() -> None:
    assert planned_commands("test-fast") == [
        "bash scripts/bootstrap.sh --python-only",
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/mypy",
        ".venv/bin/pytest tests/unit",
    ]


def test_make_test_installs_everything_and_runs_the_whole_suite_as_ci_does() -> None:
    commands = planned_commands("test")
    assert commands[0] == "bash scripts/bootstrap.sh"  # PostgreSQL included: the suite starts it
    # testpaths = tests: every tier, a file per worker, each worker on its own stack (conftest).
    assert commands[-1] == ".venv/bin/pytest -n 2 --dist loadfile --no-loadscope-reorder"
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("exec make test")


def test_no_unit_test_asks_for_a_server() -> None:
    # pytest's setup plan lists each test's fixtures, those it reaches through others included,
    # without setting any up.
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "pytest"), "--setup-plan", "-q", "-p", "no:cacheprovider", str(UNIT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        # One process: xdist's workers would not print the setup plan.
        env={k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    tests = [line.strip() for line in result.stdout.splitlines() if "(fixtures used:" in line]
    assert len(tests) > 100  # the tier was collected, not an empty directory
    needing = [
        test.split(" ")[0]
        for test in tests
        if SERVER_FIXTURES & set(test.split("(fixtures used: ")[1].rstrip(")").split(", "))
    ]
    assert needing == []
