"""A table's file layout: which source column each CSV field holds, in the order the pipe loads.

The pipe's COPY reads fixed positions (``$1..$n``): a file whose fields do not line up with
the pipe's column list loads the wrong values into the wrong columns, and Snowflake does not
notice (it ignores ERROR_ON_COLUMN_COUNT_MISMATCH for a COPY with a transformation). So the
planner, which makes the pipe's column list equal to what the exporter derives from the source
catalog before any export starts (``schema_evolution``), sends the exporter a **fingerprint**
of that layout: per column the Snowflake name, the source column (name and ``attnum``) and its
source type. The exporter derives the layout from the catalog it sees and writes a file only
when the fingerprints agree. A column added to the source after planning is simply left out (it
is appended by PostgreSQL, so the planned layout is a prefix of the new one); any other change
(a column dropped, renamed, retyped, or dropped and added again) makes it refuse, and the next
run adapts Snowflake first.

The same layout, recorded per run in the export ledger (``ledger``), tells the planner when the
values of a column in FINAL are incomplete: a column that no merged run exported (added to the
source, renamed, or dropped and added again) gets its values from a full re-export.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .column_types import declared_type, type_change
from .naming import snowflake_columns
from .source_catalog import SourceColumn
from .typemap import ColumnMapping

FINGERPRINT_CHARS = 12  # 48 bits of a SHA-256: per table, a changed layout never matches by chance
FINGERPRINT_PATTERN = rf"^[0-9a-f]{{{FINGERPRINT_CHARS}}}$"


@dataclass(frozen=True)
class LayoutColumn:
    """One CSV field: the Snowflake column it loads into and the source column it comes from."""

    name: str  # Snowflake
    source: str
    attnum: int
    source_type: str  # format_type() of the source column
    final_type: str  # FINAL's type from the type map

    def entry(self) -> list[Any]:
        return [self.name, self.source, self.attnum, self.source_type, self.final_type]

    @classmethod
    def from_entry(cls, entry: Sequence[Any]) -> LayoutColumn:
        name, source, attnum, source_type, final_type = entry
        return cls(str(name), str(source), int(attnum), str(source_type), str(final_type))


def layout_of(
    columns: Sequence[SourceColumn], mappings: Sequence[ColumnMapping], *, table: str
) -> list[LayoutColumn]:
    """The layout of an export of ``columns`` (CSV order) with their type-map ``mappings``."""
    names = snowflake_columns([c.name for c in columns], table=table)
    return [
        LayoutColumn(name, column.name, column.attnum, column.pg_type.formatted, mapping.final_type)
        for name, column, mapping in zip(names, columns, mappings, strict=True)
    ]


def fingerprint(layout: Sequence[LayoutColumn]) -> str:
    """What an export in ``layout`` writes, field by field, reduced to a short hex digest."""
    described = json.dumps(
        [[c.name, c.source, c.attnum, c.source_type] for c in layout], separators=(",", ":")
    )
    return hashlib.sha256(described.encode()).hexdigest()[:FINGERPRINT_CHARS]


def planned_prefix(layout: Sequence[LayoutColumn], planned: str) -> int | None:
    """How many leading columns of ``layout`` make the planned layout (all of them when nothing
    changed; fewer when columns were added to the source since), or None when no prefix does:
    a planned column is gone, renamed or retyped."""
    for count in range(len(layout), 0, -1):
        if fingerprint(layout[:count]) == planned:
            return count
    return None


def dumps(layout: Sequence[LayoutColumn]) -> str:
    return json.dumps([c.entry() for c in layout], separators=(",", ":"))


def loads(text: str | None) -> list[LayoutColumn] | None:
    """A layout as the ledger stores it; None for a missing or unreadable one (unknown)."""
    if not text:
        return None
    try:
        return [LayoutColumn.from_entry(entry) for entry in json.loads(text)]
    except (ValueError, TypeError):
        return None


def covers(previous: LayoutColumn, current: LayoutColumn) -> bool:
    """FINAL's values written under ``previous`` are still this column's values: the same source
    column (name and attnum) loading into a type that only widened, if at all."""
    if (previous.name, previous.attnum) != (current.name, current.attnum):
        return False
    change, _ = type_change(declared_type(previous.final_type), declared_type(current.final_type))
    return change != "unsafe"


def incomplete_columns(
    current: Sequence[LayoutColumn], previous: Sequence[LayoutColumn] | None
) -> list[LayoutColumn]:
    """Columns of ``current`` whose values FINAL does not hold for every row: no merged run with
    the ``previous`` layout exported them. Unknown ``previous`` (runs recorded before layouts
    were) counts as complete: a guess would re-export every table once."""
    if previous is None:
        return []
    by_name = {c.name: c for c in previous}
    return [c for c in current if c.name not in by_name or not covers(by_name[c.name], c)]
