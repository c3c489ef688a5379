"""The messages between the states: every payload the state machine passes, as one model each.

The flow, as ``statemachine/sync.asl.json`` wires it (CamelCase words are its states)::

    execution input: {} | EventBridge schedule | RerunInput {"tables", "overrides": {name: TableOverride}}
      │
      ▼  Plan (planner λ) reads PlannerEvent {"input": <execution input>, "execution": ExecutionContext}
      │                   emits PlanOutput {run_id, started_at, skip, skip_reason, tables_planned,
      │                                     work_items, failed (a count), bucket, manifest: the S3
      │                                     key of round 0's items, failed_file: the S3 key of the
      │                                     tables failed in the plan}: counts and keys, no lists
      ▼  AnythingToDo reads $.skip
      ▼  StartRounds keeps {run_id, started_at, plan_failed (the plan's failed count), round: 0,
      │    manifest}: the plan's items and failed tables are in S3, never in the state
      ▼  ExportRound: a DISTRIBUTED Map reading the round's manifest (ItemReader), in batches
      │    (ItemBatcher) each run by an EXPRESS child: ExportBatch, an INLINE Map over the batch's
      │    Items, one WorkItem at a time (a table split into key ranges has one per lane)
      │    ExportChunk (exporter λ) reads ExportRequest {item, child_started_at, child_seconds},
      │    emits ExportResult; MoreChunks: while MORE and not resume_later, NextChunk hands
      │    ExportResult.next back to ExportChunk
      │    ExportDone: the ExportResult (MORE with resume_later when the child's time is up)
      │    ExportFailed (its Catch): FailedExport (ExportFailedCustomTarget keeps a target)
      │    The children's outputs go to S3 (ResultWriter); the state keeps ResultWriterDetails
      ▼  AdvanceRound (rounds λ) reads RoundRequest {run_id, round, results}, emits RoundOutput:
      │    the round's settled tables and the next round's manifest (the MORE items) in S3;
      │    MoreRounds loops through NextRound while next_manifest is set
      ▼  StartVerify builds the loop's state: run_id, started_at, rounds (the number of export
      │    rounds: the verifier reads their settled tables from S3), plan_failed (the count: the
      │    verifier reads the tables from the run's plan-failed.json), attempt,
      │    verification.output (NothingExported instead when the plan had no item: rounds 0)
      ▼  WaitForLoads → Verify (verifier λ) reads VerifyRequest {run_id, started_at, attempt, rounds,
      │    plan_failed, progress: VerifyProgress | null}, writes VerifyOutput {…, tables:
      │    [TableVerdict], summary: RunSummary | null} to the run's verify.json and emits
      │    VerifyProgress {counts, report: its S3 URI, summary: bounded RunSummary | null};
      │    AllSettled reads $.verification.output.done
      ▼  Report reads $.verification.output.summary.failed_count; TablesFailed fails the execution
         with summary.cause, which names the first FailedTables and the rerun input (or its file)

A failed table has one shape wherever it appears (the planner's plan-failed.json, the
summary's ``failed``): ``FailedTable`` {table, error, cause}, ``error``
being a class name of the error taxonomy or a verifier outcome's error name.

A table's Snowflake objects travel with it: the planner reads each config's ``target`` once,
and the WorkItem, every ExportResult (and its ``next``) and the FailedExport carry it to the
verifier, which checks and merges exactly what the run was planned with, whatever the configs in
SSM say by then, and names it in each TableVerdict. To keep the states small, ``target`` is set
only when the config sets one; without it the objects have the default name (the table's name
upper-cased, what ``target_name`` returns), so it costs nothing for most tables and
len(target) + 14 bytes of a message's JSON otherwise (measured in ``tests/unit/test_planning.py`` and
``test_messages.py``).

The payloads are visible in the execution history and limited to 256 KB per state: they carry
identities, windows, positions and counts, never row data or secrets. Every model forbids
unknown keys, so a typo in a hand-written rerun input, or a field renamed on one side only,
fails loudly; ``tests/unit/test_messages.py`` checks that every JsonPath the ASL reads is a
field of the model the state before emits, and that the sample events in ``events/`` parse.
A handler reads its input with ``read_message``: a payload that does not fit its model is the
taxonomy's ``ConfigError`` naming each field and the fix.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .config import SNOWFLAKE_NAME_PATTERN, check_cursor_value, config_error, default_target
from .errors import SyncError

WindowSource = Literal["final", "initial_watermark", "since", "full"]
ExportStatus = Literal["EXPORTED", "EMPTY", "MORE"]
# How a table's changed rows are found (config ``mode``): by a cursor column, by the row
# versions' transaction ids (``xmin``), or not at all (``full``: every row, every run).
SyncMode = Literal["cursor", "xmin", "full"]
# A table's state in the verifier's output: PENDING until it settles as one of the others.
Outcome = Literal["MERGED", "NOTHING_TO_DO", "PENDING", "FAILED"]
# The directory of key snapshots in the bucket, beside the tables' prefixes (table names start
# with a letter, so no table's prefix can be this one); no pipe loads it.
KEY_SNAPSHOT_PREFIX = "_aurora_sync_keys"

M = TypeVar("M", bound=BaseModel)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _TableTarget:
    """``target_name`` of a message that names a table and may carry its ``target``."""

    if TYPE_CHECKING:
        table: str
        target: str | None

    @property
    def target_name(self) -> str:
        """The Snowflake base name of the table's objects (STAGING/FINAL tables, pipe, tasks)."""
        return self.target or default_target(self.table)


