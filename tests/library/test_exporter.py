"""The exporter Lambda on the local stack: real PostgreSQL + aws_s3 emulation, moto S3, Vault.

Every test reads back what Aurora wrote to S3 and compares it with the source, so a row lost or
duplicated anywhere in window, chunk or keyset logic fails a test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from exporter_calls import FakeContext, export_all, item, read_rows
from psycopg2 import sql

from aurora_sync.errors import (
    ConfigError,
    ExportWriteFailed,
    SourceChunkTimeout,
    SourceObjectMissing,
    SourcePermissionDenied,
    SourceTimeout,
)
from aurora_sync.exporting import export as export_module
from aurora_sync.ledger import MergedRun
from aurora_sync.messages import ExportResult
from aurora_sync.planning.watermarks import next_watermark
from aurora_sync.settings import runtime_settings
from aurora_sync.snowflake_objects import SnowflakeObjects, new_column_statements
from aurora_sync.source_snapshot import EXPORTER_APPLICATION_NAME
from exporter.app import lambda_handler

EVENTS = Path(__file__).resolve().parents[2] / "events"


def make_orders(admin: Any, schema: str, rows: int, *, table: str = "orders") -> None:
    with admin.cursor() as cur:
        cur.execute(
            sql.SQL(
                "CREATE TABLE {t} (id bigint PRIMARY KEY, note text, amount numeric(12,2), "
                "updated_at timestamptz NOT NULL)"
            ).format(t=sql.Identifier(schema, table))
        )
        cur.execute(sql.SQL("CREATE INDEX ON {t} (updated_at, id)").format(t=sql.Identifier(schema, table)))
        cur.execute(
            sql.SQL(
                "INSERT INTO {t} SELECT i, 'note ' || i, i * 1.5, "
                "timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second' FROM generate_series(1, %s) i"
            ).format(t=sql.Identifier(schema, table)),
            (rows,),
        )


def test_full_export_writes_every_row_once_under_the_documented_key(
    env: dict[str, str], admin: Any, schema: str, s3: Any
) -> None:
    make_orders(admin, schema, 50)
    calls, result = export_all(item(schema))
    assert len(calls) == 1
    assert result["status"] == "EXPORTED" and result["rows"] == 50 and result["files"] == 1
    (key,) = result["keys"]
    assert key.startswith("orders/") and key.endswith(".csv")
    _table, yyyy, mm, dd, hh, name = key.split("/")
    assert (len(yyyy), len(mm), len(dd), len(hh)) == (4, 2, 2, 2)
    # s<snapshot order, 26 digits>-<uuid>.csv: the order the MERGE ranks this file's versions by.
    order, _, identifier = name.removesuffix(".csv").partition("-")
    assert order == f"s{int(result['snapshot']['order']):026d}"
    uuid.UUID(identifier)
    snapshot = result["snapshot"]
    assert snapshot["cursor_type"] == "timestamptz" and snapshot["max_cursor"] == "2026-01-01 00:00:50+00"
    assert snapshot["horizon"] < snapshot["source_time"]  # read before the snapshot, minus a margin
    rows = read_rows(s3, env["EXPORT_BUCKET"], result["keys"])
    assert [row[0] for row in rows] == [str(i) for i in range(1, 51)]
    assert rows[0] == ["1", "note 1", "1.50", "2026-01-01T00:00:01.000000Z", None]
    head = s3.head_object(Bucket=env["EXPORT_BUCKET"], Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["ContentLength"] == result["bytes"]


def test_window_is_cursor_after_watermark_minus_lookback(
    env: dict[str, str], admin: Any, schema: str, s3: Any
) -> None:
    make_orders(admin, schema, 100)
    # watermark = row 80's cursor; a lookback of 10 s reaches back to row 70, inclusive: a row that
    # shares the boundary value is read again rather than lost
    window = {"watermark": "2026-01-01T00:01:20+00:00", "lookback_seconds": 10, "source": "final"}
    _, result = export_all(item(schema, window=window))
    ids = sorted(int(str(r[0])) for r in read_rows(s3, env["EXPORT_BUCKET"], result["keys"]))
    assert ids == list(range(70, 101))
    assert result["window"] == window


def test_nothing_in_the_window_writes_no_file(env: dict[str, str], admin: Any, schema: str, s3: Any) -> None:
    make_orders(admin, schema, 10)
    window = {"watermark": "2026-01-01T00:00:10.000001+00:00", "lookback_seconds": 0, "source": "final"}
    _, result = export_all(item(schema, window=window))
    assert (result["status"], result["rows"], result["keys"]) == ("EMPTY", 0, [])
    assert result["snapshot"]["max_cursor"] == "2026-01-01 00:00:10+00"  # an empty window still proves


def test_chunks_cover_every_row_exactly_once_including_boundary_ties(
    env: dict[str, str], admin: Any, schema: str, s3: Any
) -> None:
    make_orders(admin, schema, 2500)
    with admin.cursor() as cur:
        # 700 rows share one timestamp across the 1000-row chunk boundary: a `>` on the cursor
        # alone would lose the ones after the boundary.
        cur.execute(
            sql.SQL(
                "UPDATE {} SET updated_at = '2026-01-01 00:15:00+00' WHERE id BETWEEN 700 AND 1399"
            ).format(sql.Identifier(schema, "orders"))
        )
    calls, result = export_all(item(schema, max_rows_per_chunk=1000))
    assert [c["status"] for c in calls] == ["MORE", "MORE", "EXPORTED"]
    assert [c["rows"] for c in calls] == [1000, 2000, 2500]  # totals accumulate across chunks
    assert result["chunks"] == 3 and len(result["keys"]) == 3
    ids = [int(str(r[0])) for r in read_rows(s3, env["EXPORT_BUCKET"], result["keys"])]
    assert sorted(ids) == list(range(1, 2501))
    assert len(ids) == len(set(ids))


def merged(snapshot: dict[str, Any], window_start: str | None = None) -> MergedRun:
    """The ledger's record of a run whose export reported ``snapshot`` and reached FINAL."""
    return MergedRun(
        run_id="r",
        order=int(snapshot["order"]),
        source_time=datetime.fromisoformat(snapshot["source_time"]),
        horizon=datetime.fromisoformat(snapshot["horizon"]),
        cursor_type=snapshot["cursor_type"],
        max_cursor=snapshot.get("max_cursor"),
        sample_time=datetime.fromisoformat(snapshot["sample_time"]) if snapshot.get("sample_time") else None,
        sample_max=snapshot.get("sample_max"),
        window_start=window_start,
        primary_key=("id",),
        cursor_column="updated_at",
    )


