"""Object names, Snowflake-shaped errors, and the persisted registry of control-plane objects.

Integrations, stages, file formats, pipes, streams and tasks are kept as one small JSON file each
under the state directory (written atomically on every change) so a restarted server keeps them.
Histories live in DuckDB next to the tables they describe (see ``history.py``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import snowflake.connector.errors
from sqlglot import exp

from ..component import write_json_atomic

IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
QUALIFIED = rf"{IDENT}(?:\s*\.\s*{IDENT}){{0,2}}"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def sql_error(
    message: str, errno: int = 2003, sqlstate: str = "02000"
) -> snowflake.connector.errors.ProgrammingError:
    return snowflake.connector.errors.ProgrammingError(msg=message, errno=errno, sqlstate=sqlstate)


def does_not_exist(kind: str, name: str) -> snowflake.connector.errors.ProgrammingError:
    return sql_error(f"SQL compilation error:\n{kind} '{name}' does not exist or not authorized.")


def already_exists(name: str) -> snowflake.connector.errors.ProgrammingError:
    return sql_error(f"SQL compilation error:\nObject '{name}' already exists.", errno=2002, sqlstate="42710")


def syntax_error(detail: str) -> snowflake.connector.errors.ProgrammingError:
    return sql_error(f"SQL compilation error:\n{detail}", errno=1003, sqlstate="42000")


def normalise_part(part: str) -> str:
    """Snowflake identifier rule: unquoted resolves upper case, quoted keeps its case exactly."""
    part = part.strip()
    if len(part) >= 2 and part.startswith('"') and part.endswith('"'):
        return part[1:-1].replace('""', '"')
    return part.upper()


def split_parts(name: str) -> list[str]:
    parts = re.findall(IDENT, name)
    if not parts or re.sub(r"\s", "", ".".join(parts)) != re.sub(r"\s", "", name):
        raise syntax_error(f"invalid identifier '{name}'")
    return [normalise_part(p) for p in parts]


@dataclass(frozen=True)
class ObjectName:
    database: str
    schema: str
    name: str

    @property
    def fq(self) -> str:
        return f"{self.database}.{self.schema}.{self.name}"

    def table_sql(self) -> str:
        """The name as a quoted Snowflake identifier chain, safe to splice into generated SQL."""
        return ".".join(exp.to_identifier(p, quoted=True).sql(dialect="snowflake") for p in self.parts())

    def parts(self) -> tuple[str, str, str]:
        return (self.database, self.schema, self.name)

    @classmethod
    def resolve(cls, name: str, database: str | None, schema: str | None) -> ObjectName:
        """Resolve ``[db.][schema.]name`` against the session's current database and schema."""
        parts = split_parts(name)
        if len(parts) == 3:
            return cls(*parts)
        if len(parts) == 2:
            if not database:
                raise sql_error(
                    "Cannot perform operation. This session does not have a current database. "
                    "Call 'USE DATABASE', or use a qualified name.",
                    errno=90105,
                    sqlstate="22000",
                )
            return cls(database, parts[0], parts[1])
        if not database or not schema:
            raise sql_error(
                "Cannot perform operation. This session does not have a current schema. "
                "Call 'USE SCHEMA', or use a qualified name.",
                errno=90106,
                sqlstate="22000",
            )
        return cls(database, schema, parts[0])

    @classmethod
    def from_fq(cls, fq: str) -> ObjectName:
        database, schema, name = fq.split(".", 2)
        return cls(database, schema, name)


def sql_string(value: str) -> str:
    """A Snowflake string literal (quotes doubled), for values the emulator itself produces."""
    return exp.Literal.string(value).sql(dialect="snowflake")


def unquote_string(literal: str) -> str:
    literal = literal.strip()
    if literal.startswith("'") and literal.endswith("'"):
        return literal[1:-1].replace("''", "'").replace("\\'", "'")
    return literal


PENDING = "pending"
KINDS = ("integrations", "stages", "file_formats", "pipes", "streams", "tasks", "procedures", PENDING)


class Registry:
    """Thread-safe registry of control-plane objects, persisted as one small JSON file per object.

    ``<name>.objects/<kind>/`` holds the integrations, stages, file formats, pipes, streams and
    tasks; ``<name>.pending/`` the pipe files queued for loading, which come and go with every
    staged file. A change writes only its own object's file: rewriting one document of every
    object on each change made creating N tables' objects cost N squared (the registry of 2,000
    tables is megabytes, rewritten about five times a table), and a large run's loads wait on
    each other (issue 15). ``<name>`` itself is the layout of older versions, one document of
    everything: it is read once and moved into the files.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.objects_dir = path.with_name(path.name.removesuffix(".json") + ".objects")
        self.pending_dir = path.with_name(path.name.removesuffix(".json") + ".pending")
        self.lock = threading.RLock()
        self.data: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        for kind in KINDS:
            directory = self._dir(kind)
            if directory.is_dir():
                entries = (json.loads(file.read_text()) for file in directory.glob("*.json"))
                self.data[kind] = {e["key"]: e["value"] for e in sorted(entries, key=lambda e: e["key"])}
        if path.exists():
            loaded = json.loads(path.read_text())
            for kind in KINDS:
                for key, value in loaded.get(kind, {}).items():
                    self.put(kind, key, value)
            path.unlink()

    def _dir(self, kind: str) -> Path:
        return self.pending_dir if kind == PENDING else self.objects_dir / kind

    def _file(self, kind: str, key: str) -> Path:
        return self._dir(kind) / f"{hashlib.sha1(key.encode()).hexdigest()}.json"  # noqa: S324 - a name

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self.lock:
            return self.data[kind].get(key)

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        with self.lock:
            self.data[kind][key] = value
            self._dir(kind).mkdir(parents=True, exist_ok=True)
            write_json_atomic(self._file(kind, key), {"key": key, "value": value})

    def remove(self, kind: str, key: str) -> dict[str, Any] | None:
        with self.lock:
            value = self.data[kind].pop(key, None)
            self._file(kind, key).unlink(missing_ok=True)
            return value

    def items(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return list(self.data[kind].items())