def read_message(
    model: type[M], document: Any, *, fix: str, where: str = "", heading: str | None = None
) -> M:
    """``document`` as a ``model``; a ``ConfigError`` naming each wrong field and ``fix`` otherwise
    (``where`` and ``heading`` word it: see ``config.prose.config_error``)."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise config_error(exc, fix=fix, where=where, heading=heading) from None


# --- the planner's input ------------------------------------------------------------------------
class TableOverride(BaseModel):
    """A one-shot change of one table's window for this run only."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    since: Annotated[str | int | None, AfterValidator(check_cursor_value)] = Field(
        None, description="Export rows with cursor > since (ISO-8601 timestamp/date, or an integer)."
    )
    full_resync: bool = Field(False, description="Export every row of the table.")

    @model_validator(mode="after")
    def _one_kind(self) -> TableOverride:
        if self.since is not None and self.full_resync:
            raise ValueError(
                "sets both 'since' and 'full_resync'; keep 'since' to export from a point, or "
                "'full_resync' to export every row"
            )
        if self.since is None and not self.full_resync:
            raise ValueError("changes nothing; set 'since' or 'full_resync': true, or remove it")
        return self


class RerunInput(BaseModel):
    """A hand-written execution input: a subset of tables and/or one-shot overrides."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    tables: list[str] | None = Field(None, min_length=1)
    overrides: dict[str, TableOverride] = Field(default_factory=dict)

    @field_validator("tables")
    @classmethod
    def _unique_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        seen: set[str] = set()
        for name in value:
            if name in seen:
                raise ValueError(f"lists {json.dumps(name)} more than once; name each table once")
            seen.add(name)
        return value


class ExecutionContext(BaseModel):
    """``$$.Execution`` as the state machine's Plan state passes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=80)
    start_time: datetime
    state_machine_arn: str = Field(min_length=1)

    @field_validator("start_time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        # $$.Execution.StartTime always carries "Z"; a naive time cannot be ordered against
        # ListExecutions' aware start dates.
        if value.tzinfo is None:
            raise ValueError("must carry a UTC offset, e.g. 2024-01-01T00:00:00.000Z")
        return value


class PlannerEvent(BaseModel):
    """The Plan state's payload. ``input`` is read by ``planning.plan.parse_input``: a schedule,
    ``{}`` or a ``RerunInput``; ``execution`` is absent under ``sam local invoke``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: dict[str, Any] = Field(default_factory=dict)
    execution: ExecutionContext | None = None


# --- a table's export -----------------------------------------------------------------------------
class SourceTable(_Message):
    schema_name: str = Field(alias="schema")
    table: str


class ExportWindow(_Message):
    """Rows with ``cursor > watermark - lookback`` (or every row when ``watermark`` is None).

    ``watermark`` is the text of a value typed like the source cursor (ISO-8601 for timestamps,
    decimal digits for integers); the exporter casts it to the cursor's own type in SQL. In mode
    ``xmin`` it is a 64-bit transaction id (decimal digits): rows whose version was written by a
    transaction id at or past it. Mode ``full`` always has None.
    """

    watermark: str | None = None
    lookback_seconds: int = Field(0, ge=0)
    source: WindowSource = "final"


class SourceSnapshot(_Message):
    """What the first chunk of a table's export proves about the source (``source_snapshot``).

    Numbers travel as text: ``order`` has 26 digits, more than a JSON number keeps exactly.
    """

    order: str = Field(pattern=r"^[0-9]{1,38}$")
    source_time: str  # ISO-8601, the source clock when the snapshot was taken
    horizon: str  # ISO-8601: every row committed after the snapshot was written by a later-started txn
    cursor_type: str  # pg_type.typname of the cursor column
    max_cursor: str | None = None  # MAX(cursor) in the snapshot, text typed like the cursor
    sample_time: str | None = None  # an earlier (time, MAX(cursor)) pair, taken before the horizon
    sample_max: str | None = None
    future_rows: int = 0  # rows whose cursor lies beyond the source clock
    # pg_snapshot_xmin / pg_snapshot_xmax of the snapshot (64-bit, decimal): every transaction that
    # commits after it has an id >= xmin, so an xmin-mode run starts there; an xmax lower than a
    # merged run's means the source went back (a restore) and the next run reads everything.
    xmin: str | None = Field(None, pattern=r"^[0-9]{1,20}$")
    xmax: str | None = Field(None, pattern=r"^[0-9]{1,20}$")


class NewColumn(_Message):
    """A source column the table config's ``columns`` leave out (schema drift), with the types
    Snowflake would give it: the CLI renders the ALTER TABLE statements from these, so the state
    carries names and types, never DDL."""

    name: str
    staging_type: str
    final_type: str


# A state must stay under 256 KB whatever the drift: a table lists at most this many new columns
# (the exporter's warning still counts them all).
MAX_NEW_COLUMNS = 20


class ChunkPosition(_Message):
    """Keyset continuation: the last (cursor, primary key) exported by the previous chunk.

    ``phase`` "null_cursor" walks the rows whose cursor is NULL by primary key (full syncs only:
    an incremental window can never select them); "cursor" walks (cursor, primary key); "key"
    walks the primary key alone (modes xmin and full, which have no cursor, and a lane of a full
    export: ``export_query.first_phase``).
    """

    phase: Literal["null_cursor", "cursor", "key"] = "cursor"
    cursor: str | None = None
    key: list[str] = Field(default_factory=list)
    chunk: int = Field(0, ge=0)
    # Totals of the chunks already exported in this run, so the last call reports the whole
    # table's counts. Their keys are not carried (a list would grow with the chunks): each chunk
    # that left the table MORE wrote them to its chunk file (``exporting.rounds.chunk_key``).
    rows: int = 0
    bytes: int = 0
    files: int = 0
    # The first chunk's snapshot: the run's horizon and samples (later chunks only add files).
    snapshot: SourceSnapshot | None = None
    quarantined: int = 0
    quarantine_example: str | None = None
    # The key snapshot the first chunk exported (reconciling runs only), carried to the result.
    key_files: list[str] = Field(default_factory=list)
    key_rows: int = 0
    # The first chunk's schema drift, carried to the last chunk's result.
    new_columns: list[NewColumn] = Field(default_factory=list, max_length=MAX_NEW_COLUMNS)


class KeyRange(_Message):
    """A lane: the half-open range [lower, upper) of a table's primary key (its row value, each
    column as text typed like the column) that one work item exports.

    The planner splits a large table's full or initial export into ``count`` lanes that the Map
    runs concurrently (``planning.lanes``). The first lane has no ``lower`` and the last no
    ``upper``, so every row belongs to exactly one lane whatever the statistics the bounds came
    from (stale ones only make lanes uneven). The verifier merges the table once, after every
    lane's result arrived (``verifying.lanes``).
    """

    index: int = Field(ge=0)
    count: int = Field(ge=2)
    lower: list[str] | None = None
    upper: list[str] | None = None

    @model_validator(mode="after")
    def _bounded_as_placed(self) -> KeyRange:
        if self.index >= self.count:
            raise ValueError(f"lane {self.index} of {self.count}: index must be below count")
        if (self.lower is None) != (self.index == 0):
            raise ValueError("only the first lane has no lower bound")
        if (self.upper is None) != (self.index == self.count - 1):
            raise ValueError("only the last lane has no upper bound")
        return self

    def describe(self, primary_key: list[str]) -> str:
        """``lane 2 of 4 (id from 1000 to 2000)``: for messages and logs."""
        key = ", ".join(primary_key)
        lower = "the start" if self.lower is None else ", ".join(self.lower)
        upper = "the end" if self.upper is None else ", ".join(self.upper)
        return f"lane {self.index + 1} of {self.count} ({key} from {lower} up to {upper})"


class WorkItem(_TableTarget, _Message):
    """One table's export order, emitted by the planner and looped by the Map while MORE."""

    run_id: str = Field(min_length=1, max_length=80)
    table: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    source: SourceTable
    # The config's Snowflake base name when it is not the default (see the module docstring).
    target: str | None = Field(None, pattern=SNOWFLAKE_NAME_PATTERN)
    primary_key: list[str] = Field(min_length=1)
    mode: SyncMode = "cursor"
    cursor: str | None = None  # required in mode "cursor", absent otherwise
    columns: list[str] | None = None
    max_rows_per_chunk: int = Field(1_000_000, ge=1)
    window: ExportWindow = ExportWindow()
    position: ChunkPosition | None = None
    # Fingerprint of the file layout the table's pipe loads (``layout.fingerprint``), which the
    # planner made equal to what the exporter derives from the catalog: the exporter writes
    # files in it or not at all. None (a hand-made item) exports the catalog's layout unchecked.
    layout: str | None = Field(None, pattern=r"^[0-9a-f]{12}$")
    # Export every primary key too, in the first chunk's snapshot, so the verifier can remove the
    # FINAL rows the source no longer has (hard_deletes "reconcile", and every run of mode full).
    reconcile: bool = False
    # One key range of a table split into lanes (None: the whole table, the usual case).
    lane: KeyRange | None = None

    @model_validator(mode="after")
    def _cursor_fits_mode(self) -> WorkItem:
        if (self.mode == "cursor") != (self.cursor is not None):
            raise ValueError(f"mode {self.mode!r} {'needs' if self.mode == 'cursor' else 'takes no'} cursor")
        if self.lane is not None and (self.reconcile or self.mode == "full"):
            # A key snapshot is taken in one snapshot with the data it judges: never split.
            raise ValueError("a reconciling export (or mode full) is never split into lanes")
        if self.lane is not None and any(
            len(bound) != len(self.primary_key) for bound in (self.lane.lower, self.lane.upper) if bound
        ):
            raise ValueError("a lane's bounds need one value per primary key column")
        return self


