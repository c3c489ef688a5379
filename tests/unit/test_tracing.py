"""Traced in Lambda, and aws_xray_sdk never imported where tracing is off.

Powertools' ``Tracer`` imports aws_xray_sdk (and patches botocore, psycopg2, ...) when it is
built, even when it then disables itself: that import was the largest part of every handler's
cold start. ``observability`` builds it only where Powertools would trace. Both sides run in a
fresh interpreter under the template's environment: with Lambda's variables (``LAMBDA_TASK_ROOT``,
``_X_AMZN_TRACE_ID`` as ``Tracing: Active`` sets it) each handler's call reaches a local UDP
listener standing in for the X-Ray daemon as a ``## lambda_handler`` subsegment; with
``POWERTOOLS_TRACE_DISABLED=true`` (or outside Lambda) aws_xray_sdk is not even imported.
"""

from __future__ import annotations

import json

import pytest
from function_env import function_environment, run_in_functions, template

HANDLERS = ("planner.app", "exporter.app", "verifier.app")
TRACE_ID = "Root=1-6750b2c0-4c1f2a9e8d7b6a5f4e3d2c1b;Parent=53995c3f42cd8ad8;Sampled=1"

# Each handler with an event it rejects at once (ConfigError, no server needed): the capture
# decorator records the call, and the error, in its subsegment.
TRACED = """
import json, os, socket, sys
from types import SimpleNamespace
daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
daemon.bind(("127.0.0.1", 0))
daemon.settimeout(20)
os.environ["AWS_XRAY_DAEMON_ADDRESS"] = "127.0.0.1:%d" % daemon.getsockname()[1]
import importlib
handler = importlib.import_module(sys.argv[1])
from aurora_sync.observability import tracer
from aws_xray_sdk.core import patcher
context = SimpleNamespace(function_name="f", memory_limit_in_mb=512, aws_request_id="r",
                          invoked_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:f")
try:
    handler.lambda_handler({"not": "an event of this handler"}, context)
except Exception as exc:
    error = type(exc).__name__
segments = []
for part in daemon.recv(65536).decode().splitlines():
    document = json.loads(part)
    if "name" in document:
        segments.append(document)
print(json.dumps({"tracer": type(tracer).__name__, "disabled": tracer.disabled, "error": error,
                  "patched": sorted(patcher._PATCHED_MODULES), "segments": segments}))
"""

# A handler captured like the three, whose body makes an AWS call, a Vault-style HTTP call and an
# Aurora connection, the calls refused at once by a closed local port. boto3 is imported and its client
# built before the first call, as a module-level client would be.
CALLS = """
import json, os, socket
from types import SimpleNamespace
daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
daemon.bind(("127.0.0.1", 0))
daemon.settimeout(5)
os.environ["AWS_XRAY_DAEMON_ADDRESS"] = "127.0.0.1:%d" % daemon.getsockname()[1]
import sys
import planner.app, exporter.app, verifier.app
imported = sorted(m for m in ("botocore.client", "requests", "psycopg2") if m in sys.modules)
from aws_xray_sdk.core import patcher
patched_at_import = sorted(patcher._PATCHED_MODULES)
import boto3
from botocore.config import Config
ssm = boto3.client("ssm", endpoint_url="http://127.0.0.1:9", region_name="eu-west-1",
                   aws_access_key_id="x", aws_secret_access_key="x",
                   config=Config(retries={"max_attempts": 1}, connect_timeout=1))
from aurora_sync.observability import tracer

@tracer.capture_lambda_handler
def handler(event, context):
    import psycopg2, requests
    for call in (lambda: ssm.get_parameter(Name="/x"),
                 lambda: requests.get("http://127.0.0.1:9/v1/auth/aws/login", timeout=1)):
        try:
            call()
        except Exception:
            pass
    # X-Ray records Aurora's statements, not a refused connect: the connect it traces is wrapped.
    return hasattr(psycopg2.connect, "__wrapped__")

context = SimpleNamespace(function_name="f", memory_limit_in_mb=512, aws_request_id="r",
                          invoked_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:f")
aurora_traced = handler({}, context)
names = []
def walk(document):
    names.append(document.get("name"))
    for child in document.get("subsegments", []):
        walk(child)
try:
    while True:
        for part in daemon.recv(65536).decode().splitlines():
            document = json.loads(part)
            if "name" in document:
                walk(document)
except socket.timeout:
    pass
print(json.dumps({"patched_at_import": patched_at_import, "imported": imported,
                  "patched": sorted(patcher._PATCHED_MODULES), "names": names,
                  "aurora_traced": aurora_traced}))
"""

UNTRACED = """
import sys
import planner.app, exporter.app, verifier.app
from aurora_sync.observability import tracer
print(type(tracer).__name__, "aws_xray_sdk" in sys.modules)
"""


def lambda_environment() -> dict[str, str]:
    """The template's environment as Lambda runs it with ``Tracing: Active``."""
    return {
        **function_environment(template()),
        "LAMBDA_TASK_ROOT": "/var/task",
        "AWS_LAMBDA_FUNCTION_NAME": "aurora-sync-dev-planner",
        "_X_AMZN_TRACE_ID": TRACE_ID,
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }


@pytest.mark.parametrize("handler", HANDLERS)
def test_in_lambda_with_tracing_active_each_handler_call_is_a_traced_subsegment(handler: str) -> None:
    env = lambda_environment()
    assert "POWERTOOLS_TRACE_DISABLED" not in env  # the template leaves tracing on
    ran = run_in_functions(TRACED.replace("sys.argv[1]", repr(handler)), env)
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    assert (report["tracer"], report["disabled"], report["error"]) == ("LambdaTracer", False, "ConfigError")
    assert {"botocore", "psycopg2"} <= set(report["patched"])  # AWS and Aurora calls are traced too
    (segment,) = report["segments"]
    assert segment["name"] == "## lambda_handler"
    assert segment["trace_id"] == "1-6750b2c0-4c1f2a9e8d7b6a5f4e3d2c1b"
    assert segment["fault"] or segment["error"]


def test_libraries_are_patched_on_the_first_call_and_each_call_of_the_handler_is_traced() -> None:
    """Import leaves the libraries unpatched (that is the cold-start saving); the handler's first
    call patches them before its body runs, so an AWS call, an HTTP call and an Aurora connection
    made in it are subsegments, even through a client built before the call."""
    ran = run_in_functions(CALLS, lambda_environment())
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    assert report["patched_at_import"] == []
    # botocore's client and requests are first imported by the patching (psycopg2 is imported by
    # the handlers for its sql module; its patch wraps psycopg2.connect, looked up at each call).
    assert report["imported"] == ["psycopg2"]
    assert set(report["patched"]) == {"botocore", "requests", "httplib", "psycopg2"}
    names = report["names"]
    assert "## handler" in names
    assert "ssm" in names, names  # botocore: the service
    assert "127.0.0.1" in names, names  # requests: the host
    assert report["aurora_traced"]


@pytest.mark.parametrize(
    "off",
    [{"POWERTOOLS_TRACE_DISABLED": "true"}, {"LAMBDA_TASK_ROOT": ""}, {"AWS_SAM_LOCAL": "true"}],
    ids=["trace disabled", "outside Lambda", "sam local"],
)
def test_where_powertools_would_not_trace_aws_xray_sdk_is_never_imported(off: dict[str, str]) -> None:
    env = {k: v for k, v in {**lambda_environment(), **off}.items() if v}
    ran = run_in_functions(UNTRACED, env)
    assert ran.stdout.split() == ["UntracedHandlers", "False"]
