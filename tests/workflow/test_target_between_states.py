"""A table's Snowflake ``target`` travels with the run (issue 14, point 6), end to end.

Every world table has a custom ``target`` (``open_world`` names them uniquely per run). The
planner resolves it from the config once; the work item, every chunk's result and a failed
export carry it to the verifier, which checks COPY_HISTORY and runs the MERGE task of exactly
those objects. Before, the verifier re-read the configs from SSM for it: when it could not read
them it verified the upper-cased config name (objects that do not exist), and when the config
had changed since the plan it verified objects the run never loaded. The schema-drift
statements (``aurora-sync sync``/``status``) are rendered from the same carried target.

The verifier is redeployed with a ``CONFIG_SSM_PATH`` of its own for one run each: a path with
nothing under it (SSM unreadable for it: the configs are gone), and a path where the table's
config names another target (the parameter changed between plan and verify). An exporter
redeployed without a bucket fails the export: the failure keeps the target to the verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from world import World, admin_client, entered, open_world

from aurora_sync.config import TableConfig, put_table_config
from aurora_sync.messages import VerifyOutput
from aurora_sync_ops.workflow.history import collect

NAME = "carried_orders"


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    """One table whose config lists its columns (so a new source column is drift), backfilled."""
    tables = {
        NAME: (
            "CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, note text, "
            "updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": "orders", "primary_key": ["id"], "columns": ["id", "note", "updated_at"]},
        )
    }
    with open_world(stack, tables, prefix="carry") as world:
        world.execute(
            "INSERT INTO {schema}.orders (id, note) SELECT i, 'n' || i FROM generate_series(1, 12) i"
        )
        world.apply()
        description, _ = world.run()
        assert description["status"] == "SUCCEEDED", description.get("cause")
        world.execute("ALTER TABLE {schema}.orders ADD COLUMN region text")
        yield world


def redeploy_with(world: World, function: str, **variables: str) -> None:
    """Redeploy one function with other environment variables (a fresh sandbox: the router keys
    warm workers by environment, so nothing cached from an earlier run survives)."""
    client = world.engine.lambda_
    name = world.deployment.functions[function]
    current = client.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {**current, **variables}}
    )


@pytest.mark.parametrize("configs", ["gone", "changed"])
def test_the_verifier_checks_the_planned_target_whatever_ssm_says_now(world: World, configs: str) -> None:
    target = world.configs[NAME]["target"]
    path = f"{world.config_path.rstrip('/')}-verifier-{configs}/"
    if configs == "changed":
        renamed = {**world.configs[NAME], "target": f"{target}_RENAMED"}
        ssm = admin_client(world.status, "ssm")
        put_table_config(NAME, TableConfig.model_validate(renamed), path, ssm_client=ssm)
    world.execute(
        f"UPDATE {{schema}}.orders SET note = 'verified with configs {configs}', updated_at = now() "
        "WHERE id <= 4"
    )
    redeploy_with(world, "VerifierFunction", CONFIG_SSM_PATH=path)
    try:
        description, events = world.run()
    finally:
        world.deployment = world.engine.deploy()  # every function back to the template's environment
    assert description["status"] == "SUCCEEDED", description.get("cause")
    [item] = world.planned_items(events)
    assert item["target"] == target
    [verdict] = world.verify_output(events)["tables"]
    assert (verdict["table"], verdict["target"], verdict["outcome"]) == (NAME, target, "MERGED")
    assert verdict["rows_changed"] == 4
    world.assert_parity()

    # The drift DDL names the objects the run loaded: STAGING and FINAL of the carried target.
    # The DDL names the database and schemas of the verifier's report (its verify.json in S3).
    result = collect(description, events, report=VerifyOutput.model_validate(world.verify_output(events)))
    [table] = result.tables
    database = world.setup.database
    assert table.new_columns == ["region"]
    assert table.drift_statements == [
        f'ALTER TABLE "{database}"."STAGING"."{target}" ADD COLUMN "REGION" VARCHAR',
        f'ALTER TABLE "{database}"."FINAL"."{target}" ADD COLUMN "REGION" VARCHAR',
    ]


def test_a_failed_export_keeps_its_custom_target_to_the_verdict(world: World) -> None:
    """The Map's Catch reads the item's target only when it has one (FailedTableTarget): a
    JsonPath that matches nothing would fail the iteration instead of recording the table."""
    target = world.configs[NAME]["target"]
    redeploy_with(world, "ExporterFunction", EXPORT_BUCKET="")  # a terminal ConfigError, not retried
    try:
        description, events = world.run()
    finally:
        world.deployment = world.engine.deploy()
    assert description["status"] == "FAILED" and description["error"] == "TablesFailed", description
    assert "ExportFailedCustomTarget" in entered(events) and "ExportFailed" not in entered(events)
    [verdict] = world.verify_output(events)["tables"]
    assert (verdict["target"], verdict["outcome"], verdict["error"]) == (target, "FAILED", "ConfigError")
    [table] = collect(description, events).tables
    assert (table.outcome, table.error) == ("FAILED", "ConfigError")
