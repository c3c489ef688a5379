"""A run's export rounds: where their files live under the run's S3 prefix, and what one round's
Distributed Map results mean for the next.

The design of issue 15 ("state that does not grow with the work"): the planner writes round 0's
manifest, a JSON array of batches of work items (``batches``), under the run prefix; the export
Distributed Map reads it (ItemReader), hands each batch to an EXPRESS child execution and writes
each child's outcome to S3 (ResultWriter). A child stops before Express's five-minute cap and
returns a table it could not finish as MORE, whose ``next`` is the work item that resumes it.
The round step reads the Map Run's results (``read_round``), writes the round's settled tables
and the next round's manifest of the unfinished items (``advance``), and the state machine loops
while a manifest is left. The planner also writes the tables that failed in the plan (their
``FailedTable`` entries), which the verifier reads for the run's report (``read_plan_failed``).
States carry the run id, these keys and counts, never the lists.

Layout, in the data lake bucket (the prefix starts with ``_``, which no table's name does, so no
table's pipe loads it, as for ``messages.KEY_SNAPSHOT_PREFIX``)::

    _aurora_sync/runs/<run_id>/plan-failed.json         the tables that failed in the plan, when any
    _aurora_sync/runs/<run_id>/round-<n>/items.json     the round's batches (ItemReader)
    _aurora_sync/runs/<run_id>/round-<n>/settled.json   the tables the round finished or failed
    _aurora_sync/runs/<run_id>/verify.json              the verifier's verdicts (verifying.progress)
    _aurora_sync/runs/<run_id>/rerun.json               the rerun input, when the cause cannot hold it
    _aurora_sync/runs/<run_id>/chunks/<table>/<all | lane-<i>>/<chunk:06d>.json
                                                        a chunk's keys, when it left its table MORE
    _aurora_sync/runs/map-results/<map run id>/         every Map Run's ResultWriter files:
        manifest.json, SUCCEEDED_0.json, FAILED_0.json

A table's S3 keys are not carried from chunk to chunk (a table of ~1,000 chunks would pass the
256 KB state limit): each result holds its own chunk's keys and the counts, a chunk that leaves
its table MORE writes its keys to its chunk file (``record_chunk``, from the exporter), and the
round step, settling a table, reads the earlier chunks' files back into the table's whole key
list in settled.json (``settle_keys``). Most tables have one chunk and cost no extra S3 call.

A child's output is its INLINE Map's output: one entry per item of its batch, an ``ExportResult``
(EXPORTED, EMPTY, or MORE when the child's time ran out) or a ``FailedExport`` (the item's
Catch). A child that failed as a whole (a crash outside the items' Catch, the five-minute cap)
fails every item of its batch with the child's error: failed tables are results of the run, so
the report names each one and the input that reruns it, never a failed Map.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError

from ..errors import ConfigError
from ..messages import ExportError, ExportResult, FailedExport, FailedTable, KeyRange, RoundOutput, WorkItem
from ..run_files import MAX_CONNECTIONS, RUNS_PREFIX, run_prefix

# The export Map's ResultWriter Prefix (statemachine/sync.asl.json): each Map Run writes under its
# own id below it, so one static prefix serves every run and round.
MAP_RESULTS_PREFIX = f"{RUNS_PREFIX}/map-results"
# When a child failed without saying why (AWS always sets Error; kept for a hand-made entry).
CHILD_FAILED = "ChildExecutionFailed"
# A table whose chunk file is gone fails with the verifier's name for an export it cannot trust
# (``verifying.verify.EXPORT_INCOMPLETE``): its keys are unknown, so nothing of it is merged.
CHUNK_FILE_MISSING = "ExportIncomplete"
# Chunk files read at once by the round step: each read only waits on S3. Measured on the local
# stack (moto on 2 shared cores), a table of 2,001 chunks settled in 15 s with 16 reads in flight
# and 57 s one at a time, of the step's 120 s timeout.
CHUNK_READS = MAX_CONNECTIONS

_ITEM_OUTCOME: TypeAdapter[ExportResult | FailedExport] = TypeAdapter(ExportResult | FailedExport)
_FAILED_TABLES: TypeAdapter[list[FailedTable]] = TypeAdapter(list[FailedTable])
_RUN_FILES_FIX = "the run's files are written by the run itself (the planner and the round step)"


def round_prefix(run_id: str, number: int) -> str:
    if number < 0:
        raise ConfigError(f"round {number} of run {run_id} does not exist.", fix="rounds count from 0")
    return f"{run_prefix(run_id)}round-{number}/"


def manifest_key(run_id: str, number: int) -> str:
    return f"{round_prefix(run_id, number)}items.json"


def settled_key(run_id: str, number: int) -> str:
    return f"{round_prefix(run_id, number)}settled.json"


def plan_failed_key(run_id: str) -> str:
    """The tables that failed in the plan (written only when there are any)."""
    return f"{run_prefix(run_id)}plan-failed.json"


def chunk_key(run_id: str, table: str, lane: KeyRange | None, chunk: int) -> str:
    """Where chunk ``chunk`` (counted from 1) of ``table``'s export (or of one of its lanes) in run
    ``run_id`` records its keys: one name per chunk, so a retried chunk overwrites its file."""
    if chunk < 1:
        raise ConfigError(f"chunk {chunk} of table {table} does not exist.", fix="chunks count from 1")
    part = "all" if lane is None else f"lane-{lane.index}"
    return f"{run_prefix(run_id)}chunks/{table}/{part}/{chunk:06d}.json"


def child_deadline(child_started_at: datetime, child_seconds: int) -> datetime:
    """When an export child's chunk loops must have stopped (``ExportRequest.child_seconds``)."""
    return child_started_at + timedelta(seconds=child_seconds)


