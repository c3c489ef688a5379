"""Hundreds of failed tables end the run with a cause Step Functions accepts (issue 15).

An execution's cause is at most 32,768 characters (API reference, ExecutionFailedEventDetails;
the local engine fails a Fail state past it with ``States.Runtime``, ``sfn_limits``). The
TablesFailed cause names each failed table with its error and quotes the rerun input: with a
few hundred failed tables whose errors are long, it used to pass the limit, and the run ended in
``States.Runtime`` instead of naming what to fix. Now the cause names the tables that fit, then
"and K more" with the report that lists them all, and the rerun input's file when the input is
too long to quote; ``aurora-sync rerun`` reads the whole list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from world import World, admin_client, open_world

from aurora_sync_ops.workflow.executions import rerun_of
from aurora_sync_ops.workflow.target import Target

BROKEN = 300
MAX_CAUSE_CHARS = 32_768
# Configs as long as the names allow, each refused by the planner with a long ConfigError.
LONG = "_whose_config_is_refused_by_the_planner_abcdefghijklmnopq"


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    tables = {
        "many_ok": (
            "CREATE TABLE {schema}.ok (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": "ok", "primary_key": ["id"]},
        )
    }
    with open_world(stack, tables, prefix="many") as world:
        world.execute("INSERT INTO {schema}.ok (id) SELECT g FROM generate_series(1, 3) g")
        world.apply()
        ssm = admin_client(world.status, "ssm")
        valid = {k: v for k, v in world.configs["many_ok"].items() if k != "target"}
        for i in range(BROKEN):
            # A misspelt key: the planner fails the table with a ConfigError naming the parameter.
            ssm.put_parameter(
                Name=f"{world.config_path}b{i:03d}{LONG}",
                Value=json.dumps({**valid, "table": f"missing_{i:03d}", "primry_key": ["id"]}),
                Type="String",
                Overwrite=True,
            )
        yield world


def test_hundreds_of_failed_tables_fail_the_run_with_a_bounded_cause_and_a_complete_rerun(
    world: World,
) -> None:
    description, events = world.run(timeout_s=600)
    assert (description["status"], description["error"]) == ("FAILED", "TablesFailed"), description
    cause = description["cause"]
    assert len(cause) <= MAX_CAUSE_CHARS
    assert cause.startswith(f"{BROKEN} table(s) failed: b000{LONG} (ConfigError: ")
    named = cause.count(" (ConfigError: ")
    assert 0 < named < BROKEN
    report = world.verify_output(events)
    assert f"; and {BROKEN - named} more (every failed table with its error: s3://" in cause
    summary = report["summary"]
    assert summary["failed_count"] == BROKEN and len(summary["failed"]) == BROKEN
    # 300 long names are too long to quote: the cause names the file that holds the input.
    assert summary["rerun_file"] is not None and f"in {summary['rerun_file']}" in cause
    world.assert_parity("many_ok")  # the valid table merged in the same run

    # The CLI's rerun reads every failed table, not the state's first few.
    target = Target(
        world.engine.sfn,
        world.deployment.state_machine_arn,
        "the local stack",
        0.3,
        admin_client(world.status, "s3"),
    )
    rerun = rerun_of(target, description["executionArn"])
    assert rerun == {"tables": sorted(f"b{i:03d}{LONG}" for i in range(BROKEN))}
