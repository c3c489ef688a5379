"""The fault matrix end to end: each fault is injected into the real servers of the local stack
while the real state machine runs, and after recovery FINAL must equal the source row by row.

Injections are the cheapest faithful ones: a stack process frozen with SIGSTOP (its port still
accepts TCP connections, nothing answers, as with a hung host or a blackholed route), a role's
connection limit (Aurora out of connection slots), a broken SSM parameter, a Lambda Timeout
lowered on the deployed function while a lock makes the export wait. Every frozen process is
resumed in ``finally``. Faults proven elsewhere are listed in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import pytest
import requests
from cli_run import rerun_command_in
from psycopg2 import sql
from world import (
    CLOCK_SCALE,
    World,
    admin_client,
    entered,
    open_world,
    run_reacting,
    set_clock,
)

from aurora_sync_ops.cli import main as cli_main
from aurora_sync_ops.local.engine import Deployment
from aurora_sync_ops.local.stack import Stack

ROWS = 40
# A freeze longer than this means the trigger event never came: resume and let the test fail.
MAX_FREEZE_S = 60.0


def fill_accounts(world: World) -> None:
    world.execute(
        "INSERT INTO {schema}.accounts (id, owner, balance) "
        f"SELECT i, 'owner ' || i, i * 2.5 FROM generate_series(1, {ROWS}) i"
    )


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    """Two small tables; every test leaves the stack as it found it (processes resumed, role
    limits and function timeouts restored, configs pushed again). Config names are unique in the
    suite: they are the S3 prefix, and every world shares the stack's bucket and its pipes."""
    tables = {
        "fault_accounts": (
            "CREATE TABLE {schema}.accounts (id bigint PRIMARY KEY, owner text, balance numeric(12,2), "
            "updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": "accounts", "primary_key": ["id"]},
        ),
        "fault_ledger": (
            "CREATE TABLE {schema}.ledger (entry bigint PRIMARY KEY, amount numeric(10,2), "
            "updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": "ledger", "primary_key": ["entry"]},
        ),
    }
    with open_world(stack, tables, prefix="faults") as world:
        fill_accounts(world)
        world.execute("INSERT INTO {schema}.ledger (entry, amount) SELECT i, i FROM generate_series(1, 25) i")
        world.apply()
        description, _ = world.run()  # the backfill: every test starts from parity
        assert description["status"] == "SUCCEEDED", description
        yield world