def test_late_commit_is_exported_by_the_next_run_thanks_to_the_horizon(
    env: dict[str, str], admin: Any, schema: str, s3: Any, stack: dict[str, Any]
) -> None:
    make_orders(admin, schema, 3)
    table = sql.Identifier(schema, "orders")
    late = psycopg2.connect(stack["postgres"]["admin_dsn"])
    try:
        with late.cursor() as cur:
            # A transaction stamps its row with now() (= its start) but commits only later.
            cur.execute(sql.SQL("UPDATE {} SET note = 'late', updated_at = now() WHERE id = 1").format(table))
        time.sleep(1.1)
        with admin.cursor() as cur:
            cur.execute(sql.SQL("INSERT INTO {} VALUES (4, 'early', 1, now())").format(table))
            cur.execute(sql.SQL("SELECT updated_at FROM {} WHERE id = 4").format(table))
            newest = cur.fetchone()[0]
        first = export_all(item(schema))[1]
        first_rows = {r[0]: r[1] for r in read_rows(s3, env["EXPORT_BUCKET"], first["keys"])}
        assert first_rows["4"] == "early" and first_rows["1"] == "note 1"  # not yet committed
        late.commit()
        # The next window starts at what the first export proved: the open transaction started
        # after its horizon, so whatever it commits is inside the window, even without a lookback.
        start = next_watermark([merged(first["snapshot"])])
        assert isinstance(start, datetime) and start < newest
        window = {"watermark": start.isoformat(), "lookback_seconds": 0, "source": "final"}
        second = export_all(item(schema, window=window))[1]
        second_rows = {r[0]: r[1] for r in read_rows(s3, env["EXPORT_BUCKET"], second["keys"])}
        assert second_rows["1"] == "late"
        # What a window from MAX(cursor) reads (cursor-only tools): the late row is lost.
        by_max = export_all(item(schema, window={**window, "watermark": newest.isoformat()}))[1]
        assert "1" not in {r[0] for r in read_rows(s3, env["EXPORT_BUCKET"], by_max["keys"])}
    finally:
        late.close()


