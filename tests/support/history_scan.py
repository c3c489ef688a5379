"""What an execution's history says about the Step Functions limits: its event count and its
largest payload, with the histories of its child executions (Distributed Map) when asked.

A payload is any input, output or result an event records (state entered/exited, task and
Lambda results, execution start and end), measured as Step Functions measures it: the UTF-8 bytes
of the JSON text the history stores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# The event detail fields that carry a payload, whatever the event's type.
PAYLOAD_FIELDS = ("input", "output")


@dataclass(frozen=True)
class Payload:
    size: int
    event_id: int
    event_type: str
    state: str | None


@dataclass
class HistoryScan:
    execution_arn: str
    events: int
    largest: Payload | None
    children: list[HistoryScan] = field(default_factory=list)

    def every_execution(self) -> Iterable[HistoryScan]:
        yield self
        for child in self.children:
            yield from child.every_execution()

    @property
    def largest_anywhere(self) -> Payload | None:
        found = [scan.largest for scan in self.every_execution() if scan.largest is not None]
        return max(found, key=lambda payload: payload.size, default=None)

    @property
    def most_events(self) -> int:
        return max(scan.events for scan in self.every_execution())


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def largest_payload(events: list[dict[str, Any]]) -> Payload | None:
    largest: Payload | None = None
    state: str | None = None  # a task's scheduled/succeeded events name no state: the one entered
    for event in events:
        entered = event.get("stateEnteredEventDetails")
        if entered:
            state = entered.get("name")
        for key, details in event.items():
            if not key.endswith("EventDetails") or not isinstance(details, dict):
                continue
            for name in PAYLOAD_FIELDS:
                text = details.get(name)
                if not isinstance(text, str):
                    continue
                size = len(text.encode("utf-8"))
                if largest is None or size > largest.size:
                    largest = Payload(size, event["id"], event["type"], details.get("name") or state)
    return largest


def scan_execution(sfn: Any, execution_arn: str, *, child_executions: Iterable[str] = ()) -> HistoryScan:
    """The scan of one execution; ``child_executions`` (e.g. a Map Run's, from
    ``list_executions(mapRunArn=...)``) are scanned too and kept apart."""
    events = history(sfn, execution_arn)
    return scan_histories(execution_arn, events, {child: history(sfn, child) for child in child_executions})


def scan_histories(
    execution_arn: str, events: list[dict[str, Any]], children: dict[str, list[dict[str, Any]]]
) -> HistoryScan:
    """The scan of histories already read: the execution's and its children's by ARN."""
    scan = HistoryScan(execution_arn, len(events), largest_payload(events))
    scan.children = [HistoryScan(arn, len(child), largest_payload(child)) for arn, child in children.items()]
    return scan


def map_run_children(sfn: Any, events: list[dict[str, Any]]) -> list[str]:
    """The child executions of every Distributed Map Run an execution's history started."""
    children: list[str] = []
    for event in events:
        details = event.get("mapRunStartedEventDetails")
        if not details:
            continue
        for page in sfn.get_paginator("list_executions").paginate(mapRunArn=details["mapRunArn"]):
            children.extend(execution["executionArn"] for execution in page["executions"])
    return children