class Frozen:
    """One process of the stack stopped with SIGSTOP until ``resume`` (idempotent)."""

    def __init__(self, local_stack: Stack, part: str) -> None:
        (state,) = [p for p in local_stack.processes() if p.name == part]
        assert state.pid and state.alive, f"{part} is not running in the test stack"
        self.part, self.pid = part, state.pid
        self.stopped_at: float | None = None
        self.resumed_after: float | None = None

    def stop(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.stopped_at = time.monotonic()

    def resume(self) -> None:
        if self.stopped_at is not None and self.resumed_after is None:
            os.kill(self.pid, signal.SIGCONT)
            self.resumed_after = time.monotonic() - self.stopped_at

    def overdue(self) -> bool:
        return self.stopped_at is not None and time.monotonic() - self.stopped_at > MAX_FREEZE_S


@contextmanager
def frozen(local_stack: Stack, part: str) -> Iterator[Frozen]:
    process = Frozen(local_stack, part)
    try:
        yield process
    finally:
        process.resume()


def accounts(world: World) -> sql.Composable:
    return sql.Identifier(world.schema, "accounts")


def task_errors(events: list[dict[str, Any]]) -> list[str]:
    return [e["taskFailedEventDetails"]["error"] for e in events if "taskFailedEventDetails" in e]


def failed_with(event: dict[str, Any], error: str) -> bool:
    return event.get("taskFailedEventDetails", {}).get("error") == error


def entered_state(event: dict[str, Any], name: str) -> bool:
    return event.get("stateEnteredEventDetails", {}).get("name") == name


def retry_sleeps(world: World) -> list[float]:
    url = f"{world.status['aws']['endpoint_url']}/moto-api/aurora-sync/clock"
    sleeps = requests.get(url, timeout=5).json()["sleeps"]
    return [s["seconds"] for s in sleeps if s["kind"] == "retry"]


def test_postgres_unreachable_during_export_is_retried_and_the_table_merges(
    world: World, local_stack: Stack
) -> None:
    # The planner reads only SSM, Vault and Snowflake: the outage hits the exporter's connect,
    # which waits connect_timeout (5 s), raises SourceUnavailable, and is retried.
    world.execute("UPDATE {schema}.accounts SET balance = balance + 1, updated_at = now() WHERE id <= 10")
    set_clock(world.status, CLOCK_SCALE)  # clears the record of requested sleeps
    with frozen(local_stack, "postgres") as postgres:
        postgres.stop()

        def react(event: dict[str, Any]) -> None:
            if failed_with(event, "SourceUnavailable") or postgres.overdue():
                postgres.resume()

        description, events = run_reacting(world, {"tables": ["fault_accounts"]}, react)
    assert description["status"] == "SUCCEEDED", description
    assert task_errors(events) == ["SourceUnavailable"]
    failure = next(e["taskFailedEventDetails"] for e in events if "taskFailedEventDetails" in e)
    assert "PostgreSQL connection error" in failure["cause"]
    assert world.status["postgres"]["password"] not in failure["cause"]
    # The transient family's first retry: at most IntervalSeconds 5 with FULL jitter.
    assert retry_sleeps(world) and 0 <= retry_sleeps(world)[0] <= 5
    (report,) = world.verify_output(events)["tables"]
    assert report["outcome"] == "MERGED" and report["rows_loaded"] == ROWS
    world.assert_parity()


def test_aurora_out_of_connections_exhausts_the_plan_retries_and_a_rerun_heals(
    world: World,
) -> None:
    sync_role = sql.Identifier(world.status["postgres"]["user"])
    # Every new session of the sync role is refused with 53300, as when Aurora is at max_connections.
    with world.admin.cursor() as cur:
        cur.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 0").format(sync_role))
    try:
        description, events = world.run({"tables": ["fault_accounts", "fault_ledger"]})
    finally:
        with world.admin.cursor() as cur:
            cur.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT -1").format(sync_role))
    assert description["status"] == "FAILED"
    # The planner reads the tables' source catalog before anything is exported (its schema step):
    # the Plan state makes the first attempt plus MaxAttempts 4 of the transient family, then
    # fails the run with the error.
    assert description["error"] == "SourceUnavailable"
    assert task_errors(events) == ["SourceUnavailable"] * 5
    assert any(entered_state(e, "PlanFailed") for e in events)
    assert "PostgreSQL error 53300 (too_many_connections)" in description["cause"]

    description, events = world.run({"tables": ["fault_accounts", "fault_ledger"]})
    assert description["status"] == "SUCCEEDED", description
    assert task_errors(events) == []
    world.assert_parity()


def test_snowflake_unreachable_during_verify_is_retried_and_the_table_merges(
    world: World, local_stack: Stack
) -> None:
    # Frozen once the plan is made (the planner needs Snowflake): Snowpipe's loads stall with it,
    # and the verifier's login gives up after its 20 s login_timeout with WarehouseUnavailable.
    # A lock holds the export until the freeze is in place, so a warm, fast exporter cannot
    # let the verifier reach Snowflake first.
    world.execute("UPDATE {schema}.accounts SET owner = 'frozen', updated_at = now() WHERE id = 3")
    locker = psycopg2.connect(world.status["postgres"]["admin_dsn"])
    try:
        with locker.cursor() as cur:
            cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(accounts(world)))
        with frozen(local_stack, "snowflake") as snowflake:

            def react(event: dict[str, Any]) -> None:
                if entered_state(event, "ExportRound"):
                    snowflake.stop()
                    locker.rollback()
                if failed_with(event, "WarehouseUnavailable") or snowflake.overdue():
                    snowflake.resume()

            description, events = run_reacting(world, {"tables": ["fault_accounts"]}, react)
    finally:
        locker.close()
    assert description["status"] == "SUCCEEDED", description
    assert task_errors(events) == ["WarehouseUnavailable"]
    failure = next(e["taskFailedEventDetails"] for e in events if "taskFailedEventDetails" in e)
    assert "Could not connect to Snowflake backend" in failure["cause"]
    assert "PRIVATE KEY" not in failure["cause"]
    (report,) = world.verify_output(events)["tables"]
    assert report["outcome"] == "MERGED" and report["rows_loaded"] == ROWS
    world.assert_parity()