class ExportResult(_TableTarget, _Message):
    """What the exporter did for a table in this run: counts of all chunks so far, and ``keys``.

    When ``status`` is MORE, ``next`` is the work item for the following chunk: the state
    machine calls the exporter again with it until the status is EXPORTED or EMPTY.

    From the exporter, ``keys`` are the S3 keys of this call's chunk only, so no state grows with
    a table's chunks; the earlier chunks' keys are in their chunk files. The round step puts
    them back (``exporting.rounds.settle_keys``): in settled.json, which the verifier reads,
    ``keys`` lists every file of the table's export, ``files`` of them (the verifier fails a
    result whose keys are not its files).
    """

    table: str
    run_id: str
    status: ExportStatus
    # The work item's target: the objects the verifier checks and merges.
    target: str | None = Field(None, pattern=SNOWFLAKE_NAME_PATTERN)
    rows: int = 0
    bytes: int = 0
    files: int = 0
    keys: list[str] = Field(default_factory=list)
    window: ExportWindow
    chunks: int = 0
    next: WorkItem | None = None
    warnings: list[str] = Field(default_factory=list)
    # None only for results of older versions; every export since reports it.
    snapshot: SourceSnapshot | None = None
    # Rows of the window whose primary key is NULL or has no Snowflake value: the MERGE cannot
    # place them, so it leaves them out and the verifier fails the table, naming one.
    quarantined: int = 0
    quarantine_example: str | None = None
    # What the run was planned with: the ledger records the key FINAL is merged with, and the
    # cursor its samples belong to (the planner refuses a later run whose config differs).
    primary_key: list[str] | None = None
    cursor: str | None = None
    # The layout fingerprint the files were written in; the ledger records it with the run.
    layout: str | None = None
    mode: SyncMode = "cursor"
    # Reconciling runs: the key snapshot's files (one column per primary key column, under
    # KEY_SNAPSHOT_PREFIX) and rows, taken in ``snapshot``'s transaction (the first chunk's).
    reconcile: bool = False
    key_files: list[str] = Field(default_factory=list)
    key_rows: int = 0
    # MORE, and the next chunk is left to the next export round: it would not end before the
    # export child execution's time is up (``exporting.rounds.another_chunk_fits``).
    resume_later: bool = False
    # Source columns the config's ``columns`` leave out (schema drift), as the first chunk saw them.
    new_columns: list[NewColumn] = Field(default_factory=list, max_length=MAX_NEW_COLUMNS)
    # The lane this result covers when the table was split (the verifier combines the lanes).
    lane: KeyRange | None = None


