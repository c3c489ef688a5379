"""A diagnostic Lambda handler that proves the local Lambda router (``lambda_router``).

It reports what the sandbox looks like (context, selected environment, the caller identity of
its role credentials) and fails on request, so tests can exercise Step Functions Retry/Catch:

- ``{"fail": {"error": "SourceUnavailable", "times": 2, "counter": "/tmp/x"}}`` raises that
  project error on the first 2 invocations counted in the file, then succeeds; without
  ``times`` it always raises;
- ``{"sleep": 2.5}`` sleeps (to hit the function's Timeout), reporting when it slept as
  ``"slept": [from, until]`` (epoch seconds); ``{"exit": 3}`` kills the process;
- ``{"whoami": true}`` adds the STS caller ARN; ``{"env_keys": [...]}`` adds more variables.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from pathlib import Path
from typing import Any

from aurora_sync import errors

REPORTED_ENV = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_EXECUTION_ENV",
    "_HANDLER",
    "CONFIG_SSM_PATH",
)
# The probe's output lands in execution histories and test logs: never report credentials.
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PRIVATE|CREDENTIAL|ACCESS_KEY", re.IGNORECASE)


def _count(counter: str) -> int:
    """Increment the invocation count in ``counter``; a lock keeps concurrent Map items honest."""
    path = Path(counter)
    path.touch()
    with path.open("r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        count = int(handle.read() or 0) + 1
        handle.seek(0)
        handle.truncate()
        handle.write(str(count))
    return count


def _maybe_fail(spec: dict[str, Any]) -> int | None:
    cls = getattr(errors, str(spec.get("error")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.SyncError)):
        raise ValueError(
            f"probe: 'fail.error' must name a class in aurora_sync.errors, got {spec.get('error')!r}"
        )
    times = spec.get("times")
    count = _count(spec["counter"]) if spec.get("counter") else None
    if times is None or (count is not None and count <= int(times)):
        raise cls(f"probe failure {count or 1} of {times if times is not None else 'always'}")
    return count


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    attempt = _maybe_fail(event["fail"]) if isinstance(event.get("fail"), dict) else None
    # Wall-clock stamps around the sleep let a test prove two invocations overlapped
    # (ran concurrently) without asserting on how long the whole run took.
    slept_from = time.time()
    if event.get("sleep"):
        time.sleep(float(event["sleep"]))
    slept_until = time.time()
    if event.get("exit") is not None:
        os._exit(int(event["exit"]))
    keys = [*REPORTED_ENV, *[k for k in event.get("env_keys", []) if not _SECRET_NAME.search(k)]]
    result: dict[str, Any] = {
        "echo": event,
        "attempt": attempt,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "env": {key: os.environ.get(key) for key in keys},
        "pid": os.getpid(),
        "slept": [slept_from, slept_until],
    }
    if event.get("whoami"):
        import boto3

        result["caller_arn"] = boto3.client("sts").get_caller_identity()["Arn"]
    return result
