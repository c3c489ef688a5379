"""``make bench``: every benchmark of docs/benchmarks.md but 7 (load), one after the other, each
in its own process, on one stack.

    .venv/bin/python bench/run_all.py [NAME ...] [--state-dir DIR] [--port-base N]

NAME is any of: export (1 and 2: 1M-row export vs psycopg2 pull and dlt; exporter RSS at 1k vs
1M rows), incremental (3), planner (4), cold-start (5), demo (6), modes (8: xmin vs cursor, full
and key reconciliation on 1M rows), lanes (11: a backfill in 1, 2 and 4 lanes), orchestration (12:
Step Functions charges per run, today's Map against a Distributed Map, at 50/500/2,000 tables),
apply (13: ``sql snowflake --apply`` for 10, 100 and 500 tables), verifier-statements (14: the
verifier's Snowflake statements per run at 50/500/2,000 tables), scale (15: one run of 2,000
tables and one table of 2,000 chunks under Step Functions' limits), statement-text (16: planner
and verifier statements over 300/1,000/2,000 tables, one bind per table against one JSON array);
none = all. The stack is the
one of ``--state-dir`` /
``--port-base`` (or ``AURORA_SYNC_LOCAL_DIR`` / ``AURORA_SYNC_PORT_BASE``; default the
developer's ``.local``), started when needed and left running. Prints the machine first and every
benchmark's wall time last.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_stack import stack_flags, stack_options

BENCHMARKS = {
    "export": ("export_bench.py", True),  # (script, takes the stack flags)
    "incremental": ("incremental_bench.py", True),
    "planner": ("planner_bench.py", True),
    "cold-start": ("cold_start_bench.py", False),
    "demo": ("demo_bench.py", True),
    "modes": ("modes_bench.py", True),
    "lanes": ("lanes_bench.py", True),
    "orchestration": ("orchestration_costs.py", True),
    "apply": ("apply_bench.py", True),
    "verifier-statements": ("verifier_statements.py", False),
    "scale": ("scale_bench.py", True),
    "statement-text": ("statement_text_bench.py", False),
}


def machine() -> str:
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    postgres = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    pg_version = (
        subprocess.run(
            [postgres[-1], "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if postgres
        else "PostgreSQL not found"
    )
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs ({platform.machine()}), "
        f"{memory_kb / 1024 / 1024:.0f} GiB RAM, Python {platform.python_version()}, {pg_version}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)}; none = all"
    )
    stack_options(parser)
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    print(f"machine: {machine()}", flush=True)
    here = Path(__file__).resolve().parent
    took = {}
    for name in names:
        script, stacked = BENCHMARKS[name]
        print(f"\n=== {name} ({script}) ===", flush=True)
        started = time.monotonic()
        argv = [sys.executable, str(here / script), *(stack_flags(args) if stacked else [])]
        code = subprocess.run(argv, check=False).returncode
        took[name] = time.monotonic() - started
        if code != 0:
            raise SystemExit(f"benchmark {name} failed (exit status {code})")
    print("\nwall time per benchmark: " + ", ".join(f"{n} {s:.0f} s" for n, s in took.items()))
    print(f"total: {sum(took.values()) / 60:.1f} min")


if __name__ == "__main__":
    main()
