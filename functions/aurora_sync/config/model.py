"""The table config model: what one table's config may say, and the checks on each field.

A config is a JSON object validated by ``TableConfig`` (strict: no unknown keys, no type
coercion), whatever store it comes from (one SSM parameter per table, or an entry of a
``--config`` file). The results of reading a store are ``LoadedTable`` (valid) or
``InvalidTable`` (the message naming the parameter, the field and the fix): one broken entry
never stops the others. The validators' messages say what is wrong and what to write instead;
the prose for pydantic's own errors is in ``prose``, the parsing of whole stores in ``parsing``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..errors import ConfigError

TABLE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Snowflake resolves unquoted identifiers case-insensitively; STAGING/FINAL names derive from it.
SNOWFLAKE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$"
# PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1), so two long names could
# end up naming the same column.
PG_IDENTIFIER_MAX_BYTES = 63


def _check_pg_identifier(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    size = len(value.encode("utf-8"))
    if size > PG_IDENTIFIER_MAX_BYTES:
        raise ValueError(
            f"is {size} bytes long; PostgreSQL identifiers are at most {PG_IDENTIFIER_MAX_BYTES} bytes "
            "(longer names are truncated silently), use the name exactly as in the catalog"
        )
    if '"' in value:
        raise ValueError(
            "contains a double quote; write the catalog name without quotes "
            "(it is quoted for you, so spaces and mixed case are fine)"
        )
    for ch in value:
        if unicodedata.category(ch) == "Cc":
            what = "a NUL character" if ch == "\x00" else f"the control character U+{ord(ch):04X}"
            raise ValueError(f"contains {what}; PostgreSQL identifiers cannot hold it")
    return value


PgIdentifier = Annotated[str, AfterValidator(_check_pg_identifier)]


def check_cursor_value(value: str | int | None) -> str | int | None:
    """A value to compare a cursor with: ISO-8601 text (timestamp or date) or an integer. Shared
    by ``initial_watermark`` and a rerun's ``since``, so both accept and refuse the same values."""
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                'must be an ISO-8601 timestamp or date, e.g. "2024-01-01T00:00:00+00:00", '
                "or an integer for a numeric cursor"
            ) from None
    return value


