"""Snowflake statements the verifier sends per run, at 50, 500 and 2,000 tables: this tree beside
a baseline revision, in the same run.

Each side drives the real verifier layer (``aurora_sync.verifying.act.verify``) as the state
machine's Wait/Verify loop calls it, until the run is done, against ``verifier_warehouse.Warehouse``
(tests/support): a Snowflake for a run of N one-file tables in which every file has loaded by the
first call and each MERGE task requested has SUCCEEDED by the next call. It counts every
statement the layer sends (by kind), the verifier calls, and the Waits between them (a call not
done and not ``continue_now`` is followed by WaitForLoads, VerifyWaitSeconds long). No server and
no clock are involved, so the figures are exact counts, not timings.

The baseline is the ``functions/`` tree of ``--baseline`` (a git revision; default: the
integration head before the verifier ran every MERGE task in one CALL), extracted with
``git archive`` and imported in a subprocess in place of this tree's.

    .venv/bin/python bench/verifier_statements.py [--baseline REV] [--tables 50 500 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BASELINE = "50e55e4"  # i15 integration head: EXECUTE TASK per table, at most 100 per call
TABLES = (50, 500, 2000)


def measure(tables: Sequence[int]) -> list[dict[str, Any]]:
    """Run in the subprocess: the figures of whichever ``aurora_sync`` is first on sys.path."""
    from verifier_warehouse import run_statements

    from aurora_sync.verifying.verify import Limits

    limits = Limits(
        refresh_after=timedelta(minutes=2),
        load_timeout=timedelta(minutes=15),
        merge_timeout=timedelta(minutes=15),
    )
    figures = []
    for count in tables:
        run = run_statements(count, limits)
        outputs, statements = run.outputs, run.statements
        assert all(t.outcome == "MERGED" for t in outputs[-1].tables), "the run did not merge every table"
        figures.append(
            {
                "tables": count,
                "statements": sum(statements.values()),
                "execute_task": statements.get("EXECUTE TASK", 0),
                "call": sum(n for kind, n in statements.items() if kind.startswith("CALL")),
                "calls": len(outputs),
                "most_in_one_call": max(run.per_call),
                "waits": sum(1 for o in outputs[:-1] if not getattr(o, "continue_now", False)),
            }
        )
    return figures


def _side(functions: Path, tables: Sequence[int]) -> list[dict[str, Any]]:
    code = (
        "import json, sys; sys.path[:0] = sys.argv[1:4]; from verifier_statements import measure; "
        "print(json.dumps(measure([int(t) for t in sys.argv[4:]])))"
    )
    paths = [str(functions), str(REPO / "tests" / "support"), str(REPO / "bench")]
    done = subprocess.run(
        [sys.executable, "-c", code, *paths, *map(str, tables)], check=True, capture_output=True, text=True
    )
    return list(json.loads(done.stdout))


def _baseline_tree(revision: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "functions"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "functions"


def render(baseline: list[dict[str, Any]], current: list[dict[str, Any]], revision: str) -> str:
    lines = [
        f"Verifier statements per run (files loaded by the first call; baseline {revision})",
        f"{'tables':>7} | {'statements':>21} | {'EXECUTE TASK':>14} | {'CALL':>9} | {'verifier calls':>15} | "
        f"{'most in a call':>15} | {'Waits':>11}",
        f"{'':>7} | {'baseline':>10} {'now':>10} | {'baseline':>7} {'now':>6} | {'base':>4} {'now':>4} | "
        f"{'baseline':>8} {'now':>6} | {'baseline':>8} {'now':>6} | {'base':>5} {'now':>5}",
    ]
    for before, after in zip(baseline, current, strict=True):
        lines.append(
            f"{after['tables']:>7} | {before['statements']:>10} {after['statements']:>10} | "
            f"{before['execute_task']:>7} {after['execute_task']:>6} | "
            f"{before['call']:>4} {after['call']:>4} | "
            f"{before['calls']:>8} {after['calls']:>6} | "
            f"{before['most_in_one_call']:>8} {after['most_in_one_call']:>6} | "
            f"{before['waits']:>5} {after['waits']:>5}"
        )
    return "\n".join(lines)


Side = Callable[[Path, Sequence[int]], list[dict[str, Any]]]


def both_sides(
    argv: Sequence[str] | None, *, doc: str | None, baseline: str, tables: Sequence[int], side: Side
) -> tuple[argparse.Namespace, list[dict[str, Any]], list[dict[str, Any]]]:
    """The command line of a benchmark that runs ``side`` on the ``functions/`` tree of a baseline
    revision and on this checkout's: (arguments, the baseline's figures, the current figures)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--baseline", default=baseline, help="git revision of the baseline's functions/")
    parser.add_argument("--tables", type=int, nargs="+", default=list(tables))
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as scratch:
        before = side(_baseline_tree(args.baseline, Path(scratch)), args.tables)
    return args, before, side(REPO / "functions", args.tables)


def print_sides(
    args: argparse.Namespace,
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    render: Callable[[list[dict[str, Any]], list[dict[str, Any]], str], str],
) -> None:
    if args.json:
        print(json.dumps({"baseline": args.baseline, "before": before, "after": after}, indent=2))
    else:
        print(render(before, after, args.baseline))


def main(argv: Sequence[str] | None = None) -> int:
    args, baseline, current = both_sides(argv, doc=__doc__, baseline=BASELINE, tables=TABLES, side=_side)
    print_sides(args, baseline, current, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
