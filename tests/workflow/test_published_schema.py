"""A schema nobody here wrote, created exactly as its authors publish it, replicated without
changing it: PostgreSQL's own pgbench schema (``pgbench -i --foreign-keys``: TPC-B-like accounts,
tellers and branches with primary and foreign keys, no timestamp, no trigger), configured with
modes ``xmin`` and ``full`` and ``hard_deletes: reconcile``, through the CLI a user runs.

Then pgbench's built-in TPC-B-like transactions update balances, rows are deleted outright and
inserted, and the next sync must leave FINAL equal to the source for every table. The fourth
pgbench table, ``pgbench_history``, has no primary key or unique column: no key-based sync can
merge its rows (``config validate`` warns that no unique index covers a key), so it is left out
here as a user would leave it out.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql
from psycopg2.extensions import parse_dsn
from world import CLOCK_SCALE, read_clock, set_clock

from aurora_sync_ops.cli import main
from aurora_sync_ops.local.stack import Stack
from aurora_sync_ops.local.wiring import connect_bucket_to_snowpipe


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def pgbench(stack: dict[str, Any], schema: str, *args: str) -> str:
    dsn = parse_dsn(stack["postgres"]["admin_dsn"])
    binary = Path(stack["postgres"]["bin_dir"]) / "pgbench"
    env = {**os.environ, "PGPASSWORD": dsn["password"], "PGOPTIONS": f"-c search_path={schema}"}
    done = subprocess.run(
        [
            str(binary),
            "--host",
            dsn["host"],
            "--port",
            str(dsn["port"]),
            "--username",
            dsn["user"],
            *args,
            dsn["dbname"],
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def world(
    stack: dict[str, Any], local_stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:6]
    schema, path = f"pgb_{tag}", f"/aurora-sync-test/pgb-{tag}"
    admin = psycopg2.connect(stack["postgres"]["admin_dsn"])
    admin.autocommit = True
    user = sql.Identifier(stack["postgres"]["user"])
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    # Tables, rows (scale 1: 100,000 accounts), VACUUM, primary keys, foreign keys.
    pgbench(stack, schema, "--initialize", "--scale=1", "--foreign-keys", "--quiet")
    with admin.cursor() as cur:
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), user))
        cur.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(sql.Identifier(schema), user)
        )
    # Table names are S3 prefixes in the stack's shared bucket: unique per world.
    names = {
        "accounts": f"pgb{tag}_accounts",
        "tellers": f"pgb{tag}_tellers",
        "branches": f"pgb{tag}_branches",
    }
    configs = {
        names["accounts"]: {
            "schema": schema,
            "table": "pgbench_accounts",
            "primary_key": ["aid"],
            "mode": "xmin",
            "hard_deletes": "reconcile",
        },
        names["tellers"]: {
            "schema": schema,
            "table": "pgbench_tellers",
            "primary_key": ["tid"],
            "mode": "xmin",
            "hard_deletes": "reconcile",
        },
        names["branches"]: {
            "schema": schema,
            "table": "pgbench_branches",
            "primary_key": ["bid"],
            "mode": "full",
        },
    }
    file = tmp_path_factory.mktemp("pgbench") / "tables.json"
    file.write_text(json.dumps(configs))
    settings = local_stack.settings
    stack_flags = ["--local", "--state-dir", str(settings.root), "--port-base", str(settings.ports.postgres)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["config", "push", str(file), *stack_flags, "--config-path", path]) == 0
        assert main(["sql", "snowflake", "--setup", "--apply", *stack_flags, "--config-path", path]) == 0
    connect_bucket_to_snowpipe(stack)
    set_clock(stack, CLOCK_SCALE)  # the syncs' Wait states, as in every world (tests/support/world.py)
    yield {
        "schema": schema,
        "admin": admin,
        "names": names,
        "file": file,
        "flags": [*stack_flags, "--config-path", path],
        "sync": [*stack_flags, "--config-path", path, "--local-stack-name", f"pgb-{tag}"],
    }
    set_clock(stack, 1)
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    admin.close()


def test_the_published_schema_validates_as_is(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any], stack: dict[str, Any]
) -> None:
    code, out, err = cli(
        capsys, "config", "validate", str(world["file"]), "--source-dsn", stack["postgres"]["admin_dsn"]
    )
    assert code == 0, out + err


def test_pgbench_traffic_hard_deletes_and_inserts_reach_final_with_parity(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any], stack: dict[str, Any]
) -> None:
    code, out, err = cli(capsys, "sync", *world["sync"])
    assert code == 0, out + err

    # pgbench's own TPC-B-like transactions: balances of accounts, tellers and branches change.
    pgbench(
        stack, world["schema"], "--builtin=tpcb-like", "--time=4", "--client=2", "--rate=100", "--no-vacuum"
    )
    schema = sql.Identifier(world["schema"])
    with world["admin"].cursor() as cur:
        # Hard deletes, as the application would do them (children first: the foreign keys hold).
        cur.execute(sql.SQL("DELETE FROM {}.pgbench_history WHERE aid % 1000 = 7").format(schema))
        cur.execute(sql.SQL("DELETE FROM {}.pgbench_accounts WHERE aid % 1000 = 7").format(schema))
        deleted = cur.rowcount
        cur.execute(
            sql.SQL(
                "INSERT INTO {}.pgbench_accounts SELECT 100000 + i, 1, 0, '' FROM generate_series(1, 50) i"
            ).format(schema)
        )
        cur.execute(sql.SQL("DELETE FROM {}.pgbench_history WHERE tid = 10").format(schema))
        cur.execute(sql.SQL("DELETE FROM {}.pgbench_tellers WHERE tid = 10").format(schema))
        cur.execute(sql.SQL("INSERT INTO {}.pgbench_branches VALUES (2, 0, 'second branch')").format(schema))
    assert deleted == 100

    code, out, err = cli(capsys, "sync", *world["sync"])
    assert code == 0, out + err

    clock = read_clock(stack)
    assert clock["scale"] == CLOCK_SCALE and {"kind": "wait", "seconds": 2} in clock["sleeps"], clock

    code, out, err = cli(capsys, "parity", *world["flags"], "--json")
    reports = {r["table"]: r for r in json.loads(out)["tables"]}
    names = world["names"]
    assert code == 0, reports
    assert reports[names["accounts"]]["source_rows"] == 100_000 - 100 + 50
    assert reports[names["tellers"]]["source_rows"] == 9
    assert reports[names["branches"]]["source_rows"] == 2
    assert all(r["equal"] for r in reports.values()), reports
