"""The Wait/Verify loop must outlast the verifier's own timeouts, wherever the workflow runs.

docs/deploy.md: keep ``VerifyWaitSeconds x VerifyMaxAttempts`` at least ``LoadTimeoutSeconds +
MergeTimeoutSeconds + 2 x VerifyWaitSeconds``. Otherwise a table whose files never load, or whose
MERGE task never finishes, ends the run as the backstop ``VerifyAttemptsExhausted`` (which names no
table and no error) instead of its own ``LoadTimeout``/``MergeTimeout`` verdict. The verifier
decides at its checks, which come one wait apart: a load is seen (and the merge requested) up to
one wait late, and a timeout noticed up to one wait late, hence two waits to spare.

Checked for the template's defaults, every ``samconfig.toml`` environment, and the local engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from samconfig import environments, local_engine_parameters, overrides

from aurora_sync_ops import sam_template
from aurora_sync_ops.local.engine import LOCAL_PARAMETERS

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("VerifyWaitSeconds", "VerifyMaxAttempts", "LoadTimeoutSeconds", "MergeTimeoutSeconds")


def defaults() -> dict[str, Any]:
    parameters = sam_template.load(ROOT / "template.yaml")["Parameters"]
    return {name: parameters[name]["Default"] for name in NAMES}


def budget_problem(values: Mapping[str, Any]) -> str | None:
    wait, attempts = int(values["VerifyWaitSeconds"]), int(values["VerifyMaxAttempts"])
    load, merge = int(values["LoadTimeoutSeconds"]), int(values["MergeTimeoutSeconds"])
    if wait * attempts >= load + merge + 2 * wait:
        return None
    return (
        f"VerifyWaitSeconds x VerifyMaxAttempts = {wait} x {attempts} = {wait * attempts} s does not outlast "
        f"LoadTimeoutSeconds + MergeTimeoutSeconds + 2 waits = {load} + {merge} + {2 * wait} s"
    )


def test_the_rule_itself_rejects_a_loop_shorter_than_the_timeouts() -> None:
    # The local engine's old values: 2 s x 200 = 400 s against the template's 900 + 900 s.
    old_local = {"VerifyWaitSeconds": 2, "VerifyMaxAttempts": 200, "LoadTimeoutSeconds": 900}
    assert budget_problem({**old_local, "MergeTimeoutSeconds": 900})
    assert budget_problem({**old_local, "LoadTimeoutSeconds": 100, "MergeTimeoutSeconds": 100}) is None


def test_template_defaults_let_the_verifier_time_out_first() -> None:
    assert budget_problem(defaults()) is None


@pytest.mark.parametrize("environment", sorted(environments()))
def test_every_samconfig_environment_lets_the_verifier_time_out_first(environment: str) -> None:
    values = {**defaults(), **{k: v for k, v in overrides(environments()[environment]).items() if k in NAMES}}
    assert budget_problem(values) is None, f"samconfig.toml [{environment}]: {budget_problem(values)}"


def test_the_local_engine_lets_the_verifier_time_out_first_within_minutes() -> None:
    parameters = local_engine_parameters()
    values = {**defaults(), **{k: parameters[k] for k in NAMES if k in parameters}}
    assert budget_problem(values) is None, f"local engine: {budget_problem(values)}"
    # A stuck local run must end in minutes, not the 15 + 15 minutes a deployed one may take.
    assert int(values["LoadTimeoutSeconds"]) + int(values["MergeTimeoutSeconds"]) <= 300
    assert set(NAMES) <= set(LOCAL_PARAMETERS)
