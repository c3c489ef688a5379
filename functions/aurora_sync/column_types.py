"""Snowflake column types reduced to what decides whether a value fits, and which changes of a
column's type Snowflake makes in place (docs.snowflake.com, "ALTER TABLE … ALTER COLUMN").

Supported in place: a longer VARCHAR or BINARY, a NUMBER with more precision and the same
scale. Not supported: another type, a shorter VARCHAR or BINARY, another scale; a lower
precision only when every stored value fits, which the product never relies on (a narrowing is
reported, not applied).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .typemap import VARCHAR_MAX_BYTES

# Snowflake's names for one type family; INFORMATION_SCHEMA says TEXT where DDL says VARCHAR.
_FAMILIES = {
    "VARCHAR": "TEXT",
    "STRING": "TEXT",
    "TEXT": "TEXT",
    "CHAR": "TEXT",
    "CHARACTER": "TEXT",
    "NUMBER": "NUMBER",
    "DECIMAL": "NUMBER",
    "NUMERIC": "NUMBER",
    "INT": "NUMBER",
    "INTEGER": "NUMBER",
    "BIGINT": "NUMBER",
    "SMALLINT": "NUMBER",
    "FLOAT": "FLOAT",
    "DOUBLE": "FLOAT",
    "REAL": "FLOAT",
    "BINARY": "BINARY",
    "VARBINARY": "BINARY",
    # Semi-structured values travel as JSON text and load into any of the three alike; the
    # local emulator also reports an ARRAY column as VARIANT.
    "VARIANT": "SEMI-STRUCTURED",
    "ARRAY": "SEMI-STRUCTURED",
    "OBJECT": "SEMI-STRUCTURED",
}
# A VARCHAR declared without a length holds 16 MB (newer accounts may report more).
_MAX_TEXT = VARCHAR_MAX_BYTES
_MAX_BINARY = 8 * 1024 * 1024
_DECLARED = re.compile(r"^\s*([A-Z_]+)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$", re.I)


@dataclass(frozen=True)
class ColumnType:
    """A Snowflake column type, reduced to what decides whether values fit: the family, a text
    or binary length, a number's precision and scale."""

    family: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    spelled: str = ""  # how Snowflake or the type map wrote it, for messages

    def __str__(self) -> str:
        return self.spelled or self.family


def declared_type(text: str) -> ColumnType:
    """A type as DDL writes it (the type map's ``NUMBER(10,0)``, ``VARCHAR(36)``, ``ARRAY``...)."""
    match = _DECLARED.match(text)
    if match is None:
        return ColumnType(text.strip().upper(), spelled=text)
    name = match.group(1).upper()
    family = _FAMILIES.get(name, name)
    first = int(match.group(2)) if match.group(2) else None
    if family == "NUMBER":
        if name in ("INT", "INTEGER", "BIGINT", "SMALLINT"):
            return ColumnType(family, precision=38, scale=0, spelled=text)
        scale = int(match.group(3)) if match.group(3) else 0
        return ColumnType(family, precision=first if first is not None else 38, scale=scale, spelled=text)
    if family == "TEXT":
        return ColumnType(family, length=first or _MAX_TEXT, spelled=text)
    if family == "BINARY":
        return ColumnType(family, length=first or _MAX_BINARY, spelled=text)
    return ColumnType(family, spelled=text)  # timestamps keep their precision: not compared


def catalog_type(
    data_type: str, length: int | None = None, precision: int | None = None, scale: int | None = None
) -> ColumnType:
    """A column's type as INFORMATION_SCHEMA.COLUMNS describes it."""
    name = data_type.strip().upper()
    family = _FAMILIES.get(name, name)
    if family == "NUMBER":
        p, s = (38 if precision is None else int(precision)), (0 if scale is None else int(scale))
        return ColumnType(family, precision=p, scale=s, spelled=f"NUMBER({p},{s})")
    if family in ("TEXT", "BINARY"):
        default = _MAX_TEXT if family == "TEXT" else _MAX_BINARY
        size = default if length is None else int(length)
        spelled = "VARCHAR" if family == "TEXT" else "BINARY"
        return ColumnType(family, length=size, spelled=spelled if size >= default else f"{spelled}({size})")
    return ColumnType(family, spelled=name)


Change = Literal["same", "widen", "unsafe"]


def type_change(existing: ColumnType, wanted: ColumnType) -> tuple[Change, str]:
    """Whether a column of type ``existing`` must change to hold ``wanted``'s values, and how:
    ``same``; ``widen``, which ALTER TABLE … ALTER COLUMN … SET DATA TYPE does in place
    (docs.snowflake.com, "ALTER TABLE … ALTER COLUMN": a longer text or binary, a number with
    more precision and the same scale); or ``unsafe``, with the reason."""
    if existing.family != wanted.family:
        return "unsafe", f"Snowflake cannot change a {existing} column to {wanted} in place"
    if existing.family == "NUMBER":
        assert existing.precision is not None and wanted.precision is not None
        if existing.scale != wanted.scale:
            return "unsafe", "Snowflake cannot change the scale of a NUMBER column"
        if wanted.precision > existing.precision:
            return "widen", f"precision {existing.precision} to {wanted.precision}"
        if wanted.precision < existing.precision:
            return "unsafe", f"a narrowing (precision {existing.precision} to {wanted.precision})"
        return "same", ""
    if existing.family in ("TEXT", "BINARY"):
        assert existing.length is not None and wanted.length is not None
        if wanted.length > existing.length:
            return "widen", f"length {existing.length} to {wanted.length}"
        if wanted.length < existing.length:
            return "unsafe", f"a narrowing (length {existing.length} to {wanted.length})"
    return "same", ""
