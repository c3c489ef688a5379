"""The CLI's one environment resolution (flags > environment variables > the local stack) and its
one mapping of botocore errors, without a server: a state dir where nothing runs, and Step
Functions clients that raise what botocore raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from aurora_sync.errors import ConfigError
from aurora_sync_ops.environment import STATE_MACHINE_ARN_VARIABLE, CliOptions, Environment
from aurora_sync_ops.errors import AwsUnavailable, UsageError, WorkflowError
from aurora_sync_ops.local.stack import StackError
from aurora_sync_ops.workflow.executions import describe, history, start
from aurora_sync_ops.workflow.target import Target, sync_target

ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:aurora-sync-sync"
OTHER = "arn:aws:states:eu-west-1:123456789012:stateMachine:from-the-variable"


def _env(tmp_path: Path, environ: dict[str, str] | None = None, **options: Any) -> Environment:
    options.setdefault("state_dir", str(tmp_path / "no-stack"))
    return Environment(CliOptions(**options), environ=environ or {})


def test_the_state_machine_flag_wins_over_the_variable_which_local_and_stack_name_ignore(
    tmp_path: Path,
) -> None:
    variable = {STATE_MACHINE_ARN_VARIABLE: OTHER}
    assert _env(tmp_path, variable, state_machine_arn=ARN).state_machine_arn() == ARN
    assert _env(tmp_path, variable).state_machine_arn() == OTHER
    assert _env(tmp_path, variable, local=True).state_machine_arn() is None
    assert _env(tmp_path, variable, stack_name="prod").state_machine_arn() is None
    assert _env(tmp_path).state_machine_arn() is None


def test_config_path_and_setup_names_resolve_flag_then_variable_then_default(tmp_path: Path) -> None:
    variables = {"AURORA_SYNC_CONFIG_PATH": "/from/env", "SNOWFLAKE_DATABASE": "ENV_DB"}
    assert _env(tmp_path, variables, config_path="/from/flag").config_path() == "/from/flag"
    assert _env(tmp_path, variables).config_path() == "/from/env"
    assert _env(tmp_path, variables, local=True).config_path() == "/aurora-sync/tables/"
    assert _env(tmp_path).config_path(default="/stack/path") == "/stack/path"
    assert _env(tmp_path, variables, setup={"database": "FLAG_DB"}).setup_value("database") == "FLAG_DB"
    assert _env(tmp_path, variables).setup_value("database") == "ENV_DB"
    assert _env(tmp_path, variables, local=True).setup_value("database") is None


def test_a_stopped_stack_is_none_or_an_error_naming_how_to_start_it(tmp_path: Path) -> None:
    assert _env(tmp_path).local_stack() is None
    with pytest.raises(ConfigError, match=r"--local: the local stack under .* is not running"):
        _env(tmp_path, local=True).local_stack()
    with pytest.raises(StackError) as raised:
        _env(tmp_path, port_base=26980).running_part("snowflake")
    assert str(raised.value).endswith(
        f"is not running its snowflake part; start it with: aurora-sync local up --state-dir "
        f"{tmp_path / 'no-stack'} --port-base 26980"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"state_machine_arn": ARN, "stack_name": "prod"}, "--state-machine-arn and --stack-name both"),
        ({"state_machine_arn": ARN, "local": True}, "--local runs on the local stack"),
        ({"state_machine_arn": ARN, "config_path": "/x"}, "--config-path and --local-stack-name configure"),
    ],
)
def test_sync_target_refuses_contradicting_flags(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        sync_target(_env(tmp_path, **options), None)


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


class Refusing:
    """A Step Functions client whose every call raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def call(**_: Any) -> Any:
            raise self.error

        return call


def _target(error: Exception) -> Target:
    return Target(sfn=Refusing(error), state_machine_arn=ARN, where="AWS eu-west-1", poll_s=0)


def test_step_functions_errors_name_the_call_and_the_fix() -> None:
    with pytest.raises(UsageError, match="an execution named 'n' already exists"):
        start(_target(_client_error("ExecutionAlreadyExists")), {}, "n")
    with pytest.raises(WorkflowError, match="does not exist on AWS eu-west-1") as missing:
        describe(_target(_client_error("ExecutionDoesNotExist")), ARN)
    assert "executions are kept 90 days" in str(missing.value)

    with pytest.raises(WorkflowError) as denied:
        start(_target(_client_error("AccessDeniedException")), {}, "n")
    assert type(denied.value) is WorkflowError
    assert str(denied.value).startswith(f"access denied for states:StartExecution on {ARN} on AWS eu-west-1")
    assert "states:StartExecution, states:DescribeExecution" in str(denied.value)

    with pytest.raises(
        AwsUnavailable, match=r"AWS refused states:GetExecutionHistory .* \(ThrottlingException\)"
    ):
        history(_target(_client_error("ThrottlingException")), ARN)
    with pytest.raises(AwsUnavailable, match=r"could not be reached for states:DescribeExecution"):
        describe(_target(EndpointConnectionError(endpoint_url="https://states")), ARN)