def test_vault_unreachable_during_plan_is_retried_and_the_run_succeeds(
    world: World, local_stack: Stack
) -> None:
    # Warm workers serve secrets from a cache (300 s): a planner without it must ask Vault on
    # every invocation. A changed environment also means a new, cold execution environment.
    planner = world.deployment.functions["PlannerFunction"]
    lambda_ = world.engine.lambda_
    variables = lambda_.get_function_configuration(FunctionName=planner)["Environment"]["Variables"]
    lambda_.update_function_configuration(
        FunctionName=planner, Environment={"Variables": {**variables, "POWERTOOLS_PARAMETERS_MAX_AGE": "0"}}
    )
    try:
        with frozen(local_stack, "vault") as vault:
            vault.stop()

            def react(event: dict[str, Any]) -> None:
                if failed_with(event, "SecretsUnavailable") or vault.overdue():
                    vault.resume()

            description, events = run_reacting(world, {"tables": ["fault_accounts"]}, react)
    finally:
        world.deployment = world.engine.deploy()
    assert description["status"] == "SUCCEEDED", description
    assert task_errors(events) == ["SecretsUnavailable"]
    failure = next(e["taskFailedEventDetails"] for e in events if "taskFailedEventDetails" in e)
    assert f"Vault at {world.status['vault']['addr']} is unreachable while" in failure["cause"]
    assert world.status["vault"]["root_token"] not in failure["cause"]
    assert [item["table"] for item in world.planned_items(events)] == ["fault_accounts"]
    world.assert_parity()


def test_malformed_config_fails_only_its_table_and_the_rerun_after_the_fix_heals(world: World) -> None:
    parameter = f"{world.config_path}fault_ledger"
    broken = {**world.configs["fault_ledger"], "primary_key": "entry", "primry_key": ["entry"]}
    admin_client(world.status, "ssm").put_parameter(
        Name=parameter, Value=json.dumps(broken), Type="String", Overwrite=True
    )
    try:
        description, events = world.run({"tables": ["fault_accounts", "fault_ledger"]})
    finally:
        world.apply()  # the operator's fix: the valid config pushed again
    assert description["status"] == "FAILED"
    assert description["error"] == "TablesFailed"
    cause = description["cause"]
    assert f"fault_ledger (ConfigError: {parameter}" in cause
    assert "primary_key" in cause and "primry_key" in cause
    assert '{"tables": ["fault_ledger"]}' in cause
    assert [item["table"] for item in world.planned_items(events)] == ["fault_accounts"]
    assert [failed["table"] for failed in world.plan_failed(events)] == ["fault_ledger"]
    world.assert_parity("fault_accounts")  # the valid table merged in the same run

    description, events = world.run(world.verify_output(events)["summary"]["rerun_input"])
    assert description["status"] == "SUCCEEDED", description
    assert [item["table"] for item in world.planned_items(events)] == ["fault_ledger"]
    world.assert_parity()


def exporter_sessions(admin: Any) -> list[int]:
    with admin.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'aurora-sync-exporter'")
        return [row[0] for row in cur.fetchall()]


