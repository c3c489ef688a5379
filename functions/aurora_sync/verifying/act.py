"""One verifier call against Snowflake: ask ``decide`` what to do, do it, tell it what happened.

The rules are in ``aurora_sync.verifying.decide`` (pure, tested without a server); this layer
only runs the actions it asks for, in the order asked, with the statements of
``load_history``, ``ledger`` and ``reconciliation``, and feeds the answers back until the
decision asks for nothing more. The call never waits: the state machine calls again
(Wait → Verify → Choice) while ``done`` is false.

A terminal error of an action that concerns one table's objects (a dropped pipe or task, a
missing ledger) becomes that action's ``Failure`` and fails its tables; reads, and errors that
concern everything (Snowflake unreachable, auth, transient errors), propagate as the taxonomy's
classes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..config import LoadedTable
from ..errors import SyncError, TerminalError
from ..ledger import mark_merged, mark_reconciled, record_runs
from ..messages import FailedTable, VerifyOutput, VerifyRequest
from . import load_history as lh
from .decide import (
    Action,
    CountMergedRows,
    Decision,
    ExecuteTasks,
    Facts,
    Failure,
    Limits,
    MarkMerged,
    ReadLoads,
    ReadStreams,
    ReadTaskRuns,
    Reconcile,
    RecordRuns,
    RefreshPipe,
    Schemas,
    conclude,
    decide,
)
from .reconciliation import reconcile


def verify(
    conn: Any,
    request: VerifyRequest,
    *,
    schemas: Schemas,
    limits: Limits,
    configs: Mapping[str, LoadedTable],
    plan_failed: Sequence[FailedTable] = (),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> VerifyOutput:
    """One Verify state call: every table of ``request`` looked at once, no waiting.

    The clock is read twice: once for the rules (timeouts, the refresh), once at the end for
    the freshness lag, after the call's statements. ``plan_failed``: the tables that failed in
    the plan (the run's plan-failed.json), which the run's summary names with the others.
    """
    checked_at = now()
    decision = settle(
        lambda facts: decide(request, facts, schemas=schemas, limits=limits, configs=configs, now=checked_at),
        lambda action: perform(conn, action),
    )
    return conclude(request, decision, schemas=schemas, now=now(), plan_failed=plan_failed)


def settle(decision_for: Callable[[Facts], Decision], run: Callable[[Action], Any]) -> Decision:
    """Run the actions each decision asks for and decide again, until it asks for nothing more.

    A decision never asks again for an action whose answer it was given, so this ends after a
    few steps; an action asked twice would be a broken rule, and is refused rather than repeated.
    """
    facts = Facts()
    decision = decision_for(facts)
    while decision.actions:
        for action in decision.actions:
            if action.key in facts.done:
                raise RuntimeError(f"the verifier's rules asked twice for {action.key} in one call")
            facts = facts.after(action, run(action))
        decision = decision_for(facts)
    return decision


def perform(conn: Any, action: Action) -> Any:
    """Run one action; its answer (what it read), None, or the ``Failure`` of a table's action."""
    match action:
        case ReadLoads():
            return lh.read_copy_history(conn, action.database, action.tables, action.start_time)
        case ReadTaskRuns():
            return lh.read_task_runs(conn, action.database, action.tasks)
        case CountMergedRows():
            return lh.count_merged_rows(conn, action.tables)
        case Reconcile():
            return reconcile(
                conn,
                database=action.database,
                staging_schema=action.staging_schema,
                final_schema=action.final_schema,
                snapshots=action.snapshots,
            )
    try:
        match action:
            case RefreshPipe():
                lh.refresh_pipe(
                    conn, action.objects, prefix=action.prefix, modified_after=action.modified_after
                )
            case RecordRuns():
                record_runs(conn, action.ledger, action.runs, action.files)
            case ExecuteTasks():
                errors = lh.execute_tasks(
                    conn, action.database, action.staging_schema, [objects for _, objects in action.tables]
                )
                return {
                    name: _table_failure(error)
                    for (name, _), error in zip(action.tables, errors, strict=True)
                }
            case ReadStreams():
                return _read_streams(conn, action)
            case MarkMerged():
                mark_merged(conn, action.ledger, action.run_id, action.merged)
                mark_reconciled(conn, action.ledger, action.run_id, action.reconciled)
    except TerminalError as exc:
        return Failure(type(exc).__name__, str(exc))
    return None


def _table_failure(error: SyncError | None) -> Failure | None:
    """One task's error inside a statement for many: terminal fails its table; transient
    propagates, as it would from a statement of its own (the call is retried, and the tasks that
    ran show up in TASK_HISTORY, so none is requested twice)."""
    if error is None:
        return None
    if isinstance(error, TerminalError):
        return Failure(type(error).__name__, str(error))
    raise error


def _read_streams(conn: Any, action: ReadStreams) -> dict[str, bool | Failure]:
    """The streams of ``action`` in one statement; when that fails terminally (a dropped stream),
    each one again alone, so only the tables whose stream fails are failed."""
    try:
        return dict(lh.streams_have_data(conn, action.tables))
    except TerminalError:
        if len(action.tables) == 1:
            raise
    answers: dict[str, bool | Failure] = {}
    for table in action.tables:
        try:
            answers.update(lh.streams_have_data(conn, [table]))
        except TerminalError as exc:
            answers[table[0]] = Failure(type(exc).__name__, str(exc))
    return answers
