"""Benchmark 5: cold start, i.e. the import time of each handler module in a fresh interpreter.

Lambda runs a module's imports once per cold container (the INIT phase), so this is the part of
a cold start the code controls. Each run is a fresh ``python`` process with the functions'
environment (no stack needed: handlers connect on the first call, not at import); the figure is
``time.perf_counter`` around the import, medians of ``--repeat`` runs. One extra run with
``-X importtime`` names the top-level packages whose own modules cost the most.

    .venv/bin/python bench/cold_start_bench.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

from bench_stack import REPO, median, table

HANDLERS = ("planner.app", "exporter.app", "verifier.app")
# What template.yaml gives every function that matters at import (Powertools reads it then).
ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "aurora-sync",
    "POWERTOOLS_METRICS_NAMESPACE": "AuroraSnowflakeSyncBench",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}
PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def environment() -> dict[str, str]:
    # The functions tree first, as /var/task is on Lambda.
    return {**os.environ, **ENVIRONMENT, "PYTHONPATH": str(REPO / "functions"), "PYTHONDONTWRITEBYTECODE": ""}


def import_seconds(module: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        env=environment(),
    ).stdout
    return float(out.strip().splitlines()[-1])


def heaviest(module: str, top: int = 5) -> list[tuple[str, float]]:
    """Top-level packages by the import time spent in their own modules (ms, ``-X importtime``'s
    self column summed per package, so nothing is counted twice)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        env=environment(),
    ).stderr
    cost: dict[str, float] = {}
    for line in err.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            package = match.group(4).split(".")[0]
            cost[package] = cost.get(package, 0.0) + int(match.group(1)) / 1000
    return sorted(cost.items(), key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for module in HANDLERS:  # warm the bytecode cache, as a deployed package ships .pyc
        import_seconds(module)
    times: dict[str, list[float]] = {module: [] for module in HANDLERS}
    for _ in range(args.repeat):
        for module in HANDLERS:  # interleaved
            times[module].append(import_seconds(module))
    rows = [
        [module, median(times[module]) * 1000, min(times[module]) * 1000, max(times[module]) * 1000]
        for module in HANDLERS
    ]
    print()
    print(
        table(
            f"5. Cold start: import of each handler module in a fresh process, {args.repeat} runs",
            ["module", "median ms", "min ms", "max ms"],
            rows,
        )
    )
    for module in HANDLERS:
        parts = ", ".join(f"{name} {ms:.0f} ms" for name, ms in heaviest(module))
        print(f"  {module} heaviest imports: {parts}")


if __name__ == "__main__":
    main()
