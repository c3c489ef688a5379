"""What one sync run costs, measured on the local stack: state transitions and Lambda durations.

Runs two executions of the real state machine on a running local stack that holds table configs
(``aurora-sync demo`` leaves one with its shop tables):

* backfill     - a full resync of every enabled table (``aurora-sync sync --tables ... --full``);
* incremental  - what the schedule sends (``{}``): each table's window behind its watermark.

For each it counts the states entered in the parent execution's history (what Step Functions
bills as state transitions; retries would add more) plus one per export child started, and the
EXPRESS children of the export Distributed Map (billed per request and GB-second of their
measured duration, not per state), and reads every function invocation from the
``REPORT`` lines the local Lambda router writes to ``<state dir>/logs/aws.log`` (the duration
includes a cold worker's init, as Lambda bills it), with the cold-start flag taken from the
functions' own log lines. GB-seconds use ``MemorySize`` from template.yaml. Prices are inputs
(flags with the us-east-1 list prices as defaults) and are printed as prices, not measurements.

    .venv/bin/python bench/run_costs.py --state-dir .local/h14 --port-base 26400 [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestration_costs import step_functions_charges

from aurora_sync.config import LoadedTable, load_table_configs
from aurora_sync_ops import sam_template
from aurora_sync_ops.environment import CliOptions, Environment, local_aws_client
from aurora_sync_ops.local.stack import Stack, settings_from_env
from aurora_sync_ops.workflow.execution_input import build_input, execution_name
from aurora_sync_ops.workflow.executions import follow, start
from aurora_sync_ops.workflow.target import Target, local_target

# Prices (us-east-1 list prices when written; pass your own): inputs to the arithmetic, not results.
LAMBDA_ARM_GB_SECOND_USD = 0.0000133334
LAMBDA_REQUEST_USD = 0.20 / 1_000_000
STATE_TRANSITION_USD = 0.025 / 1_000
SNOWPIPE_CREDITS_PER_GB = 0.0037  # text files are billed on their uncompressed size

_REPORT = re.compile(
    r"^REPORT RequestId: (?P<id>\S+) Function: (?P<function>\S+) Handler: (?P<handler>\S+) "
    r"Duration: (?P<ms>[\d.]+) ms Outcome: (?P<outcome>\S+)"
)
FUNCTIONS = ("planner", "exporter", "rounds", "verifier")


@dataclass
class Invocation:
    function: str  # planner | exporter | rounds | verifier
    duration_ms: float
    outcome: str
    cold: bool


@dataclass
class FunctionFigures:
    memory_mb: int
    calls: int = 0
    cold: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0

    @property
    def gb_seconds(self) -> float:
        return self.total_ms / 1000 * self.memory_mb / 1024


@dataclass
class RunFigures:
    scenario: str
    execution_arn: str
    status: str
    wall_seconds: float
    tables: int
    rows_exported: int
    bytes_exported: int
    files: int
    parent_states: int
    states: dict[str, int]
    children: int
    child_seconds: list[float]
    export_rounds: int
    export_calls: int
    verify_attempts: int
    functions: dict[str, FunctionFigures] = field(default_factory=dict)

    @property
    def gb_seconds(self) -> float:
        return sum(f.gb_seconds for f in self.functions.values())

    @property
    def invocations(self) -> int:
        return sum(f.calls for f in self.functions.values())


def template_memory() -> dict[str, int]:
    """MemorySize per function (planner/exporter/rounds/verifier) as template.yaml deploys it."""
    template = sam_template.load()
    memory: dict[str, int] = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        handler = str(resource["Properties"]["Handler"])
        memory[handler.split(".", 1)[0]] = int(resource["Properties"]["MemorySize"])
    missing = [name for name in FUNCTIONS if name not in memory]
    if missing:
        raise SystemExit(
            f"template.yaml has no MemorySize for {', '.join(missing)}; this script expects {len(FUNCTIONS)}"
        )
    return memory


def invocations(log_text: str) -> list[Invocation]:
    """Every REPORT line of the log excerpt, with the cold-start flag Powertools logged for it."""
    cold: dict[str, bool] = {}
    reports: list[tuple[str, str, float, str]] = []
    for line in log_text.splitlines():
        match = _REPORT.match(line)
        if match:
            handler = match["handler"].split(".", 1)[0]
            reports.append((match["id"], handler, float(match["ms"]), match["outcome"]))
        elif line.startswith("{") and '"function_request_id"' in line:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a log line cut by a concurrent writer tells nothing reliable
            if isinstance(record, dict) and "cold_start" in record:
                cold[str(record["function_request_id"])] = bool(record["cold_start"])
    return [Invocation(fn, ms, outcome, cold.get(rid, False)) for rid, fn, ms, outcome in reports]


def exported_tables(histories: Sequence[Sequence[Mapping[str, Any]]]) -> list[Any]:
    """The output of every ExportDone state, in the parent or an export child: one ExportResult
    per table (or lane) the export settled or left MORE for the next round."""
    outputs = []
    for events in histories:
        for event in events:
            details = event.get("stateExitedEventDetails") or {}
            if details.get("name") == "ExportDone":
                outputs.append(json.loads(details.get("output") or "null"))
    return outputs


def export_children(
    sfn: Any, events: Sequence[Mapping[str, Any]]
) -> list[tuple[float, list[dict[str, Any]]]]:
    """(seconds, history) of every child execution the run's Distributed Map Runs started."""
    children = []
    for event in events:
        details = event.get("mapRunStartedEventDetails")
        if not details:
            continue
        for page in sfn.get_paginator("list_executions").paginate(mapRunArn=details["mapRunArn"]):
            for child in page["executions"]:
                described = sfn.describe_execution(executionArn=child["executionArn"])
                seconds = (described["stopDate"] - described["startDate"]).total_seconds()
                history: list[dict[str, Any]] = []
                for history_page in sfn.get_paginator("get_execution_history").paginate(
                    executionArn=child["executionArn"]
                ):
                    history.extend(history_page["events"])
                children.append((seconds, history))
    return children


