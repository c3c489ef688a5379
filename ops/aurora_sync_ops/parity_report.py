"""``aurora-sync parity``: each configured table's FINAL copy against its source, row by row.

Per table the catalog and config give the ``TableSpec`` (exactly the columns a run exports, in
the same canonical form), and ``parity.compare`` merge-joins both sides streamed in key order.
A table that cannot be compared (source table gone, FINAL missing) is reported as an error for
that table; the others are still compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aurora_sync.config import LoadedTable
from aurora_sync.errors import SyncError, WarehouseObjectMissing
from aurora_sync.naming import quote
from aurora_sync.schema_evolution import create_command, read_warehouse_columns
from aurora_sync.snowflake_objects import TableSpec, config_spec
from aurora_sync.snowflake_tables import SnowflakeSetup
from aurora_sync.source_catalog import read_columns
from aurora_sync.source_db import source_errors
from aurora_sync.warehouse_db import warehouse_errors

from .parity import ParityResult, compare


@dataclass
class TableParity:
    table: str
    result: ParityResult | None = None
    error: str | None = None

    @property
    def equal(self) -> bool:
        return self.result is not None and self.result.equal

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"table": self.table, "equal": self.equal, "error": self.error}
        if self.result is not None:
            document.update({k: v for k, v in self.result.as_dict().items() if k not in ("table", "equal")})
        return document


def _check_final(
    table: LoadedTable, spec: TableSpec, setup: SnowflakeSetup, found: dict[str, Any] | None
) -> None:
    """Raise when FINAL lacks the table or a column the comparison reads, naming the fix; the
    SELECT would otherwise fail with the engine's message about a column it cannot bind."""
    final = setup.objects(spec.target).final_table
    if found is None:
        raise WarehouseObjectMissing(
            f"table {table.name!r}: FINAL table {final} does not exist.",
            fix=f"create the table's Snowflake objects: {create_command(table.name)}",
        )
    config = table.config
    missing = [
        f"{quote(name)} (source column {config.schema_name}.{config.table}.{mapping.column})"
        for name, mapping in zip(spec.snowflake_names, spec.columns, strict=True)
        if name not in found
    ]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise WarehouseObjectMissing(
            f"table {table.name!r}: FINAL table {final} has no column{plural} {', '.join(missing)}.",
            fix=f"run aurora-sync sync --tables {table.name}: its schema step adds the column{plural} to "
            "STAGING and FINAL and exports the table again in full",
        )


def check_parity(
    tables: Sequence[LoadedTable], *, source: Any, warehouse: Any, setup: SnowflakeSetup, limit: int
) -> list[TableParity]:
    reports = []
    final_columns = read_warehouse_columns(
        warehouse,
        database=setup.database,
        staging_schema=setup.staging_schema,
        final_schema=setup.final_schema,
        targets=sorted({t.target for t in tables}),
    ).final
    for table in tables:
        config = table.config
        where = f"table {table.name} ({config.schema_name}.{config.table} vs FINAL.{table.target})"
        relations = [(config.schema_name, config.table)]
        try:
            with source.cursor() as cur, source_errors(where, conn=source, relations=relations):
                catalog = read_columns(cur, config.schema_name, config.table)
            spec = config_spec(table, catalog)
            _check_final(table, spec, setup, final_columns.get(table.target))
            with source_errors(where, conn=source, relations=relations), warehouse_errors(where):
                result = compare(
                    source, warehouse, setup, spec, schema=config.schema_name, table=config.table, limit=limit
                )
        except (SyncError, ValueError) as exc:
            reports.append(TableParity(table.name, error=f"{type(exc).__name__}: {exc}"))
            continue
        reports.append(TableParity(table.name, result=result))
    return reports


def render(reports: Sequence[TableParity], limit: int) -> str:
    headers = ("table", "source rows", "FINAL rows", "missing", "extra", "different", "equal")
    rows = []
    for report in reports:
        r = report.result
        if r is None:
            rows.append((report.table, "-", "-", "-", "-", "-", "ERROR"))
        else:
            counts = r.counts
            rows.append(
                (
                    report.table,
                    str(r.source_rows),
                    str(r.final_rows),
                    str(counts["missing"]),
                    str(counts["extra"]),
                    str(counts["different"]),
                    "yes" if r.equal else "NO",
                )
            )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    for report in reports:
        if report.error is not None:
            lines.append(f"{report.table}: could not compare: {report.error}")
            continue
        r = report.result
        assert r is not None
        for kind, meaning in (
            ("missing", "in the source, not in FINAL"),
            ("extra", "in FINAL, not in the source"),
            ("different", "values differ"),
        ):
            keys = getattr(r, kind)
            if keys:
                more = r.counts[kind] - len(keys)
                tail = f" (and {more} more; --limit raises the {limit} shown)" if more > 0 else ""
                lines.append(f"{report.table}: {kind} ({meaning}): key {', '.join(keys)}{tail}")
    return "\n".join(lines)
