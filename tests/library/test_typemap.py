"""The one type map, proven on the real PostgreSQL: every type's export text, edge values included."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from pgcsv import parse_pg_csv
from psycopg2 import sql

from aurora_sync.source_catalog import read_columns
from aurora_sync.typemap import UNREPRESENTABLE_COLUMN, PgType, map_column, unrepresentable_expression

DDL = """
DROP SCHEMA IF EXISTS typemap CASCADE;
CREATE SCHEMA typemap;
CREATE TYPE typemap.mood AS ENUM ('sad', 'happy');
CREATE DOMAIN typemap.positive_int AS integer CHECK (VALUE > 0);
CREATE TABLE typemap."All Types" (
    id integer PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint,
    n_ps numeric(12,2), n_free numeric, n_wide numeric(50,20),
    r real, d double precision, b boolean,
    t text, vc varchar(20), ch char(5), u uuid,
    dt date, tm time, ts timestamp, tstz timestamptz, iv interval,
    js json, jb jsonb,
    arr_i integer[], arr_t text[], arr_2d integer[][],
    by bytea, en typemap.mood, ip inet, net cidr, dom typemap.positive_int
);
"""

ROWS = [
    # Ordinary values, and the boundaries of each type Snowflake can hold.
    """(1, -32768, 2147483647, -9223372036854775808,
        1234567890.12, 1.5, 123456789012345678.12345678901234567890,
        1.5, 0.1, true,
        'multi
line "quoted", comma', 'żółw 🐢', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        '2024-02-29', '23:59:59.999999', '2024-01-02 03:04:05.123456',
        '2024-01-02 03:04:05.123456+05:30', '1 year 2 months 3 days 04:05:06.5',
        '{"b": 1,  "a": [1,2]}', '{"b":1,"a":[1,2]}',
        '{1,NULL,3}', '{"a,b",""}', '{{1,2},{3,4}}',
        '\\xdeadbeef', 'happy', '192.168.0.1/24', '10.0.0.0/8', 7)""",
    # NULL everywhere but the key, then the empty values that must stay distinct from NULL.
    "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    """(3, 0, 0, 0, 0, 0, 0, 'NaN', 'NaN', false, '', '', '', NULL, NULL, NULL, NULL, NULL, '0',
        '""', '{}', '{}', '{}', '{}', '', 'sad', '::1', '::/0', 1)""",
    # Values Snowflake cannot hold.
    """(4, 1, 1, 1, 'NaN', 'Infinity', 1e29, 'Infinity', '-Infinity', NULL, NULL, NULL, NULL, NULL,
        'infinity', '24:00:00', '-infinity', '0044-03-15 12:00:00+00 BC', NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)""",
    """(5, 1, 1, 1, NULL, 0.1234567891, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        '10000-01-01', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)""",
]


@pytest.fixture(scope="module")
def admin(stack: dict[str, Any]) -> Iterator[Any]:
    conn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(DDL)
        cur.execute('INSERT INTO typemap."All Types" VALUES ' + ", ".join(ROWS))
    yield conn
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA typemap CASCADE")
    conn.close()


@pytest.fixture(scope="module")
def exported(admin: Any) -> dict[int, dict[str, str | None]]:
    """The CSV the export SELECT writes, keyed by id and column name (as the exporter builds it)."""
    with admin.cursor() as cur:
        columns = read_columns(cur, "typemap", "All Types")
        mappings = [map_column(c.name, c.pg_type) for c in columns]
        select = sql.SQL("SELECT {cols}, {extra} FROM {table} ORDER BY id").format(
            cols=sql.SQL(", ").join(m.export for m in mappings),
            extra=unrepresentable_expression(mappings),
            table=sql.Identifier("typemap", "All Types"),
        )
        cur.execute("SET TimeZone = 'Asia/Tokyo'")  # the export must not depend on it
        cur.execute("SET IntervalStyle = iso_8601")
        buffer = io.StringIO()
        cur.copy_expert(
            sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(select).as_string(cur), buffer
        )
        cur.execute("RESET TimeZone")
    names = [m.column for m in mappings] + [UNREPRESENTABLE_COLUMN]
    return {int(str(row[0])): dict(zip(names, row, strict=True)) for row in parse_pg_csv(buffer.getvalue())}


def test_catalog_resolves_domains_arrays_enums_and_typmods(admin: Any) -> None:
    with admin.cursor() as cur:
        types = {c.name: c.pg_type for c in read_columns(cur, "typemap", "All Types")}
    assert types["dom"].name == "int4"
    assert types["n_ps"].formatted == "numeric(12,2)"
    assert types["arr_2d"].category == "A"
    assert types["arr_2d"].element == PgType("int4", "integer", "N")
    assert types["en"].category == "E"
    assert types["vc"].formatted == "character varying(20)"


def test_ordinary_values_export_exactly(exported: dict[int, dict[str, str | None]]) -> None:
    row = exported[1]
    assert (row["i2"], row["i4"], row["i8"]) == ("-32768", "2147483647", "-9223372036854775808")
    assert row["n_ps"] == "1234567890.12"
    assert row["n_free"] == "1.5"
    assert row["n_wide"] == "123456789012345678.12345678901234567890"
    assert (row["r"], row["d"], row["b"]) == ("1.5", "0.1", "true")
    assert row["t"] == 'multi\nline "quoted", comma'
    assert row["vc"] == "żółw 🐢"
    assert row["ch"] == "ab   "
    assert row["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert (row["dt"], row["tm"], row["ts"]) == (
        "2024-02-29",
        "23:59:59.999999",
        "2024-01-02T03:04:05.123456",
    )
    assert row["tstz"] == "2024-01-01T21:34:05.123456Z"  # UTC, whatever the session time zone
    assert row["iv"] == "P1Y2M3DT4H5M6.5S"
    assert row["js"] == '{"b": 1,  "a": [1,2]}'
    assert json.loads(row["jb"] or "") == {"a": [1, 2], "b": 1}
    assert json.loads(row["arr_i"] or "") == [1, None, 3]
    assert json.loads(row["arr_t"] or "") == ["a,b", ""]
    assert json.loads(row["arr_2d"] or "") == [[1, 2], [3, 4]]
    assert row["by"] == "deadbeef"
    assert (row["en"], row["ip"], row["net"], row["dom"]) == ("happy", "192.168.0.1/24", "10.0.0.0/8", "7")
    assert row[UNREPRESENTABLE_COLUMN] is None


def test_null_and_empty_stay_distinct(exported: dict[int, dict[str, str | None]]) -> None:
    assert all(value is None for name, value in exported[2].items() if name != "id")
    empty = exported[3]
    for column in ("t", "vc", "ch", "by"):
        assert empty[column] is not None, column
    assert (empty["t"], empty["vc"], empty["ch"], empty["by"]) == ("", "", "     ", "")
    assert (empty["js"], empty["jb"], empty["arr_i"], empty["arr_2d"]) == ('""', "{}", "[]", "[]")
    assert (empty["r"], empty["d"]) == ("NaN", "NaN")  # FLOAT holds NaN


def test_unrepresentable_values_become_null_with_their_source_text_kept(
    exported: dict[int, dict[str, str | None]],
) -> None:
    row = exported[4]
    assert (row["n_ps"], row["n_free"], row["n_wide"]) == (None, None, None)
    assert (row["r"], row["d"]) == ("inf", "-inf")  # FLOAT holds infinities: not unrepresentable
    assert (row["dt"], row["tm"], row["ts"], row["tstz"]) == (None, None, None, None)
    kept = json.loads(row[UNREPRESENTABLE_COLUMN] or "")
    assert kept == {
        "n_ps": "NaN",
        "n_free": "Infinity",
        "n_wide": "1" + "0" * 29 + "." + "0" * 20,
        "dt": "infinity",
        "tm": "24:00:00",
        "ts": "-infinity",
        "tstz": "0044-03-15 21:18:59+09:18:59 BC",
    }
    beyond = exported[5]
    assert beyond["n_free"] is None  # ten decimals do not fit NUMBER(38,9); never rounded
    assert json.loads(beyond[UNREPRESENTABLE_COLUMN] or "") == {"n_free": "0.1234567891", "dt": "10000-01-01"}
