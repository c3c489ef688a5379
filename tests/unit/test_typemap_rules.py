"""The type map's Snowflake types, without a server; the round trips through PostgreSQL and the
emulator are tests/library/test_typemap.py."""

from __future__ import annotations

from aurora_sync.typemap import PgType, map_column


def test_snowflake_types() -> None:
    def final(name: str, formatted: str, category: str = "X") -> str:
        return map_column("c", PgType(name, formatted, category)).final_type

    assert final("int8", "bigint") == "NUMBER(19,0)"
    assert final("numeric", "numeric(12,2)") == "NUMBER(12,2)"
    assert final("numeric", "numeric") == "NUMBER(38,9)"
    assert final("numeric", "numeric(50,20)") == "NUMBER(38,20)"
    assert final("timestamptz", "timestamp with time zone") == "TIMESTAMP_TZ(6)"
    assert final("timestamp", "timestamp without time zone") == "TIMESTAMP_NTZ(6)"
    assert final("varchar", "character varying(20)") == "VARCHAR(20)"
    assert final("_int4", "integer[]", "A") == "ARRAY"
    arr = map_column("c", PgType("_int4", "integer[]", "A"))
    assert (arr.staging_type, arr.final_expression('"C"')) == ("VARCHAR", 'PARSE_JSON("C")::ARRAY')
    assert map_column("c", PgType("jsonb", "jsonb", "U")).final_expression('"C"') == 'PARSE_JSON("C")'
    assert final("tsvector", "tsvector", "U") == "VARCHAR"
