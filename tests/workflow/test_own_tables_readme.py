"""README "Try it on your own tables", run exactly as written against the test stack.

The section's fenced bash blocks are taken from README.md and run one by one with
``bash -euo pipefail`` in a directory holding only a link to this repository's ``.venv`` (so the
``.venv/bin/aurora-sync`` of the text works and ``books.yaml`` lands outside the worktree). The
environment aims the CLI at the test stack (``AURORA_SYNC_LOCAL_DIR``/``AURORA_SYNC_PORT_BASE``)
and at an SSM path of its own (``AURORA_SYNC_CONFIG_PATH``), so the demo's configs under the
default path neither run here nor get pruned; production variables are removed, as in a fresh
shell. What the section creates in the shared stack (the PostgreSQL table, the Snowflake objects
and ledger rows of target BOOKS, the files under ``books/``) is removed before and after.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests
import snowflake.connector

from aurora_sync.snowflake_tables import SnowflakeSetup, render_drop_table
from aurora_sync_ops.environment import local_aws_client
from aurora_sync_ops.local.stack import REPO_ROOT, Stack

SECTION = "## Try it on your own tables"
TABLE, TARGET = "books", "BOOKS"


def readme_blocks() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION + "\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)


def final_rows(output: str) -> list[list[str]]:
    """The rows of the last table `aurora-sync local sql` printed (between its rule and its count)."""
    lines = output.splitlines()
    rule = max(i for i, line in enumerate(lines) if re.fullmatch(r"-+(-\+-+)*", line))
    rows: list[list[str]] = []
    for line in lines[rule + 1 :]:
        if re.fullmatch(r"\(\d+ rows?\)", line):
            return rows
        rows.append([cell.strip() for cell in line.split(" | ")])
    raise AssertionError(f"no row count after the table:\n{output}")


def remove_books(stack: dict[str, Any]) -> None:
    """Everything the section creates for `books` in the shared stack, gone (idempotent)."""
    admin = psycopg2.connect(stack["postgres"]["admin_dsn"])
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS public.books")
    finally:
        admin.close()
    aws = stack["aws"]
    setup = SnowflakeSetup(
        bucket=aws["bucket"],
        storage_role_arn=f"arn:aws:iam::{aws['account_id']}:role/aurora-sync-snowflake-storage",
        database=stack["snowflake"]["database"],
    )
    ledger = f"{setup.database}.{setup.staging_schema}"
    with snowflake.connector.connect(**stack["snowflake"]) as conn, conn.cursor() as cur:
        for statement in render_drop_table(setup, TARGET):
            cur.execute(statement)
        for table in ('"_AURORA_SYNC_FILES"', '"_AURORA_SYNC_RUNS"'):
            cur.execute(f"DELETE FROM {ledger}.{table} WHERE TARGET = %s", (TARGET,))
    s3 = local_aws_client("s3", aws)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=aws["bucket"], Prefix=f"{TABLE}/"):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=aws["bucket"], Key=item["Key"])


@pytest.fixture
def shell(local_stack: Stack, stack: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    config_path = f"/aurora-sync-test/readme-{uuid.uuid4().hex[:8]}/"
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "SNOWFLAKE_", "AURORA_SYNC_", "PG"))
    }
    environ.update(
        AURORA_SYNC_LOCAL_DIR=str(local_stack.settings.root),
        AURORA_SYNC_PORT_BASE=str(local_stack.settings.ports.postgres),
        AURORA_SYNC_CONFIG_PATH=config_path,
    )
    # The Step Functions clock as a user's stack runs it: Wait states last their real seconds, so
    # the first look of the verifier comes after Snowpipe's event-driven load (see the test).
    clock = f"{stack['aws']['endpoint_url']}/moto-api/aurora-sync/clock"
    requests.post(clock, json={"scale": 1}, timeout=5).raise_for_status()
    remove_books(stack)
    yield {"cwd": tmp_path, "env": environ}
    remove_books(stack)
    ssm = local_aws_client("ssm", stack["aws"])
    with contextlib.suppress(ssm.exceptions.ParameterNotFound):  # failed before `config push`
        ssm.delete_parameter(Name=f"{config_path}{TABLE}")


def run_block(shell: dict[str, Any], block: str) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=shell["cwd"],
        env=shell["env"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"README block failed ({result.returncode}):\n{block}\n---\n{output}"
    return output


def test_the_readme_section_runs_as_written(shell: dict[str, Any]) -> None:
    blocks = readme_blocks()
    assert len(blocks) == 5, f"expected the section's 5 steps, found {len(blocks)}"
    create, config, objects, first, change = blocks

    assert "INSERT 0 2" in run_block(shell, create)

    pushed = run_block(shell, config)
    assert "1 valid; 0 error(s)" in pushed
    assert re.search(rf"created\s+{TABLE}\s+{shell['env']['AURORA_SYNC_CONFIG_PATH']}{TABLE}", pushed)

    applied = run_block(shell, objects)
    assert applied.count("GRANT") == 2
    assert re.search(r"-- applied \d+ statement\(s\) in order", applied)

    synced = run_block(shell, first)
    assert re.search(r"execution: \S+ SUCCEEDED", synced)
    # The bucket was wired by `local up`: the first look already finds the file loaded (an
    # unwired bucket leaves it "not seen by the pipe" until the verifier refreshes the pipe).
    assert f"verify #1: 1 pending ({TABLE}: every file loaded and accounted for" in synced
    assert "parity: 1 table(s) equal" in synced
    assert final_rows(synced) == [["1", "Dune", "9.99"], ["2", "Emma", "5.50"]]

    again = run_block(shell, change)
    assert re.search(r"execution: \S+ SUCCEEDED", again)
    assert "parity: 1 table(s) equal" in again
    assert final_rows(again) == [["1", "Dune", "9.99"], ["2", "Emma", "7.25"], ["3", "Ulysses", "12.00"]]