class TableConfig(BaseModel):
    """The JSON value of one table's SSM parameter."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, validate_by_name=False, validate_by_alias=True
    )

    schema_name: PgIdentifier = Field(
        "public",
        alias="schema",
        description="PostgreSQL schema of the source table, exactly as in the catalog (no case folding).",
        examples=["public"],
    )
    table: PgIdentifier = Field(
        ...,
        description="PostgreSQL table name, exactly as in the catalog (no case folding).",
        examples=["orders"],
    )
    primary_key: list[PgIdentifier] = Field(
        ...,
        min_length=1,
        description="Columns that identify a row; the MERGE deduplicates on them. Non-empty, unique.",
        examples=[["id"], ["tenant_id", "order_id"]],
    )
    primary_key_not_enforced: bool = Field(
        False,
        description="true confirms a primary_key that PostgreSQL does not enforce as unique (no primary key "
        "or valid, non-partial unique index has all its columns in it; any key of a view): "
        "`config validate` refuses such a key otherwise, because two source rows sharing it become one "
        "row in FINAL. Set it only when the key is unique by other means.",
        examples=[True],
    )
    mode: Literal["cursor", "xmin", "full"] = Field(
        "cursor",
        description="How a run finds changed rows: 'cursor' reads rows whose cursor column is at or past "
        "the last merged run's window start; 'xmin' reads rows written by transactions newer than the "
        "last merged run's snapshot (no cursor column needed; every run scans the table); 'full' "
        "exports the whole table every run and makes FINAL equal it, deleted rows included.",
        examples=["cursor", "xmin", "full"],
    )
    cursor: PgIdentifier | None = Field(
        "updated_at",
        description="Column whose value grows on every insert/update; the export reads rows with "
        "cursor > watermark - lookback_seconds. Only for mode 'cursor': absent or null otherwise.",
        examples=["updated_at"],
    )
    columns: list[PgIdentifier] | None = Field(
        None,
        description="Columns to replicate, in order; null replicates every catalog column. When given it "
        "must contain the primary key and cursor columns (and the soft-delete column), each once.",
        examples=[None, ["id", "customer_id", "total", "updated_at"]],
    )
    soft_delete_column: PgIdentifier | None = Field(
        None,
        description="Boolean or timestamp column marking a row as deleted in the source; null when the "
        "table has none (hard deletes are then not propagated).",
        examples=[None, "deleted_at"],
    )
    soft_delete_mode: Literal["delete", "flag"] = Field(
        "delete",
        description="What FINAL does with soft-deleted rows: 'delete' removes them, 'flag' keeps them "
        "with the column set. Only valid together with soft_delete_column.",
        examples=["delete", "flag"],
    )
    lookback_seconds: int = Field(
        900,
        ge=0,
        description="Overlap re-read behind the watermark, so rows of transactions that commit after "
        "later rows were exported are still picked up (now() is the transaction start).",
        examples=[900],
    )
    enabled: bool = Field(
        True,
        description="false skips the table on scheduled runs without deleting its config.",
        examples=[True],
    )
    initial_watermark: Annotated[str | int | None, AfterValidator(check_cursor_value)] = Field(
        None,
        description="Cursor value to start from while FINAL is empty: an ISO-8601 timestamp/date for "
        "timestamp cursors, an integer for numeric ones; null exports the whole table.",
        examples=[None, "2024-01-01T00:00:00+00:00", 0],
    )
    max_rows_per_chunk: int = Field(
        1_000_000,
        ge=1000,
        description="Rows per export chunk; about 100-250 MB of CSV, the file size Snowpipe recommends.",
        examples=[1_000_000],
    )
    rows_per_lane: int = Field(
        10_000_000,
        ge=1000,
        description="A full or initial export of a table PostgreSQL estimates at more rows than this (or an "
        "incremental window it estimates so) is split into key ranges ('lanes') of about this many rows, "
        "exported concurrently within the state machine's MaxConcurrency; each lane is chunked by "
        "max_rows_per_chunk. Bounds come from the catalog (pg_stats, or a sample of keys). Never for "
        "mode 'full' or a run that reconciles hard deletes.",
        examples=[10_000_000],
    )
    max_lanes: int = Field(
        8,
        ge=1,
        le=64,
        description="The most lanes one table is split into; 1 never splits it.",
        examples=[8],
    )
    hard_deletes: Literal["ignore", "reconcile"] = Field(
        "ignore",
        description="'reconcile' also exports the primary keys on a run (every reconcile_every-th run) and "
        "removes FINAL rows whose key the source no longer has; 'ignore' never removes rows. For modes "
        "'cursor' and 'xmin' ('full' always removes them).",
        examples=["ignore", "reconcile"],
    )
    reconcile_every: int = Field(
        1,
        ge=1,
        description="With hard_deletes 'reconcile': export the keys on every N-th merged run only (1: every "
        "run), to bound the cost of reading every key of a large table.",
        examples=[1, 24],
    )
    target: str | None = Field(
        None,
        pattern=SNOWFLAKE_NAME_PATTERN,
        description="Base name of the Snowflake objects (STAGING.<target>, FINAL.<target>, "
        "<target>_STREAM, <target>_PIPE, <target>_MERGE, <target>_RETENTION), a Snowflake unquoted "
        "identifier; null uses the parameter name upper-cased.",
        examples=[None, "ORDERS"],
    )

    @field_validator("primary_key")
    @classmethod
    def _unique_primary_key(cls, value: list[str]) -> list[str]:
        repeated = duplicates(value)
        if repeated:
            raise ValueError(f"lists {quoted_names(repeated)} more than once; name each column once")
        return value

    @field_validator("cursor")
    @classmethod
    def _cursor_fits_mode(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Runs only for a cursor present in the input; an absent one is dropped for xmin/full below.
        mode = info.data.get("mode", "cursor")
        if mode != "cursor" and value is not None:
            raise ValueError(
                f"must be absent or null with mode {mode!r}, which needs no cursor column; remove it, "
                "or use mode 'cursor'"
            )
        if mode == "cursor" and value is None:
            raise ValueError(
                "must name a column with mode 'cursor' (e.g. \"updated_at\"); for a table without one "
                "use mode 'xmin' or 'full'"
            )
        return value

    @field_validator("lookback_seconds", "initial_watermark")
    @classmethod
    def _cursor_mode_only(cls, value: Any, info: ValidationInfo) -> Any:
        mode = info.data.get("mode", "cursor")
        if mode != "cursor":
            raise ValueError(f"only applies to mode 'cursor' (this table has mode {mode!r}); remove it")
        return value

    @field_validator("hard_deletes")
    @classmethod
    def _hard_deletes_fit_mode(cls, value: str, info: ValidationInfo) -> str:
        if value == "reconcile" and info.data.get("mode") == "full":
            raise ValueError(
                "is implied by mode 'full', which removes deleted rows on every run; remove hard_deletes"
            )
        return value

    @field_validator("reconcile_every")
    @classmethod
    def _reconcile_every_needs_reconcile(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("hard_deletes") != "reconcile":
            raise ValueError("is only valid with hard_deletes 'reconcile'; set it or remove reconcile_every")
        return value

    @model_validator(mode="after")
    def _no_cursor_outside_cursor_mode(self) -> TableConfig:
        # The default cursor ("updated_at") means nothing for xmin and full tables.
        if self.mode != "cursor" and self.cursor is not None:
            object.__setattr__(self, "cursor", None)
        return self

    @field_validator("columns")
    @classmethod
    def _columns_cover_keys(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return value
        repeated = duplicates(value)
        if repeated:
            raise ValueError(f"lists {quoted_names(repeated)} more than once; name each column once")
        cursor = info.data.get("cursor") if info.data.get("mode", "cursor") == "cursor" else None
        required = [*info.data.get("primary_key", []), cursor]
        missing = [col for col in required if col is not None and col not in value]
        if missing:
            raise ValueError(
                f"misses {quoted_names(missing)}: the primary key and cursor columns must be replicated; "
                "add them or use null for all columns"
            )
        return value

    @field_validator("soft_delete_column")
    @classmethod
    def _soft_delete_column_replicated(cls, value: str | None, info: ValidationInfo) -> str | None:
        columns = info.data.get("columns")
        if value is not None and columns is not None and value not in columns:
            raise ValueError(f"{quoted_names([value])} is not in 'columns'; add it there")
        return value

    @field_validator("soft_delete_mode")
    @classmethod
    def _soft_delete_mode_needs_column(cls, value: str, info: ValidationInfo) -> str:
        # Field validators run only for values present in the input, so this sees explicit modes.
        if info.data.get("soft_delete_column") is None:
            raise ValueError(
                "is only valid with 'soft_delete_column'; set the column that marks deleted rows "
                "or remove soft_delete_mode"
            )
        return value

    def target_name(self, name: str) -> str:
        """Snowflake base name: ``target`` or the table's NAME upper-cased."""
        return self.target or default_target(name)

    def dump_json(self) -> str:
        """Canonical JSON as ``config push`` stores it: sorted keys, every field that applies.

        Fields a value would be rejected for are left out: ``soft_delete_mode`` without a
        soft-delete column, the cursor's fields outside mode 'cursor', ``reconcile_every`` without
        reconciliation; and ``primary_key_not_enforced`` unless it is true.
        """
        exclude = {"soft_delete_mode"} if self.soft_delete_column is None else set()
        if not self.primary_key_not_enforced:
            # Left out at its default, so a planner deployed before the field existed still
            # accepts what a newer CLI pushes.
            exclude.add("primary_key_not_enforced")
        if self.mode != "cursor":
            exclude |= {"cursor", "lookback_seconds", "initial_watermark"}
        if self.hard_deletes != "reconcile":
            exclude.add("reconcile_every")
        document = self.model_dump(mode="json", by_alias=True, exclude=exclude)
        return json.dumps(document, sort_keys=True, separators=(",", ":"))


def default_target(name: str) -> str:
    """The Snowflake base name of a table whose config sets no ``target``."""
    return name.upper()


@dataclass(frozen=True)
class LoadedTable:
    """A table whose parameter validated."""

    name: str
    parameter: str
    config: TableConfig

    @property
    def target(self) -> str:
        return self.config.target_name(self.name)


@dataclass(frozen=True)
class InvalidTable:
    """A table whose parameter did not validate; the planner fails just this table."""

    name: str
    parameter: str
    message: str

    def error(self) -> ConfigError:
        return ConfigError(self.message)


TableConfigResult = LoadedTable | InvalidTable


def duplicates(values: Iterable[Any]) -> list[Any]:
    """The values that occur more than once, each once, in order of their second occurrence."""
    seen: set[Any] = set()
    dup: list[Any] = []
    for value in values:
        if value in seen and value not in dup:
            dup.append(value)
        seen.add(value)
    return dup


def quoted_names(values: Iterable[str]) -> str:
    return ", ".join(json.dumps(v) for v in values)
