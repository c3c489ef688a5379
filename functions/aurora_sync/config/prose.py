"""The words of config errors: what is wrong, where, and what to write instead.

Two audiences, one rule (a message names the field and the fix, never a secret value):

- ``config_error`` turns any pydantic ``ValidationError`` of an input the product reads (the
  planner's event, the exporter's work item, the verifier's request, the Lambda environment)
  into the taxonomy's ``ConfigError``: each problem as ``<where>.<field>: <what is wrong>``,
  then the fix. Every handler and the settings use it, so they all word errors alike.
- ``describe_table_field`` words one table config's errors for people editing a config:
  the field, what it must be with an example from the model, a close match for a misspelt
  key. It shows the JSON type of a wrong value, never the value, because a SecureString
  parameter's value must not reach a log.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ..errors import ConfigError
from .model import TableConfig, quoted_names

# A message lists this many problems of one input, then counts the rest: a request with a
# hundred malformed table entries must still give a message a person reads.
MAX_PROBLEMS = 10
# How much of a wrong value a generic message quotes.
_INPUT_CHARS = 80


# --- any input --------------------------------------------------------------------------------
def field_problem(err: ErrorDetails, path: str) -> str:
    """One pydantic error as ``<path>: <what is wrong>``; quotes the wrong value (shortened), so
    use it only for inputs that hold no secret (table configs have ``describe_table_field``)."""
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required"
    if kind == "value_error":
        return f"{path}: {err.get('ctx', {}).get('error', err['msg'])}"
    got = json.dumps(err["input"], default=str)
    if len(got) > _INPUT_CHARS:
        got = got[: _INPUT_CHARS - 1] + "…"
    return f"{path}: {_lower_first(err['msg'])} (got {got})"


def validation_problems(
    exc: ValidationError, describe: Callable[[ErrorDetails], str], *, limit: int | None = MAX_PROBLEMS
) -> str:
    """Every problem of ``exc`` worded by ``describe``, joined with "; " (at most ``limit``)."""
    errors = exc.errors(include_url=False)
    shown = errors if limit is None else errors[:limit]
    text = "; ".join(describe(err) for err in shown)
    if len(errors) > len(shown):
        text += f"; and {len(errors) - len(shown)} more"
    return text


def config_error(
    exc: ValidationError,
    *,
    fix: str,
    where: str = "",
    heading: str | None = None,
    label: Callable[[Sequence[int | str]], str] | None = None,
) -> ConfigError:
    """The ``ConfigError`` for an input that failed its model, naming each field and the fix.

    Each field is named ``<where>.<location>`` (``execution input.overrides.a.since``), or by
    ``label`` when the input's names are not the model's (environment variables); ``heading``,
    when given, opens the message and the problems follow in parentheses.
    """

    def name(loc: Sequence[int | str]) -> str:
        if label is not None:
            return label(loc)
        dotted = ".".join(str(part) for part in loc)
        return f"{where}.{dotted}" if where and dotted else where or dotted

    problems = validation_problems(exc, lambda err: field_problem(err, name(err["loc"])))
    return ConfigError(f"{heading} ({problems})." if heading else f"{problems}.", fix=fix)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


# --- table configs ----------------------------------------------------------------------------
_EXPECTS: dict[str, str] = {
    "schema": "a PostgreSQL schema name (string)",
    "table": "a PostgreSQL table name (string)",
    "primary_key": "a list of column names",
    "primary_key_not_enforced": "true or false (a JSON boolean, not a string)",
    "mode": '"cursor", "xmin" or "full"',
    "cursor": "a column name (string), or null for modes xmin and full",
    "hard_deletes": '"ignore" or "reconcile"',
    "reconcile_every": "an integer >= 1",
    "columns": "a list of column names or null",
    "soft_delete_column": "a column name (string) or null",
    "soft_delete_mode": '"delete" or "flag"',
    "lookback_seconds": "an integer number of seconds >= 0",
    "enabled": "true or false (a JSON boolean, not a string)",
    "initial_watermark": "an ISO-8601 string, an integer or null",
    "max_rows_per_chunk": "an integer >= 1000",
    "target": "a Snowflake unquoted identifier (letters, digits, _ and $, not starting with a digit)",
}
_ITEM_EXPECTS = "a column name (string)"
ALLOWED_KEYS = tuple(field.alias or name for name, field in TableConfig.model_fields.items())


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _example(key: str) -> str | None:
    for name, field in TableConfig.model_fields.items():
        if (field.alias or name) == key and field.examples:
            first = next((e for e in field.examples if e is not None), None)
            return None if first is None else json.dumps(first)
    return None


def describe_table_field(err: ErrorDetails) -> str:
    """One pydantic error of a table config as ``field 'x': <what is wrong and what to write>``."""
    loc = [str(part) for part in err["loc"]]
    kind = err["type"]
    if not loc:
        got = _json_type(err["input"])
        return f"the value must be a JSON object with keys {quoted_names(ALLOWED_KEYS)} (got {got})"
    key = loc[0]
    field = key + "".join(f"[{part}]" for part in loc[1:])
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(key, ALLOWED_KEYS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"field '{field}': unknown key; {hint}allowed keys: {', '.join(ALLOWED_KEYS)}"
    if kind == "missing":
        example = _example(key)
        return f"field '{field}': required, e.g. {example}" if example else f"field '{field}': required"
    if kind == "value_error":
        return f"field '{field}': {err.get('ctx', {}).get('error', err['msg'])}"
    expects = _ITEM_EXPECTS if len(loc) > 1 else _EXPECTS.get(key)
    if kind.endswith("_type") or kind in {"literal_error", "string_pattern_mismatch"}:
        example = None if len(loc) > 1 else _example(key)
        suffix = f", e.g. {example}" if example else ""
        return f"field '{field}': must be {expects}{suffix} (got {_json_type(err['input'])})"
    if kind == "too_short":
        return f"field '{field}': must not be empty, name at least one column, e.g. {_example(key)}"
    # Range checks and the rest: pydantic's wording already says the bound ("greater than or equal to 0").
    return f"field '{field}': {_lower_first(err['msg'])} (expected {expects})"


def suggest_table_name(name: str) -> str:
    """A valid table name close to ``name``: what a refused name's message proposes."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"t_{cleaned}"
    return cleaned[:63]
