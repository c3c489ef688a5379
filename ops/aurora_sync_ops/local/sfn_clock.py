"""Time in moto's Step Functions interpreter: scale the real sleeps of Retry and Wait, record them.

The interpreter really sleeps for every Retry interval and Wait state. Tests set a small scale so
an execution with retries finishes in seconds, and assert the durations the definition asked for
(which is what AWS would wait) from the record. Served by the moto host on loopback:

* ``POST /moto-api/aurora-sync/clock`` ``{"scale": 0.01}`` sets the scale (1 = real time) and
  clears the record;
* ``GET /moto-api/aurora-sync/clock`` returns ``{"scale": s, "sleeps": [{"kind": "retry"|"wait",
  "seconds": requested}, ...]}``.
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


def install_clock() -> None:
    """Patch the interpreter's two sleeps and add the route (before the server builds its URL map)."""
    from moto.moto_api._internal import urls
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
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
    urls.url_paths[ROUTE] = clock
