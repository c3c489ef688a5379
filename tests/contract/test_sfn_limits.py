"""Contract (real AWS): the Step Functions limits the local engine enforces (``sfn_limits``).

The same tiny machines as ``tests/local_stack/test_sfn_limits.py`` run on real Step Functions, and
the outcomes must be the ones the local engine gives, so the emulation is checked against the
vendor. They need AWS credentials, a region, and a role Step Functions may assume (no permissions
needed: the machines call no service), so they run only when ``AURORA_SYNC_CONTRACT_AWS=1`` and
``AURORA_SYNC_CONTRACT_SFN_ROLE_ARN`` are set. Cost: about 26,000 state transitions (the history
test), well under a dollar.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import boto3
import pytest
import sfn_limit_machines as machines
from botocore.exceptions import ClientError

pytestmark = pytest.mark.aws_account


@pytest.fixture(scope="module")
def sfn() -> Any:
    if os.environ.get("AURORA_SYNC_CONTRACT_AWS") != "1":
        pytest.skip(
            "set AURORA_SYNC_CONTRACT_AWS=1 (with AWS credentials) to check the limits on real Step Functions"
        )
    if boto3.Session().get_credentials() is None:
        pytest.fail("AURORA_SYNC_CONTRACT_AWS=1 but no AWS credentials: configure them (AWS_PROFILE, ...)")
    return boto3.client("stepfunctions")


@pytest.fixture(scope="module")
def role() -> str:
    arn = os.environ.get("AURORA_SYNC_CONTRACT_SFN_ROLE_ARN")
    if not arn:
        pytest.skip("set AURORA_SYNC_CONTRACT_SFN_ROLE_ARN to a role states.amazonaws.com may assume")
    return arn


def run(sfn: Any, role: str, definition: dict[str, Any], execution_input: Any, **kw: Any) -> machines.Outcome:
    return machines.run_machine(
        sfn, role, f"aurora-sync-limits-{uuid.uuid4().hex[:8]}", definition, execution_input, **kw
    )


def test_pass_output_over_the_limit(sfn: Any, role: str) -> None:
    assert run(sfn, role, machines.doubling_pass(), {"blob": machines.blob(140_000)}).failed_on_data_limit(
        "Double"
    )


def test_the_limit_is_inclusive_and_counts_compact_utf8_json(sfn: Any, role: str) -> None:
    at_limit = machines.input_of_bytes(machines.MAX_PAYLOAD_BYTES)
    assert run(sfn, role, machines.exact_output_pass(), at_limit).status == "SUCCEEDED"
    accented = machines.input_of_bytes(machines.MAX_PAYLOAD_BYTES, "é")
    assert run(sfn, role, machines.exact_output_pass(), accented).status == "SUCCEEDED"


def test_state_input_over_the_limit_after_parameters_or_item_selector(sfn: Any, role: str) -> None:
    blob = {"blob": machines.blob(140_000), "items": [1, 2]}
    assert run(sfn, role, machines.task_with_large_parameters(), blob).failed_on_data_limit("Call")
    assert run(sfn, role, machines.map_with_large_item_selector(), blob).failed_on_data_limit("Fan")


def test_start_execution_refuses_an_input_over_the_limit(sfn: Any, role: str) -> None:
    over = machines.input_of_bytes(machines.MAX_PAYLOAD_BYTES + 1)
    with pytest.raises(ClientError) as refused:
        run(sfn, role, machines.exact_output_pass(), over)
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_map_aggregation_and_states_all_catch(sfn: Any, role: str) -> None:
    items = machines.map_items(300, 1_000)
    assert run(sfn, role, machines.aggregating_map(catch_all=False), items).failed_on_data_limit("Gather")
    assert run(sfn, role, machines.aggregating_map(catch_all=True), items).failed_on_data_limit("Gather")
    assert run(
        sfn, role, machines.parallel_catch_all(), {"blob": machines.blob(140_000)}
    ).failed_on_data_limit("Double")


def test_the_25000th_event_fails_an_endless_execution(sfn: Any, role: str) -> None:
    outcome = run(sfn, role, machines.endless_loop(), {"stop": False}, poll_seconds=2, max_polls=600)
    assert (outcome.status, outcome.error, outcome.cause) == (
        "FAILED",
        "States.Runtime",
        machines.HISTORY_LIMIT_CAUSE,
    )
    assert (outcome.events[-1]["id"], outcome.events[-1]["type"]) == (25_000, "ExecutionFailed")


def test_an_inline_map_runs_at_most_40_iterations_at_once(sfn: Any, role: str) -> None:
    outcome = run(
        sfn, role, machines.inline_map_of_waits(5), {"items": list(range(100))}, poll_seconds=2, max_polls=300
    )
    assert outcome.status == "SUCCEEDED"
    assert machines.most_iterations_at_once(outcome.events) <= machines.INLINE_MAP_MAX_CONCURRENCY


def test_a_fail_state_cause_or_error_over_the_api_limits(sfn: Any, role: str) -> None:
    # The local engine fails these with States.Runtime (no AWS page says what happens): this is
    # where a difference would show.
    fitting = {"error": "E" * machines.MAX_ERROR_CHARS, "cause": "c" * machines.MAX_CAUSE_CHARS}
    at_limit = run(sfn, role, machines.fail_with_paths(), fitting)
    assert (at_limit.status, at_limit.error, at_limit.cause) == ("FAILED", fitting["error"], fitting["cause"])
    for field, limit in (("cause", machines.MAX_CAUSE_CHARS), ("error", machines.MAX_ERROR_CHARS)):
        over = run(sfn, role, machines.fail_with_paths(), {**fitting, field: "x" * (limit + 1)})
        assert (over.status, over.error) == ("FAILED", "States.Runtime"), (field, over.error, over.cause)
