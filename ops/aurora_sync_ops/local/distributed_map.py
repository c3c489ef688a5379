"""Distributed Map in the local engine: what moto 5.2.5's interpreter lacks, completed as AWS
documents it.

moto parses a DISTRIBUTED Map and keeps a Map Run record, but:

* its grammar rejects valid ASL: ``ItemBatcher``, ``ProcessorConfig.ExecutionType: EXPRESS`` and an
  integer ``ToleratedFailurePercentage``;
* it runs every item inside the parent's interpreter and throws the item's events away, so no
  child execution exists: nothing to describe, list by Map Run or read the history of;
* its ``ResultWriter`` writes a ``manifest.json`` that lists no result file, and writes none;
* it never applies ``ToleratedFailurePercentage``/``ToleratedFailureCount``: a failed item
  becomes a ``null`` output and the Map succeeds.

This module (``install_distributed_map``, in the moto host process) makes the local engine do
what the Step Functions developer guide says:

* **ItemBatcher**: ``MaxItemsPerBatch``/``MaxInputBytesPerBatch`` group the (selected) items; each
  child gets ``{"Items": [...], "BatchInput": ...}`` (``BatchInput`` only when the definition has
  one, its ``key.$`` paths read from the Map's input and ``$$``). ``ItemSelector`` shapes each item
  before it is batched (the developer guide does not say in which order; unverified on AWS).
* **Child workflow executions**: each item or batch runs as an execution of its own, of the
  ItemProcessor as a state machine (``arn:…:stateMachine:<name>/<label or id>``), STANDARD or
  EXPRESS as ``ExecutionType`` says, ``MaxConcurrency`` at a time. ``DescribeExecution`` (with its
  ``mapRunArn``), ``GetExecutionHistory`` and ``ListExecutions(mapRunArn=…)`` show them, and
  ``DescribeMapRun`` counts them. An EXPRESS child is capped at 5 minutes (AWS's limit for Express
  workflows), on the engine's scaled clock like every other TimeoutSeconds. AWS keeps no
  execution history of an Express child (it is in CloudWatch Logs there); the local engine keeps
  one so tests can check each child's events and payloads.
* **Tolerated failures**: a failed child fails all its items; the Map Run fails with
  ``States.ExceedToleratedFailureThreshold`` once the failed items exceed the count or the
  percentage (both 0 by default: any failure fails it), which a Catch on the Map can catch.
* **ResultWriter**: under ``<Prefix>/<map run id>/``, ``SUCCEEDED_0.json`` and ``FAILED_0.json``
  (a JSON array of each child's record: ``ExecutionArn``, ``Input``, ``Output`` or
  ``Error``/``Cause`` as JSON text, ``Status``, dates, ...) and ``manifest.json`` naming them
  (``DestinationBucket``, ``MapRunArn``, ``ResultFiles`` by status with ``Key`` and ``Size``); the
  state's result is ``{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}``. The files are
  written when the Map Run fails too, before the failure; when they cannot be written (no such
  bucket, access denied) the Map fails with ``States.ResultWriterFailed``, and when the ItemReader
  cannot read its items (no such key) with ``States.ItemReaderFailed`` (moto says States.Runtime).

A DISTRIBUTED Map nested inside an INLINE Map or a Parallel branch is refused at create time (the
product has none); one inside a Distributed Map's ItemProcessor works (the child is parsed anew).
"""

from __future__ import annotations

import copy
import datetime
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

EXPRESS_MAX_SECONDS = 300
# A DescribeExecution of a child returns this attribute's value as mapRunArn.
_MAP_RUN_ATTRIBUTE = "aurora_sync_map_run_arn"


@dataclass
class MapExtras:
    """What moto's grammar cannot hold for one DISTRIBUTED Map, taken out before parsing."""

    child_definition: dict[str, Any]
    express: bool
    item_batcher: dict[str, Any] | None = None
    # Which thresholds the definition sets: moto evaluates an unset one as 0.
    count_set: bool = False
    percentage_set: bool = False
    result_writer: Any = None  # moto's ResultWriter component, run here instead of by moto


@dataclass
class ChildRecord:
    index: int
    arn: str
    name: str
    input: Any
    item_count: int
    status: str = "RUNNING"
    output: Any = None
    error: str | None = None
    cause: str | None = None
    start: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))
    stop: datetime.datetime | None = None
    state_machine_arn: str = ""


