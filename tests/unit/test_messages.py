"""The state contract (``aurora_sync.messages``) against the state machine that carries it.

Every sample event in ``events/`` parses into the model its state reads, and every JsonPath the
ASL reads resolves to a field of the model the state before it emits: renaming a field on one
side fails here instead of in a run. A failed table keeps one shape from the plan to the summary.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from memory_store import MemoryStore
from pydantic import BaseModel, create_model
from state_machine import definition, states

from aurora_sync.config import LoadedTable, TableConfig
from aurora_sync.errors import ConfigError, SourceObjectMissing
from aurora_sync.exporting.rounds import (
    Batching,
    plan_failed_key,
    read_items,
    read_plan_failed,
    write_first_round,
    write_plan_failed,
)
from aurora_sync.messages import (
    ExportError,
    ExportRequest,
    ExportResult,
    FailedExport,
    FailedTable,
    PlannerEvent,
    PlanOutput,
    RerunInput,
    ResultWriterDetails,
    RoundOutput,
    RoundRequest,
    TableVerdict,
    VerifyOutput,
    VerifyProgress,
    VerifyRequest,
    WorkItem,
    parse_verify_request,
    parse_work_item,
    read_message,
)
from aurora_sync.planning.plan import Plan, choose_window, parse_event, work_item
from aurora_sync.verifying.verify import summarize

EVENTS = Path(__file__).resolve().parents[2] / "events"


# --- the sample events --------------------------------------------------------------------------
def _planner_event(document: dict[str, Any]) -> BaseModel:
    event = read_message(PlannerEvent, document, fix="-")
    parse_event(document)  # the planner's own reading: a schedule, or a valid rerun
    return event


# Which model reads each sample: a new sample must say which state it feeds.
SAMPLES: dict[str, Callable[[dict[str, Any]], BaseModel]] = {
    "exporter.json": parse_work_item,
    "planner-rerun.json": _planner_event,
    "planner-scheduled.json": _planner_event,
    "verifier.json": parse_verify_request,
}


def test_every_sample_event_parses_into_the_model_its_state_reads() -> None:
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(SAMPLES)
    parsed = {name: read(json.loads((EVENTS / name).read_text())) for name, read in SAMPLES.items()}
    item = parsed["exporter.json"]
    assert isinstance(item, WorkItem) and item.window.lookback_seconds == 900
    rerun = parsed["planner-rerun.json"]
    assert isinstance(rerun, PlannerEvent)
    assert RerunInput.model_validate(rerun.input).tables == ["orders", "customers"]
    request = parsed["verifier.json"]
    assert isinstance(request, VerifyRequest)
    assert [type(t) for t in request.tables] == [ExportResult, ExportResult, FailedExport]


# --- the ASL's JsonPaths ------------------------------------------------------------------------
# What ``$`` holds in the states whose data the ASL itself assembles: the contract's models,
# placed where the ASL's ResultPath, ItemSelector and Parameters put them.
class _Export(BaseModel):
    result: ExportResult


class ChunkState(BaseModel):
    """One item of an export child's batch: ExportBatch's ItemSelector's ``item`` and the child's
    start, the exporter's result or the Catch's error."""

    item: WorkItem
    child_started_at: datetime
    export: _Export | None = None
    error: ExportError | None = None


class Batch(BaseModel):
    """An export child's input: ItemBatcher's batch of the round's work items."""

    Items: list[WorkItem]


class _MapResult(BaseModel):
    results: ResultWriterDetails


class _Advance(BaseModel):
    next_manifest: str | None
    rounds: int
    settled: int
    failed: int
    unfinished: int


class RoundState(BaseModel):
    """The export rounds' data, built by StartRounds and NextRound: keys and counts, no lists."""

    run_id: str
    started_at: str
    plan_failed: int
    round: int
    manifest: str | None
    map: _MapResult | None = None
    advance: _Advance | None = None
    error: ExportError | None = None


class CaughtPlan(BaseModel):
    """The execution input with the Plan state's Catch result."""

    error: ExportError


class CaughtPlanParts(CaughtPlan):
    """PlanFailed's output: the Catch result and the input's comma-separated part count."""

    input_parts: int


class _Verification(BaseModel):
    output: VerifyProgress | None


