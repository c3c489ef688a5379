"""Modes xmin and full in ``export_query``: the epoch-aware xmin window, the key phase and the key
snapshot's SELECT. Pure functions; the SQL tests evaluate the predicate in PostgreSQL over a
VALUES list whose column is named ``xmin``, so every 32-bit id can be tried."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql

from aurora_sync import export_query as q
from aurora_sync.messages import ChunkPosition, ExportWindow
from aurora_sync.source_catalog import SourceColumn
from aurora_sync.typemap import PgType

EPOCH = 1 << 32


@pytest.fixture
def pg(stack: dict[str, Any]) -> Iterator[Any]:
    conn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    conn.autocommit = True
    yield conn
    conn.close()


def column(name: str, typname: str = "int8", *, not_null: bool = True) -> SourceColumn:
    formatted = {
        "int8": "bigint",
        "int4": "integer",
        "text": "text",
        "timestamptz": "timestamp with time zone",
    }
    return SourceColumn(
        name=name, pg_type=PgType(typname, formatted[typname], "N" if typname.startswith("int") else "S"),
        not_null=not_null,
    )  # fmt: skip


def plan(mode: str = "xmin", *, key: list[SourceColumn] | None = None) -> q.ExportPlan:
    key = key or [column("id")]
    columns = [*key, column("note", "text", not_null=False)]
    return q.build_plan(
        columns,
        schema="s",
        table="t",
        name="t",
        configured_columns=None,
        cursor=None,
        primary_key=[c.name for c in key],
        mode=mode,  # type: ignore[arg-type]
    )


def test_no_watermark_or_a_watermark_an_epoch_behind_reads_everything(pg: Any) -> None:
    assert q.xmin_range(None, 5 * EPOCH + 10).everything
    far = q.xmin_range(str(5 * EPOCH + 10 - EPOCH), 5 * EPOCH + 10)  # D == 2^32
    assert far.everything and not far.went_back
    assert q.xmin_predicate(far).as_string(pg) == "TRUE"
    near = q.xmin_range(str(5 * EPOCH + 11 - EPOCH), 5 * EPOCH + 10)  # D == 2^32 - 1
    assert (near.lo, near.distance) == (10, EPOCH - 1)


def selected(pg: Any, window: q.XminRange, xmins: list[int]) -> list[int]:
    """The 32-bit xmins the predicate keeps, evaluated by PostgreSQL itself."""
    with pg.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT xmin FROM (VALUES {v}) AS v(xmin) WHERE {p} ORDER BY 1").format(
                v=sql.SQL(", ").join(sql.SQL("({}::bigint)").format(sql.Literal(x)) for x in xmins),
                p=q.xmin_predicate(window),
            )
        )
        return [int(row[0]) for row in cur.fetchall()]


def test_xmin_predicate_across_an_epoch_boundary(pg: Any) -> None:
    # The snapshot is just past the 5th wraparound; the watermark lies 100 ids before it.
    xmax = 5 * EPOCH + 10
    window = q.xmin_range(str(5 * EPOCH - 100), xmax)
    assert (window.lo, window.distance) == (10, 110)
    candidates = [
        EPOCH - 1,  # 5*2^32 - 1: written after the watermark, just before the wrap
        EPOCH - 100,  # exactly the watermark: inclusive
        EPOCH - 101,  # one before it
        EPOCH - 150,
        3,  # 5*2^32 + 3: the first normal id of the new epoch
        9,  # xmax - 1
        0,  # invalid, bootstrap and frozen ids are never "recent"
        1,
        2,
        10,  # aliases xmax itself: only an ancient frozen tuple can carry it; re-read, harmless
        1_000_000,  # 4*2^32 + 1e6: an ancient row, long before the watermark
    ]
    assert selected(pg, window, candidates) == [3, 9, 10, EPOCH - 100, EPOCH - 1]


def test_xmin_predicate_with_equal_watermark_and_far_watermark(pg: Any) -> None:
    xmax = 3 * EPOCH + 1000
    assert selected(pg, q.xmin_range(str(xmax), xmax), [999, 998, 3, EPOCH - 1]) == []
    assert selected(pg, q.xmin_range(str(xmax - 1), xmax), [999, 998, 1001]) == [999]
    # More than an epoch behind: everything, special ids included (the predicate is TRUE).
    assert selected(pg, q.xmin_range(str(xmax - EPOCH - 5), xmax), [2, 999, 5000]) == [2, 999, 5000]


def test_key_phase_walks_the_primary_key_with_the_mode_predicate(pg: Any) -> None:
    xmin_plan = plan("xmin")
    window = ExportWindow(watermark="100", source="final")
    changed = q.xmin_predicate(q.xmin_range("100", 150))
    assert q.first_phase("xmin", window) == "key" and q.first_phase("full", ExportWindow()) == "key"
    assert q.first_phase("cursor", window) == "cursor"
    assert q.first_phase("cursor", ExportWindow()) == "null_cursor"
    text = q.chunk_predicate(xmin_plan, window, "key", ["7"], changed=changed).as_string(pg)
    assert text.startswith("xmin::text::bigint >= 3 AND ((150 - xmin::text::bigint) % 4294967296")
    assert text.endswith("""<= 50 AND ("id") > ('7'::bigint)""")
    with pytest.raises(ValueError, match="xmin predicate"):
        q.chunk_predicate(xmin_plan, window, "key", None)
    full = q.chunk_predicate(plan("full"), ExportWindow(), "key", None).as_string(pg)
    assert full == "TRUE"
    boundary = q.boundary_query(xmin_plan, "key", sql.SQL("TRUE"), 10).as_string(pg)
    assert 'ORDER BY "id" LIMIT 1 OFFSET 9' in boundary
    assert q.position_values(ChunkPosition(phase="key", key=["7"])) == ["7"]
    assert q.position_values(ChunkPosition(phase="key")) is None


def test_key_snapshot_select_reads_key_columns_only(pg: Any) -> None:
    single = q.key_snapshot_select(plan()).as_string(pg)
    assert single == 'SELECT "id"::text FROM "s"."t"'  # no WHERE, no ORDER BY: index-only scan
    composite = plan(key=[column("a", "int4"), column("b", "text", not_null=False)])
    text = q.key_snapshot_select(composite).as_string(pg)
    assert text.startswith('SELECT "a"::text, ') and 'FROM "s"."t" WHERE NOT ("b" IS NULL)' in text
    assert "note" not in text


def test_key_snapshot_select_can_use_an_index_only_scan(pg: Any) -> None:
    with pg.cursor() as cur:
        cur.execute("CREATE TEMP TABLE t_keys (id bigint PRIMARY KEY, note text)")
        cur.execute("INSERT INTO t_keys SELECT i, repeat('x', 200) FROM generate_series(1, 5000) i")
        cur.execute("VACUUM (ANALYZE) t_keys")  # sets the visibility map an index-only scan needs
        temp = q.ExportPlan(
            schema="pg_temp", table="t_keys", columns=[], mappings=[], cursor=None,
            primary_key=[column("id")], mode="full",
        )  # fmt: skip
        cur.execute("SET enable_seqscan = off")  # the planner's choice on 5000 rows is not the point
        cur.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(q.key_snapshot_select(temp)))
        plan_json = cur.fetchone()[0]
        cur.execute("RESET enable_seqscan")
    assert plan_json[0]["Plan"]["Node Type"] == "Index Only Scan"