def deferred(item: WorkItem) -> ExportResult:
    """The answer for an item whose child has no time left to start it: MORE, nothing exported by
    this call, resumed unchanged in the next round. Without it the items after the deadline
    would run anyway, and the child would pass Express's five minutes and fail its whole batch."""
    position = item.position
    return ExportResult(
        table=item.table,
        run_id=item.run_id,
        status="MORE",
        target=item.target,
        window=item.window,
        chunks=position.chunk if position else 0,
        rows=position.rows if position else 0,
        bytes=position.bytes if position else 0,
        files=position.files if position else 0,
        next=item,
        resume_later=True,
    )


def another_chunk_fits(
    deadline: datetime, call_started: datetime, now: datetime, next_timeout: timedelta
) -> bool:
    """Whether a chunk as long as the one that just ran (the best estimate of the next: same
    table, same chunk size) would end before ``deadline`` and within ``next_timeout``, the
    statement timeout the next call would get (the child's time left less the exporter's margin
    to report). When not, the table is MORE with ``resume_later`` and its next chunk runs in the
    next round's child, with a whole child's time: a chunk started with less time than it needs
    would be cancelled by its statement timeout, and a long one (a backfill's) taken for a chunk
    too slow to read at all."""
    took = now - call_started
    return now + took <= deadline and took <= next_timeout


@dataclass
class RoundResults:
    """One round, read from its Map Run's results: what resumes in the next round, what is done."""

    unfinished: list[WorkItem] = field(default_factory=list)
    settled: list[ExportResult | FailedExport] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for outcome in self.settled if isinstance(outcome, FailedExport))


def _entry_json(entry: Mapping[str, Any], name: str) -> Any:
    try:
        return json.loads(entry[name])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"a Map Run result entry of {entry.get('ExecutionArn', 'an unknown child')} has no JSON {name}.",
            fix="read results written by the export Map's ResultWriter, unchanged",
        ) from None


def _item_outcomes(entry: Mapping[str, Any]) -> list[ExportResult | FailedExport]:
    output = _entry_json(entry, "Output")
    if not isinstance(output, list):
        raise ConfigError(
            f"child {entry.get('ExecutionArn')} returned {type(output).__name__}, not its batch's list.",
            fix="the export child must end with its INLINE Map's output (one entry per item)",
        )
    try:
        return [_ITEM_OUTCOME.validate_python(outcome) for outcome in output]
    except ValidationError as exc:
        raise ConfigError(
            f"child {entry.get('ExecutionArn')} returned an item that is neither an export result "
            f"nor a failed export ({exc.error_count()} error(s)).",
            fix="the export child's items must end in ExportDone or ExportFailed",
        ) from None


