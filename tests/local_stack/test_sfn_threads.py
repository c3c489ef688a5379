"""The local engine's moto host lets go of the threads its interpreter has finished with
(``aurora_sync_ops.local.sfn_threads``).

moto's interpreter starts a thread for every Task, Map and Parallel state and every Parallel
branch and kept each one referenced for good, so each left an 8 MiB stack mapped. A run of 2,000
tables reached the kernel's 65,530 memory maps in the middle of its export and failed with
"can't start new thread"; a test worker's stack, which runs every workflow test of its half of
the suite, grows toward the same limit. AWS has no such limit: a run's states cost nothing after
they end.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import sfn_limit_machines as machines
from world import admin_client

TURNS = 150


def parallel_turns(turns: int) -> dict[str, Any]:
    """A loop of ``turns`` Parallel states of two Pass branches: three interpreter threads a turn
    (the Parallel state's and one a branch)."""
    branch = {"StartAt": "Step", "States": {"Step": {"Type": "Pass", "End": True}}}
    return {
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Result": {"n": 0}, "Next": "Both"},
            "Both": {"Type": "Parallel", "Branches": [branch, branch], "ResultPath": None, "Next": "Count"},
            "Count": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "Again"},
            "Again": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericLessThan": turns, "Next": "Both"}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }


def memory_maps(pid: int) -> int:
    return len(Path(f"/proc/{pid}/maps").read_text().splitlines())


def test_finished_states_leave_no_thread_stacks_behind(stack: dict[str, Any]) -> None:
    sfn = admin_client(stack, "stepfunctions")
    role = f"arn:aws:iam::{stack['aws']['account_id']}:role/aurora-sync-threads-test"
    pid = stack["services"]["aws"]["pid"]

    def run() -> None:
        name = f"threads-{uuid.uuid4().hex[:8]}"
        outcome = machines.run_machine(sfn, role, name, parallel_turns(TURNS), {}, poll_seconds=0.5)
        assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)

    run()  # the first run's own allocations (pools, caches) are not what is measured
    before = memory_maps(pid)
    run()
    # 450 threads ended; each one kept would have left two maps (its stack and guard page).
    assert memory_maps(pid) - before < TURNS, (before, memory_maps(pid))
