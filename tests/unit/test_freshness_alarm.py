"""The freshness alarm evaluated against the metric documents the verifier really emits.

The alarm (template.yaml ``FreshnessAlarm``) is a Metrics Insights query over the namespace, one
dimension set and a ``service`` filter equal to the stack name. A document matches only if all
three agree, so a handler that ignores ``POWERTOOLS_SERVICE_NAME`` (the stack name, set by the
template) yields an alarm that can never fire. The handler runs in a subprocess with the
environment the template gives it; its stdout is the EMF documents CloudWatch would ingest.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
STACK = "aurora-sync-dev"

EMIT = """
from aurora_sync.messages import TableVerdict
from verifier.app import _report

_report(TableVerdict(table="orders", target="ORDERS", outcome="MERGED", freshness_lag_seconds=86400.0))
"""


class _Loader(yaml.SafeLoader):
    pass


# CloudFormation's short tags, read as plain values: only the alarm's text is needed here.
_Loader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: (
        loader.construct_scalar(node)
        if isinstance(node, yaml.ScalarNode)
        else loader.construct_sequence(node)
    ),
)


def template() -> dict[str, Any]:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass


def function_environment(doc: dict[str, Any]) -> dict[str, str]:
    """The POWERTOOLS_* variables the template gives the functions, its !Refs resolved (the stack
    name, parameters at their defaults)."""
    variables = doc["Globals"]["Function"]["Environment"]["Variables"]
    parameters = doc["Parameters"]
    env = {}
    for key, value in variables.items():
        if not key.startswith("POWERTOOLS_"):
            continue
        if value == "AWS::StackName":
            env[key] = STACK
        elif value in parameters:
            env[key] = str(parameters[value]["Default"])
        else:
            env[key] = str(value)
    return env


def emitted(env: dict[str, str]) -> list[dict[str, Any]]:
    run = subprocess.run(
        [sys.executable, "-c", EMIT],
        cwd=ROOT / "functions",
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")},
            **env,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "PYTHONPATH": str(ROOT / "functions"),
        },
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    documents = []
    for line in run.stdout.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            documents.append(document)
    return documents


def alarm_fires(doc: dict[str, Any], documents: list[dict[str, Any]]) -> bool:
    alarm = doc["Resources"]["FreshnessAlarm"]["Properties"]
    (query,) = [m["Expression"] for m in alarm["Metrics"] if m.get("ReturnData")]
    query = query.replace("${AWS::StackName}", STACK)
    found = re.fullmatch(
        r'\s*SELECT MAX\((\w+)\) FROM SCHEMA\("([^"]+)", ([^)]*)\)\s+WHERE (\w+) = \'([^\']*)\'\s*', query
    )
    assert found, query
    metric, namespace, dimensions, key, value = found.groups()
    wanted = {d.strip().strip('"') for d in dimensions.split(",")}
    assert alarm["Threshold"] == "FreshnessThresholdSeconds"  # !Ref of the parameter
    threshold = float(doc["Parameters"]["FreshnessThresholdSeconds"]["Default"])
    values: list[float] = []
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            # SCHEMA(...) matches a metric only under exactly these dimension keys.
            if directive["Namespace"] != namespace:
                continue
            if not any(set(dims) == wanted for dims in directive["Dimensions"]):
                continue
            if metric in {m["Name"] for m in directive["Metrics"]} and document.get(key) == value:
                # EMF holds one value or a list of them.
                found_values = document[metric] if isinstance(document[metric], list) else [document[metric]]
                values.extend(float(v) for v in found_values)
    return bool(values) and max(values) > threshold


def test_the_freshness_alarm_fires_on_what_the_verifier_emits_under_the_templates_environment() -> None:
    doc = template()
    env = function_environment(doc)
    assert env["POWERTOOLS_SERVICE_NAME"] == STACK
    documents = emitted(env)
    assert documents, "the verifier emitted no metric document"
    assert alarm_fires(doc, documents), documents


def test_another_stacks_documents_do_not_fire_this_stacks_alarm() -> None:
    doc = template()
    documents = emitted({**function_environment(doc), "POWERTOOLS_SERVICE_NAME": "aurora-sync-prod"})
    assert documents
    assert not alarm_fires(doc, documents)