class _Registry:
    """Child executions by ARN and by Map Run, for the API calls that look them up."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_arn: dict[str, Any] = {}
        self.by_map_run: dict[str, list[Any]] = {}

    def add(self, map_run_arn: str, execution: Any) -> None:
        with self.lock:
            self.by_arn[execution.exec_arn] = execution
            self.by_map_run.setdefault(map_run_arn, []).append(execution)


REGISTRY = _Registry()


# --- parsing --------------------------------------------------------------------------------


def normalize(definition: dict[str, Any]) -> dict[str, MapExtras]:
    """Rewrite ``definition`` in place into what moto's grammar accepts and return, by top-level
    state name, what was taken out of each DISTRIBUTED Map."""
    extras: dict[str, MapExtras] = {}
    for name, state in definition.get("States", {}).items():
        if state.get("Type") == "Map" and _is_distributed(state):
            extras[name] = _normalize_map(state)
        else:
            _refuse_nested(state)
    return extras


def _is_distributed(state: dict[str, Any]) -> bool:
    processor = state.get("ItemProcessor") or state.get("Iterator") or {}
    return bool((processor.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED")


def _refuse_nested(state: dict[str, Any]) -> None:
    inner: list[dict[str, Any]] = []
    if state.get("Type") == "Map":
        inner.append(state.get("ItemProcessor") or state.get("Iterator") or {})
    if state.get("Type") == "Parallel":
        inner.extend(state.get("Branches") or [])
    for machine in inner:
        for nested in machine.get("States", {}).values():
            if nested.get("Type") == "Map" and _is_distributed(nested):
                raise ValueError(
                    "the local engine runs a DISTRIBUTED Map at the top level of a state machine "
                    "(or of a Distributed Map's ItemProcessor), not inside an INLINE Map or a Parallel"
                )
            _refuse_nested(nested)


def _normalize_map(state: dict[str, Any]) -> MapExtras:
    processor_key = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
    processor = state[processor_key]
    config = processor.setdefault("ProcessorConfig", {})
    child = {key: copy.deepcopy(value) for key, value in processor.items() if key != "ProcessorConfig"}
    express = config.get("ExecutionType") == "EXPRESS"
    if express:
        config["ExecutionType"] = "STANDARD"  # moto's grammar knows STANDARD only
    percentage = state.get("ToleratedFailurePercentage")
    if isinstance(percentage, int):
        state["ToleratedFailurePercentage"] = float(percentage)  # moto's grammar wants a decimal
    return MapExtras(
        child_definition=child,
        express=express,
        item_batcher=state.pop("ItemBatcher", None),
        count_set=any(key.startswith("ToleratedFailureCount") for key in state),
        percentage_set=any(key.startswith("ToleratedFailurePercentage") for key in state),
    )


def attach(program: Any, extras: dict[str, MapExtras]) -> None:
    """Hand each DISTRIBUTED Map's extras to its iteration component, and take the ResultWriter
    from moto (``_map_run`` writes the results, also when the Map Run fails)."""
    for name, extra in extras.items():
        state_map = program.states.states[name]
        extra.result_writer = state_map.result_writer
        state_map.result_writer = None
        state_map.iteration_component.aurora_sync_extras = extra


# --- running --------------------------------------------------------------------------------


def _context(env: Any) -> dict[str, Any]:
    return dict(env.states.context_object.context_object_data)


def _select(env: Any, eval_input: Any, state_input: Any, index: int, item: Any) -> Any:
    """ItemSelector (or legacy Parameters) for one item, as moto's inline worker evaluates it."""
    selector = eval_input.item_selector or eval_input.parameters
    if selector is None:
        return item
    from moto.stepfunctions.parser.asl.eval.states import ItemData, MapData

    frame = env.open_frame()
    try:
        frame.states.context_object.context_object_data["Map"] = MapData(
            Item=ItemData(Index=index, Value=item)
        )
        frame.states.reset(input_value=state_input)
        frame.stack.append(state_input)
        selector.eval(frame)
        return frame.stack.pop()
    finally:
        env.close_frame(frame)


def _resolve_template(template: Any, state_input: Any, context: dict[str, Any]) -> Any:
    """BatchInput: a JSON template whose ``key.$`` values are paths into the input or ``$$``."""
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    if isinstance(template, dict):
        resolved: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str) or not value.startswith("$"):
                    raise ValueError(f"BatchInput {key!r}: the local engine resolves only JSONPath values")
                source = context if value.startswith("$$") else state_input
                resolved[key[:-2]] = extract_json(value[1:] if value.startswith("$$") else value, source)
            else:
                resolved[key] = _resolve_template(value, state_input, context)
        return resolved
    if isinstance(template, list):
        return [_resolve_template(value, state_input, context) for value in template]
    return template


