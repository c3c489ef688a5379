"""File layouts against the local stack's PostgreSQL: the many-table catalog read, and what the
exporter does when the source's columns moved after planning (issue 10, case 2). The pure layout
tests are in tests/unit/test_layout.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from layout_items import planned_item
from psycopg2 import sql

from aurora_sync.exporting.export import LayoutChanged
from aurora_sync.settings import runtime_settings
from aurora_sync.source_catalog import read_catalogs
from aurora_sync.vault import reset_vault_cache


class Context:
    function_name = "aurora-sync-exporter"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:aurora-sync-exporter"
    aws_request_id = "test-request"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


@pytest.fixture
def schema(admin: Any, stack: dict[str, Any]) -> Iterator[str]:
    name = f"layout_{uuid.uuid4().hex[:8]}"
    user = sql.Identifier(stack["postgres"]["user"])
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(name), user))
        cur.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                sql.Identifier(name), user
            )
        )
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint PRIMARY KEY, note text, updated_at timestamptz DEFAULT now())"
            ).format(sql.Identifier(name, "orders"))
        )
        cur.execute(
            sql.SQL("INSERT INTO {} (id, note) VALUES (1, 'a'), (2, 'b')").format(
                sql.Identifier(name, "orders")
            )
        )
    yield name
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def test_many_catalogs_in_one_statement_with_attnums(admin: Any, schema: str) -> None:
    admin.cursor().execute(f'ALTER TABLE "{schema}".orders DROP COLUMN note, ADD COLUMN note text')
    with admin.cursor() as cur:
        found = read_catalogs(cur, [(schema, "orders"), (schema, "missing"), ("no_such_schema", "orders")])
    assert list(found) == [(schema, "orders")]
    assert [(c.name, c.attnum) for c in found[(schema, "orders")]] == [
        ("id", 1),
        ("updated_at", 3),
        ("note", 4),
    ]


def test_the_exporter_leaves_out_a_column_added_after_planning_and_refuses_a_dropped_one(
    lambda_env: dict[str, str], admin: Any, schema: str, stack: dict[str, Any]
) -> None:
    from pgcsv import parse_pg_csv

    from aurora_sync_ops.environment import local_aws_client
    from exporter.app import lambda_handler

    reset_vault_cache()
    runtime_settings.cache_clear()
    with admin.cursor() as cur:
        catalog = read_catalogs(cur, [(schema, "orders")])[(schema, "orders")]
    event = planned_item(
        catalog, source={"schema": schema, "table": "orders"}, run_id=f"layout-{time.time_ns()}"
    )
    document = event.model_dump(by_alias=True, mode="json", exclude_defaults=True)
    document["window"] = {"source": "full"}
    admin.cursor().execute(f'ALTER TABLE "{schema}".orders ADD COLUMN active boolean NOT NULL DEFAULT true')

    result = lambda_handler(document, Context())

    assert result["status"] == "EXPORTED" and result["layout"] == event.layout
    assert any("'active'" in w and "added after this run was planned" in w for w in result["warnings"])
    s3 = local_aws_client("s3", stack["aws"])
    body = s3.get_object(Bucket=stack["aws"]["bucket"], Key=result["keys"][0])["Body"].read().decode()
    assert {len(row) for row in parse_pg_csv(body)} == {4}  # id, note, updated_at, unrepresentable

    admin.cursor().execute(f'ALTER TABLE "{schema}".orders DROP COLUMN note')
    with pytest.raises(LayoutChanged) as refused:
        lambda_handler(document, Context())
    assert f"the columns of {schema}.orders changed after this run was planned" in str(refused.value)
    assert '{"tables": ["orders"]}' in str(refused.value)
