"""A run longer than RunTimeoutSeconds ends TIMED_OUT, which is what the timeout alarm counts.

The state machine's TimeoutSeconds comes from the RunTimeoutSeconds template parameter; the local
engine enforces it on the scaled clock (``sfn_clock``), as AWS does in real time. CloudWatch is not
emulated: the alarm is evaluated here from the template's own definition of it, with AWS's
documented meaning of the metric (AWS/States ExecutionsTimedOut counts the executions of the state
machine that ended TIMED_OUT; ExecutionsFailed, those that ended FAILED).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from world import World, open_world, read_clock

from aurora_sync_ops import sam_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    tables = {
        "timeout_orders": (
            "CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, total numeric(10,2), "
            "updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": "orders", "primary_key": ["id"]},
        ),
    }
    # 60 s of run against a 600 s wait before the first verification: the run cannot end
    # before its timeout, whatever the export takes (at the tests' clock scale: 3 s and 30 s).
    with open_world(
        stack, tables, prefix="runtimeout", parameters={"RunTimeoutSeconds": 60, "VerifyWaitSeconds": 600}
    ) as world:
        world.execute("INSERT INTO {schema}.orders (id, total) SELECT i, i FROM generate_series(1, 10) i")
        world.apply()
        yield world


def alarm_state(alarm: dict[str, Any], datapoint: int) -> str:
    """CloudWatch's verdict on one period's Sum, for the comparisons the template uses."""
    compare = {
        "GreaterThanOrEqualToThreshold": datapoint >= alarm["Threshold"],
        "GreaterThanThreshold": datapoint > alarm["Threshold"],
    }[alarm["ComparisonOperator"]]
    return "ALARM" if compare else "OK"


def test_a_run_longer_than_its_timeout_ends_timed_out_and_the_timeout_alarm_fires(world: World) -> None:
    description, _ = world.run()

    assert description["status"] == "TIMED_OUT", description
    # The parent's own history (world.run adds the export children's, which end on their own).
    events = world.engine.events(description["executionArn"])
    # moto writes ExecutionTimedOut once the state in flight at the deadline returns (AWS writes
    # it at the deadline): poll the history a bounded number of times.
    for _ in range(100):
        if events[-1]["type"] == "ExecutionTimedOut":
            break
        time.sleep(0.3)
        events = world.engine.events(description["executionArn"])
    assert events[-1]["type"] == "ExecutionTimedOut"
    assert not {"ExecutionSucceeded", "ExecutionFailed"} & {e["type"] for e in events}
    assert {"kind": "timeout", "seconds": 60} in read_clock(world.status)["sleeps"]

    resources = sam_template.load(ROOT / "template.yaml")["Resources"]
    timed_out_alarm = resources["ExecutionsTimedOutAlarm"]["Properties"]
    failed_alarm = resources["ExecutionsFailedAlarm"]["Properties"]
    for alarm in (timed_out_alarm, failed_alarm):
        assert alarm["Namespace"] == "AWS/States" and alarm["Statistic"] == "Sum"
        assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": "SyncStateMachine"}}]
    assert timed_out_alarm["MetricName"] == "ExecutionsTimedOut"
    assert failed_alarm["MetricName"] == "ExecutionsFailed"

    machine = world.deployment.state_machine_arn
    counted = {
        status: len(
            world.engine.sfn.list_executions(stateMachineArn=machine, statusFilter=status)["executions"]
        )
        for status in ("TIMED_OUT", "FAILED")
    }
    assert counted == {"TIMED_OUT": 1, "FAILED": 0}
    assert alarm_state(timed_out_alarm, counted["TIMED_OUT"]) == "ALARM"
    assert alarm_state(failed_alarm, counted["FAILED"]) == "OK"
