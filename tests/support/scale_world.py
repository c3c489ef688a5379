"""Issue 15's scale world: many tiny tables with long names plus one table of many chunks, and
what one run of the real state machine over it did against Step Functions' limits.

Shared by the proof in ``make test`` (tests/workflow/test_state_limits.py) and the benchmark of
2,000 tables and 2,000 chunks (bench/scale_bench.py), so both build the same world and measure it
the same way: the histories of the parent and of every Distributed Map child (``history_scan``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from history_scan import HistoryScan, scan_histories
from world import World, entered, merged, open_world

# Config names as long as configs allow (63, with four digits for up to 10,000 tables): a table's
# names recur in its work item and export result, the largest things a payload could hold per table.
LONG = "_named_as_long_as_a_config_and_postgresql_allow_it_ab"
CHUNKED = "chunked"
# A chunk holds at least 1,000 rows (the config's minimum): the chunked table's chunks hold exactly
# that many.
ROWS_PER_CHUNK = 1000
MAX_PAYLOAD_BYTES = 262_144
MAX_HISTORY_EVENTS = 25_000
# The engine's clock and the export children's time. An Express child's 300 s cap runs on the
# scaled clock, the exporter's chunks in real time: at the other worlds' 0.05 the cap is 15 real
# seconds and a child stops starting chunks after 10 (engine.LOCAL_PARAMETERS), so on a loaded
# 2-core machine one slow exporter call ended whole batches in States.Timeout. At 0.2 the cap is
# 60 s, and stopping after 20 leaves 40 s for the last chunk (AWS: 240 of 300 leaves 60 s), still
# short enough that the chunked table outlasts its child and resumes in later rounds.
CLOCK_SCALE = 0.2
PARAMETERS = {"ExportChildSeconds": 20}


def config_name(i: int) -> str:
    return f"limits{i:04d}{LONG}"


def table_name(i: int) -> str:
    return f"t{i:04d}{LONG}"


@contextmanager
def open_scale_world(
    stack: dict[str, Any],
    tables: int,
    chunks: int,
    *,
    prefix: str = "limits",
    parameters: dict[str, Any] | None = None,
) -> Iterator[World]:
    """``tables`` tables of one row each and, when ``chunks``, the table ``chunked`` of ``chunks``
    chunks of 1,000 rows; configs, Snowflake objects and the bucket's notification applied.
    ``parameters``: template parameters over the world's (``PARAMETERS``)."""
    ddl: dict[str, tuple[str, dict[str, Any]]] = {
        config_name(i): (
            f"CREATE TABLE {{schema}}.{table_name(i)} (id bigint PRIMARY KEY, "
            "updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": table_name(i), "primary_key": ["id"]},
        )
        for i in range(tables)
    }
    if chunks:
        ddl[CHUNKED] = (
            "CREATE TABLE {schema}.chunked (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL)",
            {"table": CHUNKED, "primary_key": ["id"], "max_rows_per_chunk": ROWS_PER_CHUNK},
        )
    merged = {**PARAMETERS, **(parameters or {})}
    with open_world(stack, ddl, prefix=prefix, parameters=merged, clock_scale=CLOCK_SCALE) as world:
        for i in range(tables):
            world.execute(f"INSERT INTO {{schema}}.{table_name(i)} (id) VALUES (1)")
        if chunks:
            # Distinct timestamps: every chunk ends exactly at 1,000 rows.
            world.execute(
                "INSERT INTO {schema}.chunked (id, updated_at) SELECT g, timestamptz '2026-01-01' + g * "
                f"interval '1 second' FROM generate_series(1, {chunks * ROWS_PER_CHUNK}) g"
            )
        world.apply()
        yield world


@dataclass
class ScaleRun:
    """One run of a scale world: its description, its histories and their limits."""

    description: dict[str, Any]
    events: list[dict[str, Any]]  # the parent's, each round's children's after its MapRunStarted
    parent: list[dict[str, Any]]
    children: list[str]
    scan: HistoryScan
    seconds: float

    @property
    def succeeded(self) -> bool:
        return self.description["status"] == "SUCCEEDED"

    @property
    def rounds(self) -> int:
        return entered(self.parent).count("ExportRound")

    @property
    def failure(self) -> str | None:
        """Why the run failed, as Step Functions said it, with the size of the failed state's
        input when its history recorded one (AWS names the state, not the bytes)."""
        if self.succeeded:
            return None
        details: dict[str, Any] = next(
            (
                e["executionFailedEventDetails"]
                for e in reversed(self.parent)
                if "executionFailedEventDetails" in e
            ),
            {},
        )
        # A Lambda's error carries its stack trace in the cause: its first lines say what failed.
        text = f"{self.description['status']}: {details.get('error')}: {str(details.get('cause'))[:400]}"
        state = failed_state(self.events, str(details.get("cause", "")))
        if state is not None:
            text += f" (the state {state[0]!r} was entered with an input of {state[1]:,} B)"
        return text

    @property
    def phases(self) -> dict[str, float]:
        """Seconds from the start to the first export round (plan), from there to the first Verify
        (export: every round), and from there to the end (verify: every call and Wait), from the
        parent's event times. A run that ended inside a phase ends it; later phases are left out."""
        if not self.parent:
            return {}
        result: dict[str, float] = {}
        start, end = self.parent[0]["timestamp"], self.parent[-1]["timestamp"]
        for phase, next_state in (("plan", "ExportRound"), ("export", "Verify"), ("verify", None)):
            entered_at = (
                e["timestamp"]
                for e in self.parent
                if next_state and e.get("stateEnteredEventDetails", {}).get("name") == next_state
            )
            entry = next(entered_at, None)
            result[phase] = ((entry or end) - start).total_seconds()
            if entry is None:
                break
            start = entry
        return result

    def summary(self) -> str:
        largest = self.scan.largest_anywhere
        phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.phases.items())
        return (
            f"{self.description['status']} in {self.seconds:.0f} s ({phases}): {len(self.children)} child "
            f"executions, {self.rounds} rounds, most events {self.scan.most_events} "
            f"(parent {self.scan.events}), "
            f"largest payload {largest.size if largest else 0} B ({largest.state if largest else '-'})"
        )


def failed_state(events: list[dict[str, Any]], cause: str) -> tuple[str, int] | None:
    """The state the failure's cause names (else the last state entered) and the bytes of the
    input it was last entered with."""
    named = re.search(r"state/task '([^']+)'", cause)
    for event in reversed(events):
        details = event.get("stateEnteredEventDetails")
        if details and (named is None or details["name"] == named.group(1)):
            return details["name"], len(str(details.get("input", "")).encode("utf-8"))
    return None


def run_scale_world(world: World, *, timeout_s: float) -> ScaleRun:
    started = time.monotonic()
    arn = world.engine.start(world.deployment, {})
    description = world.engine.wait(arn, timeout_s=timeout_s, poll_s=0.3)
    seconds = time.monotonic() - started
    # Each history is read once: thousands of events, parsed by boto3 on a shared machine.
    parent, runs = world.histories(arn)
    children = {child: events for run in runs.values() for child, events in run.items()}
    scan = scan_histories(arn, parent, children)
    return ScaleRun(description, merged(parent, runs), parent, list(children), scan, seconds)