def test_open_old_write_transaction_and_null_cursors_are_reported(
    env: dict[str, str], admin: Any, schema: str, stack: dict[str, Any]
) -> None:
    with admin.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, updated_at timestamptz)").format(
                sql.Identifier(schema, "nullable")
            )
        )
        cur.execute(
            sql.SQL("INSERT INTO {} VALUES (1, now()), (2, NULL), (3, NULL)").format(
                sql.Identifier(schema, "nullable")
            )
        )
    holder = psycopg2.connect(stack["postgres"]["admin_dsn"])
    try:
        with holder.cursor() as cur:
            cur.execute(
                sql.SQL("UPDATE {} SET id = id WHERE id = 1").format(sql.Identifier(schema, "nullable"))
            )
        time.sleep(1.2)
        window = {"watermark": "2020-01-01T00:00:00+00:00", "lookback_seconds": 1, "source": "final"}
        result = export_all(item(schema, table="nullable", name="nullable", window=window))[1]
    finally:
        holder.rollback()
        holder.close()
    text = " | ".join(result["warnings"])
    assert "2 row(s) of nullable have a NULL 'updated_at'" in text
    assert "full_resync" in text
    assert "has been open since" in text and "pg_stat_activity" in text
    # A full sync exports the NULL-cursor rows too (in their own keyset phase).
    full = export_all(item(schema, table="nullable", name="nullable"))[1]
    assert full["rows"] == 3


def test_inside_an_export_child_a_table_stops_when_the_next_chunk_would_pass_its_time(
    env: dict[str, str], admin: Any, schema: str
) -> None:
    from datetime import UTC, timedelta

    import exporter.app as exporter_app

    make_orders(admin, schema, 2500)
    work = item(schema, max_rows_per_chunk=1000)
    # A child that has just started: the chunk loop goes on.
    fresh = {"item": work, "child_started_at": datetime.now(UTC).isoformat(), "child_seconds": 240}
    first = lambda_handler(fresh, FakeContext())
    assert (first["status"], first["resume_later"]) == ("MORE", False)
    # A child near its end (3 s left) and a chunk that takes 2 s (the real export, then a wait):
    # a second chunk as long would not fit, so the table stops, MORE with the item that resumes
    # it next round. The wait comes after the statement, so no statement timeout can cut it, and
    # a loaded machine only makes the handler start later, which stops the table all the more.
    real_export = exporter_app.export_chunk

    def slow_export(*args: Any, **kwargs: Any) -> Any:
        result = real_export(*args, **kwargs)
        time.sleep(2)
        return result

    late = datetime.now(UTC) - timedelta(seconds=237)
    request = {"item": first["next"], "child_started_at": late.isoformat(), "child_seconds": 240}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exporter_app, "export_chunk", slow_export)
        second = lambda_handler(request, FakeContext())
    assert (second["status"], second["resume_later"], second["rows"]) == ("MORE", True, 2000)
    assert second["next"]["position"]["chunk"] == 2
    # A child out of time: the item is not started (no file), and comes back unchanged.
    over = {**request, "item": second["next"], "child_started_at": (late - timedelta(seconds=5)).isoformat()}
    deferred = lambda_handler(over, FakeContext())
    assert (deferred["status"], deferred["resume_later"], deferred["next"]) == ("MORE", True, second["next"])
    assert deferred["files"] == second["files"]
    # The next round's child resumes it where it stopped; the last chunk is not MORE.
    _, result = export_all(second["next"])
    assert (result["status"], result["rows"], result["chunks"]) == ("EXPORTED", 2500, 3)


def test_schema_drift_travels_as_columns_to_the_last_chunk(
    env: dict[str, str], admin: Any, schema: str
) -> None:
    """The result names the left-out columns with their Snowflake types (the CLI renders the DDL
    with the real database and schemas); the warning carries no DDL with placeholders."""
    make_orders(admin, schema, 2)
    with admin.cursor() as cur:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN shipped_on date").format(sql.Identifier(schema, "orders"))
        )
    # One row per chunk: the drift seen by the first chunk must reach the last chunk's result.
    calls, result = export_all(item(schema, columns=["id", "updated_at"], max_rows_per_chunk=1))
    assert len(calls) > 1
    assert [c["name"] for c in result["new_columns"]] == ["note", "amount", "shipped_on"]
    assert result["new_columns"][2] == {"name": "shipped_on", "staging_type": "DATE", "final_type": "DATE"}
    drift = [w for c in calls for w in c["warnings"] if "schema drift" in w]
    assert len(drift) == 1
    assert "'note', 'amount', 'shipped_on'" in drift[0]
    assert "{" not in drift[0] and "ADD COLUMN" not in drift[0]
    assert "aurora-sync sql snowflake --tables orders --apply" in drift[0]


