"""Fixtures shared by every test: the local stack of real servers, and a Lambda-like environment.

The suite starts its own stack (state in ``.local/test``, ports from 25452) so it never touches
a developer's ``aurora-sync local up`` stack, and stops it at the end unless it was already
running. Under pytest-xdist (``make test`` runs two workers, a test file each at a time) worker
``gwN`` has a stack of its own, under ``<test dir>/gwN`` at the port base + 100·N, so the workers
share no server. Knobs: ``AURORA_SYNC_TEST_DIR``, ``AURORA_SYNC_TEST_PORT_BASE``,
``AURORA_SYNC_KEEP_STACK=1`` (leave it running for the next run), ``AURORA_SYNC_STACK_ONLY``
(comma-separated parts, while developing one of them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector

from aurora_sync.naming import quote
from aurora_sync_ops.local.stack import REPO_ROOT, Stack, settings_from_env

TEST_PORT_BASE = 25452
# The session's stack once ``local_stack`` started it; empty until a module needs the stack.
_STARTED: list[Stack] = []


# The files that take longest, longest first (measured in the pre-check runs: test_state_limits
# about 6 minutes, randomized parity 4, the rest 1-2). Two workers take one file after the other
# (``--dist loadfile --no-loadscope-reorder``: xdist would otherwise order the files by their
# number of tests, which put the 6-minute file of one test last, alone on one worker at the end).
SLOWEST_FIRST = (
    "tests/workflow/test_state_limits.py",
    "tests/workflow/test_randomized_parity.py",
    "tests/infra/test_function_packages.py",
    "tests/workflow/test_faults.py",
    "tests/workflow/test_demo.py",
    "tests/workflow/test_lanes.py",
    "tests/workflow/test_end_to_end.py",
    "tests/local_stack/test_sfn_limits.py",
    "tests/workflow/test_own_tables_readme.py",
    "tests/workflow/test_published_schema.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest files first, each file's tests in their order, then the rest as collected."""
    rank = {name: place for place, name in enumerate(SLOWEST_FIRST)}

    def place(item: pytest.Item) -> int:
        return rank.get(item.path.relative_to(REPO_ROOT).as_posix(), len(rank))

    items.sort(key=place)


def drop_pipes(status: dict[str, Any]) -> list[str]:
    """Drop every pipe on the test stack's Snowflake; returns their names.

    A pipe loads every file under its S3 prefix, and a prefix is a table's config name: tests
    share names (``orders`` in the planner, inspect, sync and end-to-end tests and the demo), and
    the emulator keeps pipes across stack restarts. A pipe left behind loads each later test's
    files into a table of another shape, and that failed load (seconds to half a minute for the
    demo's files) holds the one Snowpipe loader the later test is waiting for.
    """
    with snowflake.connector.connect(**status["snowflake"]) as conn:
        cur = conn.cursor()
        cur.execute("SHOW PIPES IN ACCOUNT")
        columns = [d[0].lower() for d in cur.description]
        names = [
            ".".join(quote(row[columns.index(part)]) for part in ("database_name", "schema_name", "name"))
            for row in cur.fetchall()
        ]
        for name in names:
            cur.execute(f"DROP PIPE IF EXISTS {name}")
    return names


def _snowflake_alive(status: dict[str, Any]) -> bool:
    # AURORA_SYNC_STACK_ONLY may leave it out, and a module may leave it stopped.
    return bool(status.get("services", {}).get("snowflake", {}).get("alive"))


@pytest.fixture(scope="session")
def local_stack() -> Iterator[Stack]:
    root = Path(os.environ.get("AURORA_SYNC_TEST_DIR") or REPO_ROOT / ".local" / "test")
    base = int(os.environ.get("AURORA_SYNC_TEST_PORT_BASE") or TEST_PORT_BASE)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker:
        root, base = root / worker, base + 100 * int(worker.removeprefix("gw"))
    stack = Stack(settings_from_env(root=root, port_base=base))
    was_running = stack.status()["running"]
    only = os.environ.get("AURORA_SYNC_STACK_ONLY")
    status = stack.up(only=only.split(",") if only else None)
    if _snowflake_alive(status):
        drop_pipes(status)  # left by an earlier session: each test module starts without pipes
    _STARTED.append(stack)
    yield stack
    _STARTED.clear()
    if not was_running and not os.environ.get("AURORA_SYNC_KEEP_STACK"):
        stack.down()


@pytest.fixture(scope="module", autouse=True)
def _drop_the_modules_pipes() -> Iterator[None]:
    """After each module that used the stack, drop the pipes it created (see ``drop_pipes``)."""
    yield
    if _STARTED:
        status = _STARTED[0].status()
        if _snowflake_alive(status):
            drop_pipes(status)


@pytest.fixture(scope="session")
def stack(local_stack: Stack) -> dict[str, Any]:
    """``aurora-sync local status --json`` of the running test stack."""
    return local_stack.status()


@pytest.fixture
def lambda_env(stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The environment a deployed Lambda has, pointed at the local stack.

    AWS credentials are the Lambda role's (from STS AssumeRole), as on AWS; only the endpoint
    differs.
    """
    from aurora_sync.settings import runtime_settings

    aws = stack["aws"]
    creds = aws["lambda_credentials"]
    env = {
        "AWS_ENDPOINT_URL": aws["endpoint_url"],
        "AWS_REGION": aws["region"],
        "AWS_DEFAULT_REGION": aws["region"],
        "AWS_ACCESS_KEY_ID": creds["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_access_key"],
        "AWS_SESSION_TOKEN": creds["session_token"],
        "CONFIG_SSM_PATH": aws["config_ssm_path"],
        "EXPORT_BUCKET": aws["bucket"],
        "EXPORT_KMS_KEY_ARN": aws["kms_key_arn"],
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "AuroraSnowflakeSync",
    }
    vault = stack.get("vault") or {}
    if vault:
        env.update(
            VAULT_ADDR=vault["addr"],
            VAULT_ROLE=vault["role"],
            VAULT_IAM_SERVER_ID=vault["iam_server_id"],
        )
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runtime_settings.cache_clear()
    yield env
    runtime_settings.cache_clear()
