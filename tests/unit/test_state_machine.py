"""The state machine definition: the error taxonomy in its Retry clauses, and the practices listed
in docs/reliability.md ("What the definition itself keeps"), checked on the file SAM deploys."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cli_run import rerun_command_in
from state_machine import DEFINITION, definition, states

from aurora_sync.errors import TERMINAL_ERROR_NAMES, TRANSIENT_ERROR_NAMES
from aurora_sync_ops import sam_template

LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
}


def test_every_task_invokes_lambda_through_the_integration_with_both_retry_families() -> None:
    tasks = [(name, s) for name, s in states(definition()) if s["Type"] == "Task"]
    assert {name for name, _ in tasks} == {"Plan", "ExportChunk", "AdvanceRound", "Verify"}
    for name, task in tasks:
        # The partition comes from the template (AWS::Partition), never written as `aws`.
        assert task["Resource"] == "arn:${Partition}:states:::lambda:invoke", name
        retried = [set(r["ErrorEquals"]) for r in task["Retry"]]
        assert LAMBDA_SERVICE_ERRORS in retried, name
        # The project's transient errors, by class name, exactly: a new transient class must be added here.
        assert set(TRANSIENT_ERROR_NAMES) in retried, name
        for retry in task["Retry"]:
            assert retry["JitterStrategy"] == "FULL" and retry["BackoffRate"] >= 1, name
            assert not set(retry["ErrorEquals"]) & set(TERMINAL_ERROR_NAMES), (
                f"{name} retries a terminal error"
            )
        catches = task["Catch"]
        assert catches[-1]["ErrorEquals"] == ["States.ALL"], name


def test_choices_have_defaults_and_every_state_is_reachable() -> None:
    machine = definition()
    for name, state in states(machine):
        if state["Type"] == "Choice":
            assert "Default" in state, name

    def reachable(machine: dict[str, Any]) -> set[str]:
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            state = machine["States"][name]
            targets = [state.get("Next"), state.get("Default")]
            targets += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
            todo += [t for t in targets if t]
        return seen

    assert reachable(machine) == set(machine["States"])
    child = machine["States"]["ExportRound"]["ItemProcessor"]
    assert reachable(child) == set(child["States"])
    export = child["States"]["ExportBatch"]["ItemProcessor"]
    assert reachable(export) == set(export["States"])


def test_map_is_bounded_and_loops_chunks_until_drained_or_out_of_time() -> None:
    machine = definition()
    export = machine["States"]["ExportRound"]
    assert export["MaxConcurrency"] == 1  # substituted from the MaxConcurrency template parameter
    # The manifest holds the batches (exporting.rounds.batches): ItemBatcher's consecutive groups
    # would put a table's lanes in one child.
    assert "ItemBatcher" not in export
    batch = export["ItemProcessor"]["States"]["ExportBatch"]
    assert batch["MaxConcurrency"] == 1  # one export at a time per child: MaxConcurrency bounds Aurora's
    inner = batch["ItemProcessor"]["States"]
    assert inner["MoreChunks"]["Choices"][0] == {
        "And": [
            {"Variable": "$.export.result.status", "StringEquals": "MORE"},
            {"Variable": "$.export.result.resume_later", "BooleanEquals": False},
        ],
        "Next": "NextChunk",
    }
    assert inner["NextChunk"]["Next"] == "ExportChunk"
    assert inner["ExportChunk"]["Parameters"]["Payload"]["child_seconds"] == 1  # ExportChildSeconds
    # Rounds loop while the round step wrote a next manifest, then the verifier reads them all.
    assert export["Next"] == "AdvanceRound" and machine["States"]["AdvanceRound"]["Next"] == "MoreRounds"
    assert machine["States"]["MoreRounds"]["Choices"][0]["Next"] == "NextRound"
    assert machine["States"]["NextRound"]["Next"] == "ExportRound"
    assert machine["States"]["StartVerify"]["Parameters"]["rounds.$"] == "$.advance.rounds"


def test_failure_cause_carries_the_rerun_input_and_no_payload_holds_secrets() -> None:
    machine = definition()
    assert machine["States"]["TablesFailed"]["CausePath"] == "$.Cause"
    assert (
        "$.verification.output.summary.cause"
        in machine["States"]["DescribeTablesFailed"]["Parameters"]["Cause.$"]
    )
    text = DEFINITION.read_text().lower()
    for word in ("password", "private_key", "session_token", "client_token", "secret_access_key"):
        assert word not in text


def test_every_other_failure_path_builds_a_cause_with_the_rerun_input() -> None:
    # TablesFailed carries the verifier's summary; every other way to fail (a Catch of Plan, of
    # the Map, of Verify, and the VerifyGaveUp backstop) must end in RunFailed through a state
    # that writes the rerun input into the cause, never in a Fail that passes a raw Lambda error
    # document (which names no table) through.
    machine = definition()
    top = machine["States"]
    starts = [c["Next"] for s in top.values() for c in s.get("Catch", [])] + ["VerifyGaveUp"]
    fails: set[str] = set()
    builders: set[str] = set()
    for start in starts:
        todo, seen = [start], set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            state = top[name]
            if state["Type"] == "Fail":
                fails.add(name)
                continue
            cause = state.get("Parameters", {}).get("Cause.$", "")
            if "aurora-sync rerun" in cause:
                builders.add(name)
            todo += [t for t in [state.get("Next"), state.get("Default")] if t]
            todo += [c["Next"] for c in state.get("Choices", [])]
    assert fails == {"RunFailed"}
    assert builders == {
        "DescribePlanFailure",
        "DescribeLongPlanFailure",
        "DescribeRunFailure",
        "DescribeLongRunFailure",
    }
    assert top["Report"]["Choices"][0]["Next"] == "DescribeTablesFailed"
    assert top["DescribeTablesFailed"]["Next"] == "TablesFailed"
    assert top["RunFailed"] == {**top["RunFailed"], "ErrorPath": "$.Error", "CausePath": "$.Cause"}
    assert {name for name, s in top.items() if s["Type"] == "Fail"} == {"RunFailed", "TablesFailed"}
    # The state holds no list of the run's tables: the input that reruns them is the execution's.
    for name in ("ExportRoundFailed", "AdvanceRoundFailed", "VerifyFailed", "VerifyGaveUp"):
        assert top[name]["Next"] == "RerunTheInput", name
        assert "groups" not in top[name]["Parameters"], name
    assert top["RerunTheInput"]["Parameters"]["rerun.$"] == "$$.Execution.Input"
    assert "States.JsonToString($.rerun)" in top["DescribeRunFailure"]["Parameters"]["Cause.$"]
    assert "States.JsonToString($$.Execution.Input)" in top["DescribePlanFailure"]["Parameters"]["Cause.$"]
    # A rerun of hundreds of tables is not quoted: a cause holds 32,768 characters at most.
    assert top["QuoteThePlanInput"]["Choices"][0] == top["QuoteTheInput"]["Choices"][0] | {
        "Next": "DescribeLongPlanFailure"
    }


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_rendered_definition_invokes_lambda_in_the_stacks_partition(partition: str) -> None:
    # What CloudFormation deploys in each partition: the template's DefinitionSubstitutions with
    # the pseudo parameters of a stack there. A literal arn:aws: would not resolve in aws-cn.
    template = sam_template.load(sam_template.TEMPLATE)
    arns = {
        name: f"arn:{partition}:lambda:region-1:123456789012:function:{name}"
        for name in ("PlannerFunction", "ExporterFunction", "RoundsFunction", "VerifierFunction")
    }
    resolver = sam_template.Resolver(
        template=template,
        parameters={},
        pseudo={
            "AWS::Partition": partition,
            "AWS::Region": "region-1",
            "AWS::AccountId": "123456789012",
            "AWS::StackName": "sync",
        },
        refs={"DataLakeBucket": "lake"},
        attributes={f"{name}.Arn": arn for name, arn in arns.items()},
    )
    machine = sam_template.state_machine(template, resolver, Path(sam_template.TEMPLATE).parent)
    rendered = json.loads(sam_template.render_definition(machine))
    resources = {s["Resource"] for _, s in states(rendered) if s["Type"] == "Task"}
    assert resources == {f"arn:{partition}:states:::lambda:invoke"}
    export = rendered["States"]["ExportRound"]
    assert export["ItemReader"]["Resource"] == f"arn:{partition}:states:::s3:getObject"
    assert export["ResultWriter"]["Resource"] == f"arn:{partition}:states:::s3:putObject"
    assert (
        export["ResultWriter"]["Parameters"]["Bucket"]
        == export["ItemReader"]["Parameters"]["Bucket"]
        == "lake"
    )


EXECUTION_ARN = (
    "arn:aws-cn:states:cn-north-1:123456789012:execution:sync-prod-sync:run-20261203T000000-abc123"
)


def formatted(expression: str, values: dict[str, str]) -> str:
    """A ``States.Format('template', arg, ...)`` expression with each argument replaced by its
    value in ``values`` (paths the test does not name become "x"); arguments hold no commas."""
    match = re.fullmatch(r"States\.Format\('((?:[^'\\]|\\.)*)', (.*)\)", expression)
    assert match, expression
    template, args = match.group(1), match.group(2).split(", ")
    assert template.count("{}") == len(args), expression
    for arg in args:
        template = template.replace("{}", values.get(arg, "x"), 1)
    return template


def test_every_failure_cause_names_the_rerun_command_for_this_execution_and_the_cli_accepts_it() -> None:
    # A failed run ends in a Fail state; the console's Redrive restarts the failed state, which
    # fails again at once. The cause names what does rerun the tables: the CLI command with this
    # execution's ARN ($$.Execution.Id), parsed here by the CLI's own parser.
    top = definition()["States"]
    for name in (
        "DescribePlanFailure",
        "DescribeLongPlanFailure",
        "DescribeRunFailure",
        "DescribeLongRunFailure",
        "DescribeTablesFailed",
    ):
        expression = top[name]["Parameters"]["Cause.$"]
        assert "$$.Execution.Id" in expression, name
        cause = formatted(expression, {"$$.Execution.Id": EXECUTION_ARN})
        assert rerun_command_in(cause).execution_arn == EXECUTION_ARN, name
        assert "Redrive" in cause and "start a new execution" in cause, name