def test_a_custom_target_rides_every_chunk_and_names_the_drift_statements(
    env: dict[str, str], admin: Any, schema: str, s3: Any
) -> None:
    """The planner's target reaches the last chunk's result (the verifier's and the drift
    statements' only source for it): STAGING and FINAL of the custom target, never ORDERS."""
    make_orders(admin, schema, 3)
    with admin.cursor() as cur:
        cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN region text").format(sql.Identifier(schema, "orders")))
    event = item(
        schema, columns=["id", "note", "amount", "updated_at"], max_rows_per_chunk=1, target="SHOP_ORDERS"
    )
    calls, result = export_all(event)
    assert len(calls) > 1
    assert [c["target"] for c in calls] == ["SHOP_ORDERS"] * len(calls)
    assert [c["next"]["target"] for c in calls[:-1]] == ["SHOP_ORDERS"] * (len(calls) - 1)
    done = ExportResult.model_validate(result)
    objects = SnowflakeObjects("AURORA_SYNC", "STAGING", "FINAL", done.target_name)
    assert new_column_statements(objects, done.new_columns) == [
        'ALTER TABLE "AURORA_SYNC"."STAGING"."SHOP_ORDERS" ADD COLUMN "REGION" VARCHAR',
        'ALTER TABLE "AURORA_SYNC"."FINAL"."SHOP_ORDERS" ADD COLUMN "REGION" VARCHAR',
    ]
    # A table with the default target carries none: it is ORDERS by the config's own rule.
    plain = export_all(item(schema, columns=["id", "note", "amount", "updated_at"]))[1]
    assert "target" not in plain and ExportResult.model_validate(plain).target_name == "ORDERS"


def test_split_exports_report_every_part_key(
    env: dict[str, str], admin: Any, schema: str, s3: Any, stack: dict[str, Any]
) -> None:
    make_orders(admin, schema, 3000)
    role = sql.Identifier(stack["postgres"]["user"])
    with admin.cursor() as cur:
        cur.execute(sql.SQL("ALTER ROLE {} SET aws_s3_emulation.max_file_size = '32kB'").format(role))
    try:
        result = export_all(item(schema))[1]
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("ALTER ROLE {} RESET aws_s3_emulation.max_file_size").format(role))
    assert result["files"] >= 3
    base = result["keys"][0]
    assert result["keys"] == [base] + [f"{base}_part{n}" for n in range(2, result["files"] + 1)]
    ids = [int(str(r[0])) for r in read_rows(s3, env["EXPORT_BUCKET"], result["keys"])]
    assert sorted(ids) == list(range(1, 3001))


def test_hostile_identifiers_are_exported_not_executed(
    env: dict[str, str], admin: Any, schema: str, s3: Any
) -> None:
    table = "Robert'); DROP TABLE orders;--"
    with admin.cursor() as cur:
        cur.execute(
            sql.SQL(
                'CREATE TABLE {} ("Key Col" int PRIMARY KEY, "semi;colon" text, "Upd At" timestamptz, '
                '"it\'s" text)'
            ).format(sql.Identifier(schema, table))
        )
        cur.execute(
            sql.SQL("INSERT INTO {} VALUES (1, 'x', now(), $$'; DROP TABLE x; --$$)").format(
                sql.Identifier(schema, table)
            )
        )
    make_orders(admin, schema, 1)
    result = export_all(item(schema, table=table, name="hostile", primary_key=["Key Col"], cursor="Upd At"))[
        1
    ]
    rows = read_rows(s3, env["EXPORT_BUCKET"], result["keys"])
    assert rows[0][0] == "1" and rows[0][3] == "'; DROP TABLE x; --"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, "orders")))
        assert cur.fetchone()[0] == 1  # still there


def test_missing_configured_column_is_terminal_and_named(
    env: dict[str, str], admin: Any, schema: str
) -> None:
    make_orders(admin, schema, 1)
    with pytest.raises(SourceObjectMissing) as caught:
        lambda_handler(item(schema, columns=["id", "updated_at", "gone"]), FakeContext())
    assert "'gone'" in str(caught.value) and "columns" in str(caught.value)


