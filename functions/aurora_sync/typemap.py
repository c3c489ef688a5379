"""The one place that decides types: PostgreSQL column → export expression → Snowflake.

For every source column this module gives
  (a) the expression the export SELECT uses, so the CSV Aurora writes loads into Snowflake exactly;
  (b) the Snowflake column types of STAGING (what Snowpipe loads) and FINAL (what users query);
  (c) the conversion STAGING → FINAL used by the MERGE task;
  (d) a predicate that is true when a value cannot be held by the Snowflake type.

Values Snowflake cannot hold (numeric NaN/±Infinity, digits beyond NUMBER(38), dates outside years
1-9999, ±infinity timestamps, TIME 24:00:00, strings over 16 MB, binaries over 8 MB) are never
silently changed: the typed column gets NULL and the exact PostgreSQL text of the value is kept,
per row, in the JSON column ``UNREPRESENTABLE_COLUMN`` ({"column": "text"}), so a NULL caused by
the type system can always be told apart from a NULL in the source.

NULL and the empty string stay distinct end to end: PostgreSQL's CSV writes NULL as an unquoted
empty field and '' as ``""``; every expression here maps NULL to NULL (never to '').
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from psycopg2 import sql

# The extra trailing CSV column / STAGING / FINAL column described in the module docstring.
UNREPRESENTABLE_COLUMN: Final = "_AURORA_SYNC_UNREPRESENTABLE"

# Snowflake limits (docs.snowflake.com, "Data types"): VARCHAR 16 MB, BINARY 8 MB, NUMBER 38 digits.
VARCHAR_MAX_BYTES: Final = 16 * 1024 * 1024
BINARY_MAX_BYTES: Final = 8 * 1024 * 1024
NUMBER_MAX_PRECISION: Final = 38
# Unconstrained numeric has no declared scale; 9 decimals keeps money, rates and most measures exact
# while leaving 29 integer digits. Values needing more are reported as unrepresentable, not rounded.
UNCONSTRAINED_NUMERIC_SCALE: Final = 9

_NUMERIC_TYPMOD = re.compile(r"^numeric\((\d+),(-?\d+)\)$")
_VARCHAR_TYPMOD = re.compile(r"^character varying\((\d+)\)$")

# Years Snowflake DATE/TIMESTAMP accept (docs recommend 1582-9999; 1-9999 load and round-trip).
_MIN_DATE = sql.SQL("'0001-01-01'")
_MAX_DATE_EXCLUSIVE = sql.SQL("'10000-01-01'")


@dataclass(frozen=True)
class PgType:
    """A column's type as the catalog describes it (domains already resolved to their base type)."""

    name: str  # pg_type.typname, e.g. "int4", "numeric", "timestamptz", "_int4" for int4[]
    formatted: str  # format_type(oid, typmod), e.g. "numeric(12,2)", "integer[]"
    category: str  # pg_type.typcategory: "A" array, "E" enum, "N" numeric, ...
    element: PgType | None = None  # element type of an array


@dataclass(frozen=True)
class ColumnMapping:
    column: str
    source_type: str
    staging_type: str
    final_type: str
    export: sql.Composable  # value written to the CSV (NULL when unrepresentable)
    unrepresentable: sql.Composable | None  # true when the value cannot be held; None = never
    final_template: str  # Snowflake SQL with {col} = the quoted STAGING column reference
    note: str

    def final_expression(self, staging_reference: str) -> str:
        return self.final_template.format(col=staging_reference)


def _mapping(
    column: str,
    pg_type: PgType,
    snowflake_type: str,
    export: sql.Composable,
    *,
    unrepresentable: sql.Composable | None = None,
    staging_type: str | None = None,
    final_template: str = "{col}",
    note: str,
) -> ColumnMapping:
    ident = sql.Identifier(column)
    if unrepresentable is not None:
        # NULL-safe: NULL is representable; the typed value becomes NULL only when the check holds.
        guarded = sql.SQL("({ident} IS NOT NULL AND ({check}))").format(ident=ident, check=unrepresentable)
        export = sql.SQL("CASE WHEN {guard} THEN NULL ELSE {export} END").format(guard=guarded, export=export)
        unrepresentable = guarded
    return ColumnMapping(
        column=column,
        source_type=pg_type.formatted,
        staging_type=staging_type or snowflake_type,
        final_type=snowflake_type,
        export=export,
        unrepresentable=unrepresentable,
        final_template=final_template,
        note=note,
    )


