"""``sam local invoke`` against the local stack: the env file and the sample events.

SAM overrides only the variables template.yaml declares for a function (an ``--env-vars`` key it
does not declare is silently dropped), so every key ``aurora-sync local env --sam`` writes must be
declared there; the events in ``events/`` must parse with their handler's model and name tables
the demo configures, so they run after ``make demo``; docs/local-stack.md's command lines must
name real functions and events. Docker is not available on the development machines, so this
tier, not a SAM run, is what keeps that path working (the handlers themselves run in-process with
the same env and events in tests/local_stack/test_sam_local_invoke.py).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from aurora_sync.messages import ExportResult, FailedExport, WorkItem, parse_verify_request, parse_work_item
from aurora_sync.planning.plan import parse_event
from aurora_sync.settings import ENVIRONMENT, RuntimeSettings
from aurora_sync_ops import sam_template
from aurora_sync_ops.demo import dataset
from aurora_sync_ops.local.engine import ENDPOINT_VARIABLE, LocalEngine
from aurora_sync_ops.local.sam_env import credential_exports, env_vars_file, role_credentials

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
ENDPOINT = "http://127.0.0.1:26901"
# What `aurora-sync local status --json` reports, as far as the env file reads it.
STATUS: dict[str, Any] = {
    "aws": {
        "endpoint_url": ENDPOINT,
        "region": "us-east-1",
        "account_id": "123456789012",
        "access_key_id": "admin",
        "secret_access_key": "admin",
        "bucket": "aurora-sync-data-lake",
        "kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/0a1b6b4b-ed98-4cb3-8a9a-e32dac53f063",
        "config_ssm_path": "/aurora-sync/tables/",
        "lambda_role_arn": "arn:aws:iam::123456789012:role/aurora-sync-lambda",
        "lambda_credentials": {
            "access_key_id": "ASIA1",
            "secret_access_key": "s3cr3t",
            "session_token": "tok",
        },
    },
    "vault": {"addr": "http://127.0.0.1:26904", "role": "aurora-sync-lambda", "iam_server_id": "vault.local"},
}
# The handler each event feeds (sam local invoke <Function> -e events/<file>).
EVENT_FUNCTION = {
    "planner-scheduled.json": "PlannerFunction",
    "planner-rerun.json": "PlannerFunction",
    "exporter.json": "ExporterFunction",
    "verifier.json": "VerifierFunction",
}


def declared(template: dict[str, Any], logical_id: str) -> set[str]:
    """The variables SAM would let --env-vars override for one function: Globals' and its own."""
    globals_env = template["Globals"]["Function"].get("Environment", {}).get("Variables", {})
    own = template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    return set(globals_env) | set(own)


def test_every_key_of_the_env_file_is_declared_for_its_function() -> None:
    template = sam_template.load()
    functions = {
        name for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
    }
    env = env_vars_file(STATUS)
    assert (
        set(env) == functions == {"PlannerFunction", "ExporterFunction", "RoundsFunction", "VerifierFunction"}
    )
    for logical_id, variables in env.items():
        assert set(variables) == declared(template, logical_id), logical_id
        # What the handlers read, with the stack's endpoints; AWS_REGION comes from SAM's --region.
        settings = RuntimeSettings.from_environ(variables)
        assert settings.vault_addr == STATUS["vault"]["addr"]
        assert settings.export_bucket == STATUS["aws"]["bucket"]
        assert settings.config_ssm_path == STATUS["aws"]["config_ssm_path"]
        assert variables[ENDPOINT_VARIABLE] == ENDPOINT
        assert set(ENVIRONMENT) - {"AWS_REGION"} <= set(variables)


def test_on_aws_the_declared_endpoint_is_empty_so_boto3_uses_each_services_default() -> None:
    import boto3

    template = sam_template.load()
    assert template["Globals"]["Function"]["Environment"]["Variables"][ENDPOINT_VARIABLE] == ""
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="eu-west-1")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENDPOINT_VARIABLE, "")
        assert session.client("ssm").meta.endpoint_url == "https://ssm.eu-west-1.amazonaws.com"


def test_the_local_engine_refuses_to_set_a_variable_the_template_does_not_declare(tmp_path: Path) -> None:
    """SAM would drop it silently; the local engine, which shares the env, fails loudly instead."""
    copy = tmp_path / "template.yaml"
    text = (ROOT / "template.yaml").read_text()
    assert text.count('        AWS_ENDPOINT_URL: ""\n') == 1
    copy.write_text(text.replace('        AWS_ENDPOINT_URL: ""\n', ""))
    shutil.copytree(ROOT / "statemachine", tmp_path / "statemachine")
    with pytest.raises(sam_template.TemplateError, match="does not declare AWS_ENDPOINT_URL"):
        LocalEngine(STATUS, template_path=copy).function_specs()


def test_the_credentials_sam_takes_from_the_shell_are_the_lambda_roles() -> None:
    template = sam_template.load()
    creds = role_credentials(STATUS)
    assert creds["AWS_ACCESS_KEY_ID"] == "ASIA1"
    assert creds["AWS_SESSION_TOKEN"] == "tok"
    assert creds["AWS_REGION"] == creds["AWS_DEFAULT_REGION"] == "us-east-1"
    # Lambda reserves these names: no template may declare them, hence the shell and not the file.
    assert not set(creds) & declared(template, "PlannerFunction")
    assert credential_exports(STATUS).splitlines()[0] == "export AWS_ACCESS_KEY_ID=ASIA1"


def _tables_named(name: str, document: dict[str, Any]) -> list[tuple[str, tuple[str, str] | None]]:
    """(table, (schema, source table) when the event says) for each table an event names."""
    if name.startswith("planner-"):
        run_request, _ = parse_event(document)
        names = set(run_request.tables or ()) | set(run_request.overrides)
        return [(table, None) for table in sorted(names)]
    if name == "exporter.json":
        item = parse_work_item(document)
        assert isinstance(item, WorkItem)
        return [(item.table, (item.source.schema_name, item.source.table))]
    request = parse_verify_request(document)
    assert [type(t) for t in request.tables] == [ExportResult, ExportResult, FailedExport]
    return [(t.table, None) for t in request.tables]


@pytest.mark.parametrize("name", sorted(EVENT_FUNCTION))
def test_each_event_parses_with_its_handlers_model_and_names_demo_tables(name: str) -> None:
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(EVENT_FUNCTION)
    named = _tables_named(name, json.loads((EVENTS / name).read_text()))
    # The schedule names no table: it plans every enabled one, the demo's after `make demo`.
    assert bool(named) == (name != "planner-scheduled.json"), named
    for table, source in named:
        assert table in dataset.CONFIGS, f"{name}: {table} is not a demo table ({sorted(dataset.CONFIGS)})"
        if source is not None:
            config = dataset.CONFIGS[table]
            assert source == (config["schema"], config["table"]), f"{name}: {table}'s source"


def test_the_documented_sam_lines_name_each_event_with_its_function() -> None:
    doc = (ROOT / "docs" / "local-stack.md").read_text()
    lines = re.findall(r"^sam local invoke (\w+) -e (events/[\w.-]+) (.*)$", doc, flags=re.MULTILINE)
    assert sorted(event for _, event, _ in lines) == sorted(f"events/{n}" for n in EVENT_FUNCTION)
    for function, event, rest in lines:
        assert EVENT_FUNCTION[event.removeprefix("events/")] == function
        assert rest.split() == ["--env-vars", "env.json", "--docker-network", "host"]
    assert "aurora-sync local env --sam > env.json" in doc
    assert 'eval "$(aurora-sync local env --credentials)"' in doc