def test_lambda_timeout_fails_the_table_and_the_rerun_with_the_normal_timeout_heals(world: World) -> None:
    exporter = world.deployment.functions["ExporterFunction"]
    # Lambda kills the sandbox at its Timeout; the export waits on a lock until then.
    world.engine.lambda_.update_function_configuration(FunctionName=exporter, Timeout=3)
    locker = psycopg2.connect(world.status["postgres"]["admin_dsn"])
    try:
        with locker.cursor() as cur:
            cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(accounts(world)))
        description, events = world.run({"tables": ["fault_accounts"]})
        # The orphaned session outlives its sandbox only until statement_timeout (the 5 s floor
        # here) cancels it, even though the lock is still held.
        deadline = time.monotonic() + 20
        while exporter_sessions(world.admin) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert exporter_sessions(world.admin) == []
    finally:
        locker.close()
        world.deployment = world.engine.deploy()  # back to the template's Timeout
    assert description["status"] == "FAILED"
    assert description["error"] == "TablesFailed"
    assert task_errors(events) == ["Sandbox.Timedout"]  # not retried: a retry would wait as long
    cause = description["cause"]
    assert "fault_accounts (Sandbox.Timedout: " in cause and "Task timed out after 3.00 seconds" in cause
    assert '{"tables": ["fault_accounts"]}' in cause

    description, events = world.run({"tables": ["fault_accounts"]})
    assert description["status"] == "SUCCEEDED", description
    world.assert_parity()


def emulator_task_fault(world: World, method: str, **body: Any) -> None:
    """The Snowflake emulator's test hook (docs/local-stack.md): hold a task's runs EXECUTING."""
    sf = world.status["snowflake"]
    url = f"{sf['protocol']}://{sf['host']}:{sf['port']}/emulator/task-faults"
    requests.request(method, url, json=body, timeout=10).raise_for_status()


@contextmanager
def redeployed(world: World, **parameters: Any) -> Iterator[None]:
    """The state machine and functions deployed with other template parameters, then restored."""
    saved = dict(world.engine.parameters)
    world.engine.parameters.update(parameters)
    world.deployment = world.engine.deploy()
    try:
        yield
    finally:
        world.engine.parameters.clear()
        world.engine.parameters.update(saved)
        world.deployment = world.engine.deploy()


def merge_task_runs(world: World, name: str) -> list[dict[str, Any]]:
    target = world.configs[name]["target"]
    with world.warehouse.cursor() as cur:
        cur.execute(
            f"SELECT STATE, ERROR_MESSAGE FROM TABLE({world.setup.database}.INFORMATION_SCHEMA.TASK_HISTORY("
            f"TASK_NAME => '{target}_MERGE', RESULT_LIMIT => 5))"
        )
        return [{"STATE": r[0], "ERROR_MESSAGE": r[1]} for r in cur.fetchall()]


def test_a_merge_task_that_never_finishes_fails_its_table_as_merge_timeout_and_a_rerun_heals(
    world: World,
) -> None:
    # The MERGE task of fault_accounts stays EXECUTING (the emulator holds it). The verifier must
    # settle the table as MergeTimeout, naming it, before the Wait/Verify loop runs out: the run
    # may not end as the anonymous VerifyGaveUp/VerifyAttemptsExhausted backstop.
    world.execute("UPDATE {schema}.accounts SET owner = 'held merge', updated_at = now() WHERE id <= 4")
    merge_task = world.setup.objects(world.configs["fault_accounts"]["target"]).merge_task
    # MergeTimeoutSeconds counts real seconds while the Wait states run on the scaled clock
    # (CLOCK_SCALE): 200 attempts take about 20 s or more here, so 5 s keeps the loop the longer
    # one, as LOCAL_PARAMETERS (2 s x 200 > 120 s + 180 s + 4 s) do in real time.
    with redeployed(world, MergeTimeoutSeconds=5):
        emulator_task_fault(world, "POST", task=merge_task, fault="hang")
        try:
            description, events = world.run({"tables": ["fault_accounts", "fault_ledger"]})
        finally:
            emulator_task_fault(world, "DELETE", task=merge_task)
    assert description["status"] == "FAILED", description
    assert description["error"] == "TablesFailed"
    assert "VerifyGaveUp" not in entered(events)
    verdicts = {v["table"]: v for v in world.verify_output(events)["tables"]}
    assert verdicts["fault_accounts"]["outcome"] == "FAILED"
    assert verdicts["fault_accounts"]["error"] == "MergeTimeout"
    assert "still EXECUTING" in verdicts["fault_accounts"]["reason"]
    assert verdicts["fault_ledger"]["outcome"] in ("MERGED", "NOTHING_TO_DO")
    cause = description["cause"]
    assert "fault_accounts (MergeTimeout: merge task" in cause
    assert '{"tables": ["fault_accounts"]}' in cause

    # Released, the held run merges; the rerun then finds everything in place.
    deadline = time.monotonic() + 60
    while merge_task_runs(world, "fault_accounts")[0]["STATE"] == "EXECUTING" and time.monotonic() < deadline:
        time.sleep(0.2)
    description, events = world.run({"tables": ["fault_accounts"]})
    assert description["status"] == "SUCCEEDED", description
    world.assert_parity()


