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
        "<!-- Generated from functions/aurora_sync/config.py by "
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
