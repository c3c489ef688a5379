"""Which state machine an execution runs on: AWS (by ARN or CloudFormation stack) or the local
stack's deployment of ``template.yaml``. The flags and variables are resolved by the
``Environment``; this module turns its answer into a reachable ``Target``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aurora_sync.aws_errors import aws_error_code
from aurora_sync.config import load_table_configs

from ..environment import STATE_MACHINE_ARN_VARIABLE, Environment, local_aws_client
from ..errors import UsageError, WorkflowError, aws_call, aws_failure

STACK_OUTPUT = "StateMachineArn"
# The template's ConfigSsmPath pattern (no trailing slash).
_SSM_PATH = re.compile(r"^(/[\w.-]+)+$")
# The parts the deployed functions talk to; a stack started with --only lacks some of them.
_WORKFLOW_PARTS = ("aws", "postgres", "snowflake", "vault")
AWS_POLL_S = 2.0
LOCAL_POLL_S = 0.3


@dataclass
class Target:
    """A state machine and the Step Functions client that reaches it."""

    sfn: Any
    state_machine_arn: str
    where: str  # for messages: "AWS us-east-1" or "the local stack under ..."
    poll_s: float
    # The run files' bucket (export results of the Distributed Map's rounds) is read with this
    # client; None: results come from the execution's history only.
    s3: Any = None


def region_of(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "states" or parts[5] not in ("stateMachine", "execution"):
        raise UsageError(
            f"{arn!r} is not a Step Functions ARN.",
            fix="pass arn:aws:states:<region>:<account>:stateMachine:<name> "
            "(or :execution:<state machine>:<name> for rerun)",
        )
    return parts[3]


def stack_output(stack_name: str, key: str = STACK_OUTPUT, instead: str = "--state-machine-arn") -> str:
    """The output ``key`` of a CloudFormation stack; ``instead`` names the flag that avoids the lookup."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    resource = f"stack {stack_name}"
    cloudformation = aws_call(
        lambda: boto3.client("cloudformation"), call="cloudformation:DescribeStacks", resource=resource
    )
    region = cloudformation.meta.region_name
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        # CloudFormation answers a missing stack with a ValidationError: say it plainly.
        if isinstance(exc, ClientError) and "does not exist" in str(exc):
            raise WorkflowError(
                f"CloudFormation stack {stack_name!r} does not exist in {region}.",
                fix="pass the stack_name of `sam deploy` (see samconfig.toml) and its region "
                f"(AWS_DEFAULT_REGION), or {instead}",
            ) from None
        raise aws_failure(
            exc, call="cloudformation:DescribeStacks", resource=f"{resource} in {region}"
        ) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if key not in outputs:
        raise WorkflowError(
            f"stack {stack_name!r} has no output {key} (status {stacks[0].get('StackStatus')}).",
            fix=f"deploy this project's template.yaml to it (sam deploy), or pass {instead}",
        )
    return str(outputs[key])


def aws_target(state_machine_arn: str | None, stack_name: str | None) -> Target:
    """The state machine on AWS, named directly or by its CloudFormation stack's output."""
    import boto3

    if state_machine_arn is None:
        assert stack_name is not None
        state_machine_arn = stack_output(stack_name)
    region = region_of(state_machine_arn)
    if ":stateMachine:" not in state_machine_arn:
        raise UsageError(
            f"{state_machine_arn!r} is an execution ARN; sync starts a state machine.",
            fix="pass arn:aws:states:<region>:<account>:stateMachine:<name>, or use "
            "`aurora-sync rerun` with the execution ARN",
        )
    sfn = boto3.client("stepfunctions", region_name=region)
    s3 = boto3.client("s3", region_name=region)
    return Target(
        sfn=sfn, state_machine_arn=state_machine_arn, where=f"AWS {region}", poll_s=AWS_POLL_S, s3=s3
    )


def _workflow_stack(env: Environment) -> dict[str, Any]:
    """The running local stack with every part the deployed functions need."""
    status = env.local_stack()
    if status is None:
        raise WorkflowError(
            f"no state machine on AWS was named and the local stack under {env.stack_settings().root} "
            "is not running.",
            fix="start it (aurora-sync local up; or pass its --state-dir/--port-base), or name the state "
            f"machine with --state-machine-arn, {STATE_MACHINE_ARN_VARIABLE} or --stack-name",
        )
    missing = [part for part in _WORKFLOW_PARTS if not status.get(part)]
    if missing:
        raise WorkflowError(
            f"the local stack under {status.get('state_dir')} runs without {', '.join(missing)}, "
            "which the functions need.",
            fix="start every part: aurora-sync local up (without --only)",
        )
    return status


def local_config_path(env: Environment, status: dict[str, Any]) -> str:
    """The ConfigSsmPath the local deployment gets (the template's form: no trailing slash)."""
    path = env.config_path(default=str(status["aws"]["config_ssm_path"])).rstrip("/")
    if not _SSM_PATH.match(path):
        raise UsageError(
            f"config path {path!r} is not an SSM path.",
            fix="use an absolute path such as /aurora-sync/tables (letters, digits, '_', '.', '-')",
        )
    return path


