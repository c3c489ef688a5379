"""What the read-only commands (``plan``, ``status``, ``parity``) look at, besides the configs:
the Snowflake database and schemas, a source session set up like the exporter's, and the
sync state machine (on AWS by ARN, or the local stack's deployment found by name)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aurora_sync.errors import ConfigError

from .environment import STATE_MACHINE_ARN_VARIABLE, Environment, local_aws_client
from .errors import aws_call
from .local.engine import LOCAL_STACK_NAME

T = TypeVar("T")
# The exporter's session settings (aurora_sync.source_db): window literals and exported text are
# interpreted in UTC with ISO dates, so counts and row images here match what a run reads.
_EXPORTER_SESSION = (
    "SET TIME ZONE 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'iso_8601'",
    "SET extra_float_digits = 3",
)


@dataclass(frozen=True)
class WarehouseNames:
    database: str
    staging_schema: str
    final_schema: str


def _setup_value(env: Environment, name: str) -> str | None:
    value = env.setup_value(name)
    return None if value is None else str(value)


def warehouse_names(env: Environment, conn: Any) -> WarehouseNames:
    """Flags, then the Lambdas' variables, then the session's database and the default schemas."""
    database = _setup_value(env, "database") or conn.database
    if not database:
        raise ConfigError(
            "no Snowflake database to read FINAL from.",
            fix="pass --database or set SNOWFLAKE_DATABASE",
        )
    return WarehouseNames(
        database=str(database),
        staging_schema=_setup_value(env, "staging_schema") or "STAGING",
        final_schema=_setup_value(env, "final_schema") or "FINAL",
    )


def exporter_session(conn: Any) -> None:
    """Give an autocommit source session the exporter's settings (they last for the session)."""
    with conn.cursor() as cur:
        for statement in _EXPORTER_SESSION:
            cur.execute(statement)


@dataclass(frozen=True)
class StateMachine:
    sfn: Any
    arn: str
    where: str
    s3: Any = None  # reads the run files (export results of the Distributed Map's rounds)


def find_state_machine(env: Environment) -> tuple[StateMachine | None, str | None]:
    """The sync state machine, or None and the reason (said once in the output, not an error:
    watermarks are worth showing without it)."""
    from .workflow.target import aws_target

    explicit = env.state_machine_arn()
    if explicit:
        target = aws_target(explicit, None)
        return StateMachine(target.sfn, target.state_machine_arn, target.where, target.s3), None
    status = env.local_stack()
    if status is None or not status.get("aws"):
        return None, (
            f"no state machine named: pass --state-machine-arn or set {STATE_MACHINE_ARN_VARIABLE} "
            "(or start the local stack)"
        )
    name = f"{env.options.local_stack_name or LOCAL_STACK_NAME}-sync"
    sfn = local_aws_client("stepfunctions", status["aws"])
    where = f"the local stack under {status.get('state_dir')}"
    machines: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = sfn_call("states:ListStateMachines", where, lambda: sfn.list_state_machines(**kwargs))
        machines += page.get("stateMachines", [])
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    found = next((m for m in machines if m["name"] == name), None)
    if found is None:
        return None, (
            f"{where} has no state machine {name!r} yet: `aurora-sync sync` deploys it "
            "(or pass --local-stack-name)"
        )
    return StateMachine(
        sfn, str(found["stateMachineArn"]), where, local_aws_client("s3", status["aws"])
    ), None


def sfn_call(call: str, where: str, action: Callable[[], T]) -> T:
    """One read-only Step Functions call (``call`` is its IAM action) on the state machine's side."""
    return aws_call(action, call=call, resource=where)