def _failed_batch(entry: Mapping[str, Any]) -> list[FailedExport]:
    """Every item of a child that failed as a whole, failed with the child's error."""
    batch = _entry_json(entry, "Input")
    items = batch.get("Items") if isinstance(batch, dict) else None
    if not isinstance(items, list):
        raise ConfigError(
            f"failed child {entry.get('ExecutionArn')} has no Items in its input.",
            fix="the export Map must batch its items (ItemBatcher)",
        )
    error = ExportError(error=entry.get("Error") or CHILD_FAILED, cause=entry.get("Cause"))
    failed = []
    for document in items:
        item = WorkItem.model_validate(document)
        failed.append(
            FailedExport(
                table=item.table, status="FAILED", error=error, run_id=item.run_id, target=item.target
            )
        )
    return failed


def read_round(succeeded: Iterable[Mapping[str, Any]], failed: Iterable[Mapping[str, Any]]) -> RoundResults:
    """The round's outcome from its ResultWriter entries (``SUCCEEDED_n.json``, ``FAILED_n.json``)."""
    results = RoundResults()
    for entry in succeeded:
        for outcome in _item_outcomes(entry):
            if isinstance(outcome, ExportResult) and outcome.status == "MORE":
                if outcome.next is None:
                    raise ConfigError(
                        f"table {outcome.table} is MORE without the work item that resumes it.",
                        fix="an exporter result with status MORE must carry next",
                    )
                results.unfinished.append(outcome.next)
            else:
                results.settled.append(outcome)
    for entry in failed:
        results.settled.extend(_failed_batch(entry))
    return results


class ObjectStore(Protocol):
    """The run's files (``aurora_sync.run_files.RunFiles`` in S3)."""

    def read_json(self, key: str) -> Any: ...

    def read_json_if_present(self, key: str) -> Any: ...

    def write_json(self, key: str, value: Any) -> None: ...


def record_chunk(store: ObjectStore, result: ExportResult) -> None:
    """The exporter's record of a chunk that leaves its table MORE: the chunk's keys in its chunk
    file. Nothing for a table's last chunk (its keys ride its result) or an item deferred
    unexported (no keys)."""
    if result.status != "MORE" or not result.keys:
        return
    store.write_json(
        chunk_key(result.run_id, result.table, result.lane, result.chunks),
        {"table": result.table, "chunk": result.chunks, "keys": result.keys},
    )


def _recorded_chunks(result: ExportResult) -> range:
    """The chunks of a settled table whose keys are in chunk files: every chunk but the last call's
    when that call wrote files (its keys are its own), all of them when it found no more rows."""
    return range(1, result.chunks + (0 if result.keys else 1))


def _chunk_keys(document: Any, result: ExportResult, chunk: int, key: str) -> list[str]:
    if (
        not isinstance(document, dict)
        or document.get("chunk") != chunk
        or document.get("table") != result.table
        or not isinstance(document.get("keys"), list)
        or not all(isinstance(k, str) for k in document["keys"])
    ):
        raise ConfigError(
            f"{key} is not the chunk file of chunk {chunk} of table {result.table}.",
            fix="the run's files are written by the run itself (the exporter); rerun the table "
            f'(execution input {{"tables": ["{result.table}"]}})',
        )
    return list(document["keys"])


def _missing_chunk(result: ExportResult, chunk: int, key: str) -> FailedExport:
    lane = f"{result.lane.describe(result.primary_key or [])} of " if result.lane is not None else ""
    cause = (
        f"chunk {chunk} of table {result.table} ({lane}{result.chunks} chunk(s), {result.files} file(s)) "
        f"has no chunk file {key}, so the export's keys are unknown; nothing of {result.table} is "
        "merged (its files stay unmerged in STAGING). Check the bucket's lifecycle rules on "
        f'{RUNS_PREFIX}/, then rerun the table: {{"tables": ["{result.table}"]}}'
    )
    return FailedExport(
        table=result.table,
        status="FAILED",
        error=ExportError(error=CHUNK_FILE_MISSING, cause=cause),
        run_id=result.run_id,
        target=result.target,
    )


