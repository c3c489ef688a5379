"""Names of everything the product creates in Snowflake, derived from a table config.

Snowflake resolves unquoted identifiers to upper case; quoted ones keep their case exactly. A
source column with a plain lower-case name (``updated_at``) becomes ``UPDATED_AT`` so analysts can
query it unquoted; any other name (mixed case, spaces, punctuation) keeps its exact spelling and
must be quoted. Generated SQL always quotes, with ``quote``, so both kinds are safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError

_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")

# Columns the product adds. The prefix keeps them apart from any source column.
FILE_COLUMN = "_AURORA_SYNC_FILE"  # STAGING: the S3 path the row was loaded from
ROW_COLUMN = "_AURORA_SYNC_ROW"  # STAGING: row number within that file
LOADED_AT_COLUMN = "_AURORA_SYNC_LOADED_AT"  # STAGING: when Snowpipe scanned the file
SYNCED_AT_COLUMN = "_AURORA_SYNC_SYNCED_AT"  # FINAL: when the MERGE last wrote the row
SNAPSHOT_COLUMN = "_AURORA_SYNC_SNAPSHOT"  # FINAL: source snapshot order of the version it holds
DELETED_COLUMN = "_AURORA_SYNC_DELETED"  # FINAL, soft_delete_mode=flag: the row is deleted at the source


def snowflake_column(source_column: str) -> str:
    """The exact (case-sensitive) Snowflake name for a PostgreSQL column name."""
    return source_column.upper() if _PLAIN.match(source_column) else source_column


def quote(identifier: str) -> str:
    """Snowflake's quoted-identifier syntax (the connector has no quoting API of its own).

    It is PostgreSQL's too, and what psycopg2's ``sql.Identifier`` renders; messages use it where
    no live connection can render one (a refused login).
    """
    return '"' + identifier.replace('"', '""') + '"'


def snowflake_columns(source_columns: list[str], *, table: str) -> list[str]:
    """Snowflake names for a table's columns; two source names mapping to one is a config error."""
    seen: dict[str, str] = {}
    for column in source_columns:
        name = snowflake_column(column)
        if name in seen:
            raise ConfigError(
                f"table {table!r}: source columns {seen[name]!r} and {column!r} both map to the "
                f"Snowflake column {name!r}.",
                fix="list only one of them in `columns`, or rename one at the source",
            )
        seen[name] = column
    return list(seen)


@dataclass(frozen=True)
class SnowflakeObjects:
    """Fully qualified, quoted names of one table's Snowflake objects."""

    database: str
    staging_schema: str
    final_schema: str
    target: str

    def _in(self, schema: str, name: str) -> str:
        return f"{quote(self.database)}.{quote(schema)}.{quote(name)}"

    @property
    def final_table(self) -> str:
        return self._in(self.final_schema, self.target)

    @property
    def staging_table(self) -> str:
        return self._in(self.staging_schema, self.target)

    @property
    def stream(self) -> str:
        return self._in(self.staging_schema, f"{self.target}_STREAM")

    @property
    def pipe(self) -> str:
        return self._in(self.staging_schema, f"{self.target}_PIPE")

    @property
    def merge_task(self) -> str:
        return self._in(self.staging_schema, f"{self.target}_MERGE")

    @property
    def keys_table(self) -> str:
        """STAGING table the verifier loads a run's key snapshot into (hard-delete reconciliation)."""
        return self._in(self.staging_schema, f"{self.target}_KEYS")

    @property
    def retention_task(self) -> str:
        return self._in(self.staging_schema, f"{self.target}_RETENTION")
