"""Changing a table's primary key, driven through the CLI on the full local stack.

Given a table synced with key [id] while it held one tenant, when a second tenant's rows arrive
with the same ids and the config file changes the key to [tenant, id], then `config push` and
`sql snowflake` refuse the new key (either alone would let the MERGE collapse the tenants' rows),
and the documented re-key (`sql snowflake --rekey --apply`, `config push --rekey`, `sync --full`)
ends with FINAL equal to the source, every row of both tenants.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import snowflake.connector
from psycopg2 import sql
from world import set_clock

from aurora_sync_ops.cli import main
from aurora_sync_ops.environment import local_aws_client
from aurora_sync_ops.local.stack import Stack
from aurora_sync_ops.local.wiring import connect_bucket_to_snowpipe

CLOCK_SCALE = 0.05
# Ids 1..5 of one tenant, at fixed instants an hour apart per tenant.
INSERT = (
    "INSERT INTO {t} SELECT %s, i, 'note ' || i, timestamptz '2026-01-01 00:00:00+00' "
    "+ %s * interval '1 hour' + i * interval '1 second' FROM generate_series(1, 5) i"
)


@dataclass
class Ran:
    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return Ran(code, out, err)


@dataclass
class World:
    schema: str
    table: str
    config_path: str
    stack_name: str
    stack_flags: list[str]
    admin: Any
    final: str

    def file(self, directory: Path, key: list[str]) -> Path:
        path = directory / f"tables-{'-'.join(key)}.json"
        entry = {"schema": self.schema, "table": self.table, "primary_key": key, "lookback_seconds": 0}
        path.write_text(json.dumps({self.table: entry}))
        return path

    @property
    def flags(self) -> list[str]:
        return [*self.stack_flags, "--config-path", self.config_path]


@pytest.fixture(scope="module")
def world(stack: dict[str, Any], local_stack: Stack) -> Iterator[World]:
    set_clock(stack, CLOCK_SCALE)
    tag = uuid.uuid4().hex[:8]
    # The table name is the S3 prefix in the shared bucket: unique, or pipes cross-load.
    schema, table = f"rekey_{tag}", f"accounts_{tag}"
    settings = local_stack.settings
    stack_flags = ["--local", "--state-dir", str(settings.root), "--port-base", str(settings.ports.postgres)]
    admin = psycopg2.connect(stack["postgres"]["admin_dsn"])
    admin.autocommit = True
    user = sql.Identifier(stack["postgres"]["user"])
    relation = sql.Identifier(schema, table)
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), user))
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (tenant integer NOT NULL, id integer NOT NULL, note text, "
                "updated_at timestamptz NOT NULL, PRIMARY KEY (tenant, id))"
            ).format(relation)
        )
        cur.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(relation, user))
        cur.execute(sql.SQL(INSERT).format(t=relation), (1, 1))
    final = f'"{stack["snowflake"]["database"]}"."FINAL"."{table.upper()}"'
    yield World(schema, table, f"/aurora-sync-test/rekey-{tag}", f"rekey-{tag}", stack_flags, admin, final)
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    admin.close()
    set_clock(stack, 1)


def final_rows(stack: dict[str, Any], world: World) -> tuple[int, list[str]]:
    with snowflake.connector.connect(**stack["snowflake"]) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {world.final}")
        count = cur.fetchone()
        cur.execute(f"SHOW PRIMARY KEYS IN TABLE {world.final}")
        key = [row[4] for row in sorted(cur.fetchall(), key=lambda row: row[5])]
    assert count is not None
    return int(count[0]), key


def row_of(ran: Ran, table: str) -> list[str]:
    return next(line.split() for line in ran.out.splitlines() if line.split()[:1] == [table])


def test_a_new_primary_key_is_refused_then_rekeyed_to_parity(
    capsys: pytest.CaptureFixture[str], stack: dict[str, Any], world: World, tmp_path: Path
) -> None:
    table = world.table
    old = world.file(tmp_path, ["id"])
    assert cli(capsys, "config", "push", str(old), *world.flags).code == 0
    applied = cli(capsys, "sql", "snowflake", "--setup", "--apply", *world.flags)
    assert applied.code == 0, applied.err
    connect_bucket_to_snowpipe(stack)
    sync = ["--config-path", world.config_path, "--local-stack-name", world.stack_name]
    first = cli(capsys, "sync", "--tables", table, *world.stack_flags, *sync)
    assert first.code == 0, first.err
    assert row_of(first, table)[:5] == [table, "MERGED", "5", "5", "5"]

    # Tenant 2 reuses tenant 1's ids: [id] no longer identifies a row.
    with world.admin.cursor() as cur:
        cur.execute(sql.SQL(INSERT).format(t=sql.Identifier(world.schema, table)), (2, 2))
    new = world.file(tmp_path, ["tenant", "id"])

    push = cli(capsys, "config", "push", str(new), *world.flags)
    assert push.code == 1
    assert f"1. aurora-sync sql snowflake --config {new} --tables {table} --rekey" in push.err
    ssm = local_aws_client("ssm", stack["aws"])
    stored = ssm.get_parameter(Name=f"{world.config_path}/{table}")["Parameter"]["Value"]
    assert json.loads(stored)["primary_key"] == ["id"]

    refused = cli(
        capsys, "sql", "snowflake", "--config", str(new), "--tables", table, "--apply", *world.flags
    )
    assert refused.code == 1
    assert refused.err.startswith(
        f'aurora-sync: table {table}: FINAL.{table.upper()} is keyed on ("ID"), the config on '
        '("TENANT", "ID"): nothing was applied for it'
    )
    assert f"aurora-sync sql snowflake --config {new} --tables {table} --rekey --apply" in refused.err
    assert final_rows(stack, world) == (5, ["ID"])

    rekeyed = cli(
        capsys,
        "sql",
        "snowflake",
        "--config",
        str(new),
        "--tables",
        table,
        "--rekey",
        "--apply",
        *world.flags,
    )
    assert rekeyed.code == 0, rekeyed.err
    assert final_rows(stack, world) == (0, ["TENANT", "ID"])
    assert cli(capsys, "config", "push", str(new), "--rekey", *world.flags).code == 0

    full = cli(capsys, "sync", "--tables", table, "--full", *world.stack_flags, *sync)
    assert full.code == 0, full.err
    assert row_of(full, table)[:5] == [table, "MERGED", "10", "10", "10"]
    parity = cli(capsys, "parity", "--tables", table, "--json", *world.flags)
    assert parity.code == 0, parity.out
    [report] = json.loads(parity.out)["tables"]
    assert (report["equal"], report["source_rows"], report["final_rows"]) == (True, 10, 10)
