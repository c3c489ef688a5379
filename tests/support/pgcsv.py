"""Test helpers shared by several test modules (on pytest's pythonpath, see pyproject)."""

from __future__ import annotations


def parse_pg_csv(data: str) -> list[list[str | None]]:
    """PostgreSQL CSV: an unquoted empty field is NULL, ``""`` is the empty string."""
    rows: list[list[str | None]] = []
    row: list[str | None] = []
    field: list[str] = []
    quoted = in_quotes = False
    i = 0
    while i < len(data):
        char = data[i]
        if in_quotes:
            if char == '"' and data[i + 1 : i + 2] == '"':
                field.append('"')
                i += 1
            elif char == '"':
                in_quotes = False
            else:
                field.append(char)
        elif char == '"':
            in_quotes = quoted = True
        elif char in ",\n":
            row.append("".join(field) if field or quoted else None)
            field, quoted = [], False
            if char == "\n":
                rows.append(row)
                row = []
        else:
            field.append(char)
        i += 1
    return rows
