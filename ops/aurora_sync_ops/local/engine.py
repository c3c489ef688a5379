"""The local engine: deploys template.yaml's functions and state machine into the local stack's
moto, and runs executions of the real definition.

What CloudFormation would do, minus the parts moto does not need: each function is created with
its Handler, Timeout, MemorySize and resolved Environment (Globals included) and the Lambda role;
the state machine gets the definition file with its DefinitionSubstitutions applied. moto's
Lambda router (``lambda_router.py``) then runs the handlers for every invocation.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from .. import sam_template
from ..sam_template import Resolver

LOCAL_STACK_NAME = "aurora-sync-local"
# Snowpipe here loads within about a second: poll the verifier often and heal lost
# notifications sooner than on AWS, where a minute-scale wait is right. The verifier's own
# timeouts are shorter too, so a stuck local run ends in minutes; and, as docs/deploy.md requires,
# the Wait/Verify loop (2 s x 200 = 400 s) outlasts them (120 s + 180 s, with two waits to spare),
# so a table that never loads or never merges ends as LoadTimeout/MergeTimeout, never as the
# anonymous VerifyAttemptsExhausted backstop (tests/unit/test_verify_budget.py checks it).
LOCAL_PARAMETERS = {
    "VerifyWaitSeconds": 2,
    "VerifyMaxAttempts": 200,
    "LoadRefreshAfterSeconds": 20,
    "LoadTimeoutSeconds": 120,
    "MergeTimeoutSeconds": 180,
    # The execution's TimeoutSeconds runs on the clock scale (sfn_clock), the Lambdas in real
    # time: at the tests' scale (0.05) 18,000 s is 900 s of real time, as long as
    # LocalEngine.follow waits by default, so only a run that is stuck anyway times out.
    "RunTimeoutSeconds": 18000,
    # Express children end at 300 s on the scaled clock (15 s of real time at the tests' 0.05),
    # while the exporter counts its child's time in real seconds. A chunk started just before
    # the child's time is up may run its 5 s statement-timeout floor plus its call's overhead
    # (seconds on a loaded machine), so stop starting chunks after 6: 9 s to spare (AWS: 240 of
    # 300 leave 60).
    "ExportChildSeconds": 6,
}
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
# boto3's endpoint for every service. template.yaml declares it empty (each service's default
# endpoint on AWS); the local stack points it at its moto.
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"


def _zip() -> bytes:
    # moto stores the code but the router runs the handlers from functions/ in place.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "code runs from the repository's functions/ directory\n")
    return buffer.getvalue()


@dataclass(frozen=True)
class Deployment:
    state_machine_arn: str
    functions: dict[str, str]  # logical id -> function ARN


class LocalEngine:
    def __init__(
        self,
        status: Mapping[str, Any],
        *,
        parameters: Mapping[str, Any] | None = None,
        stack_name: str = LOCAL_STACK_NAME,
        template_path: Path = sam_template.TEMPLATE,
    ) -> None:
        aws = status["aws"]
        self.status = status
        self.stack_name = stack_name
        self.template_path = template_path
        session = boto3.session.Session(
            aws_access_key_id=aws["access_key_id"],
            aws_secret_access_key=aws["secret_access_key"],
            region_name=aws["region"],
        )
        self.lambda_ = session.client("lambda", endpoint_url=aws["endpoint_url"])
        self.sfn = session.client("stepfunctions", endpoint_url=aws["endpoint_url"])
        vault = status.get("vault") or {}
        self.parameters: dict[str, Any] = {
            **LOCAL_PARAMETERS,
            "ConfigSsmPath": aws["config_ssm_path"].rstrip("/"),
            "VaultAddr": vault.get("addr", ""),
            "VaultRole": vault.get("role", ""),
            "VaultIamServerId": vault.get("iam_server_id", ""),
            **(parameters or {}),
        }

    def _resolver(self, function_arns: Mapping[str, str]) -> Resolver:
        aws = self.status["aws"]
        template = sam_template.load(self.template_path)
        return Resolver(
            template=template,
            parameters=self.parameters,
            pseudo={
                "AWS::StackName": self.stack_name,
                "AWS::Region": aws["region"],
                "AWS::AccountId": aws["account_id"],
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
            },
            refs={"DataLakeBucket": aws["bucket"], "StackKey": aws["kms_key_arn"]},
            attributes={
                "StackKey.Arn": aws["kms_key_arn"],
                **{f"{k}.Arn": v for k, v in function_arns.items()},
            },
        )

    def function_specs(self) -> list[sam_template.FunctionSpec]:
        """template.yaml's functions as deployed on this stack: the template's environment
        resolved with this stack's parameters, and the declared endpoint variable aimed at the
        stack's AWS. The one source of the functions' environment, for the local engine and for
        ``aurora-sync local env`` (what ``sam local invoke --env-vars`` reads)."""
        template = sam_template.load(self.template_path)
        overrides = {ENDPOINT_VARIABLE: self.status["aws"]["endpoint_url"]}
        specs = []
        for spec in sam_template.functions(template, self._resolver({})):
            # Overriding a variable the template does not declare would work here and be ignored
            # by SAM, which only overrides declared ones: keep the two the same.
            undeclared = sorted(set(overrides) - set(spec.environment))
            if undeclared:
                raise sam_template.TemplateError(
                    f"{spec.logical_id} does not declare {', '.join(undeclared)} in template.yaml"
                )
            specs.append(dataclasses.replace(spec, environment={**spec.environment, **overrides}))
        return specs

    def deploy(self) -> Deployment:
        """Create or update the functions and the state machine (idempotent)."""
        template = sam_template.load(self.template_path)
        role = self.status["aws"]["lambda_role_arn"]
        arns: dict[str, str] = {}
        for spec in self.function_specs():
            config = {
                "Runtime": spec.runtime,
                "Role": role,
                "Handler": spec.handler,
                "Timeout": spec.timeout,
                "MemorySize": spec.memory,
                "Environment": {"Variables": spec.environment},
            }
            try:
                arn = self.lambda_.update_function_configuration(FunctionName=spec.name, **config)[
                    "FunctionArn"
                ]
            except self.lambda_.exceptions.ResourceNotFoundException:
                arn = self.lambda_.create_function(
                    FunctionName=spec.name, Code={"ZipFile": _zip()}, **config
                )["FunctionArn"]
            arns[spec.logical_id] = arn
        machine = sam_template.state_machine(template, self._resolver(arns), self.template_path.parent)
        definition = sam_template.render_definition(machine)
        existing = {m["name"]: m["stateMachineArn"] for m in self.sfn.list_state_machines()["stateMachines"]}
        if machine.name in existing:
            arn = existing[machine.name]
            self.sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role)
        else:
            arn = self.sfn.create_state_machine(
                name=machine.name, definition=definition, roleArn=role, type="STANDARD"
            )["stateMachineArn"]
        return Deployment(state_machine_arn=arn, functions=arns)

    # --- executions ------------------------------------------------------------------------
    def start(
        self, deployment: Deployment, execution_input: Mapping[str, Any], name: str | None = None
    ) -> str:
        # Always named: moto's unnamed executions can collide.
        name = name or f"run-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        response = self.sfn.start_execution(
            stateMachineArn=deployment.state_machine_arn, name=name, input=json.dumps(execution_input)
        )
        return str(response["executionArn"])

    def events(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events += page["events"]
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def follow(
        self, execution_arn: str, *, timeout_s: float = 900, poll_s: float = 0.5
    ) -> Iterator[dict[str, Any]]:
        """History events as they happen, until the execution ends (then its description)."""
        seen = 0
        deadline = time.monotonic() + timeout_s
        while True:
            events = self.events(execution_arn)
            yield from events[seen:]
            seen = len(events)
            description = self.sfn.describe_execution(executionArn=execution_arn)
            if description["status"] in TERMINAL:
                yield {"type": "ExecutionDescription", "description": description}
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"execution {execution_arn} still {description['status']} after {timeout_s:.0f}s"
                )
            time.sleep(poll_s)

    def wait(self, execution_arn: str, *, timeout_s: float = 900, poll_s: float = 0.5) -> dict[str, Any]:
        """The execution's description once it has ended. Only the description is polled: reading
        the history on every poll (``follow``) re-reads and re-parses every event so far, which on
        a run of thousands of events took more CPU than the run itself on a small machine."""
        deadline = time.monotonic() + timeout_s
        while True:
            description: dict[str, Any] = self.sfn.describe_execution(executionArn=execution_arn)
            if description["status"] in TERMINAL:
                return description
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"execution {execution_arn} still {description['status']} after {timeout_s:.0f}s"
                )
            time.sleep(poll_s)

    def run(
        self,
        deployment: Deployment,
        execution_input: Mapping[str, Any],
        *,
        name: str | None = None,
        timeout_s: float = 900,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Start an execution, wait for it, and return its description."""
        arn = self.start(deployment, execution_input, name)
        if on_event is None:
            return self.wait(arn, timeout_s=timeout_s)
        description: dict[str, Any] = {}
        for event in self.follow(arn, timeout_s=timeout_s):
            if event.get("type") == "ExecutionDescription":
                description = event["description"]
            else:
                on_event(event)
        return description
