"""The functions' environment as template.yaml gives it, and what code run under it prints.

``function_environment`` resolves the template's ``Globals.Function.Environment`` POWERTOOLS_*
variables (``!Ref AWS::StackName`` as ``STACK``, parameters at their defaults);
``run_in_functions`` runs a script in a fresh interpreter with the functions tree on the path, as
``/var/task`` is on Lambda, so module-level singletons (observability's logger, metrics, tracer)
are built from that environment exactly as at a cold start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
STACK = "aurora-sync-dev"


class _Loader(yaml.SafeLoader):
    pass


# CloudFormation's short tags, read as plain values: only texts and names are needed here.
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


def run_in_functions(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``script`` in a fresh interpreter under ``env`` (no other POWERTOOLS_* variable leaks in)."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT / "functions",
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")},
            **env,
            "PYTHONPATH": str(ROOT / "functions"),
        },
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects among ``stdout``'s lines (log records and EMF documents)."""
    found = []
    for line in stdout.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict):
            found.append(document)
    return found


def emf_documents(stdout: str) -> list[dict[str, Any]]:
    """The EMF documents CloudWatch would ingest from ``stdout``."""
    return [d for d in json_lines(stdout) if "_aws" in d]