def settle_keys(
    store: ObjectStore, outcomes: Sequence[ExportResult | FailedExport], *, reads: int = CHUNK_READS
) -> list[ExportResult | FailedExport]:
    """``outcomes`` with each export result's whole key list, its chunks' in order then its own:
    the earlier chunks' keys read from their chunk files, at most ``reads`` at once. A table
    whose chunk file is missing fails (``CHUNK_FILE_MISSING``), naming the chunk: never a shorter
    list. Tables of one chunk (most) read nothing."""
    wanted = [
        (index, chunk, chunk_key(outcome.run_id, outcome.table, outcome.lane, chunk))
        for index, outcome in enumerate(outcomes)
        if isinstance(outcome, ExportResult) and outcome.status != "MORE"
        for chunk in _recorded_chunks(outcome)
    ]
    if not wanted:
        return list(outcomes)
    with ThreadPoolExecutor(max_workers=max(1, min(reads, len(wanted)))) as pool:
        documents = list(pool.map(lambda read: store.read_json_if_present(read[2]), wanted))
    earlier: dict[int, list[str]] = {}
    missing: dict[int, FailedExport] = {}
    for (index, chunk, key), document in zip(wanted, documents, strict=True):
        result = outcomes[index]
        assert isinstance(result, ExportResult)
        if document is None:
            missing.setdefault(index, _missing_chunk(result, chunk, key))
        elif index not in missing:
            earlier.setdefault(index, []).extend(_chunk_keys(document, result, chunk, key))
    settled: list[ExportResult | FailedExport] = []
    for index, outcome in enumerate(outcomes):
        if index in missing:
            settled.append(missing[index])
        elif index in earlier:
            assert isinstance(outcome, ExportResult)
            settled.append(outcome.model_copy(update={"keys": [*earlier[index], *outcome.keys]}))
        else:
            settled.append(outcome)
    return settled


def read_settled(store: ObjectStore, run_id: str, rounds: int) -> list[ExportResult | FailedExport]:
    """The run's export results: the settled tables of rounds 0 to ``rounds`` - 1, in order (a
    table split into lanes has one entry per lane, which the verifier combines)."""
    settled: list[ExportResult | FailedExport] = []
    for number in range(rounds):
        document = store.read_json(settled_key(run_id, number))
        if not isinstance(document, list):
            raise ConfigError(
                f"{settled_key(run_id, number)} is not a list of export results.",
                fix="the run's files are written by the run itself (the round step)",
            )
        try:
            settled.extend(_ITEM_OUTCOME.validate_python(outcome) for outcome in document)
        except ValidationError as exc:
            raise ConfigError(
                f"{settled_key(run_id, number)} holds an entry that is neither an export result nor a "
                f"failed export ({exc.error_count()} error(s)).",
                fix="the run's files are written by the run itself (the round step)",
            ) from None
    return settled


@dataclass(frozen=True)
class Batching:
    """How a round's items are split among the export Map's child executions: at most
    ``most`` items a child (template parameter ExportBatchSize), and ``children`` children
    running at once (MaxConcurrency)."""

    most: int = 25
    children: int = 4


def batches(items: Sequence[WorkItem], batching: Batching) -> list[list[WorkItem]]:
    """The round's batches, one per child execution. Few enough items a batch that a small round
    still fills every concurrent child; and item i goes to batch i mod B, so the lanes of a split
    table, adjacent in the plan, land in different children and export side by side (a child
    exports its items one after another)."""
    if not items:
        return []
    size = max(1, min(batching.most, math.ceil(len(items) / batching.children)))
    count = math.ceil(len(items) / size)
    return [list(items[index::count]) for index in range(count)]


