"""Changing a table's primary key: how it is detected, and the procedure the CLI prints.

FINAL's rows were merged on the old key: rows the new key tells apart may already have been
collapsed into one, and nothing in FINAL says which. So a new key cannot be applied in place:
FINAL is replaced by an empty table with the new key and refilled by a full resync. Until that
is done, ``config push`` refuses the new key and ``sql snowflake`` refuses to apply anything for
the table (its MERGE task would still merge on the old key). The order of the steps matters:
the Snowflake side first, so that no run merges rows exported under the new key with the old
MERGE; a run that happens between steps exports every row into the empty FINAL, which is safe.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from aurora_sync.naming import quote

DOC = "docs/operations.md, 'Changing a table's primary key'"


def same_key(a: Sequence[str], b: Sequence[str]) -> bool:
    """The MERGE joins on every key column, so the columns' order does not change which rows match."""
    return sorted(a) == sorted(b)


def key_text(columns: Sequence[str] | None) -> str:
    """Snowflake column names as the DDL writes them; FINAL without a declared key says so."""
    if not columns:
        return "(no PRIMARY KEY declared)"
    return f"({', '.join(quote(c) for c in columns)})"


def procedure(names: Sequence[str], *, config_file: str | None) -> list[str]:
    """The re-key steps, in order. The Snowflake SQL is generated from the file: SSM still holds
    the old key until step 3."""
    tables = ",".join(names)
    file = shlex.quote(config_file) if config_file else "FILE"
    return [
        f"aurora-sync sql snowflake --config {file} --tables {tables} --rekey",
        f"aurora-sync sql snowflake --config {file} --tables {tables} --rekey --apply",
        f"aurora-sync config push {file} --rekey",
        f"aurora-sync sync --tables {tables} --full",
        f"aurora-sync parity --tables {tables}",
    ]


def explain(names: Sequence[str], *, config_file: str | None) -> str:
    steps = procedure(names, config_file=config_file)
    notes = [
        "review: FINAL is replaced by an empty table with the new key",
        "FINAL emptied and re-keyed, MERGE task re-created",
        "the exporter's new key",
        "every row, into the empty FINAL",
        "",
    ]
    return "\n".join(
        [
            "A new primary key needs a re-key: FINAL's rows were merged on the old key, so FINAL is "
            "replaced by an empty table with the new key and refilled by a full resync. Between runs "
            "(ScheduleEnabled=false, or `aurora-sync status` shows no execution running), with the "
            "deployment's usual flags:",
            *(
                f"  {n}. {step}" + (f"   # {note}" if note else "")
                for n, (step, note) in enumerate(zip(steps, notes, strict=True), 1)
            ),
            f"Until step 4 has run, FINAL holds only what runs since step 2 merged. See {DOC}.",
        ]
    )