# --- failed tables and the plan ---------------------------------------------------------------
class FailedTable(_Message):
    """A table that failed this run: its name, the error's class name, and the message."""

    table: str
    error: str  # a class name of the error taxonomy, or a verifier outcome's error name
    cause: str

    @classmethod
    def of(cls, table: str, error: SyncError) -> FailedTable:
        return cls(table=table, error=type(error).__name__, cause=str(error))


class PlanOutput(_Message):
    """What the planner returns: counts and the keys of the run files that hold the lists, so it
    is the same size for 10 tables as for 2,000 (``tests/unit/test_planning.py``), and whether
    the run is skipped (another execution runs, or nothing is enabled).

    The work items are round 0's manifest (``exporting.rounds.manifest_key``), which the export
    Distributed Map reads (ItemReader); the tables that failed in the plan are
    ``plan-failed.json`` (``exporting.rounds.plan_failed_key``), which the verifier reads for
    the run's report. Both are in ``bucket``, the data lake bucket, for readers of the history
    (the CLI); the state machine names the bucket itself."""

    run_id: str
    started_at: str  # ISO-8601, the execution's start: the verifier reads load history from it
    skip: bool = False
    skip_reason: str | None = None
    tables_planned: int = Field(0, ge=0)
    # Round 0's work items: a table split into lanes has one per lane.
    work_items: int = Field(0, ge=0)
    # The number of tables that failed in the plan (``FailedTable`` entries in ``failed_file``).
    failed: int = Field(0, ge=0)
    manifest: str | None = None  # S3 key, set exactly when work_items > 0
    failed_file: str | None = None  # S3 key, set exactly when failed > 0
    bucket: str | None = None  # where manifest and failed_file are

    @model_validator(mode="after")
    def _consistent(self) -> PlanOutput:
        if self.skip != (self.skip_reason is not None):
            raise ValueError("skip must be true exactly when skip_reason is set")
        if (self.manifest is None) != (self.work_items == 0):
            raise ValueError(f"manifest must be set exactly when there are work items ({self.work_items})")
        if (self.failed_file is None) != (self.failed == 0):
            raise ValueError(f"failed_file must be set exactly when tables failed ({self.failed})")
        if self.tables_planned > self.work_items:
            raise ValueError(f"tables_planned is {self.tables_planned} for {self.work_items} work item(s)")
        if (self.manifest or self.failed_file) and not self.bucket:
            raise ValueError("bucket must name where the manifest and failed_file are")
        return self


