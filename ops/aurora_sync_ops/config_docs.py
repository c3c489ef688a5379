"""Renders docs/configuration.md from the table-config model, so the reference cannot drift.

Regenerate with ``python -m aurora_sync_ops.config_docs > docs/configuration.md``; a test fails
when the committed file differs.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from aurora_sync.config import DEFAULT_CONFIG_PATH, TableConfig
from aurora_sync.sync_modes import FULL_WARN_ROWS, XMIN_WARN_ROWS

EXAMPLE = {
    "schema": "public",
    "table": "orders",
    "primary_key": ["id"],
    "cursor": "updated_at",
    "columns": None,
    "soft_delete_column": "deleted_at",
    "soft_delete_mode": "delete",
    "lookback_seconds": 900,
    "enabled": True,
    "initial_watermark": None,
    "max_rows_per_chunk": 1000000,
    "target": None,
}


def _json_type(schema: dict[str, Any]) -> str:
    """A JSON-schema fragment in words: "string", "list of strings", "integer or null", ..."""
    if "anyOf" in schema:
        return " or ".join(_json_type(option) for option in schema["anyOf"])
    if "enum" in schema:
        return " or ".join(json.dumps(value) for value in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_json_type(schema.get('items', {}))}s"
    return str(kind)


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        return "required"
    return f"`{json.dumps(field.default)}`"


def render() -> str:
    properties = TableConfig.model_json_schema(by_alias=True)["properties"]
    rows = []
    for name, field in TableConfig.model_fields.items():
        key = field.alias or name
        example = json.dumps(field.examples[-1]) if field.examples else ""
        description = (field.description or "").replace("|", "\\|")
        rows.append(
            f"| `{key}` | {_json_type(properties[key])} | {_default(field)} | {description} | `{example}` |"
        )
    validated = TableConfig.model_validate(EXAMPLE)
    lines: list[Any] = [
        "# Table configuration",
        "",
        "<!-- Generated from functions/aurora_sync/config/model.py by "
        "`python -m aurora_sync_ops.config_docs > docs/configuration.md`; do not edit by hand. -->",
        "",
        f"One SSM parameter per table under the config path (default `{DEFAULT_CONFIG_PATH}`). The",
        "parameter's last path segment is the table's **name**: lower-case letters, digits and `_`,",
        "at most 63 characters. It is the S3 prefix of the table's files, the name a rerun uses",
        '(`{"tables": ["orders"]}`) and, upper-cased, the default Snowflake object name. The value is',
        'a JSON object validated strictly: unknown keys, wrong types (`"true"` for `true`, a string',
        "for a list) and duplicate keys are errors that name the parameter, the field and the fix; an",
        "invalid table fails alone while the others run. Adding a table is adding a parameter; no",
        "redeploy.",
        "",
        "| key | type | default | meaning | example |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "PostgreSQL identifiers (`schema`, `table`, column names) are exact catalog names, quoted",
        "for you: spaces, mixed case and punctuation are fine; a double quote, NUL or control",
        "character, or more than 63 bytes, is refused.",
        "",
        "FINAL's `primary_key` columns are NOT NULL and the type map turns a value Snowflake cannot",
        "hold into NULL, so `aurora-sync config validate --source-dsn` refuses key columns whose type",
        "produces such values (unconstrained or wider-than-38-digit `numeric`, floats, JSON, arrays,",
        "`bytea`), nullable key columns that no primary key or unique index covers, and rows whose key",
        "is NULL or a special value (numeric NaN, ±infinity or out-of-range dates, 24:00:00). Changing",
        "a table's `primary_key` needs a re-key of its FINAL table: `config push` refuses it without",
        "`--rekey`; see [operations](operations.md#changing-a-tables-primary-key).",
        "",
        "It also refuses a `primary_key` that PostgreSQL does not enforce as unique: one that no primary",
        "key or valid, non-partial unique index has all its columns in (a partial index constrains only",
        "some rows, an invalid one, left by a failed `CREATE INDEX CONCURRENTLY`, was never checked; a",
        "deferrable constraint counts, since it is checked at commit), and any key of a view or foreign",
        "table. Two source rows sharing such a key become one row in FINAL (the MERGE keeps one of them)",
        "and `aurora-sync parity` reports the difference. The message names the table's primary key and",
        "unique indexes and the query that finds duplicate keys; when the key is unique by other means,",
        "`primary_key_not_enforced: true` confirms it.",
        "",
        "## Modes: how a run finds changed rows",
        "",
        "| mode | needs | a run reads | deleted rows | sensible up to |",
        "|---|---|---|---|---|",
        "| `cursor` (default) | a column every insert and update advances (`cursor`), ideally indexed "
        "| the rows at or past the window start (the index finds them) | with `soft_delete_column`, or "
        "`hard_deletes: reconcile` | any size |",
        "| `xmin` | nothing: PostgreSQL's row versions | the whole table, keeping the rows written by "
        "transactions since the last merged run's snapshot | with `hard_deletes: reconcile` "
        f"| about {XMIN_WARN_ROWS:,} rows (warned above) |",
        "| `full` | nothing | every row, in one chunk and one snapshot | always: FINAL becomes exactly "
        f"that snapshot | about {FULL_WARN_ROWS:,} rows (warned above) |",
        "",
        "`cursor` must be absent or null for `xmin` and `full`, and `lookback_seconds` and",
        "`initial_watermark` only apply to `cursor`. An `xmin` table's window starts at the oldest",
        "transaction still running when the last merged run took its snapshot (64-bit transaction",
        "ids, so wraparound and subtransactions cannot hide a row; a tuple frozen by VACUUM keeps",
        "its id). Views and foreign tables have no row versions: use `full` for them.",
        "",
        "`hard_deletes: reconcile` exports the table's primary keys on a reconciling run (every run,",
        "or every `reconcile_every`-th merged run), in the same snapshot as the run's first chunk.",
        "After the load is verified, FINAL rows whose key is absent from that key snapshot are",
        "removed, but never a row FINAL took from a later snapshot. When the run exported in one",
        "chunk, the key snapshot also proves FINAL holds every source row: a row no window reached",
        "(a back-dated cursor) fails the table with `RowsMissing` instead of staying missing.",
        "",
        f"Example, `{DEFAULT_CONFIG_PATH}orders`:",
        "",
        "```json",
        json.dumps(json.loads(validated.dump_json()), indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