def _numeric(column: str, pg_type: PgType) -> ColumnMapping:
    ident = sql.Identifier(column)
    special = sql.SQL("{c} IN ('NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric)").format(c=ident)
    match = _NUMERIC_TYPMOD.match(pg_type.formatted)
    if (
        match
        and int(match.group(1)) <= NUMBER_MAX_PRECISION
        and 0 <= int(match.group(2)) <= int(match.group(1))
    ):
        precision, scale = int(match.group(1)), int(match.group(2))
        return _mapping(
            column,
            pg_type,
            f"NUMBER({precision},{scale})",
            sql.SQL("{c}::text").format(c=ident),
            unrepresentable=special,
            note="exact; NaN/±Infinity are unrepresentable",
        )
    # Unconstrained, wider than 38 digits, or a negative/over-precision scale (PostgreSQL 15 allows both).
    scale = UNCONSTRAINED_NUMERIC_SCALE
    if match:
        scale = max(0, min(int(match.group(2)), NUMBER_MAX_PRECISION - 1))
    integer_digits = NUMBER_MAX_PRECISION - scale
    check = sql.SQL("{special} OR {c} <> round({c}, {scale}) OR abs({c}) >= 10::numeric ^ {digits}").format(
        special=special, c=ident, scale=sql.Literal(scale), digits=sql.Literal(integer_digits)
    )
    return _mapping(
        column,
        pg_type,
        f"NUMBER({NUMBER_MAX_PRECISION},{scale})",
        sql.SQL("{c}::text").format(c=ident),
        unrepresentable=check,
        note=f"NUMBER(38,{scale}); more digits, NaN or ±Infinity are unrepresentable (never rounded)",
    )


def _float(column: str, pg_type: PgType) -> ColumnMapping:
    ident = sql.Identifier(column)
    # PostgreSQL (extra_float_digits=1, the default) prints the shortest text that round-trips;
    # Snowflake FLOAT holds NaN and ±inf but spells infinity 'inf'.
    export = sql.SQL(
        "CASE {c} WHEN 'Infinity' THEN 'inf' WHEN '-Infinity' THEN '-inf' ELSE {c}::text END"
    ).format(c=ident)
    return _mapping(column, pg_type, "FLOAT", export, note="exact (shortest round-trip text); NaN, ±inf kept")


def _text_like(column: str, pg_type: PgType, snowflake_type: str, note: str) -> ColumnMapping:
    ident = sql.Identifier(column)
    # char(n) is written as stored (padded): a cast to text would strip the padding.
    export = ident if pg_type.name == "bpchar" else sql.SQL("{c}::text").format(c=ident)
    return _mapping(
        column,
        pg_type,
        snowflake_type,
        export,
        unrepresentable=sql.SQL("octet_length({c}::text) > {max}").format(
            c=ident, max=sql.Literal(VARCHAR_MAX_BYTES)
        ),
        note=note,
    )


def _date_range_check(ident: sql.Identifier, cast: str) -> sql.Composable:
    return sql.SQL("NOT isfinite({c}) OR {c} < {lo}::{cast} OR {c} >= {hi}::{cast}").format(
        c=ident, lo=_MIN_DATE, hi=_MAX_DATE_EXCLUSIVE, cast=sql.SQL(cast)
    )