# --- the verifier ---------------------------------------------------------------------------------
class ExportError(_Message):
    """What a Catch puts in ``ResultPath``: the error's class name and Lambda's error document."""

    error: str = Field(alias="Error")
    cause: str | None = Field(None, alias="Cause")


class FailedExport(_TableTarget, _Message):
    """The ExportFailed state's output: a table whose export raised (after its retries)."""

    table: str
    status: Literal["FAILED"]
    error: ExportError
    run_id: str | None = None
    # The work item's target (the FailedTableTarget state keeps it when set).
    target: str | None = Field(None, pattern=SNOWFLAKE_NAME_PATTERN)

    @property
    def message(self) -> str:
        """The exception's message: a Lambda failure's Cause is Lambda's JSON error document
        (message plus stack trace); only the message belongs in reports."""
        cause = self.error.cause or "export failed"
        try:
            document = json.loads(cause)
        except ValueError:
            return cause
        return str(document.get("errorMessage") or cause) if isinstance(document, dict) else cause


class TableVerdict(_Message):
    table: str
    target: str
    outcome: Outcome
    error: str | None = None
    reason: str | None = None
    rows_exported: int = 0
    rows_loaded: int = 0
    # FINAL rows the MERGE inserted or rewrote with different values (counted by their sync time).
    rows_changed: int = 0
    # Loaded rows that changed nothing in FINAL: the lookback's re-reads of rows FINAL holds as
    # they are, older versions of a row superseded in the same run, soft-deleted rows removed.
    rows_unchanged: int = 0
    files: int = 0
    files_loaded: int = 0
    missing: list[str] = Field(default_factory=list)
    refreshed_at: str | None = None
    # When a verifier call last read this table's load history: past ``Limits.loads_per_call``
    # the calls read the tables unread longest first.
    loads_read_at: str | None = None
    merge_query_id: str | None = None
    quarantined: int = 0
    # When the source snapshot behind FINAL was taken (the export's first chunk), and how old it
    # is: FINAL matches the source as of then, so the lag can never be negative or run ahead.
    source_time: str | None = None
    freshness_lag_seconds: float | None = None
    # Reconciling runs: the key snapshot's rows, and the FINAL rows removed because the source no
    # longer has their key (None: no key snapshot applied).
    key_rows: int | None = None
    rows_deleted: int | None = None
    # Schema drift the export saw (source columns the config's ``columns`` leave out).
    new_columns: list[NewColumn] = Field(default_factory=list, max_length=MAX_NEW_COLUMNS)