def write_items(store: ObjectStore, key: str, items: Sequence[WorkItem], batching: Batching) -> None:
    """A round's manifest, which the export Map reads (ItemReader): a JSON array of one
    ``{"Items": [work item, ...]}`` per child execution, each item with its defaults left out
    like the plan's. The batches are the product's (``batches``), not ItemBatcher's, which
    groups consecutive items and would put a table's lanes in one child."""
    store.write_json(
        key,
        [
            {"Items": [item.model_dump(mode="json", by_alias=True, exclude_defaults=True) for item in batch]}
            for batch in batches(items, batching)
        ],
    )


def write_first_round(store: ObjectStore, run_id: str, items: Sequence[WorkItem], batching: Batching) -> str:
    """The planner's round 0: every work item of the run. Returns the manifest's key."""
    key = manifest_key(run_id, 0)
    write_items(store, key, items, batching)
    return key


def read_items(store: ObjectStore, key: str) -> list[WorkItem]:
    """A round's work items from its manifest, in the order they were planned (for readers of a
    run: the CLI, the tests; the export Map reads the batches itself). ``batches`` put item i
    in batch i mod B at place i div B, so taking each batch's first item, then each one's
    second, and so on restores the order."""
    document = store.read_json(key)
    if not isinstance(document, list) or not all(
        isinstance(batch, dict) and isinstance(batch.get("Items"), list) for batch in document
    ):
        raise ConfigError(f"{key} is not a list of batches of work items.", fix=_RUN_FILES_FIX)
    columns = [batch["Items"] for batch in document]
    depth = max((len(column) for column in columns), default=0)
    try:
        return [
            WorkItem.model_validate(column[place])
            for place in range(depth)
            for column in columns
            if place < len(column)
        ]
    except ValidationError as exc:
        raise ConfigError(
            f"{key} holds an entry that is not a work item ({exc.error_count()} error(s)).",
            fix=_RUN_FILES_FIX,
        ) from None


def write_plan_failed(store: ObjectStore, run_id: str, failed: Sequence[FailedTable]) -> str:
    """The planner's record of the tables that failed in the plan. Returns its key."""
    key = plan_failed_key(run_id)
    store.write_json(key, [entry.model_dump(mode="json") for entry in failed])
    return key


def read_plan_failed(store: ObjectStore, run_id: str, count: int) -> list[FailedTable]:
    """The ``count`` tables that failed in the run's plan (the Plan state's ``failed``): none
    without a read when ``count`` is 0, as the planner writes the file only when there are any."""
    if count == 0:
        return []
    key = plan_failed_key(run_id)
    try:
        failed = _FAILED_TABLES.validate_python(store.read_json(key))
    except ValidationError as exc:
        raise ConfigError(
            f"{key} is not a list of failed tables ({exc.error_count()} error(s)).", fix=_RUN_FILES_FIX
        ) from None
    if len(failed) != count:
        raise ConfigError(f"{key} names {len(failed)} table(s), the plan said {count}.", fix=_RUN_FILES_FIX)
    return failed


def advance(
    store: ObjectStore, run_id: str, number: int, results_manifest: str, batching: Batching = Batching()
) -> RoundOutput:
    """After round ``number``'s Map Run: record its settled tables, each with its whole key list
    (``settle_keys``), and write the next round's manifest when tables remain.
    ``results_manifest`` is the ResultWriter's ``manifest.json``."""
    manifest = store.read_json(results_manifest)
    files = manifest.get("ResultFiles", {}) if isinstance(manifest, dict) else {}
    succeeded = [entry for f in files.get("SUCCEEDED", []) for entry in store.read_json(f["Key"])]
    failed = [entry for f in files.get("FAILED", []) for entry in store.read_json(f["Key"])]
    results = read_round(succeeded, failed)
    results.settled = settle_keys(store, results.settled)
    store.write_json(
        settled_key(run_id, number),
        [outcome.model_dump(mode="json", by_alias=True, exclude_none=True) for outcome in results.settled],
    )
    next_manifest = None
    if results.unfinished:
        next_manifest = manifest_key(run_id, number + 1)
        write_items(store, next_manifest, results.unfinished, batching)
    return RoundOutput(
        run_id=run_id,
        round=number,
        unfinished=len(results.unfinished),
        settled=len(results.settled),
        failed=results.failed,
        next_manifest=next_manifest,
    )