def test_unknown_table_is_terminal_and_named(env: dict[str, str], schema: str) -> None:
    with pytest.raises(SourceObjectMissing) as caught:
        lambda_handler(item(schema, table="nope"), FakeContext())
    assert f"{schema}.nope does not exist" in str(caught.value)
    # The catalog lists every table whatever the role's grants: no grant can be the fix here.
    assert "GRANT" not in str(caught.value)


def test_permission_denied_names_the_grant(
    env: dict[str, str], admin: Any, schema: str, stack: dict[str, Any]
) -> None:
    make_orders(admin, schema, 1)
    with admin.cursor() as cur:
        cur.execute(
            sql.SQL("REVOKE SELECT ON {} FROM {}").format(
                sql.Identifier(schema, "orders"), sql.Identifier(stack["postgres"]["user"])
            )
        )
    with pytest.raises(SourcePermissionDenied) as caught:
        lambda_handler(item(schema), FakeContext())
    # Schema-qualified and with the role the exporter logs in as: it works as written.
    grant = f'GRANT SELECT ON TABLE "{schema}"."orders" TO "{stack["postgres"]["user"]}";'
    assert str(caught.value).endswith(f" Fix: {grant}")
    with admin.cursor() as cur:
        cur.execute(grant)


def test_cursor_of_a_type_that_cannot_order_changes_is_a_config_error(
    env: dict[str, str], admin: Any, schema: str
) -> None:
    make_orders(admin, schema, 1)
    with pytest.raises(ConfigError) as caught:
        lambda_handler(item(schema, cursor="note"), FakeContext())
    assert "cursor column 'note' has type text" in str(caught.value)
    assert str(caught.value).endswith(
        "a table without one syncs with mode 'xmin' or 'full', which need no "
        "cursor column (see docs/operations.md#tables-without-a-cursor-and-hard-deletes)"
    )


def test_bad_input_is_a_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        lambda_handler({"table": "orders"}, FakeContext())
    assert "exporter input is not a work item" in str(caught.value)
    assert "run_id" in str(caught.value)


def test_s3_failure_is_transient(
    env: dict[str, str], admin: Any, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_orders(admin, schema, 1)
    monkeypatch.setenv("EXPORT_BUCKET", "no-such-bucket-for-aurora-sync")
    runtime_settings.cache_clear()
    with pytest.raises(ExportWriteFailed) as caught:
        lambda_handler(item(schema), FakeContext())
    assert "could not upload to Amazon S3" in str(caught.value)


@contextmanager
def orders_locked(stack: dict[str, Any], schema: str) -> Iterator[None]:
    """``schema.orders`` held in ACCESS EXCLUSIVE mode by another session: an export waits."""
    locker = psycopg2.connect(stack["postgres"]["admin_dsn"])
    try:
        with locker.cursor() as cur:
            cur.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(schema, "orders"))
            )
        yield
    finally:
        locker.rollback()
        locker.close()


def test_statement_timeout_follows_the_lambda_deadline(
    env: dict[str, str], admin: Any, schema: str, stack: dict[str, Any]
) -> None:
    make_orders(admin, schema, 1)
    with orders_locked(stack, schema):
        # 20 s left → statement_timeout 5 s (15 s kept to report), well before lock_timeout
        # (30 s): PostgreSQL's own message says which of the two ended the wait.
        with pytest.raises(SourceTimeout) as caught:
            lambda_handler(item(schema), FakeContext(remaining_ms=20_000))
        assert "canceling statement due to statement timeout" in str(caught.value)