class VerifyLoop(BaseModel):
    """The Wait → Verify → Choice loop's data, built by StartVerify and CountAttempt."""

    run_id: str
    started_at: str
    rounds: int
    plan_failed: int
    attempt: int
    verification: _Verification
    error: ExportError | None = None


class RunFailure(BaseModel):
    """The ASL's own report of a failed state, before it becomes the Fail state's cause: the
    rerun input is the execution's own (any JSON the planner accepts)."""

    failed_in: str
    error: ExportError
    rerun: Any = None
    input_parts: int | None = None  # how many comma-separated parts the rerun input's JSON has


class FailCause(BaseModel):
    Error: str
    Cause: str


class TablesFailedCause(BaseModel):
    """The verifier's cause with the rerun command, built by DescribeTablesFailed."""

    Cause: str


# The data each state reads (None: it reads no JsonPath of its own, only $$ or nothing).
STATE_INPUT: dict[str, type[BaseModel] | None] = {
    "Plan": None,
    "PlanFailed": CaughtPlan,
    "QuoteThePlanInput": CaughtPlanParts,
    "DescribePlanFailure": CaughtPlanParts,
    "DescribeLongPlanFailure": CaughtPlanParts,
    "AnythingToDo": PlanOutput,
    "Skipped": None,
    "StartRounds": PlanOutput,
    "AnythingToExport": RoundState,
    "NothingExported": RoundState,
    "ExportRound": RoundState,
    "ExportBatch": Batch,
    "ExportChunk": ChunkState,
    "MoreChunks": ChunkState,
    "NextChunk": ChunkState,
    "ExportDone": ChunkState,
    "FailedTableTarget": ChunkState,
    "ExportFailedCustomTarget": ChunkState,
    "ExportFailed": ChunkState,
    "ExportRoundFailed": RoundState,
    "AdvanceRound": RoundState,
    "AdvanceRoundFailed": RoundState,
    "MoreRounds": RoundState,
    "NextRound": RoundState,
    "StartVerify": RoundState,
    "WaitForLoads": VerifyLoop,
    "Verify": VerifyLoop,
    "VerifyFailed": VerifyLoop,
    "AllSettled": VerifyLoop,
    "CountAttempt": VerifyLoop,
    "VerifyAgainNow": VerifyLoop,
    "VerifyGaveUp": VerifyLoop,
    "RerunTheInput": RunFailure,
    "QuoteTheInput": RunFailure,
    "DescribeRunFailure": RunFailure,
    "DescribeLongRunFailure": RunFailure,
    "ReservedErrorName": FailCause,
    "RenameReservedError": FailCause,
    "RunFailed": FailCause,
    "Report": VerifyLoop,
    "DescribeTablesFailed": VerifyLoop,
    "TablesFailed": TablesFailedCause,
    "Synced": None,
}
# The function behind each Task: the model its Payload must build, the model it returns.
TASKS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "Plan": (PlannerEvent, PlanOutput),
    "ExportChunk": (ExportRequest, ExportResult),
    "AdvanceRound": (RoundRequest, RoundOutput),
    "Verify": (VerifyRequest, VerifyProgress),
}
# Pass states that build a payload the contract defines.
PASS_OUTPUT: dict[str, type[BaseModel]] = {
    "StartRounds": RoundState,
    "NothingExported": VerifyLoop,
    "NextChunk": ChunkState,
    "ExportFailed": FailedExport,
    "ExportFailedCustomTarget": FailedExport,
    "NextRound": RoundState,
    "StartVerify": VerifyLoop,
    "CountAttempt": VerifyLoop,
}
_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*|\*)|\[(\*|\d+)\]")
_PATH_IN_TEXT = re.compile(r"(?<![$\w])\$(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[(?:\*|\d+)\])+")


