"""Powertools singletons shared by the three handlers (one service, one metrics namespace)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "aurora-snowflake-sync"
NAMESPACE = "AuroraSnowflakeSync"

# Module-level so warm invocations reuse them; POWERTOOLS_* variables override these defaults.
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)