# --- failures outside a table's own path still name the tables and the rerun input ------------------
def rerun_hint(description: dict[str, Any]) -> str:
    """The rerun command a failure cause names: this very execution, as `aurora-sync rerun` takes it."""
    return f"(or `aurora-sync rerun {description['executionArn']}`)"


def test_a_verifier_killed_after_its_retries_fails_naming_every_table_and_aurora_sync_rerun_heals(
    world: World, local_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # The verifier's sandbox is killed at its Timeout (Sandbox.Timedout, not retried: a retry
    # would wait as long) while Snowflake is frozen. Its raw cause, Lambda's error document,
    # names no table; the execution must still say which tables to rerun and how: its own input,
    # which names them. fault_ledger's config is broken too (a failure of the plan).
    verifier = world.deployment.functions["VerifierFunction"]
    parameter = f"{world.config_path}fault_ledger"
    broken = {**world.configs["fault_ledger"], "primary_key": "entry"}
    admin_client(world.status, "ssm").put_parameter(
        Name=parameter, Value=json.dumps(broken), Type="String", Overwrite=True
    )
    world.execute("UPDATE {schema}.accounts SET owner = 'verifier killed', updated_at = now() WHERE id = 7")
    world.engine.lambda_.update_function_configuration(FunctionName=verifier, Timeout=3)
    try:
        with frozen(local_stack, "snowflake") as snowflake:

            def react(event: dict[str, Any]) -> None:
                if entered_state(event, "WaitForLoads"):
                    snowflake.stop()  # the planner needed Snowflake; the verifier must not reach it
                if failed_with(event, "Sandbox.Timedout") or snowflake.overdue():
                    snowflake.resume()

            description, events = run_reacting(world, {"tables": ["fault_accounts", "fault_ledger"]}, react)
    finally:
        world.deployment = world.engine.deploy()  # back to the template's Timeout
    assert description["status"] == "FAILED", description
    assert task_errors(events) == ["Sandbox.Timedout"]
    assert "VerifyFailed" in entered(events)
    assert description["error"] == "Sandbox.Timedout"
    cause = description["cause"]
    assert cause.startswith("Verify (after its retries) failed (Sandbox.Timedout: ")
    assert "Task timed out after 3.00 seconds" in cause
    assert (
        f'execution input {{"tables":["fault_accounts","fault_ledger"]}} {rerun_hint(description)}' in cause
    )

    # `aurora-sync rerun <arn>` reads the same execution and reruns both tables once fixed.
    world.apply()
    settings = local_stack.settings
    code = cli_main(
        [
            "rerun",
            description["executionArn"],
            "--local",
            "--state-dir",
            str(settings.root),
            "--port-base",
            str(settings.ports.postgres),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    rerun_arn = next(line.split()[1] for line in out.splitlines() if line.startswith("execution: "))
    started = world.engine.sfn.describe_execution(executionArn=rerun_arn)
    assert json.loads(started["input"]) == {"tables": ["fault_accounts", "fault_ledger"]}
    assert started["status"] == "SUCCEEDED"
    world.assert_parity()


def test_a_verify_loop_that_runs_out_fails_as_verify_attempts_exhausted_naming_every_table(
    world: World,
) -> None:
    # The backstop (VerifyMaxAttempts reached while a MERGE task is held EXECUTING) gives the
    # rerun input, the execution's own (which names the run's tables), like every other failure.
    world.execute("UPDATE {schema}.ledger SET amount = amount + 1, updated_at = now() WHERE entry <= 3")
    merge_task = world.setup.objects(world.configs["fault_ledger"]["target"]).merge_task
    with redeployed(world, VerifyMaxAttempts=1):
        emulator_task_fault(world, "POST", task=merge_task, fault="hang")
        try:
            description, events = world.run({"tables": ["fault_ledger", "fault_accounts"]})
        finally:
            emulator_task_fault(world, "DELETE", task=merge_task)
    assert description["status"] == "FAILED", description
    assert description["error"] == "VerifyAttemptsExhausted"
    assert "VerifyGaveUp" in entered(events)
    cause = description["cause"]
    assert cause.startswith(
        "Verify failed (VerifyAttemptsExhausted: loads or merges were still pending when the Wait/Verify "
        "loop reached VerifyMaxAttempts (1);"
    )
    # The execution's own input, as it was given, reruns the run's tables.
    assert (
        f'execution input {{"tables":["fault_ledger","fault_accounts"]}} {rerun_hint(description)}' in cause
    )

    deadline = time.monotonic() + 60
    while merge_task_runs(world, "fault_ledger")[0]["STATE"] == "EXECUTING" and time.monotonic() < deadline:
        time.sleep(0.2)
    description, _ = world.run({"tables": ["fault_ledger", "fault_accounts"]})
    assert description["status"] == "SUCCEEDED", description
    world.assert_parity()


def test_a_failed_plan_names_the_execution_input_that_reruns_it(world: World) -> None:
    description, events = world.run({"tables": ["fault_accounts", "no_such_table"]})
    assert description["status"] == "FAILED", description
    assert "PlanFailed" in entered(events)
    assert description["error"] == "ConfigError"
    cause = description["cause"]
    assert cause.startswith("Plan failed (ConfigError: ") and "no_such_table" in cause
    assert (
        'rerun them with the same execution input {"tables":["fault_accounts","no_such_table"]} '
        f"{rerun_hint(description)}" in cause
    )
    # The command parses with the CLI's own parser; Redrive would only repeat the Fail state.
    assert rerun_command_in(cause).execution_arn == description["executionArn"]
    assert "Redrive in the console would only repeat this failed state" in cause


def test_a_failed_export_map_reruns_the_executions_input(world: World) -> None:
    # The Map state itself failing (its manifest or results unreadable: States.ItemReaderFailed,
    # States.ResultWriterFailed) cannot be provoked through the handlers; run the deployed
    # definition from the state its Catch goes to, with the input that state gets. The state
    # holds no list of the run's tables: the execution's own input reruns exactly them.
    sfn = world.engine.sfn
    definition = json.loads(
        sfn.describe_state_machine(stateMachineArn=world.deployment.state_machine_arn)["definition"]
    )
    definition["StartAt"] = "ExportRoundFailed"
    arn = sfn.create_state_machine(
        name=f"map-failure-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn=world.status["aws"]["lambda_role_arn"],
        type="STANDARD",
    )["stateMachineArn"]
    state = {
        "run_id": "r1",
        "round": 0,
        "manifest": "_aurora_sync/runs/r1/round-0/items.json",
        "plan_failed": 1,
        "error": {"Error": "States.ItemReaderFailed", "Cause": "the manifest is gone"},
    }
    try:
        description = world.engine.run(Deployment(arn, {}), state, timeout_s=60)
    finally:
        sfn.delete_state_machine(stateMachineArn=arn)
    assert description["status"] == "FAILED"
    # Step Functions reserves States.* for its own errors: a Fail state may not raise them.
    assert description["error"] == "RunFailed", description.get("cause")
    assert description["cause"].startswith(
        "ExportRound failed (States.ItemReaderFailed: the manifest is gone). "
    )
    rerun = json.dumps(state, separators=(",", ":"))
    assert f"execution input {rerun} {rerun_hint(description)}" in description["cause"]
