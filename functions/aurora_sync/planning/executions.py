"""Single flight's question to Step Functions: which executions of this state machine run now.

The rule that picks the blocking execution is pure (``plan.earlier_execution``); this module
only lists them; ``aws_errors`` maps the API's refusals onto the taxonomy (the state machine
retries ``ConfigStoreUnavailable`` and fails the run on ``ConfigError``).
"""

from __future__ import annotations

from ..aws_errors import classify_aws_error
from .plan import ExecutionContext, RunningExecution


def running_executions(execution: ExecutionContext) -> list[RunningExecution]:
    """RUNNING executions of this execution's state machine (states:ListExecutions)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "stepfunctions",
        config=Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}),
    )
    arn = execution.state_machine_arn
    found: list[RunningExecution] = []
    try:
        pages = client.get_paginator("list_executions").paginate(stateMachineArn=arn, statusFilter="RUNNING")
        for page in pages:
            found.extend(
                RunningExecution(e["executionArn"], e["name"], e["startDate"]) for e in page["executions"]
            )
    except (BotoCoreError, ClientError) as exc:
        raise classify_aws_error(
            exc,
            call="states:ListExecutions",
            resource=arn,
            grant="grant the planner's role states:ListExecutions on its state machine",
            failed_fix="pass $$.StateMachine.Id as execution.state_machine_arn in the Plan state",
        ) from None
    return found
