"""The messages that travel between the states: planner → exporter (work items) → verifier.

They cross Step Functions state payloads, which are visible in the execution history and
limited to 256 KB: they carry identities, windows and positions, never row data or secrets.
Every model forbids unknown keys so a typo in a hand-written rerun input fails loudly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

WindowSource = Literal["final", "initial_watermark", "since", "full"]
ExportStatus = Literal["EXPORTED", "EMPTY", "MORE"]
# How a table's changed rows are found (config ``mode``): by a cursor column, by the row
# versions' transaction ids (``xmin``), or not at all (``full``: every row, every run).
SyncMode = Literal["cursor", "xmin", "full"]
# The directory of key snapshots in the bucket, beside the tables' prefixes (table names start
# with a letter, so no table's prefix can be this one); no pipe loads it.
KEY_SNAPSHOT_PREFIX = "_aurora_sync_keys"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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
    walks the primary key alone (modes xmin and full, which have no cursor).
    """

    phase: Literal["null_cursor", "cursor", "key"] = "cursor"
    cursor: str | None = None
    key: list[str] = Field(default_factory=list)
    chunk: int = Field(0, ge=0)
    # Totals of the chunks already exported in this run, so the last call reports the whole
    # table (the verifier reconciles every file) without the state machine adding arrays.
    rows: int = 0
    bytes: int = 0
    files: int = 0
    keys: list[str] = Field(default_factory=list)
    # The first chunk's snapshot: the run's horizon and samples (later chunks only add files).
    snapshot: SourceSnapshot | None = None
    quarantined: int = 0
    quarantine_example: str | None = None
    # The key snapshot the first chunk exported (reconciling runs only), carried to the result.
    key_files: list[str] = Field(default_factory=list)
    key_rows: int = 0
    # The first chunk's schema drift, carried to the last chunk's result.
    new_columns: list[NewColumn] = Field(default_factory=list, max_length=MAX_NEW_COLUMNS)


class WorkItem(_Message):
    """One table's export order, emitted by the planner and looped by the Map while MORE."""

    run_id: str = Field(min_length=1, max_length=80)
    table: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    source: SourceTable
    target: str | None = None  # Snowflake base name when it is not TABLE upper-cased
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

    @model_validator(mode="after")
    def _cursor_fits_mode(self) -> WorkItem:
        if (self.mode == "cursor") != (self.cursor is not None):
            raise ValueError(f"mode {self.mode!r} {'needs' if self.mode == 'cursor' else 'takes no'} cursor")
        return self


class ExportResult(_Message):
    """What the exporter did for a table in this run, all chunks so far included.

    When ``status`` is MORE, ``next`` is the work item for the following chunk: the state
    machine calls the exporter again with it until the status is EXPORTED or EMPTY.
    """

    table: str
    run_id: str
    status: ExportStatus
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
    # Source columns the config's ``columns`` leave out (schema drift), as the first chunk saw them.
    new_columns: list[NewColumn] = Field(default_factory=list, max_length=MAX_NEW_COLUMNS)