def measure(
    scenario: str,
    target: Target,
    execution_input: Mapping[str, Any],
    log_path: Path,
    memory: Mapping[str, int],
) -> RunFigures:
    offset = log_path.stat().st_size
    arn = start(target, execution_input, execution_name(f"cost-{scenario}"))
    description, events = follow(target, arn, timeout_s=900)
    with log_path.open("rb") as log:
        log.seek(offset)
        excerpt = log.read().decode("utf-8", errors="replace")

    children = export_children(target.sfn, events)

    def entered(histories: Sequence[Sequence[Mapping[str, Any]]]) -> Counter[str]:
        return Counter(
            str(event["stateEnteredEventDetails"]["name"])
            for history in histories
            for event in history
            if str(event.get("type", "")).endswith("StateEntered")
        )

    parent = entered([events])
    everywhere = entered([events, *(history for _, history in children)])
    # A table left MORE at a child's deadline ends in ExportDone too and is counted again in
    # the round that finishes it: count settled tables only.
    settled = [
        e
        for e in exported_tables([history for _, history in children] or [events])
        if isinstance(e, dict) and e.get("status") != "MORE"
    ]
    figures = RunFigures(
        scenario=scenario,
        execution_arn=arn,
        status=str(description["status"]),
        wall_seconds=(description["stopDate"] - description["startDate"]).total_seconds(),
        tables=len(settled)
        + everywhere.get("ExportFailed", 0)
        + everywhere.get("ExportFailedCustomTarget", 0),
        rows_exported=sum(int(e.get("rows", 0)) for e in settled),
        bytes_exported=sum(int(e.get("bytes", 0)) for e in settled),
        files=sum(int(e.get("files", 0)) for e in settled),
        parent_states=sum(parent.values()),
        states=dict(sorted(parent.items())),
        children=len(children),
        child_seconds=[seconds for seconds, _ in children],
        export_rounds=parent.get("ExportRound", 0),
        export_calls=everywhere.get("ExportChunk", 0),
        verify_attempts=parent.get("Verify", 0),
        functions={name: FunctionFigures(memory_mb=memory[name]) for name in FUNCTIONS},
    )
    for call in invocations(excerpt):
        if call.function not in figures.functions:
            continue
        fn = figures.functions[call.function]
        fn.calls += 1
        fn.cold += int(call.cold)
        fn.total_ms += call.duration_ms
        fn.max_ms = max(fn.max_ms, call.duration_ms)
    return figures


def prices(args: argparse.Namespace, run: RunFigures) -> dict[str, float]:
    gb = run.bytes_exported / 1e9
    return {
        "lambda_compute_usd": run.gb_seconds * args.gb_second_usd,
        "lambda_requests_usd": run.invocations * args.request_usd,
        "step_functions_usd": step_functions_charges(
            run.parent_states, run.child_seconds, transition_usd=args.transition_usd
        )[2],
        "snowpipe_credits": gb * args.snowpipe_credits_per_gb,
    }


