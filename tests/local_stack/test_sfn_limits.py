"""The local engine fails where Step Functions fails: payload size, terminal errors, history
length, inline Map concurrency (``aurora_sync_ops.local.sfn_limits``).

Each test runs one of the tiny machines in ``tests/support/sfn_limit_machines.py`` on the local
stack's moto and asserts what AWS documents for it; ``tests/contract/test_sfn_limits.py`` runs the
same machines on real Step Functions. The facts (Step Functions developer guide):

* 262,144 bytes (UTF-8) for a state's input, output or result and for the execution input;
* ``States.DataLimitExceeded`` is terminal: a ``States.ALL`` Catch does not catch it;
* 25,000 history events: event 25,000 is ``ExecutionFailed`` (``States.Runtime``) unless the
  execution succeeds with it;
* an inline Map runs at most 40 iterations at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sfn_limit_machines as machines
from botocore.exceptions import ClientError
from world import set_clock


@pytest.fixture(scope="module")
def sfn(stack: dict[str, Any]) -> Any:
    aws = stack["aws"]
    return boto3.client(
        "stepfunctions",
        endpoint_url=aws["endpoint_url"],
        aws_access_key_id=aws["access_key_id"],
        aws_secret_access_key=aws["secret_access_key"],
        region_name=aws["region"],
    )


@pytest.fixture(scope="module")
def role(stack: dict[str, Any]) -> str:
    return f"arn:aws:iam::{stack['aws']['account_id']}:role/aurora-sync-limits-test"


@pytest.fixture
def clock(stack: dict[str, Any]) -> Iterator[None]:
    set_clock(stack, 0.05)
    yield
    set_clock(stack, 1)


def run(sfn: Any, role: str, definition: dict[str, Any], execution_input: Any, **kw: Any) -> machines.Outcome:
    return machines.run_machine(
        sfn, role, f"limits-{uuid.uuid4().hex[:8]}", definition, execution_input, **kw
    )


def assert_data_limit_exceeded(outcome: machines.Outcome, state: str) -> None:
    assert outcome.failed_on_data_limit(state), (outcome.status, outcome.error, outcome.cause)


def test_a_pass_output_over_256_kib_fails_the_execution(sfn: Any, role: str) -> None:
    outcome = run(sfn, role, machines.doubling_pass(), {"blob": machines.blob(140_000)})
    assert_data_limit_exceeded(outcome, "Double")


def test_the_limit_is_inclusive_and_counts_compact_utf8_json(sfn: Any, role: str) -> None:
    # {"blob":"xxx..."} of exactly 262,144 bytes passes through a Pass; one byte more is refused
    # at StartExecution already. moto alone refused the exact size (its test was `<`).
    at_limit = machines.input_of_bytes(machines.MAX_PAYLOAD_BYTES)
    assert run(sfn, role, machines.exact_output_pass(), at_limit).status == "SUCCEEDED"
    # Non-ASCII counts its UTF-8 bytes (2 for "é"), not its \\u escape (6).
    accented = machines.input_of_bytes(machines.MAX_PAYLOAD_BYTES, "é")
    assert run(sfn, role, machines.exact_output_pass(), accented).status == "SUCCEEDED"


def test_a_state_input_over_256_kib_after_parameters_or_item_selector_fails(sfn: Any, role: str) -> None:
    # moto sent any size to the Lambda and to the iterations; AWS fails the state first.
    blob = {"blob": machines.blob(140_000), "items": [1, 2]}
    task = run(sfn, role, machines.task_with_large_parameters(), blob)
    assert_data_limit_exceeded(task, "Call")
    assert not any(e["type"].startswith("LambdaFunction") for e in task.events)
    assert_data_limit_exceeded(run(sfn, role, machines.map_with_large_item_selector(), blob), "Fan")


def test_an_execution_input_over_256_kib_is_refused_by_start_execution(sfn: Any, role: str) -> None:
    with pytest.raises(ClientError) as refused:
        run(sfn, role, machines.exact_output_pass(), machines.input_of_bytes(machines.MAX_PAYLOAD_BYTES + 1))
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "262144" in refused.value.response["Error"]["Message"]


def test_a_map_aggregating_small_outputs_past_256_kib_fails(sfn: Any, role: str) -> None:
    # 300 iterations of 1,000 bytes each: every one is small, their array is not.
    outcome = run(sfn, role, machines.aggregating_map(catch_all=False), machines.map_items(300, 1_000))
    assert_data_limit_exceeded(outcome, "Gather")
    assert sum(e["type"] == "MapIterationSucceeded" for e in outcome.events) == 300


def test_a_catch_on_states_all_does_not_catch_data_limit_exceeded(sfn: Any, role: str) -> None:
    mapped = run(sfn, role, machines.aggregating_map(catch_all=True), machines.map_items(300, 1_000))
    assert_data_limit_exceeded(mapped, "Gather")
    branched = run(sfn, role, machines.parallel_catch_all(), {"blob": machines.blob(140_000)})
    assert_data_limit_exceeded(branched, "Double")
    assert not any(
        e.get("stateEnteredEventDetails", {}).get("name") == "Caught" for e in mapped.events + branched.events
    )


def test_the_25000th_event_fails_an_endless_execution(sfn: Any, role: str) -> None:
    # ~45 s on the local stack (4 events a turn, 6,250 turns); AWS took ~48 s for a similar loop.
    outcome = run(sfn, role, machines.endless_loop(), {"stop": False}, poll_seconds=0.5, max_polls=1200)
    assert (outcome.status, outcome.error, outcome.cause) == (
        "FAILED",
        "States.Runtime",
        machines.HISTORY_LIMIT_CAUSE,
    )
    assert len(outcome.events) == machines.MAX_HISTORY_EVENTS
    last = outcome.events[-1]
    assert (last["id"], last["type"], last["previousEventId"]) == (25_000, "ExecutionFailed", 24_999)


def test_an_inline_map_runs_at_most_40_iterations_at_once(sfn: Any, role: str, clock: None) -> None:
    # Each iteration waits 20 s (1 s at the clock's scale): without the cap all 100 would overlap.
    unbounded = run(sfn, role, machines.inline_map_of_waits(20), {"items": list(range(100))})
    assert unbounded.status == "SUCCEEDED"
    assert machines.most_iterations_at_once(unbounded.events) == machines.INLINE_MAP_MAX_CONCURRENCY
    above = run(sfn, role, machines.inline_map_of_waits(20, max_concurrency=60), {"items": list(range(100))})
    assert machines.most_iterations_at_once(above.events) == machines.INLINE_MAP_MAX_CONCURRENCY
    below = run(sfn, role, machines.inline_map_of_waits(20, max_concurrency=5), {"items": list(range(12))})
    assert machines.most_iterations_at_once(below.events) == 5


def test_a_fail_state_cause_or_error_over_the_api_limits_fails_with_states_runtime(
    sfn: Any, role: str
) -> None:
    # ExecutionFailedEventDetails: a cause of at most 32,768 characters, an error of at most 256.
    # At the limits the Fail state's own error and cause are the execution's.
    fitting = {"error": "E" * machines.MAX_ERROR_CHARS, "cause": "c" * machines.MAX_CAUSE_CHARS}
    at_limit = run(sfn, role, machines.fail_with_paths(), fitting)
    assert (at_limit.status, at_limit.error, at_limit.cause) == ("FAILED", fitting["error"], fitting["cause"])
    for field, limit in (("cause", machines.MAX_CAUSE_CHARS), ("error", machines.MAX_ERROR_CHARS)):
        over = run(sfn, role, machines.fail_with_paths(), {**fitting, field: "x" * (limit + 1)})
        assert (over.status, over.error) == ("FAILED", "States.Runtime"), (field, over.error)
        assert f"{field} of {limit + 1} characters" in (over.cause or "")
        assert f"at most {limit}" in (over.cause or "")
        assert over.events[-1]["type"] == "ExecutionFailed"