def _members(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return [annotation]


def _step(annotation: Any, name: str | None, where: str) -> Any:
    found: list[Any] = []
    for option in _members(annotation):
        if option is Any:
            found.append(Any)
        elif name is None and get_origin(option) is list:
            found.append(get_args(option)[0])
        elif name is not None and get_origin(option) is dict:
            found.append(get_args(option)[1])
        elif name is not None and isinstance(option, type) and issubclass(option, BaseModel):
            fields = {f.alias or n: f.annotation for n, f in option.model_fields.items()}
            if name == "*":
                found.append(Union[tuple(fields.values())])  # noqa: UP007 - built at runtime
            elif name in fields:
                found.append(fields[name])
    # Every member of a union must have it: a list of ExportResult | FailedExport is read per entry.
    assert len(found) == len(_members(annotation)), f"{where}: no {name or '[*]'} in {annotation}"
    unique = list(dict.fromkeys(found))
    return unique[0] if len(unique) == 1 else Union[tuple(unique)]  # noqa: UP007 - built at runtime


def resolve(model: Any, path: str) -> Any:
    """The annotation ``path`` ("$.a.b[*].c") reaches in ``model``; fails on a missing field."""
    assert path.startswith("$") and not path.startswith("$$"), path
    assert "".join(m.group(0) for m in _TOKEN.finditer(path[1:])) == path[1:], f"unparsed JsonPath {path}"
    annotation = model
    for match in _TOKEN.finditer(path[1:]):
        annotation = _step(annotation, match.group(1), path)
    return annotation


def _involves_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_involves_model(arg) for arg in get_args(annotation))