def local_target(env: Environment, tables: Sequence[str] | None) -> Target:
    """Deploy template.yaml into the running local stack and return its state machine."""
    from ..local.engine import LOCAL_STACK_NAME, LocalEngine

    status = _workflow_stack(env)
    aws = status["aws"]
    config_path = local_config_path(env, status)
    if tables:
        # The planner would reject them too, but only after a deployment and an execution.
        configs = load_table_configs(config_path, ssm_client=local_aws_client("ssm", aws), max_age=0)
        known = [c.name for c in configs]
        unknown = [name for name in tables if name not in known]
        if unknown:
            raise UsageError(
                f"unknown table(s) {', '.join(unknown)} in --tables; {config_path}/ has: "
                f"{', '.join(known) if known else '(no tables)'}.",
                fix="use names from that list, or add the table's config parameter first",
            )
    engine = LocalEngine(
        status,
        parameters={"ConfigSsmPath": config_path},
        stack_name=env.options.local_stack_name or LOCAL_STACK_NAME,
    )
    where = f"the local stack under {status.get('state_dir')}"
    deployment = aws_call(
        engine.deploy, call="deploying the functions and state machine (moto)", resource=where
    )
    return Target(
        sfn=local_aws_client("stepfunctions", aws),
        state_machine_arn=deployment.state_machine_arn,
        where=where,
        poll_s=LOCAL_POLL_S,
        s3=local_aws_client("s3", aws),
    )


def sync_target(env: Environment, tables: Sequence[str] | None) -> Target:
    """Flags first (--state-machine-arn, --stack-name), then AURORA_SYNC_STATE_MACHINE_ARN, then local."""
    options = env.options
    if options.state_machine_arn and options.stack_name:
        raise UsageError(
            "--state-machine-arn and --stack-name both name the state machine.", fix="pass one of them"
        )
    if options.local and (options.state_machine_arn or options.stack_name):
        raise UsageError(
            "--local runs on the local stack; --state-machine-arn/--stack-name name a state machine on AWS.",
            fix="pass one or the other",
        )
    explicit = env.state_machine_arn()
    if explicit or options.stack_name:
        if options.config_path or options.local_stack_name:
            raise UsageError(
                "--config-path and --local-stack-name configure the local deployment only; on AWS the "
                "stack's ConfigSsmPath parameter decides where table configs live.",
                fix="drop them, or run on the local stack (no --state-machine-arn/--stack-name/"
                f"{STATE_MACHINE_ARN_VARIABLE})",
            )
        return aws_target(explicit, options.stack_name)
    return local_target(env, tables)


def rerun_target(env: Environment, execution_arn: str) -> Target:
    """The state machine of ``execution_arn``, on the local stack when the ARN is in its account."""
    import boto3

    region = region_of(execution_arn)
    if ":execution:" not in execution_arn:
        raise UsageError(
            f"{execution_arn!r} is a state machine ARN; rerun needs an execution ARN.",
            fix="pass the ARN `aurora-sync sync` printed (arn:aws:states:...:execution:...)",
        )
    account = execution_arn.split(":")[4]
    status = _workflow_stack(env) if env.options.local else env.local_stack()
    aws = (status or {}).get("aws") or {}
    if aws and aws.get("account_id") == account and aws.get("region") == region:
        sfn, where, poll_s, s3 = (
            local_aws_client("stepfunctions", aws),
            f"the local stack under {(status or {}).get('state_dir')}",
            LOCAL_POLL_S,
            local_aws_client("s3", aws),
        )
    elif env.options.local:
        raise UsageError(
            f"{execution_arn} is not an execution of the local stack (account {aws.get('account_id')}, "
            f"region {aws.get('region')}).",
            fix="drop --local to reach AWS, or pass an ARN `aurora-sync sync --local` printed",
        )
    else:
        sfn, where, poll_s = boto3.client("stepfunctions", region_name=region), f"AWS {region}", AWS_POLL_S
        s3 = boto3.client("s3", region_name=region)
    # A rerun goes to the state machine that ran the execution, whatever the flags say.
    description = describe_on(sfn, where, execution_arn)
    return Target(sfn, str(description["stateMachineArn"]), where, poll_s, s3)


def describe_on(sfn: Any, where: str, execution_arn: str) -> dict[str, Any]:
    """DescribeExecution with a plain message for an execution that is not (or no longer) there."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
    except (BotoCoreError, ClientError) as exc:
        if aws_error_code(exc) == "ExecutionDoesNotExist":
            raise WorkflowError(
                f"execution {execution_arn} does not exist on {where}.",
                fix="check the ARN; executions are kept 90 days after they end (a restarted local "
                "stack starts empty)",
            ) from None
        raise aws_failure(
            exc, call="states:DescribeExecution", resource=f"{execution_arn} on {where}"
        ) from None
    return description
