"""The run's TimeoutSeconds must outlast every bounded part of a healthy run.

docs/operations.md ("Run timeout") derives RunTimeoutSeconds: the plan's worst case (every
attempt at the planner's Lambda timeout, plus the Retry waits), the verification's worst case
(the verifier's own Load and Merge timeouts, three waits to notice, the last check with all its
attempts), and what is left for exports, counted in full-length exporter invocations per Map
slot. A timeout below plan + verify + one export chunk with its retries would end healthy runs
as TIMED_OUT. Checked for the template's defaults, every ``samconfig.toml`` environment and the
local engine, with the numbers read from the template and the definition themselves.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from samconfig import local_engine_parameters, overrides
from state_machine import definition

from aurora_sync_ops import sam_template

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("RunTimeoutSeconds", "VerifyWaitSeconds", "LoadTimeoutSeconds", "MergeTimeoutSeconds")


def lambda_timeouts() -> dict[str, int]:
    resources = sam_template.load(ROOT / "template.yaml")["Resources"]
    return {
        name: int(resources[f"{name}Function"]["Properties"]["Timeout"])
        for name in ("Planner", "Exporter", "Verifier")
    }


def task_retries(task: str) -> tuple[int, int]:
    """(attempts, seconds of Retry waits at most) of the project's transient errors on ``task``."""
    states = definition()["States"]
    child = states["ExportRound"]["ItemProcessor"]["States"]["ExportBatch"]["ItemProcessor"]["States"]
    state = states[task] if task in states else child[task]
    retry = next(r for r in state["Retry"] if "SourceUnavailable" in r["ErrorEquals"])
    waits = [
        min(retry["IntervalSeconds"] * retry["BackoffRate"] ** n, retry.get("MaxDelaySeconds", 10**9))
        for n in range(retry["MaxAttempts"])
    ]
    return 1 + retry["MaxAttempts"], int(sum(waits))


def worst_cases(values: dict[str, Any]) -> dict[str, int]:
    timeouts = lambda_timeouts()
    plan_attempts, plan_waits = task_retries("Plan")
    verify_attempts, verify_waits = task_retries("Verify")
    chunk_attempts, chunk_waits = task_retries("ExportChunk")
    wait = int(values["VerifyWaitSeconds"])
    return {
        "plan": plan_attempts * timeouts["Planner"] + plan_waits,
        "verify": int(values["LoadTimeoutSeconds"])
        + int(values["MergeTimeoutSeconds"])
        + 3 * wait
        + verify_attempts * timeouts["Verifier"]
        + verify_waits,
        "chunk": chunk_attempts * timeouts["Exporter"] + chunk_waits,
        "chunk_once": timeouts["Exporter"],
    }


def timeout_problem(values: dict[str, Any]) -> str | None:
    worst = worst_cases(values)
    run = int(values["RunTimeoutSeconds"])
    needed = worst["plan"] + worst["verify"] + worst["chunk"]
    if run >= needed:
        return None
    return (
        f"RunTimeoutSeconds {run} s is below plan {worst['plan']} s + verify {worst['verify']} s + one "
        f"export chunk with its retries {worst['chunk']} s = {needed} s"
    )


def defaults() -> dict[str, Any]:
    parameters = sam_template.load(ROOT / "template.yaml")["Parameters"]
    return {name: parameters[name]["Default"] for name in NAMES}


def test_the_definition_takes_its_timeout_from_the_template() -> None:
    text = (ROOT / "statemachine" / "sync.asl.json").read_text()
    assert '"TimeoutSeconds": ${RunTimeoutSeconds},' in text
    machine = sam_template.load(ROOT / "template.yaml")["Resources"]["SyncStateMachine"]
    assert machine["Properties"]["DefinitionSubstitutions"]["RunTimeoutSeconds"] == {
        "Ref": "RunTimeoutSeconds"
    }


def test_the_default_is_derived_as_docs_operations_states() -> None:
    # docs/operations.md, "Run timeout": 675 s + 2,865 s, and 12 full-length chunks per Map slot.
    worst = worst_cases(defaults())
    assert (worst["plan"], worst["verify"]) == (675, 2865)
    left = int(defaults()["RunTimeoutSeconds"]) - worst["plan"] - worst["verify"]
    assert (left, left // worst["chunk_once"]) == (10860, 12)
    assert timeout_problem(defaults()) is None


def test_the_rule_rejects_a_timeout_below_one_chunk() -> None:
    assert timeout_problem({**defaults(), "RunTimeoutSeconds": 3600})
    assert timeout_problem({**defaults(), "RunTimeoutSeconds": 675 + 2865 + 5 * 900 + 75}) is None


@pytest.mark.parametrize("environment", ["default", "dev", "prod"])
def test_every_samconfig_environment_leaves_room_for_a_healthy_run(environment: str) -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    values = {**defaults(), **{k: v for k, v in overrides(config[environment]).items() if k in NAMES}}
    assert timeout_problem(values) is None, f"samconfig.toml [{environment}]: {timeout_problem(values)}"


def test_the_local_engine_leaves_room_for_a_healthy_run() -> None:
    parameters = local_engine_parameters()
    values = {**defaults(), **{k: parameters[k] for k in NAMES if k in parameters}}
    assert timeout_problem(values) is None, f"local engine: {timeout_problem(values)}"