def _path_number(batcher: dict[str, Any], key: str, state_input: Any) -> int | None:
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    if key in batcher:
        return int(batcher[key])
    path = batcher.get(key + "Path")
    return None if path is None else int(extract_json(path, state_input))


def batches(
    items: list[Any], batcher: dict[str, Any] | None, state_input: Any, context: dict[str, Any]
) -> list[tuple[Any, int]]:
    """Each child's input and how many items it holds."""
    if batcher is None:
        return [(item, 1) for item in items]
    max_items = _path_number(batcher, "MaxItemsPerBatch", state_input)
    max_bytes = _path_number(batcher, "MaxInputBytesPerBatch", state_input)
    batch_input = (
        _resolve_template(batcher["BatchInput"], state_input, context) if "BatchInput" in batcher else None
    )
    groups: list[list[Any]] = []
    size = 0
    for item in items:
        item_bytes = len(json.dumps(item, separators=(",", ":")).encode())
        full = groups and (
            (max_items is not None and len(groups[-1]) >= max_items)
            or (max_bytes is not None and size + item_bytes > max_bytes)
        )
        if not groups or full:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += item_bytes
    result = []
    for group in groups:
        child: dict[str, Any] = {"Items": group}
        if batch_input is not None:
            child["BatchInput"] = batch_input
        result.append((child, len(group)))
    return result


@dataclass(frozen=True)
class _ChildStateMachine:
    """The ItemProcessor as the state machine of the children (what moto's Execution reads)."""

    arn: str
    name: str
    sm_type: Any
    definition: str
    roleArn: str
    revision_id: str | None = None
    logging_config: Any = None
    create_date: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))


def _child_definition(extras: MapExtras) -> str:
    definition = copy.deepcopy(extras.child_definition)
    if extras.express:
        # Express workflows run at most five minutes (Step Functions quotas).
        definition["TimeoutSeconds"] = min(
            int(definition.get("TimeoutSeconds", EXPRESS_MAX_SECONDS)), EXPRESS_MAX_SECONDS
        )
    return json.dumps(definition)


def _run_child(env: Any, eval_input: Any, extras: MapExtras, record: ChildRecord) -> ChildRecord:
    from moto.stepfunctions.parser.api import StateMachineType
    from moto.stepfunctions.parser.backend.execution import SyncExecution

    map_run = eval_input.map_run_record
    details = env.aws_execution_details
    machine = _ChildStateMachine(
        arn=map_run.map_state_machine_arn,
        name=map_run.map_state_machine_arn.split(":")[-1],
        sm_type=StateMachineType.EXPRESS if extras.express else StateMachineType.STANDARD,
        definition=_child_definition(extras),
        roleArn=details.role_arn,
    )
    execution = SyncExecution(
        name=record.name,
        sm_type=machine.sm_type,
        role_arn=details.role_arn,
        exec_arn=record.arn,
        account_id=details.account,
        region_name=details.region,
        state_machine=machine,  # type: ignore[arg-type]
        start_date=record.start,
        cloud_watch_logging_session=None,
        activity_store={},
        input_data=json.dumps(record.input),
    )
    setattr(execution, _MAP_RUN_ATTRIBUTE, map_run.map_run_arn)
    REGISTRY.add(map_run.map_run_arn, execution)
    map_run.execution_counter.total.count()
    map_run.execution_counter.running.count()
    map_run.item_counter.total.count(record.item_count)
    map_run.item_counter.running.count(record.item_count)
    try:
        execution.start()  # synchronous: SyncExecution runs the child in this thread
    finally:
        map_run.execution_counter.running.offset(-1)
        map_run.item_counter.running.offset(-record.item_count)
    record.status = execution.status
    record.stop = execution.stop_date or datetime.datetime.now(datetime.UTC)
    if record.status == "SUCCEEDED":
        record.output = execution.output
        map_run.execution_counter.succeeded.count()
        map_run.item_counter.succeeded.count(record.item_count)
    else:
        record.error = execution.error or ("States.Timeout" if record.status == "TIMED_OUT" else None)
        record.cause = execution.cause
        counter = {"TIMED_OUT": "timed_out", "ABORTED": "aborted"}.get(record.status, "failed")
        getattr(map_run.execution_counter, counter).count()
        getattr(map_run.item_counter, counter).count(record.item_count)
    return record


