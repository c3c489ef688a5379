"""moto's Lambda, routed to real handlers: direct Invoke and Step Functions lambda:invoke tasks.

The probe handler (``aurora_sync_ops.local.lambda_probe``) runs in a worker process of the moto
server with the function's environment and role credentials, exactly as the planner/exporter/
verifier will during local executions.
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

PROBE = "aurora_sync_ops.local.lambda_probe.lambda_handler"


@pytest.fixture(scope="module")
def session(stack: dict[str, Any]) -> boto3.session.Session:
    aws = stack["aws"]
    return boto3.session.Session(
        aws_access_key_id=aws["access_key_id"],
        aws_secret_access_key=aws["secret_access_key"],
        region_name=aws["region"],
    )


@pytest.fixture(scope="module")
def lam(session: boto3.session.Session, stack: dict[str, Any]) -> Any:
    return session.client("lambda", endpoint_url=stack["aws"]["endpoint_url"])


@pytest.fixture(scope="module")
def sfn(session: boto3.session.Session, stack: dict[str, Any]) -> Any:
    return session.client("stepfunctions", endpoint_url=stack["aws"]["endpoint_url"])


def _zip() -> bytes:
    # moto stores the code; the router ignores it and imports the Handler from this checkout.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "")
    return buffer.getvalue()


def create_function(
    lam: Any,
    stack: dict[str, Any],
    *,
    handler: str = PROBE,
    timeout: int = 30,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    return dict(
        lam.create_function(
            FunctionName=f"probe-{uuid.uuid4().hex[:10]}",
            Runtime="python3.12",
            Role=stack["aws"]["lambda_role_arn"],
            Handler=handler,
            Code={"ZipFile": _zip()},
            Timeout=timeout,
            MemorySize=256,
            Environment={"Variables": env or {}},
        )
    )


def invoke(lam: Any, name: str, event: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return response, json.loads(response["Payload"].read())


@pytest.fixture(scope="module")
def probe(lam: Any, stack: dict[str, Any]) -> dict[str, Any]:
    return create_function(lam, stack, env={"CONFIG_SSM_PATH": "/probe/tables/", "PROBE_MARK": "blue"})


def test_invoke_runs_the_handler_with_env_context_and_role_credentials(
    lam: Any, probe: dict[str, Any], stack: dict[str, Any]
) -> None:
    name = probe["FunctionName"]
    event = {"hello": [1, "two"], "whoami": True, "env_keys": ["PROBE_MARK", "AWS_SECRET_ACCESS_KEY"]}

    response, body = invoke(lam, name, event)

    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert body["echo"] == event
    assert body["function_name"] == name
    assert body["invoked_function_arn"] == probe["FunctionArn"]
    assert body["memory_limit_in_mb"] == 256
    assert 25_000 < body["remaining_ms"] <= 30_000
    assert body["env"] == {
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": stack["aws"]["endpoint_url"],
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_EXECUTION_ENV": body["env"]["AWS_EXECUTION_ENV"],
        "_HANDLER": PROBE,
        "CONFIG_SSM_PATH": "/probe/tables/",
        "PROBE_MARK": "blue",
    }
    assert body["env"]["AWS_EXECUTION_ENV"].startswith("AWS_Lambda_python3.")
    # As on Lambda: credentials from AssumeRole on the execution role, session named after the function.
    role_name = stack["aws"]["lambda_role_arn"].rsplit("/", 1)[-1]
    assert body["caller_arn"] == f"arn:aws:sts::{stack['aws']['account_id']}:assumed-role/{role_name}/{name}"


def test_warm_worker_is_reused_and_functions_do_not_share_one(
    lam: Any, probe: dict[str, Any], stack: dict[str, Any]
) -> None:
    other = create_function(lam, stack, env={"PROBE_MARK": "green"})

    _, first = invoke(lam, probe["FunctionName"], {})
    _, second = invoke(lam, probe["FunctionName"], {})
    _, third = invoke(lam, other["FunctionName"], {"env_keys": ["PROBE_MARK"]})

    assert first["pid"] == second["pid"]
    assert third["pid"] != first["pid"]
    assert third["env"]["PROBE_MARK"] == "green"
    assert third["env"]["CONFIG_SSM_PATH"] is None


def test_handler_exception_is_an_unhandled_function_error_named_by_class(
    lam: Any, probe: dict[str, Any]
) -> None:
    response, body = invoke(lam, probe["FunctionName"], {"fail": {"error": "ConfigError"}})

    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ConfigError"
    assert body["errorMessage"] == "probe failure 1 of always"
    assert any("lambda_probe.py" in frame and "_maybe_fail" in frame for frame in body["stackTrace"])


def test_unknown_function_is_resource_not_found(lam: Any, stack: dict[str, Any]) -> None:
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as info:
        lam.invoke(FunctionName="no-such-function", Payload=b"{}")

    assert info.value.response["Error"]["Message"] == (
        f"Function not found: arn:aws:lambda:us-east-1:{stack['aws']['account_id']}:function:no-such-function"
    )


def test_timeout_kills_the_invocation_and_the_next_one_gets_a_fresh_worker(
    lam: Any, stack: dict[str, Any]
) -> None:
    fn = create_function(lam, stack, timeout=1)
    _, warm = invoke(lam, fn["FunctionName"], {})

    response, body = invoke(lam, fn["FunctionName"], {"sleep": 5})
    _, after = invoke(lam, fn["FunctionName"], {})

    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert body["errorMessage"].endswith("Error: Task timed out after 1.00 seconds")
    assert after["pid"] != warm["pid"] and after["remaining_ms"] <= 1000


def test_broken_handler_reference_and_crash_are_runtime_errors(lam: Any, stack: dict[str, Any]) -> None:
    missing_module = create_function(
        lam, stack, handler="aurora_sync_ops.local.no_such_module.lambda_handler"
    )
    missing_func = create_function(lam, stack, handler="aurora_sync_ops.local.lambda_probe.no_such_handler")

    response, body = invoke(lam, missing_module["FunctionName"], {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert body["errorMessage"] == (
        "Unable to import module 'aurora_sync_ops.local.no_such_module': "
        "No module named 'aurora_sync_ops.local.no_such_module'"
    )
    _, body = invoke(lam, missing_func["FunctionName"], {})
    assert body["errorType"] == "Runtime.HandlerNotFound"
    assert (
        body["errorMessage"]
        == "Handler 'no_such_handler' missing on module 'aurora_sync_ops.local.lambda_probe'"
    )
    response, body = invoke(lam, create_function(lam, stack)["FunctionName"], {"exit": 3})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Runtime exited with error: exit status 3")


def test_event_invocation_returns_at_once_and_runs_in_the_background(
    lam: Any, probe: dict[str, Any], tmp_path: Path
) -> None:
    counter = tmp_path / "events"
    event = {"sleep": 0.5, "fail": {"error": "SourceUnavailable", "times": 0, "counter": str(counter)}}

    response = lam.invoke(
        FunctionName=probe["FunctionName"], InvocationType="Event", Payload=json.dumps(event)
    )

    assert response["StatusCode"] == 202
    deadline = time.monotonic() + 10
    while not (counter.exists() and counter.read_text() == "1"):
        assert time.monotonic() < deadline, "the Event invocation never ran"
        time.sleep(0.05)


def test_payload_that_is_not_json_is_rejected_like_lambda(lam: Any, probe: dict[str, Any]) -> None:
    with pytest.raises(lam.exceptions.InvalidRequestContentException, match="Could not parse request body"):
        lam.invoke(FunctionName=probe["FunctionName"], Payload=b"{not json")


# --- Step Functions ------------------------------------------------------------------------
DEFINITION = {
    "StartAt": "Probe",
    "States": {
        "Probe": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName.$": "$.function", "Payload.$": "$.payload"},
            "ResultSelector": {"Payload.$": "$.Payload"},
            "OutputPath": "$.Payload",
            "Retry": [
                {
                    "ErrorEquals": ["SourceUnavailable"],
                    "IntervalSeconds": 1,
                    "MaxAttempts": 3,
                    "BackoffRate": 1.0,
                }
            ],
            "Catch": [{"ErrorEquals": ["ConfigError"], "ResultPath": "$.error", "Next": "RecordFailure"}],
            "End": True,
        },
        "RecordFailure": {"Type": "Pass", "End": True},
    },
}


@pytest.fixture(scope="module")
def state_machine(sfn: Any, stack: dict[str, Any]) -> str:
    return str(
        sfn.create_state_machine(
            name=f"router-{uuid.uuid4().hex[:8]}",
            definition=json.dumps(DEFINITION),
            roleArn=stack["aws"]["lambda_role_arn"],
        )["stateMachineArn"]
    )


def execute(
    sfn: Any, machine: str, execution_input: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    arn = sfn.start_execution(
        stateMachineArn=machine, name=f"run-{uuid.uuid4().hex[:12]}", input=json.dumps(execution_input)
    )["executionArn"]
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution did not finish in 30 s"
        time.sleep(0.1)
    return described, sfn.get_execution_history(executionArn=arn)["events"]


def test_execution_retries_a_transient_project_error_then_succeeds(
    sfn: Any, state_machine: str, probe: dict[str, Any], tmp_path: Path
) -> None:
    counter = tmp_path / "attempts"
    payload = {"fail": {"error": "SourceUnavailable", "times": 2, "counter": str(counter)}}

    described, events = execute(sfn, state_machine, {"function": probe["FunctionArn"], "payload": payload})

    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["attempt"] == 3 and output["echo"] == payload
    failures = [e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed"]
    assert [f["error"] for f in failures] == ["SourceUnavailable", "SourceUnavailable"]
    assert json.loads(failures[0]["cause"])["errorMessage"] == "probe failure 1 of 2"
    assert [e["type"] for e in events].count("TaskSucceeded") == 1


def test_execution_catches_a_terminal_project_error_by_name(
    sfn: Any, state_machine: str, probe: dict[str, Any]
) -> None:
    execution_input = {"function": probe["FunctionName"], "payload": {"fail": {"error": "ConfigError"}}}

    described, events = execute(sfn, state_machine, execution_input)

    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["function"] == probe["FunctionName"]
    assert output["error"]["Error"] == "ConfigError"
    assert json.loads(output["error"]["Cause"])["errorMessage"] == "probe failure 1 of always"
    assert [e["type"] for e in events].count("TaskFailed") == 1  # terminal: no retry
    assert events[-1]["type"] == "ExecutionSucceeded"


def test_execution_with_unknown_function_fails_with_the_lambda_service_error(
    sfn: Any, state_machine: str
) -> None:
    described, events = execute(sfn, state_machine, {"function": "no-such-function", "payload": {}})

    assert described["status"] == "FAILED"
    assert described["error"] == "Lambda.ResourceNotFoundException"
    assert "Function not found" in described["cause"]
    assert [e["type"] for e in events].count("TaskFailed") == 1


MAP_DEFINITION = {
    "StartAt": "EachTable",
    "States": {
        "EachTable": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 3,
            "ItemSelector": {"function.$": "$.function", "payload.$": "$$.Map.Item.Value"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Probe",
                "States": {
                    "Probe": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"FunctionName.$": "$.function", "Payload.$": "$.payload"},
                        "OutputPath": "$.Payload",
                        "End": True,
                    }
                },
            },
            "End": True,
        },
    },
}


def test_map_iterations_run_concurrently_in_separate_workers(
    sfn: Any, lam: Any, stack: dict[str, Any]
) -> None:
    fn = create_function(lam, stack)
    machine = sfn.create_state_machine(
        name=f"router-map-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(MAP_DEFINITION),
        roleArn=stack["aws"]["lambda_role_arn"],
    )["stateMachineArn"]
    items = [{"sleep": 1.5, "item": i} for i in range(3)]

    described, _ = execute(sfn, machine, {"function": fn["FunctionName"], "items": items})

    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert [o["echo"]["item"] for o in output] == [0, 1, 2]
    assert len({o["pid"] for o in output}) == 3
    # Concurrent means every item was asleep at one moment: the latest start precedes the
    # earliest end. One after another, each would start after the previous one ended.
    spans = [o["slept"] for o in output]
    assert max(start for start, _ in spans) < min(end for _, end in spans)


def test_retry_and_wait_sleeps_are_scaled_and_recorded(stack: dict[str, Any]) -> None:
    """Tests run executions with a small clock scale and assert what AWS would have waited."""
    import time as real_time

    import requests

    endpoint = stack["aws"]["endpoint_url"]
    clock_url = f"{endpoint}/moto-api/aurora-sync/clock"
    assert requests.post(clock_url, json={"scale": 0.01}, timeout=5).status_code == 200
    try:
        sfn = boto3.client(
            "stepfunctions",
            endpoint_url=endpoint,
            region_name=stack["aws"]["region"],
            aws_access_key_id=stack["aws"]["access_key_id"],
            aws_secret_access_key=stack["aws"]["secret_access_key"],
        )
        definition = {
            "StartAt": "Pause",
            "States": {
                "Pause": {"Type": "Wait", "Seconds": 300, "Next": "Done"},
                "Done": {"Type": "Succeed"},
            },
        }
        name = f"clock-{uuid.uuid4().hex[:8]}"
        machine = sfn.create_state_machine(
            name=name, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
        started = real_time.monotonic()
        execution = sfn.start_execution(stateMachineArn=machine, name=name)["executionArn"]
        status = "RUNNING"
        while status == "RUNNING" and real_time.monotonic() - started < 30:
            real_time.sleep(0.2)
            status = sfn.describe_execution(executionArn=execution)["status"]
        # A 300 s Wait finished inside the 30 s polled above: the clock scale applied.
        assert status == "SUCCEEDED"
        assert {"kind": "wait", "seconds": 300} in requests.get(clock_url, timeout=5).json()["sleeps"]
    finally:
        requests.post(clock_url, json={"scale": 1}, timeout=5)
    assert requests.post(clock_url, json={"scale": 0}, timeout=5).status_code == 400


def _clock(stack: dict[str, Any], scale: float) -> Any:
    import requests

    url = f"{stack['aws']['endpoint_url']}/moto-api/aurora-sync/clock"
    response = requests.post(url, json={"scale": scale}, timeout=5)
    response.raise_for_status()
    return response


def _wait_until_ended(sfn: Any, arn: str, polls: int) -> dict[str, Any]:
    """Poll every 0.2 s at most ``polls`` times; a bound in polls, not in measured time."""
    for _ in range(polls):
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.2)
    return dict(sfn.describe_execution(executionArn=arn))


def test_execution_timeout_runs_on_the_scaled_clock_and_ends_timed_out(
    sfn: Any, stack: dict[str, Any]
) -> None:
    # AWS: a state machine's top-level TimeoutSeconds ends the execution as TIMED_OUT (an
    # ExecutionTimedOut event; the ExecutionsTimedOut metric counts it). At scale 0.01 the 300 s
    # timeout is 3 s and the 3,600 s Wait 36 s: the timeout must end the run first, as on AWS.
    _clock(stack, 0.01)
    try:
        definition = {
            "TimeoutSeconds": 300,
            "StartAt": "Pause",
            "States": {
                "Pause": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
                "Done": {"Type": "Succeed"},
            },
        }
        machine = sfn.create_state_machine(
            name=f"timeout-{uuid.uuid4().hex[:8]}",
            definition=json.dumps(definition),
            roleArn=stack["aws"]["lambda_role_arn"],
        )["stateMachineArn"]
        arn = sfn.start_execution(stateMachineArn=machine, name=f"run-{uuid.uuid4().hex[:12]}")[
            "executionArn"
        ]
        described = _wait_until_ended(sfn, arn, polls=100)  # 20 s: well under the scaled Wait
        assert described["status"] == "TIMED_OUT"
        events = sfn.get_execution_history(executionArn=arn)["events"]
        for _ in range(50):  # the history's last event follows the status
            if events[-1]["type"] == "ExecutionTimedOut":
                break
            time.sleep(0.2)
            events = sfn.get_execution_history(executionArn=arn)["events"]
        assert events[-1]["type"] == "ExecutionTimedOut"
        assert "ExecutionSucceeded" not in [e["type"] for e in events]
        timed_out = sfn.list_executions(stateMachineArn=machine, statusFilter="TIMED_OUT")["executions"]
        assert [e["executionArn"] for e in timed_out] == [arn]
    finally:
        _clock(stack, 1)


def test_task_timeout_runs_on_the_scaled_clock_and_raises_a_catchable_states_timeout(
    sfn: Any, lam: Any, stack: dict[str, Any]
) -> None:
    # AWS: a Task's TimeoutSeconds fails the state with States.Timeout, which Retry and Catch
    # see like any other error. At scale 0.01 the 60 s timeout is 0.6 s; the function sleeps 5 s.
    fn = create_function(lam, stack)
    definition = {
        "StartAt": "Slow",
        "States": {
            "Slow": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": fn["FunctionName"], "Payload": {"sleep": 5}},
                "TimeoutSeconds": 60,
                "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    machine = sfn.create_state_machine(
        name=f"task-timeout-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn=stack["aws"]["lambda_role_arn"],
    )["stateMachineArn"]
    _clock(stack, 0.01)
    try:
        arn = sfn.start_execution(stateMachineArn=machine, name=f"run-{uuid.uuid4().hex[:12]}")[
            "executionArn"
        ]
        described = _wait_until_ended(sfn, arn, polls=100)
    finally:
        _clock(stack, 1)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["error"]["Error"] == "States.Timeout"
    events = sfn.get_execution_history(executionArn=arn)["events"]
    timed_out = [e for e in events if e["type"] == "TaskTimedOut"]
    assert [e["taskTimedOutEventDetails"]["error"] for e in timed_out] == ["States.Timeout"]
    assert "TaskSucceeded" not in [e["type"] for e in events]
