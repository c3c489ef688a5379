"""The local engine's Distributed Map (``aurora_sync_ops.local.distributed_map``), pinned to AWS's
documented behaviour with tiny state machines of Pass, Choice, Wait and Fail states:

* ItemReader reads a JSON array from S3; ItemBatcher hands each child ``{"Items": [...],
  "BatchInput": ...}`` (developer guide, "ItemBatcher (Map)"); ItemSelector shapes each item;
* each child is an execution of its own, listed by ``ListExecutions(mapRunArn=...)``, described
  with its ``mapRunArn``, with its own history; ``DescribeMapRun`` counts them;
* ResultWriter writes ``<Prefix>/<map run id>/manifest.json`` naming ``SUCCEEDED_0.json`` and
  ``FAILED_0.json``, and the state's result is ``{"MapRunArn", "ResultWriterDetails"}``
  (developer guide, "ResultWriter (Map)");
* failures beyond ``ToleratedFailurePercentage`` (0 by default) fail the Map with
  ``States.ExceedToleratedFailureThreshold``, which a Catch catches, the results written first;
* an EXPRESS child runs at most five minutes (Step Functions quotas).
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from datetime import datetime
from typing import Any

import pytest
from world import read_clock, set_clock

from aurora_sync_ops.environment import local_aws_client

BUCKET = "dmap-tests"


@pytest.fixture(scope="module")
def sfn(stack: dict[str, Any]) -> Any:
    return local_aws_client("stepfunctions", stack["aws"])


@pytest.fixture(scope="module")
def s3(stack: dict[str, Any]) -> Any:
    client = local_aws_client("s3", stack["aws"])
    client.create_bucket(Bucket=BUCKET)
    return client


def _json(s3: Any, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def _machine(sfn: Any, stack: dict[str, Any], map_state: dict[str, Any], **extra_states: Any) -> str:
    definition = {"StartAt": "Fan", "States": {"Fan": map_state, **extra_states}}
    return str(
        sfn.create_state_machine(
            name=f"dmap-{uuid.uuid4().hex[:10]}",
            definition=json.dumps(definition),
            roleArn=stack["aws"]["lambda_role_arn"],
        )["stateMachineArn"]
    )


def _run(sfn: Any, machine: str, execution_input: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    arn = sfn.start_execution(
        stateMachineArn=machine, name=uuid.uuid4().hex, input=json.dumps(execution_input)
    )["executionArn"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = dict(sfn.describe_execution(executionArn=arn))
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    raise AssertionError(f"{arn} still running after {timeout} s")


def _processor(states: dict[str, Any], start: str, execution_type: str = "STANDARD") -> dict[str, Any]:
    return {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
        "StartAt": start,
        "States": states,
    }


READER = {
    "Resource": "arn:aws:states:::s3:getObject",
    "ReaderConfig": {"InputType": "JSON"},
    "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.manifest"},
}
WRITER = {
    "Resource": "arn:aws:states:::s3:putObject",
    "Parameters": {"Bucket.$": "$.bucket", "Prefix.$": "$.results"},
}
# A child (of one item) fails when its item asks for it.
FAIL_ON_FLAG = {
    "Check": {
        "Type": "Choice",
        "Choices": [{"Variable": "$.fail", "BooleanEquals": True, "Next": "Boom"}],
        "Default": "Done",
    },
    "Boom": {"Type": "Fail", "Error": "ItemBroke", "Cause": "asked to fail"},
    "Done": {"Type": "Pass", "End": True},
}


def _failing_map(**fields: Any) -> dict[str, Any]:
    """A Map whose child fails when its item says so, writing its results to S3."""
    return {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": _processor(FAIL_ON_FLAG, "Check"),
        "ResultWriter": WRITER,
        "End": True,
        **fields,
    }


def _empty_zip() -> bytes:
    # moto stores the code; the router runs the Handler from this checkout.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "")
    return buffer.getvalue()


def _children(sfn: Any, map_run_arn: str) -> list[dict[str, Any]]:
    return list(sfn.list_executions(mapRunArn=map_run_arn)["executions"])


def test_item_reader_batches_children_and_result_writer_layout(
    sfn: Any, s3: Any, stack: dict[str, Any]
) -> None:
    run = uuid.uuid4().hex[:8]
    items = [{"table": f"t{i}"} for i in range(5)]
    s3.put_object(Bucket=BUCKET, Key=f"{run}/items.json", Body=json.dumps(items).encode())
    machine = _machine(
        sfn,
        stack,
        {
            "Type": "Map",
            "ItemReader": READER,
            "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$.run", "fixed": 7}},
            "ItemProcessor": _processor({"Echo": {"Type": "Pass", "End": True}}, "Echo"),
            "ResultWriter": WRITER,
            "MaxConcurrency": 2,
            "End": True,
        },
    )

    described = _run(
        sfn, machine, {"bucket": BUCKET, "manifest": f"{run}/items.json", "results": f"{run}/out", "run": run}
    )

    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    map_run_arn = output["MapRunArn"]
    run_id = map_run_arn.split(":")[-1]
    manifest_key = f"{run}/out/{run_id}/manifest.json"
    assert output == {
        "MapRunArn": map_run_arn,
        "ResultWriterDetails": {"Bucket": BUCKET, "Key": manifest_key},
    }
    manifest = _json(s3, manifest_key)
    succeeded_key = f"{run}/out/{run_id}/SUCCEEDED_0.json"
    assert manifest["DestinationBucket"] == BUCKET and manifest["MapRunArn"] == map_run_arn
    assert manifest["ResultFiles"]["FAILED"] == [] and manifest["ResultFiles"]["PENDING"] == []
    [succeeded_file] = manifest["ResultFiles"]["SUCCEEDED"]
    body = s3.get_object(Bucket=BUCKET, Key=succeeded_key)["Body"].read()
    assert succeeded_file == {"Key": succeeded_key, "Size": len(body)}
    results = json.loads(body)
    # Three children: two batches of two items and one of one, each with the BatchInput.
    batch_input = {"run": run, "fixed": 7}
    inputs = sorted((json.loads(r["Input"]) for r in results), key=lambda i: i["Items"][0]["table"])
    assert inputs == [
        {"Items": items[0:2], "BatchInput": batch_input},
        {"Items": items[2:4], "BatchInput": batch_input},
        {"Items": items[4:5], "BatchInput": batch_input},
    ]
    for result in results:
        assert result["Status"] == "SUCCEEDED"
        assert json.loads(result["Output"]) == json.loads(result["Input"])  # a Pass child
        assert set(result) >= {
            "ExecutionArn",
            "Name",
            "StartDate",
            "StopDate",
            "StateMachineArn",
            "InputDetails",
        }

    # The children are executions of their own, through the API.
    children = _children(sfn, map_run_arn)
    assert sorted(c["executionArn"] for c in children) == sorted(r["ExecutionArn"] for r in results)
    for child in children:
        assert child["status"] == "SUCCEEDED" and ":execution:" in child["executionArn"]
        child_described = sfn.describe_execution(executionArn=child["executionArn"])
        assert child_described["mapRunArn"] == map_run_arn
        events = sfn.get_execution_history(executionArn=child["executionArn"])["events"]
        assert events[0]["type"] == "ExecutionStarted" and events[-1]["type"] == "ExecutionSucceeded"
        assert [e["type"] for e in events if e["type"].startswith("Pass")] == [
            "PassStateEntered",
            "PassStateExited",
        ]
    # The parent's history has the Map Run, not the children's states.
    parent_events = [
        e["type"] for e in sfn.get_execution_history(executionArn=described["executionArn"])["events"]
    ]
    assert "MapRunStarted" in parent_events and "MapRunSucceeded" in parent_events
    assert "PassStateEntered" not in parent_events
    counts = sfn.describe_map_run(mapRunArn=map_run_arn)
    assert counts["executionCounts"]["succeeded"] == 3 and counts["itemCounts"]["succeeded"] == 5


def test_express_children_get_selected_items(sfn: Any, s3: Any, stack: dict[str, Any]) -> None:
    machine = _machine(
        sfn,
        stack,
        {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {"name.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "run.$": "$.run"},
            "ItemProcessor": _processor({"Echo": {"Type": "Pass", "End": True}}, "Echo", "EXPRESS"),
            "End": True,
        },
    )

    described = _run(sfn, machine, {"items": ["a", "b", "c"], "run": "r1"})

    assert described["status"] == "SUCCEEDED", described
    # Without a ResultWriter the outputs come back in item order.
    assert json.loads(described["output"]) == [
        {"name": "a", "index": 0, "run": "r1"},
        {"name": "b", "index": 1, "run": "r1"},
        {"name": "c", "index": 2, "run": "r1"},
    ]
    [map_run] = sfn.list_map_runs(executionArn=described["executionArn"])["mapRuns"]
    children = _children(sfn, map_run["mapRunArn"])
    assert len(children) == 3 and all(":express:" in c["executionArn"] for c in children)


def test_failures_within_the_tolerance_are_results(sfn: Any, s3: Any, stack: dict[str, Any]) -> None:
    run = uuid.uuid4().hex[:8]
    machine = _machine(sfn, stack, _failing_map(ToleratedFailurePercentage=50))
    items = [
        {"n": 1, "fail": False},
        {"n": 2, "fail": True},
        {"n": 3, "fail": False},
        {"n": 4, "fail": False},
    ]

    described = _run(sfn, machine, {"items": items, "bucket": BUCKET, "results": f"{run}/out"})

    assert described["status"] == "SUCCEEDED", described
    manifest = _json(s3, json.loads(described["output"])["ResultWriterDetails"]["Key"])
    [failed_file] = manifest["ResultFiles"]["FAILED"]
    assert failed_file["Key"].endswith("/FAILED_0.json")
    [failed] = _json(s3, failed_file["Key"])
    assert (
        failed["Status"] == "FAILED" and failed["Error"] == "ItemBroke" and failed["Cause"] == "asked to fail"
    )
    assert json.loads(failed["Input"]) == {"n": 2, "fail": True}
    assert len(_json(s3, manifest["ResultFiles"]["SUCCEEDED"][0]["Key"])) == 3


def test_a_failure_beyond_the_default_tolerance_fails_the_map_and_is_catchable(
    sfn: Any, s3: Any, stack: dict[str, Any]
) -> None:
    run = uuid.uuid4().hex[:8]
    machine = _machine(
        sfn,
        stack,
        _failing_map(Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]),
        Caught={"Type": "Pass", "End": True},
    )

    described = _run(
        sfn,
        machine,
        {
            "items": [{"n": 1, "fail": False}, {"n": 2, "fail": True}],
            "bucket": BUCKET,
            "results": f"{run}/out",
        },
    )

    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["error"]["Error"] == "States.ExceedToleratedFailureThreshold"
    events = [e["type"] for e in sfn.get_execution_history(executionArn=described["executionArn"])["events"]]
    assert "MapRunFailed" in events
    # The results were written before the Map failed.
    written = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{run}/out/")["Contents"]
    assert sorted(o["Key"].rsplit("/", 1)[-1] for o in written) == [
        "FAILED_0.json",
        "SUCCEEDED_0.json",
        "manifest.json",
    ]


def test_express_children_stop_at_five_minutes(sfn: Any, s3: Any, stack: dict[str, Any]) -> None:
    machine = _machine(
        sfn,
        stack,
        {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": _processor(
                {"Long": {"Type": "Wait", "Seconds": 400, "End": True}}, "Long", "EXPRESS"
            ),
            "End": True,
        },
    )
    set_clock(stack, 0.01)
    try:
        described = _run(sfn, machine, {"items": [1]})
        sleeps = read_clock(stack)["sleeps"]
    finally:
        set_clock(stack, 1)

    assert described["status"] == "FAILED" and described["error"] == "States.ExceedToleratedFailureThreshold"
    assert {"kind": "timeout", "seconds": 300} in sleeps
    [map_run] = sfn.list_map_runs(executionArn=described["executionArn"])["mapRuns"]
    [child] = _children(sfn, map_run["mapRunArn"])
    assert child["status"] == "TIMED_OUT"


PROBE = "aurora_sync_ops.local.lambda_probe.lambda_handler"


def _probe_function(stack: dict[str, Any]) -> str:
    """A Lambda function running the local stack's probe handler, on the product's runtime."""
    lam = local_aws_client("lambda", stack["aws"])
    return str(
        lam.create_function(
            FunctionName=f"dmap-probe-{uuid.uuid4().hex[:8]}",
            Runtime="python3.13",
            Role=stack["aws"]["lambda_role_arn"],
            Handler=PROBE,
            Code={"ZipFile": _empty_zip()},
            Timeout=30,
            MemorySize=128,
        )["FunctionName"]
    )


def test_express_children_invoke_lambdas_with_retry_and_catch_per_item(
    sfn: Any, s3: Any, stack: dict[str, Any], tmp_path: Any
) -> None:
    """The export design's child: an INLINE Map over its batch, each item a lambda:invoke task
    (the project's handlers through the Lambda router) retried on a transient error and caught
    on a terminal one, the item's start time and the child's own ``$$.Execution.StartTime``."""
    function = _probe_function(stack)
    run = uuid.uuid4().hex[:8]
    machine = _machine(
        sfn,
        stack,
        {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"function.$": "$.function"}},
            "ItemProcessor": _processor(
                {
                    "ExportBatch": {
                        "Type": "Map",
                        "ItemsPath": "$.Items",
                        "ItemSelector": {
                            "payload.$": "$$.Map.Item.Value",
                            "function.$": "$.BatchInput.function",
                            "child_started_at.$": "$$.Execution.StartTime",
                        },
                        "MaxConcurrency": 1,
                        "ItemProcessor": {
                            "ProcessorConfig": {"Mode": "INLINE"},
                            "StartAt": "Invoke",
                            "States": {
                                "Invoke": {
                                    "Type": "Task",
                                    "Resource": "arn:aws:states:::lambda:invoke",
                                    "Parameters": {
                                        "FunctionName.$": "$.function",
                                        "Payload": {
                                            "item.$": "$.payload",
                                            "fail.$": "$.payload.fail",
                                            "child_started_at.$": "$.child_started_at",
                                        },
                                    },
                                    "ResultSelector": {
                                        "echo.$": "$.Payload.echo",
                                        "attempt.$": "$.Payload.attempt",
                                    },
                                    "Retry": [
                                        {
                                            "ErrorEquals": ["SourceUnavailable"],
                                            "IntervalSeconds": 1,
                                            "MaxAttempts": 2,
                                        }
                                    ],
                                    "Catch": [
                                        {
                                            "ErrorEquals": ["States.ALL"],
                                            "ResultPath": "$.error",
                                            "Next": "Failed",
                                        }
                                    ],
                                    "End": True,
                                },
                                "Failed": {
                                    "Type": "Pass",
                                    "Parameters": {"status": "FAILED", "error.$": "$.error.Error"},
                                    "End": True,
                                },
                            },
                        },
                        "End": True,
                    }
                },
                "ExportBatch",
                "EXPRESS",
            ),
            "ResultWriter": WRITER,
            "End": True,
        },
    )
    # The probe fails on request (a dict under "fail"): once, then succeeds (retried); always
    # (caught); or not at all (null).
    counter = str(tmp_path / "retried")
    items = [
        {"n": 1, "fail": None},
        {"n": 2, "fail": {"error": "SourceUnavailable", "times": 1, "counter": counter}},
        {"n": 3, "fail": {"error": "SourceQueryFailed"}},
    ]
    set_clock(stack, 0.05)
    try:
        described = _run(
            sfn, machine, {"items": items, "function": function, "bucket": BUCKET, "results": f"{run}/out"}
        )
    finally:
        set_clock(stack, 1)

    assert described["status"] == "SUCCEEDED", described
    manifest = _json(s3, json.loads(described["output"])["ResultWriterDetails"]["Key"])
    assert manifest["ResultFiles"]["FAILED"] == []
    entries = _json(s3, manifest["ResultFiles"]["SUCCEEDED"][0]["Key"])
    outputs = {}
    for entry in entries:
        child_start = sfn.describe_execution(executionArn=entry["ExecutionArn"])["startDate"]
        for output in json.loads(entry["Output"]):
            if "echo" in output:
                # The child's own start, as $$.Execution.StartTime gives it inside the child.
                stamped = datetime.fromisoformat(output["echo"]["child_started_at"].replace("Z", "+00:00"))
                assert abs((stamped - child_start).total_seconds()) < 1
                outputs[output["echo"]["item"]["n"]] = output
            else:
                outputs[3] = output
    assert outputs[1]["attempt"] is None
    assert outputs[2]["attempt"] == 2  # failed once, retried by the child's Retry
    assert outputs[3] == {"status": "FAILED", "error": "SourceQueryFailed"}


def test_results_that_cannot_be_written_fail_the_map_with_result_writer_failed(
    sfn: Any, s3: Any, stack: dict[str, Any]
) -> None:
    machine = _machine(
        sfn,
        stack,
        {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": _processor({"Echo": {"Type": "Pass", "End": True}}, "Echo"),
            "ResultWriter": WRITER,
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
            "End": True,
        },
        Caught={"Type": "Pass", "End": True},
    )

    described = _run(
        sfn, machine, {"items": [1], "bucket": f"no-such-bucket-{uuid.uuid4().hex[:8]}", "results": "x"}
    )

    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["error"]["Error"] == "States.ResultWriterFailed"


def test_items_that_cannot_be_read_fail_the_map_with_item_reader_failed(
    sfn: Any, s3: Any, stack: dict[str, Any]
) -> None:
    machine = _machine(
        sfn,
        stack,
        {
            "Type": "Map",
            "ItemReader": READER,
            "ItemProcessor": _processor({"Echo": {"Type": "Pass", "End": True}}, "Echo"),
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
            "End": True,
        },
        Caught={"Type": "Pass", "End": True},
    )

    described = _run(sfn, machine, {"bucket": BUCKET, "manifest": f"missing-{uuid.uuid4().hex}.json"})

    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["error"]["Error"] == "States.ItemReaderFailed"


def test_max_concurrency_bounds_the_children_running_at_once(
    sfn: Any, s3: Any, stack: dict[str, Any]
) -> None:
    function = _probe_function(stack)
    probe = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName.$": "$.function", "Payload": {"sleep": 1, "item.$": "$.item"}},
        "ResultSelector": {"slept.$": "$.Payload.slept", "item.$": "$.Payload.echo.item"},
        "End": True,
    }
    machine = _machine(
        sfn,
        stack,
        {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {"function.$": "$.function", "item.$": "$$.Map.Item.Value"},
            "MaxConcurrency": 2,
            "ItemProcessor": _processor({"Probe": probe}, "Probe", "EXPRESS"),
            "End": True,
        },
    )

    described = _run(sfn, machine, {"items": [0, 1, 2, 3, 4], "function": function})

    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert [o["item"] for o in output] == [0, 1, 2, 3, 4]
    # How many children slept at each child's start: at most MaxConcurrency, and 2 at some point.
    spans = [o["slept"] for o in output]
    running = [sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans]
    assert max(running) == 2
