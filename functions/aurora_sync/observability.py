"""Powertools singletons shared by the three handlers (one service, one metrics namespace).

The service name and namespace come from ``POWERTOOLS_SERVICE_NAME`` and
``POWERTOOLS_METRICS_NAMESPACE``, which the template sets (the service is the stack's name).
They must not be passed as constants: Powertools lets an explicit argument win over the
environment, and the freshness alarm selects metrics by ``service = <stack name>``, so a
hard-coded service made the alarm unable to ever fire. The constants are only the fallbacks for
runs outside Lambda (the CLI's local invocations, tests).

The tracer is Powertools' ``Tracer`` only where Powertools would trace: in Lambda, with
``POWERTOOLS_TRACE_DISABLED`` unset or false, and not under ``sam local``. Constructing a
``Tracer`` imports ``aws_xray_sdk`` even when it then disables itself, which was the largest part
of every handler's import time (benchmark 5 in docs/benchmarks.md). Elsewhere the handlers get
``UntracedHandlers``, whose decorators return the function unchanged, so aws_xray_sdk is never
imported there.

Where it traces, the tracer patches the libraries our calls go through (``TRACED_LIBRARIES``) on
the handler's first call, before the handler's body, instead of at import. Patching imports each
library (botocore alone is about 150 ms, because the patch imports ``botocore.client``), and the
handler imports them on its first call anyway; Powertools' default, ``patch_all``, also imported
libraries the functions never use (sqlite3, ...). Nothing is lost: the patches wrap
``BaseClient._make_api_call``, ``requests.Session.send``, ``HTTPConnection`` and
``psycopg2.connect`` where the code looks them up at call time, and no client or connection is
made before the first call (tests/unit/test_tracing.py records one of each).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "aurora-snowflake-sync"
NAMESPACE = "AuroraSnowflakeSync"

_service = os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE

F = TypeVar("F", bound=Callable[..., Any])


class UntracedHandlers:
    """Stands in for ``Tracer`` where Powertools would disable tracing anyway: the decorators the
    handlers use, as identities."""

    disabled = True

    def capture_lambda_handler(self, handler: F) -> F:
        return handler

    def capture_method(self, method: F) -> F:
        return method


# AWS (SSM, S3, Step Functions, STS), Vault (hvac on requests), Snowflake (its vendored urllib3 on
# http.client) and Aurora.
TRACED_LIBRARIES = ("botocore", "requests", "httplib", "psycopg2")


class LambdaTracer:
    """Powertools' ``Tracer`` with its patching of ``TRACED_LIBRARIES`` moved from import to the
    first call of the handler it captures."""

    disabled = False

    def __init__(self) -> None:
        self._tracer = Tracer(service=_service, auto_patch=False)
        self._patched = False

    def capture_lambda_handler(self, handler: F) -> F:
        traced = self._tracer.capture_lambda_handler(handler)

        @functools.wraps(handler)
        def patch_then_handle(event: Any, context: Any) -> Any:
            self.patch_libraries()
            return traced(event, context)

        return patch_then_handle  # type: ignore[return-value]

    def capture_method(self, method: F) -> F:
        return self._tracer.capture_method(method)

    def patch_libraries(self) -> None:
        if not self._patched:
            self._tracer.patch(TRACED_LIBRARIES)
            self._patched = True


def tracing_on() -> bool:
    """Powertools' own rule (``Tracer._is_tracer_disabled``: the env var, Lambda's
    ``LAMBDA_TASK_ROOT``, ``AWS_SAM_LOCAL``), so this never disagrees with what a ``Tracer``
    would decide for itself."""
    return not Tracer._is_tracer_disabled()  # private, but the rule itself rather than a copy


# Module-level so warm invocations reuse them.
logger = Logger(service=_service)
tracer: LambdaTracer | UntracedHandlers = LambdaTracer() if tracing_on() else UntracedHandlers()
metrics = Metrics(service=_service, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE)