def _temporal(column: str, pg_type: PgType) -> ColumnMapping:
    ident = sql.Identifier(column)
    if pg_type.name == "date":
        return _mapping(
            column,
            pg_type,
            "DATE",
            sql.SQL("to_char({c}, 'YYYY-MM-DD')").format(c=ident),
            unrepresentable=_date_range_check(ident, "date"),
            note="exact for years 1-9999; ±infinity and other years are unrepresentable",
        )
    if pg_type.name == "timestamp":
        return _mapping(
            column,
            pg_type,
            "TIMESTAMP_NTZ(6)",
            sql.SQL("""to_char({c}, 'YYYY-MM-DD"T"HH24:MI:SS.US')""").format(c=ident),
            unrepresentable=_date_range_check(ident, "timestamp"),
            note="wall clock with microseconds; ±infinity and years outside 1-9999 are unrepresentable",
        )
    if pg_type.name == "timestamptz":
        # Written in UTC with an explicit Z so the value never depends on a session time zone.
        return _mapping(
            column,
            pg_type,
            "TIMESTAMP_TZ(6)",
            sql.SQL("""to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""").format(c=ident),
            unrepresentable=_date_range_check(ident, "timestamptz"),
            note="UTC ISO-8601 with microseconds; ±infinity and years outside 1-9999 are unrepresentable",
        )
    # time without time zone
    return _mapping(
        column,
        pg_type,
        "TIME(6)",
        sql.SQL("to_char({c}, 'HH24:MI:SS.US')").format(c=ident),
        unrepresentable=sql.SQL("{c} = '24:00:00'::time").format(c=ident),
        note="microseconds; 24:00:00 is unrepresentable",
    )


def map_column(column: str, pg_type: PgType) -> ColumnMapping:
    """The mapping for one source column. Unknown types fall back to their text form in VARCHAR."""
    ident = sql.Identifier(column)
    name = pg_type.name
    if pg_type.category == "A":
        # Arrays of any type become JSON arrays (nested for multi-dimensional arrays) in a VARIANT
        # ARRAY; to_jsonb renders timestamps as ISO-8601 strings and numbers as JSON numbers.
        return _mapping(
            column,
            pg_type,
            "ARRAY",
            sql.SQL("to_jsonb({c})::text").format(c=ident),
            staging_type="VARCHAR",
            final_template="PARSE_JSON({col})::ARRAY",
            unrepresentable=sql.SQL("octet_length(to_jsonb({c})::text) > {max}").format(
                c=ident, max=sql.Literal(VARCHAR_MAX_BYTES)
            ),
            note="JSON array (elements as to_jsonb renders them)",
        )
    if name in ("int2", "int4", "int8"):
        precision = {"int2": 5, "int4": 10, "int8": 19}[name]
        return _mapping(
            column, pg_type, f"NUMBER({precision},0)", sql.SQL("{c}::text").format(c=ident), note="exact"
        )
    if name == "numeric":
        return _numeric(column, pg_type)
    if name in ("float4", "float8"):
        return _float(column, pg_type)
    if name == "bool":
        # 'true'/'false' are boolean literals Snowflake accepts.
        return _mapping(column, pg_type, "BOOLEAN", sql.SQL("{c}::text").format(c=ident), note="exact")
    if name in ("date", "timestamp", "timestamptz", "time"):
        return _temporal(column, pg_type)
    if name in ("json", "jsonb"):
        return _mapping(
            column,
            pg_type,
            "VARIANT",
            sql.SQL("{c}::text").format(c=ident),
            staging_type="VARCHAR",
            final_template="PARSE_JSON({col})",
            unrepresentable=sql.SQL("octet_length({c}::text) > {max}").format(
                c=ident, max=sql.Literal(VARCHAR_MAX_BYTES)
            ),
            note="VARIANT via PARSE_JSON (key order and whitespace are Snowflake's)",
        )
    if name == "bytea":
        return _mapping(
            column,
            pg_type,
            "BINARY",
            sql.SQL("encode({c}, 'hex')").format(c=ident),
            unrepresentable=sql.SQL("octet_length({c}) > {max}").format(
                c=ident, max=sql.Literal(BINARY_MAX_BYTES)
            ),
            note="hex (Snowflake's default BINARY_INPUT_FORMAT); over 8 MB is unrepresentable",
        )
    if name == "uuid":
        return _mapping(
            column, pg_type, "VARCHAR(36)", sql.SQL("{c}::text").format(c=ident), note="canonical text"
        )
    if name == "varchar":
        match = _VARCHAR_TYPMOD.match(pg_type.formatted)
        snowflake_type = f"VARCHAR({match.group(1)})" if match else "VARCHAR"
        return _text_like(column, pg_type, snowflake_type, "exact")
    if name in ("text", "bpchar", "name", "citext"):
        return _text_like(column, pg_type, "VARCHAR", "exact (char(n) keeps its padding)")
    if pg_type.category == "E":
        return _text_like(column, pg_type, "VARCHAR", "enum label")
    if name in ("inet", "cidr", "macaddr", "macaddr8"):
        return _text_like(column, pg_type, "VARCHAR", "PostgreSQL text form (inet keeps its mask)")
    if name == "interval":
        # The exporter's session sets IntervalStyle=iso_8601, so this is an ISO-8601 duration.
        return _text_like(
            column, pg_type, "VARCHAR", "ISO-8601 duration text (Snowflake has no interval type)"
        )
    return _text_like(
        column, pg_type, "VARCHAR", f"{pg_type.formatted}: PostgreSQL text form (no native mapping)"
    )


