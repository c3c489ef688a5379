"""Keep moto's Step Functions interpreter from holding on to every thread it ever started.

The interpreter (moto's copy of LocalStack's) starts a thread for each execution, each Task, Map
and Parallel state it runs, each Map iteration worker and each Parallel branch, and appends every
one to ``TMP_THREADS``, a module-level list LocalStack empties at shutdown and moto never reads.
None of those threads is joined, so the list keeps each finished ``Thread`` alive, and CPython
detaches a finished thread (giving back its 8 MiB stack and guard page) only when nothing refers
to it any more. The moto host of a long 2,000-table run had 32,399 such stacks, two memory maps
each; at the kernel's ``vm.max_map_count`` (65,530) no thread could start, and the execution failed
in ``States.Runtime`` "can't start new thread" in the middle of its export.

``install_thread_reaping`` gives the interpreter's modules a list that keeps only threads still
running: a thread the list drops and that has ended is released; one that runs is referenced by
``threading`` itself until it ends.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterable

# Every module of moto's interpreter that imports TMP_THREADS by name (moto 5.1); imported here
# first, so each one's name is rebound, not only those already loaded.
INTERPRETER_MODULES = (
    "moto.stepfunctions.parser.asl.component.program.program",
    "moto.stepfunctions.parser.asl.component.test_state.program.test_state_program",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.inline_iteration_component",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback",
    "moto.stepfunctions.parser.asl.component.state.exec.state_parallel.branch_worker",
    "moto.stepfunctions.parser.asl.component.state.exec.execute_state",
    "moto.stepfunctions.parser.backend.execution_worker",
)


class RunningThreads(list[threading.Thread]):
    """``TMP_THREADS`` that forgets threads which have ended whenever one is added."""

    def __init__(self, threads: Iterable[threading.Thread] = ()) -> None:
        super().__init__(t for t in threads if t.is_alive())

    def append(self, thread: threading.Thread) -> None:
        # A thread appended before its start() is not alive yet and may be dropped by the next
        # append: harmless, the caller holds it until it starts, and threading while it runs.
        self[:] = [t for t in self if t.is_alive()]
        super().append(thread)


def install_thread_reaping() -> RunningThreads:
    utils = importlib.import_module("moto.stepfunctions.parser.utils")
    if isinstance(utils.TMP_THREADS, RunningThreads):
        return utils.TMP_THREADS
    for name in INTERPRETER_MODULES:
        importlib.import_module(name)
    original = utils.TMP_THREADS
    running = RunningThreads(original)
    for module in list(sys.modules.values()):
        if getattr(module, "TMP_THREADS", None) is original:
            setattr(module, "TMP_THREADS", running)  # noqa: B010 - any module of moto's
    holding = [name for name in INTERPRETER_MODULES if sys.modules[name].TMP_THREADS is running]
    if len(holding) < len(INTERPRETER_MODULES):
        raise RuntimeError(
            f"moto's interpreter changed: {len(holding)} of {len(INTERPRETER_MODULES)} modules hold "
            "TMP_THREADS; update aurora_sync_ops.local.sfn_threads"
        )
    return running
