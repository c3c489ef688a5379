"""`aurora-sync parity` when the configured key holds values FINAL cannot hold or sorts specially.

Given source tables whose configured primary key (no PK constraint) holds NULL, numeric NaN and
±Infinity, digits past NUMBER(38,9), and float NaN/±Infinity, next to ordinary rows, and FINAL
copies that differ from them; when parity compares them, then it does not crash: a source row
whose key cannot exist in FINAL is missing in FINAL with its key as PostgreSQL prints it, float
NaN/±Infinity keys (which FINAL holds) are compared like any key, and every other row is still
compared.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import snowflake.connector
from psycopg2 import sql

from aurora_sync.snowflake_objects import table_spec
from aurora_sync.snowflake_tables import SnowflakeSetup, render_table
from aurora_sync.source_catalog import read_columns
from aurora_sync_ops import cli
from aurora_sync_ops.environment import local_external_id
from aurora_sync_ops.local.stack import Stack
from aurora_sync_ops.snowflake_sql import render_setup

TABLES: dict[str, tuple[str, list[str], list[str], list[str]]] = {
    # name: (source columns, source rows, key, FINAL rows as (key..., note) SQL values)
    "num_keys": (
        "id numeric, note text, updated_at timestamptz",
        [
            "(1, 'a')",
            "(2, 'b')",
            "(3, 'c')",
            "(NULL, 'null key')",
            "('NaN', 'nan')",
            "('Infinity', 'inf')",
            "('-Infinity', '-inf')",
            "(1.0000000001, 'ten decimals')",
        ],
        ["id"],
        ["(1, 'a')", "(2, 'changed in FINAL')", "(4, 'only in FINAL')"],
    ),
    "float_keys": (
        "id float8, note text, updated_at timestamptz",
        ["('-Infinity', 'x')", "(1.5, 'x')", "('Infinity', 'x')", "('NaN', 'x')", "(NULL, 'x')"],
        ["id"],
        [
            "('-inf'::FLOAT, 'x')",
            "(1.5, 'x')",
            "('inf'::FLOAT, 'x')",
            "('nan'::FLOAT, 'changed in FINAL')",
        ],
    ),
    "pair_keys": (
        "tenant integer, code numeric(10,2), note text, updated_at timestamptz",
        ["(1, 1.50, 'x')", "(1, 'NaN', 'x')", "(2, NULL, 'x')", "(2, 7, 'x')"],
        ["tenant", "code"],
        ["(1, 1.5, 'x')", "(2, 7, 'x')"],
    ),
}


@pytest.fixture(scope="module")
def world(stack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:6]
    schema = f"pkeys_{tag}"
    admin = psycopg2.connect(stack["postgres"]["admin_dsn"])
    admin.autocommit = True
    aws = stack["aws"]
    setup = SnowflakeSetup(
        bucket=aws["bucket"],
        storage_role_arn=f"arn:aws:iam::{aws['account_id']}:role/aurora-sync-snowflake-storage",
        storage_external_id=local_external_id(aws),
        database=stack["snowflake"]["database"],
    )
    warehouse = snowflake.connector.connect(**stack["snowflake"])
    cursor = warehouse.cursor()
    for statement in render_setup(setup):
        cursor.execute(statement)
    configs = {}
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for name, (columns, rows, key, final_rows) in TABLES.items():
            table = sql.Identifier(schema, name)
            cur.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(columns)))
            width = len(key) + 1
            insert = sql.SQL("INSERT INTO {} VALUES {}").format(
                table,
                sql.SQL(", ").join(
                    sql.SQL(row[:-1] + ", timestamptz '2026-01-01 00:00:00+00')") for row in rows
                ),
            )
            cur.execute(insert)
            target = f"PK{tag.upper()}_{name.upper()}"
            configs[name] = {"schema": schema, "table": name, "primary_key": key, "target": target}
            spec = table_spec(
                name=name,
                target=target,
                catalog=read_columns(cur, schema, name),
                schema=schema,
                table=name,
                columns=None,
                primary_key=key,
                cursor="updated_at",
            )
            for statement in render_table(setup, spec):
                cursor.execute(statement)
            names = ", ".join(f'"{n}"' for n in spec.snowflake_names[:width])
            values = ", ".join(r[:-1] + ", '2026-01-01 00:00:00+00'::TIMESTAMP_TZ)" for r in final_rows)
            cursor.execute(
                f'INSERT INTO {setup.objects(target).final_table} ({names}, "UPDATED_AT") VALUES {values}'
            )
    path = tmp_path_factory.mktemp("pkeys") / "tables.json"
    path.write_text(json.dumps(configs))
    yield {"config": path}
    warehouse.close()
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    admin.close()


def parity(capsys: pytest.CaptureFixture[str], local_stack: Stack, config: Path, *extra: str) -> Any:
    settings = local_stack.settings
    code = cli.main(
        [
            "parity",
            "--local",
            "--state-dir",
            str(settings.root),
            "--port-base",
            str(settings.ports.postgres),
            "--config",
            str(config),
            *extra,
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_final_cannot_hold_are_missing_with_their_postgresql_text(
    capsys: pytest.CaptureFixture[str], local_stack: Stack, world: dict[str, Any]
) -> None:
    code, out, err = parity(capsys, local_stack, world["config"], "--json")
    assert code == 1, err
    reports = {t["table"]: t for t in json.loads(out)["tables"]}
    assert {name: r["error"] for name, r in reports.items()} == dict.fromkeys(TABLES)

    numbers = reports["num_keys"]
    assert (numbers["source_rows"], numbers["final_rows"]) == (8, 3)
    assert numbers["counts"] == {"missing": 6, "extra": 1, "different": 1}
    # In the source's key order: -Infinity first, NaN after Infinity, NULL last.
    assert numbers["missing"] == [
        '["-Infinity"]',
        '["1.0000000001"]',
        '["3"]',
        '["Infinity"]',
        '["NaN"]',
        "[null]",
    ]
    assert (numbers["extra"], numbers["different"]) == (['["4"]'], ['["2"]'])

    # Snowflake FLOAT holds NaN and ±inf: those rows are compared, only the NULL key is missing.
    floats = reports["float_keys"]
    assert (floats["source_rows"], floats["final_rows"]) == (5, 4)
    assert floats["counts"] == {"missing": 1, "extra": 0, "different": 1}
    assert (floats["missing"], floats["different"]) == (["[null]"], ['["nan"]'])

    pairs = reports["pair_keys"]
    assert pairs["counts"] == {"missing": 2, "extra": 0, "different": 0}
    assert pairs["missing"] == ['["1", "NaN"]', '["2", null]']


def test_the_text_report_lists_them_like_any_missing_key(
    capsys: pytest.CaptureFixture[str], local_stack: Stack, world: dict[str, Any]
) -> None:
    code, out, err = parity(capsys, local_stack, world["config"], "--tables", "pair_keys")
    assert code == 1, err
    lines = out.splitlines()
    assert lines[1].split() == ["pair_keys", "4", "2", "2", "0", "0", "NO"]
    assert lines[2] == 'pair_keys: missing (in the source, not in FINAL): key ["1", "NaN"], ["2", null]'
