"""What ``sync`` and ``rerun`` print at the end: the per-table result table, the execution line,
the schema-drift advice, and the rerun hint with its input; and the text helpers the live
progress lines share with it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .history import RunResult

_LINE_CHARS = 240
_COLUMNS = ("TABLE", "OUTCOME", "EXPORTED", "LOADED", "CHANGED", "UNCHANGED", "DELETED", "LAG", "ERROR")


def one_line(text: Any, limit: int = _LINE_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters (a cause can be a whole stack trace)."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def lag_text(seconds: Any) -> str:
    """A freshness lag as a person reads it: ``4.2s``, ``3m07s``, ``2h05m``, ``1d03h``; ``-`` if none."""
    if not isinstance(seconds, int | float):
        return "-"
    value = round(float(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s"
    if value < 3600:
        return f"{value // 60}m{value % 60:02d}s"
    if value < 86400:
        return f"{value // 3600}h{value % 3600 // 60:02d}m"
    return f"{value // 86400}d{value % 86400 // 3600:02d}h"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def render(result: RunResult) -> str:
    """The per-table result table, the execution line, and the rerun hint when something failed."""
    lines: list[str] = []
    if result.skipped:
        lines.append(f"skipped: {result.skip_reason}")
    if result.tables:
        rows = [
            (
                t.table,
                t.outcome,
                _count(t.rows_exported),
                _count(t.rows_loaded),
                _count(t.rows_changed),
                _count(t.rows_unchanged),
                _count(t.rows_deleted),
                lag_text(t.freshness_lag_seconds),
                t.error or "",
            )
            for t in result.tables
        ]
        widths = [max(len(str(row[i])) for row in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
        for row in [_COLUMNS, *rows]:
            lines.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        for t in result.tables:
            if t.outcome == "FAILED" and t.reason:
                lines.append(f"  {t.table}: {t.error}: {one_line(t.reason, 1000)}")
        for t in result.tables:
            lines.extend(drift_lines(t.table, t.new_columns, t.drift_statements))
    lines.append(f"execution: {result.execution_arn} {result.status}")
    if result.status != "SUCCEEDED" and result.error and result.error != "TablesFailed":
        lines.append(f"  {result.error}: {one_line(result.cause, 1000)}")
    if result.rerun_input is not None:
        lines.append(f"rerun: aurora-sync rerun {result.execution_arn}")
        lines.append(f"rerun input: {json.dumps(result.rerun_input)}")
    return "\n".join(lines)


def drift_lines(
    table: str, columns: Sequence[str], statements: Sequence[str], indent: str = "  "
) -> list[str]:
    """What to do about source columns a table's config leaves out: the config change, the
    command that applies it in Snowflake, and the statements that command runs for them."""
    if not columns:
        return []
    lines = [
        f"{indent}schema drift in {table}: source column(s) {', '.join(repr(c) for c in columns)} are not "
        f"in its config's columns. To sync them, add them there, push the config "
        "(aurora-sync config push FILE) "
        f"and run: aurora-sync sql snowflake --tables {table} --apply"
        + (", which adds them with:" if statements else "")
    ]
    lines += [f"{indent}  {statement};" for statement in statements]
    return lines