def _child_arn(map_run: Any, name: str, express: bool) -> str:
    # AWS: execution:<machine>/<label or id>:<name> for STANDARD children, express:...:<name>:<id>
    base = map_run.map_state_machine_arn.replace(":stateMachine:", ":express:" if express else ":execution:")
    return f"{base}:{name}:{uuid.uuid4()}" if express else f"{base}:{name}"


def _iso(moment: datetime.datetime | None) -> str | None:
    return (
        None
        if moment is None
        else moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def result_entry(record: ChildRecord) -> dict[str, Any]:
    """One child in SUCCEEDED_n.json/FAILED_n.json, as the developer guide shows it."""
    entry: dict[str, Any] = {
        "ExecutionArn": record.arn,
        "Input": json.dumps(record.input, separators=(",", ":")),
        "InputDetails": {"Included": True},
        "Name": record.name,
        "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE",
        "StartDate": _iso(record.start),
        "StateMachineArn": record.state_machine_arn,
        "Status": record.status,
        "StopDate": _iso(record.stop),
    }
    if record.status == "SUCCEEDED":
        entry["Output"] = json.dumps(record.output, separators=(",", ":"))
        entry["OutputDetails"] = {"Included": True}
        entry["RedriveStatusReason"] = "Execution is SUCCEEDED and cannot be redriven"
    else:
        entry["Error"] = record.error
        entry["Cause"] = record.cause
    return entry


def _write_results(
    env: Any, extras: MapExtras, map_run_arn: str, records: list[ChildRecord]
) -> dict[str, Any]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

    extras.result_writer.parargs.eval(env=env)
    parameters = env.stack.pop()
    bucket = parameters["Bucket"]
    prefix = parameters.get("Prefix", "")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    folder = f"{prefix}{map_run_arn.rsplit(':', maxsplit=1)[-1]}/"
    s3 = boto_client_for(
        region=env.aws_execution_details.region,
        service="s3",
        state_credentials=StateCredentials(role_arn=env.aws_execution_details.role_arn),
    )
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status in ("SUCCEEDED", "FAILED"):
        chosen = [r for r in records if (r.status == "SUCCEEDED") == (status == "SUCCEEDED")]
        if not chosen:
            continue
        body = json.dumps([result_entry(r) for r in chosen]).encode()
        key = f"{folder}{status}_0.json"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        files[status].append({"Key": key, "Size": len(body)})
    manifest_key = f"{folder}manifest.json"
    manifest = {"DestinationBucket": bucket, "MapRunArn": map_run_arn, "ResultFiles": files}
    s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
    return {"MapRunArn": map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": manifest_key}}


def _threshold_exceeded(extras: MapExtras, eval_input: Any, failed_items: int, total_items: int) -> bool:
    """Without thresholds any failure fails the Map Run; with both, exceeding either does."""
    if failed_items == 0:
        return False
    if not (extras.count_set or extras.percentage_set):
        return True
    over_count = extras.count_set and failed_items > int(eval_input.tolerated_failure_count)
    over_percentage = extras.percentage_set and (
        failed_items * 100.0 > float(eval_input.tolerated_failure_percentage) * total_items
    )
    return over_count or over_percentage


def _fail_map_run(env: Any, error: str, cause: str) -> NoReturn:
    """Fail the Map Run with one of the States.* errors AWS documents for it (a Catch sees it)."""
    from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    error_name = StatesErrorName(typ=getattr(StatesErrorNameType, error.replace(".", "")))
    raise FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=error_name,
            event_type=HistoryEventType.MapRunFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item] # moto's TypedDict is total
                mapRunFailedEventDetails=MapRunFailedEventDetails(
                    error=error_name.error_name,
                    cause=cause,
                )
            ),
        )
    )


