"""Benchmark 5: cold start, i.e. the import time of each handler module in a fresh interpreter.

Lambda runs a module's imports once per cold container (the INIT phase), so this is the part of
a cold start the code controls. Each run is a fresh ``python`` process with the functions'
environment (no stack needed: handlers connect on the first call, not at import); the figure is
``time.perf_counter`` around the import, medians of ``--repeat`` runs. One extra run with
``-X importtime`` names the top-level packages whose own modules cost the most.

Two environments: tracing off (``POWERTOOLS_TRACE_DISABLED=true``, as before), and tracing on as
Lambda runs the template's functions (``Tracing: Active``: ``LAMBDA_TASK_ROOT`` set, no
``POWERTOOLS_TRACE_DISABLED``), where the handlers build Powertools' ``Tracer`` and so import
aws_xray_sdk. ``--functions DIR`` imports another functions tree (e.g. an older commit's, from
``git archive <commit> functions | tar -x -C /tmp/old``) in the same interleaved runs, so a change
is compared with what it replaced under the same load.

    .venv/bin/python bench/cold_start_bench.py [--repeat 7] [--functions /tmp/old/functions]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from bench_stack import REPO, median, table

HANDLERS = ("planner.app", "exporter.app", "verifier.app")
# What template.yaml gives every function that matters at import (Powertools reads it then).
ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "aurora-sync",
    "POWERTOOLS_METRICS_NAMESPACE": "AuroraSnowflakeSyncBench",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}
TRACING = {
    "tracing off": {"POWERTOOLS_TRACE_DISABLED": "true"},
    "tracing on": {"LAMBDA_TASK_ROOT": "/var/task"},  # Lambda's, with Tracing: Active
}
# The import, then what every handler's first call does first: with tracing on, patch the traced
# libraries (the tracer does it on the first call, not at import), then boto3 and a client (SSM
# for the table configs, STS for the Vault login). The botocore import happens in one of these
# places or the other, so the second figure compares trees and modes on the same work. (A tree
# whose tracer has no patch_libraries patched at import.)
PROBE = (
    "import time; t = time.perf_counter(); import {module}; i = time.perf_counter() - t; "
    "from aurora_sync.observability import tracer; getattr(tracer, 'patch_libraries', lambda: None)(); "
    "import boto3; boto3.session.Session().client('ssm', region_name='us-east-1'); "
    "print(i, time.perf_counter() - t)"
)
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def environment(functions: Path, tracing: str) -> dict[str, str]:
    inherited = {
        k: v for k, v in os.environ.items() if k not in ("POWERTOOLS_TRACE_DISABLED", "LAMBDA_TASK_ROOT")
    }
    # The functions tree first, as /var/task is on Lambda.
    return {
        **inherited,
        **ENVIRONMENT,
        **TRACING[tracing],
        "PYTHONPATH": str(functions),
        "PYTHONDONTWRITEBYTECODE": "",
    }


def import_seconds(module: str, functions: Path, tracing: str) -> tuple[float, float]:
    """(the module's import, the import and the first call's boto3 client), in seconds."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        env=environment(functions, tracing),
    ).stdout
    imported, with_client = out.strip().splitlines()[-1].split()
    return float(imported), float(with_client)


def heaviest(module: str, functions: Path, tracing: str, top: int = 5) -> list[tuple[str, float]]:
    """Top-level packages by the import time spent in their own modules (ms, ``-X importtime``'s
    self column summed per package, so nothing is counted twice)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        env=environment(functions, tracing),
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
    parser.add_argument(
        "--functions", type=Path, help="another functions tree to measure alongside this checkout's"
    )
    args = parser.parse_args()
    trees = {"this tree": REPO / "functions"}
    if args.functions:
        trees[f"{args.functions}"] = args.functions.resolve()
    cases = [(tree, tracing, module) for tree in trees for tracing in TRACING for module in HANDLERS]
    for tree, tracing, module in cases:  # warm the bytecode cache, as a deployed package ships .pyc
        import_seconds(module, trees[tree], tracing)
    times: dict[tuple[str, str, str], list[tuple[float, float]]] = {case: [] for case in cases}
    for _ in range(args.repeat):
        for tree, tracing, module in cases:  # interleaved
            times[(tree, tracing, module)].append(import_seconds(module, trees[tree], tracing))
    rows = []
    for (tree, tracing, module), runs in times.items():
        imports = [imported for imported, _ in runs]
        rows.append(
            [
                tree,
                tracing,
                module,
                median(imports) * 1000,
                min(imports) * 1000,
                max(imports) * 1000,
                median([with_client for _, with_client in runs]) * 1000,
            ]
        )
    print()
    print(
        table(
            f"5. Cold start: import of each handler module in a fresh process, {args.repeat} runs",
            [
                "functions",
                "tracing",
                "module",
                "median ms",
                "min ms",
                "max ms",
                "+ first call's patching and boto3 client, median ms",
            ],
            rows,
        )
    )
    for tree, tracing, module in cases:
        parts = ", ".join(f"{name} {ms:.0f} ms" for name, ms in heaviest(module, trees[tree], tracing))
        print(f"  {tree}, {tracing}: {module} heaviest imports: {parts}")


if __name__ == "__main__":
    main()