def test_statement_timeout_with_the_whole_budget_fails_the_table_without_retry(
    env: dict[str, str], admin: Any, schema: str, stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A statement timeout longer than any lock wait (lock_timeout ends those first) means the
    # chunk was too slow to read: the retry would read the same chunk in the same time. The lock
    # below only makes the statement slow; the bound is lowered so the test takes 5 s, not 30.
    monkeypatch.setattr(export_module, "LOCK_WAIT_BOUND_MS", 5_000)
    make_orders(admin, schema, 1)
    with orders_locked(stack, schema), pytest.raises(SourceChunkTimeout) as caught:
        lambda_handler(item(schema, max_rows_per_chunk=5000), FakeContext(remaining_ms=20_000))
    message = str(caught.value)
    assert caught.value.transient is False
    assert f"table orders ({schema}.orders)" in message and "up to 5000 rows" in message
    assert "set max_rows_per_chunk in the table config of orders below 5000 (e.g. 1250" in message
    assert '{"tables": ["orders"]}' in message
    assert isinstance(caught.value.__cause__, SourceTimeout)


def test_a_chunk_whose_timeout_the_childs_time_cut_short_resumes_next_round_instead_of_failing(
    env: dict[str, str], admin: Any, schema: str, stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inside an export child 10 s before its deadline, the statement timeout is the 5 s floor
    # where a fresh child would give minutes. With the bound as low as in the test above, the
    # same cancellation with the whole budget fails the table (SourceChunkTimeout); cut short by
    # the child's time it says nothing about the chunk: MORE, resumed unchanged next round.
    from datetime import UTC, timedelta

    monkeypatch.setattr(export_module, "LOCK_WAIT_BOUND_MS", 5_000)
    make_orders(admin, schema, 1)
    work = item(schema, max_rows_per_chunk=5000)
    near_the_end = (datetime.now(UTC) - timedelta(seconds=230)).isoformat()
    request = {"item": work, "child_started_at": near_the_end, "child_seconds": 240}
    with orders_locked(stack, schema):
        result = lambda_handler(request, FakeContext(remaining_ms=600_000))
    assert (result["status"], result["resume_later"], result["rows"], result["files"]) == ("MORE", True, 0, 0)
    # The item itself comes back: no position, so the chunk starts over from the beginning.
    assert (result["next"]["table"], result["next"].get("position")) == ("orders", None)
    # The next round's child exports it whole.
    _, done = export_all(result["next"])
    assert (done["status"], done["rows"]) == ("EXPORTED", 1)


# Modes xmin and full, and key snapshots (issue 11).


def xmin_item(schema: str, watermark: str | None, **overrides: Any) -> dict[str, Any]:
    window = {"watermark": watermark, "lookback_seconds": 0, "source": "final" if watermark else "full"}
    return item(schema, mode="xmin", cursor=None, window=window, **overrides)


def exported_ids(s3: Any, bucket: str, result: dict[str, Any]) -> dict[str, str | None]:
    return {str(r[0]): r[1] for r in read_rows(s3, bucket, result["keys"])}


def test_xmin_mode_exports_the_rows_written_at_or_after_the_watermark(
    env: dict[str, str], admin: Any, schema: str, s3: Any
) -> None:
    make_orders(admin, schema, 20)
    first = export_all(xmin_item(schema, None))[1]
    assert first["rows"] == 20 and first["mode"] == "xmin" and "cursor" not in first
    snapshot = first["snapshot"]
    assert snapshot["cursor_type"] == "xid8" and "max_cursor" not in snapshot
    assert int(snapshot["xmin"]) <= int(snapshot["xmax"]) == int(snapshot["order"]) // 1_000_000
    table = sql.Identifier(schema, "orders")
    with admin.cursor() as cur:
        cur.execute(sql.SQL("UPDATE {} SET note = 'changed' WHERE id IN (3, 7, 12)").format(table))
        cur.execute(sql.SQL("INSERT INTO {} VALUES (21, 'new', 1, now())").format(table))
    # Chunks of 3 rows: each chunk resolves xmin against its own snapshot; no row twice or lost.
    calls, second = export_all(xmin_item(schema, snapshot["xmin"], max_rows_per_chunk=3))
    assert [c["status"] for c in calls] == ["MORE", "EXPORTED"] and second["rows"] == 4
    rows = read_rows(s3, env["EXPORT_BUCKET"], second["keys"])
    assert sorted(int(str(r[0])) for r in rows) == [3, 7, 12, 21]
    assert second["snapshot"] == calls[0]["snapshot"]  # the first chunk's, carried
    # Nothing written since: an empty window (the predicate still resolves every id correctly).
    third = export_all(xmin_item(schema, second["snapshot"]["xmin"]))[1]
    assert (third["status"], third["rows"], third["key_files"]) == ("EMPTY", 0, [])


def test_xmin_watermark_past_the_source_exports_everything_and_says_why(
    env: dict[str, str], admin: Any, schema: str
) -> None:
    make_orders(admin, schema, 5)
    result = export_all(xmin_item(schema, str(2**62)))[1]
    assert result["rows"] == 5
    assert any("transaction ids went back" in w for w in result["warnings"])


def test_xmin_mode_rereads_a_subtransaction_of_a_transaction_open_at_the_last_snapshot(
    env: dict[str, str], admin: Any, schema: str, s3: Any, stack: dict[str, Any]
) -> None:
    make_orders(admin, schema, 3)
    table = sql.Identifier(schema, "orders")
    open_txn = psycopg2.connect(stack["postgres"]["admin_dsn"])
    try:
        with open_txn.cursor() as cur:
            # T1 writes before run 1's snapshot (so it has an xid) and commits after it.
            cur.execute(sql.SQL("UPDATE {} SET note = 'parent' WHERE id = 2").format(table))
            cur.execute("SELECT pg_current_xact_id()::text::numeric")
            (parent_xid,) = cur.fetchone() or (None,)
            parent = int(parent_xid)
        with admin.cursor() as cur:
            # A later write transaction completes, so the snapshot's xmax passes T1's id.
            cur.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(schema, "bump")))
        first = export_all(xmin_item(schema, None))[1]
        assert int(first["snapshot"]["xmin"]) <= parent < int(first["snapshot"]["xmax"])
        with open_txn.cursor() as cur:
            cur.execute("SAVEPOINT s")
            cur.execute(sql.SQL("UPDATE {} SET note = 'sub' WHERE id = 1").format(table))
            cur.execute("RELEASE SAVEPOINT s")
        open_txn.commit()
    finally:
        open_txn.close()
    second = export_all(xmin_item(schema, first["snapshot"]["xmin"]))[1]
    assert exported_ids(s3, env["EXPORT_BUCKET"], second) == {"1": "sub", "2": "parent"}
    # Why the watermark is the snapshot's xmin, not its xmax: T1's own row would be lost.
    by_xmax = export_all(xmin_item(schema, first["snapshot"]["xmax"]))[1]
    assert "2" not in exported_ids(s3, env["EXPORT_BUCKET"], by_xmax)


