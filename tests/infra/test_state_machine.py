"""The state machine definition: the error taxonomy in its Retry clauses, and the practices of
shared/notes/step-functions.md, checked on the file SAM deploys."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aurora_sync.errors import TERMINAL_ERROR_NAMES, TRANSIENT_ERROR_NAMES

DEFINITION = Path(__file__).resolve().parents[2] / "statemachine" / "sync.asl.json"
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
}


def definition() -> dict[str, Any]:
    # Numeric DefinitionSubstitutions are unquoted in the file (SAM substitutes text).
    text = re.sub(r"\$\{(MaxConcurrency|VerifyWaitSeconds|VerifyMaxAttempts)\}", "1", DEFINITION.read_text())
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def states(machine: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in machine["States"].items():
        yield name, state
        if state["Type"] == "Map":
            yield from states(state["ItemProcessor"])


def test_every_task_invokes_lambda_through_the_integration_with_both_retry_families() -> None:
    tasks = [(name, s) for name, s in states(definition()) if s["Type"] == "Task"]
    assert {name for name, _ in tasks} == {"Plan", "ExportChunk", "Verify"}
    for name, task in tasks:
        assert task["Resource"] == "arn:aws:states:::lambda:invoke", name
        retried = [set(r["ErrorEquals"]) for r in task["Retry"]]
        assert LAMBDA_SERVICE_ERRORS in retried, name
        # The project's transient errors, by class name, exactly: a new transient class must be added here.
        assert set(TRANSIENT_ERROR_NAMES) in retried, name
        for retry in task["Retry"]:
            assert retry["JitterStrategy"] == "FULL" and retry["BackoffRate"] >= 1, name
            assert not set(retry["ErrorEquals"]) & set(TERMINAL_ERROR_NAMES), (
                f"{name} retries a terminal error"
            )
        catches = task["Catch"]
        assert catches[-1]["ErrorEquals"] == ["States.ALL"], name


def test_choices_have_defaults_and_every_state_is_reachable() -> None:
    machine = definition()
    for name, state in states(machine):
        if state["Type"] == "Choice":
            assert "Default" in state, name

    def reachable(machine: dict[str, Any]) -> set[str]:
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            state = machine["States"][name]
            targets = [state.get("Next"), state.get("Default")]
            targets += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
            todo += [t for t in targets if t]
        return seen

    assert reachable(machine) == set(machine["States"])
    export = machine["States"]["ExportTables"]["ItemProcessor"]
    assert reachable(export) == set(export["States"])


def test_map_is_bounded_and_loops_chunks_until_drained() -> None:
    export = definition()["States"]["ExportTables"]
    assert export["MaxConcurrency"] == 1  # substituted from the MaxConcurrency template parameter
    assert export["ItemSelector"] == {"item.$": "$$.Map.Item.Value"}
    inner = export["ItemProcessor"]["States"]
    assert inner["MoreChunks"]["Choices"][0] == {
        "Variable": "$.export.result.status",
        "StringEquals": "MORE",
        "Next": "NextChunk",
    }
    assert inner["NextChunk"]["Next"] == "ExportChunk"


def test_failure_cause_carries_the_rerun_input_and_no_payload_holds_secrets() -> None:
    machine = definition()
    assert machine["States"]["TablesFailed"]["CausePath"] == "$.verification.output.summary.cause"
    text = DEFINITION.read_text().lower()
    for word in ("password", "private_key", "session_token", "client_token", "secret_access_key"):
        assert word not in text
