"""Benchmark 15: issue 15's scale proof at full size, one run of 2,000 tables and one table of
2,000 chunks, and what made the local stack fast enough to run it.

Part 1, the Snowflake emulator's control plane at N tables (no stack needed), each figure beside
its baseline in the same run: creating five objects a table (the emulator's registry, one small
file an object, against the one document of every object it rewrote on each change before), and
deciding whether a statement names a stream (one set of the statement's words, against a regular
expression per stream, recompiled once there are more streams than ``re`` caches).

Part 2, the real state machine on the local stack with Step Functions' limits enforced, the world
of tests/workflow/test_state_limits.py (``scale_world``): for each of ``--tables`` a run of that
many tiny tables with long names, and for each of ``--chunks`` a run of one table of that many
1,000-row chunks. Printed: the setup's wall time (tables, configs, Snowflake objects), the run's
wall time, its status, the child executions and export rounds, the most events of any execution
and the parent's, and the largest payload of any execution with the state that carried it. A run
that fails prints Step Functions' error and cause (``States.DataLimitExceeded`` names the state)
and the bytes of that state's last recorded input, instead of stopping the benchmark. A run
that succeeds prints the verifier's verdicts of every table and then compares every table's
FINAL with its source, row by row (``parity``). The execution's ``RunTimeoutSeconds`` is the
run's ``--timeout`` over the engine's clock scale unless a ``--parameter`` sets it.

    .venv/bin/python bench/scale_bench.py [--tables 2000] [--chunks 2000] [--objects 2000]
        [--parameter NAME=VALUE ...] [--state-dir DIR] [--port-base N]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench_stack import REPO, stack_options, stack_status, table

from aurora_sync_ops.local.component import write_json_atomic
from aurora_sync_ops.local.snowflake.catalog import Registry
from aurora_sync_ops.local.snowflake.router import mentions_any

# The world of tests/workflow/test_state_limits.py is built by the tests' own support modules.
sys.path.insert(0, str(REPO / "tests" / "support"))

OBJECT_KINDS = ("pipes", "streams", "tasks", "stages", "file_formats")  # what one table creates
STATEMENTS = 100  # statements matched against the stream names


def registry_seconds(tables: int) -> tuple[float, float]:
    """Seconds to record five objects a table: (one file an object, one document rewritten)."""
    record = {"name": "X" * 60, "definition": "COPY INTO t FROM @s " + "x" * 300, "id": "0" * 16}
    with tempfile.TemporaryDirectory() as directory:
        registry = Registry(Path(directory) / "control_plane.json")
        started = time.perf_counter()
        for i in range(tables):
            for kind in OBJECT_KINDS:
                registry.put(kind, f"DB.S.T{i:05d}", record)
        per_object = time.perf_counter() - started

        document: dict[str, dict[str, Any]] = {kind: {} for kind in OBJECT_KINDS}
        path = Path(directory) / "one_document.json"
        started = time.perf_counter()
        for i in range(tables):
            for kind in OBJECT_KINDS:
                document[kind][f"DB.S.T{i:05d}"] = record
                write_json_atomic(path, document)
        return per_object, time.perf_counter() - started


def stream_match_seconds(streams: int) -> tuple[float, float]:
    """Seconds to match STATEMENTS statements against ``streams`` names: (words, regex each)."""
    names = [f"T{i:05d}_STREAM" for i in range(streams)]
    statements = [f"INSERT INTO db.s.t{i:05d} SELECT * FROM db.s.t{i:05d}_stage" for i in range(STATEMENTS)]
    started = time.perf_counter()
    found = sum(mentions_any(text, names) for text in statements)
    words = time.perf_counter() - started
    started = time.perf_counter()
    again = sum(any(re.search(rf"\b{re.escape(n)}\b", text, re.I) for n in names) for text in statements)
    regexes = time.perf_counter() - started
    assert found == again == 0
    return words, regexes


def control_plane(sizes: list[int]) -> None:
    rows = []
    for n in sizes:
        per_object, document = registry_seconds(n)
        words, regexes = stream_match_seconds(n)
        rows.append(
            [
                f"{n:,} tables",
                per_object,
                document,
                f"{document / per_object:.0f}x",
                words,
                regexes,
                f"{regexes / words:.0f}x",
            ]
        )
    print(
        table(
            f"Snowflake emulator control plane (5 objects a table; {STATEMENTS:,} statements matched)",
            [
                "size",
                "registry s (file/object)",
                "baseline s (1 document)",
                "speed-up",
                "stream match s (words)",
                "baseline s (regex/stream)",
                "speed-up",
            ],
            rows,
        ),
        flush=True,
    )


def scale_run(
    status: dict[str, Any], tables: int, chunks: int, timeout_s: float, parameters: dict[str, Any]
) -> list[Any]:
    from scale_world import CLOCK_SCALE, open_scale_world, run_scale_world

    # The execution's TimeoutSeconds runs on the engine's scaled clock: the template's 4 h gives
    # about an hour of real time at 0.2, which ended a 2,000-table run mid-verify. Unless asked
    # otherwise, give the execution the bench's own real-time budget (--timeout).
    parameters = {"RunTimeoutSeconds": int(timeout_s / CLOCK_SCALE) + 1, **parameters}
    label = f"{tables:,} tables" if tables else f"1 table of {chunks:,} chunks"
    started = time.monotonic()
    with open_scale_world(status, tables, chunks, prefix="scale", parameters=parameters) as world:
        setup = time.monotonic() - started
        print(f"{label}: set up in {setup:.0f} s, running", flush=True)
        run = run_scale_world(world, timeout_s=timeout_s)
        print(f"{label}: {run.summary()}", flush=True)
        merged, parity = "-", "-"
        if run.failure:
            print(f"{label}: {run.failure}", flush=True)
        else:
            # A run that succeeded is only half the proof: every table's verdict, and every
            # table's FINAL against its source, row by row.
            outcomes = Counter(t["outcome"] for t in world.verify_output(run.events)["tables"])
            merged = ", ".join(f"{n:,} {outcome}" for outcome, n in sorted(outcomes.items()))
            compared = time.monotonic()
            names = sorted(world.configs)
            unequal = [name for name in names if not world.parity(name).equal]
            parity = f"{len(names) - len(unequal):,}/{len(names):,} equal"
            print(
                f"{label}: verdicts {merged}; parity {parity} ({time.monotonic() - compared:.0f} s)"
                + (f"; unequal: {', '.join(unequal[:10])}" if unequal else ""),
                flush=True,
            )
    largest = run.scan.largest_anywhere
    return [
        label,
        setup,
        run.seconds,
        str(run.description["status"]),
        len(run.children),
        run.rounds,
        run.scan.most_events,
        run.scan.events,
        f"{largest.size:,} ({largest.state})" if largest else "-",
        merged,
        parity,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", default="2000", help="comma-separated table counts (0: none)")
    parser.add_argument("--chunks", default="2000", help="comma-separated chunk counts (0: none)")
    parser.add_argument("--objects", default="200,1000", help="part 1's table counts (0: skip part 1)")
    parser.add_argument(
        "--timeout", type=float, default=5400, help="real seconds a run may take (also its RunTimeoutSeconds)"
    )
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter for the runs, e.g. MergeTimeoutSeconds=900 (the emulator runs the "
        "MERGE tasks one at a time, Snowflake side by side); repeatable",
    )
    stack_options(parser)
    args = parser.parse_args()
    objects = [int(n) for n in args.objects.split(",") if int(n)]
    runs = [(int(n), 0) for n in args.tables.split(",") if int(n)]
    runs += [(0, int(n)) for n in args.chunks.split(",") if int(n)]
    if objects:
        control_plane(objects)
    if not runs:
        return
    status = stack_status(args)
    parameters = dict(p.split("=", 1) for p in args.parameter)
    rows = [scale_run(status, tables, chunks, args.timeout, parameters) for tables, chunks in runs]
    print(
        table(
            "\nOne run of the real state machine, Step Functions' limits enforced (256 KiB, 25,000 events)",
            [
                "world",
                "setup s",
                "run s",
                "status",
                "children",
                "rounds",
                "most events",
                "parent events",
                "largest payload B (state)",
                "verdicts",
                "parity",
            ],
            rows,
        )
    )
    print(json.dumps({"runs": rows}, default=str))


if __name__ == "__main__":
    main()
