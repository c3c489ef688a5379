"""Powertools singletons shared by the three handlers (one service, one metrics namespace).

The service name and namespace come from ``POWERTOOLS_SERVICE_NAME`` and
``POWERTOOLS_METRICS_NAMESPACE``, which the template sets (the service is the stack's name).
They must not be passed as constants: Powertools lets an explicit argument win over the
environment, and the freshness alarm selects metrics by ``service = <stack name>``, so a
hard-coded service made the alarm unable to ever fire. The constants are only the fallbacks for
runs outside Lambda (the CLI's local invocations, tests).

The tracer is Powertools' ``Tracer`` only where Powertools would trace: in Lambda, with
``POWERTOOLS_TRACE_DISABLED`` unset or false, and not under ``sam local``. Constructing a
``Tracer`` imports ``aws_xray_sdk`` (and patches botocore, psycopg2, ...) even when it then
disables itself, which was the largest part of every handler's import time (benchmark 5 in
docs/benchmarks.md). Elsewhere the handlers get ``UntracedHandlers``, whose decorators return
the function unchanged, so aws_xray_sdk is never imported there.
"""

from __future__ import annotations

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


def tracing_on() -> bool:
    """Powertools' own rule (``Tracer._is_tracer_disabled``: the env var, Lambda's
    ``LAMBDA_TASK_ROOT``, ``AWS_SAM_LOCAL``), so this never disagrees with what a ``Tracer``
    would decide for itself."""
    return not Tracer._is_tracer_disabled()  # private, but the rule itself rather than a copy


# Module-level so warm invocations reuse them.
logger = Logger(service=_service)
tracer: Tracer | UntracedHandlers = Tracer(service=_service) if tracing_on() else UntracedHandlers()
metrics = Metrics(service=_service, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE)