class RunSummary(_Message):
    """What the Report state needs: the failed tables and the input that reruns only them.

    In the run's ``verify.json`` it names every failed table; in the Verify state
    (``VerifyProgress``) at most ``MAX_FAILED_IN_STATE``, and ``rerun_input`` is None when it
    would be too long for the state and the cause: ``rerun_file`` (``rerun.json`` beside it,
    s3://bucket/key) holds it then. ``cause`` is bounded whatever the failed count.
    """

    failed_count: int
    failed: list[FailedTable]
    rerun_input: dict[str, Any] | None
    cause: str
    rerun_file: str | None = None


class VerifyOutput(_Message):
    """The verifier's report of a run: every table's verdict. Too big for the state (about 400 B a
    table), it is the run file ``verify.json``; the state carries ``VerifyProgress``."""

    run_id: str
    done: bool
    # The run's start (the execution's): tells this run's file from one of an earlier execution
    # that had the same run id (None: written by a version before issue 15's run file).
    run_started_at: str | None = None
    # When the verifier first checked this run: the load timeout counts from here, because the
    # exports of a big run can take longer than the timeout itself.
    verify_started_at: str
    tables: list[TableVerdict]
    pending: int
    failed: int
    summary: RunSummary | None = None  # set once done
    # Work was left for the next call only by a per-call cap (MERGE requests, ...) and no table
    # waits on Snowpipe: the state machine calls again without its Wait (issue 15).
    continue_now: bool = False
    # Where the tables are (the session's database, the configured schemas), so a reader can
    # name them in statements (the CLI's schema-drift DDL) without a Snowflake session.
    database: str | None = None
    staging_schema: str | None = None
    final_schema: str | None = None


# Failed tables the Verify state's summary names (the run file names all of them).
MAX_FAILED_IN_STATE = 20


class VerifyProgress(_Message):
    """The Verify state's output: counts, never a list that grows with the tables (issue 15). The
    verdicts are in the run file ``report`` (s3://bucket/key of ``VerifyOutput``); the next poll
    passes this back as ``progress`` and the verifier resumes from that file."""

    run_id: str
    done: bool
    verify_started_at: str
    tables: int  # tables verified (a table split into lanes counts once)
    succeeded: int  # MERGED or NOTHING_TO_DO
    pending: int
    failed: int  # FAILED verdicts (planner failures are in the summary's failed_count)
    report: str
    summary: RunSummary | None = None  # set once done, bounded: see RunSummary
    # The poll left work only because of its per-call caps and nothing waits on Snowpipe: the
    # state machine calls again without the Wait (VerifyAgainNow).
    continue_now: bool = False

    @field_validator("summary")
    @classmethod
    def _bounded(cls, value: RunSummary | None) -> RunSummary | None:
        if value is not None and len(value.failed) > MAX_FAILED_IN_STATE:
            raise ValueError(f"the state's summary names at most {MAX_FAILED_IN_STATE} failed tables")
        return value


