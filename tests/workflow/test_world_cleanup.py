"""Tests leave no pipe behind: a pipe loads every file under its S3 prefix (a table's config name),
and several tests share names (``orders``), so a pipe an earlier test or session left loads each
later test's files into a table of another shape. Each of those failed loads took 10-30 s of the
one Snowpipe loader in a full run, and the tests waiting behind them (the demo, the load test)
failed their time limits.
"""

from __future__ import annotations

import uuid
from typing import Any

import snowflake.connector
from world import open_world


def pipes(stack: dict[str, Any]) -> set[str]:
    with snowflake.connector.connect(**stack["snowflake"]) as conn:
        cur = conn.cursor()
        cur.execute("SHOW PIPES IN ACCOUNT")
        column = [d[0].lower() for d in cur.description].index("name")
        return {str(row[column]) for row in cur.fetchall()}


def test_a_module_starts_without_pipes_of_earlier_modules_or_sessions(stack: dict[str, Any]) -> None:
    # First in its module: whatever pipes exist were left by another module or an earlier session.
    assert pipes(stack) == set()


def test_a_closed_world_leaves_no_pipe(stack: dict[str, Any]) -> None:
    name = f"cleanup_{uuid.uuid4().hex[:6]}"
    ddl = f"CREATE TABLE {{schema}}.{name} (id bigint PRIMARY KEY, v text)"
    tables = {name: (ddl, {"table": name, "primary_key": ["id"], "mode": "full"})}
    with open_world(stack, tables, prefix="cleanup") as world:
        world.apply()
        pipe = f"{world.configs[name]['target']}_PIPE"
        assert pipe in pipes(stack)

    assert pipe not in pipes(stack)
