"""The CLI's own errors, and its one way of turning a botocore failure into one of them.

They subclass ``SyncError`` so ``aurora-sync``'s ``main`` prints them like the library's: one line
naming the thing and the fix. They never reach the state machine, so their names are not part of
its API (the library's ``aurora_sync.errors`` classes are).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aurora_sync.aws_errors import classify_aws_error
from aurora_sync.errors import SyncError

T = TypeVar("T")


class WorkflowError(SyncError):
    """The workflow (or an AWS API the CLI needs) cannot be used; the message names the fix."""


class UsageError(WorkflowError):
    """The command line asks for something impossible (exit status 2)."""


class AwsUnavailable(WorkflowError):
    """AWS throttled the call, answered 5xx, or did not answer: the same command may succeed later."""


# What the CLI's own AWS calls need; an access-denied message names them all, since the
# operator fixes one policy for the whole CLI.
CLI_GRANT = (
    "use credentials allowed to call it (states:StartExecution, states:DescribeExecution, "
    "states:GetExecutionHistory, states:ListStateMachines, states:ListExecutions; "
    "cloudformation:DescribeStacks for --stack-name)"
)
_RETRY_FIX = "run the command again in a minute; if it persists, check the AWS service health and the network"


def aws_failure(exc: BaseException, *, call: str, resource: str, grant: str = CLI_GRANT) -> SyncError:
    """``classify_aws_error`` with the CLI's classes: a terminal ``WorkflowError`` or ``AwsUnavailable``."""
    return classify_aws_error(
        exc,
        call=call,
        resource=resource,
        grant=grant,
        transient=AwsUnavailable,
        terminal=WorkflowError,
        retry_fix=_RETRY_FIX,
        failed_fix="check the ARN or name, the region and the AWS credentials, then run the command again",
    )


def aws_call(action: Callable[[], T], *, call: str, resource: str, grant: str = CLI_GRANT) -> T:
    """Run one AWS API call; a botocore failure becomes the CLI's error naming ``call`` on ``resource``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return action()
    except (BotoCoreError, ClientError) as exc:
        raise aws_failure(exc, call=call, resource=resource, grant=grant) from None
