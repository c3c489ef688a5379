"""The unit tier: tests that need no server, so ``make test-fast`` runs them in seconds on a machine
without PostgreSQL. The session stack of tests/conftest.py must never start here: a unit test that
asks for it (directly or through ``stack``, ``lambda_env`` or a world) fails at once, naming where
such a test belongs, instead of silently starting PostgreSQL, moto and the emulators."""

from __future__ import annotations

from typing import NoReturn

import pytest


@pytest.fixture(scope="session")
def local_stack() -> NoReturn:
    pytest.fail(
        "this test needs the local stack, and tests/unit runs without servers: "
        "move the test to tests/library (or tests/workflow for runs of the state machine)",
        pytrace=False,
    )