def render(runs: Sequence[RunFigures], args: argparse.Namespace) -> str:
    rows: list[tuple[str, ...]] = [("", *(r.scenario for r in runs))]

    def add(label: str, values: Sequence[str]) -> None:
        rows.append((label, *values))

    add("execution status", [r.status for r in runs])
    add("wall time (local engine) s", [f"{r.wall_seconds:.1f}" for r in runs])
    add("tables", [str(r.tables) for r in runs])
    add("rows exported", [f"{r.rows_exported:,}" for r in runs])
    add("CSV bytes exported", [f"{r.bytes_exported:,}" for r in runs])
    add("files", [str(r.files) for r in runs])
    add("exporter calls (chunks)", [str(r.export_calls) for r in runs])
    add("verify attempts", [str(r.verify_attempts) for r in runs])
    add("export rounds / child executions", [f"{r.export_rounds} / {r.children}" for r in runs])
    charges = [
        step_functions_charges(r.parent_states, r.child_seconds, transition_usd=args.transition_usd)
        for r in runs
    ]
    add("parent states entered", [str(r.parent_states) for r in runs])
    add("billed transitions (parent + children started)", [str(c[0]) for c in charges])
    add(
        "Express child seconds (measured) / GB-s",
        [f"{sum(r.child_seconds):.1f} / {c[1]:.3f}" for r, c in zip(runs, charges, strict=True)],
    )
    for name in FUNCTIONS:
        add(
            f"{name} ({runs[0].functions[name].memory_mb} MB) calls/cold",
            [f"{r.functions[name].calls}/{r.functions[name].cold}" for r in runs],
        )
        add(
            f"{name} total / max ms",
            [f"{r.functions[name].total_ms:,.0f} / {r.functions[name].max_ms:,.0f}" for r in runs],
        )
    add("Lambda GB-seconds", [f"{r.gb_seconds:.3f}" for r in runs])
    costs = [prices(args, r) for r in runs]
    add("price: Lambda compute USD", [f"{c['lambda_compute_usd']:.6f}" for c in costs])
    add("price: Lambda requests USD", [f"{c['lambda_requests_usd']:.6f}" for c in costs])
    add("price: Step Functions USD", [f"{c['step_functions_usd']:.6f}" for c in costs])
    add("price: Snowpipe credits", [f"{c['snowpipe_credits']:.6f}" for c in costs])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    lines.append(
        f"prices used: Lambda arm64 {args.gb_second_usd} USD/GB-s, {args.request_usd * 1e6:.2f} USD per 1M "
        f"requests; {args.transition_usd * 1000:.3f} USD per 1,000 transitions; Express children as "
        "orchestration_costs.py prices them; Snowpipe "
        f"{args.snowpipe_credits_per_gb} credits/GB (uncompressed CSV)"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--state-dir", help="the local stack's state dir (env AURORA_SYNC_LOCAL_DIR)")
    parser.add_argument(
        "--port-base", type=int, help="the local stack's first port (env AURORA_SYNC_PORT_BASE)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--gb-second-usd", type=float, default=LAMBDA_ARM_GB_SECOND_USD)
    parser.add_argument("--request-usd", type=float, default=LAMBDA_REQUEST_USD)
    parser.add_argument("--transition-usd", type=float, default=STATE_TRANSITION_USD)
    parser.add_argument("--snowpipe-credits-per-gb", type=float, default=SNOWPIPE_CREDITS_PER_GB)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    status = Stack(settings_from_env(root=args.state_dir, port_base=args.port_base)).status()
    if not status.get("running"):
        print(
            f"the local stack under {status.get('state_dir')} is not running; start it with data: "
            "aurora-sync demo (with the same --state-dir/--port-base or AURORA_SYNC_* variables)",
            file=sys.stderr,
        )
        return 2
    aws = status["aws"]
    configs = load_table_configs(
        str(aws["config_ssm_path"]), ssm_client=local_aws_client("ssm", aws), max_age=0
    )
    tables = [c.name for c in configs if isinstance(c, LoadedTable) and c.config.enabled]
    if not tables:
        print(
            f"no enabled table configs under {aws['config_ssm_path']}; run aurora-sync demo first",
            file=sys.stderr,
        )
        return 2
    options = CliOptions(local=True, state_dir=args.state_dir, port_base=args.port_base)
    target = local_target(Environment(options, environ={}), tables)
    log_path = Path(str(status["state_dir"])) / "logs" / "aws.log"
    memory = template_memory()
    runs = [
        measure("backfill", target, build_input(tables, None, True), log_path, memory),
        measure("incremental", target, {}, log_path, memory),
    ]
    if args.json:
        document = {
            "runs": [
                {
                    **asdict(run),
                    "gb_seconds": run.gb_seconds,
                    "invocations": run.invocations,
                    "prices": prices(args, run),
                }
                for run in runs
            ],
            "prices_used": {
                "lambda_arm_gb_second_usd": args.gb_second_usd,
                "lambda_request_usd": args.request_usd,
                "state_transition_usd": args.transition_usd,
                "snowpipe_credits_per_gb": args.snowpipe_credits_per_gb,
            },
        }
        print(json.dumps(document, indent=2, default=str))
    else:
        print(render(runs, args))
    return 0 if all(run.status == "SUCCEEDED" for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
