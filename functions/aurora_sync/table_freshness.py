"""How old each configured table's FINAL data is when a run ends, and which table is the stalest.

The freshness alarm watches one number per stack, ``StalestTableAgeSeconds``, which the verifier
emits once per run (on its last call): the maximum, over every table of the run and every
enabled table of the config path, of *now - the source time of the newest snapshot that reached
FINAL*. A table this run merged (or found unchanged) counts with this run's snapshot. A table
that failed in this run, that the planner could not schedule, or that was not in the run (a
rerun of a subset) counts with its last merged run in the export ledger, so its age keeps growing
run after run until it merges again: one table failing every run while the others succeed makes
the maximum cross the threshold. A table no run ever merged has no age (its failures fail every
execution, which ``ExecutionsFailedAlarm`` reports).

One metric per stack instead of one per table keeps the monitoring cost flat (docs/operations.md,
"What monitoring costs"); the per-table figures go to one log line per table and run
(``table synced``, fields of ``TableAge.log_fields``), which the template's saved Logs Insights
query ``<stack>/stalest-tables`` sorts by age, so the alarm leads to the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .config import LoadedTable
from .messages import FailedTable, TableVerdict

PLAN_FAILED = "PLAN_FAILED"  # the planner could not schedule the table in this run
NOT_IN_RUN = "NOT_IN_RUN"  # enabled, but this run was a rerun of other tables


@dataclass(frozen=True)
class RunTable:
    """A table the run's freshness covers, before the ledger is read."""

    table: str
    target: str
    outcome: str  # the verifier's outcome, PLAN_FAILED or NOT_IN_RUN
    verdict: TableVerdict | None = None
    failure: FailedTable | None = None

    @property
    def failed(self) -> bool:
        return self.outcome in ("FAILED", PLAN_FAILED)


@dataclass(frozen=True)
class TableAge:
    entry: RunTable
    synced_source_time: datetime | None  # newest source snapshot in FINAL (None: never merged)
    age_seconds: float | None

    def log_fields(self) -> dict[str, Any]:
        """The table's log line: its verdict (or planner failure) and how old FINAL is."""
        fields: dict[str, Any] = {"table": self.entry.table, "target": self.entry.target}
        if self.entry.verdict is not None:
            fields.update(self.entry.verdict.model_dump(mode="json"))
        if self.entry.failure is not None:
            fields.update(error=self.entry.failure.error, reason=self.entry.failure.cause)
        fields["outcome"] = self.entry.outcome
        fields["synced_source_time"] = (
            self.synced_source_time.isoformat(timespec="microseconds") if self.synced_source_time else None
        )
        fields["age_seconds"] = self.age_seconds
        return fields


def run_tables(
    verdicts: Sequence[TableVerdict], plan_failed: Sequence[FailedTable], configs: Mapping[str, LoadedTable]
) -> list[RunTable]:
    """Every table the stalest age covers: the run's verdicts, the planner's failures, then every
    other enabled table of the config path (``configs``; empty when SSM could not be read)."""
    entries = [RunTable(v.table, v.target, v.outcome, verdict=v) for v in verdicts]
    seen = {v.table for v in verdicts}
    for failure in plan_failed:
        if failure.table not in seen:
            seen.add(failure.table)
            loaded = configs.get(failure.table)
            # An invalid config has no target to read; the default one (the upper-cased name) is
            # where such a table's FINAL was, unless the broken config was also changing it.
            target = loaded.target if loaded else failure.table.upper()
            entries.append(RunTable(failure.table, target, PLAN_FAILED, failure=failure))
    for name, loaded in sorted(configs.items()):
        if name not in seen and loaded.config.enabled:
            entries.append(RunTable(name, loaded.target, NOT_IN_RUN))
    return entries


def table_ages(
    entries: Sequence[RunTable], last_merged: Mapping[str, datetime], *, now: datetime
) -> list[TableAge]:
    """Each entry's age: from this run's snapshot where it reached FINAL, else from the ledger's
    last merged run of its target (``ledger.last_merged_source_times``)."""
    ages = []
    for entry in entries:
        times = [t for t in (last_merged.get(entry.target), _this_run(entry.verdict)) if t is not None]
        synced = max(times) if times else None
        age = round(max(0.0, (now - synced).total_seconds()), 3) if synced else None
        ages.append(TableAge(entry, synced, age))
    return ages


def stalest(ages: Sequence[TableAge]) -> TableAge | None:
    """The table whose FINAL data is oldest (None when no table ever merged)."""
    aged = [a for a in ages if a.age_seconds is not None]
    return max(aged, key=lambda a: a.age_seconds or 0.0) if aged else None


def _this_run(verdict: TableVerdict | None) -> datetime | None:
    if verdict is None or verdict.source_time is None:
        return None
    return datetime.fromisoformat(verdict.source_time)