# How unrepresentable values are kept in UNREPRESENTABLE_COLUMN (see unrepresentable_expression).
# A value's exact text is kept when its JSON string (quotes and escapes included) takes at most
# this many bytes; a larger one is described instead. With PostgreSQL's 1600 columns at most, each
# entry then stays under 9 KB (key included) and the whole cell under 16 MB (VARCHAR_MAX_BYTES).
UNREPRESENTABLE_INLINE_MAX_BYTES: Final = 8192
UNREPRESENTABLE_TOO_LARGE: Final = "too large"


def unrepresentable_expression(mappings: list[ColumnMapping]) -> sql.Composable:
    """The extra CSV column: a JSON object describing every unrepresentable value of the row, or NULL.

    Per column whose value Snowflake cannot hold (the typed column gets NULL):
      * its exact PostgreSQL text (``col::text``) as a JSON string, e.g. ``{"price": "NaN"}``, when
        that string takes at most ``UNREPRESENTABLE_INLINE_MAX_BYTES`` (8 KB): NaN, ±Infinity,
        out-of-range dates and times, numerics of up to about 8,000 digits;
      * otherwise a descriptor, ``{"body": {"unrepresentable": "too large", "bytes": 16777217,
        "md5": "<hex>"}}``: ``bytes`` is ``octet_length(col::text)`` and ``md5`` is
        ``md5(col::text)``, so the source row can be found and checked. Values unrepresentable
        because of their size (text over 16 MB, json/arrays over 16 MB, bytea over 8 MB) always
        take this form: their text cannot fit a Snowflake VARCHAR, so neither can a cell holding it.
    The cell therefore stays below Snowflake's 16 MB VARCHAR limit whatever the row holds.

    jsonb_build_object takes at most 100 arguments, so wide tables concatenate chunks of 40 columns.
    """
    checked = [(m.column, m.unrepresentable) for m in mappings if m.unrepresentable is not None]
    if not checked:
        return sql.SQL("NULL::text")
    chunks = []
    for start in range(0, len(checked), 40):
        pairs = [
            sql.SQL("{name}, CASE WHEN {check} THEN {kept} END").format(
                name=sql.Literal(column), check=check, kept=_kept(sql.Identifier(column))
            )
            for column, check in checked[start : start + 40]
        ]
        chunks.append(sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(pairs)))
    combined = sql.SQL(" || ").join(chunks)
    return sql.SQL("NULLIF(jsonb_strip_nulls({combined}), '{{}}'::jsonb)::text").format(combined=combined)


def _kept(ident: sql.Identifier) -> sql.Composable:
    """One unrepresentable value in the JSON cell: its text, or a descriptor when that is too large.

    The raw length is tested first (CASE branches run in order), so a huge value is never turned
    into a jsonb string: that is slow, and fails outright beyond jsonb's 256 MB string limit.
    """
    text = sql.SQL("{c}::text").format(c=ident)
    descriptor = sql.SQL(
        "jsonb_build_object('unrepresentable', {reason}, 'bytes', octet_length({text}), 'md5', md5({text}))"
    ).format(text=text, reason=sql.Literal(UNREPRESENTABLE_TOO_LARGE))
    # Not OR: PostgreSQL does not promise to evaluate OR's operands in order; CASE does.
    return sql.SQL(
        "CASE WHEN octet_length({text}) > {inline} THEN {descriptor} "
        "WHEN octet_length(to_jsonb({text})::text) > {inline} THEN {descriptor} "
        "ELSE to_jsonb({text}) END"
    ).format(text=text, inline=sql.Literal(UNREPRESENTABLE_INLINE_MAX_BYTES), descriptor=descriptor)
