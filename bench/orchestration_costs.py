"""Step Functions charges per run at 50, 500 and 2,000 tables: today's INLINE Map against the
Distributed Map design of issue 15, both counted from execution histories on the local engine.

The two state machines are the orchestration of a run with Pass states where the Lambdas are
(what Step Functions bills does not depend on what a Lambda does):

* ``inline`` - today's ``statemachine/sync.asl.json``: Plan, AnythingToDo, an INLINE Map whose
  iteration loops ExportChunk → MoreChunks → NextChunk while a table has chunks left, ExportDone,
  then StartVerify and the WaitForLoads → Verify → AllSettled (→ CountAttempt) loop, Report,
  Synced. Every state entered is a billed transition.
* ``distributed`` - Plan writes the run's manifest to S3; ExportRound is a DISTRIBUTED Map
  (ItemReader on the manifest, ItemBatcher of ``--batch`` tables, ResultWriter to S3,
  ToleratedFailurePercentage 100) whose EXPRESS children run an INLINE Map over their batch, each
  table its chunk loop; NextRound (the round Lambda) and MoreRounds close the round; the verify
  loop and Report as today. The parent bills its states plus one transition per child execution
  started; an Express child bills one request and its duration (GB-seconds, memory in 64 MB
  steps), not its states.

Counted from the histories (parent and every child, through ListExecutions(mapRunArn)): states
entered, child executions, events per execution and the largest input/output payload of any
event. Express duration is a model, printed as such: a child waits on its exporter calls one
after another, so it lasts about (chunk calls in its batch) x ``--chunk-seconds``; the local
children run Pass states in milliseconds, which says nothing about AWS. Prices are inputs.

    .venv/bin/python bench/orchestration_costs.py [--tables 50 500 2000] [--batch 50] \
        [--chunks 1] [--verify-attempts 3] [--chunk-seconds 2] [--state-dir D --port-base N] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench_stack import stack_options, stack_status

from aurora_sync_ops.environment import local_aws_client

# Prices (us-east-1 list prices when written): inputs to the arithmetic, not results.
STANDARD_TRANSITION_USD = 0.025 / 1_000
EXPRESS_REQUEST_USD = 1.00 / 1_000_000
EXPRESS_GB_SECOND_USD = 0.00001667
EXPRESS_MEMORY_GB = 64 / 1024  # Express bills memory in 64 MB steps; a small payload uses one
BUCKET = "aurora-sync-orchestration-bench"


def step_functions_charges(
    parent_states: int,
    express_child_seconds: Sequence[float],
    *,
    transition_usd: float = STANDARD_TRANSITION_USD,
) -> tuple[int, float, float]:
    """(billed Standard transitions, Express GB-seconds, USD) of one run: the parent's states
    entered plus one transition per child execution started; each EXPRESS child one request and
    its duration, in 100 ms steps, at the smallest memory step."""
    billed = parent_states + len(express_child_seconds)
    gb_seconds = sum(round(s + 0.0999, 1) for s in express_child_seconds) * EXPRESS_MEMORY_GB
    usd = (
        billed * transition_usd
        + len(express_child_seconds) * EXPRESS_REQUEST_USD
        + gb_seconds * EXPRESS_GB_SECOND_USD
    )
    return billed, gb_seconds, usd


def _chunk_loop(next_after_done: dict[str, Any]) -> dict[str, Any]:
    """A table's chunk loop: ExportChunk counts one chunk down, as an exporter call returning MORE
    until the last chunk would."""
    return {
        "ExportChunk": {
            "Type": "Pass",
            "Parameters": {"table.$": "$.table", "left.$": "States.MathAdd($.left, -1)"},
            "Next": "MoreChunks",
        },
        "MoreChunks": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.left", "NumericGreaterThan": 0, "Next": "NextChunk"}],
            "Default": "ExportDone",
        },
        "NextChunk": {"Type": "Pass", "Next": "ExportChunk"},
        "ExportDone": {"Type": "Pass", **next_after_done},
    }


def _verify_and_report(start: str, attempts: int) -> dict[str, Any]:
    """StartVerify and the Wait/Verify loop until ``attempts`` verifier calls, Report, Synced."""
    return {
        start: {"Type": "Pass", "Parameters": {"attempt": 1}, "Next": "WaitForLoads"},
        "WaitForLoads": {"Type": "Wait", "Seconds": 0, "Next": "Verify"},
        "Verify": {"Type": "Pass", "Next": "AllSettled"},
        "AllSettled": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.attempt", "NumericGreaterThanEquals": attempts, "Next": "Report"}],
            "Default": "CountAttempt",
        },
        "CountAttempt": {
            "Type": "Pass",
            "Parameters": {"attempt.$": "States.MathAdd($.attempt, 1)"},
            "Next": "WaitForLoads",
        },
        # Today's Report is a Choice on the failed count; a run without failures goes to Synced.
        "Report": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.attempt", "NumericLessThan": 0, "Next": "Synced"}],
            "Default": "Synced",
        },
        "Synced": {"Type": "Succeed"},
    }


def _plan(export_state: str) -> dict[str, Any]:
    """Plan and AnythingToDo, as in both designs."""
    return {
        "Plan": {"Type": "Pass", "Next": "AnythingToDo"},
        "AnythingToDo": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.skip", "BooleanEquals": True, "Next": "Skipped"}],
            "Default": export_state,
        },
        "Skipped": {"Type": "Succeed"},
    }


def inline_design(attempts: int) -> dict[str, Any]:
    return {
        "StartAt": "Plan",
        "States": {
            **_plan("ExportTables"),
            "ExportTables": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 40,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "ExportChunk",
                    "States": _chunk_loop({"End": True}),
                },
                "ResultPath": "$.exports",
                "Next": "StartVerify",
            },
            **_verify_and_report("StartVerify", attempts),
        },
    }


def distributed_design(attempts: int, batch: int) -> dict[str, Any]:
    return {
        "StartAt": "Plan",
        "States": {
            **_plan("ExportRound"),
            "ExportRound": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.manifest"},
                },
                "ItemBatcher": {"MaxItemsPerBatch": batch, "BatchInput": {"run_id.$": "$.run_id"}},
                "MaxConcurrency": 4,
                "ToleratedFailurePercentage": 100,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                    "StartAt": "ExportBatch",
                    "States": {
                        "ExportBatch": {
                            "Type": "Map",
                            "ItemsPath": "$.Items",
                            "MaxConcurrency": 1,
                            "ItemProcessor": {
                                "ProcessorConfig": {"Mode": "INLINE"},
                                "StartAt": "ExportChunk",
                                "States": _chunk_loop({"End": True}),
                            },
                            "ResultPath": None,
                            "End": True,
                        }
                    },
                },
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {"Bucket.$": "$.bucket", "Prefix.$": "$.results"},
                },
                "ResultPath": "$.round",
                "Next": "NextRound",
            },
            "NextRound": {
                "Type": "Pass",
                "Result": {"more": False},
                "ResultPath": "$.next",
                "Next": "MoreRounds",
            },
            "MoreRounds": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.next.more", "BooleanEquals": True, "Next": "ExportRound"}],
                "Default": "StartVerify",
            },
            **_verify_and_report("StartVerify", attempts),
        },
    }


@dataclass
class Figures:
    design: str
    tables: int
    status: str
    wall_seconds: float
    parent_states: int
    children: int
    child_states: int
    chunk_calls: int
    max_events: int
    max_payload_bytes: int
    billed_transitions: int
    express_requests: int
    express_gb_seconds: float
    usd: float


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        events.extend(page["events"])
    return events


def _largest_payload(events: Sequence[dict[str, Any]]) -> int:
    largest = 0
    for event in events:
        for key, details in event.items():
            if key.endswith("EventDetails") and isinstance(details, dict):
                for field in ("input", "output"):
                    if isinstance(details.get(field), str):
                        largest = max(largest, len(details[field].encode()))
    return largest


def _entered(events: Sequence[dict[str, Any]]) -> int:
    return sum(1 for e in events if e["type"].endswith("StateEntered"))


def _run(sfn: Any, machine: str, execution_input: dict[str, Any]) -> tuple[str, str, float]:
    started = time.monotonic()
    arn = sfn.start_execution(
        stateMachineArn=machine, name=uuid.uuid4().hex, input=json.dumps(execution_input)
    )["executionArn"]
    while (status := sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
        time.sleep(0.2)
    return arn, status, time.monotonic() - started


def measure(sfn: Any, s3: Any, role: str, *, design: str, tables: int, args: argparse.Namespace) -> Figures:
    items = [{"table": f"t{i:04d}", "left": args.chunks} for i in range(tables)]
    definition = (
        inline_design(args.verify_attempts)
        if design == "inline"
        else distributed_design(args.verify_attempts, args.batch)
    )
    machine = sfn.create_state_machine(
        name=f"bench-{design}-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    run = uuid.uuid4().hex[:12]
    if design == "inline":
        execution_input: dict[str, Any] = {"skip": False, "items": items}
    else:
        manifest = f"_aurora_sync/runs/{run}/round-0/items.json"
        s3.put_object(Bucket=BUCKET, Key=manifest, Body=json.dumps(items).encode())
        execution_input = {
            "skip": False,
            "run_id": run,
            "bucket": BUCKET,
            "manifest": manifest,
            "results": f"_aurora_sync/runs/{run}/round-0/results",
        }
    arn, status, wall = _run(sfn, machine, execution_input)
    parent = _history(sfn, arn)
    children: list[list[dict[str, Any]]] = []
    for map_run in sfn.list_map_runs(executionArn=arn)["mapRuns"]:
        for child in sfn.list_executions(mapRunArn=map_run["mapRunArn"])["executions"]:
            children.append(_history(sfn, child["executionArn"]))
    every = [parent, *children]
    chunk_calls = sum(
        1
        for events in every
        for e in events
        if e["type"] == "PassStateEntered"
        and e.get("stateEnteredEventDetails", {}).get("name") == "ExportChunk"
    )
    # Each child waits on its batch's exporter calls one after another.
    child_seconds = [
        sum(1 for e in events if e.get("stateEnteredEventDetails", {}).get("name") == "ExportChunk")
        * args.chunk_seconds
        for events in children
    ]
    billed, gb_seconds, usd = step_functions_charges(_entered(parent), child_seconds)
    return Figures(
        design=design,
        tables=tables,
        status=status,
        wall_seconds=round(wall, 2),
        parent_states=_entered(parent),
        children=len(children),
        child_states=sum(_entered(events) for events in children),
        chunk_calls=chunk_calls,
        max_events=max(len(events) for events in every),
        max_payload_bytes=max(_largest_payload(events) for events in every),
        billed_transitions=billed,
        express_requests=len(children),
        express_gb_seconds=round(gb_seconds, 2),
        usd=usd,
    )


def render(figures: Sequence[Figures], args: argparse.Namespace) -> str:
    lines = [
        f"batch {args.batch} tables per child, {args.chunks} chunk(s) per table, "
        f"{args.verify_attempts} verify attempts, modelled {args.chunk_seconds} s per exporter call",
        "| tables | design | status | wall s | parent states | children | billed transitions "
        "| Express GB-s (model) | largest payload B | most events | Step Functions USD / run |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.tables:,} | {f.design} | {f.status} | {f.wall_seconds} | {f.parent_states:,} "
            f"| {f.children} | {f.billed_transitions:,} | {f.express_gb_seconds} "
            f"| {f.max_payload_bytes:,} | {f.max_events:,} | {f.usd:.5f} |"
        )
    by_tables: dict[int, dict[str, Figures]] = {}
    for f in figures:
        by_tables.setdefault(f.tables, {})[f.design] = f
    for tables, pair in sorted(by_tables.items()):
        if {"inline", "distributed"} <= set(pair) and pair["distributed"].usd:
            lines.append(
                f"{tables:,} tables: distributed costs 1/{pair['inline'].usd / pair['distributed'].usd:.1f} "
                "of inline per run"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    stack_options(parser)
    parser.add_argument("--tables", type=int, nargs="+", default=[50, 500, 2000])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--chunks", type=int, default=1, help="chunk calls per table")
    parser.add_argument("--verify-attempts", type=int, default=3)
    parser.add_argument(
        "--chunk-seconds", type=float, default=2.0, help="modelled exporter call, for Express duration"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    status = stack_status(args, only=["aws"])
    sfn = local_aws_client("stepfunctions", status["aws"])
    s3 = local_aws_client("s3", status["aws"])
    s3.create_bucket(Bucket=BUCKET)
    role = status["aws"]["lambda_role_arn"]
    figures = [
        measure(sfn, s3, role, design=design, tables=n, args=args)
        for n in args.tables
        for design in ("inline", "distributed")
    ]
    print(json.dumps([asdict(f) for f in figures], indent=2) if args.json else render(figures, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
