"""Time in moto's Step Functions interpreter: scale the real sleeps of Retry and Wait and the
TimeoutSeconds deadlines, record them.

The interpreter really sleeps for every Retry interval and Wait state, and enforces the
definition's TimeoutSeconds (the execution's and each Task's) as real-time deadlines. Tests set a
small scale so an execution with retries finishes in seconds, and assert the durations the
definition asked for (which is what AWS would wait) from the record. The deadlines run on the
same clock: were they left in real time, a 4 h execution timeout would never fire before the
scaled Waits of a stuck run (4 h at scale 0.01 is 144 s), and the local stack would be more
lenient than AWS. Served by the moto host on loopback:

* ``POST /moto-api/aurora-sync/clock`` ``{"scale": 0.01}`` sets the scale (1 = real time) and
  clears the record;
* ``GET /moto-api/aurora-sync/clock`` returns ``{"scale": s, "sleeps": [{"kind": "retry"|"wait"|
  "timeout", "seconds": requested}, ...]}``; a ``timeout`` is a TimeoutSeconds the definition set
  (the execution's or a Task's), recorded when its deadline starts.
"""

from __future__ import annotations

import json
import threading
import time
import types
from typing import Any

ROUTE = "{0}/moto-api/aurora-sync/clock"

_lock = threading.Lock()
_state: dict[str, Any] = {"scale": 1.0, "sleeps": []}


def _record(kind: str, seconds: float) -> float:
    with _lock:
        _state["sleeps"].append({"kind": kind, "seconds": seconds})
        return float(seconds) * float(_state["scale"])


def clock(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    if request.method == "POST":
        body = request.data if hasattr(request, "data") else request.body
        scale = float(json.loads(body or b"{}").get("scale", 1.0))
        if not 0 < scale <= 1:
            return 400, {"Content-Type": "application/json"}, json.dumps({"error": "scale must be in (0, 1]"})
        with _lock:
            _state.update(scale=scale, sleeps=[])
    with _lock:
        return 200, {"Content-Type": "application/json"}, json.dumps(_state)


class _ScaledDeadline(threading.Event):
    """The event a Task state waits on for its TimeoutSeconds, with that deadline scaled.

    Every Task has a deadline; without TimeoutSeconds the interpreter uses ASL's default
    (99,999,999 s), which is scaled but not recorded as a timeout the definition asked for.
    """

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None:
            return super().wait()
        if timeout == _DEFAULT_TASK_TIMEOUT:
            with _lock:
                scale = float(_state["scale"])
            return super().wait(float(timeout) * scale)
        return super().wait(_record("timeout", timeout))


_DEFAULT_TASK_TIMEOUT = 99_999_999


def install_clock() -> None:
    """Patch the interpreter's sleeps and deadlines and add the route (before the server builds
    its URL map)."""
    from moto.moto_api._internal import urls
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import (
        TimeoutSeconds as AslTimeoutSeconds,
    )
    from moto.stepfunctions.parser.asl.component.program import program
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

    # retrier_decl calls time.sleep(interval): give that module its own `time` whose sleep scales.
    retry_time = types.SimpleNamespace(
        **{name: getattr(time, name) for name in dir(time) if not name.startswith("_")}
    )
    retry_time.sleep = lambda seconds: time.sleep(_record("retry", seconds))
    retrier_decl.time = retry_time  # type: ignore[assignment]

    original = wait_function.WaitFunction._wait_interval

    def scaled_wait(self: Any, env: Any, wait_seconds: int) -> None:
        scaled = _record("wait", wait_seconds)
        if scaled > 0:
            env.program_state_event.wait(scaled)

    wait_function.WaitFunction._wait_interval = scaled_wait  # type: ignore[method-assign]
    wait_function.WaitFunction._unscaled_wait_interval = original  # type: ignore[attr-defined]

    # A Task's TimeoutSeconds: execute_state waits on a threading.Event for the state's thread
    # with the timeout as a real-time deadline, then raises States.Timeout (catchable, as on
    # AWS). Give that module a `threading` whose Event scales the wait.
    if AslTimeoutSeconds.DEFAULT_TIMEOUT_SECONDS != _DEFAULT_TASK_TIMEOUT:
        raise RuntimeError("moto's default Task TimeoutSeconds changed: update sfn_clock")
    task_threading = types.SimpleNamespace(
        **{name: getattr(threading, name) for name in dir(threading) if not name.startswith("_")}
    )
    task_threading.Event = _ScaledDeadline
    execute_state.threading = task_threading  # type: ignore[assignment]

    # The execution's TimeoutSeconds: Program.eval joins the worker thread with the timeout as a
    # real-time deadline and marks the execution TIMED_OUT when it is still running. Same
    # method, deadline on the scaled clock.
    def scaled_program_eval(self: Any, env: Any) -> None:
        timeout = self.timeout_seconds.timeout_seconds if self.timeout_seconds else None
        env.next_state_name = self.start_at.start_at_name
        worker = threading.Thread(target=super(program.Program, self).eval, args=(env,), daemon=True)
        program.TMP_THREADS.append(worker)
        worker.start()
        worker.join(timeout=None if timeout is None else _record("timeout", timeout))
        if worker.is_alive():
            env.set_timed_out()

    program.Program.eval = scaled_program_eval  # type: ignore[method-assign]

    # An execution that timed out (or was stopped) has ended: AWS records nothing after
    # ExecutionTimedOut. moto's worker thread goes on with the state in flight, and when that
    # state then fails (a Map Run cut off at the deadline fails its ResultWriter) set_error
    # replaced TIMED_OUT and the history ended in ExecutionFailed after it.
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped, ProgramTimedOut

    original_set_error = Environment.set_error

    def set_error_unless_ended(self: Any, error: Any) -> None:
        if isinstance(self._program_state, ProgramTimedOut | ProgramStopped):
            return
        original_set_error(self, error)

    Environment.set_error = set_error_unless_ended  # type: ignore[method-assign]
    urls.url_paths[ROUTE] = clock
