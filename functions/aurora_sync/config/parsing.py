"""One parse pipeline for table configs, whatever store they come from.

A store (SSM parameters in ``store``; a ``--config`` file in the CLI) hands over one
``ConfigEntry`` per table: its name, a label saying where it came from (the parameter path, or
``<file>[<name>]``) and its JSON text. ``parse_table_configs`` validates each entry on its own
(``parse_table_config``), sorts them by name and marks tables whose Snowflake objects would
collide (``mark_target_collisions``). The rule against a key written twice in one object,
which every parser would silently resolve by keeping the last, is ``reject_duplicate_keys``:
the JSON of both stores and the CLI's YAML loader call it.

No I/O here: ``tests/unit`` covers it without a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from .model import TABLE_NAME_PATTERN, InvalidTable, LoadedTable, TableConfig, TableConfigResult, quoted_names
from .prose import describe_table_field, suggest_table_name, validation_problems

# A broken JSON value is quoted this far around the error (never for SecureString parameters).
_EXCERPT_CHARS = 24


@dataclass(frozen=True)
class ConfigEntry:
    """One table's config as a store holds it: JSON text, labelled with where it came from."""

    name: str
    label: str  # the SSM parameter path, or "<file>[<name>]"
    raw: str
    secure: bool = False  # a SecureString: messages quote no part of the value


def reject_duplicate_keys(
    pairs: Sequence[tuple[Any, Any]], *, lines: Sequence[int] | None = None
) -> dict[Any, Any]:
    """The mapping of ``pairs``; a ``ConfigError`` when a key occurs twice.

    ``json.loads``' ``object_pairs_hook``, and the YAML loader's check (with each key's line,
    which JSON's decoder does not give). JSON and YAML parsers both keep the last of two equal
    keys without a word, so a second ``mode`` in an entry would silently win.
    """
    first: dict[Any, int] = {}
    for index, (key, _) in enumerate(pairs):
        if key not in first:
            first[key] = index
            continue
        at = f"line {lines[index]}: " if lines is not None else ""
        before = f" (first at line {lines[first[key]]})" if lines is not None else ""
        raise ConfigError(
            f"{at}key {json.dumps(key, default=str)} appears more than once in the same mapping{before}; "
            "a parser would silently keep the last one.",
            fix="keep one of them",
        )
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise ConfigError(f"{name} is not valid JSON; use a number")


def load_json(text: str) -> Any:
    """JSON as the config stores accept it: no repeated keys, no NaN or Infinity."""
    return json.loads(text, object_pairs_hook=reject_duplicate_keys, parse_constant=_reject_constant)


def _excerpt(raw: str, pos: int) -> str:
    start = max(pos - _EXCERPT_CHARS // 2, 0)
    return repr(raw[start : start + _EXCERPT_CHARS])


def validate_table_name(name: str, parameter: str) -> None:
    if not TABLE_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{parameter}: parameter name {name!r} is not a valid table name: use 1-63 lower-case "
            "letters, digits and _ starting with a letter (it becomes the S3 key prefix and the name "
            # From the name alone: a file entry's label holds the file's folders, no part of a name.
            f"a rerun uses); rename it, e.g. to {suggest_table_name(name)!r}"
        )


def parse_table_config(name: str, parameter: str, raw: str, *, secure: bool = False) -> TableConfigResult:
    """Validate one entry's JSON text. ``secure`` (SecureString) suppresses value excerpts."""
    try:
        validate_table_name(name, parameter)
    except ConfigError as exc:
        return InvalidTable(name, parameter, str(exc))
    try:
        document = load_json(raw)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno} (char {exc.pos})"
        near = "" if secure else f" near {_excerpt(raw, exc.pos)}"
        return InvalidTable(
            name, parameter, f"{parameter}: value is not valid JSON: {exc.msg} at {where}{near}; fix the JSON"
        )
    except ConfigError as exc:
        return InvalidTable(name, parameter, f"{parameter}: value is not valid JSON: {exc}")
    try:
        config = TableConfig.model_validate(document)
    except ValidationError as exc:
        # Every problem of the entry: a person fixes them all in one edit.
        problems = validation_problems(exc, describe_table_field, limit=None)
        return InvalidTable(name, parameter, f"{parameter}: {problems}")
    return LoadedTable(name, parameter, config)


def parse_table_configs(entries: Iterable[ConfigEntry | InvalidTable]) -> list[TableConfigResult]:
    """Every entry of a store, validated, sorted by name, with colliding targets marked.

    A store passes an ``InvalidTable`` for an entry it already refused on its own terms (an
    SSM parameter nested too deep, a file value JSON cannot hold); it is kept as it is.
    """
    results = [
        entry
        if isinstance(entry, InvalidTable)
        else parse_table_config(entry.name, entry.label, entry.raw, secure=entry.secure)
        for entry in entries
    ]
    results.sort(key=lambda r: r.name)
    return mark_target_collisions(results)


def _keys_owner(result: TableConfigResult, by_target: dict[str, list[LoadedTable]]) -> list[LoadedTable]:
    if not isinstance(result, LoadedTable) or not result.target.upper().endswith("_KEYS"):
        return []
    return by_target.get(result.target.upper().removesuffix("_KEYS"), [])


def mark_target_collisions(results: list[TableConfigResult]) -> list[TableConfigResult]:
    """Two tables writing the same Snowflake objects would overwrite each other's rows."""
    by_target: dict[str, list[LoadedTable]] = {}
    for result in results:
        if isinstance(result, LoadedTable):
            by_target.setdefault(result.target.upper(), []).append(result)
    clashing = {id(t): group for group in by_target.values() if len(group) > 1 for t in group}
    marked: list[TableConfigResult] = []
    for result in results:
        group = clashing.get(id(result))
        keyed = _keys_owner(result, by_target)
        if group is None and keyed and isinstance(result, LoadedTable):
            # STAGING.<target> would be the other table's key snapshot table, <its target>_KEYS.
            owners = ", ".join(t.parameter for t in keyed)
            marked.append(
                InvalidTable(
                    result.name,
                    result.parameter,
                    f"{result.parameter}: field 'target': Snowflake base name {result.target.upper()!r} is "
                    f"the key snapshot table of {owners}; give this table another 'target'",
                )
            )
            continue
        if group is None or not isinstance(result, LoadedTable):
            marked.append(result)
            continue
        others = ", ".join(t.parameter for t in group if t is not result)
        marked.append(
            InvalidTable(
                result.name,
                result.parameter,
                f"{result.parameter}: field 'target': Snowflake base name {result.target.upper()!r} is also "
                f"used by {others}; give each table its own 'target'",
            )
        )
    return marked


def known_and_unknown(
    results: Sequence[TableConfigResult], names: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The names ``results`` has, and those of ``names`` it lacks (each once, in the order given).
    The planner's rerun subset and the CLI's ``--tables`` both check names this way."""
    known = [r.name for r in results]
    return known, [n for n in dict.fromkeys(names) if n not in known]


def select_tables(
    results: Sequence[TableConfigResult], names: Sequence[str] | None
) -> list[TableConfigResult]:
    """The entries a run works on: all of them, or the rerun subset ``names``."""
    if names is None:
        return list(results)
    known, unknown = known_and_unknown(results, names)
    if unknown:
        raise ConfigError(
            f"rerun names unknown table(s) {quoted_names(unknown)}; known tables: "
            f"{quoted_names(known) if known else '(none)'}.",
            fix='use names of parameters under the config path in the execution input\'s "tables"',
        )
    wanted = set(names)
    return [r for r in results if r.name in wanted]