def _reads(state: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, JsonPath) of every path a state reads from its input; ``$$`` and ResultPath (a
    write) left out. ResultSelector and a Task's OutputPath read the function's result."""
    for key in ("ItemsPath", "CausePath", "ErrorPath"):
        if key in state:
            yield key, state[key]
    yield from _template_reads(state.get("ItemReader", {}).get("Parameters"), "ItemReader")
    rules = list(state.get("Choices", []))
    while rules:
        rule = rules.pop()
        rules.extend([*rule.get("And", []), *rule.get("Or", []), *([rule["Not"]] if "Not" in rule else [])])
        if "Variable" in rule:
            yield "Choices", rule["Variable"]
    if "OutputPath" in state and state["Type"] != "Task":
        yield "OutputPath", state["OutputPath"]
    for key in ("Parameters", "ItemSelector"):
        yield from _template_reads(state.get(key), key)


def _template_reads(template: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(template, dict):
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str):
                for path in _PATH_IN_TEXT.findall(value) if value.startswith("States.") else [value]:
                    if path != "$" and not path.startswith("$$"):
                        yield f"{where}.{key}", path
            else:
                yield from _template_reads(value, f"{where}.{key}")


def test_every_state_says_what_its_input_holds() -> None:
    assert sorted(name for name, _ in states(definition())) == sorted(STATE_INPUT)


@pytest.mark.parametrize("name", sorted(STATE_INPUT))
def test_every_jsonpath_a_state_reads_is_a_field_of_what_the_state_before_emits(name: str) -> None:
    state = dict(states(definition()))[name]
    reads = list(_reads(state))
    model = STATE_INPUT[name]
    if model is None:
        assert reads == [], f"{name} reads {reads}: say what its input holds"
        return
    for _, path in reads:
        resolve(model, path)  # fails naming the path and the missing field


@pytest.mark.parametrize("name", sorted(TASKS))
def test_each_task_builds_the_functions_input_and_reads_its_result(name: str) -> None:
    state = dict(states(definition()))[name]
    reads_model, returns_model = TASKS[name]
    source = STATE_INPUT[name]
    result = create_model(f"{name}Result", Payload=(returns_model, ...))  # what lambda:invoke returns
    selected = [
        path
        for key, value in state.get("ResultSelector", {}).items()
        if key.endswith(".$")
        for path in (_PATH_IN_TEXT.findall(value) if value.startswith("States.") else [value])
    ]
    assert selected or "OutputPath" in state, f"{name} reads nothing of its result"
    for path in [*selected, *([state["OutputPath"]] if "OutputPath" in state else [])]:
        resolved = resolve(result, path)
        # The whole result, or fields of it (the round step's next manifest and round).
        assert resolved is returns_model if path == "$.Payload" else path.startswith("$.Payload."), (
            name,
            path,
        )
    parameters = state["Parameters"]
    if "Payload.$" in parameters:  # the whole input is one object of the state's data
        assert source is not None and resolve(source, parameters["Payload.$"]) is reads_model
    else:
        _check_template(name, parameters["Payload"], reads_model, source)


def test_the_export_map_reads_the_rounds_manifest_and_each_child_ends_with_its_batchs_results() -> None:
    export = definition()["States"]["ExportRound"]
    assert export["ItemReader"]["Parameters"]["Key.$"] == "$.manifest"
    assert resolve(RoundState, "$.manifest") == str | None == resolve(PlanOutput, "$.manifest")
    assert export["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    assert export["ToleratedFailurePercentage"] == 100  # a failed child's tables are results
    batch = export["ItemProcessor"]["States"]["ExportBatch"]
    assert batch["ItemSelector"] == {
        "item.$": "$$.Map.Item.Value",
        "child_started_at.$": "$$.Execution.StartTime",
    }
    assert resolve(Batch, batch["ItemsPath"] + "[*]") is resolve(ChunkState, "$.item") is WorkItem
    # The child's output (ResultWriter's Output) is its inline Map's: what the round step reads.
    assert "ResultPath" not in batch and "OutputPath" not in batch and batch["End"] is True
    iteration = batch["ItemProcessor"]["States"]
    assert resolve(ChunkState, iteration["ExportDone"]["OutputPath"]) is ExportResult
    assert resolve(RoundState, "$.map.results") is resolve(RoundRequest, "$.results") is ResultWriterDetails


@pytest.mark.parametrize("name", sorted(PASS_OUTPUT))
def test_pass_states_build_the_payloads_the_contract_defines(name: str) -> None:
    state = dict(states(definition()))[name]
    _check_template(name, state["Parameters"], PASS_OUTPUT[name], STATE_INPUT[name])


def _check_template(name: str, template: dict[str, Any], target: type[BaseModel], source: Any) -> None:
    """Each key of ``template`` is a field of ``target``; a value read from ``source`` holds the
    same model the field declares (a plain value only needs to exist)."""
    for key, value in template.items():
        field = key.removesuffix(".$")
        declared = resolve(target, f"$.{field}")
        if isinstance(value, dict):
            assert _involves_model(declared), (
                f"{name}: {field} is an object, {target.__name__} says {declared}"
            )
            _check_template(name, value, next(m for m in _members(declared) if isinstance(m, type)), source)
        elif key.endswith(".$") and re.match(r"\$[.\[]", value):
            read = resolve(source, value)
            if _involves_model(declared) or _involves_model(read):
                assert _members(read) == _members(declared), (
                    f"{name}: {key} reads {read}, {field} is {declared}"
                )


def test_a_renamed_field_fails_the_path_check() -> None:
    class RenamedSummary(BaseModel):
        failures: int

    with pytest.raises(AssertionError, match=r"\$\.summary\.failed_count: no failed_count in"):
        resolve(create_model("Output", summary=(RenamedSummary | None, None)), "$.summary.failed_count")


# --- one failed-table shape ----------------------------------------------------------------------
def test_a_plan_failure_reaches_the_summary_unchanged_in_the_one_failed_table_shape() -> None:
    """The planner writes its failed tables to the run's plan-failed.json and says how many; the
    state hands the count to the verifier, which reads them back for the summary."""
    config = LoadedTable(
        "orders", "/t/orders", TableConfig.model_validate({"table": "orders", "primary_key": ["id"]})
    )
    store = MemoryStore()
    plan = Plan(run_id="run-1", started_at="2026-11-02T10:00:00.000+00:00", bucket="lake")
    plan.items.append(work_item("run-1", config, choose_window(config, watermark=None)))
    plan.failed.append(FailedTable.of("broken", ConfigError("/t/broken: field 'table': required")))
    plan.manifest = write_first_round(store, "run-1", plan.items, Batching())
    plan.failed_file = write_plan_failed(store, "run-1", plan.failed)
    output = plan.output()
    assert PlanOutput.model_validate(output) == PlanOutput(
        run_id="run-1",
        started_at=output["started_at"],
        tables_planned=1,
        work_items=1,
        failed=1,
        manifest="_aurora_sync/runs/run-1/round-0/items.json",
        failed_file="_aurora_sync/runs/run-1/plan-failed.json",
        bucket="lake",
    )
    assert read_items(store, output["manifest"]) == plan.items
    # StartRounds hands the plan's "failed" count on as "plan_failed", StartVerify to the verifier.
    request = parse_verify_request(
        {"run_id": "run-1", "started_at": output["started_at"], "rounds": 1, "plan_failed": output["failed"]}
    )
    plan_failed = read_plan_failed(store, request.run_id, request.plan_failed)
    assert plan_failed == plan.failed
    verdict = TableVerdict(
        table="orders", target="ORDERS", outcome="FAILED", error="SourceObjectMissing", reason="gone"
    )
    summary = summarize([verdict], plan_failed)
    assert summary.failed == [
        FailedTable(table="broken", error="ConfigError", cause="/t/broken: field 'table': required"),
        FailedTable.of("orders", SourceObjectMissing("gone")),
    ]
    assert summary.rerun_input == {"tables": ["broken", "orders"]}
    assert (
        VerifyOutput.model_validate(
            {
                "run_id": "run-1",
                "done": True,
                "verify_started_at": output["started_at"],
                "tables": [verdict.model_dump()],
                "pending": 0,
                "failed": 1,
                "summary": summary.model_dump(),
            }
        ).summary
        == summary
    )


def test_the_plans_failed_tables_are_read_only_when_there_are_any_and_must_match_the_count() -> None:
    store = MemoryStore()
    assert read_plan_failed(store, "run-1", 0) == []
    assert store.reads == []  # no GET for a run without plan failures
    write_plan_failed(store, "run-1", [FailedTable(table="a", error="ConfigError", cause="bad")])
    with pytest.raises(ConfigError, match="names 1 table"):
        read_plan_failed(store, "run-1", 2)
    store.write_json(plan_failed_key("run-1"), [{"table": "a"}])
    with pytest.raises(ConfigError, match="is not a list of failed tables"):
        read_plan_failed(store, "run-1", 1)


def test_a_plan_output_says_skip_exactly_when_it_gives_a_reason() -> None:
    with pytest.raises(ValueError, match="skip must be true exactly when skip_reason is set"):
        PlanOutput(run_id="r", started_at="t", skip=True)
    skipped = Plan(run_id="r", started_at="t", skip_reason="execution x is still running").output()
    assert (skipped["skip"], skipped["work_items"], skipped["tables_planned"], skipped["manifest"]) == (
        True,
        0,
        0,
        None,
    )


def test_a_result_carries_a_custom_target_for_len_plus_14_bytes_and_the_default_for_none() -> None:
    """As the exporter returns it (``exclude_none``, json.dumps' separators); the plan's items are
    measured in test_planning.py. The verifier's verdicts named a target before this field."""
    fields: dict[str, Any] = {"table": "orders", "run_id": "r", "status": "EMPTY", "window": {}}
    default = ExportResult.model_validate(fields)
    custom = ExportResult.model_validate({**fields, "target": "SHOP_ORDERS"})
    assert (default.target_name, custom.target_name) == ("ORDERS", "SHOP_ORDERS")
    sizes = [len(json.dumps(r.model_dump(mode="json", exclude_none=True))) for r in (default, custom)]
    assert sizes[1] - sizes[0] == len("SHOP_ORDERS") + 14
    failed = FailedExport.model_validate({"table": "orders", "status": "FAILED", "error": {"Error": "E"}})
    assert failed.target_name == "ORDERS"


# --- reading a message ---------------------------------------------------------------------------
def test_a_message_that_does_not_fit_names_every_field_and_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_work_item({"table": "Orders", "run_id": "", "primary_key": [], "window": {"source": "x"}})
    message = str(caught.value)
    assert message.startswith("exporter input is not a work item (")
    for problem in (
        'run_id: string should have at least 1 character (got "")',
        "table: string should match pattern '^[a-z][a-z0-9_]{0,62}$' (got \"Orders\")",
        "source: required",
        "primary_key: list should have at least 1 item after validation, not 0 (got [])",
        "window.source: input should be 'final', 'initial_watermark', 'since' or 'full' (got \"x\")",
    ):
        assert problem in message
    assert message.endswith(
        "Fix: start the state machine with {} or {'tables': [...]}, not a hand-made exporter input"
    )


def test_a_message_with_many_problems_lists_ten_and_counts_the_rest() -> None:
    entries = [{"table": f"t{i}", "status": "FAILED", "error": {}} for i in range(12)]
    with pytest.raises(ConfigError) as caught:
        parse_verify_request({"run_id": "r", "started_at": "2026-11-02T10:00:00Z", "tables": entries})
    message = str(caught.value)
    # Each entry fails both members of the union, with several problems each.
    assert message.count("; tables.") == 9 and re.search(r"; and \d+ more\)\. Fix: ", message)
    long_value = "x" * 500
    with pytest.raises(ConfigError) as caught:
        parse_verify_request({"run_id": "r", "started_at": long_value, "tables": []})
    assert '(got "' + "x" * 78 + "…)" in str(caught.value)