def test_xmin_mode_still_sees_a_row_after_vacuum_freeze(
    env: dict[str, str], admin: Any, schema: str, s3: Any
) -> None:
    make_orders(admin, schema, 3)
    first = export_all(xmin_item(schema, None))[1]
    table = sql.Identifier(schema, "orders")
    with admin.cursor() as cur:
        cur.execute(sql.SQL("INSERT INTO {} VALUES (4, 'frozen', 1, now())").format(table))
        cur.execute(sql.SQL("VACUUM (FREEZE) {}").format(table))
    second = export_all(xmin_item(schema, first["snapshot"]["xmin"]))[1]
    assert exported_ids(s3, env["EXPORT_BUCKET"], second) == {"4": "frozen"}


def read_keys(s3: Any, bucket: str, keys: list[str]) -> list[tuple[str | None, ...]]:
    return sorted(tuple(row) for row in read_rows(s3, bucket, keys))


def test_full_mode_exports_the_whole_table_in_one_chunk_with_its_keys(
    env: dict[str, str], admin: Any, schema: str, s3: Any
) -> None:
    make_orders(admin, schema, 50)
    calls, result = export_all(item(schema, mode="full", cursor=None, max_rows_per_chunk=7))
    assert len(calls) == 1 and result["chunks"] == 1 and result["rows"] == 50
    assert (result["mode"], result["reconcile"], result["snapshot"]["cursor_type"]) == ("full", True, "none")
    assert sorted(exported_ids(s3, env["EXPORT_BUCKET"], result), key=int) == [str(i) for i in range(1, 51)]
    (key_file,) = result["key_files"]
    assert key_file.startswith("_aurora_sync_keys/orders/") and key_file.endswith(".csv")
    assert f"/s{int(result['snapshot']['order']):026d}-" in key_file  # the data's snapshot
    assert result["key_rows"] == 50
    assert read_keys(s3, env["EXPORT_BUCKET"], result["key_files"]) == sorted((str(i),) for i in range(1, 51))


