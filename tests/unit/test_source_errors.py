"""classify_source_error without a server; the source connection against PostgreSQL is
tests/library/test_source_db.py."""

from __future__ import annotations

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from aurora_sync.errors import (
    SourceUnavailable,
)
from aurora_sync.source_db import classify_source_error


def test_classify_redacts_the_password_and_keeps_the_cause() -> None:
    cause = psycopg2.OperationalError("could not connect: password=hunter2-xyz rejected")
    error = classify_source_error(cause, context="Aurora db", redact=("hunter2-xyz",))
    assert isinstance(error, SourceUnavailable)
    assert "hunter2-xyz" not in str(error)
    assert "password=*** rejected" in str(error)
    assert error.__cause__ is cause
