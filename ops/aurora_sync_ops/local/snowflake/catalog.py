"""Object names, Snowflake-shaped errors, and the persisted registry of control-plane objects.

Integrations, stages, file formats, pipes, streams and tasks are kept in one JSON document under
the state directory (written atomically on every change) so a restarted server keeps them.
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
    """Thread-safe registry of control-plane objects, persisted as JSON.

    The objects are one file, rewritten on every change. Pipe files queued for loading
    (``pending``) come and go with every staged file, so each is a small file of its own in
    ``<name>.pending/``: rewriting the whole registry twice per loaded file made a large run's
    loads wait on each other (the registry of 401 tables is hundreds of kilobytes).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending_dir = path.with_name(path.name.removesuffix(".json") + ".pending")
        self.lock = threading.RLock()
        self.data: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        if path.exists():
            loaded = json.loads(path.read_text())
            for kind in KINDS:
                self.data[kind] = loaded.get(kind, {})
        if self.data[PENDING]:
            # Queued by a version that kept them in the registry file: moved to their own files.
            for key, value in list(self.data[PENDING].items()):
                self.put(PENDING, key, value)
            self.save()
        if self.pending_dir.is_dir():
            for file in sorted(self.pending_dir.glob("*.json")):
                entry = json.loads(file.read_text())
                self.data[PENDING][entry["key"]] = entry["value"]

    def save(self) -> None:
        with self.lock:
            write_json_atomic(self.path, {k: v for k, v in self.data.items() if k != PENDING})

    def _pending_file(self, key: str) -> Path:
        return self.pending_dir / f"{hashlib.sha1(key.encode()).hexdigest()}.json"  # noqa: S324 - a name

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self.lock:
            return self.data[kind].get(key)

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        with self.lock:
            self.data[kind][key] = value
            if kind == PENDING:
                self.pending_dir.mkdir(parents=True, exist_ok=True)
                write_json_atomic(self._pending_file(key), {"key": key, "value": value})
            else:
                self.save()

    def remove(self, kind: str, key: str) -> dict[str, Any] | None:
        with self.lock:
            value = self.data[kind].pop(key, None)
            if kind == PENDING:
                self._pending_file(key).unlink(missing_ok=True)
            else:
                self.save()
            return value

    def items(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return list(self.data[kind].items())