def test_key_snapshot_holds_exactly_the_mergeable_composite_keys(
    env: dict[str, str], admin: Any, schema: str, s3: Any
) -> None:
    table = sql.Identifier(schema, "pairs")
    with admin.cursor() as cur:
        # The configured key is a unique key whose columns may be NULL: such rows cannot merge.
        cur.execute(sql.SQL("CREATE TABLE {} (a int, b text, note text, UNIQUE (a, b))").format(table))
        cur.execute(
            sql.SQL(
                "INSERT INTO {} VALUES (1, 'x', 'n'), (1, 'y', 'n'), (2, 'x', 'n'), (NULL, 'z', 'n'), "
                "(3, NULL, 'n'), (4, 'a,\"b', 'n')"
            ).format(table)
        )
    calls, result = export_all(
        xmin_item(schema, None, table="pairs", name="pairs", primary_key=["a", "b"], reconcile=True,
                  max_rows_per_chunk=2)
    )  # fmt: skip
    # NULL-key rows go with the first chunk (keyset comparisons cannot walk them), quarantined.
    assert len(calls) == 3 and result["rows"] == 6 and result["reconcile"]
    assert [(c["rows"], c["quarantined"]) for c in calls] == [(4, 2), (6, 2), (6, 2)]
    assert all(c["key_files"] == calls[0]["key_files"] for c in calls)  # taken once, carried
    assert calls[0]["next"]["position"]["key_files"] == result["key_files"]
    assert result["key_rows"] == 4
    assert all(k.startswith("_aurora_sync_keys/pairs/") for k in result["key_files"])
    assert read_keys(s3, env["EXPORT_BUCKET"], result["key_files"]) == [
        ("1", "x"), ("1", "y"), ("2", "x"), ("4", 'a,"b'),
    ]  # fmt: skip


def test_cursor_mode_reconciling_run_snapshots_every_key_beyond_its_window(
    env: dict[str, str], admin: Any, schema: str, s3: Any
) -> None:
    make_orders(admin, schema, 30)
    window = {"watermark": "2026-01-01T00:00:25+00:00", "lookback_seconds": 0, "source": "final"}
    result = export_all(item(schema, window=window, reconcile=True))[1]
    assert (result["rows"], result["key_rows"], result["mode"], result["reconcile"]) == (
        6,
        30,
        "cursor",
        True,
    )
    assert len(read_keys(s3, env["EXPORT_BUCKET"], result["key_files"])) == 30
    plain = export_all(item(schema, window=window))[1]
    assert (plain["key_files"], plain["key_rows"], plain["reconcile"]) == ([], 0, False)


def make_versioned(admin: Any, schema: str) -> None:
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SEQUENCE {}").format(sql.Identifier(schema, "ver_seq")))
        cur.execute(
            sql.SQL(
                "CREATE TABLE {t} (id bigint PRIMARY KEY, v text, ver bigint NOT NULL DEFAULT nextval({s}))"
            ).format(t=sql.Identifier(schema, "versioned"), s=sql.Literal(f"{schema}.ver_seq"))
        )
        cur.execute(
            sql.SQL("INSERT INTO {} (id, v) SELECT i, 'v' || i FROM generate_series(1, 5) i").format(
                sql.Identifier(schema, "versioned")
            )
        )


@pytest.mark.parametrize(
    "holder",
    [
        # Another export of the same run (a table or lane beside this one): the sync role,
        # read-only, under the exporter's application name. It can take no sequence value and
        # write no row, so the sample taken after it started still proves the next window.
        "another export",
        # Any other session's open transaction may hold a sequence value smaller than the sample:
        # the next run must read the whole table again.
        "an application",
    ],
)
def test_an_integer_cursor_full_export_beside_other_open_transactions(
    env: dict[str, str], admin: Any, schema: str, stack: dict[str, Any], holder: str
) -> None:
    """Exports run side by side (the Map's tables, a backfill's lanes). Counting their snapshot
    transactions in the horizon put it before every integer cursor's sample, so the next run of
    each such table read it whole again, and a table split into lanes never left full reads."""
    make_versioned(admin, schema)
    postgres = stack["postgres"]
    if holder == "another export":
        other = psycopg2.connect(postgres["dsn"], application_name=EXPORTER_APPLICATION_NAME)
    else:
        other = psycopg2.connect(postgres["admin_dsn"], application_name="shop")
    try:
        other.set_session(readonly=holder == "another export")
        with other.cursor() as cur:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, "versioned")))
        time.sleep(1.2)  # its transaction starts well before the export's sample
        result = export_all(item(schema, table="versioned", name="versioned", cursor="ver"))[1]
    finally:
        other.close()
    snapshot = result["snapshot"]
    assert result["rows"] == 5 and snapshot["sample_max"] == "5"
    run = merged(snapshot)
    start = next_watermark([run])
    assert start == (5 if holder == "another export" else None), (start, snapshot)
