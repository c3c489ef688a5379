"""Tiny state machines that each cross one Step Functions limit, and what AWS does with them.

The same definitions run on the local engine (``tests/local_stack/test_sfn_limits.py``) and, with
an AWS account, on real Step Functions (``tests/contract/test_sfn_limits.py``), so the emulation is
checked against the vendor. No Lambda: Pass, Choice, Map and Parallel states build the payloads
(``States.StringRepeat``-free JSONPath: a state copies a string the execution input carries), so
the machines need nothing but a role on AWS.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

MAX_PAYLOAD_BYTES = 262_144
MAX_HISTORY_EVENTS = 25_000
INLINE_MAP_MAX_CONCURRENCY = 40
HISTORY_LIMIT_CAUSE = "The execution reached the maximum number of history events (25000)."
# ExecutionFailedEventDetails (Step Functions API reference): cause 0..32,768 characters, error
# 0..256.
MAX_CAUSE_CHARS = 32_768
MAX_ERROR_CHARS = 256
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def blob(size: int) -> str:
    return "x" * size


def input_of_bytes(size: int, char: str = "x") -> dict[str, str]:
    """``{"blob": "xx…"}`` whose compact UTF-8 JSON is ``size`` bytes (with a multi-byte ``char``,
    the most that fit)."""
    overhead = len(json.dumps({"blob": ""}, separators=(",", ":")))
    return {"blob": char * ((size - overhead) // len(char.encode()))}


def doubling_pass() -> dict[str, Any]:
    """A Pass whose output holds its input twice: over the limit when the input is over half."""
    return {
        "StartAt": "Double",
        "States": {
            "Double": {
                "Type": "Pass",
                "Parameters": {"a.$": "$.blob", "b.$": "$.blob"},
                "End": True,
            }
        },
    }


def exact_output_pass() -> dict[str, Any]:
    """A Pass whose output is exactly its input: at the limit it passes, one byte over it fails."""
    return {"StartAt": "Same", "States": {"Same": {"Type": "Pass", "End": True}}}


def aggregating_map(*, catch_all: bool) -> dict[str, Any]:
    """A Map whose iterations each return a small string; together they pass the limit.

    With ``catch_all`` the Map has a ``States.ALL`` Catch, which AWS documents as unable to catch
    ``States.DataLimitExceeded``.
    """
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemSelector": {"piece.$": "$.piece"},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": "Piece",
            "States": {"Piece": {"Type": "Pass", "OutputPath": "$.piece", "End": True}},
        },
        "ResultPath": "$.pieces",
        "End": True,
    }
    if catch_all:
        state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]
        state.pop("End")
        state["Next"] = "Done"
    machine: dict[str, Any] = {"StartAt": "Gather", "States": {"Gather": state}}
    if catch_all:
        machine["States"]["Caught"] = {"Type": "Pass", "Result": "caught", "End": True}
        machine["States"]["Done"] = {"Type": "Succeed"}
    return machine


def map_items(count: int, piece_bytes: int) -> dict[str, Any]:
    # The input stays small: the items are numbers, and the ItemSelector (whose ``$`` is the Map's
    # input) hands every iteration the one piece.
    return {"piece": blob(piece_bytes), "items": list(range(count))}


def task_with_large_parameters() -> dict[str, Any]:
    """A Lambda task whose Parameters double a blob: its input after Parameters passes the limit
    before any call (the function need not exist), under a ``States.ALL`` Catch."""
    return {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {
                    "FunctionName": "aurora-sync-limits-absent",
                    "Payload": {"a.$": "$.blob", "b.$": "$.blob"},
                },
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "Result": "caught", "End": True},
        },
    }


def map_with_large_item_selector() -> dict[str, Any]:
    """An inline Map whose ItemSelector doubles a blob of the Map's input into every iteration's
    input: over the limit, though the Map's own input is not."""
    return {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"a.$": "$.blob", "b.$": "$.blob"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Drop",
                    "States": {"Drop": {"Type": "Pass", "Result": 1, "End": True}},
                },
                "End": True,
            }
        },
    }


def parallel_catch_all() -> dict[str, Any]:
    """A Parallel branch whose output passes the limit, under a ``States.ALL`` Catch."""
    return {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [doubling_pass()],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "Result": "caught", "End": True},
        },
    }


def endless_loop() -> dict[str, Any]:
    """A Pass/Choice loop that never ends by itself (2 states, 4 events a turn), so the
    25,000-event history limit ends it."""
    return {
        "StartAt": "Spin",
        "States": {
            "Spin": {"Type": "Pass", "Next": "Again"},
            "Again": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.stop", "BooleanEquals": True, "Next": "Done"}],
                "Default": "Spin",
            },
            "Done": {"Type": "Succeed"},
        },
    }


def fail_with_paths() -> dict[str, Any]:
    """A Fail state whose ErrorPath and CausePath read the execution input's ``error`` and
    ``cause``: how long may each be?"""
    return {
        "StartAt": "Stop",
        "States": {"Stop": {"Type": "Fail", "ErrorPath": "$.error", "CausePath": "$.cause"}},
    }


def inline_map_of_waits(seconds: int, max_concurrency: int | None = None) -> dict[str, Any]:
    """An inline Map whose iterations each wait: how many overlap?"""
    machine: dict[str, Any] = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Hold",
                    "States": {"Hold": {"Type": "Wait", "Seconds": seconds, "End": True}},
                },
                "End": True,
            }
        },
    }
    if max_concurrency is not None:
        machine["States"]["Fan"]["MaxConcurrency"] = max_concurrency
    return machine


def most_iterations_at_once(events: list[dict[str, Any]]) -> int:
    """The largest number of Map iterations started and not yet ended, in history order."""
    running = peak = 0
    for event in events:
        if event["type"] == "MapIterationStarted":
            running += 1
            peak = max(peak, running)
        elif event["type"] in {"MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted"}:
            running -= 1
    return peak


@dataclass
class Outcome:
    status: str
    error: str | None
    cause: str | None
    events: list[dict[str, Any]]

    def failed_on_data_limit(self, state: str) -> bool:
        """Failed as AWS fails a payload over the limit in ``state``: the execution's error, and
        nothing after the ExecutionFailed event."""
        return (
            self.status == "FAILED"
            and self.error == "States.DataLimitExceeded"
            and f"'{state}'" in (self.cause or "")
            and self.events[-1]["type"] == "ExecutionFailed"
        )


def run_machine(
    sfn: Any,
    role_arn: str,
    name: str,
    definition: dict[str, Any],
    execution_input: dict[str, Any] | str,
    *,
    poll_seconds: float = 0.2,
    max_polls: int = 3000,
) -> Outcome:
    """Create the machine, run it to its end, delete it; its status, error and whole history."""
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role_arn)[
        "stateMachineArn"
    ]
    try:
        text = (
            execution_input
            if isinstance(execution_input, str)
            else json.dumps(execution_input, separators=(",", ":"), ensure_ascii=False)
        )
        execution = sfn.start_execution(stateMachineArn=arn, name=f"{name}-run", input=text)["executionArn"]
        for _ in range(max_polls):
            description = sfn.describe_execution(executionArn=execution)
            if description["status"] in TERMINAL:
                break
            time.sleep(poll_seconds)
        else:
            raise AssertionError(f"{name} still {description['status']} after {max_polls} polls")
        events: list[dict[str, Any]] = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution):
            events.extend(page["events"])
        return Outcome(description["status"], description.get("error"), description.get("cause"), events)
    finally:
        sfn.delete_state_machine(stateMachineArn=arn)
