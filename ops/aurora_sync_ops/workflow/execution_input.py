"""The input and the name an execution starts with, checked before anything is started."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aurora_sync.errors import ConfigError
from aurora_sync.planning.plan import parse_input

from ..errors import UsageError

# Step Functions execution names: 1-80 characters; these are the ones safe in every console URL.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_INTEGER = re.compile(r"^[+-]?\d+$")


def parse_since(text: str) -> str | int:
    """``--since``: an integer (numeric cursors) or an ISO-8601 timestamp/date, kept as written."""
    text = text.strip()
    if _INTEGER.match(text):
        return int(text)
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither an ISO-8601 timestamp/date nor an integer.",
            fix="write e.g. --since 2024-01-01T00:00:00+00:00 (or --since 1500 for a numeric cursor)",
        ) from None
    return text


def build_input(tables: Sequence[str] | None, since: str | None, full: bool) -> dict[str, Any]:
    """The execution input the planner accepts (``{}``, or tables with one-shot overrides)."""
    if since is not None and full:
        raise UsageError(
            "--since and --full exclude each other.",
            fix="use --since to export from a point, or --full to export every row",
        )
    if (since is not None or full) and not tables:
        flag = "--since" if since is not None else "--full"
        raise UsageError(
            f"{flag} needs --tables: it overrides the watermark of the named tables only.",
            fix=f"add --tables NAME[,NAME...] (e.g. --tables orders {flag}{' VALUE' if since else ''})",
        )
    if not tables:
        return {}
    document: dict[str, Any] = {"tables": list(tables)}
    if since is not None:
        value = parse_since(since)
        document["overrides"] = {name: {"since": value} for name in tables}
    elif full:
        document["overrides"] = {name: {"full_resync": True} for name in tables}
    try:
        parse_input(document)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return document


def execution_name(prefix: str, now: datetime | None = None) -> str:
    """Time-ordered and unique: ``sync-20240101T120000Z-1a2b3c``."""
    moment = now or datetime.now(UTC)
    return f"{prefix}-{moment.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"--name {name!r} is not a valid execution name.",
            fix="use 1-80 letters, digits, '-' or '_' (names are unique per state machine for 90 days)",
        )
    return name
