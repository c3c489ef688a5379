"""Benchmark 6: the end-to-end local sync of the demo data set (``aurora-sync demo``).

Runs the demo on the stack of ``--state-dir`` / ``--port-base`` — the shop database (~100k rows)
synced through the real state machine on the local engine: a backfill, an incremental sync while
a transaction is open, and the incremental sync that picks up its late commit — then reads each
execution's history: wall time (first to last event), state transitions (events of type
``*StateEntered``, what Step Functions bills), Lambda task invocations, and rows exported.
The demo recreates its tables, so repeated runs measure the same work.

    .venv/bin/python bench/demo_bench.py [--repeat 1]
"""

from __future__ import annotations

import argparse
from typing import Any

from bench_stack import median, stack_options, table

# The demo's three executions, in order.
SHORT = ("backfill (full sync)", "incremental, a transaction open", "incremental, late commit caught")


def figures(events: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "seconds": (events[-1]["timestamp"] - events[0]["timestamp"]).total_seconds(),
        "transitions": sum(1 for e in events if e["type"].endswith("StateEntered")),
        # Task states use the lambda:invoke integration: TaskScheduled / TaskFailed / TaskTimedOut.
        "lambda_calls": sum(1 for e in events if e["type"] == "TaskScheduled"),
        "retries": sum(1 for e in events if e["type"] in {"TaskFailed", "TaskTimedOut"}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=1)
    stack_options(parser)
    args = parser.parse_args()

    from aurora_sync_ops.demo.run import run_demo
    from aurora_sync_ops.local.stack import settings_from_env

    settings = settings_from_env(args.state_dir, args.port_base)
    per_run: dict[str, list[dict[str, float]]] = {}
    exported: dict[str, int] = {}
    totals, source_rows = [], 0
    for n in range(args.repeat):
        print(f"demo run {n + 1}/{args.repeat} ...", flush=True)
        result = run_demo(lambda _line: None, settings)
        if not result.ok:
            raise SystemExit(
                "the demo failed: " + "; ".join(f"{label}: {r.status}" for label, r, _ in result.runs)
            )
        totals.append(result.seconds)
        source_rows = result.rows
        for position, (demo_label, run, events) in enumerate(result.runs):
            label = SHORT[position] if position < len(SHORT) else demo_label
            per_run.setdefault(label, []).append(figures(events))
            exported[label] = sum(t.rows_exported or 0 for t in run.tables)

    def med(label: str, key: str) -> float:
        return median(f[key] for f in per_run[label])

    print()
    print(
        table(
            f"6. Demo data set ({source_rows:,} source rows, 4 tables) through the local state machine, "
            f"medians of {args.repeat}; whole demo (setup, data, 3 syncs, parity) {median(totals):.0f} s",
            ["execution", "wall s", "state transitions", "Lambda calls", "retried", "rows exported"],
            [
                [
                    label,
                    med(label, "seconds"),
                    int(med(label, "transitions")),
                    int(med(label, "lambda_calls")),
                    int(med(label, "retries")),
                    exported[label],
                ]
                for label in per_run
            ],
        )
    )


if __name__ == "__main__":
    main()
