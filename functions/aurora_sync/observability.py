"""Powertools singletons shared by the three handlers (one service, one metrics namespace).

The service name and namespace come from ``POWERTOOLS_SERVICE_NAME`` and
``POWERTOOLS_METRICS_NAMESPACE``, which the template sets (the service is the stack's name).
They must not be passed as constants: Powertools lets an explicit argument win over the
environment, and the freshness alarm selects metrics by ``service = <stack name>``, so a
hard-coded service made the alarm unable to ever fire. The constants are only the fallbacks for
runs outside Lambda (the CLI's local invocations, tests).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "aurora-snowflake-sync"
NAMESPACE = "AuroraSnowflakeSync"

_service = os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE

# Module-level so warm invocations reuse them.
logger = Logger(service=_service)
tracer = Tracer(service=_service)
metrics = Metrics(service=_service, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE)
