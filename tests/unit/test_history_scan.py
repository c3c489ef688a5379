"""``history_scan`` measures the payloads a history records as Step Functions does (UTF-8 bytes
of the stored JSON text) and finds the largest one, the children's included."""

from __future__ import annotations

from typing import Any

from history_scan import HistoryScan, Payload, largest_payload


def event(event_id: int, kind: str, key: str, **details: Any) -> dict[str, Any]:
    return {"id": event_id, "type": kind, key: details}


def test_the_largest_payload_counts_utf8_bytes_of_inputs_and_outputs() -> None:
    events = [
        event(1, "ExecutionStarted", "executionStartedEventDetails", input='{"a":1}'),
        event(2, "PassStateEntered", "stateEnteredEventDetails", name="Grow", input='{"a":1}'),
        # 10 characters, 20 bytes: the accented one wins over the 15-byte ASCII output.
        event(3, "PassStateExited", "stateExitedEventDetails", name="Grow", output='"' + "é" * 10 + '"'),
        event(4, "ExecutionSucceeded", "executionSucceededEventDetails", output='"' + "x" * 13 + '"'),
    ]
    assert largest_payload(events) == Payload(size=22, event_id=3, event_type="PassStateExited", state="Grow")
    assert largest_payload([event(1, "WaitStateEntered", "stateEnteredEventDetails", name="W")]) is None


def test_a_task_result_is_named_after_the_state_that_ran_the_task() -> None:
    # TaskSucceeded (a Lambda's result) carries no state name: it belongs to the state entered.
    events = [
        event(1, "TaskStateEntered", "stateEnteredEventDetails", name="Plan", input="{}"),
        event(2, "TaskSucceeded", "taskSucceededEventDetails", output='{"items":[1,2,3]}'),
        event(3, "TaskStateExited", "stateExitedEventDetails", name="Plan", output='{"n":3}'),
    ]
    assert largest_payload(events) == Payload(size=17, event_id=2, event_type="TaskSucceeded", state="Plan")


def test_a_scan_reports_the_largest_payload_and_most_events_across_child_executions() -> None:
    child = HistoryScan("child", events=30_000, largest=Payload(300, 7, "TaskSucceeded", "Export"))
    parent = HistoryScan(
        "parent", events=40, largest=Payload(100, 3, "PassStateExited", "Plan"), children=[child]
    )
    assert parent.largest_anywhere == child.largest
    assert parent.most_events == 30_000
    assert [scan.execution_arn for scan in parent.every_execution()] == ["parent", "child"]
