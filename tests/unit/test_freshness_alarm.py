"""The freshness alarm evaluated against the metric documents the verifier really emits.

The alarm (template.yaml ``FreshnessAlarm``) watches one metric: the namespace, the metric name
and the dimension ``service`` equal to the stack name. A document matches only if all three
agree, so a handler that ignores ``POWERTOOLS_SERVICE_NAME`` (the stack name, set by the
template) yields an alarm that can never fire. The verifier's run report (``report_run``, what its
last call of a run emits) runs in a subprocess with the environment the template gives it; its
stdout is the EMF documents CloudWatch would ingest and the log lines the saved query reads.

The metric is the stalest table's age, one per stack: the cases are one table of several going
stale (failing in the run, or not planned, while the others merge) and every table fresh.
"""

from __future__ import annotations

import json
from typing import Any

from function_env import STACK, emf_documents, function_environment, json_lines, run_in_functions, template

HOUR = 3600.0
EMIT = """
import json, sys
from datetime import UTC, datetime, timedelta
from aurora_sync.messages import FailedTable, TableVerdict, VerifyOutput
from aurora_sync.observability import metrics
from aurora_sync.table_freshness import run_tables, table_ages
from aurora_sync.verifying.verify import summarize
from verifier.app import report_run

case = json.loads(sys.argv[1])
now = datetime.now(UTC)
ago = lambda seconds: now - timedelta(seconds=seconds)
verdicts = [
    TableVerdict(
        table=name, target=name.upper(), outcome=outcome,
        error="MergeFailed" if outcome == "FAILED" else None,
        reason="merge task failed" if outcome == "FAILED" else None,
        rows_exported=10, rows_loaded=10, rows_changed=4, rows_unchanged=6,
        source_time=None if age is None else ago(age).isoformat(timespec="microseconds"),
    )
    for name, outcome, age in case["verdicts"]
]
plan_failed = [FailedTable(table=n, error="ConfigError", cause="bad config") for n in case["plan_failed"]]
summary = summarize(verdicts, plan_failed)
output = VerifyOutput(
    run_id="run-1", done=True, verify_started_at=now.isoformat(), tables=verdicts, pending=0,
    failed=sum(v.outcome == "FAILED" for v in verdicts), summary=summary,
)
merged = {target: ago(age) for target, age in case["ledger"].items()}
report_run(output, table_ages(run_tables(verdicts, plan_failed, {}), merged, now=now))
metrics.flush_metrics()
"""

# Three tables merge every 15 minutes; in the stale cases one of them last reached FINAL two days
# ago and fails (or is not planned) in this run.
FRESH_VERDICTS: list[list[Any]] = [
    ["orders", "MERGED", 600],
    ["items", "NOTHING_TO_DO", 300],
    ["ledger", "MERGED", 900],
]
FRESH_LEDGER = {"ORDERS": 1500, "ITEMS": 1200, "LEDGER": 1800}
FRESH: dict[str, Any] = {"verdicts": FRESH_VERDICTS, "plan_failed": [], "ledger": FRESH_LEDGER}
FAILING: dict[str, Any] = {
    "verdicts": [*FRESH_VERDICTS[:2], ["ledger", "FAILED", None]],
    "plan_failed": [],
    "ledger": {**FRESH_LEDGER, "LEDGER": 48 * HOUR},
}
NOT_PLANNED: dict[str, Any] = {**FAILING, "verdicts": FRESH_VERDICTS[:2], "plan_failed": ["ledger"]}


def emitted(case: dict[str, Any], env: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(EMF documents, log records) the verifier's run report prints for ``case``."""
    script = EMIT.replace("sys.argv[1]", repr(json.dumps(case)))
    stdout = run_in_functions(script, {**env, "POWERTOOLS_TRACE_DISABLED": "true"}).stdout
    return emf_documents(stdout), [d for d in json_lines(stdout) if "_aws" not in d]


def alarm_fires(doc: dict[str, Any], documents: list[dict[str, Any]]) -> bool:
    """The alarm's metric (namespace, name, exactly its dimensions with their values; CloudWatch
    keys a metric by all three) taken from ``documents``, Maximum against the threshold."""
    alarm = doc["Resources"]["FreshnessAlarm"]["Properties"]
    assert alarm["Statistic"] == "Maximum" and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    resolved = {"AWS::StackName": STACK}
    wanted = {d["Name"]: resolved.get(d["Value"], d["Value"]) for d in alarm["Dimensions"]}
    assert alarm["Threshold"] == "FreshnessThresholdSeconds"  # !Ref of the parameter
    threshold = float(doc["Parameters"]["FreshnessThresholdSeconds"]["Default"])
    values: list[float] = []
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            if directive["Namespace"] != alarm["Namespace"]:
                continue
            if not any(set(dims) == set(wanted) for dims in directive["Dimensions"]):
                continue
            if any(document.get(name) != value for name, value in wanted.items()):
                continue
            if alarm["MetricName"] in {m["Name"] for m in directive["Metrics"]}:
                # EMF holds one value or a list of them.
                found = document[alarm["MetricName"]]
                values.extend(float(v) for v in (found if isinstance(found, list) else [found]))
    return bool(values) and max(values) > threshold


def test_one_table_failing_while_the_others_merge_fires_the_alarm_and_the_log_names_it() -> None:
    doc = template()
    env = function_environment(doc)
    assert env["POWERTOOLS_SERVICE_NAME"] == STACK
    documents, records = emitted(FAILING, env)
    assert documents, "the verifier emitted no metric document"
    assert alarm_fires(doc, documents), documents
    (stalest,) = [r for r in records if r.get("message") == "stalest table"]
    assert stalest["table"] == "ledger" and stalest["age_seconds"] >= 48 * HOUR
    per_table = {r["table"]: r for r in records if r.get("message") == "table synced"}
    assert set(per_table) == {"orders", "items", "ledger"}
    assert per_table["ledger"]["level"] == "WARNING" and per_table["ledger"]["error"] == "MergeFailed"


def test_a_table_the_planner_could_not_schedule_ages_and_fires_the_alarm() -> None:
    doc = template()
    documents, records = emitted(NOT_PLANNED, function_environment(doc))
    assert alarm_fires(doc, documents), documents
    per_table = {r["table"]: r for r in records if r.get("message") == "table synced"}
    assert per_table["ledger"]["outcome"] == "PLAN_FAILED" and per_table["ledger"]["error"] == "ConfigError"


def test_every_table_fresh_does_not_fire_the_alarm() -> None:
    doc = template()
    documents, _ = emitted(FRESH, function_environment(doc))
    assert documents
    assert not alarm_fires(doc, documents)


def test_another_stacks_documents_do_not_fire_this_stacks_alarm() -> None:
    doc = template()
    documents, _ = emitted(
        FAILING, {**function_environment(doc), "POWERTOOLS_SERVICE_NAME": "aurora-sync-prod"}
    )
    assert documents
    assert not alarm_fires(doc, documents)