class ExportRequest(_Message):
    """The exporter's input inside an export child execution (the Distributed Map of issue 15):
    the work item, and when the child started, so the table stops before the child's time is up
    and resumes in the next round. A bare ``WorkItem`` is still accepted: no deadline then."""

    item: WorkItem
    child_started_at: datetime
    # How long the child's chunk loops may run (template parameter ExportChildSeconds): an
    # EXPRESS execution ends at 300 s, and the last chunk and the child's answer need room.
    child_seconds: int = Field(240, ge=1, le=270)


class ResultWriterDetails(_Message):
    """Where a Distributed Map's ResultWriter put the Map Run's ``manifest.json``."""

    bucket: str = Field(alias="Bucket")
    key: str = Field(alias="Key")


class RoundRequest(_Message):
    """The AdvanceRound state's input: the run, the round that just ended and its Map Run's
    results (the export Map's ``ResultWriterDetails``)."""

    run_id: str = Field(min_length=1)
    round: int = Field(ge=0)
    results: ResultWriterDetails


class RoundOutput(_Message):
    """What the round step returns (``exporting.rounds.advance``): counts and keys, no lists."""

    run_id: str
    round: int
    unfinished: int
    settled: int
    failed: int
    next_manifest: str | None = None  # the next round's items.json; None when every table settled


class VerifyRequest(_Message):
    run_id: str = Field(min_length=1)
    started_at: datetime
    attempt: int = 0
    # The run's export results: in the request, or (``rounds``, issue 15's Distributed Map) in
    # the settled.json of each of the run's export rounds in S3, which the handler reads.
    tables: list[ExportResult | FailedExport] = Field(default_factory=list)
    rounds: int | None = Field(None, ge=0)
    # The number of tables that failed in the plan (the Plan state's ``failed``); their entries,
    # which the run's report names, are in the run's plan-failed.json, which the handler reads.
    plan_failed: int = Field(0, ge=0)
    # The previous poll's state (the Wait/Verify loop): the handler resumes from the run file it
    # names (``verifying.progress``) and sets ``previous``, which the rules read. A script may pass
    # ``previous`` itself; the state machine never does (it would grow with the tables).
    progress: VerifyProgress | None = None
    previous: VerifyOutput | None = None

    @model_validator(mode="after")
    def _one_source_of_results(self) -> VerifyRequest:
        if self.rounds is not None and self.tables:
            raise ValueError("give the export results as tables or as rounds, not both")
        return self


def parse_export_request(event: Any) -> ExportRequest | WorkItem:
    """The exporter's input: an ``ExportRequest`` (an export child's chunk loop) or a bare
    ``WorkItem`` (``sam local invoke``, scripts)."""
    if isinstance(event, dict) and "item" in event:
        return read_message(
            ExportRequest,
            event,
            heading="exporter input is not an export request",
            fix="the export child passes {item: <work item>, child_started_at: $$.Execution.StartTime}",
        )
    return parse_work_item(event)


def parse_round_request(event: Any) -> RoundRequest:
    """The round step's input."""
    return read_message(
        RoundRequest,
        event,
        heading="round step input is invalid",
        fix="pass {run_id, round, results: the export Map's ResultWriterDetails} from the state machine",
    )


def parse_work_item(event: Any) -> WorkItem:
    """The exporter's input."""
    return read_message(
        WorkItem,
        event,
        heading="exporter input is not a work item",
        fix="start the state machine with {} or {'tables': [...]}, not a hand-made exporter input",
    )


def parse_verify_request(event: Any) -> VerifyRequest:
    """The Verify state's input."""
    return read_message(
        VerifyRequest,
        event,
        heading="verifier input is invalid",
        fix="pass {run_id, started_at, attempt, rounds, plan_failed: <count>, progress} "
        "from the state machine",
    )
