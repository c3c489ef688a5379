"""Single flight's question to Step Functions: which executions of this state machine run now.

The rule that picks the blocking execution is pure (``plan.earlier_execution``); this module
only lists them, and maps the API's refusals onto the error taxonomy (the state machine retries
``ConfigStoreUnavailable`` and fails the run on ``ConfigError``).
"""

from __future__ import annotations

from ..errors import ConfigError, ConfigStoreUnavailable
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
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code.startswith("AccessDenied"):
            raise ConfigError(
                f"access denied for states:ListExecutions on {arn} ({code}).",
                fix="grant the planner's role states:ListExecutions on its state machine",
            ) from None
        if code in {"ThrottlingException", "TooManyRequestsException"} or status >= 500:
            raise ConfigStoreUnavailable(
                f"states:ListExecutions on {arn} refused for now ({code}).", fix="the run retries"
            ) from None
        raise ConfigError(
            f"states:ListExecutions on {arn} failed ({code}).",
            fix="pass $$.StateMachine.Id as execution.state_machine_arn in the Plan state",
        ) from None
    except BotoCoreError as exc:
        raise ConfigStoreUnavailable(
            f"Step Functions could not be reached for states:ListExecutions on {arn} ({type(exc).__name__}).",
            fix="the run retries; check the Step Functions endpoint / VPC endpoint of the function",
        ) from None
    return found