def map_run(self: Any, env: Any, eval_input: Any) -> None:
    """DistributedIterationComponent._map_run: one child execution per item or batch."""
    extras: MapExtras = self.aurora_sync_extras
    items: list[Any] = env.stack.pop()
    state_input = env.stack[-1] if env.stack else env.states.get_input()
    context = _context(env)
    selected = [_select(env, eval_input, state_input, index, item) for index, item in enumerate(items)]
    map_run_record = eval_input.map_run_record
    records = []
    for index, (child_input, count) in enumerate(
        batches(selected, extras.item_batcher, state_input, context)
    ):
        name = str(uuid.uuid4())
        records.append(
            ChildRecord(
                index=index,
                arn=_child_arn(map_run_record, name, extras.express),
                name=name,
                input=child_input,
                item_count=count,
                state_machine_arn=map_run_record.map_state_machine_arn,
            )
        )
    concurrency = eval_input.max_concurrency or len(records)
    if records:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(records)))) as pool:
            list(pool.map(lambda record: _run_child(env, eval_input, extras, record), records))
    failed_items = sum(r.item_count for r in records if r.status != "SUCCEEDED")
    total_items = sum(r.item_count for r in records)
    result: Any
    if extras.result_writer is not None:
        try:
            result = _write_results(env, extras, map_run_record.map_run_arn, records)
        except Exception as exc:  # noqa: BLE001 - any failure to export is AWS's ResultWriterFailed
            _fail_map_run(
                env, "States.ResultWriterFailed", f"the Map Run's results could not be written: {exc}"
            )
        map_run_record.item_counter.results_written.count(total_items)
        map_run_record.execution_counter.results_written.count(len(records))
    else:
        result = [r.output if r.status == "SUCCEEDED" else None for r in records]
    if _threshold_exceeded(extras, eval_input, failed_items, total_items):
        _fail_map_run(
            env,
            "States.ExceedToleratedFailureThreshold",
            "The specified tolerated failure threshold was exceeded",
        )
    env.stack.append(result)


# --- the API ---------------------------------------------------------------------------------


def install_distributed_map() -> None:
    """Patch moto's parser, Distributed Map run and execution API (before the server starts)."""
    _install_interpreter()
    _install_api()


def _install_interpreter() -> None:
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader import item_reader_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as dic,
    )
    from moto.stepfunctions.parser.asl.parse import asl_parser

    original_parse = asl_parser.AmazonStateLanguageParser.parse

    def parse(definition: str) -> Any:
        document = json.loads(definition)
        extras = normalize(document)
        program, tree = original_parse(json.dumps(document))
        attach(program, extras)
        return program, tree

    asl_parser.AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]

    original_read = item_reader_decl.ItemReader._eval_body

    def read_items(self: Any, env: Any) -> None:
        try:
            original_read(self, env)
        except FailureEventException:
            raise
        except Exception as exc:  # noqa: BLE001 - moto lets S3's error become States.Runtime
            _fail_map_run(env, "States.ItemReaderFailed", f"the Map's items could not be read: {exc}")

    item_reader_decl.ItemReader._eval_body = read_items  # type: ignore[method-assign]
    dic.DistributedIterationComponent._map_run = map_run  # type: ignore[method-assign]


def _install_api() -> None:
    from moto.stepfunctions import responses
    from moto.stepfunctions.parser import models

    backend = models.StepFunctionsParserBackend
    original_describe = backend.describe_execution

    def describe_execution(self: Any, execution_arn: str) -> Any:
        with REGISTRY.lock:
            child = REGISTRY.by_arn.get(execution_arn)
        return child if child is not None else original_describe(self, execution_arn)

    backend.describe_execution = describe_execution  # type: ignore[method-assign]

    original_describe_response = responses.StepFunctionResponse.describe_execution

    def describe_execution_response(self: Any) -> Any:
        result = original_describe_response(self)
        with REGISTRY.lock:
            child = REGISTRY.by_arn.get(self._get_param("executionArn"))
        if child is not None:
            body = cast(dict[str, Any], result.result)
            body["mapRunArn"] = getattr(child, _MAP_RUN_ATTRIBUTE)
        return result

    responses.StepFunctionResponse.describe_execution = describe_execution_response  # type: ignore[method-assign]

    original_list = responses.StepFunctionResponse.list_executions

    def list_executions(self: Any) -> Any:
        from moto.core.responses import ActionResult

        map_run_arn = self._get_param("mapRunArn")
        if not map_run_arn:
            return original_list(self)
        status_filter = self._get_param("statusFilter")
        with REGISTRY.lock:
            children = list(REGISTRY.by_map_run.get(map_run_arn, []))
        listed = []
        for child in sorted(children, key=lambda c: c.start_date, reverse=True):
            if status_filter and child.status != status_filter:
                continue
            entry = {
                "executionArn": child.exec_arn,
                "name": child.name,
                "startDate": child.start_date,
                "stateMachineArn": child.state_machine.arn,
                "status": child.status,
                "mapRunArn": map_run_arn,
            }
            if child.stop_date is not None:
                entry["stopDate"] = child.stop_date
            listed.append(entry)
        return ActionResult({"executions": listed})

    responses.StepFunctionResponse.list_executions = list_executions  # type: ignore[method-assign]
